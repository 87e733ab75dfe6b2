package stepup

import (
	"crypto/hmac"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// maxFormBytes bounds the body of the engine's own forms.
const maxFormBytes = 4 << 10

// ServeEndpoint serves the engine's own pages under Config.PathPrefix:
//
//	GET  {prefix}/challenge/{id}          the code page
//	POST {prefix}/challenge/{id}          verify a code (form: csrf, code)
//	POST {prefix}/challenge/{id}/resend   send a new code (form: csrf)
//
// Anything else under the prefix is 404. These requests never reach the
// upstream.
func (e *Engine) ServeEndpoint(w http.ResponseWriter, r *http.Request) error {
	rest := strings.TrimPrefix(r.URL.Path, e.cfg.PathPrefix)
	id, action, _ := strings.Cut(strings.TrimPrefix(rest, "/challenge/"), "/")
	if !strings.HasPrefix(rest, "/challenge/") || !validID(id) {
		e.renderStatus(w, r, http.StatusNotFound, stateNotFound, nil)
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
		e.renderStatus(w, r, http.StatusMethodNotAllowed, stateError, nil)
		return nil
	}
	e.renderStatus(w, r, http.StatusNotFound, stateNotFound, nil)
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
	c          *store.Challenge
	id         Identity
	session    string
	sessionKey string
}

// load reads challenge id and checks that the request comes from the
// identity and session it was made for. Anyone else gets the same 404 as
// for a challenge that does not exist. ok is false when a response was
// written.
func (e *Engine) load(w http.ResponseWriter, r *http.Request, id string) (b bound, ok bool, err error) {
	ident, err := e.identity.Identify(r)
	if err != nil {
		return b, false, e.identityError(w, r, "", err)
	}
	c, err := e.store.Get(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		e.renderStatus(w, r, http.StatusNotFound, stateNotFound, nil)
		return b, false, nil
	}
	if err != nil {
		return b, false, e.storeError(w, r, "get", err)
	}
	session := e.session(r, ident)
	sessionKey := e.keys.sessionKey(session)
	userOK := hmac.Equal([]byte(c.UserKey), []byte(e.keys.userKey(ident.User)))
	sessionOK := session != "" && hmac.Equal([]byte(c.SessionKey), []byte(sessionKey))
	if !userOK || !sessionOK {
		e.log.Warn("challenge requested by another identity or session", zap.String("policy", c.Policy),
			zap.String("client_ip", e.clientIP(r)))
		e.renderStatus(w, r, http.StatusNotFound, stateNotFound, nil)
		return b, false, nil
	}
	return bound{c: c, id: ident, session: session, sessionKey: sessionKey}, true, nil
}

// showChallenge renders the code page in the state the challenge is in.
func (e *Engine) showChallenge(w http.ResponseWriter, r *http.Request, id string) error {
	b, ok, err := e.load(w, r, id)
	if !ok {
		return err
	}
	var notice string
	if r.URL.Query().Get("sent") == "1" && !b.c.SendFailed {
		notice = "We sent you a new code."
	}
	e.renderChallenge(w, r, http.StatusOK, b, "", notice)
	return nil
}

// renderChallenge renders the page for b in whatever state it is in.
func (e *Engine) renderChallenge(w http.ResponseWriter, r *http.Request, status int, b bound, errMsg, notice string) {
	c := b.c
	now := e.now()
	switch {
	case !c.Used.IsZero():
		e.renderStatus(w, r, http.StatusGone, stateUsed, e.finishedData(c))
		return
	case !now.Before(c.Expires):
		e.renderStatus(w, r, http.StatusGone, stateExpired, e.finishedData(c))
		return
	case c.Attempts >= c.MaxAttempts:
		e.renderStatus(w, r, http.StatusGone, stateExhausted, e.finishedData(c))
		return
	}
	d := e.challengeData(r, b, now)
	d.Error = errMsg
	d.Notice = notice
	e.renderStatus(w, r, status, stateChallenge, d)
}

// finishedData is the page data of a challenge that can take no code.
func (e *Engine) finishedData(c *store.Challenge) *pageData {
	ret, ok := SafeReturnPath(c.ReturnURL)
	if !ok {
		ret = "/"
	}
	return &pageData{ContinueURL: ret}
}

// sameOrigin refuses cross-site form posts: a browser says where a
// request comes from in Sec-Fetch-Site and Origin. Requests that carry
// neither (old browsers, scripts) rely on the CSRF token alone.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
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
		e.renderStatus(w, r, http.StatusBadRequest, stateBadForm, nil)
		return false
	}
	if !sameOrigin(r) {
		e.log.Warn("cross-site form post refused", zap.String("client_ip", e.clientIP(r)))
		e.renderStatus(w, r, http.StatusForbidden, stateForbidden, nil)
		return false
	}
	return true
}

// checkForm loads the challenge and checks the form's CSRF token.
func (e *Engine) checkForm(w http.ResponseWriter, r *http.Request, id string) (bound, bool, error) {
	if !e.readForm(w, r) {
		return bound{}, false, nil
	}
	b, ok, err := e.load(w, r, id)
	if !ok {
		return b, false, err
	}
	if !e.keys.checkCSRF(r.PostForm.Get("csrf"), b.c.ID, b.sessionKey) {
		e.log.Warn("form token mismatch", zap.String("policy", b.c.Policy), zap.String("client_ip", e.clientIP(r)))
		e.renderStatus(w, r, http.StatusForbidden, stateForbidden, nil)
		return b, false, nil
	}
	return b, true, nil
}

