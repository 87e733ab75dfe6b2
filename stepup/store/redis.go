package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// FormatVersion is the version of the layout and encoding of the keys
// this package writes (see Redis): the key names, the challenge hash's
// fields, the values of counters, grant records and revocations. It
// changes when a release writes something that an instance of the
// previous release would misread, or reads differently what it wrote;
// instances that share one store must then be upgraded together (see
// docs/PRODUCTION.md, "Versions and upgrades").
//
// Version 1: the layout documented on Redis, with challenges bound to
// mode, policy version, scope and store generation.
const FormatVersion = 1

// Redis is a Store on Redis (standalone, Sentinel or Cluster: any
// redis.UniversalClient).
//
// Keys, under the configured prefix:
//
//	PREFIX{ID}        hash: one challenge
//	PREFIX{ID}:s      string: its stashed request (empty once sent)
//	PREFIXp:{KEY}     string: pending-challenge pointer
//	PREFIXss:{SLOT}   string: stash slot, the id of the challenge whose
//	                  stash the slot keeps
//	PREFIXf:{KEY}     string: failure counter
//	PREFIXg:{ID}      string: a single-use grant's issuance record ("i"
//	                  while unused, "u" once used)
//	PREFIXrv:{KEY}    string: a user's last revocation (Unix ms)
//	PREFIXm:{MSG}     string: a message pointer, "ID:i" (see AddDelivery)
//	PREFIXfo:{QUEUE}  sorted set: a failover queue (see ScheduleFailover)
//	PREFIXgen         string: the store generation marker
//	PREFIXgen:run...  hash: the run id of the Redis process that last
//	                  confirmed the marker (r) and when (t, Unix ms by
//	                  that server's clock); in the marker's Cluster slot
//	rate:PREFIXr:{KEY} string: a rate limit (go-redis/redis_rate puts its
//	                  own "rate:" before every key)
//
// The braces are Redis Cluster hash tags: each script touches one key, or
// two keys of one tag (a challenge and its stash), so every operation is
// atomic and Cluster-safe. Every key has a TTL except the generation
// marker and its run record, which must outlive everything else to notice
// their loss: they are two small keys per prefix.
//
// Redis must not evict keys (maxmemory-policy noeviction, the default):
// an evicted failure counter or grant record is lost data, and only the
// loss of the generation marker itself is noticed.
type Redis struct {
	client  redis.UniversalClient
	prefix  string
	owned   bool
	limiter *redis_rate.Limiter

	waitReplicas int
	waitTimeout  time.Duration

	// runKey is the generation marker's run record; restartOff, when
	// set, says why Generation cannot tell a restart of the marker's
	// Redis (a string).
	runKey     string
	restartOff atomic.Value
}

// RedisOptions configure a Redis store made by NewRedisWith.
type RedisOptions struct {
	// Prefix goes before every key ("stepup:" when empty).
	Prefix string
	// Owned makes Close close the client; a client shared across
	// handlers is closed by whoever shares it.
	Owned bool
	// WaitReplicas, when above 0, makes every single-use consumption
	// (Consume, UseGrant, TakeStash), every spent failure
	// (ReserveFailure, AddFailure) and every Revoke wait until that many
	// replicas acknowledged the write: Redis WAIT, sent in one pipeline
	// with the write on the same connection to the key's master. Fewer
	// acknowledgements in time give ErrNotDurable. Writes whose loss in a
	// failover fails closed by themselves are not waited for: Create,
	// IssueGrant, RefundFailure, BeginAttempt (its count is bounded by
	// the waited per-user failure budget) and Resend.
	WaitReplicas int
	// WaitTimeout bounds each wait. It is required with WaitReplicas and
	// must be shorter than the client's read timeout, which the wait's
	// answer is read under.
	WaitTimeout time.Duration
}

// NewRedis returns a store on client with keys under prefix ("stepup:"
// when empty). Close closes the client only when owned is true; a client
// shared across handlers is closed by whoever shares it.
func NewRedis(client redis.UniversalClient, prefix string, owned bool) *Redis {
	s, _ := NewRedisWith(client, RedisOptions{Prefix: prefix, Owned: owned})
	return s
}

// NewRedisWith returns a store on client configured by o. Waiting for
// replicas needs a *redis.Client (standalone or Sentinel) or a
// *redis.ClusterClient.
func NewRedisWith(client redis.UniversalClient, o RedisOptions) (*Redis, error) {
	if o.Prefix == "" {
		o.Prefix = "stepup:"
	}
	s := &Redis{client: client, prefix: o.Prefix, owned: o.Owned, limiter: redis_rate.NewLimiter(client)}
	s.runKey = runKey(s.generationKey())
	if _, ok := client.(*redis.ClusterClient); ok && hashTag(s.runKey) != hashTag(s.generationKey()) {
		s.restartOff.Store(fmt.Sprintf("the key prefix %q puts the generation marker and its run record in two Cluster slots", o.Prefix))
	}
	switch {
	case o.WaitReplicas < 0:
		return nil, errors.New("waiting for a negative number of replicas")
	case o.WaitReplicas == 0:
		return s, nil
	case o.WaitTimeout < time.Millisecond:
		return nil, errors.New("waiting for replicas needs a timeout of at least 1ms")
	}
	var read time.Duration
	switch c := client.(type) {
	case *redis.Client:
		read = c.Options().ReadTimeout
	case *redis.ClusterClient:
		read = c.Options().ReadTimeout
	default:
		return nil, fmt.Errorf("waiting for replicas needs a standalone, Sentinel or Cluster client, not %T", client)
	}
	if read > 0 && o.WaitTimeout >= read {
		return nil, fmt.Errorf("replica wait timeout %s must be shorter than the client's read timeout %s", o.WaitTimeout, read)
	}
	s.waitReplicas, s.waitTimeout = o.WaitReplicas, o.WaitTimeout
	return s, nil
}

