package page

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddy-stepup/caddy-stepup/sender"
)

// sampleResponder is a Responder with the engine's default settings but
// those opts sets.
func sampleResponder(t *testing.T, pc Config, opts Options) *Responder {
	t.Helper()
	if opts.CodeLength == 0 {
		opts.CodeLength = sampleCodeLength
	}
	if opts.CodeTTL == 0 {
		opts.CodeTTL = sampleCodeTTL
	}
	if opts.Message == "" {
		opts.Message = DefaultMessage
	}
	return mustPage(t, pc, opts)
}

// The samples are the messages customers get: in the page's locale when
// one is set (a Hindi message is UCS-2, two segments where the English
// one fits in one), else in every shipped locale.
func TestMessageSamples(t *testing.T) {
	all := sampleResponder(t, Config{}, Options{}).MessageSamples()
	if len(all) != len(Locales()) {
		t.Fatalf("%d samples without a page locale, want one per locale (%d)", len(all), len(Locales()))
	}
	p := sampleResponder(t, Config{}, Options{})
	for i, s := range all {
		if s.Locale != Locales()[i] || s.Transaction == "" {
			t.Errorf("sample %d: %+v", i, s)
		}
		r := httptest.NewRequest("GET", "https://"+sampleHost+"/", nil)
		r.Header.Set("Accept-Language", s.Locale)
		if want := p.Message(r, "888888", ""); s.Session != want {
			t.Errorf("%s: sample %q, delivered %q", s.Locale, s.Session, want)
		}
	}

	hi := sampleResponder(t, Config{Locale: "hi"}, Options{}).MessageSamples()
	if len(hi) != 1 || hi[0].Locale != "hi" {
		t.Fatalf("page locale hi: samples %+v", hi)
	}
	if enc, _, n := sender.Segments(hi[0].Session); enc != sender.UCS2 || n != 2 {
		t.Errorf("hi: %s, %d segments; want UCS-2, 2: %q", enc, n, hi[0].Session)
	}
	en := sampleResponder(t, Config{Locale: "en"}, Options{}).MessageSamples()
	if enc, _, n := sender.Segments(en[0].Session); len(en) != 1 || enc != sender.GSM7 || n != 1 {
		t.Errorf("en: %s, %d segments: %+v", enc, n, en)
	}

	// A custom message is the operator's words in every language: one
	// sample, without a transaction unless it shows {describe}; only its
	// {ttl} follows a page locale.
	custom := sampleResponder(t, Config{}, Options{Message: "{code} is your code, valid {ttl}", CodeLength: 10}).MessageSamples()
	if len(custom) != 1 || custom[0].Locale != "en" || custom[0].Transaction != "" ||
		!strings.HasPrefix(custom[0].Session, "8888888888 is your code, valid 5 minutes") {
		t.Errorf("custom message: %+v", custom)
	}
	customHi := sampleResponder(t, Config{Locale: "hi"}, Options{Message: "{code}: {describe} ({ttl})"}).MessageSamples()
	if len(customHi) != 1 || customHi[0].Locale != "hi" || !strings.Contains(customHi[0].Transaction, sampleDescription) ||
		strings.Contains(customHi[0].Session, "minutes") {
		t.Errorf("custom message, page locale hi: %+v", customHi)
	}
}
