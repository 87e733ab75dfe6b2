package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// machine describes where the suite ran.
type machine struct {
	cpu, kernel, osName, memory, load string
	cores                             int
	goVersion, caddy, redis, wrk      string
	commit, binary                    string
}

func describeMachine(ctx context.Context, o options) machine {
	m := machine{cores: runtime.NumCPU(), cpu: "?", osName: "?", memory: "?"}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = "Linux " + strings.TrimSpace(string(data))
	}
	if data, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				m.osName = strings.Trim(v, `"`)
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(data), "MemTotal: %d kB", &kb); err == nil {
			m.memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(data))
		if len(f) >= 3 {
			m.load = strings.Join(f[:3], " ")
		}
	}
	// "PATH: go1.26.8": the Go that built the Caddy binary.
	if v := output(ctx, "go", "version", o.caddy); v != "?" {
		m.goVersion = v[strings.LastIndexByte(v, ' ')+1:]
	}
	m.caddy = strings.Fields(output(ctx, o.caddy, "version") + " ?")[0]
	m.redis = strings.TrimPrefix(strings.Fields(output(ctx, "redis-server", "--version") + " ? ? ?")[2], "v=")
	wrk := output(ctx, "sh", "-c", "wrk -v 2>&1 | head -n 1")
	m.wrk = strings.Fields(wrk + " ? ?")[1]
	m.binary = "`bench/out/caddy`, from `go build ./internal/caddybin`"
	if o.caddy == filepath.Join(o.repo, "caddy") {
		m.binary = "`./caddy`, from `./xcaddy.sh build`"
	}
	m.commit = output(ctx, "git", "-C", o.repo, "rev-parse", "--short", "HEAD")
	if dirty := output(ctx, "git", "-C", o.repo, "status", "--porcelain", "--", ".", ":(exclude)bench", ":(exclude)docs"); dirty != "" && dirty != "?" {
		m.commit += " with uncommitted changes"
	}
	return m
}

