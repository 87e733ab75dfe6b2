// Package storetest is the contract every store.Store must pass. The
// memory and Redis stores run it in their tests; a third-party store can
// run it too.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// Factory returns an empty store for one subtest. The suite closes it.
type Factory func(t *testing.T) store.Store

// Run runs the whole contract against stores made by newStore.
func Run(t *testing.T, newStore Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"CreateGet", testCreateGet},
		{"CreateTwice", testCreateTwice},
		{"CreateInvalid", testCreateInvalid},
		{"NotFound", testNotFound},
		{"Pending", testPending},
		{"AttemptsExhaust", testAttemptsExhaust},
		{"Expired", testExpired},
		{"ConsumeOnce", testConsumeOnce},
		{"ConsumeRefund", testConsumeRefund},
		{"ReserveAndBegin", testReserveAndBegin},
		{"ConsumeAfterResend", testConsumeAfterResend},
		{"ConcurrentConsume", testConcurrentConsume},
		{"ConcurrentAttempts", testConcurrentAttempts},
		{"ResendCooldownAndLimit", testResend},
		{"ResendKeepsAttempts", testResendKeepsAttempts},
		{"RecordSend", testRecordSend},
		{"Failures", testFailures},
		{"FailureWindow", testFailureWindow},
		{"ReadsWithFailures", testReadsWithFailures},
		{"StashTakeOnce", testStashTakeOnce},
		{"StashConcurrentTake", testStashConcurrentTake},
		{"NoStash", testNoStash},
		{"UseGrant", testUseGrant},
		{"GrantRecord", testGrantRecord},
		{"ReserveFailure", testReserveFailure},
		{"ReserveFailureAcrossChallenges", testReserveAcrossChallenges},
		{"ReserveRefundConcurrent", testReserveRefundConcurrent},
		{"Generation", testGeneration},
		{"StashSlot", testStashSlot},
		{"StashSlotConcurrent", testStashSlotConcurrent},
		{"RateLimit", testRateLimit},
		{"RateLimitConcurrent", testRateLimitConcurrent},
		{"Revoke", testRevoke},
		{"Ping", testPing},
		{"Deliveries", testDeliveries},
		{"ReceiptsAnyOrder", testReceiptsAnyOrder},
		{"ReceiptsConcurrent", testReceiptsConcurrent},
		{"ClaimFailover", testClaimFailover},
		{"FailoverQueue", testFailoverQueue},
		{"CreateOnExpiryQueue", testCreateOnExpiryQueue},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, s)
		})
	}
}

// ID returns a fresh random challenge id.
func ID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var t0 = time.UnixMilli(time.Now().UnixMilli())

func newChallenge() *store.Challenge {
	return &store.Challenge{
		ID:          ID(),
		Policy:      "checkout",
		UserKey:     "user-key",
		SessionKey:  "session-key",
		Phone:       "+14155550100",
		ReturnURL:   "/checkout?step=2",
		Description: "Pay 10 EUR to Shop",
		TxHash:      []byte{0, 1, 2, 0xff},
		Created:     t0,
		Expires:     t0.Add(5 * time.Minute),
		MaxAttempts: 3,
		CodeMAC:     []byte("mac-one\x00\xff"),
	}
}

func mustCreate(t *testing.T, s store.Store, c *store.Challenge) {
	t.Helper()
	if err := s.Create(context.Background(), c, "", 10*time.Minute); err != nil {
		t.Fatalf("Create: %v", err)
	}
}

func testCreateGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newChallenge()
	mustCreate(t, s, c)
	got, err := s.Get(ctx, c.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	want := *c
	want.Sends = 1
	want.LastSend = c.Created
	if got.ID != want.ID || got.Policy != want.Policy || got.UserKey != want.UserKey ||
		got.SessionKey != want.SessionKey || got.Phone != want.Phone || got.ReturnURL != want.ReturnURL ||
		got.Description != want.Description || !bytes.Equal(got.TxHash, want.TxHash) ||
		!got.Created.Equal(want.Created) || !got.Expires.Equal(want.Expires) ||
		got.MaxAttempts != want.MaxAttempts || !bytes.Equal(got.CodeMAC, want.CodeMAC) ||
		got.Attempts != 0 || got.Sends != 1 || !got.LastSend.Equal(want.LastSend) ||
		got.SentBy != "" || got.SendFailed || !got.Used.IsZero() {
		t.Fatalf("Get returned\n%+v\nwant\n%+v", got, want)
	}
	// The copy is the caller's: changing it changes nothing stored.
	got.CodeMAC[0] = 'X'
	again, _ := s.Get(ctx, c.ID)
	if !bytes.Equal(again.CodeMAC, c.CodeMAC) {
		t.Fatal("Get returned a slice aliased to the stored record")
	}
	// The creation context round-trips; the stash slot is not stored.
	if got.Mode != "" || got.PolicyVersion != "" || got.Scope != "" || got.Generation != "" {
		t.Fatalf("creation context set without being given: %+v", got)
	}
	c4 := newChallenge()
	c4.Mode, c4.PolicyVersion, c4.Scope, c4.Generation = "transaction", "pv-3q2+7w", "shop.example.com/checkout", "0123456789abcdef0123456789abcdef"
	c4.StashSlot = "slot-" + c4.ID
	mustCreate(t, s, c4)
	got4, err := s.Get(ctx, c4.ID)
	if err != nil || got4.Mode != c4.Mode || got4.PolicyVersion != c4.PolicyVersion ||
		got4.Scope != c4.Scope || got4.Generation != c4.Generation || got4.StashSlot != "" {
		t.Fatalf("creation context = %q %q %q %q slot %q, %v", got4.Mode, got4.PolicyVersion, got4.Scope, got4.Generation, got4.StashSlot, err)
	}
	if got4, _, err := s.GetWithFailures(ctx, c4.ID, ID()); err != nil || got4.Mode != c4.Mode || got4.Generation != c4.Generation {
		t.Fatalf("GetWithFailures lost the creation context: %+v, %v", got4, err)
	}
	// User and Hidden round-trip.
	c3 := newChallenge()
	c3.User, c3.Hidden = "signup:+14155550100", true
	mustCreate(t, s, c3)
	if got3, _ := s.Get(ctx, c3.ID); got3.User != c3.User || !got3.Hidden {
		t.Fatalf("User/Hidden = %q/%v", got3.User, got3.Hidden)
	}
	// Optional fields stay empty.
	c2 := newChallenge()
	c2.Description, c2.TxHash = "", nil
	mustCreate(t, s, c2)
	got2, _ := s.Get(ctx, c2.ID)
	if got2.Description != "" || len(got2.TxHash) != 0 || got2.User != "" || got2.Hidden {
		t.Fatalf("optional fields not empty: %+v", got2)
	}
	// A challenge made without a code (a passkey first) counts no send:
	// its first code is a resend, allowed at once.
	c5 := newChallenge()
	c5.CodeLater = true
	mustCreate(t, s, c5)
	if got5, _ := s.Get(ctx, c5.ID); got5.Sends != 0 || !got5.LastSend.IsZero() {
		t.Fatalf("CodeLater: sends %d, last send %v; want 0, zero", got5.Sends, got5.LastSend)
	}
	if n, err := s.Resend(ctx, c5.ID, []byte("mac-2"), time.Now(), time.Hour, 3); err != nil || n != 1 {
		t.Fatalf("first send of a CodeLater challenge = %d, %v; want 1, nil", n, err)
	}
}

func testCreateTwice(t *testing.T, s store.Store) {
	c := newChallenge()
	mustCreate(t, s, c)
	if err := s.Create(context.Background(), c, "", time.Minute); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second Create = %v, want ErrExists", err)
	}
}

func testCreateInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	for name, mutate := range map[string]func(*store.Challenge){
		"no id":       func(c *store.Challenge) { c.ID = "" },
		"no code":     func(c *store.Challenge) { c.CodeMAC = nil },
		"no lifetime": func(c *store.Challenge) { c.Expires = c.Created },
		"no attempts": func(c *store.Challenge) { c.MaxAttempts = 0 },
	} {
		c := newChallenge()
		mutate(c)
		if err := s.Create(ctx, c, "", time.Minute); err == nil {
			t.Errorf("%s: Create accepted an invalid challenge", name)
		}
	}
}

func testNotFound(t *testing.T, s store.Store) {
	ctx := context.Background()
	id := ID()
	if _, err := s.Get(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get = %v", err)
	}
	if _, _, err := s.BeginAttempt(ctx, id, t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("BeginAttempt = %v", err)
	}
	if err := s.Consume(ctx, id, []byte("x"), t0, "sms"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Consume = %v", err)
	}
	if _, err := s.Resend(ctx, id, []byte("x"), t0, 0, 3); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Resend = %v", err)
	}
	if err := s.RecordSend(ctx, id, "log", false); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RecordSend = %v", err)
	}
	if _, err := s.Pending(ctx, "nothing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Pending = %v", err)
	}
}

func testPending(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newChallenge()
	if err := s.Create(ctx, c, "bind-1", time.Minute); err != nil {
		t.Fatal(err)
	}
	id, err := s.Pending(ctx, "bind-1")
	if err != nil || id != c.ID {
		t.Fatalf("Pending = %q, %v; want %q", id, err, c.ID)
	}
	c2 := newChallenge()
	if err := s.Create(ctx, c2, "bind-1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if id, _ := s.Pending(ctx, "bind-1"); id != c2.ID {
		t.Fatalf("Pending after a second challenge = %q, want the newer %q", id, c2.ID)
	}
}

