package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// measureUnmatchedAllocs runs the Go benchmark of a request no policy
// matches (caddymodule.BenchmarkUnmatched, the handler as Caddy calls
// it) and returns its allocs/op, or -1 and why not.
func (s *suite) measureUnmatchedAllocs(ctx context.Context) (float64, string) {
	if s.opts.quick {
		return -1, "left out of `--quick` (CI runs `TestUnmatchedAllocatesNothing` in every `go test`)"
	}
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "^BenchmarkUnmatched$", "-benchmem",
		"-benchtime", "200000x", "./caddymodule")
	cmd.Dir = s.opts.repo
	out, err := cmd.CombinedOutput()
	if err != nil {
		return -1, "`go test -bench BenchmarkUnmatched` failed: " + firstLine(string(out))
	}
	m := regexp.MustCompile(`(?m)^BenchmarkUnmatched\S*\s+\d+\s+([0-9.]+) ns/op\s+([0-9.]+) B/op\s+([0-9.]+) allocs/op`).FindStringSubmatch(string(out))
	if m == nil {
		return -1, "no result in the output of `go test -bench BenchmarkUnmatched`"
	}
	allocs, _ := strconv.ParseFloat(m[3], 64)
	return allocs, fmt.Sprintf("%s ns/op, %s B/op", m[1], m[2])
}

// scaleResult is the scaling table.
type scaleResult struct {
	// policies: by what ("granted", "unmatched", "challenge") and
	// number of policies (1, 20, 200), the runs of that site.
	policies map[string]map[int][]*run
	polErr   error
	goBench  []goBenchLine
	goErr    string
	reps     int
	duration time.Duration
}

// goBenchLine is one line of go test -bench output.
type goBenchLine struct {
	name    string
	metrics map[string]float64 // unit -> value
}

var policyCounts = []int{1, 20, 200}

// measureScale measures the scaling table: the granted path, an
// unmatched request and challenge creation on the sites with 1, 20 and
// 200 policies (wrk, Caddy CPU/req, in rotating rounds), then the Go
// benchmarks of live grants and stash sizes against Redis
// (stepup.BenchmarkScale...).
func (s *suite) measureScale(ctx context.Context) *scaleResult {
	res := &scaleResult{policies: map[string]map[int][]*run{}, reps: 3, duration: 3 * time.Second}
	s.logf("scaling table: 1, 20 and 200 policies (%d rounds of %s each)", res.reps, res.duration)
	if err := s.measurePolicies(ctx, res); err != nil {
		res.polErr = err
		s.fail("scaling table (policies)", err)
	}
	s.logf("scaling table: live grants and stash sizes (go test -bench '^BenchmarkScale' ./stepup)")
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "^BenchmarkScale", "-benchmem",
		"-benchtime", "1s", "-timeout", "20m", "./stepup")
	cmd.Dir = s.opts.repo
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(filepath.Join(s.opts.work, "scale-bench.txt"), out, 0o644)
	if err != nil {
		res.goErr = "`go test -bench BenchmarkScale` failed: " + firstLine(string(out))
		s.fail("scaling table (Go benchmarks)", errors.New(res.goErr))
	}
	res.goBench = parseGoBench(string(out))
	return res
}

func (s *suite) measurePolicies(ctx context.Context, res *scaleResult) error {
	const vault, product = "/vault/statement", "/products/42"
	ports := map[int]int{1: s.ports.Scale1, 20: s.ports.Redis, 200: s.ports.Scale200}
	challengeScript, err := s.script("challenge")
	if err != nil {
		return err
	}
	browser := "Accept: text/html,application/xhtml+xml"
	type item struct {
		what string
		n    int
		c    *config
	}
	var items []item
	for _, n := range policyCounts {
		cookie, err := browserGrant(ctx, s.rc, s.url(ports[n], vault), "alice")
		if err != nil {
			return fmt.Errorf("grant on the %d-policy site: %w", n, err)
		}
		headers := append([]string{browser, "Cookie: " + cookie}, identityHeaders("alice")...)
		granted := &config{key: fmt.Sprintf("granted-%d", n), want: 200, proc: "caddy",
			load: load{url: s.url(ports[n], vault), headers: headers}}
		unmatched := &config{key: fmt.Sprintf("unmatched-%d", n), want: 200, proc: "caddy",
			load: load{url: s.url(ports[n], product), headers: headers}}
		challenge := &config{key: fmt.Sprintf("challenge-%d", n), want: 401, scripted: true, proc: "caddy",
			load: load{url: s.url(ports[n], "/vault/new"), script: challengeScript}}
		challenge.before = func(ctx context.Context, d time.Duration) error {
			s.runID++
			challenge.load.args = []string{"s" + strconv.Itoa(s.runID)}
			return nil
		}
		challenge.after = func(ctx context.Context, r *run) error {
			if r.errors > 0 {
				return fmt.Errorf("the receiver refused %d webhooks", r.errors)
			}
			if r.codes+s.opts.conns < r.res.requests {
				return fmt.Errorf("%d codes reached the receiver for %d challenges", r.codes, r.res.requests)
			}
			return nil
		}
		for _, c := range []*config{granted, unmatched} {
			if err := expect(ctx, c.load.url, c.load.headers, 200); err != nil {
				return fmt.Errorf("%s: %w", c.key, err)
			}
		}
		items = append(items, item{"granted", n, granted}, item{"unmatched", n, unmatched}, item{"challenge", n, challenge})
	}
	for rep := 0; rep < res.reps && ctx.Err() == nil; rep++ {
		for i := range items {
			it := items[(i+rep)%len(items)]
			if err := s.prepare(ctx, it.c, res.duration); err != nil {
				return err
			}
			r, err := s.measureOnce(ctx, it.c, res.duration)
			if err != nil {
				return fmt.Errorf("%s: %w", it.c.key, err)
			}
			if res.policies[it.what] == nil {
				res.policies[it.what] = map[int][]*run{}
			}
			res.policies[it.what][it.n] = append(res.policies[it.what][it.n], r)
		}
	}
	return ctx.Err()
}

