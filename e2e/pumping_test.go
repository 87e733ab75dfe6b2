package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-stepup/caddy-stepup/internal/testredis"
)

// A ring pumps one prefix of a running Caddy in enforce mode: after
// min_sends unverified codes the prefix is blocked (429 with
// Retry-After, as a rate limit), status counts it, and
// `caddy stepup unblock --prefix` lifts it through the admin API, with
// the memory store and with Redis.
func TestPumpingBlockAndUnblock(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testPumping(t, "") })
	t.Run("redis", func(t *testing.T) {
		r := testredis.Run(t)
		testPumping(t, "redis "+r.URL())
	})
}

func testPumping(t *testing.T, redisBlock string) {
	up := newUpstream(t)
	hook := newReceiver(t)
	p := startCaddy(t, prodConfig(redisBlock, hook.URL, up.URL, "pumping {\n\t\t\tmode enforce\n\t\t\tmin_sends 5\n\t\t}"))
	admin := fmt.Sprintf("127.0.0.1:%d", p.admin)
	ring := func(i int) int {
		resp, _ := apiCall(t, "GET", p.url("/account/payment-methods"), fmt.Sprintf("ring-%d", i), fmt.Sprintf("+44740012%04d", i), nil, nil)
		if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
			t.Errorf("refusal %d without Retry-After", i)
		}
		return resp.StatusCode
	}
	seen := map[int]int{}
	for i := 0; i < 12; i++ {
		seen[ring(i)]++
	}
	if seen[http.StatusUnauthorized] != 5 || seen[http.StatusTooManyRequests] != 7 {
		t.Fatalf("statuses %v; want 5 challenges, then refusals", seen)
	}
	hook.wait(t, 5)
	if n := hook.count(); n != 5 {
		t.Fatalf("%d codes sent; want 5", n)
	}
	if !p.waitLog(`"msg":"prefix_blocked"`) {
		t.Fatal("no prefix_blocked line")
	}
	out, code := runCaddy(t, nil, "stepup", "status", "--address", admin)
	if code != 0 || !strings.Contains(out, "pumping:   enforce, blocked prefixes: 1") || strings.Contains(out, "740012") {
		t.Fatalf("status (exit %d):\n%s", code, out)
	}
	out, code = runCaddy(t, nil, "stepup", "unblock", "--address", admin, "--prefix", "+44740012")
	if code != 0 || !strings.Contains(out, ": unblocked (events name this prefix ") {
		t.Fatalf("unblock (exit %d):\n%s", code, out)
	}
	if !p.waitLog(`"msg":"prefix_unblocked"`) {
		t.Fatal("no prefix_unblocked line")
	}
	if code := ring(100); code != http.StatusUnauthorized {
		t.Fatalf("after unblock = %d; want a challenge", code)
	}
	out, code = runCaddy(t, nil, "stepup", "unblock", "--address", admin, "--prefix", "+44740012")
	if code == 0 || !strings.Contains(out, "nothing unblocked") {
		t.Fatalf("second unblock (exit %d):\n%s", code, out)
	}
	// The dashboard's pumping panels ask for metrics this Caddy exports.
	checkDashboard(t, p.adminGet(t, "/metrics"), func(title string) bool { return strings.Contains(title, "Pumping") }, 3)
}
