package stepup

import (
	"bytes"
	"context"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-stepup/caddy-stepup/internal/logscan"
	"github.com/caddy-stepup/caddy-stepup/internal/testredis"
	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

var redisServer *testredis.Server

func TestMain(m *testing.M) {
	s, err := testredis.New("")
	if err != nil {
		println("stepup tests need redis-server:", err.Error())
		os.Exit(1)
	}
	redisServer = s
	code := m.Run()
	s.Stop()
	os.RemoveAll(s.Dir)
	os.Exit(code)
}

// outbox is a Deliverer that keeps what it was asked to send. It stands
// in for the provider only; the sender package tests the real ones.
type outbox struct {
	mu   sync.Mutex
	msgs []sender.Message
	fail atomic.Bool
	// channels, when set, are what it says reaches every destination
	// (ChannelChooser); its sender "test" is the first, and a message
	// sent on a chosen channel is sent by the sender named after it.
	channels []sender.Channel
	// wait, when set, waits for the engine's sends after their answer.
	wait func()
}

func (o *outbox) Send(_ context.Context, m *sender.Message) (string, error) {
	if o.fail.Load() {
		return "", &sender.Error{Sender: "test", Msg: "provider down", Temporary: true}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.msgs = append(o.msgs, *m)
	if m.ChannelOnly {
		return string(m.Channel), nil
	}
	return "test", nil
}

func (o *outbox) setChannels(cs ...sender.Channel) {
	o.mu.Lock()
	o.channels = cs
	o.mu.Unlock()
}

func (o *outbox) Channels(*sender.Message) []sender.Channel {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.channels
}

func (o *outbox) ChannelOf(name string) sender.Channel {
	o.mu.Lock()
	defer o.mu.Unlock()
	if name == "test" && len(o.channels) > 0 {
		return o.channels[0]
	}
	return sender.Channel(name)
}

func (o *outbox) count() int {
	if o.wait != nil {
		o.wait()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.msgs)
}

func (o *outbox) last(t *testing.T) sender.Message {
	t.Helper()
	if o.wait != nil {
		o.wait()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.msgs) == 0 {
		t.Fatal("no code was sent")
	}
	return o.msgs[len(o.msgs)-1]
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// harness is an engine behind an httptest server, with an upstream that
// counts what reaches it.
type harness struct {
	t        *testing.T
	e        *Engine
	srv      *httptest.Server
	out      *outbox
	clock    *clock
	upstream atomic.Int32
	lastUp   atomic.Pointer[http.Header]
	lastBody atomic.Pointer[[]byte]
	// lastReq is the method and request URI the upstream last got, and
	// lastTrailer the trailers it read after the body.
	lastReq     atomic.Pointer[string]
	lastTrailer atomic.Pointer[http.Header]
	logs        *logBuffer
	mu          sync.Mutex
	secrets     []string
	browsers    []*browser
	store       store.Store
}

var testSecret = []byte("0123456789abcdef0123456789abcdef-test")

type storeKind struct {
	name string
	new  func(t *testing.T) store.Store
}

var storeKinds = []storeKind{
	{"memory", func(t *testing.T) store.Store { return store.NewMemory(time.Minute) }},
	{"redis", func(t *testing.T) store.Store {
		c := redis.NewClient(&redis.Options{Addr: redisServer.Addr()})
		// A fresh prefix per run, so that -count=N starts clean.
		return store.NewRedis(c, "t:"+strings.ReplaceAll(t.Name(), "/", ":")+":"+randomID()+":", true)
	}},
}

func newHarness(t *testing.T, st store.Store, mutate func(*Config, []*Policy)) *harness {
	t.Helper()
	return newHarnessWith(t, st, mutate, nil)
}

// newHarnessWith is newHarness with another Deliverer than its outbox
// (nil: the outbox), made from the engine's configuration.
func newHarnessWith(t *testing.T, st store.Store, mutate func(*Config, []*Policy), deliverer func(Config) Deliverer) *harness {
	t.Helper()
	h := &harness{t: t, out: &outbox{}, clock: &clock{t: time.Now()}, store: st}
	cfg := Config{Secret: testSecret, SiteName: "Demo Shop", Domain: "shop.example"}
	policies := []*Policy{
		{Name: "payment-methods", Mode: Session, GrantTTL: 15 * time.Minute},
		{Name: "admin", Mode: Monitor},
	}
	if mutate != nil {
		mutate(&cfg, policies)
	}
	h.logs = &logBuffer{}
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(h.logs), zap.DebugLevel))
	var d Deliverer = h.out
	if deliverer != nil {
		full, err := cfg.WithDefaults()
		if err != nil {
			t.Fatal(err)
		}
		d = deliverer(full)
	}
	e, err := New(cfg, policies, Options{
		Store:    st,
		Identity: &identity.Header{UserHeader: "X-Remote-User", PhoneHeader: "X-Remote-Phone"},
		Sender:   d,
		Now:      h.clock.now,
		Logger:   logger,
		ClientIP: func(r *http.Request) string {
			if ip := r.Header.Get("X-Test-Client-IP"); ip != "" {
				return ip
			}
			return remoteIP(r)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.e = e
	h.out.wait = e.Wait
	next := NextFunc(func(w http.ResponseWriter, r *http.Request) error {
		h.upstream.Add(1)
		body, _ := io.ReadAll(r.Body)
		hdr := r.Header.Clone()
		h.lastUp.Store(&hdr)
		h.lastBody.Store(&body)
		req := r.Method + " " + r.URL.RequestURI()
		h.lastReq.Store(&req)
		tr := r.Trailer.Clone()
		h.lastTrailer.Store(&tr)
		w.Header().Set("X-Upstream", "yes")
		_, _ = io.WriteString(w, "upstream "+r.URL.Path)
		return nil
	})
	match := MatchFunc(func(r *http.Request) (*Policy, error) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/account/payment-methods"):
			return e.Policy("payment-methods"), nil
		case strings.HasPrefix(r.URL.Path, "/admin/"):
			return e.Policy("admin"), nil
		case r.URL.Path == "/checkout" && r.Method == http.MethodPost && e.Policy("checkout") != nil:
			return e.Policy("checkout"), nil
		}
		return nil, nil
	})
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := e.Serve(w, r, match, next); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}))
	t.Cleanup(func() { h.srv.Close(); _ = st.Close() })
	t.Cleanup(h.checkLogs)
	return h
}

