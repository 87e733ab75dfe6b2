package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
	"github.com/caddy-stepup/caddy-stepup/stepup/identity/oidctest"
)

// identityConfig is a Caddyfile with stepup on Redis in front of an
// upstream, identity from the given block, protecting
// /account/payment-methods in session mode.
func identityConfig(prefix, identityBlock, hook, up string) string {
	return fmt.Sprintf(`{
	admin 127.0.0.1:{ADMIN}
	auto_https off
}
http://127.0.0.1:{PORT} {
	stepup {
		redis %s {
			key_prefix %s
		}
		secret {env.STEPUP_SECRET}
%s
		sender webhook %s/sms {
			signing_secret %s
		}
		protect payment-methods {
			match {
				path /account/payment-methods*
			}
			grant_ttl 15m
		}
	}
	reverse_proxy %s
}
`, sharedRedis.URL(), prefix, identityBlock, hook, signingSecret, strings.TrimPrefix(up, "http://"))
}

// setCookie puts a cookie for the Caddy under test into b's jar,
// replacing one of the same name.
func setCookie(b *browser, p *caddyProc, name, value string) {
	u, _ := url.Parse(p.url("/"))
	b.client.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

// verifyChallenge follows a 303 to the challenge page, enters the code
// the receiver got and checks that the browser is sent back.
func verifyChallenge(t *testing.T, b *browser, p *caddyProc, resp *http.Response, hook *receiver) {
	t.Helper()
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "/.stepup/challenge/") {
		t.Fatalf("protected request = %d to %q, want 303 to a challenge\n%s", resp.StatusCode, resp.Header.Get("Location"), p.logs)
	}
	challenge := resolve(p.url("/"), resp.Header.Get("Location"))
	_, page := b.do("GET", challenge, nil)
	resp, _ = b.do("POST", challenge, url.Values{"csrf": {csrfOf(t, page)}, "code": {hook.last(t).Code}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("verify = %d", resp.StatusCode)
	}
}

// logged waits up to 5s for s to appear in p's log: Caddy's log lines
// reach the test through a pipe, after the answers they belong to.
func logged(p *caddyProc, s string) bool {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(p.logs.String(), s) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// apiGet is an API client's GET (no HTML wanted) with a bearer token.
func apiGet(t *testing.T, rawURL, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", rawURL, nil)
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// The session flow with an OIDC ID token in a cookie, verified against a
// local issuer: challenge, code to the token's phone number, grant; the
// grant survives a token refresh within the login session and opens
// nothing for another user or another login; expired and forged tokens
// are sent to the login page (browsers) or get 401 (API clients) and
// never cause a code to be sent; an unverified number gets 403.
func TestOIDCSessionFlow(t *testing.T) {
	t.Parallel()
	is, key := oidctest.New(t)
	up := newUpstream(t)
	hook := newReceiver(t)
	block := fmt.Sprintf(`		identity oidc {
			issuer %s
			client_id %s
			cookie id_token
			header Authorization
			require_verified_phone
			login_url "/login?next={return}"
		}`, is.URL, oidctest.ClientID)
	p := startCaddy(t, identityConfig("e2e-oidc:", block, hook.URL, up.URL))
	if is.DiscoveryHits() != 0 {
		t.Fatal("Caddy contacted the issuer at start")
	}
	claims := map[string]any{"sid": "login-1", "phone_number": "+14155550100", "phone_number_verified": true}
	aliceToken := is.Token(t, key, "alice", claims)

	alice := newBrowser(t, "", "")
	setCookie(alice, p, "id_token", aliceToken)
	target := p.url("/account/payment-methods")
	resp, _ := alice.do("GET", target, nil)
	verifyChallenge(t, alice, p, resp, hook)
	if msg := hook.last(t); msg.To != "+14155550100" || msg.Policy != "payment-methods" {
		t.Fatalf("code sent as %+v", msg)
	}
	resp, body := alice.do("GET", target, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "user=alice") || up.hits.Load() != 1 {
		t.Fatalf("after verification = %d %q, upstream hits %d", resp.StatusCode, body, up.hits.Load())
	}

	// A refreshed token of the same login session keeps the grant.
	refreshed := is.Token(t, key, "alice", map[string]any{"sid": "login-1", "phone_number": "+14155550100",
		"phone_number_verified": true, "iat": time.Now().Unix() + 1, "jti": "refresh"})
	setCookie(alice, p, "id_token", refreshed)
	if resp, _ := alice.do("GET", target, nil); resp.StatusCode != 200 || up.hits.Load() != 2 {
		t.Fatalf("refreshed token, same sid = %d, upstream hits %d", resp.StatusCode, up.hits.Load())
	}

	// Another user with alice's grant cookie, and alice after a new login:
	// both challenged, neither let in.
	for name, tok := range map[string]string{
		"another sub": is.Token(t, key, "bob", map[string]any{"sid": "login-1", "phone_number": "+14155550101", "phone_number_verified": true}),
		"another sid": is.Token(t, key, "alice", map[string]any{"sid": "login-2", "phone_number": "+14155550100", "phone_number_verified": true}),
	} {
		setCookie(alice, p, "id_token", tok)
		resp, _ := alice.do("GET", target, nil)
		if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "/.stepup/challenge/") {
			t.Fatalf("%s with alice's grant = %d %q, want a challenge", name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if up.hits.Load() != 2 {
		t.Fatalf("upstream reached by another identity: %d hits", up.hits.Load())
	}

	// Expired, forged and wrong-audience tokens: the login page for the
	// browser, 401 for an API client, and no code sent.
	expired := is.Token(t, key, "alice", map[string]any{"sid": "login-1", "phone_number": "+14155550100", "phone_number_verified": true,
		"iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix()})
	forged := oidctest.Sign(t, is.NewKey(t, jose.RS256), is.Claims("alice"))
	wrongAud := is.Token(t, key, "alice", map[string]any{"aud": "another-app", "phone_number": "+14155550100"})
	before := hook.count()
	for name, tok := range map[string]string{"expired": expired, "forged": forged, "wrong audience": wrongAud, "alg none": oidctest.Unsigned(is.Claims("alice"))} {
		setCookie(alice, p, "id_token", tok)
		resp, _ := alice.do("GET", target+"?tab=cards", nil)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next=%2Faccount%2Fpayment-methods%3Ftab%3Dcards" {
			t.Errorf("%s token, browser = %d to %q, want 303 to the login page", name, resp.StatusCode, resp.Header.Get("Location"))
		}
		if resp := apiGet(t, target, tok); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s token, API client = %d, want 401", name, resp.StatusCode)
		}
	}
	if hook.count() != before {
		t.Fatalf("%d codes sent for refused tokens", hook.count()-before)
	}

	// An unverified number: a clear 403 page, no code.
	setCookie(alice, p, "id_token", is.Token(t, key, "alice", map[string]any{"sid": "login-3",
		"phone_number": "+14155550100", "phone_number_verified": false}))
	resp, page := alice.do("GET", target, nil)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "not verified") {
		t.Fatalf("unverified number = %d", resp.StatusCode)
	}
	if hook.count() != before || up.hits.Load() != 2 {
		t.Fatalf("unverified number: %d sends, %d upstream hits", hook.count()-before, up.hits.Load())
	}

	// An API client with a bearer token gets the step-up challenge.
	if resp := apiGet(t, target, aliceToken); resp.StatusCode != http.StatusUnauthorized ||
		!strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "StepUp challenge=") {
		t.Fatalf("API client with a valid token = %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	logs := p.logs.String()
	for _, tok := range []string{aliceToken, refreshed, expired, forged} {
		for _, part := range strings.Split(tok, ".")[1:] {
			if len(part) > 8 && strings.Contains(logs, part) {
				t.Fatal("caddy logged a piece of an ID token")
			}
		}
	}
	for _, number := range []string{"4155550100", "4155550101"} {
		if strings.Contains(logs, number) {
			t.Errorf("caddy logged the full number %s", number)
		}
	}
}

// Caddy starts while the identity provider is down; protected requests
// fail closed (503) until it is up, then the flow works without restart.
func TestOIDCIssuerDownAtStart(t *testing.T) {
	t.Parallel()
	is := oidctest.NewDown(t)
	key := is.NewKey(t, jose.ES256)
	is.Publish(key)
	up := newUpstream(t)
	hook := newReceiver(t)
	block := fmt.Sprintf("\t\tidentity oidc {\n\t\t\tissuer %s\n\t\t\tclient_id %s\n\t\t\tcookie id_token\n\t\t}", is.URL, oidctest.ClientID)
	p := startCaddy(t, identityConfig("e2e-oidc-down:", block, hook.URL, up.URL))

	alice := newBrowser(t, "", "")
	setCookie(alice, p, "id_token", is.Token(t, key, "alice", map[string]any{"sid": "s", "phone_number": "+14155550100"}))
	target := p.url("/account/payment-methods")
	resp, page := alice.do("GET", target, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(page, "temporarily unavailable") {
		t.Fatalf("issuer down = %d", resp.StatusCode)
	}
	if resp, _ := alice.do("GET", p.url("/catalog"), nil); resp.StatusCode != 200 {
		t.Fatalf("unprotected route with the issuer down = %d", resp.StatusCode)
	}
	if hook.count() != 0 || up.hits.Load() != 1 {
		t.Fatalf("issuer down: %d sends, %d upstream hits (want 0 and 1)", hook.count(), up.hits.Load())
	}

	if err := is.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, _ = alice.do("GET", target, nil)
		if resp.StatusCode == http.StatusSeeOther {
			break
		}
		if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("recovering: %d\n%s", resp.StatusCode, p.logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	verifyChallenge(t, alice, p, resp, hook)
	if resp, _ := alice.do("GET", target, nil); resp.StatusCode != 200 {
		t.Fatalf("after recovery and verification = %d", resp.StatusCode)
	}
	if !logged(p, "oidc discovery failed") {
		t.Error("the failed discovery was not logged")
	}
}

// The session flow with a legacy session cookie (PHPSESSID) whose
// account is looked up in a Redis hash the shop writes at login: the
// code goes to the number on file, the grant is bound to that session,
// a new login is challenged again, a customer without a number gets the
// "add a number" page, and no cookie value or full number is logged.
func TestCookieSessionFlow(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	hook := newReceiver(t)
	ctx := context.Background()
	for _, cmd := range [][]string{
		{"HSET", "e2e-shop:session:sess-alice-1", "phone", "+14155550100", "customer", "alice"},
		{"HSET", "e2e-shop:session:sess-alice-2", "phone", "+14155550100", "customer", "alice"},
		{"HSET", "e2e-shop:session:sess-carol", "customer", "carol"},
	} {
		if _, err := sharedRedis.Command(ctx, cmd...); err != nil {
			t.Fatal(err)
		}
	}
	block := `		identity cookie PHPSESSID {
			phone_lookup redis "e2e-shop:session:{id}" field phone
			user_field customer
			login_url /login.php
		}`
	p := startCaddy(t, identityConfig("e2e-cookie:", block, hook.URL, up.URL))
	target := p.url("/account/payment-methods")

	alice := newBrowser(t, "", "")
	setCookie(alice, p, "PHPSESSID", "sess-alice-1")
	resp, _ := alice.do("GET", target, nil)
	verifyChallenge(t, alice, p, resp, hook)
	if msg := hook.last(t); msg.To != "+14155550100" {
		t.Fatalf("code sent to %q", msg.To)
	}
	resp, body := alice.do("GET", target, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "user=alice") || up.hits.Load() != 1 {
		t.Fatalf("after verification = %d %q, upstream hits %d", resp.StatusCode, body, up.hits.Load())
	}
	// A new login (another session cookie) with the old grant cookie: a
	// new challenge.
	setCookie(alice, p, "PHPSESSID", "sess-alice-2")
	if resp, _ := alice.do("GET", target, nil); resp.StatusCode != http.StatusSeeOther || up.hits.Load() != 1 {
		t.Fatalf("new session with the old grant = %d, upstream hits %d", resp.StatusCode, up.hits.Load())
	}

	hook.wait(t, 2) // the new session's code goes out after the answer
	sends := hook.count()
	carol := newBrowser(t, "", "")
	setCookie(carol, p, "PHPSESSID", "sess-carol")
	resp, page := carol.do("GET", target, nil)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "mobile number") {
		t.Fatalf("no number on file = %d", resp.StatusCode)
	}
	stranger := newBrowser(t, "", "")
	setCookie(stranger, p, "PHPSESSID", "sess-unknown")
	if resp, _ := stranger.do("GET", target, nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login.php" {
		t.Fatalf("unknown session = %d to %q, want the login page", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp := apiGet(t, target, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no cookie, API client = %d", resp.StatusCode)
	}
	if hook.count() != sends || up.hits.Load() != 1 {
		t.Fatalf("%d sends, %d upstream hits after refusals", hook.count()-sends, up.hits.Load())
	}

	if !logged(p, "no phone number on file") {
		t.Error("the missing number was not logged")
	}
	if !logged(p, identity.Hash("sess-carol")[:12]) {
		t.Error("the missing number's log event does not name the session hash")
	}
	logs := p.logs.String()
	for _, secret := range []string{"sess-alice", "sess-carol", "sess-unknown", "4155550100"} {
		if strings.Contains(logs, secret) {
			t.Errorf("caddy logged %q", secret)
		}
	}
}

// The cookie source asking the legacy app over HTTP: the session cookie
// is forwarded, the answer cached; the app failing (5xx) or too slow gives
// the clear 503 page, and nothing reaches the upstream.
func TestCookieHTTPLookupFailsClosed(t *testing.T) {
	// Not parallel: it measures how long a lookup takes.
	up := newUpstream(t)
	hook := newReceiver(t)
	var mode atomic.Value
	mode.Store("ok")
	var lookups atomic.Int32
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lookups.Add(1)
		if c, err := r.Cookie("shop_session"); err != nil || c.Value != "s-dana" || len(r.Cookies()) != 1 {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch mode.Load() {
		case "down":
			w.WriteHeader(http.StatusInternalServerError)
		case "slow":
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
		default:
			fmt.Fprint(w, `{"user":"dana","phone":"+14155550102"}`)
		}
	}))
	t.Cleanup(app.Close)
	block := fmt.Sprintf(`		identity cookie shop_session {
			phone_lookup http %s/api/me
			timeout 500ms
			cache off
		}`, app.URL)
	p := startCaddy(t, identityConfig("e2e-cookie-http:", block, hook.URL, up.URL))
	target := p.url("/account/payment-methods")

	dana := newBrowser(t, "", "")
	setCookie(dana, p, "shop_session", "s-dana")
	setCookie(dana, p, "tracking", "not-forwarded")
	resp, _ := dana.do("GET", target, nil)
	verifyChallenge(t, dana, p, resp, hook)
	if msg := hook.last(t); msg.To != "+14155550102" {
		t.Fatalf("code sent to %q", msg.To)
	}
	if resp, body := dana.do("GET", target, nil); resp.StatusCode != 200 || !strings.Contains(body, "user=dana") {
		t.Fatalf("after verification = %d %q", resp.StatusCode, body)
	}
	for _, m := range []string{"down", "slow"} {
		mode.Store(m)
		start := time.Now()
		resp, page := dana.do("GET", target, nil)
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(page, "temporarily unavailable") {
			t.Fatalf("lookup %s = %d", m, resp.StatusCode)
		}
		if d := time.Since(start); d > 2500*time.Millisecond {
			t.Fatalf("lookup %s took %s with a 500ms timeout", m, d)
		}
	}
	if up.hits.Load() != 1 {
		t.Fatalf("upstream hits %d, want 1", up.hits.Load())
	}
	mode.Store("ok")
	if resp, _ := dana.do("GET", target, nil); resp.StatusCode != 200 {
		t.Fatalf("app back = %d", resp.StatusCode)
	}
	if strings.Contains(p.logs.String(), "s-dana") {
		t.Error("caddy logged the session cookie")
	}
}
