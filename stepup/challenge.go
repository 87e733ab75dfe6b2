package stepup

import (
	"crypto/sha256"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup/page"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// Starting a challenge, in four steps, each of which may answer the
// request itself (and then ends the walk):
//
//  1. read: what the request is (its body when preserved or bound, the
//     transaction hash and description, the return URL, the session);
//  2. resume or limit: a lockout, a pending challenge for the same
//     request (a reload, a double submit), the start budgets;
//  3. destination: the number the code goes to, and whether it goes at
//     all (a decoy sends nothing);
//  4. create and send.

// attempt is one protected request on its way to a challenge: what the
// steps learn, in one place.
type attempt struct {
	*visit
	userKey, sessionKey string
	// body is the request's body when it is preserved (preserve) or
	// bound (tx).
	body        []byte
	preserve    bool
	tx          []byte
	description string
	returnURL   string
	// pending names the pending challenge of the same user, session,
	// policy and request.
	pending string
	// passkeys are the user's passkeys where the policy offers them
	// (loaded once: passkeysLoaded); codeLater: a passkey comes first,
	// so the challenge is made without sending a code.
	passkeys       []store.Passkey
	passkeysLoaded bool
	codeLater      bool
}

// userPasskeys loads the user's passkeys, where the policy offers them
// and the identity may use them (not a flow that hides the number).
func (e *Engine) userPasskeys(a *attempt) ([]store.Passkey, error) {
	if a.passkeysLoaded {
		return a.passkeys, nil
	}
	a.passkeysLoaded = true
	if e.wa == nil || !a.p.offers(MethodPasskey) || a.id.HideNumber || a.id.Decoy || e.fromRequest {
		return nil, nil
	}
	owner, err := e.passkeysOf(a.r.Context(), a.id.User)
	if err != nil {
		return nil, err
	}
	a.passkeys = owner.keys
	return a.passkeys, nil
}

// challenge starts (or resumes) a challenge for p. Browsers are sent to
// the code page; API clients get 401 with the challenge in JSON.
func (e *Engine) challenge(v *visit) error {
	a := &attempt{visit: v}
	if !e.read(a) {
		return nil
	}
	if c, done, err := e.resumeOrLimit(a); done || err != nil {
		return err
	} else if c != nil {
		return e.challenged(a, c)
	}
	if ps, err := e.userPasskeys(a); err != nil {
		return e.storeError(a.w, a.r, "passkeys", err)
	} else if len(ps) > 0 && a.p.passkeyFirst() {
		a.codeLater = true
	}
	phone, done, err := e.destination(a)
	if done || err != nil {
		return err
	}
	return e.create(a, phone)
}

// read learns what the request is. It reports false when it answered
// the request (413, 408, 400 for an ambiguous request, 403 for a
// cross-site one that would be preserved).
func (e *Engine) read(a *attempt) bool {
	w, r, p := a.w, a.r, a.p
	a.userKey = e.challengeUserKey(&e.keys, a.id.User)
	// A transaction is bound to its body; a browser's non-GET request is
	// preserved so that it can be sent once the code is verified.
	a.preserve = !a.api && (p.Mode == Transaction || !safeMethod(r.Method))
	if a.preserve && !e.cfg.AllowCrossSite && !sameOrigin(r) {
		// A cross-site request replayed after the code would reach the
		// app as if the customer had sent it from this site: refused.
		e.refuse(w, r, p.Name, http.StatusForbidden, page.StateCrossSite, "cross_site", nil)
		return false
	}
	if p.Mode == Transaction || a.preserve {
		var ok bool
		if a.body, ok = e.readBound(w, r, p); !ok {
			return false
		}
	}
	if p.Mode == Transaction {
		a.tx = txHash(p.Name, r.Method, r.URL.RequestURI(), r.Header, a.body, a.id.User)
		if p.desc != nil {
			var err error
			if a.description, err = p.desc.render(r, a.body); err != nil {
				if !e.refuseFields(w, r, p.Name, err) {
					e.refuse(w, r, p.Name, http.StatusBadRequest, page.StateBadForm, "unreadable_fields", err)
				}
				return false
			}
		}
	}
	var ok bool
	if a.returnURL, ok = SafeReturnPath(r.URL.RequestURI()); !ok {
		a.returnURL = "/"
	}
	if a.session == "" {
		sid := randomID()
		setSessionCookie(w, r, sid)
		a.session = "sid:" + sid
	}
	a.sessionKey = e.keys.sessionKey(a.session)
	var bodyKey string
	if a.preserve || a.tx != nil {
		sum := sha256.Sum256(a.body)
		bodyKey = string(sum[:])
	}
	a.pending = e.keys.short("pending", p.Name, a.userKey, a.sessionKey, r.Method, a.returnURL, bodyKey, strconv.FormatBool(a.api))
	return true
}

// resumeOrLimit returns the pending challenge of the same request when
// it can still be answered (a reload or a double submit sends no second
// code), or answers the request when the user is locked out or a start
// budget is spent (done).
func (e *Engine) resumeOrLimit(a *attempt) (c *store.Challenge, done bool, err error) {
	w, r := a.w, a.r
	// The lockout and a pending challenge are read together.
	pendingID, failures, err := e.store.PendingWithFailures(r.Context(), a.pending, a.userKey)
	if err != nil {
		return nil, true, e.storeError(w, r, "pending", err)
	}
	if failures.N >= e.cfg.MaxFailures {
		e.renderLocked(w, r, !a.api, failures.TTL)
		return nil, true, nil
	}
	if c, err = e.resume(r, a.p, pendingID, a.userKey, a.sessionKey); err != nil {
		return nil, true, e.storeError(w, r, "pending", err)
	} else if c != nil {
		return c, false, nil
	}
	// The cheapest, most attacker-specific checks first: a refused flood
	// costs no phone parsing and no send.
	if lim, err := e.allowStart(r.Context(), r, a.userKey); err != nil {
		return nil, true, e.storeError(w, r, "rate_limit", err)
	} else if lim != nil {
		return nil, true, e.rateLimited(w, r, a.p, lim)
	}
	return nil, false, nil
}

// destination returns the number the code goes to, or nil for a decoy:
// a challenge that is made and answered like any other but sends
// nothing. It answers the request itself (done) when the number cannot
// take a code or a send budget is spent.
//
// Where the identity hides its number (a password reset: whoever asks
// need not be the account's owner), everything that would tell accounts
// apart answers as for an account that does not exist: no account, a
// number on file that cannot take a code, a per-country budget spent.
// Their send budgets are counted alike, per account (see allowHiddenSend).
func (e *Engine) destination(a *attempt) (*sender.Phone, bool, error) {
	w, r, p, id := a.w, a.r, a.p, a.id
	if id.HideNumber {
		if lim, err := e.allowHiddenSend(r.Context(), a.userKey); err != nil {
			return nil, true, e.storeError(w, r, "rate_limit", err)
		} else if lim != nil {
			return nil, true, e.rateLimited(w, r, p, lim)
		}
	}
	if id.Decoy {
		return nil, false, nil
	}
	phone, err := sender.ParsePhone(id.Phone, e.cfg.DefaultRegion)
	if err != nil {
		e.emit(r, &Event{Kind: EventIdentityRefused, Policy: p.Name, Outcome: "phone_" + phoneReason(id.Phone)})
		if id.HideNumber {
			return nil, false, nil
		}
		e.renderStatus(w, r, http.StatusBadRequest, page.StateBadPhone, nil)
		return nil, true, nil
	}
	if err := e.cfg.PhoneRules.Check(phone); err != nil {
		// Premium-rate, non-mobile or not-allowed country: no code goes
		// there (SMS-pumping defense). The customer sees the "add a
		// mobile number" page; the log says which rule refused.
		e.emit(r, &Event{Kind: EventIdentityRefused, Policy: p.Name, To: phone.Masked(), Outcome: "phone_refused", Err: err})
		if id.HideNumber {
			return nil, false, nil
		}
		e.renderStatus(w, r, http.StatusBadRequest, page.StateBadPhone, nil)
		return nil, true, nil
	}
	if a.codeLater {
		// No code goes out now: the SMS fallback's resend spends the
		// send budgets and passes the pumping defense when it is asked.
		return &phone, false, nil
	}
	// The pumping defense first: a blocked prefix spends no budget.
	if lim, err := e.allowPumping(r, p.Name, phone); err != nil {
		return nil, true, e.storeError(w, r, "pumping", err)
	} else if lim != nil {
		if id.HideNumber {
			// Silently, as for an account that does not exist.
			e.emit(r, &Event{Kind: EventRateLimited, Policy: p.Name, Limit: lim.name, Duration: lim.retry, Outcome: "hidden"})
			return nil, false, nil
		}
		return nil, true, e.rateLimited(w, r, p, lim)
	}
	if id.HideNumber {
		// The per-country budget still guards against pumping, silently.
		if lim, err := e.allowCountry(r.Context(), phone); err != nil {
			return nil, true, e.storeError(w, r, "rate_limit", err)
		} else if lim != nil {
			e.emit(r, &Event{Kind: EventRateLimited, Policy: p.Name, Limit: lim.name, Duration: lim.retry, Outcome: "hidden"})
			return nil, false, nil
		}
		return &phone, false, nil
	}
	if lim, err := e.allowSend(r.Context(), phone); err != nil {
		return nil, true, e.storeError(w, r, "rate_limit", err)
	} else if lim != nil {
		return nil, true, e.rateLimited(w, r, p, lim)
	}
	return &phone, false, nil
}

// create makes the challenge and sends its code to phone; with a nil
// phone (a decoy) it makes the very same challenge, whose code is a
// random value that is never sent, so that nobody can open it.
func (e *Engine) create(a *attempt, phone *sender.Phone) error {
	w, r, p := a.w, a.r, a.p
	c, err := e.newChallenge(r, p, a.userKey, a.sessionKey, a.returnURL)
	if err != nil {
		return e.storeError(w, r, "generation", err)
	}
	c.Description, c.TxHash, c.Hidden, c.CodeLater = a.description, a.tx, a.id.HideNumber, a.codeLater
	// Looked at when its code expires, to tell whether it was abandoned;
	// decoys too (real and decoy challenges cost the same), though their
	// expiry tells nothing (dueExpiries).
	c.ExpiryQueue = e.expiryQueue
	if e.fromRequest {
		c.User = a.id.User
	}
	if a.preserve {
		c.Stash = e.keys.seal(c.ID, newStash(r, a.body, e.identityHeaders).marshal())
		c.HasStash = true
		// A newer preserved request of the user for this policy replaces
		// this one's stash at once (the store deletes the older). Where
		// anyone can name the user (identity request), only the same
		// browser session can replace it.
		slot := []string{p.Name, a.userKey}
		if e.fromRequest {
			slot = append(slot, a.sessionKey)
		}
		c.StashSlot = e.keys.short("stash", slot...)
	}
	code := randomID()
	if phone != nil {
		c.Phone = phone.E164
		if !a.codeLater {
			code = newCode(e.cfg.CodeLength)
		}
	}
	c.CodeMAC = e.keys.codeMAC(c.ID, code)
	if err := e.store.Create(r.Context(), c, a.pending, e.cfg.Retain); err != nil {
		return e.storeError(w, r, "create", err)
	}
	c.Sends = 1 // as the store counts the first code
	if a.codeLater {
		c.Sends, c.LastSend = 0, time.Time{}
	}
	outcome := "browser"
	switch {
	case a.codeLater:
		outcome = "passkey_first"
	case phone == nil:
		outcome = "decoy"
	case a.api:
		outcome = "api"
	case a.preserve:
		outcome = "browser_preserved"
	}
	ev := &Event{Kind: EventChallengeCreated, Policy: p.Name, Mode: p.Mode.String(), Outcome: outcome}
	if phone != nil {
		ev.To = phone.Masked()
	}
	e.emit(r, ev)
	switch {
	case a.codeLater:
		// The code waits until the customer asks for it (resend).
	case phone == nil:
		if err := e.store.RecordSend(r.Context(), c.ID, "", false); err != nil {
			return e.storeError(w, r, "record_send", err)
		}
	default:
		e.deliver(r, c, a.id.Email, code, false, "", a.api)
	}
	return e.challenged(a, c)
}

// challenged answers a request that now has challenge c.
func (e *Engine) challenged(a *attempt, c *store.Challenge) error {
	e.emit(a.r, &Event{Kind: EventRequest, Policy: a.p.Name, Mode: a.p.Mode.String(), Outcome: "challenged"})
	if a.api {
		ps, err := e.userPasskeys(a)
		if err != nil {
			return e.storeError(a.w, a.r, "passkeys", err)
		}
		e.apiChallenge(a.w, a.r, a.p, c, a.id.Email, ps)
		return nil
	}
	http.Redirect(a.w, a.r, e.challengeURL(c.ID), http.StatusSeeOther)
	return nil
}

// newChallenge returns a new challenge of policy p for the user and
// session keys, to come back to returnURL: with the policy's mode and
// version, the handler's scope and the store generation it is made in
// (a change of any of them later makes it unusable).
func (e *Engine) newChallenge(r *http.Request, p *Policy, userKey, sessionKey, returnURL string) (*store.Challenge, error) {
	gen, err := e.generation(r.Context())
	if err != nil {
		return nil, err
	}
	now := e.now()
	return &store.Challenge{
		ID:            randomID(),
		Policy:        p.Name,
		Mode:          p.Mode.String(),
		PolicyVersion: p.Version,
		Scope:         e.scope(r),
		Generation:    gen,
		UserKey:       userKey,
		SessionKey:    sessionKey,
		ReturnURL:     returnURL,
		Created:       now,
		Expires:       now.Add(e.cfg.CodeTTL),
		MaxAttempts:   e.cfg.MaxAttempts,
	}, nil
}

// resume returns the pending challenge for the same user, session,
// policy and request when it can still be answered, so that a reload or a
// double submit does not send another code.
func (e *Engine) resume(r *http.Request, p *Policy, id, userKey, sessionKey string) (*store.Challenge, error) {
	if id == "" {
		return nil, nil
	}
	c, err := e.store.Get(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	gen, err := e.generation(r.Context())
	if err != nil {
		return nil, err
	}
	now := e.now()
	if c.UserKey != userKey || c.SessionKey != sessionKey || !c.Used.IsZero() ||
		!now.Before(c.Expires) || c.Attempts >= c.MaxAttempts ||
		c.PolicyVersion != p.Version || c.Mode != p.Mode.String() || c.Scope != e.scope(r) || c.Generation != gen {
		return nil, nil
	}
	return c, nil
}
