package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// PumpingFactory returns an empty store that keeps the pumping
// defense's state, for one subtest. The suite closes it.
type PumpingFactory func(t *testing.T) interface {
	store.Store
	store.PumpingStore
}

// pumper is a store with the pumping defense's state.
type pumper interface {
	store.Store
	store.PumpingStore
}

// RunPumping runs the contract of store.PumpingStore against stores made
// by newStore.
func RunPumping(t *testing.T, newStore PumpingFactory) {
	tests := []struct {
		name string
		fn   func(*testing.T, pumper)
	}{
		{"BlocksWhenConversionCollapses", testPumpBlocks},
		{"ConvertingPrefixNeverBlocked", testPumpConverting},
		{"MonitorFlagsOnly", testPumpMonitor},
		{"MonitorFlagThenEnforce", testPumpMonitorThenEnforce},
		{"WindowSlides", testPumpWindowSlides},
		{"BlockExpires", testPumpBlockExpires},
		{"Unblock", testPumpUnblock},
		{"CountryCounts", testPumpCountry},
		{"Concurrent", testPumpConcurrent},
		{"BadRule", testPumpBadRule},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, s)
		})
	}
}

var enforceRule = store.PumpRule{Window: time.Hour, MinSends: 10, MinConversion: 20, BlockFor: time.Hour, Enforce: true}

// pumpPrefix returns a fresh prefix of country 44, so that subtests on a
// shared Redis do not meet.
func pumpPrefix() string { return "+447" + ID()[:7] }

func mustPump(t *testing.T, s pumper, cc, prefix string, r store.PumpRule, now time.Time) store.PumpResult {
	t.Helper()
	res, err := s.PumpSend(context.Background(), cc, prefix, r, now)
	if err != nil {
		t.Fatalf("PumpSend: %v", err)
	}
	return res
}

func testPumpBlocks(t *testing.T, s pumper) {
	p, now := pumpPrefix(), time.Now()
	for i := 1; i < enforceRule.MinSends; i++ {
		if res := mustPump(t, s, "44", p, enforceRule, now); res.Blocked || res.NewBlock || res.Sends != i || res.Verified != 0 {
			t.Fatalf("send %d: %+v; want counted, not blocked", i, res)
		}
	}
	// The 10th send reaches min_sends with nothing verified: it goes,
	// and blocks the prefix.
	res := mustPump(t, s, "44", p, enforceRule, now)
	if res.Blocked || !res.NewBlock || res.Sends != enforceRule.MinSends {
		t.Fatalf("send %d: %+v; want the block set", enforceRule.MinSends, res)
	}
	res = mustPump(t, s, "44", p, enforceRule, now)
	if !res.Blocked || res.NewBlock || res.Retry < 59*time.Minute || res.Retry > time.Hour {
		t.Fatalf("send after the block: %+v; want blocked for about 1h", res)
	}
	// A blocked send is not counted; other prefixes are not blocked.
	if res.Sends != 0 {
		t.Fatalf("blocked send counted: %+v", res)
	}
	if res := mustPump(t, s, "44", pumpPrefix(), enforceRule, now); res.Blocked || res.Sends != 1 {
		t.Fatalf("another prefix: %+v", res)
	}
	pb, err := s.PrefixBlocks(context.Background(), 1000)
	if err != nil || pb.Blocked < 1 {
		t.Fatalf("PrefixBlocks = %+v, %v; want at least 1 blocked", pb, err)
	}
}

