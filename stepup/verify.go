package stepup

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup/page"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// Entering a code and asking for a new one, from the page (a form with a
// CSRF token) or the API (JSON): one core decides what a code or a
// resend comes to (an outcome), and one table says how each outcome is
// told (answers), as a page or as JSON.

// maxFormBytes bounds the body of the engine's own forms and JSON.
const maxFormBytes = 8 << 10

// call is one request to the code endpoints: browser or API is decided
// once, by the endpoint it came to.
type call struct {
	w   http.ResponseWriter
	r   *http.Request
	api bool
	// challenge is the challenge's id; code and channel are what the
	// form or the JSON says.
	challenge, code, channel string
	// assertion is a passkey's answer instead of a code (JSON), if any.
	assertion []byte
}

// proof is what a call offers to open a challenge: a code, or a
// passkey's assertion. Both go through the same core (compare): the
// same failure budget and attempt, spent before the check, the same
// consumption.
type proof interface {
	// method names it: MethodSMS or MethodPasskey.
	method() string
	// parse checks its form, before anything is spent: verified when it
	// can be checked, else the outcome (badFormat, badAssertion). An
	// error is the store's.
	parse(ctx context.Context, e *Engine, b *bound) (outcome, error)
	// matches checks it against b's challenge once an attempt was spent:
	// stored is the current code's MAC, n the attempts made, this one
	// included.
	matches(ctx context.Context, e *Engine, b *bound, stored []byte, n int) (bool, error)
}

// codeProof is a code typed in (or filled in from the SMS).
type codeProof struct{ code string }

func (*codeProof) method() string { return MethodSMS }

func (cp *codeProof) parse(_ context.Context, e *Engine, _ *bound) (outcome, error) {
	code, ok := normalizeCode(cp.code, e.cfg.CodeLength)
	if !ok {
		return badFormat, nil
	}
	cp.code = code
	return verified, nil
}

func (cp *codeProof) matches(_ context.Context, _ *Engine, b *bound, stored []byte, _ int) (bool, error) {
	return hmac.Equal(stored, b.k.codeMAC(b.c.ID, cp.code)), nil
}

// proof is the call's code or assertion.
func (k *call) proof() proof {
	if len(k.assertion) > 0 {
		return &passkeyProof{raw: k.assertion}
	}
	return &codeProof{code: k.code}
}

// outcome is what entering a code or asking for a new one came to.
type outcome int

const (
	verified outcome = iota // the code was right: the challenge is consumed
	sent                    // a new code went out
	badFormat
	wrongCode
	codeReplaced // the code was right for a code a resend replaced
	lockedOut
	tooEarly  // a resend within the cooldown or a send budget
	sendLimit // the challenge sent all the codes it may
	badChannel
	finished // used, expired or out of attempts: see the challenge state
	vanished // gone from the store
	// badAssertion: a passkey answer that cannot be read, or one offered
	// where no passkey may answer (nothing spent).
	badAssertion
	// wrongPasskey: the passkey's answer did not verify (an attempt and
	// a failure spent, as for a wrong code).
	wrongPasskey
)

// answer is how an outcome is told: its status, the error the challenge
// page shows (in English; the page translates it), and the API's error
// code and message.
type answer struct {
	status       int
	text         string
	code, detail string
}

// answers tells the outcomes that leave the challenge open. The others
// answer with a page or an error of their own (tell).
var answers = map[outcome]answer{
	badFormat:    {http.StatusUnprocessableEntity, "", "invalid_code", ""}, // the format, in tell
	wrongCode:    {http.StatusUnprocessableEntity, "That code is not correct. Check the latest message and try again.", "invalid_code", "the code is not correct"},
	codeReplaced: {http.StatusUnprocessableEntity, "A newer code was sent. Enter the code from the latest message.", "invalid_code", "the code is not correct"},
	tooEarly:     {http.StatusTooManyRequests, "Please wait a little before asking for a new code.", "resend_too_early", "wait before asking for a new code"},
	sendLimit:    {http.StatusTooManyRequests, "No more codes can be sent for this request. Use the last code you received.", "send_limit", "no more codes can be sent for this challenge"},
	badAssertion: {http.StatusBadRequest, "That passkey could not be used. Try again, or get a code by SMS instead.", "invalid_assertion", "the assertion cannot be read, or this challenge takes no passkey"},
	wrongPasskey: {http.StatusUnprocessableEntity, "That passkey could not be used. Try again, or get a code by SMS instead.", "invalid_assertion", "the passkey could not be verified"},
}