// verify checks a submitted code.
func (e *Engine) verify(w http.ResponseWriter, r *http.Request, id string) error {
	b, ok, err := e.checkForm(w, r, id)
	if !ok {
		return err
	}
	ctx := r.Context()
	c := b.c
	if locked, retry, err := e.lockedOut(ctx, c.UserKey); err != nil {
		return e.storeError(w, r, "failures", err)
	} else if locked {
		e.renderLocked(w, r, retry)
		return nil
	}
	code, ok := normalizeCode(r.PostForm.Get("code"), e.cfg.CodeLength)
	if !ok {
		// Nothing was compared, so nothing is spent.
		e.renderChallenge(w, r, http.StatusUnprocessableEntity, b, e.codeFormatError(), "")
		return nil
	}
	now := e.now()
	stored, attempts, err := e.store.BeginAttempt(ctx, c.ID, now)
	if err != nil {
		return e.challengeStateError(w, r, b, err)
	}
	c.Attempts = attempts
	if !hmac.Equal(stored, e.keys.codeMAC(c.ID, code)) {
		return e.wrongCode(w, r, b)
	}
	switch err := e.store.Consume(ctx, c.ID, stored, now); {
	case errors.Is(err, store.ErrCodeChanged):
		e.renderChallenge(w, r, http.StatusUnprocessableEntity, b, "A newer code was sent. Enter the code from the latest message.", "")
		return nil
	case err != nil:
		return e.challengeStateError(w, r, b, err)
	}

	p := e.policies[c.Policy]
	ttl := DefaultGrantTTL
	if p != nil {
		ttl = p.GrantTTL
	}
	tok := e.keys.issueGrant(Grant{Kind: SessionGrant, Policy: c.Policy, IssuedAt: now, Expires: now.Add(ttl)}, b.id.User, b.session)
	setGrantCookie(w, r, c.Policy, tok, ttl)
	e.log.Info("verified", zap.String("policy", c.Policy), zap.String("to", sender.MaskPhone(c.Phone)),
		zap.Int("attempts", attempts), zap.String("client_ip", e.clientIP(r)))
	ret, ok := SafeReturnPath(c.ReturnURL)
	if !ok {
		ret = "/"
	}
	http.Redirect(w, r, ret, http.StatusSeeOther)
	return nil
}

// wrongCode counts a failed attempt against the challenge (already done
// by BeginAttempt) and the user, and says so.
func (e *Engine) wrongCode(w http.ResponseWriter, r *http.Request, b bound) error {
	c := b.c
	n, err := e.store.AddFailure(r.Context(), c.UserKey, e.cfg.FailureWindow)
	if err != nil {
		return e.storeError(w, r, "add_failure", err)
	}
	e.log.Info("verify_failed", zap.String("policy", c.Policy), zap.Int("attempts", c.Attempts),
		zap.Int("failures", n), zap.String("client_ip", e.clientIP(r)))
	if n >= e.cfg.MaxFailures {
		e.log.Warn("locked", zap.String("policy", c.Policy), zap.String("client_ip", e.clientIP(r)))
		_, ttl, _ := e.store.Failures(r.Context(), c.UserKey)
		e.renderLocked(w, r, ttl)
		return nil
	}
	e.renderChallenge(w, r, http.StatusUnprocessableEntity, b, "That code is not correct. Check the latest message and try again.", "")
	return nil
}

// challengeStateError answers a store error about a challenge's state.
func (e *Engine) challengeStateError(w http.ResponseWriter, r *http.Request, b bound, err error) error {
	switch {
	case errors.Is(err, store.ErrUsed):
		e.renderStatus(w, r, http.StatusGone, stateUsed, e.finishedData(b.c))
	case errors.Is(err, store.ErrExpired):
		e.renderStatus(w, r, http.StatusGone, stateExpired, e.finishedData(b.c))
	case errors.Is(err, store.ErrExhausted):
		e.renderStatus(w, r, http.StatusGone, stateExhausted, e.finishedData(b.c))
	case errors.Is(err, store.ErrNotFound):
		e.renderStatus(w, r, http.StatusNotFound, stateNotFound, nil)
	default:
		return e.storeError(w, r, "challenge", err)
	}
	return nil
}

// resend sends a new code for the challenge, within its cooldown and
// send limit. The attempts already spent stay spent.
func (e *Engine) resend(w http.ResponseWriter, r *http.Request, id string) error {
	b, ok, err := e.checkForm(w, r, id)
	if !ok {
		return err
	}
	c := b.c
	code := newCode(e.cfg.CodeLength)
	mac := e.keys.codeMAC(c.ID, code)
	_, err = e.store.Resend(r.Context(), c.ID, mac, e.now(), e.cfg.ResendAfter, e.cfg.MaxSends)
	var cool *store.CooldownError
	switch {
	case errors.As(err, &cool):
		e.renderChallenge(w, r, http.StatusTooManyRequests, b, "Please wait a little before asking for a new code.", "")
		return nil
	case errors.Is(err, store.ErrSendLimit):
		e.renderChallenge(w, r, http.StatusTooManyRequests, b, "No more codes can be sent for this request. Use the last code you received.", "")
		return nil
	case err != nil:
		return e.challengeStateError(w, r, b, err)
	}
	e.log.Info("code_resent", zap.String("policy", c.Policy), zap.String("client_ip", e.clientIP(r)))
	e.deliver(r, c, code)
	http.Redirect(w, r, e.challengeURL(c.ID)+"?sent=1", http.StatusSeeOther)
	return nil
}

// codeFormatError asks for a code of the right shape.
func (e *Engine) codeFormatError() string {
	return "Enter the " + strconv.Itoa(e.cfg.CodeLength) + "-digit code from the message."
}
