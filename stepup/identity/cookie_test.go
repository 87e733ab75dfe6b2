package identity

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-stepup/caddy-stepup/internal/testredis"
)

// fakeClock is a settable clock for the cache.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newCookie(t *testing.T, cfg CookieConfig) (*Cookie, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	cfg.Logger = zap.New(core)
	if cfg.Name == "" {
		cfg.Name = "PHPSESSID"
	}
	s, err := NewCookie(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, logs
}

func sessionRequest(value string) *http.Request {
	r := httptest.NewRequest("GET", "http://shop.example/account", nil)
	r.AddCookie(&http.Cookie{Name: "cart", Value: "other-cookie-value"})
	r.AddCookie(&http.Cookie{Name: "PHPSESSID", Value: value})
	return r
}

func redisClient(t *testing.T, srv *testredis.Server) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), DialTimeout: 500 * time.Millisecond,
		ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestCookieRedisString(t *testing.T) {
	srv := testredis.Run(t)
	rc := redisClient(t, srv)
	ctx := context.Background()
	rc.Set(ctx, "shop:session:sess-phone", "+14155550100", 0)
	rc.Set(ctx, "shop:session:sess-json", `{"user": 42, "phone": "+14155550101", "email": "b@example.com"}`, 0)
	rc.Set(ctx, "shop:session:sess-empty", "", 0)
	rc.Set(ctx, "shop:session:sess-bad", `{"user": [1]}`, 0)

	l := &RedisLookup{Key: "shop:session:{id}"}
	s, logs := newCookie(t, CookieConfig{Lookup: l})
	if _, err := s.Identify(sessionRequest("sess-phone")); !errors.Is(err, ErrNoRedis) || errors.Is(err, ErrNoIdentity) {
		t.Fatalf("no client: %v, want ErrNoRedis (fail closed)", err)
	}
	l.SetClient(rc)

	for value, want := range map[string]Identity{
		"sess-phone": {User: userFromPhone("+14155550100"), Session: Hash("sess-phone"), Phone: "+14155550100"},
		"sess-json":  {User: "42", Session: Hash("sess-json"), Phone: "+14155550101", Email: "b@example.com"},
		"sess-empty": {User: userFromSession(Hash("sess-empty")), Session: Hash("sess-empty")},
	} {
		id, err := s.Identify(sessionRequest(value))
		if err != nil {
			t.Errorf("%s: %v", value, err)
			continue
		}
		if id != want {
			t.Errorf("%s: %+v, want %+v", value, id, want)
		}
	}
	if _, err := s.Identify(sessionRequest("sess-unknown")); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("unknown session: %v, want ErrNoIdentity", err)
	}
	if _, err := s.Identify(sessionRequest("sess-bad")); err == nil || errors.Is(err, ErrNoIdentity) {
		t.Errorf("bad JSON value: %v, want a fail-closed error", err)
	}
	if logs.FilterMessage("no phone number on file for the session's account").Len() != 1 {
		t.Errorf("missing phone logged %d times, want once", logs.FilterMessage("no phone number on file for the session's account").Len())
	}
	assertNoSecrets(t, logs, "sess-", "4155550")
}

func TestCookieRedisHash(t *testing.T) {
	srv := testredis.Run(t)
	rc := redisClient(t, srv)
	ctx := context.Background()
	rc.HSet(ctx, "{shop}:s:abc123", "phone", "+14155550100", "uid", "alice", "mail", "a@example.com")
	rc.HSet(ctx, "{shop}:s:nophone", "uid", "bob")

	l := &RedisLookup{Key: "{shop}:s:{id}", Field: "phone", UserField: "uid", EmailField: "mail"}
	l.SetClient(rc)
	s, logs := newCookie(t, CookieConfig{Lookup: l})
	id, err := s.Identify(sessionRequest("abc123"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Identity{User: "alice", Session: Hash("abc123"), Phone: "+14155550100", Email: "a@example.com"}); id != want {
		t.Fatalf("%+v, want %+v", id, want)
	}
	id, err = s.Identify(sessionRequest("nophone"))
	if err != nil || id.User != "bob" || id.Phone != "" {
		t.Fatalf("no phone field: %+v %v", id, err)
	}
	if logs.FilterMessage("no phone number on file for the session's account").Len() != 1 {
		t.Error("missing phone not logged")
	}
	if _, err := s.Identify(sessionRequest("gone")); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("missing key: %v", err)
	}
}

