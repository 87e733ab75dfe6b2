package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-stepup/caddy-stepup/internal/testredis"
	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/webhook"
	"github.com/caddy-stepup/caddy-stepup/stepup"
	"github.com/caddy-stepup/caddy-stepup/stepup/page"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

const opsSecret = "0123456789abcdef0123456789abcdef"

// provisionIn provisions the handler of raw JSON in ctx.
func provisionIn(t *testing.T, ctx caddy.Context, raw string) *Handler {
	t.Helper()
	var h Handler
	if err := json.Unmarshal([]byte(raw), &h); err != nil {
		t.Fatal(err)
	}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	return &h
}

func opsHandlerJSON(extra string) string {
	return `{"secret":"` + opsSecret + `","domain":"shop.example.com",` + extra +
		`"identity":{"source":"header","user":"U","phone":"P"},"senders":[{"sender":"log"}],` +
		`"policies":[{"name":"checkout","mode":"transaction","match":[{"path":["/checkout*"]}]},{"name":"pay","match":[{"path":["/pay*"]}]}]}`
}

func TestHandlerName(t *testing.T) {
	h := &Handler{Policies: []*Policy{{Name: "a"}, {Name: "b"}}}
	for _, tc := range []struct {
		domain, scope, prefix string
		listen                []string
		want                  string
	}{
		{"shop.example.com", "", "", []string{":443"}, "shop.example.com/.stepup:a,b"},
		{"", "", "/.s", []string{":8080", ":8443"}, ":8080+:8443/.s:a,b"},
		{"", "shop", "", nil, "scope=shop/.stepup:a,b"},
	} {
		h.Domain, h.Scope, h.PathPrefix = tc.domain, tc.scope, tc.prefix
		if got := handlerName(h, tc.listen); got != tc.want {
			t.Errorf("handlerName(%+v) = %q, want %q", tc, got, tc.want)
		}
	}
	if got := handlerName(&Handler{}, nil); got != "/.stepup:-" {
		t.Errorf("empty handler: %q", got)
	}
}

// Across a reload the new config's handlers provision before the old
// ones are cleaned up: the admin API acts on the newest config, and on
// the old one again if the new one is cleaned up (a failed reload).
func TestRegistryAcrossReload(t *testing.T) {
	oldCtx, cancelOld := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancelOld()
	a := provisionIn(t, oldCtx, opsHandlerJSON(""))
	b := provisionIn(t, oldCtx, opsHandlerJSON(""))
	defer a.Cleanup()
	defer b.Cleanup()
	names := func() []string {
		var out []string
		for _, lh := range currentHandlers() {
			out = append(out, lh.name)
		}
		return out
	}
	want := "shop.example.com/.stepup:checkout,pay"
	if got := names(); len(got) != 2 || got[0] != want || got[1] != want+"#2" {
		t.Fatalf("old config: %v", got)
	}
	newCtx, cancelNew := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancelNew()
	c := provisionIn(t, newCtx, opsHandlerJSON(`"path_prefix":"/.new",`))
	if got := names(); len(got) != 1 || got[0] != "shop.example.com/.new:checkout,pay" {
		t.Fatalf("during the reload: %v", got)
	}
	_ = c.Cleanup() // the new config failed: the old one serves again
	if got := names(); len(got) != 2 {
		t.Fatalf("after the new config left: %v", got)
	}
	_ = a.Cleanup()
	_ = b.Cleanup()
	if got := names(); len(got) != 0 {
		t.Fatalf("after cleanup: %v", got)
	}
}