// Client returns the underlying Redis client.
func (s *Redis) Client() redis.UniversalClient { return s.client }

func (s *Redis) challengeKey(id string) string { return s.prefix + "{" + id + "}" }
func (s *Redis) stashKey(id string) string     { return s.prefix + "{" + id + "}:s" }
func (s *Redis) grantKey(id string) string     { return s.prefix + "g:{" + id + "}" }
func (s *Redis) revokeKey(k string) string     { return s.prefix + "rv:{" + k + "}" }
func (s *Redis) pendingKey(k string) string    { return s.prefix + "p:{" + k + "}" }
func (s *Redis) failureKey(k string) string    { return s.prefix + "f:{" + k + "}" }
func (s *Redis) slotKey(k string) string       { return s.prefix + "ss:{" + k + "}" }
func (s *Redis) generationKey() string         { return s.prefix + "gen" }

// Hash fields of a challenge. Short names keep a pending challenge well
// under 1 KiB of Redis memory.
const (
	fPolicy   = "p"
	fUser     = "uk"
	fSession  = "sk"
	fPhone    = "ph"
	fReturn   = "r"
	fDesc     = "d"
	fTx       = "tx"
	fCreated  = "c"
	fExpires  = "e"
	fMax      = "x"
	fMAC      = "m"
	fAttempts = "a"
	fSends    = "n"
	fLastSend = "t"
	fSentBy   = "b"
	fFailed   = "f"
	fUsed     = "u"
	fStash    = "s"
	fRawUser  = "us"
	fHidden   = "hd"
	fMode     = "md"
	fPolicyV  = "pv"
	fScope    = "sc"
	fGen      = "g"
	fMethod   = "vm"
	// fSealed and the delivery fields: see delivery_redis.go.
	fSealed = "cz"
)

// Lua shared by the scripts below, so that each rule is written once.
const (
	// beginLua: beginCheck(key, now) says whether challenge key can take
	// an attempt at now: 'ok' and the MAC of its current code, or the
	// state that refuses it ('nf', 'used', 'exp', 'dead').
	beginLua = `
local function beginCheck(key, now)
  local v = redis.call('HMGET', key, 'e', 'u', 'a', 'x', 'm')
  if not v[1] then return 'nf' end
  if v[2] ~= '0' then return 'used' end
  if tonumber(v[1]) <= tonumber(now) then return 'exp' end
  if tonumber(v[3]) >= tonumber(v[4]) then return 'dead' end
  return 'ok', v[5]
end
`
	// reserveLua: reserve(key, max, window) takes one unit of failure
	// counter key unless max are taken (a counter without a TTL gets
	// window either way): whether it did, the count, and its PTTL.
	reserveLua = `
local function reserve(key, max, window)
  local n = tonumber(redis.call('GET', key) or '0')
  local ttl = redis.call('PTTL', key)
  if n >= tonumber(max) then
    if ttl == -1 then
      redis.call('PEXPIRE', key, window)
      ttl = tonumber(window)
    end
    return false, n, ttl
  end
  n = redis.call('INCR', key)
  if ttl < 0 then
    redis.call('PEXPIRE', key, window)
    ttl = tonumber(window)
  end
  return true, n, ttl
end
`
)

