package caddymodule

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
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

// resolved returns a copy of c with placeholders replaced and defaults
// set; its JSON is the pool key (the key prefix does not matter to the
// connection and is left out).
func (c *RedisConfig) resolved(repl *caddy.Replacer) RedisConfig {
	r := *c
	r.KeyPrefix = ""
	r.URL = repl.ReplaceKnown(c.URL, "")
	r.Username = repl.ReplaceKnown(c.Username, "")
	r.Password = repl.ReplaceKnown(c.Password, "")
	if c.Sentinel != nil {
		s := *c.Sentinel
		s.Master = repl.ReplaceKnown(s.Master, "")
		s.Username = repl.ReplaceKnown(s.Username, "")
		s.Password = repl.ReplaceKnown(s.Password, "")
		s.Addrs = replaceAll(repl, s.Addrs)
		r.Sentinel = &s
	}
	if c.Cluster != nil {
		r.Cluster = &ClusterConfig{Addrs: replaceAll(repl, c.Cluster.Addrs)}
	}
	if c.TLS != nil {
		t := *c.TLS
		t.CA = repl.ReplaceKnown(t.CA, "")
		t.Cert = repl.ReplaceKnown(t.Cert, "")
		t.Key = repl.ReplaceKnown(t.Key, "")
		t.ServerName = repl.ReplaceKnown(t.ServerName, "")
		r.TLS = &t
	}
	if r.DialTimeout == 0 {
		r.DialTimeout = caddy.Duration(2 * time.Second)
	}
	if r.ReadTimeout == 0 {
		r.ReadTimeout = caddy.Duration(time.Second)
	}
	if r.WriteTimeout == 0 {
		r.WriteTimeout = caddy.Duration(time.Second)
	}
	return r
}

func replaceAll(repl *caddy.Replacer, in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = repl.ReplaceKnown(s, "")
	}
	return out
}

// acquireRedis returns the shared client for the connection config,
// creating it on first use. It does not connect: go-redis dials lazily,
// so Provision never blocks on Redis.
func acquireRedis(c *RedisConfig, repl *caddy.Replacer) (redis.UniversalClient, string, error) {
	r := c.resolved(repl)
	keyJSON, err := json.Marshal(r)
	if err != nil {
		return nil, "", err
	}
	key := "redis:" + string(keyJSON)
	v, _, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		client, err := newRedisClient(r)
		if err != nil {
			return nil, err
		}
		return pooledRedis{client}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return v.(pooledRedis).UniversalClient, key, nil
}

// newRedisClient builds the client for a resolved config.
func newRedisClient(r RedisConfig) (redis.UniversalClient, error) {
	useZapForRedis()
	modes := 0
	for _, set := range []bool{r.URL != "", r.Sentinel != nil, r.Cluster != nil} {
		if set {
			modes++
		}
	}
	if modes != 1 {
		return nil, errors.New("set exactly one of url, sentinel and cluster")
	}
	tlsConfig, err := r.tlsConfig()
	if err != nil {
		return nil, err
	}
	dial, read, write := time.Duration(r.DialTimeout), time.Duration(r.ReadTimeout), time.Duration(r.WriteTimeout)
	switch {
	case r.Cluster != nil:
		if len(r.Cluster.Addrs) == 0 {
			return nil, errors.New("cluster needs addrs")
		}
		if r.DB != 0 {
			return nil, errors.New("cluster has no databases (db must be 0)")
		}
		f := failFast(dial)
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: r.Cluster.Addrs, Username: r.Username, Password: r.Password, TLSConfig: tlsConfig,
			PoolSize: r.PoolSize, DialTimeout: dial, ReadTimeout: read, WriteTimeout: write,
			MaxRetries: f.MaxRetries, MinRetryBackoff: f.MinRetryBackoff, MaxRetryBackoff: f.MaxRetryBackoff,
			DialerRetries: f.DialerRetries, PoolTimeout: f.PoolTimeout, ContextTimeoutEnabled: f.ContextTimeoutEnabled,
			PipelinePoolSize: f.PipelinePoolSize,
		}), nil
	case r.Sentinel != nil:
		if r.Sentinel.Master == "" || len(r.Sentinel.Addrs) == 0 {
			return nil, errors.New("sentinel needs master and addrs")
		}
		f := failFast(dial)
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: r.Sentinel.Master, SentinelAddrs: r.Sentinel.Addrs,
			SentinelUsername: r.Sentinel.Username, SentinelPassword: r.Sentinel.Password,
			Username: r.Username, Password: r.Password, DB: r.DB, TLSConfig: tlsConfig,
			PoolSize: r.PoolSize, DialTimeout: dial, ReadTimeout: read, WriteTimeout: write,
			MaxRetries: f.MaxRetries, MinRetryBackoff: f.MinRetryBackoff, MaxRetryBackoff: f.MaxRetryBackoff,
			DialerRetries: f.DialerRetries, PoolTimeout: f.PoolTimeout, ContextTimeoutEnabled: f.ContextTimeoutEnabled,
			PipelinePoolSize: f.PipelinePoolSize,
		}), nil
	}
	if err := checkRedisURL(r.URL); err != nil {
		return nil, err
	}
	opts, err := redis.ParseURL(r.URL)
	if err != nil {
		return nil, err
	}
	if r.Username != "" {
		opts.Username = r.Username
	}
	if r.Password != "" {
		opts.Password = r.Password
	}
	if r.DB != 0 {
		opts.DB = r.DB
	}
	if tlsConfig != nil {
		opts.TLSConfig = tlsConfig
	}
	if r.PoolSize != 0 {
		opts.PoolSize = r.PoolSize
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = dial, read, write
	f := failFast(dial)
	opts.MaxRetries, opts.MinRetryBackoff, opts.MaxRetryBackoff = f.MaxRetries, f.MinRetryBackoff, f.MaxRetryBackoff
	opts.DialerRetries, opts.PoolTimeout, opts.ContextTimeoutEnabled = f.DialerRetries, f.PoolTimeout, f.ContextTimeoutEnabled
	opts.PipelinePoolSize = f.PipelinePoolSize
	return redis.NewClient(opts), nil
}

