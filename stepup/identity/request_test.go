package identity

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddy-stepup/caddy-stepup/stepup/fields"
)

func signupRequest(t *testing.T, query, ctype, body string) *http.Request {
	t.Helper()
	r := httptest.NewRequest("POST", "/signup", strings.NewReader(body))
	r.URL.RawQuery = query
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	return r
}

func TestRequestReadsTheTypedNumber(t *testing.T) {
	const mp = "multipart/form-data; boundary=XX"
	for _, tc := range []struct{ field, query, ctype, body string }{
		{"{form.phone}", "", "application/x-www-form-urlencoded", "name=Ann&phone=%2B14155550100&tags=a&tags=b"},
		{"{form.user[phone]}", "", "application/x-www-form-urlencoded", "user[name]=Ann&user[phone]=%2B14155550100"},
		{"{form.phone}", "", mp, "--XX\r\nContent-Disposition: form-data; name=\"phone\"\r\n\r\n+14155550100\r\n--XX--\r\n"},
		{"{json.customer.phone}", "", "application/json", `{"customer":{"phone":"+14155550100"}}`},
		{"{query.phone}", "phone=%2B14155550100", "", ""},
	} {
		s, err := NewRequest(RequestConfig{Phone: tc.field})
		if err != nil {
			t.Fatal(err)
		}
		r := signupRequest(t, tc.query, tc.ctype, tc.body)
		id, err := s.Identify(r)
		if err != nil || id.Phone != "+14155550100" {
			t.Errorf("%s from %q: %+v, %v", tc.field, tc.body, id, err)
		}
	}
}

