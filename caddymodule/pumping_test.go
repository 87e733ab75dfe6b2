package caddymodule

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/caddy-stepup/caddy-stepup/internal/freeport"
	"github.com/caddy-stepup/caddy-stepup/internal/testredis"
	"github.com/caddy-stepup/caddy-stepup/stepup"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// pumpKey is the store's name of prefix +44740012 for a handler with
// secret whose numbers are on file (stepup.PumpKeys).
func pumpKey(t *testing.T, secret string) string {
	t.Helper()
	keys, err := stepup.PumpKeys([]byte(secret), "+44740012")
	if err != nil {
		t.Fatal(err)
	}
	return keys[1]
}

// blockPrefix blocks prefix +44740012 of a handler with secret in st as
// the defense's enforce rule with the defaults would.
func blockPrefix(t *testing.T, st store.PumpingStore, secret string) {
	t.Helper()
	key := pumpKey(t, secret)
	p, err := stepup.Pumping{Mode: stepup.PumpingEnforce}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	rule := store.PumpRule{Window: p.Window, MinSends: p.MinSends, MinConversion: p.MinConversion, BlockFor: p.BlockFor, Enforce: true}
	for i := 0; i <= p.MinSends; i++ {
		if _, err := st.PumpSend(context.Background(), "44", key, rule, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if res, _ := st.PumpSend(context.Background(), "44", key, rule, time.Now()); !res.Blocked {
		t.Fatal("the prefix is not blocked")
	}
}

// On a running Caddy (its admin API listening), status counts the
// blocked prefix and `caddy stepup unblock --prefix` lifts it on the
// memory store, whose state only that Caddy has; unblocking it again
// does nothing and exits 1.
func TestUnblockThroughAdminAPI(t *testing.T) {
	admin, err := freeport.Hold()
	if err != nil {
		t.Fatal(err)
	}
	admin.Release()
	web, err := freeport.Hold()
	if err != nil {
		t.Fatal(err)
	}
	web.Release()
	cfg := `{"admin":{"listen":"` + admin.Addr() + `","config":{"persist":false}},"apps":{"http":{"servers":{"shop":{"listen":["` + web.Addr() + `"],` +
		`"routes":[{"handle":[` + strings.Replace(opsHandlerJSON(`"pumping":{"mode":"enforce"},`), `{`, `{"handler":"stepup",`, 1) + `]}]}}}}}`
	if err := caddy.Load([]byte(cfg), true); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = caddy.Stop() }()
	st, key, err := acquireMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Delete(key)
	blockPrefix(t, st.(store.PumpingStore), opsSecret)

	resp, err := http.Get("http://" + admin.Addr() + "/stepup/status")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"blocked_prefixes": 1`) || !strings.Contains(string(body), `"pumping": "enforce"`) ||
		strings.Contains(string(body), "740012") {
		t.Fatalf("status:\n%s", body)
	}

	run := func(args ...string) (int, string) {
		cmd := unblockCommand()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(append([]string{"--address", admin.Addr()}, args...))
		err := cmd.Execute()
		if err != nil {
			out.WriteString(err.Error())
			return 1, out.String()
		}
		return 0, out.String()
	}
	before := testutilCount("44")
	code, out := run("--prefix", "+44740012")
	if code != 0 || !strings.Contains(out, "shop.example.com/.stepup:checkout,pay: unblocked (events name this prefix ") {
		t.Fatalf("unblock = %d\n%s", code, out)
	}
	if got := testutilCount("44"); got != before+1 {
		t.Fatalf("prefix_unblocks_total{country=44} = %v; want %v", got, before+1)
	}
	rule := store.PumpRule{Window: time.Hour, MinSends: 20, MinConversion: 20, BlockFor: time.Hour, Enforce: true}
	if res, _ := st.(store.PumpingStore).PumpSend(context.Background(), "44", pumpKey(t, opsSecret), rule, time.Now()); res.Blocked || res.Sends != 1 {
		t.Fatalf("after unblock: %+v", res)
	}
	code, out = run("--prefix", "+44740012")
	if code == 0 || !strings.Contains(out, "nothing to do: not blocked") || !strings.Contains(out, "nothing unblocked") {
		t.Fatalf("second unblock = %d\n%s", code, out)
	}
	if code, out := run("--prefix", "4477"); code == 0 || !strings.Contains(out, "--prefix") {
		t.Fatalf("bad prefix = %d\n%s", code, out)
	}
}

func testutilCount(cc string) float64 {
	return testutil.ToFloat64(pumpingMetrics.unblocks.WithLabelValues(cc))
}

// --direct goes to Redis: it unblocks there, writes prefix_unblocked to
// the audit stream, and fails for a handler on the memory store.
func TestUnblockDirect(t *testing.T) {
	srv := testredis.Run(t)
	t.Setenv("STEPUP_SECRET", strings.Repeat("k", 40))
	caddyfile := `{
	admin off
}
http://127.0.0.1:1 {
	stepup {
		redis ` + srv.URL() + ` {
			key_prefix shop:
		}
		audit_stream stepup:audit
		secret {env.STEPUP_SECRET}
		identity header {
			user U
			phone P
		}
		sender log
		pumping {
			mode enforce
		}
	}
}
http://127.0.0.1:2 {
	stepup {
		identity header {
			user U
			phone P
		}
		sender log
	}
}
`
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	st := store.NewRedis(client, "shop:", false)
	defer client.Close()
	blockPrefix(t, st, strings.Repeat("k", 40))
	ctx := context.Background()
	results, err := unblockDirect(ctx, cfg, "+44740012", "")
	if err != nil || len(results) != 2 {
		t.Fatalf("unblockDirect = %v, %v", results, err)
	}
	id, _ := stepup.PrefixID([]byte(strings.Repeat("k", 40)), "+44740012")
	if r := results[0]; !r.Unblocked || r.PrefixID != id || r.Error != "" {
		t.Fatalf("redis handler: %+v", r)
	}
	if r := results[1]; r.Unblocked || !strings.Contains(r.Error, "memory store") {
		t.Fatalf("memory handler: %+v", r)
	}
	if code, err := unblockExit(results); code != 1 || err == nil {
		t.Fatalf("exit %d, %v; want 1 for the memory handler", code, err)
	}
	if code, err := unblockExit(results[:1]); code != 0 || err != nil {
		t.Fatalf("exit %d, %v; want 0", code, err)
	}
	entries, err := client.XRange(ctx, "stepup:audit", "-", "+").Result()
	if err != nil || len(entries) != 1 || entries[0].Values["event"] != "prefix_unblocked" ||
		entries[0].Values["country"] != "44" || entries[0].Values["prefix_id"] != id {
		t.Fatalf("audit stream: %v, %v", entries, err)
	}
	rule := store.PumpRule{Window: time.Hour, MinSends: 20, MinConversion: 20, BlockFor: time.Hour, Enforce: true}
	if res, _ := st.PumpSend(ctx, "44", pumpKey(t, strings.Repeat("k", 40)), rule, time.Now()); res.Blocked {
		t.Fatal("still blocked")
	}
	results, _ = unblockDirect(ctx, cfg, "+44740012", ":1/.stepup:-")
	if code, err := unblockExit(results); code != 1 || err == nil || results[0].Note != "not blocked" {
		t.Fatalf("unblocking again: %v; exit %d, %v", results, code, err)
	}
}

// The Caddyfile's pumping block becomes the JSON the engine reads.
func TestPumpingCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`stepup {
		secret 0123456789abcdef0123456789abcdef
		identity header {
			user U
			phone P
		}
		sender log
		pumping {
			mode enforce
			window 2h
			min_sends 50
			min_conversion 15%
			block_for 12h
			safe +44 +4477009
			safe +91
		}
	}`)
	var h Handler
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	got := h.Pumping.engine()
	if got.Mode != stepup.PumpingEnforce || got.Window != 2*time.Hour || got.MinSends != 50 || got.MinConversion != 15 ||
		got.BlockFor != 12*time.Hour || strings.Join(got.Safe, " ") != "+44 +4477009 +91" {
		t.Fatalf("parsed %+v", got)
	}
	for _, tc := range []struct{ in, want string }{
		{"pumping {\n\tmin_conversion lots\n}", `min_conversion: "lots" is not a whole percentage such as 20%`},
		{"pumping {\n\tsafe\n}", "wrong argument count"},
		{"pumping {\n\tthreshold 3\n}", "unrecognized pumping option 'threshold'"},
		{"pumping\npumping", "pumping already set"},
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("stepup {\nidentity header {\nuser U\nphone P\n}\nsender log\n" + tc.in + "\n}"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v; want %q", tc.in, err, tc.want)
		}
	}
}

// A block is counted by country calling code and mode, and its event
// data names the country and the prefix_id only.
func TestPumpingMetricAndEventData(t *testing.T) {
	ev := &stepup.Event{Kind: stepup.EventPrefixBlocked, Mode: "monitor", Country: "+44", Prefix: "7OiH92UaR0H8", Sends: 20}
	before := testutil.ToFloat64(pumpingMetrics.blocks.WithLabelValues("44", "monitor"))
	(&observer{}).Observe(nil, ev)
	if got := testutil.ToFloat64(pumpingMetrics.blocks.WithLabelValues("44", "monitor")); got != before+1 {
		t.Fatalf("prefix_blocks_total{country=44,mode=monitor} = %v; want %v", got, before+1)
	}
	d := eventData(nil, ev)
	if d["event"] != "prefix_blocked" || d["country"] != "+44" || d["prefix_id"] != "7OiH92UaR0H8" || d["sends"] != 20 || d["verified"] != 0 {
		t.Fatalf("event data %v", d)
	}
}