// The admin API unlocks and revokes on the memory store, whose state
// only the running Caddy has, and its status counts without naming
// anyone.
func TestAdminAPIMemoryStore(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := provisionIn(t, ctx, opsHandlerJSON(`"max_failures":3,`))
	defer h.Cleanup()
	st, key, err := acquireMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Delete(key)
	userKey, _ := stepup.UserKey([]byte(opsSecret), "alice")
	for range 3 {
		_, _ = st.AddFailure(context.Background(), userKey, time.Hour)
	}
	api := &adminAPI{log: zap.NewNop()}
	call := func(method, path, body string) (int, string) {
		req := httptest.NewRequest(method, "http://localhost:2019"+path, strings.NewReader(body))
		rec := httptest.NewRecorder()
		if err := api.serve(rec, req); err != nil {
			var ae caddy.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			return ae.HTTPStatus, ae.Err.Error()
		}
		return rec.Code, rec.Body.String()
	}
	code, body := call("GET", "/stepup/status", "")
	if code != 200 || !strings.Contains(body, `"locked_users": 1`) || !strings.Contains(body, `"kind": "memory"`) ||
		!strings.Contains(body, `"blocked_prefixes": 0`) || !strings.Contains(body, `"breaker": "closed"`) || strings.Contains(body, "alice") {
		t.Fatalf("status %d:\n%s", code, body)
	}
	code, body = call("POST", "/stepup/unlock", `{"user":"alice"}`)
	if code != 200 || !strings.Contains(body, `"cleared": 3`) || !strings.Contains(body, `"audit_user": "`+userKey+`"`) {
		t.Fatalf("unlock %d:\n%s", code, body)
	}
	if n, _, _ := st.Failures(context.Background(), userKey); n != 0 {
		t.Fatalf("alice still has %d failures", n)
	}
	code, body = call("POST", "/stepup/revoke", `{"user":"alice","handler":"shop.example.com/.stepup:checkout,pay"}`)
	if code != 200 || !strings.Contains(body, `"revoked_until"`) {
		t.Fatalf("revoke %d:\n%s", code, body)
	}
	if at, _ := st.RevokedAt(context.Background(), userKey); at.IsZero() {
		t.Fatal("alice not revoked")
	}
	code, body = call("POST", "/stepup/remove-passkeys", `{"user":"alice"}`)
	if code != 200 || !strings.Contains(body, `"passkeys_removed": 0`) {
		t.Fatalf("remove-passkeys %d:\n%s", code, body)
	}
	for _, tc := range []struct {
		method, path, body string
		code               int
		says               string
	}{
		{"POST", "/stepup/unblock", `{"prefix":"4420"}`, 400, `"prefix": prefix "4420": want + and digits`},
		{"POST", "/stepup/unblock", `{"user":"alice"}`, 400, "not a user"},
		{"POST", "/stepup/unlock", `{}`, 400, `"user" must be`},
		{"POST", "/stepup/unlock", `{"usr":"alice"}`, 400, "unknown field"},
		{"POST", "/stepup/unlock", `{"user":"alice","handler":"nope"}`, 404, "running: shop.example.com"},
		{"GET", "/stepup/unlock", ``, 405, "use POST"},
		{"GET", "/stepup/nope", ``, 404, "no such stepup endpoint"},
	} {
		if code, body := call(tc.method, tc.path, tc.body); code != tc.code || !strings.Contains(body, tc.says) {
			t.Errorf("%s %s %s = %d %s; want %d %q", tc.method, tc.path, tc.body, code, body, tc.code, tc.says)
		}
	}
	_ = h.Cleanup()
	if code, body := call("GET", "/stepup/status", ""); code != 404 || !strings.Contains(body, "no stepup handler is running") {
		t.Errorf("status without handlers = %d %s", code, body)
	}
}

