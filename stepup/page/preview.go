package page

import (
	"html"
	"net/http"
	"sort"
	"strings"
	"time"
)

// samplePage is one page state with sample data: what template checks,
// previews and screenshots render.
type samplePage struct {
	name   string
	state  State
	status int
	data   func() *Data
}

// samplePreviewNonce is the nonce of pages rendered for checks.
const samplePreviewNonce = "c2FtcGxlLW5vbmNlLTEyMzQ"

// samplePasskeyOptions and sampleCreateOptions are WebAuthn options of
// the samples, for a credential that exists nowhere (a browser finds no
// passkey for them).
const (
	samplePasskeyOptions = `{"challenge":"c2FtcGxlLWNoYWxsZW5nZS0wMTIzNDU2Nzg5YWJjZGVm","rpId":"localhost",` +
		`"allowCredentials":[{"type":"public-key","id":"c2FtcGxlLWNyZWRlbnRpYWwtMQ","transports":["internal"]}],` +
		`"userVerification":"required","timeout":300000}`
	sampleCreateOptions = `{"rp":{"name":"Demo Shop","id":"localhost"},"user":{"name":"alice","displayName":"alice","id":"c2FtcGxlLXVzZXItaGFuZGxl"},` +
		`"challenge":"c2FtcGxlLWNoYWxsZW5nZS0wMTIzNDU2Nzg5YWJjZGVm","pubKeyCredParams":[{"type":"public-key","alg":-7}],"timeout":300000,` +
		`"authenticatorSelection":{"residentKey":"preferred","userVerification":"required"},"attestation":"none"}`
)

// sampleChallengeID is a well-formed challenge id that exists nowhere.
const sampleChallengeID = "PREVIEW_0123456789abcd"

// The settings of the sample challenge: the engine's defaults
// (stepup.DefaultCodeLength and the others; a test of package stepup
// keeps them equal).
const (
	samplePathPrefix  = "/.stepup"
	sampleCodeLength  = 6
	sampleMaxAttempts = 5
	sampleMaxSends    = 3
	sampleCodeTTL     = 5 * time.Minute
	sampleResendAfter = 30 * time.Second
)

// sampleStatus is the status each state is served with.
var sampleStatus = map[State]int{
	StateExpired: http.StatusGone, StateUsed: http.StatusGone, StateExhausted: http.StatusGone,
	StateStashExpired: http.StatusGone, StateLocked: http.StatusTooManyRequests,
	StateRateLimited: http.StatusTooManyRequests, StateNotFound: http.StatusNotFound,
	StateNoIdentity: http.StatusUnauthorized, StateBadPhone: http.StatusBadRequest,
	StateBadForm: http.StatusBadRequest, StateUnavailable: http.StatusServiceUnavailable,
	StateUnsupported: http.StatusNotImplemented, StateForbidden: http.StatusForbidden,
	StateInvalidGrant: http.StatusForbidden, StatePhoneUnverified: http.StatusForbidden,
	StateError: http.StatusInternalServerError, StateTooLarge: http.StatusRequestEntityTooLarge,
	StateAlreadySent: http.StatusConflict, StateBodyTimeout: http.StatusRequestTimeout,
	StateAmbiguous: http.StatusBadRequest, StateCrossSite: http.StatusForbidden,
	StateBadIdentity: http.StatusBadRequest,
}

