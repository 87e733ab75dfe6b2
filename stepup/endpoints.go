package stepup

import (
	"crypto/hmac"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
	"github.com/caddy-stepup/caddy-stepup/stepup/page"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// ServeEndpoint serves the engine's own pages and API under
// Config.PathPrefix:
//
//	GET  {prefix}/challenge/{id}          the code page
//	POST {prefix}/challenge/{id}          verify a code (form: csrf, code)
//	POST {prefix}/challenge/{id}/resend   send a new code (form: csrf)
//	POST {prefix}/verify                  API: {"challenge":ID,"code":"123456"}
//	POST {prefix}/resend                  API: {"challenge":ID}
//	GET  {prefix}/jwks.json               the assertion's public key (EdDSA)
//	GET  {prefix}/status?challenge={id}   how the code's delivery goes
//	POST {prefix}/receipts/{sender}       a provider's delivery receipt
//	GET  {prefix}/receipts/{sender}       (receipts as GET, WhatsApp's check)
//	GET  {prefix}/challenge/{id}/passkey  the offer of a passkey after a code
//	POST {prefix}/challenge/{id}/passkey  enrol it (form: csrf, credential)
//	GET  {prefix}/challenge/{id}/continue go on without one ("Not now")
//	GET  {prefix}/passkeys                the user's passkeys (a fresh step-up)
//	POST {prefix}/passkeys                rename or remove one (form: csrf, action, id, name)
//
// Anything else under the prefix is 404. These requests never reach the
// upstream.
func (e *Engine) ServeEndpoint(w http.ResponseWriter, r *http.Request) error {
	rest := strings.TrimPrefix(r.URL.Path, e.cfg.PathPrefix)
	switch rest {
	case "/jwks.json":
		if e.assertion == nil || e.assertion.JWKS() == nil || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			e.renderStatus(w, r, http.StatusNotFound, page.StateNotFound, nil)
			return nil
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(e.assertion.JWKS())
		return nil
	case "/status":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			e.renderStatus(w, r, http.StatusMethodNotAllowed, page.StateError, nil)
			return nil
		}
		return e.showDelivery(w, r)
	case "/passkeys":
		return e.managePage(w, r)
	case "/verify", "/resend":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			e.renderStatus(w, r, http.StatusMethodNotAllowed, page.StateError, nil)
			return nil
		}
		if rest == "/verify" {
			return e.enterCode(&call{w: w, r: r, api: true})
		}
		return e.askResend(&call{w: w, r: r, api: true})
	}
	if name, ok := strings.CutPrefix(rest, "/receipts/"); ok && name != "" && !strings.Contains(name, "/") {
		return e.serveReceipt(w, r, name)
	}
	id, action, _ := strings.Cut(strings.TrimPrefix(rest, "/challenge/"), "/")
	if !strings.HasPrefix(rest, "/challenge/") || !validID(id) {
		e.renderStatus(w, r, http.StatusNotFound, page.StateNotFound, nil)
		return nil
	}
	switch {
	case action == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		return e.showChallenge(w, r, id)
	case action == "" && r.Method == http.MethodPost:
		return e.enterCode(&call{w: w, r: r, challenge: id})
	case action == "resend" && r.Method == http.MethodPost:
		return e.askResend(&call{w: w, r: r, challenge: id})
	case action == "passkey" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		return e.showEnrol(w, r, id)
	case action == "passkey" && r.Method == http.MethodPost:
		return e.enrol(w, r, id)
	case action == "continue" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		return e.leaveOffer(w, r, id)
	case action == "" || action == "resend" || action == "passkey":
		w.Header().Set("Allow", allowFor(action))
		e.renderStatus(w, r, http.StatusMethodNotAllowed, page.StateError, nil)
		return nil
	}
	e.renderStatus(w, r, http.StatusNotFound, page.StateNotFound, nil)
	return nil
}

func allowFor(action string) string {
	if action == "" || action == "passkey" {
		return "GET, HEAD, POST"
	}
	return "POST"
}

