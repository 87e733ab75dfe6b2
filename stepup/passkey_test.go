package stepup

import (
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/internal/softauthn"
	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

const testOrigin = "https://shop.example"

// withPasskeys configures passkeys for shop.example and has the
// payment-methods policy prefer them; checkout is a transaction policy
// that offers them too.
func withPasskeys(c *Config, ps []*Policy) {
	c.MaxBody = 64 << 10
	c.Passkeys = Passkeys{RPID: "shop.example", Origins: []string{testOrigin}}
	ps[0].Methods = []string{MethodPasskey, MethodSMS}
	ps[1] = &Policy{Name: "checkout", Mode: Transaction, Describe: "Pay {json.amount} to {json.payee}", Methods: []string{MethodPasskey, MethodSMS}}
}

var islandRE = regexp.MustCompile(`(?s)<script type="application/json" id="stepup-data">(.*?)</script>`)

// island is the page's script data.
func island(t *testing.T, page string) map[string]json.RawMessage {
	t.Helper()
	m := islandRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no script data in page:\n%s", page)
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal([]byte(m[1]), &out); err != nil {
		t.Fatalf("script data: %v\n%s", err, m[1])
	}
	return out
}

// enrolPasskey verifies alice by SMS on payment-methods, takes the offer
// and enrols auth's new passkey through the page, as a browser would.
func enrolPasskey(t *testing.T, h *harness, b *browser, auth *softauthn.Authenticator) {
	t.Helper()
	loc, csrf := b.start("/account/payment-methods")
	code := h.out.last(t).Code
	resp, _ := b.do("POST", loc, url.Values{"csrf": {csrf}, "code": {code}}, "Origin", h.srv.URL)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != loc+"/passkey" {
		t.Fatalf("code = %d to %q; want the passkey offer", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, page := b.do("GET", loc+"/passkey", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Use a passkey next time?") {
		t.Fatalf("offer = %d\n%s", resp.StatusCode, page)
	}
	var opts softauthn.CreationOptions
	if err := json.Unmarshal(island(t, page)["create"], &opts); err != nil {
		t.Fatal(err)
	}
	if opts.RP.ID != "shop.example" {
		t.Fatalf("rp id %q", opts.RP.ID)
	}
	cred, err := auth.Create(opts)
	if err != nil {
		t.Fatal(err)
	}
	resp, page = b.do("POST", loc+"/passkey", url.Values{"csrf": {csrfOf(t, page)}, "credential": {string(cred)}}, "Origin", h.srv.URL)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/account/payment-methods" {
		t.Fatalf("enrol = %d %q\n%s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
	// The offer is single use.
	resp, _ = b.do("POST", loc+"/passkey", url.Values{"csrf": {csrf}, "credential": {string(cred)}}, "Origin", h.srv.URL)
	if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusForbidden {
		t.Fatalf("second enrolment on one offer = %d", resp.StatusCode)
	}
}

func newAuthenticator() *softauthn.Authenticator {
	return &softauthn.Authenticator{Origin: testOrigin}
}

// apiPasskeyChallenge makes an API challenge and returns its body.
func apiPasskeyChallenge(t *testing.T, b *browser, method, path string, body []byte) map[string]any {
	t.Helper()
	resp, ch := b.apiDo(method, path, body)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("%s %s = %d %v", method, path, resp.StatusCode, ch)
	}
	return ch
}

func requestOptionsOf(t *testing.T, v any) softauthn.RequestOptions {
	t.Helper()
	b, _ := json.Marshal(v)
	var o softauthn.RequestOptions
	if err := json.Unmarshal(b, &o); err != nil || o.Challenge == "" {
		t.Fatalf("no webauthn options in %s", b)
	}
	return o
}

func (b *browser) apiAssert(challenge string, assertion []byte) (*http.Response, map[string]any) {
	body, _ := json.Marshal(map[string]any{"challenge": challenge, "assertion": json.RawMessage(assertion)})
	return b.apiDo("POST", "/.stepup/verify", body)
}

// The whole API protocol with a software authenticator: a passkey first,
// no code sent, the assertion verified, a grant that says passkey, and
// the upstream told how (Stepup-Method).
func TestPasskeyAPISession(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		h := newHarness(t, st, withPasskeys)
		alice := h.browser("alice", "+14155550100")
		auth := newAuthenticator()
		enrolPasskey(t, h, alice, auth)
		sent := h.out.count()

		api := h.browser("alice", "+14155550100")
		ch := apiPasskeyChallenge(t, api, "GET", "/account/payment-methods", nil)
		if m, _ := json.Marshal(ch["methods"]); string(m) != `["passkey","sms"]` || ch["code_sent"] != false {
			t.Fatalf("challenge = %v", ch)
		}
		if h.out.count() != sent {
			t.Fatal("a code was sent although a passkey comes first")
		}
		opts := requestOptionsOf(t, ch["webauthn"])
		if opts.RPID != "shop.example" {
			t.Fatalf("rpId %q", opts.RPID)
		}
		assertion, err := auth.Get(opts)
		if err != nil {
			t.Fatal(err)
		}
		resp, out := api.apiAssert(ch["challenge"].(string), assertion)
		if resp.StatusCode != http.StatusOK || out["method"] != MethodPasskey {
			t.Fatalf("verify = %d %v", resp.StatusCode, out)
		}
		h.secret(out["grant"].(string))
		// The same assertion again: the challenge is used.
		if resp, out := api.apiAssert(ch["challenge"].(string), assertion); resp.StatusCode != http.StatusGone {
			t.Fatalf("reused assertion = %d %v", resp.StatusCode, out)
		}
		resp, _ = api.apiDo("GET", "/account/payment-methods", nil, "Cookie", GrantCookie+"="+out["grant"].(string))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("with grant = %d", resp.StatusCode)
		}
		if up := *h.lastUp.Load(); up.Get("Stepup-Method") != MethodPasskey || up.Get("Stepup-User") != "alice" {
			t.Fatalf("upstream headers %v", up)
		}
	})
}

