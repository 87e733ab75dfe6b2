package stepup

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/twilio"
	"github.com/caddy-stepup/caddy-stepup/sender/webhook"
	"github.com/caddy-stepup/caddy-stepup/sender/whatsapp"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// testWebhookSecret signs the gateways' sends and receipts.
const testWebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// gateway is an SMS gateway behind the real webhook sender: it takes
// every message (and keeps it), and sends receipts only when told to.
type gateway struct {
	t    *testing.T
	name string
	srv  *httptest.Server
	mu   sync.Mutex
	msgs []gatewayMsg
	// refuse makes it refuse every message (400: not retried).
	refuse atomic.Bool
}

// gatewayMsg is one message a gateway took.
type gatewayMsg struct {
	ID         string // webhook-id: the message id its receipts name
	To, Code   string
	Challenge  string
	ReceiptURL string
}

func newGateway(t *testing.T, name string) *gateway {
	g := &gateway{t: t, name: name}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.refuse.Load() {
			http.Error(w, "number not reachable", 400)
			return
		}
		var p struct {
			To, Code, Challenge string
			ReceiptURL          string `json:"receipt_url"`
		}
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &p); err != nil {
			http.Error(w, "bad json", 400)
			return
		}
		g.mu.Lock()
		g.msgs = append(g.msgs, gatewayMsg{ID: r.Header.Get("webhook-id"), To: p.To, Code: p.Code, Challenge: p.Challenge, ReceiptURL: p.ReceiptURL})
		g.mu.Unlock()
	}))
	t.Cleanup(g.srv.Close)
	return g
}

// sender is the webhook sender of g; signed senders take receipts.
func (g *gateway) sender(signed bool) sender.Sender {
	cfg := webhook.Config{URL: g.srv.URL}
	cfg.Name = g.name
	if signed {
		cfg.SigningSecret = testWebhookSecret
	}
	s, err := webhook.New(cfg)
	if err != nil {
		g.t.Fatal(err)
	}
	return s
}

func (g *gateway) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.msgs)
}

func (g *gateway) last() gatewayMsg {
	g.t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.msgs) == 0 {
		g.t.Fatalf("gateway %s got no message", g.name)
	}
	return g.msgs[len(g.msgs)-1]
}

// receiptRequest is a receipt call of the gateway for message id with
// status, signed with key ("" unsigned), to the harness's endpoint.
func receiptRequest(t *testing.T, h *harness, senderName, id, status, key string) *http.Request {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"message_id": id, "status": status})
	req, err := http.NewRequest("POST", h.srv.URL+"/.stepup/receipts/"+senderName, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	// A provider is no browser: whatever it says of sites is ignored.
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://gateway.example")
	if key != "" {
		k, err := sender.ParseWebhookSecret(key)
		if err != nil {
			t.Fatal(err)
		}
		rid := "rcpt_" + randomID()
		req.Header.Set("webhook-id", rid)
		now := time.Now()
		req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
		req.Header.Set("webhook-signature", sender.SignWebhook(k, rid, now, body))
	}
	return req
}

// postReceipt sends a receipt call and returns the answer's status.
func postReceipt(t *testing.T, h *harness, senderName, id, status, key string) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(receiptRequest(t, h, senderName, id, status, key))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// receiptHarness is a harness whose chain is two webhook gateways,
// "gw1" and "gw2", and an unsigned "plain" one, with receipts on.
func receiptHarness(t *testing.T, st store.Store, mutate func(*Config)) (*harness, *gateway, *gateway) {
	t.Helper()
	g1, g2 := newGateway(t, "gw1"), newGateway(t, "gw2")
	plain := newGateway(t, "plain")
	h := newHarnessWith(t, st, func(c *Config, _ []*Policy) {
		c.Receipts = Receipts{PublicURL: "https://shop.example/"}
		if mutate != nil {
			mutate(c)
		}
	}, func(c Config) Deliverer {
		return sender.NewChain([]sender.Sender{g1.sender(true), g2.sender(true), plain.sender(false)},
			sender.ChainOptions{ReceiptURL: c.ReceiptURL})
	})
	return h, g1, g2
}

