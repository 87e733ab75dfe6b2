package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	zapobserver "go.uber.org/zap/zaptest/observer"

	"github.com/caddy-stepup/caddy-stepup/stepup"
)

// methodHandler has policies that name methods, as a review found them
// bypassed.
func methodHandler(t *testing.T) *Handler {
	return provisioned(t, `{"secret":"0123456789abcdef0123456789abcdef",`+
		`"identity":{"source":"header","user":"U","phone":"P"},"senders":[{"sender":"log"}],"max_body":1024,"policies":[`+
		`{"name":"checkout","match":[{"method":["POST"],"path":["/checkout*"]}],"mode":"transaction"},`+
		`{"name":"close-account","match":[{"method":["DELETE"],"path":["/account"]}]},`+
		`{"name":"export","match":[{"method":["GET"],"path":["/export"]}]},`+
		`{"name":"purge","match":[{"method":["PURGE"],"path":["/cache"]}]},`+
		`{"name":"audit","match":[{"method":["PUT"],"path":["/admin/*"]}],"mode":"monitor"}]}`)
}

type matchCase struct {
	name      string
	method    string
	target    string
	headers   map[string][]string
	body      string // form unless ctype says
	ctype     string
	untyped   bool // no Content-Type
	encoding  string
	want      string // policy name, "" for none, "400" for an ambiguous method, "400 policy" for readings under different policies
	keepsBody bool
}

func multipartBody(fields map[string]string) (string, string) {
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for k, v := range fields {
		_ = w.WriteField(k, v)
	}
	_ = w.Close()
	return b.String(), w.FormDataContentType()
}