// Malformed or missing cookies never reach Redis, whatever they hold.
func TestCookieValueValidation(t *testing.T) {
	srv := testredis.Run(t)
	rc := redisClient(t, srv)
	rc.Set(context.Background(), "s:*", "+14155550100", 0)
	l := &RedisLookup{Key: "s:{id}"}
	l.SetClient(rc)
	s, _ := newCookie(t, CookieConfig{Lookup: l})

	for name, r := range map[string]*http.Request{
		"no cookie": httptest.NewRequest("GET", "/", nil),
		"other cookie": func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.AddCookie(&http.Cookie{Name: "x", Value: "y"})
			return r
		}(),
		"too long": sessionRequest(strings.Repeat("a", MaxCookieLen+1)),
		"empty": func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Cookie", "PHPSESSID=")
			return r
		}(),
	} {
		if _, err := s.Identify(r); !errors.Is(err, ErrNoIdentity) {
			t.Errorf("%s: %v, want ErrNoIdentity", name, err)
		}
	}
	// Glob characters are just bytes of a key name for GET.
	id, err := s.Identify(sessionRequest("*"))
	if err != nil || id.Phone != "+14155550100" {
		t.Fatalf("literal key: %+v %v", id, err)
	}
	if _, err := s.Identify(sessionRequest("?")); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("'?' matched a key: %v", err)
	}
}