// A customer without a passkey gets SMS as before, even where passkeys
// come first; the 401 says sms only.
func TestPasskeyNoneFallsBackToSMS(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory(time.Minute), withPasskeys)
	bob := h.browser("bob", "+14155550101")
	ch := apiPasskeyChallenge(t, bob, "GET", "/account/payment-methods", nil)
	if m, _ := json.Marshal(ch["methods"]); string(m) != `["sms"]` || ch["code_sent"] != true || ch["webauthn"] != nil {
		t.Fatalf("challenge = %v", ch)
	}
	if h.out.count() != 1 {
		t.Fatal("no code sent")
	}
	// A passkey answer where none may answer (bob has none): refused
	// with 400, nothing spent, however often (R5-02).
	auth := newAuthenticator()
	if _, err := auth.Create(softauthn.CreationOptions{RP: struct {
		ID string `json:"id"`
	}{"shop.example"}}); err != nil {
		t.Fatal(err)
	}
	as, err := auth.Sign("AAAAAAAAAAAAAAAAAAAAAA")
	if err != nil {
		t.Fatal(err)
	}
	for range 8 {
		resp, out := bob.apiAssert(ch["challenge"].(string), auth.JSON(as))
		if resp.StatusCode != http.StatusBadRequest || out["error"] != "invalid_assertion" {
			t.Fatalf("an assertion of a user without passkeys = %d %v; want 400 invalid_assertion", resp.StatusCode, out)
		}
	}
	resp, out := bob.apiVerify(ch["challenge"].(string), h.out.last(t).Code)
	if resp.StatusCode != http.StatusOK || out["method"] != MethodSMS {
		t.Fatalf("code = %d %v", resp.StatusCode, out)
	}
}

