package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// The SMS-pumping defense's state: sends and verified codes per number
// prefix and per country calling code over a sliding window, and the
// prefixes blocked (or, in monitor mode, flagged) because their codes are
// sent but not verified.
//
// The window is PumpBuckets fixed sub-buckets: a count covers the
// current bucket and the PumpBuckets-1 before it, so it spans between
// (PumpBuckets-1)/PumpBuckets of the window and the whole window, and
// old buckets fall off as time goes, without a timer.

// PumpBuckets is how many sub-buckets a window is counted in.
const PumpBuckets = 6

// PumpRule is how a prefix's conversion is judged by PumpSend.
type PumpRule struct {
	// Window is how far back sends and verifications are counted.
	Window time.Duration
	// MinSends is how many sends a prefix needs in the window before its
	// conversion is judged.
	MinSends int
	// MinConversion is the lowest share of verified sends, in percent,
	// that a prefix with MinSends sends may have without being blocked.
	MinConversion int
	// BlockFor is how long a block (or a flag, in monitor mode) lasts.
	BlockFor time.Duration
	// Enforce makes a block refuse sends; without it a prefix whose
	// conversion collapsed is only flagged (monitor mode).
	Enforce bool
}

// check reports what makes r unusable.
func (r PumpRule) check() error {
	if r.Window < PumpBuckets*time.Millisecond || r.MinSends < 1 || r.MinConversion < 0 || r.MinConversion > 100 || r.BlockFor < time.Millisecond {
		return fmt.Errorf("pumping rule out of range: %+v", r)
	}
	return nil
}

// width is the length of one sub-bucket.
func (r PumpRule) width() time.Duration { return r.Window / PumpBuckets }

// PumpResult is what PumpSend found.
type PumpResult struct {
	// Blocked: an enforced block of the prefix is in place; the send is
	// refused and nothing was counted. Retry is the time the block has
	// left.
	Blocked bool
	Retry   time.Duration
	// NewBlock: this send brought the prefix's conversion under the
	// rule, and the prefix was blocked (Enforce) or flagged now, for
	// BlockFor. The send that did it is not refused: the next ones are.
	NewBlock bool
	// Sends and Verified are the prefix's counts in the window, this
	// send included; CountrySends and CountryVerified its country's.
	Sends, Verified               int
	CountrySends, CountryVerified int
}

// PrefixBlocks counts the blocked prefixes of a store.
type PrefixBlocks struct {
	// Blocked counts prefixes whose sends are refused (enforce mode);
	// Flagged those a monitor-mode defense would have blocked.
	Blocked, Flagged int
	// Truncated: a Redis scan stopped at its bound; the counts are lower
	// bounds.
	Truncated bool
}

// PumpingStore is implemented by stores that keep the SMS-pumping
// defense's state (Memory and Redis). A prefix is a number in E.164 form
// without its last four digits ("+4477009001" for "+447700900123"), and
// country its calling code ("44"); both come from the engine, which
// checks them.
type PumpingStore interface {
	// PumpSend counts one send to prefix, unless an enforced block of it
	// is in place (then nothing is counted: Blocked), and judges the
	// prefix's conversion under r, blocking or flagging it for
	// r.BlockFor when it has at least r.MinSends sends and fewer than
	// r.MinConversion percent of them verified. It is one atomic step
	// (one round trip on Redis). A flag of a monitor-mode defense does
	// not block when the rule enforces: the prefix is judged again, and
	// blocked when its conversion is still under the rule.
	PumpSend(ctx context.Context, country, prefix string, r PumpRule, now time.Time) (PumpResult, error)
	// PumpVerified counts one verified code for prefix and its country.
	PumpVerified(ctx context.Context, country, prefix string, window time.Duration, now time.Time) error
	// UnblockPrefix lifts the block or flag of prefix and forgets its
	// counts (so that the next send does not block it again at once). It
	// reports whether there was a block or flag.
	UnblockPrefix(ctx context.Context, country, prefix string) (bool, error)
	// PrefixBlocks counts the blocked and flagged prefixes, looking at
	// no more than limit keys (on each master of a Redis Cluster).
	PrefixBlocks(ctx context.Context, limit int) (PrefixBlocks, error)
}

