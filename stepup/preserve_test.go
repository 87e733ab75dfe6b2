package stepup

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

func withCheckout(describe string) func(*Config, []*Policy) {
	return func(c *Config, ps []*Policy) {
		c.MaxBody = 64 << 10
		ps[1] = &Policy{Name: "checkout", Mode: Transaction, Describe: describe}
	}
}

// newTxHarness has a transaction policy "checkout" on POST /checkout.
func newTxHarness(t *testing.T, st store.Store) *harness {
	return newHarness(t, st, withCheckout("Pay {form.amount} to {form.merchant}"))
}

// verifyLast answers the challenge at loc with the last code sent.
func (b *browser) verifyLast(loc string) *http.Response {
	b.h.t.Helper()
	_, page := b.do("GET", loc, nil)
	resp, _ := b.do("POST", loc, url.Values{"csrf": {csrfOf(b.h.t, page)}, "code": {b.h.out.last(b.h.t).Code}})
	return resp
}

func TestTransactionBrowserReplay(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		h := newTxHarness(t, st)
		alice := h.browser("alice", "+14155550100")
		body := []byte("amount=EUR+10.00&merchant=Caf%C3%A9+M%C3%BCller&item=1&item=2&note=%E2%9C%93")
		resp, _ := alice.raw("POST", "/checkout", "application/x-www-form-urlencoded", body, "Origin", h.srv.URL, "X-Requested-With", "form")
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("POST /checkout = %d", resp.StatusCode)
		}
		loc := resp.Header.Get("Location")
		msg := h.out.last(t)
		if !strings.Contains(msg.Text, "approve: Pay EUR 10.00 to Café Müller.") {
			t.Fatalf("message does not show the transaction: %q", msg.Text)
		}
		_, page := alice.do("GET", loc, nil)
		if !strings.Contains(html.UnescapeString(page), "Pay EUR 10.00 to Café Müller") {
			t.Fatalf("page does not show the transaction:\n%s", page)
		}
		// A double submit resumes the same challenge: no second code.
		resp, _ = alice.raw("POST", "/checkout", "application/x-www-form-urlencoded", body)
		if resp.Header.Get("Location") != loc || h.out.count() != 1 {
			t.Fatalf("double submit: %q, %d codes", resp.Header.Get("Location"), h.out.count())
		}
		if h.upstream.Load() != 0 {
			t.Fatal("upstream reached before verification")
		}
		resp = alice.verifyLast(loc)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/checkout" {
			t.Fatalf("verify = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		if alice.jar["stepup_checkout"] != "" {
			t.Fatal("a transaction set a session grant cookie")
		}
		replayCookie := alice.jar["stepup_replay"]
		if replayCookie == "" {
			t.Fatal("no replay cookie")
		}
		// The browser follows the redirect: the POST goes upstream, once,
		// byte for byte, and its answer shows at /checkout.
		resp, got := alice.do("GET", "/checkout", nil)
		if resp.StatusCode != 200 || got != "upstream /checkout" || resp.Header.Get("X-Upstream") != "yes" {
			t.Fatalf("replay = %d %q", resp.StatusCode, got)
		}
		up := *h.lastUp.Load()
		if h.upstream.Load() != 1 || !bytes.Equal(*h.lastBody.Load(), body) ||
			up.Get("Content-Type") != "application/x-www-form-urlencoded" || up.Get("Origin") != h.srv.URL ||
			up.Get("X-Requested-With") != "form" || up.Get("Stepup-Policy") != "checkout" || up.Get("Stepup-User") != "alice" {
			t.Fatalf("upstream got %d requests, body %q, headers %v", h.upstream.Load(), *h.lastBody.Load(), up)
		}
		if _, ok := alice.jar["stepup_replay"]; ok {
			t.Fatal("replay cookie not cleared")
		}
		// A reload is a plain GET; the cookie is gone.
		alice.do("GET", "/checkout", nil)
		if h.upstream.Load() != 2 || (*h.lastUp.Load()).Get("Stepup-Policy") != "" {
			t.Fatal("reload replayed or carried verification headers")
		}
		// A second tab that still holds the cookie: told it was sent.
		alice.jar["stepup_replay"] = replayCookie
		resp, page = alice.do("GET", "/checkout", nil)
		if resp.StatusCode != http.StatusConflict || !strings.Contains(page, "already sent") || h.upstream.Load() != 2 {
			t.Fatalf("second replay = %d (upstream %d)\n%s", resp.StatusCode, h.upstream.Load(), page)
		}
		// The cookie is bound to the session and the path: elsewhere it is
		// ignored (the request just goes on).
		alice.jar["stepup_replay"] = replayCookie
		if resp, _ := alice.do("GET", "/other", nil); resp.StatusCode != 200 || h.upstream.Load() != 3 {
			t.Fatalf("cookie on another path = %d", resp.StatusCode)
		}
	})
}

