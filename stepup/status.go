package stepup

import (
	"context"
	"time"

	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// Operator actions and status, for the Caddy adapter's admin API and
// commands. They act on the running engine, so they work with the memory
// store too, whose state lives only in this process.

// UnlockUser clears the failed-code count of user, under the current
// secret and every previous one (instances still on an older secret
// during a rotation count failures under its key), ending a lockout. It
// returns how many failures were cleared.
func (e *Engine) UnlockUser(ctx context.Context, user string) (int, error) {
	total := 0
	for _, k := range e.all {
		key := e.challengeUserKey(k, user)
		n, _, err := e.store.Failures(ctx, key)
		if err != nil {
			return total, err
		}
		if err := e.store.ClearFailures(ctx, key); err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// RevokeUserEverywhere ends every grant of user issued until now, as
// RevokeUser does, and records the revocation under every previous
// secret's key as well, so that instances still on an older secret
// during a rotation see it too. It returns the time revoked up to.
func (e *Engine) RevokeUserEverywhere(ctx context.Context, user string) (time.Time, error) {
	now := e.now()
	if err := e.RevokeUser(ctx, user); err != nil {
		return now, err
	}
	for _, k := range e.all[1:] {
		if err := e.store.Revoke(ctx, k.userKey(user), now, MaxGrantTTL); err != nil {
			return now, err
		}
	}
	return now, nil
}

// StoreStatus is what an operator sees of an engine's store.
type StoreStatus struct {
	// Kind is "memory" or "redis".
	Kind string
	// Reachable: a ping answered, in Latency. Error says why not.
	Reachable bool
	Latency   time.Duration
	Error     string
	// Stats are the store's counts (nil when it cannot count);
	// StatsError says why they are missing.
	Stats      *store.Stats
	StatsError string
}

// StoreStatus pings the store and counts its pending challenges and the
// users locked out under this engine's max_failures, looking at no more
// than limit keys of each kind. It names nobody.
func (e *Engine) StoreStatus(ctx context.Context, limit int) StoreStatus {
	var st StoreStatus
	switch e.store.(type) {
	case *store.Memory:
		st.Kind = "memory"
	case *store.Redis:
		st.Kind = "redis"
	default:
		st.Kind = "other"
	}
	start := time.Now()
	if err := e.store.Ping(ctx); err != nil {
		st.Error = err.Error()
		return st
	}
	st.Reachable, st.Latency = true, time.Since(start)
	sr, ok := e.store.(store.StatsReader)
	if !ok {
		st.StatsError = "this store cannot count"
		return st
	}
	stats, err := sr.Stats(ctx, e.cfg.MaxFailures, limit)
	if err != nil {
		st.StatsError = err.Error()
		return st
	}
	st.Stats = &stats
	return st
}
