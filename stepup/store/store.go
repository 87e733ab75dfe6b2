// Package store holds the state of step-up challenges: the Store contract,
// an in-memory implementation for a single instance, and a Redis
// implementation that is the source of truth when several Caddy instances
// serve one site.
//
// Every operation that reads and then changes a challenge is atomic (one
// Lua script on one hash-tagged key in Redis, one critical section in
// memory), so concurrent verifications of one code have exactly one winner.
// Codes never reach the store: only their HMAC does.
//
// A user's failure budget lives apart from the challenges (another hash
// slot), so a verification spends it in two phases: ReserveFailure before
// the code is compared, RefundFailure when no wrong code was compared.
// The budget is then exact under any concurrency across any number of
// challenges and instances, and a step that is lost leaves the count
// higher: it fails closed.
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Errors returned by Store methods. Callers compare with errors.Is.
var (
	// ErrNotFound: no such challenge (never created, or gone past its
	// retention).
	ErrNotFound = errors.New("challenge not found")
	// ErrExpired: the challenge exists but its code lifetime is over.
	ErrExpired = errors.New("challenge expired")
	// ErrUsed: the challenge was already verified; it cannot be used again.
	ErrUsed = errors.New("challenge already used")
	// ErrExhausted: every attempt of the challenge was spent.
	ErrExhausted = errors.New("no attempts left")
	// ErrCodeChanged: the code was replaced by a resend between the
	// attempt and its consumption.
	ErrCodeChanged = errors.New("code was replaced")
	// ErrSendLimit: the challenge reached its maximum number of sends.
	ErrSendLimit = errors.New("send limit reached")
	// ErrExists: a challenge with that id already exists.
	ErrExists = errors.New("challenge already exists")
	// ErrPending: the challenge is not verified yet, so its stash cannot
	// be taken.
	ErrPending = errors.New("challenge not verified")
	// ErrReplayed: the stashed request was already taken (sent).
	ErrReplayed = errors.New("stashed request already sent")
	// ErrGrantUsed: a single-use grant was already used.
	ErrGrantUsed = errors.New("grant already used")
	// ErrGrantUnknown: a single-use grant has no issuance record: it was
	// never issued, its record expired, or the store lost it. Such a
	// grant is refused, never taken as unused.
	ErrGrantUnknown = errors.New("grant not issued")
	// ErrNotDurable: a single-use consumption (or a spent failure) was
	// written on the Redis master, but fewer replicas than asked
	// acknowledged it in time, so a failover could undo it. The write
	// stays done on the master; the caller must fail closed (refuse, as
	// if the operation had been used up).
	ErrNotDurable = errors.New("write not acknowledged by enough replicas")
)

// CooldownError is returned by Resend when the previous send is too recent.
type CooldownError struct {
	// RetryAfter is how long to wait before a resend is allowed.
	RetryAfter time.Duration
}

func (e *CooldownError) Error() string {
	return fmt.Sprintf("resend too early, retry in %s", e.RetryAfter.Round(time.Second))
}

