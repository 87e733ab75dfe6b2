package msg91

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

// MSG91's answers.
const (
	success   = `{"type":"success","message":"3763646c3058373530393832"}`
	authError = `{"type":"error","message":"Authentication failure"}`
	badNumber = `{"type":"error","message":"Mobile number 919876543210 is invalid"}`
	noFlow    = `{"message":"Flow not found","type":"error"}`
	// With realTimeResponse MSG91 checks the variables before answering
	// (its wording is not documented; this one is typical).
	noVar = `{"type":"error","message":"Variable otp is not present in template"}`
)

func newSender(t *testing.T, cfg Config) *Sender {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func TestSendWireFormat(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"default variable", Config{AuthKey: "key-123", TemplateID: "64f0c0ffee"},
			`{"template_id":"64f0c0ffee","short_url":"0","realTimeResponse":"1","recipients":[{"mobiles":"919876543210","otp":"493817"}]}`},
		{"named variables", Config{AuthKey: "key-123", TemplateID: "64f0c0ffee", CodeVar: "VAR1", TTLVar: "VAR2"},
			`{"template_id":"64f0c0ffee","short_url":"0","realTimeResponse":"1","recipients":[{"VAR1":"493817","VAR2":"5","mobiles":"919876543210"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost || r.URL.Path != "/api/v5/flow" {
					t.Errorf("request %s %s, want POST /api/v5/flow", r.Method, r.URL.Path)
				}
				if got := r.Header.Get("authkey"); got != "key-123" {
					t.Errorf("authkey %q", got)
				}
				if got := r.Header.Get("Content-Type"); got != "application/json" {
					t.Errorf("content type %q", got)
				}
				if r.Header.Get("Authorization") != "" {
					t.Error("unexpected Authorization header")
				}
				b, _ := io.ReadAll(r.Body)
				body = string(b)
				pt.JSON(http.StatusOK, success)(w, r)
			}))
			defer srv.Close()
			tt.cfg.Endpoint = srv.URL
			s := newSender(t, tt.cfg)
			msg := pt.Message()
			msg.To = pt.ToIN
			id, err := s.SendWithID(t.Context(), msg)
			if err != nil || id != "3763646c3058373530393832" {
				t.Fatalf("SendWithID = %q, %v; want the request id", id, err)
			}
			if body != tt.want {
				t.Errorf("body\n got %s\nwant %s", body, tt.want)
			}
		})
	}
}

func TestSendAnswers(t *testing.T) {
	tests := []struct {
		name          string
		answers       []http.HandlerFunc
		wantCalls     int32
		wantOK        bool
		wantTemporary bool
		wantText      string
		wantConfig    bool
	}{
		{"success", []http.HandlerFunc{pt.JSON(200, success)}, 1, true, false, "", false},
		{"error with HTTP 200", []http.HandlerFunc{pt.JSON(200, authError)}, 1, false, false, "Authentication failure", true},
		{"error with HTTP 401", []http.HandlerFunc{pt.JSON(401, authError)}, 1, false, false, "Authentication failure", true},
		{"number quoted", []http.HandlerFunc{pt.JSON(200, badNumber)}, 1, false, false, "Mobile number *** is invalid", false},
		{"flow not found", []http.HandlerFunc{pt.JSON(400, noFlow)}, 1, false, false, "Flow not found", true},
		{"template variable missing", []http.HandlerFunc{pt.JSON(200, noVar)}, 1, false, false, "template", true},
		{"throttled then success", []http.HandlerFunc{pt.JSON(429, `{"type":"error","message":"Too many requests"}`), pt.JSON(200, success)}, 2, true, false, "", false},
		{"5xx throughout", []http.HandlerFunc{pt.JSON(502, `bad gateway`)}, 3, false, true, "gave up after 3 attempts", false},
		{"unknown type", []http.HandlerFunc{pt.JSON(200, `{"type":"queued"}`)}, 1, false, true, "unknown type", false},
		{"not JSON", []http.HandlerFunc{pt.JSON(200, `OK`)}, 1, false, true, "could not be read", false},
		{"HTTP 404 page", []http.HandlerFunc{pt.JSON(404, `<html>`)}, 1, false, false, "refused the request", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, calls := pt.Sequence(tt.answers...)
			srv := httptest.NewServer(h)
			defer srv.Close()
			s := newSender(t, Config{Endpoint: srv.URL, AuthKey: "k", TemplateID: "t", Options: sender.Options{SendTimeout: sender.Duration(5 * time.Second)}})
			msg := pt.Message()
			msg.To = pt.ToIN
			err := s.Send(t.Context(), msg)
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
			if se.Sender != "msg91" || se.Temporary != tt.wantTemporary || se.Config != tt.wantConfig || !strings.Contains(se.Msg, tt.wantText) {
				t.Errorf("error %+v, want temporary %v, config %v, text %q", *se, tt.wantTemporary, tt.wantConfig, tt.wantText)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	srv, _ := pt.Slow(t, 5*time.Second)
	s := newSender(t, Config{Endpoint: srv.URL, AuthKey: "k", TemplateID: "t", Options: sender.Options{SendTimeout: sender.Duration(200 * time.Millisecond)}})
	start := time.Now()
	se := pt.SenderError(t, s.Send(t.Context(), pt.Message()))
	if !se.Temporary || time.Since(start) > 2*time.Second {
		t.Errorf("error %+v after %v, want a temporary timeout after about 200ms", *se, time.Since(start))
	}
}

func TestNew(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no key":          {TemplateID: "t"},
		"no template":     {AuthKey: "k"},
		"mobiles as code": {AuthKey: "k", TemplateID: "t", CodeVar: "mobiles"},
		"mobiles as ttl":  {AuthKey: "k", TemplateID: "t", TTLVar: "mobiles"},
		"same variables":  {AuthKey: "k", TemplateID: "t", TTLVar: "otp"},
		"hashes kept":     {AuthKey: "k", TemplateID: "t", CodeVar: "##OTP##"},
		"DLT placeholder": {AuthKey: "k", TemplateID: "t", CodeVar: "{#var#}"},
		"spaces around":   {AuthKey: "k", TemplateID: "t", CodeVar: "OTP "},
		"ttl hashes":      {AuthKey: "k", TemplateID: "t", TTLVar: "##minutes##"},
		"short token":     {AuthKey: "k", TemplateID: "t", ReceiptToken: "abc"},
		"bad endpoint":    {AuthKey: "k", TemplateID: "t", Endpoint: "control.msg91.com"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	s, err := New(Config{AuthKey: "k", TemplateID: "t"})
	if err != nil || s.Name() != "msg91" || s.Channel() != sender.SMS || s.codeVar != DefaultCodeVar {
		t.Errorf("New = %+v, %v", s, err)
	}
}

func FuzzParseResponse(f *testing.F) {
	for _, b := range []string{success, authError, badNumber, noFlow, `{}`, `{"type":1}`, ``} {
		f.Add(200, []byte(b))
		f.Add(400, []byte(b))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 999 {
			return
		}
		o := parseResponse("msg91", &httpsend.Response{Status: status, Header: http.Header{}, Body: body})
		if o.Err == nil {
			if status < 200 || status > 299 {
				t.Fatalf("status %d accepted", status)
			}
			return
		}
		if o.Retry && !o.Err.Temporary {
			t.Errorf("retried but not temporary: %+v", *o.Err)
		}
		if strings.Contains(o.Err.Msg, pt.Code) || strings.Contains(o.Err.Msg, "9876543210") {
			t.Errorf("message %q leaks", o.Err.Msg)
		}
	})
}
