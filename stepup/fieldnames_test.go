package stepup

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
)

// The second outside test (N3, N10, N11): field names that Rack 2
// (Rails <= 7.0, Sinatra) or qs (Express) read as a described field, a
// described JSON value that is an array or object, and a JSON key spelled
// like the described path. Each is refused (400) before any code, against
// a real Redis; the plain request beside them is still described.
func TestDescribeRefusesOtherParsersNames(t *testing.T) {
	const (
		form = "application/x-www-form-urlencoded"
		mp   = "multipart/form-data; boundary=XX"
		js   = "application/json"
	)
	part := func(name, v string) string {
		return "--XX\r\nContent-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" + v + "\r\n"
	}
	type tc struct{ name, describe, ctype, body string }
	var cases []tc
	for _, s := range []string{"[amount]", "]amount", "[[amount]]", "amount]", "[amount", "[]amount", "]]amount]]"} {
		cases = append(cases,
			tc{"form beside " + s, "", form, "amount=1&merchant=ACME&" + s + "=9999"},
			tc{"form alone " + s, "", form, s + "=9999&merchant=ACME"},
			tc{"multipart " + s, "", mp, part("amount", "1") + part("merchant", "ACME") + part(s, "9999") + "--XX--\r\n"},
			tc{"json key " + s, "Pay {json.amount} to {json.merchant}", js, `{"amount":"1","merchant":"ACME","` + s + `":"9999"}`},
		)
	}
	const jsonDescribe = "Pay {json.amount} to {json.payee.name}"
	cases = append(cases,
		tc{"form escaped [amount]", "", form, "amount=1&merchant=ACME&%5Bamount%5D=9999"},
		tc{"json array amount", jsonDescribe, js, `{"amount":[9999],"payee":{"name":"ACME"}}`},
		tc{"json object amount", jsonDescribe, js, `{"amount":{"value":9999},"payee":{"name":"ACME"}}`},
		tc{"json payee an array", jsonDescribe, js, `{"amount":"1","payee":{"name":["EVIL Corp 9999"]}}`},
		tc{"json dotted key", jsonDescribe, js, `{"amount":"1","payee":{"name":"ACME"},"payee.name":"EVIL Corp 9999"}`},
		tc{"json bracketed key", jsonDescribe, js, `{"amount":"1","payee":{"name":"ACME"},"payee[name]":"EVIL Corp 9999"}`},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			describe := c.describe
			if describe == "" {
				describe = "Pay {form.amount} to {form.merchant}"
			}
			h := newHarness(t, storeKinds[1].new(t), withCheckout(describe))
			alice := h.browser("alice", "+14155550100")
			for _, accept := range []string{"text/html", "application/json"} {
				resp, page := alice.raw("POST", "/checkout", c.ctype, []byte(c.body), "Accept", accept)
				if resp.StatusCode != http.StatusBadRequest {
					t.Fatalf("%s: POST = %d, want 400", accept, resp.StatusCode)
				}
				if strings.Contains(page, "9999") {
					t.Fatalf("%s: the answer shows a value", accept)
				}
			}
			if n := h.out.count(); n != 0 {
				t.Fatalf("%d codes sent", n)
			}
			if h.upstream.Load() != 0 {
				t.Fatal("the request reached the upstream")
			}
		})
	}

	// Plain requests, and names of other fields with brackets, are still
	// described.
	for _, c := range []tc{
		{"plain form", "", form, "amount=1&merchant=ACME&items[0][sku]=x&[x]amount=2"},
		{"plain json", jsonDescribe, js, `{"amount":"1","payee":{"name":"ACME"},"meta":{"a.b":1},"payee.iban":"x"}`},
		{"json absent payee", jsonDescribe, js, `{"amount":"1"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			describe := c.describe
			if describe == "" {
				describe = "Pay {form.amount} to {form.merchant}"
			}
			h := newHarness(t, storeKinds[1].new(t), withCheckout(describe))
			alice := h.browser("alice", "+14155550100")
			resp, _ := alice.raw("POST", "/checkout", c.ctype, []byte(c.body), "Accept", "application/json")
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("POST = %d, want 401 (a challenge)", resp.StatusCode)
			}
			want := "Pay 1 to ACME"
			if c.name == "json absent payee" {
				want = "Pay 1 to ?" // an absent field shows as ?, documented
			}
			if got := h.out.last(t).Text; !strings.Contains(got, want) {
				t.Fatalf("described %q, want %q", got, want)
			}
		})
	}
}

// identity request: a sign-up form in which the app registers another
// number than the one texted (N3 b: phone=...0177&[phone]=...0999) or in
// which the number is an array (N10) gets 400 and no code.
func TestRequestIdentityRefusesOtherParsersNames(t *testing.T) {
	for _, c := range []struct{ field, ctype, body string }{
		{"{form.phone}", "application/x-www-form-urlencoded", "phone=%2B14155550177&name=newuser&[phone]=%2B14155550999"},
		{"{form.phone}", "application/x-www-form-urlencoded", "phone=%2B14155550177&name=newuser&phone]=%2B14155550999"},
		{"{form.phone}", "application/x-www-form-urlencoded", "[phone]=%2B14155550999&name=newuser"},
		{"{form.phone}", "multipart/form-data; boundary=XX", "--XX\r\nContent-Disposition: form-data; name=\"phone\"\r\n\r\n+14155550177\r\n" +
			"--XX\r\nContent-Disposition: form-data; name=\"]]phone]]\"\r\n\r\n+14155550999\r\n--XX--\r\n"},
		{"{json.phone}", "application/json", `{"phone":["+14155550999"]}`},
		{"{json.user.phone}", "application/json", `{"user":{"phone":"+14155550177"},"user.phone":"+14155550999"}`},
	} {
		src, err := identity.NewRequest(identity.RequestConfig{Phone: c.field})
		if err != nil {
			t.Fatal(err)
		}
		out := &outbox{}
		e, err := New(Config{Secret: testSecret},
			[]*Policy{{Name: "signup", Mode: Transaction, Describe: "Create your account"}},
			Options{Store: storeKinds[1].new(t), Identity: src, Sender: out})
		if err != nil {
			t.Fatal(err)
		}
		next := NextFunc(func(w http.ResponseWriter, r *http.Request) error {
			t.Error("the sign-up reached the app")
			return nil
		})
		r := httptest.NewRequest("POST", "/signup", strings.NewReader(c.body))
		r.Header.Set("Content-Type", c.ctype)
		r.Header.Set("Accept", "text/html")
		w := httptest.NewRecorder()
		if err := e.Protect(w, r, e.Policy("signup"), next); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // codes of sign-ups go out after the answer
		if w.Code != http.StatusBadRequest || out.count() != 0 {
			t.Errorf("%s %q: %d, %d codes sent; want 400 and none", c.field, c.body, w.Code, out.count())
		}
	}
}