func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func maxOf(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// quartiles returns the first quartile, the median and the third
// quartile of xs (linear interpolation between order statistics).
func quartiles(xs []float64) (q1, q2, q3 float64) {
	if len(xs) == 0 {
		return 0, 0, 0
	}
	v := append([]float64(nil), xs...)
	sort.Float64s(v)
	at := func(q float64) float64 {
		pos := q * float64(len(v)-1)
		i := int(pos)
		if i+1 >= len(v) {
			return v[len(v)-1]
		}
		return v[i] + (pos-float64(i))*(v[i+1]-v[i])
	}
	return at(0.25), median(v), at(0.75)
}

// spreadOf is the spread of a configuration's repetitions: the
// interquartile range over the median (the middle half of the runs; one
// stalled run out of ten does not move it), or with fewer than four runs
// the whole range over the median.
func spreadOf(xs []float64) float64 {
	if len(xs) < 2 {
		return 0
	}
	q1, q2, q3 := quartiles(xs)
	if q2 == 0 {
		return 0
	}
	if len(xs) < 4 {
		return (maxOf(xs) - minOf(xs)) / q2
	}
	return (q3 - q1) / q2
}

func minOf(xs []float64) float64 {
	m := math.Inf(1)
	for _, x := range xs {
		m = min(m, x)
	}
	return m
}

// stats are the medians of one configuration's runs.
type stats struct {
	rps, ratio, spread   float64
	p50, p99             time.Duration
	caddyCPU, redisCPU   float64 // µs per request
	helperCPU            float64 // µs per request: upstream, receiver, authsvc
	rpsRuns, baselineRPS []float64
	cpuRuns              []float64 // Caddy CPU/req of each run, µs
	cpuSpread            float64
	// cpuRatio: the median, over the repetitions, of this run's Caddy
	// CPU/req over that of its baseline run; cpuQ1, cpuQ3 its quartiles.
	cpuRatio, cpuQ1, cpuQ3 float64
	pairs                  int
}

// insideNoise: the baseline's CPU/req lies within the middle half of
// this configuration's paired ratios (or their range, with fewer than
// four runs), so the difference is not told apart from the noise.
func (x stats) insideNoise() bool { return x.pairs > 1 && x.cpuQ1 <= 1 && 1 <= x.cpuQ3 }

// verdict writes the CPU/req difference to the baseline and whether it
// lies inside the spread.
func (x stats) verdict() string {
	d := (x.cpuRatio - 1) * 100
	if x.pairs < 2 {
		return fmt.Sprintf("%+.1f%% (one pair: no spread to judge by)", d)
	}
	if x.insideNoise() {
		return fmt.Sprintf("%+.1f%%, inside noise", d)
	}
	return fmt.Sprintf("**%+.1f%%**, outside noise", d)
}

func summarize(runs, partners []*run, proc string) stats {
	var st stats
	var p50, p99, caddy, redis, helpers, ratios, cpuRatios []float64
	for i, r := range runs {
		st.rpsRuns = append(st.rpsRuns, r.res.rps)
		p50 = append(p50, float64(r.res.p50))
		p99 = append(p99, float64(r.res.p99))
		n := float64(r.res.requests)
		var h float64
		for name, sec := range r.cpu {
			if name != "caddy" && name != "redis" && name != "peer" && name != "twin" {
				h += sec
			}
		}
		caddy = append(caddy, r.cpu[proc]*1e6/n)
		redis = append(redis, r.cpu["redis"]*1e6/n)
		helpers = append(helpers, h*1e6/n)
		if partners != nil {
			b := partners[i]
			st.baselineRPS = append(st.baselineRPS, b.res.rps)
			ratios = append(ratios, r.res.rps/b.res.rps)
			if bc := cpuPerReq(b, "caddy"); bc > 0 {
				cpuRatios = append(cpuRatios, (r.cpu[proc]*1e6/n)/bc)
			}
		}
	}
	st.cpuRuns = caddy
	st.rps = median(st.rpsRuns)
	st.p50, st.p99 = time.Duration(median(p50)), time.Duration(median(p99))
	st.caddyCPU, st.redisCPU, st.helperCPU = median(caddy), median(redis), median(helpers)
	st.ratio, st.cpuRatio, st.cpuQ1, st.cpuQ3 = 1, 1, 1, 1
	if partners != nil {
		st.ratio = median(ratios)
		st.pairs = len(cpuRatios)
		st.cpuQ1, st.cpuRatio, st.cpuQ3 = quartiles(cpuRatios)
		if len(cpuRatios) < 4 {
			st.cpuQ1, st.cpuQ3 = minOf(cpuRatios), maxOf(cpuRatios)
		}
	}
	st.spread = spreadOf(st.rpsRuns)
	st.cpuSpread = spreadOf(caddy)
	return st
}

// overheadVsPeer: per round, a's Caddy CPU/req over its baseline run's,
// divided by peer's over peerBase's (the peer's own plain
// reverse_proxy); the median and quartiles of that over the rounds.
func overheadVsPeer(a, peer, peerBase *config) (med, q1, q3 float64, n int) {
	type pair struct{ r, b *run }
	byRound := func(c *config) map[int]pair {
		m := map[int]pair{}
		for i, r := range c.runs {
			if r.round >= 0 && i < len(c.partners) {
				m[r.round] = pair{r, c.partners[i]}
			}
		}
		return m
	}
	ar, pr, br := byRound(a), byRound(peer), byRound(peerBase)
	var xs []float64
	for round, x := range ar {
		p, ok1 := pr[round]
		b, ok2 := br[round]
		if !ok1 || !ok2 {
			continue
		}
		ab, pb := cpuPerReq(x.b, "caddy"), cpuPerReq(b.r, peerBase.proc)
		pc := cpuPerReq(p.r, peer.proc)
		if ab <= 0 || pb <= 0 || pc <= 0 {
			continue
		}
		xs = append(xs, (cpuPerReq(x.r, a.proc)/ab)/(pc/pb))
	}
	return medianQuartiles(xs)
}

// peerOverhead writes the peer's CPU/req over its own baseline's (P0),
// paired by round, and whether that lies inside the noise.
func peerOverhead(peer, base *config) string {
	med, q1, q3, n := pairedCPU(peer, base)
	if n == 0 {
		return "–"
	}
	if n > 1 && q1 <= 1 && 1 <= q3 {
		return fmt.Sprintf("%+.1f%%, inside noise", (med-1)*100)
	}
	return fmt.Sprintf("%+.1f%%, outside noise", (med-1)*100)
}

// medianQuartiles returns the median and quartiles of xs (with fewer
// than four, its least and greatest instead of the quartiles) and how
// many there are; zeros for none.
func medianQuartiles(xs []float64) (med, q1, q3 float64, n int) {
	if len(xs) == 0 {
		return 0, 0, 0, 0
	}
	q1, med, q3 = quartiles(xs)
	if len(xs) < 4 {
		q1, q3 = minOf(xs), maxOf(xs)
	}
	return med, q1, q3, len(xs)
}

// pairedCPU compares a and b run by run within the same rounds: the
// median and quartiles of a's Caddy CPU/req over b's.
func pairedCPU(a, b *config) (med, q1, q3 float64, n int) {
	byRound := map[int]*run{}
	for _, r := range b.runs {
		if r.round >= 0 {
			byRound[r.round] = r
		}
	}
	var xs []float64
	for _, r := range a.runs {
		if o := byRound[r.round]; o != nil && r.round >= 0 {
			if oc := cpuPerReq(o, b.proc); oc > 0 {
				xs = append(xs, cpuPerReq(r, a.proc)/oc)
			}
		}
	}
	return medianQuartiles(xs)
}

func ms(d time.Duration) string {
	switch {
	case d == 0:
		return "–"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/1e3)
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
}

// thousands writes 12345.6 as "12,346".
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func (s *suite) writeReport() error {
	o := s.opts
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	all := append([]*config{s.baseline}, s.configs...)
	st := map[string]stats{}
	var baseRuns []*run
	seen := map[*run]bool{}
	for _, c := range s.configs {
		for _, b := range c.partners {
			if !seen[b] {
				seen[b] = true
				baseRuns = append(baseRuns, b)
			}
		}
	}
	st["1"] = summarize(baseRuns, nil, "caddy")
	byKey := map[string]*config{}
	for _, c := range s.configs {
		byKey[c.key] = c
		if c.err == nil && len(c.runs) > 0 {
			st[c.key] = summarize(c.runs, c.partners, c.proc)
		}
	}
	ok := func(keys ...string) bool {
		for _, k := range keys {
			if _, found := st[k]; !found {
				return false
			}
		}
		return true
	}

	w("# Benchmarks\n\n")
	w("Written by `bench/run.sh` ([bench/README.md](../bench/README.md) explains the suite).\n")
	w("Run it again rather than editing this file; the numbers only mean something\n")
	w("next to the machine and the commit they came from. The Go benchmarks of the\n")
	w("hot paths, and what each optimisation changed, are in [TUNING.md](TUNING.md).\n\n")
	if o.quick {
		w("> **A `--quick` run** (one short repetition per configuration): it shows that\n")
		w("> every configuration works; its numbers are indicative only.\n\n")
	}

	w("## The run\n\n")
	w("| | |\n|---|---|\n")
	w("| date | %s |\n", s.started.Format("2006-01-02 15:04 UTC"))
	w("| command | `%s` |\n", o.command)
	w("| CPU | %s, %d cores |\n", s.machine.cpu, s.machine.cores)
	w("| memory | %s |\n", s.machine.memory)
	w("| system | %s, %s |\n", s.machine.osName, s.machine.kernel)
	w("| Go | %s (the one that built Caddy) |\n", s.machine.goVersion)
	w("| Caddy | %s with caddy-stepup at %s (%s) |\n", s.machine.caddy, s.machine.commit, s.machine.binary)
	w("| Redis | %s (`--save \"\" --appendonly no`) |\n", s.machine.redis)
	warmup := fmt.Sprintf("%s warm-up each", o.warmup)
	if o.warmup == 0 {
		warmup = "no warm-up"
	}
	w("| wrk | %s: `-t1 -c%d`, %d × %s per configuration, each repetition right after one of the baseline; %s |\n",
		s.machine.wrk, o.conns, o.reps, o.duration, warmup)
	w("| load average (1, 5, 15 min) at the start, at the end | %s; %s |\n", s.machine.load, s.loadEnd)
	var foreign, steal []float64
	for _, c := range s.configs {
		for i, r := range c.runs {
			foreign = append(foreign, r.foreign, c.partners[i].foreign)
			steal = append(steal, r.steal, c.partners[i].steal)
		}
	}
	if len(foreign) > 0 {
		w("| CPU used by other processes during the measured runs | median %.2f cores, max %.2f |\n", median(foreign), maxOf(foreign))
		w("| CPU stolen by the hypervisor during the measured runs | median %.2f cores, max %.2f |\n", median(steal), maxOf(steal))
	}
	w("\n")
	w("Everything ran on this one machine over 127.0.0.1: wrk, Caddy, Redis and the\n")
	w("helpers (upstream, webhook receiver, auth service) share its %d cores.\n\n", s.machine.cores)

	w("## Results\n\n")
	if s.peer == nil {
		note := s.peerNote
		if note == "" {
			note = "not part of this run (`--quick` without a cached peer build)"
		}
		w("**The peer row (P), caddy-security's `authorize`, was not measured:** %s.\n\n", note)
	}
	w("| # | configuration | request | req/s (median) | spread | p50 | p99 | ratio to (1) | **Caddy CPU/req** | spread | vs (1) | Redis CPU/req | helpers CPU/req |\n")
	w("|---|---|---|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|\n")
	for _, c := range all {
		x, found := st[c.key]
		if !found {
			reason := "not run"
			if c.err != nil {
				reason = "FAILED: " + strings.ReplaceAll(firstLine(c.err.Error()), "|", "/")
			}
			w("| %s | %s | %s | %s | | | | | | | | | |\n", c.key, c.name, c.target, reason)
			continue
		}
		spread, cpuSpread, vs := "–", "–", "–"
		if len(x.rpsRuns) > 1 {
			spread = fmt.Sprintf("%.0f%%", x.spread*100)
			cpuSpread = fmt.Sprintf("%.1f%%", x.cpuSpread*100)
		}
		if c != s.baseline && len(x.rpsRuns) > 0 {
			vs = x.verdict()
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %.2f | **%.0f µs** | %s | %s | %.0f µs | %.0f µs |\n", c.key, c.name, c.target,
			thousands(x.rps), spread, ms(x.p50), ms(x.p99), x.ratio, x.caddyCPU, cpuSpread, vs, x.redisCPU, x.helperCPU)
	}
	w("\n")
	w("- **req/s, p50, p99**: medians over the repetitions of wrk's Requests/sec and\n")
	w("  its 50th and 99th latency percentiles (`--latency`).\n")
	w("- **ratio to (1)**: the median, over the repetitions, of this run's req/s\n")
	w("  divided by the baseline run it is paired with. Row (1) shows the median of\n")
	w("  all baseline runs.\n")
	w("- **CPU/req**: CPU time (user + system, from /proc/PID/stat) each process used\n")
	w("  during the run, divided by the requests wrk completed; median over the\n")
	w("  repetitions. For (P) *Caddy* is the peer's own Caddy process. *Helpers* are\n")
	w("  the upstream, the webhook receiver and the auth service. wrk's own CPU is\n")
	w("  not counted. CPU/req is steadier than req/s on a shared machine: a\n")
	w("  neighbour that takes a core lowers req/s, much less the CPU a request costs.\n")
	w("- **spread**: the interquartile range of the repetitions over their median\n")
	w("  (the middle half of the runs; with fewer than four runs, the whole range),\n")
	w("  for req/s and for Caddy CPU/req. The range of every run is in\n")
	w("  [Every run](#every-run).\n")
	w("- **vs (1)**: the median, over the repetitions, of this run's Caddy CPU/req\n")
	w("  over its paired baseline run's, as a difference; *inside noise* when 1 lies\n")
	w("  between the first and third quartiles of those ratios (with fewer than\n")
	w("  four runs: between their lowest and highest), that is when the difference\n")
	w("  is not told apart from the spread of the pairs.\n")
	w("- **(P0) and (P)** run in the peer's own Caddy process: their *vs (1)* compares\n")
	w("  with the main Caddy's baseline, another process; the targets also compare\n")
	w("  each plugin's overhead over plain `reverse_proxy` in its own process ((3)\n")
	w("  over (1), (P) over (P0)).\n")
	w("- **(S0) and (S)** run in the twin: a second Caddy of the plugin's binary\n")
	w("  shaped as the peer's (the same two kinds of site and nothing else: no\n")
	w("  other stepup handlers, their queues and caches), so that (S) and (P) are\n")
	w("  compared in absolute CPU/req in processes alike. (S) is (3): the same\n")
	w("  20 policies, Redis store and grant.\n")
	w("- Rows (2), (3), (3b), (P0), (P), (S0), (S) and (4) are measured in rounds: each round runs\n")
	w("  the baseline once and then each of them once, in an order that rotates\n")
	w("  from round to round; each is paired with its round's baseline. The other\n")
	w("  rows run in (baseline, row) pairs.\n")
	w("- In (6a) every answer is the API's `401` with a new challenge, after its code\n")
	w("  was posted to the receiver; in (6b) every answer is a `200` with a grant; in\n")
	w("  (7) every answer is a `429`. The runner checks the status of every answer\n")
	w("  and the receiver's count of codes, and fails a run that answered otherwise.\n\n")

	w("## Targets\n\n")
	w("The performance targets (issue 18), each measured in this one run.\n\n")
	w("| target | measured | holds |\n|---|---|---|\n")
	target := func(name string, have bool, measured string, holds bool) {
		if !have {
			w("| %s | not measured (a configuration failed or was not run) | **no** |\n", name)
			return
		}
		w("| %s | %s | %s |\n", name, measured, yes(holds))
	}
	for _, k := range []string{"3", "3b"} {
		name := fmt.Sprintf("(%s) granted route: Caddy CPU/req within 3%% of (1)", k)
		if k == "3b" {
			name = fmt.Sprintf("(3b) granted route, %s users: Caddy CPU/req within 3%% of (1)", thousands(float64(o.users)))
		}
		x := st[k]
		target(name, ok(k), fmt.Sprintf("%.0f µs vs %.0f µs: %s", x.caddyCPU, st["1"].caddyCPU, x.verdict()),
			x.cpuRatio <= 1.03)
		if s.peer == nil || !ok(k, "P") {
			w("| (%s) no more Caddy CPU/req than the peer (P) | not measured: %s | **no** |\n", k, strings.TrimSuffix(firstNonEmpty(s.peerNote, "the peer row failed"), "."))
			continue
		}
		med, q1, q3, n := pairedCPU(byKey[k], byKey["P"])
		inside := n > 1 && q1 <= 1 && 1 <= q3
		how := fmt.Sprintf("%.0f µs vs %.0f µs (two processes); paired by round (%d): %+.1f%%", x.caddyCPU, st["P"].caddyCPU, n, (med-1)*100)
		if inside {
			how += ", inside noise"
		}
		target(fmt.Sprintf("(%s) no more Caddy CPU/req than the peer (P)", k), true, how, med <= 1 || inside)
		if ok("P0") {
			med, q1, q3, n := overheadVsPeer(byKey[k], byKey["P"], byKey["P0"])
			inside := n > 1 && q1 <= 1 && 1 <= q3
			how := fmt.Sprintf("(%s) over (1): %s; (P) over (P0): %s; the ratio of the two, paired by round (%d): %+.1f%%",
				k, x.verdict(), peerOverhead(byKey["P"], byKey["P0"]), n, (med-1)*100)
			if inside {
				how += ", inside noise"
			}
			target(fmt.Sprintf("(%s) no more overhead over plain `reverse_proxy` than the peer's, each in its own process", k), true, how, med <= 1 || inside)
		}
	}
	if s.twin != nil && ok("S", "P") {
		// The same comparison in processes alike: the twin against the
		// peer, absolute, and each over its own plain reverse_proxy.
		med, q1, q3, n := pairedCPU(byKey["S"], byKey["P"])
		inside := n > 1 && q1 <= 1 && 1 <= q3
		how := fmt.Sprintf("%.0f µs vs %.0f µs; paired by round (%d): %+.1f%%", st["S"].caddyCPU, st["P"].caddyCPU, n, (med-1)*100)
		if inside {
			how += ", inside noise"
		}
		target("(S) the granted route, in a Caddy shaped as the peer's: no more Caddy CPU/req than the peer (P)", true, how, med <= 1 || inside)
		if ok("S0", "P0") {
			med, q1, q3, n := pairedCPU(byKey["S0"], byKey["P0"])
			target("(S0) check, not a target: the twin's plain `reverse_proxy` costs what the peer's (P0) does (the processes alike)", true,
				fmt.Sprintf("%.0f µs vs %.0f µs; paired by round (%d): %+.1f%%", st["S0"].caddyCPU, st["P0"].caddyCPU, n, (med-1)*100),
				n > 1 && q1 <= 1 && 1 <= q3)
			med, q1, q3, n = pairedCPU(byKey["S"], byKey["S0"])
			inside := n > 1 && q1 <= 1 && 1 <= q3
			how := fmt.Sprintf("(S) over (S0): %+.1f%% (paired by round, %d)", (med-1)*100, n)
			if inside {
				how += ", inside noise"
			}
			how += "; (P) over (P0): " + peerOverhead(byKey["P"], byKey["P0"])
			target("(S) granted route within 3% of plain `reverse_proxy` in the twin (S0)", true, how, med <= 1.03 || inside)
		}
	}
	if ok("2") {
		x := st["2"]
		target("(2) unprotected route: within noise of (1)", true,
			fmt.Sprintf("%.0f µs vs %.0f µs: %s", x.caddyCPU, st["1"].caddyCPU, x.verdict()), x.insideNoise() || x.cpuRatio <= 1)
	} else {
		target("(2) unprotected route: within noise of (1)", false, "", false)
	}
	if s.unmatchedAllocs >= 0 {
		target("(2) unprotected route: 0 allocations in stepup", true,
			fmt.Sprintf("%.0f allocs/op (`BenchmarkUnmatched`, %s)", s.unmatchedAllocs, s.unmatchedNote), s.unmatchedAllocs == 0)
	} else {
		w("| (2) unprotected route: 0 allocations in stepup | not measured: %s | – |\n", s.unmatchedNote)
	}
	target("(6a) challenge creation ≥ 3,500/s", ok("6a"),
		fmt.Sprintf("%s/s", thousands(st["6a"].rps)), st["6a"].rps >= 3500)
	target("(6b) code verification ≥ 7,000/s", ok("6b"),
		fmt.Sprintf("%s/s", thousands(st["6b"].rps)), st["6b"].rps >= 7000)
	if ok("6a", "7") {
		rej, cre := st["7"].caddyCPU+st["7"].redisCPU, st["6a"].caddyCPU+st["6a"].redisCPU
		target("(7) a rate-limited refusal costs under a third of a challenge (6a)", true,
			fmt.Sprintf("%.0f µs vs %.0f µs of Caddy + Redis CPU per request (%.2f×); %s/s vs %s/s",
				rej, cre, rej/cre, thousands(st["7"].rps), thousands(st["6a"].rps)), rej < cre/3)
	} else {
		target("(7) a rate-limited refusal costs under a third of a challenge (6a)", false, "", false)
	}
	var keySpreads []string
	spreadOK := true
	// The baseline's runs of the rounds (those the key rows are compared
	// with), not of the whole run.
	var roundBase []*run
	seenRound := map[*run]bool{}
	for _, c := range s.configs {
		if !c.group {
			continue
		}
		for _, b := range c.partners {
			if !seenRound[b] {
				seenRound[b] = true
				roundBase = append(roundBase, b)
			}
		}
	}
	for _, k := range []string{"1", "2", "3", "3b", "P0", "P", "S0", "S"} {
		x, found := st[k]
		if k == "1" && len(roundBase) > 0 {
			x, found = summarize(roundBase, nil, "caddy"), true
		}
		if found && len(x.cpuRuns) > 1 {
			keySpreads = append(keySpreads, fmt.Sprintf("(%s) %.1f%%", k, x.cpuSpread*100))
			spreadOK = spreadOK && x.cpuSpread < 0.10
		}
	}
	target("spread of the key rows' Caddy CPU/req < 10% ((1): its runs in the rounds)", len(keySpreads) > 0, strings.Join(keySpreads, ", "), spreadOK)
	if ok("3", "5") {
		r := st["3"].ratio / st["5"].ratio
		target("(3) ≥ 1.5× (5) forward_auth (issue 9)", true,
			fmt.Sprintf("%.2f× (%.2f / %.2f of the baseline)", r, st["3"].ratio, st["5"].ratio), r >= 1.5)
	}
	if m := s.memory; m != nil {
		per := m.hashMean + m.ptrMean
		target("Redis memory per pending challenge (no stash) < 1 KiB (issue 9)", true,
			fmt.Sprintf("%.0f bytes (hash %.0f + pending pointer %.0f)", per, m.hashMean, m.ptrMean), per < 1024)
	}
	w("\n")

	s.writeScale(w)

	w("## Redis memory per pending challenge\n\n")
	if m := s.memory; m != nil {
		w("%d challenges made through the API (a `GET`, so no stashed request), each\n", m.n)
		w("for its own user, with the code sent; then `MEMORY USAGE key SAMPLES 0` on\n")
		w("their keys.\n\n")
		w("| what | bytes |\n|---|--:|\n")
		w("| challenge hash `bench:{ID}` (mean of %d; min %d, max %d) | %.0f |\n", m.sampled, m.hashMin, m.hashMax, m.hashMean)
		w("| pending pointer `bench:p:{KEY}` (mean of %d) | %.0f |\n", m.pointers, m.ptrMean)
		w("| **per pending challenge** | **%.0f** |\n", m.hashMean+m.ptrMean)
		w("| growth of `used_memory` per challenge (cross-check; includes Redis's key and expiry tables) | %.0f |\n\n", m.deltaPer)
		w("The hash has %d fields, encoding `%s`, and a TTL (%s left when measured).\n\n",
			m.fields, m.encoding, m.ttl.Round(time.Second))
	} else {
		w("Not measured: the measurement failed (see the run's output).\n\n")
	}

	w("## Where the time goes\n\n")
	w("CPU profiles of Caddy from its admin endpoint (`/debug/pprof/profile?seconds=%d`)\n", int(o.profile/time.Second))
	w("while wrk drove the configuration (same settings as above). Three views of\n")
	w("each: flat time by area (every function's own time, summed by where it\n")
	w("lives), the plugin's functions by cumulative time (what a request spends\n")
	w("in and below them), and `go tool pprof -top -nodecount=25`.\n\n")
	if len(s.profiles) == 0 {
		w("No profile was taken (the configurations failed).\n\n")
	}
	for _, p := range s.profiles {
		w("### (%s) %s\n\n", p.key, p.name)
		w("%s req/s while profiled.\n\n", thousands(p.rps))
		w("| area | flat CPU |\n|---|--:|\n")
		for _, a := range p.areas {
			w("| %s | %.1f%% |\n", a.area, a.percent)
		}
		w("\n**stepup itself: %.1f%% of Caddy's CPU samples** (its handler's cumulative share, minus the\n", p.own)
		w("handlers after it; the garbage collection of what it allocates is not in it).\n")
		w("The plugin's functions by cumulative share of the samples:\n\n```\n%s\n```\n\n", p.ours)
		w("<details><summary><code>go tool pprof -top -nodecount=25</code></summary>\n\n```\n%s\n```\n\n</details>\n\n",
			stripPaths(p.top))
	}

	w("## How to read this, and the noise\n\n")
	w("- **Compare within a run, not across runs.** The ratios come from pairs of\n")
	w("  runs taken seconds apart, so slow drifts of the machine cancel out; the\n")
	w("  absolute req/s of two runs on different days do not compare.\n")
	w("- **Everything shares %d cores.** wrk, Caddy, Redis and the helpers compete\n", s.machine.cores)
	w("  for them, so the baseline is a loaded machine, not Caddy's ceiling. A\n")
	w("  configuration that needs more processes (forward_auth: an auth service and\n")
	w("  Redis) pays for their CPU too, as it would on one host. The CPU/req columns\n")
	w("  say where the CPU went.\n")
	w("- **Noise.** This is a shared virtual machine. The spread column shows how far\n")
	w("  repetitions of the same configuration disagreed; the baseline's spread\n")
	if b, found := st["1"]; found {
		w("  over all %d of its runs was %.0f%%. ", len(b.rpsRuns), b.spread*100)
	} else {
		w("  is the floor. ")
	}
	w("A difference between\n")
	w("  two rows smaller than their spreads is not a difference. Targets close to\n")
	w("  their threshold need several runs before anyone acts on them.\n")
	w("  The rows \"CPU used by other processes\" and \"stolen\" in the first table,\n")
	w("  and the last column of the table of every run, say how busy the machine was\n")
	w("  with things other than this suite while it measured.\n")
	w("- **(3) and (3b).** A grant check asks Redis about revocations at most once\n")
	w("  a second per instance: for the time of the latest revocation of anyone, and\n")
	w("  only a grant issued before that time looks up its own user's (cached for a\n")
	w("  second). In (3) one user sends every request; in (3b) there are more users\n")
	w("  than requests per second, as on a busy site where each user clicks now and\n")
	w("  then. No one is revoked during the runs, so both are the in-process check.\n")
	w("- **(P), the peer**, is caddy-security's `authorize` (v1.1.64) on the same\n")
	w("  Caddy version, in its own process, in front of the same upstream: it checks\n")
	w("  an HS256 JWT cookie (signature, `exp`, the role its policy allows) and keeps\n")
	w("  no state, so a token stays valid until its `exp` whatever happens. stepup's\n")
	w("  (3) and (3b) check a grant bound to user, session, policy and site, and\n")
	w("  whether it was revoked (Redis, cached at most a second). Its Caddy CPU/req\n")
	w("  is its own process's; the request carries the same identity headers.\n")
	w("- **Latency** is with %d connections kept busy: p50 is mostly queueing\n", o.conns)
	w("  (connections / throughput), p99 shows stalls (GC, scheduling, Redis).\n")
	w("- **(6a) and (7)** have limits switched off and spent respectively: (6a)\n")
	w("  measures the work of a challenge (Redis scripts, code, HMAC, a signed\n")
	w("  webhook to a receiver on the same host), not an SMS provider's latency.\n")
	w("- **(6b)** is driven by wrk too: before each run the runner makes more\n")
	w("  challenges than the run can verify (through the API, the receiver keeping\n")
	w("  the codes) and wrk posts each code once, as its user.\n\n")

	w("## Every run\n\n")
	w("Each repetition: req/s of this configuration / of its baseline run; then\n")
	w("Caddy CPU per request of each; the last column is the CPU that other\n")
	w("processes of the machine used during these runs.\n\n")
	w("| # |")
	for i := range o.reps {
		w(" %d |", i+1)
	}
	w(" other processes, cores (median, max) |\n|---|%s--:|\n", strings.Repeat("--:|", o.reps))
	for _, c := range s.configs {
		w("| %s |", c.key)
		var other []float64
		for i := range o.reps {
			if i < len(c.runs) {
				w(" %s / %s; %.0f / %.0f µs |", thousands(c.runs[i].res.rps), thousands(c.partners[i].res.rps),
					cpuPerReq(c.runs[i], c.proc), cpuPerReq(c.partners[i], "caddy"))
				other = append(other, c.runs[i].foreign, c.partners[i].foreign)
			} else {
				w(" – |")
			}
		}
		if len(other) > 0 {
			w(" %.2f, %.2f |\n", median(other), maxOf(other))
		} else {
			w(" – |\n")
		}
	}
	w("\n")

	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(o.out, []byte(b.String()), 0o644)
}

// stripPaths removes the scratch directory from pprof's header lines.
func stripPaths(top string) string {
	var out []string
	for _, line := range strings.Split(top, "\n") {
		if v, ok := strings.CutPrefix(line, "File: "); ok {
			line = "File: " + filepath.Base(v)
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

func firstNonEmpty(xs ...string) string {
	for _, x := range xs {
		if x != "" {
			return x
		}
	}
	return ""
}
