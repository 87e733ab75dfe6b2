package stepup

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// Revocation: an operator (or the app, through the store) can end every
// grant of a user at once. The store keeps the time of the last
// revocation per user; each instance caches it for at most
// revokeCacheTTL, so a revocation takes effect everywhere within a
// second while a grant check costs a store round trip at most once a
// second per user.
//
// Most grants need not even that: the store also keeps the latest
// revocation of anyone (store.AnyKey), which each instance reads at most
// once a second for all users. A grant issued after it cannot have been
// revoked, so only grants older than the last revocation look up their
// own user's.
const (
	revokeCacheTTL = time.Second
	// revokeCacheMax bounds the cache; past it, it starts afresh.
	revokeCacheMax = 100_000
)

type revocations struct {
	m    sync.Map // user key -> revEntry
	size atomic.Int64
	// any is the latest revocation of anyone (a *revEntry); refreshing
	// it is one request's job at a time.
	any     atomic.Pointer[revEntry]
	anyLock sync.Mutex
}

type revEntry struct {
	at, fetched time.Time
}

// revoked reports whether a grant of user issued at issued was revoked.
func (e *Engine) revoked(ctx context.Context, user string, issued time.Time) (bool, error) {
	now := e.now()
	if last, ok := e.lastRevocation(ctx, now); ok && issued.After(last) {
		return false, nil
	}
	userKey := e.keys.userKey(user)
	v, cached := e.revs.m.Load(userKey)
	var ent revEntry
	if cached {
		ent = v.(revEntry)
		if now.Sub(ent.fetched) < revokeCacheTTL {
			return ent.revokes(issued), nil
		}
	}
	at, err := e.store.RevokedAt(ctx, userKey)
	if err != nil {
		if cached && now.Sub(ent.fetched) < e.cfg.revocationGrace() {
			return ent.revokes(issued), nil
		}
		return false, err
	}
	if !cached && e.revs.size.Add(1) > revokeCacheMax {
		e.revs.m.Clear()
		e.revs.size.Store(1)
	}
	ent = revEntry{at: at, fetched: now}
	e.revs.m.Store(userKey, ent)
	return ent.revokes(issued), nil
}

// lastRevocation returns the latest revocation of any user, as read
// from the store within the last revokeCacheTTL; while another request
// refreshes it, or when the store fails, the value read before serves
// for up to revokeStale (as a user's own cached value does). ok is false
// when no such value is at hand; the caller then looks up the user's
// own.
func (e *Engine) lastRevocation(ctx context.Context, now time.Time) (last time.Time, ok bool) {
	ent := e.revs.any.Load()
	if ent != nil && now.Sub(ent.fetched) < revokeCacheTTL {
		return ent.at, true
	}
	stale := func() (time.Time, bool) {
		if ent != nil && now.Sub(ent.fetched) < e.cfg.revocationGrace() {
			return ent.at, true
		}
		return time.Time{}, false
	}
	if !e.revs.anyLock.TryLock() {
		return stale()
	}
	defer e.revs.anyLock.Unlock()
	if ent = e.revs.any.Load(); ent != nil && now.Sub(ent.fetched) < revokeCacheTTL {
		return ent.at, true
	}
	at, err := e.store.RevokedAt(ctx, store.AnyKey)
	if err != nil {
		return stale()
	}
	e.revs.any.Store(&revEntry{at: at, fetched: now})
	return at, true
}

// revokes: grants carry their issue time in whole seconds, so a grant
// issued in the same second as the revocation counts as revoked.
func (r revEntry) revokes(issued time.Time) bool {
	return !r.at.IsZero() && !issued.After(r.at)
}

// RevokeUser ends every grant of user issued until now, on every
// instance sharing the store (within a second).
func (e *Engine) RevokeUser(ctx context.Context, user string) error {
	key := e.keys.userKey(user)
	if err := e.store.Revoke(ctx, key, e.now(), MaxGrantTTL); err != nil {
		return err
	}
	e.revs.m.Delete(key)
	// Under the lock, so that no refresh that began before the
	// revocation stores its older value after this.
	e.revs.anyLock.Lock()
	e.revs.any.Store(nil)
	e.revs.anyLock.Unlock()
	return nil
}