// GetWithFailures and PendingWithFailures answer as Get, Pending and
// Failures do one by one.
func testReadsWithFailures(t *testing.T, s store.Store) {
	ctx := context.Background()
	fkey := ID()
	c := newChallenge()
	if _, f, err := s.GetWithFailures(ctx, c.ID, fkey); !errors.Is(err, store.ErrNotFound) || f.N != 0 {
		t.Fatalf("GetWithFailures of nothing = %+v, %v; want ErrNotFound", f, err)
	}
	if id, f, err := s.PendingWithFailures(ctx, "bind-"+fkey, fkey); err != nil || id != "" || f.N != 0 {
		t.Fatalf("PendingWithFailures of nothing = %q, %+v, %v", id, f, err)
	}
	if err := s.Create(ctx, c, "bind-"+fkey, time.Minute); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := s.AddFailure(ctx, fkey, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	got, f, err := s.GetWithFailures(ctx, c.ID, fkey)
	if err != nil || got.ID != c.ID || got.Phone != c.Phone || !bytes.Equal(got.CodeMAC, c.CodeMAC) {
		t.Fatalf("GetWithFailures = %+v, %v", got, err)
	}
	if f.N != 2 || f.TTL <= 59*time.Minute || f.TTL > time.Hour {
		t.Fatalf("GetWithFailures failures = %+v, want 2 for about an hour", f)
	}
	id, f, err := s.PendingWithFailures(ctx, "bind-"+fkey, fkey)
	if err != nil || id != c.ID || f.N != 2 || f.TTL <= 59*time.Minute {
		t.Fatalf("PendingWithFailures = %q, %+v, %v; want %q and 2 failures", id, f, err, c.ID)
	}
	// Failures are reported with a missing challenge too.
	if _, f, err := s.GetWithFailures(ctx, ID(), fkey); !errors.Is(err, store.ErrNotFound) || f.N != 2 {
		t.Fatalf("GetWithFailures of a missing challenge = %+v, %v; want 2 failures and ErrNotFound", f, err)
	}
}

func testAttemptsExhaust(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newChallenge()
	mustCreate(t, s, c)
	for i := 1; i <= c.MaxAttempts; i++ {
		mac, n, err := s.BeginAttempt(ctx, c.ID, t0.Add(time.Second))
		if err != nil || n != i || !bytes.Equal(mac, c.CodeMAC) {
			t.Fatalf("attempt %d: n=%d err=%v mac=%q", i, n, err, mac)
		}
	}
	if _, _, err := s.BeginAttempt(ctx, c.ID, t0.Add(time.Second)); !errors.Is(err, store.ErrExhausted) {
		t.Fatalf("attempt past max = %v, want ErrExhausted", err)
	}
	got, _ := s.Get(ctx, c.ID)
	if got.Attempts != c.MaxAttempts {
		t.Fatalf("a refused attempt was counted: %d", got.Attempts)
	}
	if _, err := s.Resend(ctx, c.ID, []byte("m2"), t0.Add(time.Hour/60), 0, 5); !errors.Is(err, store.ErrExhausted) {
		t.Fatalf("Resend on a dead challenge = %v, want ErrExhausted", err)
	}
}

func testExpired(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newChallenge()
	mustCreate(t, s, c)
	late := c.Expires
	if _, _, err := s.BeginAttempt(ctx, c.ID, late); !errors.Is(err, store.ErrExpired) {
		t.Fatalf("BeginAttempt at expiry = %v", err)
	}
	if err := s.Consume(ctx, c.ID, c.CodeMAC, late, "sms"); !errors.Is(err, store.ErrExpired) {
		t.Fatalf("Consume at expiry = %v", err)
	}
	if _, err := s.Resend(ctx, c.ID, []byte("m"), late, 0, 5); !errors.Is(err, store.ErrExpired) {
		t.Fatalf("Resend at expiry = %v", err)
	}
	// Still readable: the page can say it expired.
	if _, err := s.Get(ctx, c.ID); err != nil {
		t.Fatalf("Get of an expired (retained) challenge: %v", err)
	}
}

func testConsumeOnce(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newChallenge()
	mustCreate(t, s, c)
	now := t0.Add(time.Second)
	if err := s.Consume(ctx, c.ID, []byte("wrong"), now, "sms"); !errors.Is(err, store.ErrCodeChanged) {
		t.Fatalf("Consume with another mac = %v, want ErrCodeChanged", err)
	}
	if pending, _ := s.Get(ctx, c.ID); pending.Method != "" {
		t.Fatalf("Method %q before use", pending.Method)
	}
	if err := s.Consume(ctx, c.ID, c.CodeMAC, now, "passkey"); err != nil {
		t.Fatalf("Consume: %v", err)
	}
	if used, _ := s.Get(ctx, c.ID); used.Method != "passkey" {
		t.Fatalf("Method %q after use by passkey", used.Method)
	}
	if err := s.Consume(ctx, c.ID, c.CodeMAC, now, "sms"); !errors.Is(err, store.ErrUsed) {
		t.Fatalf("second Consume = %v, want ErrUsed", err)
	}
	if _, _, err := s.BeginAttempt(ctx, c.ID, now); !errors.Is(err, store.ErrUsed) {
		t.Fatalf("BeginAttempt after use = %v, want ErrUsed", err)
	}
	got, _ := s.Get(ctx, c.ID)
	if got.Used.IsZero() || len(got.CodeMAC) != 0 {
		t.Fatalf("used challenge keeps its code or lacks Used: %+v", got)
	}
	if err := s.RecordSend(ctx, c.ID, "late", true); err != nil {
		t.Fatalf("RecordSend after use: %v", err)
	}
	if got, _ := s.Get(ctx, c.ID); got.SentBy == "late" {
		t.Fatal("RecordSend changed a used challenge")
	}
}

// testReserveAndBegin: a store that begins an attempt and reserves a
// failure for it in one step (store.AttemptReserver) checks the
// challenge first, then the reservation, then spends the attempt: a
// refused request spends nothing.
func testReserveAndBegin(t *testing.T, s store.Store) {
	ar, ok := s.(store.AttemptReserver)
	if !ok {
		t.Skip("the store does not implement AttemptReserver")
	}
	ctx := context.Background()
	c := newChallenge() // MaxAttempts 3
	mustCreate(t, s, c)
	now := t0.Add(time.Second)
	user := "reserve-begin-" + ID()
	r, done := ar.ReserveAndBegin(ctx, user, 2, time.Hour, c.ID, now)
	if !done {
		t.Skip("this store's ReserveAndBegin does not apply (Cluster, or replicas acknowledge reservations)")
	}
	if r.ReserveErr != nil || !r.Reserved || r.Failures != 1 || r.TTL <= 0 || r.BeginErr != nil || r.Attempts != 1 || !bytes.Equal(r.MAC, c.CodeMAC) {
		t.Fatalf("first ReserveAndBegin = %+v", r)
	}
	if r, _ = ar.ReserveAndBegin(ctx, user, 2, time.Hour, c.ID, now); !r.Reserved || r.Failures != 2 || r.Attempts != 2 {
		t.Fatalf("second ReserveAndBegin = %+v", r)
	}
	// The budget is spent: refused, and no attempt spent.
	if r, _ = ar.ReserveAndBegin(ctx, user, 2, time.Hour, c.ID, now); r.Reserved || r.Failures != 2 || r.TTL <= 0 || r.Attempts != 0 || r.BeginErr != nil || r.ReserveErr != nil {
		t.Fatalf("ReserveAndBegin past the budget = %+v", r)
	}
	// Another user: the third and last attempt; then the challenge is
	// over and reserves nothing.
	other := "reserve-begin-other-" + ID()
	if r, _ = ar.ReserveAndBegin(ctx, other, 5, time.Hour, c.ID, now); !r.Reserved || r.Attempts != 3 {
		t.Fatalf("the last attempt = %+v", r)
	}
	if r, _ = ar.ReserveAndBegin(ctx, other, 5, time.Hour, c.ID, now); r.Reserved || !errors.Is(r.BeginErr, store.ErrExhausted) {
		t.Fatalf("ReserveAndBegin on an exhausted challenge = %+v", r)
	}
	if r, _ = ar.ReserveAndBegin(ctx, other, 5, time.Hour, "no-such-"+ID(), now); r.Reserved || !errors.Is(r.BeginErr, store.ErrNotFound) {
		t.Fatalf("ReserveAndBegin on an unknown challenge = %+v", r)
	}
	if r, _ = ar.ReserveAndBegin(ctx, other, 5, time.Hour, c.ID, c.Expires); r.Reserved || r.BeginErr == nil {
		t.Fatalf("ReserveAndBegin on an expired challenge = %+v", r)
	}
	if n, _, err := s.Failures(ctx, other); err != nil || n != 1 {
		t.Fatalf("failures of the other user = %d, %v; want 1 (the refused calls reserved nothing)", n, err)
	}
	d := newChallenge()
	mustCreate(t, s, d)
	if err := s.Consume(ctx, d.ID, d.CodeMAC, now, "sms"); err != nil {
		t.Fatal(err)
	}
	if r, _ = ar.ReserveAndBegin(ctx, other, 5, time.Hour, d.ID, now); r.Reserved || !errors.Is(r.BeginErr, store.ErrUsed) {
		t.Fatalf("ReserveAndBegin on a used challenge = %+v", r)
	}
}

// testConsumeRefund: a store that consumes and refunds in one step
// (store.ConsumeRefunder) does what Consume and then RefundFailure do,
// the refund whatever the consume's outcome.
func testConsumeRefund(t *testing.T, s store.Store) {
	cr, ok := s.(store.ConsumeRefunder)
	if !ok {
		t.Skip("the store does not implement ConsumeRefunder")
	}
	ctx := context.Background()
	c := newChallenge()
	mustCreate(t, s, c)
	now := t0.Add(time.Second)
	user := "refund-" + ID()
	for range 3 {
		if _, _, ok, err := s.ReserveFailure(ctx, user, 5, time.Hour); !ok || err != nil {
			t.Fatalf("ReserveFailure: %v, %v", ok, err)
		}
	}
	cerr, rerr, done := cr.ConsumeRefund(ctx, c.ID, []byte("wrong"), now, "sms", user)
	if !done {
		t.Skip("this store's ConsumeRefund does not apply (replicas acknowledge consumes)")
	}
	if !errors.Is(cerr, store.ErrCodeChanged) || rerr != nil {
		t.Fatalf("ConsumeRefund with another mac = %v, %v; want ErrCodeChanged, nil", cerr, rerr)
	}
	if cerr, rerr, _ = cr.ConsumeRefund(ctx, c.ID, c.CodeMAC, now, "passkey", user); cerr != nil || rerr != nil {
		t.Fatalf("ConsumeRefund = %v, %v", cerr, rerr)
	}
	if used, _ := s.Get(ctx, c.ID); used.Method != "passkey" {
		t.Fatalf("Method %q after ConsumeRefund by passkey", used.Method)
	}
	if cerr, rerr, _ = cr.ConsumeRefund(ctx, c.ID, c.CodeMAC, now, "sms", user); !errors.Is(cerr, store.ErrUsed) || rerr != nil {
		t.Fatalf("second ConsumeRefund = %v, %v; want ErrUsed, nil", cerr, rerr)
	}
	if got, _ := s.Get(ctx, c.ID); got.Used.IsZero() || len(got.CodeMAC) != 0 {
		t.Fatalf("consumed challenge keeps its code or lacks Used: %+v", got)
	}
	if n, _, err := s.Failures(ctx, user); err != nil || n != 0 {
		t.Fatalf("failures after three refunds = %d, %v; want 0", n, err)
	}
	if cerr, rerr, _ = cr.ConsumeRefund(ctx, "no-such-"+ID(), c.CodeMAC, now, "sms", user); !errors.Is(cerr, store.ErrNotFound) || rerr != nil {
		t.Fatalf("ConsumeRefund of an unknown challenge = %v, %v; want ErrNotFound, nil", cerr, rerr)
	}
}

func testConsumeAfterResend(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newChallenge()
	mustCreate(t, s, c)
	now := t0.Add(time.Minute)
	mac, _, err := s.BeginAttempt(ctx, c.ID, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resend(ctx, c.ID, []byte("mac-two"), now, 30*time.Second, 3); err != nil {
		t.Fatal(err)
	}
	if err := s.Consume(ctx, c.ID, mac, now, "sms"); !errors.Is(err, store.ErrCodeChanged) {
		t.Fatalf("Consume of a replaced code = %v, want ErrCodeChanged", err)
	}
	if err := s.Consume(ctx, c.ID, []byte("mac-two"), now, "sms"); err != nil {
		t.Fatalf("Consume of the new code: %v", err)
	}
}

func testConcurrentConsume(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newChallenge()
	c.MaxAttempts = 10
	mustCreate(t, s, c)
	var ok, used, other atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Consume(ctx, c.ID, c.CodeMAC, t0.Add(time.Second), "sms")
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, store.ErrUsed):
				used.Add(1)
			default:
				other.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || used.Load() != 99 || other.Load() != 0 {
		t.Fatalf("100 concurrent Consume: ok=%d used=%d other=%d; want 1/99/0", ok.Load(), used.Load(), other.Load())
	}
}

func testConcurrentAttempts(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newChallenge()
	c.MaxAttempts = 5
	mustCreate(t, s, c)
	var granted atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := s.BeginAttempt(ctx, c.ID, t0.Add(time.Second)); err == nil {
				granted.Add(1)
			} else if !errors.Is(err, store.ErrExhausted) {
				t.Errorf("BeginAttempt: %v", err)
			}
		}()
	}
	wg.Wait()
	if granted.Load() != 5 {
		t.Fatalf("50 concurrent attempts on a 5-attempt challenge: %d granted", granted.Load())
	}
}