func TestSessionModePostPreserved(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory(time.Minute), nil)
	alice := h.browser("alice", "+14155550100")
	body := []byte(`{"card":"4242","label":"Arbeit ✓"}`)
	resp, _ := alice.raw("POST", "/account/payment-methods/add?x=1", "application/json", body)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST = %d", resp.StatusCode)
	}
	resp = alice.verifyLast(resp.Header.Get("Location"))
	if resp.Header.Get("Location") != "/account/payment-methods/add?x=1" || alice.jar["stepup_payment-methods"] == "" {
		t.Fatalf("verify = %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	alice.do("GET", "/account/payment-methods/add?x=1", nil)
	if h.upstream.Load() != 1 || !bytes.Equal(*h.lastBody.Load(), body) {
		t.Fatalf("upstream %d, body %q", h.upstream.Load(), *h.lastBody.Load())
	}
	// The session grant now lets further POSTs through directly, body
	// untouched.
	body2 := []byte(`{"card":"1111"}`)
	resp, _ = alice.raw("POST", "/account/payment-methods/add", "application/json", body2)
	if resp.StatusCode != 200 || h.upstream.Load() != 2 || !bytes.Equal(*h.lastBody.Load(), body2) {
		t.Fatalf("with grant = %d, body %q", resp.StatusCode, *h.lastBody.Load())
	}
}

func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		h := newTxHarness(t, st)
		alice := h.browser("alice", "+14155550100")
		big := bytes.Repeat([]byte("a"), 64<<10+1)
		resp, page := alice.raw("POST", "/checkout", "application/octet-stream", big)
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(page, "too large") {
			t.Fatalf("big body = %d", resp.StatusCode)
		}
		// Without Content-Length (chunked), same answer.
		req, _ := http.NewRequest("POST", h.srv.URL+"/checkout", io.MultiReader(bytes.NewReader(big)))
		req.ContentLength = -1
		req.Header.Set("X-Remote-User", "alice")
		req.Header.Set("X-Remote-Phone", "+14155550100")
		req.Header.Set("Accept", "text/html")
		r2, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r2.Body.Close()
		if r2.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("chunked big body = %d", r2.StatusCode)
		}
		if h.out.count() != 0 || h.upstream.Load() != 0 {
			t.Fatal("a too-large request sent a code or reached the upstream")
		}
		// Exactly max_body passes.
		exact := []byte("amount=1&merchant=ACME&pad=")
		exact = append(exact, big[:64<<10-len(exact)]...)
		resp, _ = alice.raw("POST", "/checkout", "application/x-www-form-urlencoded", exact)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("max_body body = %d", resp.StatusCode)
		}
	})
}

