package twilio

import (
	"encoding/base64"
	"io"
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

const (
	sid   = "AC0123456789abcdef0123456789abcdef"
	token = "tok_secret_value"
)

// Twilio's answers, as documented.
const (
	created   = `{"account_sid":"AC0123456789abcdef0123456789abcdef","api_version":"2010-04-01","body":"Your code is 493817.","date_created":"Thu, 24 Aug 2023 05:01:45 +0000","direction":"outbound-api","error_code":null,"from":"+15557122661","num_segments":"1","sid":"SMaaaabbbbccccddddeeeeffff00001111","status":"queued","to":"+14155550100","uri":"/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages/SMaaaabbbbccccddddeeeeffff00001111.json"}`
	invalidTo = `{"code": 21211, "message": "The 'To' number +14155550100 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}`
	authFail  = `{"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}`
	throttled = `{"code": 20429, "message": "Too Many Requests", "more_info": "https://www.twilio.com/docs/errors/20429", "status": 429}`
	internal  = `{"code": 20500, "message": "Internal Server Error", "more_info": "https://www.twilio.com/docs/errors/20500", "status": 500}`
	regionOff = `{"code": 21408, "message": "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: +14155550100.", "more_info": "https://www.twilio.com/docs/errors/21408", "status": 400}`
)

// checkRequest asserts the wire format of a send and returns the form.
func checkRequest(t *testing.T, r *http.Request, user, pass string) url.Values {
	t.Helper()
	if r.Method != http.MethodPost {
		t.Errorf("method %s, want POST", r.Method)
	}
	if want := "/2010-04-01/Accounts/" + sid + "/Messages.json"; r.URL.Path != want {
		t.Errorf("path %q, want %q", r.URL.Path, want)
	}
	if got := r.Header.Get("Content-Type"); got != "application/x-www-form-urlencoded" {
		t.Errorf("content type %q", got)
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	if got := r.Header.Get("Authorization"); got != want {
		t.Errorf("Authorization %q, want %q", got, want)
	}
	b, _ := io.ReadAll(r.Body)
	form, err := url.ParseQuery(string(b))
	if err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	return form
}

func newSender(t *testing.T, cfg Config) *Sender {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func TestSendWireFormat(t *testing.T) {
	t.Run("auth token and from", func(t *testing.T) {
		var form url.Values
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			form = checkRequest(t, r, sid, token)
			pt.JSON(http.StatusCreated, created)(w, r)
		}))
		defer srv.Close()
		s := newSender(t, Config{Endpoint: srv.URL + "/", AccountSID: sid, AuthToken: token, From: "+15557122661"})
		if err := s.Send(t.Context(), pt.Message()); err != nil {
			t.Fatalf("Send: %v", err)
		}
		want := url.Values{
			"To":             {pt.To},
			"From":           {"+15557122661"},
			"Body":           {pt.Message().Text},
			"ValidityPeriod": {"300"},
		}
		if form.Encode() != want.Encode() {
			t.Errorf("form\n got %s\nwant %s", form.Encode(), want.Encode())
		}
	})
	t.Run("API key and messaging service", func(t *testing.T) {
		var form url.Values
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			form = checkRequest(t, r, "SK0123456789abcdef0123456789abcdef", "key-secret")
			pt.JSON(http.StatusCreated, created)(w, r)
		}))
		defer srv.Close()
		s := newSender(t, Config{Endpoint: srv.URL, AccountSID: sid, APIKey: "SK0123456789abcdef0123456789abcdef",
			APISecret: "key-secret", MessagingServiceSID: "MG0123456789abcdef0123456789abcdef"})
		msg := pt.Message()
		msg.TTL = 0
		if err := s.Send(t.Context(), msg); err != nil {
			t.Fatalf("Send: %v", err)
		}
		want := url.Values{
			"To":                  {pt.To},
			"MessagingServiceSid": {"MG0123456789abcdef0123456789abcdef"},
			"Body":                {msg.Text},
		}
		if form.Encode() != want.Encode() {
			t.Errorf("form\n got %s\nwant %s", form.Encode(), want.Encode())
		}
	})
}

