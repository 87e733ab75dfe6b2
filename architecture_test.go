package caddystepup

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const module = "github.com/caddy-stepup/caddy-stepup/"

// TestArchitecture keeps docs/ARCHITECTURE.md true: the import rules it
// states hold, and every Go name it mentions exists.
func TestArchitecture(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./stepup/...", "./sender/...").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], module)
		for _, imp := range f[1:] {
			if !strings.HasPrefix(imp, module) && !strings.HasPrefix(imp, "github.com/caddyserver/") {
				continue
			}
			dep := strings.TrimPrefix(imp, module)
			switch {
			case strings.HasPrefix(imp, "github.com/caddyserver/"):
				t.Errorf("%s imports Caddy (%s): the engine and the senders never do", pkg, imp)
			case strings.HasPrefix(pkg, "sender") && strings.HasPrefix(dep, "stepup"):
				t.Errorf("%s imports %s: sender never imports stepup", pkg, dep)
			case strings.HasPrefix(pkg, "stepup/") && dep == "stepup":
				t.Errorf("%s imports its parent stepup: the engine's tools never do", pkg)
			case strings.HasPrefix(dep, "caddymodule"):
				t.Errorf("%s imports the Caddy adapter", pkg)
			}
		}
	}

	doc, err := os.ReadFile("docs/ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	// `pkg.(*Type).name`, `pkg.Type.name` and `pkg.name`, where pkg is
	// one of ours.
	dirs := map[string]string{"stepup": "stepup", "caddymodule": "caddymodule", "sender": "sender",
		"identity": "stepup/identity", "page": "stepup/page", "store": "stepup/store", "fields": "stepup/fields"}
	names := regexp.MustCompile("`([a-z]+)\\.(?:\\(\\*([A-Za-z]+)\\)\\.|([A-Z][A-Za-z]+)\\.)?([A-Za-z][A-Za-z0-9]*)`").FindAllStringSubmatch(string(doc), -1)
	if len(names) < 20 {
		t.Fatalf("only %d Go names found in ARCHITECTURE.md", len(names))
	}
	sources := map[string]string{}
	for _, m := range names {
		dir, ok := dirs[m[1]]
		if !ok {
			continue
		}
		if _, ok := sources[dir]; !ok {
			files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
			var b strings.Builder
			for _, f := range files {
				if !strings.HasSuffix(f, "_test.go") {
					src, _ := os.ReadFile(f)
					b.Write(src)
				}
			}
			sources[dir] = b.String()
		}
		typ, name := m[2]+m[3], m[4]
		var decl string
		switch {
		case typ != "":
			decl = `(?m)^func \(\w+ \*?` + typ + `\) ` + name + `\(`
		default:
			decl = `(?m)^(func ` + name + `[\[(]|type ` + name + ` |\s*` + name + `\s*=|var ` + name + ` )`
		}
		if !regexp.MustCompile(decl).MatchString(sources[dir]) {
			t.Errorf("ARCHITECTURE.md names %s, which %s does not declare", m[0], dir)
		}
	}
}
