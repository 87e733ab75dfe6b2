package caddymodule

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	zapobserver "go.uber.org/zap/zaptest/observer"
)

// provisioned provisions the handler of raw JSON and fails the test on
// an error.
func provisioned(t *testing.T, raw string) *Handler {
	t.Helper()
	var h Handler
	if err := json.Unmarshal([]byte(raw), &h); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	return &h
}

// The start-up cost warning renders the message in the configured page
// locale: Hindi costs 2 UCS-2 segments where English fits in one; with
// no locale set, customers get their browser's language, and the warning
// names the dearest.
func TestSegmentWarningFollowsLocale(t *testing.T) {
	for _, tc := range []struct {
		page     string
		locale   string // of the session warning; "" for none
		segments int
		locales  []any
	}{
		{`"page":{"locale":"hi"},`, "hi", 2, []any{"hi"}},
		{`"page":{"locale":"en"},`, "", 0, nil},
		{``, "hi", 2, []any{"ar", "hi"}},
		{`"message":"{code} is your code",`, "", 0, nil},
	} {
		h := provisioned(t, `{"secret":"0123456789abcdef0123456789abcdef","domain":"shop.example.com",`+tc.page+
			`"identity":{"source":"header","user":"U","phone":"P"},"senders":[{"sender":"log"}]}`)
		core, logs := zapobserver.New(zapcore.WarnLevel)
		warnSegments(zap.New(core), h.engine.MessageSamples())
		var got map[string]any
		for _, e := range logs.FilterMessageSnippet("the code message costs more than one SMS segment").All() {
			got = e.ContextMap()
		}
		switch {
		case tc.locale == "" && got != nil:
			t.Errorf("%s: warned %v", tc.page, got)
		case tc.locale != "" && (got == nil || got["locale"] != tc.locale || got["encoding"] != "UCS-2" ||
			got["segments"] != int64(tc.segments) || len(got["locales"].([]any)) != len(tc.locales)):
			t.Errorf("%s: warning %v, want locale %s, UCS-2, %d segments, locales %v", tc.page, got, tc.locale, tc.segments, tc.locales)
		}
	}
}
