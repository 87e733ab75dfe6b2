package stepup

import (
	"html"
	"net/http"
	"sort"
	"strings"
	"time"
)

// pageSample is one page state with sample data: what template checks,
// previews and screenshots render.
type pageSample struct {
	name   string
	state  state
	status int
	data   func() *pageData
}

// samplePreviewNonce is the nonce of pages rendered for checks.
const samplePreviewNonce = "c2FtcGxlLW5vbmNlLTEyMzQ"

// sampleChallengeID is a well-formed challenge id that exists nowhere.
const sampleChallengeID = "PREVIEW_0123456789abcd"

// sampleStatus is the status each state is served with.
var sampleStatus = map[state]int{
	stateExpired: http.StatusGone, stateUsed: http.StatusGone, stateExhausted: http.StatusGone,
	stateStashExpired: http.StatusGone, stateLocked: http.StatusTooManyRequests,
	stateRateLimited: http.StatusTooManyRequests, stateNotFound: http.StatusNotFound,
	stateNoIdentity: http.StatusUnauthorized, stateBadPhone: http.StatusBadRequest,
	stateBadForm: http.StatusBadRequest, stateUnavailable: http.StatusServiceUnavailable,
	stateUnsupported: http.StatusNotImplemented, stateForbidden: http.StatusForbidden,
	stateInvalidGrant: http.StatusForbidden, statePhoneUnverified: http.StatusForbidden,
	stateError: http.StatusInternalServerError, stateTooLarge: http.StatusRequestEntityTooLarge,
	stateAlreadySent: http.StatusConflict, stateBodyTimeout: http.StatusRequestTimeout,
	stateAmbiguous: http.StatusBadRequest, stateCrossSite: http.StatusForbidden,
	stateBadIdentity: http.StatusBadRequest,
}