// Status reads Redis by SCAN: pending challenges (not the used or
// expired ones) and locked users.
func TestRedisStats(t *testing.T) {
	srv := testredis.Run(t)
	client, err := newRedisClient(RedisConfig{URL: srv.URL(), DialTimeout: caddy.Duration(time.Second),
		ReadTimeout: caddy.Duration(time.Second), WriteTimeout: caddy.Duration(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewRedis(client, "ops:", true)
	defer st.Close()
	ctx := context.Background()
	now := time.Now()
	for i, id := range []string{"aaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbb", "cccccccccccccccccccccc"} {
		c := &store.Challenge{ID: id, Policy: "p", UserKey: "u", Phone: "+14155550100", Created: now, Expires: now.Add(time.Minute),
			MaxAttempts: 3, CodeMAC: []byte("mac"), Stash: []byte("x")}
		if err := st.Create(ctx, c, "", time.Minute); err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			if err := st.Consume(ctx, id, []byte("mac"), now, "sms"); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range 5 {
		_, _ = st.AddFailure(ctx, "locked", time.Hour)
	}
	_, _ = st.AddFailure(ctx, "fine", time.Hour)
	stats, err := st.Stats(ctx, 5, 100)
	if err != nil || stats.Pending != 2 || stats.Locked != 1 || stats.Truncated {
		t.Fatalf("stats = %+v, %v; want 2 pending, 1 locked", stats, err)
	}
	if stats, _ := st.Stats(ctx, 5, 1); !stats.Truncated {
		t.Fatalf("a scan bounded at 1 key: %+v", stats)
	}
}

// The chain's "sender failed" warnings feed the status's last error.
func TestSenderErrorsRecorded(t *testing.T) {
	rec := newSenderErrors()
	logger := zap.NewNop().WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return zapcore.NewTee(c, rec) }))
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
	defer gw.Close()
	wh, err := webhook.New(webhook.Config{URL: gw.URL})
	if err != nil {
		t.Fatal(err)
	}
	chain := sender.NewChain([]sender.Sender{wh}, sender.ChainOptions{Timeout: 2 * time.Second, PerSender: 300 * time.Millisecond, Logger: logger})
	if _, err := chain.Send(context.Background(), &sender.Message{To: "+14155550100", Code: "123456", Text: "123456"}); err == nil {
		t.Fatal("send to a failing gateway succeeded")
	}
	e, ok := rec.lastError(wh.Name())
	if !ok || e.msg == "" || strings.Contains(e.msg, "123456") || strings.Contains(e.msg, "4155550100") {
		t.Fatalf("last error = %+v, %v", e, ok)
	}
	if s := chain.Status(); len(s) != 1 || s[0].Breaker != "closed" || s[0].ConsecutiveFailures != 1 {
		t.Fatalf("chain status %+v", s)
	}
}

func TestNoEffectWarnings(t *testing.T) {
	h := provisioned(t, `{"secret":"`+opsSecret+`","domain":"shop.example.com","max_sends":1,"resend_after":"10s","request_failure_window":"10m",
		"identity":{"source":"header","user":"U","phone":"P"},"senders":[{"sender":"log"}],
		"policies":[{"name":"s","describe":"Pay","match":[{"path":["/s*"]}]},
		{"name":"t","mode":"transaction","grant_ttl":"5m","match":[{}]},
		{"name":"m","mode":"monitor","grant_ttl":"5m","describe":"x"},
		{"name":"late","match":[{"path":["/late*"]}]},
		{"name":"late-monitor","mode":"monitor","match":[{"path":["/late*"]}]}]}`)
	var got []string
	for _, w := range h.noEffects() {
		got = append(got, w.policy+": "+w.msg)
	}
	all := strings.Join(got, "\n")
	if strings.Contains(all, "late: policy late never applies") {
		t.Errorf("a monitor policy without matchers is said to shadow the enforcing policy after it:\n%s", all)
	}
	for _, want := range []string{
		"s: policy s: describe has no effect in mode session",
		"t: policy t: grant_ttl has no effect in mode transaction",
		"t: policy t: match {} is empty",
		"m: policy m: grant_ttl has no effect in mode monitor",
		"m: policy m: describe has no effect in mode monitor",
		"late-monitor: policy late-monitor never applies: monitor policy m before it has no matchers",
		": resend_after has no effect with max_sends 1",
		": request_failure_window has no effect",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no warning %q in:\n%s", want, all)
		}
	}
	quiet := provisioned(t, opsHandlerJSON(""))
	if w := quiet.noEffects(); len(w) != 0 {
		t.Errorf("warnings for a config without idle settings: %v", w)
	}
}

