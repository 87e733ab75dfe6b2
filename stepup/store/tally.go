package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Delivery tallies: hourly counts of what became of codes (sent,
// verified, abandoned, delivered, undelivered, failed over) by policy,
// sender, channel and country calling code, for shops without
// Prometheus (`caddy stepup stats`). They name nobody.
//
//	PREFIXds:{YYYYMMDDHH}  hash: field TallyKey -> count, kept TallyRetention

// TallyRetention is how long an hour's tallies are kept.
const TallyRetention = 8 * 24 * time.Hour

// TallyKey is the field a count is kept under: its kind ("sent",
// "verified", "abandoned", "delivered", "delivered_ms" (the sum of the
// times to deliver), "undelivered", "failover"), then the policy, sender,
// channel and country calling code, separated by '|' (a '|' in a value
// becomes '_').
func TallyKey(kind, policy, sender, channel, country string) string {
	clean := func(s string) string { return strings.ReplaceAll(s, "|", "_") }
	return kind + "|" + clean(policy) + "|" + clean(sender) + "|" + clean(channel) + "|" + clean(country)
}

// ParseTallyKey splits a TallyKey.
func ParseTallyKey(k string) (kind, policy, sender, channel, country string, ok bool) {
	p := strings.Split(k, "|")
	if len(p) != 5 {
		return "", "", "", "", "", false
	}
	return p[0], p[1], p[2], p[3], p[4], true
}

func (s *Redis) tallyKey(hour time.Time) string {
	return s.prefix + "ds:{" + hour.UTC().Format("2006010215") + "}"
}

// AddTallies adds counts (by TallyKey) to the tallies of the hour at
// falls in, in one pipeline.
func (s *Redis) AddTallies(ctx context.Context, at time.Time, counts map[string]int64) error {
	if len(counts) == 0 {
		return nil
	}
	k := s.tallyKey(at)
	pipe := s.client.Pipeline()
	for f, n := range counts {
		pipe.HIncrBy(ctx, k, f, n)
	}
	pipe.Expire(ctx, k, TallyRetention)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("adding tallies: %w", err)
	}
	return nil
}

// Tallies sums the tallies of the hours from from to to, both included.
func (s *Redis) Tallies(ctx context.Context, from, to time.Time) (map[string]int64, error) {
	pipe := s.client.Pipeline()
	var cmds []*redis.MapStringStringCmd
	for h := from.UTC().Truncate(time.Hour); !h.After(to); h = h.Add(time.Hour) {
		cmds = append(cmds, pipe.HGetAll(ctx, s.tallyKey(h)))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reading tallies: %w", err)
	}
	out := map[string]int64{}
	for _, c := range cmds {
		for f, v := range c.Val() {
			n, _ := strconv.ParseInt(v, 10, 64)
			out[f] += n
		}
	}
	return out, nil
}
