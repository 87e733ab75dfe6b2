package stepup

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// A transaction whose described fields the app behind us could read
// otherwise than the SMS shows them is refused with 400, before a
// challenge is made or a code sent, for browsers and API clients.
func TestDescribeRefusesAmbiguousRequests(t *testing.T) {
	t.Parallel()
	const mp = "multipart/form-data; boundary=XX"
	part := func(hdr, v string) string { return "--XX\r\n" + hdr + "\r\n\r\n" + v + "\r\n" }
	cases := []struct {
		name, describe, path, ctype, body string
	}{
		{"duplicate field", "", "/checkout", "application/x-www-form-urlencoded", "amount=1.00&merchant=Charity&amount=9999.00"},
		{"php array", "", "/checkout", "application/x-www-form-urlencoded", "amount=1.00&merchant=Charity&amount[]=9999.00"},
		{"php dot", "Pay {form.amount_eur}", "/checkout", "application/x-www-form-urlencoded", "amount_eur=1.00&amount.eur=9999.00"},
		{"case", "", "/checkout", "application/x-www-form-urlencoded", "amount=1.00&merchant=Charity&Amount=9999.00"},
		{"query and body", "", "/checkout?amount=9999.00", "application/x-www-form-urlencoded", "amount=1.00&merchant=Charity"},
		{"semicolon", "", "/checkout", "application/x-www-form-urlencoded", "merchant=Charity&amount=1.00;amount=9999.00"},
		{"latin-1", "", "/checkout", "application/x-www-form-urlencoded; charset=iso-8859-1", "amount=1.00&merchant=Charity"},
		{"multipart duplicate", "", "/checkout", mp, part(`Content-Disposition: form-data; name="amount"`, "1.00") +
			part(`Content-Disposition: form-data; name="amount"`, "9999.00") + "--XX--\r\n"},
		{"quoted-printable part", "", "/checkout", mp, part("Content-Disposition: form-data; name=\"amount\"\r\nContent-Transfer-Encoding: quoted-printable", "=31.00") + "--XX--\r\n"},
		{"rfc 2231 name", "", "/checkout", mp, part(`Content-Disposition: form-data; name="amount"`, "1.00") +
			part(`Content-Disposition: form-data; name="x"; name*=utf-8''amount`, "9999.00") + "--XX--\r\n"},
		// The outside security test against PHP (repro 01): each is read
		// as "1 to ACME" by Go and as "9999 to EVIL Corp" by PHP.
		{"multipart parts after the close delimiter", "", "/checkout", mp, part(`Content-Disposition: form-data; name="amount"`, "1") +
			part(`Content-Disposition: form-data; name="merchant"`, "ACME") + "--XX--\r\n" +
			part(`Content-Disposition: form-data; name="amount"`, "9999") + part(`Content-Disposition: form-data; name="merchant"`, "EVIL Corp") + "--XX--\r\n"},
		{"multipart bare LF delimiter", "", "/checkout", mp, part(`Content-Disposition: form-data; name="amount"`, "1") +
			part(`Content-Disposition: form-data; name="merchant"`, "ACME") +
			"--XX\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nthanks\n" + part(`Content-Disposition: form-data; name="amount"`, "9999") + "--XX--\r\n"},
		{"multipart single-quoted name", "", "/checkout", mp, part(`Content-Disposition: form-data; name="amount"`, "1") +
			part(`Content-Disposition: form-data; name="merchant"`, "ACME") + part(`Content-Disposition: form-data; name='amount'`, "9999") + "--XX--\r\n"},
		{"multipart xboundary", "", "/checkout", "multipart/form-data; xboundary=YY; boundary=XX", part(`Content-Disposition: form-data; name="amount"`, "1") +
			part(`Content-Disposition: form-data; name="merchant"`, "ACME") + "--XX\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n" +
			strings.ReplaceAll(part(`Content-Disposition: form-data; name="amount"`, "9999")+part(`Content-Disposition: form-data; name="merchant"`, "EVIL Corp"), "--XX", "--YY") +
			"--YY--\r\n\r\n--XX--\r\n"},
		// A body the describe does not read, which the app may (repro 12:
		// Laravel parses any type holding "/json"), and a request with
		// none of the described fields: not approved as "Pay ? to ?".
		// R3-1: Laravel's isJson() finds "+json" anywhere in the
		// Content-Type and reads the body as JSON: 9999 to EVIL, where
		// the form reading says 1 to ACME.
		{"form type holding +json", "", "/checkout", "application/x-www-form-urlencoded;charset=utf-8;v=+json", `{"x":"=&merchant=ACME&amount=1&y=","amount":9999,"merchant":"EVIL"}`},
		{"json body to a form describe, form type holding json", "", "/checkout", "application/x-www-form-urlencoded; v=JSON", `{"amount":9999,"merchant":"EVIL"}`},
		{"json body as text/plain", "Pay {json.amount} to {json.payee.name}", "/checkout", "text/plain", `{"amount":"9999","payee":{"name":"EVIL"}}`},
		{"form body as octet-stream", "", "/checkout", "application/octet-stream", "amount=9999&merchant=EVIL"},
		{"json body to a form describe", "", "/checkout", "application/json", `{"amount":"9999","merchant":"EVIL"}`},
		{"none of the described fields", "", "/checkout", "application/x-www-form-urlencoded", "note=9999"},
		{"json duplicate", "Pay {json.amount}", "/checkout", "application/json", `{"amount":"1.00","amount":"9999.00"}`},
		{"json case", "Pay {json.amount}", "/checkout", "application/json", `{"amount":"1.00","AMOUNT":"9999.00"}`},
		{"json kelvin", "Pay {json.k}", "/checkout", "application/json", `{"k":"1.00","` + "\u212a" + `":"9999.00"}`},
		{"json nested duplicate", "Pay {json.amount}", "/checkout", "application/json", `{"amount":"1.00","items":[{"id":1,"id":2}]}`},
		{"json trailing", "Pay {json.amount}", "/checkout", "application/json", `{"amount":"1.00"}{"amount":"9999.00"}`},
		{"json invalid utf-8", "Pay {json.amount}", "/checkout", "application/json", "{\"amount\":\"1.00\",\"m\":\"\xff\"}"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			describe := tc.describe
			if describe == "" {
				describe = "Pay {form.amount} to {form.merchant}"
			}
			h := newHarness(t, store.NewMemory(time.Minute), withCheckout(describe))
			alice := h.browser("alice", "+14155550100")
			for _, accept := range []string{"text/html", "application/json"} {
				resp, page := alice.raw("POST", tc.path, tc.ctype, []byte(tc.body), "Accept", accept)
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
			if strings.Contains(logValues(h.logs.String()), "9999") {
				t.Fatal("a log line shows a value")
			}
		})
	}
}

