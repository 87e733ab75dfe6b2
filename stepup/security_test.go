package stepup

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// wrong returns a six-digit code that is not code.
func wrong(code string, i int) string {
	w := fmt.Sprintf("%06d", i%1_000_000)
	if w == code {
		w = fmt.Sprintf("%06d", (i+1)%1_000_000)
	}
	return w
}

// 10,000 guesses for one identity, across challenges and resends, never
// get more than max_failures compared, and after the lockout even the
// right code is refused and no code is sent.
func TestBruteForce(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		const guesses = 10_000
		h := newHarness(t, st, func(c *Config, _ []*Policy) { c.MaxFailures = 20; c.MaxAttempts = 5 })
		alice := h.browser("alice", "+14155550100")
		var compared, locked, limited, other int
		loc, csrf := alice.start("/account/payment-methods")
		for i := 0; i < guesses; i++ {
			resp, page := alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {wrong(h.out.last(t).Code, i)}})
			switch {
			case resp.StatusCode == http.StatusUnprocessableEntity && strings.Contains(page, "not correct"):
				compared++
			case resp.StatusCode == http.StatusTooManyRequests:
				locked++
			case resp.StatusCode == http.StatusGone:
				// The challenge is dead: resend does not revive it, so
				// start a new one, as an attacker would.
				h.clock.add(time.Second)
				r2, _ := alice.do("GET", fmt.Sprintf("/account/payment-methods?n=%d", i), nil)
				if r2.StatusCode == http.StatusSeeOther {
					loc = r2.Header.Get("Location")
					_, p := alice.do("GET", loc, nil)
					csrf = csrfOf(t, p)
				} else {
					limited++
				}
			default:
				other++
			}
			if i%7 == 0 {
				// Resends in between never reset anything.
				h.clock.add(31 * time.Second)
				alice.do("POST", loc+"/resend", url.Values{"csrf": {csrf}})
			}
		}
		n, _, err := st.Failures(context.Background(), h.e.keys.userKey("alice"))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d guesses: %d wrong codes compared (%d answered 'not correct'), %d refused as locked, %d new challenges refused, %d codes sent, %d other",
			guesses, n, compared, locked, limited, h.out.count(), other)
		if n != 20 || compared > 20 {
			t.Fatalf("%d wrong codes were compared, want exactly max_failures = 20 before the lockout", n)
		}
		if other != 0 {
			t.Fatalf("%d unexpected answers", other)
		}
		sent := h.out.count()
		resp, _ := alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {h.out.last(t).Code}})
		if resp.StatusCode != http.StatusTooManyRequests || h.upstream.Load() != 0 {
			t.Fatalf("the right code after lockout = %d (upstream %d)", resp.StatusCode, h.upstream.Load())
		}
		if h.out.count() != sent {
			t.Fatal("a code was sent while locked")
		}
	})
}

// 100 concurrent verifications of one correct code: exactly one succeeds.
// Each comparison holds a unit of the user's failure budget while it
// runs, so past max_failures at once the rest are refused as locked
// (429) without a comparison; a right code gives its unit back.
func TestHundredConcurrentVerifications(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		h := newHarness(t, st, func(c *Config, _ []*Policy) { c.MaxAttempts = 10 })
		alice := h.browser("alice", "+14155550100")
		loc, csrf := alice.start("/account/payment-methods")
		code := h.out.last(t).Code
		var ok, refused, locked atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < 100; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b := &browser{h: h, user: "alice", phone: "+14155550100", jar: map[string]string{}}
				for k, v := range alice.jar {
					b.jar[k] = v
				}
				<-start
				resp, _ := b.do("POST", loc, url.Values{"csrf": {csrf}, "code": {code}})
				switch resp.StatusCode {
				case http.StatusSeeOther:
					ok.Add(1)
				case http.StatusGone:
					refused.Add(1)
				case http.StatusTooManyRequests:
					locked.Add(1)
				default:
					t.Errorf("status %d", resp.StatusCode)
				}
			}()
		}
		close(start)
		wg.Wait()
		if ok.Load() != 1 || refused.Load()+locked.Load() != 99 {
			t.Fatalf("100 concurrent right codes: %d succeeded, %d refused, %d locked", ok.Load(), refused.Load(), locked.Load())
		}
		// Every unit came back: nobody is locked by right codes.
		if n, _, err := st.Failures(context.Background(), h.e.keys.userKey("alice")); err != nil || n != 0 {
			t.Fatalf("failures after 100 right codes = %d, %v", n, err)
		}
	})
}

