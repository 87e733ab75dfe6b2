package vonage

import (
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

// Vonage's answers, as documented: always HTTP 200.
const (
	accepted   = `{"message-count":"1","messages":[{"to":"14155550100","message-id":"0A0000000123ABCD1","status":"0","remaining-balance":"3.14159265","message-price":"0.03330000","network":"12345","client-ref":"ch_7Qx","account-ref":"customer1234"}]}`
	twoParts   = `{"message-count":"2","messages":[{"to":"14155550100","message-id":"0A0000000123ABCD1","status":"0"},{"to":"14155550100","message-id":"0A0000000123ABCD2","status":"0"}]}`
	throttled  = `{"message-count":"1","messages":[{"status":"1","error-text":"Throughput Rate Exceeded - please wait [ 1000 ] and retry"}]}`
	missingTo  = `{"message-count":"1","messages":[{"status":"2","error-text":"Missing to param"}]}`
	badCreds   = `{"message-count":"1","messages":[{"status":"4","error-text":"Bad Credentials"}]}`
	noCredit   = `{"message-count":"1","messages":[{"status":"9","error-text":"Quota Exceeded - rejected"}]}`
	badSender  = `{"message-count":"1","messages":[{"status":"15","error-text":"Illegal Sender Address - rejected"}]}`
	barred     = `{"message-count":"1","messages":[{"status":"7","error-text":"Number barred. 14155550100"}]}`
	halfSent   = `{"message-count":"2","messages":[{"to":"14155550100","message-id":"0A0000000123ABCD1","status":"0"},{"status":"1","error-text":"Throughput Rate Exceeded"}]}`
	internalEr = `{"message-count":"1","messages":[{"status":"5","error-text":"Internal Error"}]}`
	badSig     = `{"message-count":"1","messages":[{"status":"14","error-text":"Invalid Signature"}]}`
)

func newSender(t *testing.T, cfg Config) *Sender {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// capture answers with body and records the form of each request after
// checking the method, path and content type.
func capture(t *testing.T, forms *[]url.Values, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/sms/json" {
			t.Errorf("request %s %s, want POST /sms/json", r.Method, r.URL.Path)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
			t.Errorf("content type %q", ct)
		}
		b, _ := io.ReadAll(r.Body)
		form, err := url.ParseQuery(string(b))
		if err != nil {
			t.Errorf("body %q: %v", b, err)
		}
		*forms = append(*forms, form)
		pt.JSON(http.StatusOK, body)(w, r)
	}
}

func TestSendWireFormat(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		text string
		want url.Values
	}{
		{
			"GSM-7 text",
			Config{APIKey: "abcd1234", APISecret: "s3cr3t", From: "ACME"},
			"Your code is 493817.\n\n@shop.example #493817",
			url.Values{"api_key": {"abcd1234"}, "api_secret": {"s3cr3t"}, "from": {"ACME"}, "to": {"14155550100"},
				"text": {"Your code is 493817.\n\n@shop.example #493817"}, "type": {"text"}, "ttl": {"300000"}, "client-ref": {pt.Challenge}},
		},
		{
			"unicode and India DLT",
			Config{APIKey: "abcd1234", APISecret: "s3cr3t", From: "ACMEIN", EntityID: "1201159100000000001", ContentID: "1207161700000000002"},
			"आपका कोड 493817 है",
			url.Values{"api_key": {"abcd1234"}, "api_secret": {"s3cr3t"}, "from": {"ACMEIN"}, "to": {"14155550100"},
				"text": {"आपका कोड 493817 है"}, "type": {"unicode"}, "ttl": {"300000"}, "client-ref": {pt.Challenge},
				"entity-id": {"1201159100000000001"}, "content-id": {"1207161700000000002"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var forms []url.Values
			srv := httptest.NewServer(capture(t, &forms, accepted))
			defer srv.Close()
			tt.cfg.Endpoint = srv.URL
			s := newSender(t, tt.cfg)
			msg := pt.Message()
			msg.Text = tt.text
			if err := s.Send(t.Context(), msg); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if len(forms) != 1 || forms[0].Encode() != tt.want.Encode() {
				t.Errorf("forms\n got %v\nwant %s", forms, tt.want.Encode())
			}
		})
	}
}

