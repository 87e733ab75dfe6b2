package caddymodule

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/webhook"
	"github.com/caddy-stepup/caddy-stepup/stepup"
	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

func TestReceiptsCaddyfile(t *testing.T) {
	h, err := parse(t, fmtMinimal("\treceipts {\n\t\tpublic_url https://shop.example.com\n\t\tfailover_after 20s\n\t}"))
	if err != nil {
		t.Fatal(err)
	}
	if h.Receipts == nil || h.Receipts.PublicURL != "https://shop.example.com" || time.Duration(h.Receipts.FailoverAfter) != 20*time.Second {
		t.Fatalf("receipts = %+v", h.Receipts)
	}
	for input, want := range map[string]string{
		"\treceipts {\n\t}": "receipts needs public_url",
		"\treceipts x {\n\t\tpublic_url https://a.b\n\t}":            "wrong argument count",
		"\treceipts {\n\t\tpublic_url https://a.b\n\t\tretry 3\n\t}": `unknown receipts option "retry"`,
	} {
		if _, err := parse(t, fmtMinimal(input)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", input, err, want)
		}
	}

	// Provisioned: the engine has the options, with the default
	// failover_after when none is given.
	h, err = parse(t, fmtMinimal("\treceipts {\n\t\tpublic_url https://shop.example.com/\n\t}"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	cfg := h.engine.Config()
	if cfg.Receipts.FailoverAfter != 30*time.Second || cfg.ReceiptURL("twilio") != "https://shop.example.com/.stepup/receipts/twilio" {
		t.Errorf("engine receipts %+v, URL %q", cfg.Receipts, cfg.ReceiptURL("twilio"))
	}
}

// gatewayStub takes webhook sends and keeps them.
type gatewayStub struct {
	*httptest.Server
	mu   sync.Mutex
	msgs []struct{ id, code string }
}

func newGatewayStub(t *testing.T) *gatewayStub {
	g := &gatewayStub{}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct{ Code string }
		_ = json.NewDecoder(r.Body).Decode(&m)
		g.mu.Lock()
		g.msgs = append(g.msgs, struct{ id, code string }{r.Header.Get("webhook-id"), m.Code})
		g.mu.Unlock()
	}))
	t.Cleanup(g.Close)
	return g
}

func (g *gatewayStub) last() (id, code string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.msgs) == 0 {
		return "", ""
	}
	m := g.msgs[len(g.msgs)-1]
	return m.id, m.code
}

const stubSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// Receipts, failovers, conversion and abandonment reach the metrics,
// by sender, channel and country calling code, never by number.
func TestDeliveryMetrics(t *testing.T) {
	for _, v := range []interface{ Reset() }{metrics.deliverySeconds, metrics.verifySeconds, metrics.receipts, metrics.codes, metrics.failovers} {
		v.Reset()
	}
	reg := prometheus.NewPedanticRegistry()
	if err := registerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	g1, g2 := newGatewayStub(t), newGatewayStub(t)
	mk := func(name string, g *gatewayStub) sender.Sender {
		cfg := webhook.Config{URL: g.URL, SigningSecret: stubSecret}
		cfg.Name = name
		s, err := webhook.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cfg, err := stepup.Config{Secret: []byte(strings.Repeat("s", 32)), Receipts: stepup.Receipts{PublicURL: "https://shop.example"}}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	e, err := stepup.New(cfg, []*stepup.Policy{{Name: "pay"}}, stepup.Options{
		Store:    store.NewMemory(0),
		Identity: &identity.Header{UserHeader: "X-User", PhoneHeader: "X-Phone"},
		Sender:   sender.NewChain([]sender.Sender{mk("gw1", g1), mk("gw2", g2)}, sender.ChainOptions{ReceiptURL: cfg.ReceiptURL}),
		Observer: &observer{},
		Now:      clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	match := stepup.MatchFunc(func(*http.Request) (*stepup.Policy, error) { return e.Policy("pay"), nil })
	next := stepup.NextFunc(func(w http.ResponseWriter, _ *http.Request) error { w.WriteHeader(200); return nil })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _ = e.Serve(w, r, match, next) }))
	defer srv.Close()
	key, _ := sender.ParseWebhookSecret(stubSecret)
	receipt := func(name, id, status string) {
		body := []byte(`{"message_id":"` + id + `","status":"` + status + `"}`)
		req, _ := http.NewRequest("POST", srv.URL+"/.stepup/receipts/"+name, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		ts := time.Now()
		req.Header.Set("webhook-id", "r"+id+status)
		req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
		req.Header.Set("webhook-signature", sender.SignWebhook(key, "r"+id+status, ts, body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("receipt: %v %v", resp, err)
		}
		resp.Body.Close()
		e.Wait()
	}
	start := func(user, phone string) (loc, csrf string, jar []*http.Cookie) {
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		get := func(path string) *http.Response {
			req, _ := http.NewRequest("GET", srv.URL+path, nil)
			req.Header.Set("Accept", "text/html")
			req.Header.Set("X-User", user)
			req.Header.Set("X-Phone", phone)
			for _, c := range jar {
				req.AddCookie(c)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}
		resp := get("/pay")
		jar = resp.Cookies()
		loc = resp.Header.Get("Location")
		page, _ := io.ReadAll(get(loc).Body)
		e.Wait()
		return loc, regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(string(page))[1], jar
	}

	// One code delivered and verified; one failed over to gw2.
	loc, csrf, jar := start("alice", "+14155550100")
	id, code := g1.last()
	mu.Lock()
	now = now.Add(3 * time.Second)
	mu.Unlock()
	receipt("gw1", id, "delivered")
	form := url.Values{"csrf": {csrf}, "code": {code}}
	req, _ := http.NewRequest("POST", srv.URL+loc, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-User", "alice")
	req.Header.Set("X-Phone", "+14155550100")
	for _, c := range jar {
		req.AddCookie(c)
	}
	if resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req); err != nil || resp.StatusCode != 303 {
		t.Fatalf("verify: %v %v", resp, err)
	}
	start("bob", "+919876543210")
	id, _ = g1.last()
	receipt("gw1", id, "failed")

	// Bob's code expires unverified: abandoned, told by the runner.
	mu.Lock()
	now = now.Add(6 * time.Minute)
	mu.Unlock()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go e.Run(ctx)
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(metrics.codes.WithLabelValues("abandoned", "pay", "gw2", "", "91")) != 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}

	for _, c := range []struct {
		m    prometheus.Collector
		want float64
		lv   []string
	}{
		{metrics.codes, 1, []string{"sent", "pay", "gw1", "", "1"}},
		{metrics.codes, 1, []string{"verified", "pay", "gw1", "", "1"}},
		{metrics.codes, 1, []string{"sent", "pay", "gw1", "", "91"}},
		{metrics.codes, 1, []string{"abandoned", "pay", "gw2", "", "91"}},
		{metrics.receipts, 1, []string{"gw1", "delivered"}},
		{metrics.receipts, 1, []string{"gw1", "failed"}},
		{metrics.failovers, 1, []string{"gw2", "", "failed"}},
	} {
		var got float64
		switch m := c.m.(type) {
		case *prometheus.CounterVec:
			got = testutil.ToFloat64(m.WithLabelValues(c.lv...))
		}
		if got != c.want {
			t.Errorf("%v = %v, want %v", c.lv, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(metrics.deliverySeconds); n != 1 {
		t.Errorf("delivery_seconds series = %d, want 1", n)
	}
	if n := testutil.CollectAndCount(metrics.verifySeconds); n != 1 {
		t.Errorf("verify_seconds series = %d, want 1", n)
	}
	all, _ := reg.Gather()
	for _, mf := range all {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "9876543210") || strings.Contains(l.GetValue(), "4155550100") || strings.Contains(l.GetValue(), "alice") {
					t.Errorf("metric %s has label %s=%s", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// The breakers of the running handlers' senders are gauges.
func TestBreakerStateMetric(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(400) }))
	defer down.Close()
	h, err := parse(t, strings.Replace(fmtMinimal(""), "\tsender log\n", "\tsender webhook "+down.URL+" {\n\t\tname gw\n\t}\n\tsender log\n", 1))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	reg := prometheus.NewPedanticRegistry()
	if err := registerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	gauge := func(name, sender string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "sender" && l.GetValue() == sender {
						return m.GetGauge().GetValue()
					}
				}
			}
		}
		return -1
	}
	if got := gauge("caddy_stepup_sender_breaker_state", "gw"); got != 0 {
		t.Fatalf("breaker of gw = %v, want 0 (closed)", got)
	}
	send := func() {
		_, _ = h.chain.Send(t.Context(), &sender.Message{To: "+14155550100", Code: "123456", Text: "x"})
	}
	send()
	send()
	if got := gauge("caddy_stepup_sender_consecutive_failures", "gw"); got != 2 {
		t.Errorf("consecutive failures of gw = %v, want 2", got)
	}
	send()
	if got := gauge("caddy_stepup_sender_breaker_state", "gw"); got != 2 {
		t.Errorf("breaker of gw after 3 failures = %v, want 2 (open)", got)
	}
	if got := gauge("caddy_stepup_sender_breaker_state", "log"); got != 0 {
		t.Errorf("breaker of log = %v, want 0", got)
	}
}