// apiRequest is the body of the verify and resend calls.
type apiRequest struct {
	Challenge string `json:"challenge"`
	Code      string `json:"code"`
	// Assertion is a passkey's answer instead of a code: the
	// PublicKeyCredential as JSON (verify only).
	Assertion json.RawMessage `json:"assertion,omitempty"`
	// Channel (resend only) asks for the code on another channel, one
	// of the challenge's "channels".
	Channel string `json:"channel,omitempty"`
}

// open reads the call (a small form from the same origin, or JSON) and
// loads its challenge for the identity and session that own it, checking
// a form's CSRF token. ok is false when it has answered the request.
func (e *Engine) open(k *call) (b bound, ok bool, err error) {
	w, r := k.w, k.r
	if k.api {
		// Requiring application/json keeps cross-site forms out: a
		// browser cannot send it cross-origin without a CORS preflight,
		// which we never grant.
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
			page.WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send the request as application/json", nil)
			return b, false, nil
		}
		var req apiRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxFormBytes))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || !validID(req.Challenge) || len(req.Code) > 64 || (req.Code != "" && len(req.Assertion) > 0) {
			page.WriteError(w, http.StatusBadRequest, "bad_request", `send {"challenge":ID,"code":"123456"} or {"challenge":ID,"assertion":{...}}`, nil)
			return b, false, nil
		}
		k.challenge, k.code, k.channel, k.assertion = req.Challenge, req.Code, req.Channel, req.Assertion
		return e.load(w, r, k.challenge, true)
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		e.respond(w, r, true, http.StatusBadRequest, page.StateBadForm, nil)
		return b, false, nil
	}
	if !sameOrigin(r) {
		e.emit(r, &Event{Kind: EventVerifyFailed, Outcome: "cross_site"})
		e.respond(w, r, true, http.StatusForbidden, page.StateForbidden, nil)
		return b, false, nil
	}
	k.code, k.channel = r.PostForm.Get("code"), r.PostForm.Get("channel")
	if a := r.PostForm.Get("assertion"); a != "" {
		k.assertion = []byte(a)
	}
	if b, ok, err = e.load(w, r, k.challenge, false); !ok {
		return b, false, err
	}
	if !b.k.checkCSRF(r.PostForm.Get("csrf"), b.c.ID, b.sessionKey) {
		e.emit(r, &Event{Kind: EventVerifyFailed, Policy: b.c.Policy, Outcome: "csrf"})
		e.respond(w, r, true, http.StatusForbidden, page.StateForbidden, nil)
		return b, false, nil
	}
	return b, true, nil
}

// enterCode checks the code of a call: a right one is answered with its
// grant (the API), or a grant cookie and the way back to the protected
// page (browsers, with the preserved request's replay cookie).
func (e *Engine) enterCode(k *call) error {
	b, ok, err := e.open(k)
	if !ok {
		return err
	}
	res, lock, err := e.checkCode(k.r, &b, k.proof())
	if err != nil {
		return e.storeError(k.w, k.r, "verify", err)
	}
	if res != verified {
		return e.tell(k, &b, res, lock)
	}
	w, r, c := k.w, k.r, b.c
	if k.api || b.p.Mode == Session {
		tok, g, err := e.issue(r, &b)
		if err != nil {
			return e.storeError(w, r, "issue_grant", err)
		}
		if k.api {
			kind := "session"
			if g.Kind == TransactionGrant {
				kind = "transaction"
			}
			out := map[string]any{
				"grant":      tok,
				"policy":     c.Policy,
				"kind":       kind,
				"method":     c.Method,
				"expires_at": g.Expires.UTC().Format(time.RFC3339),
				"cookie":     GrantCookie,
			}
			if e.cfg.GrantHeader {
				out["header"] = GrantHeader
			}
			page.WriteJSON(w, http.StatusOK, out)
			return nil
		}
		setGrantCookie(w, r, c.Policy, tok, g.Expires.Sub(c.Used))
	}
	if e.offerEnrol(r, &b) {
		// Verified by code where passkeys are offered: "use a passkey
		// next time?" before going on (a preserved request goes out
		// when the browser leaves the offer: goOn).
		http.Redirect(w, r, e.enrolURL(c.ID), http.StatusSeeOther)
		return nil
	}
	e.goOn(w, r, &b)
	return nil
}

