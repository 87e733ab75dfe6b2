package httpsend

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/caddy-stepup/caddy-stepup/sender"
)

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"":             "",
		"Authenticate": "Authenticate",
		"The 'To' number +14155550100 is not a valid phone number.": "The 'To' number *** is not a valid phone number.",
		"Mobile number 919876543210 is invalid":                     "Mobile number *** is invalid",
		"call (415) 555-0100 now":                                   "call (*** now",
		"+91 98765 43210":                                           "***",
		"code 493817 rejected":                                      "code *** rejected",
		"status 400, code 21":                                       "status 400, code 21",
		"v21.0 and 1.5.3":                                           "v21.0 and 1.5.3",
		"550 5.1.1 <user@example.com>: Recipient address rejected":  "550 5.1.1 <***@***>: Recipient address rejected",
		"mail for a.b+c@sub.example.org failed":                     "mail for ***@*** failed",
		"line\nbreak\ttab\x00nul":                                   "line break tab nul",
		"trailing separators 1234 - and":                            "trailing separators *** - and",
		"2024-08-02 10:00:00":                                       "***:00:00",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	long := strings.Repeat("é", 300)
	if got := Redact(long); !utf8.ValidString(got) || len(got) > maxRedacted+len("…") {
		t.Errorf("Redact(300 runes) = %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
}

var (
	fourDigits   = regexp.MustCompile(`[0-9]{4}`)
	plainAddress = regexp.MustCompile(`^[a-z0-9.+_-]+@[a-z0-9.-]+$`)
)

func FuzzRedact(f *testing.F) {
	for _, s := range []string{"The 'To' number +14155550100 is not valid", "550 <a@b.c> rejected", "(415) 555-0100", "1 2 3 4", "+", "@", "é1234"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Redact(s)
		if fourDigits.MatchString(got) {
			t.Errorf("Redact(%q) = %q keeps four digits in a row", s, got)
		}
		if plainAddress.MatchString(s) && got != "***@***" {
			t.Errorf("Redact(%q) = %q keeps an address", s, got)
		}
		if len(got) > maxRedacted+len("…") || !utf8.ValidString(got) {
			t.Errorf("Redact(%q) = %q: too long or invalid", s, got)
		}
	})
}

func TestEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"":                                   "https://api.example",
		"https://api.example/":               "https://api.example",
		"http://127.0.0.1:8080":              "http://127.0.0.1:8080",
		"https://proxy.example/twilio/":      "https://proxy.example/twilio",
		"https://api.eu-west-1.example.com/": "https://api.eu-west-1.example.com",
	} {
		got, err := Endpoint(in, "https://api.example")
		if err != nil || got != want {
			t.Errorf("Endpoint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"api.example", "ftp://api.example", "https://", "https://u:secret@api.example", "https://api.example/?k=v", "https://api.example/#x", "https://api .example"} {
		_, err := Endpoint(bad, "")
		if err == nil {
			t.Errorf("Endpoint(%q) succeeded", bad)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("Endpoint(%q) error %q quotes the URL", bad, err)
		}
	}
}

func TestE164Digits(t *testing.T) {
	for in, want := range map[string]string{"+14155550100": "14155550100", "+919876543210": "919876543210", "+12": "12"} {
		if got, ok := E164Digits(in); !ok || got != want {
			t.Errorf("E164Digits(%q) = %q, %v", in, got, ok)
		}
	}
	for _, bad := range []string{"", "+", "+1", "14155550100", "+04155550100", "+1415555010012345", "+1 415", "user@example.com"} {
		if _, ok := E164Digits(bad); ok {
			t.Errorf("E164Digits(%q) accepted", bad)
		}
	}
}

func TestRetrier(t *testing.T) {
	temp := func() *sender.Error { return &sender.Error{Sender: "x", Temporary: true, Msg: "busy"} }
	t.Run("succeeds after retries", func(t *testing.T) {
		n := 0
		err := Retrier{MaxAttempts: 3, BaseDelay: time.Millisecond}.Do(t.Context(), func(context.Context, int) Outcome {
			n++
			if n < 3 {
				return Failed(temp(), true)
			}
			return Outcome{}
		})
		if err != nil || n != 3 {
			t.Errorf("Do = %v after %d attempts", err, n)
		}
	})
	t.Run("gives up", func(t *testing.T) {
		n := 0
		err := Retrier{MaxAttempts: 2, BaseDelay: time.Millisecond}.Do(t.Context(), func(context.Context, int) Outcome {
			n++
			return Failed(temp(), true)
		})
		var se *sender.Error
		if !errors.As(err, &se) || n != 2 || !strings.Contains(se.Msg, "gave up after 2 attempts") {
			t.Errorf("Do = %v after %d attempts", err, n)
		}
	})
	t.Run("no retry", func(t *testing.T) {
		n := 0
		err := Retrier{}.Do(t.Context(), func(context.Context, int) Outcome {
			n++
			return Failed(&sender.Error{Sender: "x", Msg: "refused"}, false)
		})
		if err == nil || n != 1 {
			t.Errorf("Do = %v after %d attempts", err, n)
		}
	})
	t.Run("deadline too close for the wait", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		n := 0
		start := time.Now()
		err := Retrier{MaxAttempts: 5}.Do(ctx, func(context.Context, int) Outcome {
			n++
			o := Failed(temp(), true)
			o.After = time.Second
			return o
		})
		var se *sender.Error
		if !errors.As(err, &se) || n != 1 || !strings.Contains(se.Msg, "no time left") || time.Since(start) > 40*time.Millisecond {
			t.Errorf("Do = %v after %d attempts in %v", err, n, time.Since(start))
		}
	})
	t.Run("returns a nil error, not a typed nil", func(t *testing.T) {
		if err := (Retrier{}).Do(t.Context(), func(context.Context, int) Outcome { return Outcome{} }); err != nil {
			t.Errorf("Do = %#v", err)
		}
	})
}

