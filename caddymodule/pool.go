package caddymodule

import (
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"

	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// pool shares stores across handler instances and config reloads: the new
// config acquires the same Redis client (or memory store) before the old
// one releases it, so a reload drops no pending challenge and opens no
// new connection pool. Counts go 1, 2, 1 across a reload.
var pool = caddy.NewUsagePool()

type pooledRedis struct{ redis.UniversalClient }

func (p pooledRedis) Destruct() error { return p.Close() }

type pooledMemory struct{ *store.Memory }

func (p pooledMemory) Destruct() error { return p.Close() }

// acquireRedis returns the shared client for url, creating it on first
// use. It does not connect: go-redis dials lazily.
func acquireRedis(url string) (redis.UniversalClient, string, error) {
	key := "redis:" + url
	v, _, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		opts, err := redis.ParseURL(url)
		if err != nil {
			return nil, err
		}
		if opts.DialTimeout == 0 {
			opts.DialTimeout = 2 * time.Second
		}
		if opts.ReadTimeout == 0 {
			opts.ReadTimeout = time.Second
		}
		if opts.WriteTimeout == 0 {
			opts.WriteTimeout = time.Second
		}
		return pooledRedis{redis.NewClient(opts)}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return v.(pooledRedis).UniversalClient, key, nil
}

// acquireMemory returns the process's shared memory store.
func acquireMemory() (store.Store, string, error) {
	const key = "memory"
	v, _, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		return pooledMemory{store.NewMemory(time.Minute)}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return v.(pooledMemory).Memory, key, nil
}