// failFast returns the go-redis settings that make a Redis outage cost
// a request one failed attempt, not seconds, because stepup fails closed
// (503) anyway and the customer can retry:
//
//   - MaxRetries -1: no command retry. go-redis retries dial errors and
//     timeouts by default (3 times with backoff), which turned a refused
//     connection into 2.5 to 3.4 s per request and a black hole into four
//     dial timeouts. The price: a command that meets a connection Redis
//     closed a moment ago (a restart) fails once instead of being retried.
//   - DialerRetries 1: one dial per attempt. go-redis's default (5, 100 ms
//     apart, each with its own dial timeout) is the other half of those
//     seconds, and five dial timeouts for a black-holed address.
//   - PoolTimeout = dial_timeout: a request that waits for a pooled
//     connection (every one busy dialing a black hole) waits no longer
//     than it would dialing itself (go-redis's default: read_timeout + 1s).
//   - ContextTimeoutEnabled: a request that is cancelled (its client went
//     away) stops waiting for Redis.
//   - PipelinePoolSize -1: pipelines share the main pool. With go-redis's
//     dedicated pipeline pool, a pipeline under a cancellable context (every
//     request's) dialed twice against a black hole, once in each pool:
//     two dial timeouts per request. The store sends one pipeline per
//     request at most, so the dedicated pool buys nothing here.
//
// go-redis's own breaker stays: once pool_size dials in a row have
// failed, further commands fail at once with the last dial error while
// one background probe a second finds Redis again, so an outage causes no
// dial storm and recovery needs no restart.
func failFast(dial time.Duration) redis.Options {
	return redis.Options{
		MaxRetries:            -1,
		MinRetryBackoff:       -1,
		MaxRetryBackoff:       -1,
		DialerRetries:         1,
		PoolTimeout:           dial,
		ContextTimeoutEnabled: true,
		PipelinePoolSize:      -1,
	}
}

// tlsConfig builds the TLS settings, or nil when none are configured.
func (r RedisConfig) tlsConfig() (*tls.Config, error) {
	if r.TLS == nil {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: r.TLS.ServerName}
	if r.TLS.CA != "" {
		pem, err := os.ReadFile(r.TLS.CA)
		if err != nil {
			return nil, fmt.Errorf("tls ca: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca %s: no PEM certificate", r.TLS.CA)
		}
		c.RootCAs = pool
	}
	if r.TLS.Cert != "" || r.TLS.Key != "" {
		cert, err := tls.LoadX509KeyPair(r.TLS.Cert, r.TLS.Key)
		if err != nil {
			return nil, fmt.Errorf("tls client certificate: %v", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
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
