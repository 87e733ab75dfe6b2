package caddymodule

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// providerStub is an httptest server standing in for a provider: it
// records request bodies and answers with status and body.
type providerStub struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
}

func newStub(t *testing.T, status int, body string) *providerStub {
	t.Helper()
	p := &providerStub{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		p.bodies = append(p.bodies, string(b))
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *providerStub) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.bodies...)
}

// sendTestEnv is a Caddyfile whose senders point at stubs.
type sendTestEnv struct {
	twilio, msg91, whatsapp, hook *providerStub
	caddyfile                     string
}

func newSendTestEnv(t *testing.T, whatsappStatus int, whatsappBody string) *sendTestEnv {
	t.Helper()
	t.Setenv("STEPUP_SENDTEST_TOKEN", "tok_env")
	e := &sendTestEnv{
		twilio:   newStub(t, 201, `{"sid":"SM1","status":"queued"}`),
		msg91:    newStub(t, 200, `{"type":"success","message":"3763"}`),
		whatsapp: newStub(t, whatsappStatus, whatsappBody),
		hook:     newStub(t, 204, ``),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	e.caddyfile = `{
	admin off
}
:0 {
	stepup {
		identity header {
			user X-Remote-User
			phone X-Remote-Phone
		}
		sender whatsapp {
			endpoint ` + e.whatsapp.URL + `
			phone_number_id 106540352242922
			access_token {env.STEPUP_SENDTEST_TOKEN}
			template verification_code
		}
		sender msg91 {
			endpoint ` + e.msg91.URL + `
			auth_key {env.STEPUP_SENDTEST_TOKEN}
			template_id 64f0c0ffee
			countries IN
		}
		sender twilio {
			endpoint ` + e.twilio.URL + `
			account_sid AC1
			auth_token {env.STEPUP_SENDTEST_TOKEN}
			from +15557122661
		}
		sender webhook ` + e.hook.URL + `
		sender email {
			host 127.0.0.1
			port ` + strconv.Itoa(closedPort) + `
			from no-reply@shop.example
			timeout 1s
		}
		send_timeout 5s
	}
	respond "shop"
}
`
	return e
}

func (e *sendTestEnv) adapt(t *testing.T) []byte {
	t.Helper()
	cfg, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(e.caddyfile), nil)
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	for _, w := range warnings {
		t.Logf("adapt warning: %s", w.Message)
	}
	return cfg
}

const whatsappSent = `{"messaging_product":"whatsapp","contacts":[{"input":"919876543210","wa_id":"919876543210"}],"messages":[{"id":"wamid.X"}]}`

// lineOf returns the output line about a sender.
func lineOf(out, name string) string {
	for l := range strings.SplitSeq(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == name {
			return l
		}
	}
	return ""
}

func TestSendTestEachSender(t *testing.T) {
	e := newSendTestEnv(t, 200, whatsappSent)
	var out bytes.Buffer
	failed, err := sendTest(t.Context(), e.adapt(t), sendTestOptions{To: "+919876543210"}, &out)
	if err != nil {
		t.Fatalf("sendTest: %v", err)
	}
	text := out.String()
	t.Logf("output:\n%s", text)
	if failed != 0 {
		t.Errorf("failed = %d, want 0", failed)
	}
	if !strings.Contains(text, "test message to +91******3210") || strings.Contains(text, "9876543210") {
		t.Errorf("output does not name the masked destination only:\n%s", text)
	}
	for name, want := range map[string]string{
		"whatsapp": "ok (",
		"msg91":    "ok (",
		"twilio":   "ok (",
		"webhook":  "ok (",
		"email":    "skipped: an email sender, and no e-mail address is known",
	} {
		if l := lineOf(text, name); !strings.Contains(l, want) {
			t.Errorf("line for %s is %q, want %q", name, l, want)
		}
	}
	// The providers got a test message, and the templates the fixed
	// non-secret code.
	if r := e.twilio.requests(); len(r) != 1 || !strings.Contains(r[0], "caddy-stepup+test+message+sent+through+twilio") || !strings.Contains(r[0], "To=%2B919876543210") {
		t.Errorf("twilio got %v", r)
	}
	if r := e.msg91.requests(); len(r) != 1 || !strings.Contains(r[0], `"mobiles":"919876543210","otp":"000000"`) {
		t.Errorf("msg91 got %v", r)
	}
	if r := e.whatsapp.requests(); len(r) != 1 || strings.Count(r[0], `"text":"000000"`) != 2 {
		t.Errorf("whatsapp got %v", r)
	}
	if r := e.hook.requests(); len(r) != 1 || !strings.Contains(r[0], `"code":"000000"`) || !strings.Contains(r[0], `"policy":"send-test"`) {
		t.Errorf("webhook got %v", r)
	}
}

