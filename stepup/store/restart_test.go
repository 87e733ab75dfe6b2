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

// pingUntilUp waits until the store answers again after a restart (the
// pool's connections to the old process fail once each).
func pingUntilUp(t *testing.T, s store.Store) {
	t.Helper()
	for i := 0; s.Ping(context.Background()) != nil; i++ {
		if i > 50 {
			t.Fatal("Redis does not answer after the restart")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A restart from a snapshot keeps the generation marker but loses what
// was written after the snapshot: a used grant is unused again, a
// revocation gone (round 3, R3-3). The restarted process has another run
// id and was not promoted, so the generation changes; a restart with no
// snapshot at all, too. Without a restart the generation stays.
func TestRedisGenerationChangesOnSnapshotRestart(t *testing.T) {
	t.Parallel()
	srv := testredis.Run(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	s := store.NewRedis(client, "snap:", true)
	defer s.Close()
	ctx := context.Background()
	g1, err := s.Generation(ctx)
	if err != nil || g1 == "" {
		t.Fatalf("Generation = %q, %v", g1, err)
	}
	if err := s.RestartCheck(); err != nil {
		t.Fatalf("RestartCheck = %v", err)
	}
	exp := time.Now().Add(time.Minute)
	id := storetest.ID()
	if err := s.IssueGrant(ctx, id, exp); err != nil {
		t.Fatal(err)
	}
	if out, err := srv.Raw(ctx, "SAVE"); err != nil || strings.TrimSpace(out) != "OK" {
		t.Fatalf("SAVE = %q, %v", out, err)
	}
	if err := s.UseGrant(ctx, id, exp); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, "user", time.Now(), time.Hour); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the run record's time is refreshed
	if g, err := s.Generation(ctx); err != nil || g != g1 {
		t.Fatalf("Generation without a restart = %q, %v; want %q", g, err, g1)
	}

	srv.Stop()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	pingUntilUp(t, s)
	// The snapshot is back: the grant is unused, the revocation gone...
	if err := s.UseGrant(ctx, id, exp); err != nil {
		t.Fatalf("the snapshot did not roll the grant back (%v): the test proves nothing", err)
	}
	if at, err := s.RevokedAt(ctx, "user"); err != nil || !at.IsZero() {
		t.Fatalf("the snapshot did not roll the revocation back (%v, %v)", at, err)
	}
	// ...and the generation tells it.
	g2, err := s.Generation(ctx)
	if err != nil || g2 == g1 {
		t.Fatalf("Generation after a restart from a snapshot = %q, %v; want other than %q", g2, err, g1)
	}
	if g, err := s.Generation(ctx); err != nil || g != g2 {
		t.Fatalf("Generation changed again without a restart: %q, %v; want %q", g, err, g2)
	}

	// A second restart from the same snapshot (the process that saw g2
	// never saved it): the marker is g1 again, and changes again.
	srv.Stop()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	pingUntilUp(t, s)
	if g3, err := s.Generation(ctx); err != nil || g3 == g1 || g3 == g2 {
		t.Fatalf("Generation after a second restart = %q, %v; want a new one", g3, err)
	}
}

// A replica promoted by a failover is not a restart: it has the data
// (what wait_replicas makes sure of), and earlier grants and challenges
// stay good. A replica that was not promoted, or that started after the
// marker was last confirmed, is.
func TestRedisGenerationKeptOnPromotion(t *testing.T) {
	t.Parallel()
	master, replica := testredis.RunReplicated(t)
	ctx := context.Background()
	ms := store.NewRedis(redis.NewClient(&redis.Options{Addr: master.Addr(), MaxRetries: -1}), "promo:", true)
	defer ms.Close()
	g1, err := ms.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The replica's uptime is in whole seconds: let the marker be
	// confirmed a while after it started.
	time.Sleep(1100 * time.Millisecond)
	if g, err := ms.Generation(ctx); err != nil || g != g1 {
		t.Fatalf("Generation = %q, %v; want %q", g, err, g1)
	}
	if out, err := master.Raw(ctx, "WAIT", "1", "2000"); err != nil || strings.TrimSpace(out) != "1" {
		t.Fatalf("WAIT = %q, %v", out, err)
	}
	master.Stop()
	if out, err := replica.Raw(ctx, "REPLICAOF", "NO", "ONE"); err != nil || strings.TrimSpace(out) != "OK" {
		t.Fatalf("REPLICAOF NO ONE = %q, %v", out, err)
	}
	rs := store.NewRedis(redis.NewClient(&redis.Options{Addr: replica.Addr(), MaxRetries: -1}), "promo:", true)
	defer rs.Close()
	if g, err := rs.Generation(ctx); err != nil || g != g1 {
		t.Fatalf("Generation on the promoted replica = %q, %v; want %q", g, err, g1)
	}
	// It restarts from its own snapshot (as a replica of the stopped
	// master, its command line says) and is promoted again at once: it
	// shows as promoted, but started after the last confirmation it
	// holds, so it may have lost what came after its snapshot.
	if out, err := replica.Raw(ctx, "SAVE"); err != nil || strings.TrimSpace(out) != "OK" {
		t.Fatalf("SAVE = %q, %v", out, err)
	}
	time.Sleep(1100 * time.Millisecond)
	if g, err := rs.Generation(ctx); err != nil || g != g1 {
		t.Fatalf("Generation = %q, %v; want %q", g, err, g1)
	}
	replica.Stop()
	if err := replica.Start(); err != nil {
		t.Fatal(err)
	}
	if out, err := replica.Raw(ctx, "REPLICAOF", "NO", "ONE"); err != nil || strings.TrimSpace(out) != "OK" {
		t.Fatalf("REPLICAOF NO ONE = %q, %v", out, err)
	}
	if info, _ := replica.Info(ctx, "replication"); !strings.Contains(info, "second_repl_offset:") || strings.Contains(info, "second_repl_offset:-1") {
		t.Fatalf("the restarted replica does not show as promoted: the test proves nothing\n%s", info)
	}
	pingUntilUp(t, rs)
	if g, err := rs.Generation(ctx); err != nil || g == g1 {
		t.Fatalf("Generation after the promoted replica restarted = %q, %v; want a new one", g, err)
	}
}

// An ACL user without INFO (the default -@dangerous denies it) cannot
// tell a restart: Generation falls back to the marker alone, and
// RestartCheck says why, for the engine's warning.
func TestRedisGenerationWithoutInfo(t *testing.T) {
	t.Parallel()
	srv := testredis.Run(t)
	ctx := context.Background()
	if _, err := srv.Raw(ctx, "ACL", "SETUSER", "noinfo", "on", ">pw", "~*", "+@all", "-@dangerous"); err != nil {
		t.Fatal(err)
	}
	s := store.NewRedis(redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: "noinfo", Password: "pw"}), "acl:", true)
	defer s.Close()
	g1, err := s.Generation(ctx)
	if err != nil || g1 == "" {
		t.Fatalf("Generation = %q, %v", g1, err)
	}
	if err := s.RestartCheck(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("RestartCheck = %v; want the refused INFO", err)
	}
	if g, err := s.Generation(ctx); err != nil || g != g1 {
		t.Fatalf("Generation = %q, %v; want %q", g, err, g1)
	}
}
