package caddymodule

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup"
	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// codes is a sender that keeps the codes (the providers are tested in
// package sender).
type codes struct {
	mu   sync.Mutex
	last string
}

func (c *codes) Name() string { return "test" }
func (c *codes) Send(_ context.Context, m *sender.Message) error {
	c.mu.Lock()
	c.last = m.Code
	c.mu.Unlock()
	return nil
}

// A scripted flow through a real engine and the observer produces
// exactly the expected metrics; registering twice (a second handler, a
// reload into the same registry) is harmless.
func TestMetricsAfterScriptedFlow(t *testing.T) {
	for _, v := range []interface{ Reset() }{metrics.challenges, metrics.codesSent, metrics.sendDuration,
		metrics.verifications, metrics.byMethod, metrics.grantsUsed, metrics.requests, metrics.monitor, metrics.rateLimited, metrics.storeErrors} {
		v.Reset()
	}
	reg := prometheus.NewPedanticRegistry()
	for i := 0; i < 2; i++ {
		if err := registerMetrics(reg); err != nil {
			t.Fatal(err)
		}
	}
	out := &codes{}
	obs := &observer{}
	e, err := stepup.New(stepup.Config{Secret: []byte(strings.Repeat("s", 32))},
		[]*stepup.Policy{{Name: "pay"}, {Name: "admin", Mode: stepup.Monitor}},
		stepup.Options{
			Store:    store.NewMemory(0),
			Identity: &identity.Header{UserHeader: "X-User", PhoneHeader: "X-Phone"},
			Sender:   sender.NewChain([]sender.Sender{out}, sender.ChainOptions{}),
			Observer: obs,
		})
	if err != nil {
		t.Fatal(err)
	}
	match := stepup.MatchFunc(func(r *http.Request) (*stepup.Policy, error) {
		if strings.HasPrefix(r.URL.Path, "/admin") {
			return e.Policy("admin"), nil
		}
		return e.Policy("pay"), nil
	})
	next := stepup.NextFunc(func(w http.ResponseWriter, _ *http.Request) error { w.WriteHeader(200); return nil })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _ = e.Serve(w, r, match, next) }))
	defer srv.Close()

	jar := map[string]string{}
	do := func(method, path string, form url.Values) (*http.Response, string) {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, srv.URL+path, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Header.Set("Accept", "text/html")
		req.Header.Set("X-User", "alice")
		req.Header.Set("X-Phone", "+14155550100")
		for k, v := range jar {
			req.AddCookie(&http.Cookie{Name: k, Value: v})
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, c := range resp.Cookies() {
			jar[c.Name] = c.Value
		}
		return resp, string(b)
	}
	resp, _ := do("GET", "/pay", nil)
	loc := resp.Header.Get("Location")
	_, page := do("GET", loc, nil)
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)[1]
	e.Wait() // the code goes out after the answer
	out.mu.Lock()
	code := out.last
	out.mu.Unlock()
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	do("POST", loc, url.Values{"csrf": {csrf}, "code": {wrong}})
	do("POST", loc, url.Values{"csrf": {csrf}, "code": {code}})
	do("GET", "/pay", nil)
	do("GET", "/pay", nil)
	do("GET", "/admin/x", nil)

	expected := `
# HELP caddy_stepup_challenges_created_total Challenges created, by policy and mode.
# TYPE caddy_stepup_challenges_created_total counter
caddy_stepup_challenges_created_total{mode="session",policy="pay"} 1
# HELP caddy_stepup_codes_sent_total Codes sent, by the sender that delivered them (or the last one tried) and outcome (ok, failed).
# TYPE caddy_stepup_codes_sent_total counter
caddy_stepup_codes_sent_total{outcome="ok",sender="test"} 1
# HELP caddy_stepup_grants_used_total Requests let through on a grant, by policy and mode.
# TYPE caddy_stepup_grants_used_total counter
caddy_stepup_grants_used_total{mode="session",policy="pay"} 2
# HELP caddy_stepup_monitor_would_challenge_total Requests a monitor-mode policy would have challenged, by policy.
# TYPE caddy_stepup_monitor_would_challenge_total counter
caddy_stepup_monitor_would_challenge_total{policy="admin"} 1
# HELP caddy_stepup_policy_match_total Requests a policy matched, by policy, mode and outcome (passed, challenged, monitored, refused); in monitor mode this is the hit rate before enforcing.
# TYPE caddy_stepup_policy_match_total counter
caddy_stepup_policy_match_total{mode="monitor",outcome="monitored",policy="admin"} 1
caddy_stepup_policy_match_total{mode="session",outcome="challenged",policy="pay"} 1
caddy_stepup_policy_match_total{mode="session",outcome="passed",policy="pay"} 2
`
	names := []string{"caddy_stepup_challenges_created_total", "caddy_stepup_codes_sent_total",
		"caddy_stepup_grants_used_total", "caddy_stepup_monitor_would_challenge_total", "caddy_stepup_policy_match_total"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), names...); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(metrics.verifications.WithLabelValues("pay", "wrong")); got != 1 {
		t.Fatalf("wrong verifications = %v", got)
	}
	if got := testutil.ToFloat64(metrics.verifications.WithLabelValues("pay", "ok")); got != 1 {
		t.Fatalf("ok verifications = %v", got)
	}
	if got := testutil.ToFloat64(metrics.byMethod.WithLabelValues("pay", "sms", "ok")); got != 1 {
		t.Fatalf("ok verifications by sms = %v", got)
	}
	if n := testutil.CollectAndCount(metrics.sendDuration); n != 1 {
		t.Fatalf("send latency series = %d", n)
	}
	// No label carries a user, a number or an address.
	all, _ := reg.Gather()
	for _, mf := range all {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "alice") || strings.Contains(l.GetValue(), "4155550100") || strings.Contains(l.GetValue(), "127.0.0.1") {
					t.Fatalf("metric %s has label %s=%s", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}