// Transaction binding: the assertion signs a challenge derived from the
// transaction's hash and a single-use nonce. Signed for one transaction,
// it opens no other; reused, it opens nothing; the grant is the
// transaction's, and the upstream's assertion says hwk+user.
func TestPasskeyTransactionBinding(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		h := newHarness(t, st, withPasskeys)
		alice := h.browser("alice", "+14155550100")
		auth := newAuthenticator()
		enrolPasskey(t, h, alice, auth)

		api := h.browser("alice", "+14155550100")
		small := []byte(`{"amount":"10.00","payee":"ACME"}`)
		big := []byte(`{"amount":"9999.00","payee":"Mallory"}`)
		chSmall := apiPasskeyChallenge(t, api, "POST", "/checkout", small)
		chBig := apiPasskeyChallenge(t, api, "POST", "/checkout", big)
		if chSmall["description"] != "Pay 10.00 to ACME" {
			t.Fatalf("description %v", chSmall["description"])
		}
		// Signed for the small payment, posted for the big one: refused.
		signedSmall, err := auth.Get(requestOptionsOf(t, chSmall["webauthn"]))
		if err != nil {
			t.Fatal(err)
		}
		resp, out := api.apiAssert(chBig["challenge"].(string), signedSmall)
		if resp.StatusCode != http.StatusUnprocessableEntity || out["error"] != "invalid_assertion" || out["webauthn"] == nil {
			t.Fatalf("assertion of another transaction = %d %v", resp.StatusCode, out)
		}
		// The big one's attempt is spent: its options moved on (a new
		// nonce), and the old options' assertion no longer verifies.
		next := requestOptionsOf(t, out["webauthn"])
		if next.Challenge == requestOptionsOf(t, chBig["webauthn"]).Challenge {
			t.Fatal("the nonce did not change after an attempt")
		}
		stale, _ := auth.Get(requestOptionsOf(t, chBig["webauthn"]))
		if resp, out := api.apiAssert(chBig["challenge"].(string), stale); resp.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("assertion of a spent nonce = %d %v", resp.StatusCode, out)
		}
		if h.upstream.Load() != 0 {
			t.Fatal("the upstream was reached")
		}
		// The small one with its own assertion: verified.
		resp, out = api.apiAssert(chSmall["challenge"].(string), signedSmall)
		if resp.StatusCode != http.StatusOK || out["kind"] != "transaction" || out["method"] != MethodPasskey {
			t.Fatalf("verify = %d %v", resp.StatusCode, out)
		}
		grant := out["grant"].(string)
		h.secret(grant)
		// The grant opens the very request once, not a tampered one.
		if resp, _ := api.apiDo("POST", "/checkout", big, "Cookie", GrantCookie+"="+grant); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("grant on a tampered body = %d", resp.StatusCode)
		}
		if resp, _ := api.apiDo("POST", "/checkout", small, "Cookie", GrantCookie+"="+grant); resp.StatusCode != http.StatusOK {
			t.Fatalf("grant = %d", resp.StatusCode)
		}
		if string(*h.lastBody.Load()) != string(small) || (*h.lastUp.Load()).Get("Stepup-Method") != MethodPasskey {
			t.Fatalf("upstream got %q %v", *h.lastBody.Load(), *h.lastUp.Load())
		}
		if resp, _ := api.apiDo("POST", "/checkout", small, "Cookie", GrantCookie+"="+grant); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("grant used twice = %d", resp.StatusCode)
		}
		if h.upstream.Load() != 1 {
			t.Fatalf("upstream reached %d times", h.upstream.Load())
		}
	})
}

