package stepup

import (
	"bytes"
	"context"
	"crypto/hmac"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/webhook"
	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// The hot paths of the engine, each against the memory store and a real
// redis-server (the one TestMain starts). Compare runs with benchstat:
//
//	go test -run '^$' -bench . -benchmem -count 10 ./stepup > new.txt
//	go tool -modfile=tools/go.mod benchstat old.txt new.txt

// benchStores runs fn against a memory store and a Redis store.
func benchStores(b *testing.B, fn func(b *testing.B, st store.Store)) {
	b.Run("memory", func(b *testing.B) {
		st := store.NewMemory(0)
		b.Cleanup(func() { _ = st.Close() })
		fn(b, st)
	})
	b.Run("redis", func(b *testing.B) {
		client := redis.NewClient(&redis.Options{Addr: redisServer.Addr()})
		rt := &roundTrips{}
		client.AddHook(rt)
		benchRT = rt
		defer func() { benchRT = nil }()
		st := store.NewRedis(client, "bench:"+randomID()+":", true)
		b.Cleanup(func() { _ = st.Close() })
		start := rt.n.Load()
		fn(b, st)
		// Round trips to Redis per operation (a pipeline is one; the
		// setup before the timed loop is included, a small excess).
		// Counted in the sub-benchmark that runs the loop.
		if b.N > 0 {
			b.ReportMetric(float64(rt.n.Load()-start)/float64(b.N), "redis-rt/op")
		}
	})
}

// roundTrips counts the round trips a Redis client makes: each command
// sent alone and each pipeline (or transaction) once, except while
// paused (a benchmark's untimed setup).
type roundTrips struct {
	n      atomic.Int64
	paused atomic.Bool
}

// benchRT is the counter of the Redis benchmark running, if any.
var benchRT *roundTrips

// stopTimer stops b's timer and the round-trip count; startTimer
// restarts both.
func stopTimer(b *testing.B) {
	b.StopTimer()
	if benchRT != nil {
		benchRT.paused.Store(true)
	}
}

func startTimer(b *testing.B) {
	if benchRT != nil {
		benchRT.paused.Store(false)
	}
	b.StartTimer()
}

func (*roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !c.paused.Load() {
			c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (c *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !c.paused.Load() {
			c.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

// benchEngineOn is an engine with one session policy "p" on st, no rate
// limits, and an outbox for a sender.
func benchEngineOn(b *testing.B, st store.Store) *Engine {
	cfg := Config{Secret: testSecret, Limits: Limits{
		PerUser: store.Limit{Rate: -1}, PerIP: store.Limit{Rate: -1}, PerNumber: store.Limit{Rate: -1},
	}}
	e, err := New(cfg, []*Policy{{Name: "p"}}, Options{
		Store: st, Sender: &outbox{},
		Identity: &identity.Header{UserHeader: "X-Remote-User", PhoneHeader: "X-Remote-Phone"},
	})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkCodeMAC: the keyed hash a code is stored and compared as.
func BenchmarkCodeMAC(b *testing.B) {
	e := benchEngineOn(b, store.NewMemory(0))
	id := randomID()
	stored := e.keys.codeMAC(id, "123456")
	b.ReportAllocs()
	for b.Loop() {
		if !hmac.Equal(stored, e.keys.codeMAC(id, "123456")) {
			b.Fatal("mismatch")
		}
	}
}

// BenchmarkGrantCheck: a protected request with a valid session grant
// cookie, through Serve, for one user (the revocation state comes from
// the per-instance cache) and for a new user each time (each grant
// issued after the last revocation of anyone: no per-user lookup).
func BenchmarkGrantCheck(b *testing.B) {
	benchStores(b, func(b *testing.B, st store.Store) {
		e := benchEngineOn(b, st)
		match := MatchFunc(func(*http.Request) (*Policy, error) { return e.Policy("p"), nil })
		next := NextFunc(func(http.ResponseWriter, *http.Request) error { return nil })
		now := e.now()
		cookieFor := func(user string) string {
			r := httptest.NewRequest("GET", "/vault/statement", nil)
			bind, err := e.binding(r, e.Policy("p"), user, "sid:s1", "")
			if err != nil {
				b.Fatal(err)
			}
			tok := e.keys.issueGrant(Grant{Kind: SessionGrant, Policy: "p", IssuedAt: now, Expires: now.Add(time.Hour)}, bind)
			return sessionCookieName + "=s1; " + grantCookiePrefix + "p=" + tok
		}
		for _, users := range []int{1, 10000} {
			b.Run(fmt.Sprintf("users=%d", users), func(b *testing.B) {
				names := make([]string, users)
				cookies := make([]string, users)
				for i := range names {
					names[i] = fmt.Sprintf("user-%d", i)
					cookies[i] = cookieFor(names[i])
				}
				r := httptest.NewRequest("GET", "/vault/statement", nil)
				serveGrants(b, e, r, names, cookies, match, next)
			})
		}
	})
}

// BenchmarkVerify: POST /.stepup/verify with the right code, one pending
// challenge per request (made through the store beforehand, so that only
// the verification is timed), as an API client.
func BenchmarkVerify(b *testing.B) {
	benchStores(b, func(b *testing.B, st store.Store) {
		e := benchEngineOn(b, st)
		match := MatchFunc(func(*http.Request) (*Policy, error) { return nil, nil })
		next := NextFunc(func(http.ResponseWriter, *http.Request) error { return nil })
		ctx := context.Background()
		type pending struct{ user, body string }
		var todo []pending
		b.ReportAllocs()
		for b.Loop() {
			if len(todo) == 0 {
				stopTimer(b)
				todo = make([]pending, 1000)
				for i := range todo {
					user := "v-" + randomID()
					// Made as the engine makes it, for the request below.
					c, err := e.newChallenge(httptest.NewRequest("POST", DefaultPathPrefix+"/verify", nil), e.Policy("p"),
						e.keys.userKey(user), e.keys.sessionKey(apiSession), "/")
					if err != nil {
						b.Fatal(err)
					}
					c.Phone = "+14155550100"
					c.CodeMAC = e.keys.codeMAC(c.ID, "123456")
					if err := st.Create(ctx, c, "", time.Minute); err != nil {
						b.Fatal(err)
					}
					todo[i] = pending{user, `{"challenge":"` + c.ID + `","code":"123456"}`}
				}
				startTimer(b)
			}
			p := todo[len(todo)-1]
			todo = todo[:len(todo)-1]
			r := httptest.NewRequest("POST", DefaultPathPrefix+"/verify", strings.NewReader(p.body))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("X-Remote-User", p.user)
			r.Header.Set("X-Remote-Phone", "+14155550100")
			w := &nopWriter{h: http.Header{}}
			if err := e.Serve(w, r, match, next); err != nil || w.code != http.StatusOK {
				b.Fatalf("verify = %d, %v", w.code, err)
			}
		}
	})
}

// BenchmarkCreate: a new challenge for a new user, its code sent to the
// outbox, as an API client (401 with the challenge).
func BenchmarkCreate(b *testing.B) {
	benchStores(b, func(b *testing.B, st store.Store) {
		e := benchEngineOn(b, st)
		match := MatchFunc(func(*http.Request) (*Policy, error) { return e.Policy("p"), nil })
		next := NextFunc(func(http.ResponseWriter, *http.Request) error { return nil })
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			r := httptest.NewRequest("GET", "/vault/new", nil)
			r.Header.Set("X-Remote-User", fmt.Sprintf("c-%d", i))
			// A number of its own for each user, as in a sale.
			r.Header.Set("X-Remote-Phone", fmt.Sprintf("+1415%07d", 2000000+i%7000000))
			w := &nopWriter{h: http.Header{}}
			if err := e.Serve(w, r, match, next); err != nil || w.code != http.StatusUnauthorized {
				b.Fatalf("challenge = %d, %v", w.code, err)
			}
		}
	})
}

// nopWriter is a ResponseWriter that keeps the status only.
type nopWriter struct {
	h    http.Header
	code int
}

func (w *nopWriter) Header() http.Header { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return len(p), nil
}
func (w *nopWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

// BenchmarkReceipt: POST /.stepup/receipts/gw, a signed "delivered"
// receipt call of a webhook gateway for a message of a pending challenge
// (challenge and message recorded beforehand), as the provider makes
// it: the signature checked, the message found, its status moved on,
// code_delivered told. Compare with BenchmarkVerify.
func BenchmarkReceipt(b *testing.B) {
	benchStores(b, func(b *testing.B, st store.Store) {
		gwCfg := webhook.Config{URL: "http://127.0.0.1:9/sms", SigningSecret: testWebhookSecret}
		gwCfg.Name = "gw"
		gw, err := webhook.New(gwCfg)
		if err != nil {
			b.Fatal(err)
		}
		cfg := Config{Secret: testSecret, Receipts: Receipts{PublicURL: "https://shop.example"}}
		full, _ := cfg.WithDefaults()
		e, err := New(cfg, []*Policy{{Name: "p"}}, Options{
			Store: st, Sender: sender.NewChain([]sender.Sender{gw}, sender.ChainOptions{ReceiptURL: full.ReceiptURL}),
			Identity: &identity.Header{UserHeader: "X-Remote-User", PhoneHeader: "X-Remote-Phone"},
		})
		if err != nil {
			b.Fatal(err)
		}
		key, _ := sender.ParseWebhookSecret(testWebhookSecret)
		match := MatchFunc(func(*http.Request) (*Policy, error) { return nil, nil })
		next := NextFunc(func(http.ResponseWriter, *http.Request) error { return nil })
		ctx := context.Background()
		type call struct {
			body         []byte
			id, ts, sign string
		}
		var todo []call
		b.ReportAllocs()
		for b.Loop() {
			if len(todo) == 0 {
				b.StopTimer()
				todo = make([]call, 1000)
				for i := range todo {
					c, err := e.newChallenge(httptest.NewRequest("GET", "/", nil), e.Policy("p"), "u"+randomID(), "s", "/")
					if err != nil {
						b.Fatal(err)
					}
					c.Phone = "+14155550100"
					c.CodeMAC = e.keys.codeMAC(c.ID, "123456")
					if err := st.Create(ctx, c, "", time.Minute); err != nil {
						b.Fatal(err)
					}
					msg := "msg_" + randomID()
					if _, err := st.AddDelivery(ctx, c.ID, store.Delivery{Sender: "gw", MessageID: msg, Sent: time.Now(), Code: 1}, nil, c.Expires); err != nil {
						b.Fatal(err)
					}
					body := []byte(`{"message_id":"` + msg + `","status":"delivered"}`)
					now := time.Now()
					rid := "r" + randomID()
					todo[i] = call{body, rid, strconv.FormatInt(now.Unix(), 10), sender.SignWebhook(key, rid, now, body)}
				}
				b.StartTimer()
			}
			c := todo[len(todo)-1]
			todo = todo[:len(todo)-1]
			r := httptest.NewRequest("POST", DefaultPathPrefix+"/receipts/gw", bytes.NewReader(c.body))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("webhook-id", c.id)
			r.Header.Set("webhook-timestamp", c.ts)
			r.Header.Set("webhook-signature", c.sign)
			w := &nopWriter{h: http.Header{}}
			if err := e.Serve(w, r, match, next); err != nil || w.code != http.StatusOK {
				b.Fatalf("receipt = %d, %v", w.code, err)
			}
		}
	})
}

// serveGrants is the loop of the grant benchmarks: r, as user i of names
// with the grant cookie cookies[i] in turn, through e, every grant
// accepted.
func serveGrants(b *testing.B, e *Engine, r *http.Request, names, cookies []string, match MatchFunc, next NextFunc) {
	r.Header.Set("Accept", "text/html")
	r.Header.Set("X-Remote-Phone", "+14155550100")
	w := &nopWriter{h: http.Header{}}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		u := i % len(names)
		i++
		r.Header.Set("X-Remote-User", names[u])
		r.Header.Set("Cookie", cookies[u])
		w.code = 0
		if err := e.Serve(w, r, match, next); err != nil || w.code != 0 {
			b.Fatalf("grant refused: %d, %v", w.code, err)
		}
	}
}
