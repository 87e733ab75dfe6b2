package store_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-stepup/caddy-stepup/internal/testredis"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
	"github.com/caddy-stepup/caddy-stepup/stepup/store/storetest"
)

// The generation marker has no TTL, stays put while Redis keeps its data
// and changes when Redis loses it (FLUSHALL, a restart without
// persistence).
func TestRedisGenerationChangesOnDataLoss(t *testing.T) {
	srv := testredis.Run(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	s := store.NewRedis(client, "gen:", true)
	defer s.Close()
	ctx := context.Background()
	g1, err := s.Generation(ctx)
	if err != nil || g1 == "" {
		t.Fatalf("Generation = %q, %v", g1, err)
	}
	if g, _ := s.Generation(ctx); g != g1 {
		t.Fatalf("Generation changed without a data loss: %q then %q", g1, g)
	}
	if ttl, err := client.PTTL(ctx, "gen:gen").Result(); err != nil || ttl != -1 {
		t.Fatalf("the generation marker has TTL %v (%v); it must have none", ttl, err)
	}
	if err := client.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	g2, err := s.Generation(ctx)
	if err != nil || g2 == g1 {
		t.Fatalf("Generation after FLUSHALL = %q, %v; want other than %q", g2, err, g1)
	}
	srv.Stop()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	g3, err := s.Generation(ctx)
	if err != nil || g3 == g2 || g3 == g1 {
		t.Fatalf("Generation after a restart without persistence = %q, %v; want a new one", g3, err)
	}
}

// A used grant is not usable again after Redis lost its data: without
// its issuance record it is unknown, never unused. A used-marker of the
// former design counts as used.
func TestRedisGrantFailsClosedAfterDataLoss(t *testing.T) {
	srv := testredis.Run(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	s := store.NewRedis(client, "", true)
	defer s.Close()
	ctx := context.Background()
	exp := time.Now().Add(time.Minute)
	used, unused := storetest.ID(), storetest.ID()
	for _, id := range []string{used, unused} {
		if err := s.IssueGrant(ctx, id, exp); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.UseGrant(ctx, used, exp); err != nil {
		t.Fatal(err)
	}
	if err := client.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{used, unused} {
		if err := s.UseGrant(ctx, id, exp); !errors.Is(err, store.ErrGrantUnknown) {
			t.Fatalf("UseGrant after FLUSHALL = %v, want ErrGrantUnknown", err)
		}
	}
	legacy := storetest.ID()
	client.Set(ctx, "stepup:g:{"+legacy+"}", 1, time.Minute)
	if err := s.UseGrant(ctx, legacy, exp); !errors.Is(err, store.ErrGrantUsed) {
		t.Fatalf("UseGrant of a former used-marker = %v, want ErrGrantUsed", err)
	}
}

// keysMemory sums MEMORY USAGE over every key (INFO's used_memory moves
// with client buffers by more than a stash).
func keysMemory(t *testing.T, client *redis.Client) int64 {
	t.Helper()
	ctx := context.Background()
	var total int64
	iter := client.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		n, err := client.MemoryUsage(ctx, iter.Val(), 0).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		total += n
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}

// One user starting 12 challenges with 1 MiB stashes for one policy keeps
// one stash in Redis, not 12.
func TestRedisStashReplacementFreesMemory(t *testing.T) {
	srv := testredis.Run(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	s := store.NewRedis(client, "", true)
	defer s.Close()
	ctx := context.Background()
	now := time.Now()
	create := func(slot string) {
		c := &store.Challenge{ID: storetest.ID(), Policy: "p", Created: now, Expires: now.Add(5 * time.Minute),
			MaxAttempts: 5, CodeMAC: []byte("mac"), Stash: make([]byte, 1<<20), StashSlot: slot}
		c.Stash[0] = 1
		if err := s.Create(ctx, c, "pending-"+slot, 10*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	create("user-1/checkout")
	base := keysMemory(t, client)
	for i := 0; i < 12; i++ {
		create("user-1/checkout")
	}
	grown := keysMemory(t, client) - base
	t.Logf("12 replacements of a 1 MiB stash: the keys' memory grew by %d bytes", grown)
	if grown > 64<<10 {
		t.Fatalf("the keys' memory grew by %d bytes over 12 replacements; the replaced stashes stayed", grown)
	}
	// Without a slot (or in another) each stash stays until it expires.
	create("user-2/checkout")
	if grown := keysMemory(t, client) - base; grown < 1<<20 {
		t.Fatalf("a stash in another slot took %d bytes; the measure is wrong", grown)
	}
}

// newWaitStore returns a store on addr that waits for replicas.
func newWaitStore(t *testing.T, addr string, replicas int, timeout time.Duration) *store.Redis {
	t.Helper()
	s, err := store.NewRedisWith(redis.NewClient(&redis.Options{Addr: addr}),
		store.RedisOptions{Prefix: "w:", Owned: true, WaitReplicas: replicas, WaitTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// durableOps runs every operation that waits for replicas once, each on
// fresh records, and returns their errors by name.
func durableOps(t *testing.T, s store.Store) map[string]error {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	c := &store.Challenge{ID: storetest.ID(), Policy: "p", Created: now, Expires: now.Add(5 * time.Minute),
		MaxAttempts: 5, CodeMAC: []byte("mac"), Stash: []byte("POST /pay")}
	if err := s.Create(ctx, c, "", time.Minute); err != nil {
		t.Fatal(err)
	}
	grant := storetest.ID()
	if err := s.IssueGrant(ctx, grant, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	errs := map[string]error{}
	errs["Consume"] = s.Consume(ctx, c.ID, c.CodeMAC, now, "sms")
	if errs["Consume"] != nil {
		// Used on the master even so: the stash can be taken.
		if got, err := s.Get(ctx, c.ID); err != nil || got.Used.IsZero() {
			t.Fatalf("Consume failed (%v) and the challenge is not used: %v", errs["Consume"], err)
		}
	}
	_, errs["TakeStash"] = s.TakeStash(ctx, c.ID)
	errs["UseGrant"] = s.UseGrant(ctx, grant, now.Add(time.Minute))
	_, _, ok, err := s.ReserveFailure(ctx, "user-"+c.ID, 5, time.Hour)
	if err == nil && !ok {
		err = errors.New("reservation refused")
	}
	errs["ReserveFailure"] = err
	_, errs["AddFailure"] = s.AddFailure(ctx, "user-"+c.ID, time.Hour)
	errs["Revoke"] = s.Revoke(ctx, "user-"+c.ID, now, time.Hour)
	return errs
}

// With a replica that acknowledges, every single-use consumption and
// spent failure succeeds and is on the replica when the call returns.
// With the replica hung (it keeps its connection but acknowledges
// nothing), each fails with ErrNotDurable: the WAIT runs on the very
// connection that wrote (a WAIT on another connection, which wrote
// nothing, would count the hung replica and pass).
func TestRedisWaitReplicas(t *testing.T) {
	master, replica := testredis.RunReplicated(t)
	// A generous wait while the replica acknowledges (a loaded test
	// machine can take longer than a real network), a short one once it
	// hangs.
	s := newWaitStore(t, master.Addr(), 1, 2*time.Second)
	ctx := context.Background()

	for op, err := range durableOps(t, s) {
		if err != nil {
			t.Errorf("%s with an acknowledging replica: %v", op, err)
		}
	}
	// On the replica already: a consumed challenge, a used grant.
	rc := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	defer rc.Close()
	now := time.Now()
	c := &store.Challenge{ID: storetest.ID(), Created: now, Expires: now.Add(time.Minute), MaxAttempts: 3, CodeMAC: []byte("m")}
	if err := s.Create(ctx, c, "", time.Minute); err != nil {
		t.Fatal(err)
	}
	grant := storetest.ID()
	_ = s.IssueGrant(ctx, grant, now.Add(time.Minute))
	if err := s.Consume(ctx, c.ID, c.CodeMAC, now, "sms"); err != nil {
		t.Fatal(err)
	}
	if err := s.UseGrant(ctx, grant, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if u, err := rc.HGet(ctx, "w:{"+c.ID+"}", "u").Result(); err != nil || u == "0" {
		t.Fatalf("the replica has the challenge as used=%q (%v) right after Consume", u, err)
	}
	if v, err := rc.Get(ctx, "w:g:{"+grant+"}").Result(); err != nil || v != "u" {
		t.Fatalf("the replica has the grant as %q (%v) right after UseGrant", v, err)
	}

	if err := replica.Pause(); err != nil {
		t.Fatal(err)
	}
	s = newWaitStore(t, master.Addr(), 1, 300*time.Millisecond)
	start := time.Now()
	for op, err := range durableOps(t, s) {
		if !errors.Is(err, store.ErrNotDurable) {
			t.Errorf("%s with a hung replica = %v, want ErrNotDurable", op, err)
		}
	}
	// A refusal wrote nothing and says so, not ErrNotDurable.
	if err := s.Consume(ctx, c.ID, c.CodeMAC, now, "sms"); !errors.Is(err, store.ErrUsed) {
		t.Errorf("Consume of a used challenge with a hung replica = %v, want ErrUsed", err)
	}
	t.Logf("6 operations against a hung replica took %v", time.Since(start).Round(time.Millisecond))
	if err := replica.Resume(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		errs := durableOps(t, s)
		if errs["Consume"] == nil && errs["UseGrant"] == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still not durable 10s after the replica resumed: %v", errs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A master without replicas cannot make anything durable.
func TestRedisWaitWithoutReplica(t *testing.T) {
	srv := testredis.Run(t)
	s := newWaitStore(t, srv.Addr(), 1, 50*time.Millisecond)
	for op, err := range durableOps(t, s) {
		if !errors.Is(err, store.ErrNotDurable) {
			t.Errorf("%s without a replica = %v, want ErrNotDurable", op, err)
		}
	}
	// The contract without durability still holds beside it.
	plain := store.NewRedis(redis.NewClient(&redis.Options{Addr: srv.Addr()}), "plain:", true)
	defer plain.Close()
	for op, err := range durableOps(t, plain) {
		if err != nil {
			t.Errorf("%s without WaitReplicas: %v", op, err)
		}
	}
}

func TestRedisWaitOptions(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ReadTimeout: time.Second})
	defer c.Close()
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}})
	defer ring.Close()
	for name, tc := range map[string]struct {
		client redis.UniversalClient
		o      store.RedisOptions
	}{
		"negative":          {c, store.RedisOptions{WaitReplicas: -1}},
		"no timeout":        {c, store.RedisOptions{WaitReplicas: 1}},
		"sub-ms timeout":    {c, store.RedisOptions{WaitReplicas: 1, WaitTimeout: time.Microsecond}},
		"over read timeout": {c, store.RedisOptions{WaitReplicas: 1, WaitTimeout: time.Second}},
		"ring":              {ring, store.RedisOptions{WaitReplicas: 1, WaitTimeout: time.Millisecond}},
	} {
		if _, err := store.NewRedisWith(tc.client, tc.o); err == nil {
			t.Errorf("%s: NewRedisWith accepted %+v", name, tc.o)
		}
	}
	if _, err := store.NewRedisWith(c, store.RedisOptions{WaitReplicas: 1, WaitTimeout: 500 * time.Millisecond}); err != nil {
		t.Errorf("valid options refused: %v", err)
	}
	if _, err := store.NewRedisWith(ring, store.RedisOptions{}); err != nil {
		t.Errorf("a ring without waiting refused: %v", err)
	}
}

// The whole contract passes with every single-use write waited for.
func TestRedisContractWaitReplicas(t *testing.T) {
	master, _ := testredis.RunReplicated(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.NewRedisWith(redis.NewClient(&redis.Options{Addr: master.Addr()}), store.RedisOptions{
			Prefix: "wc:" + strings.ReplaceAll(t.Name(), "/", ":") + ":", Owned: true,
			WaitReplicas: 1, WaitTimeout: time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// In a Cluster with a replica per master, the contract passes with
// replica waits, and a wait runs on the master of the key it covers: with
// one replica hung, writes to its master's slots fail with ErrNotDurable
// and writes elsewhere succeed.
func TestClusterWaitReplicas(t *testing.T) {
	cl := testredis.RunClusterReplicas(t, 3, 1)
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
	defer client.Close()
	newStore := func(prefix string) *store.Redis {
		s, err := store.NewRedisWith(client, store.RedisOptions{Prefix: prefix, WaitReplicas: 1, WaitTimeout: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		return newStore("cw:" + strings.ReplaceAll(t.Name(), "/", ":") + ":")
	})

	ctx := context.Background()
	s := newStore("cw:")
	// Pick a master with its replica, and grants on it and elsewhere.
	var port int
	var hung *testredis.Server
	for p, rs := range cl.ReplicasOf {
		port, hung = p, rs[0]
		break
	}
	var here, elsewhere string
	for here == "" || elsewhere == "" {
		id := storetest.ID()
		m, err := client.MasterForKey(ctx, "cw:g:{"+id+"}")
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(m.Options().Addr, ":"+strconv.Itoa(port)) {
			here = id
		} else {
			elsewhere = id
		}
	}
	exp := time.Now().Add(time.Minute)
	for _, id := range []string{here, elsewhere} {
		if err := s.IssueGrant(ctx, id, exp); err != nil {
			t.Fatal(err)
		}
	}
	if err := hung.Pause(); err != nil {
		t.Fatal(err)
	}
	errHere, errElsewhere := s.UseGrant(ctx, here, exp), s.UseGrant(ctx, elsewhere, exp)
	if err := hung.Resume(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(errHere, store.ErrNotDurable) {
		t.Errorf("UseGrant on the master of the hung replica = %v, want ErrNotDurable", errHere)
	}
	if errElsewhere != nil {
		t.Errorf("UseGrant on another master = %v", errElsewhere)
	}
}