// logBuffer collects the engine's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// secret notes a value that must never appear in a log line.
func (h *harness) secret(s string) {
	h.mu.Lock()
	h.secrets = append(h.secrets, s)
	h.mu.Unlock()
}

// checkLogs fails the test if any code sent, cookie value, grant token or
// full phone number of the test reached the engine's logs.
func (h *harness) checkLogs() {
	h.e.Wait()
	logs := logscan.Strings(h.logs.String())
	h.out.mu.Lock()
	var secrets []string
	for _, m := range h.out.msgs {
		secrets = append(secrets, m.Code, strings.TrimPrefix(m.To, "+"))
	}
	h.out.mu.Unlock()
	h.mu.Lock()
	secrets = append(secrets, h.secrets...)
	for _, b := range h.browsers {
		for _, v := range b.jar {
			secrets = append(secrets, v)
		}
		if len(b.phone) > 5 {
			secrets = append(secrets, strings.TrimPrefix(b.phone, "+"))
		}
	}
	h.mu.Unlock()
	for _, s := range secrets {
		if len(s) >= 6 && logscan.ContainsToken(logs, s) {
			h.t.Errorf("a log line carries the secret value %q", s)
		}
	}
}

// browser is a cookie jar plus an identity.
type browser struct {
	h     *harness
	user  string
	phone string
	jar   map[string]string
}

func (h *harness) browser(user, phone string) *browser {
	b := &browser{h: h, user: user, phone: phone, jar: map[string]string{}}
	h.mu.Lock()
	h.browsers = append(h.browsers, b)
	h.mu.Unlock()
	return b
}

func (b *browser) do(method, path string, form url.Values, extra ...string) (*http.Response, string) {
	b.h.t.Helper()
	var body []byte
	ctype := ""
	if form != nil {
		body, ctype = []byte(form.Encode()), "application/x-www-form-urlencoded"
	}
	return b.raw(method, path, ctype, body, extra...)
}

