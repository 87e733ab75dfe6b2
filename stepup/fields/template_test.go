package fields

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseTemplate(t *testing.T) {
	for _, bad := range []string{"Pay {amount}", "Pay {form.amount", "{cookie.x}", "{form.}", "{json.a..b}", "{}", "a{b}c"} {
		if _, err := ParseTemplate(bad); err == nil {
			t.Errorf("ParseTemplate(%q) accepted", bad)
		}
	}
	for _, s := range []string{"", "Sign up", "Pay } now", "Pay {form.amount} to {form.merchant}", "{json.a.b.0}{query.q}!"} {
		tp, err := ParseTemplate(s)
		if err != nil {
			t.Fatalf("ParseTemplate(%q): %v", s, err)
		}
		if tp.String() != s {
			t.Errorf("%q prints as %q", s, tp.String())
		}
	}
	tp, _ := ParseTemplate("Pay {form.amount} to {json.payee.name}")
	refs := tp.Refs()
	if len(refs) != 2 || refs[0].String() != "{form.amount}" || refs[1].String() != "{json.payee.name}" || !tp.ReadsRequest() {
		t.Fatalf("Refs = %v", refs)
	}
	refs[0].Name = "changed"
	if tp.Refs()[0].Name != "amount" {
		t.Fatal("Refs shares the template's references")
	}
	if lit, _ := ParseTemplate("Sign up for the newsletter"); lit.ReadsRequest() {
		t.Fatal("a template without placeholders reads the request")
	}
}

