package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/stepup/store"
	"github.com/caddy-stepup/caddy-stepup/stepup/store/storetest"
)

func TestMemoryPasskeyContract(t *testing.T) {
	storetest.RunPasskeys(t, func(t *testing.T) interface {
		store.Store
		store.PasskeyStore
	} {
		return store.NewMemory(time.Minute)
	})
}

func TestRedisPasskeyContract(t *testing.T) {
	storetest.RunPasskeys(t, func(t *testing.T) interface {
		store.Store
		store.PasskeyStore
	} {
		s, _ := newRedisStore(t)
		return s
	})
}

// Enrolled passkeys are kept without a TTL, by design (DESIGN: State).
func TestRedisPasskeysKeepNoTTL(t *testing.T) {
	ctx := context.Background()
	s, client := newRedisStore(t)
	defer s.Close()
	if err := s.AddPasskey(ctx, "user", store.Passkey{ID: []byte("id"), Created: time.Now()}, 5); err != nil {
		t.Fatal(err)
	}
	keys, err := client.Keys(ctx, "test:"+t.Name()+":pk:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %v, %v", keys, err)
	}
	if ttl := client.PTTL(ctx, keys[0]).Val(); ttl != -1 {
		t.Errorf("passkey key TTL %v, want none", ttl)
	}
}