// pageSamples returns every designed page: the challenge in its variants,
// then every state of stateText (states added later included).
func pageSamples(codeLength int) []pageSample {
	const (
		ret  = "/account/payment-methods"
		desc = "Pay EUR 42.00 to Café Müller"
	)
	challenge := func(mut func(d *pageData)) func() *pageData {
		return func() *pageData {
			action := DefaultPathPrefix + "/challenge/" + sampleChallengeID
			d := &pageData{
				Policy: "payment-methods", PolicyLabel: policyLabel("payment-methods"),
				To: "+1******0100", CodeLength: codeLength,
				Action: action, ResendAction: action + "/resend", CSRF: "sample-csrf-token",
				AttemptsLeft: DefaultMaxAttempts, SendsLeft: DefaultMaxSends - 1,
				ExpiresAt:   time.Now().Add(DefaultCodeTTL).UTC().Format(time.RFC3339),
				ContinueURL: ret, expires: DefaultCodeTTL, timed: true, sentText: true,
				ExpiresSeconds: int(DefaultCodeTTL / time.Second),
				ResendIn:       humanDuration(DefaultResendAfter), resendWait: DefaultResendAfter,
				ResendSeconds: int(DefaultResendAfter / time.Second),
			}
			if mut != nil {
				mut(d)
			}
			return d
		}
	}
	canResend := func(d *pageData) { d.CanResend, d.ResendIn, d.ResendSeconds = true, "", 0 }
	samples := []pageSample{
		{"challenge", stateChallenge, http.StatusOK, challenge(nil)},
		{"challenge-transaction", stateChallenge, http.StatusOK, challenge(func(d *pageData) {
			d.Policy, d.PolicyLabel, d.Description, d.ContinueURL = "checkout", policyLabel("checkout"), desc, "/checkout"
		})},
		{"challenge-wrong-code", stateChallenge, http.StatusUnprocessableEntity, challenge(func(d *pageData) {
			d.Error = en().text("msg.wrong_code")
			d.AttemptsLeft--
		})},
		{"challenge-bad-format", stateChallenge, http.StatusUnprocessableEntity, challenge(func(d *pageData) {
			d.Error = en().text("msg.code_format", "n", codeLength)
		})},
		{"challenge-new-code", stateChallenge, http.StatusOK, challenge(func(d *pageData) {
			d.Notice = en().text("msg.new_code_sent")
			d.SendsLeft--
		})},
		{"challenge-can-resend", stateChallenge, http.StatusOK, challenge(canResend)},
		// Senders of several channels: "use another channel".
		{"challenge-channels", stateChallenge, http.StatusOK, challenge(func(d *pageData) {
			canResend(d)
			d.Channels = []pageChannel{{Name: "whatsapp"}, {Name: "email"}}
		})},
		{"challenge-resend-limit", stateChallenge, http.StatusTooManyRequests, challenge(func(d *pageData) {
			d.Error = en().text("msg.send_limit")
			d.SendsLeft, d.ResendIn, d.ResendSeconds = 0, "", 0
		})},
		{"challenge-last-attempt", stateChallenge, http.StatusUnprocessableEntity, challenge(func(d *pageData) {
			d.Error = en().text("msg.wrong_code")
			d.AttemptsLeft = 1
		})},
		{"challenge-send-failed", stateChallenge, http.StatusOK, challenge(func(d *pageData) {
			d.SendFailed = true
			canResend(d)
		})},
		{"challenge-number-hidden", stateChallenge, http.StatusOK, challenge(func(d *pageData) { d.To = "" })},
		// About to expire: the page's script says so when it does.
		{"challenge-expiring", stateChallenge, http.StatusOK, challenge(func(d *pageData) {
			d.expires, d.ExpiresSeconds = 3*time.Second, 3
			d.ResendIn, d.ResendSeconds = "", 0
			d.SendsLeft = 0
		})},
	}
	states := make([]string, 0, len(stateText))
	for st := range stateText {
		if st != stateChallenge {
			states = append(states, string(st))
		}
	}
	sort.Strings(states)
	for _, name := range states {
		st := state(name)
		status := sampleStatus[st]
		if status == 0 {
			status = http.StatusOK
		}
		data := func() *pageData { return &pageData{} }
		switch st {
		case stateExpired, stateUsed, stateExhausted:
			data = func() *pageData { return &pageData{ContinueURL: ret} }
		case stateAlreadySent, stateStashExpired:
			data = func() *pageData { return &pageData{ContinueURL: "/", Description: desc} }
		case stateLocked:
			data = func() *pageData {
				return &pageData{RetryIn: humanDuration(3 * time.Hour), retry: 3 * time.Hour, retrySet: true}
			}
		}
		samples = append(samples, pageSample{name, st, status, data})
	}
	return samples
}

// PageSamples lists the names PreviewHandler serves: the challenge in its
// variants ("challenge", "challenge-wrong-code", ...) and every other
// state ("expired", "locked", ...).
func PageSamples() []string {
	var names []string
	for _, s := range pageSamples(DefaultCodeLength) {
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
func PreviewHandler(pc PageConfig, siteName string) (http.Handler, error) {
	p, err := newPage(pc, siteName, DefaultCodeLength)
	if err != nil {
		return nil, err
	}
	samples := pageSamples(DefaultCodeLength)
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
			h := w.Header()
			if s.state == stateRateLimited {
				pageHeaders(h, "")
				body := p.rateLimited(h, r)
				w.WriteHeader(s.status)
				_, _ = w.Write(body)
				return
			}
			d := s.data()
			l := p.localeFor(r)
			p.prepare(d, s.state, l, DefaultCodeLength)
			d.Site = firstOf(pc.Title, siteName, requestHost(r))
			h.Set("Content-Language", l.tag)
			if err := p.write(w, r, s.status, d); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
			}
			return
		}
		pageHeaders(w.Header(), "")
		http.NotFound(w, r)
	}), nil
}

func previewIndex(w http.ResponseWriter, samples []pageSample) {
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
	pageHeaders(w.Header(), "")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}
