package caddymodule

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// signupHandler provisions a handler with identity request and a
// transaction policy on /signup.
func signupHandler(t *testing.T, extra, describe string) (*Handler, error) {
	t.Helper()
	raw := `{"secret":"` + strings.Repeat("s", 32) + `",` + extra +
		`"identity":{"source":"request","phone":"{form.phone}"},"senders":[{"sender":"log"}],` +
		`"policies":[{"name":"signup","match":[{"path":["/signup"]}],"mode":"transaction","describe":` + describe + `}]}`
	var h Handler
	if err := json.Unmarshal([]byte(raw), &h); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	err := h.Provision(ctx)
	t.Cleanup(func() { _ = h.Cleanup() })
	return &h, err
}

// With identity request, a describe that shows request text is a
// provision error: anyone could have it sent to any number.
func TestRequestIdentityRefusesDescribeFromRequest(t *testing.T) {
	_, err := signupHandler(t, "", `"Sign up as {form.name}"`)
	if err == nil || !strings.Contains(err.Error(), "identity request") || !strings.Contains(err.Error(), "signup") {
		t.Fatalf("Provision = %v", err)
	}
	if _, err := signupHandler(t, "", `"Create your account"`); err != nil {
		t.Fatal(err)
	}
}

// The identity request source reads the body under the handler's
// max_body: over it 413 (not 401), under it a challenge even past the old
// 64 KiB cap of its own; a phone field twice 400.
func TestRequestIdentityMaxBody(t *testing.T) {
	h, err := signupHandler(t, `"max_body":204800,`, `"Create your account"`)
	if err != nil {
		t.Fatal(err)
	}
	post := func(body string) int {
		r := prepared("POST", "/signup")
		r.Body = io.NopCloser(strings.NewReader(body))
		r.ContentLength = int64(len(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Accept", "text/html")
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, r, okHandler{}); err != nil {
			t.Fatal(err)
		}
		return w.Code
	}
	if code := post("phone=%2B14155550100&bio=" + strings.Repeat("x", 250<<10)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("over max_body: %d, want 413", code)
	}
	if code := post("phone=%2B14155550100&phone=%2B14155550199"); code != http.StatusBadRequest {
		t.Errorf("phone twice: %d, want 400", code)
	}
	if code := post("phone=%2B14155550100&bio=" + strings.Repeat("x", 100<<10)); code != http.StatusSeeOther {
		t.Errorf("100 KiB form: %d, want 303", code)
	}

	// A max_body over the default (1 MiB) holds for the source too.
	h, err = signupHandler(t, `"max_body":2097152,`, `"Create your account"`)
	if err != nil {
		t.Fatal(err)
	}
	if code := post("phone=%2B14155550100&bio=" + strings.Repeat("x", 1536<<10)); code != http.StatusSeeOther {
		t.Errorf("1.5 MiB form under a 2 MiB max_body: %d, want 303", code)
	}
}
