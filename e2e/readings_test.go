package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// End-to-end regressions of the second outside test's reading findings
// (N1, N2, N4), through the built Caddy and its reverse_proxy: a request
// whose readings fall under a weaker policy than the one the app runs is
// refused or challenged, never passed on the weaker policy's grant.

// readingsConfig lists weaker policies before stronger ones, as the
// outside test configured them.
func readingsConfig(hook, up string) string {
	return fmt.Sprintf(`{
	admin 127.0.0.1:{ADMIN}
	auto_https off
}
http://127.0.0.1:{PORT} {
	stepup {
		redis %s {
			key_prefix e2e-readings:
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
		protect admin-rollout {
			match {
				path /admin*
			}
			mode monitor
		}
		protect account {
			match {
				path /account*
			}
		}
		protect view-orders {
			match {
				method GET
				path /orders*
			}
		}
		protect checkout {
			match {
				method POST
				path /checkout*
			}
			mode transaction
		}
		protect place-order {
			match {
				method POST
				path /orders*
			}
			mode transaction
		}
		protect profile {
			match {
				method PUT DELETE
				path /profile*
			}
		}
	}
	reverse_proxy %s
}
`, sharedRedis.URL(), hook, signingSecret, strings.TrimPrefix(up, "http://"))
}

// sessionGrant gets user a session grant through the API, challenged by
// a GET of path.
func sessionGrant(t *testing.T, base, path, user, phone string, hook *receiver) string {
	t.Helper()
	resp, ch := apiCall(t, "GET", base+path, user, phone, nil, nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET %s = %d %v, want a challenge", path, resp.StatusCode, ch)
	}
	body, _ := json.Marshal(map[string]string{"challenge": ch["challenge"].(string), "code": hook.last(t).Code})
	resp, out := apiCall(t, "POST", base+ch["verify_url"].(string), user, phone, body, map[string]string{"Content-Type": "application/json"})
	if resp.StatusCode != 200 {
		t.Fatalf("verify = %d %v", resp.StatusCode, out)
	}
	grant := out["grant"].(string)
	noteSecret(grant)
	// The grant opens what it was made for.
	resp, _ = apiCall(t, "GET", base+path, user, phone, nil, map[string]string{"Cookie": "Stepup-Grant=" + grant})
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s with its grant = %d", path, resp.StatusCode)
	}
	return grant
}

func TestReadingsE2E(t *testing.T) {
	up := newUpstream(t)
	hook := newReceiver(t)
	p := startCaddy(t, readingsConfig(hook.URL, up.URL))
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	// check sends the request and fails unless the answer is one of want;
	// the upstream must not see it.
	check := func(what, method, path, user, phone string, body string, hdr map[string]string, want ...int) {
		t.Helper()
		before := up.hits.Load()
		var b []byte
		if body != "" {
			b = []byte(body)
		}
		resp, out := apiCall(t, method, p.url(path), user, phone, b, hdr)
		ok := false
		for _, w := range want {
			ok = ok || resp.StatusCode == w
		}
		if !ok {
			t.Errorf("%s: %s %s = %d %v, want one of %v", what, method, path, resp.StatusCode, out, want)
		}
		if up.hits.Load() != before {
			t.Errorf("%s: %s %s reached the upstream", what, method, path)
		}
	}

	// N1: a monitor policy listed first no longer shadows the
	// transaction the app runs.
	for _, path := range []string{"/checkout.php/..;/admin", "/checkout.php/%252e%252e/admin", "/checkout/..;/admin"} {
		check("monitor shadow", "POST", path, "mon-user", "+14155550101", "amount=9999", form, http.StatusUnauthorized, http.StatusBadRequest)
	}

	// N1: a session grant for account does not pass a request the app
	// may run as the checkout.
	grant := sessionGrant(t, p.url(""), "/account", "sess-user", "+14155550102", hook)
	cookie := with(form, "Cookie", "Stepup-Grant="+grant)
	for _, path := range []string{"/checkout/..;/account", "/checkout%5c..%5caccount", "/checkout%252f..%252faccount"} {
		check("session shadow", "POST", path, "sess-user", "+14155550102", "amount=9999", cookie, http.StatusBadRequest)
	}

	// N1: a view-orders grant does not pass a POST that the app may run
	// as place-order, whatever override asks for GET.
	grant = sessionGrant(t, p.url(""), "/orders", "order-user", "+14155550103", hook)
	cookie = with(form, "Cookie", "Stepup-Grant="+grant)
	check("override header", "POST", "/orders", "order-user", "+14155550103", "item=1", with(cookie, "X-HTTP-Method-Override", "GET"), http.StatusBadRequest)
	check("query _method", "POST", "/orders?_method=GET", "order-user", "+14155550103", "item=1", cookie, http.StatusBadRequest)
	check("form _method", "POST", "/orders", "order-user", "+14155550103", "item=1&_method=GET", cookie, http.StatusBadRequest)
	check("body too large to tell", "POST", "/orders", "order-user", "+14155550103", "item="+strings.Repeat("x", 2<<20), cookie, http.StatusBadRequest, http.StatusRequestEntityTooLarge)
	// Without an override the POST is the transaction's, as before: the
	// view-orders grant it carries is refused (403), without it a
	// challenge.
	check("plain POST", "POST", "/orders", "order-user", "+14155550103", "item=1", cookie, http.StatusForbidden)
	check("plain POST without a grant", "POST", "/orders", "order-user", "+14155550103", "item=1", form, http.StatusUnauthorized)

	// N2: a front controller's PATH_INFO is read as the path.
	check("front controller", "GET", "/index.php/account/settings", "php-user", "+14155550104", "", nil, http.StatusUnauthorized)
	check("front controller, upper case", "GET", "/INDEX.PHP/account", "php-user", "+14155550104", "", nil, http.StatusUnauthorized)

	// N4: an empty Content-Type is a form to Rack.
	check("empty type", "POST", "/profile", "rack-user", "+14155550105", "_method=DELETE", map[string]string{"Content-Type": ""}, http.StatusUnauthorized)
	check("multipart/mixed", "POST", "/profile", "rack-user", "+14155550105",
		"--XX\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--XX--\r\n",
		map[string]string{"Content-Type": "multipart/mixed; boundary=XX"}, http.StatusUnauthorized)

	// What no policy covers still passes, once.
	before := up.hits.Load()
	resp, _ := apiCall(t, "POST", p.url("/catalog"), "free-user", "+14155550106", []byte("_method=DELETE"), map[string]string{"Content-Type": ""})
	if resp.StatusCode != 200 || up.hits.Load() != before+1 {
		t.Errorf("an unprotected POST = %d", resp.StatusCode)
	}
}