func testResend(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newChallenge()
	mustCreate(t, s, c)
	cool := 30 * time.Second
	_, err := s.Resend(ctx, c.ID, []byte("m2"), t0.Add(10*time.Second), cool, 3)
	var ce *store.CooldownError
	if !errors.As(err, &ce) || ce.RetryAfter != 20*time.Second {
		t.Fatalf("early Resend = %v, want a 20s cooldown", err)
	}
	n, err := s.Resend(ctx, c.ID, []byte("m2"), t0.Add(30*time.Second), cool, 3)
	if err != nil || n != 2 {
		t.Fatalf("Resend = %d, %v", n, err)
	}
	got, _ := s.Get(ctx, c.ID)
	if !bytes.Equal(got.CodeMAC, []byte("m2")) || got.Sends != 2 || !got.LastSend.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("after Resend: %+v", got)
	}
	if n, err = s.Resend(ctx, c.ID, []byte("m3"), t0.Add(61*time.Second), cool, 3); err != nil || n != 3 {
		t.Fatalf("third send = %d, %v", n, err)
	}
	if _, err = s.Resend(ctx, c.ID, []byte("m4"), t0.Add(2*time.Minute), cool, 3); !errors.Is(err, store.ErrSendLimit) {
		t.Fatalf("fourth send = %v, want ErrSendLimit", err)
	}
	if got, _ := s.Get(ctx, c.ID); !bytes.Equal(got.CodeMAC, []byte("m3")) {
		t.Fatal("a refused resend replaced the code")
	}
}

func testResendKeepsAttempts(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newChallenge()
	mustCreate(t, s, c)
	for i := 0; i < 2; i++ {
		if _, _, err := s.BeginAttempt(ctx, c.ID, t0.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Resend(ctx, c.ID, []byte("m2"), t0.Add(time.Minute), time.Second, 3); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get(ctx, c.ID)
	if got.Attempts != 2 {
		t.Fatalf("attempts after resend = %d, want 2 (a resend never resets them)", got.Attempts)
	}
}

func testRecordSend(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newChallenge()
	mustCreate(t, s, c)
	if err := s.RecordSend(ctx, c.ID, "twilio", false); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get(ctx, c.ID)
	if got.SentBy != "twilio" || got.SendFailed || !got.LastSend.Equal(t0) {
		t.Fatalf("after a good send: %+v", got)
	}
	if err := s.RecordSend(ctx, c.ID, "", true); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Get(ctx, c.ID)
	if !got.SendFailed || !got.LastSend.IsZero() {
		t.Fatalf("after a failed send: %+v", got)
	}
	// A failed send lifts the cooldown.
	if _, err := s.Resend(ctx, c.ID, []byte("m2"), t0.Add(time.Second), time.Hour, 3); err != nil {
		t.Fatalf("Resend after a failed send: %v", err)
	}
	got, _ = s.Get(ctx, c.ID)
	if got.SendFailed || got.SentBy != "" {
		t.Fatalf("a resend keeps the old outcome: %+v", got)
	}
}

func testFailures(t *testing.T, s store.Store) {
	ctx := context.Background()
	key := ID()
	if n, ttl, err := s.Failures(ctx, key); err != nil || n != 0 || ttl != 0 {
		t.Fatalf("Failures of a new key = %d, %v, %v", n, ttl, err)
	}
	for i := 1; i <= 3; i++ {
		n, err := s.AddFailure(ctx, key, time.Hour)
		if err != nil || n != i {
			t.Fatalf("AddFailure = %d, %v; want %d", n, err, i)
		}
	}
	n, ttl, err := s.Failures(ctx, key)
	if err != nil || n != 3 || ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("Failures = %d, %v, %v", n, ttl, err)
	}
	if err := s.ClearFailures(ctx, key); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := s.Failures(ctx, key); n != 0 {
		t.Fatalf("Failures after Clear = %d", n)
	}
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = s.AddFailure(ctx, key, time.Hour) }()
	}
	wg.Wait()
	if n, _, _ := s.Failures(ctx, key); n != 40 {
		t.Fatalf("40 concurrent failures counted as %d", n)
	}
}

