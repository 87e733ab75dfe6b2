package whatsapp

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/internal/httpsend"
	pt "github.com/caddy-stepup/caddy-stepup/sender/internal/providertest"
)

// The Cloud API's answers.
const (
	sent         = `{"messaging_product":"whatsapp","contacts":[{"input":"14155550100","wa_id":"14155550100"}],"messages":[{"id":"wamid.HBgLMTQxNTU1NTAxMDAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"}]}`
	rateLimit    = `{"error":{"message":"(#130429) Rate limit hit","type":"OAuthException","code":130429,"error_data":{"messaging_product":"whatsapp","details":"Cloud API message throughput has been reached."},"error_subcode":2494055,"fbtrace_id":"Az8or2yhqkZfEZ-_4Qn_Bam"}}`
	pairLimit    = `{"error":{"message":"(#131056) (Business Account, Consumer Account) pair rate limit hit","type":"OAuthException","code":131056,"error_data":{"messaging_product":"whatsapp","details":"Too many messages sent from phone number 15557122661 to phone number 14155550100 in a short period of time."},"fbtrace_id":"A1b2C3"}}`
	spamLimit    = `{"error":{"message":"(#131048) Spam rate limit hit","type":"OAuthException","code":131048,"fbtrace_id":"A1b2C3"}}`
	undeliver    = `{"error":{"message":"(#131026) Message Undeliverable.","type":"OAuthException","code":131026,"fbtrace_id":"A1b2C3"}}`
	badToken     = `{"error":{"message":"Error validating access token: Session has expired on Friday, 02-Aug-24 10:00:00 PDT.","type":"OAuthException","code":190,"error_subcode":463,"fbtrace_id":"A1b2C3"}}`
	appLimit     = `{"error":{"message":"(#4) Application request limit reached","type":"OAuthException","is_transient":true,"code":4,"fbtrace_id":"A1b2C3"}}`
	wabaLimit    = `{"error":{"message":"(#80007) Rate limit issues","type":"OAuthException","code":80007,"error_data":{"messaging_product":"whatsapp","details":"The WhatsApp Business Account has reached its rate limit."},"fbtrace_id":"A1b2C3"}}`
	noTemplate   = `{"error":{"message":"(#132001) Template name does not exist in the translation","type":"OAuthException","code":132001,"error_data":{"messaging_product":"whatsapp","details":"template name (verification_code) does not exist in en_US"},"fbtrace_id":"A1b2C3"}}`
	wantTemplate = `{"messaging_product":"whatsapp","recipient_type":"individual","to":"14155550100","type":"template","template":{"name":"verification_code","language":{"code":"en_US"},"components":[{"type":"body","parameters":[{"type":"text","text":"493817"}]},{"type":"button","sub_type":"url","index":"0","parameters":[{"type":"text","text":"493817"}]}]}}`
)

func newSender(t *testing.T, cfg Config) *Sender {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func config(endpoint string) Config {
	return Config{Endpoint: endpoint, PhoneNumberID: "106540352242922", AccessToken: "EAAGtoken", Template: "verification_code", Options: sender.Options{SendTimeout: sender.Duration(5 * time.Second)}}
}

func TestSendWireFormat(t *testing.T) {
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/"+DefaultVersion+"/106540352242922/messages" {
			t.Errorf("request %s %s, want POST /%s/106540352242922/messages", r.Method, r.URL.Path, DefaultVersion)
		}
		if got := r.Header.Get("Authorization"); got != "Bearer EAAGtoken" {
			t.Errorf("Authorization %q", got)
		}
		if got := r.Header.Get("Content-Type"); got != "application/json" {
			t.Errorf("content type %q", got)
		}
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		pt.JSON(http.StatusOK, sent)(w, r)
	}))
	defer srv.Close()
	s := newSender(t, config(srv.URL))
	id, err := s.SendWithID(t.Context(), pt.Message())
	if err != nil || id != "wamid.HBgLMTQxNTU1NTAxMDAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA" {
		t.Fatalf("SendWithID = %q, %v; want the wamid", id, err)
	}
	if body != wantTemplate {
		t.Errorf("body\n got %s\nwant %s", body, wantTemplate)
	}

	// Version and language are configurable.
	srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/v24.0/106540352242922/messages" || !strings.Contains(string(b), `"language":{"code":"hi"}`) {
			t.Errorf("request %s with %s", r.URL.Path, b)
		}
		pt.JSON(http.StatusOK, sent)(w, r)
	}))
	defer srv2.Close()
	cfg := config(srv2.URL)
	cfg.Version, cfg.Language = "v24.0", "hi"
	if err := newSender(t, cfg).Send(t.Context(), pt.Message()); err != nil {
		t.Fatalf("Send: %v", err)
	}
}