// Tampered assertions, a signature counter that goes back, and the
// shared defenses: every wrong passkey spends an attempt and a unit of
// the user's failure budget, and never becomes a success.
func TestPasskeyRefusals(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		h := newHarness(t, st, func(c *Config, ps []*Policy) {
			withPasskeys(c, ps)
			c.MaxAttempts = 10
		})
		alice := h.browser("alice", "+14155550100")
		auth := newAuthenticator()
		enrolPasskey(t, h, alice, auth)
		api := h.browser("alice", "+14155550100")
		ch := apiPasskeyChallenge(t, api, "GET", "/account/payment-methods", nil)
		id := ch["challenge"].(string)
		opts := requestOptionsOf(t, ch["webauthn"])
		wrong := func(name string, assertion []byte) {
			t.Helper()
			resp, out := api.apiAssert(id, assertion)
			if resp.StatusCode != http.StatusUnprocessableEntity || out["error"] != "invalid_assertion" {
				t.Fatalf("%s = %d %v", name, resp.StatusCode, out)
			}
			opts = requestOptionsOf(t, out["webauthn"])
		}
		// Signed over other client data than sent.
		as, _ := auth.Sign(opts.Challenge)
		as.ClientData = []byte(strings.Replace(string(as.ClientData), testOrigin, "https://evil.example", 1))
		wrong("tampered client data", auth.JSON(as))
		// Another origin, signed properly.
		evil := *auth
		evil.Origin = "https://evil.example"
		as, _ = evil.Sign(opts.Challenge)
		wrong("another origin", evil.JSON(as))
		// Another RP ID.
		other := *auth
		other.RPID = "evil.example"
		as, _ = other.Sign(opts.Challenge)
		wrong("another rp id", other.JSON(as))
		// No user verification.
		nouv := *auth
		nouv.Flags = softauthn.FlagUP
		as, _ = nouv.Sign(opts.Challenge)
		wrong("no user verification", nouv.JSON(as))
		// A counter that does not move on (a cloned authenticator, its
		// counter where it was at enrolment).
		clone := *auth
		clone.Counter = 0
		as, _ = clone.Sign(opts.Challenge)
		wrong("counter gone back", clone.JSON(as))
		if !strings.Contains(h.logs.String(), "passkey signature counter did not increase") {
			t.Error("the counter refusal is not logged")
		}
		// An unknown credential.
		stranger := newAuthenticator()
		_, _ = stranger.Create(softauthn.CreationOptions{RP: struct {
			ID string `json:"id"`
		}{"shop.example"}})
		as, _ = stranger.Sign(opts.Challenge)
		wrong("unknown credential", stranger.JSON(as))
		// Garbage: refused, nothing spent.
		resp, out := api.apiAssert(id, []byte(`{"id":"x","type":"public-key","response":{}}`))
		if resp.StatusCode != http.StatusBadRequest || out["error"] != "invalid_assertion" {
			t.Fatalf("garbage = %d %v", resp.StatusCode, out)
		}
		c, err := st.Get(t.Context(), id)
		if err != nil || c.Attempts != 6 || !c.Used.IsZero() {
			t.Fatalf("after six wrong passkeys: attempts %d, used %v, %v", c.Attempts, c.Used, err)
		}
		n, _, _ := st.Failures(t.Context(), h.e.keys.userKey("alice"))
		if n != 6 {
			t.Fatalf("failures %d, want 6", n)
		}
		// The right one still works, and gives the failures back? No:
		// failures stay counted; only this answer's unit is refunded.
		as, _ = auth.Sign(opts.Challenge)
		resp, out = api.apiAssert(id, auth.JSON(as))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("right passkey = %d %v", resp.StatusCode, out)
		}
		h.secret(out["grant"].(string))
		if h.upstream.Load() != 0 {
			t.Fatal("upstream reached")
		}
	})
}

// Wrong passkeys lock a user out as wrong codes do.
func TestPasskeyLockout(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory(time.Minute), func(c *Config, ps []*Policy) {
		withPasskeys(c, ps)
		c.MaxFailures = 3
	})
	alice := h.browser("alice", "+14155550100")
	auth := newAuthenticator()
	enrolPasskey(t, h, alice, auth)
	api := h.browser("alice", "+14155550100")
	ch := apiPasskeyChallenge(t, api, "GET", "/account/payment-methods", nil)
	stranger := newAuthenticator()
	stranger.RPID = "shop.example"
	_, _ = stranger.Create(softauthn.CreationOptions{})
	var last int
	for i := 0; i < 4; i++ {
		as, _ := stranger.Sign(requestOptionsOf(t, ch["webauthn"]).Challenge)
		resp, _ := api.apiAssert(ch["challenge"].(string), stranger.JSON(as))
		last = resp.StatusCode
	}
	if last != http.StatusTooManyRequests {
		t.Fatalf("after 4 wrong passkeys with max_failures 3: %d, want 429", last)
	}
	as, _ := auth.Sign(requestOptionsOf(t, ch["webauthn"]).Challenge)
	if resp, _ := api.apiAssert(ch["challenge"].(string), auth.JSON(as)); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a right passkey while locked = %d", resp.StatusCode)
	}
}

