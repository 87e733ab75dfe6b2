package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// The second outside test's field-name findings, through the built Caddy
// and its reverse_proxy: names that Rack 2 (Rails <= 7.0, Sinatra) or qs
// (Express) read as a described field or as _method (N3), a described
// JSON value that is an array (N10) and a JSON key spelled like the
// described path (N11).
func TestFieldNamesE2E(t *testing.T) {
	up := newUpstream(t)
	hook := newReceiver(t)
	p := startCaddy(t, fmt.Sprintf(`{
	admin 127.0.0.1:{ADMIN}
	auto_https off
}
http://127.0.0.1:{PORT} {
	stepup {
		redis %s {
			key_prefix e2e-fieldnames:
		}
		secret {env.STEPUP_SECRET}
		domain shop.example
		identity header {
			user X-Remote-User
			phone X-Remote-Phone
		}
		sender webhook %s/sms {
			signing_secret %s
		}
		protect checkout {
			match {
				method POST
				path /checkout*
			}
			mode transaction
			describe "Pay {form.amount} to {form.merchant}"
		}
		protect api-pay {
			match {
				method POST
				path /api/pay*
			}
			mode transaction
			describe "Pay {json.amount} to {json.payee.name}"
		}
		protect change-card {
			match {
				method PUT DELETE
				path /cards/*
			}
		}
	}
	reverse_proxy %s
}
`, sharedRedis.URL(), hook.URL, signingSecret, strings.TrimPrefix(up.URL, "http://")))

	const (
		form = "application/x-www-form-urlencoded"
		js   = "application/json"
	)
	multipart := func(fields ...string) (string, string) {
		var b strings.Builder
		for i := 0; i+1 < len(fields); i += 2 {
			fmt.Fprintf(&b, "--XX\r\nContent-Disposition: form-data; name=%q\r\n\r\n%s\r\n", fields[i], fields[i+1])
		}
		b.WriteString("--XX--\r\n")
		return "multipart/form-data; boundary=XX", b.String()
	}
	mpct, mpBody := multipart("amount", "1", "merchant", "ACME", "[amount]", "9999")

	// Refused before any code: 400, nothing sent, nothing upstream.
	for _, tc := range []struct{ name, path, ctype, body string }{
		{"form [amount] beside amount", "/checkout", form, "amount=1&merchant=ACME&[amount]=9999"},
		{"form %5Bamount%5D alone (Express)", "/checkout", form, "%5Bamount%5D=9999&merchant=ACME"},
		{"form ]]amount]]", "/checkout", form, "amount=1&merchant=ACME&]]amount]]=9999"},
		{"form amount]", "/checkout", form, "amount=1&merchant=ACME&amount]=9999"},
		{"multipart [amount]", "/checkout", mpct, mpBody},
		{"query [amount]", "/checkout?[amount]=9999", form, "amount=1&merchant=ACME"},
		{"json amount an array", "/api/pay", js, `{"amount":[9999],"payee":{"name":"ACME"}}`},
		{"json payee an object", "/api/pay", js, `{"amount":"1","payee":{"name":{"first":"EVIL 9999"}}}`},
		{"json dotted key", "/api/pay", js, `{"amount":"1","payee":{"name":"ACME"},"payee.name":"EVIL Corp 9999"}`},
		{"json bracketed key", "/api/pay", js, `{"amount":"1","payee":{"name":"ACME"},"payee[name]":"EVIL Corp 9999"}`},
	} {
		resp, out := apiCall(t, "POST", p.url(tc.path), "fields-user", "+14155550100", []byte(tc.body), map[string]string{"Content-Type": tc.ctype})
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: POST = %d %v, want 400", tc.name, resp.StatusCode, out)
		}
		if strings.Contains(fmt.Sprint(out), "9999") {
			t.Errorf("%s: the answer shows a value: %v", tc.name, out)
		}
	}
	if n := hook.count(); n != 0 {
		t.Fatalf("%d codes sent for refused requests", n)
	}
	if n := up.hits.Load(); n != 0 {
		t.Fatalf("%d refused requests reached the upstream", n)
	}
	if strings.Contains(p.logs.String(), "9999") {
		t.Fatal("a log line shows a refused value")
	}

	// _method as Rack::MethodOverride (Rack 2) and Express (qs) read it:
	// a POST that the app runs as DELETE is challenged under the
	// PUT DELETE policy.
	for _, tc := range []struct{ name, path, ctype, body string }{
		{"body [_method]", "/cards/1", form, "[_method]=DELETE"},
		{"body %5B_method%5D", "/cards/1", form, "%5B_method%5D=DELETE"},
		{"body _method]", "/cards/1", form, "_method]=DELETE"},
		{"body ]_method", "/cards/1", form, "]_method=DELETE"},
		{"body [[_method]]", "/cards/1", form, "[[_method]]=DELETE"},
		{"multipart ]]_method]]", "/cards/1", "multipart/form-data; boundary=XX", "--XX\r\nContent-Disposition: form-data; name=\"]]_method]]\"\r\n\r\nDELETE\r\n--XX--\r\n"},
		{"query [_method]", "/cards/1?[_method]=DELETE", form, "a=1"},
		{"query %5B_method%5D", "/cards/1?%5B_method%5D=PUT", form, "a=1"},
	} {
		resp, out := apiCall(t, "POST", p.url(tc.path), "fields-user", "+14155550100", []byte(tc.body), map[string]string{"Content-Type": tc.ctype})
		if resp.StatusCode != http.StatusUnauthorized || out["challenge"] == nil {
			t.Errorf("%s: POST = %d %v, want a challenge (401)", tc.name, resp.StatusCode, out)
		}
	}
	if n := up.hits.Load(); n != 0 {
		t.Fatalf("%d method overrides reached the upstream unchallenged", n)
	}

	// Plain requests still go through as before: a described payment is
	// challenged with its fields, and a POST without an override is not
	// under the PUT DELETE policy.
	before := hook.count()
	resp, out := apiCall(t, "POST", p.url("/checkout"), "fields-user", "+14155550100",
		[]byte("amount=1&merchant=ACME&items[0][sku]=x"), map[string]string{"Content-Type": form})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("plain checkout = %d %v", resp.StatusCode, out)
	}
	hook.wait(t, before+1)
	if msg := hook.last(t); !strings.Contains(msg.Message, "Pay 1 to ACME") {
		t.Fatalf("plain checkout described as %q", msg.Message)
	}
	resp, _ = apiCall(t, "POST", p.url("/cards/1"), "fields-user", "+14155550100", []byte("[x]_method=DELETE&note=1"), map[string]string{"Content-Type": form})
	if resp.StatusCode != http.StatusOK || up.hits.Load() != 1 {
		t.Fatalf("POST without an override = %d, %d upstream hits", resp.StatusCode, up.hits.Load())
	}
}
