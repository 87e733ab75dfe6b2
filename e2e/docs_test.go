package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// A ```caddyfile block in the docs is a whole Caddyfile unless the line
// before its fence is one of these HTML comments (invisible on GitHub):
//
//	<!-- fragment -->          not checked: a syntax summary, or a block
//	                           with "..." in it
//	<!-- fragment: stepup -->  lines of a stepup block: checked inside one
//	                           (with an identity and a sender log added
//	                           when the fragment has none)
//	<!-- fragment: site -->    lines of a site block: checked inside one
//
// Every checked block must adapt with the built Caddy, and `caddy fmt`
// must leave it as it is written.
var fragmentMarker = regexp.MustCompile(`^<!-- fragment(?:: (stepup|site))? -->$`)

// docBlock is one ```caddyfile block.
type docBlock struct {
	file string
	line int    // of the opening fence
	kind string // "", "fragment", "stepup", "site"
	text string
}

// docBlocks returns the caddyfile blocks of README.md and docs/*.md,
// and Caddyfile.example as a block of its own.
func docBlocks(t *testing.T) []docBlock {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	files = append([]string{filepath.Join(repoRoot, "README.md")}, files...)
	var out []docBlock
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		prev := ""
		for i := 0; i < len(lines); i++ {
			line := lines[i]
			if strings.TrimSpace(line) != "```caddyfile" {
				if strings.TrimSpace(line) != "" {
					prev = strings.TrimSpace(line)
				}
				continue
			}
			indent := line[:strings.Index(line, "```")]
			blk := docBlock{file: filepath.Base(f), line: i + 1}
			if m := fragmentMarker.FindStringSubmatch(prev); m != nil {
				blk.kind = "fragment"
				if m[1] != "" {
					blk.kind = m[1]
				}
			}
			var body []string
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
				body = append(body, strings.TrimPrefix(lines[i], indent))
			}
			blk.text = strings.Join(body, "\n") + "\n"
			out = append(out, blk)
			prev = ""
		}
	}
	example, err := os.ReadFile(filepath.Join(repoRoot, "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	return append(out, docBlock{file: "Caddyfile.example", line: 1, text: string(example)})
}

// wrapBlock makes a whole Caddyfile of a fragment.
func wrapBlock(b docBlock) string {
	indent := func(s, by string) string {
		var out []string
		for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
			if l != "" {
				l = by + l
			}
			out = append(out, l)
		}
		return strings.Join(out, "\n")
	}
	switch b.kind {
	case "site":
		return "http://localhost:1 {\n" + indent(b.text, "\t") + "\n}\n"
	case "stepup":
		body := b.text
		if !regexp.MustCompile(`(?m)^\s*identity `).MatchString(body) {
			body += "identity header {\n\tuser X-User\n\tphone X-Phone\n}\n"
		}
		if !regexp.MustCompile(`(?m)^\s*sender `).MatchString(body) {
			body += "sender log\n"
		}
		return "http://localhost:1 {\n\tstepup {\n" + indent(body, "\t\t") + "\n\t}\n}\n"
	}
	return b.text
}

func TestDocsCaddyfiles(t *testing.T) {
	blocks := docBlocks(t)
	if len(blocks) < 30 {
		t.Fatalf("found %d caddyfile blocks; the docs have more", len(blocks))
	}
	dir := t.TempDir()
	checked := 0
	for i, b := range blocks {
		if b.kind == "fragment" {
			continue
		}
		checked++
		where := fmt.Sprintf("%s:%d", b.file, b.line)
		path := filepath.Join(dir, fmt.Sprintf("block%d.caddyfile", i))
		if err := os.WriteFile(path, []byte(wrapBlock(b)), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(caddyBin, "adapt", "--config", path, "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), "HOME="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s (%s): caddy adapt: %v\n%s\n--- block:\n%s", where, kindName(b.kind), err, lastLine(out), wrapBlock(b))
		}
		raw := filepath.Join(dir, fmt.Sprintf("raw%d.caddyfile", i))
		if err := os.WriteFile(raw, []byte(b.text), 0o644); err != nil {
			t.Fatal(err)
		}
		// caddy fmt prints the formatted file, and exits 1 when it
		// differs from the input.
		out, err := exec.Command(caddyBin, "fmt", raw).Output()
		if err != nil && len(out) == 0 {
			t.Errorf("%s: caddy fmt: %v", where, err)
			continue
		}
		if !bytes.Equal(bytes.TrimRight(out, "\n"), []byte(strings.TrimRight(b.text, "\n"))) {
			t.Errorf("%s: caddy fmt would change the block to:\n%s\n--- written:\n%s", where, out, b.text)
		}
	}
	t.Logf("%d caddyfile blocks, %d checked, %d marked as unchecked fragments", len(blocks), checked, len(blocks)-checked)
}