func TestReceiptEndpoint(t *testing.T) {
	h, g1, _ := receiptHarness(t, store.NewMemory(time.Minute), nil)
	alice := h.browser("alice", "+14155550100")
	alice.start("/account/payment-methods")
	m := g1.last()
	if m.ReceiptURL != "https://shop.example/.stepup/receipts/gw1" {
		t.Errorf("receipt URL given to the provider: %q", m.ReceiptURL)
	}
	h.secret(m.Code)

	// No identity, no cookies, a cross-site origin: a signed receipt is
	// taken all the same.
	if got := postReceipt(t, h, "gw1", m.ID, "delivered", testWebhookSecret); got != 200 {
		t.Errorf("signed receipt = %d, want 200", got)
	}
	// A receipt for a message nobody knows: taken and ignored.
	if got := postReceipt(t, h, "gw1", "msg_unknown", "failed", testWebhookSecret); got != 200 {
		t.Errorf("receipt of an unknown message = %d, want 200", got)
	}
	for _, tc := range []struct {
		name, sender, key string
		want              int
	}{
		{"unsigned", "gw1", "", 401},
		{"forged", "gw1", "whsec_" + strings.Repeat("QUJD", 8), 403},
		{"unknown sender", "nobody", testWebhookSecret, 404},
		{"sender without receipts", "plain", testWebhookSecret, 404},
	} {
		if got := postReceipt(t, h, tc.sender, m.ID, "failed", tc.key); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	// Malformed: not JSON.
	req := receiptRequest(t, h, "gw1", m.ID, "failed", testWebhookSecret)
	req.Header.Set("Content-Type", "text/plain")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 400 {
		t.Errorf("malformed receipt: %v %v", resp.StatusCode, err)
	}
	// Other methods.
	req, _ = http.NewRequest("PUT", h.srv.URL+"/.stepup/receipts/gw1", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, POST" {
		t.Errorf("PUT = %v %v", resp.StatusCode, err)
	}
}

func TestReceiptsOff(t *testing.T) {
	g := newGateway(t, "gw1")
	h := newHarnessWith(t, store.NewMemory(time.Minute), nil, func(c Config) Deliverer {
		return sender.NewChain([]sender.Sender{g.sender(true)}, sender.ChainOptions{ReceiptURL: c.ReceiptURL})
	})
	alice := h.browser("alice", "+14155550100")
	alice.start("/account/payment-methods")
	if u := g.last().ReceiptURL; u != "" {
		t.Errorf("receipts off, yet the provider was given %q", u)
	}
	if got := postReceipt(t, h, "gw1", g.last().ID, "delivered", testWebhookSecret); got != 404 {
		t.Errorf("receipt with receipts off = %d, want 404", got)
	}
}

func TestReceiptsConfig(t *testing.T) {
	for _, tc := range []struct {
		r    Receipts
		ttl  time.Duration
		want string
	}{
		{Receipts{PublicURL: "shop.example"}, 0, "public_url"},
		{Receipts{PublicURL: "https://shop.example/?x=1"}, 0, "public_url"},
		{Receipts{PublicURL: "ftp://shop.example"}, 0, "public_url"},
		{Receipts{PublicURL: "https://u:p@shop.example"}, 0, "public_url"},
		{Receipts{PublicURL: "https://shop.example", FailoverAfter: time.Second}, 0, "failover_after 1s out of range (5s to 10m)"},
		{Receipts{PublicURL: "https://shop.example", FailoverAfter: time.Minute}, time.Minute, "must be shorter than code_ttl"},
		{Receipts{FailoverAfter: 20 * time.Second}, 0, "failover_after needs receipts public_url"},
	} {
		_, err := Config{Secret: testSecret, CodeTTL: tc.ttl, Receipts: tc.r}.WithDefaults()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.r, err, tc.want)
		}
	}
	c, err := Config{Secret: testSecret, Receipts: Receipts{PublicURL: "https://example.com/shop/"}}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Receipts.FailoverAfter != DefaultFailoverAfter || c.ReceiptURL("twilio world") != "https://example.com/shop/.stepup/receipts/twilio%20world" {
		t.Errorf("defaults: %+v, URL %q", c.Receipts, c.ReceiptURL("twilio world"))
	}
	if (&Config{}).ReceiptURL("twilio") != "" {
		t.Error("a receipt URL without public_url")
	}
}

