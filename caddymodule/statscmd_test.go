package caddymodule

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"go.uber.org/zap"

	"github.com/caddy-stepup/caddy-stepup/internal/testredis"
	"github.com/caddy-stepup/caddy-stepup/stepup"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// Events become hourly tallies in Redis (through the observer's
// writer), and caddy stepup stats prints them per sender, country and
// policy.
func TestStatsFromTallies(t *testing.T) {
	srv := testredis.Run(t)
	client, err := newRedisClient(RedisConfig{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewRedis(client, "shop:", true)
	defer st.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	obs := &observer{tally: make(chan tallyCount, 100)}
	done := make(chan struct{})
	go func() { tallyWriter(ctx, st, obs.tally, zap.NewNop()); close(done) }()

	ev := func(kind stepup.EventKind, sender, channel, country string, d time.Duration) {
		obs.tallies(&stepup.Event{Kind: kind, Policy: "checkout", Sender: sender, Channel: channel, Country: country, Duration: d})
	}
	for range 4 {
		ev(stepup.EventCodeSent, "twilio", "sms", "91", 0)
	}
	ev(stepup.EventCodeDelivered, "twilio", "sms", "91", 2*time.Second)
	ev(stepup.EventCodeDelivered, "twilio", "sms", "91", 4*time.Second)
	ev(stepup.EventCodeUndelivered, "twilio", "sms", "91", 0)
	ev(stepup.EventFailover, "whatsapp", "whatsapp", "91", 0)
	ev(stepup.EventVerified, "twilio", "sms", "91", 0)
	ev(stepup.EventVerified, "twilio", "sms", "91", 0)
	ev(stepup.EventVerified, "whatsapp", "whatsapp", "91", 0)
	ev(stepup.EventAbandoned, "twilio", "sms", "91", 0)
	ev(stepup.EventCodeSent, "twilio", "sms", "1", 0)
	ev(stepup.EventGrantUsed, "", "", "", 0) // not a delivery figure
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := st.Tallies(t.Context(), time.Now().Add(-time.Hour), time.Now())
		if got[store.TallyKey("sent", "checkout", "twilio", "sms", "91")] == 4 && got[store.TallyKey("abandoned", "checkout", "twilio", "sms", "91")] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tallies not written: %v", got)
		}
		time.Sleep(50 * time.Millisecond)
	}

	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(`shop.example.com {
	stepup {
		redis `+srv.URL()+` {
			key_prefix shop:
		}
		secret 0123456789abcdef0123456789abcdef
		identity header {
			user X-Remote-User
			phone X-Remote-Phone
		}
		sender log
		protect checkout {
			match {
				path /checkout
			}
		}
	}
}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := printStats(t.Context(), &out, cfg, "", time.Now(), 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(out.String()), " ")
	for _, want := range []string{
		"/.stepup:checkout, last 1d:",
		"codes sent 5, verified 3 (60.0%), abandoned 1 (20.0%); delivered 2, not delivered 1, failed over 1",
		"twilio (sms) 5 2 40.0% 1 2 1 0 3s",
		"whatsapp (whatsapp) 0 1 - 0 0 0 1 -",
		"+91 4 3 75.0% 1 2 1 1 3s",
		"+1 1 0 0.0% 0 0 0 0 -",
		"checkout 5 3 60.0% 1 2 1 1 3s",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("stats lack %q:\n%s", want, text)
		}
	}
	cancel()
	<-done
}
