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

// Deliveries on Redis. Each delivery is a group of fields of the
// challenge hash, so that a receipt moves it forward in one script on
// the challenge's key:
//
//	dn      the number of deliveries
//	d{i}s   sender          d{i}c  channel       d{i}m  message id
//	d{i}st  status          d{i}t  sent (ms)     d{i}u  updated (ms)
//	d{i}n   which code      d{i}v  a failover    d{i}f  failed over
//	cz      the sealed code
//
// A message pointer, PREFIXm:{LEN:SENDER:MESSAGEID}, holds the
// challenge's ID for as long as the code lives (the delivery is the
// challenge's latest of that sender and message id); a failover queue, PREFIXfo:{QUEUE}, is a
// sorted set of challenge ids by the time they are due (Unix ms), with a
// TTL renewed by each schedule.

func (s *Redis) messageKey(sender, messageID string) string {
	return s.prefix + "m:{" + messageKey(sender, messageID) + "}"
}
func (s *Redis) queueKey(queue string) string { return s.prefix + "fo:{" + queue + "}" }

var (
	// KEYS[1] challenge; ARGV: sealed ("" keeps it), sender, channel,
	// message id, status, sent ms, code, failover ("1"/"0"). A pending
	// challenge also notes the sender as its current code's (as
	// scriptRecordSend does for a send that did not fail).
	scriptAddDelivery = redis.NewScript(`
local u = redis.call('HGET', KEYS[1], 'u')
if not u then return 0 end
local n = redis.call('HINCRBY', KEYS[1], 'dn', 1)
local p = 'd' .. n
redis.call('HSET', KEYS[1], p .. 's', ARGV[2], p .. 'c', ARGV[3], p .. 'm', ARGV[4], p .. 'st', ARGV[5],
  p .. 't', ARGV[6], p .. 'u', ARGV[6], p .. 'n', ARGV[7], p .. 'v', ARGV[8], p .. 'f', '0')
if ARGV[1] ~= '' then redis.call('HSET', KEYS[1], 'cz', ARGV[1]) end
if u == '0' then redis.call('HSET', KEYS[1], 'b', ARGV[2], 'f', '0') end
return n`)

	// KEYS[1] challenge; ARGV[1] index (0: the latest delivery of
	// sender ARGV[4] with message id ARGV[5]), ARGV[2] status, ARGV[3]
	// at ms. Returns {state, previous status, index}. The ranks are
	// StatusRank's.
	scriptReceipt = redis.NewScript(`
local i = tonumber(ARGV[1])
if i == 0 then
  local n = tonumber(redis.call('HGET', KEYS[1], 'dn') or '0')
  for j = n, 1, -1 do
    local v = redis.call('HMGET', KEYS[1], 'd' .. j .. 's', 'd' .. j .. 'm')
    if v[1] == ARGV[4] and v[2] == ARGV[5] then
      i = j
      break
    end
  end
  if i == 0 then return {'nf'} end
end
local p = 'd' .. i
local cur = redis.call('HGET', KEYS[1], p .. 'st')
if not cur then return {'nf'} end
local rank = {accepted = 1, queued = 2, sent = 3, undelivered = 4, failed = 4, delivered = 5, read = 6}
if (rank[ARGV[2]] or 0) <= (rank[cur] or 0) then return {'same', cur, i} end
redis.call('HSET', KEYS[1], p .. 'st', ARGV[2], p .. 'u', ARGV[3])
return {'ok', cur, i}`)

	// KEYS[1] challenge; ARGV[1] index, ARGV[2] now ms.
	scriptClaimFailover = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'u', 'e', 'dn', 'd' .. ARGV[1] .. 'f')
if not v[1] then return 0 end
if v[1] ~= '0' or tonumber(v[2]) <= tonumber(ARGV[2]) then return 0 end
if v[3] ~= ARGV[1] or v[4] ~= '0' then return 0 end
redis.call('HSET', KEYS[1], 'd' .. ARGV[1] .. 'f', '1')
return 1`)

	// KEYS[1] queue; ARGV[1] id, ARGV[2] the lease's end (ms).
	scriptDoneFailover = redis.NewScript(`
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0`)

	// KEYS[1] queue; ARGV[1] now ms, ARGV[2] lease ms, ARGV[3] limit.
	scriptDueFailovers = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local due = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], due, id) end
return ids`)
)

