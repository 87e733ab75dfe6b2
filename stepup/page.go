package stepup

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
)

//go:embed templates/*.html
var templateFS embed.FS

// state is what a page tells the customer.
type state string

// The page states.
const (
	stateChallenge       state = "challenge"
	stateExpired         state = "expired"
	stateUsed            state = "already_used"
	stateExhausted       state = "attempts_exhausted"
	stateLocked          state = "locked"
	stateNotFound        state = "not_found"
	stateNoIdentity      state = "unauthenticated"
	stateBadPhone        state = "phone_unusable"
	stateUnavailable     state = "unavailable"
	stateUnsupported     state = "unsupported"
	stateForbidden       state = "forbidden"
	stateBadForm         state = "bad_request"
	stateError           state = "error"
	stateTooLarge        state = "request_too_large"
	stateAlreadySent     state = "already_sent"
	stateStashExpired    state = "request_expired"
	stateInvalidGrant    state = "invalid_grant"
	statePhoneUnverified state = "phone_unverified"
	stateRateLimited     state = "rate_limited"
)

// stateText is the heading and text of each state. No text says which
// part of a verification was wrong, nor whether a user exists.
var stateText = map[state][2]string{
	stateChallenge:       {"Confirm it’s you", ""},
	stateExpired:         {"This code has expired", "For your security, codes are only valid for a few minutes. Start again to get a new one."},
	stateUsed:            {"This code was already used", "This verification is complete. You can continue where you were."},
	stateExhausted:       {"Too many attempts", "This code can no longer be used. Start again to get a new one."},
	stateLocked:          {"Please try again later", "Too many incorrect codes were entered, so verification is paused for your security."},
	stateNotFound:        {"This page is no longer valid", "The verification link has expired or belongs to another session. Go back and try again."},
	stateNoIdentity:      {"Please sign in", "You need to be signed in to continue."},
	stateBadPhone:        {"A mobile number is needed", "We could not find a valid mobile number on your account. Add one in your account settings, then try again."},
	stateUnavailable:     {"Verification is temporarily unavailable", "We could not check your verification right now. Nothing was sent or changed. Please try again in a moment."},
	stateUnsupported:     {"This action cannot be verified", "This kind of request cannot be verified on this site yet. Please contact support."},
	stateForbidden:       {"This form has expired", "For your security, reload the verification page and try again."},
	stateBadForm:         {"Something was wrong with the form", "Reload the page and try again."},
	stateError:           {"Something went wrong", "Please go back and try again."},
	stateTooLarge:        {"This request is too large to verify", "The form you sent is larger than this site accepts for verification. Nothing was sent."},
	stateAlreadySent:     {"This request was already sent", "Your verified request was sent once and will not be sent again. Check your account or order history for the result."},
	stateStashExpired:    {"This request has expired", "Your request was not sent, because it waited too long for verification. Go back and submit it again."},
	stateRateLimited:     {"Please wait a moment", "Too many verification codes were requested. No code was sent this time."},
	statePhoneUnverified: {"Your mobile number is not verified", "Your account's mobile number has not been verified yet, so we cannot send a code to it. Verify it in your account settings, then try again."},
	stateInvalidGrant:    {"This approval cannot be used", "The approval does not match this request, or it was already used or has expired. Nothing was sent."},
}

// pageData is what the page template sees.
type pageData struct {
	State   state
	Heading string
	Text    string
	Site    string
	Nonce   string

	// The challenge form.
	Policy       string
	Description  string
	To           string
	CodeLength   int
	Action       string
	ResendAction string
	CSRF         string
	AttemptsLeft int
	ExpiresIn    string
	ExpiresAt    string
	CanResend    bool
	ResendIn     string
	SendsLeft    int
	SendFailed   bool
	Error        string
	Notice       string

	// Finished states: where to go on.
	ContinueURL string
	// Locked: roughly when to retry.
	RetryIn string
}

type pageRenderer struct {
	tmpl *template.Template
	pool sync.Pool
}

func newPageRenderer() (*pageRenderer, error) {
	t, err := template.New("page.html").ParseFS(templateFS, "templates/page.html")
	if err != nil {
		return nil, fmt.Errorf("parsing page template: %w", err)
	}
	return &pageRenderer{tmpl: t, pool: sync.Pool{New: func() any { return new(bytes.Buffer) }}}, nil
}