// A policy applies if it applies under any reading of the method the app
// could make: as sent, upper-cased, HEAD as GET, each override (headers,
// _method in the query or a POST form); overrides that disagree are
// refused with 400 where a session or transaction policy applies.
func TestMatchPolicyMethodReadings(t *testing.T) {
	h := methodHandler(t)
	mp, mpType := multipartBody(map[string]string{"reason": "moving", "_method": "delete"})
	plainMP, plainMPType := multipartBody(map[string]string{"reason": "moving"})
	override := func(kv ...string) map[string][]string {
		m := map[string][]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = append(m[kv[i]], kv[i+1])
		}
		return m
	}
	for _, tc := range []matchCase{
		{name: "as configured", method: "POST", target: "/checkout", want: "checkout"},
		{name: "lower-case method", method: "post", target: "/checkout", want: "checkout"},
		{name: "mixed-case method", method: "PoSt", target: "/checkout", want: "checkout"},
		{name: "trailing slash", method: "POST", target: "/checkout/", want: "checkout"},
		{name: "path parameter", method: "POST", target: "/checkout;jsessionid=1", want: "checkout"},
		{name: "format suffix", method: "POST", target: "/checkout.json", want: "checkout"},
		{name: "GET of checkout", method: "GET", target: "/checkout", want: ""},
		{name: "HEAD as GET", method: "HEAD", target: "/export", want: "export"},
		{name: "lower-case head", method: "head", target: "/export", want: "export"},
		{name: "X-HTTP-Method-Override", method: "POST", target: "/account", headers: override("X-Http-Method-Override", "DELETE"), want: "close-account"},
		{name: "X-HTTP-Method lower-case", method: "POST", target: "/account", headers: override("X-Http-Method", "delete"), want: "close-account"},
		{name: "X-Method-Override", method: "POST", target: "/account", headers: override("X-Method-Override", "DELETE"), want: "close-account"},
		{name: "override on a GET", method: "GET", target: "/account", headers: override("X-Http-Method-Override", "DELETE"), want: "close-account"},
		{name: "override to HEAD", method: "POST", target: "/export", headers: override("X-Http-Method-Override", "HEAD"), want: "export"},
		{name: "override to a named method", method: "POST", target: "/cache", headers: override("X-Http-Method-Override", "purge"), want: "purge"},
		{name: "overrides agree", method: "POST", target: "/account", headers: override("X-Http-Method-Override", "DELETE", "X-Http-Method", "delete"), want: "close-account"},
		{name: "_method query", method: "POST", target: "/account?_method=DELETE", want: "close-account"},
		{name: "_method query escaped", method: "POST", target: "/account?%5Fmethod=delete", want: "close-account"},
		{name: "_method query PHP name", method: "POST", target: "/account?.method=DELETE", want: "close-account"},
		{name: "_method form", method: "POST", target: "/account", body: "reason=moving&_method=DELETE", want: "close-account", keepsBody: true},
		{name: "_method form PHP name", method: "POST", target: "/account", body: "reason=moving&.method=delete", want: "close-account", keepsBody: true},
		{name: "_method multipart", method: "POST", target: "/account", body: mp, ctype: mpType, want: "close-account", keepsBody: true},
		{name: "_method form for a method the policies name", method: "POST", target: "/cache", body: "_method=PURGE", want: "purge", keepsBody: true},
		{name: "form without _method", method: "POST", target: "/account", body: "reason=moving", want: "", keepsBody: true},
		{name: "multipart without _method", method: "POST", target: "/account", body: plainMP, ctype: plainMPType, want: "", keepsBody: true},
		{name: "form too large to tell", method: "POST", target: "/account", body: "reason=" + strings.Repeat("x", 2000), want: "close-account", keepsBody: true},
		{name: "encoded form cannot be told", method: "POST", target: "/account", body: "not really gzip", encoding: "gzip", want: "close-account", keepsBody: true},
		{name: "form on another path", method: "POST", target: "/catalog", body: "_method=DELETE", want: "", keepsBody: true},
		{name: "overrides disagree", method: "POST", target: "/account", headers: override("X-Http-Method-Override", "DELETE", "X-Http-Method", "PUT"), want: "400"},
		{name: "one header twice", method: "POST", target: "/account", headers: override("X-Http-Method-Override", "DELETE", "X-Http-Method-Override", "PUT"), want: "400"},
		{name: "a list in one header", method: "POST", target: "/account", headers: override("X-Http-Method-Override", "DELETE, PUT"), want: "400"},
		{name: "header and query disagree", method: "POST", target: "/account?_method=PUT", headers: override("X-Http-Method-Override", "DELETE"), want: "400"},
		{name: "header and form disagree", method: "POST", target: "/account", headers: override("X-Http-Method-Override", "PUT"), body: "_method=DELETE", want: "400"},
		{name: "header and json disagree", method: "POST", target: "/account", headers: override("X-Http-Method-Override", "PUT"), body: `{"_method":"DELETE"}`, ctype: "application/json", want: "400"},
		{name: "ambiguous but unprotected", method: "POST", target: "/catalog", headers: override("X-Http-Method-Override", "DELETE", "X-Http-Method", "PUT"), want: ""},
		{name: "ambiguous under a monitor policy", method: "POST", target: "/admin/users", headers: override("X-Http-Method-Override", "PUT", "X-Http-Method", "PATCH"), want: "audit"},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, h) })
	}
}

// run runs MatchPolicy on the case's request and checks the policy it
// found, that the method and path are as sent after it, and that the
// body is still there.
func (tc matchCase) run(t *testing.T, h *Handler) {
	t.Helper()
	var body io.Reader
	if tc.body != "" {
		body = strings.NewReader(tc.body)
	}
	r := preparedBody("GET", tc.target, body)
	r.Method = tc.method
	if tc.body != "" && !tc.untyped {
		ct := tc.ctype
		if ct == "" {
			ct = "application/x-www-form-urlencoded"
		}
		r.Header.Set("Content-Type", ct)
	}
	if tc.encoding != "" {
		r.Header.Set("Content-Encoding", tc.encoding)
	}
	for k, v := range tc.headers {
		r.Header[k] = v
	}
	path, rawPath, rawQuery := r.URL.Path, r.URL.RawPath, r.URL.RawQuery
	p, err := h.MatchPolicy(r)
	if r.URL.RawQuery != rawQuery {
		t.Errorf("MatchPolicy left the query %q, want %q", r.URL.RawQuery, rawQuery)
	}
	if r.Method != tc.method {
		t.Errorf("MatchPolicy left the method %q, want %q", r.Method, tc.method)
	}
	if r.URL.Path != path || r.URL.RawPath != rawPath {
		t.Errorf("MatchPolicy left the path %q (raw %q), want %q (raw %q)", r.URL.Path, r.URL.RawPath, path, rawPath)
	}
	switch {
	case tc.want == "400":
		var he caddyhttp.HandlerError
		if !errors.Is(err, stepup.ErrAmbiguousMethod) || !errors.As(err, &he) || he.StatusCode != http.StatusBadRequest {
			t.Fatalf("MatchPolicy = %v, %v; want 400 ErrAmbiguousMethod", p, err)
		}
	case tc.want == "400 policy":
		var he caddyhttp.HandlerError
		if !errors.Is(err, stepup.ErrAmbiguousPolicy) || !errors.As(err, &he) || he.StatusCode != http.StatusBadRequest {
			t.Fatalf("MatchPolicy = %v, %v; want 400 ErrAmbiguousPolicy", p, err)
		}
	case err != nil:
		t.Fatalf("MatchPolicy: %v", err)
	case tc.want == "" && p != nil:
		t.Fatalf("matched %s, want none", p.Name)
	case tc.want != "" && (p == nil || p.Name != tc.want):
		t.Fatalf("matched %v, want %s", p, tc.want)
	}
	if tc.keepsBody {
		got, _ := io.ReadAll(r.Body)
		if string(got) != tc.body {
			t.Errorf("the body after matching is %q, want it unchanged", got)
		}
	}
}

