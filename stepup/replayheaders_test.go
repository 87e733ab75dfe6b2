package stepup

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// TestReplayCarriesPreservedHeaders: the replayed request carries the
// preserved request's headers, plus only the later GET's credentials,
// identity headers, forwarding headers and trace context (round 3,
// R3-5): the GET's X-Original-URL, X-Rewrite-Url, X-Forwarded-Prefix,
// Idempotency-Key, conditional headers, overrides and anything else do
// not reach the upstream with the approved POST.
func TestReplayCarriesPreservedHeaders(t *testing.T) {
	t.Parallel()
	h := newTxHarness(t, store.NewMemory(time.Minute))
	alice := h.browser("alice", "+14155550100")
	body := []byte("amount=12&merchant=ACME")
	resp, _ := alice.raw("POST", "/checkout", "application/x-www-form-urlencoded", body,
		"Origin", h.srv.URL, "Idempotency-Key", "orig", "X-Custom", "orig", "X-Forwarded-Prefix", "/app",
		"X-Forwarded-For", "192.0.2.1", "User-Agent", "orig-agent", "X-Original-URL", "/admin/delete")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /checkout = %d", resp.StatusCode)
	}
	if resp := alice.verifyLast(resp.Header.Get("Location")); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("verify = %d", resp.StatusCode)
	}
	alice.jar["app_session"] = "s1" // the app's own cookie, set since
	resp, got := alice.do("GET", "/checkout", nil,
		"X-Original-URL", "/admin/delete", "X-Rewrite-Url", "/admin/delete", "X-Forwarded-Prefix", "/x",
		"Idempotency-Key", "new", "X-Custom", "later", "X-Later-Only", "1", "If-None-Match", `"abc"`, "Range", "bytes=0-1",
		"X-HTTP-Method-Override", "PUT", "X-HTTP-Method", "PUT", "Content-Encoding", "gzip",
		"X-Forwarded-For", "198.51.100.7", "Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"User-Agent", "later-agent")
	if resp.StatusCode != 200 || got != "upstream /checkout" || h.upstream.Load() != 1 {
		t.Fatalf("replay = %d %q, upstream %d", resp.StatusCode, got, h.upstream.Load())
	}
	up := *h.lastUp.Load()
	want := map[string]string{
		// the preserved request's
		"Idempotency-Key": "orig", "X-Custom": "orig", "X-Forwarded-Prefix": "/app", "User-Agent": "orig-agent",
		"Content-Type": "application/x-www-form-urlencoded", "Origin": h.srv.URL,
		// the later request's: credentials, identity, forwarding, trace
		"X-Remote-User": "alice", "X-Forwarded-For": "198.51.100.7",
		"Traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		// neither's
		"X-Original-Url": "", "X-Rewrite-Url": "", "X-Later-Only": "", "If-None-Match": "", "Range": "",
		"X-Http-Method-Override": "", "X-Http-Method": "", "Content-Encoding": "",
	}
	for k, v := range want {
		if got := strings.Join(up.Values(k), ","); got != v {
			t.Errorf("upstream %s = %q, want %q", k, got, v)
		}
	}
	// The later request's cookies, but for stepup's own (round 4, R4-7).
	if c := up.Get("Cookie"); c != "app_session=s1" {
		t.Errorf("upstream Cookie = %q, want the later request's app cookie alone", c)
	}
	if string(*h.lastBody.Load()) != string(body) {
		t.Errorf("upstream body = %q", *h.lastBody.Load())
	}
}

// TestRewriteURLHeadersStripped: X-Original-URL and X-Rewrite-Url, under
// any spelling a gateway folds, never reach the app, on any path (round
// 3, R3-5): an app that routes on them (Yii2, Laminas behind IIS) could
// be taken to a protected page on an unprotected path.
func TestRewriteURLHeadersStripped(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory(time.Minute), nil)
	alice := h.browser("alice", "+14155550100")
	send := func(path string) http.Header {
		t.Helper()
		req, _ := http.NewRequest("GET", h.srv.URL+path, nil)
		req.Header["X-Original-Url"] = []string{"/account/payment-methods"}
		req.Header["x-original-url"] = []string{"/account/payment-methods"}
		req.Header["X_Original_URL"] = []string{"/account/payment-methods"}
		req.Header["X-Rewrite-Url"] = []string{"/account/payment-methods"}
		req.Header["x.rewrite.url"] = []string{"/account/payment-methods"}
		req.Header.Set("X-Remote-User", alice.user)
		req.Header.Set("X-Remote-Phone", alice.phone)
		req.Header.Set("Accept", "text/html")
		for k, v := range alice.jar {
			req.AddCookie(&http.Cookie{Name: k, Value: v})
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s = %d", path, resp.StatusCode)
		}
		return *h.lastUp.Load()
	}
	check := func(up http.Header) {
		t.Helper()
		for k := range up {
			if n := strings.ToLower(strings.NewReplacer("_", "-", ".", "-").Replace(k)); n == "x-original-url" || n == "x-rewrite-url" {
				t.Fatalf("the upstream got %s", k)
			}
		}
	}
	check(send("/public")) // unprotected
	loc, csrf := alice.start("/account/payment-methods")
	alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {h.out.last(t).Code}})
	check(send("/account/payment-methods")) // protected, on a grant
}

// The identity source's headers, under any folded spelling, are not
// stashed: the replay takes the current ones from the later request.
func TestStashLeavesOutIdentityHeaders(t *testing.T) {
	r, _ := http.NewRequest("POST", "/checkout", nil)
	r.Header["X-Remote-User"] = []string{"alice"}
	r.Header["X_Remote_User"] = []string{"mallory"}
	r.Header["X-Id-Token"] = []string{"token"}
	r.Header["Cookie"] = []string{"a=b"}
	r.Header["X-Custom"] = []string{"kept"}
	s := newStash(r, nil, []string{"X-Remote-User", "x-id-token"})
	if len(s.Header) != 1 || s.Header.Get("X-Custom") != "kept" {
		t.Fatalf("stashed headers = %v; want only X-Custom", s.Header)
	}
}
