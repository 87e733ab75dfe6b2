package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// benchHandler provisions a stepup handler with n policies on paths
// /protected-0 ... /protected-n-1, the memory store and the log sender.
func benchHandler(tb testing.TB, n int) *Handler {
	return benchHandlerWith(tb, n, `{"sender":"log"}`)
}

func benchHandlerWith(tb testing.TB, n int, senderJSON string) *Handler {
	tb.Helper()
	var policies []string
	for i := 0; i < n; i++ {
		policies = append(policies, fmt.Sprintf(`{"name":"p%d","match":[{"path":["/protected-%d/*"]}]}`, i, i))
	}
	// One scope: the grant is won through a test server and used on
	// prepared requests (another host and no listener).
	raw := `{"secret":"` + strings.Repeat("s", 32) + `","scope":"bench","domain":"shop.example","identity":{"source":"header","user":"X-Remote-User","phone":"X-Remote-Phone"},` +
		`"senders":[` + senderJSON + `],"limits":{"per_ip":"off","per_user":"off","per_number":"off"},"policies":[` + strings.Join(policies, ",") + `]}`
	var h Handler
	if err := json.Unmarshal([]byte(raw), &h); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	tb.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = h.Cleanup() })
	return &h
}

// prepared returns a request with the context Caddy's server gives every
// request (replacer, vars).
func prepared(method, target string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	repl := caddy.NewReplacer()
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{})
	return r.WithContext(ctx)
}

type okHandler struct{}

func (okHandler) ServeHTTP(w http.ResponseWriter, _ *http.Request) error { return nil }

