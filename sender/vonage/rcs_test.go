package vonage

import (
	"encoding/base64"
	"encoding/json"
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

const agent = "SHOP_RCS_AGENT"

// The Messages API's answers, as documented.
const (
	messageAccepted   = `{"message_uuid":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab"}`
	invalidParams     = `{"type":"https://developer.vonage.com/api-errors/messages#1150","title":"Invalid params","detail":"The value of one or more parameters is invalid.","instance":"bf0ca0bf927b3b52e3cb03217e1a1ddf","invalid_parameters":[{"name":"from","reason":"invalid value"}]}`
	numberBarred      = `{"type":"https://developer.vonage.com/api-errors/messages#1050","title":"Number barred","detail":"The number you are trying to submit to is blacklisted and may not receive messages.","instance":"bf0ca0bf927b3b52e3cb03217e1a1ddf"}`
	messagesThrottled = `{"type":"https://developer.vonage.com/api-errors/messages#1000","title":"Throttled","detail":"You have exceeded the submission capacity allowed on this account. Please wait and retry","instance":"bf0ca0bf927b3b52e3cb03217e1a1ddf"}`
)

// checkMessage asserts the wire format of an RCS message: method, path,
// content type, credentials (auth says how to check them), and a body
// of exactly the fields of rcsRequest. It returns the raw body.
func checkMessage(t *testing.T, r *http.Request, auth func(string)) string {
	t.Helper()
	if r.Method != http.MethodPost || r.URL.Path != "/v1/messages" {
		t.Errorf("%s %s, want POST /v1/messages", r.Method, r.URL.Path)
	}
	if got := r.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("content type %q", got)
	}
	auth(r.Header.Get("Authorization"))
	b, _ := io.ReadAll(r.Body)
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var req rcsRequest
	if err := dec.Decode(&req); err != nil {
		t.Fatalf("body %s: %v", b, err)
	}
	return string(b)
}

func jwtAuth(t *testing.T) func(string) {
	return func(h string) { checkJWT(t, h) }
}

func basicAuth(t *testing.T, user, pass string) func(string) {
	return func(h string) {
		if want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass)); h != want {
			t.Errorf("Authorization %q, want %q", h, want)
		}
	}
}

func rcsConfig(endpoint string) RCSConfig {
	return RCSConfig{Endpoint: endpoint, Application: Application{ApplicationID: appID, PrivateKey: testPEM()}, From: agent}
}

func newRCS(t *testing.T, cfg RCSConfig) *RCSSender {
	t.Helper()
	s, err := NewRCS(cfg)
	if err != nil {
		t.Fatalf("NewRCS: %v", err)
	}
	return s
}

func rcsMessage() *sender.Message {
	msg := pt.Message()
	msg.Channel = sender.RCS
	return msg
}

