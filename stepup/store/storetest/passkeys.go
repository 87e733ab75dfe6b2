package storetest

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// PasskeyFactory returns an empty store that keeps passkeys, for one
// subtest. The suite closes it.
type PasskeyFactory func(t *testing.T) interface {
	store.Store
	store.PasskeyStore
}

type keeper interface {
	store.Store
	store.PasskeyStore
}

// RunPasskeys runs the contract of store.PasskeyStore against stores
// made by newStore.
func RunPasskeys(t *testing.T, newStore PasskeyFactory) {
	tests := []struct {
		name string
		fn   func(*testing.T, keeper)
	}{
		{"AddList", testPasskeyAddList},
		{"Duplicate", testPasskeyDuplicate},
		{"Limit", testPasskeyLimit},
		{"Counter", testPasskeyCounter},
		{"CounterConcurrent", testPasskeyCounterConcurrent},
		{"RenameRemove", testPasskeyRenameRemove},
		{"UsersApart", testPasskeyUsersApart},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, s)
		})
	}
}

func samplePasskey(id string, created time.Time) store.Passkey {
	return store.Passkey{
		ID:             []byte(id),
		PublicKey:      []byte("cose-key-" + id),
		UserHandle:     []byte("handle"),
		AAGUID:         make([]byte, 16),
		BackupEligible: true,
		Transports:     []string{"internal", "hybrid"},
		Created:        created.Truncate(time.Millisecond),
		Name:           "Key " + id,
	}
}