func TestStatusCallback(t *testing.T) {
	const receiptURL = "https://shop.example/.stepup/receipts/twilio"
	tests := []struct {
		name     string
		cfg      Config
		user     string
		pass     string
		wantCall bool
	}{
		{"auth token", Config{AccountSID: sid, AuthToken: token, From: "+15557122661"}, sid, token, true},
		// The API key sends; the auth token only verifies callbacks.
		{"API key and auth token", Config{AccountSID: sid, AuthToken: token, APIKey: "SK0123456789abcdef0123456789abcdef",
			APISecret: "key-secret", From: "+15557122661"}, "SK0123456789abcdef0123456789abcdef", "key-secret", true},
		// Without the auth token a callback could not be verified: none
		// is asked for.
		{"API key alone", Config{AccountSID: sid, APIKey: "SK0123456789abcdef0123456789abcdef",
			APISecret: "key-secret", From: "+15557122661"}, "SK0123456789abcdef0123456789abcdef", "key-secret", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var form url.Values
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				form = checkRequest(t, r, tt.user, tt.pass)
				pt.JSON(http.StatusCreated, created)(w, r)
			}))
			defer srv.Close()
			tt.cfg.Endpoint = srv.URL
			s := newSender(t, tt.cfg)
			if s.Receipts() != tt.wantCall {
				t.Errorf("Receipts() = %v, want %v", s.Receipts(), tt.wantCall)
			}
			msg := pt.Message()
			msg.ReceiptURL = receiptURL
			id, err := s.SendWithID(t.Context(), msg)
			if err != nil || id != "SMaaaabbbbccccddddeeeeffff00001111" {
				t.Fatalf("SendWithID = %q, %v; want the sid", id, err)
			}
			got, has := form["StatusCallback"]
			if has != tt.wantCall || tt.wantCall && got[0] != receiptURL {
				t.Errorf("StatusCallback %q (present %v), want present %v", got, has, tt.wantCall)
			}
		})
	}
}

func TestValidityPeriodBounds(t *testing.T) {
	for ttl, want := range map[time.Duration]string{
		500 * time.Millisecond: "1",
		10 * time.Minute:       "600",
		4 * time.Hour:          "14400",
		10 * time.Hour:         "36000",
		24 * time.Hour:         "36000",
	} {
		var got string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got = checkRequest(t, r, sid, token).Get("ValidityPeriod")
			pt.JSON(http.StatusCreated, created)(w, r)
		}))
		s := newSender(t, Config{Endpoint: srv.URL, AccountSID: sid, AuthToken: token, From: "+15557122661"})
		msg := pt.Message()
		msg.TTL = ttl
		if err := s.Send(t.Context(), msg); err != nil {
			t.Fatalf("Send: %v", err)
		}
		srv.Close()
		if got != want {
			t.Errorf("TTL %v: ValidityPeriod %q, want %q", ttl, got, want)
		}
	}
}