func TestTransportFailure(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	read := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	for name, tt := range map[string]struct {
		err              error
		temporary, retry bool
	}{
		"refused":  {dial, true, true},
		"dns":      {&net.DNSError{Err: "no such host", Name: "api.example", IsNotFound: true}, true, true},
		"reset":    {read, true, false},
		"deadline": {context.DeadlineExceeded, true, false},
	} {
		o := TransportFailure("x", tt.err)
		if o.Err == nil || o.Err.Temporary != tt.temporary || o.Retry != tt.retry {
			t.Errorf("%s: outcome %+v", name, o)
		}
	}
}

// The status half of the retry policy: 408, 429 and 5xx, nothing else.
func TestRetryable(t *testing.T) {
	for status, want := range map[int]bool{
		200: false, 201: false, 302: false, 400: false, 401: false, 404: false, 409: false, 422: false,
		408: true, 429: true, 500: true, 502: true, 503: true, 504: true,
	} {
		if got := Retryable(status); got != want {
			t.Errorf("Retryable(%d) = %v, want %v", status, got, want)
		}
	}
}

func TestResponseRetry(t *testing.T) {
	resp := &Response{Status: 503, Header: http.Header{"Retry-After": {"7"}}}
	o := resp.Retry(&sender.Error{Sender: "x", Status: 503, Msg: "down"})
	if !o.Retry || o.After != 7*time.Second || o.Err == nil || !o.Err.Temporary {
		t.Errorf("Retry = %+v (error %+v), want a temporary error retried after 7s", o, o.Err)
	}
	o = (&Response{Status: 500, Header: http.Header{}}).Retry(&sender.Error{Sender: "x"})
	if !o.Retry || o.After != 0 {
		t.Errorf("Retry without Retry-After = %+v", o)
	}
}

func TestNewBase(t *testing.T) {
	b := NewBase(sender.Options{}, "twilio", Retrier{MaxAttempts: 4})
	if b.Name() != "twilio" || b.Timeout() != DefaultTimeout || b.Countries() != nil || b.client == nil || b.retry.MaxAttempts != 4 {
		t.Errorf("defaults: %+v", b)
	}
	client := &http.Client{}
	b = NewBase(sender.Options{Name: "sms-in", CountryCodes: []string{"in"}, SendTimeout: sender.Duration(time.Second), MaxAttempts: 2, Client: client}, "twilio", Retrier{MaxAttempts: 4})
	if b.Name() != "sms-in" || b.Timeout() != time.Second || len(b.Countries()) != 1 || b.Countries()[0] != "IN" || b.client != client || b.retry.MaxAttempts != 2 {
		t.Errorf("configured: %+v", b)
	}
}

type checked struct{ err error }

func (c checked) Validate() error { return c.err }

func TestPrepare(t *testing.T) {
	if got, err := Prepare("twilio", checked{}, "", "https://api.example/"); err != nil || got != "https://api.example" {
		t.Errorf("Prepare = %q, %v", got, err)
	}
	invalid := errors.New("twilio sender: needs account_sid")
	if _, err := Prepare("twilio", checked{invalid}, "ftp://x", ""); err != invalid {
		t.Errorf("Prepare of an invalid config = %v, want Validate's error first", err)
	}
	if _, err := Prepare("twilio", checked{}, "https://u:secret@api.example", ""); err == nil ||
		!strings.HasPrefix(err.Error(), "twilio sender: ") || strings.Contains(err.Error(), "secret") {
		t.Errorf("Prepare with credentials in the endpoint = %v", err)
	}
}

// Send makes the same request on every attempt, with the headers of
// each attempt, and stops at the first answer the policy does not retry.
func TestSend(t *testing.T) {
	var bodies, stamps []string
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		stamps = append(stamps, r.Header.Get("X-Attempt"))
		if n++; n < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	b := NewBase(sender.Options{}, "x", Retrier{BaseDelay: time.Millisecond})
	attempt := 0
	err := Send(t.Context(), &b, Request{
		URL:         srv.URL,
		ContentType: "text/plain",
		Body:        []byte("hello"),
		Header: func(h http.Header) {
			attempt++
			h.Set("X-Attempt", strconv.Itoa(attempt))
		},
	}, func(name string, resp *Response) Outcome {
		if Retryable(resp.Status) {
			return resp.Retry(&sender.Error{Sender: name, Status: resp.Status})
		}
		return Outcome{}
	})
	if err != nil || strings.Join(bodies, ",") != "hello,hello,hello" || strings.Join(stamps, ",") != "1,2,3" {
		t.Errorf("Send = %v; bodies %q, attempts %q", err, bodies, stamps)
	}
}
