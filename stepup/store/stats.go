package store

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Stats are counts an operator can watch. They name nobody: no user,
// number or key.
type Stats struct {
	// Pending is how many challenges are waiting for their code: neither
	// verified nor expired.
	Pending int
	// Locked is how many users (per secret) have at least the given
	// number of failed codes counted, so that they are locked out.
	Locked int
	// Scanned is how many keys were looked at; Truncated is true when
	// the scan stopped at its bound, so that the counts are lower bounds.
	Scanned   int
	Truncated bool
}

// StatsReader is implemented by stores that can count their pending
// challenges and locked users (Memory and Redis).
type StatsReader interface {
	// Stats counts pending challenges and the users with maxFailures or
	// more failures, looking at no more than limit keys of each kind.
	Stats(ctx context.Context, maxFailures, limit int) (Stats, error)
}

// Stats implements StatsReader: exact counts, under the store's lock.
func (m *Memory) Stats(_ context.Context, maxFailures, _ int) (Stats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var st Stats
	for _, mc := range m.challenges {
		st.Scanned++
		if mc.c.Used.IsZero() && now.Before(mc.c.Expires) {
			st.Pending++
		}
	}
	for _, f := range m.failures {
		st.Scanned++
		if now.Before(f.expire) && f.n >= maxFailures {
			st.Locked++
		}
	}
	return st, nil
}

// Stats implements StatsReader with SCAN, read-only, looking at no more
// than limit keys of each kind (on each master of a Cluster): challenge
// hashes (PREFIX{ID}, fields "u" and "e" read in one pipeline) and
// failure counters (PREFIXf:{KEY}). Counters kept on every create and
// verification would cost each request a write, and could not see keys
// leave by TTL; a scan costs only the operator who asks.
func (s *Redis) Stats(ctx context.Context, maxFailures, limit int) (Stats, error) {
	var st Stats
	count := func(ctx context.Context, c redis.Cmdable) error {
		now := time.Now().UnixMilli()
		// The prefix holds no glob characters (letters, digits, ':' '_'
		// '-' '.' '/'), so it matches itself.
		keys, more, err := scanKeys(ctx, c, s.prefix+"{*}", limit)
		if err != nil {
			return err
		}
		st.Scanned += len(keys)
		st.Truncated = st.Truncated || more
		pipe := c.Pipeline()
		cmds := make([]*redis.SliceCmd, len(keys))
		for i, k := range keys {
			cmds[i] = pipe.HMGet(ctx, k, fUsed, fExpires)
		}
		if len(keys) > 0 {
			if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
				return err
			}
		}
		for _, cmd := range cmds {
			v, err := cmd.Result()
			if err != nil || len(v) != 2 {
				continue
			}
			used, _ := v[0].(string)
			exp, _ := v[1].(string)
			e, _ := strconv.ParseInt(exp, 10, 64)
			if (used == "" || used == "0") && e > now {
				st.Pending++
			}
		}
		keys, more, err = scanKeys(ctx, c, s.prefix+"f:{*}", limit)
		if err != nil {
			return err
		}
		st.Scanned += len(keys)
		st.Truncated = st.Truncated || more
		pipe = c.Pipeline()
		gets := make([]*redis.StringCmd, len(keys))
		for i, k := range keys {
			gets[i] = pipe.Get(ctx, k)
		}
		if len(keys) > 0 {
			if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
				return err
			}
		}
		for _, g := range gets {
			if n, err := g.Int(); err == nil && n >= maxFailures {
				st.Locked++
			}
		}
		return nil
	}
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		// ForEachMaster runs fn concurrently; count one master at a time.
		var mu sync.Mutex
		var masters []*redis.Client
		err := cc.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
			mu.Lock()
			masters = append(masters, c)
			mu.Unlock()
			return nil
		})
		if err != nil {
			return st, err
		}
		for _, m := range masters {
			if err := count(ctx, m); err != nil {
				return st, err
			}
		}
		return st, nil
	}
	return st, count(ctx, s.client)
}

// scanKeys returns up to limit keys matching pattern, and whether more
// may exist.
func scanKeys(ctx context.Context, c redis.Cmdable, pattern string, limit int) ([]string, bool, error) {
	var out []string
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return out, false, err
		}
		out = append(out, keys...)
		if len(out) >= limit {
			return out[:limit], next != 0 || len(out) > limit, nil
		}
		if next == 0 {
			return out, false, nil
		}
		cursor = next
	}
}
