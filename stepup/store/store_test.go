package store_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-stepup/caddy-stepup/internal/testredis"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
	"github.com/caddy-stepup/caddy-stepup/stepup/store/storetest"
)

var redisServer *testredis.Server

func TestMain(m *testing.M) {
	s, err := testredis.New("")
	if err != nil {
		// Fail loudly: the Redis contract run is part of the suite.
		println("store tests need redis-server:", err.Error())
		os.Exit(1)
	}
	redisServer = s
	code := m.Run()
	s.Stop()
	os.RemoveAll(s.Dir)
	os.Exit(code)
}

func TestMemoryContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return store.NewMemory(time.Minute) })
}

func newRedisStore(t *testing.T) (*store.Redis, *redis.Client) {
	client := redis.NewClient(&redis.Options{Addr: redisServer.Addr()})
	prefix := "test:" + strings.ReplaceAll(t.Name(), "/", ":") + ":"
	return store.NewRedis(client, prefix, true), client
}

func TestRedisContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := newRedisStore(t)
		return s
	})
}

// Every key the Redis store writes has a TTL, except the generation
// marker (documented), and one pending challenge costs less than 1 KiB of
// Redis memory, with the creation context the engine stores.
func TestRedisKeysHaveTTLAndStaySmall(t *testing.T) {
	ctx := context.Background()
	s, client := newRedisStore(t)
	defer s.Close()
	now := time.Now()
	c := &store.Challenge{
		ID:            "Xq3-v9a_Hk2LmN0pQr5sTu",
		Policy:        "payment-methods",
		UserKey:       "k5e9cYbqJ2rA0xWvTz7uPg",
		SessionKey:    "Qm2nB8vC4xZ1aS6dF3gH9j",
		Phone:         "+919876543210",
		ReturnURL:     "/account/payment-methods?tab=cards",
		Created:       now,
		Expires:       now.Add(5 * time.Minute),
		MaxAttempts:   5,
		CodeMAC:       make([]byte, 32),
		Mode:          "transaction",
		PolicyVersion: "3f9a1c0b7d2e4f6a8b1c3d5e7f9a0b2c",
		Scope:         "shop.example.com/payment-methods",
		Generation:    "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
	}
	if err := s.Create(ctx, c, "pending-binding-key-0123456789", 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddFailure(ctx, "user-key", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.ReserveFailure(ctx, "user-key-2", 20, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.IssueGrant(ctx, "grant-id", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	st := &store.Challenge{ID: "stashed", Created: now, Expires: now.Add(time.Minute), MaxAttempts: 1,
		CodeMAC: []byte("m"), Stash: []byte("POST /"), StashSlot: "user-key/checkout"}
	if err := s.Create(ctx, st, "", time.Minute); err != nil {
		t.Fatal(err)
	}
	gen, err := s.Generation(ctx)
	if err != nil || gen == "" {
		t.Fatalf("Generation = %q, %v", gen, err)
	}
	prefix := "test:" + t.Name() + ":"
	keys, err := client.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 10 {
		t.Fatalf("keys = %v, want 2 challenges, a stash, a stash slot, a pending pointer, 2 failure counters, a grant record, the generation and its run record", keys)
	}
	for _, k := range keys {
		ttl, err := client.PTTL(ctx, k).Result()
		if k == prefix+"gen" || strings.HasPrefix(k, prefix+"gen:run") {
			if ttl != -1 {
				t.Errorf("the generation marker or its run record has TTL %v; it must outlive everything", ttl)
			}
			continue
		}
		if err != nil || ttl <= 0 {
			t.Errorf("key %q has TTL %v (%v)", k, ttl, err)
		}
	}
	used, err := client.MemoryUsage(ctx, prefix+"{"+c.ID+"}").Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MEMORY USAGE of one pending challenge: %d bytes", used)
	if used >= 1024 {
		t.Errorf("a pending challenge costs %d bytes of Redis memory, want < 1024", used)
	}
	if enc, _ := client.ObjectEncoding(ctx, prefix+"{"+c.ID+"}").Result(); enc != "listpack" {
		t.Errorf("a pending challenge is encoded as %q, want the compact listpack", enc)
	}
}

// With Redis down, every method returns an error (never a false success),
// and the store works again once Redis is back, without a new client.
func TestRedisOutageAndRecovery(t *testing.T) {
	srv := testredis.Run(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	s := store.NewRedis(client, "", true)
	defer s.Close()
	ctx := context.Background()
	now := time.Now()
	c := &store.Challenge{ID: "outage", Created: now, Expires: now.Add(time.Minute), MaxAttempts: 3, CodeMAC: []byte("m")}
	if err := s.Create(ctx, c, "", time.Minute); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if _, err := s.Get(ctx, c.ID); err == nil {
		t.Fatal("Get succeeded with Redis down")
	}
	if _, _, err := s.BeginAttempt(ctx, c.ID, now); err == nil {
		t.Fatal("BeginAttempt succeeded with Redis down")
	}
	if err := s.Consume(ctx, c.ID, []byte("m"), now, "sms"); err == nil {
		t.Fatal("Consume succeeded with Redis down")
	}
	if err := s.Ping(ctx); err == nil {
		t.Fatal("Ping succeeded with Redis down")
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	// The data is gone with the process (no persistence in tests), but the
	// same client works again.
	c.ID = "after-outage"
	if err := s.Create(ctx, c, "", time.Minute); err != nil {
		t.Fatalf("Create after recovery: %v", err)
	}
	if _, err := s.Get(ctx, c.ID); err != nil {
		t.Fatalf("Get after recovery: %v", err)
	}
}

// A message pointer written by an earlier version holds "ID:i", the
// delivery's index; receipts for it are still taken (the pointer lives
// as long as a code, so across an upgrade).
func TestRedisReceiptOldPointer(t *testing.T) {
	ctx := context.Background()
	s, client := newRedisStore(t)
	defer s.Close()
	now := time.Now()
	c := &store.Challenge{ID: "old-pointer-" + strconv.FormatInt(now.UnixNano(), 36), Policy: "p", UserKey: "u", SessionKey: "s",
		Phone: "+14155550100", ReturnURL: "/", Created: now, Expires: now.Add(time.Minute), MaxAttempts: 3, CodeMAC: []byte("m")}
	if err := s.Create(ctx, c, "", time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"SM1", "SM2"} {
		if _, err := s.AddDelivery(ctx, c.ID, store.Delivery{Sender: "twilio", MessageID: id, Sent: now, Code: 1}, nil, c.Expires); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := client.Keys(ctx, "test:TestRedisReceiptOldPointer:m:{6:twilio:SM1}").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("message pointer keys %v, %v", keys, err)
	}
	if v, _ := client.Get(ctx, keys[0]).Result(); v != c.ID {
		t.Fatalf("message pointer holds %q, want the challenge id", v)
	}
	if err := client.Set(ctx, keys[0], c.ID+":1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	rc, err := s.TakeReceipt(ctx, "twilio", "SM1", "delivered", now)
	if err != nil || rc.Challenge != c.ID || rc.Index != 1 || !rc.Changed {
		t.Fatalf("receipt through an old pointer = %+v, %v", rc, err)
	}
	rc, err = s.TakeReceipt(ctx, "twilio", "SM2", "failed", now)
	if err != nil || rc.Index != 2 || !rc.Changed || rc.Previous != store.StatusAccepted {
		t.Fatalf("receipt through a new pointer = %+v, %v", rc, err)
	}
	got, _ := s.Get(ctx, c.ID)
	if got.Deliveries[0].Status != "delivered" || got.Deliveries[1].Status != "failed" {
		t.Fatalf("deliveries after the receipts: %+v", got.Deliveries)
	}
}