// A flood from one IP (many users) and from many IPs (one number) stays
// within the per-IP and per-number budgets.
func TestChallengeFloods(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		h := newHarness(t, st, func(c *Config, _ []*Policy) {
			c.Limits.PerIP = store.Limit{Rate: 30, Period: time.Hour}
			c.Limits.PerNumber = store.Limit{Rate: 10, Period: time.Hour}
			c.Limits.PerUser = store.Limit{Rate: 10, Period: time.Hour}
		})
		var limited int
		for i := 0; i < 100; i++ {
			b := h.browser(fmt.Sprintf("user%d", i), fmt.Sprintf("+1415555%04d", 1000+i))
			resp, page := b.do("GET", "/account/payment-methods", nil, "X-Test-Client-IP", "203.0.113.7")
			if resp.StatusCode == http.StatusTooManyRequests {
				limited++
				if resp.Header.Get("Retry-After") == "" || !strings.Contains(page, "No code was sent") {
					t.Fatalf("429 without Retry-After or text:\n%s", page)
				}
			}
		}
		if h.out.count() != 30 || limited != 70 {
			t.Fatalf("one IP, 100 users: %d codes sent, %d limited; want 30 and 70", h.out.count(), limited)
		}
		before := h.out.count()
		limited = 0
		for i := 0; i < 100; i++ {
			b := h.browser(fmt.Sprintf("victim-user%d", i), "+14155550199")
			resp, _ := b.do("GET", "/account/payment-methods", nil, "X-Test-Client-IP", fmt.Sprintf("198.51.100.%d", i))
			if resp.StatusCode == http.StatusTooManyRequests {
				limited++
			}
		}
		if sent := h.out.count() - before; sent != 10 || limited != 90 {
			t.Fatalf("100 IPs, one number: %d codes sent, %d limited; want 10 and 90", sent, limited)
		}
		// API clients get JSON with Retry-After.
		b := h.browser("victim-api", "+14155550199")
		resp, out := b.apiDo("GET", "/account/payment-methods", nil, "X-Test-Client-IP", "192.0.2.1")
		if resp.StatusCode != http.StatusTooManyRequests || out["error"] != "rate_limited" || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("API flood answer = %d %v", resp.StatusCode, out)
		}
	})
}

func TestPerCountryBudgetAndAlarm(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory(time.Minute), func(c *Config, _ []*Policy) {
		c.Limits.PerCountry = map[int]store.Limit{91: {Rate: 3, Period: time.Hour}, 0: {Rate: 100, Period: time.Hour}}
	})
	for i := 0; i < 5; i++ {
		h.browser(fmt.Sprintf("in%d", i), fmt.Sprintf("+9198765432%02d", i)).do("GET", "/account/payment-methods", nil,
			"X-Test-Client-IP", fmt.Sprintf("10.0.0.%d", i))
	}
	if h.out.count() != 3 {
		t.Fatalf("codes to +91 = %d, want the budget of 3", h.out.count())
	}
	if !strings.Contains(h.logs.String(), "country_budget_exceeded") || !strings.Contains(h.logs.String(), `"calling_code":"91"`) {
		t.Fatal("no country alarm in the log")
	}
	// Other countries are not affected.
	h.browser("us", "+14155550100").do("GET", "/account/payment-methods", nil)
	if h.out.count() != 4 {
		t.Fatal("a US number was limited by the Indian budget")
	}
}