func TestSendErrors(t *testing.T) {
	tests := []struct {
		name          string
		answers       []http.HandlerFunc
		wantCalls     int32
		wantOK        bool
		wantTemporary bool
		wantRecipient bool
		wantConfig    bool
		wantStatus    int
		wantCode      string
		wantText      string
	}{
		{"throttled then accepted", []http.HandlerFunc{pt.JSON(429, throttled), pt.JSON(201, created)}, 2, true, false, false, false, 0, "", ""},
		// Twilio documents only 429 as never processed: after a 5xx or a
		// 408 the message may have gone (and been billed), so it is not
		// sent again through Twilio; the chain moves on.
		{"5xx not retried", []http.HandlerFunc{pt.JSON(500, internal), pt.JSON(201, created)}, 1, false, true, false, false, 500, "20500", "may have been sent"},
		{"503 not retried", []http.HandlerFunc{pt.JSON(503, ``), pt.JSON(201, created)}, 1, false, true, false, false, 503, "", "may have been sent"},
		{"408 not retried", []http.HandlerFunc{pt.JSON(408, `{}`), pt.JSON(201, created)}, 1, false, true, false, false, 408, "", "may have been sent"},
		{"throttled throughout", []http.HandlerFunc{pt.JSON(429, throttled)}, 3, false, true, false, false, 429, "20429", "gave up after 3 attempts"},
		{"invalid number", []http.HandlerFunc{pt.JSON(400, invalidTo)}, 1, false, false, true, false, 400, "21211", "is not a valid phone number"},
		{"region not enabled", []http.HandlerFunc{pt.JSON(400, regionOff)}, 1, false, false, true, true, 400, "21408", "Geo permissions"},
		{"bad credentials", []http.HandlerFunc{pt.JSON(401, authFail)}, 1, false, false, false, true, 401, "20003", "Authenticate"},
		{"not JSON", []http.HandlerFunc{func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(403); w.Write([]byte("<html>")) }}, 1, false, false, false, false, 403, "", "Twilio refused the message"},
		{"redirect", []http.HandlerFunc{func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://127.0.0.1:1/", http.StatusFound)
		}}, 1, false, false, false, false, 302, "", "redirect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, calls := pt.Sequence(tt.answers...)
			srv := httptest.NewServer(h)
			defer srv.Close()
			s := newSender(t, Config{Endpoint: srv.URL, AccountSID: sid, AuthToken: token, From: "+15557122661", Options: sender.Options{SendTimeout: sender.Duration(5 * time.Second)}})
			err := s.Send(t.Context(), pt.Message())
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
			if se.Sender != "twilio" || se.Temporary != tt.wantTemporary || se.Recipient != tt.wantRecipient ||
				se.Config != tt.wantConfig || se.Status != tt.wantStatus || se.Code != tt.wantCode || !strings.Contains(se.Msg, tt.wantText) {
				t.Errorf("error %+v, want temporary %v, recipient %v, config %v, status %d, code %q, text %q",
					*se, tt.wantTemporary, tt.wantRecipient, tt.wantConfig, tt.wantStatus, tt.wantCode, tt.wantText)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("error %q contains the token", err)
			}
		})
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	var times []time.Time
	h, _ := pt.Sequence(
		func(w http.ResponseWriter, r *http.Request) {
			times = append(times, time.Now())
			w.Header().Set("Retry-After", "1")
			pt.JSON(429, throttled)(w, r)
		},
		func(w http.ResponseWriter, r *http.Request) {
			times = append(times, time.Now())
			pt.JSON(201, created)(w, r)
		})
	srv := httptest.NewServer(h)
	defer srv.Close()
	s := newSender(t, Config{Endpoint: srv.URL, AccountSID: sid, AuthToken: token, From: "+15557122661", Options: sender.Options{SendTimeout: sender.Duration(3 * time.Second)}})
	if err := s.Send(t.Context(), pt.Message()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if len(times) != 2 || times[1].Sub(times[0]) < time.Second {
		t.Errorf("attempts at %v: want the second one Retry-After (1s) after the first", times)
	}

	// A Retry-After beyond the deadline ends the retries at once.
	h, calls := pt.Sequence(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "60")
		pt.JSON(429, throttled)(w, r)
	})
	srv2 := httptest.NewServer(h)
	defer srv2.Close()
	s = newSender(t, Config{Endpoint: srv2.URL, AccountSID: sid, AuthToken: token, From: "+15557122661", Options: sender.Options{SendTimeout: sender.Duration(2 * time.Second)}})
	start := time.Now()
	err := s.Send(t.Context(), pt.Message())
	if se := pt.SenderError(t, err); !se.Temporary || !strings.Contains(se.Msg, "no time left") {
		t.Errorf("error %v, want a temporary error with no time left", err)
	}
	if calls.Load() != 1 || time.Since(start) > time.Second {
		t.Errorf("%d calls in %v, want 1 at once", calls.Load(), time.Since(start))
	}
}