func TestRCSWireFormat(t *testing.T) {
	text, _ := json.Marshal(pt.Message().Text)
	tests := []struct {
		name string
		cfg  func(endpoint string) RCSConfig
		msg  func(*sender.Message)
		auth func(*testing.T) func(string)
		want string
	}{
		{"application JWT", rcsConfig, func(*sender.Message) {}, jwtAuth,
			`{"message_type":"text","channel":"rcs","to":"14155550100","from":"SHOP_RCS_AGENT","text":` + string(text) + `,"ttl":300,"client_ref":"ch_7Qx"}`},
		{"API key and secret", func(endpoint string) RCSConfig {
			return RCSConfig{Endpoint: endpoint, APIKey: "abcd1234", APISecret: "s3cr3t", From: agent}
		}, func(*sender.Message) {}, func(t *testing.T) func(string) { return basicAuth(t, "abcd1234", "s3cr3t") },
			`{"message_type":"text","channel":"rcs","to":"14155550100","from":"SHOP_RCS_AGENT","text":` + string(text) + `,"ttl":300,"client_ref":"ch_7Qx"}`},
		{"short TTL raised to Vonage's minimum, no challenge", rcsConfig, func(m *sender.Message) { m.TTL, m.Challenge = time.Minute, "" }, jwtAuth,
			`{"message_type":"text","channel":"rcs","to":"14155550100","from":"SHOP_RCS_AGENT","text":` + string(text) + `,"ttl":300}`},
		{"longer TTL kept", rcsConfig, func(m *sender.Message) { m.TTL = 10 * time.Minute }, jwtAuth,
			`{"message_type":"text","channel":"rcs","to":"14155550100","from":"SHOP_RCS_AGENT","text":` + string(text) + `,"ttl":600,"client_ref":"ch_7Qx"}`},
		{"no TTL", rcsConfig, func(m *sender.Message) { m.TTL = 0 }, jwtAuth,
			`{"message_type":"text","channel":"rcs","to":"14155550100","from":"SHOP_RCS_AGENT","text":` + string(text) + `,"client_ref":"ch_7Qx"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body = checkMessage(t, r, tt.auth(t))
				pt.JSON(http.StatusAccepted, messageAccepted)(w, r)
			}))
			defer srv.Close()
			msg := rcsMessage()
			tt.msg(msg)
			if err := newRCS(t, tt.cfg(srv.URL)).Send(t.Context(), msg); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if body != tt.want {
				t.Errorf("body\n got %s\nwant %s", body, tt.want)
			}
		})
	}
}

func TestRCSErrors(t *testing.T) {
	tests := []struct {
		name          string
		answers       []http.HandlerFunc
		wantCalls     int32
		wantOK        bool
		wantTemporary bool
		wantRecipient bool
		wantCode      string
		wantText      string
	}{
		{"rate limited then accepted", []http.HandlerFunc{pt.JSON(429, rateLimited), pt.JSON(202, messageAccepted)}, 2, true, false, false, "", ""},
		{"throttled (1000) then accepted", []http.HandlerFunc{pt.JSON(422, messagesThrottled), pt.JSON(202, messageAccepted)}, 2, true, false, false, "", ""},
		{"5xx then accepted", []http.HandlerFunc{pt.JSON(503, serverError), pt.JSON(202, messageAccepted)}, 2, true, false, false, "", ""},
		{"throttled throughout", []http.HandlerFunc{pt.JSON(429, rateLimited)}, 3, false, true, false, "throttled", "gave up after 3 attempts"},
		{"invalid params", []http.HandlerFunc{pt.JSON(422, invalidParams)}, 1, false, false, false, "1150", "Vonage refused the message: Invalid params"},
		{"number barred", []http.HandlerFunc{pt.JSON(422, numberBarred)}, 1, false, false, true, "1050", "Number barred"},
		{"bad credentials", []http.HandlerFunc{pt.JSON(401, unauthorized)}, 1, false, false, false, "unauthorized", "Unauthorized"},
		{"out of credit", []http.HandlerFunc{pt.JSON(402, lowBalance)}, 1, false, false, false, "low-balance", "Low balance"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, calls := pt.Sequence(tt.answers...)
			srv := httptest.NewServer(h)
			defer srv.Close()
			cfg := rcsConfig(srv.URL)
			cfg.SendTimeout = sender.Duration(5 * time.Second)
			err := newRCS(t, cfg).Send(t.Context(), rcsMessage())
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
			if se.Sender != "vonage_rcs" || se.Temporary != tt.wantTemporary || se.Recipient != tt.wantRecipient ||
				se.Code != tt.wantCode || !strings.Contains(se.Msg, tt.wantText) {
				t.Errorf("error %+v, want temporary %v, recipient %v, code %q, text %q",
					*se, tt.wantTemporary, tt.wantRecipient, tt.wantCode, tt.wantText)
			}
		})
	}
}

func TestRCSTimeout(t *testing.T) {
	srv, calls := pt.Slow(t, 5*time.Second)
	cfg := rcsConfig(srv.URL)
	cfg.SendTimeout = sender.Duration(200 * time.Millisecond)
	start := time.Now()
	err := newRCS(t, cfg).Send(t.Context(), rcsMessage())
	if se := pt.SenderError(t, err); !se.Temporary || se.Msg != "timed out" {
		t.Errorf("error %+v, want a temporary timeout", *se)
	}
	if took := time.Since(start); took > 2*time.Second || calls.Load() != 1 {
		t.Errorf("took %v with %d requests, want about 200ms and one request", took, calls.Load())
	}
}

func TestRCSRefusesBeforeSending(t *testing.T) {
	h, calls := pt.Sequence(pt.JSON(202, messageAccepted))
	srv := httptest.NewServer(h)
	defer srv.Close()
	s := newRCS(t, rcsConfig(srv.URL))
	for name, msg := range map[string]*sender.Message{
		"nil":      nil,
		"national": {To: "4155550100", Code: pt.Code, Text: "x"},
		"email":    {To: "a@b.example", Code: pt.Code, Text: "x"},
		"too long": {To: pt.To, Code: pt.Code, Text: strings.Repeat("é", 3073)},
	} {
		if err := s.Send(t.Context(), msg); err == nil {
			t.Errorf("%s: Send succeeded", name)
		}
	}
	if calls.Load() != 0 {
		t.Errorf("%d requests made, want none", calls.Load())
	}
}

func TestNewRCS(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*RCSConfig)
		want   string
	}{
		{"valid", func(*RCSConfig) {}, ""},
		{"basic", func(c *RCSConfig) { c.Application, c.APIKey, c.APISecret = Application{}, "k", "s" }, ""},
		{"no credentials", func(c *RCSConfig) { c.Application = Application{} }, "credentials missing"},
		{"both credentials", func(c *RCSConfig) { c.APIKey, c.APISecret = "k", "s" }, "not both"},
		{"key without secret", func(c *RCSConfig) { c.Application, c.APIKey = Application{}, "k" }, "api_key and api_secret"},
		{"application without key", func(c *RCSConfig) { c.PrivateKey = "" }, "private key"},
		{"key without application", func(c *RCSConfig) { c.ApplicationID = "" }, "needs application_id"},
		{"no agent", func(c *RCSConfig) { c.From = "" }, "needs from"},
		{"bad agent", func(c *RCSConfig) { c.From = "Shop agent" }, "RCS agent ID"},
		{"bad timeout", func(c *RCSConfig) { c.SendTimeout = 1 }, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := rcsConfig("")
			tt.modify(&cfg)
			s, err := NewRCS(cfg)
			if tt.want == "" {
				if err != nil || s.Name() != "vonage_rcs" || s.Channel() != sender.RCS || s.Timeout() != httpsend.DefaultTimeout {
					t.Fatalf("NewRCS = %v, %v", s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewRCS error %v, want %q", err, tt.want)
			}
		})
	}
}
