package stepup

import (
	"net/http"
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
	// Methods are the ways this challenge can be answered, preferred
	// first: "passkey" (an assertion to verify_url, made with WebAuthn)
	// and "sms" (a code; when CodeSent is false, ask for it at
	// resend_url).
	Methods  []string `json:"methods"`
	CodeSent bool     `json:"code_sent"`
	// WebAuthn are the request options for navigator.credentials.get
	// (JSON form), when a passkey may answer.
	WebAuthn *requestOptions `json:"webauthn,omitempty"`
}

// apiChallenge answers an API client's protected request with 401.
func (e *Engine) apiChallenge(w http.ResponseWriter, r *http.Request, p *Policy, c *store.Challenge, email string, passkeys []store.Passkey) {
	w.Header().Set("WWW-Authenticate", `StepUp challenge="`+c.ID+`", policy="`+p.Name+`"`)
	methods, opts := []string{MethodSMS}, (*requestOptions)(nil)
	if len(passkeys) > 0 {
		methods = methodsOf(p)
		opts = e.assertOptions(&bound{c: c, k: &e.keys}, passkeys)
	}
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
		Methods:     methods,
		CodeSent:    c.Sends > 0,
		WebAuthn:    opts,
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

// channelNames are channels as strings (an empty list, never null).
func channelNames(cs []sender.Channel) []string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, string(c))
	}
	return out
}