// Challenge is the stored record of one step-up challenge.
//
// The identity is kept only as keyed hashes (UserKey, SessionKey) made by
// the engine; the phone number is kept in E.164 form because a resend needs
// it, and expires with the record.
type Challenge struct {
	// ID is the random, unguessable challenge id (URL-safe).
	ID string
	// Policy is the name of the protect policy that raised the challenge.
	Policy string
	// UserKey and SessionKey bind the challenge to who asked and in which
	// browser session.
	UserKey    string
	SessionKey string
	// Phone is the destination, E.164.
	Phone string
	// ReturnURL is the same-origin path the browser goes back to.
	ReturnURL string
	// Description is what the code authorizes, as shown to the customer
	// (transaction mode); empty for a session challenge.
	Description string
	// TxHash binds a transaction challenge to one request; empty otherwise.
	TxHash []byte
	// Stash is the preserved request (opaque, encrypted by the engine),
	// stored by Create beside the challenge under the same lifetime. Get
	// does not return it (see TakeStash); HasStash says it exists.
	Stash    []byte
	HasStash bool
	// User is the user id itself, kept only for identities that come
	// from the request (sign-up, reset), whose later requests do not
	// carry it again.
	User string
	// Hidden marks a challenge whose page must not show the number.
	Hidden bool
	// CodeLater marks a challenge made without a code on its way (a
	// passkey is offered first): Create counts no send, so that the
	// first code goes out as a resend, at once. It is not stored: Get
	// returns it false, with Sends 0 until a code is sent.
	CodeLater bool
	// Created and Expires bound the code's lifetime.
	Created time.Time
	Expires time.Time
	// MaxAttempts is how many code entries the challenge allows.
	MaxAttempts int

	// CodeMAC is the HMAC of the current code (replaced on resend).
	CodeMAC []byte
	// Attempts is how many code entries were made so far.
	Attempts int
	// Sends counts the codes sent (the first one included).
	Sends int
	// LastSend is when the current code was sent (zero after a failed
	// send, so that a resend is allowed at once).
	LastSend time.Time
	// SentBy is the sender that delivered the current code.
	SentBy string
	// SendFailed reports that the current code could not be delivered.
	SendFailed bool
	// Used is when the challenge was verified; zero while pending.
	Used time.Time
	// Method is how it was verified (Consume's method); "" while pending.
	Method string

	// Deliveries are the messages that carried the challenge's codes, in
	// the order they were accepted (AddDelivery), with what their
	// receipts said.
	Deliveries []Delivery
	// SealedCode is the current code and what its message needs, sealed
	// by the engine (encrypted under its secret, bound to the challenge
	// id), for a failover to send it again through another sender; nil
	// when no failover can happen. Only the engine can open it.
	SealedCode []byte

	// Mode is the policy mode the challenge was created under.
	Mode string
	// PolicyVersion identifies the policy's definition at creation (a
	// short hash made by the engine; keep it within 64 bytes so that a
	// Redis challenge stays in its compact encoding).
	PolicyVersion string
	// Scope is the handler scope the challenge belongs to.
	Scope string
	// Generation is the store generation (see Store.Generation) the
	// challenge was created in.
	Generation string

	// StashSlot, when set on a challenge with a stash, names the one
	// pending stash a user may keep under it (the engine derives it from
	// user and policy): see Create. It is not stored: Get returns it
	// empty. A replaced challenge stays readable, and TakeStash on it
	// gets ErrNotFound.
	StashSlot string

	// ExpiryQueue, when set, names a queue (DeliveryStore.ScheduleFailover)
	// that Create puts the challenge on, due at c.Expires, in the same
	// round trip as the challenge itself: the engine's watch for codes
	// that expire unverified. Like StashSlot it is not stored.
	ExpiryQueue string
}

// Limit is a rate: Rate events per Period, with bursts of up to Burst
// (GCRA: the budget refills evenly, one event every Period/Rate).
type Limit struct {
	Rate   int
	Period time.Duration
	Burst  int
}

// Off reports whether the limit is disabled.
func (l Limit) Off() bool { return l.Rate <= 0 || l.Period <= 0 }

// FailureCount is what Failures returns: the failures counted for a key
// and how long until the count is forgotten.
type FailureCount struct {
	N   int
	TTL time.Duration
}

// AnyKey is the revocation key that Revoke keeps at the latest revocation
// of any key: a grant issued after RevokedAt(AnyKey) cannot be revoked,
// so checking it needs no lookup of its own key.
const AnyKey = "*"