// challengeOf reads the challenge of a page path from the store.
func challengeOf(t *testing.T, h *harness, loc string) *store.Challenge {
	t.Helper()
	c, err := h.store.Get(t.Context(), strings.TrimPrefix(loc, "/.stepup/challenge/"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enterCode posts code on the challenge page at loc and reports whether
// it was taken.
func (b *browser) enterCode(loc, csrf, code string) bool {
	resp, _ := b.do("POST", loc, url.Values{"csrf": {csrf}, "code": {code}}, "Origin", b.h.srv.URL)
	return resp.StatusCode == http.StatusSeeOther
}

func TestReceiptsRecordDeliveries(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		h, g1, g2 := receiptHarness(t, st, nil)
		alice := h.browser("alice", "+14155550100")
		loc, _ := alice.start("/account/payment-methods")
		m := g1.last()
		h.secret(m.Code)
		c := challengeOf(t, h, loc)
		if len(c.Deliveries) != 1 || len(c.SealedCode) == 0 {
			t.Fatalf("after the send: %+v, sealed %d bytes", c.Deliveries, len(c.SealedCode))
		}
		if d := c.Deliveries[0]; d.Sender != "gw1" || d.MessageID != m.ID || d.Status != store.StatusAccepted || d.Code != 1 || d.Failover {
			t.Fatalf("delivery = %+v", d)
		}
		if strings.Contains(string(c.SealedCode), m.Code) {
			t.Fatal("the code is stored in the clear")
		}
		for _, status := range []string{"sent", "delivered", "sent", "failed"} {
			if got := postReceipt(t, h, "gw1", m.ID, status, testWebhookSecret); got != 200 {
				t.Fatalf("receipt %s = %d", status, got)
			}
		}
		h.e.bg.Wait()
		if d := challengeOf(t, h, loc).Deliveries[0]; d.Status != "delivered" || d.FailedOver {
			t.Errorf("after delivered then late receipts: %+v", d)
		}
		logs := h.logs.String()
		if strings.Count(logs, `"msg":"code_delivered"`) != 1 || strings.Contains(logs, "code_undelivered") {
			t.Errorf("want one code_delivered event and no code_undelivered:\n%s", logs)
		}
		if !strings.Contains(logs, `"message_id":"`+m.ID+`"`) || !strings.Contains(logs, `"to":"+1******0100"`) {
			t.Errorf("code_delivered without the message id or the masked number:\n%s", logs)
		}
		// A delivered code fails over neither at once nor on time.
		h.clock.add(time.Minute)
		h.e.dueFailovers(t.Context())
		if g2.count() != 0 {
			t.Error("a delivered code was sent again")
		}
	})
}

func TestFailoverOnFailedReceipt(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		h, g1, g2 := receiptHarness(t, st, nil)
		alice := h.browser("alice", "+14155550100")
		loc, csrf := alice.start("/account/payment-methods")
		m1 := g1.last()
		h.secret(m1.Code)
		if got := postReceipt(t, h, "gw1", m1.ID, "failed", testWebhookSecret); got != 200 {
			t.Fatalf("failed receipt = %d", got)
		}
		h.e.bg.Wait()
		if g2.count() != 1 {
			t.Fatalf("gw2 got %d messages after gw1 failed, want 1", g2.count())
		}
		m2 := g2.last()
		if m2.Code != m1.Code || m2.Challenge != m1.Challenge || m2.To != m1.To || m2.ReceiptURL != "https://shop.example/.stepup/receipts/gw2" {
			t.Errorf("failover message %+v, first %+v", m2, m1)
		}
		// The same receipt again, and the timer: nothing more.
		postReceipt(t, h, "gw1", m1.ID, "failed", testWebhookSecret)
		postReceipt(t, h, "gw1", m1.ID, "undelivered", testWebhookSecret)
		h.e.bg.Wait()
		if g2.count() != 1 || g1.count() != 1 {
			t.Fatalf("after a replayed receipt: gw1 %d, gw2 %d messages", g1.count(), g2.count())
		}
		c := challengeOf(t, h, loc)
		if len(c.Deliveries) != 2 || !c.Deliveries[0].FailedOver || c.Deliveries[0].Status != "failed" ||
			c.Deliveries[1].Sender != "gw2" || !c.Deliveries[1].Failover || c.SentBy != "gw2" || c.Sends != 1 {
			t.Fatalf("challenge after failover: sent by %q, sends %d, %+v", c.SentBy, c.Sends, c.Deliveries)
		}
		logs := h.logs.String()
		if !strings.Contains(logs, `"msg":"code_undelivered"`) || !strings.Contains(logs, `"msg":"failover"`) {
			t.Errorf("events missing:\n%s", logs)
		}
		// The code that went out both times verifies.
		if !alice.enterCode(loc, csrf, m2.Code) {
			t.Fatal("the failed-over code was refused")
		}
		// gw2 fails too, after the challenge was used: nothing more.
		postReceipt(t, h, "gw2", m2.ID, "failed", testWebhookSecret)
		h.e.bg.Wait()
		if n := len(challengeOf(t, h, loc).Deliveries); n != 2 {
			t.Errorf("a used challenge failed over: %d deliveries", n)
		}
	})
}