// apiDo sends an API request (JSON, no text/html).
func (b *browser) apiDo(method, path string, body []byte, extra ...string) (*http.Response, map[string]any) {
	b.h.t.Helper()
	req, _ := http.NewRequest(method, b.h.srv.URL+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Remote-User", b.user)
	req.Header.Set("X-Remote-Phone", b.phone)
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	if m == nil {
		m = map[string]any{"raw": string(data)}
	}
	return resp, m
}

func TestAPITransaction(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		h := newHarness(t, st, withCheckout("Pay {json.order.amount} to {json.order.payee}"))
		api := h.browser("alice", "+14155550100")
		body := []byte(`{"order":{"amount":"25.00","payee":"ACME"}}`)
		resp, ch := api.apiDo("POST", "/checkout", body)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `StepUp challenge="`+ch["challenge"].(string)+`", policy="checkout"` {
			t.Fatalf("API challenge = %d %v %v", resp.StatusCode, resp.Header, ch)
		}
		if ch["error"] != "step_up_required" || ch["policy"] != "checkout" || ch["mode"] != "transaction" ||
			ch["to"] != "+1******0100" || ch["verify_url"] != "/.stepup/verify" || ch["resend_url"] != "/.stepup/resend" ||
			ch["description"] != "Pay 25.00 to ACME" || ch["expires_at"] == nil {
			t.Fatalf("challenge JSON = %v", ch)
		}
		if h.upstream.Load() != 0 || len(resp.Cookies()) != 0 {
			t.Fatal("API challenge reached upstream or set cookies")
		}
		id := ch["challenge"].(string)
		// Wrong code: 422 with attempts left.
		resp, out := api.apiDo("POST", "/.stepup/verify", []byte(`{"challenge":"`+id+`","code":"00000x"}`))
		if resp.StatusCode != http.StatusUnprocessableEntity || out["error"] != "invalid_code" {
			t.Fatalf("bad code = %d %v", resp.StatusCode, out)
		}
		wrong := "000000"
		if h.out.last(t).Code == wrong {
			wrong = "111111"
		}
		resp, out = api.apiDo("POST", "/.stepup/verify", []byte(`{"challenge":"`+id+`","code":"`+wrong+`"}`))
		if resp.StatusCode != http.StatusUnprocessableEntity || out["attempts_left"] != 4.0 {
			t.Fatalf("wrong code = %d %v", resp.StatusCode, out)
		}
		resp, out = api.apiDo("POST", "/.stepup/verify", []byte(`{"challenge":"`+id+`","code":"`+h.out.last(t).Code+`"}`))
		if resp.StatusCode != 200 || out["kind"] != "transaction" || out["grant"] == nil {
			t.Fatalf("verify = %d %v", resp.StatusCode, out)
		}
		grant := out["grant"].(string)
		h.secret(grant)

		// Changed amount: refused, upstream not reached.
		changed := []byte(`{"order":{"amount":"2500.00","payee":"ACME"}}`)
		resp, out = api.apiDo("POST", "/checkout", changed, "Cookie", GrantCookie+"="+grant)
		if resp.StatusCode != http.StatusForbidden || out["error"] != "invalid_grant" || h.upstream.Load() != 0 {
			t.Fatalf("changed amount = %d %v (upstream %d)", resp.StatusCode, out, h.upstream.Load())
		}
		// Another identity: refused.
		bob := h.browser("bob", "+14155550101")
		if resp, _ := bob.apiDo("POST", "/checkout", body, "Cookie", GrantCookie+"="+grant); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("grant used by bob = %d", resp.StatusCode)
		}
		// Same body: passes once, body intact.
		resp, _ = api.apiDo("POST", "/checkout", body, "Cookie", GrantCookie+"="+grant)
		if resp.StatusCode != 200 || h.upstream.Load() != 1 || !bytes.Equal(*h.lastBody.Load(), body) {
			t.Fatalf("grant retry = %d, upstream %d, body %q", resp.StatusCode, h.upstream.Load(), *h.lastBody.Load())
		}
		if up := *h.lastUp.Load(); up.Get("Stepup-Grant") != "" || up.Get("Stepup-Policy") != "checkout" {
			t.Fatalf("upstream headers %v", up)
		}
		resp, out = api.apiDo("POST", "/checkout", body, "Cookie", GrantCookie+"="+grant)
		if resp.StatusCode != http.StatusForbidden || h.upstream.Load() != 1 {
			t.Fatalf("second use = %d %v", resp.StatusCode, out)
		}
	})
}

