package caddymodule

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
)

// redisLogName is the logger go-redis's own messages go to.
const redisLogName = "stepup.redis"

// zapRedisLogger sends go-redis's own log lines ("connection pool: failed
// to dial after 1 attempts: ...") through Caddy's logger, so that they
// are JSON like every other line instead of plain "redis: 2026/..."
// lines on stderr that break log parsing.
//
// It looks up Caddy's default logger on every line rather than keeping
// one: go-redis's logger is process-wide and set once, while Caddy's
// logging config (and so its default logger) changes with each reload.
type zapRedisLogger struct{}

// Printf implements go-redis's internal.Logging.
func (zapRedisLogger) Printf(_ context.Context, format string, v ...any) {
	msg := strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: ")
	caddyLog().Named(redisLogName).Warn(msg)
}

// caddyLog is Caddy's default logger (a variable for tests).
var caddyLog = caddy.Log

var redisLoggerOnce sync.Once

// useZapForRedis routes go-redis's log lines through Caddy's logger. It
// is set once per process (go-redis's logger is a global), before the
// first client is made.
func useZapForRedis() {
	redisLoggerOnce.Do(func() { redis.SetLogger(zapRedisLogger{}) })
}
