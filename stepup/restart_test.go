package stepup

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-stepup/caddy-stepup/internal/testredis"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// TestSnapshotRestartRefusesEarlierGrants: Redis restarts from a snapshot
// taken before a transaction grant was used, a preserved request was
// replayed and a session grant was revoked (round 3, R3-3). The snapshot
// holds the generation marker, but the restarted process has another run
// id and was not promoted: the generation changes, and neither the used
// grant, nor the replayed request, nor the revoked grant opens again.
func TestSnapshotRestartRefusesEarlierGrants(t *testing.T) {
	t.Parallel()
	srv := testredis.Run(t)
	st := store.NewRedis(redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1}), "snap:", true)
	h := newHarness(t, st, withCheckout(""))
	ctx := context.Background()
	alice := h.browser("alice", "+14155550100")
	grant := func(method, path string, body []byte) string {
		t.Helper()
		resp, ch := alice.apiDo(method, path, body)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s %s = %d %v", method, path, resp.StatusCode, ch)
		}
		resp, out := alice.apiDo("POST", "/.stepup/verify", []byte(`{"challenge":"`+ch["challenge"].(string)+`","code":"`+h.out.last(t).Code+`"}`))
		g, _ := out["grant"].(string)
		if resp.StatusCode != 200 || g == "" {
			t.Fatalf("verify = %d %v", resp.StatusCode, out)
		}
		h.secret(g)
		return g
	}
	body := []byte(`{"amount":"42","merchant":"ACME"}`)
	use := func(method, path string, body []byte, g string) int {
		t.Helper()
		resp, _ := alice.apiDo(method, path, body, "Cookie", GrantCookie+"="+g)
		return resp.StatusCode
	}
	tx := grant("POST", "/checkout", body)
	session := grant("GET", "/account/payment-methods", nil)
	if code := use("GET", "/account/payment-methods", nil, session); code != 200 {
		t.Fatalf("session grant = %d", code)
	}
	// A browser transaction, verified, waiting for its replay.
	browser := h.browser("alice", "+14155550100")
	resp, _ := browser.raw("POST", "/checkout", "application/x-www-form-urlencoded", []byte("amount=7&merchant=ACME"), "Origin", h.srv.URL)
	if resp := browser.verifyLast(resp.Header.Get("Location")); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("browser verify = %d", resp.StatusCode)
	}
	replayCookie := browser.jar["stepup_replay"]

	if out, err := srv.Raw(ctx, "SAVE"); err != nil || strings.TrimSpace(out) != "OK" {
		t.Fatalf("SAVE = %q, %v", out, err)
	}
	if code := use("POST", "/checkout", body, tx); code != 200 {
		t.Fatalf("transaction grant = %d", code)
	}
	if code := use("POST", "/checkout", body, tx); code != http.StatusForbidden {
		t.Fatalf("transaction grant, second use = %d", code)
	}
	if resp, got := browser.do("GET", "/checkout", nil); resp.StatusCode != 200 || got != "upstream /checkout" {
		t.Fatalf("replay = %d %q", resp.StatusCode, got)
	}
	h.clock.add(time.Second)
	if err := h.e.RevokeUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if code := use("GET", "/account/payment-methods", nil, session); code != http.StatusForbidden {
		t.Fatalf("revoked session grant = %d", code)
	}
	up := h.upstream.Load()

	// Redis crashes and restarts from the snapshot.
	srv.Stop()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; st.Ping(ctx) != nil; i++ { // the pool's connections to the old process fail once
		if i > 20 {
			t.Fatal("Redis does not answer after the restart")
		}
	}
	h.clock.add(revokeCacheTTL)
	if code := use("POST", "/checkout", body, tx); code != http.StatusForbidden {
		t.Fatalf("used transaction grant after a restart from a snapshot = %d", code)
	}
	if code := use("GET", "/account/payment-methods", nil, session); code != http.StatusForbidden {
		t.Fatalf("revoked session grant after a restart from a snapshot = %d", code)
	}
	browser.jar["stepup_replay"] = replayCookie
	if resp, _ := browser.do("GET", "/checkout", nil); resp.StatusCode != http.StatusGone {
		t.Fatalf("replay after a restart from a snapshot = %d", resp.StatusCode)
	}
	if h.upstream.Load() != up {
		t.Fatalf("upstream reached %d times after the restart", h.upstream.Load()-up)
	}
	// Users verify again, and that works.
	if code := use("POST", "/checkout", body, grant("POST", "/checkout", body)); code != 200 {
		t.Fatalf("a new grant after the restart = %d", code)
	}
}

// With a Redis user that may not run INFO, the engine warns (once) that
// a restart from a snapshot cannot be told, and keeps working.
func TestRestartCheckWarning(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	user := "noinfo-" + randomID()
	if _, err := redisServer.Raw(ctx, "ACL", "SETUSER", user, "on", ">pw", "~*", "+@all", "-@dangerous"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = redisServer.Raw(ctx, "ACL", "DELUSER", user) })
	st := store.NewRedis(redis.NewClient(&redis.Options{Addr: redisServer.Addr(), Username: user, Password: "pw"}), "noinfo:"+randomID()+":", true)
	h := newHarness(t, st, nil)
	alice := h.browser("alice", "+14155550100")
	loc, csrf := alice.start("/account/payment-methods")
	alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {h.out.last(t).Code}})
	for i := 0; i < 2; i++ {
		h.clock.add(revokeCacheTTL) // the generation is read again
		if resp, _ := alice.do("GET", "/account/payment-methods", nil); resp.StatusCode != 200 {
			t.Fatalf("session grant = %d", resp.StatusCode)
		}
	}
	if n := strings.Count(h.logs.String(), "cannot tell a restart of Redis"); n != 1 {
		t.Fatalf("%d warnings about the restart check; want 1\n%s", n, h.logs.String())
	}
}
