// Command runner is the benchmark suite of caddy-stepup (bench/run.sh
// builds it and the binaries it needs, then runs it). It starts Redis,
// an upstream, a webhook receiver, an external auth service and one Caddy
// with every configuration on 127.0.0.1, drives each configuration with
// wrk in A/B/A/B repetitions against plain reverse_proxy, profiles the
// hot paths, measures Redis memory per pending challenge and writes a
// Markdown report.
//
// It exits with status 1 when a configuration could not be run or
// answered wrongly, never because a performance target was missed.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-stepup/caddy-stepup/internal/freeport"
)

type options struct {
	quick    bool
	out      string
	caddy    string // the Caddy binary with the plugin
	bin      string // directory of upstream, receiver, authsvc
	bench    string // the bench/ directory (Caddyfile.tmpl, lua/)
	work     string // scratch directory for this run
	repo     string // the module's root, for the report
	command  string // the command line to print in the report
	reps     int
	duration time.Duration
	warmup   time.Duration
	profile  time.Duration
	conns    int
	samples  int // challenges made for the Redis memory measurement
	users    int // users with a grant in configuration 3b
	// peer is a Caddy with caddy-security (the peer row P), or "";
	// peerNote says why there is none.
	peer, peerNote string
	// scaling: also measure the scaling table (full run).
	scaling bool
}

func main() {
	var o options
	flag.BoolVar(&o.quick, "quick", false, "CI mode: one repetition of 1s per configuration, no warm-up, 1s profiles")
	flag.StringVar(&o.out, "out", "", "Markdown report to write (required)")
	flag.StringVar(&o.caddy, "caddy", "", "Caddy binary with the stepup plugin (required)")
	flag.StringVar(&o.bin, "bin", "", "directory holding the upstream, receiver and authsvc binaries (required)")
	flag.StringVar(&o.bench, "bench", "bench", "the bench directory (Caddyfile.tmpl, lua/)")
	flag.StringVar(&o.work, "work", "", "scratch directory for logs, profiles and configs (required)")
	flag.StringVar(&o.repo, "repo", ".", "the repository root")
	flag.StringVar(&o.command, "command", "bench/run.sh", "the command line to record in the report")
	flag.IntVar(&o.reps, "reps", 0, "A/B repetitions per configuration (default 5, --quick 1)")
	flag.DurationVar(&o.duration, "duration", 0, "length of one measured wrk run, whole seconds (default 5s, --quick 1s)")
	flag.IntVar(&o.conns, "conns", 32, "wrk connections")
	flag.StringVar(&o.peer, "peer", "", "Caddy binary with caddy-security, for the peer row (P); none if empty")
	flag.StringVar(&o.peerNote, "peer-note", "", "why there is no peer binary (for the report)")
	flag.BoolVar(&o.scaling, "scaling", false, "also measure the scaling table (policies, live grants, stash sizes)")
	flag.Parse()
	if o.out == "" || o.caddy == "" || o.bin == "" || o.work == "" {
		flag.Usage()
		os.Exit(2)
	}
	// The servers run in the scratch directory: every path is made absolute.
	if o.peer != "" {
		if abs, err := filepath.Abs(o.peer); err == nil {
			o.peer = abs
		}
	}
	for _, p := range []*string{&o.out, &o.caddy, &o.bin, &o.bench, &o.work, &o.repo} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(2)
		}
		*p = abs
	}
	o.warmup, o.profile, o.samples, o.users = 2*time.Second, 10*time.Second, 5000, 20000
	if o.quick {
		// What shows that the suite runs end to end: every
		// configuration checked and driven once, every profile taken.
		o.warmup, o.profile, o.samples, o.users = 0, time.Second, 500, 2000
	}
	if o.reps == 0 {
		o.reps = map[bool]int{false: 10, true: 1}[o.quick]
	}
	if o.duration == 0 {
		o.duration = map[bool]time.Duration{false: 4 * time.Second, true: time.Second}[o.quick]
	}
	o.duration = o.duration.Round(time.Second)
	if o.duration < time.Second {
		o.duration = time.Second
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := &suite{opts: o}
	err := s.run(ctx)
	s.teardown()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if len(s.failures) > 0 {
		fmt.Fprintf(os.Stderr, "bench: %d configuration(s) failed:\n  %s\n", len(s.failures), strings.Join(s.failures, "\n  "))
		os.Exit(1)
	}
}

