package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// load is how one configuration is driven: wrk with one thread and a
// fixed number of connections.
type load struct {
	url     string
	headers []string // "Name: value"
	script  string   // path of a Lua script, or ""
	args    []string // the script's arguments
}

// wrkResult is what one wrk run reported.
type wrkResult struct {
	requests int
	elapsed  time.Duration // wrk's own run time
	rps      float64
	p50, p99 time.Duration
	non2xx   int         // "Non-2xx or 3xx responses" (runs without a script)
	statuses map[int]int // answers by status (runs with a script)
	sockErrs int         // connect, read, write and timeout errors
	errText  string      // the "Socket errors" line, if any
	cpu      float64     // seconds of CPU wrk itself used
	raw      string
}

// runWrk runs wrk for d with c connections.
func runWrk(ctx context.Context, l load, conns int, d time.Duration) (*wrkResult, error) {
	args := []string{"-t1", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(d/time.Second)) + "s", "--latency", "--timeout", "5s"}
	for _, h := range l.headers {
		args = append(args, "-H", h)
	}
	if l.script != "" {
		args = append(args, "-s", l.script)
	}
	args = append(args, l.url)
	if len(l.args) > 0 {
		args = append(args, "--")
		args = append(args, l.args...)
	}
	ctx, cancel := context.WithTimeout(ctx, d+60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "wrk", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("wrk %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	res, err := parseWrk(string(out))
	if err != nil {
		return nil, fmt.Errorf("wrk %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	res.cpu = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	return res, nil
}

var (
	reRequests = regexp.MustCompile(`(?m)^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m|h)`)
	reRPS      = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	reP50      = regexp.MustCompile(`(?m)^\s+50%\s+([0-9.]+)(us|ms|s|m|h)`)
	reP99      = regexp.MustCompile(`(?m)^\s+99%\s+([0-9.]+)(us|ms|s|m|h)`)
	reNon2xx   = regexp.MustCompile(`(?m)^\s*Non-2xx or 3xx responses: (\d+)`)
	reSocket   = regexp.MustCompile(`(?m)^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	reStatus   = regexp.MustCompile(`(?m)^status (\d+) (\d+)$`)
)

func parseWrk(out string) (*wrkResult, error) {
	r := &wrkResult{raw: out, statuses: map[int]int{}}
	m := reRequests.FindStringSubmatch(out)
	if m == nil {
		return nil, errors.New("no request count in the output")
	}
	r.requests, _ = strconv.Atoi(m[1])
	r.elapsed = wrkDuration(m[2], m[3])
	m = reRPS.FindStringSubmatch(out)
	if m == nil {
		return nil, errors.New("no Requests/sec in the output")
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	if m = reP50.FindStringSubmatch(out); m != nil {
		r.p50 = wrkDuration(m[1], m[2])
	}
	if m = reP99.FindStringSubmatch(out); m != nil {
		r.p99 = wrkDuration(m[1], m[2])
	}
	if m = reNon2xx.FindStringSubmatch(out); m != nil {
		r.non2xx, _ = strconv.Atoi(m[1])
	}
	if m = reSocket.FindStringSubmatch(out); m != nil {
		r.errText = strings.TrimSpace(m[0])
		for _, s := range m[1:] {
			n, _ := strconv.Atoi(s)
			r.sockErrs += n
		}
	}
	for _, m := range reStatus.FindAllStringSubmatch(out, -1) {
		code, _ := strconv.Atoi(m[1])
		n, _ := strconv.Atoi(m[2])
		r.statuses[code] += n
	}
	return r, nil
}

// wrkDuration reads wrk's "1.23ms" notation.
func wrkDuration(num, unit string) time.Duration {
	v, _ := strconv.ParseFloat(num, 64)
	scale := map[string]float64{"us": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}[unit]
	return time.Duration(v * scale)
}

// check tells what was wrong with a run whose every answer should have
// had status want, except for at most allow[status] answers of other
// statuses: other statuses, or (for scripted runs, which count statuses)
// answers that were not counted. Socket errors beyond 1% of
// the requests fail a run too; a few at the end of a run are wrk closing
// its connections.
func (r *wrkResult) check(want int, allow map[int]int, scripted bool, conns int) error {
	if r.requests == 0 {
		return errors.New("no request completed")
	}
	if r.sockErrs > r.requests/100 {
		return fmt.Errorf("%s for %d requests", r.errText, r.requests)
	}
	if !scripted {
		if want >= 200 && want < 400 && r.non2xx > 0 {
			return fmt.Errorf("%d of %d answers were not 2xx or 3xx", r.non2xx, r.requests)
		}
		return nil
	}
	var other []string
	allowed := 0
	for code, n := range r.statuses {
		if code != want && n > allow[code] {
			other = append(other, fmt.Sprintf("%d×%d", n, code))
		}
		if code != want {
			allowed += n
		}
	}
	if len(other) > 0 {
		return fmt.Errorf("answers other than %d: %s (of %d)", want, strings.Join(other, ", "), r.requests)
	}
	if r.statuses[want]+allowed+conns < r.requests {
		return fmt.Errorf("%d answers counted for %d requests", r.statuses[want], r.requests)
	}
	return nil
}