func TestTimeout(t *testing.T) {
	srv, calls := pt.Slow(t, 5*time.Second)
	s := newSender(t, Config{Endpoint: srv.URL, AccountSID: sid, AuthToken: token, From: "+15557122661", Options: sender.Options{SendTimeout: sender.Duration(200 * time.Millisecond)}})
	start := time.Now()
	err := s.Send(t.Context(), pt.Message())
	took := time.Since(start)
	se := pt.SenderError(t, err)
	if !se.Temporary || se.Msg != "timed out" {
		t.Errorf("error %+v, want a temporary timeout", *se)
	}
	if took > 2*time.Second || calls.Load() != 1 {
		t.Errorf("took %v with %d requests, want about 200ms and one request (no retry after a timeout)", took, calls.Load())
	}
}

func TestConnectionRefusedRetried(t *testing.T) {
	s := newSender(t, Config{Endpoint: pt.ClosedURL(t), AccountSID: sid, AuthToken: token, From: "+15557122661", Options: sender.Options{SendTimeout: sender.Duration(5 * time.Second)}})
	err := s.Send(t.Context(), pt.Message())
	se := pt.SenderError(t, err)
	if !se.Temporary || !strings.Contains(se.Msg, "gave up after 3 attempts") {
		t.Errorf("error %v, want temporary after 3 attempts", err)
	}
}

func TestSendRefusesBeforeSending(t *testing.T) {
	h, calls := pt.Sequence(pt.JSON(201, created))
	srv := httptest.NewServer(h)
	defer srv.Close()
	s := newSender(t, Config{Endpoint: srv.URL, AccountSID: sid, AuthToken: token, From: "+15557122661"})
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

func TestNew(t *testing.T) {
	ok := Config{AccountSID: sid, AuthToken: token, From: "+15557122661"}
	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"valid", func(*Config) {}, ""},
		{"no account", func(c *Config) { c.AccountSID = "" }, "account_sid"},
		{"bad account", func(c *Config) { c.AccountSID = "SK123" }, "account_sid"},
		{"no credentials", func(c *Config) { c.AuthToken = "" }, "credentials missing"},
		{"key without secret", func(c *Config) { c.AuthToken, c.APIKey = "", "SK1" }, "together"},
		{"secret without key", func(c *Config) { c.APISecret = "s" }, "together"},
		{"bad key", func(c *Config) { c.AuthToken, c.APIKey, c.APISecret = "", "AC1", "s" }, "api_key"},
		{"no sender", func(c *Config) { c.From = "" }, "from or messaging_service_sid"},
		{"two senders", func(c *Config) { c.MessagingServiceSID = "MG1" }, "not both"},
		{"bad service", func(c *Config) { c.From, c.MessagingServiceSID = "", "XX1" }, "messaging_service_sid"},
		{"bad endpoint", func(c *Config) { c.Endpoint = "ftp://x" }, "endpoint"},
		{"endpoint with user", func(c *Config) { c.Endpoint = "https://user:pw@api.example" }, "credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.modify(&cfg)
			s, err := New(cfg)
			if tt.want == "" {
				if err != nil || s.Name() != "twilio" || s.Channel() != sender.SMS || s.Timeout() != httpsend.DefaultTimeout {
					t.Fatalf("New = %v, %v", s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), "pw") {
				t.Errorf("error %q contains a credential", err)
			}
		})
	}
}

func FuzzParseResponse(f *testing.F) {
	for _, seed := range []struct {
		status int
		body   string
	}{
		{201, created}, {400, invalidTo}, {401, authFail}, {429, throttled}, {500, internal},
		{400, `{"code":"x"}`}, {503, ``}, {200, `null`},
	} {
		f.Add(seed.status, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 999 {
			return
		}
		o := parseResponse("twilio", &httpsend.Response{Status: status, Header: http.Header{}, Body: body})
		success := status >= 200 && status <= 299
		if success != (o.Err == nil) {
			t.Fatalf("status %d: outcome %+v", status, o)
		}
		if o.Err != nil {
			if o.Retry && !o.Err.Temporary {
				t.Errorf("retried but not temporary: %+v", *o.Err)
			}
			if strings.Contains(o.Err.Msg, pt.Code) || strings.Contains(o.Err.Msg, "4155550100") {
				t.Errorf("message %q leaks", o.Err.Msg)
			}
		}
	})
}
