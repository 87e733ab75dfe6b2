package stepup

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// The store generation: a marker the store keeps without expiry, which
// changes when the store loses its data (a Redis restarted empty, a
// FLUSHALL) or may have rolled back (a Redis restarted from a snapshot:
// see store.Redis.Generation). Every grant and challenge is bound to the generation it was
// made in, so that a data loss, which also loses the records that make
// grants single-use and revocations stick, can never re-open them: after
// it, every earlier grant and challenge is refused.
//
// Each instance reads the generation at most once per revokeCacheTTL,
// with the revocation state; while the store is unreachable the value
// read last serves for up to the revocation grace (Config.RevocationGrace),
// as the revocation state does, never longer, and never once a newer
// generation was read.

type genEntry struct {
	gen     string
	fetched time.Time
}

type generations struct {
	cur  atomic.Pointer[genEntry]
	lock sync.Mutex
	// warned: the warning that the store cannot tell a restart of its
	// Redis was logged.
	warned atomic.Bool
}

// restartChecker is a store that may be unable to tell a restart from an
// older snapshot (store.Redis, when INFO is refused).
type restartChecker interface{ RestartCheck() error }

// generation returns the store's current generation.
func (e *Engine) generation(ctx context.Context) (string, error) {
	now := e.now()
	ent := e.gens.cur.Load()
	if ent != nil && now.Sub(ent.fetched) < revokeCacheTTL {
		return ent.gen, nil
	}
	e.gens.lock.Lock()
	defer e.gens.lock.Unlock()
	if ent = e.gens.cur.Load(); ent != nil && now.Sub(ent.fetched) < revokeCacheTTL {
		return ent.gen, nil
	}
	gen, err := e.store.Generation(ctx)
	if err != nil {
		if ent != nil && now.Sub(ent.fetched) < e.cfg.revocationGrace() {
			return ent.gen, nil
		}
		return "", err
	}
	e.gens.cur.Store(&genEntry{gen: gen, fetched: now})
	if rc, ok := e.store.(restartChecker); ok && !e.gens.warned.Load() {
		if err := rc.RestartCheck(); err != nil && e.gens.warned.CompareAndSwap(false, true) {
			e.log.Warn("the store cannot tell a restart of Redis from an older snapshot, so a used transaction grant or a revoked grant "+
				"may open again after Redis restarts from a snapshot or an AOF that misses the last writes; grant the stepup user +info "+
				"(see docs/PRODUCTION.md, Data loss)", zap.Error(err))
		}
	}
	return gen, nil
}
