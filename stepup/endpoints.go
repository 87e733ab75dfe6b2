package stepup

import (
	"context"
	"crypto/hmac"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
	"github.com/caddy-stepup/caddy-stepup/stepup/page"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// maxFormBytes bounds the body of the engine's own forms and JSON.
const maxFormBytes = 4 << 10

// ServeEndpoint serves the engine's own pages and API under
// Config.PathPrefix:
//
//	GET  {prefix}/challenge/{id}          the code page
//	POST {prefix}/challenge/{id}          verify a code (form: csrf, code)
//	POST {prefix}/challenge/{id}/resend   send a new code (form: csrf)
//	POST {prefix}/verify                  API: {"challenge":ID,"code":"123456"}
//	POST {prefix}/resend                  API: {"challenge":ID}
//	GET  {prefix}/jwks.json               the assertion's public key (EdDSA)
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
	case "/verify", "/resend":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			e.renderStatus(w, r, http.StatusMethodNotAllowed, page.StateError, nil)
			return nil
		}
		if rest == "/verify" {
			return e.apiVerify(w, r)
		}
		return e.apiResend(w, r)
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
		return e.verify(w, r, id)
	case action == "resend" && r.Method == http.MethodPost:
		return e.resend(w, r, id)
	case action == "" || action == "resend":
		w.Header().Set("Allow", allowFor(action))
		e.renderStatus(w, r, http.StatusMethodNotAllowed, page.StateError, nil)
		return nil
	}
	e.renderStatus(w, r, http.StatusNotFound, page.StateNotFound, nil)
	return nil
}

func allowFor(action string) string {
	if action == "" {
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
	}
	session := e.session(r, ident, api)
	var k *keys
	var sessionKey string
	for _, kk := range e.all {
		sk := kk.sessionKey(session)
		userOK := hmac.Equal([]byte(c.UserKey), []byte(kk.userKey(ident.User)))
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

// readForm reads the engine's own small form bodies.
func (e *Engine) readForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		e.renderStatus(w, r, http.StatusBadRequest, page.StateBadForm, nil)
		return false
	}
	if !sameOrigin(r) {
		e.emit(r, &Event{Kind: EventVerifyFailed, Outcome: "cross_site"})
		e.renderStatus(w, r, http.StatusForbidden, page.StateForbidden, nil)
		return false
	}
	return true
}

