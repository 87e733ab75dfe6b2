package stepup

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// Through the engine: an ambiguous sign-up form gets 400 and no code,
// a form over max_body 413 (not 401), and a plain form over 64 KiB a
// challenge.
func TestRequestSourceThroughEngine(t *testing.T) {
	t.Parallel()
	src, err := identity.NewRequest(identity.RequestConfig{Phone: "{form.phone}"})
	if err != nil {
		t.Fatal(err)
	}
	const maxBody = 256 << 10
	src.SetMaxBody(maxBody)
	out := &outbox{}
	e, err := New(Config{Secret: []byte("0123456789abcdef0123456789abcdef-test"), MaxBody: maxBody},
		[]*Policy{{Name: "signup", Mode: Transaction, Describe: "Create your account"}},
		Options{Store: store.NewMemory(time.Minute), Identity: src, Sender: out})
	if err != nil {
		t.Fatal(err)
	}
	next := NextFunc(func(w http.ResponseWriter, r *http.Request) error {
		t.Error("the sign-up reached the app")
		return nil
	})
	post := func(body string) int {
		r := httptest.NewRequest("POST", "/signup", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Accept", "text/html")
		w := httptest.NewRecorder()
		if err := e.Protect(w, r, e.Policy("signup"), next); err != nil {
			t.Fatal(err)
		}
		return w.Code
	}
	if code := post("phone=%2B14155550100&phone=%2B14155550199"); code != http.StatusBadRequest || out.count() != 0 {
		t.Fatalf("phone twice: %d, %d codes sent", code, out.count())
	}
	if code := post("phone=%2B14155550100&bio=" + strings.Repeat("x", maxBody)); code != http.StatusRequestEntityTooLarge || out.count() != 0 {
		t.Fatalf("over max_body: %d, %d codes sent", code, out.count())
	}
	if code := post("phone=%2B14155550100&bio=" + strings.Repeat("x", 100<<10)); code != http.StatusSeeOther {
		t.Fatalf("100 KiB form: %d", code)
	}
	// Codes of flows without a signed-in user go out after the answer.
	for deadline := time.Now().Add(5 * time.Second); out.count() < 1 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if out.count() != 1 {
		t.Fatalf("100 KiB form: %d codes sent", out.count())
	}
	if to := out.msgs[0].To; to != "+14155550100" {
		t.Fatalf("code sent to %s", to)
	}
}
