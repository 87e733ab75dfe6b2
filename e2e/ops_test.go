package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/internal/testredis"
)

// summary describes sequential and concurrent latencies.
func summary(seq, burst []time.Duration) string {
	stat := func(ds []time.Duration) string {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return fmt.Sprintf("median %s, worst %s", s[len(s)/2].Round(100*time.Microsecond), s[len(s)-1].Round(100*time.Microsecond))
	}
	return fmt.Sprintf("%d sequential requests: %s; %d concurrent: %s", len(seq), stat(seq), len(burst), stat(burst))
}

// runCaddy runs a caddy command and returns its output and exit code.
func runCaddy(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(caddyBin, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "STEPUP_SECRET=e2e-secret-0123456789abcdef0123456789")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("caddy %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return string(out), code
}

// A locked-out user is unlocked through the admin API of the running
// Caddy, without a restart, with the memory store and with Redis; status
// counts without naming anyone; commands that cannot do what was asked
// exit non-zero and say why.
func TestOpsAdminAPI(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testOpsAdminAPI(t, "", "memory") })
	t.Run("redis", func(t *testing.T) {
		r := testredis.Run(t)
		testOpsAdminAPI(t, "redis "+r.URL(), "redis")
	})
}

func testOpsAdminAPI(t *testing.T, redisBlock, kind string) {
	up := newUpstream(t)
	hook := newReceiver(t)
	p := startCaddy(t, prodConfig(redisBlock, hook.URL, up.URL, "max_failures 2"))
	admin := fmt.Sprintf("127.0.0.1:%d", p.admin)
	name := fmt.Sprintf(":%d/.stepup:payment-methods", p.port)

	resp, ch := apiCall(t, "GET", p.url("/account/payment-methods"), "alice", "+14155550100", nil, nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("challenge = %d %v", resp.StatusCode, ch)
	}
	verify := func(code string) (int, map[string]any) {
		body, _ := json.Marshal(map[string]string{"challenge": ch["challenge"].(string), "code": code})
		resp, out := apiCall(t, "POST", p.url(ch["verify_url"].(string)), "alice", "+14155550100", body,
			map[string]string{"Content-Type": "application/json"})
		return resp.StatusCode, out
	}
	right := hook.last(t).Code
	verify(otherCode(right))
	verify(otherCode(right))
	if code, out := verify(right); code != http.StatusTooManyRequests {
		t.Fatalf("after max_failures wrong codes the right one = %d %v, want 429 (locked)", code, out)
	}

	out, code := runCaddy(t, nil, "stepup", "status", "--address", admin)
	if code != 0 || !strings.Contains(out, name) || !strings.Contains(out, "store:     "+kind+", reachable") ||
		!strings.Contains(out, "pending challenges: 1, locked users: 1 (") || !strings.Contains(out, "blocked prefixes: 0") ||
		!strings.Contains(out, "sender webhook: breaker closed") {
		t.Fatalf("status (exit %d):\n%s", code, out)
	}
	for _, secret := range []string{"alice", "4155550100", right} {
		if strings.Contains(out, secret) {
			t.Fatalf("status shows %q:\n%s", secret, out)
		}
	}

	out, code = runCaddy(t, nil, "stepup", "unlock", "--address", admin, "--user", "alice")
	if code != 0 || !strings.Contains(out, name+": cleared 2 failed attempts (audit events name this user ") {
		t.Fatalf("unlock (exit %d):\n%s", code, out)
	}
	if code, out := verify(right); code != http.StatusOK {
		t.Fatalf("after unlock the right code = %d %v", code, out)
	}
	if !p.waitLog(`"user":"`) {
		t.Error("no audit event names its user")
	}
	if strings.Contains(p.logs.String(), `"user":"alice"`) {
		t.Error("an audit event names the user in plain (audit_user is hmac by default)")
	}

	// After a reload the admin API acts on the new config's handlers
	// only (the old ones left the registry when they were cleaned up).
	reloaded := strings.NewReplacer("{PORT}", fmt.Sprint(p.port), "{ADMIN}", fmt.Sprint(p.admin)).Replace(
		prodConfig(redisBlock, hook.URL, up.URL, "max_failures 2\n\t\tprotect extra {\n\t\t\tmatch {\n\t\t\t\tpath /extra*\n\t\t\t}\n\t\t}"))
	if err := os.WriteFile(p.config, []byte(reloaded), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := runCaddy(t, nil, "reload", "--config", p.config, "--adapter", "caddyfile", "--address", admin); code != 0 {
		t.Fatalf("reload (exit %d):\n%s", code, out)
	}
	out, code = runCaddy(t, nil, "stepup", "status", "--address", admin)
	if code != 0 || !strings.Contains(out, name+",extra\n") || strings.Contains(out, name+"\n") ||
		!strings.Contains(out, "pending challenges: 0, locked users: 0") {
		t.Fatalf("status after a reload (exit %d):\n%s", code, out)
	}

	// Straight to the store (--direct): Redis is reachable from the
	// command; the memory store lives only in the running Caddy.
	direct := []string{"stepup", "unlock", "--config", p.config, "--adapter", "caddyfile", "--direct", "--user", "alice"}
	out, code = runCaddy(t, nil, direct...)
	if kind == "memory" && (code == 0 || !strings.Contains(out, "memory store")) {
		t.Errorf("unlock --direct on the memory store: exit %d, want non-zero and a word on the memory store:\n%s", code, out)
	}
	if kind == "redis" && code != 0 {
		t.Errorf("unlock --direct with Redis: exit %d:\n%s", code, out)
	}

	// What cannot be done exits non-zero and says why.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"stepup", "status", "--address", "127.0.0.1:1"}, "is Caddy running"},
		{[]string{"stepup", "unlock", "--address", admin}, "--user is required"},
		{[]string{"stepup", "revoke", "--address", admin, "--user", "alice", "--handler", "nope"}, "no stepup handler named"},
		{[]string{"stepup", "unblock", "--address", admin, "--prefix", "+4420"}, "nothing unblocked"},
		{[]string{"stepup", "unblock", "--address", admin, "--prefix", "4420"}, "want + and digits"},
	} {
		out, code := runCaddy(t, nil, tc.args...)
		if code == 0 || !strings.Contains(out, tc.want) {
			t.Errorf("caddy %v: exit %d, want non-zero and %q:\n%s", tc.args, code, tc.want, out)
		}
	}
	out, code = runCaddy(t, nil, "stepup", "version")
	if code != 0 || !strings.Contains(out, "caddy-stepup ") || !strings.Contains(out, "store format 1") || !strings.Contains(out, "caddy        v2.") {
		t.Errorf("version (exit %d):\n%s", code, out)
	}
}