func TestRender(t *testing.T) {
	cases := []struct {
		tmpl string
		req  req
		want string // refused for an ambiguous request
	}{
		{"Pay {json.a.b.1} {query.q} {form.missing}", req{ctype: js + "; charset=utf-8", query: "q=%E2%82%AC", body: `{"a":{"b":[1,2.50,3]}}`}, "Pay 2.50 € ?"},
		{"{form.amount}/{form.merchant}", req{ctype: mpct, body: mp(field("amount", "99"),
			"Content-Disposition: form-data; name=\"merchant\"; filename=\"m.bin\"\r\n\r\n\x00\x01")}, "99/?"},
		{"{form.amount}/{form.merchant}", req{ctype: mpct, body: mp(field("amount", "99"),
			"Content-Disposition: form-data; name=\"merchant\"; filename=\"\"\r\n\r\nACME")}, refused},
		{"{form.amount}/{form.file}", req{ctype: mpct, body: mp(field("amount", "99"),
			"Content-Disposition: form-data; name=\"receipt\"; filename=\"m.bin\"\r\n\r\n\x00\x01")}, "99/?"},
		{"Pay {form.amount} to {form.merchant}", req{ctype: form, body: "amount=EUR+10.00&merchant=Caf%C3%A9+%E6%9D%B1%E4%BA%AC&item=1&item=2"}, "Pay EUR 10.00 to Café 東京"},
		{"Pay {form.amount} to {form.merchant}", req{ctype: form, body: "amount=1.00&merchant=Charity&amount=9999.00"}, refused},
		// A description of nothing is refused, not approved as "Pay ? to ?".
		{"Pay {form.amount} to {form.merchant}", req{ctype: form, body: "amount=+&merchant=%E2%9C%93"}, refused},
		{"Pay {form.amount} to {form.merchant}", req{ctype: form, body: "x=1"}, refused},
		{"Pay {form.amount} to {form.merchant}", req{}, refused},
		{"Pay {json.amount} to {json.payee.name}", req{ctype: js, body: " "}, refused},
		{"Pay {form.amount} to {form.merchant}", req{ctype: form, body: "merchant=ACME"}, "Pay ? to ACME"},
		// A body the template does not read, which the app may (repro 12).
		{"Pay {form.amount} to {form.merchant}", req{ctype: js, body: `{"amount":"1","merchant":"ACME"}`}, refused},
		// A type holding "json" anywhere is JSON, as Laravel's isJson()
		// tells it (R3-1); a form type that holds it is refused.
		{"Pay {json.amount} to {json.payee.name}", req{ctype: "text/json", body: `{"amount":"9999","payee":{"name":"EVIL"}}`}, "Pay 9999 to EVIL"},
		{"Pay {json.amount} to {json.payee.name}", req{ctype: "text/plain; v=+json", body: `{"amount":"9999","payee":{"name":"EVIL"}}`}, "Pay 9999 to EVIL"},
		{"Pay {form.amount} to {form.merchant}", req{ctype: "application/x-www-form-urlencoded;charset=utf-8;v=+json",
			body: `{"x":"=&merchant=ACME&amount=1&y=","amount":9999,"merchant":"EVIL"}`}, refused},
		{"Pay {form.amount} to {form.merchant}", req{ctype: "application/x-www-form-urlencoded; charset=\"utf-8/JSON\"", body: "amount=1&merchant=ACME"}, refused},
		{"Pay {form.amount} to {form.merchant}", req{ctype: "multipart/form-data; boundary=XX; v=+json", body: mp(field("amount", "1"), field("merchant", "ACME"))}, refused},
		{"Pay {json.amount} to {json.merchant}", req{ctype: "application/x-www-form-urlencoded; v=+json", body: `{"amount":9999,"merchant":"EVIL"}`}, refused},
		{"Order {query.order}", req{ctype: "application/x-www-form-urlencoded; v=+json", query: "order=42", body: `{"order":43}`}, refused},
		{"Pay {json.amount} to {json.payee.name}", req{ctype: "text/plain", body: `{"amount":"9999","payee":{"name":"EVIL"}}`}, refused},
		{"Pay {json.amount} to {json.payee.name}", req{body: `{"amount":"9999","payee":{"name":"EVIL"}}`}, refused},
		{"Pay {json.amount} to {json.payee.name}", req{ctype: form, query: "x=1", body: "amount=9999"}, refused},
		{"Pay {form.amount} to {form.merchant}", req{ctype: "application/octet-stream", body: "amount=9999&merchant=EVIL"}, refused},
		{"Pay {form.amount} to {json.merchant}", req{ctype: js, body: `{"merchant":"ACME"}`}, "Pay ? to ACME"},
		{"Pay {form.amount} to {json.merchant}", req{ctype: form, body: "amount=1"}, "Pay 1 to ?"},
		// A template of the query alone takes any body.
		{"Order {query.order}", req{ctype: "application/octet-stream", query: "order=42", body: "\x00\x01"}, "Order 42"},
		// Rack reads an untyped POST body, and any multipart type, as a
		// form, and Rails merges it over the query.
		{"Order {query.order}", req{query: "order=42", body: "order=43"}, refused},
		{"Order {query.order}", req{ctype: "multipart/mixed; boundary=XX", query: "order=42", body: mp(field("order", "43"))}, refused},
		{"Order {query.order}", req{query: "order=42", body: "note=1"}, "Order 42"},
		{"Pay {form.amount}", req{ctype: form, body: "amount=10%0A%0A%40evil.example+%23123456"}, "Pay 10 evil example 123456"},
		// Repro 08: phones link a bare IPv4 address.
		{"Pay {form.amount} to {form.merchant}", req{ctype: form, body: "amount=1&merchant=203.0.113.7%2Fpay"}, "Pay 1 to 203 0 113 7/pay"},
		{"Pay {form.amount} to {form.merchant}", req{ctype: form, body: "amount=1%2C234.56&merchant=ACME"}, "Pay 1,234.56 to ACME"},
		{"Sign up as {form.name}", req{ctype: form, body: "name=WIN+A+PRIZE%21+CALL+%2B1+415+555+0199"}, "Sign up as WIN A PRIZE CALL 1 415 555 0199"},
		// Nothing taken from the request is cut: what the cut hides is
		// what the customer must see (R4-2).
		{"Sign up as {form.name}", req{ctype: form, body: "name=WIN+A+PRIZE%21+CALL+%2B1+415+555+0199+NOW+at+http%3A%2F%2Fevil.com"}, refused},
		{"Pay {json.amount} to {json.merchant}", req{ctype: js, body: `{"amount":"0.00000000000000000000000000000000000001e42","merchant":"ACME"}`}, refused},
		{"Pay {json.amount} to {json.merchant}", req{ctype: js, body: `{"amount":"000000000000000000000000000000000000009999","merchant":"ACME"}`}, refused},
		{"Pay {form.amount} to {form.merchant}", req{ctype: form, body: "amount=" + strings.Repeat("1", 40) + "&merchant=ACME"}, "Pay " + strings.Repeat("1", 40) + " to ACME"},
		{"{form.a} {form.b} {form.c} {form.d}", req{ctype: form, body: "a=" + strings.Repeat("x", 40) + "&b=" + strings.Repeat("y", 40) + "&c=" + strings.Repeat("z", 40) + "&d=" + strings.Repeat("w", 40)}, refused},
		{"{form.a} {form.b} {form.c} {form.d}", req{ctype: form, body: "a=" + strings.Repeat("x", 50) + "&b=1&c=2&d=3"}, refused},
		// Exponent notation is another magnitude than it shows, to every
		// number parser (R4-2).
		{"Pay {json.amount} to {json.merchant}", req{ctype: js, body: `{"amount":"0.01e6","merchant":"ACME"}`}, refused},
		{"Pay {json.amount} to {json.merchant}", req{ctype: js, body: `{"amount":1E4,"merchant":"ACME"}`}, refused},
		{"Pay {form.amount} to {form.merchant}", req{ctype: form, body: "amount=-.5e%2B3&merchant=ACME"}, refused},
		{"Pay {form.amount} to {form.merchant}", req{ctype: form, body: "amount=10&merchant=E1+Energy"}, "Pay 10 to E1 Energy"},
		{"Pay {form.amount} to {form.merchant}", req{ctype: form, body: "amount=10&merchant=1e"}, "Pay 10 to 1e"},
		// Digits of other scripts: customers may read "1٠٠٠٠" as "1",
		// Java and Python read 10000 (R4-5).
		{"Pay {form.amount} to {form.merchant}", req{ctype: form, body: "amount=1%D9%A0%D9%A0%D9%A0%D9%A0&merchant=ACME"}, refused},
		{"Pay {form.amount} to {form.merchant}", req{ctype: form, body: "amount=1%E0%A5%A6%E0%A5%A6%E0%A5%A6&merchant=ACME"}, refused},
		{"Pay {form.amount} to {form.merchant}", req{ctype: form, body: "amount=500&merchant=%D9%A5%D9%A0%D9%A0"}, refused},
		{"Pay\n{form.a}\u202e", req{ctype: form, body: "a=1"}, "Pay 1"},
	}
	for _, tc := range cases {
		tp, err := ParseTemplate(tc.tmpl)
		if err != nil {
			t.Fatal(err)
		}
		r, body := tc.req.build(t)
		got, err := tp.Render(r, body)
		if tc.want == refused {
			if !errors.Is(err, ErrAmbiguous) || got != "" {
				t.Errorf("Render(%q, %q) = %q, %v: want refused", tc.tmpl, tc.req.body, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Render(%q, %q) = %q, %v\nwant %q", tc.tmpl, tc.req.body, got, err, tc.want)
		}
		if n := utf8.RuneCountInString(got); n > MaxText+1 {
			t.Errorf("Render is %d runes long", n)
		}
	}
}
