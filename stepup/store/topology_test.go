package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-stepup/caddy-stepup/internal/testredis"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
	"github.com/caddy-stepup/caddy-stepup/stepup/store/storetest"
)

// The whole contract passes on a real 3-master Redis Cluster. Cluster
// refuses any command or script that touches keys of more than one hash
// slot (CROSSSLOT), so this also proves every script stays in one slot.
func TestClusterContract(t *testing.T) {
	c := testredis.RunCluster(t, 3)
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	defer client.Close()
	// The keys of the test spread over the masters.
	storetest.Run(t, func(t *testing.T) store.Store {
		return store.NewRedis(client, "cluster:"+strings.ReplaceAll(t.Name(), "/", ":")+":", false)
	})
	storetest.RunPasskeys(t, func(t *testing.T) interface {
		store.Store
		store.PasskeyStore
	} {
		return store.NewRedis(client, "cluster:"+strings.ReplaceAll(t.Name(), "/", ":")+":", false)
	})
	ctx := context.Background()
	// The generation's run check works on the marker's master, whatever
	// the prefix's hash tag: the marker and its run record share a slot.
	for _, prefix := range []string{"cluster-gen:", "cluster-{gen}:", "{a}cluster-gen:"} {
		s := store.NewRedis(client, prefix, false)
		if g, err := s.Generation(ctx); err != nil || g == "" {
			t.Fatalf("prefix %q: Generation = %q, %v", prefix, g, err)
		}
		if err := s.RestartCheck(); err != nil {
			t.Fatalf("prefix %q: RestartCheck = %v", prefix, err)
		}
	}
	if err := store.NewRedis(client, "odd}prefix:", false).RestartCheck(); err == nil {
		t.Fatal("a prefix that splits the marker and its run record across slots was not noticed")
	}
	used := 0
	for _, addr := range c.Addrs() {
		n, err := redis.NewClient(&redis.Options{Addr: addr}).DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			used++
		}
	}
	if used < 2 {
		t.Fatalf("keys landed on %d of 3 masters; the test does not exercise the cluster", used)
	}
}

// With Sentinel, a challenge created before the master dies can be
// verified after the replica is promoted, through the same client.
func TestSentinelFailover(t *testing.T) {
	sn := testredis.RunSentinel(t)
	client := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:    sn.MasterName,
		SentinelAddrs: []string{sn.Sentinel.Addr()},
		DialTimeout:   300 * time.Millisecond,
		ReadTimeout:   300 * time.Millisecond,
		MaxRetries:    -1,
	})
	defer client.Close()
	s := store.NewRedis(client, "sentinel:", false)
	ctx := context.Background()
	// The store generation is confirmed by the master a while after
	// the replica started (uptimes are in whole seconds).
	gen, err := s.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if g, err := s.Generation(ctx); err != nil || g != gen {
		t.Fatalf("Generation = %q, %v; want %q", g, err, gen)
	}
	now := time.Now()
	c := &store.Challenge{ID: storetest.ID(), Policy: "p", Created: now, Expires: now.Add(5 * time.Minute), MaxAttempts: 3, CodeMAC: []byte("mac")}
	if err := s.Create(ctx, c, "", time.Minute); err != nil {
		t.Fatal(err)
	}
	// The replica has it before the master goes.
	if out, err := sn.Master.Raw(ctx, "WAIT", "1", "2000"); err != nil || strings.TrimSpace(out) != "1" {
		t.Fatalf("WAIT = %q, %v", out, err)
	}
	sn.Master.Stop()

	var failures int
	deadline := time.Now().Add(30 * time.Second)
	for {
		mac, _, err := s.BeginAttempt(ctx, c.ID, time.Now())
		if err == nil {
			if err := s.Consume(ctx, c.ID, mac, time.Now(), "sms"); err != nil {
				t.Fatalf("Consume after failover: %v", err)
			}
			break
		}
		failures++ // fails closed while no master is known
		if time.Now().After(deadline) {
			master, merr := redis.NewSentinelClient(&redis.Options{Addr: sn.Sentinel.Addr()}).GetMasterAddrByName(ctx, sn.MasterName).Result()
			t.Fatalf("no failover within 30s: %v (the sentinel's master: %v, %v; master was %s, replica %s)",
				err, master, merr, sn.Master.Addr(), sn.Replica.Addr())
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("the store answered errors %d times during the failover, then continued on the promoted replica", failures)
	// A failover to a replica in sync is not a restart: the generation
	// stays, so grants and challenges made before it stay good.
	if g, err := s.Generation(ctx); err != nil || g != gen {
		t.Fatalf("Generation after the failover = %q, %v; want %q", g, err, gen)
	}
	if addr, err := redis.NewSentinelClient(&redis.Options{Addr: sn.Sentinel.Addr()}).GetMasterAddrByName(ctx, sn.MasterName).Result(); err != nil ||
		addr[1] != strings.TrimPrefix(sn.Replica.Addr(), "127.0.0.1:") {
		t.Fatalf("master after failover = %v, %v; want the replica %s", addr, err, sn.Replica.Addr())
	}
}
