package e2e

// Passkeys through a real Caddy: in headless Chromium with a CDP virtual
// authenticator (ctap2, internal transport, user verification), and over
// the API protocol with a software authenticator written in Go
// (internal/softauthn). The site is served as http://localhost:PORT,
// which browsers treat as a secure context, with rp_id localhost.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/caddy-stepup/caddy-stepup/internal/softauthn"
)

func passkeyConfig(hook, up, prefix string) string {
	return fmt.Sprintf(`{
	admin 127.0.0.1:{ADMIN}
	auto_https off
}
http://localhost:{PORT}, http://127.0.0.1:{PORT} {
	stepup {
		redis %s {
			key_prefix %s
		}
		secret {env.STEPUP_SECRET}
		site_name "Demo Shop"
		identity header {
			user X-Remote-User
			phone X-Remote-Phone
		}
		sender webhook %s/sms {
			signing_secret %s
		}
		passkeys {
			rp_id localhost
			origins http://localhost:{PORT}
		}
		protect payment-methods {
			match {
				path /account/payment-methods*
			}
			methods passkey sms
		}
		protect checkout {
			match {
				method POST
				path /checkout
			}
			mode transaction
			describe "Pay {form.amount} to {form.merchant}"
			methods passkey sms
		}
	}
	@shop path /shop
	header @shop Content-Type "text/html; charset=utf-8"
	respond @shop %s 200
	reverse_proxy %s
}
`, sharedRedis.URL(), prefix, hook, signingSecret, "`"+shopPage+"`", strings.TrimPrefix(up, "http://"))
}

// local is the site's URL at localhost (the RP ID).
func (p *caddyProc) local(path string) string {
	return fmt.Sprintf("http://localhost:%d%s", p.port, path)
}

// virtualAuthenticator gives the tab a platform authenticator with user
// verification that answers at once, and returns its id.
func (tb *tab) virtualAuthenticator() webauthn.AuthenticatorID {
	tb.t.Helper()
	var id webauthn.AuthenticatorID
	tb.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return err
		}
		res, err := cdp.Call(ctx, tg, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
			Options: &webauthn.VirtualAuthenticatorOptions{
				Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
				Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true,
				HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
			},
		})
		id = res.AuthenticatorID
		return err
	}))
	return id
}

// credentials counts the credentials the virtual authenticator holds.
func (tb *tab) credentials(id webauthn.AuthenticatorID) int {
	tb.t.Helper()
	var n int
	tb.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		res, err := cdp.Call(ctx, tg, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
		n = len(res.Credentials)
		return err
	}))
	return n
}

// forget clears the tab's cookies: a later visit, without its grants.
func (tb *tab) forget() {
	tb.t.Helper()
	tb.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.ClearBrowserCookies, cdp.Empty{})
		return err
	}))
}

// onPasskeyChallenge waits for a challenge page that offers the passkey
// (its button shown by the script) and returns the challenge id.
func (tb *tab) onPasskeyChallenge() string {
	tb.t.Helper()
	tb.waitJS(`!!document.getElementById('passkey-button') && !document.getElementById('passkey-button').hidden`, 15*time.Second)
	m := challengeRE.FindStringSubmatch(evaluate[string](tb, `location.pathname`))
	if m == nil {
		tb.t.Fatalf("not on a challenge page: %s", evaluate[string](tb, `location.href`))
	}
	tb.clean("passkey challenge page")
	return m[1]
}