// Lua scripts. Each works on the keys of one challenge, one counter or
// one pointer, except scriptReserveBegin (a challenge and its user's
// counter, on one server). Times are Unix milliseconds passed by the
// caller, so that instances agree with their own clocks and tests can
// move time.
var (
	// KEYS[1] challenge, KEYS[2] stash; ARGV: stash ("" for none),
	// field/value pairs..., px. Both keys share the {ID} hash tag.
	scriptCreate = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2, #ARGV - 1))
redis.call('PEXPIRE', KEYS[1], ARGV[#ARGV])
if ARGV[1] ~= '' then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[#ARGV])
end
return 1`)

	// KEYS[1] challenge, KEYS[2] stash
	scriptTakeStash = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'u', 's')
if not v[1] or v[2] ~= '1' then return {'nf'} end
if v[1] == '0' then return {'pending'} end
local s = redis.call('GET', KEYS[2])
if not s then return {'nf'} end
if s == '' then return {'sent'} end
redis.call('SET', KEYS[2], '', 'KEEPTTL')
return {'ok', s}`)

	// KEYS[1] challenge; ARGV[1] now
	scriptBegin = redis.NewScript(beginLua + `
local st, mac = beginCheck(KEYS[1], ARGV[1])
if st ~= 'ok' then return {st} end
local a = redis.call('HINCRBY', KEYS[1], 'a', 1)
return {'ok', mac, a}`)

	// KEYS[1] challenge, KEYS[2] the user's failure counter (one server:
	// not under Cluster); ARGV[1] now, ARGV[2] max, ARGV[3] window ms.
	// scriptBegin's checks, then scriptReserveFailure's, then the
	// attempt: a challenge that is over reserves nothing, a refused
	// reservation spends no attempt. Returns {'ok', mac, attempts, n,
	// pttl}, {'locked', n, pttl} or scriptBegin's state.
	scriptReserveBegin = redis.NewScript(beginLua + reserveLua + `
local st, mac = beginCheck(KEYS[1], ARGV[1])
if st ~= 'ok' then return {st} end
local ok, n, ttl = reserve(KEYS[2], ARGV[2], ARGV[3])
if not ok then return {'locked', n, ttl} end
local a = redis.call('HINCRBY', KEYS[1], 'a', 1)
return {'ok', mac, a, n, ttl}`)

	// KEYS[1] challenge; ARGV[1] mac, ARGV[2] now, ARGV[3] method
	scriptConsume = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'e', 'u', 'm')
if not v[1] then return 'nf' end
if v[2] ~= '0' then return 'used' end
if tonumber(v[1]) <= tonumber(ARGV[2]) then return 'exp' end
if v[3] ~= ARGV[1] then return 'changed' end
redis.call('HSET', KEYS[1], 'u', ARGV[2], 'm', '', 'vm', ARGV[3])
return 'ok'`)

	// KEYS[1] challenge; ARGV[1] mac, ARGV[2] now, ARGV[3] cooldown, ARGV[4] max sends
	scriptResend = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'e', 'u', 'a', 'x', 'n', 't')
if not v[1] then return {'nf'} end
if v[2] ~= '0' then return {'used'} end
local now = tonumber(ARGV[2])
if tonumber(v[1]) <= now then return {'exp'} end
if tonumber(v[3]) >= tonumber(v[4]) then return {'dead'} end
local n = tonumber(v[5])
if n >= tonumber(ARGV[4]) then return {'limit', n} end
local t = tonumber(v[6])
if t > 0 then
  local wait = tonumber(ARGV[3]) - (now - t)
  if wait > 0 then return {'cool', wait} end
end
redis.call('HSET', KEYS[1], 'm', ARGV[1], 'n', n + 1, 't', now, 'b', '', 'f', '0')
return {'ok', n + 1}`)

	// KEYS[1] challenge; ARGV[1] sent by, ARGV[2] failed ("1"/"0")
	scriptRecordSend = redis.NewScript(`
local u = redis.call('HGET', KEYS[1], 'u')
if not u then return 'nf' end
if u ~= '0' then return 'ok' end
redis.call('HSET', KEYS[1], 'b', ARGV[1], 'f', ARGV[2])
if ARGV[2] == '1' then redis.call('HSET', KEYS[1], 't', 0) end
return 'ok'`)

	// KEYS[1] revocation; ARGV[1] at ms, ARGV[2] ttl ms
	scriptRevoke = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur > tonumber(ARGV[1]) then
	if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
	return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`)

	// KEYS[1] counter; ARGV[1] window ms
	scriptAddFailure = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`)

	// KEYS[1] counter; ARGV[1] max, ARGV[2] window ms. Returns {ok, n, pttl}.
	scriptReserveFailure = redis.NewScript(reserveLua + `
local ok, n, ttl = reserve(KEYS[1], ARGV[1], ARGV[2])
if ok then return {1, n, ttl} end
return {0, n, ttl}`)

	// KEYS[1] counter. DECR keeps the TTL; a count back at 0 goes.
	scriptRefundFailure = redis.NewScript(`
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n <= 1 then
  redis.call('DEL', KEYS[1])
  return 0
end
return redis.call('DECR', KEYS[1])`)

	// KEYS[1] generation marker; ARGV[1] a fresh value. No TTL, by design.
	// Used when the Redis process's run id cannot be read.
	scriptGeneration = redis.NewScript(`
local g = redis.call('GET', KEYS[1])
if g then return g end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]`)

	// KEYS[1] generation marker, KEYS[2] its run record (hash: r, the run
	// id of the process that confirmed the marker last, and t, when, in
	// Unix ms of its clock); ARGV[1] a fresh marker, ARGV[2] the run id of
	// the process this runs on, ARGV[3] its uptime in seconds, ARGV[4]
	// its second_repl_offset (-1: it was never promoted, nor shifted its
	// replication id). See Redis.Generation. No TTLs, by design.
	scriptGenerationRun = redis.NewScript(`
if redis.replicate_commands then redis.replicate_commands() end
local g = redis.call('GET', KEYS[1])
local rec = redis.call('HMGET', KEYS[2], 'r', 't')
local run, conf = rec[1], tonumber(rec[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if not g then
  g = ARGV[1]
  redis.call('SET', KEYS[1], g)
elseif run and run ~= ARGV[2] then
  local started = now - tonumber(ARGV[3]) * 1000
  if not (tonumber(ARGV[4]) >= 0 and conf and started < conf) then
    g = ARGV[1]
    redis.call('SET', KEYS[1], g)
  end
end
if run ~= ARGV[2] or not conf or now - conf >= 1000 then
  redis.call('HSET', KEYS[2], 'r', ARGV[2], 't', now)
end
return g`)

	// KEYS[1] grant record; ARGV[1] px
	scriptIssueGrant = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == 'i' then return 'ok' end
if v then return 'used' end
redis.call('SET', KEYS[1], 'i', 'PX', ARGV[1])
return 'ok'`)

	// KEYS[1] grant record. Any value but "i" (such as the "1" of the
	// former used-marker design) counts as used.
	scriptUseGrant = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return 'unknown' end
if v ~= 'i' then return 'used' end
redis.call('SET', KEYS[1], 'u', 'KEEPTTL')
return 'ok'`)

	// KEYS[1] stash slot; ARGV[1] challenge id, ARGV[2] px. Returns the
	// id it pointed at before, if another.
	scriptStashSlot = redis.NewScript(`
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if old and old ~= ARGV[1] then return old end
return ''`)

	// KEYS[1] challenge, KEYS[2] stash: drops the stash of a challenge
	// still pending (a verified one may be replaying it).
	scriptDropStash = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'u') ~= '0' then return 0 end