var reGoBench = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

func parseGoBench(out string) []goBenchLine {
	var lines []goBenchLine
	for _, line := range strings.Split(out, "\n") {
		m := reGoBench.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		l := goBenchLine{name: m[1], metrics: map[string]float64{}}
		f := strings.Fields(m[2])
		for i := 0; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				l.metrics[f[i+1]] = v
			}
		}
		lines = append(lines, l)
	}
	return lines
}

func (res *scaleResult) bench(name string) (goBenchLine, bool) {
	for _, l := range res.goBench {
		if l.name == name {
			return l, true
		}
	}
	return goBenchLine{}, false
}

// human writes a duration in ns with a fitting unit.
func human(ns float64) string {
	switch {
	case ns >= 1e6:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.1f µs", ns/1e3)
	default:
		return fmt.Sprintf("%.0f ns", ns)
	}
}

func bytesHuman(b float64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.2f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", b)
	}
}

func (s *suite) writeScale(w func(string, ...any)) {
	res := s.scale
	if res == nil {
		return
	}
	w("## Costs as work grows\n\n")
	w("### Policies: 1, 20 and 200\n\n")
	w("Three stepup sites on the same Caddy and Redis, limits off: the vault policy\n")
	w("alone, the 20 policies above, and 180 more (each on its own path prefix) ahead\n")
	w("of those 20; the vault is always the last policy. Each site is driven as (3)\n")
	w("(a valid grant cookie), (2) (`GET /products/42`, no policy matches) and (6a)\n")
	w("(challenge creation), %d rounds of %s each, the 9 runs of a round in rotating\n", res.reps, res.duration)
	w("order. Median Caddy CPU per request (req/s), and the growth from 1 to 200\n")
	w("policies.\n\n")
	if res.polErr != nil {
		w("Not measured: %s\n\n", strings.ReplaceAll(firstLine(res.polErr.Error()), "|", "/"))
	} else {
		w("| request | 1 policy | 20 policies | 200 policies | 1 → 200 |\n|---|--:|--:|--:|--:|\n")
		for _, what := range []string{"granted", "unmatched", "challenge"} {
			label := map[string]string{"granted": "granted route (valid grant)", "unmatched": "unmatched request",
				"challenge": "challenge creation (with its webhook)"}[what]
			w("| %s |", label)
			var first, last float64
			for _, n := range policyCounts {
				runs := res.policies[what][n]
				var cpu, rps []float64
				for _, r := range runs {
					cpu = append(cpu, cpuPerReq(r, "caddy"))
					rps = append(rps, r.res.rps)
				}
				c := median(cpu)
				if n == 1 {
					first = c
				}
				last = c
				w(" %.0f µs (%s/s) |", c, thousands(median(rps)))
			}
			if first > 0 {
				w(" %+.0f%% |\n", (last/first-1)*100)
			} else {
				w(" – |\n")
			}
		}
		w("\n")
	}

	w("### Live grants: 1,000, 20,000 and 1,000,000\n\n")
	w("Go benchmarks against a real redis-server (`go test -run '^$' -bench '^BenchmarkScale' -benchmem ./stepup`,\n")
	w("one run of `-benchtime 1s` each; raw output in the run's `scale-bench.txt`).\n")
	w("A grant check through the engine (`Serve`, Redis store), each request another\n")
	w("user's grant, round robin over all of them.\n\n")
	if res.goErr != "" {
		w("%s\n\n", res.goErr)
	}
	w("| live session grants | a check: fresh grants | a check: after a revocation of someone | allocs/op | Redis memory per session grant |\n|---|--:|--:|--:|--:|\n")
	for _, n := range []int{1000, 20000, 1000000} {
		fresh, ok1 := res.bench(fmt.Sprintf("BenchmarkScaleGrants/grants=%d/fresh", n))
		rev, ok2 := res.bench(fmt.Sprintf("BenchmarkScaleGrants/grants=%d/after-revocation", n))
		if !ok1 || !ok2 {
			w("| %s | not measured | | | |\n", thousands(float64(n)))
			continue
		}
		w("| %s | %s | %s | %.0f / %.0f | %.0f B |\n", thousands(float64(n)), human(fresh.metrics["ns/op"]), human(rev.metrics["ns/op"]),
			fresh.metrics["allocs/op"], rev.metrics["allocs/op"], fresh.metrics["redis-B/grant"])
	}
	w("\n")
	w("| live transaction grants (issuance records) | Redis memory per grant | issuing one (32 at a time) |\n|---|--:|--:|\n")
	for _, n := range []int{1000, 20000, 1000000} {
		tx, ok := res.bench(fmt.Sprintf("BenchmarkScaleTransactionGrants/grants=%d", n))
		if !ok {
			w("| %s | not measured | |\n", thousands(float64(n)))
			continue
		}
		w("| %s | %.0f B | %s |\n", thousands(float64(n)), tx.metrics["redis-B/grant"], human(tx.metrics["ns/grant"]))
	}
	w("\n")
	w("- A **session grant** keeps nothing in Redis: the token carries it, checked\n")
	w("  by one HMAC. Each instance remembers up to 50,000 grants that verified (about\n")
	w("  half a KiB each), so that a grant used again skips its HMAC; past that the\n")
	w("  memory starts afresh and checks cost one HMAC, as before. The check does not\n")
	w("  depend on how many grants are live. *Fresh*: every grant was issued after the last revocation\n")
	w("  of anyone, the common case, checked in process. What grows at a million is\n")
	w("  the benchmark's own working set (a million cookies in its heap: cache misses\n")
	w("  and garbage-collector marking), not the engine's state.\n")
	w("- **After a revocation** of anyone, a grant issued before it must look up its\n")
	w("  own user's revocation time: cached for one second per instance (at most\n")
	w("  100,000 users, then the cache starts afresh). With more users than requests\n")
	w("  per second, each check is one Redis read: the cost per request is bounded by\n")
	w("  one round trip, whatever the number of users, until the grants issued before\n")
	w("  the revocation have expired (grant_ttl).\n")
	w("- A **transaction grant** keeps one issuance record (single use) until it is\n")
	w("  used or its code_ttl ends: memory grows linearly with the live ones, a\n")
	w("  constant per grant.\n\n")

	w("### Stash sizes: 1 KiB, 64 KiB and 1 MiB\n\n")
	w("A browser's `POST` to a protected route with a body of that size: challenged,\n")
	w("its request preserved (sealed) in Redis (`BenchmarkScaleStash`, `max_body` 2 MiB).\n\n")
	w("| body | a challenge with its stash | throughput | Redis memory per challenge (growth of `used_memory`) | ÷ body |\n|---|--:|--:|--:|--:|\n")
	for _, size := range []int{1 << 10, 64 << 10, 1 << 20} {
		name := "1KiB"
		switch size {
		case 64 << 10:
			name = "64KiB"
		case 1 << 20:
			name = "1MiB"
		}
		st, ok := res.bench("BenchmarkScaleStash/stash=" + name)
		if !ok {
			w("| %s | not measured | | | |\n", bytesHuman(float64(size)))
			continue
		}
		w("| %s | %s | %.1f MB/s | %s | %.2f× |\n", bytesHuman(float64(size)), human(st.metrics["ns/op"]), st.metrics["MB/s"],
			bytesHuman(st.metrics["redis-B/op"]), st.metrics["redis-B/op"]/float64(size))
	}
	w("\n")
	w("The stash grows linearly with the body it preserves: the request sealed\n")
	w("(AES-GCM: its headers, the body, nonce and tag) and kept as one Redis string,\n")
	w("plus the challenge's own few hundred bytes. Above the body, `used_memory`\n")
	w("also shows Redis's allocator rounding a large value up to its size class\n")
	w("(jemalloc: up to 25%%, e.g. 1 MiB and a little → 1.25 MiB). The time is the\n")
	w("body's read, seal and write.\n\n")
}
