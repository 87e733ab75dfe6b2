package caddystepup

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// mdLink finds the targets of Markdown links and images: [text](target).
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestDocsLinks keeps the documentation's own links true: every relative
// link of README.md, CHANGELOG.md and docs/*.md names a file of the
// repository, and every #anchor a heading of the file it points to (as
// GitHub makes anchors of headings).
func TestDocsLinks(t *testing.T) {
	files, _ := filepath.Glob("docs/*.md")
	files = append([]string{"README.md", "CHANGELOG.md"}, files...)
	anchors := map[string]map[string]bool{}
	anchorsOf := func(path string) map[string]bool {
		if a, ok := anchors[path]; ok {
			return a
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		a := headingAnchors(string(b))
		anchors[path] = a
		return a
	}
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inFence := false
		for i, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				inFence = !inFence
			}
			if inFence {
				continue
			}
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				path, anchor, _ := strings.Cut(target, "#")
				resolved := f
				if path != "" {
					resolved = filepath.Join(filepath.Dir(f), path)
					if _, err := os.Stat(resolved); err != nil {
						t.Errorf("%s:%d: link to %q: no such file", f, i+1, target)
						continue
					}
				}
				checked++
				if anchor == "" || !strings.HasSuffix(resolved, ".md") {
					continue
				}
				if !anchorsOf(resolved)[anchor] {
					t.Errorf("%s:%d: link to %q: %s has no heading with that anchor", f, i+1, target, resolved)
				}
			}
		}
	}
	if checked < 50 {
		t.Fatalf("only %d links checked: is the link pattern still right?", checked)
	}
}

// headingAnchors returns the anchors GitHub gives the headings of a
// Markdown text: lower-cased, punctuation other than '-' and '_'
// dropped, spaces as '-', "-1", "-2" ... for repeats.
func headingAnchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	inFence := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(h) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
				b.WriteRune(r)
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			out[a+"-"+itoa(n)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

func TestHeadingAnchors(t *testing.T) {
	got := headingAnchors("# A\n## sender twilio_voice\n### 1. Fewer round trips; `revocation`\n```\n# not a heading\n```\n## A\n")
	for _, want := range []string{"a", "sender-twilio_voice", "1-fewer-round-trips-revocation", "a-1"} {
		if !got[want] {
			t.Errorf("no anchor %q in %v", want, got)
		}
	}
	if got["not-a-heading"] {
		t.Error("a line in a code fence made an anchor")
	}
}