// ports are the loopback ports of one run.
type ports struct {
	Admin, Plain, Redis, Memory, Forward, Limited int
	Upstream, Receiver, AuthService, RedisServer  int
	Peer, PeerAdmin, PeerPlain                    int
	// TwinAdmin, TwinPlain, TwinRedis: the twin, a second Caddy with the
	// plugin shaped as the peer's (rows S0 and S); Twin is set when the
	// template is filled for it.
	TwinAdmin, TwinPlain, TwinRedis int
	Twin                            bool
	// Scale1, Scale200: stepup with 1 and 200 policies (scaling table).
	Scale1, Scale200 int
	// Many numbers the 180 extra policies of the 200-policy site.
	Many []int
}

type suite struct {
	opts  options
	ports ports
	procs []*proc
	caddy *proc
	peer  *proc // Caddy with caddy-security, or nil
	twin  *proc // the second Caddy with the plugin, or nil
	// peerNote says why the peer row was not measured, when it was not.
	peerNote string
	jwt      string // the peer's access_token
	rc       receiverClient
	rdb      *redis.Client

	baseline *config
	configs  []*config
	failures []string
	started  time.Time
	machine  machine

	// verifyRate is the verification rate the next pool of challenges is
	// made for (it grows with what the runs show).
	verifyRate float64
	runID      int

	profiles []profile
	memory   *memoryResult
	scale    *scaleResult
	// unmatchedAllocs is BenchmarkUnmatched's allocs/op (-1: not measured).
	unmatchedAllocs float64
	unmatchedNote   string
	loadEnd         string
}

// config is one measured configuration.
type config struct {
	key, name, target string
	load              load
	want              int         // the status every answer must have
	allow             map[int]int // except for this many of these statuses
	scripted          bool        // the script counts statuses
	// proc is the process whose CPU is this configuration's Caddy CPU
	// ("caddy" unless it is the peer's Caddy).
	proc string
	// group: measured in rounds with the baseline and the other grouped
	// configurations (the key rows), not in pairs.
	group bool
	// before prepares a run of length d (challenges to verify, unique
	// user names); it runs ahead of the baseline run of a repetition.
	before func(ctx context.Context, d time.Duration) error
	// after checks a run beyond its statuses.
	after func(ctx context.Context, r *run) error
	// exhausted reports a run that ran out of prepared work (and grows
	// what before prepares): it is made again, up to maxExhaustedRetries times.
	exhausted func(r *run) bool

	runs     []*run
	partners []*run // the baseline run of each repetition
	err      error
}

// run is one wrk run and the CPU the servers used during it.
type run struct {
	res    *wrkResult
	cpu    map[string]float64 // seconds, by process name
	codes  int                // codes the receiver got during the run
	errors int                // webhooks it refused
	// foreign is the CPU (in cores) that processes other than the
	// servers and wrk used during the run; steal what the hypervisor
	// took.
	foreign, steal float64
	// round is the round of a grouped run (measureRounds), else -1.
	round int
}

func (s *suite) url(port int, path string) string {
	return "http://127.0.0.1:" + strconv.Itoa(port) + path
}

