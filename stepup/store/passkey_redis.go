package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Passkeys on Redis: one hash per user, PREFIXpk:{USER}, without a TTL
// (enrolled passkeys outlive any session by design; removing one, or
// all with the key, is the way out). Each credential is a group of
// fields named by its id in base64url:
//
//	k:ID  the credential (JSON: key, handle, AAGUID, flags, created)
//	n:ID  its signature counter     u:ID  last used (ms)
//	m:ID  its name
//
// Every change is one script on the user's key.

func (s *Redis) passkeyKey(user string) string { return s.prefix + "pk:{" + user + "}" }

var (
	// KEYS[1] user; ARGV: id, credential JSON, name, max, counter
	scriptAddPasskey = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'k:' .. ARGV[1]) == 1 then return 'exists' end
local n = 0
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, 2) == 'k:' then n = n + 1 end
end
if n >= tonumber(ARGV[4]) then return 'limit' end
redis.call('HSET', KEYS[1], 'k:' .. ARGV[1], ARGV[2], 'n:' .. ARGV[1], ARGV[5], 'u:' .. ARGV[1], 0, 'm:' .. ARGV[1], ARGV[3])
return 'ok'`)

	// KEYS[1] user; ARGV: id, counter, now
	scriptUsePasskey = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'k:' .. ARGV[1]) == 0 then return 'nf' end
local stored = tonumber(redis.call('HGET', KEYS[1], 'n:' .. ARGV[1]) or '0')
local got = tonumber(ARGV[2])
if not (stored == 0 and got == 0) and got <= stored then return 'count' end
redis.call('HSET', KEYS[1], 'n:' .. ARGV[1], got, 'u:' .. ARGV[1], ARGV[3])
return 'ok'`)

	// KEYS[1] user; ARGV: id, name
	scriptRenamePasskey = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'k:' .. ARGV[1]) == 0 then return 'nf' end
redis.call('HSET', KEYS[1], 'm:' .. ARGV[1], ARGV[2])
return 'ok'`)

	// KEYS[1] user; ARGV: id
	scriptRemovePasskey = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'k:' .. ARGV[1]) == 0 then return 'nf' end
redis.call('HDEL', KEYS[1], 'k:' .. ARGV[1], 'n:' .. ARGV[1], 'u:' .. ARGV[1], 'm:' .. ARGV[1])
return 'ok'`)
)

func passkeyField(id []byte) string { return base64.RawURLEncoding.EncodeToString(id) }

func passkeyStatus(status string, err error, doing string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	switch status {
	case "ok":
		return nil
	case "exists":
		return ErrPasskeyExists
	case "limit":
		return ErrPasskeyLimit
	case "nf":
		return ErrPasskeyNotFound
	case "count":
		return ErrSignCount
	}
	return fmt.Errorf("%s: unexpected script status %q", doing, status)
}

// AddPasskey implements PasskeyStore.
func (s *Redis) AddPasskey(ctx context.Context, user string, p Passkey, max int) error {
	if err := checkPasskeyName(p.Name); err != nil {
		return err
	}
	if len(p.ID) == 0 {
		return errors.New("passkey without id")
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	st, err := scriptAddPasskey.Run(ctx, s.client, []string{s.passkeyKey(user)}, passkeyField(p.ID), b, p.Name, max, p.SignCount).Text()
	return passkeyStatus(st, err, "adding passkey")
}

// Passkeys implements PasskeyStore.
func (s *Redis) Passkeys(ctx context.Context, user string) ([]Passkey, error) {
	h, err := s.client.HGetAll(ctx, s.passkeyKey(user)).Result()
	if err != nil {
		return nil, fmt.Errorf("reading passkeys: %w", err)
	}
	out := make([]Passkey, 0, len(h)/4)
	for f, v := range h {
		id, ok := strings.CutPrefix(f, "k:")
		if !ok {
			continue
		}
		var p Passkey
		if err := json.Unmarshal([]byte(v), &p); err != nil {
			return nil, fmt.Errorf("reading passkey: %w", err)
		}
		n, _ := strconv.ParseUint(h["n:"+id], 10, 32)
		u, _ := strconv.ParseInt(h["u:"+id], 10, 64)
		p.SignCount, p.Name = uint32(n), h["m:"+id]
		if u > 0 {
			p.LastUsed = time.UnixMilli(u)
		}
		out = append(out, p)
	}
	sortPasskeys(out)
	return out, nil
}

// UsePasskey implements PasskeyStore.
func (s *Redis) UsePasskey(ctx context.Context, user string, id []byte, counter uint32, now time.Time) error {
	st, err := scriptUsePasskey.Run(ctx, s.client, []string{s.passkeyKey(user)}, passkeyField(id), counter, ms(now)).Text()
	return passkeyStatus(st, err, "using passkey")
}

// RenamePasskey implements PasskeyStore.
func (s *Redis) RenamePasskey(ctx context.Context, user string, id []byte, name string) error {
	if err := checkPasskeyName(name); err != nil {
		return err
	}
	st, err := scriptRenamePasskey.Run(ctx, s.client, []string{s.passkeyKey(user)}, passkeyField(id), name).Text()
	return passkeyStatus(st, err, "renaming passkey")
}

// RemovePasskey implements PasskeyStore.
func (s *Redis) RemovePasskey(ctx context.Context, user string, id []byte) error {
	st, err := scriptRemovePasskey.Run(ctx, s.client, []string{s.passkeyKey(user)}, passkeyField(id)).Text()
	return passkeyStatus(st, err, "removing passkey")
}

var (
	_ PasskeyStore = (*Redis)(nil)
	_ PasskeyStore = (*Memory)(nil)
)
