package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/stepup/store"
	"github.com/caddy-stepup/caddy-stepup/stepup/store/storetest"
)

func TestMemoryPumpingContract(t *testing.T) {
	storetest.RunPumping(t, func(t *testing.T) interface {
		store.Store
		store.PumpingStore
	} {
		return store.NewMemory(time.Minute)
	})
}

func TestRedisPumpingContract(t *testing.T) {
	storetest.RunPumping(t, func(t *testing.T) interface {
		store.Store
		store.PumpingStore
	} {
		s, _ := newRedisStore(t)
		return s
	})
}

// The pumping defense's keys all have a TTL: a window lives a window and
// a bucket, a block its block_for.
func TestRedisPumpingKeysHaveTTL(t *testing.T) {
	ctx := context.Background()
	s, client := newRedisStore(t)
	defer s.Close()
	r := store.PumpRule{Window: time.Hour, MinSends: 2, MinConversion: 20, BlockFor: 6 * time.Hour, Enforce: true}
	for i := 0; i < 2; i++ {
		if _, err := s.PumpSend(ctx, "44", "+44770090012", r, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PumpVerified(ctx, "44", "+44770090099", r.Window, time.Now()); err != nil {
		t.Fatal(err)
	}
	prefix := "test:" + t.Name() + ":"
	keys, err := client.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 4 { // the block, two prefix windows, the country window
		t.Fatalf("keys %v; want 4", keys)
	}
	for _, k := range keys {
		ttl := client.PTTL(ctx, k).Val()
		if ttl <= 0 || ttl > 6*time.Hour {
			t.Errorf("key %s has TTL %v", k, ttl)
		}
	}
}
