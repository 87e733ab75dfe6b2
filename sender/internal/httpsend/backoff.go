package httpsend

import (
	"errors"
	"math"
	mathrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

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