func TestFailoverOnTimeout(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		h, g1, g2 := receiptHarness(t, st, func(c *Config) { c.Receipts.FailoverAfter = 20 * time.Second })
		alice := h.browser("alice", "+14155550100")
		loc, _ := alice.start("/account/payment-methods")
		h.secret(g1.last().Code)
		h.clock.add(19 * time.Second)
		h.e.dueFailovers(t.Context())
		if g2.count() != 0 {
			t.Fatal("failed over before failover_after")
		}
		// A "sent" receipt is not "delivered": the timer still fires.
		postReceipt(t, h, "gw1", g1.last().ID, "sent", testWebhookSecret)
		h.clock.add(time.Second)
		h.e.dueFailovers(t.Context())
		if g2.count() != 1 || g2.last().Code != g1.last().Code {
			t.Fatalf("no failover at failover_after: gw2 got %d", g2.count())
		}
		// The second sender takes receipts too: its own timer, then the
		// third sender (which takes none, so the chain ends there).
		h.clock.add(20 * time.Second)
		h.e.dueFailovers(t.Context())
		c := challengeOf(t, h, loc)
		if len(c.Deliveries) != 3 || c.Deliveries[2].Sender != "plain" || !strings.Contains(h.logs.String(), `"outcome":"timeout"`) {
			t.Fatalf("deliveries %+v", c.Deliveries)
		}
		h.clock.add(20 * time.Second)
		h.e.dueFailovers(t.Context())
		if n := len(challengeOf(t, h, loc).Deliveries); n != 3 {
			t.Errorf("%d deliveries after the last sender", n)
		}
	})
}

