// Package e2e drives a real Caddy binary with caddy-stepup over HTTP on
// 127.0.0.1, against a real redis-server, a local webhook receiver and a
// local upstream.
//
// The binary is STEPUP_CADDY_BIN when set (./xcaddy.sh test sets it to
// the xcaddy-built ./caddy); otherwise TestMain builds one with go build,
// once per test run.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/internal/freeport"
	"github.com/caddy-stepup/caddy-stepup/internal/logscan"
	"github.com/caddy-stepup/caddy-stepup/internal/testredis"
	"github.com/caddy-stepup/caddy-stepup/sender"
)

var (
	caddyBin    string
	repoRoot    string
	sharedRedis *testredis.Server
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	wd, _ := os.Getwd()
	repoRoot = filepath.Dir(wd)
	tmp, err := os.MkdirTemp("", "stepup-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)

	caddyBin = os.Getenv("STEPUP_CADDY_BIN")
	if caddyBin == "" {
		caddyBin = filepath.Join(tmp, "caddy")
		fmt.Fprintln(os.Stderr, "e2e: building Caddy with the plugin (go build ./internal/caddybin)")
		cmd := exec.Command("go", "build", "-o", caddyBin, "./internal/caddybin")
		cmd.Dir = repoRoot
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: building caddy:", err)
			return 1
		}
	}
	out, err := exec.Command(caddyBin, "list-modules").Output()
	if err != nil || !bytes.Contains(out, []byte("http.handlers.stepup\n")) {
		fmt.Fprintf(os.Stderr, "e2e: %s has no http.handlers.stepup module (%v)\n", caddyBin, err)
		return 1
	}

	sharedRedis, err = testredis.New(filepath.Join(tmp))
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e needs redis-server:", err)
		return 1
	}
	defer sharedRedis.Stop()
	return m.Run()
}

// caddyProc is one running Caddy.
type caddyProc struct {
	t     *testing.T
	cmd   *exec.Cmd
	port  int
	admin int
	// ports are the ports of every placeholder, by name ("PORT2").
	ports  map[string]int
	logs   *syncBuffer
	exited chan struct{}
	// codesLogged marks a Caddy whose config logs codes on purpose (the
	// development log sender); its logs are still checked for numbers.
	codesLogged bool
	// config is the path of its Caddyfile, env the extra environment.
	config string
	env    []string
}

// secrets are values that must never appear in any Caddy log line of the
// test run: every code a receiver got, grant tokens, full test numbers.
var secrets = struct {
	sync.Mutex
	codes, other []string
}{other: []string{
	// National forms, and with the country code: ContainsToken wants a
	// value standing alone, and "+14155550100" has a digit before
	// "4155550100". The receivers add every number they are sent to.
	"4155550100", "4155550101", "9876543210", "4155550199",
	"14155550100", "14155550101", "919876543210", "14155550199",
}}

func noteCode(code string) {
	secrets.Lock()
	secrets.codes = append(secrets.codes, code)
	secrets.Unlock()
}

func noteSecret(s string) {
	secrets.Lock()
	secrets.other = append(secrets.other, s)
	secrets.Unlock()
}

// checkLogs fails the test if this Caddy logged a secret.
func (p *caddyProc) checkLogs() {
	secrets.Lock()
	defer secrets.Unlock()
	check := secrets.other
	if !p.codesLogged {
		check = append(append([]string(nil), check...), secrets.codes...)
	}
	for _, s := range leaked(p.logs.String(), check) {
		p.t.Errorf("caddy on port %d logged the secret value %q", p.port, s)
	}
}