// samplePages returns every designed page: the challenge in its variants,
// then every state of StateText (states added later included).
func samplePages(codeLength int) []samplePage {
	const (
		ret  = "/account/payment-methods"
		desc = "Pay EUR 42.00 to Café Müller"
	)
	challenge := func(mut func(c *Challenge)) func() *Data {
		return func() *Data {
			action := samplePathPrefix + "/challenge/" + sampleChallengeID
			c := &Challenge{
				Policy: "payment-methods", To: "+1******0100", CodeLength: codeLength,
				Action: action, ResendAction: action + "/resend", CSRF: "sample-csrf-token",
				AttemptsLeft: sampleMaxAttempts, SendsLeft: sampleMaxSends - 1,
				ExpiresIn: sampleCodeTTL, ExpiresAt: time.Now().Add(sampleCodeTTL),
				ResendWait: sampleResendAfter, ContinueURL: ret,
			}
			if mut != nil {
				mut(c)
			}
			return c.Data()
		}
	}
	canResend := func(c *Challenge) { c.ResendWait = 0 }
	samples := []samplePage{
		{"challenge", StateChallenge, http.StatusOK, challenge(nil)},
		{"challenge-transaction", StateChallenge, http.StatusOK, challenge(func(c *Challenge) {
			c.Policy, c.Description, c.ContinueURL = "checkout", desc, "/checkout"
		})},
		{"challenge-wrong-code", StateChallenge, http.StatusUnprocessableEntity, challenge(func(c *Challenge) {
			c.Error = en().Text("msg.wrong_code")
			c.AttemptsLeft--
		})},
		{"challenge-bad-format", StateChallenge, http.StatusUnprocessableEntity, challenge(func(c *Challenge) {
			c.Error = en().Text("msg.code_format", "n", codeLength)
		})},
		{"challenge-new-code", StateChallenge, http.StatusOK, challenge(func(c *Challenge) {
			c.Notice = en().Text("msg.new_code_sent")
			c.SendsLeft--
		})},
		{"challenge-can-resend", StateChallenge, http.StatusOK, challenge(canResend)},
		// Senders of several channels: "use another channel".
		{"challenge-channels", StateChallenge, http.StatusOK, challenge(func(c *Challenge) {
			canResend(c)
			c.Channels = []string{"whatsapp", "email"}
		})},
		{"challenge-resend-limit", StateChallenge, http.StatusTooManyRequests, challenge(func(c *Challenge) {
			c.Error = en().Text("msg.send_limit")
			c.SendsLeft = 0
		})},
		{"challenge-last-attempt", StateChallenge, http.StatusUnprocessableEntity, challenge(func(c *Challenge) {
			c.Error = en().Text("msg.wrong_code")
			c.AttemptsLeft = 1
		})},
		{"challenge-send-failed", StateChallenge, http.StatusOK, challenge(func(c *Challenge) {
			c.SendFailed = true
			canResend(c)
		})},
		{"challenge-number-hidden", StateChallenge, http.StatusOK, challenge(func(c *Challenge) { c.To = "" })},
		// Delivery receipts: how the code's delivery goes.
		{"challenge-sending", StateChallenge, http.StatusOK, challenge(func(c *Challenge) { c.Delivery = "sending" })},
		{"challenge-delivered", StateChallenge, http.StatusOK, challenge(func(c *Challenge) {
			c.Delivery, c.DeliveryChannel = "delivered", "sms"
		})},
		{"challenge-failed-over", StateChallenge, http.StatusOK, challenge(func(c *Challenge) {
			c.Delivery, c.DeliveryChannel = "failed_over", "whatsapp"
		})},
		// Passkeys: first (no code sent yet, "Send a code by SMS
		// instead"), for a transaction, and after the code was asked for.
		{"challenge-passkey", StateChallenge, http.StatusOK, challenge(func(c *Challenge) {
			c.PasskeyOptions, c.PasskeyFirst, c.ResendWait, c.NoCode = samplePasskeyOptions, true, 0, true
		})},
		{"challenge-passkey-transaction", StateChallenge, http.StatusOK, challenge(func(c *Challenge) {
			c.Policy, c.Description, c.ContinueURL = "checkout", desc, "/checkout"
			c.PasskeyOptions, c.PasskeyFirst, c.ResendWait, c.NoCode = samplePasskeyOptions, true, 0, true
		})},
		{"challenge-passkey-code", StateChallenge, http.StatusOK, challenge(func(c *Challenge) {
			c.PasskeyOptions, c.PasskeyFirst = samplePasskeyOptions, true
		})},
		{"challenge-passkey-failed", StateChallenge, http.StatusUnprocessableEntity, challenge(func(c *Challenge) {
			c.PasskeyOptions, c.PasskeyFirst, c.ResendWait, c.NoCode = samplePasskeyOptions, true, 0, true
			c.Error = en().Text("msg.passkey_failed")
			c.AttemptsLeft--
		})},
		// About to expire: the page's script says so when it does.
		{"challenge-expiring", StateChallenge, http.StatusOK, challenge(func(c *Challenge) {
			c.ExpiresIn = 3 * time.Second
			c.SendsLeft = 0
		})},
	}
	states := make([]string, 0, len(StateText))
	for st := range StateText {
		if st != StateChallenge {
			states = append(states, string(st))
		}
	}
	sort.Strings(states)
	for _, name := range states {
		st := State(name)
		status := sampleStatus[st]
		if status == 0 {
			status = http.StatusOK
		}
		data := func() *Data { return &Data{} }
		switch st {
		case StateExpired, StateUsed, StateExhausted:
			data = func() *Data { return &Data{ContinueURL: ret} }
		case StateAlreadySent, StateStashExpired:
			data = func() *Data { return &Data{ContinueURL: "/", Description: desc} }
		case StateLocked:
			data = func() *Data { return Retry(3 * time.Hour) }
		case StatePasskeyOffer:
			data = func() *Data {
				return PasskeyOffer(samplePathPrefix+"/challenge/"+sampleChallengeID+"/passkey", "sample-csrf-token", ret, sampleCreateOptions)
			}
		case StatePasskeys:
			data = func() *Data {
				return PasskeyList([]PasskeyItem{
					{ID: "c2FtcGxlLWNyZWRlbnRpYWwtMQ", Name: "Passkey 1", Created: "2026-11-02", LastUsed: "2026-12-05"},
					{ID: "c2FtcGxlLWNyZWRlbnRpYWwtMg", Name: "Work laptop", Created: "2026-12-01"},
				}, samplePathPrefix+"/passkeys", "sample-csrf-token", "")
			}
		}
		samples = append(samples, samplePage{name, st, status, data})
	}
	return samples
}