// prepared with a body.
func preparedBody(method, target string, body io.Reader) *http.Request {
	r := httptest.NewRequest(method, target, body)
	repl := caddy.NewReplacer()
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{})
	return r.WithContext(ctx)
}

// Policies without a path (no prefilter) run their matchers on every
// request, and the method and path readings allocate nothing for a plain
// one.
func TestMethodReadingsAllocateNothing(t *testing.T) {
	h := provisioned(t, `{"secret":"0123456789abcdef0123456789abcdef",`+
		`"identity":{"source":"header","user":"U","phone":"P"},"senders":[{"sender":"log"}],"policies":[`+
		`{"name":"deletes","match":[{"method":["DELETE"]}]},{"name":"exports","match":[{"method":["GET"],"path":["/export*"]}]}]}`)
	for _, method := range []string{"GET", "HEAD", "POST"} {
		// Paths without ';', '\', '%' or ".php" have no other readings.
		for _, target := range []string{"/catalog/espresso?page=2", "/catalog/caf%C3%A9-cr%C3%A8me.json", "/catalog/a,b=c/x-y_z~.json", "/catalog/phpinfo.ph/p.phtml"} {
			r := prepared(method, target)
			r.Header.Set("Cookie", "session=abc")
			r.Header.Set("Content-Type", "application/json")
			if n := testing.AllocsPerRun(100, func() { _, _ = h.MatchPolicy(r) }); n != 0 {
				t.Errorf("%s %s: MatchPolicy allocates %v times", method, target, n)
			}
		}
	}
}

// What Caddy's path matcher does with the variants apps serve alike, so
// that the documented policies are known to cover them: the path is
// matched decoded and lower-cased ("%3B" is ";"), cleaned ("//", "/./"),
// and ";" is an ordinary character.
func TestCaddyPathMatcherVariants(t *testing.T) {
	patterns := map[string][]string{
		"exact":    {"/checkout"},
		"wildcard": {"/checkout*"},
		"list":     {"/checkout", "/checkout/*", "/checkout.*", "/checkout;*"},
	}
	for _, tc := range []struct {
		target                string
		exact, wildcard, list bool
	}{
		{"/checkout", true, true, true},
		{"/CHECKOUT", true, true, true},
		{"//checkout", true, true, true},
		{"/x/../checkout", true, true, true},
		{"/%63heckout", true, true, true},
		{"/checkout/", false, true, true},
		{"/checkout%2F", false, true, true},
		{"/checkout/confirm", false, true, true},
		{"/checkout;jsessionid=1", false, true, true},
		{"/checkout%3Bjsessionid=1", false, true, true},
		{"/checkout.json", false, true, true},
		{"/checkout%2Ejson", false, true, true},
		{"/checkout%20", false, true, false},
		{"/checkout%252F", false, true, false},
		{"/checkouts", false, true, false},
	} {
		r := prepared("POST", "http://shop.example"+tc.target)
		for kind, want := range map[string]bool{"exact": tc.exact, "wildcard": tc.wildcard, "list": tc.list} {
			m := caddyhttp.MatchPath(append([]string(nil), patterns[kind]...))
			_ = m.Provision(caddy.Context{})
			if got, _ := m.MatchWithError(r); got != want {
				t.Errorf("%s %v: %s matched %v, want %v", kind, patterns[kind], tc.target, got, want)
			}
		}
	}
}

