package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// measureUnmatchedAllocs runs the Go benchmark of a request no policy
// matches (caddymodule.BenchmarkUnmatched, the handler as Caddy calls
// it) and returns its allocs/op, or -1 and why not.
func (s *suite) measureUnmatchedAllocs(ctx context.Context) (float64, string) {
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
	rows []scaleRow
	note string
}

type scaleRow struct {
	what, size, measured string
}

func (s *suite) measureScale(ctx context.Context) *scaleResult {
	return &scaleResult{note: "not measured yet"}
}

func (s *suite) writeScale(w func(string, ...any)) {
	if s.scale == nil {
		return
	}
	w("## Costs as work grows\n\n")
	if s.scale.note != "" {
		w("%s\n\n", s.scale.note)
	}
	if len(s.scale.rows) > 0 {
		w("| what | size | measured |\n|---|---|---|\n")
		for _, r := range s.scale.rows {
			w("| %s | %s | %s |\n", r.what, r.size, r.measured)
		}
		w("\n")
	}
}

var _ = filepath.Join
var _ = strings.Join
