package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// profile is a CPU profile of Caddy taken while wrk drove one
// configuration.
type profile struct {
	key, name string
	file      string
	top       string // go tool pprof -top -nodecount=25
	areas     []share
	ours      string  // the plugin's functions by cumulative time
	own       float64 // share of stepup itself: its handler minus the handlers after it
	rps       float64
}

type share struct {
	area    string
	percent float64
}

// captureProfiles profiles Caddy (its admin endpoint's
// /debug/pprof/profile) under the loads of (3) and (6).
func (s *suite) captureProfiles(ctx context.Context) error {
	for _, c := range s.configs {
		if c.key != "2" && c.key != "3" && c.key != "3b" && c.key != "6a" && c.key != "6b" {
			continue
		}
		if c.err != nil {
			continue
		}
		s.logf("profiling (%s) for %s", c.key, s.opts.profile)
		p, err := s.profileOne(ctx, c)
		// A load that ran out of prepared work (verification) is run
		// again with more, as the measured runs are.
		for try := 0; errors.Is(err, errExhausted) && try < maxExhaustedRetries; try++ {
			p, err = s.profileOne(ctx, c)
		}
		if err != nil {
			return fmt.Errorf("(%s): %w", c.key, err)
		}
		s.profiles = append(s.profiles, *p)
	}
	return nil
}

// errExhausted: the load used up the work prepared for it.
var errExhausted = errors.New("the load ran out of prepared work")

func (s *suite) profileOne(ctx context.Context, c *config) (*profile, error) {
	d := s.opts.profile + 2*time.Second
	if err := s.prepare(ctx, c, d); err != nil {
		return nil, err
	}
	type result struct {
		res *wrkResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := runWrk(ctx, c.load, s.opts.conns, d)
		done <- result{res, err}
	}()
	time.Sleep(time.Second)
	file := filepath.Join(s.opts.work, "cpu-"+c.key+".pprof")
	perr := s.fetchProfile(ctx, file)
	r := <-done
	if r.err != nil {
		return nil, r.err
	}
	if perr != nil {
		return nil, perr
	}
	if c.exhausted != nil && c.exhausted(&run{res: r.res}) {
		return nil, errExhausted
	}
	if err := r.res.check(c.want, c.allow, c.scripted, s.opts.conns); err != nil {
		return nil, fmt.Errorf("the load during the profile: %w", err)
	}
	p := &profile{key: c.key, name: c.name, file: file, rps: r.res.rps}
	var err error
	if p.top, err = pprof("-top", "-nodecount=25", s.opts.caddy, file); err != nil {
		return nil, err
	}
	all, err := pprof("-top", "-nodecount=100000", s.opts.caddy, file)
	if err != nil {
		return nil, err
	}
	p.areas = byArea(all)
	cum, err := pprof("-top", "-cum", "-nodecount=100000", s.opts.caddy, file)
	if err != nil {
		return nil, err
	}
	p.ours = ourFunctions(cum, 15)
	p.own = ownShare(cum)
	return p, nil
}

