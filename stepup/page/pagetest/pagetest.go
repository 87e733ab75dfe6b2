// Package pagetest has what tests of the engine's pages share: a check of
// a page answer, and a custom template that keeps to the rules.
package pagetest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	xhtml "golang.org/x/net/html"

	"github.com/caddy-stepup/caddy-stepup/stepup/page/lint"
)

// htmlCheck checks that a page is well-formed enough for every browser
// and assistive technology: balanced elements, unique ids, labels and
// ARIA references that resolve, one h1 and one main, a language and a
// direction.
func htmlCheck(page []byte) error {
	void := map[string]bool{"area": true, "base": true, "br": true, "col": true, "embed": true, "hr": true, "img": true,
		"input": true, "link": true, "meta": true, "source": true, "track": true, "wbr": true}
	z := xhtml.NewTokenizer(bytes.NewReader(page))
	var stack []string
	ids := map[string]bool{}
	var refs []string
	count := map[string]int{}
	var problems []string
	inSVG := 0
	for {
		tt := z.Next()
		if tt == xhtml.ErrorToken {
			if z.Err() != io.EOF {
				return z.Err()
			}
			break
		}
		tok := z.Token()
		switch tt {
		case xhtml.StartTagToken, xhtml.SelfClosingTagToken:
			count[tok.Data]++
			attrs := map[string]string{}
			for _, a := range tok.Attr {
				if _, dup := attrs[a.Key]; dup {
					problems = append(problems, fmt.Sprintf("<%s> repeats attribute %s", tok.Data, a.Key))
				}
				attrs[a.Key] = a.Val
			}
			if id, ok := attrs["id"]; ok {
				if ids[id] {
					problems = append(problems, "duplicate id "+id)
				}
				ids[id] = true
			}
			if v, ok := attrs["for"]; ok {
				refs = append(refs, v)
			}
			if v, ok := attrs["aria-describedby"]; ok {
				refs = append(refs, strings.Fields(v)...)
			}
			if tok.Data == "img" && attrs["alt"] == "" {
				problems = append(problems, "<img> without alt text")
			}
			if tok.Data == "html" && (attrs["lang"] == "" || attrs["dir"] == "") {
				problems = append(problems, "<html> without lang and dir")
			}
			if tt == xhtml.StartTagToken && !void[tok.Data] && inSVG == 0 {
				stack = append(stack, tok.Data)
			}
			if tt == xhtml.StartTagToken && tok.Data == "svg" {
				inSVG++ // its shapes close themselves ("<path/>")
			}
		case xhtml.EndTagToken:
			if tok.Data == "svg" {
				inSVG--
			}
			if inSVG > 0 {
				continue
			}
			if len(stack) == 0 || stack[len(stack)-1] != tok.Data {
				return fmt.Errorf("</%s> closes <%s>", tok.Data, strings.Join(stack, "><"))
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) != 0 {
		problems = append(problems, "unclosed <"+strings.Join(stack, "><")+">")
	}
	for _, r := range refs {
		if !ids[r] {
			problems = append(problems, "reference to missing id "+r)
		}
	}
	if count["h1"] != 1 || count["main"] != 1 || count["title"] != 1 {
		problems = append(problems, fmt.Sprintf("want one h1, main and title, have %d, %d, %d", count["h1"], count["main"], count["title"]))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

var nonceAttrRE = regexp.MustCompile(`nonce="([^"]+)"`)

// CheckResponse checks the headers and markup of one page answer in
// language lang: the page's CSP and headers, one nonce in the CSP and
// the page alike, the checks of package lint, well-formed and accessible
// markup (htmlCheck), and the language and direction.
func CheckResponse(t testing.TB, what string, resp *http.Response, body []byte, lang string) {
	t.Helper()
	h := resp.Header
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s: CSP %q lacks %s", what, csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || strings.Contains(csp, "http") {
		t.Errorf("%s: CSP %q", what, csp)
	}
	if h.Get("Cache-Control") != "no-store" || h.Get("X-Frame-Options") != "DENY" || h.Get("Content-Language") != lang {
		t.Errorf("%s: headers %v", what, h)
	}
	m := regexp.MustCompile(`'nonce-([^']+)'`).FindAllStringSubmatch(csp, -1)
	nonce := ""
	if len(m) > 0 {
		nonce = m[0][1]
		for _, x := range m {
			if x[1] != nonce {
				t.Errorf("%s: CSP has two nonces: %q", what, csp)
			}
		}
		for _, a := range nonceAttrRE.FindAllStringSubmatch(string(body), -1) {
			if a[1] != nonce {
				t.Errorf("%s: page nonce %q differs from the CSP's %q", what, a[1], nonce)
			}
		}
		if err := lint.Page(body, nonce); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	} else if bytes.Contains(body, []byte("<script")) || !strings.Contains(csp, "style-src 'sha256-") {
		t.Errorf("%s: a page without nonce must be the prebuilt one (CSP %q)", what, csp)
	}
	if err := htmlCheck(body); err != nil {
		t.Errorf("%s: %v", what, err)
	}
	if !bytes.Contains(body, []byte(`lang="`+lang+`"`)) {
		t.Errorf("%s: no lang=%q", what, lang)
	}
	wantDir := `dir="ltr"`
	if lang == "ar" {
		wantDir = `dir="rtl"`
	}
	if !bytes.Contains(body, []byte(wantDir)) {
		t.Errorf("%s: no %s", what, wantDir)
	}
}

// WriteTemplate writes body to a page template file in a temporary
// directory and returns its path.
func WriteTemplate(t testing.TB, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "page.html")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// CustomTemplate is a minimal operator page that keeps to the rules
// (docs/PAGE.md points to it as a complete example).
const CustomTemplate = `<!doctype html>
<html lang="{{.Lang}}" dir="{{.Dir}}"><head><meta charset="utf-8"><meta name="referrer" content="same-origin"><title>{{.Heading}} | {{.Site}}</title>
<style nonce="{{.Nonce}}">{{.Style}} body{background:#fafafa}</style></head>
<body><main><h1 class="custom-marker">{{.Heading}}</h1>
{{if eq .State "challenge"}}<p>{{.Text}}</p>
<form method="post" action="{{.Action}}"><input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="code">{{.T "page.code_label"}}</label><input id="code" name="code" autocomplete="one-time-code" inputmode="numeric" maxlength="{{.CodeLength}}">
{{with .Error}}<p>{{.}}</p>{{end}}<button>{{.T "page.verify"}}</button></form>
<script type="application/json" id="stepup-data">{{.Client}}</script><script nonce="{{.Nonce}}">{{.Script}}</script>
{{else}}<p>{{.Text}}</p>{{with .ContinueURL}}<a href="{{.}}">{{$.ContinueText}}</a>{{end}}{{end}}
</main></body></html>`