// The browser's page: the passkey first, no code sent, "Send a code by
// SMS instead" one tap away; the assertion posted with the form.
func TestPasskeyPageSession(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		h := newHarness(t, st, withPasskeys)
		alice := h.browser("alice", "+14155550100")
		auth := newAuthenticator()
		enrolPasskey(t, h, alice, auth)
		sent := h.out.count()
		// A new session (the grant cookie gone).
		dropGrants(alice)
		loc, csrf := alice.start("/account/payment-methods")
		if h.out.count() != sent {
			t.Fatal("a code was sent although a passkey comes first")
		}
		_, page := alice.do("GET", loc, nil)
		for _, want := range []string{`id="passkey-button"`, "Use your passkey", "Send a code by SMS instead", `id="verify" method="post" action="` + loc + `" novalidate hidden`} {
			if !strings.Contains(html.UnescapeString(page), want) {
				t.Fatalf("page lacks %q:\n%s", want, page)
			}
		}
		var opts softauthn.RequestOptions
		if err := json.Unmarshal(island(t, page)["passkey"], &opts); err != nil {
			t.Fatal(err)
		}
		as, _ := auth.Get(opts)
		resp, _ := alice.do("POST", loc, url.Values{"csrf": {csrf}, "assertion": {string(as)}}, "Origin", h.srv.URL)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/account/payment-methods" {
			t.Fatalf("assertion = %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		resp, _ = alice.do("GET", "/account/payment-methods", nil)
		if resp.StatusCode != http.StatusOK || (*h.lastUp.Load()).Get("Stepup-Method") != MethodPasskey {
			t.Fatalf("with the grant = %d %v", resp.StatusCode, *h.lastUp.Load())
		}
		// SMS instead: the resend sends the first code.
		dropGrants(alice)
		loc, csrf = alice.start("/account/payment-methods")
		resp, _ = alice.do("POST", loc+"/resend", url.Values{"csrf": {csrf}}, "Origin", h.srv.URL)
		if resp.StatusCode != http.StatusSeeOther || h.out.count() != sent+1 {
			t.Fatalf("SMS instead = %d, %d codes", resp.StatusCode, h.out.count()-sent)
		}
		_, page = alice.do("GET", loc, nil)
		if strings.Contains(page, "novalidate hidden") || !strings.Contains(page, "Use a passkey instead") && !strings.Contains(page, "Use your passkey") {
			t.Fatalf("after the code was sent the form is not shown:\n%s", page)
		}
	})
}

// The passkeys page: behind a fresh step-up; rename and remove; a
// removed passkey is no longer offered and SMS comes back.
func TestPasskeysPage(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		h := newHarness(t, st, withPasskeys)
		alice := h.browser("alice", "+14155550100")
		auth := newAuthenticator()
		enrolPasskey(t, h, alice, auth)
		// Without a fresh step-up: challenged (passkey first).
		resp, _ := alice.do("GET", "/.stepup/passkeys", nil)
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/.stepup/challenge/") {
			t.Fatalf("passkeys page without step-up = %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		// A change posted without one: refused (back to the page).
		resp, _ = alice.do("POST", "/.stepup/passkeys", url.Values{"csrf": {"x"}, "action": {"remove"}, "id": {b64.EncodeToString(auth.ID)}}, "Origin", h.srv.URL)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("remove without step-up = %d", resp.StatusCode)
		}
		if ps, _ := st.(store.PasskeyStore).Passkeys(t.Context(), h.e.keys.short("passkeys", "alice")); len(ps) != 1 {
			t.Fatal("removed without a fresh step-up")
		}
		loc := resp.Header.Get("Location")
		resp, _ = alice.do("GET", loc, nil)
		loc = resp.Header.Get("Location")
		_, page := alice.do("GET", loc, nil)
		var opts softauthn.RequestOptions
		_ = json.Unmarshal(island(t, page)["passkey"], &opts)
		as, _ := auth.Get(opts)
		resp, _ = alice.do("POST", loc, url.Values{"csrf": {csrfOf(t, page)}, "assertion": {string(as)}}, "Origin", h.srv.URL)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/.stepup/passkeys" {
			t.Fatalf("step-up for the page = %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		resp, page = alice.do("GET", "/.stepup/passkeys", nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Your passkeys") || !strings.Contains(page, "Passkey 1") {
			t.Fatalf("passkeys page = %d\n%s", resp.StatusCode, page)
		}
		id := b64.EncodeToString(auth.ID)
		csrf := csrfOf(t, page)
		// Someone else's form token: refused.
		resp, _ = alice.do("POST", "/.stepup/passkeys", url.Values{"csrf": {"forged"}, "action": {"rename"}, "id": {id}, "name": {"X"}}, "Origin", h.srv.URL)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/.stepup/passkeys" {
			t.Fatalf("forged token = %d", resp.StatusCode)
		}
		resp, _ = alice.do("POST", "/.stepup/passkeys", url.Values{"csrf": {csrf}, "action": {"rename"}, "id": {id}, "name": {"Work phone"}}, "Origin", h.srv.URL)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/.stepup/passkeys?done=renamed" {
			t.Fatalf("rename = %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		_, page = alice.do("GET", "/.stepup/passkeys?done=renamed", nil)
		if !strings.Contains(page, "Work phone") || !strings.Contains(page, "The passkey was renamed.") {
			t.Fatalf("after rename:\n%s", page)
		}
		resp, _ = alice.do("POST", "/.stepup/passkeys", url.Values{"csrf": {csrf}, "action": {"remove"}, "id": {id}}, "Origin", h.srv.URL)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/.stepup/passkeys?done=removed" {
			t.Fatalf("remove = %d", resp.StatusCode)
		}
		// Removed: SMS again, and the old passkey opens nothing.
		api := h.browser("alice", "+14155550100")
		ch := apiPasskeyChallenge(t, api, "GET", "/account/payment-methods", nil)
		if m, _ := json.Marshal(ch["methods"]); string(m) != `["sms"]` || ch["code_sent"] != true {
			t.Fatalf("after removal: %v", ch)
		}
	})
}