func TestTTLBounds(t *testing.T) {
	for ttl, want := range map[time.Duration]string{time.Second: "20000", 10 * time.Minute: "600000", 0: ""} {
		var forms []url.Values
		srv := httptest.NewServer(capture(t, &forms, accepted))
		s := newSender(t, Config{Endpoint: srv.URL, APIKey: "k", APISecret: "s", From: "ACME"})
		msg := pt.Message()
		msg.TTL = ttl
		if err := s.Send(t.Context(), msg); err != nil {
			t.Fatal(err)
		}
		srv.Close()
		if got := forms[0].Get("ttl"); got != want {
			t.Errorf("TTL %v: ttl %q, want %q", ttl, got, want)
		}
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
		{"accepted", []http.HandlerFunc{pt.JSON(200, accepted)}, 1, true, false, false, "", "", false},
		{"two parts accepted", []http.HandlerFunc{pt.JSON(200, twoParts)}, 1, true, false, false, "", "", false},
		{"throttled then accepted", []http.HandlerFunc{pt.JSON(200, throttled), pt.JSON(200, accepted)}, 2, true, false, false, "", "", false},
		{"internal error then accepted", []http.HandlerFunc{pt.JSON(200, internalEr), pt.JSON(200, accepted)}, 2, true, false, false, "", "", false},
		{"throttled throughout", []http.HandlerFunc{pt.JSON(200, throttled)}, 3, false, true, false, "1", "throttled", false},
		{"invalid signature", []http.HandlerFunc{pt.JSON(200, badSig)}, 1, false, false, false, "14", "invalid signature", true},
		{"missing parameter", []http.HandlerFunc{pt.JSON(200, missingTo)}, 1, false, false, false, "2", "Missing to param", false},
		{"bad credentials", []http.HandlerFunc{pt.JSON(200, badCreds)}, 1, false, false, false, "4", "invalid credentials", true},
		{"out of credit", []http.HandlerFunc{pt.JSON(200, noCredit)}, 1, false, false, false, "9", "out of credit", true},
		{"invalid sender", []http.HandlerFunc{pt.JSON(200, badSender)}, 1, false, false, false, "15", "invalid sender address", true},
		{"number barred", []http.HandlerFunc{pt.JSON(200, barred)}, 1, false, false, true, "7", "Number barred. ***", false},
		{"one part of two", []http.HandlerFunc{pt.JSON(200, halfSent)}, 1, false, true, false, "1", "only 1 of 2 parts", false},
		{"unreadable", []http.HandlerFunc{pt.JSON(200, `<html>`)}, 1, false, true, false, "", "could not be read", false},
		{"HTTP 503 then accepted", []http.HandlerFunc{pt.JSON(503, ``), pt.JSON(200, accepted)}, 2, true, false, false, "", "", false},
		{"HTTP 401", []http.HandlerFunc{pt.JSON(401, `{}`)}, 1, false, false, false, "", "refused the request", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, calls := pt.Sequence(tt.answers...)
			srv := httptest.NewServer(h)
			defer srv.Close()
			s := newSender(t, Config{Endpoint: srv.URL, APIKey: "k", APISecret: "s", From: "ACME", Options: sender.Options{SendTimeout: sender.Duration(5 * time.Second)}})
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
	s := newSender(t, Config{Endpoint: srv.URL, APIKey: "k", APISecret: "s", From: "ACME", Options: sender.Options{SendTimeout: sender.Duration(200 * time.Millisecond)}})
	start := time.Now()
	se := pt.SenderError(t, s.Send(t.Context(), pt.Message()))
	if !se.Temporary || time.Since(start) > 2*time.Second {
		t.Errorf("error %+v after %v, want a temporary timeout after about 200ms", *se, time.Since(start))
	}
}

func TestNew(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no key":          {APISecret: "s", From: "A"},
		"no secret":       {APIKey: "k", From: "A"},
		"method alone":    {APIKey: "k", APISecret: "s", From: "A", SignatureMethod: "sha256"},
		"bad method":      {APIKey: "k", From: "A", SignatureSecret: "x", SignatureMethod: "sha384"},
		"short token":     {APIKey: "k", APISecret: "s", From: "A", ReceiptToken: "short"},
		"token in clear":  {APIKey: "k", APISecret: "s", From: "A", ReceiptToken: "a token with spaces in it!"},
		"no from":         {APIKey: "k", APISecret: "s"},
		"entity only":     {APIKey: "k", APISecret: "s", From: "A", EntityID: "1"},
		"bad endpoint":    {APIKey: "k", APISecret: "s", From: "A", Endpoint: "rest.nexmo.com"},
		"endpoint query":  {APIKey: "k", APISecret: "s", From: "A", Endpoint: "https://rest.nexmo.com/?x=1"},
		"content id only": {APIKey: "k", APISecret: "s", From: "A", ContentID: "1"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	s, err := New(Config{APIKey: "k", APISecret: "s", From: "A", Options: sender.Options{Name: "vonage-in"}})
	if err != nil || s.Name() != "vonage-in" || s.Channel() != sender.SMS {
		t.Errorf("New = %v, %v", s, err)
	}
}

func FuzzParseResponse(f *testing.F) {
	for _, b := range []string{accepted, twoParts, throttled, missingTo, badCreds, noCredit, badSender, barred, halfSent, internalEr, `{}`, `{"messages":[]}`, `{"messages":[{"status":0}]}`} {
		f.Add(200, []byte(b))
	}
	f.Add(503, []byte(``))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 999 {
			return
		}
		o := parseResponse("vonage", &httpsend.Response{Status: status, Header: http.Header{}, Body: body})
		if o.Err == nil {
			if status != 200 && (status < 200 || status > 299) {
				t.Fatalf("status %d accepted", status)
			}
			return
		}
		if o.Retry && !o.Err.Temporary {
			t.Errorf("retried but not temporary: %+v", *o.Err)
		}
		if strings.Contains(o.Err.Msg, pt.Code) || strings.Contains(o.Err.Msg, "4155550100") || len(o.Err.Code) > 3 {
			t.Errorf("error %+v leaks", *o.Err)
		}
	})
}