// Block markers: an enforced block, or a monitor-mode flag.
const (
	pumpEnforced = "e"
	pumpFlagged  = "m"
)

// memPump is the memory store's pumping state, guarded by Memory.mu.
type memPump struct {
	blocks  map[string]memBlock
	windows map[string]*memWindow
}

type memBlock struct {
	mark   string
	expire time.Time
}

// memWindow holds the counts of one prefix or country by bucket index.
type memWindow struct {
	sends, verified map[int64]int
	expire          time.Time
}

func (p *memPump) init() {
	if p.blocks == nil {
		p.blocks = make(map[string]memBlock)
		p.windows = make(map[string]*memWindow)
	}
}

// window returns the window of key, counting bucket cur, with buckets
// older than the window dropped; a new one when there is none.
func (p *memPump) window(key string, cur int64, width time.Duration, now time.Time) *memWindow {
	w, ok := p.windows[key]
	if !ok || !now.Before(w.expire) {
		w = &memWindow{sends: map[int64]int{}, verified: map[int64]int{}}
		p.windows[key] = w
	}
	for _, m := range []map[int64]int{w.sends, w.verified} {
		for i := range m {
			if i <= cur-PumpBuckets {
				delete(m, i)
			}
		}
	}
	w.expire = now.Add(width * (PumpBuckets + 1))
	return w
}

func (w *memWindow) totals() (sends, verified int) {
	for _, n := range w.sends {
		sends += n
	}
	for _, n := range w.verified {
		verified += n
	}
	return sends, verified
}

func (p *memPump) sweep(now time.Time) {
	for k, b := range p.blocks {
		if !now.Before(b.expire) {
			delete(p.blocks, k)
		}
	}
	for k, w := range p.windows {
		if !now.Before(w.expire) {
			delete(p.windows, k)
		}
	}
}

func bucket(now time.Time, width time.Duration) int64 {
	return now.UnixMilli() / max(1, width.Milliseconds())
}

// Converting reports whether sends and verified meet r: fewer than
// MinSends sends, or at least MinConversion percent of them verified.
func (r PumpRule) Converting(sends, verified int) bool {
	return sends < r.MinSends || verified*100 >= r.MinConversion*sends
}