func TestParseLimit(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]store.Limit{
		"10/1h":  {Rate: 10, Period: time.Hour, Burst: 10},
		"30/h":   {Rate: 30, Period: time.Hour, Burst: 30},
		"5/m":    {Rate: 5, Period: time.Minute, Burst: 5},
		"500/1d": {Rate: 500, Period: 24 * time.Hour, Burst: 500},
		"2/d":    {Rate: 2, Period: 24 * time.Hour, Burst: 2},
		"off":    {Rate: -1},
	} {
		got, err := ParseLimit(in)
		if err != nil || got != want {
			t.Errorf("ParseLimit(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "10", "ten/h", "0/h", "-1/h", "10/0s", "10/40d", "10/fortnight"} {
		if _, err := ParseLimit(bad); err == nil {
			t.Errorf("ParseLimit(%q) accepted", bad)
		}
	}
	for in, want := range map[string]int{"IN": 91, "in": 91, "91": 91, "+44": 44, "*": 0, "US": 1} {
		if got, err := ParseCountry(in); err != nil || got != want {
			t.Errorf("ParseCountry(%q) = %d, %v", in, got, err)
		}
	}
	for _, bad := range []string{"XX", "999", "India", ""} {
		if _, err := ParseCountry(bad); err == nil {
			t.Errorf("ParseCountry(%q) accepted", bad)
		}
	}
}

// During a secret rotation, grants and pending challenges made with the
// previous secret still work; once it is removed they do not.
func TestSecretRotation(t *testing.T) {
	t.Parallel()
	st := store.NewMemory(time.Minute)
	oldSecret := []byte("old-secret-0123456789abcdef0123456789")
	sessionCheckout := func(ps []*Policy) { ps[1] = &Policy{Name: "checkout", Mode: Session} }
	// Two instances of one site (a shared scope: test servers listen on
	// two ports, instances of one config on one).
	h1 := newHarness(t, st, func(c *Config, ps []*Policy) { c.Secret = oldSecret; c.Scope = "shop"; sessionCheckout(ps) })
	alice := h1.browser("alice", "+14155550100")
	loc, csrf := alice.start("/account/payment-methods")
	alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {h1.out.last(t).Code}})
	resp, _ := alice.raw("POST", "/checkout", "application/x-www-form-urlencoded", []byte("a=1"))
	pendingLoc := resp.Header.Get("Location")
	_, page := alice.do("GET", pendingLoc, nil)
	pendingCSRF := csrfOf(t, page)

	h2 := newHarness(t, st, func(c *Config, ps []*Policy) {
		c.PreviousSecrets = [][]byte{oldSecret}
		c.Scope = "shop"
		sessionCheckout(ps)
	})
	h2.out.msgs = h1.out.msgs
	b2 := h2.browser("alice", "+14155550100")
	b2.jar = alice.jar
	if resp, _ := b2.do("GET", "/account/payment-methods", nil); resp.StatusCode != 200 {
		t.Fatalf("old grant during rotation = %d", resp.StatusCode)
	}
	// The pending challenge (made with the old secret) verifies, and its
	// preserved request (sealed with the old secret) is replayed.
	resp, _ = b2.do("POST", pendingLoc, url.Values{"csrf": {pendingCSRF}, "code": {h1.out.last(t).Code}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("old challenge during rotation = %d", resp.StatusCode)
	}
	if resp, body := b2.do("GET", "/checkout", nil); resp.StatusCode != 200 || h2.upstream.Load() != 2 || string(*h2.lastBody.Load()) != "a=1" {
		t.Fatalf("replay of an old-secret stash = %d %q", resp.StatusCode, body)
	}
	// With the old secret gone, the grant it made is refused, and the
	// one made during the rotation (new secret) still works.
	h3 := newHarness(t, st, func(c *Config, ps []*Policy) { c.Scope = "shop"; sessionCheckout(ps) })
	b3 := h3.browser("alice", "+14155550100")
	b3.jar = alice.jar
	if resp, _ := b3.do("GET", "/account/payment-methods", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("old-secret grant after the rotation = %d, want a new challenge", resp.StatusCode)
	}
	if resp, _ := b3.raw("POST", "/checkout", "text/plain", []byte("b")); resp.StatusCode != 200 {
		t.Fatalf("grant made with the new secret = %d", resp.StatusCode)
	}
	if _, err := New(Config{Secret: testSecret, PreviousSecrets: [][]byte{[]byte("short")}}, nil,
		Options{Store: st, Identity: &identity.Header{}, Sender: &outbox{}}); err == nil {
		t.Fatal("a short previous secret was accepted")
	}
}

