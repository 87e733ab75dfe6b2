package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
)

// txConfig protects POST /checkout, /upload, /redirecting and /api/pay as
// transactions, on Redis.
func txConfig(prefix, hook, up string) string {
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
		identity header {
			user X-Remote-User
			phone X-Remote-Phone
		}
		sender webhook %s/sms {
			signing_secret %s
		}
		max_body 256KiB
		protect checkout {
			match {
				method POST
				path /checkout /upload /redirecting
			}
			mode transaction
			describe "Pay {form.amount} to {form.merchant}"
		}
		protect api-pay {
			match {
				method POST
				path /api/pay
			}
			mode transaction
			describe "Pay {json.amount} to {json.payee.name}"
		}
	}
	reverse_proxy %s
}
`, sharedRedis.URL(), prefix, hook, signingSecret, strings.TrimPrefix(up, "http://"))
}

// post sends body as the browser would submit a form.
func (b *browser) post(rawURL, ctype string, body []byte) *http.Response {
	b.t.Helper()
	req, _ := http.NewRequest("POST", rawURL, bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	req.Header.Set("X-Remote-User", b.user)
	req.Header.Set("X-Remote-Phone", b.phone)
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// passChallenge answers the challenge a 303 pointed to with the code the
// receiver got, and returns where the browser is sent next.
func (b *browser) passChallenge(base string, resp *http.Response, hook *receiver) string {
	b.t.Helper()
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("protected request = %d, want 303", resp.StatusCode)
	}
	challenge := resolve(base, resp.Header.Get("Location"))
	_, page := b.do("GET", challenge, nil)
	code := hook.codeFor(challenge[strings.LastIndex(challenge, "/")+1:])
	resp, _ = b.do("POST", challenge, url.Values{"csrf": {csrfOf(b.t, page)}, "code": {code}})
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("verify = %d", resp.StatusCode)
	}
	return resolve(base, resp.Header.Get("Location"))
}

func multipartBody(t *testing.T) ([]byte, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("amount", "EUR 12.50")
	_ = mw.WriteField("merchant", "Bäckerei Ünal")
	fw, _ := mw.CreateFormFile("receipt", "receipt.bin")
	file := make([]byte, 40<<10)
	_, _ = rand.Read(file)
	copy(file, "\r\n--"+mw.Boundary()[:10]+"\x00\xff")
	_, _ = fw.Write(file)
	_ = mw.Close()
	return buf.Bytes(), mw.FormDataContentType()
}

// A urlencoded form with repeated keys and UTF-8, a JSON body and a
// multipart upload with a binary file each reach the upstream
// byte-identical, exactly once, only after verification, and the
// upstream's answer shows at the original URL.
func TestPreservedRequestsExactlyOnce(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	hook := newReceiver(t)
	p := startCaddy(t, txConfig("e2e-preserve:", hook.URL, up.URL))
	mp, mpType := multipartBody(t)
	cases := []struct {
		name, path, ctype string
		body              []byte
		describe, policy  string
	}{
		{"urlencoded", "/checkout?step=pay", "application/x-www-form-urlencoded",
			[]byte("amount=EUR+10.00&merchant=Caf%C3%A9+%E6%9D%B1%E4%BA%AC&item=1&item=2&item=2&note=%E2%9C%93+ok"), "Pay EUR 10.00 to Café 東京", "checkout"},
		// A JSON body goes to the policy whose describe reads JSON: on
		// /checkout (form fields) it is refused, not shown as "Pay ? to ?".
		{"json", "/api/pay", "application/json",
			[]byte(`{"amount":"10.00","payee":{"name":"Zoë"},"items":[1,2,{"x":"✓"}]}`), "Pay 10.00 to Zoë", "api-pay"},
		{"multipart", "/upload", mpType, mp, "Pay EUR 12.50 to Bäckerei Ünal", "checkout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			alice := newBrowser(t, "alice", "+14155550100")
			before, _ := up.posts()
			sent := hook.count()
			resp := alice.post(p.url(tc.path), tc.ctype, tc.body)
			hook.wait(t, sent+1) // the code goes out after the answer
			if !strings.Contains(hook.last(t).Message, tc.describe) {
				t.Errorf("message %q lacks %q", hook.last(t).Message, tc.describe)
			}
			if now, _ := up.posts(); len(now) != len(before) {
				t.Fatal("upstream reached before verification")
			}
			next := alice.passChallenge(p.url("/"), resp, hook)
			if next != p.url(tc.path) {
				t.Fatalf("sent back to %s, want the original URL", next)
			}
			resp, body := alice.do("GET", next, nil)
			if resp.StatusCode != 200 || !strings.HasPrefix(body, "upstream POST "+tc.path) {
				t.Fatalf("replay answer = %d %q", resp.StatusCode, body)
			}
			// Reload and back: no second POST.
			alice.do("GET", next, nil)
			alice.do("GET", next, nil)
			reqs, bodies := up.posts()
			if len(reqs) != len(before)+1 {
				t.Fatalf("upstream got %d POSTs, want exactly one more than %d", len(reqs), len(before))
			}
			r, got := reqs[len(reqs)-1], bodies[len(bodies)-1]
			if !bytes.Equal(got, tc.body) {
				t.Fatalf("body changed on the way:\n got %q\nwant %q", got, tc.body)
			}
			if r.Header.Get("Content-Type") != tc.ctype || r.URL.RequestURI() != tc.path ||
				r.Header.Get("Stepup-Policy") != tc.policy || r.Header.Get("Stepup-User") != "alice" {
				t.Fatalf("replayed request: %s %s %v", r.Method, r.URL, r.Header)
			}
		})
	}

	// A redirect from the upstream works as usual.
	alice := newBrowser(t, "alice", "+14155550100")
	next := alice.passChallenge(p.url("/"), alice.post(p.url("/redirecting"), "application/x-www-form-urlencoded", []byte("amount=1&merchant=m")), hook)
	resp, _ := alice.do("GET", next, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/orders/42" {
		t.Fatalf("upstream redirect = %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The code never reached Caddy's log, nor the body.
	logs := p.logs.String()
	for _, s := range []string{hook.last(t).Code, "Caf%C3%A9", "Bäckerei", "4155550100"} {
		if strings.Contains(logs, s) {
			t.Errorf("caddy logged %q", s)
		}
	}
}

// Twenty tabs return for one verified request: the upstream sees one.
func TestConcurrentReplaysE2E(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	hook := newReceiver(t)
	p := startCaddy(t, txConfig("e2e-concurrent:", hook.URL, up.URL))
	alice := newBrowser(t, "alice", "+14155550100")
	next := alice.passChallenge(p.url("/"), alice.post(p.url("/checkout"), "application/x-www-form-urlencoded", []byte("amount=5&merchant=m")), hook)
	// The tabs share the cookie jar: a tab that comes after the replay
	// cleared the cookie makes a plain GET (the page, not the order).
	var wg sync.WaitGroup
	var replayed, conflict, plain atomic.Int32
	start := make(chan struct{})
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tab := newBrowser(t, "alice", "+14155550100")
			tab.client.Jar = alice.client.Jar
			<-start
			resp, body := tab.do("GET", next, nil)
			switch {
			case resp.StatusCode == 200 && strings.HasPrefix(body, "upstream POST"):
				replayed.Add(1)
			case resp.StatusCode == 200 && strings.HasPrefix(body, "upstream GET"):
				plain.Add(1)
			case resp.StatusCode == http.StatusConflict:
				conflict.Add(1)
			default:
				t.Errorf("replay status %d %q", resp.StatusCode, body)
			}
		}()
	}
	close(start)
	wg.Wait()
	reqs, _ := up.posts()
	t.Logf("20 tabs: %d replayed, %d told already sent, %d plain GETs after the cookie was cleared", replayed.Load(), conflict.Load(), plain.Load())
	if len(reqs) != 1 || replayed.Load() != 1 || conflict.Load()+plain.Load() != 19 {
		t.Fatalf("20 concurrent replays: upstream %d POSTs, %d replayed", len(reqs), replayed.Load())
	}
}

// apiPost is an API client's JSON request.
func apiPost(t *testing.T, rawURL string, body []byte, grant string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", rawURL, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Remote-User", "api-user")
	req.Header.Set("X-Remote-Phone", "+919876543210")
	if grant != "" {
		req.AddCookie(&http.Cookie{Name: "Stepup-Grant", Value: grant})
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	data, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(data, &m)
	return resp, m
}

// A transaction grant retried with a changed amount is refused and the
// upstream not reached; with the same body it passes once.
func TestTransactionGrantBoundToBody(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	hook := newReceiver(t)
	p := startCaddy(t, txConfig("e2e-grant:", hook.URL, up.URL))
	body := []byte(`{"amount":"99.00","payee":{"name":"ACME Ltd"}}`)
	resp, ch := apiPost(t, p.url("/api/pay"), body, "")
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `StepUp challenge="`) ||
		ch["description"] != "Pay 99.00 to ACME Ltd" || ch["to"] != "+91******3210" {
		t.Fatalf("challenge = %d %v", resp.StatusCode, ch)
	}
	verify, _ := json.Marshal(map[string]string{"challenge": ch["challenge"].(string), "code": hook.last(t).Code})
	resp, out := apiPost(t, p.url(ch["verify_url"].(string)), verify, "")
	if resp.StatusCode != 200 || out["grant"] == nil {
		t.Fatalf("verify = %d %v", resp.StatusCode, out)
	}
	grant := out["grant"].(string)
	noteSecret(grant)
	changed := bytes.Replace(body, []byte("99.00"), []byte("9900.00"), 1)
	resp, out = apiPost(t, p.url("/api/pay"), changed, grant)
	if resp.StatusCode != http.StatusForbidden || out["error"] != "invalid_grant" || up.hits.Load() != 0 {
		t.Fatalf("changed amount = %d %v, upstream hits %d", resp.StatusCode, out, up.hits.Load())
	}
	resp, _ = apiPost(t, p.url("/api/pay"), body, grant)
	reqs, bodies := up.posts()
	if resp.StatusCode != 200 || len(reqs) != 1 || !bytes.Equal(bodies[0], body) {
		t.Fatalf("same body = %d, upstream %d POSTs", resp.StatusCode, len(reqs))
	}
	if resp, _ := apiPost(t, p.url("/api/pay"), body, grant); resp.StatusCode != http.StatusForbidden || up.hits.Load() != 1 {
		t.Fatalf("grant reused = %d, upstream hits %d", resp.StatusCode, up.hits.Load())
	}
}

// A body over max_body gets 413 and nothing is stored or sent.
func TestMaxBodyE2E(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	hook := newReceiver(t)
	p := startCaddy(t, txConfig("e2e-maxbody:", hook.URL, up.URL))
	alice := newBrowser(t, "alice", "+14155550100")
	big := bytes.Repeat([]byte("amount=1&"), (256<<10)/9+1)
	resp := alice.post(p.url("/checkout"), "application/x-www-form-urlencoded", big)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("big body = %d", resp.StatusCode)
	}
	client := redis.NewClient(&redis.Options{Addr: sharedRedis.Addr()})
	defer client.Close()
	keys, err := client.Keys(context.Background(), "e2e-maxbody:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 || hook.count() != 0 || up.hits.Load() != 0 {
		t.Fatalf("after 413: keys %v, sends %d, upstream %d", keys, hook.count(), up.hits.Load())
	}
}