// goOn sends the browser whose challenge b was just verified back where
// it was going; a preserved request goes out when it arrives there, so
// that the upstream's answer shows at its URL.
func (e *Engine) goOn(w http.ResponseWriter, r *http.Request, b *bound) {
	c := b.c
	ret, ok := SafeReturnPath(c.ReturnURL)
	if !ok {
		ret = "/"
	}
	if c.HasStash {
		e.setReplayCookie(w, r, b.k, c.ID, b.sessionKey, ret)
	}
	http.Redirect(w, r, ret, http.StatusSeeOther)
}

// askResend sends a new code for a call's challenge, on the channel it
// chose if any.
func (e *Engine) askResend(k *call) error {
	b, ok, err := e.open(k)
	if !ok {
		return err
	}
	channel, ok := e.chosenChannel(b, k.channel)
	if !ok {
		return e.tell(k, &b, badChannel, 0)
	}
	res, wait, err := e.resendCode(k.r, &b, channel, k.api)
	if err != nil {
		return e.storeError(k.w, k.r, "resend", err)
	}
	if res != sent {
		return e.tell(k, &b, res, wait)
	}
	if !k.api {
		http.Redirect(k.w, k.r, e.challengeURL(b.c.ID)+"?sent=1", http.StatusSeeOther)
		return nil
	}
	// b.c holds the delivery's outcome (deliver records it there too).
	c := b.c
	page.WriteJSON(k.w, http.StatusOK, map[string]any{
		"challenge":    c.ID,
		"to":           maskedTo(c),
		"sent":         !sendFailed(c),
		"resend_after": int(e.cfg.ResendAfter.Seconds()),
		"expires_at":   c.Expires.UTC().Format(time.RFC3339),
		"channels":     channelNames(e.otherChannels(b)),
	})
	return nil
}

// tell answers an outcome other than verified or sent, as a page or as
// JSON: the one place where outcomes become answers. wait is how long a
// lockout lasts, or how long until a resend is allowed.
func (e *Engine) tell(k *call, b *bound, res outcome, wait time.Duration) error {
	w, r, c := k.w, k.r, b.c
	switch res {
	case lockedOut:
		e.renderLocked(w, r, !k.api, wait)
		return nil
	case vanished:
		e.respond(w, r, !k.api, http.StatusNotFound, page.StateNotFound, nil)
		return nil
	case badChannel:
		if k.api {
			page.WriteError(w, http.StatusBadRequest, "bad_channel", "channel must be one of the challenge's channels", nil)
		} else {
			e.respond(w, r, true, http.StatusBadRequest, page.StateBadForm, nil)
		}
		return nil
	}
	if res == finished || challengeState(c, e.now()) != page.StateChallenge {
		// Over: the last attempt was wrong, or it expired, was used.
		st := challengeState(c, e.now())
		if k.api {
			page.WriteError(w, http.StatusGone, string(st), page.StateText[st][1], nil)
		} else {
			e.respond(w, r, true, http.StatusGone, st, finishedData(c))
		}
		return nil
	}
	a := answers[res]
	if res == badFormat {
		a.text = "Enter the " + strconv.Itoa(e.cfg.CodeLength) + "-digit code from the message."
		a.detail = a.text
	}
	var extra map[string]any
	switch {
	case res == tooEarly:
		secs := int(wait.Seconds()) + 1
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		extra = map[string]any{"retry_after": secs}
	case a.code == "invalid_code" || res == wrongPasskey:
		extra = map[string]any{"attempts_left": c.MaxAttempts - c.Attempts}
	}
	if k.api && (res == wrongPasskey || res == badAssertion) && b.p != nil && b.p.offers(MethodPasskey) {
		// A new try needs the options of the next attempt (a new nonce).
		if owner, err := e.passkeysOf(r.Context(), b.id.User); err == nil && len(owner.keys) > 0 {
			if extra == nil {
				extra = map[string]any{}
			}
			extra["webauthn"] = e.assertOptions(b, owner.keys)
		}
	}
	if k.api {
		page.WriteError(w, a.status, a.code, a.detail, extra)
		return nil
	}
	e.renderChallenge(w, r, a.status, *b, a.text, "")
	return nil
}

