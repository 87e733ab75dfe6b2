package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/redis/go-redis/v9"

	"github.com/caddy-stepup/caddy-stepup/internal/logscan"
	"github.com/caddy-stepup/caddy-stepup/internal/testredis"
)

// prodConfig is a site whose stepup block uses redisBlock, in front of
// the upstream up, or of "respond ok" when up is empty.
func prodConfig(redisBlock, hook, up, extra string) string {
	app := "respond ok"
	if up != "" {
		app = "reverse_proxy " + strings.TrimPrefix(up, "http://")
	}
	return fmt.Sprintf(`{
	admin 127.0.0.1:{ADMIN}
	auto_https off
}
http://127.0.0.1:{PORT} {
	stepup {
		%s
		secret {env.STEPUP_SECRET}
		identity header {
			user X-Remote-User
			phone X-Remote-Phone
		}
		sender webhook %s/sms {
			signing_secret %s
		}
		limits {
			per_ip off
			per_user off
			per_number off
		}
		protect payment-methods {
			match {
				path /account/payment-methods*
			}
			grant_ttl 15m
		}
		%s
	}
	%s
}
`, redisBlock, hook, signingSecret, extra, app)
}

// transportRetries counts requests retried because the connection closed
// before any answer (see flow).
var transportRetries atomic.Int32

// flow runs the whole session flow for a user and reports what failed;
// it is safe to call from any goroutine.
//
// A request whose connection closes before any answer is sent again, as
// browsers do: Caddy's own listener handoff drops a few connections
// during rapid reloads whatever the handlers (measured here at ~2% of
// POSTs with a config that only says "respond ok"). Every HTTP answer
// counts: a wrong status is a failure.
func flow(t *testing.T, p *caddyProc, hook *receiver, user string) error {
	b := newBrowser(t, user, "+14155550100")
	b.client.Transport = &http.Transport{DisableKeepAlives: true}
	do := func(method, rawURL string, form url.Values) (*http.Response, string, error) {
		var lastErr error
		for try := 0; try < 5; try++ {
			var body io.Reader
			if form != nil {
				body = strings.NewReader(form.Encode())
			}
			req, _ := http.NewRequest(method, rawURL, body)
			if form != nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			req.Header.Set("Accept", "text/html")
			req.Header.Set("X-Remote-User", b.user)
			req.Header.Set("X-Remote-Phone", b.phone)
			resp, err := b.client.Do(req)
			if err != nil {
				lastErr = err
				transportRetries.Add(1)
				time.Sleep(10 * time.Millisecond)
				continue
			}
			defer resp.Body.Close()
			data, _ := io.ReadAll(resp.Body)
			return resp, string(data), nil
		}
		return nil, "", lastErr
	}
	target := p.url("/account/payment-methods")
	resp, _, err := do("GET", target, nil)
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		return fmt.Errorf("protected GET: %v %v", statusOf(resp), err)
	}
	challenge := resolve(target, resp.Header.Get("Location"))
	id := challenge[strings.LastIndex(challenge, "/")+1:]
	code := hook.codeFor(id)
	if code == "" {
		return fmt.Errorf("no code for challenge %s", id)
	}
	_, page, err := do("GET", challenge, nil)
	m := csrfRE.FindStringSubmatch(page)
	if err != nil || m == nil {
		return fmt.Errorf("challenge page: %v", err)
	}
	resp, _, err = do("POST", challenge, url.Values{"csrf": {m[1]}, "code": {code}})
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		return fmt.Errorf("verify: %v %v", statusOf(resp), err)
	}
	if resp, _, err = do("GET", target, nil); err != nil || resp.StatusCode != 200 {
		return fmt.Errorf("with grant: %v %v", statusOf(resp), err)
	}
	return nil
}

func statusOf(resp *http.Response) any {
	if resp == nil {
		return "no response"
	}
	return resp.StatusCode
}

// codeFor returns the code the receiver got for a challenge, waiting up
// to 10s for it (a browser's code goes out after the answer).
func (rc *receiver) codeFor(id string) string {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		rc.mu.Lock()
		for i := len(rc.msgs) - 1; i >= 0; i-- {
			if rc.msgs[i].Challenge == id {
				code := rc.msgs[i].Code
				rc.mu.Unlock()
				return code
			}
		}
		rc.mu.Unlock()
		if time.Now().After(deadline) {
			return ""
		}
	}
}