// While Redis is down a protected request gets 503 at once: a refused
// connection within 100 ms, a black hole within dial_timeout, a server
// that closes each connection with one connection per request (no
// retries); and every log line stays JSON.
func TestRedisDownFailsFast(t *testing.T) {
	stopped := testredis.Run(t)
	stopped.Stop()
	hole, err := testredis.NewBlackHole()
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	closer, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := closer.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	const dial = 300 * time.Millisecond
	// max bounds each of the sequential requests; burst each of 20
	// concurrent ones, which on a loaded machine also wait for CPU, and
	// against a black hole may first wait up to pool_timeout (=
	// dial_timeout) for a turn in a pool whose every connection is
	// dialing.
	for _, tc := range []struct {
		name, url  string
		max, burst time.Duration
	}{
		{"refused", stopped.URL(), 100 * time.Millisecond, time.Second},
		// A sequential request waits for one dial_timeout; on a machine
		// at load 16 one took 645ms, so the bound leaves a second dial of
		// room (far from go-redis's 5s default, which it checks).
		{"black hole", hole.URL(), 2*dial + 300*time.Millisecond, 2*dial + time.Second},
		{"closes", "redis://" + closer.Addr().String() + "/0", 100 * time.Millisecond, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t)
			hook := newReceiver(t)
			p := startCaddy(t, prodConfig(fmt.Sprintf("redis %s {\n\t\t\tdial_timeout %s\n\t\t}", tc.url, dial), hook.URL, up.URL, ""))
			accepted.Store(0)
			var mu sync.Mutex
			var took []time.Duration
			try := func() {
				start := time.Now()
				resp, out := apiCall(t, "GET", p.url("/account/payment-methods"), "alice", "+14155550100", nil, nil)
				d := time.Since(start)
				if resp.StatusCode != http.StatusServiceUnavailable {
					t.Errorf("protected request = %d %v, want 503", resp.StatusCode, out)
				}
				mu.Lock()
				took = append(took, d)
				mu.Unlock()
			}
			for range 10 {
				try()
			}
			mu.Lock()
			seq := append([]time.Duration(nil), took...)
			mu.Unlock()
			var wg sync.WaitGroup
			for range 20 { // concurrent: no request waits on another's dial
				wg.Add(1)
				go func() { defer wg.Done(); try() }()
			}
			wg.Wait()
			burst := took[len(seq):]
			for _, d := range seq {
				if d > tc.max {
					t.Errorf("%s: a sequential request got its 503 after %s, want within %s", tc.name, d, tc.max)
				}
			}
			for _, d := range burst {
				if d > tc.burst {
					t.Errorf("%s: a concurrent request got its 503 after %s, want within %s", tc.name, d, tc.burst)
				}
			}
			t.Logf("%s (dial_timeout %s): 503 after %s", tc.name, dial, summary(seq, burst))
			if up.hits.Load() != 0 {
				t.Errorf("the upstream was reached while Redis was down")
			}
			if tc.name == "closes" {
				// One connection per request, or two: go-redis opens a
				// connection with HELLO (RESP3) and may try once more
				// for RESP2. Its defaults made up to 4 commands x 5
				// dials per request.
				if n := accepted.Load(); n > 2*int32(len(took))+2 {
					t.Errorf("%d connections for %d requests: commands or dials are retried", n, len(took))
				}
				t.Logf("closes: %d connections for %d requests", accepted.Load(), len(took))
			}
			if tc.name == "refused" {
				if !p.waitLog(`"logger":"stepup.redis"`) {
					t.Errorf("go-redis's own lines do not go through Caddy's logger")
				}
				for _, line := range strings.Split(strings.TrimSpace(p.logs.String()), "\n") {
					if !strings.HasPrefix(line, "{") {
						t.Errorf("a log line that is not JSON: %q", line)
					}
				}
				// Recovery without a restart: TestRedisOutage.
			}
		})
	}
}