// leaked returns the values of check that stand in logs.
func leaked(logs string, check []string) []string {
	text := logscan.Strings(logs)
	var out []string
	for _, s := range check {
		if logscan.ContainsToken(text, s) {
			out = append(out, s)
		}
	}
	return out
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// portRE finds the port placeholders of a Caddyfile: {PORT}, {PORT2},
// ... and {ADMIN}.
var portRE = regexp.MustCompile(`\{(PORT\d*|ADMIN)\}`)

// startCaddy runs caddy with a Caddyfile in which every {PORT}, {PORTn}
// and {ADMIN} is replaced by a free port, and waits until it serves.
//
// Caddy binds its ports itself, so they cannot be held for it: a port
// free when chosen may be taken by another process before Caddy binds
// it. When Caddy exits at start because an address was in use, it is
// started again on new ports (freeport.Retry).
func startCaddy(t *testing.T, caddyfile string, env ...string) *caddyProc {
	t.Helper()
	var names []string
	for _, m := range portRE.FindAllStringSubmatch(caddyfile, -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	if !slices.Contains(names, "PORT") {
		t.Fatal("startCaddy: the Caddyfile has no {PORT}")
	}
	var p *caddyProc
	err := freeport.Retry(len(names), func(ports []int) error {
		var err error
		p, err = tryCaddy(t, caddyfile, names, ports, env)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(); p.checkLogs() })
	return p
}

// tryCaddy starts caddy once, with the placeholders names on ports, and
// waits until it serves. When it cannot, nothing is left running.
//
// Caddy serves once it logged so and its port answers: the log line
// tells Caddy from another process that took the port (Caddy's default
// logger writes to standard error unless a config redirects it).
func tryCaddy(t *testing.T, caddyfile string, names []string, ports []int, env []string) (*caddyProc, error) {
	dir := t.TempDir()
	p := &caddyProc{t: t, ports: map[string]int{}, logs: &syncBuffer{}, exited: make(chan struct{})}
	var pairs []string
	for i, name := range names {
		p.ports[name] = ports[i]
		pairs = append(pairs, "{"+name+"}", strconv.Itoa(ports[i]))
	}
	p.port, p.admin = p.ports["PORT"], p.ports["ADMIN"]
	caddyfile = strings.NewReplacer(pairs...).Replace(caddyfile)
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o644); err != nil {
		return nil, err
	}
	p.config, p.env = path, env
	p.cmd = exec.Command(caddyBin, "run", "--config", path, "--adapter", "caddyfile")
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(),
		"HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir,
		"STEPUP_SECRET=e2e-secret-0123456789abcdef0123456789")
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.exited:
			return nil, fmt.Errorf("caddy exited at start:\n%s", p.logs)
		default:
		}
		if strings.Contains(p.logs.String(), "serving initial configuration") {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(p.port), 100*time.Millisecond)
			if err == nil {
				c.Close()
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("caddy did not serve within 30s:\n%s", p.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// portOf returns the port that replaced the placeholder {name}.
func (p *caddyProc) portOf(name string) int {
	p.t.Helper()
	n, ok := p.ports[name]
	if !ok {
		p.t.Fatalf("the Caddyfile has no {%s}", name)
	}
	return n
}

// waitLog waits up to 5s for s to appear in the log (Caddy writes its
// log asynchronously to the answers it sends).
func (p *caddyProc) waitLog(s string) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(p.logs.String(), s) {
			return true
		}
	}
	return false
}

func (p *caddyProc) url(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", p.port, path)
}

func (p *caddyProc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// upstream is the app behind Caddy: it counts and records requests,
// bodies included.
type upstream struct {
	*httptest.Server
	mu     sync.Mutex
	seen   []*http.Request
	bodies [][]byte
	hits   atomic.Int32
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("upstream reading body: %v", err)
		}
		u.hits.Add(1)
		u.mu.Lock()
		u.seen = append(u.seen, r.Clone(context.Background()))
		u.bodies = append(u.bodies, body)
		u.mu.Unlock()
		if r.Method == http.MethodPost && r.URL.Path == "/redirecting" {
			http.Redirect(w, r, "/orders/42", http.StatusSeeOther)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "upstream %s %s policy=%s user=%s", r.Method, r.URL.RequestURI(),
			r.Header.Get("Stepup-Policy"), r.Header.Get("Stepup-User"))
	}))
	t.Cleanup(u.Close)
	return u
}

// posts returns the non-GET requests seen and their bodies.
func (u *upstream) posts() ([]*http.Request, [][]byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var rs []*http.Request
	var bs [][]byte
	for i, r := range u.seen {
		if r.Method != http.MethodGet {
			rs = append(rs, r)
			bs = append(bs, u.bodies[i])
		}
	}
	return rs, bs
}