func TestAPISessionGrantAndResend(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory(time.Minute), nil)
	api := h.browser("alice", "+14155550100")
	resp, ch := api.apiDo("GET", "/account/payment-methods", nil)
	if resp.StatusCode != http.StatusUnauthorized || ch["mode"] != "session" {
		t.Fatalf("challenge = %d %v", resp.StatusCode, ch)
	}
	id := ch["challenge"].(string)
	resp, out := api.apiDo("POST", "/.stepup/resend", []byte(`{"challenge":"`+id+`"}`))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("early resend = %d %v", resp.StatusCode, out)
	}
	h.clock.add(31 * time.Second)
	resp, out = api.apiDo("POST", "/.stepup/resend", []byte(`{"challenge":"`+id+`"}`))
	if resp.StatusCode != 200 || out["sent"] != true || h.out.count() != 2 {
		t.Fatalf("resend = %d %v", resp.StatusCode, out)
	}
	// Form-encoded verify is refused (JSON only).
	req, _ := http.NewRequest("POST", h.srv.URL+"/.stepup/verify", strings.NewReader("challenge="+id))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r, _ := http.DefaultClient.Do(req); r.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("form verify = %d", r.StatusCode)
	}
	resp, out = api.apiDo("POST", "/.stepup/verify", []byte(`{"challenge":"`+id+`","code":"`+h.out.last(t).Code+`"}`))
	if resp.StatusCode != 200 || out["kind"] != "session" {
		t.Fatalf("verify = %d %v", resp.StatusCode, out)
	}
	grant := out["grant"].(string)
	h.secret(grant)
	for i := 0; i < 3; i++ {
		if resp, _ := api.apiDo("GET", "/account/payment-methods", nil, "Cookie", GrantCookie+"="+grant); resp.StatusCode != 200 {
			t.Fatalf("session grant use %d = %d", i, resp.StatusCode)
		}
	}
	// Not after expiry.
	h.clock.add(16 * time.Minute)
	if resp, _ := api.apiDo("GET", "/account/payment-methods", nil, "Cookie", GrantCookie+"="+grant); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("expired grant = %d", resp.StatusCode)
	}
}

// Twenty tabs come back for the same verified request: one replay.
func TestConcurrentReplay(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		h := newTxHarness(t, st)
		alice := h.browser("alice", "+14155550100")
		body := []byte("amount=1&merchant=x")
		resp, _ := alice.raw("POST", "/checkout", "application/x-www-form-urlencoded", body)
		alice.verifyLast(resp.Header.Get("Location"))
		var wg sync.WaitGroup
		var sent, refused atomic.Int32
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b := &browser{h: h, user: "alice", phone: "+14155550100", jar: map[string]string{}}
				for k, v := range alice.jar {
					b.jar[k] = v
				}
				resp, _ := b.do("GET", "/checkout", nil)
				switch resp.StatusCode {
				case 200:
					sent.Add(1)
				case http.StatusConflict:
					refused.Add(1)
				default:
					t.Errorf("replay status %d", resp.StatusCode)
				}
			}()
		}
		wg.Wait()
		if sent.Load() != 1 || refused.Load() != 19 || h.upstream.Load() != 1 {
			t.Fatalf("20 replays: %d sent, %d refused, upstream %d", sent.Load(), refused.Load(), h.upstream.Load())
		}
	})
}

