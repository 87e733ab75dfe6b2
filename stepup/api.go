package stepup

import (
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
	"github.com/caddy-stepup/caddy-stepup/stepup/page"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// The API protocol, for clients that are not browsers navigating (no
// text/html in Accept, no Sec-Fetch-Mode: navigate):
//
//  1. A protected request gets 401, WWW-Authenticate: StepUp
//     challenge="ID", and a JSON body (apiChallengeBody) naming the
//     verify and resend URLs.
//  2. The client posts {"challenge":ID,"code":"123456"} to verify_url and
//     gets {"grant":TOKEN,"expires_at":...}.
//  3. It retries the original request with the cookie Stepup-Grant=TOKEN
//     (or, where the operator allows it, the header). A session
//     grant opens the policy until it expires; a transaction grant opens
//     exactly one request with the same method, URI and body.

// apiChallengeBody is the JSON of a 401 step-up challenge.
type apiChallengeBody struct {
	Error       string `json:"error"`
	Challenge   string `json:"challenge"`
	Policy      string `json:"policy"`
	Mode        string `json:"mode"`
	Description string `json:"description,omitempty"`
	To          string `json:"to,omitempty"`
	CodeLength  int    `json:"code_length"`
	ExpiresAt   string `json:"expires_at"`
	VerifyURL   string `json:"verify_url"`
	ResendURL   string `json:"resend_url"`
	SendFailed  bool   `json:"send_failed,omitempty"`
	// Channels the next code can be asked on instead (resend with
	// "channel"); empty with a single channel.
	Channels []string `json:"channels"`
}

// apiChallenge answers an API client's protected request with 401.
func (e *Engine) apiChallenge(w http.ResponseWriter, r *http.Request, p *Policy, c *store.Challenge, email string) {
	w.Header().Set("WWW-Authenticate", `StepUp challenge="`+c.ID+`", policy="`+p.Name+`"`)
	page.WriteJSON(w, http.StatusUnauthorized, apiChallengeBody{
		Error:       "step_up_required",
		Challenge:   c.ID,
		Policy:      p.Name,
		Mode:        p.Mode.String(),
		Description: c.Description,
		To:          maskedTo(c),
		CodeLength:  e.cfg.CodeLength,
		ExpiresAt:   c.Expires.UTC().Format(time.RFC3339),
		VerifyURL:   e.cfg.PathPrefix + "/verify",
		ResendURL:   e.cfg.PathPrefix + "/resend",
		SendFailed:  sendFailed(c),
		Channels:    channelNames(e.otherChannels(bound{c: c, id: identity.Identity{Email: email}})),
	})
}

// maskedTo is the masked destination of c, or "" when the number must
// not be shown (a reset flow, where it would tell that the account
// exists).
func maskedTo(c *store.Challenge) string {
	if c.Hidden {
		return ""
	}
	return sender.MaskPhone(c.Phone)
}

// sendFailed reports whether the customer is told that the last code
// could not be sent: never for a challenge that hides its number (a
// reset flow), where it would tell that the account exists (decoys send
// nothing and never fail).
func sendFailed(c *store.Challenge) bool { return c.SendFailed && !c.Hidden }

// apiRequest is the body of the verify and resend calls.
type apiRequest struct {
	Challenge string `json:"challenge"`
	Code      string `json:"code"`
	// Channel (resend only) asks for the code on another channel, one
	// of the challenge's "channels".
	Channel string `json:"channel,omitempty"`
}

// readAPI decodes a small JSON body. Requiring application/json keeps
// cross-site forms out: a browser cannot send it cross-origin without a
// CORS preflight, which we never grant.
func (e *Engine) readAPI(w http.ResponseWriter, r *http.Request) (apiRequest, bool) {
	var req apiRequest
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		page.WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send the request as application/json", nil)
		return req, false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxFormBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || !validID(req.Challenge) || len(req.Code) > 64 {
		page.WriteError(w, http.StatusBadRequest, "bad_request", `send {"challenge":ID,"code":"123456"}`, nil)
		return req, false
	}
	return req, true
}

// apiVerify checks an API client's code and returns its grant.
func (e *Engine) apiVerify(w http.ResponseWriter, r *http.Request) error {
	req, ok := e.readAPI(w, r)
	if !ok {
		return nil
	}
	b, ok, err := e.load(w, r, req.Challenge, true)
	if !ok {
		return err
	}
	res, lock, err := e.checkCode(r, &b, req.Code)
	if err != nil {
		return e.storeError(w, r, "verify", err)
	}
	c := b.c
	switch res {
	case badFormat:
		page.WriteError(w, http.StatusUnprocessableEntity, "invalid_code", e.codeFormatError(),
			map[string]any{"attempts_left": c.MaxAttempts - c.Attempts})
		return nil
	case wrongCode, codeReplaced:
		left := c.MaxAttempts - c.Attempts
		if left <= 0 {
			page.WriteError(w, http.StatusGone, string(page.StateExhausted), page.StateText[page.StateExhausted][1], nil)
			return nil
		}
		page.WriteError(w, http.StatusUnprocessableEntity, "invalid_code", "the code is not correct", map[string]any{"attempts_left": left})
		return nil
	case lockedOut:
		e.renderLocked(w, r, lock)
		return nil
	case finished:
		st := challengeState(c, e.now())
		page.WriteError(w, http.StatusGone, string(st), page.StateText[st][1], nil)
		return nil
	case vanished:
		e.renderStatus(w, r, http.StatusNotFound, page.StateNotFound, nil)
		return nil
	}
	tok, g, err := e.issue(r, &b)
	if err != nil {
		return e.storeError(w, r, "issue_grant", err)
	}
	kind := "session"
	if g.Kind == TransactionGrant {
		kind = "transaction"
	}
	out := map[string]any{
		"grant":      tok,
		"policy":     c.Policy,
		"kind":       kind,
		"expires_at": g.Expires.UTC().Format(time.RFC3339),
		"cookie":     GrantCookie,
	}
	if e.cfg.GrantHeader {
		out["header"] = GrantHeader
	}
	page.WriteJSON(w, http.StatusOK, out)
	return nil
}

// apiResend sends a new code for an API client's challenge.
func (e *Engine) apiResend(w http.ResponseWriter, r *http.Request) error {
	req, ok := e.readAPI(w, r)
	if !ok {
		return nil
	}
	b, ok, err := e.load(w, r, req.Challenge, true)
	if !ok {
		return err
	}
	channel, ok := e.chosenChannel(b, req.Channel)
	if !ok {
		page.WriteError(w, http.StatusBadRequest, "bad_channel", "channel must be one of the challenge's channels", nil)
		return nil
	}
	retry, limit, res, err := e.resendCode(r, &b, channel)
	switch {
	case err != nil:
		return e.storeError(w, r, "resend", err)
	case res == vanished:
		e.renderStatus(w, r, http.StatusNotFound, page.StateNotFound, nil)
		return nil
	case res == finished:
		st := challengeState(b.c, e.now())
		page.WriteError(w, http.StatusGone, string(st), page.StateText[st][1], nil)
		return nil
	case retry > 0:
		secs := int(retry.Seconds()) + 1
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		page.WriteError(w, http.StatusTooManyRequests, "resend_too_early", "wait before asking for a new code", map[string]any{"retry_after": secs})
		return nil
	case limit:
		page.WriteError(w, http.StatusTooManyRequests, "send_limit", "no more codes can be sent for this challenge", nil)
		return nil
	}
	// b.c holds the delivery's outcome (deliver records it there too).
	c := b.c
	page.WriteJSON(w, http.StatusOK, map[string]any{
		"challenge":    c.ID,
		"to":           maskedTo(c),
		"sent":         !sendFailed(c),
		"resend_after": int(e.cfg.ResendAfter.Seconds()),
		"expires_at":   c.Expires.UTC().Format(time.RFC3339),
		"channels":     channelNames(e.otherChannels(b)),
	})
	return nil
}

// channelNames are channels as strings (an empty list, never null).
func channelNames(cs []sender.Channel) []string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, string(c))
	}
	return out
}