// panicky is an identity source with a bug.
type panicky struct{}

func (panicky) Identify(*http.Request) (identity.Identity, error) {
	panic("identity bug with secret 123456")
}

// A panic in stepup fails closed (500, nothing upstream, no panic value
// in the log); a panic further down the chain is not ours to hide.
func TestPanicsFailClosed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory(time.Minute), nil)
	h.e.identity = panicky{}
	b := h.browser("alice", "+14155550100")
	resp, page := b.do("GET", "/account/payment-methods", nil)
	if resp.StatusCode != http.StatusInternalServerError || h.upstream.Load() != 0 || !strings.Contains(page, "Something went wrong") {
		t.Fatalf("panic in identity = %d, upstream %d", resp.StatusCode, h.upstream.Load())
	}
	if logs := h.logs.String(); !strings.Contains(logs, "panic in stepup") || strings.Contains(logs, "123456") {
		t.Fatalf("panic log wrong:\n%s", logs)
	}
	// A panic in the next handler propagates.
	h.e.identity = &identity.Header{UserHeader: "X-Remote-User", PhoneHeader: "X-Remote-Phone"}
	boom := NextFunc(func(http.ResponseWriter, *http.Request) error { panic("upstream bug") })
	defer func() {
		if v := recover(); v != "upstream bug" {
			t.Fatalf("recovered %v, want the upstream's panic", v)
		}
	}()
	req := httptest.NewRequest("GET", "/admin/x", nil)
	_ = h.e.Serve(httptest.NewRecorder(), req, MatchFunc(func(*http.Request) (*Policy, error) { return h.e.Policy("admin"), nil }), boom)
	t.Fatal("the upstream's panic was swallowed")
}

// Rejected (rate-limited) requests cost less than challenges: compare
// BenchmarkChallenge and BenchmarkRateLimited (both against Redis).
func benchEngine(b *testing.B, mutate func(*Config)) (*Engine, *outbox) {
	client := redis.NewClient(&redis.Options{Addr: redisServer.Addr()})
	st := store.NewRedis(client, "bench:"+b.Name()+":"+randomID()+":", true)
	b.Cleanup(func() { _ = st.Close() })
	out := &outbox{}
	cfg := Config{Secret: testSecret}
	if mutate != nil {
		mutate(&cfg)
	}
	e, err := New(cfg, []*Policy{{Name: "p"}}, Options{
		Store: st, Sender: out,
		Identity: &identity.Header{UserHeader: "X-Remote-User", PhoneHeader: "X-Remote-Phone"},
	})
	if err != nil {
		b.Fatal(err)
	}
	return e, out
}