return redis.call('DEL', KEYS[2])`)
)

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

// Create implements Store.
func (s *Redis) Create(ctx context.Context, c *Challenge, pending string, retain time.Duration) error {
	if err := c.validate(); err != nil {
		return err
	}
	ttl := c.Expires.Sub(c.Created) + retain
	sends, lastSend := 1, ms(c.Created)
	if c.CodeLater {
		sends, lastSend = 0, 0
	}
	args := []any{
		fPolicy, c.Policy,
		fUser, c.UserKey,
		fSession, c.SessionKey,
		fPhone, c.Phone,
		fReturn, c.ReturnURL,
		fCreated, ms(c.Created),
		fExpires, ms(c.Expires),
		fMax, c.MaxAttempts,
		fMAC, c.CodeMAC,
		fAttempts, 0,
		fSends, sends,
		fLastSend, lastSend,
		fSentBy, "",
		fFailed, 0,
		fUsed, 0,
	}
	if c.Description != "" {
		args = append(args, fDesc, c.Description)
	}
	if len(c.TxHash) > 0 {
		args = append(args, fTx, c.TxHash)
	}
	if c.User != "" {
		args = append(args, fRawUser, c.User)
	}
	if c.Hidden {
		args = append(args, fHidden, 1)
	}
	for _, f := range [...]struct{ name, v string }{
		{fMode, c.Mode}, {fPolicyV, c.PolicyVersion}, {fScope, c.Scope}, {fGen, c.Generation},
	} {
		if f.v != "" {
			args = append(args, f.name, f.v)
		}
	}
	stash := c.Stash
	if len(stash) > 0 {
		args = append(args, fStash, 1)
	} else {
		stash = []byte{}
	}
	args = append([]any{stash}, args...)
	args = append(args, ttl.Milliseconds())
	keys := []string{s.challengeKey(c.ID), s.stashKey(c.ID)}
	if pending == "" && c.ExpiryQueue == "" {
		created, err := scriptCreate.Run(ctx, s.client, keys, args...).Int()
		if err := createdResult(created, err); err != nil {
			return err
		}
		s.replaceStash(ctx, c, ttl)
		return nil
	}
	// The challenge, its pending pointer and its place on the expiry
	// queue in one round trip. The pointer and the queue entry are
	// written even if the script fails; the pointer then points at
	// nothing (or, for an id taken already, at a challenge of another
	// user and session), which readers treat as nothing pending, and the
	// queue entry finds no challenge of its own when it is due.
	pipe := s.client.Pipeline()
	script := scriptCreate.EvalSha(ctx, pipe, keys, args...)
	set := redis.NewStatusCmd(ctx)
	if pending != "" {
		set = pipe.Set(ctx, s.pendingKey(pending), c.ID, c.Expires.Sub(c.Created))
	}
	var queued *redis.IntCmd
	if c.ExpiryQueue != "" {
		k := s.queueKey(c.ExpiryQueue)
		queued = pipe.ZAdd(ctx, k, redis.Z{Score: float64(ms(c.Expires)), Member: c.ID})
		pipe.PExpire(ctx, k, queueTTL)
	}
	_, _ = pipe.Exec(ctx)
	created, err := script.Int()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// The first use of the script on this server (or after a
		// SCRIPT FLUSH): Run loads it.
		created, err = scriptCreate.Run(ctx, s.client, keys, args...).Int()
	}
	if err := createdResult(created, err); err != nil {
		return err
	}
	s.replaceStash(ctx, c, ttl)
	if err := set.Err(); err != nil {
		return fmt.Errorf("recording pending challenge: %w", err)
	}
	if queued != nil && queued.Err() != nil {
		return fmt.Errorf("scheduling the expiry watch: %w", queued.Err())
	}
	return nil
}

// replaceStash points c's stash slot at c, for ttl, and deletes the stash
// of the challenge it pointed at before if that one is still pending.
// The slot and the old stash are in other hash slots than c, so this is
// a step after the create: cleanup, whose failure leaves the old stash
// to its TTL and fails nothing.
func (s *Redis) replaceStash(ctx context.Context, c *Challenge, ttl time.Duration) {
	if c.StashSlot == "" || len(c.Stash) == 0 {
		return
	}
	old, err := scriptStashSlot.Run(ctx, s.client, []string{s.slotKey(c.StashSlot)}, c.ID, ttl.Milliseconds()).Text()
	if err != nil || old == "" {
		return
	}
	_ = scriptDropStash.Run(ctx, s.client, []string{s.challengeKey(old), s.stashKey(old)}).Err()
}

func createdResult(created int, err error) error {
	if err != nil {
		return fmt.Errorf("creating challenge: %w", err)
	}
	if created == 0 {
		return ErrExists
	}
	return nil
}

// Get implements Store.
func (s *Redis) Get(ctx context.Context, id string) (*Challenge, error) {
	h, err := s.client.HGetAll(ctx, s.challengeKey(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("reading challenge: %w", err)
	}
	return parseChallenge(id, h)
}

// GetWithFailures implements Store.
func (s *Redis) GetWithFailures(ctx context.Context, id, failureKey string) (*Challenge, FailureCount, error) {
	pipe := s.client.Pipeline()
	h := pipe.HGetAll(ctx, s.challengeKey(id))
	get, pttl := s.queueFailures(ctx, pipe, failureKey)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, FailureCount{}, fmt.Errorf("reading challenge: %w", err)
	}
	f, err := failureCount(get, pttl)
	if err != nil {
		return nil, f, err
	}
	c, err := parseChallenge(id, h.Val())
	return c, f, err
}

// PendingWithFailures implements Store.
func (s *Redis) PendingWithFailures(ctx context.Context, pending, failureKey string) (string, FailureCount, error) {
	pipe := s.client.Pipeline()
	p := pipe.Get(ctx, s.pendingKey(pending))
	get, pttl := s.queueFailures(ctx, pipe, failureKey)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return "", FailureCount{}, fmt.Errorf("reading pending challenge: %w", err)
	}
	f, err := failureCount(get, pttl)
	if err != nil {
		return "", f, err
	}
	id, err := p.Result()
	if errors.Is(err, redis.Nil) {
		return "", f, nil
	}
	if err != nil {
		return "", f, fmt.Errorf("reading pending challenge: %w", err)
	}
	return id, f, nil
}

// parseChallenge reads a challenge hash (empty: ErrNotFound).
func parseChallenge(id string, h map[string]string) (*Challenge, error) {
	if len(h) == 0 {
		return nil, ErrNotFound
	}
	num := func(f string) int64 {
		n, _ := strconv.ParseInt(h[f], 10, 64)
		return n
	}
	c := &Challenge{
		ID:          id,
		Policy:      h[fPolicy],
		UserKey:     h[fUser],
		SessionKey:  h[fSession],
		Phone:       h[fPhone],
		ReturnURL:   h[fReturn],
		Description: h[fDesc],
		Created:     fromMS(num(fCreated)),
		Expires:     fromMS(num(fExpires)),
		MaxAttempts: int(num(fMax)),
		Attempts:    int(num(fAttempts)),
		Sends:       int(num(fSends)),
		LastSend:    fromMS(num(fLastSend)),
		SentBy:      h[fSentBy],
		SendFailed:  h[fFailed] == "1",
		Used:        fromMS(num(fUsed)),
		Method:      h[fMethod],
		HasStash:    h[fStash] == "1",
		User:        h[fRawUser],
		Hidden:      h[fHidden] == "1",

		Mode:          h[fMode],
		PolicyVersion: h[fPolicyV],
		Scope:         h[fScope],
		Generation:    h[fGen],
	}
	if v := h[fTx]; v != "" {
		c.TxHash = []byte(v)
	}
	if v := h[fMAC]; v != "" {
		c.CodeMAC = []byte(v)
	}
	if v := h[fSealed]; v != "" {
		c.SealedCode = []byte(v)
	}
	c.Deliveries = parseDeliveries(h)
	return c, nil
}

// Pending implements Store.
func (s *Redis) Pending(ctx context.Context, pending string) (string, error) {
	id, err := s.client.Get(ctx, s.pendingKey(pending)).Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("reading pending challenge: %w", err)
	}
	return id, nil
}

// stateError maps a script's status word to the contract's errors.
func stateError(status string) error {
	switch status {
	case "nf":
		return ErrNotFound
	case "used":
		return ErrUsed
	case "exp":
		return ErrExpired
	case "dead":
		return ErrExhausted
	case "changed":
		return ErrCodeChanged
	case "limit":
		return ErrSendLimit
	}
	return fmt.Errorf("unexpected script status %q", status)
}

// runDurable runs script like Script.Run. With WaitReplicas set, the
// script and a WAIT go in one pipeline on one connection to the master of
// keys[0] (WAIT covers only its own connection's writes), and the second
// result is ErrNotDurable (wrapped) when fewer replicas acknowledged in
// time; callers return it only when the script wrote something.
func (s *Redis) runDurable(ctx context.Context, script *redis.Script, keys []string, args ...any) (*redis.Cmd, error) {
	if s.waitReplicas == 0 {
		return script.Run(ctx, s.client, keys, args...), nil
	}
	var conn *redis.Client
	switch c := s.client.(type) {
	case *redis.Client:
		conn = c
	case *redis.ClusterClient:
		m, err := c.MasterForKey(ctx, keys[0])
		if err != nil {
			cmd := redis.NewCmd(ctx)
			cmd.SetErr(err)
			return cmd, nil
		}
		conn = m
	}
	for try := 0; ; try++ {
		pipe := conn.Pipeline()
		var cmd *redis.Cmd
		if try == 0 {
			cmd = script.EvalSha(ctx, pipe, keys, args...)
		} else {
			cmd = script.Eval(ctx, pipe, keys, args...)
		}
		wait := pipe.Do(ctx, "wait", s.waitReplicas, s.waitTimeout.Milliseconds())
		_, _ = pipe.Exec(ctx)
		err := cmd.Err()
		if try == 0 && err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			continue // first use on this server: Eval loads it
		}
		if err != nil {
			if c, ok := s.client.(*redis.ClusterClient); ok && (redis.HasErrorPrefix(err, "MOVED") || redis.HasErrorPrefix(err, "ASK")) {
				c.ReloadState(ctx) // the slot moved: fail this call, find the master next time
			}
			return cmd, nil
		}
		n, err := wait.Int64()
		if err != nil {
			return cmd, fmt.Errorf("%w: %w", ErrNotDurable, err)
		}
		if n < int64(s.waitReplicas) {
			return cmd, fmt.Errorf("%w: %d of %d replicas acknowledged", ErrNotDurable, n, s.waitReplicas)
		}
		return cmd, nil
	}
}

// BeginAttempt implements Store.
func (s *Redis) BeginAttempt(ctx context.Context, id string, now time.Time) ([]byte, int, error) {
	return beginResult(scriptBegin.Run(ctx, s.client, []string{s.challengeKey(id)}, ms(now)))
}

// ReserveAndBegin implements AttemptReserver in one script on one
// server: the challenge's state, then the reservation, then the attempt.
// A Cluster keeps the challenge and the user's counter in different
// slots (no script may touch both), and with WaitReplicas the
// reservation must be acknowledged on its own: there ok is false.
func (s *Redis) ReserveAndBegin(ctx context.Context, failureKey string, max int, window time.Duration, id string, now time.Time) (r ReservedAttempt, ok bool) {
	if _, cluster := s.client.(*redis.ClusterClient); cluster || s.waitReplicas != 0 || window <= 0 {
		return r, false
	}
	res, err := scriptReserveBegin.Run(ctx, s.client, []string{s.challengeKey(id), s.failureKey(failureKey)},
		ms(now), max, window.Milliseconds()).Slice()
	if err != nil {
		r.ReserveErr = fmt.Errorf("reserving failure: %w", err)
		return r, true
	}
	status, _ := res[0].(string)
	switch {
	case status == "ok" && len(res) == 5:
		mac, _ := res[1].(string)
		attempts, _ := res[2].(int64)
		n, _ := res[3].(int64)
		ttl, _ := res[4].(int64)
		r.MAC, r.Attempts = []byte(mac), int(attempts)
		r.Failures, r.TTL, r.Reserved = int(n), time.Duration(max64(ttl, 0))*time.Millisecond, true
	case status == "locked" && len(res) == 3:
		n, _ := res[1].(int64)
		ttl, _ := res[2].(int64)
		r.Failures, r.TTL = int(n), time.Duration(max64(ttl, 0))*time.Millisecond
	default:
		r.BeginErr = stateError(status)
	}
	return r, true
}

// beginResult reads the answer of scriptBegin.
func beginResult(cmd *redis.Cmd) ([]byte, int, error) {
	res, err := cmd.Slice()
	if err != nil {
		return nil, 0, fmt.Errorf("beginning attempt: %w", err)
	}
	status, _ := res[0].(string)
	if status != "ok" || len(res) != 3 {
		return nil, 0, stateError(status)
	}
	mac, _ := res[1].(string)
	attempts, _ := res[2].(int64)
	return []byte(mac), int(attempts), nil
}

// Consume implements Store.
func (s *Redis) Consume(ctx context.Context, id string, mac []byte, now time.Time, method string) error {
	cmd, durable := s.runDurable(ctx, scriptConsume, []string{s.challengeKey(id)}, mac, ms(now), method)
	if err := consumeResult(cmd); err != nil {
		return err
	}
	if durable != nil {
		return fmt.Errorf("consuming challenge: %w", durable)
	}
	return nil
}

func consumeResult(cmd *redis.Cmd) error {
	status, err := cmd.Text()
	if err != nil {
		return fmt.Errorf("consuming challenge: %w", err)
	}
	if status != "ok" {
		return stateError(status)
	}
	return nil
}

// ConsumeRefund implements ConsumeRefunder: Consume and RefundFailure in
// one pipeline, when no consume is waited for on replicas.
func (s *Redis) ConsumeRefund(ctx context.Context, id string, mac []byte, now time.Time, method, key string) (consumeErr, refundErr error, ok bool) {
	if s.waitReplicas != 0 {
		return nil, nil, false
	}
	ckeys, rkeys := []string{s.challengeKey(id)}, []string{s.failureKey(key)}
	pipe := s.client.Pipeline()
	consume := scriptConsume.EvalSha(ctx, pipe, ckeys, mac, ms(now), method)
	refund := scriptRefundFailure.EvalSha(ctx, pipe, rkeys)
	_, _ = pipe.Exec(ctx)
	if err := consume.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// The first use of the script on this server: Run loads it.
		consume = scriptConsume.Run(ctx, s.client, ckeys, mac, ms(now), method)
	}
	if err := refund.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		refund = scriptRefundFailure.Run(ctx, s.client, rkeys)
	}
	if err := refund.Err(); err != nil {
		refundErr = fmt.Errorf("refunding failure: %w", err)
	}
	return consumeResult(consume), refundErr, true
}

// Resend implements Store.
func (s *Redis) Resend(ctx context.Context, id string, mac []byte, now time.Time, cooldown time.Duration, maxSends int) (int, error) {
	res, err := scriptResend.Run(ctx, s.client, []string{s.challengeKey(id)},
		mac, ms(now), cooldown.Milliseconds(), maxSends).Slice()
	if err != nil {
		return 0, fmt.Errorf("resending code: %w", err)
	}
	status, _ := res[0].(string)
	var n int64
	if len(res) > 1 {
		n, _ = res[1].(int64)
	}
	switch status {
	case "ok":
		return int(n), nil
	case "cool":
		return 0, &CooldownError{RetryAfter: time.Duration(n) * time.Millisecond}
	case "limit":
		return int(n), ErrSendLimit
	}
	return 0, stateError(status)
}

// TakeStash implements Store.
func (s *Redis) TakeStash(ctx context.Context, id string) ([]byte, error) {
	cmd, durable := s.runDurable(ctx, scriptTakeStash, []string{s.challengeKey(id), s.stashKey(id)})
	res, err := cmd.Slice()
	if err != nil {
		return nil, fmt.Errorf("taking stash: %w", err)
	}
	status, _ := res[0].(string)
	switch status {
	case "ok":
		if durable != nil {
			// Taken on the master: it is not sent, and not sent again.
			return nil, fmt.Errorf("taking stash: %w", durable)
		}
		v, _ := res[1].(string)
		return []byte(v), nil
	case "pending":
		return nil, ErrPending
	case "sent":
		return nil, ErrReplayed
	}
	return nil, stateError(status)
}

// IssueGrant implements Store. The record is not waited for with
// WaitReplicas: a record lost in a failover refuses the grant.
func (s *Redis) IssueGrant(ctx context.Context, grantID string, expires time.Time) error {
	ttl := time.Until(expires)
	if ttl < time.Second {
		ttl = time.Second
	}
	status, err := scriptIssueGrant.Run(ctx, s.client, []string{s.grantKey(grantID)}, ttl.Milliseconds()).Text()
	if err != nil {
		return fmt.Errorf("issuing grant: %w", err)
	}
	if status != "ok" {
		return ErrGrantUsed
	}
	return nil
}

// UseGrant implements Store.
func (s *Redis) UseGrant(ctx context.Context, grantID string, _ time.Time) error {
	cmd, durable := s.runDurable(ctx, scriptUseGrant, []string{s.grantKey(grantID)})
	status, err := cmd.Text()
	if err != nil {
		return fmt.Errorf("using grant: %w", err)
	}
	switch status {
	case "ok":
		if durable != nil {
			return fmt.Errorf("using grant: %w", durable)
		}
		return nil
	case "used":
		return ErrGrantUsed
	case "unknown":
		return ErrGrantUnknown
	}
	return stateError(status)
}

// RecordSend implements Store.
func (s *Redis) RecordSend(ctx context.Context, id string, sentBy string, failed bool) error {
	f := "0"
	if failed {
		f = "1"
	}
	status, err := scriptRecordSend.Run(ctx, s.client, []string{s.challengeKey(id)}, sentBy, f).Text()
	if err != nil {
		return fmt.Errorf("recording send: %w", err)
	}
	if status != "ok" {
		return stateError(status)
	}
	return nil
}

// AddFailure implements Store.
func (s *Redis) AddFailure(ctx context.Context, key string, window time.Duration) (int, error) {
	cmd, durable := s.runDurable(ctx, scriptAddFailure, []string{s.failureKey(key)}, window.Milliseconds())
	n, err := cmd.Int()
	if err != nil {
		return 0, fmt.Errorf("counting failure: %w", err)
	}
	if durable != nil {
		return n, fmt.Errorf("counting failure: %w", durable)
	}
	return n, nil
}

// ReserveFailure implements Store.
func (s *Redis) ReserveFailure(ctx context.Context, key string, max int, window time.Duration) (int, time.Duration, bool, error) {
	if window <= 0 {
		return 0, 0, false, errors.New("failure window must be positive")
	}
	cmd, durable := s.runDurable(ctx, scriptReserveFailure, []string{s.failureKey(key)}, max, window.Milliseconds())
	n, ttl, ok, err := reserveResult(cmd)
	if err != nil || !ok {
		return n, ttl, false, err
	}
	if durable != nil {
		// The unit stays spent: failing closed counts it as a failure.
		return n, ttl, false, fmt.Errorf("reserving failure: %w", durable)
	}
	return n, ttl, true, nil
}

// reserveResult reads the answer of scriptReserveFailure.
func reserveResult(cmd *redis.Cmd) (int, time.Duration, bool, error) {
	res, err := cmd.Int64Slice()
	if err == nil && len(res) != 3 {
		err = fmt.Errorf("unexpected script answer %v", res)
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("reserving failure: %w", err)
	}
	return int(res[1]), time.Duration(max64(res[2], 0)) * time.Millisecond, res[0] == 1, nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// RefundFailure implements Store. It is not waited for with
// WaitReplicas: a refund lost in a failover leaves the count higher.
func (s *Redis) RefundFailure(ctx context.Context, key string) error {
	if err := scriptRefundFailure.Run(ctx, s.client, []string{s.failureKey(key)}).Err(); err != nil {
		return fmt.Errorf("refunding failure: %w", err)
	}
	return nil
}

// Failures implements Store.
func (s *Redis) Failures(ctx context.Context, key string) (int, time.Duration, error) {
	pipe := s.client.Pipeline()
	get, pttl := s.queueFailures(ctx, pipe, key)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, 0, fmt.Errorf("reading failures: %w", err)
	}
	f, err := failureCount(get, pttl)
	return f.N, f.TTL, err
}

// queueFailures adds the reads of key's failure count to pipe.
func (s *Redis) queueFailures(ctx context.Context, pipe redis.Pipeliner, key string) (*redis.StringCmd, *redis.DurationCmd) {
	k := s.failureKey(key)
	return pipe.Get(ctx, k), pipe.PTTL(ctx, k)
}

// failureCount reads the results of queueFailures.
func failureCount(get *redis.StringCmd, pttl *redis.DurationCmd) (FailureCount, error) {
	n, err := get.Int()
	if errors.Is(err, redis.Nil) {
		return FailureCount{}, nil
	}
	if err != nil {
		return FailureCount{}, fmt.Errorf("reading failures: %w", err)
	}
	ttl := pttl.Val()
	if ttl < 0 {
		ttl = 0
	}
	return FailureCount{N: n, TTL: ttl}, nil
}

// ClearFailures implements Store.
func (s *Redis) ClearFailures(ctx context.Context, key string) error {
	if err := s.client.Del(ctx, s.failureKey(key)).Err(); err != nil {
		return fmt.Errorf("clearing failures: %w", err)
	}
	return nil
}

// Allow implements Store with github.com/go-redis/redis_rate (GCRA in
// one Lua script on one key, with Redis's clock, so that every instance
// counts against the same budget).
func (s *Redis) Allow(ctx context.Context, key string, l Limit) (bool, time.Duration, error) {
	if l.Off() {
		return true, 0, nil
	}
	burst := l.Burst
	if burst < 1 {
		burst = 1
	}
	res, err := s.limiter.Allow(ctx, s.prefix+"r:{"+key+"}", redis_rate.Limit{Rate: l.Rate, Period: l.Period, Burst: burst})
	if err != nil {
		return false, 0, fmt.Errorf("checking rate limit: %w", err)
	}
	if res.Allowed > 0 {
		return true, 0, nil
	}
	return false, res.RetryAfter, nil
}

// Revoke implements Store.
func (s *Redis) Revoke(ctx context.Context, key string, at time.Time, ttl time.Duration) error {
	// AnyKey first: readers skip the key's own record for grants issued
	// after AnyKey's time, so it must move before the key's record is
	// written. If the second write fails, the error says so and grants
	// merely cost a lookup until the revocation is made again.
	for _, k := range []string{AnyKey, key} {
		cmd, durable := s.runDurable(ctx, scriptRevoke, []string{s.revokeKey(k)}, ms(at), ttl.Milliseconds())
		if err := cmd.Err(); err != nil {
			return fmt.Errorf("revoking grants: %w", err)
		}
		if durable != nil {
			return fmt.Errorf("revoking grants: %w", durable)
		}
		if key == AnyKey {
			break
		}
	}
	return nil
}

// RevokedAt implements Store.
func (s *Redis) RevokedAt(ctx context.Context, key string) (time.Time, error) {
	v, err := s.client.Get(ctx, s.revokeKey(key)).Int64()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("reading revocation: %w", err)
	}
	return fromMS(v), nil
}

// Generation implements Store. The marker has no TTL, by design: it must
// outlive every other key so that their loss (FLUSHALL, a restart
// without persistence) shows as a new generation. In a Cluster it lives
// on one master: a data loss on another master alone does not change it
// (single-use records there still fail closed; see UseGrant).
//
// A restart that loads an older snapshot (RDB, or an AOF that missed the
// last writes) keeps the marker, but not what was written after the
// snapshot (a grant used, a revocation). So each call also reads, on the
// same connection to the marker's master, the process's run id, uptime
// and second_repl_offset (INFO server, INFO replication), and the marker's
// run record says which process confirmed the marker last, and when. A
// process with another run id is:
//   - a replica promoted by a failover (Sentinel, Cluster) when it was
//     promoted (second_repl_offset >= 0) and started before the last
//     confirmation its data holds: it was replicating then, so it has
//     the data (wait_replicas covers the last writes). The marker stays.
//   - anything else, a restart of the master above all (Redis 7 shows a
//     restarted master's reloaded replication id as promoted too, but
//     it started after the confirmation): a new marker, so that every
//     earlier grant and challenge is refused.
//
// When the run id cannot be read (INFO denied by an ACL, a server or
// proxy that does not give it), Generation falls back to the marker alone
// and RestartCheck says why.
func (s *Redis) Generation(ctx context.Context) (string, error) {
	node, err := s.markerNode(ctx)
	if err != nil {
		return "", fmt.Errorf("reading store generation: %w", err)
	}
	if node == nil || s.RestartCheck() != nil {
		return s.markerOnly(ctx)
	}
	// go-redis (v9.23) races when two Conn of one client start at once
	// (their handshakes share the client's options): one at a time per
	// client. Generation runs at most once a second per engine.
	mu := &connLocks[(reflect.ValueOf(node).Pointer()>>4)%uintptr(len(connLocks))]
	mu.Lock()
	defer mu.Unlock()
	conn := node.Conn()
	defer conn.Close()
	var server, repl *redis.StringCmd
	_, err = conn.Pipelined(ctx, func(p redis.Pipeliner) error {
		server, repl = p.Info(ctx, "server"), p.Info(ctx, "replication")
		return nil
	})
	if err != nil {
		for _, e := range []error{server.Err(), repl.Err()} {
			if infoRefused(e) {
				s.restartOff.Store("INFO refused: " + e.Error())
				return s.markerOnly(ctx)
			}
		}
		return "", fmt.Errorf("reading store generation: %w", err)
	}
	run, uptime, second, ok := parseRunInfo(server.Val(), repl.Val())
	if !ok {
		s.restartOff.Store("INFO gives no run_id, uptime_in_seconds or second_repl_offset")
		return s.markerOnly(ctx)
	}
	g, err := scriptGenerationRun.Run(ctx, conn, []string{s.generationKey(), s.runKey},
		newGeneration(), run, uptime, second).Text()
	if err != nil {
		return "", fmt.Errorf("reading store generation: %w", err)
	}
	return g, nil
}

// connLocks are the mutexes under which Generation takes a dedicated
// connection (Client.Conn), one per client by its address (striped, so
// that nothing is kept per client).
var connLocks [16]sync.Mutex

// RestartCheck returns why Generation cannot tell a restart of the
// marker's Redis from its run id (see Generation), or nil when it can
// (or has not found out yet).
func (s *Redis) RestartCheck() error {
	if v, _ := s.restartOff.Load().(string); v != "" {
		return errors.New(v)
	}
	return nil
}

// markerOnly reads the marker without the run check.
func (s *Redis) markerOnly(ctx context.Context) (string, error) {
	g, err := scriptGeneration.Run(ctx, s.client, []string{s.generationKey()}, newGeneration()).Text()
	if err != nil {
		return "", fmt.Errorf("reading store generation: %w", err)
	}
	return g, nil
}

// markerNode returns the client of the one server that holds the marker,
// or nil for a client of another kind (Generation then checks the marker
// alone).
func (s *Redis) markerNode(ctx context.Context) (*redis.Client, error) {
	switch c := s.client.(type) {
	case *redis.Client:
		return c, nil
	case *redis.ClusterClient:
		return c.MasterForKey(ctx, s.generationKey())
	}
	s.restartOff.Store(fmt.Sprintf("a %T has no one server to ask INFO", s.client))
	return nil, nil
}

// infoRefused reports an error of a server that answers but will not
// give INFO: an ACL without +info, a proxy without the command.
func infoRefused(err error) bool {
	// (HasErrorPrefix drops a leading "ERR ".)
	return redis.HasErrorPrefix(err, "NOPERM") || redis.HasErrorPrefix(err, "unknown command") ||
		redis.HasErrorPrefix(err, "unknown subcommand")
}

// parseRunInfo reads run_id and uptime_in_seconds of INFO server and
// second_repl_offset of INFO replication.
func parseRunInfo(server, repl string) (run string, uptime, second int64, ok bool) {
	field := func(info, name string) (string, bool) {
		for _, line := range strings.Split(info, "\n") {
			if v, found := strings.CutPrefix(strings.TrimSpace(line), name+":"); found {
				return v, true
			}
		}
		return "", false
	}
	run, ok1 := field(server, "run_id")
	up, ok2 := field(server, "uptime_in_seconds")
	sec, ok3 := field(repl, "second_repl_offset")
	if !ok1 || !ok2 || !ok3 || run == "" {
		return "", 0, 0, false
	}
	uptime, err1 := strconv.ParseInt(up, 10, 64)
	second, err2 := strconv.ParseInt(sec, 10, 64)
	if err1 != nil || err2 != nil || uptime < 0 {
		return "", 0, 0, false
	}
	return run, uptime, second, true
}

// hashTag returns the part of key that Redis Cluster hashes to a slot:
// its hash tag, or the whole key.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// runKey names the run record of the marker gen: after gen, in its slot.
func runKey(gen string) string {
	if hashTag(gen) != gen {
		return gen + ":run"
	}
	return gen + ":run{" + gen + "}"
}

// Ping implements Store.
func (s *Redis) Ping(ctx context.Context) error { return s.client.Ping(ctx).Err() }

// Close closes the client if the store owns it.
func (s *Redis) Close() error {
	if s.owned {
		return s.client.Close()
	}
	return nil
}

var _ Store = (*Redis)(nil)