func (s *suite) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func (s *suite) run(ctx context.Context) error {
	s.started = time.Now().UTC()
	s.machine = describeMachine(ctx, s.opts)
	if err := os.MkdirAll(s.opts.work, 0o755); err != nil {
		return err
	}
	if err := s.startServers(ctx); err != nil {
		return err
	}
	if err := s.defineConfigs(ctx); err != nil {
		return err
	}
	s.measure(ctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := s.captureProfiles(ctx); err != nil {
		s.fail("profiles", err)
	}
	m, err := s.measureMemory(ctx)
	if err != nil {
		s.fail("redis memory", err)
	}
	s.memory = m
	s.unmatchedAllocs, s.unmatchedNote = s.measureUnmatchedAllocs(ctx)
	if s.opts.scaling {
		s.scale = s.measureScale(ctx)
	}
	s.loadEnd = loadAverage()
	if err := s.caddy.alive(); err != nil {
		return err
	}
	if err := s.writeReport(); err != nil {
		return err
	}
	s.logf("wrote %s", s.opts.out)
	return nil
}

func (s *suite) fail(what string, err error) {
	s.logf("FAILED %s: %v", what, err)
	s.failures = append(s.failures, what+": "+firstLine(err.Error()))
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func randomSecret(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// startServers starts Redis, the helpers and Caddy on free ports. Each
// port is held (freeport) until the process that binds it starts; when
// one was taken in that moment, everything starts again on new ports.
func (s *suite) startServers(ctx context.Context) error {
	var err error
	for try := 0; try < 5; try++ {
		if err = s.startServersOnce(ctx); err == nil || !freeport.InUse(err.Error()) {
			return err
		}
		s.logf("a port was taken before its server bound it: starting again on other ports")
		s.teardown()
		s.procs, s.caddy, s.rdb = nil, nil, nil
	}
	return err
}

func (s *suite) startServersOnce(ctx context.Context) error {
	var held []*freeport.Port
	defer func() {
		for _, h := range held {
			h.Release()
		}
	}()
	for _, p := range []*int{&s.ports.Admin, &s.ports.Plain, &s.ports.Redis, &s.ports.Memory, &s.ports.Forward,
		&s.ports.Limited, &s.ports.Upstream, &s.ports.Receiver, &s.ports.AuthService, &s.ports.RedisServer,
		&s.ports.Peer, &s.ports.PeerAdmin, &s.ports.PeerPlain, &s.ports.Scale1, &s.ports.Scale200,
		&s.ports.TwinAdmin, &s.ports.TwinPlain, &s.ports.TwinRedis} {
		h, err := freeport.Hold()
		if err != nil {
			return err
		}
		held = append(held, h)
		*p = h.Num
	}
	// release lets the process about to start bind its ports.
	release := func(ports ...int) {
		for _, h := range held {
			if slices.Contains(ports, h.Num) {
				h.Release()
			}
		}
	}
	addr := func(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
	hookSecret := "whsec_" + randomSecret(24)
	redisURL := "redis://" + addr(s.ports.RedisServer) + "/0"

	launch := func(name string, port int, env []string, bin string, args ...string) (*proc, error) {
		p, err := start(s.opts.work, name, env, bin, args...)
		if err != nil {
			return nil, err
		}
		s.procs = append(s.procs, p)
		return p, p.waitListen(addr(port), 30*time.Second)
	}
	s.logf("starting redis-server, upstream, receiver, authsvc and caddy on 127.0.0.1")
	release(s.ports.RedisServer)
	if _, err := launch("redis", s.ports.RedisServer, nil, "redis-server",
		"--port", strconv.Itoa(s.ports.RedisServer), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.opts.work); err != nil {
		return err
	}
	s.rdb = redis.NewClient(&redis.Options{Addr: addr(s.ports.RedisServer)})
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	bin := func(name string) string { return filepath.Join(s.opts.bin, name) }
	release(s.ports.Upstream)
	if _, err := launch("upstream", s.ports.Upstream, nil, bin("upstream"), "-addr", addr(s.ports.Upstream)); err != nil {
		return err
	}
	release(s.ports.Receiver)
	if _, err := launch("receiver", s.ports.Receiver, nil, bin("receiver"),
		"-addr", addr(s.ports.Receiver), "-secret", hookSecret); err != nil {
		return err
	}
	s.rc = receiverClient{base: s.url(s.ports.Receiver, "")}
	release(s.ports.AuthService)
	if _, err := launch("authsvc", s.ports.AuthService, nil, bin("authsvc"),
		"-addr", addr(s.ports.AuthService), "-redis", redisURL, "-cookie", "session", "-prefix", "sess:"); err != nil {
		return err
	}

	s.ports.Many = nil
	for i := 1; i <= 180; i++ {
		s.ports.Many = append(s.ports.Many, i)
	}
	conf, err := s.writeConfig("Caddyfile", "Caddyfile", s.ports)
	if err != nil {
		return err
	}
	env := []string{
		"HOME=" + s.opts.work, "XDG_CONFIG_HOME=" + s.opts.work, "XDG_DATA_HOME=" + s.opts.work,
		"STEPUP_SECRET=" + randomSecret(32), "BENCH_WEBHOOK_SECRET=" + hookSecret,
	}
	release(s.ports.Admin, s.ports.Plain, s.ports.Redis, s.ports.Memory, s.ports.Forward, s.ports.Limited,
		s.ports.Scale1, s.ports.Scale200)
	s.caddy, err = launch("caddy", s.ports.Limited, env, s.opts.caddy, "run", "--config", conf, "--adapter", "caddyfile")
	if err != nil {
		return err
	}
	for _, port := range []int{s.ports.Plain, s.ports.Redis, s.ports.Memory, s.ports.Forward, s.ports.Admin,
		s.ports.Scale1, s.ports.Scale200} {
		if err := s.caddy.waitListen(addr(port), 30*time.Second); err != nil {
			return err
		}
	}
	if s.opts.peer != "" {
		// The twin goes with the peer: it is there to compare with it.
		twin := s.ports
		twin.Twin = true
		conf, err := s.writeConfig("Caddyfile", "Caddyfile-twin", twin)
		if err != nil {
			return err
		}
		release(s.ports.TwinAdmin, s.ports.TwinPlain, s.ports.TwinRedis)
		if s.twin, err = launch("twin", s.ports.TwinRedis, env, s.opts.caddy, "run", "--config", conf, "--adapter", "caddyfile"); err != nil {
			return err
		}
		for _, port := range []int{s.ports.TwinPlain, s.ports.TwinAdmin} {
			if err := s.twin.waitListen(addr(port), 30*time.Second); err != nil {
				return err
			}
		}
	}
	s.peerNote = s.opts.peerNote
	if s.opts.peer != "" {
		if err := s.startPeer(ctx, launch, release); err != nil {
			if freeport.InUse(err.Error()) {
				return err
			}
			// The rest of the suite runs without the peer row.
			s.logf("the peer (caddy-security) did not start: %v", err)
			s.peerNote = "the peer's Caddy did not start: " + firstLine(err.Error())
			s.peer = nil
		}
	}
	// A port another process took answers too: every server must still
	// be running.
	for _, p := range s.procs {
		if err := p.alive(); err != nil {
			return err
		}
	}
	return nil
}

func (s *suite) teardown() {
	if s.rdb != nil {
		s.rdb.Close()
	}
	// Caddy first, so that it does not log the others going away.
	for i := len(s.procs) - 1; i >= 0; i-- {
		s.procs[i].stop()
	}
}

// defineConfigs gets the grants and sessions the configurations need,
// checks each once by hand, and defines how wrk drives it.
func (s *suite) defineConfigs(ctx context.Context) error {
	const product, vault = "/products/42", "/vault/statement"
	s.logf("getting grant cookies through the browser flow")
	cookieRedis, err := browserGrant(ctx, s.rc, s.url(s.ports.Redis, vault), "alice")
	if err != nil {
		return fmt.Errorf("grant on the Redis site: %w", err)
	}
	cookieMemory, err := browserGrant(ctx, s.rc, s.url(s.ports.Memory, vault), "alice")
	if err != nil {
		return fmt.Errorf("grant on the memory site: %w", err)
	}
	var cookieTwin string
	if s.twin != nil {
		if cookieTwin, err = browserGrant(ctx, s.rc, s.url(s.ports.TwinRedis, vault), "alice"); err != nil {
			return fmt.Errorf("grant on the twin's site: %w", err)
		}
	}
	session := randomSecret(24)
	session = strings.NewReplacer("+", "A", "/", "B", "=", "").Replace(session)
	if err := s.rdb.Set(ctx, "sess:"+session, "alice "+phone, time.Hour).Err(); err != nil {
		return err
	}
	s.logf("getting session grants of %d users through the API", s.opts.users)
	grants, err := apiGrants(ctx, s.rc, s.url(s.ports.Redis, "/vault/grants"), s.url(s.ports.Redis, "/.stepup/verify"), "g", s.opts.users)
	if err != nil {
		return fmt.Errorf("grants through the API: %w", err)
	}
	var lines strings.Builder
	for _, g := range grants {
		lines.WriteString(g.user + " " + g.code + "\n")
	}
	grantFile := filepath.Join(s.opts.work, "grants.txt")
	if err := os.WriteFile(grantFile, []byte(lines.String()), 0o644); err != nil {
		return err
	}
	if err := exhaustPerIP(ctx, s.url(s.ports.Limited, "/vault/new")); err != nil {
		return fmt.Errorf("spending the per_ip budget: %w", err)
	}

	browser := "Accept: text/html,application/xhtml+xml"
	signedIn := append([]string{browser, "Cookie: " + cookieRedis}, identityHeaders("alice")...)
	s.baseline = &config{key: "1", name: "plain `reverse_proxy` (baseline)", target: "GET " + product,
		load: load{url: s.url(s.ports.Plain, product), headers: signedIn}, want: 200}
	verifyScript, err := s.script("verify")
	if err != nil {
		return err
	}
	challengeScript, err := s.script("challenge")
	if err != nil {
		return err
	}
	grantScript, err := s.script("grant")
	if err != nil {
		return err
	}
	s.verifyRate = 8000
	if s.opts.quick {
		s.verifyRate = 6000
	}
	newRun := func() string { s.runID++; return strconv.Itoa(s.runID) }
	hookCounts := func(ctx context.Context, r *run, fn func(codes, bad int) error) error {
		if r.errors > 0 {
			return fmt.Errorf("the receiver refused %d webhooks (bad signature or body)", r.errors)
		}
		return fn(r.codes, r.errors)
	}
	creation := &config{key: "6a", name: "challenge creation: new challenge + signed webhook, Redis",
		target: "GET /vault/new, a new X-Remote-User each", want: 401, scripted: true,
		load: load{url: s.url(s.ports.Redis, "/vault/new"), script: challengeScript}}
	creation.before = func(ctx context.Context, d time.Duration) error {
		creation.load.args = []string{newRun()}
		return nil
	}
	creation.after = func(ctx context.Context, r *run) error {
		return hookCounts(ctx, r, func(codes, _ int) error {
			if codes+s.opts.conns < r.res.requests {
				return fmt.Errorf("%d codes reached the receiver for %d challenges", codes, r.res.requests)
			}
			return nil
		})
	}
	verification := &config{key: "6b", name: "code verification (API), Redis",
		target: "POST /.stepup/verify, one pending challenge each", want: 200, scripted: true,
		load: load{url: s.url(s.ports.Redis, "/.stepup/verify"), script: verifyScript}}
	verification.before = func(ctx context.Context, d time.Duration) error {
		// At least minVerifyRate: the machine may run much faster than
		// during the run the estimate came from (a noisy neighbour gone).
		n := max(1000, int(math.Ceil(max(s.verifyRate, minVerifyRate)*d.Seconds())))
		s.logf("  making %d challenges to verify", n)
		file, err := s.pool(ctx, n)
		if err != nil {
			return err
		}
		verification.load.args = []string{file, phone, "/.stepup/verify", "1"}
		return nil
	}
	verification.after = func(ctx context.Context, r *run) error {
		// The next run gets 1.5 times what this one verified per second:
		// enough for the noise between runs, and an exhausted run is made
		// again with more.
		s.verifyRate = 1.5 * r.res.rps
		return nil
	}
	verification.exhausted = func(r *run) bool {
		if r == nil || r.res.statuses[410] == 0 {
			return false
		}
		s.logf("  the run used up its challenges (410 answers): again with twice as many")
		s.verifyRate *= 2
		return true
	}
	// The per_ip budget (30/1h) refills by one every two minutes: it is
	// spent again before each run, and a run may see one challenge more
	// per two minutes it lasts (a 401, and its code sent).
	refills := 1 + int(2*s.opts.duration/(2*time.Minute))
	flood := &config{key: "7", name: "rate-limited rejections (per_ip spent), Redis",
		target: "GET /vault/new, a new X-Remote-User each", want: 429, allow: map[int]int{401: refills}, scripted: true,
		load: load{url: s.url(s.ports.Limited, "/vault/new"), script: challengeScript}}
	flood.before = func(ctx context.Context, d time.Duration) error {
		flood.load.args = []string{newRun()}
		return exhaustPerIP(ctx, s.url(s.ports.Limited, "/vault/new"))
	}
	flood.after = func(ctx context.Context, r *run) error {
		return hookCounts(ctx, r, func(codes, _ int) error {
			if codes > r.res.statuses[401] {
				return fmt.Errorf("%d codes were sent during the flood (%d challenges let through)", codes, r.res.statuses[401])
			}
			return nil
		})
	}
	s.configs = []*config{
		{key: "2", name: "`stepup`, 20 policies, route none matches", target: "GET " + product,
			load: load{url: s.url(s.ports.Redis, product), headers: signedIn}, want: 200},
		{key: "3", name: "protected route, valid session grant, Redis store", target: "GET " + vault,
			load: load{url: s.url(s.ports.Redis, vault), headers: signedIn}, want: 200},
		{key: "3b", name: fmt.Sprintf("the same, grants of %s users (API, `Stepup-Grant` cookie)", thousands(float64(s.opts.users))),
			target: "GET " + vault + ", another user each", want: 200, scripted: true,
			load: load{url: s.url(s.ports.Redis, vault), script: grantScript, args: []string{grantFile, phone}}},
		{key: "4", name: "protected route, valid session grant, memory store", target: "GET " + vault,
			load: load{url: s.url(s.ports.Memory, vault),
				headers: append([]string{browser, "Cookie: " + cookieMemory}, identityHeaders("alice")...)}, want: 200},
		{key: "5", name: "`forward_auth` to an auth service (cookie in Redis)", target: "GET " + vault,
			load: load{url: s.url(s.ports.Forward, vault), headers: []string{browser, "Cookie: session=" + session}}, want: 200},
		creation,
		verification,
		flood,
	}
	// The key rows are measured in rounds, interleaved with the baseline
	// and each other: (2), (3), (3b), (4) and the peer (P).
	for _, c := range s.configs[:4] {
		c.group = true
	}
	if s.peer != nil {
		peer := &config{key: "P", name: "peer: caddy-security `authorize`, valid HS256 JWT cookie", target: "GET " + vault,
			load: load{url: s.url(s.ports.Peer, vault),
				headers: append([]string{browser, "Cookie: access_token=" + s.jwt}, identityHeaders("alice")...)},
			want: 200, proc: "peer", group: true}
		peerPlain := &config{key: "P0", name: "plain `reverse_proxy` in the peer's Caddy (the peer's own baseline)", target: "GET " + product,
			load: load{url: s.url(s.ports.PeerPlain, product), headers: signedIn}, want: 200, proc: "peer", group: true}
		s.configs = slices.Insert(s.configs, 3, peerPlain, peer)
		if s.twin != nil {
			twinPlain := &config{key: "S0", name: "plain `reverse_proxy` in the twin, a second stepup Caddy shaped as the peer's", target: "GET " + product,
				load: load{url: s.url(s.ports.TwinPlain, product), headers: signedIn}, want: 200, proc: "twin", group: true}
			twin := &config{key: "S", name: "the twin's granted route: (3) in a Caddy shaped as the peer's", target: "GET " + vault,
				load: load{url: s.url(s.ports.TwinRedis, vault),
					headers: append([]string{browser, "Cookie: " + cookieTwin}, identityHeaders("alice")...)},
				want: 200, proc: "twin", group: true}
			s.configs = slices.Insert(s.configs, 5, twinPlain, twin)
		}
		if err := expect(ctx, peerPlain.load.url, peerPlain.load.headers, 200); err != nil {
			peerPlain.err = err
			s.fail("(P0) "+peerPlain.name, err)
		}
		if err := expect(ctx, peer.load.url, peer.load.headers, 200); err != nil {
			peer.err = err
			s.fail("(P) "+peer.name, err)
		}
		if err := expect(ctx, peer.load.url, append([]string{browser}, identityHeaders("alice")...), 302); err != nil {
			peer.err = err
			s.fail("(P) a request without the token is refused", err)
		}
		bad := hs256("another key", map[string]any{"sub": "alice", "roles": []string{peerRoles}, "exp": time.Now().Add(time.Hour).Unix()})
		if err := expect(ctx, peer.load.url, []string{browser, "Cookie: access_token=" + bad}, 302); err != nil {
			peer.err = err
			s.fail("(P) a token signed with another key is refused", err)
		}
	}
	for _, c := range s.configs {
		if c.proc == "" {
			c.proc = "caddy"
		}
	}
	s.baseline.proc = "caddy"

	// One request of each by hand: a configuration that answers wrongly
	// is reported at once, not as a fast wrong number.
	s.logf("checking every configuration once")
	if err := expect(ctx, s.baseline.load.url, s.baseline.load.headers, 200); err != nil {
		return fmt.Errorf("(1): %w", err)
	}
	for _, c := range s.configs {
		if c.load.script != "" || c.key == "P" || c.want != 200 {
			continue
		}
		if err := expect(ctx, c.load.url, c.load.headers, c.want); err != nil {
			c.err = err
			s.fail("("+c.key+") "+c.name, err)
		}
	}
	if err := expect(ctx, s.url(s.ports.Forward, vault), []string{browser, "Cookie: session=nope"}, 401); err != nil {
		s.fail("(5) forward_auth refuses an unknown session", err)
	}
	if err := expect(ctx, s.url(s.ports.Redis, vault), append([]string{browser}, identityHeaders("alice")...), 303); err != nil {
		s.fail("(3) a request without the grant is challenged", err)
	}
	if ps, err := precreate(ctx, s.rc, s.url(s.ports.Redis, "/vault/check"), "check", 1); err != nil {
		creation.err = err
		s.fail("(6a) "+creation.name, err)
	} else if _, err := verifyOne(ctx, s.url(s.ports.Redis, "/.stepup/verify"), ps[0]); err != nil {
		verification.err = err
		s.fail("(6b) "+verification.name, err)
	}
	if _, status, err := apiChallenge(ctx, s.url(s.ports.Limited, "/vault/new"), "check-limited"); err != nil || status != 429 {
		flood.err = fmt.Errorf("a challenge from the spent address: %d, %v; want 429", status, err)
		s.fail("(7) "+flood.name, flood.err)
	}
	return nil
}

// script writes the wrk script name.lua with status.lua appended into
// the scratch directory and returns its path.
func (s *suite) script(name string) (string, error) {
	var all []byte
	for _, f := range []string{name, "status"} {
		data, err := os.ReadFile(filepath.Join(s.opts.bench, "lua", f+".lua"))
		if err != nil {
			return "", err
		}
		all = append(append(all, data...), '\n')
	}
	path := filepath.Join(s.opts.work, name+".lua")
	return path, os.WriteFile(path, all, 0o644)
}

// A verification run that uses up its challenges is made again, with
// twice as many each time, up to maxExhaustedRetries times; the pool is
// made for at least minVerifyRate verifications per second.
const (
	maxExhaustedRetries = 4
	minVerifyRate       = 4000
)

// pool makes n challenges for the verification runs and writes them to a
// file, one "USER CHALLENGE CODE" line each.
func (s *suite) pool(ctx context.Context, n int) (string, error) {
	ps, err := precreate(ctx, s.rc, s.url(s.ports.Redis, "/vault/pool"), "v"+strconv.Itoa(s.runID), n)
	s.runID++
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.user + " " + p.id + " " + p.code + "\n")
	}
	path := filepath.Join(s.opts.work, "verify-pool.txt")
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}

// prepare readies c for a run of length d.
func (s *suite) prepare(ctx context.Context, c *config, d time.Duration) error {
	if c.before == nil {
		return nil
	}
	return c.before(ctx, d)
}

// measureOnce runs c's load for d and records the CPU the servers used.
func (s *suite) measureOnce(ctx context.Context, c *config, d time.Duration) (*run, error) {
	before, err := s.cpu()
	if err != nil {
		return nil, err
	}
	busyBefore, stealBefore, err := machineTicks()
	if err != nil {
		return nil, err
	}
	okBefore, badBefore, err := s.rc.count(ctx)
	if err != nil {
		return nil, err
	}
	res, err := runWrk(ctx, c.load, s.opts.conns, d)
	if err != nil {
		return nil, err
	}
	after, err := s.cpu()
	if err != nil {
		return nil, err
	}
	busyAfter, stealAfter, err := machineTicks()
	if err != nil {
		return nil, err
	}
	okAfter, badAfter, err := s.rc.count(ctx)
	if err != nil {
		return nil, err
	}
	r := &run{res: res, cpu: map[string]float64{}, codes: okAfter - okBefore, errors: badAfter - badBefore, round: -1}
	ours := res.cpu
	for name, t := range after {
		r.cpu[name] = float64(t-before[name]) / clockTicks()
		ours += r.cpu[name]
	}
	if secs := res.elapsed.Seconds(); secs > 0 {
		r.steal = float64(stealAfter-stealBefore) / clockTicks() / secs
		r.foreign = max(0, float64(busyAfter-busyBefore)/clockTicks()-ours) / secs
	}
	if err := res.check(c.want, c.allow, c.scripted, s.opts.conns); err != nil {
		return r, err
	}
	if c.after != nil {
		if err := c.after(ctx, r); err != nil {
			return r, err
		}
	}
	if err := s.caddy.alive(); err != nil {
		return r, err
	}
	if c.proc == "peer" && s.peer != nil {
		if err := s.peer.alive(); err != nil {
			return r, err
		}
	}
	if c.proc == "twin" && s.twin != nil {
		if err := s.twin.alive(); err != nil {
			return r, err
		}
	}
	return r, nil
}

func (s *suite) prepareAndMeasure(ctx context.Context, c *config, d time.Duration) (*run, error) {
	if err := s.prepare(ctx, c, d); err != nil {
		return nil, err
	}
	return s.measureOnce(ctx, c, d)
}

// cpu returns the CPU ticks used so far by each server process.
func (s *suite) cpu() (map[string]int64, error) {
	m := make(map[string]int64, len(s.procs))
	for _, p := range s.procs {
		t, err := p.cpuTicks()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		m[p.name] = t
	}
	return m, nil
}

// measure warms every configuration up, then runs each against the
// baseline in A/B/A/B repetitions.
func (s *suite) measure(ctx context.Context) {
	if s.opts.warmup > 0 {
		s.warmUp(ctx)
	}
	s.measureRounds(ctx)
	for _, c := range s.configs {
		if s.baseline.err != nil {
			return
		}
		if c.group || c.err != nil || ctx.Err() != nil {
			continue
		}
		s.logf("(%s) %s: %d × (baseline, this) of %s", c.key, c.name, s.opts.reps, s.opts.duration)
		for rep := 0; rep < s.opts.reps && ctx.Err() == nil; rep++ {
			if err := s.prepare(ctx, c, s.opts.duration); err != nil {
				c.err = err
				break
			}
			b, err := s.measureOnce(ctx, s.baseline, s.opts.duration)
			if err != nil {
				c.err = fmt.Errorf("baseline run: %w", err)
				break
			}
			r, err := s.measureOnce(ctx, c, s.opts.duration)
			for try := 0; err != nil && c.exhausted != nil && c.exhausted(r) && try < maxExhaustedRetries; try++ {
				r, err = s.prepareAndMeasure(ctx, c, s.opts.duration)
			}
			if err != nil {
				c.err = err
				break
			}
			s.logf("  %d: baseline %.0f req/s, this %.0f req/s", rep+1, b.res.rps, r.res.rps)
			c.partners = append(c.partners, b)
			c.runs = append(c.runs, r)
		}
		if c.err != nil {
			s.fail("("+c.key+") "+c.name, c.err)
		}
	}
}

// measureRounds measures the grouped configurations (the key rows) in
// rounds: each round runs the baseline, then every grouped configuration
// once, in an order that rotates from round to round, so that each row
// and the baseline share the same minute of the machine's life and no
// row always comes right after the baseline. Each run is paired with its
// round's baseline run.
func (s *suite) measureRounds(ctx context.Context) {
	var group []*config
	for _, c := range s.configs {
		if c.group && c.err == nil {
			group = append(group, c)
		}
	}
	if len(group) == 0 || s.baseline.err != nil {
		return
	}
	keys := make([]string, len(group))
	for i, c := range group {
		keys[i] = c.key
	}
	s.logf("(%s) in %d rounds of (baseline, each once, rotating) of %s", strings.Join(keys, ", "), s.opts.reps, s.opts.duration)
	for rep := 0; rep < s.opts.reps && ctx.Err() == nil; rep++ {
		b, err := s.measureOnce(ctx, s.baseline, s.opts.duration)
		if err != nil {
			for _, c := range group {
				if c.err == nil {
					c.err = fmt.Errorf("baseline run: %w", err)
				}
			}
			break
		}
		line := fmt.Sprintf("  %d: baseline %.0f req/s %.0f µs", rep+1, b.res.rps, cpuPerReq(b, "caddy"))
		for i := range group {
			c := group[(i+rep)%len(group)]
			if c.err != nil {
				continue
			}
			if err := s.prepare(ctx, c, s.opts.duration); err != nil {
				c.err = err
				continue
			}
			r, err := s.measureOnce(ctx, c, s.opts.duration)
			if err != nil {
				c.err = err
				continue
			}
			r.round = rep
			c.partners = append(c.partners, b)
			c.runs = append(c.runs, r)
			line += fmt.Sprintf(", (%s) %.0f req/s %.0f µs", c.key, r.res.rps, cpuPerReq(r, c.proc))
		}
		s.logf("%s", line)
	}
	for _, c := range group {
		if c.err != nil {
			s.fail("("+c.key+") "+c.name, c.err)
		}
	}
}

// cpuPerReq is the CPU process name used per request of r, in µs.
func cpuPerReq(r *run, name string) float64 {
	if r.res.requests == 0 {
		return 0
	}
	return r.cpu[name] * 1e6 / float64(r.res.requests)
}

// warmUp drives the baseline and every configuration once for the
// warm-up time; a configuration that fails here is not measured.
func (s *suite) warmUp(ctx context.Context) {
	s.logf("warming up (%s each)", s.opts.warmup)
	if _, err := s.measureOnce(ctx, s.baseline, s.opts.warmup); err != nil {
		s.baseline.err = err
		s.fail("(1) "+s.baseline.name, err)
		return
	}
	for _, c := range s.configs {
		if c.err != nil {
			continue
		}
		r, err := s.prepareAndMeasure(ctx, c, s.opts.warmup)
		for try := 0; err != nil && c.exhausted != nil && c.exhausted(r) && try < maxExhaustedRetries; try++ {
			r, err = s.prepareAndMeasure(ctx, c, s.opts.warmup)
		}
		if err != nil {
			c.err = err
			s.fail("("+c.key+") "+c.name+" (warm-up)", err)
		}
	}
}

// writeConfig fills the template bench/NAME.tmpl with ports and writes
// it to the work directory as OUT, whose path it returns.
func (s *suite) writeConfig(name, out string, ports ports) (string, error) {
	tmpl, err := template.ParseFiles(filepath.Join(s.opts.bench, name+".tmpl"))
	if err != nil {
		return "", err
	}
	conf := filepath.Join(s.opts.work, out)
	f, err := os.Create(conf)
	if err != nil {
		return "", err
	}
	err = tmpl.Execute(f, ports)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return conf, err
}