func (u *upstream) last() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) == 0 {
		return nil
	}
	return u.seen[len(u.seen)-1]
}

// receiver is the SMS gateway: it checks the webhook's signature and wire
// format and keeps the codes.
type receiver struct {
	*httptest.Server
	key   []byte
	mu    sync.Mutex
	msgs  []webhookMsg
	fails atomic.Int32 // answer this many requests with 503 first
	// delay holds every answer this long (a slow gateway).
	delay atomic.Int64
}

type webhookMsg struct {
	To, Code, Message, Channel, Policy, Challenge string
	ID                                            string
	// ReceiptURL is where the gateway reports delivery (receipts on).
	ReceiptURL string
}

const signingSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func newReceiver(t *testing.T) *receiver {
	key, err := sender.ParseWebhookSecret(signingSecret)
	if err != nil {
		t.Fatal(err)
	}
	rc := &receiver{key: key}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.Path != "/sms" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("webhook: %s %s %s", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
			w.WriteHeader(400)
			return
		}
		if err := sender.VerifyWebhook(rc.key, r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"),
			r.Header.Get("webhook-signature"), body, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("webhook signature: %v", err)
			w.WriteHeader(401)
			return
		}
		time.Sleep(time.Duration(rc.delay.Load()))
		if rc.fails.Load() > 0 {
			rc.fails.Add(-1)
			w.WriteHeader(503)
			return
		}
		var m struct {
			To, Code, Message, Channel, Policy, Challenge string
			ReceiptURL                                    string `json:"receipt_url"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			t.Errorf("webhook body %s: %v", body, err)
		}
		noteCode(m.Code)
		if m.To != "" {
			noteSecret(strings.TrimPrefix(m.To, "+"))
		}
		rc.mu.Lock()
		rc.msgs = append(rc.msgs, webhookMsg{m.To, m.Code, m.Message, m.Channel, m.Policy, m.Challenge, r.Header.Get("webhook-id"), m.ReceiptURL})
		rc.mu.Unlock()
		w.WriteHeader(204)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.msgs)
}

// wait waits up to 10s until the receiver has got n codes in all (codes
// go out after the answer).
func (rc *receiver) wait(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); rc.count() < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the receiver got %d codes, want %d", rc.count(), n)
		}
	}
}

// last returns the last code the receiver got, waiting up to 10s for a
// first one (a browser's code goes out after the answer: a test that
// asks for another code waits for it with wait).
func (rc *receiver) last(t *testing.T) webhookMsg {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); rc.count() == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.msgs) == 0 {
		t.Fatal("no code reached the webhook receiver")
	}
	return rc.msgs[len(rc.msgs)-1]
}

// browser is a cookie jar and identity headers, as a trusted front end
// would set them.
type browser struct {
	t      *testing.T
	client *http.Client
	user   string
	phone  string
}

func newBrowser(t *testing.T, user, phone string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, user: user, phone: phone, client: &http.Client{
		Jar:           jar,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (b *browser) do(method, rawURL string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	if b.user != "" {
		req.Header.Set("X-Remote-User", b.user)
	}
	if b.phone != "" {
		req.Header.Set("X-Remote-Phone", b.phone)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, string(data)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf field in:\n%s", page)
	}
	return m[1]
}

// resolve makes a Location header absolute against base.
func resolve(base, loc string) string {
	b, _ := url.Parse(base)
	l, _ := url.Parse(loc)
	return b.ResolveReference(l).String()
}

// The log check finds a full number and a code in a JSON log line, and
// leaves a masked number and a code inside an id alone.
func TestLogCheckFindsLeaks(t *testing.T) {
	t.Parallel()
	logs := `{"level":"info","msg":"code_sent","to":"+14155550100","code":"483920"}` + "\n" +
		`{"level":"info","msg":"code_sent","to":"+1******0100","request_id":"a483920b"}`
	got := leaked(logs, []string{"14155550100", "483920"})
	if len(got) != 2 {
		t.Fatalf("leaked = %v, want the number and the code", got)
	}
	if got := leaked(`{"to":"+1******0100","request_id":"a483920b"}`, []string{"14155550100", "483920"}); len(got) != 0 {
		t.Fatalf("false positives: %v", got)
	}
}