// A sign-up form in which the app could store another number than the
// one we text is refused (400), never guessed: the sender of the form
// would choose which number proves nothing.
func TestRequestRefusesAmbiguousFields(t *testing.T) {
	const form = "application/x-www-form-urlencoded"
	for _, tc := range []struct{ name, field, query, ctype, body string }{
		{"twice", "{form.phone}", "", form, "phone=%2B14155550100&phone=%2B14155550199"},
		{"php array", "{form.phone}", "", form, "phone=%2B14155550100&phone[]=%2B14155550199"},
		{"case", "{form.phone}", "", form, "phone=%2B14155550100&Phone=%2B14155550199"},
		{"query and body", "{form.phone}", "phone=%2B14155550199", form, "phone=%2B14155550100"},
		{"body and query", "{query.phone}", "phone=%2B14155550100", form, "phone=%2B14155550199"},
		{"semicolon", "{form.phone}", "", form, "phone=%2B14155550100;phone=%2B14155550199"},
		{"multipart twice", "{form.phone}", "", "multipart/form-data; boundary=XX",
			"--XX\r\nContent-Disposition: form-data; name=\"phone\"\r\n\r\n+14155550100\r\n" +
				"--XX\r\nContent-Disposition: form-data; name=\"phone\"\r\n\r\n+14155550199\r\n--XX--\r\n"},
		// The outside security test against PHP (repro 02): PHP registers
		// the number after the close delimiter.
		{"multipart after the close delimiter", "{form.phone}", "", "multipart/form-data; boundary=XX",
			"--XX\r\nContent-Disposition: form-data; name=\"phone\"\r\n\r\n+14155550100\r\n" +
				"--XX\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nnewuser\r\n--XX--\r\n" +
				"--XX\r\nContent-Disposition: form-data; name=\"phone\"\r\n\r\n+14155550199\r\n--XX--\r\n"},
		{"json twice", "{json.phone}", "", "application/json", `{"phone":"+14155550100","phone":"+14155550199"}`},
		{"json case", "{json.phone}", "", "application/json", `{"phone":"+14155550100","PHONE":"+14155550199"}`},
		{"email twice", "{form.email}", "", form, "email=ann%40example.com&email=eve%40example.com"},
		// R3-1: Laravel reads a form type holding "+json" as JSON, and
		// registers +14155550999 where the form says ...0177.
		{"form type holding +json", "{form.phone}", "", form + ";charset=utf-8;v=+json", `{"x":"=&phone=%2B14155550177&y=","phone":"+14155550999"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := RequestConfig{Phone: tc.field}
			if strings.Contains(tc.field, "email") {
				cfg = RequestConfig{User: tc.field, Lookup: &RedisLookup{Key: "account:{id}"}}
			}
			s, err := NewRequest(cfg)
			if err != nil {
				t.Fatal(err)
			}
			id, err := s.Identify(signupRequest(t, tc.query, tc.ctype, tc.body))
			if !errors.Is(err, fields.ErrAmbiguous) || errors.Is(err, ErrNoIdentity) {
				t.Fatalf("Identify = %+v, %v: want ErrAmbiguous", id, err)
			}
			if strings.Contains(err.Error(), "4155550") || strings.Contains(err.Error(), "example.com") {
				t.Fatalf("error %q shows a value", err)
			}
		})
	}
}

// The body is read under the engine's max_body, not a cap of its own: a
// sign-up form over 64 KiB is fine, and one over max_body is too large.
func TestRequestBodyCap(t *testing.T) {
	body := "phone=%2B14155550100&bio=" + strings.Repeat("x", 100<<10)
	s, err := NewRequest(RequestConfig{Phone: "{form.phone}"})
	if err != nil {
		t.Fatal(err)
	}
	r := signupRequest(t, "", "application/x-www-form-urlencoded", body)
	if id, err := s.Identify(r); err != nil || id.Phone != "+14155550100" {
		t.Fatalf("100 KiB form: %+v, %v", id, err)
	}
	s.SetMaxBody(64 << 10)
	_, err = s.Identify(signupRequest(t, "", "application/x-www-form-urlencoded", body))
	if !errors.Is(err, fields.ErrTooLarge) || errors.Is(err, ErrNoIdentity) {
		t.Fatalf("over max_body: %v, want ErrTooLarge", err)
	}
}

// R4-7, R4-8: the number (or account) also in a cookie or a header, where
// PHP's $_REQUEST, ASP.NET's Request[] or Spring 6.2 read it: refused.
func TestRequestRefusesFieldInCookieOrHeader(t *testing.T) {
	const form = "application/x-www-form-urlencoded"
	for _, tc := range []struct{ name, field, header, value string }{
		{"cookie", "{form.phone}", "Cookie", "phone=%2B14155550199"},
		{"cookie in another case", "{form.phone}", "Cookie", "s=1; PHONE=+14155550199"},
		{"header", "{form.phone}", "Phone", "+14155550199"},
		{"json, cookie for the path's first step", "{json.customer.phone}", "Cookie", "customer[phone]=+14155550199"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewRequest(RequestConfig{Phone: tc.field})
			if err != nil {
				t.Fatal(err)
			}
			ctype, body := form, "phone=%2B14155550100"
			if strings.HasPrefix(tc.field, "{json.") {
				ctype, body = "application/json", `{"customer":{"phone":"+14155550100"}}`
			}
			r := signupRequest(t, "", ctype, body)
			r.Header.Set(tc.header, tc.value)
			id, err := s.Identify(r)
			if !errors.Is(err, fields.ErrAmbiguous) || strings.Contains(err.Error(), "4155550") {
				t.Fatalf("Identify = %+v, %v: want ErrAmbiguous without the value", id, err)
			}
		})
	}
	// An ordinary cookie and header: read as before.
	s, _ := NewRequest(RequestConfig{Phone: "{form.phone}"})
	r := signupRequest(t, "", form, "phone=%2B14155550100")
	r.Header.Set("Cookie", "PHPSESSID=abc; telephone=1")
	r.Header.Set("X-Phone-Hint", "1")
	if id, err := s.Identify(r); err != nil || id.Phone != "+14155550100" {
		t.Fatalf("Identify = %+v, %v", id, err)
	}
}
