// Package lint checks a rendered page against what its
// Content-Security-Policy allows and what the engine relies on: the
// checks a custom page template must pass at start (package page), and
// that tests apply to every page served.
package lint

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	xhtml "golang.org/x/net/html"
)

// Page checks a rendered page against what the CSP allows and the
// engine relies on: every <script> (other than JSON data) and <style>
// carries the nonce; no inline event handlers, style attributes, <base>,
// frames or plugins; no resource from another origin (links may point
// anywhere).
func Page(page []byte, nonce string) error {
	z := xhtml.NewTokenizer(bytes.NewReader(page))
	var errs []string
	for {
		tt := z.Next()
		if tt == xhtml.ErrorToken {
			if z.Err() == io.EOF {
				break
			}
			return z.Err()
		}
		if tt != xhtml.StartTagToken && tt != xhtml.SelfClosingTagToken {
			continue
		}
		tok := z.Token()
		attr := func(k string) (string, bool) {
			for _, a := range tok.Attr {
				if a.Key == k {
					return a.Val, true
				}
			}
			return "", false
		}
		for _, a := range tok.Attr {
			switch {
			case strings.HasPrefix(a.Key, "on"):
				errs = append(errs, fmt.Sprintf("<%s %s=...>: inline event handlers are blocked by the CSP; use the page script", tok.Data, a.Key))
			case a.Key == "style":
				errs = append(errs, fmt.Sprintf("<%s style=...>: style attributes are blocked by the CSP; use the <style nonce> element", tok.Data))
			case a.Key == "src" || a.Key == "srcset" || a.Key == "poster" || a.Key == "action" || a.Key == "formaction" ||
				(a.Key == "href" && tok.Data != "a"):
				if foreign(a.Val) {
					errs = append(errs, fmt.Sprintf("<%s %s=%q>: the CSP loads nothing from other origins", tok.Data, a.Key, truncate(a.Val, 60)))
				}
			}
		}
		switch tok.Data {
		case "script":
			typ, _ := attr("type")
			if t := strings.ToLower(strings.TrimSpace(typ)); t == "application/json" || t == "application/ld+json" {
				continue
			}
			if n, _ := attr("nonce"); n != nonce {
				errs = append(errs, `<script> without nonce="{{.Nonce}}": blocked by the CSP`)
			}
		case "style":
			if n, _ := attr("nonce"); n != nonce {
				errs = append(errs, `<style> without nonce="{{.Nonce}}": blocked by the CSP`)
			}
		case "link":
			if rel, _ := attr("rel"); strings.Contains(strings.ToLower(rel), "stylesheet") {
				if n, _ := attr("nonce"); n != nonce {
					errs = append(errs, `<link rel="stylesheet"> without nonce="{{.Nonce}}": blocked by the CSP`)
				}
			}
		case "base", "iframe", "frame", "object", "embed":
			errs = append(errs, fmt.Sprintf("<%s>: not allowed on the verification page", tok.Data))
		case "meta":
			if v, _ := attr("http-equiv"); strings.EqualFold(v, "refresh") {
				errs = append(errs, `<meta http-equiv="refresh">: not allowed (it moves people on before they can read)`)
			}
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// foreign reports whether a URL in a resource attribute leaves the page's
// origin (data: URIs and same-origin paths do not).
func foreign(u string) bool {
	u = strings.TrimSpace(strings.ToLower(u))
	if u == "" || strings.HasPrefix(u, "data:") || strings.HasPrefix(u, "#") {
		return false
	}
	if strings.HasPrefix(u, "//") || strings.HasPrefix(u, `\`) {
		return true
	}
	if i := strings.IndexAny(u, ":/?#"); i >= 0 && u[i] == ':' {
		return true // a scheme: http:, https:, javascript:, ...
	}
	return false
}

// CodeForm checks that a challenge page posts the code form to
// action with the csrf token and a code field.
func CodeForm(page []byte, action, csrf string) error {
	z := xhtml.NewTokenizer(bytes.NewReader(page))
	inForm, hasCSRF, hasCode := false, false, false
	for {
		tt := z.Next()
		if tt == xhtml.ErrorToken {
			break
		}
		tok := z.Token()
		vals := map[string]string{}
		for _, a := range tok.Attr {
			vals[a.Key] = a.Val
		}
		switch {
		case tt == xhtml.StartTagToken && tok.Data == "form":
			inForm = vals["action"] == action && strings.EqualFold(vals["method"], "post")
		case tt == xhtml.EndTagToken && tok.Data == "form":
			if inForm && hasCSRF && hasCode {
				return nil
			}
			inForm, hasCSRF, hasCode = false, false, false
		case inForm && tok.Data == "input":
			switch vals["name"] {
			case "csrf":
				hasCSRF = vals["value"] == csrf
			case "code":
				hasCode = true
			}
		}
	}
	return errors.New(`the challenge state needs <form method="post" action="{{.Action}}"> with <input type="hidden" name="csrf" value="{{.CSRF}}"> and <input name="code">`)
}

// ReferrerPolicy returns the content of the page's <meta name="referrer">.
func ReferrerPolicy(page []byte) string {
	z := xhtml.NewTokenizer(bytes.NewReader(page))
	for {
		tt := z.Next()
		if tt == xhtml.ErrorToken {
			return ""
		}
		if tok := z.Token(); tok.Data == "meta" {
			name, content := "", ""
			for _, a := range tok.Attr {
				switch a.Key {
				case "name":
					name = strings.ToLower(a.Val)
				case "content":
					content = strings.ToLower(strings.TrimSpace(a.Val))
				}
			}
			if name == "referrer" {
				return content
			}
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