// Sentinel: the master dies mid-flow; while no master is known,
// protected requests fail closed; after the promotion the same flow
// continues without restarting Caddy.
func TestSentinelFailoverE2E(t *testing.T) {
	t.Parallel()
	sn := testredis.RunSentinel(t)
	up := newUpstream(t)
	hook := newReceiver(t)
	p := startCaddy(t, prodConfig(fmt.Sprintf(`redis {
			sentinel {
				master %s
				addrs %s
			}
			dial_timeout 300ms
			read_timeout 300ms
			key_prefix e2e-sentinel:
		}`, sn.MasterName, sn.Sentinel.Addr()), hook.URL, up.URL, ""))
	alice := newBrowser(t, "alice", "+14155550100")
	target := p.url("/account/payment-methods")
	resp, _ := alice.do("GET", target, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("protected GET = %d", resp.StatusCode)
	}
	challenge := resolve(target, resp.Header.Get("Location"))
	_, page := alice.do("GET", challenge, nil)
	csrf := csrfOf(t, page)
	if out, err := sn.Master.Raw(context.Background(), "WAIT", "1", "2000"); err != nil || strings.TrimSpace(out) != "1" {
		t.Fatalf("WAIT = %q, %v", out, err)
	}
	sn.Master.Stop()

	var closed int
	deadline := time.Now().Add(40 * time.Second)
	for {
		var body string
		resp, body = alice.do("POST", challenge, url.Values{"csrf": {csrf}, "code": {hook.last(t).Code}})
		if resp.StatusCode == http.StatusSeeOther {
			break
		}
		if resp.StatusCode != http.StatusServiceUnavailable {
			info, _ := sn.Replica.Info(context.Background(), "replication")
			master, _ := sn.Sentinel.Raw(context.Background(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", sn.MasterName)
			keys, _ := sn.Replica.Raw(context.Background(), "KEYS", "*")
			t.Fatalf("during failover: %d, want 503 (fail closed) or the verification\n%s\nreplica: %s\nsentinel master: %s\nkeys on the replica: %s\ncaddy log:\n%s",
				resp.StatusCode, body[:min(len(body), 300)], info, master, keys, p.logs)
		}
		closed++
		if up.hits.Load() != 0 {
			t.Fatal("the upstream was reached during the failover")
		}
		if time.Now().After(deadline) {
			t.Fatal("no recovery within 40s of the master's death")
		}
		time.Sleep(250 * time.Millisecond)
	}
	if resp, _ := alice.do("GET", target, nil); resp.StatusCode != 200 || up.hits.Load() != 1 {
		t.Fatalf("after failover = %d, upstream %d", resp.StatusCode, up.hits.Load())
	}
	t.Logf("%d requests failed closed (503) while Sentinel promoted the replica", closed)
}

// A Caddy on a 3-master Redis Cluster runs the flow.
func TestClusterE2E(t *testing.T) {
	t.Parallel()
	c := testredis.RunCluster(t, 3)
	up := newUpstream(t)
	hook := newReceiver(t)
	p := startCaddy(t, prodConfig(fmt.Sprintf(`redis {
			cluster {
				addrs %s
			}
			key_prefix e2e-cluster:
		}`, strings.Join(c.Addrs(), " ")), hook.URL, up.URL, ""))
	for i := 0; i < 5; i++ {
		if err := flow(t, p, hook, fmt.Sprintf("cluster-user-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
}

// adminGet fetches a path of the Caddy admin API.
func (p *caddyProc) adminGet(t *testing.T, path string) string {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", p.admin, path))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

var goroutinesRE = regexp.MustCompile(`goroutine profile: total (\d+)`)

func (p *caddyProc) goroutines(t *testing.T) int {
	m := goroutinesRE.FindStringSubmatch(p.adminGet(t, "/debug/pprof/goroutine?debug=1"))
	if m == nil {
		t.Fatal("no goroutine profile from the admin API")
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// metric returns the value of one series of the admin /metrics page.
func (p *caddyProc) metric(t *testing.T, series string) float64 {
	sc := bufio.NewScanner(strings.NewReader(p.adminGet(t, "/metrics")))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, series+" ") {
			v, _ := strconv.ParseFloat(strings.TrimPrefix(line, series+" "), 64)
			return v
		}
	}
	return 0
}

func connectedClients(t *testing.T, client *redis.Client) int {
	info, err := client.Info(context.Background(), "clients").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`connected_clients:(\d+)`).FindStringSubmatch(info)
	n, _ := strconv.Atoi(m[1])
	return n
}

// 50 reloads with changed policies while flows run: no flow fails because
// of a reload, goroutines and Redis connections stay flat, and the
// metrics keep counting.
//
// The app behind is "respond": reverse_proxy's own upstream connections
// that are busy at a reload go back to the old transport's idle pool and
// linger until its keepalive timeout (2 minutes), which is Caddy's
// behaviour, not stepup's, and would hide what this measures.
func TestReloadUnderLoad(t *testing.T) {
	// Not parallel: it counts the shared Redis's connections.
	hook := newReceiver(t)
	redisBlock := `redis ` + sharedRedis.URL() + ` {
			key_prefix e2e-reload:
		}`
	cfg := func(i int) string {
		return prodConfig(redisBlock, hook.URL, "", fmt.Sprintf(`protect extra-%d {
			match {
				path /extra-%d/*
			}
			grant_ttl %dm
		}`, i, i, 10+i%5))
	}
	p := startCaddy(t, cfg(0))
	rc := redis.NewClient(&redis.Options{Addr: sharedRedis.Addr()})
	defer rc.Close()

	// Warm up, then take the baseline.
	for i := 0; i < 3; i++ {
		if err := flow(t, p, hook, fmt.Sprintf("warm-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	okSeries := `caddy_stepup_verifications_total{outcome="ok",policy="payment-methods"}`
	verifiedBefore := p.metric(t, okSeries)
	time.Sleep(500 * time.Millisecond)
	goroutinesBefore := p.goroutines(t)
	clientsBefore := connectedClients(t, rc)

	var stop atomic.Bool
	var flows, failures atomic.Int32
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				if err := flow(t, p, hook, fmt.Sprintf("load-%d-%d", w, i)); err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
				flows.Add(1)
			}
		}(w)
	}
	for i := 1; i <= 50; i++ {
		text := strings.NewReplacer("{PORT}", strconv.Itoa(p.port), "{ADMIN}", strconv.Itoa(p.admin)).Replace(cfg(i))
		req, _ := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d/load", p.admin), strings.NewReader(text))
		req.Header.Set("Content-Type", "text/caddyfile")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("reload %d = %d %s", i, resp.StatusCode, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d of %d flows failed during 50 reloads; first: %v", failures.Load(), flows.Load(), firstErr.Load())
	}
	time.Sleep(time.Second) // let the old configs' goroutines end
	goroutinesAfter := p.goroutines(t)
	clientsAfter := connectedClients(t, rc)
	verifiedAfter := p.metric(t, okSeries)
	t.Logf("%d flows during 50 reloads (%d requests resent after a connection closed without answer); goroutines %d -> %d; redis clients %d -> %d; verifications %v -> %v",
		flows.Load(), transportRetries.Load(), goroutinesBefore, goroutinesAfter, clientsBefore, clientsAfter, verifiedBefore, verifiedAfter)
	if goroutinesAfter > goroutinesBefore+20 {
		prof := p.adminGet(t, "/debug/pprof/goroutine?debug=1")
		var top []string
		for _, block := range strings.Split(prof, "\n\n") {
			if lines := strings.Split(block, "\n"); len(lines) > 0 && !strings.HasPrefix(lines[0], "1 @") {
				top = append(top, block)
			}
		}
		t.Errorf("goroutines grew from %d to %d across 50 reloads; repeated stacks:\n%s", goroutinesBefore, goroutinesAfter, strings.Join(top, "\n\n"))
	}
	if clientsAfter > clientsBefore+10 {
		t.Errorf("redis connections grew from %d to %d across 50 reloads", clientsBefore, clientsAfter)
	}
	if verifiedAfter < verifiedBefore+float64(flows.Load()) {
		t.Errorf("verifications metric %v -> %v, want at least %d more", verifiedBefore, verifiedAfter, flows.Load())
	}
	if flows.Load() < 10 {
		t.Errorf("only %d flows ran during the reloads", flows.Load())
	}
}

// caddyCommand runs a caddy subcommand with p's environment.
func (p *caddyProc) caddyCommand(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(caddyBin, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "STEPUP_SECRET=e2e-secret-0123456789abcdef0123456789")
	cmd.Env = append(cmd.Env, p.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("caddy %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// `caddy stepup revoke` ends a user's grants on every instance within a
// second; every step-up event lands in the audit stream without secrets;
// the upstream gets a signed assertion it can verify.
func TestRevokeAuditAndAssertion(t *testing.T) {
	// Not parallel: it measures how soon a revocation holds.
	up := newUpstream(t)
	hook := newReceiver(t)
	key := strings.Repeat("assertion-key-", 3)
	// Two instances on two ports of one machine: a shared scope, as
	// instances on several machines have by sharing the port.
	cfg := prodConfig(`redis `+sharedRedis.URL()+` {
			key_prefix e2e-revoke:
		}`, hook.URL, up.URL, `scope e2e-revoke
		audit_stream e2e-revoke:audit maxlen 1000
		assertion {
			key {env.ASSERTION_KEY}
			audience shop
			ttl 30s
		}`)
	a := startCaddy(t, cfg, "ASSERTION_KEY="+key)
	b := startCaddy(t, cfg, "ASSERTION_KEY="+key)
	if err := flow(t, a, hook, "alice"); err != nil {
		t.Fatal(err)
	}
	alice := newBrowser(t, "alice", "+14155550100")
	target := a.url("/account/payment-methods")
	resp, _ := alice.do("GET", target, nil)
	loc := resolve(target, resp.Header.Get("Location"))
	_, page := alice.do("GET", loc, nil)
	alice.do("POST", loc, url.Values{"csrf": {csrfOf(t, page)}, "code": {hook.last(t).Code}})
	for _, p := range []*caddyProc{a, b} {
		if resp, _ := alice.do("GET", p.url("/account/payment-methods"), nil); resp.StatusCode != 200 {
			t.Fatalf("grant before revocation = %d", resp.StatusCode)
		}
	}
	// The upstream can verify what happened.
	tok := up.last().Header.Get("Stepup-Assertion")
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.HS256})
	if err != nil {
		t.Fatalf("assertion %q: %v", tok, err)
	}
	var claims struct {
		jwt.Claims
		ACR    string   `json:"acr"`
		AMR    []string `json:"amr"`
		Policy string   `json:"policy"`
	}
	if err := parsed.Claims([]byte(key), &claims); err != nil {
		t.Fatalf("the upstream cannot verify the assertion: %v", err)
	}
	if claims.Subject != "alice" || claims.ACR != "urn:stepup:sms" || claims.Policy != "payment-methods" || claims.Audience[0] != "shop" {
		t.Fatalf("assertion claims = %+v", claims)
	}

	time.Sleep(1100 * time.Millisecond) // grants carry whole seconds
	out := a.caddyCommand(t, "stepup", "revoke", "--config", a.config, "--adapter", "caddyfile", "--user", "alice")
	if !strings.Contains(out, "revoked every grant") {
		t.Fatalf("revoke said:\n%s", out)
	}
	start := time.Now()
	for _, p := range []*caddyProc{a, b} {
		for {
			resp, _ := alice.do("GET", p.url("/account/payment-methods"), nil)
			if resp.StatusCode == http.StatusSeeOther {
				break
			}
			if time.Since(start) > 1500*time.Millisecond {
				t.Fatalf("instance on port %d still honours the grant %v after revoke", p.port, time.Since(start))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("both instances refused the revoked grant %v after the command", time.Since(start).Round(time.Millisecond))

	// The audit stream has the events, and nothing secret.
	rc := redis.NewClient(&redis.Options{Addr: sharedRedis.Addr()})
	defer rc.Close()
	var entries []redis.XMessage
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		entries, _ = rc.XRange(context.Background(), "e2e-revoke:audit", "-", "+").Result()
		if len(entries) >= 6 {
			break
		}
	}
	kinds := map[string]int{}
	for _, e := range entries {
		kinds[fmt.Sprint(e.Values["event"])]++
		for k, v := range e.Values {
			s := fmt.Sprint(v)
			if strings.Contains(s, "4155550100") || (k != "ts" && k != "request_id" && logscan.ContainsToken(s, hook.last(t).Code)) {
				t.Fatalf("audit entry %v carries a secret in %s", e.Values, k)
			}
		}
	}
	for _, k := range []string{"challenge_created", "code_sent", "verified"} {
		if kinds[k] == 0 {
			t.Errorf("no %s event in the audit stream (got %v)", k, kinds)
		}
	}
}