// checkCode verifies a code or a passkey's assertion against b's
// challenge. It spends an attempt before comparing (so concurrent
// guesses cannot outrun the limit), compares in constant time, counts
// failures against the user, and consumes the challenge on success: of
// concurrent right answers exactly one gets verified. lock is how long a
// lockout lasts.
func (e *Engine) checkCode(r *http.Request, b *bound, in proof) (res outcome, lock time.Duration, err error) {
	res, lock, failures, err := e.compare(r.Context(), b, in)
	if err != nil {
		return res, lock, err
	}
	ev := &Event{Policy: b.c.Policy, Attempts: b.c.Attempts, Failures: failures, Method: in.method()}
	switch res {
	case verified:
		ev.Kind, ev.Outcome, ev.To = EventVerified, "ok", sender.MaskPhone(b.c.Phone)
		ev.Country = countryOf(b.c.Phone)
		if in.method() == MethodSMS {
			e.pumpVerified(r.Context(), b.c)
			ev.Sender, ev.Channel = b.c.SentBy, string(e.channelOf(b.c.SentBy))
			if !b.c.LastSend.IsZero() {
				ev.Duration = b.c.Used.Sub(b.c.LastSend) // from the send of the code
			}
		}
	case wrongPasskey:
		ev.Kind, ev.Outcome = EventVerifyFailed, "wrong"
	case badAssertion:
		ev.Kind, ev.Outcome = EventVerifyFailed, "malformed"
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

// compare does checkCode's work; failures is the user's failure count
// after a wrong answer.
func (e *Engine) compare(ctx context.Context, b *bound, in proof) (res outcome, lock time.Duration, failures int, err error) {
	c := b.c
	if b.failureKey == c.UserKey && b.failures.N >= e.cfg.MaxFailures {
		// Locked, as read with the challenge: no need to ask again.
		return lockedOut, b.failures.TTL, 0, nil
	}
	if b.p == nil || challengeState(c, e.now()) != page.StateChallenge {
		// Its policy changed, or it is over as read: nothing to compare.
		return finished, 0, 0, nil
	}
	if res, err := in.parse(ctx, e, b); err != nil || res != verified {
		return res, 0, 0, err // nothing compared, nothing spent
	}
	// The user's failure budget is spent before the comparison, in one
	// atomic step: however many requests race, across any number of
	// challenges and instances, at most MaxFailures codes are compared
	// in a window. A right code gets its unit back. The challenge's
	// attempt is begun with it: in one atomic step where the store can
	// (store.AttemptReserver: a challenge that is over reserves nothing,
	// a refused reservation spends no attempt), else once reserved.
	now := e.now()
	ra, reserved := store.ReservedAttempt{}, false
	if rb, ok := e.store.(store.AttemptReserver); ok {
		ra, reserved = rb.ReserveAndBegin(ctx, c.UserKey, e.cfg.MaxFailures, e.failureWindow(), c.ID, now)
	}
	if !reserved {
		ra.Failures, ra.TTL, ra.Reserved, ra.ReserveErr = e.store.ReserveFailure(ctx, c.UserKey, e.cfg.MaxFailures, e.failureWindow())
		if ra.ReserveErr == nil && ra.Reserved {
			ra.MAC, ra.Attempts, ra.BeginErr = e.store.BeginAttempt(ctx, c.ID, now)
		}
	}
	n, ttl := ra.Failures, ra.TTL
	if ra.ReserveErr != nil {
		return 0, 0, 0, ra.ReserveErr
	}
	refund := func() {
		if err := e.store.RefundFailure(ctx, c.UserKey); err != nil {
			// The unit stays spent: fail closed, by one failure.
			e.log.Warn("giving back a failure reservation", zap.Error(err))
		}
	}
	if ra.BeginErr != nil {
		// The challenge itself is over (attempts spent, used, expired):
		// that is the answer. Where the reservation came first (a store
		// without AttemptReserver), its unit goes back.
		if ra.Reserved {
			refund()
		}
		res, lock, err := e.stateOutcome(b, ra.BeginErr, now)
		return res, lock, 0, err
	}
	if !ra.Reserved {
		return lockedOut, ttl, n, nil
	}
	stored, attempts := ra.MAC, ra.Attempts
	c.Attempts = attempts
	ok, err := in.matches(ctx, e, b, stored, attempts)
	if err != nil {
		// The attempt and the failure stay spent: fail closed.
		return 0, 0, 0, err
	}
	if !ok {
		switch {
		case n >= e.cfg.MaxFailures:
			return lockedOut, ttl, n, nil
		case in.method() == MethodPasskey:
			return wrongPasskey, 0, n, nil
		}
		return wrongCode, 0, n, nil
	}
	var done bool
	if cr, ok := e.store.(store.ConsumeRefunder); ok {
		// Consume and refund in one round trip, where no replica must
		// acknowledge the consume first.
		var refundErr error
		err, refundErr, done = cr.ConsumeRefund(ctx, c.ID, stored, now, in.method(), c.UserKey)
		if done && refundErr != nil {
			e.log.Warn("giving back a failure reservation", zap.Error(refundErr))
		}
	}
	if !done {
		err = e.store.Consume(ctx, c.ID, stored, now, in.method())
		if errors.Is(err, store.ErrNotDurable) {
			// Consumed on the primary, not acknowledged by its replicas:
			// fail closed; the challenge cannot be used again either way.
			return 0, 0, 0, err
		}
		refund()
	}
	if err != nil {
		if errors.Is(err, store.ErrCodeChanged) {
			return codeReplaced, 0, 0, nil
		}
		res, lock, err := e.stateOutcome(b, err, now)
		return res, lock, 0, err
	}
	c.Used, c.Method = now, in.method()
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

// resendCode replaces the code of b's challenge and sends it (on channel
// only, when one is chosen), within the cooldown and the send limit. The
// attempts already spent stay spent. It comes to sent, tooEarly (wait
// says how long), sendLimit, or finished or vanished when the challenge
// can take no resend (its state is then in b.c).
//
// A browser's code is sent after the answer (the page shows how the
// send goes); an API client's before it, as its answer says whether it
// went out.
func (e *Engine) resendCode(r *http.Request, b *bound, channel sender.Channel, api bool) (res outcome, wait time.Duration, err error) {
	c := b.c
	if st := challengeState(c, e.now()); st != page.StateChallenge {
		return finished, 0, nil
	}
	// The send cap and the cooldown, as the store will check them, before
	// any rate-limit budget is spent on a resend that cannot go out.
	if c.Sends >= e.cfg.MaxSends {
		return sendLimit, 0, nil
	}
	if wait := e.cfg.ResendAfter - e.now().Sub(c.LastSend); !c.LastSend.IsZero() && wait > 0 {
		return tooEarly, wait, nil
	}
	// A challenge that hides its number counts its resends alike whether
	// the account exists or not (allowHiddenSend); a decoy (no such
	// account, or a number that cannot take a code: c.Phone empty) goes
	// through the same cooldown and limits, but nothing is sent: its
	// "code" is a random value no one knows. Real resends of such flows
	// are sent after the answer (deliver), so both answer alike.
	var lim *limited
	var phone sender.Phone
	if !c.Decoy() {
		var perr error
		if phone, perr = sender.ParsePhone(c.Phone, ""); perr != nil {
			return vanished, 0, nil
		}
	}
	if !c.Hidden && !c.Decoy() {
		// The pumping defense first: a blocked prefix spends no budget.
		lim, err = e.allowPumping(r, c.Policy, phone)
	}
	switch {
	case lim != nil || err != nil:
	case c.Hidden:
		lim, err = e.allowHiddenSend(r.Context(), c.UserKey)
	default:
		lim, err = e.allowSend(r.Context(), phone)
	}
	if err != nil {
		return 0, 0, err
	} else if lim != nil {
		e.emit(r, &Event{Kind: EventRateLimited, Policy: c.Policy, Limit: lim.name, Duration: lim.retry, Outcome: "resend"})
		return tooEarly, lim.retry, nil
	}
	send := !c.Decoy()
	if send && c.Hidden {
		// The pumping defense and the per-country budget still guard
		// against pumping, silently.
		lim, err := e.allowPumping(r, c.Policy, phone)
		if lim == nil && err == nil {
			lim, err = e.allowCountry(r.Context(), phone)
		}
		if err != nil {
			return 0, 0, err
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
	sends, err := e.store.Resend(r.Context(), c.ID, b.k.codeMAC(c.ID, code), now, e.cfg.ResendAfter, e.cfg.MaxSends)
	var cool *store.CooldownError
	switch {
	case errors.As(err, &cool):
		return tooEarly, cool.RetryAfter, nil
	case errors.Is(err, store.ErrSendLimit):
		return sendLimit, 0, nil
	case err != nil:
		res, _, err := e.stateOutcome(b, err, now)
		return res, 0, err
	}
	c.Sends = sends
	if send {
		e.deliver(r, c, b.id.Email, code, true, channel, api)
	}
	return sent, 0, nil
}