func testPasskeyAddList(t *testing.T, s keeper) {
	ctx, user := context.Background(), "u-"+ID()
	if ps, err := s.Passkeys(ctx, user); err != nil || len(ps) != 0 {
		t.Fatalf("no passkeys: got %v, %v", ps, err)
	}
	now := time.Now()
	second, first := samplePasskey("b\x00\xff", now.Add(time.Second)), samplePasskey("a", now)
	for _, p := range []store.Passkey{second, first} {
		if err := s.AddPasskey(ctx, user, p, 10); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := s.Passkeys(ctx, user)
	if err != nil || len(ps) != 2 {
		t.Fatalf("got %v, %v", ps, err)
	}
	got := ps[0]
	if !bytes.Equal(got.ID, first.ID) || !bytes.Equal(got.PublicKey, first.PublicKey) || !bytes.Equal(got.UserHandle, first.UserHandle) ||
		!got.BackupEligible || len(got.Transports) != 2 || got.Name != first.Name || !got.Created.Equal(first.Created) ||
		got.SignCount != 0 || !got.LastUsed.IsZero() {
		t.Errorf("first passkey read back as %+v", got)
	}
	if !bytes.Equal(ps[1].ID, second.ID) {
		t.Errorf("order: %q second, want %q", ps[1].ID, second.ID)
	}
}

func testPasskeyDuplicate(t *testing.T, s keeper) {
	ctx, user := context.Background(), "u-"+ID()
	p := samplePasskey("dup", time.Now())
	if err := s.AddPasskey(ctx, user, p, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.AddPasskey(ctx, user, p, 10); !errors.Is(err, store.ErrPasskeyExists) {
		t.Fatalf("second add: %v, want ErrPasskeyExists", err)
	}
}

func testPasskeyLimit(t *testing.T, s keeper) {
	ctx, user := context.Background(), "u-"+ID()
	for _, id := range []string{"1", "2"} {
		if err := s.AddPasskey(ctx, user, samplePasskey(id, time.Now()), 2); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddPasskey(ctx, user, samplePasskey("3", time.Now()), 2); !errors.Is(err, store.ErrPasskeyLimit) {
		t.Fatalf("third: %v, want ErrPasskeyLimit", err)
	}
	if err := s.AddPasskey(ctx, user, samplePasskey("x", time.Now()), 2); !errors.Is(err, store.ErrPasskeyLimit) {
		t.Fatalf("fourth: %v", err)
	}
}

func passkeyOf(t *testing.T, s keeper, user, id string) store.Passkey {
	t.Helper()
	ps, err := s.Passkeys(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if string(p.ID) == id {
			return p
		}
	}
	t.Fatalf("passkey %q missing", id)
	return store.Passkey{}
}

func testPasskeyCounter(t *testing.T, s keeper) {
	ctx, user := context.Background(), "u-"+ID()
	if err := s.UsePasskey(ctx, user, []byte("none"), 1, time.Now()); !errors.Is(err, store.ErrPasskeyNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	if err := s.AddPasskey(ctx, user, samplePasskey("c", time.Now()), 10); err != nil {
		t.Fatal(err)
	}
	// A counter at enrolment is kept.
	withCount := samplePasskey("w", time.Now())
	withCount.SignCount = 7
	if err := s.AddPasskey(ctx, user, withCount, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.UsePasskey(ctx, user, []byte("w"), 7, time.Now()); !errors.Is(err, store.ErrSignCount) {
		t.Fatalf("counter 7 after enrolment at 7: %v", err)
	}
	// An authenticator without a counter: 0 after 0 is fine.
	at := time.Now().Truncate(time.Millisecond)
	if err := s.UsePasskey(ctx, user, []byte("c"), 0, at); err != nil {
		t.Fatalf("0 after 0: %v", err)
	}
	if p := passkeyOf(t, s, user, "c"); !p.LastUsed.Equal(at) {
		t.Errorf("last used %v, want %v", p.LastUsed, at)
	}
	if err := s.UsePasskey(ctx, user, []byte("c"), 5, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, n := range []uint32{5, 4, 0} {
		if err := s.UsePasskey(ctx, user, []byte("c"), n, time.Now()); !errors.Is(err, store.ErrSignCount) {
			t.Fatalf("counter %d after 5: %v, want ErrSignCount", n, err)
		}
	}
	if p := passkeyOf(t, s, user, "c"); p.SignCount != 5 {
		t.Errorf("counter %d, want 5 (refusals change nothing)", p.SignCount)
	}
	if err := s.UsePasskey(ctx, user, []byte("c"), 6, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func testPasskeyCounterConcurrent(t *testing.T, s keeper) {
	ctx, user := context.Background(), "u-"+ID()
	if err := s.AddPasskey(ctx, user, samplePasskey("cc", time.Now()), 10); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.UsePasskey(ctx, user, []byte("cc"), 7, time.Now()); err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			} else if !errors.Is(err, store.ErrSignCount) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("%d uses of one counter value succeeded, want 1", ok)
	}
}

func testPasskeyRenameRemove(t *testing.T, s keeper) {
	ctx, user := context.Background(), "u-"+ID()
	if err := s.AddPasskey(ctx, user, samplePasskey("r", time.Now()), 10); err != nil {
		t.Fatal(err)
	}
	if err := s.RenamePasskey(ctx, user, []byte("r"), "Work laptop"); err != nil {
		t.Fatal(err)
	}
	if p := passkeyOf(t, s, user, "r"); p.Name != "Work laptop" {
		t.Errorf("name %q", p.Name)
	}
	if err := s.RenamePasskey(ctx, user, []byte("r"), string(make([]byte, store.MaxPasskeyName+1))); err == nil {
		t.Error("a too long name was taken")
	}
	if err := s.RenamePasskey(ctx, user, []byte("nope"), "x"); !errors.Is(err, store.ErrPasskeyNotFound) {
		t.Errorf("rename unknown: %v", err)
	}
	if err := s.RemovePasskey(ctx, user, []byte("r")); err != nil {
		t.Fatal(err)
	}
	if err := s.RemovePasskey(ctx, user, []byte("r")); !errors.Is(err, store.ErrPasskeyNotFound) {
		t.Errorf("second remove: %v", err)
	}
	if err := s.UsePasskey(ctx, user, []byte("r"), 9, time.Now()); !errors.Is(err, store.ErrPasskeyNotFound) {
		t.Errorf("use after remove: %v", err)
	}
	if ps, _ := s.Passkeys(ctx, user); len(ps) != 0 {
		t.Errorf("left: %v", ps)
	}
	// Enrolled again after removal: a fresh record.
	if err := s.AddPasskey(ctx, user, samplePasskey("r", time.Now()), 10); err != nil {
		t.Fatal(err)
	}
}

func testPasskeyUsersApart(t *testing.T, s keeper) {
	ctx, a, b := context.Background(), "u-"+ID(), "u-"+ID()
	if err := s.AddPasskey(ctx, a, samplePasskey("same", time.Now()), 10); err != nil {
		t.Fatal(err)
	}
	if ps, _ := s.Passkeys(ctx, b); len(ps) != 0 {
		t.Fatalf("b sees a's passkeys: %v", ps)
	}
	if err := s.UsePasskey(ctx, b, []byte("same"), 1, time.Now()); !errors.Is(err, store.ErrPasskeyNotFound) {
		t.Errorf("b used a's passkey: %v", err)
	}
	if err := s.RemovePasskey(ctx, b, []byte("same")); !errors.Is(err, store.ErrPasskeyNotFound) {
		t.Errorf("b removed a's passkey: %v", err)
	}
}