// checkForm loads the challenge and checks the form's CSRF token.
func (e *Engine) checkForm(w http.ResponseWriter, r *http.Request, id string) (bound, bool, error) {
	if !e.readForm(w, r) {
		return bound{}, false, nil
	}
	b, ok, err := e.load(w, r, id, false)
	if !ok {
		return b, false, err
	}
	if !b.k.checkCSRF(r.PostForm.Get("csrf"), b.c.ID, b.sessionKey) {
		e.emit(r, &Event{Kind: EventVerifyFailed, Policy: b.c.Policy, Outcome: "csrf"})
		e.renderStatus(w, r, http.StatusForbidden, page.StateForbidden, nil)
		return b, false, nil
	}
	return b, true, nil
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

// outcome is what checking a code came to.
type outcome int

const (
	verified outcome = iota
	badFormat
	wrongCode
	lockedOut
	codeReplaced
	finished // used, expired or out of attempts: see the challenge state
	vanished // gone from the store
)

// checkCode verifies code against b's challenge. It spends an attempt
// before comparing (so concurrent guesses cannot outrun the limit),
// compares in constant time, counts failures against the user, and
// consumes the challenge on success: of concurrent right answers exactly
// one gets verified. lock is how long a lockout lasts.
func (e *Engine) checkCode(r *http.Request, b *bound, code string) (res outcome, lock time.Duration, err error) {
	res, lock, failures, err := e.compareCode(r.Context(), b, code)
	if err != nil {
		return res, lock, err
	}
	ev := &Event{Policy: b.c.Policy, Attempts: b.c.Attempts, Failures: failures}
	switch res {
	case verified:
		ev.Kind, ev.Outcome, ev.To = EventVerified, "ok", sender.MaskPhone(b.c.Phone)
	case wrongCode:
		ev.Kind, ev.Outcome = EventVerifyFailed, "wrong"
	case codeReplaced:
		ev.Kind, ev.Outcome = EventVerifyFailed, "replaced"
	case badFormat:
		ev.Kind, ev.Outcome = EventVerifyFailed, "malformed"
	case lockedOut:
		ev.Kind, ev.Outcome, ev.Duration = EventLocked, "locked", lock
	case vanished:
		ev.Kind, ev.Outcome = EventVerifyFailed, "not_found"
	case finished:
		ev.Kind, ev.Outcome = EventVerifyFailed, string(challengeState(b.c, e.now()))
	}
	e.emit(r, ev)
	return res, lock, nil
}

// compareCode does checkCode's work; failures is the user's failure count
// after a wrong code.
func (e *Engine) compareCode(ctx context.Context, b *bound, code string) (res outcome, lock time.Duration, failures int, err error) {
	c := b.c
	if b.failureKey == c.UserKey && b.failures.N >= e.cfg.MaxFailures {
		// Locked, as read with the challenge: no need to ask again.
		return lockedOut, b.failures.TTL, 0, nil
	}
	if b.p == nil || challengeState(c, e.now()) != page.StateChallenge {
		// Its policy changed, or it is over as read: nothing to compare.
		return finished, 0, 0, nil
	}
	code, ok := normalizeCode(code, e.cfg.CodeLength)
	if !ok {
		return badFormat, 0, 0, nil // nothing compared, nothing spent
	}
	// The user's failure budget is spent before the comparison, in one
	// atomic step: however many requests race, across any number of
	// challenges and instances, at most MaxFailures codes are compared
	// in a window. A right code gets its unit back.
	n, ttl, ok, err := e.store.ReserveFailure(ctx, c.UserKey, e.cfg.MaxFailures, e.failureWindow())
	if err != nil {
		return 0, 0, 0, err
	}
	if !ok {
		return lockedOut, ttl, n, nil
	}
	refund := func() {
		if err := e.store.RefundFailure(ctx, c.UserKey); err != nil {
			// The unit stays spent: fail closed, by one failure.
			e.log.Warn("giving back a failure reservation", zap.Error(err))
		}
	}
	now := e.now()
	stored, attempts, err := e.store.BeginAttempt(ctx, c.ID, now)
	if err != nil {
		refund()
		res, lock, err := e.stateOutcome(b, err, now)
		return res, lock, 0, err
	}
	c.Attempts = attempts
	if !hmac.Equal(stored, b.k.codeMAC(c.ID, code)) {
		if n >= e.cfg.MaxFailures {
			return lockedOut, ttl, n, nil
		}
		return wrongCode, 0, n, nil
	}
	err = e.store.Consume(ctx, c.ID, stored, now)
	if errors.Is(err, store.ErrNotDurable) {
		// Consumed on the primary, not acknowledged by its replicas:
		// fail closed; the challenge cannot be used again either way.
		return 0, 0, 0, err
	}
	refund()
	if err != nil {
		if errors.Is(err, store.ErrCodeChanged) {
			return codeReplaced, 0, 0, nil
		}
		res, lock, err := e.stateOutcome(b, err, now)
		return res, lock, 0, err
	}
	c.Used = now
	return verified, 0, 0, nil
}

// failureWindow is how long a user's failed codes are counted: shorter
// where strangers can name the user (RequestFailureWindow).
func (e *Engine) failureWindow() time.Duration {
	if e.fromRequest {
		return e.cfg.RequestFailureWindow
	}
	return e.cfg.FailureWindow
}

// stateOutcome maps a store state error onto b's challenge.
func (e *Engine) stateOutcome(b *bound, err error, now time.Time) (outcome, time.Duration, error) {
	switch {
	case errors.Is(err, store.ErrUsed):
		if b.c.Used.IsZero() {
			b.c.Used = now
		}
	case errors.Is(err, store.ErrExpired):
		b.c.Expires = now
	case errors.Is(err, store.ErrExhausted):
		b.c.Attempts = b.c.MaxAttempts
	case errors.Is(err, store.ErrNotFound):
		return vanished, 0, nil
	default:
		return 0, 0, err
	}
	return finished, 0, nil
}

// verify checks a code submitted from the page.
func (e *Engine) verify(w http.ResponseWriter, r *http.Request, id string) error {
	b, ok, err := e.checkForm(w, r, id)
	if !ok {
		return err
	}
	res, lock, err := e.checkCode(r, &b, r.PostForm.Get("code"))
	if err != nil {
		return e.storeError(w, r, "verify", err)
	}
	switch res {
	case badFormat:
		e.renderChallenge(w, r, http.StatusUnprocessableEntity, b, e.codeFormatError(), "")
		return nil
	case wrongCode:
		e.renderChallenge(w, r, http.StatusUnprocessableEntity, b, "That code is not correct. Check the latest message and try again.", "")
		return nil
	case codeReplaced:
		e.renderChallenge(w, r, http.StatusUnprocessableEntity, b, "A newer code was sent. Enter the code from the latest message.", "")
		return nil
	case lockedOut:
		e.renderLocked(w, r, lock)
		return nil
	case finished:
		e.renderChallenge(w, r, http.StatusGone, b, "", "")
		return nil
	case vanished:
		e.renderStatus(w, r, http.StatusNotFound, page.StateNotFound, nil)
		return nil
	}

	c := b.c
	if b.p.Mode == Session {
		tok, g, err := e.issue(r, &b)
		if err != nil {
			return e.storeError(w, r, "issue_grant", err)
		}
		setGrantCookie(w, r, c.Policy, tok, g.Expires.Sub(c.Used))
	}
	ret, ok := SafeReturnPath(c.ReturnURL)
	if !ok {
		ret = "/"
	}
	if c.HasStash {
		// The preserved request goes out when the browser arrives back at
		// its URL, so that the upstream's answer shows there.
		e.setReplayCookie(w, r, b.k, c.ID, b.sessionKey, ret)
	}
	http.Redirect(w, r, ret, http.StatusSeeOther)
	return nil
}

// resendCode replaces the code of b's challenge and sends it, within the
// cooldown and the send limit. The attempts already spent stay spent.
// res is verified when a code went out, finished or vanished when the
// challenge can take no resend (its state is then in b.c).
func (e *Engine) resendCode(r *http.Request, b *bound, channel sender.Channel) (retry time.Duration, limit bool, res outcome, err error) {
	c := b.c
	if st := challengeState(c, e.now()); st != page.StateChallenge {
		return 0, false, finished, nil
	}
	// The send cap and the cooldown, as the store will check them, before
	// any rate-limit budget is spent on a resend that cannot go out.
	if c.Sends >= e.cfg.MaxSends {
		return 0, true, verified, nil
	}
	if wait := e.cfg.ResendAfter - e.now().Sub(c.LastSend); !c.LastSend.IsZero() && wait > 0 {
		return wait, false, verified, nil
	}
	// A challenge that hides its number counts its resends alike whether
	// the account exists or not (allowHiddenSend); a decoy (no such
	// account, or a number that cannot take a code: c.Phone empty) goes
	// through the same cooldown and limits, but nothing is sent: its
	// "code" is a random value no one knows. Real resends of such flows
	// are sent after the answer (deliver), so both answer alike.
	var lim *limited
	var phone sender.Phone
	if c.Phone != "" {
		var perr error
		if phone, perr = sender.ParsePhone(c.Phone, ""); perr != nil {
			return 0, false, vanished, nil
		}
	}
	switch {
	case c.Hidden:
		lim, err = e.allowHiddenSend(r.Context(), c.UserKey)
	default:
		lim, err = e.allowSend(r.Context(), phone)
	}
	if err != nil {
		return 0, false, verified, err
	} else if lim != nil {
		e.emit(r, &Event{Kind: EventRateLimited, Policy: c.Policy, Limit: lim.name, Duration: lim.retry, Outcome: "resend"})
		return lim.retry, false, verified, nil
	}
	send := c.Phone != ""
	if send && c.Hidden {
		// The per-country budget still guards against pumping, silently.
		if lim, err := e.allowCountry(r.Context(), phone); err != nil {
			return 0, false, verified, err
		} else if lim != nil {
			e.emit(r, &Event{Kind: EventRateLimited, Policy: c.Policy, Limit: lim.name, Duration: lim.retry, Outcome: "hidden"})
			send = false
		}
	}
	code := randomID()
	if send {
		code = newCode(e.cfg.CodeLength)
	}
	now := e.now()
	_, err = e.store.Resend(r.Context(), c.ID, b.k.codeMAC(c.ID, code), now, e.cfg.ResendAfter, e.cfg.MaxSends)
	var cool *store.CooldownError
	switch {
	case errors.As(err, &cool):
		return cool.RetryAfter, false, verified, nil
	case errors.Is(err, store.ErrSendLimit):
		return 0, true, verified, nil
	case err != nil:
		res, _, err := e.stateOutcome(b, err, now)
		return 0, false, res, err
	}
	if send {
		e.deliver(r, c, b.id.Email, code, true, channel)
	}
	return 0, false, verified, nil
}

// resend sends a new code from the page.
func (e *Engine) resend(w http.ResponseWriter, r *http.Request, id string) error {
	b, ok, err := e.checkForm(w, r, id)
	if !ok {
		return err
	}
	channel, ok := e.chosenChannel(b, r.PostForm.Get("channel"))
	if !ok {
		e.renderStatus(w, r, http.StatusBadRequest, page.StateBadForm, nil)
		return nil
	}
	retry, limit, res, err := e.resendCode(r, &b, channel)
	switch {
	case err != nil:
		return e.storeError(w, r, "resend", err)
	case res == vanished:
		e.renderStatus(w, r, http.StatusNotFound, page.StateNotFound, nil)
	case res == finished:
		e.renderChallenge(w, r, http.StatusGone, b, "", "")
	case retry > 0:
		w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds())+1))
		e.renderChallenge(w, r, http.StatusTooManyRequests, b, "Please wait a little before asking for a new code.", "")
	case limit:
		e.renderChallenge(w, r, http.StatusTooManyRequests, b, "No more codes can be sent for this request. Use the last code you received.", "")
	default:
		http.Redirect(w, r, e.challengeURL(b.c.ID)+"?sent=1", http.StatusSeeOther)
	}
	return nil
}

// codeFormatError asks for a code of the right shape.
func (e *Engine) codeFormatError() string {
	return "Enter the " + strconv.Itoa(e.cfg.CodeLength) + "-digit code from the message."
}