// wantsHTML tells a browser navigation from an API client: browsers send
// Sec-Fetch-Mode: navigate or accept text/html.
func wantsHTML(r *http.Request) bool {
	if r.Header.Get("Sec-Fetch-Mode") == "navigate" {
		return true
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// pageHeaders are sent with every page and JSON answer of the engine.
func pageHeaders(h http.Header, nonce string) {
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	csp := "default-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; img-src 'self' data:"
	if nonce != "" {
		csp += "; style-src 'nonce-" + nonce + "'"
	}
	h.Set("Content-Security-Policy", csp)
}

// renderStatus writes the page (or, for API clients, a JSON body) of st.
func (e *Engine) renderStatus(w http.ResponseWriter, r *http.Request, status int, st state, d *pageData) {
	if d == nil {
		d = &pageData{}
	}
	txt := stateText[st]
	d.State, d.Heading = st, txt[0]
	if d.Text == "" {
		d.Text = txt[1]
	}
	if !wantsHTML(r) {
		pageHeaders(w.Header(), "")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		body := map[string]any{"error": string(st), "message": d.Text}
		if d.RetryIn != "" {
			body["retry_in"] = d.RetryIn
		}
		_ = json.NewEncoder(w).Encode(body)
		return
	}
	d.Nonce = newNonce()
	if d.Site == "" {
		d.Site = e.cfg.SiteName
		if d.Site == "" {
			d.Site = requestHost(r)
		}
	}
	buf := e.page.pool.Get().(*bytes.Buffer)
	buf.Reset()
	defer e.page.pool.Put(buf)
	if err := e.page.tmpl.Execute(buf, d); err != nil {
		// Fail closed with a plain answer; the template is ours, so this
		// is a bug, not an input problem.
		e.log.Error("rendering page: " + err.Error())
		pageHeaders(w.Header(), "")
		http.Error(w, "verification page unavailable", http.StatusInternalServerError)
		return
	}
	pageHeaders(w.Header(), d.Nonce)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

// renderLocked writes the lockout page.
func (e *Engine) renderLocked(w http.ResponseWriter, r *http.Request, retry time.Duration) {
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds())+1))
	}
	e.renderStatus(w, r, http.StatusTooManyRequests, stateLocked, &pageData{RetryIn: humanDuration(retry)})
}

// challengeData is the page data of a live challenge.
func (e *Engine) challengeData(r *http.Request, b bound, now time.Time) *pageData {
	c := b.c
	d := &pageData{
		Policy:       c.Policy,
		Description:  c.Description,
		To:           sender.MaskPhone(c.Phone),
		CodeLength:   e.cfg.CodeLength,
		Action:       e.challengeURL(c.ID),
		ResendAction: e.challengeURL(c.ID) + "/resend",
		CSRF:         b.k.csrfToken(c.ID, b.sessionKey),
		AttemptsLeft: c.MaxAttempts - c.Attempts,
		ExpiresIn:    humanDuration(c.Expires.Sub(now)),
		ExpiresAt:    c.Expires.UTC().Format(time.RFC3339),
		SendsLeft:    e.cfg.MaxSends - c.Sends,
		SendFailed:   c.SendFailed,
	}
	if d.SendsLeft > 0 {
		wait := time.Duration(0)
		if !c.LastSend.IsZero() {
			wait = e.cfg.ResendAfter - now.Sub(c.LastSend)
		}
		if wait > 0 {
			d.ResendIn = humanDuration(wait)
		} else {
			d.CanResend = true
		}
	}
	if d.SendFailed {
		d.Text = "We could not send your code just now."
	} else {
		d.Text = "We sent a " + strconv.Itoa(d.CodeLength) + "-digit code to " + d.To + "."
	}
	return d
}

// newNonce returns a fresh CSP nonce.
func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return b64.EncodeToString(b[:])
}

// humanDuration says a duration the way a page would: "5 minutes",
// "30 seconds", "about 3 hours".
func humanDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "a moment"
	case d < time.Minute:
		s := int((d + time.Second - 1) / time.Second)
		return plural(s, "second")
	case d < time.Hour:
		m := int((d + time.Minute - 1) / time.Minute)
		return plural(m, "minute")
	default:
		h := int((d + time.Hour - 1) / time.Hour)
		return "about " + plural(h, "hour")
	}
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}