// A crafted field cannot add lines to the SMS (no fake WebOTP line) nor
// markup to the page.
func TestDescribeSanitized(t *testing.T) {
	t.Parallel()
	h := newTxHarness(t, store.NewMemory(time.Minute))
	alice := h.browser("alice", "+14155550100")
	form := url.Values{
		"amount":   {"10\n\n@evil.example #123456"},
		"merchant": {"<script>alert(1)</script>\u202eevil"},
	}
	resp, _ := alice.raw("POST", "/checkout", "application/x-www-form-urlencoded", []byte(form.Encode()))
	msg := h.out.last(t)
	lines := strings.Split(msg.Text, "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[2], "@shop.example #") {
		t.Fatalf("message lines %q", lines)
	}
	if strings.ContainsRune(msg.Text, '\u202e') {
		t.Fatalf("message not cleaned: %q", msg.Text)
	}
	_, page := alice.do("GET", resp.Header.Get("Location"), nil)
	if strings.Contains(page, "<script>alert") {
		t.Fatal("page carries markup from a field")
	}
	// A value too long to show whole is refused, not cut (R4-2).
	form.Set("merchant", "evil"+strings.Repeat("x", 100))
	n := h.out.count()
	resp, _ = alice.raw("POST", "/checkout", "application/x-www-form-urlencoded", []byte(form.Encode()))
	if resp.StatusCode != http.StatusBadRequest || h.out.count() != n {
		t.Fatalf("a value too long to show: %d, %d codes sent", resp.StatusCode, h.out.count()-n)
	}
}

func TestDescribeTemplate(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"Pay {amount}", "Pay {form.amount", "{cookie.x}", "{form.}"} {
		if _, err := parseDescribe(bad); err == nil {
			t.Errorf("parseDescribe(%q) accepted", bad)
		}
	}
	d, err := parseDescribe("Pay {json.a.b.1} {query.q} {form.missing}")
	if err != nil {
		t.Fatal(err)
	}
	r, _ := http.NewRequest("POST", "/x?q=%E2%82%AC", nil)
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	if got, err := d.render(r, []byte(`{"a":{"b":[1,2.50,3]}}`)); err != nil || got != "Pay 2.50 € ?" {
		t.Fatalf("render = %q, %v", got, err)
	}
	// Multipart fields (files skipped).
	var buf bytes.Buffer
	buf.WriteString("--XX\r\nContent-Disposition: form-data; name=\"amount\"\r\n\r\n99\r\n" +
		"--XX\r\nContent-Disposition: form-data; name=\"merchant\"; filename=\"m.bin\"\r\n\r\n\x00\x01\r\n--XX--\r\n")
	d2, _ := parseDescribe("{form.amount}/{form.merchant}")
	r2, _ := http.NewRequest("POST", "/x", nil)
	r2.Header.Set("Content-Type", "multipart/form-data; boundary=XX")
	if got, err := d2.render(r2, buf.Bytes()); err != nil || got != "99/?" {
		t.Fatalf("multipart render = %q, %v", got, err)
	}
}

func TestStashRoundTrip(t *testing.T) {
	t.Parallel()
	k := testKeys(t)
	r, _ := http.NewRequest("POST", "/checkout?a=1&a=2", nil)
	r.Header.Set("Content-Type", "multipart/form-data; boundary=x")
	r.Header.Set("Cookie", "session=secret")
	r.Header.Set("Authorization", "Bearer secret")
	r.Header.Add("X-Multi", "1")
	r.Header.Add("X-Multi", "2")
	body := []byte{0, 1, 2, 0xff, '\r', '\n'}
	sealed := k.seal("id1", newStash(r, body, nil).marshal())
	if bytes.Contains(sealed, []byte("checkout")) || bytes.Contains(sealed, []byte("multipart")) {
		t.Fatal("stash is not encrypted")
	}
	if _, err := k.open("id2", sealed); err == nil {
		t.Fatal("stash opened under another challenge id")
	}
	plain, err := k.open("id1", sealed)
	if err != nil {
		t.Fatal(err)
	}
	s, err := unmarshalStash(plain)
	if err != nil {
		t.Fatal(err)
	}
	if s.Method != "POST" || s.URI != "/checkout?a=1&a=2" || !bytes.Equal(s.Body, body) ||
		s.Header.Get("Cookie") != "" || s.Header.Get("Authorization") != "" || len(s.Header["X-Multi"]) != 2 {
		t.Fatalf("stash = %+v", s)
	}
}

