package twilio

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/internal/httpsend"
	pt "github.com/caddy-stepup/caddy-stepup/sender/internal/providertest"
)

const service = "MG0123456789abcdef0123456789abcdef"

// Twilio's answers to a message through a Messaging Service with an RCS
// sender.
const (
	rcsAccepted       = `{"account_sid":"AC0123456789abcdef0123456789abcdef","api_version":"2010-04-01","body":"Your code is 493817.","date_created":"Thu, 24 Aug 2023 05:01:45 +0000","direction":"outbound-api","error_code":null,"from":null,"messaging_service_sid":"MG0123456789abcdef0123456789abcdef","num_segments":"0","sid":"SMaaaabbbbccccddddeeeeffff00002222","status":"accepted","to":"+14155550100","uri":"/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages/SMaaaabbbbccccddddeeeeffff00002222.json"}`
	rcsNoSender       = `{"code": 21667, "message": "'FallbackFrom' requires the Messaging Service to have an RCS Sender", "more_info": "https://www.twilio.com/docs/errors/21667", "status": 400}`
	rcsInvalidService = `{"code": 21705, "message": "The Messaging Service Sid MG0123456789abcdef0123456789abcdef is invalid.", "more_info": "https://www.twilio.com/docs/errors/21705", "status": 400}`
)

func rcsConfig(endpoint string) RCSConfig {
	return RCSConfig{Endpoint: endpoint, Account: Account{AccountSID: sid, AuthToken: token}, MessagingServiceSID: service}
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
	tests := []struct {
		name   string
		modify func(*RCSConfig)
		user   string
		pass   string
		want   url.Values
	}{
		{"SMS fallback by default", func(*RCSConfig) {}, sid, token, url.Values{
			"To":                  {pt.To},
			"MessagingServiceSid": {service},
			"Body":                {pt.Message().Text},
			"ValidityPeriod":      {"300"},
		}},
		{"SMS fallback from a chosen sender", func(c *RCSConfig) { c.Fallback, c.FallbackFrom = FallbackSMS, "+15557122661" }, sid, token, url.Values{
			"To":                  {pt.To},
			"MessagingServiceSid": {service},
			"FallbackFrom":        {"+15557122661"},
			"Body":                {pt.Message().Text},
			"ValidityPeriod":      {"300"},
		}},
		{"RCS only, API key", func(c *RCSConfig) {
			c.Fallback = FallbackNone
			c.Account = Account{AccountSID: sid, APIKey: "SK0123456789abcdef0123456789abcdef", APISecret: "key-secret"}
		}, "SK0123456789abcdef0123456789abcdef", "key-secret", url.Values{
			"To":                  {"rcs:" + pt.To},
			"MessagingServiceSid": {service},
			"Body":                {pt.Message().Text},
			"ValidityPeriod":      {"300"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var form url.Values
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				form = checkRequest(t, r, tt.user, tt.pass) // the Messages.json path, form-encoded, Basic
				pt.JSON(http.StatusCreated, rcsAccepted)(w, r)
			}))
			defer srv.Close()
			cfg := rcsConfig(srv.URL)
			tt.modify(&cfg)
			if err := newRCS(t, cfg).Send(t.Context(), rcsMessage()); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if form.Encode() != tt.want.Encode() {
				t.Errorf("form\n got %s\nwant %s", form.Encode(), tt.want.Encode())
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
		{"throttled then accepted", []http.HandlerFunc{pt.JSON(429, throttled), pt.JSON(201, rcsAccepted)}, 2, true, false, false, "", ""},
		{"5xx not sent again", []http.HandlerFunc{pt.JSON(500, internal), pt.JSON(201, rcsAccepted)}, 1, false, true, false, "20500", "may have been sent"},
		{"throttled throughout", []http.HandlerFunc{pt.JSON(429, throttled)}, 3, false, true, false, "20429", "gave up after 3 attempts"},
		{"invalid number", []http.HandlerFunc{pt.JSON(400, invalidTo)}, 1, false, false, true, "21211", "not a valid phone number"},
		{"no RCS sender in the service", []http.HandlerFunc{pt.JSON(400, rcsNoSender)}, 1, false, false, false, "21667", "requires the Messaging Service to have an RCS Sender"},
		{"unknown service", []http.HandlerFunc{pt.JSON(400, rcsInvalidService)}, 1, false, false, false, "21705", "is invalid"},
		{"bad credentials", []http.HandlerFunc{pt.JSON(401, authFail)}, 1, false, false, false, "20003", "Authenticate"},
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
			if se.Sender != "twilio_rcs" || se.Temporary != tt.wantTemporary || se.Recipient != tt.wantRecipient ||
				se.Code != tt.wantCode || !strings.Contains(se.Msg, tt.wantText) {
				t.Errorf("error %+v, want temporary %v, recipient %v, code %q, text %q",
					*se, tt.wantTemporary, tt.wantRecipient, tt.wantCode, tt.wantText)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("error %q contains the token", err)
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
	h, calls := pt.Sequence(pt.JSON(201, rcsAccepted))
	srv := httptest.NewServer(h)
	defer srv.Close()
	s := newRCS(t, rcsConfig(srv.URL))
	for name, msg := range map[string]*sender.Message{
		"nil":      nil,
		"national": {To: "4155550100", Code: pt.Code, Text: "x"},
		"email":    {To: "a@b.example", Code: pt.Code, Text: "x"},
		"too long": {To: pt.To, Code: pt.Code, Text: strings.Repeat("é", 1601)},
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
		{"fallback sms", func(c *RCSConfig) { c.Fallback = "sms" }, ""},
		{"fallback none", func(c *RCSConfig) { c.Fallback = "none" }, ""},
		{"no account", func(c *RCSConfig) { c.AccountSID = "" }, "needs account_sid"},
		{"no credentials", func(c *RCSConfig) { c.AuthToken = "" }, "credentials missing"},
		{"no service", func(c *RCSConfig) { c.MessagingServiceSID = "" }, "needs messaging_service_sid"},
		{"bad service", func(c *RCSConfig) { c.MessagingServiceSID = "PN123" }, "Messaging Service SID"},
		{"unknown fallback", func(c *RCSConfig) { c.Fallback = "whatsapp" }, "want sms or none"},
		{"fallback_from without fallback", func(c *RCSConfig) { c.Fallback, c.FallbackFrom = "none", "+15557122661" }, "fallback_from"},
		{"bad endpoint", func(c *RCSConfig) { c.Endpoint = "https://u:p@api.example" }, "credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := rcsConfig("")
			tt.modify(&cfg)
			s, err := NewRCS(cfg)
			if tt.want == "" {
				if err != nil || s.Name() != "twilio_rcs" || s.Channel() != sender.RCS || s.Timeout() != httpsend.DefaultTimeout {
					t.Fatalf("NewRCS = %v, %v", s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewRCS error %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("error %q contains a credential", err)
			}
		})
	}
}