// What a stranger types does not become a link, a number to call or a
// line of its own in the SMS.
func TestDescribeShowsOnlySafeText(t *testing.T) {
	t.Parallel()
	h := newTxHarness(t, store.NewMemory(time.Minute))
	alice := h.browser("alice", "+14155550100")
	body := "amount=WIN+A+PRIZE%21+%23now&merchant=CALL+%2B1+415+555+0199+http%3A%2F%2Fevil.com%3Fx%3D1"
	resp, _ := alice.raw("POST", "/checkout", "application/x-www-form-urlencoded", []byte(body))
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST = %d", resp.StatusCode)
	}
	text := h.out.last(t).Text
	for _, bad := range []string{"+1", "evil.com", "http:", "?x=", "!", "#now"} {
		if strings.Contains(text, bad) {
			t.Errorf("the SMS carries %q: %q", bad, text)
		}
	}
	if !strings.Contains(text, "approve: Pay WIN A PRIZE now to CALL 1 415 555 0199 http //evil com x 1.") {
		t.Errorf("SMS = %q", text)
	}
}

// requestSource is an identity source that reads the request, as
// identity request does.
type requestSource struct{ identity.Header }

func (requestSource) IdentityFromRequest() bool { return true }

// With an identity taken from the request, nobody is signed in: a
// describe that shows request text would let anyone send that text to any
// number, so the engine refuses it at provision.
func TestDescribeFromRequestRefusedWithRequestIdentity(t *testing.T) {
	t.Parallel()
	src := &requestSource{identity.Header{UserHeader: "X-Remote-User", PhoneHeader: "X-Remote-Phone"}}
	for describe, ok := range map[string]bool{
		"Sign up as {form.name}": false,
		"Reset for {query.user}": false,
		"Sign up {json.plan}":    false,
		"Create your account":    true,
		"":                       true,
	} {
		_, err := New(Config{Secret: testSecret}, []*Policy{{Name: "signup", Mode: Transaction, Describe: describe}},
			Options{Store: store.NewMemory(time.Minute), Identity: src, Sender: &outbox{}})
		if ok != (err == nil) {
			t.Errorf("describe %q: New = %v", describe, err)
		}
		if err != nil && !strings.Contains(err.Error(), "identity request") {
			t.Errorf("describe %q: unclear error %q", describe, err)
		}
	}
	// With a signed-in user, the same describe is fine.
	if _, err := New(Config{Secret: testSecret}, []*Policy{{Name: "checkout", Mode: Transaction, Describe: "Pay {form.amount}"}},
		Options{Store: store.NewMemory(time.Minute), Identity: &src.Header, Sender: &outbox{}}); err != nil {
		t.Fatal(err)
	}
}
