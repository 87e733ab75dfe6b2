package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// With handle_errors in the site, stepup's refusals of browsers go
// through the site's error routes, with {http.error.status_code} and
// stepup's placeholders; API clients keep their JSON; without
// handle_errors the engine's pages answer as before (every other test).
func TestHandleErrorsE2E(t *testing.T) {
	up := newUpstream(t)
	hook := newReceiver(t)
	p := startCaddy(t, fmt.Sprintf(`{
	admin 127.0.0.1:{ADMIN}
	auto_https off
}
http://127.0.0.1:{PORT} {
	stepup {
		secret {env.STEPUP_SECRET}
		domain shop.example
		max_attempts 1
		identity header {
			user X-Remote-User
			phone X-Remote-Phone
		}
		sender webhook %s/sms {
			signing_secret %s
		}
		protect account {
			match {
				path /account*
			}
		}
	}
	reverse_proxy %s
	handle_errors {
		respond "custom {err.status_code} {http.stepup.reason} {http.stepup.challenge_url} policy={http.stepup.policy}"
	}
}
`, hook.URL, signingSecret, strings.TrimPrefix(up.URL, "http://")))

	// No identity: 401, through the error route.
	anon := newBrowser(t, "", "")
	resp, body := anon.do("GET", p.url("/account"), nil)
	if resp.StatusCode != http.StatusUnauthorized || body != "custom 401 unauthenticated  policy=account" {
		t.Fatalf("no identity = %d %q", resp.StatusCode, body)
	}
	// A wrong code on the only attempt: 410, with the challenge's URL.
	alice := newBrowser(t, "alice", "+14155550100")
	resp, _ = alice.do("GET", p.url("/account"), nil)
	challenge := resolve(p.url("/"), resp.Header.Get("Location"))
	_, page := alice.do("GET", challenge, nil)
	wrong := "000000"
	if hook.last(t).Code == wrong {
		wrong = "111111"
	}
	resp, body = alice.do("POST", challenge, url.Values{"csrf": {csrfOf(t, page)}, "code": {wrong}})
	path := strings.TrimPrefix(challenge, p.url(""))
	if resp.StatusCode != http.StatusGone || body != "custom 410 attempts_exhausted "+path+" policy=" {
		t.Fatalf("exhausted = %d %q", resp.StatusCode, body)
	}
	// An API client gets the engine's JSON, which its protocol needs.
	resp, out := apiCall(t, "GET", p.url("/account"), "", "", nil, nil)
	if resp.StatusCode != http.StatusUnauthorized || out["error"] != "unauthenticated" {
		t.Fatalf("API client without identity = %d %v", resp.StatusCode, out)
	}
	if up.hits.Load() != 0 {
		t.Fatal("a refused request reached the upstream")
	}
}