// The policies of Caddyfile.example (and so of the README, which shows
// the same ones) cover the variants an app serves alike.
func TestExamplePoliciesCoverVariants(t *testing.T) {
	t.Setenv("STEPUP_SECRET", strings.Repeat("s", 32))
	src, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": "Caddyfile.example"})
	if err != nil {
		t.Fatal(err)
	}
	var cfg any
	_ = json.Unmarshal(out, &cfg)
	h := provisioned(t, string(findHandler(t, cfg)))
	core, logs := zapobserver.New(zapcore.WarnLevel)
	for _, p := range h.Policies {
		warnExactPaths(zap.New(core), p)
	}
	if logs.Len() != 0 {
		t.Errorf("the example's policies draw exact-path warnings: %v", logs.All())
	}
	for _, tc := range []struct{ method, target, want string }{
		{"POST", "/checkout", "checkout"},
		{"post", "/checkout", "checkout"},
		{"POST", "/checkout/", "checkout"},
		{"POST", "/checkout;jsessionid=1", "checkout"},
		{"POST", "/checkout.json", "checkout"},
		{"POST", "/Checkout%3Bx", "checkout"},
		{"GET", "/checkout", ""},
		{"GET", "/account/payment-methods", "payment-methods"},
		{"GET", "/account/payment-methods/", "payment-methods"},
		{"GET", "/account/payment-methods.json", "payment-methods"},
		{"HEAD", "/account/payment-methods;jsessionid=1", "payment-methods"},
		{"GET", "/admin", "admin"},
		{"GET", "/admin/users", "admin"},
	} {
		r := prepared("GET", "http://localhost"+tc.target)
		r.Method = tc.method
		p, err := h.MatchPolicy(r)
		got := ""
		if p != nil {
			got = p.Name
		}
		if err != nil || got != tc.want {
			t.Errorf("%s %s: policy %q, %v; want %q", tc.method, tc.target, got, err, tc.want)
		}
	}
}

// An enforcing policy whose path pattern is exact draws a warning that
// names what escapes it and the fix; wildcards and monitor mode do not.
func TestExactPathWarning(t *testing.T) {
	h := provisioned(t, `{"secret":"0123456789abcdef0123456789abcdef",`+
		`"identity":{"source":"header","user":"U","phone":"P"},"senders":[{"sender":"log"}],"policies":[`+
		`{"name":"checkout","match":[{"method":["POST"],"path":["/checkout"]}],"mode":"transaction"},`+
		`{"name":"profile","match":[{"path":["/profile/"]}]},`+
		`{"name":"pay","match":[{"path":["/pay*","/api/pay/*"]}],"mode":"transaction"},`+
		`{"name":"watch","match":[{"path":["/watch"]}],"mode":"monitor"}]}`)
	core, logs := zapobserver.New(zapcore.WarnLevel)
	for _, p := range h.Policies {
		warnExactPaths(zap.New(core), p)
	}
	all := logs.All()
	if len(all) != 2 {
		t.Fatalf("%d warnings, want 2 (checkout, profile): %v", len(all), all)
	}
	want := []map[string]any{
		{"policy": "checkout", "pattern": "/checkout", "fix": "/checkout*",
			"escapes": []any{"/checkout/", "/checkout.json"}, "or": []any{"/checkout", "/checkout/*", "/checkout.*"}},
		{"policy": "profile", "pattern": "/profile/", "fix": "/profile*",
			"escapes": []any{"/profile/x", "/profile", "/profile.json"}},
	}
	for i, e := range all {
		got := e.ContextMap()
		for k, v := range want[i] {
			if fmt.Sprint(got[k]) != fmt.Sprint(v) {
				t.Errorf("warning %d: %s = %v, want %v", i, k, got[k], v)
			}
		}
		if !strings.Contains(e.Message, "exact path") {
			t.Errorf("warning %d: %q", i, e.Message)
		}
	}
}