// Store is the state behind step-up: challenges, pending-challenge
// pointers and failure counters. Implementations must be safe for
// concurrent use and must make each method atomic.
type Store interface {
	// Create stores a new challenge with its first code, counting one
	// send at c.Created (none with c.CodeLater). The record is kept until c.Expires plus retain,
	// so that late requests learn it expired or was used. When pending is
	// not empty, it also points pending at the challenge until c.Expires.
	// With c.StashSlot set and a stash, it then points the slot at c for
	// as long as c's record lives and deletes the stash of the pending
	// challenge the slot pointed at before: a cleanup step after the
	// create, whose failure leaves that stash to its TTL and is not
	// reported. With c.ExpiryQueue set, it puts c on that queue, due at
	// c.Expires, as ScheduleFailover does.
	Create(ctx context.Context, c *Challenge, pending string, retain time.Duration) error
	// Get returns a copy of a challenge, or ErrNotFound.
	Get(ctx context.Context, id string) (*Challenge, error)
	// Pending returns the id a pending pointer refers to, or ErrNotFound.
	Pending(ctx context.Context, pending string) (string, error)
	// BeginAttempt spends one attempt on a live challenge and returns the
	// MAC of its current code and the attempts made, this one included.
	// It fails with ErrNotFound, ErrUsed, ErrExpired or ErrExhausted,
	// spending nothing.
	BeginAttempt(ctx context.Context, id string, now time.Time) (mac []byte, attempts int, err error)
	// Consume marks a challenge used, by method (how it was answered:
	// "sms", "passkey"), if it is still pending and its code is still
	// mac. Of concurrent callers exactly one succeeds; the others get
	// ErrUsed (or ErrCodeChanged, ErrExpired, ErrNotFound).
	Consume(ctx context.Context, id string, mac []byte, now time.Time, method string) error
	// Resend replaces the code of a live challenge with mac, if the
	// cooldown since the last send has passed (else *CooldownError) and
	// fewer than maxSends codes were sent (else ErrSendLimit). Attempts
	// are never reset. It returns the number of sends, this one included.
	Resend(ctx context.Context, id string, mac []byte, now time.Time, cooldown time.Duration, maxSends int) (sends int, err error)
	// TakeStash returns the stash of a verified challenge, once: later
	// calls get ErrReplayed. It fails with ErrPending before the
	// challenge is consumed, and ErrNotFound when there is no stash (or
	// it expired).
	TakeStash(ctx context.Context, id string) ([]byte, error)
	// IssueGrant records that the single-use grant grantID was issued
	// and may be used once until expires. Issuing it again before its use
	// changes nothing; after its use it fails with ErrGrantUsed.
	IssueGrant(ctx context.Context, grantID string, expires time.Time) error
	// UseGrant consumes a single-use grant recorded by IssueGrant. Of
	// concurrent callers exactly one succeeds; the others get
	// ErrGrantUsed, as does any later use until the record expires. A
	// grant without a record (never issued, expired, or lost with the
	// store's data) gets ErrGrantUnknown: the absence of a record never
	// means "unused". expires is the grant's own expiry; the record's
	// lifetime, set by IssueGrant, is what counts.
	UseGrant(ctx context.Context, grantID string, expires time.Time) error
	// RecordSend notes the outcome of delivering the current code: who
	// delivered it, or that delivery failed (which lifts the cooldown).
	RecordSend(ctx context.Context, id string, sentBy string, failed bool) error
	// AddFailure counts one failed code entry for key in a window that
	// starts with the first failure, and returns the count. It checks no
	// limit: a verification spends its failure with ReserveFailure.
	AddFailure(ctx context.Context, key string, window time.Duration) (int, error)
	// ReserveFailure spends one unit of key's failure budget before a
	// code is compared: if fewer than max failures are counted, it counts
	// one more (a new count lives for window from its first failure) and
	// returns ok with the count, this one included, and the time left in
	// the window. Else it counts nothing and returns ok false with the
	// count and the time until it is forgotten (the lockout). Of
	// concurrent callers, at most max minus the count succeed, however
	// many challenges and instances they verify on. A window <= 0 is an
	// error.
	ReserveFailure(ctx context.Context, key string, max int, window time.Duration) (n int, ttl time.Duration, ok bool, err error)
	// RefundFailure gives back one unit reserved by ReserveFailure, when
	// the code was right or no comparison took place (BeginAttempt
	// refused). The count never goes below 0 and keeps its window; a
	// count back at 0 is forgotten.
	RefundFailure(ctx context.Context, key string) error
	// Failures returns the failures counted for key and how long until
	// the count is forgotten.
	Failures(ctx context.Context, key string) (n int, ttl time.Duration, err error)
	// ClearFailures forgets the failures of key (operator unlock).
	ClearFailures(ctx context.Context, key string) error
	// Revoke records that every grant of key issued at or before at is
	// void, for ttl (the longest grant lifetime). A later revocation
	// replaces an earlier one, never the other way round. It also
	// records at under AnyKey, which so holds the latest revocation of
	// any key.
	Revoke(ctx context.Context, key string, at time.Time, ttl time.Duration) error
	// GetWithFailures is Get(id) and Failures(failureKey) in one round
	// trip (a verification needs both). The failures are returned with
	// ErrNotFound too.
	GetWithFailures(ctx context.Context, id, failureKey string) (*Challenge, FailureCount, error)
	// PendingWithFailures is Pending(pending) and Failures(failureKey) in
	// one round trip (starting a challenge needs both); id is "" when no
	// challenge is pending.
	PendingWithFailures(ctx context.Context, pending, failureKey string) (id string, f FailureCount, err error)
	// RevokedAt returns the last revocation time of key (or, for AnyKey,
	// of any key), or the zero time.
	RevokedAt(ctx context.Context, key string) (time.Time, error)
	// Allow counts one event for key under l and reports whether it is
	// within the limit; when it is not, nothing is counted and retry
	// says when one event would be allowed.
	Allow(ctx context.Context, key string, l Limit) (ok bool, retry time.Duration, err error)
	// Generation returns the store's generation marker, creating it when
	// missing. It stays the same for as long as the store keeps its data
	// and changes when the data is lost (a flush, a restart without
	// persistence), so that what was promised in an earlier generation
	// (grants) can be refused.
	Generation(ctx context.Context) (string, error)
	// Ping checks that the store is reachable.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
	DeliveryStore
}