func TestSendTestRoutingAndFailures(t *testing.T) {
	// A template that does not exist fails at once. (A number without
	// WhatsApp does not: the Cloud API takes the message and reports
	// 131026 in its status webhook, so send-test says ok.)
	e := newSendTestEnv(t, 404, `{"error":{"message":"(#132001) Template name does not exist in the translation","type":"OAuthException","code":132001}}`)
	var out bytes.Buffer
	failed, err := sendTest(t.Context(), e.adapt(t), sendTestOptions{To: "+14155550100"}, &out)
	if err != nil {
		t.Fatalf("sendTest: %v", err)
	}
	text := out.String()
	if failed != 1 {
		t.Errorf("failed = %d, want 1 (whatsapp)", failed)
	}
	if l := lineOf(text, "whatsapp"); !strings.Contains(l, "error: whatsapp: WhatsApp refused the message") || !strings.Contains(l, "code 132001") ||
		!strings.Contains(l, "(configuration)") {
		t.Errorf("whatsapp line %q", l)
	}
	if l := lineOf(text, "msg91"); !strings.Contains(l, "skipped: serves IN only") {
		t.Errorf("msg91 line %q", l)
	}
	if len(e.msg91.requests()) != 0 {
		t.Error("msg91 was sent a US number")
	}
	if l := lineOf(text, "twilio"); !strings.Contains(l, "ok") {
		t.Errorf("twilio line %q", l)
	}
}

func TestSendTestEmailDestination(t *testing.T) {
	e := newSendTestEnv(t, 200, whatsappSent)
	var out bytes.Buffer
	failed, err := sendTest(t.Context(), e.adapt(t), sendTestOptions{To: "user@example.com"}, &out)
	if err != nil {
		t.Fatalf("sendTest: %v", err)
	}
	text := out.String()
	for _, name := range []string{"whatsapp", "msg91", "twilio"} {
		if l := lineOf(text, name); !strings.Contains(l, "skipped: a ") || !strings.Contains(l, "destination is an e-mail address") {
			t.Errorf("line for %s: %q", name, l)
		}
	}
	// The SMTP port is closed: the email sender is tried, and fails.
	if l := lineOf(text, "email"); !strings.Contains(l, "error: email:") || failed != 1 {
		t.Errorf("email line %q, failed %d", l, failed)
	}
	if !strings.Contains(text, "test message to u***@example.com") {
		t.Errorf("output:\n%s", text)
	}
}

func TestSendTestSelectAndChain(t *testing.T) {
	t.Run("one sender", func(t *testing.T) {
		e := newSendTestEnv(t, 200, whatsappSent)
		var out bytes.Buffer
		failed, err := sendTest(t.Context(), e.adapt(t), sendTestOptions{To: "+919876543210", Sender: "twilio"}, &out)
		if err != nil || failed != 0 {
			t.Fatalf("sendTest = %d, %v", failed, err)
		}
		if lineOf(out.String(), "twilio") == "" || lineOf(out.String(), "msg91") != "" || len(e.msg91.requests()) != 0 || len(e.whatsapp.requests()) != 0 {
			t.Errorf("output:\n%s", out.String())
		}
	})
	t.Run("unknown sender", func(t *testing.T) {
		e := newSendTestEnv(t, 200, whatsappSent)
		_, err := sendTest(t.Context(), e.adapt(t), sendTestOptions{To: "+919876543210", Sender: "sms"}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), `no sender named "sms" (senders: whatsapp, msg91, twilio, webhook, email)`) {
			t.Errorf("error %v", err)
		}
	})
	t.Run("chain fails over", func(t *testing.T) {
		e := newSendTestEnv(t, 400, `{"error":{"message":"(#131056) pair rate limit hit","type":"OAuthException","code":131056}}`)
		var out bytes.Buffer
		failed, err := sendTest(t.Context(), e.adapt(t), sendTestOptions{To: "+919876543210", Chain: true}, &out)
		if err != nil || failed != 0 {
			t.Fatalf("sendTest = %d, %v", failed, err)
		}
		if l := lineOf(out.String(), "chain"); !strings.Contains(l, "ok: delivered by msg91") {
			t.Errorf("chain line %q", l)
		}
		if len(e.whatsapp.requests()) == 0 || len(e.msg91.requests()) != 1 || len(e.twilio.requests()) != 0 {
			t.Errorf("requests: whatsapp %d, msg91 %d, twilio %d", len(e.whatsapp.requests()), len(e.msg91.requests()), len(e.twilio.requests()))
		}
	})
	t.Run("chain fails", func(t *testing.T) {
		e := newSendTestEnv(t, 200, whatsappSent)
		var out bytes.Buffer
		failed, err := sendTest(t.Context(), e.adapt(t), sendTestOptions{To: "user@example.com", Chain: true, Sender: "email"}, &out)
		if err != nil || failed != 1 {
			t.Fatalf("sendTest = %d, %v", failed, err)
		}
		if !strings.Contains(out.String(), "chain  error: sender: all senders failed") {
			t.Errorf("output:\n%s", out.String())
		}
	})
}