// validID reports whether s looks like an id made by randomID.
func validID(s string) bool {
	if len(s) != 22 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// bound is a challenge loaded for the identity and session that own it.
type bound struct {
	c *store.Challenge
	// p is the challenge's policy, as it was when the challenge was
	// made; nil when it changed since (the challenge then reads as
	// expired).
	p          *Policy
	id         identity.Identity
	session    string
	sessionKey string
	// k are the keys the challenge was made with (the current secret's,
	// or a previous one's during a rotation).
	k *keys
	// failures is the user's failure count, read with the challenge
	// under failureKey ("" when it was not).
	failures   store.FailureCount
	failureKey string
}

// load reads challenge id and checks that the request comes from the
// identity and session it was made for. Anyone else gets the same 404 as
// for a challenge that does not exist. ok is false when a response was
// written.
func (e *Engine) load(w http.ResponseWriter, r *http.Request, id string, api bool) (b bound, ok bool, err error) {
	var ident identity.Identity
	if !e.fromRequest {
		if ident, err = e.identify(r); err != nil {
			return b, false, e.identityError(w, r, "", err)
		}
	}
	// The user's failure count comes with the challenge: a verification
	// checks it first.
	var failureKey string
	var failures store.FailureCount
	var c *store.Challenge
	if e.fromRequest {
		c, err = e.store.Get(r.Context(), id)
	} else {
		failureKey = e.keys.userKey(ident.User)
		c, failures, err = e.store.GetWithFailures(r.Context(), id, failureKey)
	}
	if errors.Is(err, store.ErrNotFound) {
		e.renderStatus(w, r, http.StatusNotFound, page.StateNotFound, nil)
		return b, false, nil
	}
	if err != nil {
		return b, false, e.storeError(w, r, "get", err)
	}
	if e.fromRequest {
		// The identity came with the original request (a sign-up or reset
		// form), not with this one: the challenge binds to the session.
		ident = identity.Identity{User: c.User}
		e.audit.remember(r, c.User)
	}
	session := e.session(r, ident, api)
	var k *keys
	var sessionKey string
	for _, kk := range e.all {
		sk := kk.sessionKey(session)
		userOK := hmac.Equal([]byte(c.UserKey), []byte(e.challengeUserKey(kk, ident.User)))
		sessionOK := session != "" && hmac.Equal([]byte(c.SessionKey), []byte(sk))
		if userOK && sessionOK {
			k, sessionKey = kk, sk
			break
		}
	}
	if k == nil || c.Scope != e.scope(r) {
		// Another user's, another session's, or another handler's (two
		// sites sharing a secret and store): as if it did not exist.
		e.emit(r, &Event{Kind: EventVerifyFailed, Policy: c.Policy, Outcome: "foreign_challenge"})
		e.renderStatus(w, r, http.StatusNotFound, page.StateNotFound, nil)
		return b, false, nil
	}
	if gen, err := e.generation(r.Context()); err != nil {
		return b, false, e.storeError(w, r, "generation", err)
	} else if c.Generation != gen {
		// Made before the store lost its data: whatever made it single
		// use may be gone with it.
		e.emit(r, &Event{Kind: EventVerifyFailed, Policy: c.Policy, Outcome: "old_generation"})
		e.renderStatus(w, r, http.StatusNotFound, page.StateNotFound, nil)
		return b, false, nil
	}
	p := e.policies[c.Policy]
	if p == nil || c.PolicyVersion != p.Version || c.Mode != p.Mode.String() {
		// The policy changed (a reload) since the challenge was made:
		// it expires rather than open more, or other, than it was for.
		if now := e.now(); now.Before(c.Expires) {
			c.Expires = now
		}
		p = nil
	}
	return bound{c: c, p: p, id: ident, session: session, sessionKey: sessionKey, k: k,
		failures: failures, failureKey: failureKey}, true, nil
}

// showChallenge renders the code page in the state the challenge is in.
func (e *Engine) showChallenge(w http.ResponseWriter, r *http.Request, id string) error {
	b, ok, err := e.load(w, r, id, false)
	if !ok {
		return err
	}
	var notice string
	if r.URL.Query().Get("sent") == "1" && !sendFailed(b.c) {
		notice = "We sent you a new code."
	}
	e.renderChallenge(w, r, http.StatusOK, b, "", notice)
	return nil
}

// challengeState is the state a challenge is in at now.
func challengeState(c *store.Challenge, now time.Time) page.State {
	switch {
	case !c.Used.IsZero():
		return page.StateUsed
	case !now.Before(c.Expires):
		return page.StateExpired
	case c.Attempts >= c.MaxAttempts:
		return page.StateExhausted
	}
	return page.StateChallenge
}

// renderChallenge renders the page for b in whatever state it is in.
func (e *Engine) renderChallenge(w http.ResponseWriter, r *http.Request, status int, b bound, errMsg, notice string) {
	now := e.now()
	if st := challengeState(b.c, now); st != page.StateChallenge {
		e.renderStatus(w, r, http.StatusGone, st, finishedData(b.c))
		return
	}
	d := e.challengeData(b, now)
	e.offerPasskeyOn(r, &b, d)
	d.Error = errMsg
	d.Notice = notice
	e.renderStatus(w, r, status, page.StateChallenge, d.Data())
}

// sameOrigin refuses cross-site form posts: a browser says where a
// request comes from in Sec-Fetch-Site and Origin. Requests that carry
// neither (old browsers, scripts) rely on the CSRF token alone.
func sameOrigin(r *http.Request) bool {
	if len(r.Header["Origin"]) > 1 || len(r.Header["Sec-Fetch-Site"]) > 1 {
		return false // two answers to one question: not ours to pick
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if origin == "null" && r.Header.Get("Sec-Fetch-Site") == "same-origin" {
		// A browser hides the origin under some referrer policies; it
		// still says, in a header pages cannot set, that the post comes
		// from this origin.
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// otherChannels are the channels the next code of b's challenge may be
// asked on, besides the one the last code went by: those that reach the
// customer, when there are two or more (ChannelChooser). A challenge
// that hides its number (a reset flow, decoys included) is offered none:
// which channels reach a customer would tell whether the account exists.
func (e *Engine) otherChannels(b bound) []sender.Channel {
	cc, ok := e.sender.(ChannelChooser)
	if !ok || b.c.Hidden {
		return nil
	}
	all := cc.Channels(&sender.Message{To: b.c.Phone, Email: b.id.Email})
	if len(all) < 2 {
		return nil
	}
	current := cc.ChannelOf(b.c.SentBy)
	if current == "" {
		current = all[0]
	}
	out := make([]sender.Channel, 0, len(all)-1)
	for _, ch := range all {
		if ch != current {
			out = append(out, ch)
		}
	}
	return out
}

// chosenChannel checks a resend's "channel" value: empty (the usual
// way), or one of the channels offered (otherChannels).
func (e *Engine) chosenChannel(b bound, v string) (sender.Channel, bool) {
	if v == "" {
		return "", true
	}
	for _, ch := range e.otherChannels(b) {
		if string(ch) == v {
			return ch, true
		}
	}
	return "", false
}