// raw sends a request with an exact body and content type, the
// browser's identity headers and cookies, and keeps the cookies set.
func (b *browser) raw(method, path, ctype string, body []byte, extra ...string) (*http.Response, string) {
	b.h.t.Helper()
	req, err := http.NewRequest(method, b.h.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		b.h.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "text/html")
	if b.user != "" {
		req.Header.Set("X-Remote-User", b.user)
	}
	if b.phone != "" {
		req.Header.Set("X-Remote-Phone", b.phone)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	for k, v := range b.jar {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		b.h.t.Fatal(err)
	}
	// Codes go out after the answer: the tests look at them once sent.
	b.h.e.bg.Wait()
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 {
			delete(b.jar, c.Name)
		} else {
			b.jar[c.Name] = c.Value
		}
	}
	return resp, string(data)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf token in page:\n%s", page)
	}
	return html.UnescapeString(m[1])
}

// start requests a protected page and returns the challenge path and the
// page's csrf token.
func (b *browser) start(path string) (challenge, csrf string) {
	t := b.h.t
	t.Helper()
	resp, _ := b.do("GET", path, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("GET %s = %d, want 303", path, resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "/.stepup/challenge/") {
		t.Fatalf("redirected to %q", loc)
	}
	resp, page := b.do("GET", loc, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("challenge page = %d\n%s", resp.StatusCode, page)
	}
	return loc, csrfOf(t, page)
}

func forEachStore(t *testing.T, fn func(t *testing.T, st store.Store)) {
	for _, k := range storeKinds {
		t.Run(k.name, func(t *testing.T) { t.Parallel(); fn(t, k.new(t)) })
	}
}

func TestSessionFlow(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		h := newHarness(t, st, nil)
		alice := h.browser("alice", "+14155550100")

		// The client tries to smuggle a verification header: stripped.
		resp, _ := alice.do("GET", "/account/payment-methods?tab=cards", nil, "Stepup-Policy", "payment-methods")
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("protected GET = %d, want 303", resp.StatusCode)
		}
		if h.upstream.Load() != 0 {
			t.Fatal("upstream reached before verification")
		}
		loc := resp.Header.Get("Location")
		resp, page := alice.do("GET", loc, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("page = %d", resp.StatusCode)
		}
		text := html.UnescapeString(page)
		for _, want := range []string{`autocomplete="one-time-code"`, `inputmode="numeric"`, "+1******0100", "5 attempts left", "expires in 5 minutes", "Demo Shop"} {
			if !strings.Contains(text, want) {
				t.Errorf("page lacks %q", want)
			}
		}
		if strings.Contains(text, "4155550100") {
			t.Error("page shows the full number")
		}
		for k, want := range map[string]string{
			"Cache-Control":   "no-store",
			"X-Frame-Options": "DENY",
			"Referrer-Policy": "no-referrer",
		} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("CSP = %q", csp)
		}
		msg := h.out.last(t)
		if msg.To != "+14155550100" || msg.Policy != "payment-methods" || len(msg.Code) != 6 ||
			!strings.Contains(msg.Text, msg.Code) || !strings.HasSuffix(msg.Text, "\n\n@shop.example #"+msg.Code) {
			t.Fatalf("message = %+v", msg)
		}
		csrf := csrfOf(t, page)

		// Wrong code: refused, attempt counted.
		wrong := "000000"
		if msg.Code == wrong {
			wrong = "111111"
		}
		resp, page = alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {wrong}})
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "not correct") || !strings.Contains(page, "4 attempts left") {
			t.Fatalf("wrong code = %d\n%s", resp.StatusCode, page)
		}
		// Malformed code: refused, nothing spent.
		resp, page = alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {"12ab"}})
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "4 attempts left") {
			t.Fatalf("malformed code = %d\n%s", resp.StatusCode, page)
		}

		// Right code (typed with a space): grant and back to the page.
		resp, _ = alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {msg.Code[:3] + " " + msg.Code[3:]}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/account/payment-methods?tab=cards" {
			t.Fatalf("right code = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		if alice.jar["stepup_payment-methods"] == "" {
			t.Fatal("no grant cookie")
		}
		resp, body := alice.do("GET", "/account/payment-methods?tab=cards", nil)
		if resp.StatusCode != 200 || body != "upstream /account/payment-methods" || h.upstream.Load() != 1 {
			t.Fatalf("with grant = %d %q (upstream %d)", resp.StatusCode, body, h.upstream.Load())
		}
		up := *h.lastUp.Load()
		if up.Get("Stepup-Policy") != "payment-methods" || up.Get("Stepup-User") != "alice" || up.Get("Stepup-Verified-At") == "" {
			t.Fatalf("upstream headers = %v", up)
		}

		// The code is single use.
		resp, page = alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {msg.Code}})
		if resp.StatusCode != http.StatusGone || !strings.Contains(page, "already used") {
			t.Fatalf("code reuse = %d\n%s", resp.StatusCode, page)
		}

		// The grant is bound to the user: bob with alice's cookies is
		// challenged.
		bob := h.browser("bob", "+14155550101")
		bob.jar = alice.jar
		resp, _ = bob.do("GET", "/account/payment-methods", nil)
		if resp.StatusCode != http.StatusSeeOther || h.upstream.Load() != 1 {
			t.Fatalf("alice's grant used by bob = %d", resp.StatusCode)
		}
		// ...and to the session: alice in another browser is challenged.
		other := h.browser("alice", "+14155550100")
		other.jar["stepup_payment-methods"] = alice.jar["stepup_payment-methods"]
		resp, _ = other.do("GET", "/account/payment-methods", nil)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("grant without its session = %d", resp.StatusCode)
		}
		// The grant expires.
		h.clock.add(15*time.Minute + time.Second)
		resp, _ = alice.do("GET", "/account/payment-methods", nil)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("expired grant = %d", resp.StatusCode)
		}
	})
}