func benchServe(b *testing.B, e *Engine, user func(i int) string) {
	match := MatchFunc(func(*http.Request) (*Policy, error) { return e.Policy("p"), nil })
	next := NextFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		req := httptest.NewRequest("GET", "/protected", nil)
		req.Header.Set("Accept", "text/html")
		req.Header.Set("X-Remote-User", user(i))
		req.Header.Set("X-Remote-Phone", "+14155550100")
		w := httptest.NewRecorder()
		if err := e.Serve(w, req, match, next); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChallenge: each request starts a new challenge and "sends" it.
func BenchmarkChallenge(b *testing.B) {
	e, _ := benchEngine(b, func(c *Config) {
		c.Limits = Limits{PerUser: store.Limit{Rate: -1}, PerIP: store.Limit{Rate: -1}, PerNumber: store.Limit{Rate: -1}}
	})
	benchServe(b, e, func(i int) string { return fmt.Sprintf("user-%d", i) })
}

// BenchmarkRateLimited: each request is refused by the per-IP limit.
func BenchmarkRateLimited(b *testing.B) {
	e, _ := benchEngine(b, func(c *Config) { c.Limits.PerIP = store.Limit{Rate: 1, Period: time.Hour} })
	benchServe(b, e, func(i int) string { return fmt.Sprintf("user-%d", i) })
}

// Revoking a user ends their grants (cookie and API) at once on the
// instance that revoked, and within a second on another one sharing the
// store; new verifications after the revocation work.
func TestRevokeUser(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		h := newHarness(t, st, func(c *Config, _ []*Policy) { c.Scope = "shop" })
		other, err := New(Config{Secret: testSecret, Scope: "shop"}, []*Policy{{Name: "payment-methods"}}, Options{
			Store: st, Sender: h.out, Identity: &identity.Header{UserHeader: "X-Remote-User", PhoneHeader: "X-Remote-Phone"},
			Now: h.clock.now,
		})
		if err != nil {
			t.Fatal(err)
		}
		alice := h.browser("alice", "+14155550100")
		loc, csrf := alice.start("/account/payment-methods")
		alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {h.out.last(t).Code}})
		bob := h.browser("bob", "+14155550101")
		loc, csrf = bob.start("/account/payment-methods")
		bob.do("POST", loc, url.Values{"csrf": {csrf}, "code": {h.out.last(t).Code}})

		// The other instance has seen alice's grant (and cached "not revoked").
		serveOther := func(b *browser) int {
			req := httptest.NewRequest("GET", "/account/payment-methods", nil)
			req.Header.Set("X-Remote-User", b.user)
			req.Header.Set("X-Remote-Phone", b.phone)
			req.Header.Set("Accept", "text/html")
			for k, v := range b.jar {
				req.AddCookie(&http.Cookie{Name: k, Value: v})
			}
			w := httptest.NewRecorder()
			_ = other.Serve(w, req, MatchFunc(func(*http.Request) (*Policy, error) { return other.Policy("payment-methods"), nil }),
				NextFunc(func(w http.ResponseWriter, _ *http.Request) error { w.WriteHeader(200); return nil }))
			return w.Code
		}
		if code := serveOther(alice); code != 200 {
			t.Fatalf("alice on the other instance before revocation = %d", code)
		}
		h.clock.add(2 * time.Second) // grants carry whole seconds
		serveOther(alice)            // the other instance's "not revoked" is fresh again
		if err := h.e.RevokeUser(context.Background(), "alice"); err != nil {
			t.Fatal(err)
		}
		if resp, _ := alice.do("GET", "/account/payment-methods", nil); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("revoked grant on the revoking instance = %d", resp.StatusCode)
		}
		h.clock.add(revokeCacheTTL) // the other instance reads the revocation again
		if code := serveOther(alice); code == 200 {
			t.Fatal("the other instance still honours the revoked grant revokeCacheTTL after the revocation")
		}
		if resp, _ := bob.do("GET", "/account/payment-methods", nil); resp.StatusCode != 200 {
			t.Fatalf("bob's grant after alice's revocation = %d", resp.StatusCode)
		}
		// A new verification after the revocation opens the policy again.
		h.clock.add(2 * time.Second)
		loc, csrf = alice.start("/account/payment-methods?again=1")
		alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {h.out.last(t).Code}})
		if resp, _ := alice.do("GET", "/account/payment-methods", nil); resp.StatusCode != 200 {
			t.Fatalf("new grant after revocation = %d", resp.StatusCode)
		}
	})
}