// {query.NAME} reaches describe and identity request as stepup's own
// placeholder, although Caddy's adapter expands the shorthand.
func TestQueryShorthandAdapt(t *testing.T) {
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(`http://localhost:1 {
	stepup {
		identity request {
			phone {query.phone}
		}
		sender log
		protect p {
			match {
				path /pay
			}
			mode transaction
			describe "Pay {query.amount} to {form.to}"
		}
	}
}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(cfg, []byte(`"describe":"Pay {query.amount} to {form.to}"`)) || !bytes.Contains(cfg, []byte(`"phone":"{query.phone}"`)) ||
		bytes.Contains(cfg, []byte("http.request.uri.query")) {
		t.Fatalf("adapted:\n%s", cfg)
	}
}

func TestConfigWords(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"allow_countries UK", `did you mean GB (the United Kingdom)?`},
		{"deny_countries EL", `did you mean GR (Greece)?`},
		{"default_region 001", `always written in international form`},
		{"allow_countries XX", `"XX" is not an ISO 3166-1 alpha-2 region code with phone numbers (such as GB, IN, US)`},
		{"limits {\n per_country UK 5/1h\n}", `limits per_country: "UK" is not an ISO 3166-1 alpha-2 region code: did you mean GB`},
		{"redis redis://127.0.0.1:99999/0", `port "99999" of "127.0.0.1:99999" is out of range (1 to 65535)`},
		{"identity foo", "unknown identity source 'foo' (known: cookie, header, oidc, request)"},
	} {
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte("http://localhost:1 {\n stepup {\n sender log\n "+tc.in+"\n }\n}"), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "sender: ") {
			t.Errorf("%s: %v; want %q", tc.in, err, tc.want)
		}
	}
	// From JSON, at provision, after placeholders.
	t.Setenv("OPS_REDIS_PORT", "70000")
	var h Handler
	_ = json.Unmarshal([]byte(opsHandlerJSON(`"redis":{"url":"redis://127.0.0.1:{env.OPS_REDIS_PORT}/0"},`)), &h)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err := h.Provision(ctx)
	_ = h.Cleanup()
	if err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Fatalf("redis port from a placeholder: %v", err)
	}
}

// With the fail-fast options a refused connection fails in
// milliseconds and a black hole within one dial timeout, where go-redis's
// defaults took seconds (retries and dial retries).
func TestRedisFailsFast(t *testing.T) {
	srv := testredis.Run(t)
	srv.Stop()
	hole, err := testredis.NewBlackHole()
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	for _, tc := range []struct {
		name, url string
		max       time.Duration
	}{
		{"refused", srv.URL(), 100 * time.Millisecond},
		{"black hole", hole.URL(), 300*time.Millisecond + 200*time.Millisecond},
	} {
		client, err := newRedisClient(RedisConfig{URL: tc.url, DialTimeout: caddy.Duration(300 * time.Millisecond),
			ReadTimeout: caddy.Duration(time.Second), WriteTimeout: caddy.Duration(time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		// A request's context can be cancelled: go-redis dials
		// differently under one.
		ctx, cancel := context.WithCancel(context.Background())
		for i := range 4 {
			start := time.Now()
			var err error
			if i%2 == 0 {
				err = client.Get(ctx, "k").Err()
			} else {
				// The store reads several keys in one pipeline.
				pipe := client.Pipeline()
				pipe.Get(ctx, "k")
				pipe.PTTL(ctx, "k")
				_, err = pipe.Exec(ctx)
			}
			took := time.Since(start)
			if err == nil || took > tc.max {
				t.Errorf("%s, try %d: %v after %s, want an error within %s", tc.name, i, err, took, tc.max)
			}
			t.Logf("%s, try %d: error after %s", tc.name, i, took.Round(time.Millisecond))
		}
		cancel()
		_ = client.Close()
	}
}

// go-redis's own log lines go through Caddy's logger, not plain text on
// stderr.
func TestRedisLogsThroughZap(t *testing.T) {
	useZapForRedis()
	var buf bytes.Buffer
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zapcore.DebugLevel)
	defer func(old func() *zap.Logger) { caddyLog = old }(caddyLog)
	caddyLog = func() *zap.Logger { return zap.New(core) }
	zapRedisLogger{}.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %v", 1, "refused")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not one JSON line: %q", buf.String())
	}
	if line["msg"] != "connection pool: failed to dial after 1 attempts: refused" || line["logger"] != redisLogName {
		t.Fatalf("logged %v", line)
	}
}

func TestPreviewWritesEveryStateAndLocale(t *testing.T) {
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(`http://localhost:1 {
	stepup {
		identity header {
			user U
			phone P
		}
		sender log
		site_name "Demo Shop"
	}
}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var out bytes.Buffer
	if err := writePreviews(cfg, dir, "", "", &out); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, handlerDir(":1/.stepup:-"))
	if filepath.Base(sub) != "1_.stepup_-" {
		t.Fatalf("directory %s", sub)
	}
	for _, s := range page.Samples() {
		for _, l := range page.Locales() {
			b, err := os.ReadFile(filepath.Join(sub, s+"."+l+".html"))
			if err != nil || !bytes.Contains(b, []byte("<html")) {
				t.Errorf("%s.%s: %v", s, l, err)
			}
		}
	}
	if b, _ := os.ReadFile(filepath.Join(sub, "challenge.hi.html")); !bytes.Contains(b, []byte(`lang="hi"`)) {
		t.Errorf("challenge.hi.html is not Hindi")
	}
	if !strings.Contains(out.String(), "pages") {
		t.Errorf("output: %s", out.String())
	}
}