func TestChallengeBoundToSessionAndUser(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory(time.Minute), nil)
	alice := h.browser("alice", "+14155550100")
	loc, csrf := alice.start("/account/payment-methods")
	code := h.out.last(t).Code

	// Bob cannot see or answer alice's challenge, even with her cookies.
	bob := h.browser("bob", "+14155550101")
	bob.jar = alice.jar
	if resp, _ := bob.do("GET", loc, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("bob GET alice's challenge = %d", resp.StatusCode)
	}
	if resp, _ := bob.do("POST", loc, url.Values{"csrf": {csrf}, "code": {code}}); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("bob POST alice's code = %d", resp.StatusCode)
	}
	// Alice in a browser without the session cookie: same.
	other := h.browser("alice", "+14155550100")
	if resp, _ := other.do("POST", loc, url.Values{"csrf": {csrf}, "code": {code}}); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("POST from another session = %d", resp.StatusCode)
	}
	// No identity at all: 401.
	anon := h.browser("", "")
	anon.jar = alice.jar
	if resp, _ := anon.do("GET", loc, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous GET = %d", resp.StatusCode)
	}
	// Alice still can.
	if resp, _ := alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {code}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("alice = %d", resp.StatusCode)
	}
}

func TestCSRFAndOrigin(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory(time.Minute), nil)
	alice := h.browser("alice", "+14155550100")
	loc, csrf := alice.start("/account/payment-methods")
	code := h.out.last(t).Code
	for name, tc := range map[string]struct {
		form  url.Values
		extra []string
	}{
		"missing csrf":    {url.Values{"code": {code}}, nil},
		"forged csrf":     {url.Values{"csrf": {"AAAAAAAAAAAAAAAAAAAAAA"}, "code": {code}}, nil},
		"cross-site":      {url.Values{"csrf": {csrf}, "code": {code}}, []string{"Sec-Fetch-Site", "cross-site"}},
		"foreign origin":  {url.Values{"csrf": {csrf}, "code": {code}}, []string{"Origin", "https://evil.example"}},
		"null origin":     {url.Values{"csrf": {csrf}, "code": {code}}, []string{"Origin", "null"}},
		"same-site other": {url.Values{"csrf": {csrf}, "code": {code}}, []string{"Sec-Fetch-Site", "same-site"}},
	} {
		resp, _ := alice.do("POST", loc, tc.form, tc.extra...)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, resp.StatusCode)
		}
	}
	// A CSRF token of another challenge does not work either.
	h.clock.add(time.Second)
	loc2, _ := alice.start("/account/payment-methods?other=1")
	if resp, _ := alice.do("POST", loc2, url.Values{"csrf": {csrf}, "code": {code}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("replayed csrf of another challenge: %d", resp.StatusCode)
	}
	// None of these spent an attempt: the right code still passes.
	resp, _ := alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {code}}, "Origin", h.srv.URL, "Sec-Fetch-Site", "same-origin")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("right code after refused forms = %d", resp.StatusCode)
	}
}

