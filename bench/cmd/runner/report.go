package main

import (
	"context"
	"fmt"
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

// stats are the medians of one configuration's runs.
type stats struct {
	rps, ratio, spread   float64
	p50, p99             time.Duration
	caddyCPU, redisCPU   float64 // µs per request
	helperCPU            float64 // µs per request: upstream, receiver, authsvc
	rpsRuns, baselineRPS []float64
}

func summarize(runs, partners []*run) stats {
	var st stats
	var p50, p99, caddy, redis, helpers, ratios []float64
	for i, r := range runs {
		st.rpsRuns = append(st.rpsRuns, r.res.rps)
		p50 = append(p50, float64(r.res.p50))
		p99 = append(p99, float64(r.res.p99))
		n := float64(r.res.requests)
		var h float64
		for name, sec := range r.cpu {
			if name != "caddy" && name != "redis" {
				h += sec
			}
		}
		caddy = append(caddy, r.cpu["caddy"]*1e6/n)
		redis = append(redis, r.cpu["redis"]*1e6/n)
		helpers = append(helpers, h*1e6/n)
		if partners != nil {
			st.baselineRPS = append(st.baselineRPS, partners[i].res.rps)
			ratios = append(ratios, r.res.rps/partners[i].res.rps)
		}
	}
	st.rps = median(st.rpsRuns)
	st.p50, st.p99 = time.Duration(median(p50)), time.Duration(median(p99))
	st.caddyCPU, st.redisCPU, st.helperCPU = median(caddy), median(redis), median(helpers)
	st.ratio = 1
	if partners != nil {
		st.ratio = median(ratios)
	}
	if len(st.rpsRuns) > 1 && st.rps > 0 {
		lo, hi := st.rpsRuns[0], st.rpsRuns[0]
		for _, v := range st.rpsRuns {
			lo, hi = min(lo, v), max(hi, v)
		}
		st.spread = (hi - lo) / st.rps
	}
	return st
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
	for _, c := range s.configs {
		baseRuns = append(baseRuns, c.partners...)
	}
	st["1"] = summarize(baseRuns, nil)
	for _, c := range s.configs {
		if c.err == nil && len(c.runs) > 0 {
			st[c.key] = summarize(c.runs, c.partners)
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
	w("| load average at the start | %s |\n", s.machine.load)
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
	w("| # | configuration | request | req/s (median) | p50 | p99 | ratio to (1) | spread | Caddy CPU/req | Redis CPU/req | helpers CPU/req |\n")
	w("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, c := range all {
		x, found := st[c.key]
		if !found {
			reason := "not run"
			if c.err != nil {
				reason = "FAILED: " + strings.ReplaceAll(firstLine(c.err.Error()), "|", "/")
			}
			w("| %s | %s | %s | %s | | | | | | | |\n", c.key, c.name, c.target, reason)
			continue
		}
		spread := "–"
		if len(x.rpsRuns) > 1 {
			spread = fmt.Sprintf("%.0f%%", x.spread*100)
		}
		w("| %s | %s | %s | %s | %s | %s | %.2f | %s | %.0f µs | %.0f µs | %.0f µs |\n", c.key, c.name, c.target,
			thousands(x.rps), ms(x.p50), ms(x.p99), x.ratio, spread, x.caddyCPU, x.redisCPU, x.helperCPU)
	}
	w("\n")
	w("- **req/s, p50, p99**: medians over the repetitions of wrk's Requests/sec and\n")
	w("  its 50th and 99th latency percentiles (`--latency`).\n")
	w("- **ratio to (1)**: the median, over the repetitions, of this run's req/s\n")
	w("  divided by the baseline run just before it. Row (1) shows the median of\n")
	w("  all baseline runs.\n")
	w("- **spread**: (highest − lowest) / median req/s of the repetitions.\n")
	w("- **CPU/req**: CPU time (user + system, from /proc) each process used during\n")
	w("  the run, divided by the requests wrk completed; median over the\n")
	w("  repetitions. *Helpers* are the upstream, the webhook receiver and the auth\n")
	w("  service. wrk's own CPU is not counted.\n")
	w("- In (6a) every answer is the API's `401` with a new challenge, after its code\n")
	w("  was posted to the receiver; in (6b) every answer is a `200` with a grant; in\n")
	w("  (7) every answer is a `429`. The runner checks the status of every answer\n")
	w("  and the receiver's count of codes, and fails a run that answered otherwise.\n\n")

	w("## Targets\n\n")
	w("The design's performance targets (issue 9), each measured in this one run.\n\n")
	w("| target | measured | holds |\n|---|---|---|\n")
	target := func(name string, have bool, measured string, holds bool) {
		if !have {
			w("| %s | not measured (a configuration failed) | **no** |\n", name)
			return
		}
		w("| %s | %s | %s |\n", name, measured, yes(holds))
	}
	target("(2) unprotected routes through stepup ≥ 0.97× (1)", ok("2"),
		fmt.Sprintf("%.2f×", st["2"].ratio), st["2"].ratio >= 0.97)
	target("(3) requests with a valid grant ≥ 0.90× (1)", ok("3"),
		fmt.Sprintf("%.2f×", st["3"].ratio), st["3"].ratio >= 0.90)
	if ok("3", "5") {
		r := st["3"].ratio / st["5"].ratio
		target("(3) ≥ 1.5× (5) forward_auth", true,
			fmt.Sprintf("%.2f× (%.2f / %.2f of the baseline)", r, st["3"].ratio, st["5"].ratio), r >= 1.5)
	} else {
		target("(3) ≥ 1.5× (5) forward_auth", false, "", false)
	}
	if ok("3b") {
		w("| (3b), for information: grants of many users (more users than requests per second) ≥ 0.90× (1) | %.2f× | %s |\n",
			st["3b"].ratio, yes(st["3b"].ratio >= 0.90))
	}
	target("(6) challenge creation ≥ 2,000/s", ok("6a"),
		fmt.Sprintf("%s/s", thousands(st["6a"].rps)), st["6a"].rps >= 2000)
	target("(6) code verification ≥ 5,000/s", ok("6b"),
		fmt.Sprintf("%s/s", thousands(st["6b"].rps)), st["6b"].rps >= 5000)
	if ok("6a", "7") {
		rej, cre := st["7"].caddyCPU+st["7"].redisCPU, st["6a"].caddyCPU+st["6a"].redisCPU
		target("(7) a rate-limited rejection costs less than a challenge (6)", true,
			fmt.Sprintf("%.0f µs vs %.0f µs of Caddy + Redis CPU per request; %s/s vs %s/s",
				rej, cre, thousands(st["7"].rps), thousands(st["6a"].rps)), rej < cre)
	} else {
		target("(7) a rate-limited rejection costs less than a challenge (6)", false, "", false)
	}
	if m := s.memory; m != nil {
		per := m.hashMean + m.ptrMean
		target("Redis memory per pending challenge (no stash) < 1 KiB", true,
			fmt.Sprintf("%.0f bytes (hash %.0f + pending pointer %.0f)", per, m.hashMean, m.ptrMean), per < 1024)
	} else {
		target("Redis memory per pending challenge (no stash) < 1 KiB", false, "", false)
	}
	w("\n")

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
	w("- **Latency** is with %d connections kept busy: p50 is mostly queueing\n", o.conns)
	w("  (connections / throughput), p99 shows stalls (GC, scheduling, Redis).\n")
	w("- **(6a) and (7)** have limits switched off and spent respectively: (6a)\n")
	w("  measures the work of a challenge (Redis scripts, code, HMAC, a signed\n")
	w("  webhook to a receiver on the same host), not an SMS provider's latency.\n")
	w("- **(6b)** is driven by wrk too: before each run the runner makes more\n")
	w("  challenges than the run can verify (through the API, the receiver keeping\n")
	w("  the codes) and wrk posts each code once, as its user.\n\n")

	w("## Every run\n\n")
	w("req/s of each repetition: this configuration / the baseline run just before it;\n")
	w("then the CPU that other processes of the machine used during these runs.\n\n")
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
				w(" %s / %s |", thousands(c.runs[i].res.rps), thousands(c.partners[i].res.rps))
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