// discard is a ResponseWriter that allocates nothing.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkUnmatched: a request that none of 20 policies matches, through
// the handler as Caddy calls it. The target is zero allocations.
func BenchmarkUnmatched(b *testing.B) {
	h := benchHandler(b, 20)
	r := prepared("GET", "/catalog/espresso?page=2")
	r.Header.Set("Accept", "text/html")
	r.Header.Set("Cookie", "session=abc; theme=dark")
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		if err := h.ServeHTTP(w, r, okHandler{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMatchPolicy: policy matching over 20 policies, for a request
// the last one matches (it pays for the 19 before it) and for one none
// matches.
func BenchmarkMatchPolicy(b *testing.B) {
	h := benchHandler(b, 20)
	for _, target := range []string{"/protected-19/page", "/catalog/espresso"} {
		b.Run(target, func(b *testing.B) {
			r := prepared("GET", target)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := h.MatchPolicy(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestUnmatchedAllocatesNothing holds the zero-allocation target for
// requests no policy matches (allocation counts are deterministic).
func TestUnmatchedAllocatesNothing(t *testing.T) {
	h := benchHandler(t, 20)
	r := prepared("GET", "/catalog/espresso?page=2")
	r.Header.Set("Cookie", "session=abc")
	w := &discard{h: http.Header{}}
	if n := testing.AllocsPerRun(200, func() { _ = h.ServeHTTP(w, r, okHandler{}) }); n != 0 {
		t.Fatalf("an unmatched request allocates %v times, want 0", n)
	}
}

// BenchmarkValidGrant: a protected request with a valid session grant
// (memory store), the path of every verified page view.
func BenchmarkValidGrant(b *testing.B) {
	codes := newCodeReceiver(b)
	h := benchHandlerWith(b, 20, `{"sender":"webhook","url":"`+codes.URL+`"}`)
	cookie := grantCookie(b, h, codes)
	r := prepared("GET", "/protected-7/page")
	r.Header.Set("X-Remote-User", "alice")
	r.Header.Set("X-Remote-Phone", "+14155550100")
	r.Header.Set("Accept", "text/html")
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		r.Header.Set("Cookie", cookie)
		if err := h.ServeHTTP(w, r, okHandler{}); err != nil {
			b.Fatal(err)
		}
	}
	if r.Header.Get("Stepup-Policy") != "p7" {
		b.Fatal("the grant did not open the policy")
	}
}

// codeReceiver is a webhook receiver that keeps the last code.
type codeReceiver struct {
	*httptest.Server
	mu   sync.Mutex
	last string
}

func newCodeReceiver(tb testing.TB) *codeReceiver {
	c := &codeReceiver{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct{ Code string }
		_ = json.NewDecoder(r.Body).Decode(&m)
		c.mu.Lock()
		c.last = m.Code
		c.mu.Unlock()
		w.WriteHeader(204)
	}))
	tb.Cleanup(c.Close)
	return c
}

// grantCookie runs the session flow once through the handler and returns
// a Cookie header with the session and the grant for policy p7.
func grantCookie(tb testing.TB, h *Handler, codes *codeReceiver) string {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repl := caddy.NewReplacer()
		r = r.WithContext(context.WithValue(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl), caddyhttp.VarsCtxKey, map[string]any{}))
		_ = h.ServeHTTP(w, r, okHandler{})
	}))
	defer srv.Close()
	jar := map[string]string{}
	do := func(method, path string, form url.Values) (*http.Response, string) {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, srv.URL+path, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Header.Set("Accept", "text/html")
		req.Header.Set("X-Remote-User", "alice")
		req.Header.Set("X-Remote-Phone", "+14155550100")
		for k, v := range jar {
			req.AddCookie(&http.Cookie{Name: k, Value: v})
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			tb.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, c := range resp.Cookies() {
			jar[c.Name] = c.Value
		}
		return resp, string(b)
	}
	resp, _ := do("GET", "/protected-7/page", nil)
	loc := resp.Header.Get("Location")
	_, page := do("GET", loc, nil)
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		tb.Fatalf("no challenge page at %q", loc)
	}
	h.engine.Wait() // the code goes out after the answer
	codes.mu.Lock()
	code := codes.last
	codes.mu.Unlock()
	if resp, _ := do("POST", loc, url.Values{"csrf": {m[1]}, "code": {code}}); resp.StatusCode != http.StatusSeeOther {
		tb.Fatalf("verify = %d", resp.StatusCode)
	}
	var parts []string
	for k, v := range jar {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, "; ")
}

// prefilterPolicies are matcher shapes the prefilter handles (and some it
// must leave alone).
var prefilterPatterns = [][]string{
	{"/account/payment-methods*"}, {"/checkout"}, {"/admin/*"}, {"/api/v1/pay/*", "/api/v2/pay/*"},
	{"/Mixed/Case/*"}, {"*.php"}, {"/files/*.pdf"}, {"/x/{http.request.host}/*"}, {"/a%2Fb/*"}, {"//double/*"},
	{"/pay", "/pay/*", "/pay.*", "/pay;*"},
}

// FuzzPathPrefilter: the prefilter never skips a policy whose Caddy
// matchers match the request under some reading of its path (it may only
// let through policies that then fail to match).
func FuzzPathPrefilter(f *testing.F) {
	var policies []string
	for i, pats := range prefilterPatterns {
		js, _ := json.Marshal(pats)
		policies = append(policies, fmt.Sprintf(`{"name":"p%d","match":[{"path":%s}]}`, i, js))
	}
	// One scope: the grant is won through a test server and used on
	// prepared requests (another host and no listener).
	raw := `{"secret":"` + strings.Repeat("s", 32) + `","scope":"bench","domain":"shop.example","identity":{"source":"header","user":"U","phone":"P"},` +
		`"senders":[{"sender":"log"}],"policies":[` + strings.Join(policies, ",") + `]}`
	var h Handler
	if err := json.Unmarshal([]byte(raw), &h); err != nil {
		f.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		f.Fatal(err)
	}
	if h.Policies[0].prefixes == nil || h.Policies[5].prefixes != nil || h.Policies[7].prefixes != nil || h.Policies[8].prefixes != nil || h.Policies[9].prefixes != nil {
		f.Fatal("the prefilter was not built as expected")
	}
	for _, s := range []string{"/account/payment-methods", "/ACCOUNT/Payment-Methods/x", "//account//payment-methods",
		"/shop/../account/payment-methods/", "/./checkout", "/checkout/", "/CHECKOUT", "/admin", "/admin/", "/api/v2/pay/1",
		"/mixed/case/x", "/index.php", "/files/a/b.pdf", "/x/example.com/y", "/a%2Fb/c", "//double/x", "/account/payment-methods%2f", "",
		"/pay;jsessionid=1", "/PAY.json", "/pay/", "/pay%3Bx", "/checkout;x",
		"/;x/checkout", "/x/..;/admin/y", "/%2e/checkout", "/\\admin/x", "/x\\..\\pay", "/a;b/..;c/account/payment-methods", "/x/%2e%2e;y/admin/",
		"/index.php/account/payment-methods", "/INDEX.PHP/Checkout", "/a.phpx/pay", "/x.php;y/admin/z", "/index.php/x/..;/pay"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		r := prepared("GET", "/")
		r.URL.Path = p
		r.Host = "example.com"
		clean := caddyhttp.CleanPath(strings.ToLower(p), true)
		var ms methodState
		var ps pathState
		var qs queryState
		for _, pol := range h.Policies {
			match, err := h.matchPolicy(pol, r, &ms, &ps, &qs)
			if err != nil || !match || pol.prefixes == nil {
				continue
			}
			ps.init(r.URL.Path)
			if pol.skip(clean, &ps) {
				i, _ := strconv.Atoi(pol.Name[1:])
				t.Fatalf("path %q matches policy %s (%v) but the prefilter would skip it (clean %q, readings %q, prefixes %v)",
					p, pol.Name, prefilterPatterns[i], clean, ps.readings[:ps.n], pol.prefixes)
			}
		}
		if r.URL.Path != p {
			t.Fatalf("the path is %q after matching, want %q", r.URL.Path, p)
		}
		if containsPHP(p) != containsFold(p, ".php") {
			t.Fatalf("containsPHP(%q) = %v, containsFold says otherwise", p, containsPHP(p))
		}
	})
}

func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}