func testFailureWindow(t *testing.T, s store.Store) {
	ctx := context.Background()
	key := ID()
	if _, err := s.AddFailure(ctx, key, 150*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// A later failure does not extend the window.
	time.Sleep(80 * time.Millisecond)
	if n, _ := s.AddFailure(ctx, key, 150*time.Millisecond); n != 2 {
		t.Fatalf("second failure = %d", n)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		n, _, err := s.Failures(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("failure count %d never expired", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testStashTakeOnce(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newChallenge()
	c.Stash = make([]byte, 1<<20)
	_, _ = rand.Read(c.Stash)
	c.Stash[0], c.Stash[1] = 0, '\n'
	mustCreate(t, s, c)
	got, err := s.Get(ctx, c.ID)
	if err != nil || !got.HasStash || got.Stash != nil {
		t.Fatalf("Get of a stashed challenge: HasStash=%v Stash=%d bytes err=%v", got.HasStash, len(got.Stash), err)
	}
	if _, err := s.TakeStash(ctx, c.ID); !errors.Is(err, store.ErrPending) {
		t.Fatalf("TakeStash before verification = %v, want ErrPending", err)
	}
	if err := s.Consume(ctx, c.ID, c.CodeMAC, t0.Add(time.Second), "sms"); err != nil {
		t.Fatal(err)
	}
	b, err := s.TakeStash(ctx, c.ID)
	if err != nil || !bytes.Equal(b, c.Stash) {
		t.Fatalf("TakeStash = %d bytes, %v; want the %d bytes stored", len(b), err, len(c.Stash))
	}
	if _, err := s.TakeStash(ctx, c.ID); !errors.Is(err, store.ErrReplayed) {
		t.Fatalf("second TakeStash = %v, want ErrReplayed", err)
	}
}

func testStashConcurrentTake(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newChallenge()
	c.Stash = []byte("POST /checkout")
	mustCreate(t, s, c)
	if err := s.Consume(ctx, c.ID, c.CodeMAC, t0.Add(time.Second), "sms"); err != nil {
		t.Fatal(err)
	}
	var ok, replayed atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.TakeStash(ctx, c.ID)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, store.ErrReplayed):
				replayed.Add(1)
			default:
				t.Errorf("TakeStash: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || replayed.Load() != 19 {
		t.Fatalf("20 concurrent TakeStash: %d got it, %d replayed", ok.Load(), replayed.Load())
	}
}

func testNoStash(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newChallenge()
	mustCreate(t, s, c)
	if got, _ := s.Get(ctx, c.ID); got.HasStash {
		t.Fatal("HasStash without a stash")
	}
	_ = s.Consume(ctx, c.ID, c.CodeMAC, t0.Add(time.Second), "sms")
	if _, err := s.TakeStash(ctx, c.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("TakeStash without stash = %v, want ErrNotFound", err)
	}
	if _, err := s.TakeStash(ctx, ID()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("TakeStash of an unknown challenge = %v", err)
	}
}

func testUseGrant(t *testing.T, s store.Store) {
	ctx := context.Background()
	id := ID()
	exp := time.Now().Add(time.Minute)
	if err := s.IssueGrant(ctx, id, exp); err != nil {
		t.Fatalf("IssueGrant: %v", err)
	}
	var ok, used atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch err := s.UseGrant(ctx, id, exp); {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, store.ErrGrantUsed):
				used.Add(1)
			default:
				t.Errorf("UseGrant: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || used.Load() != 49 {
		t.Fatalf("50 concurrent UseGrant: %d ok, %d used", ok.Load(), used.Load())
	}
	if err := s.UseGrant(ctx, id, exp); !errors.Is(err, store.ErrGrantUsed) {
		t.Fatalf("a later use = %v, want ErrGrantUsed", err)
	}
	other := ID()
	if err := s.IssueGrant(ctx, other, exp); err != nil {
		t.Fatal(err)
	}
	if err := s.UseGrant(ctx, other, exp); err != nil {
		t.Fatalf("another grant: %v", err)
	}
}

// A grant is usable only with its issuance record: the absence of a
// record (never issued, expired, lost) refuses it, and issuing again
// never makes a used grant usable.
func testGrantRecord(t *testing.T, s store.Store) {
	ctx := context.Background()
	exp := time.Now().Add(time.Minute)
	if err := s.UseGrant(ctx, ID(), exp); !errors.Is(err, store.ErrGrantUnknown) {
		t.Fatalf("UseGrant of a grant never issued = %v, want ErrGrantUnknown", err)
	}
	id := ID()
	for i := 0; i < 2; i++ { // issuing twice (a retried write) is one grant
		if err := s.IssueGrant(ctx, id, exp); err != nil {
			t.Fatalf("IssueGrant #%d: %v", i+1, err)
		}
	}
	if err := s.UseGrant(ctx, id, exp); err != nil {
		t.Fatal(err)
	}
	if err := s.IssueGrant(ctx, id, exp); !errors.Is(err, store.ErrGrantUsed) {
		t.Fatalf("IssueGrant after use = %v, want ErrGrantUsed", err)
	}
	if err := s.UseGrant(ctx, id, exp); !errors.Is(err, store.ErrGrantUsed) {
		t.Fatalf("UseGrant after a re-issue = %v, want ErrGrantUsed", err)
	}
	// The record lives until the grant expires (stores may round a
	// short life up to one second), then the grant is unknown.
	short := ID()
	if err := s.IssueGrant(ctx, short, time.Now().Add(100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if err := s.UseGrant(ctx, short, exp); !errors.Is(err, store.ErrGrantUnknown) {
		t.Fatalf("UseGrant past the record's life = %v, want ErrGrantUnknown", err)
	}
}

func testReserveFailure(t *testing.T, s store.Store) {
	ctx := context.Background()
	key := ID()
	if _, _, _, err := s.ReserveFailure(ctx, key, 3, 0); err == nil {
		t.Fatal("ReserveFailure accepted a zero window")
	}
	for i := 1; i <= 3; i++ {
		n, ttl, ok, err := s.ReserveFailure(ctx, key, 3, time.Hour)
		if err != nil || !ok || n != i || ttl <= 59*time.Minute || ttl > time.Hour {
			t.Fatalf("reservation %d = %d, %v, %v, %v", i, n, ttl, ok, err)
		}
	}
	n, ttl, ok, err := s.ReserveFailure(ctx, key, 3, time.Hour)
	if err != nil || ok || n != 3 || ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("reservation past the budget = %d, %v, %v, %v; want refused, 3, about an hour", n, ttl, ok, err)
	}
	if f, _, _ := s.Failures(ctx, key); f != 3 {
		t.Fatalf("a refused reservation was counted: %d", f)
	}
	// A refund gives one unit back in the same window.
	time.Sleep(20 * time.Millisecond)
	if err := s.RefundFailure(ctx, key); err != nil {
		t.Fatal(err)
	}
	f, ttl2, _ := s.Failures(ctx, key)
	if f != 2 || ttl2 >= ttl || ttl2 <= 59*time.Minute {
		t.Fatalf("after a refund: %d, %v; want 2 in the window (was %v)", f, ttl2, ttl)
	}
	if _, _, ok, _ := s.ReserveFailure(ctx, key, 3, time.Hour); !ok {
		t.Fatal("a refunded unit cannot be reserved again")
	}
	// AddFailure and ReserveFailure count the same failures.
	if n, _ := s.AddFailure(ctx, key, time.Hour); n != 4 {
		t.Fatalf("AddFailure after 3 reservations = %d", n)
	}
	if n, _, ok, _ := s.ReserveFailure(ctx, key, 5, time.Hour); !ok || n != 5 {
		t.Fatalf("reservation after AddFailure = %d, %v", n, ok)
	}
	// Refunds stop at 0, and a count back at 0 is forgotten: the next
	// failure starts a new window.
	for i := 0; i < 7; i++ {
		if err := s.RefundFailure(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	if f, ttl, _ := s.Failures(ctx, key); f != 0 || ttl != 0 {
		t.Fatalf("after refunding everything: %d, %v", f, ttl)
	}
	if n, ttl, ok, _ := s.ReserveFailure(ctx, key, 5, time.Minute); !ok || n != 1 || ttl > time.Minute {
		t.Fatalf("first reservation after a full refund = %d, %v, %v; want 1 in a new 1m window", n, ttl, ok)
	}
	if err := s.RefundFailure(ctx, ID()); err != nil {
		t.Fatalf("refund of a key without failures: %v", err)
	}
	// A budget of 0 refuses everything.
	if _, _, ok, err := s.ReserveFailure(ctx, ID(), 0, time.Hour); ok || err != nil {
		t.Fatalf("reservation under a zero budget = %v, %v", ok, err)
	}
	// The window starts with the first failure and is not extended.
	k2 := ID()
	start := time.Now()
	s.ReserveFailure(ctx, k2, 10, time.Second)
	time.Sleep(200 * time.Millisecond)
	if n, ttl, _, _ := s.ReserveFailure(ctx, k2, 10, time.Second); n == 2 && ttl > time.Second-time.Since(start)+20*time.Millisecond {
		t.Fatalf("a later reservation extended the window to %v", ttl)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		if n, _, _ := s.Failures(ctx, k2); n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("reserved failures never expired")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The engine's verification, as a wrong guess: reserve one unit of the
// user's budget, spend an attempt on the challenge, compare (wrong: keep
// the unit). 10 challenges x 5 attempts released at once against a
// budget of 20 compare exactly 20 codes.
func testReserveAcrossChallenges(t *testing.T, s store.Store) {
	ctx := context.Background()
	const challenges, attempts, budget = 10, 5, 20
	user := ID()
	ids := make([]string, challenges)
	for i := range ids {
		c := newChallenge()
		c.MaxAttempts = attempts
		mustCreate(t, s, c)
		ids[i] = c.ID
	}
	var reserved, refused, compared atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < challenges*attempts; i++ {
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			_, _, ok, err := s.ReserveFailure(ctx, user, budget, time.Hour)
			if err != nil {
				t.Errorf("ReserveFailure: %v", err)
				return
			}
			if !ok {
				refused.Add(1)
				return
			}
			reserved.Add(1)
			if _, _, err := s.BeginAttempt(ctx, id, t0.Add(time.Second)); err != nil {
				t.Errorf("BeginAttempt: %v", err) // 5 per challenge: never refused here
				return
			}
			compared.Add(1)
		}(ids[i%challenges])
	}
	wg.Wait()
	if reserved.Load() != budget || compared.Load() != budget || refused.Load() != challenges*attempts-budget {
		t.Fatalf("%d guesses over %d challenges under a budget of %d: %d reserved, %d compared, %d refused",
			challenges*attempts, challenges, budget, reserved.Load(), compared.Load(), refused.Load())
	}
	if n, _, _ := s.Failures(ctx, user); n != budget {
		t.Fatalf("failures counted = %d, want %d", n, budget)
	}
}

// Reservations, refunds (the right code, or an attempt refused by its
// challenge) and wrong guesses racing from many goroutines: the count
// left is exactly the wrong codes compared, never more than the budget,
// and every comparison spent one attempt of its challenge.
func testReserveRefundConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const challenges, attempts, budget, workers = 10, 5, 30, 200
	user := ID()
	cs := make([]*store.Challenge, challenges)
	for i := range cs {
		c := newChallenge()
		c.MaxAttempts = attempts
		mustCreate(t, s, c)
		cs[i] = c
	}
	var wrong, right, begun atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := cs[i%challenges]
			_, _, ok, err := s.ReserveFailure(ctx, user, budget, time.Hour)
			if err != nil || !ok {
				if err != nil {
					t.Errorf("ReserveFailure: %v", err)
				}
				return
			}
			now := t0.Add(time.Second)
			mac, _, err := s.BeginAttempt(ctx, c.ID, now)
			if err != nil {
				// Used or exhausted: nothing compared, the unit goes back.
				if err := s.RefundFailure(ctx, user); err != nil {
					t.Errorf("RefundFailure: %v", err)
				}
				return
			}
			begun.Add(1)
			if i%9 != 0 {
				wrong.Add(1) // a wrong code keeps its unit
				return
			}
			if err := s.Consume(ctx, c.ID, mac, now, "sms"); err == nil {
				right.Add(1)
			}
			if err := s.RefundFailure(ctx, user); err != nil {
				t.Errorf("RefundFailure: %v", err)
			}
		}(i)
	}
	wg.Wait()
	n, _, err := s.Failures(ctx, user)
	if err != nil || n != int(wrong.Load()) || n > budget {
		t.Fatalf("failures counted = %d (%v); want the %d wrong codes compared, at most %d", n, err, wrong.Load(), budget)
	}
	total := 0
	for _, c := range cs {
		got, _ := s.Get(ctx, c.ID)
		total += got.Attempts
	}
	if total != int(begun.Load()) || total > challenges*attempts {
		t.Fatalf("attempts spent = %d, comparisons = %d", total, begun.Load())
	}
	if right.Load() > challenges {
		t.Fatalf("%d right codes consumed", right.Load())
	}
	t.Logf("%d workers: %d wrong codes counted, %d right, %d attempts", workers, n, right.Load(), total)
}

// The generation marker is stable, and concurrent first reads agree on it.
func testGeneration(t *testing.T, s store.Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	gens := make([]string, 20)
	for i := range gens {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			g, err := s.Generation(ctx)
			if err != nil {
				t.Errorf("Generation: %v", err)
			}
			gens[i] = g
		}(i)
	}
	wg.Wait()
	for _, g := range gens {
		if g == "" || g != gens[0] {
			t.Fatalf("concurrent Generation calls disagree: %q", gens)
		}
	}
	mustCreate(t, s, newChallenge())
	if g, err := s.Generation(ctx); err != nil || g != gens[0] {
		t.Fatalf("Generation later = %q, %v; want %q", g, err, gens[0])
	}
}

func stashed(t *testing.T, s store.Store, slot string) *store.Challenge {
	t.Helper()
	c := newChallenge()
	c.Stash = []byte("POST /checkout " + c.ID)
	c.StashSlot = slot
	mustCreate(t, s, c)
	return c
}

// A new challenge with a stash in the same slot deletes the stash of the
// pending challenge it replaces; a verified one keeps its stash (its
// replay may be under way), and a challenge without a stash replaces
// nothing.
func testStashSlot(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := t0.Add(time.Second)
	slot := "slot-" + ID()
	a := stashed(t, s, slot)
	b := stashed(t, s, slot)
	plain := newChallenge()
	plain.StashSlot = slot
	mustCreate(t, s, plain)
	if err := s.Consume(ctx, a.ID, a.CodeMAC, now, "sms"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakeStash(ctx, a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("TakeStash of a replaced challenge = %v, want ErrNotFound", err)
	}
	if err := s.Consume(ctx, b.ID, b.CodeMAC, now, "sms"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.TakeStash(ctx, b.ID); err != nil || !bytes.Equal(got, b.Stash) {
		t.Fatalf("TakeStash of the replacing challenge = %q, %v", got, err)
	}
	// Verified before it was replaced: kept.
	slot2 := "slot-" + ID()
	v := stashed(t, s, slot2)
	if err := s.Consume(ctx, v.ID, v.CodeMAC, now, "sms"); err != nil {
		t.Fatal(err)
	}
	w := stashed(t, s, slot2)
	if got, err := s.TakeStash(ctx, v.ID); err != nil || !bytes.Equal(got, v.Stash) {
		t.Fatalf("TakeStash of a verified challenge replaced later = %q, %v", got, err)
	}
	// Other slots are untouched.
	x := stashed(t, s, "slot-"+ID())
	for _, c := range []*store.Challenge{w, x} {
		if err := s.Consume(ctx, c.ID, c.CodeMAC, now, "sms"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.TakeStash(ctx, c.ID); err != nil {
			t.Fatalf("TakeStash of a challenge nothing replaced: %v", err)
		}
	}
}

// Concurrent challenges in one slot: exactly one stash is left.
func testStashSlotConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	slot := "slot-" + ID()
	cs := make([]*store.Challenge, 20)
	var wg sync.WaitGroup
	for i := range cs {
		c := newChallenge()
		c.Stash, c.StashSlot = []byte("stash "+c.ID), slot
		cs[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Create(ctx, c, "", time.Minute); err != nil {
				t.Errorf("Create: %v", err)
			}
		}()
	}
	wg.Wait()
	kept := 0
	for _, c := range cs {
		if err := s.Consume(ctx, c.ID, c.CodeMAC, t0.Add(time.Second), "sms"); err != nil {
			t.Fatal(err)
		}
		switch got, err := s.TakeStash(ctx, c.ID); {
		case err == nil && bytes.Equal(got, c.Stash):
			kept++
		case !errors.Is(err, store.ErrNotFound):
			t.Fatalf("TakeStash = %q, %v", got, err)
		}
	}
	if kept != 1 {
		t.Fatalf("20 concurrent challenges in one slot left %d stashes, want 1", kept)
	}
}

func testRateLimit(t *testing.T, s store.Store) {
	ctx := context.Background()
	key := ID()
	l := store.Limit{Rate: 3, Period: time.Hour, Burst: 3}
	for i := 0; i < 3; i++ {
		if ok, _, err := s.Allow(ctx, key, l); !ok || err != nil {
			t.Fatalf("event %d refused: %v", i+1, err)
		}
	}
	ok, retry, err := s.Allow(ctx, key, l)
	if ok || err != nil || retry < 19*time.Minute || retry > 20*time.Minute+time.Second {
		t.Fatalf("4th event = %v, retry %v, %v; want refused for about 20m", ok, retry, err)
	}
	// A refused event is not counted: the wait does not grow.
	_, retry2, _ := s.Allow(ctx, key, l)
	if retry2 > retry+time.Second {
		t.Fatalf("a refused event was counted: retry %v then %v", retry, retry2)
	}
	// Other keys are independent; an off limit always allows.
	if ok, _, _ := s.Allow(ctx, ID(), l); !ok {
		t.Fatal("another key refused")
	}
	if ok, _, _ := s.Allow(ctx, key, store.Limit{}); !ok {
		t.Fatal("an off limit refused")
	}
	// A fast limit refills.
	fast := store.Limit{Rate: 1, Period: 200 * time.Millisecond, Burst: 1}
	k2 := ID()
	s.Allow(ctx, k2, fast)
	if ok, _, _ := s.Allow(ctx, k2, fast); ok {
		t.Fatal("second event within the period allowed")
	}
	time.Sleep(250 * time.Millisecond)
	if ok, _, _ := s.Allow(ctx, k2, fast); !ok {
		t.Fatal("limit did not refill")
	}
}

func testRateLimitConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	key := ID()
	l := store.Limit{Rate: 10, Period: time.Hour, Burst: 10}
	var ok atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if allowed, _, err := s.Allow(ctx, key, l); err != nil {
				t.Errorf("Allow: %v", err)
			} else if allowed {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 10 {
		t.Fatalf("100 concurrent events under a burst of 10: %d allowed", ok.Load())
	}
}

func testRevoke(t *testing.T, s store.Store) {
	ctx := context.Background()
	key := ID()
	if at, err := s.RevokedAt(ctx, key); err != nil || !at.IsZero() {
		t.Fatalf("RevokedAt of a new key = %v, %v", at, err)
	}
	t1 := t0.Add(time.Minute)
	if err := s.Revoke(ctx, key, t1, time.Hour); err != nil {
		t.Fatal(err)
	}
	if at, _ := s.RevokedAt(ctx, key); !at.Equal(t1) {
		t.Fatalf("RevokedAt = %v, want %v", at, t1)
	}
	// An older revocation does not move the time back.
	_ = s.Revoke(ctx, key, t0, time.Hour)
	if at, _ := s.RevokedAt(ctx, key); !at.Equal(t1) {
		t.Fatalf("RevokedAt after an older revocation = %v, want %v", at, t1)
	}
	t2 := t1.Add(time.Minute)
	_ = s.Revoke(ctx, key, t2, time.Hour)
	if at, _ := s.RevokedAt(ctx, key); !at.Equal(t2) {
		t.Fatalf("RevokedAt after a newer revocation = %v, want %v", at, t2)
	}
	// AnyKey holds the latest revocation of any key (other tests may
	// revoke later ones meanwhile).
	if at, err := s.RevokedAt(ctx, store.AnyKey); err != nil || at.Before(t2) {
		t.Fatalf("RevokedAt(AnyKey) = %v, %v; want at least %v", at, err, t2)
	}
	other := ID()
	_ = s.Revoke(ctx, other, t1, time.Hour)
	if at, _ := s.RevokedAt(ctx, store.AnyKey); at.Before(t2) {
		t.Fatalf("an older revocation of another key moved AnyKey back to %v", at)
	}
	if at, _ := s.RevokedAt(ctx, other); !at.Equal(t1) {
		t.Fatalf("RevokedAt of the other key = %v, want %v", at, t1)
	}
}

func testDeliveries(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newChallenge()
	c.Mode, c.PolicyVersion, c.Scope, c.Generation = "session", "pv1", "shop.example.com", "gen1"
	mustCreate(t, s, c)
	if _, err := s.AddDelivery(ctx, ID(), store.Delivery{Sender: "x"}, nil, c.Expires); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("AddDelivery to nothing: %v", err)
	}
	first := store.Delivery{Sender: "twilio", Channel: "sms", MessageID: "SM1", Sent: t0.Add(time.Second), Code: 1}
	if n, err := s.AddDelivery(ctx, c.ID, first, []byte("sealed\x00one"), c.Expires); err != nil || n != 1 {
		t.Fatalf("AddDelivery = %d, %v", n, err)
	}
	// A sender without ids: recorded, found by no receipt; the sealed
	// code is kept when none is given.
	second := store.Delivery{Sender: "log", Sent: t0.Add(2 * time.Second), Code: 1, Failover: true}
	if n, err := s.AddDelivery(ctx, c.ID, second, nil, c.Expires); err != nil || n != 2 {
		t.Fatalf("AddDelivery = %d, %v", n, err)
	}
	got, err := s.Get(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.SealedCode, []byte("sealed\x00one")) || len(got.Deliveries) != 2 {
		t.Fatalf("after two deliveries: sealed %q, %+v", got.SealedCode, got.Deliveries)
	}
	// The latest accepted send is the code's sender (RecordSend's part),
	// and a failed send before it no longer counts.
	if got.SentBy != "log" || got.SendFailed {
		t.Fatalf("after two deliveries: SentBy %q, SendFailed %v; want log, false", got.SentBy, got.SendFailed)
	}
	// Nothing else of the challenge changed.
	if got.Mode != c.Mode || got.PolicyVersion != c.PolicyVersion || got.Scope != c.Scope || got.Generation != c.Generation ||
		got.Description != c.Description || !bytes.Equal(got.CodeMAC, c.CodeMAC) || got.Sends != 1 || got.Phone != c.Phone {
		t.Fatalf("a delivery changed the challenge: %+v", got)
	}
	first.Status, first.Updated = store.StatusAccepted, first.Sent
	second.Status, second.Updated = store.StatusAccepted, second.Sent
	for i, want := range []store.Delivery{first, second} {
		d := got.Deliveries[i]
		if d.Sender != want.Sender || d.Channel != want.Channel || d.MessageID != want.MessageID || d.Status != want.Status ||
			!d.Sent.Equal(want.Sent) || !d.Updated.Equal(want.Updated) || d.Code != want.Code || d.Failover != want.Failover || d.FailedOver {
			t.Errorf("delivery %d = %+v, want %+v", i+1, d, want)
		}
	}
	// Deliveries are recorded on a used challenge too (a late send).
	if err := s.Consume(ctx, c.ID, c.CodeMAC, t0.Add(3*time.Second), "sms"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.AddDelivery(ctx, c.ID, store.Delivery{Sender: "late", Sent: t0.Add(4 * time.Second)}, nil, c.Expires); err != nil || n != 3 {
		t.Fatalf("AddDelivery after use = %d, %v", n, err)
	}
	if got, _ := s.Get(ctx, c.ID); got.SentBy != "log" {
		t.Fatalf("a late delivery changed a used challenge's sender to %q", got.SentBy)
	}
	// A failed send, then one accepted: the failure is cleared.
	d := newChallenge()
	mustCreate(t, s, d)
	if err := s.RecordSend(ctx, d.ID, "", true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddDelivery(ctx, d.ID, store.Delivery{Sender: "vonage", Sent: t0, Code: 1}, nil, d.Expires); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, d.ID); got.SentBy != "vonage" || got.SendFailed {
		t.Fatalf("after a failed send and an accepted one: SentBy %q, SendFailed %v", got.SentBy, got.SendFailed)
	}
}

func testReceiptsAnyOrder(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newChallenge()
	mustCreate(t, s, c)
	if _, err := s.AddDelivery(ctx, c.ID, store.Delivery{Sender: "twilio", MessageID: "SM1", Sent: t0, Code: 1}, nil, c.Expires); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sender, id, status string
		changed            bool
		want, previous     string
	}{
		{"twilio", "SM1", "queued", true, "queued", "accepted"},
		{"twilio", "SM1", "delivered", true, "delivered", "queued"},
		{"twilio", "SM1", "delivered", false, "delivered", "delivered"}, // again
		{"twilio", "SM1", "sent", false, "delivered", "delivered"},      // late
		{"twilio", "SM1", "failed", false, "delivered", "delivered"},    // it arrived
		{"twilio", "SM1", "bogus", false, "delivered", "delivered"},
		{"twilio", "SM1", "read", true, "read", "delivered"},
	} {
		rc, err := s.TakeReceipt(ctx, tc.sender, tc.id, tc.status, t0.Add(time.Second))
		if err != nil || rc.Challenge != c.ID || rc.Index != 1 || rc.Changed != tc.changed || rc.Previous != tc.previous {
			t.Fatalf("receipt %s: %+v, %v", tc.status, rc, err)
		}
		got, _ := s.Get(ctx, c.ID)
		if got.Deliveries[0].Status != tc.want {
			t.Fatalf("after %s: status %q, want %q", tc.status, got.Deliveries[0].Status, tc.want)
		}
	}
	// Unknown messages, and a known id of another sender.
	for _, k := range [][2]string{{"twilio", "SM2"}, {"vonage", "SM1"}, {"twilio", ""}} {
		if _, err := s.TakeReceipt(ctx, k[0], k[1], "failed", t0); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("receipt for %v: %v, want ErrNotFound", k, err)
		}
	}
	// Undelivered moves a sent message on.
	if _, err := s.AddDelivery(ctx, c.ID, store.Delivery{Sender: "vonage", MessageID: "V1", Sent: t0, Code: 1}, nil, c.Expires); err != nil {
		t.Fatal(err)
	}
	if rc, err := s.TakeReceipt(ctx, "vonage", "V1", "undelivered", t0.Add(time.Minute)); err != nil || !rc.Changed || rc.Index != 2 {
		t.Fatalf("undelivered: %+v, %v", rc, err)
	}
	got, _ := s.Get(ctx, c.ID)
	if d := got.Deliveries[1]; d.Status != "undelivered" || !d.Updated.Equal(t0.Add(time.Minute)) {
		t.Fatalf("after undelivered: %+v", d)
	}
}

func testReceiptsConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newChallenge()
	mustCreate(t, s, c)
	if _, err := s.AddDelivery(ctx, c.ID, store.Delivery{Sender: "wa", MessageID: "wamid.1", Sent: t0, Code: 1}, nil, c.Expires); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var changed atomic.Int32
	statuses := []string{"sent", "delivered", "failed", "sent", "delivered", "queued"}
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func(status string) {
			defer wg.Done()
			rc, err := s.TakeReceipt(ctx, "wa", "wamid.1", status, t0)
			if err != nil {
				t.Error(err)
			}
			if rc.Changed && status == "delivered" {
				changed.Add(1)
			}
		}(statuses[i%len(statuses)])
	}
	wg.Wait()
	got, _ := s.Get(ctx, c.ID)
	if got.Deliveries[0].Status != "delivered" || changed.Load() != 1 {
		t.Fatalf("after concurrent receipts: %q, delivered taken %d times", got.Deliveries[0].Status, changed.Load())
	}
}

func testClaimFailover(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newChallenge()
	mustCreate(t, s, c)
	now := t0.Add(time.Second)
	if ok, err := s.ClaimFailover(ctx, c.ID, 1, now); ok || err != nil {
		t.Fatalf("claim without a delivery: %v %v", ok, err)
	}
	for _, name := range []string{"a", "b"} {
		if _, err := s.AddDelivery(ctx, c.ID, store.Delivery{Sender: name, MessageID: name + "1", Sent: t0, Code: 1}, nil, c.Expires); err != nil {
			t.Fatal(err)
		}
	}
	// Only the latest delivery fails over, once, of many claimants.
	if ok, _ := s.ClaimFailover(ctx, c.ID, 1, now); ok {
		t.Fatal("an older delivery failed over")
	}
	var wg sync.WaitGroup
	var won atomic.Int32
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, err := s.ClaimFailover(ctx, c.ID, 2, now); err != nil {
				t.Error(err)
			} else if ok {
				won.Add(1)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d claims won, want 1", won.Load())
	}
	got, _ := s.Get(ctx, c.ID)
	if got.Deliveries[0].FailedOver || !got.Deliveries[1].FailedOver {
		t.Fatalf("failed over: %+v", got.Deliveries)
	}
	// Expired or used: nothing more goes out.
	if _, err := s.AddDelivery(ctx, c.ID, store.Delivery{Sender: "c", Sent: t0, Code: 1}, nil, c.Expires); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.ClaimFailover(ctx, c.ID, 3, c.Expires); ok {
		t.Fatal("an expired challenge failed over")
	}
	if err := s.Consume(ctx, c.ID, c.CodeMAC, now, "sms"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.ClaimFailover(ctx, c.ID, 3, now); ok {
		t.Fatal("a used challenge failed over")
	}
}

func testFailoverQueue(t *testing.T, s store.Store) {
	ctx := context.Background()
	q := "q" + ID()
	a, b := ID(), ID()
	if err := s.ScheduleFailover(ctx, q, a, t0.Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.ScheduleFailover(ctx, q, b, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ids, err := s.DueFailovers(ctx, q, t0, time.Minute, 10); err != nil || len(ids) != 0 {
		t.Fatalf("nothing due yet: %v %v", ids, err)
	}
	ids, err := s.DueFailovers(ctx, q, t0.Add(10*time.Second), time.Minute, 10)
	if err != nil || len(ids) != 1 || ids[0] != a {
		t.Fatalf("due: %v %v, want [%s]", ids, err, a)
	}
	// Claimed: leased to this caller, another gets it after the lease.
	if ids, _ := s.DueFailovers(ctx, q, t0.Add(11*time.Second), time.Minute, 10); len(ids) != 0 {
		t.Fatalf("claimed twice: %v", ids)
	}
	if ids, _ := s.DueFailovers(ctx, q, t0.Add(71*time.Second), time.Minute, 10); len(ids) != 1 || ids[0] != a {
		t.Fatalf("after the lease: %v", ids)
	}
	// Scheduled again while leased: done with the lease, not with it.
	if err := s.ScheduleFailover(ctx, q, a, t0.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.DoneFailover(ctx, q, a, t0.Add(131*time.Second)); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.DueFailovers(ctx, q, t0.Add(5*time.Minute), time.Minute, 10); len(ids) != 1 || ids[0] != a {
		t.Fatalf("rescheduled while leased: %v", ids)
	}
	if err := s.DoneFailover(ctx, q, a, t0.Add(6*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.DueFailovers(ctx, q, t0.Add(10*time.Minute), time.Minute, 10); len(ids) != 0 {
		t.Fatalf("done, yet due: %v", ids)
	}
	// A later schedule replaces the earlier time; queues are apart.
	if err := s.ScheduleFailover(ctx, q, b, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.DueFailovers(ctx, "other"+q, t0.Add(time.Hour), time.Minute, 10); len(ids) != 0 {
		t.Fatalf("another queue: %v", ids)
	}
	if ids, _ := s.DueFailovers(ctx, q, t0.Add(time.Second), time.Minute, 10); len(ids) != 1 || ids[0] != b {
		t.Fatalf("rescheduled: %v", ids)
	}
}

// testCreateOnExpiryQueue: a challenge created with ExpiryQueue is on
// that queue, due when its code expires, with or without a pending
// pointer; without it, it is on none; Get does not return the queue.
func testCreateOnExpiryQueue(t *testing.T, s store.Store) {
	ctx := context.Background()
	q := "expiry" + ID()
	for _, pending := range []string{"", "pending-" + ID()} {
		c := newChallenge()
		c.ExpiryQueue = q
		if err := s.Create(ctx, c, pending, time.Minute); err != nil {
			t.Fatalf("Create (pending %q): %v", pending, err)
		}
		if got, err := s.Get(ctx, c.ID); err != nil || got.ExpiryQueue != "" {
			t.Fatalf("Get: %+v, %v; want no ExpiryQueue", got, err)
		}
		if pending != "" {
			if id, err := s.Pending(ctx, pending); err != nil || id != c.ID {
				t.Fatalf("Pending = %q, %v; want %s", id, err, c.ID)
			}
		}
		if ids, err := s.DueFailovers(ctx, q, c.Expires.Add(-time.Millisecond), time.Minute, 10); err != nil || len(ids) != 0 {
			t.Fatalf("due before the code expires: %v, %v", ids, err)
		}
		if ids, err := s.DueFailovers(ctx, q, c.Expires, time.Minute, 10); err != nil || len(ids) != 1 || ids[0] != c.ID {
			t.Fatalf("due at expiry: %v, %v; want [%s]", ids, err, c.ID)
		}
		if err := s.DoneFailover(ctx, q, c.ID, c.Expires.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	plain := newChallenge()
	mustCreate(t, s, plain)
	if ids, err := s.DueFailovers(ctx, q, plain.Expires.Add(time.Hour), time.Minute, 10); err != nil || len(ids) != 0 {
		t.Fatalf("a challenge without ExpiryQueue is due: %v, %v", ids, err)
	}
}