func TestAttemptsAndLockout(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		h := newHarness(t, st, func(c *Config, _ []*Policy) { c.MaxFailures = 7; c.MaxAttempts = 3 })
		alice := h.browser("alice", "+14155550100")
		wrongFor := func(code string) string {
			if code == "999999" {
				return "888888"
			}
			return "999999"
		}
		// Challenge 1: three wrong codes kill it.
		loc, csrf := alice.start("/account/payment-methods")
		code := h.out.last(t).Code
		for i := 0; i < 3; i++ {
			alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {wrongFor(code)}})
		}
		resp, page := alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {code}})
		if resp.StatusCode != http.StatusGone || !strings.Contains(page, "Too many attempts") {
			t.Fatalf("right code on a dead challenge = %d", resp.StatusCode)
		}
		// A new challenge (and resends) do not reset the user's count.
		h.clock.add(time.Second)
		loc, csrf = alice.start("/account/payment-methods?again=1")
		code = h.out.last(t).Code
		alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {wrongFor(code)}})
		h.clock.add(31 * time.Second)
		if resp, _ := alice.do("POST", loc+"/resend", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("resend = %d", resp.StatusCode)
		}
		code = h.out.last(t).Code
		alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {wrongFor(code)}})
		h.clock.add(time.Second)
		loc, csrf = alice.start("/account/payment-methods?third=1")
		code = h.out.last(t).Code
		resp, _ = alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {wrongFor(code)}})
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("6th failure = %d", resp.StatusCode)
		}
		resp, page = alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {wrongFor(code)}})
		if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(page, "try again later") && !strings.Contains(page, "Please try again later") {
			t.Fatalf("7th failure = %d\n%s", resp.StatusCode, page)
		}
		if resp.Header.Get("Retry-After") == "" {
			t.Error("lockout without Retry-After")
		}
		// Locked: the right code is refused, and no new challenge is sent.
		resp, _ = alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {code}})
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("right code while locked = %d", resp.StatusCode)
		}
		sent := h.out.count()
		resp, _ = alice.do("GET", "/account/payment-methods?fourth=1", nil)
		if resp.StatusCode != http.StatusTooManyRequests || h.out.count() != sent {
			t.Fatalf("new challenge while locked = %d (sent %d more)", resp.StatusCode, h.out.count()-sent)
		}
		// Bob is not affected.
		bob := h.browser("bob", "+14155550101")
		if resp, _ := bob.do("GET", "/account/payment-methods", nil); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("bob = %d", resp.StatusCode)
		}
		if h.upstream.Load() != 0 {
			t.Fatal("upstream reached")
		}
	})
}

func TestResendAndExpiry(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		h := newHarness(t, st, nil)
		alice := h.browser("alice", "+14155550100")
		loc, csrf := alice.start("/account/payment-methods")
		first := h.out.last(t).Code
		_, page := alice.do("GET", loc, nil)
		if !strings.Contains(page, "new code in 30 seconds") || strings.Contains(page, `action="`+loc+`/resend"`) {
			t.Fatalf("page offers resend during cooldown:\n%s", page)
		}
		resp, _ := alice.do("POST", loc+"/resend", url.Values{"csrf": {csrf}})
		if resp.StatusCode != http.StatusTooManyRequests || h.out.count() != 1 {
			t.Fatalf("resend during cooldown = %d, sends %d", resp.StatusCode, h.out.count())
		}
		// Reloading the protected page resumes the challenge: no new code.
		resp, _ = alice.do("GET", "/account/payment-methods", nil)
		if resp.Header.Get("Location") != loc || h.out.count() != 1 {
			t.Fatalf("reload made a new challenge: %q, sends %d", resp.Header.Get("Location"), h.out.count())
		}
		h.clock.add(30 * time.Second)
		resp, _ = alice.do("POST", loc+"/resend", url.Values{"csrf": {csrf}})
		if resp.StatusCode != http.StatusSeeOther || h.out.count() != 2 {
			t.Fatalf("resend = %d, sends %d", resp.StatusCode, h.out.count())
		}
		_, page = alice.do("GET", resp.Header.Get("Location"), nil)
		if !strings.Contains(page, "We sent you a new code") {
			t.Error("no notice after resend")
		}
		second := h.out.last(t).Code
		if first != second {
			resp, _ = alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {first}})
			if resp.StatusCode != http.StatusUnprocessableEntity {
				t.Fatalf("replaced code = %d", resp.StatusCode)
			}
		}
		h.clock.add(30 * time.Second)
		alice.do("POST", loc+"/resend", url.Values{"csrf": {csrf}})
		h.clock.add(30 * time.Second)
		resp, page = alice.do("POST", loc+"/resend", url.Values{"csrf": {csrf}})
		if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(page, "No more codes") || h.out.count() != 3 {
			t.Fatalf("fourth send = %d, sends %d", resp.StatusCode, h.out.count())
		}
		// Expiry.
		h.clock.add(5 * time.Minute)
		resp, page = alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {h.out.last(t).Code}})
		if resp.StatusCode != http.StatusGone || !strings.Contains(page, "expired") || !strings.Contains(page, `href="/account/payment-methods"`) {
			t.Fatalf("expired = %d\n%s", resp.StatusCode, page)
		}
		if h.upstream.Load() != 0 {
			t.Fatal("upstream reached")
		}
	})
}