// Redis down: fail closed; back: works, no restart.
func TestCookieRedisOutage(t *testing.T) {
	srv := testredis.Run(t)
	rc := redisClient(t, srv)
	rc.Set(context.Background(), "s:abc", "+14155550100", 0)
	l := &RedisLookup{Key: "s:{id}"}
	l.SetClient(rc)
	s, _ := newCookie(t, CookieConfig{Lookup: l, Timeout: time.Second})
	srv.Stop()
	if _, err := s.Identify(sessionRequest("abc")); err == nil || errors.Is(err, ErrNoIdentity) {
		t.Fatalf("redis down: %v, want a fail-closed error", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	// The server came back empty (no persistence): the app fills it again.
	rc.Set(context.Background(), "s:abc", "+14155550100", 0)
	if id, err := s.Identify(sessionRequest("abc")); err != nil || id.Phone != "+14155550100" {
		t.Fatalf("after recovery: %+v %v", id, err)
	}
}

// legacyApp is the app behind the HTTP lookup.
type legacyApp struct {
	*httptest.Server
	hits    atomic.Int32
	cookies sync.Map // session value -> the Cookie header it got
}

func newLegacyApp(t *testing.T) *legacyApp {
	a := &legacyApp{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.hits.Add(1)
		c, err := r.Cookie("PHPSESSID")
		if err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		a.cookies.Store(c.Value, r.Header.Get("Cookie"))
		if r.URL.Path != "/api/me" || r.Header.Get("Accept") != "application/json" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		switch c.Value {
		case "alice":
			fmt.Fprint(w, `{"user":"alice","phone":"+14155550100","email":"a@example.com","extra":{"x":1}}`)
		case "numeric":
			fmt.Fprint(w, `{"user":1001,"phone":null}`)
		case "nouser":
			fmt.Fprint(w, `{"phone":"+14155550100"}`)
		case "guest":
			w.WriteHeader(http.StatusUnauthorized)
		case "forbidden":
			w.WriteHeader(http.StatusForbidden)
		case "missing":
			w.WriteHeader(http.StatusNotFound)
		case "redirect":
			http.Redirect(w, r, "/login.php", http.StatusFound)
		case "broken":
			w.WriteHeader(http.StatusInternalServerError)
		case "busy":
			w.WriteHeader(http.StatusTooManyRequests)
		case "html":
			fmt.Fprint(w, "<html>oops</html>")
		case "huge":
			fmt.Fprintf(w, `{"user":"%s"}`, strings.Repeat("u", maxAccountLen))
		case "longuser":
			fmt.Fprintf(w, `{"user":"%s","phone":"+14155550100"}`, strings.Repeat("u", 300))
		case "longphone":
			fmt.Fprintf(w, `{"user":"bob","phone":"+%s"}`, strings.Repeat("7", 39))
		case "longemail":
			fmt.Fprintf(w, `{"user":"bob","phone":"+14155550100","email":"%s@example.com"}`, strings.Repeat("7", 250))
		case "ctrluser":
			fmt.Fprint(w, `{"user":"bob\u0000admin","phone":"+14155550100"}`)
		case "slow":
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
			fmt.Fprint(w, `{"user":"slow","phone":"+14155550100"}`)
		default:
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(a.Close)
	return a
}

func TestCookieHTTPLookup(t *testing.T) {
	app := newLegacyApp(t)
	s, logs := newCookie(t, CookieConfig{Lookup: &HTTPLookup{URL: app.URL + "/api/me"}, Timeout: 300 * time.Millisecond})

	ok := map[string]Identity{
		"alice":   {User: "alice", Session: Hash("alice"), Phone: "+14155550100", Email: "a@example.com"},
		"numeric": {User: "1001", Session: Hash("numeric")},
	}
	for value, want := range ok {
		id, err := s.Identify(sessionRequest(value))
		if err != nil || id != want {
			t.Errorf("%s: %+v %v, want %+v", value, id, err, want)
		}
	}
	// Only the session cookie is forwarded.
	if v, _ := app.cookies.Load("alice"); v != "PHPSESSID=alice" {
		t.Errorf("the app got Cookie %q", v)
	}
	for _, value := range []string{"guest", "forbidden", "missing", "redirect", "nouser", "unknown"} {
		if _, err := s.Identify(sessionRequest(value)); !errors.Is(err, ErrNoIdentity) {
			t.Errorf("%s: %v, want ErrNoIdentity", value, err)
		}
	}
	for _, value := range []string{"broken", "busy", "html", "huge", "slow"} {
		start := time.Now()
		_, err := s.Identify(sessionRequest(value))
		if err == nil || errors.Is(err, ErrNoIdentity) {
			t.Errorf("%s: %v, want a fail-closed error", value, err)
		}
		if value == "slow" {
			if !strings.Contains(err.Error(), "timed out after 300ms") {
				t.Errorf("slow: error %q does not say it timed out", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("slow: waited %s with a 300ms timeout", d)
			}
		}
	}
	assertNoSecrets(t, logs, "alice", "4155550")
}

// Successful lookups are cached for the configured time; failures and
// unknown sessions are not cached at all.
func TestCookieCache(t *testing.T) {
	app := newLegacyApp(t)
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	s, _ := newCookie(t, CookieConfig{Lookup: &HTTPLookup{URL: app.URL + "/api/me"}, Cache: 30 * time.Second, Now: clock.now})

	for range 3 {
		if _, err := s.Identify(sessionRequest("alice")); err != nil {
			t.Fatal(err)
		}
	}
	if n := app.hits.Load(); n != 1 {
		t.Fatalf("3 requests within the cache time: %d lookups, want 1", n)
	}
	clock.add(29 * time.Second)
	_, _ = s.Identify(sessionRequest("alice"))
	if n := app.hits.Load(); n != 1 {
		t.Fatalf("after 29s: %d lookups, want 1", n)
	}
	clock.add(time.Second)
	_, _ = s.Identify(sessionRequest("alice"))
	if n := app.hits.Load(); n != 2 {
		t.Fatalf("after 30s: %d lookups, want 2", n)
	}
	for _, value := range []string{"broken", "broken", "guest", "guest"} {
		_, _ = s.Identify(sessionRequest(value))
	}
	if n := app.hits.Load(); n != 6 {
		t.Fatalf("failures: %d lookups in all, want 6 (none cached)", n)
	}
	// The cache holds hashes, never cookie values.
	s.cache.mu.Lock()
	for k := range s.cache.m {
		if k == "alice" || len(k) != 64 {
			t.Errorf("cache key %q", k)
		}
	}
	s.cache.mu.Unlock()

	// Without a cache every request asks.
	app.hits.Store(0)
	nocache, _ := newCookie(t, CookieConfig{Lookup: &HTTPLookup{URL: app.URL + "/api/me"}})
	_, _ = nocache.Identify(sessionRequest("alice"))
	_, _ = nocache.Identify(sessionRequest("alice"))
	if n := app.hits.Load(); n != 2 {
		t.Fatalf("no cache: %d lookups, want 2", n)
	}
}

func TestCacheBounded(t *testing.T) {
	c := &cache{max: 64, m: make(map[string]cacheEntry)}
	now := time.Unix(1_700_000_000, 0)
	for i := range 1000 {
		c.put(Hash(fmt.Sprint(i)), Account{User: fmt.Sprint(i)}, now, now.Add(time.Minute))
		if c.len() > 64 {
			t.Fatalf("cache grew to %d entries", c.len())
		}
	}
	if _, ok := c.get(Hash("999"), now); !ok {
		t.Fatal("the newest entry was evicted")
	}
	// Expired entries go first.
	later := now.Add(2 * time.Minute)
	c.put("fresh", Account{}, later, later.Add(time.Minute))
	if c.len() != 1 {
		t.Fatalf("after expiry: %d entries, want 1", c.len())
	}
}

func TestNewCookieErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  CookieConfig
		want string
	}{
		"no name":         {CookieConfig{Lookup: &HTTPLookup{URL: "http://127.0.0.1/me"}}, "invalid cookie name"},
		"bad name":        {CookieConfig{Name: "a;b", Lookup: &HTTPLookup{URL: "http://127.0.0.1/me"}}, "invalid cookie name"},
		"no lookup":       {CookieConfig{Name: "sid"}, "phone lookup is required"},
		"key without id":  {CookieConfig{Name: "sid", Lookup: &RedisLookup{Key: "phones"}}, "must contain {id}"},
		"user_field only": {CookieConfig{Name: "sid", Lookup: &RedisLookup{Key: "s:{id}", UserField: "uid"}}, "need the phone's hash field"},
		"bad http url":    {CookieConfig{Name: "sid", Lookup: &HTTPLookup{URL: "ftp://x/"}}, "not an http(s) URL"},
		"bad login url":   {CookieConfig{Name: "sid", Lookup: &HTTPLookup{URL: "http://x/"}, LoginURL: "login"}, "login URL"},
		"negative cache":  {CookieConfig{Name: "sid", Lookup: &HTTPLookup{URL: "http://x/"}, Cache: -1}, "negative"},
	} {
		_, err := NewCookie(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

// The two sources produce the same identity shape: a user, a session
// that is never the credential itself, the phone as found.
func TestSameIdentityShape(t *testing.T) {
	app := newLegacyApp(t)
	s, _ := newCookie(t, CookieConfig{Lookup: &HTTPLookup{URL: app.URL + "/api/me"}, LoginURL: "/login.php?back={return}"})
	id, err := s.Identify(sessionRequest("alice"))
	if err != nil {
		t.Fatal(err)
	}
	if id.User == "" || id.Session == "" || id.Session == "alice" || id.Phone == "" {
		t.Fatalf("cookie identity %+v", id)
	}
	var _ Source = s
	var _ LoginRedirector = s
	if got := s.LoginURL(httptest.NewRequest("GET", "/cart?x=1", nil)); got != "/login.php?back=%2Fcart%3Fx%3D1" {
		t.Fatalf("LoginURL = %q", got)
	}
}

func assertNoSecrets(t *testing.T, logs *observer.ObservedLogs, secrets ...string) {
	t.Helper()
	for _, e := range logs.All() {
		text := e.Message + " " + fieldsString(e)
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("log entry %q contains %q", text, s)
			}
		}
	}
}

// Account values over their bounds are the account's fault, not an
// outage: ErrBadIdentity (a 400), never cached, never carrying the
// value; from an HTTP lookup and from Redis alike.
func TestCookieBadAccountValues(t *testing.T) {
	app := newLegacyApp(t)
	s, _ := newCookie(t, CookieConfig{Lookup: &HTTPLookup{URL: app.URL + "/api/me"}, Cache: time.Minute})
	for _, value := range []string{"longuser", "longphone", "longemail", "ctrluser"} {
		for range 2 {
			_, err := s.Identify(sessionRequest(value))
			if !errors.Is(err, ErrBadIdentity) || errors.Is(err, ErrNoIdentity) {
				t.Errorf("%s: %v, want ErrBadIdentity", value, err)
			} else if strings.Contains(err.Error(), "7777777") || strings.Contains(err.Error(), "uuuuuuu") || strings.Contains(err.Error(), "admin") {
				t.Errorf("%s: the error %q carries the value", value, err)
			}
		}
	}
	if n := app.hits.Load(); n != 8 {
		t.Errorf("%d lookups for 4 bad accounts asked twice, want 8 (never cached)", n)
	}

	srv := testredis.Run(t)
	rc := redisClient(t, srv)
	ctx := context.Background()
	rc.Set(ctx, "s:longphone", "+"+strings.Repeat("7", 39), 0)
	rc.Set(ctx, "s:longuser", `{"user":"`+strings.Repeat("u", 300)+`","phone":"+14155550100"}`, 0)
	rc.HSet(ctx, "h:longemail", "phone", "+14155550100", "mail", strings.Repeat("7", 250)+"@example.com")
	str := &RedisLookup{Key: "s:{id}"}
	str.SetClient(rc)
	hash := &RedisLookup{Key: "h:{id}", Field: "phone", EmailField: "mail"}
	hash.SetClient(rc)
	byString, _ := newCookie(t, CookieConfig{Lookup: str})
	byHash, _ := newCookie(t, CookieConfig{Lookup: hash})
	for name, tc := range map[string]struct {
		s     *Cookie
		value string
	}{
		"redis string, long phone": {byString, "longphone"},
		"redis JSON, long user":    {byString, "longuser"},
		"redis hash, long email":   {byHash, "longemail"},
	} {
		if _, err := tc.s.Identify(sessionRequest(tc.value)); !errors.Is(err, ErrBadIdentity) {
			t.Errorf("%s: %v, want ErrBadIdentity", name, err)
		}
	}
}

// countingLookup records whether it was asked.
type countingLookup struct{ n atomic.Int32 }

func (l *countingLookup) Lookup(context.Context, string, string) (Account, error) {
	l.n.Add(1)
	return Account{User: "someone", Phone: "+14155550100"}, nil
}

// The session stepup looks up must be the one the app reads: a request
// that carries the session cookie so that the app could read another
// one is refused before any lookup (and so before any code is sent).
func TestCookieAmbiguousSession(t *testing.T) {
	l := &countingLookup{}
	s, _ := newCookie(t, CookieConfig{Lookup: l})
	for name, tc := range map[string]struct {
		lines []string
		url   string
	}{
		"twice":                  {[]string{"PHPSESSID=mallory; PHPSESSID=victim"}, "/"},
		"two Cookie lines":       {[]string{"PHPSESSID=mallory", "cart=1; PHPSESSID=victim"}, "/"},
		"other case":             {[]string{"PHPSESSID=mallory; phpsessid=victim"}, "/"},
		"percent-encoded name":   {[]string{"PHPSESSID=mallory; PHP%53ESSID=victim"}, "/"},
		"PHP array name":         {[]string{"PHPSESSID=mallory; PHPSESSID[]=victim"}, "/"},
		"after a comma (Rack 2)": {[]string{"x=1, PHPSESSID=victim; PHPSESSID=mallory"}, "/"},
		"after a space (Python)": {[]string{"PHPSESSID=mallory; x=1 PHPSESSID=victim"}, "/"},
		"quoted":                 {[]string{`PHPSESSID="mallory"`}, "/"},
		"value with a space":     {[]string{"PHPSESSID=a b"}, "/"},
		"control in the value":   {[]string{"PHPSESSID=a\x01b"}, "/"},
		"NBSP before (Python)":   {[]string{"PHPSESSID=mallory;\xa0PHPSESSID=victim"}, "/"},
		"one of two lines":       {[]string{"PHPSESSID=mallory", "x"}, "/"},
		"another in the query":   {[]string{"PHPSESSID=mallory"}, "/account?PHPSESSID=victim"},
		"another in the path":    {[]string{"PHPSESSID=mallory"}, "/account;PHPSESSID=victim"},
	} {
		r := httptest.NewRequest("GET", tc.url, nil)
		for _, line := range tc.lines {
			r.Header.Add("Cookie", line)
		}
		_, err := s.Identify(r)
		if !errors.Is(err, ErrAmbiguousCredential) || errors.Is(err, ErrNoIdentity) {
			t.Errorf("%s: %v, want ErrAmbiguousCredential", name, err)
		} else if strings.Contains(err.Error(), "victim") || strings.Contains(err.Error(), "mallory") {
			t.Errorf("%s: the error carries a session id", name)
		}
	}
	if n := l.n.Load(); n != 0 {
		t.Fatalf("%d lookups for ambiguous requests, want none", n)
	}
	// The same session id in the URL as in the cookie is no ambiguity.
	r := httptest.NewRequest("GET", "/account?PHPSESSID=abc", nil)
	r.Header.Set("Cookie", "cart=1; PHPSESSID=abc")
	if _, err := s.Identify(r); err != nil {
		t.Fatalf("the same id in query and cookie: %v", err)
	}
}