// Premium-rate and not-allowed numbers get no code (SMS-pumping defense).
func TestPhoneRules(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory(time.Minute), func(c *Config, _ []*Policy) {
		c.PhoneRules = sender.PhoneRules{Deny: []string{"GB"}}
	})
	for _, phone := range []string{"+19002345678", "+447400123456", "+4930123456"} {
		resp, page := h.browser("u"+phone, phone).do("GET", "/account/payment-methods", nil)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "mobile number") {
			t.Errorf("%s: %d", phone, resp.StatusCode)
		}
	}
	if h.out.count() != 0 {
		t.Fatalf("%d codes sent to refused numbers", h.out.count())
	}
	if !strings.Contains(h.logs.String(), "phone_refused") {
		t.Fatal("refusals not logged")
	}
	if resp, _ := h.browser("ok", "+919876543210").do("GET", "/account/payment-methods", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("an Indian mobile = %d", resp.StatusCode)
	}
}

// countingStore counts the per-user revocation lookups.
type countingStore struct {
	store.Store
	userLookups atomic.Int64
}

func (s *countingStore) RevokedAt(ctx context.Context, key string) (time.Time, error) {
	if key != store.AnyKey {
		s.userLookups.Add(1)
	}
	return s.Store.RevokedAt(ctx, key)
}

// A grant issued after the last revocation of anyone needs no lookup of
// its own user's revocation; one issued before it does, and is refused
// when its user was the one revoked.
func TestRevocationLookupsOnlyForOlderGrants(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		cs := &countingStore{Store: st}
		h := newHarness(t, cs, nil)
		alice := h.browser("alice", "+14155550100")
		loc, csrf := alice.start("/account/payment-methods")
		alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {h.out.last(t).Code}})
		for i := 0; i < 5; i++ {
			if resp, _ := alice.do("GET", "/account/payment-methods", nil); resp.StatusCode != 200 {
				t.Fatalf("granted request %d = %d", i, resp.StatusCode)
			}
		}
		if n := cs.userLookups.Load(); n != 0 {
			t.Fatalf("%d per-user revocation lookups with no revocation at all, want 0", n)
		}
		// Bob is revoked after alice's grant was issued: alice's grant is
		// now older than the last revocation and is looked up (once, then
		// cached), and still honoured.
		h.clock.add(2 * time.Second)
		if err := h.e.RevokeUser(context.Background(), "bob"); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			if resp, _ := alice.do("GET", "/account/payment-methods", nil); resp.StatusCode != 200 {
				t.Fatalf("alice after bob's revocation = %d", resp.StatusCode)
			}
		}
		if n := cs.userLookups.Load(); n != 1 {
			t.Fatalf("%d per-user lookups for a grant older than the last revocation, want 1 (then cached)", n)
		}
		h.clock.add(2 * time.Second)
		if err := h.e.RevokeUser(context.Background(), "alice"); err != nil {
			t.Fatal(err)
		}
		if resp, _ := alice.do("GET", "/account/payment-methods", nil); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("alice's revoked grant = %d, want a new challenge (303)", resp.StatusCode)
		}
	})
}

type eventLog struct {
	mu     sync.Mutex
	events []EventKind
}

func (l *eventLog) Observe(_ *http.Request, ev *Event) {
	l.mu.Lock()
	l.events = append(l.events, ev.Kind)
	l.mu.Unlock()
}