func TestSendFailureKeepsChallenge(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory(time.Minute), nil)
	h.out.fail.Store(true)
	alice := h.browser("alice", "+14155550100")
	loc, csrf := alice.start("/account/payment-methods")
	_, page := alice.do("GET", loc, nil)
	if !strings.Contains(page, "could not send") || !strings.Contains(page, "Try sending the code again") {
		t.Fatalf("send failure not shown:\n%s", page)
	}
	h.out.fail.Store(false)
	resp, _ := alice.do("POST", loc+"/resend", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("resend after failure = %d", resp.StatusCode)
	}
	code := h.out.last(t).Code
	if resp, _ := alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {code}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("verify after resend = %d", resp.StatusCode)
	}
}

func TestBadIdentity(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory(time.Minute), nil)
	for name, tc := range map[string]struct {
		user, phone string
		status      int
		accept      string
	}{
		"no user":            {"", "+14155550100", 401, "text/html"},
		"no phone":           {"alice", "", 400, "text/html"},
		"not e164":           {"alice", "4155550100", 400, "text/html"},
		"letters":            {"alice", "+1415CALLME", 400, "text/html"},
		"invalid number":     {"alice", "+1000", 400, "text/html"},
		"api client no user": {"", "", 401, "application/json"},
	} {
		b := h.browser(tc.user, tc.phone)
		resp, body := b.do("GET", "/account/payment-methods", nil, "Accept", tc.accept)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", name, resp.StatusCode, tc.status)
		}
		if tc.accept == "application/json" && !strings.Contains(body, `"error":"unauthenticated"`) {
			t.Errorf("%s: body %s", name, body)
		}
	}
	if h.out.count() != 0 || h.upstream.Load() != 0 {
		t.Fatal("something was sent or passed")
	}
}

func TestMonitorAndUnprotected(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory(time.Minute), nil)
	anon := h.browser("", "")
	resp, body := anon.do("GET", "/admin/users", nil, "Stepup-User", "root")
	if resp.StatusCode != 200 || body != "upstream /admin/users" {
		t.Fatalf("monitor = %d %q", resp.StatusCode, body)
	}
	if up := *h.lastUp.Load(); up.Get("Stepup-User") != "" || up.Get("Stepup-Policy") != "" {
		t.Fatalf("client-supplied Stepup headers reached the upstream: %v", up)
	}
	resp, _ = anon.do("GET", "/shop", nil, "Stepup-Verified-At", "now")
	if resp.StatusCode != 200 || (*h.lastUp.Load()).Get("Stepup-Verified-At") != "" {
		t.Fatal("unprotected request failed or kept a Stepup header")
	}
	if resp, _ := anon.do("GET", "/.stepup/nothing", nil); resp.StatusCode != 404 {
		t.Fatalf("unknown endpoint = %d", resp.StatusCode)
	}
	if resp, _ := anon.do("GET", "/.stepup/challenge/../../etc", nil); resp.StatusCode != 404 {
		t.Fatalf("bad id = %d", resp.StatusCode)
	}
	if resp, _ := anon.do("PUT", "/.stepup/challenge/AAAAAAAAAAAAAAAAAAAAAA", nil); resp.StatusCode != 405 {
		t.Fatalf("PUT = %d", resp.StatusCode)
	}
	if h.out.count() != 0 {
		t.Fatal("monitor sent a code")
	}
}

