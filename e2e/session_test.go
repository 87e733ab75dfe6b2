package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/internal/testredis"
)

// siteConfig is a Caddyfile with stepup on Redis in front of an upstream,
// sending codes to a webhook receiver.
func siteConfig(redisURL, prefix, hook, up string) string {
	return fmt.Sprintf(`{
	admin 127.0.0.1:{ADMIN}
	auto_https off
}
http://127.0.0.1:{PORT} {
	stepup {
		redis %s {
			key_prefix %s
		}
		secret {env.STEPUP_SECRET}
		# Two instances of this config on one machine listen on two
		# ports; on several machines they share the port, and so the
		# site's scope, without this line.
		scope e2e-shop
		identity header {
			user X-Remote-User
			phone X-Remote-Phone
		}
		sender webhook %s/sms {
			signing_secret %s
		}
		protect payment-methods {
			match {
				path /account/payment-methods*
			}
			grant_ttl 15m
		}
	}
	reverse_proxy %s
}
`, redisURL, prefix, hook, signingSecret, strings.TrimPrefix(up, "http://"))
}

// The session flow through two Caddy instances sharing one Redis: the
// protected GET is redirected to the challenge, the code reaches the
// webhook receiver, a wrong code is refused, the right one passes, the
// upstream is reached exactly once, the grant is refused for another
// identity, and the second instance honours the grant.
func TestSessionFlowAcrossInstances(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	hook := newReceiver(t)
	hook.fails.Store(1) // the first delivery attempt gets a 503: retried
	cfg := siteConfig(sharedRedis.URL(), "e2e-flow:", hook.URL, up.URL)
	a := startCaddy(t, cfg)
	b := startCaddy(t, cfg)

	alice := newBrowser(t, "alice", "+14155550100")
	target := a.url("/account/payment-methods?tab=cards")
	resp, _ := alice.do("GET", target, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("protected GET = %d, want 303", resp.StatusCode)
	}
	challenge := resolve(target, resp.Header.Get("Location"))
	if !strings.Contains(challenge, "/.stepup/challenge/") {
		t.Fatalf("redirected to %s", challenge)
	}
	msg := hook.last(t)
	if msg.To != "+14155550100" || msg.Channel != "sms" || msg.Policy != "payment-methods" ||
		len(msg.Code) != 6 || !strings.Contains(msg.Message, msg.Code) || !strings.HasSuffix(challenge, msg.Challenge) {
		t.Fatalf("webhook message = %+v", msg)
	}
	resp, page := alice.do("GET", challenge, nil)
	if resp.StatusCode != 200 || !strings.Contains(page, `autocomplete="one-time-code"`) {
		t.Fatalf("challenge page = %d", resp.StatusCode)
	}
	csrf := csrfOf(t, page)

	wrong := "000000"
	if msg.Code == wrong {
		wrong = "111111"
	}
	resp, page = alice.do("POST", challenge, url.Values{"csrf": {csrf}, "code": {wrong}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "not correct") {
		t.Fatalf("wrong code = %d", resp.StatusCode)
	}
	if up.hits.Load() != 0 {
		t.Fatal("upstream reached before verification")
	}
	resp, _ = alice.do("POST", challenge, url.Values{"csrf": {csrf}, "code": {msg.Code}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/account/payment-methods?tab=cards" {
		t.Fatalf("right code = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := alice.do("GET", target, nil)
	if resp.StatusCode != 200 || up.hits.Load() != 1 {
		t.Fatalf("after verification = %d %q, upstream hits %d", resp.StatusCode, body, up.hits.Load())
	}
	r := up.last()
	if r.Header.Get("Stepup-Policy") != "payment-methods" || r.Header.Get("Stepup-User") != "alice" {
		t.Fatalf("upstream headers: %v", r.Header)
	}
	if _, err := time.Parse(time.RFC3339, r.Header.Get("Stepup-Verified-At")); err != nil {
		t.Fatalf("Stepup-Verified-At: %v", err)
	}

	// The second instance, same Redis and secret, honours the grant (the
	// cookie jar is per host, as behind a load balancer).
	resp, _ = alice.do("GET", b.url("/account/payment-methods"), nil)
	if resp.StatusCode != 200 || up.hits.Load() != 2 {
		t.Fatalf("grant on the second instance = %d, upstream hits %d", resp.StatusCode, up.hits.Load())
	}
	// ...and refuses the code a second time.
	resp, _ = alice.do("POST", strings.Replace(challenge, fmt.Sprint(a.port), fmt.Sprint(b.port), 1),
		url.Values{"csrf": {csrf}, "code": {msg.Code}})
	if resp.StatusCode != http.StatusGone {
		t.Fatalf("code reused on the second instance = %d, want 410", resp.StatusCode)
	}

	// Another identity with alice's cookies is challenged, not let in.
	bob := newBrowser(t, "bob", "+14155550101")
	bob.client.Jar = alice.client.Jar
	resp, _ = bob.do("GET", a.url("/account/payment-methods"), nil)
	if resp.StatusCode != http.StatusSeeOther || up.hits.Load() != 2 {
		t.Fatalf("alice's grant for bob = %d, upstream hits %d", resp.StatusCode, up.hits.Load())
	}
	// A client cannot forge the upstream headers on an unprotected route.
	req, _ := http.NewRequest("GET", a.url("/shop"), nil)
	req.Header.Set("Stepup-Policy", "payment-methods")
	req.Header.Set("Stepup-User", "root")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("unprotected GET: %v", err)
	}
	if r := up.last(); r.Header.Get("Stepup-Policy") != "" || r.Header.Get("Stepup-User") != "" {
		t.Fatalf("client-supplied Stepup headers reached the upstream: %v", r.Header)
	}

	// No code, full number or grant ever reached Caddy's logs.
	for name, p := range map[string]*caddyProc{"a": a, "b": b} {
		logs := p.logs.String()
		for _, secret := range []string{msg.Code, "4155550100", "4155550101", csrf} {
			if strings.Contains(logs, secret) {
				t.Errorf("caddy %s logged %q", name, secret)
			}
		}
		if name == "a" && !p.waitLog("+1******0100") {
			t.Errorf("caddy a did not log the masked number")
		}
	}
}

// Redis down: protected requests fail closed with 503, unprotected ones
// pass, and the flow works again once Redis is back, with no restart.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	srv := testredis.Run(t)
	up := newUpstream(t)
	hook := newReceiver(t)
	p := startCaddy(t, siteConfig(srv.URL(), "e2e-outage:", hook.URL, up.URL))
	alice := newBrowser(t, "alice", "+14155550100")

	srv.Stop()
	resp, page := alice.do("GET", p.url("/account/payment-methods"), nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(page, "temporarily unavailable") {
		t.Fatalf("protected GET with Redis down = %d", resp.StatusCode)
	}
	resp, _ = alice.do("GET", p.url("/catalog"), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("unprotected GET with Redis down = %d", resp.StatusCode)
	}
	if up.hits.Load() != 1 || hook.count() != 0 {
		t.Fatalf("upstream hits %d (want 1: the unprotected one), sends %d", up.hits.Load(), hook.count())
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	var challenge string
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, _ = alice.do("GET", p.url("/account/payment-methods"), nil)
		if resp.StatusCode == http.StatusSeeOther {
			challenge = resolve(p.url("/"), resp.Header.Get("Location"))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after Redis came back: %d", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, page = alice.do("GET", challenge, nil)
	resp, _ = alice.do("POST", challenge, url.Values{"csrf": {csrfOf(t, page)}, "code": {hook.last(t).Code}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("verify after recovery = %d", resp.StatusCode)
	}
	resp, _ = alice.do("GET", p.url("/account/payment-methods"), nil)
	if resp.StatusCode != 200 || up.hits.Load() != 2 {
		t.Fatalf("after recovery = %d, upstream hits %d", resp.StatusCode, up.hits.Load())
	}
}

// `caddy validate` and `caddy adapt` accept the example; bad values are
// refused with the file and line.
func TestCaddyCommands(t *testing.T) {
	t.Parallel()
	example := filepath.Join(repoRoot, "Caddyfile.example")
	env := append(os.Environ(), "STEPUP_SECRET=e2e-secret-0123456789abcdef0123456789", "HOME="+t.TempDir())
	for _, args := range [][]string{
		{"validate", "--config", example, "--adapter", "caddyfile"},
		{"adapt", "--config", example, "--validate"},
	} {
		cmd := exec.Command(caddyBin, args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("caddy %s: %v\n%s", args[0], err, out)
		}
	}
	bad := filepath.Join(t.TempDir(), "Caddyfile")
	for _, tc := range []struct{ option, want string }{
		{"code_ttl 11m", "code_ttl 11m0s out of range"},
		{"code_length 5", "code_length 5 out of range"},
		{"secret tooshort", "secret is 8 bytes"},
		{"colour blue", "unrecognized subdirective 'colour'"},
	} {
		cfg := "http://127.0.0.1:1 {\n\tstepup {\n\t\tidentity header {\n\t\t\tuser U\n\t\t\tphone P\n\t\t}\n\t\tsender log\n\t\t" +
			tc.option + "\n\t}\n}\n"
		if err := os.WriteFile(bad, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(caddyBin, "adapt", "--config", bad)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("%s: adapt succeeded", tc.option)
			continue
		}
		if !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), bad+":8") {
			t.Errorf("%s: output does not say %q at %s:8:\n%s", tc.option, tc.want, bad, out)
		}
	}
}

var logCodeRE = regexp.MustCompile(`"code":"(\d+)"`)

// The demo in Caddyfile.example runs as shipped (ports moved to free
// ones): protected page, code from the log, verified page.
func TestDemo(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(filepath.Join(repoRoot, "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	for _, port := range []string{"{$STEPUP_DEMO_PORT:8080}", "{$STEPUP_DEMO_APP_PORT:8081}"} {
		if !strings.Contains(string(src), port) {
			t.Fatalf("Caddyfile.example no longer takes its ports from %s: update this test", port)
		}
	}
	cfg := strings.NewReplacer(
		"{$STEPUP_DEMO_PORT:8080}", "{PORT}",
		"{$STEPUP_DEMO_APP_PORT:8081}", "{PORT2}",
		"auto_https off", "auto_https off\n\tadmin 127.0.0.1:{ADMIN}",
	).Replace(string(src))
	p := startCaddy(t, cfg, "STEPUP_DEMO_ROOT="+filepath.Join(repoRoot, "demo"))
	p.codesLogged = true // the demo's log sender prints codes
	// The demo identifies the customer itself (forward_auth): the browser
	// sends no identity headers.
	shopper := newBrowser(t, "", "")
	home := fmt.Sprintf("http://localhost:%d/", p.port)
	resp, body := shopper.do("GET", home, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "demo-customer") {
		t.Fatalf("home = %d\n%s", resp.StatusCode, body)
	}
	target := home + "account/payment-methods/"
	resp, _ = shopper.do("GET", target, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("payment methods = %d\n%s", resp.StatusCode, p.logs)
	}
	challenge := resolve(target, resp.Header.Get("Location"))
	_, page := shopper.do("GET", challenge, nil)
	var code string
	for deadline := time.Now().Add(5 * time.Second); code == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if m := logCodeRE.FindAllStringSubmatch(p.logs.String(), -1); m != nil {
			code = m[len(m)-1][1]
		}
	}
	if code == "" {
		t.Fatalf("no code in the log:\n%s", p.logs)
	}
	resp, _ = shopper.do("POST", challenge, url.Values{"csrf": {csrfOf(t, page)}, "code": {code}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("verify = %d", resp.StatusCode)
	}
	resp, body = shopper.do("GET", target, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "Stepup-Policy: payment-methods") || !strings.Contains(body, "Stepup-User: demo-customer") {
		t.Fatalf("verified page = %d\n%s", resp.StatusCode, body)
	}
	// Checkout is a transaction: the SMS names amount and payee, and the
	// order form reaches the app after the code, at /checkout.
	resp = shopper.post(home+"checkout", "application/x-www-form-urlencoded", []byte("amount=EUR+24.90&merchant=Demo+Shop+GmbH"))
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("place order = %d", resp.StatusCode)
	}
	if !p.waitLog("Pay EUR 24.90 to Demo Shop GmbH") {
		t.Fatalf("the logged message does not describe the order:\n%s", p.logs)
	}
	challenge = resolve(home, resp.Header.Get("Location"))
	_, page = shopper.do("GET", challenge, nil)
	var m [][]string
	for deadline := time.Now().Add(5 * time.Second); len(m) < 2 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		m = logCodeRE.FindAllStringSubmatch(p.logs.String(), -1)
	}
	if len(m) < 2 {
		t.Fatalf("the order's code is not in the log:\n%s", p.logs)
	}
	resp, _ = shopper.do("POST", challenge, url.Values{"csrf": {csrfOf(t, page)}, "code": {m[len(m)-1][1]}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/checkout" {
		t.Fatalf("verify order = %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body = shopper.do("GET", home+"checkout", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "reached the shop exactly once") || !strings.Contains(body, "Stepup-Policy: checkout") {
		t.Fatalf("order placed page = %d\n%s", resp.StatusCode, body)
	}
	// Monitor mode: never challenged.
	if resp, _ := shopper.do("GET", home+"admin/", nil); resp.StatusCode != 200 {
		t.Fatalf("admin (monitor) = %d", resp.StatusCode)
	}
	if !p.waitLog("monitor_would_challenge") {
		t.Error("monitor mode logged nothing")
	}
}