func FuzzUnmarshalStash(f *testing.F) {
	r, _ := http.NewRequest("POST", "/x", nil)
	r.Header.Set("A", "b")
	f.Add(newStash(r, []byte("body"), nil).marshal())
	f.Add([]byte{1, 0, 0, 0, 5})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := unmarshalStash(b)
		if err != nil {
			return
		}
		again, err := unmarshalStash(s.marshal())
		if err != nil || again.Method != s.Method || again.URI != s.URI || !bytes.Equal(again.Body, s.Body) {
			t.Fatalf("round trip changed the stash")
		}
	})
}

func benchmarkStashReplay(b *testing.B, size int) {
	k := testKeys(b)
	body := bytes.Repeat([]byte("x"), size)
	r, _ := http.NewRequest("POST", "/checkout", nil)
	r.Header.Set("Content-Type", "application/octet-stream")
	r.Header.Set("Accept", "text/html")
	get, _ := http.NewRequest("GET", "/checkout", nil)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		sealed := k.seal("Xq3-v9a_Hk2LmN0pQr5sTu", newStash(r, body, nil).marshal())
		plain, err := k.open("Xq3-v9a_Hk2LmN0pQr5sTu", sealed)
		if err != nil {
			b.Fatal(err)
		}
		s, err := unmarshalStash(plain)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := replayRequest(get, s, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStashReplay measures preserving and replaying a request:
// capture, encode, seal, open, decode and rebuild (the store round trips
// are measured by the store and end-to-end benchmarks).
func BenchmarkStashReplay(b *testing.B) {
	b.Run("1KiB", func(b *testing.B) { benchmarkStashReplay(b, 1<<10) })
	b.Run("512KiB", func(b *testing.B) { benchmarkStashReplay(b, 512<<10) })
}

// With two or more channels, the page and the API offer the others:
// the next code goes by the channel chosen (and only by it); a channel
// not offered is refused; with one channel nothing is offered.
func TestUseAnotherChannel(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		h := newHarness(t, st, nil)
		alice := h.browser("alice", "+14155550100")
		loc, _ := alice.start("/account/payment-methods")
		_, page := alice.do("GET", loc, nil)
		if strings.Contains(page, `name="channel"`) {
			t.Fatal("a channel was offered with a single channel")
		}

		h.out.setChannels(sender.SMS, sender.WhatsApp)
		_, page = alice.do("GET", loc, nil)
		if !strings.Contains(page, `name="channel" value="whatsapp"`) || !strings.Contains(page, "Send the code by WhatsApp instead") ||
			strings.Contains(page, `name="channel" value="sms"`) {
			t.Fatalf("the page does not offer WhatsApp (only):\n%s", page)
		}
		csrf := csrfOf(t, page)
		h.clock.add(31 * time.Second)
		resp, _ := alice.do("POST", loc+"/resend", url.Values{"csrf": {csrf}, "channel": {"email"}})
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("resend on a channel not offered = %d, want 400", resp.StatusCode)
		}
		resp, _ = alice.do("POST", loc+"/resend", url.Values{"csrf": {csrf}, "channel": {"whatsapp"}})
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("resend on WhatsApp = %d, want 303", resp.StatusCode)
		}
		m := h.out.last(t)
		if m.Channel != sender.WhatsApp || !m.ChannelOnly || h.out.count() != 2 {
			t.Fatalf("the new code went as %q (only: %v), %d messages", m.Channel, m.ChannelOnly, h.out.count())
		}
		// Now the page offers SMS back, and the WhatsApp code works.
		_, page = alice.do("GET", loc, nil)
		if !strings.Contains(page, `name="channel" value="sms"`) || strings.Contains(page, `value="whatsapp"`) {
			t.Fatalf("after WhatsApp, the page should offer SMS only:\n%s", page)
		}
		resp, _ = alice.do("POST", loc, url.Values{"csrf": {csrfOf(t, page)}, "code": {m.Code}})
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("code sent by WhatsApp = %d", resp.StatusCode)
		}

		// The API: the 401 lists the channels; resend takes one.
		api := h.browser("bob", "+14155550101")
		resp, ch := api.apiDo("GET", "/account/payment-methods", nil)
		if resp.StatusCode != http.StatusUnauthorized || fmt.Sprint(ch["channels"]) != "[whatsapp]" {
			t.Fatalf("API challenge = %d %v", resp.StatusCode, ch)
		}
		id := ch["challenge"].(string)
		h.clock.add(31 * time.Second)
		resp, out := api.apiDo("POST", "/.stepup/resend", []byte(`{"challenge":"`+id+`","channel":"fax"}`))
		if resp.StatusCode != http.StatusBadRequest || out["error"] != "bad_channel" {
			t.Fatalf("API resend on fax = %d %v", resp.StatusCode, out)
		}
		resp, out = api.apiDo("POST", "/.stepup/resend", []byte(`{"challenge":"`+id+`","channel":"whatsapp"}`))
		if resp.StatusCode != 200 || fmt.Sprint(out["channels"]) != "[sms]" || h.out.last(t).Channel != sender.WhatsApp {
			t.Fatalf("API resend on WhatsApp = %d %v", resp.StatusCode, out)
		}
	})
}