// Twenty tabs submit the right code at once: exactly one grant.
func TestConcurrentVerify(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		h := newHarness(t, st, func(c *Config, _ []*Policy) { c.MaxAttempts = 10 })
		alice := h.browser("alice", "+14155550100")
		loc, csrf := alice.start("/account/payment-methods")
		code := h.out.last(t).Code
		var wg sync.WaitGroup
		var ok, gone atomic.Int32
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b := &browser{h: h, user: "alice", phone: "+14155550100", jar: map[string]string{}}
				for k, v := range alice.jar {
					b.jar[k] = v
				}
				resp, _ := b.do("POST", loc, url.Values{"csrf": {csrf}, "code": {code}})
				switch resp.StatusCode {
				case http.StatusSeeOther:
					ok.Add(1)
				case http.StatusGone:
					gone.Add(1)
				default:
					t.Errorf("status %d", resp.StatusCode)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 || gone.Load() != 19 {
			t.Fatalf("20 concurrent verifications: %d succeeded, %d gone", ok.Load(), gone.Load())
		}
	})
}

// With the store unreachable, protected requests get 503 and the upstream
// is never reached; unprotected requests pass; recovery needs no restart.
func TestStoreOutageFailsClosed(t *testing.T) {
	t.Parallel()
	srv := testredis.Run(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	h := newHarness(t, store.NewRedis(client, "", true), nil)
	alice := h.browser("alice", "+14155550100")
	loc, csrf := alice.start("/account/payment-methods")
	code := h.out.last(t).Code
	srv.Stop()

	resp, page := alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {code}})
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(page, "temporarily unavailable") {
		t.Fatalf("verify with store down = %d", resp.StatusCode)
	}
	resp, _ = alice.do("GET", "/account/payment-methods?x=1", nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("protected GET with store down = %d", resp.StatusCode)
	}
	resp, body := alice.do("GET", "/shop", nil)
	if resp.StatusCode != 200 || body != "upstream /shop" {
		t.Fatalf("unprotected with store down = %d", resp.StatusCode)
	}
	if h.upstream.Load() != 1 {
		t.Fatalf("upstream saw %d requests, want only the unprotected one", h.upstream.Load())
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	h.clock.add(time.Second)
	loc, csrf = alice.start("/account/payment-methods?after=1")
	code = h.out.last(t).Code
	if resp, _ := alice.do("POST", loc, url.Values{"csrf": {csrf}, "code": {code}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("verify after recovery = %d", resp.StatusCode)
	}
}

func TestConfigBounds(t *testing.T) {
	t.Parallel()
	base := func() Config { return Config{Secret: testSecret} }
	for name, mutate := range map[string]func(*Config){
		"short secret":      func(c *Config) { c.Secret = []byte("short") },
		"code too short":    func(c *Config) { c.CodeLength = 5 },
		"code too long":     func(c *Config) { c.CodeLength = 11 },
		"ttl too long":      func(c *Config) { c.CodeTTL = 11 * time.Minute },
		"too many tries":    func(c *Config) { c.MaxAttempts = 11 },
		"failures":          func(c *Config) { c.MaxFailures = 101 },
		"prefix":            func(c *Config) { c.PathPrefix = "stepup" },
		"prefix slash":      func(c *Config) { c.PathPrefix = "/stepup/" },
		"message sans code": func(c *Config) { c.Message = "hello" },
		"resend over ttl":   func(c *Config) { c.ResendAfter = 6 * time.Minute },
	} {
		c := base()
		mutate(&c)
		_, err := New(c, nil, Options{Store: store.NewMemory(0), Identity: &identity.Header{}, Sender: &outbox{}})
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, p := range map[string]*Policy{
		"bad name": {Name: "a b"},
		"empty":    {Name: ""},
		"ttl":      {Name: "x", GrantTTL: 25 * time.Hour},
		"bad mode": {Name: "x", Mode: 7},
	} {
		_, err := New(base(), []*Policy{p}, Options{Store: store.NewMemory(0), Identity: &identity.Header{}, Sender: &outbox{}})
		if err == nil {
			t.Errorf("policy %s: accepted", name)
		}
	}
	_, err := New(base(), []*Policy{{Name: "a"}, {Name: "a"}}, Options{Store: store.NewMemory(0), Identity: &identity.Header{}, Sender: &outbox{}})
	if err == nil {
		t.Error("duplicate policy accepted")
	}
}