func TestFailoverSpendsSendBudget(t *testing.T) {
	h, g1, g2 := receiptHarness(t, store.NewMemory(time.Minute), func(c *Config) {
		c.Limits.PerNumber = store.Limit{Rate: 1, Period: time.Hour, Burst: 1}
	})
	alice := h.browser("alice", "+14155550100")
	alice.start("/account/payment-methods")
	h.secret(g1.last().Code)
	postReceipt(t, h, "gw1", g1.last().ID, "failed", testWebhookSecret)
	h.e.bg.Wait()
	if g2.count() != 0 {
		t.Fatal("a failover went past the per-number budget")
	}
	if logs := h.logs.String(); !strings.Contains(logs, `"msg":"rate_limited"`) || !strings.Contains(logs, `"limit":"per_number"`) {
		t.Errorf("no rate_limited event:\n%s", logs)
	}
}

func TestFailoverAfterResendSendsTheNewCode(t *testing.T) {
	h, g1, g2 := receiptHarness(t, store.NewMemory(time.Minute), func(c *Config) { c.ResendAfter = time.Second })
	alice := h.browser("alice", "+14155550100")
	loc, csrf := alice.start("/account/payment-methods")
	first := g1.last()
	h.secret(first.Code)
	h.clock.add(2 * time.Second)
	resp, _ := alice.do("POST", loc+"/resend", url.Values{"csrf": {csrf}}, "Origin", h.srv.URL)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("resend = %d", resp.StatusCode)
	}
	second := g1.last()
	h.secret(second.Code)
	// A late failure of the first code's message: it is not the latest,
	// so it fails nothing over.
	postReceipt(t, h, "gw1", first.ID, "failed", testWebhookSecret)
	h.e.bg.Wait()
	if g2.count() != 0 {
		t.Fatal("the replaced code's failure failed over")
	}
	postReceipt(t, h, "gw1", second.ID, "failed", testWebhookSecret)
	h.e.bg.Wait()
	if g2.count() != 1 || g2.last().Code != second.Code {
		t.Fatalf("failover after a resend: gw2 got %d, code current %v", g2.count(), g2.count() > 0 && g2.last().Code == second.Code)
	}
}

// channeled is a gateway's webhook sender that declares a channel, as
// the WhatsApp sender does.
type channeled struct {
	*webhook.Sender
	ch sender.Channel
}

func (c channeled) Channel() sender.Channel { return c.ch }

// status asks the delivery status of the challenge at loc as b's page
// script does.
func (b *browser) status(loc string) (int, map[string]string) {
	b.h.t.Helper()
	resp, body := b.do("GET", "/.stepup/status?challenge="+strings.TrimPrefix(loc, "/.stepup/challenge/"), nil, "Accept", "application/json")
	var out map[string]string
	if resp.StatusCode == 200 {
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			b.h.t.Fatalf("status body %q: %v", body, err)
		}
	}
	return resp.StatusCode, out
}

