package stepup

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// The scaling benchmarks (BenchmarkScale...): how the costs grow with
// the number of live grants and the size of a stashed request, against
// the redis-server TestMain starts. bench/run.sh (full run) runs them
// and puts them in the scaling table of docs/BENCHMARKS.md:
//
//	go test -run '^$' -bench '^BenchmarkScale' -benchmem ./stepup
//
// Besides sec/op they report Redis memory (redis-B/op: growth of
// used_memory per operation, or per live grant).

// redisUsedMemory is INFO memory's used_memory.
func redisUsedMemory(tb testing.TB, client *redis.Client) int64 {
	tb.Helper()
	info, err := client.Info(context.Background(), "memory").Result()
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return n
		}
	}
	tb.Fatal("no used_memory in INFO memory")
	return 0
}

func scaleRedis(b *testing.B) (*redis.Client, store.Store) {
	client := redis.NewClient(&redis.Options{Addr: redisServer.Addr(), PoolSize: 64})
	st := store.NewRedis(client, "scale:"+randomID()+":", true)
	b.Cleanup(func() { _ = st.Close() })
	return client, st
}

// BenchmarkScaleGrants: a protected request with a valid session grant,
// through Serve, Redis store, with 1,000, 20,000 and 1,000,000 users
// holding a live grant (each request another user's, round robin).
//
//   - fresh: every grant was issued after the last revocation of anyone,
//     the common case: the check is in process, whatever the number.
//   - after-revocation: someone was revoked after every grant was issued,
//     so each check must look up its own user's revocation time (cached
//     for a second per instance, the cache bounded at revokeCacheMax):
//     with more users than requests per second, one Redis read each.
//
// A session grant keeps nothing in Redis (redis-B/grant is 0 by design);
// a transaction grant keeps an issuance record until it is used or
// expires, measured by BenchmarkScaleTransactionGrants.
func BenchmarkScaleGrants(b *testing.B) {
	for _, users := range []int{1000, 20000, 1000000} {
		for _, revoked := range []bool{false, true} {
			name := fmt.Sprintf("grants=%d/fresh", users)
			if revoked {
				name = fmt.Sprintf("grants=%d/after-revocation", users)
			}
			b.Run(name, func(b *testing.B) {
				client, st := scaleRedis(b)
				e := benchEngineOn(b, st)
				match := MatchFunc(func(*http.Request) (*Policy, error) { return e.Policy("p"), nil })
				next := NextFunc(func(http.ResponseWriter, *http.Request) error { return nil })
				now := e.now()
				p := e.Policy("p")
				r := httptest.NewRequest("GET", "/vault/statement", nil)
				// The store's generation marker, made on first use, is not
				// a grant's.
				if _, err := e.binding(r, p, "warm-up", "sid:w", ""); err != nil {
					b.Fatal(err)
				}
				memBefore := redisUsedMemory(b, client)
				names := make([]string, users)
				cookies := make([]string, users)
				for i := range names {
					names[i] = "user-" + strconv.Itoa(i)
					bind, err := e.binding(r, p, names[i], "sid:s"+strconv.Itoa(i), "")
					if err != nil {
						b.Fatal(err)
					}
					tok := e.keys.issueGrant(Grant{Kind: SessionGrant, Policy: "p", IssuedAt: now, Expires: now.Add(time.Hour)}, bind)
					cookies[i] = sessionCookieName + "=s" + strconv.Itoa(i) + "; " + grantCookiePrefix + "p=" + tok
				}
				if revoked {
					// A revocation of someone else, after every grant.
					time.Sleep(1100 * time.Millisecond)
					if err := e.RevokeUser(context.Background(), "someone-else"); err != nil {
						b.Fatal(err)
					}
				}
				memGrants := redisUsedMemory(b, client) - memBefore
				serveGrants(b, e, r, names, cookies, match, next)
				if !revoked {
					b.ReportMetric(float64(max(memGrants, 0))/float64(users), "redis-B/grant")
				}
			})
		}
	}
}

// BenchmarkScaleTransactionGrants: Redis memory of live transaction
// grants (their issuance records) at 1,000, 20,000 and 1,000,000, and
// the time to issue one (written 32 at a time).
func BenchmarkScaleTransactionGrants(b *testing.B) {
	for _, n := range []int{1000, 20000, 1000000} {
		b.Run(fmt.Sprintf("grants=%d", n), func(b *testing.B) {
			client, st := scaleRedis(b)
			for b.Loop() {
				before := redisUsedMemory(b, client)
				issueConcurrently(b, st, n)
				b.ReportMetric(float64(redisUsedMemory(b, client)-before)/float64(n), "redis-B/grant")
				b.StopTimer()
				if err := client.FlushDB(context.Background()).Err(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/grant")
		})
	}
}

func issueConcurrently(b *testing.B, st store.Store, n int) {
	const workers = 32
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	expires := time.Now().Add(10 * time.Minute)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if err := st.IssueGrant(context.Background(), fmt.Sprintf("g%022d", i), expires); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkScaleStash: a browser's POST to a protected route, with a
// body of 1 KiB, 64 KiB and 1 MiB, challenged and its request stashed
// (sealed) in Redis: the time of the whole challenge and the Redis
// memory each stash takes.
func BenchmarkScaleStash(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10, 1 << 20} {
		b.Run("stash="+sizeName(size), func(b *testing.B) {
			client, st := scaleRedis(b)
			cfg := Config{Secret: testSecret, MaxBody: 2 << 20, Limits: Limits{
				PerUser: store.Limit{Rate: -1}, PerIP: store.Limit{Rate: -1}, PerNumber: store.Limit{Rate: -1},
			}}
			e, err := New(cfg, []*Policy{{Name: "p"}}, Options{
				Store: st, Sender: &outbox{},
				Identity: &identity.Header{UserHeader: "X-Remote-User", PhoneHeader: "X-Remote-Phone"},
			})
			if err != nil {
				b.Fatal(err)
			}
			match := MatchFunc(func(*http.Request) (*Policy, error) { return e.Policy("p"), nil })
			next := NextFunc(func(http.ResponseWriter, *http.Request) error {
				return fmt.Errorf("a request without a grant went upstream")
			})
			body := bytes.Repeat([]byte("x"), size)
			before := redisUsedMemory(b, client)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				req := httptest.NewRequest("POST", "/protected", bytes.NewReader(body))
				req.Header.Set("Accept", "text/html")
				req.Header.Set("Content-Type", "application/octet-stream")
				req.Header.Set("X-Remote-User", "stash-"+strconv.Itoa(i))
				req.Header.Set("X-Remote-Phone", "+14155550100")
				w := httptest.NewRecorder()
				if err := e.Serve(w, req, match, next); err != nil {
					b.Fatal(err)
				}
				if w.Code != http.StatusSeeOther && w.Code != http.StatusUnauthorized && w.Code != http.StatusOK {
					b.Fatalf("POST with a %d-byte body: %d", size, w.Code)
				}
			}
			b.ReportMetric(float64(redisUsedMemory(b, client)-before)/float64(i), "redis-B/op")
		})
	}
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return strconv.Itoa(n>>20) + "MiB"
	}
	return strconv.Itoa(n>>10) + "KiB"
}