func kindName(k string) string {
	if k == "" {
		return "whole Caddyfile"
	}
	return "fragment: " + k
}

func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// The syntax summaries of senders and identity sources (unchecked
// fragments such as "sender twilio {\n\tfrom <number>\n}") list options:
// each must be one the parser knows. An option alone, without its
// values, may be refused for its arguments, never as unknown.
func TestDocsModuleOptionsKnown(t *testing.T) {
	head := regexp.MustCompile(`^(sender|identity) ([a-z0-9]+)\b[^{]*\{$`)
	dir := t.TempDir()
	n := 0
	for i, b := range docBlocks(t) {
		lines := strings.Split(strings.TrimRight(b.text, "\n"), "\n")
		m := head.FindStringSubmatch(lines[0])
		if b.kind != "fragment" || m == nil {
			continue
		}
		opener := regexp.MustCompile(`<[^>]*>`).ReplaceAllString(lines[0], "x")
		for _, l := range lines[1:] {
			if !strings.HasPrefix(l, "\t") || strings.HasPrefix(l, "\t\t") {
				continue
			}
			f := strings.Fields(strings.Trim(strings.TrimSpace(l), "[]"))
			if len(f) == 0 || f[0] == "..." || strings.HasPrefix(f[0], "#") || f[0] == "}" {
				continue
			}
			opt := strings.Trim(f[0], "[]")
			body := opener + "\n\t" + opt + "\n}\n"
			if m[1] == "sender" {
				body += "identity header {\n\tuser U\n\tphone P\n}\n"
			} else {
				body += "sender log\n"
			}
			cfg := "http://localhost:1 {\n\tstepup {\n" + body + "\t}\n}\n"
			path := filepath.Join(dir, fmt.Sprintf("opt%d-%s.caddyfile", i, opt))
			if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			out, _ := exec.Command(caddyBin, "adapt", "--config", path, "--adapter", "caddyfile").CombinedOutput()
			if bytes.Contains(out, []byte("unrecognized")) || bytes.Contains(out, []byte("unknown option")) {
				t.Errorf("%s:%d: %s %s documents option %q, which the parser does not know: %s", b.file, b.line, m[1], m[2], opt, lastLine(out))
			}
			n++
		}
	}
	if n < 40 {
		t.Fatalf("checked %d documented options; the syntax summaries have more", n)
	}
	t.Logf("%d documented options of senders and identity sources checked", n)
}

// fencedAfter returns the body of the first fenced block after the line
// marker in a doc.
func fencedAfter(t *testing.T, doc, marker string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, doc))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), marker+"\n```")
	if !ok {
		t.Fatalf("%s has no block after %q", doc, marker)
	}
	_, rest, _ = strings.Cut(rest, "\n")
	body, _, ok := strings.Cut(rest, "\n```")
	if !ok {
		t.Fatalf("%s: unclosed block after %q", doc, marker)
	}
	return body + "\n"
}

// The documented systemd unit is one systemd accepts, with the built
// binary in place of /usr/bin/caddy.
func TestDocsSystemdUnit(t *testing.T) {
	unit := fencedAfter(t, "docs/DEPLOY.md", "<!-- systemd unit -->")
	if strings.Contains(unit, "--environ") {
		t.Error("the unit runs caddy with --environ, which logs the secrets")
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze (Debian's systemd package) is needed to check the unit")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "caddy.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/bin/caddy", caddyBin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// The container recipes build the Caddy version this module is built
// against, on Caddy's builder image.
func TestDocsContainerRecipe(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/caddyserver/caddy/v2").Output()
	if err != nil {
		t.Fatal(err)
	}
	caddyVersion := strings.TrimSpace(string(out)) // v2.11.9
	image := strings.TrimPrefix(caddyVersion, "v")
	recipe := fencedAfter(t, "docs/DEPLOY.md", "<!-- container recipe -->")
	for _, want := range []string{
		"FROM caddy:" + image + "-builder AS builder",
		"RUN xcaddy build " + caddyVersion + " \\",
		"--with github.com/caddy-stepup/caddy-stepup@",
		"FROM caddy:" + image + "\n",
		"COPY --from=builder /usr/bin/caddy /usr/bin/caddy",
	} {
		if !strings.Contains(recipe, want) {
			t.Errorf("the container recipe lacks %q:\n%s", want, recipe)
		}
	}
}