func testPumpConverting(t *testing.T, s pumper) {
	ctx := context.Background()
	p, now := pumpPrefix(), time.Now()
	// One in four verified (25% >= 20%, the verification coming at once
	// after the send), for hundreds of sends.
	for i := 1; i <= 400; i++ {
		res := mustPump(t, s, "44", p, enforceRule, now)
		if res.Blocked || res.NewBlock {
			t.Fatalf("send %d of a converting prefix blocked: %+v", i, res)
		}
		if i%4 == 1 {
			if err := s.PumpVerified(ctx, "44", p, enforceRule.Window, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	res := mustPump(t, s, "44", p, enforceRule, now)
	if res.Sends != 401 || res.Verified != 100 {
		t.Fatalf("counts %+v; want 401 sends, 100 verified", res)
	}
}

func testPumpMonitor(t *testing.T, s pumper) {
	r := enforceRule
	r.Enforce = false
	p, now := pumpPrefix(), time.Now()
	flags := 0
	for i := 1; i <= 300; i++ {
		res := mustPump(t, s, "44", p, r, now)
		if res.Blocked {
			t.Fatalf("monitor blocked send %d", i)
		}
		if res.NewBlock {
			flags++
		}
		if res.Sends != i {
			t.Fatalf("send %d counted as %d", i, res.Sends)
		}
	}
	if flags != 1 {
		t.Fatalf("flagged %d times; want once per block_for", flags)
	}
	pb, err := s.PrefixBlocks(context.Background(), 1000)
	if err != nil || pb.Flagged < 1 {
		t.Fatalf("PrefixBlocks = %+v, %v; want a flagged prefix", pb, err)
	}
}

func testPumpMonitorThenEnforce(t *testing.T, s pumper) {
	r := enforceRule
	r.Enforce = false
	p, now := pumpPrefix(), time.Now()
	for i := 0; i < r.MinSends; i++ {
		mustPump(t, s, "44", p, r, now)
	}
	// Switched to enforce: the flagged prefix, still not converting, is
	// blocked by its next send, and refused after.
	if res := mustPump(t, s, "44", p, enforceRule, now); res.Blocked || !res.NewBlock {
		t.Fatalf("first enforced send: %+v; want the block set", res)
	}
	if res := mustPump(t, s, "44", p, enforceRule, now); !res.Blocked {
		t.Fatalf("second enforced send: %+v; want blocked", res)
	}
	// Back to monitor: an enforced block does not refuse.
	if res := mustPump(t, s, "44", p, r, now); res.Blocked || res.NewBlock {
		t.Fatalf("monitor over an enforced block: %+v", res)
	}
}

func testPumpWindowSlides(t *testing.T, s pumper) {
	p, now := pumpPrefix(), time.Now()
	for i := 0; i < enforceRule.MinSends-1; i++ {
		mustPump(t, s, "44", p, enforceRule, now)
	}
	// A window later, the old sends are gone: one more send is one.
	later := now.Add(enforceRule.Window + enforceRule.Window/store.PumpBuckets)
	res := mustPump(t, s, "44", p, enforceRule, later)
	if res.Blocked || res.NewBlock || res.Sends != 1 {
		t.Fatalf("after the window: %+v; want 1 send", res)
	}
	// Within the window they still count.
	p2 := pumpPrefix()
	for i := 0; i < enforceRule.MinSends-1; i++ {
		mustPump(t, s, "44", p2, enforceRule, now)
	}
	res = mustPump(t, s, "44", p2, enforceRule, now.Add(enforceRule.Window/2))
	if !res.NewBlock || res.Sends != enforceRule.MinSends {
		t.Fatalf("half a window later: %+v; want %d sends and the block", res, enforceRule.MinSends)
	}
}

func testPumpBlockExpires(t *testing.T, s pumper) {
	r := enforceRule
	r.BlockFor = 300 * time.Millisecond
	p := pumpPrefix()
	for i := 0; i < r.MinSends; i++ {
		mustPump(t, s, "44", p, r, time.Now())
	}
	if res := mustPump(t, s, "44", p, r, time.Now()); !res.Blocked {
		t.Fatalf("not blocked: %+v", res)
	}
	time.Sleep(400 * time.Millisecond)
	// The block is over; the prefix's counts are not, so it is judged
	// again at once: still not converting, blocked again by this send.
	if res := mustPump(t, s, "44", p, r, time.Now()); res.Blocked || !res.NewBlock {
		t.Fatalf("after the block: %+v; want a send that blocks again", res)
	}
}

func testPumpUnblock(t *testing.T, s pumper) {
	ctx := context.Background()
	p, now := pumpPrefix(), time.Now()
	if ok, err := s.UnblockPrefix(ctx, "44", p); ok || err != nil {
		t.Fatalf("unblocking a prefix never blocked = %v, %v; want false", ok, err)
	}
	for i := 0; i <= enforceRule.MinSends; i++ {
		mustPump(t, s, "44", p, enforceRule, now)
	}
	if ok, err := s.UnblockPrefix(ctx, "44", p); !ok || err != nil {
		t.Fatalf("UnblockPrefix = %v, %v; want true", ok, err)
	}
	// Unblocked, with its counts forgotten: the next send is the first.
	if res := mustPump(t, s, "44", p, enforceRule, now); res.Blocked || res.NewBlock || res.Sends != 1 {
		t.Fatalf("after unblock: %+v; want 1 send", res)
	}
	if ok, _ := s.UnblockPrefix(ctx, "44", p); ok {
		t.Fatal("unblocking twice reported a block")
	}
}

func testPumpCountry(t *testing.T, s pumper) {
	ctx := context.Background()
	now := time.Now()
	mustPump(t, s, "44", "+441000000", enforceRule, now)
	mustPump(t, s, "44", "+442000000", enforceRule, now)
	if err := s.PumpVerified(ctx, "44", "+442000000", enforceRule.Window, now); err != nil {
		t.Fatal(err)
	}
	mustPump(t, s, "91", "+919000000", enforceRule, now)
	res := mustPump(t, s, "44", "+443000000", enforceRule, now)
	if res.Sends != 1 || res.Verified != 0 || res.CountrySends != 3 || res.CountryVerified != 1 {
		t.Fatalf("counts %+v; want the prefix's 1 send, and 3 sends and 1 verified for +44", res)
	}
}

func testPumpConcurrent(t *testing.T, s pumper) {
	p, now := pumpPrefix(), time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	newBlocks, passed := 0, 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := s.PumpSend(context.Background(), "44", p, enforceRule, now)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if res.NewBlock {
				newBlocks++
			}
			if !res.Blocked {
				passed++
			}
		}()
	}
	wg.Wait()
	// Exactly min_sends sends go, the last of which sets the block.
	if newBlocks != 1 || passed != enforceRule.MinSends {
		t.Fatalf("%d blocks set, %d sends passed; want 1 and %d", newBlocks, passed, enforceRule.MinSends)
	}
}

func testPumpBadRule(t *testing.T, s pumper) {
	for _, r := range []store.PumpRule{
		{Window: time.Hour, MinSends: 0, MinConversion: 20, BlockFor: time.Hour},
		{Window: time.Hour, MinSends: 10, MinConversion: 101, BlockFor: time.Hour},
		{Window: 0, MinSends: 10, MinConversion: 20, BlockFor: time.Hour},
		{Window: time.Hour, MinSends: 10, MinConversion: 20},
	} {
		if _, err := s.PumpSend(context.Background(), "44", pumpPrefix(), r, time.Now()); err == nil {
			t.Errorf("rule %+v accepted", r)
		}
	}
}