func TestDeliveryStatusAndPage(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		g1, g2 := newGateway(t, "gw1"), newGateway(t, "gw2")
		h := newHarnessWith(t, st, func(c *Config, _ []*Policy) {
			c.Receipts = Receipts{PublicURL: "https://shop.example"}
		}, func(c Config) Deliverer {
			s1, s2 := g1.sender(true).(*webhook.Sender), g2.sender(true).(*webhook.Sender)
			return sender.NewChain([]sender.Sender{channeled{s1, sender.SMS}, channeled{s2, sender.WhatsApp}},
				sender.ChainOptions{ReceiptURL: c.ReceiptURL})
		})
		alice := h.browser("alice", "+14155550100")
		loc, _ := alice.start("/account/payment-methods")
		h.secret(g1.last().Code)
		code, s := alice.status(loc)
		if code != 200 || s["state"] != "sent" || s["channel"] != "sms" {
			t.Fatalf("status after the send: %d %v", code, s)
		}
		// The page polls it: its CSP lets it, and its data says where.
		resp, page := alice.do("GET", loc, nil)
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self'") {
			t.Errorf("CSP %q does not let the page poll", csp)
		}
		if !strings.Contains(page, `"status":"/.stepup/status?challenge=`) {
			t.Error("the page's script is not told where to poll")
		}
		// Someone else's session, or none: nothing to learn.
		bob := h.browser("bob", "+14155550111")
		if code, _ := bob.status(loc); code != 404 {
			t.Errorf("another user's poll = %d, want 404", code)
		}
		stranger := h.browser("alice", "+14155550100") // same user, another browser session
		if code, _ := stranger.status(loc); code != 404 {
			t.Errorf("another session's poll = %d, want 404", code)
		}

		postReceipt(t, h, "gw1", g1.last().ID, "delivered", testWebhookSecret)
		if _, s := alice.status(loc); s["state"] != "delivered" {
			t.Errorf("after delivered: %v", s)
		}
		if _, page := alice.do("GET", loc, nil); !strings.Contains(page, "Your code was delivered.") {
			t.Error("the page (no script) does not say the code was delivered")
		}

		// Another challenge, whose SMS fails: sent again by WhatsApp,
		// and the page says so, polled or reloaded, in its language.
		carol := h.browser("carol", "+14155550122")
		loc2, _ := carol.start("/account/payment-methods")
		h.secret(g1.last().Code)
		postReceipt(t, h, "gw1", g1.last().ID, "failed", testWebhookSecret)
		h.e.bg.Wait()
		if g2.count() != 1 {
			t.Fatal("no failover to WhatsApp")
		}
		if _, s := carol.status(loc2); s["state"] != "failed_over" || s["channel"] != "whatsapp" {
			t.Errorf("after failover: %v", s)
		}
		_, page = carol.do("GET", loc2, nil)
		if !strings.Contains(page, "Not delivered: we sent it by WhatsApp instead.") {
			t.Error("the page does not say the code went by WhatsApp")
		}
		_, page = carol.do("GET", loc2, nil, "Accept-Language", "de")
		if !strings.Contains(page, "Nicht zugestellt: Wir haben ihn stattdessen per WhatsApp gesendet.") {
			t.Error("the German page does not say the code went by WhatsApp")
		}
		// WhatsApp fails too: nobody is left.
		postReceipt(t, h, "gw2", g2.last().ID, "failed", testWebhookSecret)
		h.e.bg.Wait()
		if _, s := carol.status(loc2); s["state"] != "not_delivered" {
			t.Errorf("after the last sender failed: %v", s)
		}
	})
}

// The first answer does not wait for the provider: the page says the
// code is on its way, and how it went once it did.
func TestSendAfterAnswer(t *testing.T) {
	release := make(chan struct{})
	slow := &outbox{}
	h := newHarnessWith(t, store.NewMemory(time.Minute), nil, func(Config) Deliverer {
		return delivererFunc(func(ctx context.Context, m *sender.Message) (string, error) {
			<-release
			return slow.Send(ctx, m)
		})
	})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string, cookies []*http.Cookie) *http.Response {
		req, _ := http.NewRequest("GET", h.srv.URL+path, nil)
		req.Header.Set("Accept", "text/html")
		req.Header.Set("X-Remote-User", "alice")
		req.Header.Set("X-Remote-Phone", "+14155550100")
		for _, c := range cookies {
			req.AddCookie(c)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	done := make(chan *http.Response, 1)
	go func() { done <- get("/account/payment-methods", nil) }()
	var resp *http.Response
	select {
	case resp = <-done:
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("the answer waited for the provider")
	}
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("protected GET = %d", resp.StatusCode)
	}
	page := get(resp.Header.Get("Location"), resp.Cookies())
	body, _ := io.ReadAll(page.Body)
	if page.StatusCode != 200 || !strings.Contains(string(body), "Sending your code…") || !strings.Contains(string(body), `"delivery":"sending"`) {
		t.Errorf("page while sending: %d\n%s", page.StatusCode, body)
	}
	close(release)
	h.e.bg.Wait()
	if slow.count() != 1 {
		t.Fatal("the code was not sent after the answer")
	}
}