// Configuration: methods and the passkeys block are checked, through
// the one setDefaults/Validate path.
func TestPasskeyConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Passkeys
		ms   []string
		want string
	}{
		{"no rp id", Passkeys{}, []string{MethodPasskey, MethodSMS}, "configure passkeys"},
		{"no sms", Passkeys{RPID: "shop.example"}, []string{MethodPasskey}, "must include sms"},
		{"unknown", Passkeys{RPID: "shop.example"}, []string{"totp", MethodSMS}, "unknown method"},
		{"twice", Passkeys{RPID: "shop.example"}, []string{MethodSMS, MethodSMS}, "named twice"},
		{"bad rp", Passkeys{RPID: "https://shop.example"}, nil, "rp_id"},
		{"foreign origin", Passkeys{RPID: "shop.example", Origins: []string{"https://evil.example"}}, nil, "origin"},
		{"http origin", Passkeys{RPID: "shop.example", Origins: []string{"http://shop.example"}}, nil, "origin"},
		{"attestation", Passkeys{RPID: "shop.example", Attestation: "enterprise"}, nil, "attestation"},
		{"max", Passkeys{RPID: "shop.example", MaxPerUser: 51}, nil, "max_per_user"},
		{"window", Passkeys{RPID: "shop.example", ManageWindow: 2 * time.Hour}, nil, "manage_window"},
		{"options without rp", Passkeys{Origins: []string{"https://shop.example"}}, nil, "rp_id is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Secret: testSecret, Passkeys: tc.cfg}
			_, err := New(cfg, []*Policy{{Name: "p", Methods: tc.ms}}, Options{Store: store.NewMemory(time.Minute), Identity: &identity.Header{UserHeader: "X-U", PhoneHeader: "X-P"}, Sender: &outbox{}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	ok := Passkeys{RPID: "localhost", Origins: []string{"http://localhost:8443"}}
	if err := ok.setDefaults("Shop"); err != nil || ok.RPName != "Shop" || ok.Attestation != "none" || ok.MaxPerUser != DefaultMaxPasskeys {
		t.Fatalf("localhost: %v %+v", err, ok)
	}
}

// dropGrants forgets b's grant cookies (a later visit).
func dropGrants(b *browser) {
	for k := range b.jar {
		if strings.Contains(k, grantCookiePrefix) {
			delete(b.jar, k)
		}
	}
}

// An operator removes every passkey of a user (a lost device): SMS from
// then on.
func TestRemoveUserPasskeys(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory(time.Minute), withPasskeys)
	alice := h.browser("alice", "+14155550100")
	enrolPasskey(t, h, alice, newAuthenticator())
	dropGrants(alice)
	loc, csrf := alice.start("/account/payment-methods") // a passkey first: no code
	sent := h.out.count()
	if n, err := h.e.RemoveUserPasskeys(t.Context(), "alice"); n != 1 || err != nil {
		t.Fatalf("removed %d, %v", n, err)
	}
	// The pending challenge, made for the passkey now gone, says that no
	// code was sent and offers one.
	_, page := alice.do("GET", loc, nil)
	if strings.Contains(page, `id="passkey-button"`) || !strings.Contains(page, "Ask for a code below") ||
		!strings.Contains(page, "Send me a code by SMS") || strings.Contains(page, "We sent") {
		t.Fatalf("challenge after the passkeys were removed:\n%s", page)
	}
	if resp, _ := alice.do("POST", loc+"/resend", url.Values{"csrf": {csrf}}, "Origin", h.srv.URL); resp.StatusCode != http.StatusSeeOther || h.out.count() != sent+1 {
		t.Fatalf("first code = %d", resp.StatusCode)
	}
	ch := apiPasskeyChallenge(t, h.browser("alice", "+14155550100"), "GET", "/account/payment-methods", nil)
	if m, _ := json.Marshal(ch["methods"]); string(m) != `["sms"]` {
		t.Fatalf("after removal: %v", ch)
	}
}

// A transaction verified by code in a browser: the offer comes first,
// and the preserved request goes out once the customer leaves it, by
// "Not now" or by enrolling; never before, never twice.
func TestPasskeyOfferAfterTransaction(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		h := newHarness(t, st, withPasskeys)
		for _, enrol := range []bool{false, true} {
			alice := h.browser("alice", "+14155550100")
			body := []byte(`{"amount":"10.00","payee":"ACME"}`)
			resp, _ := alice.raw("POST", "/checkout", "application/json", body)
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("checkout = %d", resp.StatusCode)
			}
			loc := resp.Header.Get("Location")
			_, page := alice.do("GET", loc, nil)
			resp, _ = alice.do("POST", loc, url.Values{"csrf": {csrfOf(t, page)}, "code": {h.out.last(t).Code}}, "Origin", h.srv.URL)
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != loc+"/passkey" {
				t.Fatalf("code = %d %q, want the offer", resp.StatusCode, resp.Header.Get("Location"))
			}
			before := h.upstream.Load()
			_, page = alice.do("GET", loc+"/passkey", nil)
			if !strings.Contains(page, `href="`+loc+`/continue"`) {
				t.Fatalf("the offer's Not now does not go on through /continue:\n%s", page)
			}
			if enrol {
				var opts softauthn.CreationOptions
				_ = json.Unmarshal(island(t, page)["create"], &opts)
				cred, _ := newAuthenticator().Create(opts)
				resp, _ = alice.do("POST", loc+"/passkey", url.Values{"csrf": {csrfOf(t, page)}, "credential": {string(cred)}}, "Origin", h.srv.URL)
			} else {
				resp, _ = alice.do("GET", loc+"/continue", nil)
			}
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/checkout" || h.upstream.Load() != before {
				t.Fatalf("leaving the offer (enrol %v) = %d %q, upstream %d", enrol, resp.StatusCode, resp.Header.Get("Location"), h.upstream.Load()-before)
			}
			resp, _ = alice.do("GET", "/checkout", nil)
			if resp.StatusCode != http.StatusOK || h.upstream.Load() != before+1 || string(*h.lastBody.Load()) != string(body) {
				t.Fatalf("replay (enrol %v) = %d, upstream %d", enrol, resp.StatusCode, h.upstream.Load()-before)
			}
			if resp, _ := alice.do("GET", loc+"/continue", nil); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("continue again = %d", resp.StatusCode)
			}
			if resp, _ := alice.do("GET", "/checkout", nil); h.upstream.Load() != before+1 {
				t.Fatalf("replayed twice (%d)", resp.StatusCode)
			}
			// A stranger's session cannot go on with it.
			if resp, _ := h.browser("alice", "+14155550100").do("GET", loc+"/continue", nil); resp.StatusCode != http.StatusNotFound {
				t.Fatalf("another session's continue = %d", resp.StatusCode)
			}
		}
	})
}