// TestRevokeEndsPendingReplay: a revocation ends a verified browser
// transaction that waits for its replay, as it ends a grant (round 3,
// R3-7): the replay is refused as a revoked grant is, and nothing goes
// upstream. Another user's pending replay still goes.
func TestRevokeEndsPendingReplay(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		h := newTxHarness(t, st)
		start := func(b *browser, amount string) {
			t.Helper()
			resp, _ := b.raw("POST", "/checkout", "application/x-www-form-urlencoded", []byte("amount="+amount+"&merchant=ACME"), "Origin", h.srv.URL)
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("POST /checkout = %d", resp.StatusCode)
			}
			if resp := b.verifyLast(resp.Header.Get("Location")); resp.StatusCode != http.StatusSeeOther || b.jar["stepup_replay"] == "" {
				t.Fatalf("verify = %d, replay cookie %q", resp.StatusCode, b.jar["stepup_replay"])
			}
		}
		alice := h.browser("alice", "+14155550100")
		bob := h.browser("bob", "+14155550101")
		start(alice, "42")
		start(bob, "7")
		h.clock.add(1500 * time.Millisecond)
		if err := h.e.RevokeUser(context.Background(), "alice"); err != nil {
			t.Fatal(err)
		}
		h.clock.add(500 * time.Millisecond)
		resp, page := alice.do("GET", "/checkout", nil)
		if resp.StatusCode != http.StatusForbidden || h.upstream.Load() != 0 {
			t.Fatalf("replay after revocation = %d, upstream %d\n%s", resp.StatusCode, h.upstream.Load(), page)
		}
		if _, ok := alice.jar["stepup_replay"]; ok {
			t.Fatal("replay cookie kept after a refused replay")
		}
		if !strings.Contains(h.logs.String(), `"outcome":"revoked"`) {
			t.Fatal("no replay_refused event with outcome revoked")
		}
		// Without a revocation the replay goes, once.
		resp, got := bob.do("GET", "/checkout", nil)
		if resp.StatusCode != 200 || got != "upstream /checkout" || h.upstream.Load() != 1 ||
			string(*h.lastBody.Load()) != "amount=7&merchant=ACME" {
			t.Fatalf("bob's replay = %d %q, upstream %d", resp.StatusCode, got, h.upstream.Load())
		}
	})
}