func TestDeliveryState(t *testing.T) {
	d := func(status string, failover, failedOver bool) store.Delivery {
		return store.Delivery{Sender: "s", Channel: "whatsapp", Status: status, Code: 1, Failover: failover, FailedOver: failedOver}
	}
	for _, tc := range []struct {
		c     store.Challenge
		state string
	}{
		{store.Challenge{Sends: 1}, DeliverySending},
		{store.Challenge{Sends: 1, SentBy: "log"}, DeliverySent},
		{store.Challenge{Sends: 1, SendFailed: true}, DeliveryFailed},
		{store.Challenge{Sends: 1, Deliveries: []store.Delivery{d("accepted", false, false)}}, DeliverySent},
		{store.Challenge{Sends: 1, Deliveries: []store.Delivery{d("read", false, false)}}, DeliveryDelivered},
		{store.Challenge{Sends: 1, Deliveries: []store.Delivery{d("failed", false, false)}}, DeliveryNotDelivered},
		{store.Challenge{Sends: 1, Deliveries: []store.Delivery{d("failed", false, true)}}, DeliverySending},
		{store.Challenge{Sends: 1, Deliveries: []store.Delivery{d("failed", false, true), d("delivered", true, false)}}, DeliveryFailedOver},
		// The old code's messages say nothing of the new one.
		{store.Challenge{Sends: 2, Deliveries: []store.Delivery{d("delivered", false, false)}}, DeliverySending},
		// Hidden numbers (and their decoys) always say the same.
		{store.Challenge{Sends: 1, Hidden: true, SendFailed: true}, DeliverySent},
		{store.Challenge{Sends: 1, Hidden: true, Deliveries: []store.Delivery{d("failed", false, false)}}, DeliverySent},
	} {
		if got, ch := deliveryState(&tc.c); got != tc.state || (tc.c.Hidden && ch != "") {
			t.Errorf("%+v: %q %q, want %q", tc.c, got, ch, tc.state)
		}
	}
}

// delivererFunc adapts a function to Deliverer.
type delivererFunc func(ctx context.Context, m *sender.Message) (string, error)

func (f delivererFunc) Send(ctx context.Context, m *sender.Message) (string, error) { return f(ctx, m) }

