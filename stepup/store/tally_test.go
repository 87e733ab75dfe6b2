package store_test

import (
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

func TestTallies(t *testing.T) {
	s, client := newRedisStore(t)
	defer s.Close()
	ctx := t.Context()
	h0 := time.Date(2026, 12, 6, 9, 10, 0, 0, time.UTC)
	sent := store.TallyKey("sent", "checkout", "twilio", "sms", "91")
	if err := s.AddTallies(ctx, h0, map[string]int64{sent: 2, store.TallyKey("verified", "checkout", "twilio", "sms", "91"): 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddTallies(ctx, h0.Add(2*time.Hour), map[string]int64{sent: 3}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddTallies(ctx, h0.Add(5*time.Hour), map[string]int64{sent: 100}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Tallies(ctx, h0.Add(-time.Hour), h0.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got[sent] != 5 || got[store.TallyKey("verified", "checkout", "twilio", "sms", "91")] != 1 || len(got) != 2 {
		t.Fatalf("tallies = %v", got)
	}
	if ttl := client.TTL(ctx, "test:TestTallies:ds:{2026120609}").Val(); ttl <= 0 || ttl > store.TallyRetention {
		t.Errorf("tally TTL %s", ttl)
	}
	kind, policy, sender, channel, country, ok := store.ParseTallyKey(store.TallyKey("sent", "a|b", "s", "", "1"))
	if !ok || kind != "sent" || policy != "a_b" || sender != "s" || channel != "" || country != "1" {
		t.Errorf("store.ParseTallyKey: %q %q %q %q %q %v", kind, policy, sender, channel, country, ok)
	}
}