// A client that goes away mid-request cancels the store call: that is
// no store error (no error log, no store_errors metric), while a real
// store failure is one.
func TestClientGoneIsNoStoreError(t *testing.T) {
	t.Parallel()
	log := &eventLog{}
	e, err := New(Config{Secret: testSecret}, []*Policy{{Name: "p"}}, Options{
		Store: store.NewMemory(0), Sender: &outbox{}, Observer: log,
		Identity: &identity.Header{UserHeader: "X-Remote-User", PhoneHeader: "X-Remote-Phone"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequest("GET", "/vault", nil).WithContext(ctx)
	w := httptest.NewRecorder()
	_ = e.storeError(w, r, "create", fmt.Errorf("creating challenge: %w", context.Canceled))
	if w.Code != 499 || len(log.events) != 0 {
		t.Fatalf("canceled request: status %d, events %v; want 499 and none", w.Code, log.events)
	}
	w = httptest.NewRecorder()
	_ = e.storeError(w, httptest.NewRequest("GET", "/vault", nil), "create", errors.New("creating challenge: connection refused"))
	if w.Code != http.StatusServiceUnavailable || len(log.events) != 1 || log.events[0] != EventStoreError {
		t.Fatalf("store failure: status %d, events %v; want 503 and store_error", w.Code, log.events)
	}
}

// Resends refused for the cooldown or the send cap spend no rate-limit
// budget: spamming resend during the cooldown cannot drain the site's
// budget for everyone else.
func TestEarlyResendsSpendNoBudget(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		h := newHarness(t, st, func(c *Config, _ []*Policy) {
			c.Limits.Global = store.Limit{Rate: 2, Period: time.Hour, Burst: 2}
		})
		alice := h.browser("alice", "+14155550100")
		loc, csrf := alice.start("/account/payment-methods") // spends 1 of 2
		for i := 0; i < 10; i++ {
			if resp, _ := alice.do("POST", loc+"/resend", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("resend %d during the cooldown = %d, want 429", i, resp.StatusCode)
			}
		}
		h.clock.add(31 * time.Second)
		resp, _ := alice.do("POST", loc+"/resend", url.Values{"csrf": {csrf}})
		if resp.StatusCode != http.StatusSeeOther || h.out.count() != 2 {
			t.Fatalf("resend after the cooldown = %d with %d messages; the early ones must not have spent the budget", resp.StatusCode, h.out.count())
		}
	})
}

// A challenge that hides its number (reset flows, decoys) offers no
// other channel: which channels reach someone would tell whether the
// account exists.
func TestHiddenChallengesOfferNoChannel(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory(0), nil)
	h.out.setChannels(sender.SMS, sender.WhatsApp, sender.Email)
	c := &store.Challenge{Phone: "+14155550100", SentBy: "test"}
	id := identity.Identity{User: "alice", Email: "alice@example.com"}
	if got := h.e.otherChannels(bound{c: c, id: id}); len(got) != 2 {
		t.Fatalf("visible challenge: %v, want whatsapp and email", got)
	}
	c.Hidden = true
	if got := h.e.otherChannels(bound{c: c, id: id}); len(got) != 0 {
		t.Fatalf("hidden challenge offers %v", got)
	}
	if _, ok := h.e.chosenChannel(bound{c: c, id: id}, "whatsapp"); ok {
		t.Fatal("a hidden challenge accepted a channel")
	}
}

// failingRevocations is a store whose revocation reads fail on demand.
type failingRevocations struct {
	store.Store
	fail atomic.Bool
}

func (s *failingRevocations) RevokedAt(ctx context.Context, key string) (time.Time, error) {
	if s.fail.Load() {
		return time.Time{}, errors.New("connection refused")
	}
	return s.Store.RevokedAt(ctx, key)
}

// When the store fails, grants keep working on the revocation state read
// in the last DefaultRevocationGrace (30s), then fail closed.
func TestRevocationStateRidesOutShortOutages(t *testing.T) {
	t.Parallel()
	fs := &failingRevocations{Store: store.NewMemory(0)}
	h := newHarness(t, fs, nil)
	alice := h.browser("alice", "+14155550100")
	loc, csrf := alice.start("/account/payment-methods")
	alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {h.out.last(t).Code}})
	if resp, _ := alice.do("GET", "/account/payment-methods", nil); resp.StatusCode != 200 {
		t.Fatalf("granted request = %d", resp.StatusCode)
	}
	fs.fail.Store(true)
	h.clock.add(revokeCacheTTL + 100*time.Millisecond) // past the fresh cache
	if resp, _ := alice.do("GET", "/account/payment-methods", nil); resp.StatusCode != 200 {
		t.Fatalf("granted request with the store failing for a second = %d, want 200 (cached state)", resp.StatusCode)
	}
	// Past DefaultRevocationGrace the cached state no longer serves: fail closed.
	h.e.revs.any.Store(&revEntry{fetched: h.clock.now().Add(-DefaultRevocationGrace - time.Second)})
	if resp, _ := alice.do("GET", "/account/payment-methods", nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("granted request with only stale state = %d, want 503", resp.StatusCode)
	}
}
