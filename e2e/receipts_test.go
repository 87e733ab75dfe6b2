package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
)

// receiptConfig is a site with two signed webhook gateways, gw1 then
// gw2, receipts on with failover_after 5s, on the shared Redis.
func receiptConfig(gw1, gw2, prefix string) string {
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
			name gw1
			signing_secret %s
		}
		sender webhook %s/sms {
			name gw2
			signing_secret %s
		}
		receipts {
			public_url http://127.0.0.1:{PORT}
			failover_after 5s
		}
		protect payment-methods {
			match {
				path /account/payment-methods*
			}
		}
	}
	respond "upstream {http.request.uri.path}"
}
`, sharedRedis.URL(), prefix, gw1, signingSecret, gw2, signingSecret)
}

// gatewayReceipt posts a receipt call of a gateway, signed with key (nil:
// unsigned), and returns the answer's status.
func gatewayReceipt(t *testing.T, receiptURL, messageID, status string, key []byte) int {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"message_id": messageID, "status": status})
	req, _ := http.NewRequest("POST", receiptURL, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != nil {
		id := "rcpt_" + strconv.FormatInt(time.Now().UnixNano(), 36)
		now := time.Now()
		req.Header.Set("webhook-id", id)
		req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
		req.Header.Set("webhook-signature", sender.SignWebhook(key, id, now, body))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// status asks the delivery status of challenge as the page's script does.
func (b *browser) status(p *caddyProc, challenge string) map[string]string {
	b.t.Helper()
	id := challenge[strings.LastIndex(challenge, "/")+1:]
	req, _ := http.NewRequest("GET", p.url("/.stepup/status?challenge="+id), nil)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Remote-User", b.user)
	req.Header.Set("X-Remote-Phone", b.phone)
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		b.t.Fatalf("status: %d %v", resp.StatusCode, err)
	}
	return out
}

// A real Caddy on a real Redis: a gateway that accepts codes and never
// delivers them has the code sent through the second gateway within
// failover_after; one that reports a signed "failed" has it sent at
// once; forged and unsigned receipts are refused and change nothing.
func TestReceiptFailover(t *testing.T) {
	gw1, gw2 := newReceiver(t), newReceiver(t)
	prefix := "e2e-receipts-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	p := startCaddy(t, receiptConfig(gw1.URL, gw2.URL, prefix))
	key, _ := sender.ParseWebhookSecret(signingSecret)

	// 1. Accepted, never delivered: failover on time.
	alice := newBrowser(t, "alice", "+14155550100")
	target := p.url("/account/payment-methods")
	resp, _ := alice.do("GET", target, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("protected GET = %d", resp.StatusCode)
	}
	challenge := resolve(target, resp.Header.Get("Location"))
	sentAt := time.Now()
	gw1.wait(t, 1)
	m1 := gw1.last(t)
	if want := p.url("/.stepup/receipts/gw1"); m1.ReceiptURL != want {
		t.Fatalf("receipt URL given to the gateway %q, want %q", m1.ReceiptURL, want)
	}
	// Forged and unsigned receipts: refused, nothing changes.
	if got := gatewayReceipt(t, m1.ReceiptURL, m1.ID, "failed", nil); got != 401 {
		t.Errorf("unsigned receipt = %d, want 401", got)
	}
	forged, _ := sender.ParseWebhookSecret("whsec_" + strings.Repeat("QUJD", 8))
	if got := gatewayReceipt(t, m1.ReceiptURL, m1.ID, "failed", forged); got != 403 {
		t.Errorf("forged receipt = %d, want 403", got)
	}
	if got := gatewayReceipt(t, p.url("/.stepup/receipts/nobody"), m1.ID, "failed", key); got != 404 {
		t.Errorf("receipt for an unknown sender = %d, want 404", got)
	}
	if got := gatewayReceipt(t, m1.ReceiptURL, "msg_unknown", "failed", key); got != 200 {
		t.Errorf("receipt for an unknown message = %d, want 200", got)
	}
	if s := alice.status(p, challenge); s["state"] != "sent" {
		t.Errorf("status after refused receipts: %v", s)
	}
	time.Sleep(time.Second)
	if gw2.count() != 0 {
		t.Fatal("a refused receipt failed the code over")
	}
	for deadline := sentAt.Add(9 * time.Second); gw2.count() == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
	}
	if gw2.count() != 1 {
		t.Fatalf("no failover to gw2 within failover_after (5s) plus a poll: gw2 got %d", gw2.count())
	}
	if took := time.Since(sentAt); took < 5*time.Second {
		t.Errorf("failed over after %s, before failover_after", took)
	}
	m2 := gw2.last(t)
	if m2.Code != m1.Code || m2.Challenge != m1.Challenge {
		t.Fatalf("failover sent another code or challenge: %+v vs %+v", m2, m1)
	}
	// The failover's delivery is recorded once gw2 has answered, a
	// moment after gw2 got the message: poll as the page does.
	s := alice.status(p, challenge)
	for deadline := time.Now().Add(5 * time.Second); s["state"] != "failed_over" && time.Now().Before(deadline); s = alice.status(p, challenge) {
		time.Sleep(50 * time.Millisecond)
	}
	if s["state"] != "failed_over" {
		t.Errorf("status after the failover: %v", s)
	}
	_, page := alice.do("GET", challenge, nil)
	if !strings.Contains(page, "Not delivered: we sent it another way instead.") {
		t.Errorf("the page does not say the code went another way:\n%s", page)
	}
	// The code verifies.
	resp, _ = alice.do("POST", challenge, url.Values{"csrf": {csrfOf(t, page)}, "code": {m2.Code}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("verify = %d", resp.StatusCode)
	}

	// 2. A signed "failed" receipt: failover at once.
	bob := newBrowser(t, "bob", "+14155550101")
	resp, _ = bob.do("GET", target, nil)
	challenge = resolve(target, resp.Header.Get("Location"))
	gw1.wait(t, 2)
	m1 = gw1.last(t)
	before := gw2.count()
	if got := gatewayReceipt(t, m1.ReceiptURL, m1.ID, "failed", key); got != 200 {
		t.Fatalf("failed receipt = %d", got)
	}
	gw2.wait(t, before+1)
	if m2 := gw2.last(t); m2.Code != m1.Code || m2.Challenge != m1.Challenge {
		t.Fatal("the failed receipt's failover carried another code")
	}
	// Replayed: nothing more, now or on the timer.
	gatewayReceipt(t, m1.ReceiptURL, m1.ID, "failed", key)
	if got := gatewayReceipt(t, gw2.last(t).ReceiptURL, gw2.last(t).ID, "delivered", key); got != 200 {
		t.Fatalf("delivered receipt = %d", got)
	}
	time.Sleep(6 * time.Second)
	if gw2.count() != before+1 || gw1.count() != 2 {
		t.Errorf("after replays and the timer: gw1 %d, gw2 %d messages", gw1.count(), gw2.count())
	}
	if s := bob.status(p, challenge); s["state"] != "failed_over" {
		t.Errorf("bob's status: %v", s)
	}

	// The events and metrics are there, without numbers.
	for _, ev := range []string{`"msg":"code_undelivered"`, `"msg":"failover"`, `"msg":"code_delivered"`} {
		if !p.waitLog(ev) {
			t.Errorf("no %s in the log", ev)
		}
	}
	metrics := p.adminGet(t, "/metrics")
	for _, want := range []string{
		`caddy_stepup_receipts_total{sender="gw2",status="delivered"} 1`,
		`caddy_stepup_delivery_seconds_count{channel="",sender="gw2"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// Two failovers to gw2. Which reason each carries depends on timing
	// (on a loaded machine the timer may fail bob's code over before the
	// failed receipt is taken); the reasons are unit-tested
	// (TestFailoverOnFailedReceipt, TestDeliveryMetrics).
	failovers := 0
	for _, m := range regexp.MustCompile(`(?m)^caddy_stepup_failovers_total\{channel="",reason="(?:timeout|failed)",sender="gw2"\} (\d+)$`).FindAllStringSubmatch(metrics, -1) {
		n, _ := strconv.Atoi(m[1])
		failovers += n
	}
	if failovers != 2 {
		t.Errorf("%d failovers to gw2 in the metrics, want 2:\n%s", failovers,
			strings.Join(regexp.MustCompile(`(?m)^caddy_stepup_(failovers|receipts)_total.*$`).FindAllString(metrics, -1), "\n"))
	}

	// The same figures from Redis, for shops without Prometheus (the
	// tallies are written once a second).
	var stats string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		cmd := exec.Command(caddyBin, "stepup", "stats", "--config", p.config, "--since", "2h")
		cmd.Env = append(os.Environ(), p.env...)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("caddy stepup stats: %v\n%s", err, b)
		}
		stats = strings.Join(strings.Fields(string(b)), " ")
		if strings.Contains(stats, "failed over 2") {
			break
		}
	}
	for _, want := range []string{"codes sent 2, verified 1 (50.0%)", "delivered 1, not delivered 1, failed over 2", "+1 2 1 50.0%"} {
		if !strings.Contains(stats, want) {
			t.Errorf("caddy stepup stats lacks %q:\n%s", want, stats)
		}
	}

	// Every metric the delivery panels of the dashboard ask for is
	// exported by this Caddy (the pumping panels: TestPumpingBlockAndUnblock).
	checkDashboard(t, metrics, func(title string) bool { return !strings.Contains(title, "Pumping") }, 10)
}

// checkDashboard checks that every metric the panels of
// docs/grafana/stepup-delivery.json chosen by pick ask for is in
// metrics (a scrape of Caddy's /metrics), and that they name at least min.
func checkDashboard(t *testing.T, metrics string, pick func(title string) bool, min int) {
	t.Helper()
	dash, err := os.ReadFile(filepath.Join(repoRoot, "docs", "grafana", "stepup-delivery.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(dash, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	names := 0
	for _, panel := range d.Panels {
		if !pick(panel.Title) {
			continue
		}
		for _, target := range panel.Targets {
			for _, name := range regexp.MustCompile(`caddy_stepup_[a-z_]+`).FindAllString(target.Expr, -1) {
				names++
				if !regexp.MustCompile(`(?m)^` + name + `[{ ]`).MatchString(metrics) {
					t.Errorf("dashboard panel %q asks for %s, which Caddy does not export", panel.Title, name)
				}
			}
		}
	}
	if names < min {
		t.Errorf("the dashboard panels name only %d metrics; want at least %d", names, min)
	}
}