// Decoy reports whether c is a decoy: a challenge made, for an account
// that does not exist or a number that cannot take a code, exactly like
// a real one but without a number, so that it sends nothing and no code
// opens it.
func (c *Challenge) Decoy() bool { return c.Phone == "" }

// clone returns a deep copy of c.
func (c *Challenge) clone() *Challenge {
	d := *c
	d.TxHash = append([]byte(nil), c.TxHash...)
	d.CodeMAC = append([]byte(nil), c.CodeMAC...)
	d.Deliveries = append([]Delivery(nil), c.Deliveries...)
	d.SealedCode = append([]byte(nil), c.SealedCode...)
	d.Stash = nil
	d.StashSlot, d.ExpiryQueue = "", ""
	return &d
}

// validate checks what every store needs of a new challenge.
func (c *Challenge) validate() error {
	switch {
	case c.ID == "":
		return errors.New("challenge without id")
	case len(c.CodeMAC) == 0:
		return errors.New("challenge without code")
	case !c.Expires.After(c.Created):
		return errors.New("challenge expires before it is created")
	case c.MaxAttempts < 1:
		return errors.New("challenge allows no attempt")
	}
	return nil
}

// newGeneration returns a fresh random generation marker.
func newGeneration() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// AttemptReserver is a Store that can begin an attempt and reserve a
// failure unit for it in one atomic step: the challenge's state is
// checked first (a challenge that is over reserves nothing: BeginErr is
// set, Reserved false), then the reservation (refused: Reserved false
// and no attempt spent), then the attempt. So only the attempts being
// compared hold units of the user's budget, and a request that is
// refused spends nothing. ok is false when it cannot (a Cluster keeps
// the two in different slots; a reservation that replicas must
// acknowledge); the caller then calls ReserveFailure, then BeginAttempt.
type AttemptReserver interface {
	ReserveAndBegin(ctx context.Context, failureKey string, max int, window time.Duration, id string, now time.Time) (r ReservedAttempt, ok bool)
}

// ReservedAttempt is what AttemptReserver.ReserveAndBegin returns: the
// results of ReserveFailure and of BeginAttempt.
type ReservedAttempt struct {
	// Failures, TTL, Reserved and ReserveErr are ReserveFailure's.
	Failures   int
	TTL        time.Duration
	Reserved   bool
	ReserveErr error
	// MAC, Attempts and BeginErr are BeginAttempt's.
	MAC      []byte
	Attempts int
	BeginErr error
}

// ConsumeRefunder is a Store that can consume a challenge and give back
// a failure unit in one round trip: what Consume and then RefundFailure
// do, both always done, the refund whatever the consume's outcome.
// ok is false when it cannot (a consume that replicas must acknowledge:
// its refund depends on that); the caller then makes the two calls.
type ConsumeRefunder interface {
	ConsumeRefund(ctx context.Context, id string, mac []byte, now time.Time, method, key string) (consumeErr, refundErr error, ok bool)
}
