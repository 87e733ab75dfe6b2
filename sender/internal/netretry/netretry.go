// Package netretry holds what every HTTP sender of the process shares,
// the webhook and the providers alike: one transport (one connection
// pool), the backoff between attempts, and Retry-After parsing. It
// imports nothing of sender, so that both sender and its providers can
// use it.
package netretry

import (
	"errors"
	"math"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Transport is the process-wide transport of the webhook's and the
// providers' default clients: one pool of connections however many senders and config
// reloads there are (a transport per sender would leave its idle
// connections, and their goroutines, behind at every reload).
var Transport = &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	ForceAttemptHTTP2:     true,
	TLSHandshakeTimeout:   5 * time.Second,
	ResponseHeaderTimeout: 10 * time.Second,
	ExpectContinueTimeout: time.Second,
	IdleConnTimeout:       90 * time.Second,
	MaxIdleConns:          64,
	MaxIdleConnsPerHost:   8,
}

// Backoff returns the wait after attempt n (1 for the first): a random
// duration up to base·2^(n-1), capped at maxDelay ("full jitter"). Zero
// base and maxDelay mean 200ms and 2s.
func Backoff(n int, base, maxDelay time.Duration) time.Duration {
	if base <= 0 {
		base = 200 * time.Millisecond
	}
	if maxDelay <= 0 {
		maxDelay = 2 * time.Second
	}
	d := maxDelay
	if n >= 1 && n-1 < 32 {
		if b := base << (n - 1); b > 0 && b < d {
			d = b
		}
	}
	return mathrand.N(d) + 1
}

// RetryAfter reads a Retry-After value, delta-seconds or an HTTP date,
// as a wait from now: 0 for a missing or malformed value, a huge wait for
// a huge one (the deadline then ends the retries).
func RetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if secs > math.MaxInt64/uint64(time.Second) {
			return math.MaxInt64
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}