// India DLT: a free text through a DLT-bound sender is accepted by the
// provider and dropped by the operators. send-test sends such a sender
// the configured code message, with the placeholder code, and says so;
// the other senders still get the free test text.
func TestSendTestDLTTemplate(t *testing.T) {
	t.Setenv("STEPUP_SENDTEST_TOKEN", "tok_env")
	vonage := newStub(t, 200, `{"message-count":"1","messages":[{"to":"919876543210","message-id":"0A0000000123ABCD1","status":"0"}]}`)
	twilio := newStub(t, 201, `{"sid":"SM1","status":"queued"}`)
	caddyfile := `{
	admin off
}
:0 {
	stepup {
		identity header {
			user X-Remote-User
			phone X-Remote-Phone
		}
		domain shop.example
		message "{code} is your Demo Shop verification code. It expires in 5 minutes. Do not share it."
		sender vonage {
			endpoint ` + vonage.URL + `
			api_key abcd1234
			api_secret {env.STEPUP_SENDTEST_TOKEN}
			from ACMEIN
			entity_id 1201159100000000001
			content_id 1207161700000000002
			countries IN
		}
		sender twilio {
			endpoint ` + twilio.URL + `
			account_sid AC1
			auth_token {env.STEPUP_SENDTEST_TOKEN}
			from +15557122661
		}
	}
	respond "shop"
}
`
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	want := "000000 is your Demo Shop verification code. It expires in 5 minutes. Do not share it.\n\n@shop.example #000000"
	for _, chain := range []bool{false, true} {
		var out bytes.Buffer
		failed, err := sendTest(t.Context(), cfg, sendTestOptions{To: "+919876543210", Chain: chain}, &out)
		if err != nil || failed != 0 {
			t.Fatalf("chain %v: sendTest = %d, %v\n%s", chain, failed, err, out.String())
		}
		name := "vonage"
		if chain {
			name = "chain"
		}
		if l := lineOf(out.String(), name); !strings.Contains(l, "sent the configured code message with code 000000") {
			t.Errorf("chain %v: line %q does not say the template was sent", chain, l)
		}
	}
	r := vonage.requests()
	if len(r) != 2 {
		t.Fatalf("vonage got %d requests, want 2", len(r))
	}
	for _, body := range r {
		form, _ := url.ParseQuery(body)
		if form.Get("text") != want || form.Get("entity-id") != "1201159100000000001" {
			t.Errorf("vonage text %q, want the configured message %q", form.Get("text"), want)
		}
	}
	if r := twilio.requests(); len(r) != 1 || !strings.Contains(r[0], "caddy-stepup+test+message") {
		t.Errorf("twilio got %v, want the free test text", r)
	}
}

func TestSendTestProvisioningErrors(t *testing.T) {
	e := newSendTestEnv(t, 200, whatsappSent)
	e.caddyfile = strings.Replace(e.caddyfile, "auth_token {env.STEPUP_SENDTEST_TOKEN}", "auth_token {env.STEPUP_SENDTEST_UNSET}", 1)
	var out bytes.Buffer
	failed, err := sendTest(t.Context(), e.adapt(t), sendTestOptions{To: "+919876543210"}, &out)
	if err != nil {
		t.Fatalf("sendTest: %v", err)
	}
	if failed != 1 {
		t.Errorf("failed = %d, want 1", failed)
	}
	if l := lineOf(out.String(), "twilio"); !strings.Contains(l, "error:") || !strings.Contains(l, "credentials missing") {
		t.Errorf("twilio line %q", l)
	}
	if l := lineOf(out.String(), "msg91"); !strings.Contains(l, "ok") {
		t.Errorf("msg91 line %q: the other senders must still be tested", l)
	}
}