// PumpSend implements PumpingStore.
func (m *Memory) PumpSend(_ context.Context, country, prefix string, r PumpRule, now time.Time) (PumpResult, error) {
	if err := r.check(); err != nil {
		return PumpResult{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pump.init()
	key := country + " " + prefix
	b, marked := m.pump.blocks[key]
	if marked && !now.Before(b.expire) {
		marked = false
	}
	if marked && b.mark == pumpEnforced && r.Enforce {
		return PumpResult{Blocked: true, Retry: b.expire.Sub(now)}, nil
	}
	width := r.width()
	cur := bucket(now, width)
	var res PumpResult
	pw := m.pump.window(key, cur, width, now)
	pw.sends[cur]++
	res.Sends, res.Verified = pw.totals()
	cw := m.pump.window(country, cur, width, now)
	cw.sends[cur]++
	res.CountrySends, res.CountryVerified = cw.totals()
	if (!marked || (b.mark == pumpFlagged && r.Enforce)) && !r.Converting(res.Sends, res.Verified) {
		mark := pumpFlagged
		if r.Enforce {
			mark = pumpEnforced
		}
		m.pump.blocks[key] = memBlock{mark: mark, expire: now.Add(r.BlockFor)}
		res.NewBlock = true
	}
	return res, nil
}

// PumpVerified implements PumpingStore.
func (m *Memory) PumpVerified(_ context.Context, country, prefix string, window time.Duration, now time.Time) error {
	if window < PumpBuckets*time.Millisecond {
		return errors.New("pumping window too short")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pump.init()
	width := window / PumpBuckets
	cur := bucket(now, width)
	m.pump.window(country+" "+prefix, cur, width, now).verified[cur]++
	m.pump.window(country, cur, width, now).verified[cur]++
	return nil
}

// UnblockPrefix implements PumpingStore.
func (m *Memory) UnblockPrefix(_ context.Context, country, prefix string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pump.init()
	key := country + " " + prefix
	b, ok := m.pump.blocks[key]
	delete(m.pump.blocks, key)
	delete(m.pump.windows, key)
	return ok && m.now().Before(b.expire), nil
}

// PrefixBlocks implements PumpingStore: exact counts.
func (m *Memory) PrefixBlocks(_ context.Context, _ int) (PrefixBlocks, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var pb PrefixBlocks
	for _, b := range m.pump.blocks {
		switch {
		case !now.Before(b.expire):
		case b.mark == pumpEnforced:
			pb.Blocked++
		default:
			pb.Flagged++
		}
	}
	return pb, nil
}

// Redis keys of the pumping defense, all under the country's hash tag so
// that one script reads and writes a prefix's block, its window and its
// country's window (Cluster-safe; sends are few enough that a country's
// slot is never hot):
//
//	PREFIXpb:{CC}:PREFIX  string: block "e" or monitor flag "m", PX block_for
//	PREFIXpw:{CC}:PREFIX  hash: the prefix's window, "s<bucket>" and "v<bucket>" counts
//	PREFIXpw:{CC}         hash: the country's window, alike
func (s *Redis) pumpBlockKey(cc, prefix string) string { return s.prefix + "pb:{" + cc + "}:" + prefix }
func (s *Redis) pumpPrefixKey(cc, prefix string) string {
	return s.prefix + "pw:{" + cc + "}:" + prefix
}
func (s *Redis) pumpCountryKey(cc string) string { return s.prefix + "pw:{" + cc + "}" }

var (
	// pumpWindowLua counts into a window hash and sums it, dropping
	// buckets that left the window. It is a function of the scripts
	// below: count(key, field or nil, cur, n, ttl) returns sends, verified.
	pumpWindowLua = `
local function count(key, field, cur, n, ttl)
  if field then redis.call('HINCRBY', key, field .. string.format('%d', cur), 1) end
  local all = redis.call('HGETALL', key)
  local s, v = 0, 0
  for i = 1, #all, 2 do
    local f = all[i]
    local idx = tonumber(string.sub(f, 2))
    if not idx or idx <= cur - n then
      redis.call('HDEL', key, f)
    elseif string.sub(f, 1, 1) == 's' then
      s = s + tonumber(all[i + 1])
    else
      v = v + tonumber(all[i + 1])
    end
  end
  redis.call('PEXPIRE', key, ttl)
  return s, v
end
`

	// KEYS[1] block, KEYS[2] prefix window, KEYS[3] country window;
	// ARGV: now ms, bucket width ms, buckets, min sends, min conversion
	// (percent), block for ms, enforce ("1"/"0").
	// Returns {blocked, new block, sends, verified, country sends,
	// country verified, block pttl}.
	scriptPumpSend = redis.NewScript(pumpWindowLua + `
local b = redis.call('GET', KEYS[1])
local enforce = ARGV[7] == '1'
if b == 'e' and enforce then
  return {1, 0, 0, 0, 0, 0, redis.call('PTTL', KEYS[1])}
end
local width = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local cur = math.floor(tonumber(ARGV[1]) / width)
local ttl = width * (n + 1)
local s, v = count(KEYS[2], 's', cur, n, ttl)
local cs, cv = count(KEYS[3], 's', cur, n, ttl)
local new = 0
if (not b or (b == 'm' and enforce)) and s >= tonumber(ARGV[4]) and v * 100 < tonumber(ARGV[5]) * s then
  local mark = 'm'
  if enforce then mark = 'e' end
  redis.call('SET', KEYS[1], mark, 'PX', ARGV[6])
  new = 1
end
return {0, new, s, v, cs, cv, 0}`)

	// KEYS[1] prefix window, KEYS[2] country window; ARGV: now ms,
	// bucket width ms, buckets.
	scriptPumpVerified = redis.NewScript(pumpWindowLua + `
local width = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local cur = math.floor(tonumber(ARGV[1]) / width)
local ttl = width * (n + 1)
count(KEYS[1], 'v', cur, n, ttl)
count(KEYS[2], 'v', cur, n, ttl)
return 1`)

	// KEYS[1] block, KEYS[2] prefix window. Returns 1 when a block or
	// flag was lifted.
	scriptUnblock = redis.NewScript(`
local had = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
return had`)
)

// PumpSend implements PumpingStore, in one script.
func (s *Redis) PumpSend(ctx context.Context, country, prefix string, r PumpRule, now time.Time) (PumpResult, error) {
	if err := r.check(); err != nil {
		return PumpResult{}, err
	}
	enforce := "0"
	if r.Enforce {
		enforce = "1"
	}
	v, err := scriptPumpSend.Run(ctx, s.client,
		[]string{s.pumpBlockKey(country, prefix), s.pumpPrefixKey(country, prefix), s.pumpCountryKey(country)},
		ms(now), r.width().Milliseconds(), PumpBuckets, r.MinSends, r.MinConversion, r.BlockFor.Milliseconds(), enforce).Int64Slice()
	if err != nil {
		return PumpResult{}, fmt.Errorf("counting a send for the pumping defense: %w", err)
	}
	if len(v) != 7 {
		return PumpResult{}, fmt.Errorf("counting a send for the pumping defense: unexpected answer %v", v)
	}
	res := PumpResult{Blocked: v[0] == 1, NewBlock: v[1] == 1, Sends: int(v[2]), Verified: int(v[3]),
		CountrySends: int(v[4]), CountryVerified: int(v[5])}
	if res.Blocked {
		res.Retry = time.Duration(max(v[6], 0)) * time.Millisecond
	}
	return res, nil
}

// PumpVerified implements PumpingStore, in one script.
func (s *Redis) PumpVerified(ctx context.Context, country, prefix string, window time.Duration, now time.Time) error {
	if window < PumpBuckets*time.Millisecond {
		return errors.New("pumping window too short")
	}
	err := scriptPumpVerified.Run(ctx, s.client, []string{s.pumpPrefixKey(country, prefix), s.pumpCountryKey(country)},
		ms(now), (window / PumpBuckets).Milliseconds(), PumpBuckets).Err()
	if err != nil {
		return fmt.Errorf("counting a verified code for the pumping defense: %w", err)
	}
	return nil
}

// UnblockPrefix implements PumpingStore.
func (s *Redis) UnblockPrefix(ctx context.Context, country, prefix string) (bool, error) {
	n, err := scriptUnblock.Run(ctx, s.client, []string{s.pumpBlockKey(country, prefix), s.pumpPrefixKey(country, prefix)}).Int()
	if err != nil {
		return false, fmt.Errorf("unblocking prefix: %w", err)
	}
	return n == 1, nil
}

// PrefixBlocks implements PumpingStore with SCAN over the block keys,
// read-only, on each master of a Cluster.
func (s *Redis) PrefixBlocks(ctx context.Context, limit int) (PrefixBlocks, error) {
	var pb PrefixBlocks
	count := func(ctx context.Context, c redis.Cmdable) error {
		keys, more, err := scanKeys(ctx, c, s.prefix+"pb:{*}:*", limit)
		if err != nil {
			return err
		}
		pb.Truncated = pb.Truncated || more
		if len(keys) == 0 {
			return nil
		}
		pipe := c.Pipeline()
		gets := make([]*redis.StringCmd, len(keys))
		for i, k := range keys {
			gets[i] = pipe.Get(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return err
		}
		for _, g := range gets {
			switch g.Val() {
			case pumpEnforced:
				pb.Blocked++
			case pumpFlagged:
				pb.Flagged++
			}
		}
		return nil
	}
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		var masters []*redis.Client
		if err := cc.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
			mu.Lock()
			masters = append(masters, c)
			mu.Unlock()
			return nil
		}); err != nil {
			return pb, err
		}
		for _, m := range masters {
			if err := count(ctx, m); err != nil {
				return pb, err
			}
		}
		return pb, nil
	}
	return pb, count(ctx, s.client)
}

var (
	_ PumpingStore = (*Memory)(nil)
	_ PumpingStore = (*Redis)(nil)
)