// Samples lists the names PreviewHandler serves: the challenge in its
// variants ("challenge", "challenge-wrong-code", ...) and every other
// state ("expired", "locked", ...).
func Samples() []string {
	var names []string
	for _, s := range samplePages(sampleCodeLength) {
		names = append(names, s.name)
	}
	return names
}

// PreviewHandler serves every page state with sample data and the
// configured branding, exactly as the engine sends it (headers and CSP
// included): GET /{sample}?lang=hi, or with the browser's
// Accept-Language. GET / lists the samples. It is for template authors
// and for the browser tests; the samples hold no real code, number or
// token.
func PreviewHandler(pc Config, siteName string) (http.Handler, error) {
	p, err := New(pc, Options{SiteName: siteName, CodeLength: sampleCodeLength})
	if err != nil {
		return nil, err
	}
	samples := samplePages(sampleCodeLength)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if lang := r.URL.Query().Get("lang"); lang != "" {
			r = r.Clone(r.Context())
			r.Header.Set("Accept-Language", lang)
		}
		name := strings.Trim(r.URL.Path, "/")
		if name == "" {
			previewIndex(w, samples)
			return
		}
		for _, s := range samples {
			if s.name != name {
				continue
			}
			if s.state == StateRateLimited {
				p.RateLimited(w, r, true)
				return
			}
			d := s.data()
			p.answer(w.Header(), r, s.state, d)
			if err := p.write(w, r, s.status, d); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
			}
			return
		}
		setHeaders(w.Header(), "")
		http.NotFound(w, r)
	}), nil
}

func previewIndex(w http.ResponseWriter, samples []samplePage) {
	var b strings.Builder
	b.WriteString(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Page previews</title></head><body><main><h1>Page previews</h1><ul>`)
	for _, s := range samples {
		n := html.EscapeString(s.name)
		b.WriteString(`<li><a href="/` + n + `">` + n + `</a>`)
		for _, l := range locales {
			b.WriteString(` <a href="/` + n + `?lang=` + l.tag + `" lang="` + l.tag + `">` + l.tag + `</a>`)
		}
		b.WriteString(`</li>`)
	}
	b.WriteString(`</ul></main></body></html>`)
	setHeaders(w.Header(), "")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}