// Receipts of the providers that sign the URL (Twilio) verify against
// public_url, not the address the request reached behind a proxy; Meta's
// subscription check (a GET) is answered with its challenge.
func TestReceiptProvidersThroughEndpoint(t *testing.T) {
	tw, err := twilio.New(twilio.Config{AccountSID: "AC" + strings.Repeat("0", 32), AuthToken: "twilio-auth-token-0123456789abcdef", From: "+15557122661"})
	if err != nil {
		t.Fatal(err)
	}
	waCfg := whatsapp.Config{PhoneNumberID: "123456789", AccessToken: "token", Template: "verification_code",
		AppSecret: "meta-app-secret-0123456789", VerifyToken: "verify-token-0123456789"}
	wa, err := whatsapp.New(waCfg)
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory(time.Minute)
	h := newHarnessWith(t, st, func(c *Config, _ []*Policy) {
		c.Receipts = Receipts{PublicURL: "https://shop.example"}
	}, func(c Config) Deliverer {
		return sender.NewChain([]sender.Sender{tw, wa}, sender.ChainOptions{ReceiptURL: c.ReceiptURL})
	})
	ctx := t.Context()
	c := &store.Challenge{ID: randomID(), Policy: "payment-methods", Phone: "+14155550100", Created: time.Now(),
		Expires: time.Now().Add(time.Minute), MaxAttempts: 3, CodeMAC: []byte("m")}
	if err := st.Create(ctx, c, "", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddDelivery(ctx, c.ID, store.Delivery{Sender: "twilio", MessageID: "SM1", Sent: time.Now(), Code: 1}, nil, c.Expires); err != nil {
		t.Fatal(err)
	}
	form := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}, "AccountSid": {"AC" + strings.Repeat("0", 32)}}
	post := func(signedFor string) int {
		req, _ := http.NewRequest("POST", h.srv.URL+"/.stepup/receipts/twilio", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", base64.StdEncoding.EncodeToString(twilio.Signature("twilio-auth-token-0123456789abcdef", signedFor, form)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Signed for the address Caddy saw: not the URL Twilio called.
	if got := post(h.srv.URL + "/.stepup/receipts/twilio"); got != 403 {
		t.Errorf("signed for the inner address = %d, want 403", got)
	}
	if got, _ := st.Get(ctx, c.ID); got.Deliveries[0].Status != store.StatusAccepted {
		t.Fatal("a refused receipt changed the delivery")
	}
	if got := post("https://shop.example/.stepup/receipts/twilio"); got != 200 {
		t.Errorf("signed for public_url = %d, want 200", got)
	}
	if got, _ := st.Get(ctx, c.ID); got.Deliveries[0].Status != "delivered" {
		t.Errorf("after Twilio's receipt: %+v", got.Deliveries[0])
	}

	// Meta's check of the callback URL.
	resp, err := http.Get(h.srv.URL + "/.stepup/receipts/whatsapp?hub.mode=subscribe&hub.verify_token=verify-token-0123456789&hub.challenge=1158201444")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "1158201444" {
		t.Errorf("WhatsApp handshake = %d %q", resp.StatusCode, body)
	}
	resp, _ = http.Get(h.srv.URL + "/.stepup/receipts/whatsapp?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1")
	if resp.StatusCode != 403 {
		t.Errorf("WhatsApp handshake with a wrong token = %d, want 403", resp.StatusCode)
	}
}

// A code that failed and that the next sender refused too: the page
// says it could not be sent and offers a new one at once.
func TestFailoverThatFailsOffersResend(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		h, g1, g2 := receiptHarness(t, st, nil)
		g2.refuse.Store(true)
		alice := h.browser("alice", "+14155550100")
		loc, _ := alice.start("/account/payment-methods")
		h.secret(g1.last().Code)
		postReceipt(t, h, "gw1", g1.last().ID, "failed", testWebhookSecret)
		h.e.Wait()
		// gw2 refused; the chain's third sender ("plain") took it.
		c := challengeOf(t, h, loc)
		if n := len(c.Deliveries); n != 2 || c.Deliveries[1].Sender != "plain" {
			t.Fatalf("deliveries after gw2 refused: %+v", c.Deliveries)
		}
	})
	h, g1, g2 := receiptHarness(t, store.NewMemory(time.Minute), func(c *Config) {})
	g2.refuse.Store(true)
	alice := h.browser("alice", "+14155550100")
	loc, _ := alice.start("/account/payment-methods")
	h.secret(g1.last().Code)
	// Only gw2 is left for this message: plain is skipped as if tried.
	c := challengeOf(t, h, loc)
	if _, err := h.store.AddDelivery(t.Context(), c.ID, store.Delivery{Sender: "plain", Sent: time.Now(), Code: 1}, nil, c.Expires); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.AddDelivery(t.Context(), c.ID, store.Delivery{Sender: "gw1", MessageID: "msg_last", Sent: time.Now(), Code: 1}, nil, c.Expires); err != nil {
		t.Fatal(err)
	}
	postReceipt(t, h, "gw1", "msg_last", "failed", testWebhookSecret)
	h.e.Wait()
	if _, s := alice.status(loc); s["state"] != DeliveryFailed {
		t.Errorf("status after every sender failed: %v", s)
	}
	if _, page := alice.do("GET", loc, nil); !strings.Contains(page, "We could not send your code") {
		t.Error("the page does not offer a new code after every sender failed")
	}
}