// The operator commands that read a config: preview writes the pages,
// send-test prints no stack traces, adapt maps {query.NAME} back.
func TestOpsConfigCommands(t *testing.T) {
	dir := t.TempDir()
	out, code := runCaddy(t, nil, "stepup", "preview", "--config", filepath.Join(repoRoot, "Caddyfile.example"),
		"--adapter", "caddyfile", "--out", dir)
	if code != 0 || !strings.Contains(out, "localhost/.stepup:payment-methods,checkout,admin: ") {
		t.Fatalf("preview (exit %d):\n%s", code, out)
	}
	for _, f := range []string{"challenge.en.html", "challenge-transaction.hi.html", "locked.ar.html", "index.html"} {
		if b, err := os.ReadFile(filepath.Join(dir, "localhost_.stepup_payment-methods,checkout,admin", f)); err != nil || !strings.Contains(string(b), "<html") {
			t.Errorf("preview %s: %v", f, err)
		}
	}

	hook := newReceiver(t)
	hook.fails.Store(1000)
	cfg := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`http://127.0.0.1:1 {
	stepup {
		identity header {
			user U
			phone P
		}
		sender webhook %s/sms {
			signing_secret %s
			timeout 300ms
		}
		sender log
		protect pay {
			match {
				path /pay
			}
			mode transaction
			describe "Pay {query.amount} to {form.to}"
		}
	}
}
`, hook.URL, signingSecret)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code = runCaddy(t, nil, "stepup", "send-test", "--config", cfg, "--adapter", "caddyfile", "--to", "+14155550100")
	if code == 0 || !strings.Contains(out, "webhook") {
		t.Fatalf("send-test to a failing gateway (exit %d):\n%s", code, out)
	}
	if strings.Contains(out, "goroutine ") || strings.Contains(out, ".go:") {
		t.Errorf("send-test printed a Go stack trace:\n%s", out)
	}

	out, code = runCaddy(t, nil, "adapt", "--config", cfg, "--adapter", "caddyfile")
	if code != 0 || !strings.Contains(out, `"describe":"Pay {query.amount} to {form.to}"`) {
		t.Fatalf("adapt (exit %d):\n%s", code, out)
	}
}