// AddDelivery implements DeliveryStore: the delivery in one script on
// the challenge and its message pointer, in one round trip. The pointer
// holds the challenge id; the receipt's script finds the delivery by
// sender and message id (a challenge has a handful).
func (s *Redis) AddDelivery(ctx context.Context, id string, d Delivery, sealed []byte, expires time.Time) (int, error) {
	if d.Status == "" {
		d.Status = StatusAccepted
	}
	failover := "0"
	if d.Failover {
		failover = "1"
	}
	if sealed == nil {
		sealed = []byte{}
	}
	keys := []string{s.challengeKey(id)}
	args := []any{sealed, d.Sender, d.Channel, d.MessageID, d.Status, ms(d.Sent), d.Code, failover}
	pipe := s.client.Pipeline()
	added := scriptAddDelivery.EvalSha(ctx, pipe, keys, args...)
	var pointer *redis.StatusCmd
	if ttl := time.Until(expires); d.MessageID != "" && ttl > 0 {
		// Written even if the challenge is gone: a receipt then finds no
		// delivery, as for a message this handler does not know.
		pointer = pipe.Set(ctx, s.messageKey(d.Sender, d.MessageID), id, ttl)
	}
	_, _ = pipe.Exec(ctx)
	if err := added.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// The first use of the script on this server: Run loads it.
		added = scriptAddDelivery.Run(ctx, s.client, keys, args...)
	}
	n, err := added.Int()
	if err != nil {
		return 0, fmt.Errorf("recording delivery: %w", err)
	}
	if n == 0 {
		return 0, ErrNotFound
	}
	if pointer != nil && pointer.Err() != nil {
		return n, fmt.Errorf("recording message: %w", pointer.Err())
	}
	return n, nil
}

// TakeReceipt implements DeliveryStore.
func (s *Redis) TakeReceipt(ctx context.Context, sender, messageID, status string, at time.Time) (Receipt, error) {
	v, err := s.client.Get(ctx, s.messageKey(sender, messageID)).Result()
	if errors.Is(err, redis.Nil) {
		return Receipt{}, ErrNotFound
	}
	if err != nil {
		return Receipt{}, fmt.Errorf("finding message: %w", err)
	}
	// "ID" (the delivery is found by sender and message id), or "ID:i",
	// the index, as pointers written by earlier versions hold it.
	id, idx, indexed := strings.Cut(v, ":")
	index := 0
	if indexed {
		if index, err = strconv.Atoi(idx); err != nil || index < 1 {
			return Receipt{}, ErrNotFound
		}
	}
	res, err := scriptReceipt.Run(ctx, s.client, []string{s.challengeKey(id)}, index, status, ms(at), sender, messageID).Slice()
	if err != nil {
		return Receipt{}, fmt.Errorf("taking receipt: %w", err)
	}
	if len(res) < 3 {
		return Receipt{}, ErrNotFound
	}
	state, _ := res[0].(string)
	prev, _ := res[1].(string)
	found, _ := res[2].(int64)
	return Receipt{Challenge: id, Index: int(found), Changed: state == "ok", Previous: prev}, nil
}

// ClaimFailover implements DeliveryStore.
func (s *Redis) ClaimFailover(ctx context.Context, id string, index int, now time.Time) (bool, error) {
	n, err := scriptClaimFailover.Run(ctx, s.client, []string{s.challengeKey(id)}, index, ms(now)).Int()
	if err != nil {
		return false, fmt.Errorf("claiming failover: %w", err)
	}
	return n == 1, nil
}

// ScheduleFailover implements DeliveryStore.
func (s *Redis) ScheduleFailover(ctx context.Context, queue, id string, at time.Time) error {
	k := s.queueKey(queue)
	pipe := s.client.TxPipeline()
	pipe.ZAdd(ctx, k, redis.Z{Score: float64(ms(at)), Member: id})
	pipe.PExpire(ctx, k, queueTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("scheduling failover: %w", err)
	}
	return nil
}

// DueFailovers implements DeliveryStore.
func (s *Redis) DueFailovers(ctx context.Context, queue string, now time.Time, lease time.Duration, limit int) ([]string, error) {
	ids, err := scriptDueFailovers.Run(ctx, s.client, []string{s.queueKey(queue)}, ms(now), lease.Milliseconds(), limit).StringSlice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reading due failovers: %w", err)
	}
	return ids, nil
}

// DoneFailover implements DeliveryStore.
func (s *Redis) DoneFailover(ctx context.Context, queue, id string, leased time.Time) error {
	if err := scriptDoneFailover.Run(ctx, s.client, []string{s.queueKey(queue)}, id, ms(leased)).Err(); err != nil {
		return fmt.Errorf("removing failover: %w", err)
	}
	return nil
}

// parseDeliveries reads the deliveries of a challenge hash.
func parseDeliveries(h map[string]string) []Delivery {
	n, _ := strconv.Atoi(h["dn"])
	if n <= 0 {
		return nil
	}
	out := make([]Delivery, 0, n)
	for i := 1; i <= n; i++ {
		p := "d" + strconv.Itoa(i)
		num := func(f string) int64 {
			v, _ := strconv.ParseInt(h[p+f], 10, 64)
			return v
		}
		out = append(out, Delivery{
			Sender:     h[p+"s"],
			Channel:    h[p+"c"],
			MessageID:  h[p+"m"],
			Status:     h[p+"st"],
			Sent:       fromMS(num("t")),
			Updated:    fromMS(num("u")),
			Code:       int(num("n")),
			Failover:   h[p+"v"] == "1",
			FailedOver: h[p+"f"] == "1",
		})
	}
	return out
}