func TestSendTestRefuses(t *testing.T) {
	e := newSendTestEnv(t, 200, whatsappSent)
	cfg := e.adapt(t)
	for name, tt := range map[string]struct {
		cfg  []byte
		opts sendTestOptions
		want string
	}{
		"no handler":   {[]byte(`{"apps":{"http":{"servers":{}}}}`), sendTestOptions{To: "+919876543210"}, "no stepup handler"},
		"not JSON":     {[]byte(`stepup {`), sendTestOptions{To: "+919876543210"}, "reading the config"},
		"no --to":      {cfg, sendTestOptions{}, "--to is required"},
		"bad number":   {cfg, sendTestOptions{To: "+91 12"}, "--to: sender: invalid phone number"},
		"national":     {cfg, sendTestOptions{To: "9876543210"}, "not in international form"},
		"no senders":   {[]byte(`{"handler":"stepup"}`), sendTestOptions{To: "+919876543210"}, "have no senders"},
		"nested found": {[]byte(`{"a":[{"b":{"handler":"stepup","senders":[{"sender":"log"}]}}]}`), sendTestOptions{To: "+919876543210", Sender: "x"}, `no sender named "x" (senders: log)`},
	} {
		_, err := sendTest(t.Context(), tt.cfg, tt.opts, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", name, err, tt.want)
		}
	}
}

func TestFindHandlers(t *testing.T) {
	found, err := findHandlers([]byte(`{"apps":{"http":{"servers":{"srv0":{"routes":[
		{"handle":[{"handler":"subroute","routes":[{"handle":[{"handler":"stepup","senders":[{"sender":"log"}]}]}]}]},
		{"handle":[{"handler":"stepup","code_length":8},{"handler":"static_response"}]}
	]}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range found {
		paths = append(paths, f.path)
	}
	want := "apps.http.servers.srv0.routes[0].handle[0].routes[0].handle[0] apps.http.servers.srv0.routes[1].handle[0]"
	if strings.Join(paths, " ") != want {
		t.Errorf("paths %v, want %s", paths, want)
	}
	if !strings.Contains(string(found[1].raw), `"code_length":8`) {
		t.Errorf("raw %s", found[1].raw)
	}
}

// The registered command parses its flags, adapts the Caddyfile and
// prints on the command's output.
func TestSendTestCommand(t *testing.T) {
	e := newSendTestEnv(t, 200, whatsappSent)
	path := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(path, []byte(e.caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	cmdDef, ok := caddycmd.Commands()["stepup"]
	if !ok {
		t.Fatal("command stepup not registered")
	}
	run := func(args ...string) (string, error) {
		root := &cobra.Command{Use: "stepup"}
		cmdDef.CobraFunc(root)
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(io.Discard)
		root.SetArgs(args)
		err := root.Execute()
		return out.String(), err
	}
	text, err := run("send-test", "--config", path, "--adapter", "caddyfile", "--to", "+919876543210", "--sender", "msg91")
	if err != nil || !strings.Contains(lineOf(text, "msg91"), "ok (") {
		t.Errorf("send-test = %q, %v", text, err)
	}
	if _, err := run("send-test", "--config", path, "--adapter", "caddyfile", "--to", "user@example.com", "--sender", "email"); err == nil {
		t.Error("a failed send did not fail the command")
	}
	if _, err := run("send-test", "--to", "+919876543210"); err == nil || !strings.Contains(err.Error(), "--config") {
		t.Errorf("without --config: %v", err)
	}
}

func FuzzFindHandlers(f *testing.F) {
	f.Add([]byte(`{"apps":{"http":{"servers":{"srv0":{"routes":[{"handle":[{"handler":"stepup","senders":[{"sender":"log"}]}]}]}}}}`))
	f.Add([]byte(`[{"handler":"stepup"},{"handler":["stepup"]},{"handler":1}]`))
	f.Add([]byte(`{"handler":"stepup","x":{"handler":"stepup"}}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, cfg []byte) {
		found, err := findHandlers(cfg)
		if err != nil {
			return
		}
		for _, h := range found {
			var v struct {
				Handler string `json:"handler"`
			}
			if err := json.Unmarshal(h.raw, &v); err != nil || v.Handler != "stepup" {
				t.Fatalf("found %s at %s: not a stepup handler", h.raw, h.path)
			}
		}
	})
}