func TestSendAnswers(t *testing.T) {
	tests := []struct {
		name          string
		answers       []http.HandlerFunc
		wantCalls     int32
		wantOK        bool
		wantTemporary bool
		wantRecipient bool
		wantCode      string
		wantText      string
		wantConfig    bool
	}{
		{"sent", []http.HandlerFunc{pt.JSON(200, sent)}, 1, true, false, false, "", "", false},
		{"rate limit then sent", []http.HandlerFunc{pt.JSON(400, rateLimit), pt.JSON(200, sent)}, 2, true, false, false, "", "", false},
		{"rate limit throughout", []http.HandlerFunc{pt.JSON(400, rateLimit)}, 3, false, true, false, "130429", "throughput has been reached", false},
		// 131056: about one message every few seconds to one user; a
		// retry within the send would hit it again. It concerns this
		// recipient, so no circuit opens for everyone.
		{"pair limit not retried", []http.HandlerFunc{pt.JSON(400, pairLimit), pt.JSON(200, sent)}, 1, false, true, true, "131056", "limiting messages to this recipient", false},
		// Limits that outlast a send: temporary (the chain moves on), not retried.
		{"spam limit", []http.HandlerFunc{pt.JSON(400, spamLimit)}, 1, false, true, false, "131048", "Spam rate limit hit", false},
		{"app call limit", []http.HandlerFunc{pt.JSON(400, appLimit)}, 1, false, true, false, "4", "Application request limit", false},
		{"account rate limit", []http.HandlerFunc{pt.JSON(400, wabaLimit)}, 1, false, true, false, "80007", "rate limit", false},
		// Rare at send time: the Cloud API usually takes the message
		// (200) and reports 131026 in the status webhook (see
		// TestUndeliverableComesInTheWebhook).
		{"undeliverable at once", []http.HandlerFunc{pt.JSON(400, undeliver)}, 1, false, false, true, "131026", "Message Undeliverable", false},
		{"expired token", []http.HandlerFunc{pt.JSON(401, badToken)}, 1, false, false, false, "190", "Error validating access token", true},
		{"no template", []http.HandlerFunc{pt.JSON(404, noTemplate)}, 1, false, false, false, "132001", "does not exist", true},
		{"HTTP 500 without body", []http.HandlerFunc{pt.JSON(500, ``), pt.JSON(200, sent)}, 2, true, false, false, "", "", false},
		{"HTTP 403 not JSON", []http.HandlerFunc{pt.JSON(403, `<html>`)}, 1, false, false, false, "", "WhatsApp refused", false},
		{"200 without id", []http.HandlerFunc{pt.JSON(200, `{"messages":[]}`)}, 1, false, true, false, "", "without a message id", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, calls := pt.Sequence(tt.answers...)
			srv := httptest.NewServer(h)
			defer srv.Close()
			err := newSender(t, config(srv.URL)).Send(t.Context(), pt.Message())
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("%d requests, want %d", got, tt.wantCalls)
			}
			if tt.wantOK {
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				return
			}
			se := pt.SenderError(t, err)
			pt.AssertClean(t, err)
			if strings.Contains(err.Error(), "15557122661") {
				t.Errorf("error %q contains the business number", err)
			}
			if se.Temporary != tt.wantTemporary || se.Recipient != tt.wantRecipient || se.Config != tt.wantConfig ||
				se.Code != tt.wantCode || !strings.Contains(se.Msg, tt.wantText) {
				t.Errorf("error %+v, want temporary %v, recipient %v, config %v, code %q, text %q",
					*se, tt.wantTemporary, tt.wantRecipient, tt.wantConfig, tt.wantCode, tt.wantText)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	srv, _ := pt.Slow(t, 5*time.Second)
	cfg := config(srv.URL)
	cfg.SendTimeout = sender.Duration(200 * time.Millisecond)
	start := time.Now()
	se := pt.SenderError(t, newSender(t, cfg).Send(t.Context(), pt.Message()))
	if !se.Temporary || time.Since(start) > 2*time.Second {
		t.Errorf("error %+v after %v, want a temporary timeout after about 200ms", *se, time.Since(start))
	}
}

func TestSendRefusesLongCode(t *testing.T) {
	h, calls := pt.Sequence(pt.JSON(200, sent))
	srv := httptest.NewServer(h)
	defer srv.Close()
	msg := pt.Message()
	msg.Code = strings.Repeat("1", 16)
	if err := newSender(t, config(srv.URL)).Send(t.Context(), msg); err == nil || calls.Load() != 0 {
		t.Errorf("Send = %v with %d requests, want an error and none", err, calls.Load())
	}
}

func TestNew(t *testing.T) {
	tests := map[string]func(*Config){
		"no phone number id":  func(c *Config) { c.PhoneNumberID = "" },
		"bad phone number id": func(c *Config) { c.PhoneNumberID = "../x" },
		"no token":            func(c *Config) { c.AccessToken = "" },
		"no template":         func(c *Config) { c.Template = "" },
		"bad template":        func(c *Config) { c.Template = "Verify Code" },
		"bad version":         func(c *Config) { c.Version = "21" },
		"app secret alone":    func(c *Config) { c.AppSecret = "s" },
		"verify token alone":  func(c *Config) { c.VerifyToken = "v" },
		"bad language":        func(c *Config) { c.Language = "english" },
	}
	for name, modify := range tests {
		cfg := config("")
		modify(&cfg)
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		} else if strings.Contains(err.Error(), "EAAGtoken") {
			t.Errorf("%s: error %q contains the token", name, err)
		}
	}
	s := newSender(t, config(""))
	if s.Name() != "whatsapp" || s.Channel() != sender.WhatsApp || !strings.HasPrefix(s.url, DefaultEndpoint+"/v26.0/") || s.Receipts() {
		t.Errorf("sender %+v", s)
	}
}

func FuzzParseResponse(f *testing.F) {
	for _, b := range []string{sent, rateLimit, pairLimit, spamLimit, appLimit, wabaLimit, undeliver, badToken, noTemplate, `{}`, `{"error":{"code":"x"}}`} {
		f.Add(200, []byte(b))
		f.Add(400, []byte(b))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 999 {
			return
		}
		o := parseResponse("whatsapp", &httpsend.Response{Status: status, Header: http.Header{}, Body: body})
		if o.Err == nil {
			if status < 200 || status > 299 {
				t.Fatalf("status %d accepted", status)
			}
			return
		}
		if o.Retry && !o.Err.Temporary {
			t.Errorf("retried but not temporary: %+v", *o.Err)
		}
		if strings.Contains(o.Err.Msg, pt.Code) || strings.Contains(o.Err.Msg, "4155550100") {
			t.Errorf("message %q leaks", o.Err.Msg)
		}
	})
}
