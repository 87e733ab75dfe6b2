package stepup

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Revocation: an operator (or the app, through the store) can end every
// grant of a user at once. The store keeps the time of the last
// revocation per user; each instance caches it for at most
// revokeCacheTTL, so a revocation takes effect everywhere within a
// second while a grant check costs a store round trip at most once a
// second per user.
const (
	revokeCacheTTL = time.Second
	// revokeStale is how long a cached value still serves when the store
	// is unreachable; past it, grant checks fail closed.
	revokeStale = 30 * time.Second
	// revokeCacheMax bounds the cache; past it, it starts afresh.
	revokeCacheMax = 100_000
)

type revocations struct {
	m    sync.Map // user key -> revEntry
	size atomic.Int64
}

type revEntry struct {
	at, fetched time.Time
}

// revoked reports whether a grant of userKey issued at issued was revoked.
func (e *Engine) revoked(ctx context.Context, userKey string, issued time.Time) (bool, error) {
	now := time.Now()
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
		if cached && now.Sub(ent.fetched) < revokeStale {
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
	return nil
}