func TestPasskeyBrowser(t *testing.T) {
	t.Parallel()
	bin := os.Getenv("STEPUP_CHROMIUM")
	if bin == "" {
		bin = chromiumPath
	}
	axe := axeSource(t)
	shots := newShots(t)
	up := newUpstream(t)
	hook := newReceiver(t)
	c := startCaddy(t, passkeyConfig(hook.URL, up.URL, "e2e-passkey-browser:"))
	br := newChrome(t, bin, axe, shots)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("caddy's log:\n%s", c.logs)
		}
	})
	tb := br.tab(t, "alice", "+14155550100", "")
	auth := tb.virtualAuthenticator()
	target := c.local("/account/payment-methods")

	// 1. No passkey yet: SMS as ever, then the offer of a passkey.
	sent := hook.count()
	tb.navigate(target)
	id := tb.onChallenge()
	if evaluate[bool](tb, `!!document.getElementById('passkey-button')`) {
		t.Fatal("a passkey offered before one was enrolled")
	}
	code := hook.waitCode(t, sent, id)
	tb.do(chromedp.SendKeys(chromedp.ID("code"), code))
	tb.waitJS(`location.pathname.endsWith('/passkey') && !!document.getElementById('enrol-button') && !document.getElementById('enrol-button').hidden`, 15*time.Second)
	tb.loaded()
	tb.expectText("h1", "Use a passkey next time?")
	tb.clean("passkey offer")
	tb.axe("passkey offer")
	tb.shoot("flow-passkey-offer", false, phone)
	tb.reloadBy(chromedp.Click(chromedp.ID("enrol-button")))
	tb.waitJS(fmt.Sprintf(`location.href === %q`, target), 15*time.Second)
	if got := evaluate[string](tb, `document.body.innerText`); !strings.Contains(got, "upstream GET /account/payment-methods policy=payment-methods user=alice") {
		t.Fatalf("after the enrolment: %q", got)
	}
	if n := tb.credentials(auth); n != 1 {
		t.Fatalf("the authenticator holds %d credentials, want 1", n)
	}
	tb.clean("after enrolment")

	// 2. Session mode by passkey: no code sent, the passkey first.
	tb.forget()
	sent = hook.count()
	tb.navigate(target)
	tb.onPasskeyChallenge()
	tb.expectText("main", "Confirm it’s you with your passkey")
	tb.expectText(".resend", "Send a code by SMS instead")
	if evaluate[bool](tb, `!document.getElementById('verify').hidden`) {
		t.Error("the code form is shown although no code was sent")
	}
	tb.axe("passkey challenge")
	tb.shoot("flow-passkey-challenge", false, phone, desktop)
	tb.reloadBy(chromedp.Click(chromedp.ID("passkey-button")))
	tb.waitJS(fmt.Sprintf(`location.href === %q`, target), 15*time.Second)
	if got := evaluate[string](tb, `document.body.innerText`); !strings.Contains(got, "policy=payment-methods user=alice") {
		t.Fatalf("after the passkey: %q", got)
	}
	if m := up.lastAt("/account/payment-methods").Header.Get("Stepup-Method"); m != "passkey" {
		t.Errorf("upstream Stepup-Method %q, want passkey", m)
	}
	time.Sleep(300 * time.Millisecond)
	if hook.count() != sent {
		t.Error("a code was sent although the passkey answered")
	}
	tb.clean("after the passkey")

	// 3. A transaction approved by passkey: the page shows what is
	// approved, the signature covers exactly it, the request goes once.
	tb.navigate(c.local("/shop"))
	before, _ := up.posts()
	tb.do(chromedp.Click(chromedp.ID("pay")))
	tb.onPasskeyChallenge()
	tb.expectText(".what", "Pay EUR 42.00 to Café Müller")
	tb.axe("passkey transaction")
	tb.shoot("flow-passkey-transaction", false, phone, desktop)
	tb.reloadBy(chromedp.Click(chromedp.ID("passkey-button")))
	tb.waitJS(fmt.Sprintf(`location.href === %q`, c.local("/checkout")), 15*time.Second)
	reqs, bodies := up.posts()
	if len(reqs) != len(before)+1 || string(bodies[len(bodies)-1]) != "amount=EUR+42.00&merchant=Caf%C3%A9+M%C3%BCller" {
		t.Fatalf("upstream POSTs %d (before %d), last body %q", len(reqs), len(before), bodies[len(bodies)-1])
	}
	if m := reqs[len(reqs)-1].Header.Get("Stepup-Method"); m != "passkey" {
		t.Errorf("replayed with Stepup-Method %q", m)
	}
	tb.clean("transaction by passkey")

	// 4. A tampered transaction: the customer is shown EUR 42.00 and
	// approves it, but the assertion is posted for another, bigger
	// payment of the same session. Refused; nothing reaches the app.
	tb.navigate(c.local("/shop"))
	tb.do(chromedp.Click(chromedp.ID("pay")))
	small := tb.onPasskeyChallenge()
	tb.navigate(c.local("/shop"))
	tb.do(chromedp.Evaluate[chromedp.Void](`document.querySelector('input[name=amount]').value = 'EUR 9999.00'`), chromedp.Click(chromedp.ID("pay")))
	big := tb.onPasskeyChallenge()
	tb.expectText(".what", "Pay EUR 9999.00 to Café Müller")
	bigCSRF := evaluate[string](tb, `document.querySelector('#passkey-form input[name=csrf]').value`)
	tb.navigate(c.local("/.stepup/challenge/" + small))
	tb.onPasskeyChallenge()
	tb.expectText(".what", "Pay EUR 42.00 to Café Müller")
	before, _ = up.posts()
	tb.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const f = document.getElementById('passkey-form');
		f.action = %q; f.querySelector('input[name=csrf]').value = %q })()`, "/.stepup/challenge/"+big, bigCSRF)))
	tb.reloadBy(chromedp.Click(chromedp.ID("passkey-button")))
	tb.waitJS(`!!document.getElementById('passkey-error')`, 10*time.Second)
	tb.expectText("#passkey-error", "That passkey could not be used. Try again, or get a code by SMS instead.")
	tb.expectText("#code-meta", "4 attempts left.")
	tb.expectText(".what", "Pay EUR 9999.00 to Café Müller")
	tb.shoot("flow-passkey-refused", false, phone)
	if after, _ := up.posts(); len(after) != len(before) {
		t.Fatalf("the tampered transaction reached the upstream (%d POSTs, was %d)", len(after), len(before))
	}
	tb.clean("tampered transaction")

	// 5. The passkeys page, behind a fresh step-up: remove the passkey;
	// the next step-up falls back to SMS although the device still holds
	// the credential.
	tb.forget()
	tb.navigate(c.local("/.stepup/passkeys"))
	tb.onPasskeyChallenge()
	tb.reloadBy(chromedp.Click(chromedp.ID("passkey-button")))
	tb.waitJS(`location.pathname === '/.stepup/passkeys' && !!document.querySelector('.passkey-item')`, 15*time.Second)
	tb.loaded()
	tb.expectText("h1", "Your passkeys")
	if name := evaluate[string](tb, `document.querySelector('.passkey-item input[name=name]').value`); name != "Passkey 1" {
		t.Errorf("passkey named %q", name)
	}
	tb.axe("passkeys page")
	tb.shoot("flow-passkeys-page", false, phone)
	tb.reloadBy(chromedp.Click(chromedp.CSS(`.passkey-item form:last-of-type button`)))
	tb.expectText(".notice", "The passkey was removed.")
	tb.expectText("main", "You have no passkeys.")
	tb.clean("passkey removed")
	if n := tb.credentials(auth); n != 1 {
		t.Fatalf("the device should still hold its credential, holds %d", n)
	}
	tb.forget()
	sent = hook.count()
	tb.navigate(target)
	id = tb.onChallenge()
	if evaluate[bool](tb, `!!document.getElementById('passkey-button')`) {
		t.Fatal("a removed passkey is still offered")
	}
	tb.expectText("main", "We sent a 6-digit code to +1******0100.")
	code = hook.waitCode(t, sent, id)
	tb.do(chromedp.SendKeys(chromedp.ID("code"), code))
	tb.waitJS(`location.pathname.endsWith('/passkey') && !!document.getElementById('not-now')`, 15*time.Second)
	tb.reloadBy(chromedp.Click(chromedp.ID("not-now")))
	tb.waitJS(fmt.Sprintf(`location.href === %q`, target), 15*time.Second)
	if m := up.lastAt("/account/payment-methods").Header.Get("Stepup-Method"); m != "sms" {
		t.Errorf("after the SMS fallback Stepup-Method %q", m)
	}
	tb.clean("SMS fallback")

	// 6. Enrolment after a transaction approved by code: the payment
	// waits for the offer, and goes out once the passkey is created.
	tf := br.tab(t, "frank", "+14155550177", "")
	fauth := tf.virtualAuthenticator()
	tf.navigate(c.local("/shop"))
	sent = hook.count()
	before, _ = up.posts()
	tf.do(chromedp.Click(chromedp.ID("pay")))
	id = tf.onChallenge()
	code = hook.waitCode(t, sent, id)
	tf.do(chromedp.SendKeys(chromedp.ID("code"), code))
	tf.waitJS(`location.pathname.endsWith('/passkey') && !!document.getElementById('enrol-button') && !document.getElementById('enrol-button').hidden`, 15*time.Second)
	if after, _ := up.posts(); len(after) != len(before) {
		t.Fatal("the payment went out before the customer left the offer")
	}
	tf.reloadBy(chromedp.Click(chromedp.ID("enrol-button")))
	tf.waitJS(fmt.Sprintf(`location.href === %q`, c.local("/checkout")), 15*time.Second)
	if after, bodies := up.posts(); len(after) != len(before)+1 || string(bodies[len(bodies)-1]) != "amount=EUR+42.00&merchant=Caf%C3%A9+M%C3%BCller" {
		t.Fatalf("after the enrolment the upstream got %d POSTs (was %d)", len(after), len(before))
	}
	if n := tf.credentials(fauth); n != 1 {
		t.Fatalf("frank's authenticator holds %d credentials", n)
	}
	tf.clean("enrolment after a transaction")
}

// lastAt is the last request the upstream got for path.
func (u *upstream) lastAt(path string) *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	for i := len(u.seen) - 1; i >= 0; i-- {
		if u.seen[i].URL.Path == path {
			return u.seen[i]
		}
	}
	return &http.Request{Header: http.Header{}}
}

var islandRE = regexp.MustCompile(`(?s)<script type="application/json" id="stepup-data">(.*?)</script>`)

func islandOf(t *testing.T, page string) map[string]json.RawMessage {
	t.Helper()
	m := islandRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no script data in:\n%s", page)
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal([]byte(m[1]), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// apiJSON sends an API request with the browser's identity and cookies.
func (b *browser) apiJSON(method, rawURL string, body []byte, cookie string) (*http.Response, map[string]any) {
	b.t.Helper()
	req, _ := http.NewRequest(method, rawURL, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if len(body) > 0 && body[0] != '{' {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Remote-User", b.user)
	req.Header.Set("X-Remote-Phone", b.phone)
	if cookie != "" {
		req.Header.Set("Cookie", "Stepup-Grant="+cookie)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	if m == nil {
		m = map[string]any{"raw": string(data)}
	}
	return resp, m
}

// The API protocol end to end with a software authenticator in Go: the
// passkey enrolled through the offer after a code, then a transaction
// approved by an assertion built by hand; a tampered body and a reused
// assertion refused.
func TestPasskeyAPI(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	hook := newReceiver(t)
	c := startCaddy(t, passkeyConfig(hook.URL, up.URL, "e2e-passkey-api:"))
	auth := &softauthn.Authenticator{Origin: fmt.Sprintf("http://localhost:%d", c.port)}

	// Enrol, as a browser would, after a code.
	b := newBrowser(t, "erin", "+14155550123")
	sent := hook.count()
	resp, _ := b.do("GET", c.url("/account/payment-methods"), nil)
	loc := resolve(c.url("/"), resp.Header.Get("Location"))
	_, page := b.do("GET", loc, nil)
	hook.wait(t, sent+1)
	resp, _ = b.do("POST", loc, url.Values{"csrf": {html.UnescapeString(csrfOf(t, page))}, "code": {hook.last(t).Code}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasSuffix(resp.Header.Get("Location"), "/passkey") {
		t.Fatalf("code = %d %q, want the passkey offer", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, page = b.do("GET", loc+"/passkey", nil)
	var opts softauthn.CreationOptions
	if err := json.Unmarshal(islandOf(t, page)["create"], &opts); err != nil {
		t.Fatal(err)
	}
	cred, err := auth.Create(opts)
	if err != nil {
		t.Fatal(err)
	}
	resp, page = b.do("POST", loc+"/passkey", url.Values{"csrf": {html.UnescapeString(csrfOf(t, page))}, "credential": {string(cred)}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("enrol = %d\n%s", resp.StatusCode, page)
	}

	// A transaction over the API, approved by the passkey.
	body := []byte(`amount=25.00&merchant=ACME`)
	sent = hook.count()
	resp, ch := b.apiJSON("POST", c.url("/checkout"), body, "")
	if resp.StatusCode != http.StatusUnauthorized || ch["code_sent"] != false || fmt.Sprint(ch["methods"]) != "[passkey sms]" ||
		ch["webauthn"] == nil || ch["description"] != "Pay 25.00 to ACME" {
		t.Fatalf("challenge = %d %v", resp.StatusCode, ch)
	}
	raw, _ := json.Marshal(ch["webauthn"])
	var ro softauthn.RequestOptions
	_ = json.Unmarshal(raw, &ro)
	if ro.RPID != "localhost" {
		t.Fatalf("rpId %q", ro.RPID)
	}
	assertion, err := auth.Get(ro)
	if err != nil {
		t.Fatal(err)
	}
	verify := func(a []byte) (*http.Response, map[string]any) {
		v, _ := json.Marshal(map[string]any{"challenge": ch["challenge"], "assertion": json.RawMessage(a)})
		return b.apiJSON("POST", c.url(ch["verify_url"].(string)), v, "")
	}
	resp, out := verify(assertion)
	if resp.StatusCode != http.StatusOK || out["method"] != "passkey" || out["kind"] != "transaction" {
		t.Fatalf("verify = %d %v", resp.StatusCode, out)
	}
	grant := out["grant"].(string)
	noteSecret(grant)
	if resp, out := verify(assertion); resp.StatusCode != http.StatusGone {
		t.Fatalf("reused assertion = %d %v", resp.StatusCode, out)
	}
	before, _ := up.posts()
	if resp, _ := b.apiJSON("POST", c.url("/checkout"), []byte(`amount=2500.00&merchant=ACME`), grant); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("grant on a tampered body = %d", resp.StatusCode)
	}
	resp, _ = b.apiJSON("POST", c.url("/checkout"), body, grant)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("with the grant = %d", resp.StatusCode)
	}
	reqs, bodies := up.posts()
	if len(reqs) != len(before)+1 || string(bodies[len(bodies)-1]) != string(body) || reqs[len(reqs)-1].Header.Get("Stepup-Method") != "passkey" {
		t.Fatalf("upstream: %d POSTs (was %d), %v", len(reqs), len(before), reqs[len(reqs)-1].Header)
	}
	if hook.count() != sent {
		t.Error("a code was sent although the passkey answered")
	}
}
