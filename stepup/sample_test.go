package stepup

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

func sampleEngine(t *testing.T, cfg Config) *Engine {
	t.Helper()
	cfg.Secret = testSecret
	e, err := New(cfg, nil, Options{Store: store.NewMemory(0), Identity: &identity.Header{}, Sender: &outbox{}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// The samples are the messages customers get: in the page's locale when
// one is set (a Hindi message is UCS-2, two segments where the English
// one fits in one), else in every shipped locale.
func TestMessageSamples(t *testing.T) {
	all := sampleEngine(t, Config{}).MessageSamples()
	if len(all) != len(Locales()) {
		t.Fatalf("%d samples without a page locale, want one per locale (%d)", len(all), len(Locales()))
	}
	e := sampleEngine(t, Config{})
	for i, s := range all {
		if s.Locale != Locales()[i] || s.Transaction == "" {
			t.Errorf("sample %d: %+v", i, s)
		}
		r := httptest.NewRequest("GET", "https://"+sampleHost+"/", nil)
		r.Header.Set("Accept-Language", s.Locale)
		if want := e.localizedText(r, "888888", ""); s.Session != want {
			t.Errorf("%s: sample %q, delivered %q", s.Locale, s.Session, want)
		}
	}

	hi := sampleEngine(t, Config{Page: PageConfig{Locale: "hi"}}).MessageSamples()
	if len(hi) != 1 || hi[0].Locale != "hi" {
		t.Fatalf("page locale hi: samples %+v", hi)
	}
	if enc, _, n := sender.Segments(hi[0].Session); enc != sender.UCS2 || n != 2 {
		t.Errorf("hi: %s, %d segments; want UCS-2, 2: %q", enc, n, hi[0].Session)
	}
	en := sampleEngine(t, Config{Page: PageConfig{Locale: "en"}}).MessageSamples()
	if enc, _, n := sender.Segments(en[0].Session); len(en) != 1 || enc != sender.GSM7 || n != 1 {
		t.Errorf("en: %s, %d segments: %+v", enc, n, en)
	}

	// A custom message is the operator's words in every language: one
	// sample, without a transaction unless it shows {describe}; only its
	// {ttl} follows a page locale.
	custom := sampleEngine(t, Config{Message: "{code} is your code, valid {ttl}", CodeLength: 10}).MessageSamples()
	if len(custom) != 1 || custom[0].Locale != "en" || custom[0].Transaction != "" ||
		!strings.HasPrefix(custom[0].Session, "8888888888 is your code, valid 5 minutes") {
		t.Errorf("custom message: %+v", custom)
	}
	customHi := sampleEngine(t, Config{Message: "{code}: {describe} ({ttl})", Page: PageConfig{Locale: "hi"}}).MessageSamples()
	if len(customHi) != 1 || customHi[0].Locale != "hi" || !strings.Contains(customHi[0].Transaction, sampleDescription) ||
		strings.Contains(customHi[0].Session, "minutes") {
		t.Errorf("custom message, page locale hi: %+v", customHi)
	}
}