func (s *suite) fetchProfile(ctx context.Context, file string) error {
	u := s.url(s.ports.Admin, "/debug/pprof/profile?seconds="+strconv.Itoa(int(s.opts.profile/time.Second)))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	c := &http.Client{Timeout: s.opts.profile + 30*time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 500))
		return fmt.Errorf("GET %s: %d %s", u, resp.StatusCode, body)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func pprof(args ...string) (string, error) {
	out, err := exec.Command("go", append([]string{"tool", "pprof"}, args...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go tool pprof %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimRight(string(out), "\n"), nil
}

// A row of pprof -top: flat flat% sum% cum cum% name.
var reTopRow = regexp.MustCompile(`^\s*[0-9.]+\w*\s+([0-9.]+)%\s+[0-9.]+%\s+[0-9.]+\w*\s+([0-9.]+)%\s+(.+)$`)

// areas group functions by where they are, in the order they are tried:
// a function belongs to the first area with a matching name prefix.
var areas = []struct{ name, prefix string }{
	{"caddy-stepup (this plugin)", "github.com/caddy-stepup/"},
	{"go-redis client", "github.com/redis/go-redis/"},
	{"go-redis/redis_rate", "github.com/go-redis/redis_rate/"},
	{"zap logging", "go.uber.org/zap"},
	{"prometheus", "github.com/prometheus/"},
	{"Caddy (caddyhttp, reverse_proxy, ...)", "github.com/caddyserver/"},
	{"phone numbers (nyaruka/phonenumbers)", "github.com/nyaruka/"},
	{"system calls and polling (network I/O)", "syscall."},
	{"system calls and polling (network I/O)", "internal/runtime/syscall/"},
	{"system calls and polling (network I/O)", "internal/poll."},
	{"system calls and polling (network I/O)", "runtime.netpoll"},
	{"system calls and polling (network I/O)", "runtime.epoll"},
	{"regexp", "regexp."},
	{"crypto", "crypto/"},
	{"encoding/json", "encoding/json."},
	{"net/http, net, bufio", "net/"},
	{"net/http, net, bufio", "net."},
	{"net/http, net, bufio", "bufio."},
	{"Go runtime: GC and allocation", "internal/runtime/gc/"},
	{"Go runtime: maps", "internal/runtime/maps."},
	{"Go runtime: maps", "runtime.map"},
}

// gcWords mark runtime functions of the allocator and the collector.
var gcWords = []string{"gc", "GC", "malloc", "scan", "Scan", "sweep", "mheap", "mspan", "mSpan", "mcache", "mcentral",
	"pageAlloc", "spanSet", "heapBits", "HeapBits", "wbBuf", "markBits", "greyobject", "findObject", "memclr",
	"typePointers", "nextFreeFast", "refill", "publicationBarrier", "bulkBarrier", "newobject", "makeslice",
	"growslice", "makemap", "newarray", "(*mspan)", "(*gcWork)", "sweepone", "stackScan", "(*gcBits)"}

// area returns the area of the function name.
func area(name string) string {
	for _, a := range areas {
		if strings.HasPrefix(name, a.prefix) {
			return a.name
		}
	}
	if strings.HasPrefix(name, "runtime.") || strings.HasPrefix(name, "internal/runtime/") {
		for _, w := range gcWords {
			if strings.Contains(name, w) {
				return "Go runtime: GC and allocation"
			}
		}
		if strings.HasPrefix(name, "runtime.mem") {
			return "Go runtime: memmove, memequal, hashing"
		}
		return "Go runtime: scheduler, goroutines, timers, the rest"
	}
	switch {
	case name == "aeshashbody", name == "memeqbody", name == "countbody", name == "indexbytebody", name == "cmpbody":
		return "Go runtime: memmove, memequal, hashing"
	}
	return "other (standard library: context, time, sync, strings, ...)"
}

// byArea sums the flat time of every function of a full pprof -top by
// area, largest first.
func byArea(top string) []share {
	sum := map[string]float64{}
	for _, line := range strings.Split(top, "\n") {
		m := reTopRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		flat, _ := strconv.ParseFloat(m[1], 64)
		sum[area(strings.TrimSuffix(m[3], " (inline)"))] += flat
	}
	var out []share
	for a, p := range sum {
		if p >= 0.05 {
			out = append(out, share{a, p})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].percent > out[j].percent })
	return out
}

// ourFunctions returns the plugin's functions of a pprof -top -cum, with
// their cumulative share, at most n.
func ourFunctions(cum string, n int) string {
	var b strings.Builder
	for _, line := range strings.Split(cum, "\n") {
		m := reTopRow.FindStringSubmatch(line)
		if m == nil || !strings.HasPrefix(m[3], "github.com/caddy-stepup/") {
			continue
		}
		fmt.Fprintf(&b, "%6s%%  %s\n", m[2], strings.TrimPrefix(m[3], "github.com/caddy-stepup/caddy-stepup/"))
		if n--; n == 0 {
			break
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// ownShare is the cumulative share of stepup's handler minus what the
// handlers after it took (reached through stepup.(*markedNext) on
// protected routes, stepup.NextFunc or Caddy's next handler otherwise),
// from a pprof -top -cum.
func ownShare(cum string) float64 {
	shares := map[string]float64{}
	for _, line := range strings.Split(cum, "\n") {
		if m := reTopRow.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseFloat(m[2], 64)
			shares[strings.TrimSuffix(m[3], " (inline)")] = v
		}
	}
	const prefix = "github.com/caddy-stepup/caddy-stepup/"
	handler := shares[prefix+"caddymodule.(*Handler).ServeHTTP"]
	next := shares[prefix+"stepup.(*markedNext).ServeHTTP"]
	if next == 0 {
		// Unprotected routes: the engine calls the next handler itself.
		next = shares["github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy.(*Handler).ServeHTTP"]
	}
	return max(0, handler-next)
}

// memoryResult is the Redis memory of pending challenges.
type memoryResult struct {
	n          int     // challenges made
	sampled    int     // challenge hashes measured
	hashMean   float64 // MEMORY USAGE of a challenge hash, bytes
	hashMin    int64
	hashMax    int64
	pointers   int     // pending pointers measured
	ptrMean    float64 // MEMORY USAGE of a pending pointer, bytes
	deltaPer   float64 // used_memory growth per challenge
	encoding   string
	fields     int64
	ttl        time.Duration
	exampleKey string
}

// measureMemory makes challenges through the API (no stashed request) and
// measures them with MEMORY USAGE, and the growth of used_memory.
func (s *suite) measureMemory(ctx context.Context) (*memoryResult, error) {
	const prefix = "bench:"
	s.logf("measuring Redis memory of %d pending challenges", s.opts.samples)
	before, err := usedMemory(ctx, s.rdb)
	if err != nil {
		return nil, err
	}
	ps, err := precreate(ctx, s.rc, s.url(s.ports.Redis, "/vault/memory"), "mem", s.opts.samples)
	if err != nil {
		return nil, err
	}
	after, err := usedMemory(ctx, s.rdb)
	if err != nil {
		return nil, err
	}
	m := &memoryResult{n: len(ps), deltaPer: float64(after-before) / float64(len(ps)), hashMin: math.MaxInt64}
	sample := ps
	if len(sample) > 1000 {
		sample = sample[:1000]
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(sample))
	for i, p := range sample {
		cmds[i] = pipe.MemoryUsage(ctx, prefix+"{"+p.id+"}", 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("MEMORY USAGE: %w", err)
	}
	var total int64
	for _, c := range cmds {
		v := c.Val()
		total += v
		m.hashMin, m.hashMax = min(m.hashMin, v), max(m.hashMax, v)
	}
	m.sampled = len(cmds)
	m.hashMean = float64(total) / float64(len(cmds))
	m.exampleKey = prefix + "{" + sample[0].id + "}"
	m.encoding, _ = s.rdb.ObjectEncoding(ctx, m.exampleKey).Result()
	m.fields, _ = s.rdb.HLen(ctx, m.exampleKey).Result()
	m.ttl, _ = s.rdb.PTTL(ctx, m.exampleKey).Result()

	var keys []string
	for cursor := uint64(0); len(keys) < 1000; {
		var batch []string
		batch, cursor, err = s.rdb.Scan(ctx, cursor, prefix+"p:*", 5000).Result()
		if err != nil {
			return nil, err
		}
		keys = append(keys, batch...)
		if cursor == 0 {
			break
		}
	}
	if len(keys) > 1000 {
		keys = keys[:1000]
	}
	if len(keys) > 0 {
		pipe = s.rdb.Pipeline()
		cmds = cmds[:0]
		for _, k := range keys {
			cmds = append(cmds, pipe.MemoryUsage(ctx, k, 0))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("MEMORY USAGE: %w", err)
		}
		total = 0
		for _, c := range cmds {
			total += c.Val()
		}
		m.pointers = len(cmds)
		m.ptrMean = float64(total) / float64(len(cmds))
	}
	return m, nil
}

func usedMemory(ctx context.Context, rdb *redis.Client) (int64, error) {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no used_memory in INFO memory")
}
