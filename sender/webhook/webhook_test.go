package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
	pt "github.com/caddy-stepup/caddy-stepup/sender/internal/providertest"
)

// The example of the Standard Webhooks specification and its reference
// libraries, for the test's own verifier.
var spec = struct {
	secret, id, body, signature string
	timestamp                   int64
}{
	secret:    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	id:        "msg_p5jXN8AQM9LWM0D4loKWxJek",
	timestamp: 1614265330,
	body:      `{"test": 2432232314}`,
	signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
}

// testMessage is the message the webhook tests send. Its text holds
// characters that JSON must escape and a WebOTP line.
var testMessage = sender.Message{
	To:        "+14155550100",
	Code:      "493817",
	Text:      "Your code is 493817 to pay \"ACME\" <shop> & co.\n\n@shop.example #493817",
	Channel:   sender.SMS,
	Policy:    "checkout",
	Challenge: "ch_7Qx",
	TTL:       5 * time.Minute,
}

const testBody = `{"to":"+14155550100","code":"493817","message":"Your code is 493817 to pay \"ACME\" <shop> & co.\n\n@shop.example #493817","channel":"sms","policy":"checkout","challenge":"ch_7Qx"}`

// specVerify checks a request the way the Standard Webhooks specification
// describes it, independently of the code under test: decode the base64
// after "whsec_", HMAC-SHA256 over "id.timestamp.body", base64 it, compare
// with each space-separated "v1," signature, and allow five minutes of
// clock skew.
func specVerify(secret string, h http.Header, body []byte, now time.Time) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	if id == "" || ts == "" {
		return errors.New("missing webhook-id or webhook-timestamp")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("timestamp: %v", err)
	}
	if math.Abs(float64(now.Unix()-sec)) > 300 {
		return errors.New("timestamp outside five minutes")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Split(h.Get("webhook-signature"), " ") {
		if v, b64, _ := strings.Cut(sig, ","); v == "v1" && hmac.Equal([]byte(b64), []byte(want)) {
			return nil
		}
	}
	return errors.New("no matching signature")
}

// request is what the test server saw of one request.
type request struct {
	method, path string
	header       http.Header
	body         []byte
	at           time.Time
}

// recorder is a webhook receiver that records requests and answers each
// with respond, given the request's number from 1.
type recorder struct {
	t       *testing.T
	respond func(n int, w http.ResponseWriter, r *http.Request)

	mu   sync.Mutex
	reqs []request
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		rec.t.Errorf("reading the request body: %v", err)
	}
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, request{r.Method, r.URL.Path, r.Header.Clone(), body, time.Now()})
	n := len(rec.reqs)
	rec.mu.Unlock()
	rec.respond(n, w, r)
}

func (rec *recorder) requests() []request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]request(nil), rec.reqs...)
}

// newReceiver starts a test server on 127.0.0.1 that answers with respond
// and returns its recorder and the URL of its /sms path.
func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request)) (*recorder, string) {
	t.Helper()
	rec := &recorder{t: t, respond: respond}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test server listens on %s, want 127.0.0.1", srv.URL)
	}
	return rec, srv.URL + "/sms"
}

// echo writes a body that repeats the code and the number, as a careless
// receiver might, so that tests can check that errors do not carry it.
func echo(w http.ResponseWriter, status int) {
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":"cannot send %s to %s"}`, testMessage.Code, testMessage.To)
}

// assertClean fails if err's text holds the code, the number or the
// receiver's answer.
func assertClean(t *testing.T, err error) {
	t.Helper()
	pt.AssertClean(t, err)
	if strings.Contains(err.Error(), "cannot send") {
		t.Errorf("error %q contains the receiver's answer", err)
	}
}

func newTestWebhook(t *testing.T, cfg Config) *Sender {
	t.Helper()
	w, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return w
}

func send(t *testing.T, w *Sender, timeout time.Duration) (time.Duration, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	msg := testMessage
	start := time.Now()
	err := w.Send(ctx, &msg)
	return time.Since(start), err
}

// The test's own verifier accepts the specification's example.
func TestSpecVerifier(t *testing.T) {
	h := http.Header{}
	h.Set("webhook-id", spec.id)
	h.Set("webhook-timestamp", strconv.FormatInt(spec.timestamp, 10))
	h.Set("webhook-signature", spec.signature)
	if err := specVerify(spec.secret, h, []byte(spec.body), time.Unix(spec.timestamp+60, 0)); err != nil {
		t.Errorf("the test's own verifier rejects the specification's example: %v", err)
	}
}

func TestWebhookSend(t *testing.T) {
	for _, signed := range []bool{true, false} {
		t.Run(fmt.Sprintf("signed=%v", signed), func(t *testing.T) {
			rec, url := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				echo(w, http.StatusAccepted)
			})
			cfg := Config{URL: url}
			if signed {
				cfg.SigningSecret = spec.secret
			}
			wh := newTestWebhook(t, cfg)
			if wh.Name() != "webhook" {
				t.Errorf("Name = %q, want webhook", wh.Name())
			}
			if _, err := send(t, wh, 5*time.Second); err != nil {
				t.Fatalf("Send: %v", err)
			}
			reqs := rec.requests()
			if len(reqs) != 1 {
				t.Fatalf("receiver saw %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.method != http.MethodPost || r.path != "/sms" {
				t.Errorf("request %s %s, want POST /sms", r.method, r.path)
			}
			if got := string(r.body); got != testBody {
				t.Errorf("body\n got %s\nwant %s", got, testBody)
			}
			for name, want := range map[string]string{
				"Content-Type": "application/json",
				"User-Agent":   "caddy-stepup",
			} {
				if got := r.header.Get(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if id := r.header.Get("webhook-id"); !strings.HasPrefix(id, "msg_") || len(id) < 20 {
				t.Errorf("webhook-id = %q, want msg_ and a random part", id)
			}
			ts, err := strconv.ParseInt(r.header.Get("webhook-timestamp"), 10, 64)
			if err != nil || math.Abs(float64(time.Now().Unix()-ts)) > 5 {
				t.Errorf("webhook-timestamp = %q, want the current time", r.header.Get("webhook-timestamp"))
			}
			sig := r.header.Get("webhook-signature")
			if !signed {
				if sig != "" {
					t.Errorf("unsigned webhook sent webhook-signature %q", sig)
				}
				return
			}
			if err := specVerify(spec.secret, r.header, r.body, time.Now()); err != nil {
				t.Errorf("signature %q does not verify: %v", sig, err)
			}
			if err := specVerify(spec.secret, r.header, append(r.body, ' '), time.Now()); err == nil {
				t.Error("signature also verifies a different body")
			}
		})
	}
}

func TestWebhookRetry(t *testing.T) {
	tests := []struct {
		name     string
		first    func(w http.ResponseWriter)
		minDelay time.Duration
	}{
		{"500", func(w http.ResponseWriter) { echo(w, http.StatusInternalServerError) }, 0},
		{"502", func(w http.ResponseWriter) { echo(w, http.StatusBadGateway) }, 0},
		{"408", func(w http.ResponseWriter) { echo(w, http.StatusRequestTimeout) }, 0},
		{"429 Retry-After", func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "1")
			echo(w, http.StatusTooManyRequests)
		}, time.Second},
		{"503 Retry-After", func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "1")
			echo(w, http.StatusServiceUnavailable)
		}, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, url := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
				if n == 1 {
					tt.first(w)
					return
				}
				w.WriteHeader(http.StatusOK)
			})
			wh := newTestWebhook(t, Config{URL: url, SigningSecret: spec.secret})
			took, err := send(t, wh, 5*time.Second)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			reqs := rec.requests()
			if len(reqs) != 2 {
				t.Fatalf("receiver saw %d requests, want 2", len(reqs))
			}
			if took < tt.minDelay {
				t.Errorf("Send took %v, want at least the Retry-After of %v", took, tt.minDelay)
			}
			if gap := reqs[1].at.Sub(reqs[0].at); gap < tt.minDelay {
				t.Errorf("retry came %v after the first attempt, want at least %v", gap, tt.minDelay)
			}
			id0, id1 := reqs[0].header.Get("webhook-id"), reqs[1].header.Get("webhook-id")
			if id0 == "" || id0 != id1 {
				t.Errorf("webhook-id %q then %q, want the same on the retry", id0, id1)
			}
			for i, r := range reqs {
				if string(r.body) != testBody {
					t.Errorf("attempt %d: body %s, want %s", i+1, r.body, testBody)
				}
				if err := specVerify(spec.secret, r.header, r.body, r.at); err != nil {
					t.Errorf("attempt %d: %v", i+1, err)
				}
			}
			if tt.minDelay >= time.Second {
				ts0, ts1 := reqs[0].header.Get("webhook-timestamp"), reqs[1].header.Get("webhook-timestamp")
				sig0, sig1 := reqs[0].header.Get("webhook-signature"), reqs[1].header.Get("webhook-signature")
				if ts0 == ts1 || sig0 == sig1 {
					t.Errorf("retry a second later reuses timestamp %q or signature %q", ts1, sig1)
				}
			}
		})
	}
}

func TestWebhookPermanentFailure(t *testing.T) {
	tests := []struct {
		name   string
		status int
	}{
		{"400", http.StatusBadRequest},
		{"401", http.StatusUnauthorized},
		{"404", http.StatusNotFound},
		{"422", http.StatusUnprocessableEntity},
		{"redirect", http.StatusTemporaryRedirect},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, url := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				if tt.status/100 == 3 {
					w.Header().Set("Location", "/elsewhere")
				}
				echo(w, tt.status)
			})
			wh := newTestWebhook(t, Config{URL: url, SigningSecret: spec.secret, Options: sender.Options{Name: "gateway"}})
			took, err := send(t, wh, 5*time.Second)
			if err == nil {
				t.Fatal("Send succeeded, want an error")
			}
			if n := len(rec.requests()); n != 1 {
				t.Errorf("receiver saw %d requests, want 1 (no retry, no redirect followed)", n)
			}
			if took > time.Second {
				t.Errorf("Send took %v, want an immediate failure", took)
			}
			var se *sender.Error
			if !errors.As(err, &se) {
				t.Fatalf("error %T %q is not a *sender.Error", err, err)
			}
			if se.Status != tt.status || se.Temporary || se.Sender != "gateway" {
				t.Errorf("error = %+v, want status %d, permanent, sender gateway", *se, tt.status)
			}
			if sender.IsTemporary(err) {
				t.Error("IsTemporary = true, want false")
			}
			assertClean(t, err)
		})
	}
}

func TestWebhookGivesUp(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		timeout time.Duration
		respond func(w http.ResponseWriter, r *http.Request)
		tries   int
		maxTime time.Duration
		status  int
		ctxErr  bool
	}{
		{
			name:    "Retry-After past the deadline",
			timeout: 3 * time.Second,
			respond: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Retry-After", "30")
				echo(w, http.StatusServiceUnavailable)
			},
			tries: 1, maxTime: time.Second, status: http.StatusServiceUnavailable,
		},
		{
			name:    "Retry-After date past the deadline",
			timeout: 3 * time.Second,
			respond: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Retry-After", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
				echo(w, http.StatusTooManyRequests)
			},
			tries: 1, maxTime: time.Second, status: http.StatusTooManyRequests,
		},
		{
			name:    "huge Retry-After",
			timeout: 3 * time.Second,
			respond: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Retry-After", "99999999999999999999999")
				echo(w, http.StatusTooManyRequests)
			},
			tries: 1, maxTime: time.Second, status: http.StatusTooManyRequests,
		},
		{
			name:    "Timeout shorter than the context",
			cfg:     Config{Options: sender.Options{SendTimeout: sender.Duration(500 * time.Millisecond)}},
			timeout: time.Minute,
			respond: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Retry-After", "2")
				echo(w, http.StatusServiceUnavailable)
			},
			tries: 1, maxTime: time.Second, status: http.StatusServiceUnavailable,
		},
		{
			name:    "attempts exhausted",
			cfg:     Config{MaxRetryDelay: 10 * time.Millisecond, Options: sender.Options{MaxAttempts: 3}},
			timeout: 5 * time.Second,
			respond: func(w http.ResponseWriter, _ *http.Request) { echo(w, http.StatusInternalServerError) },
			tries:   3, maxTime: time.Second, status: http.StatusInternalServerError,
		},
		{
			// The receiver read the request and may have passed it on: not
			// sent again through this webhook (the retry policy).
			name:    "connection dropped after the request",
			timeout: 5 * time.Second,
			respond: func(w http.ResponseWriter, _ *http.Request) {
				if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
					conn.Close()
				}
			},
			tries: 1, maxTime: time.Second,
		},
		{
			name:    "slow receiver",
			timeout: 300 * time.Millisecond,
			respond: func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
				}
				echo(w, http.StatusOK)
			},
			tries: 1, maxTime: time.Second, ctxErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, url := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) { tt.respond(w, r) })
			tt.cfg.URL = url
			wh := newTestWebhook(t, tt.cfg)
			took, err := send(t, wh, tt.timeout)
			if err == nil {
				t.Fatal("Send succeeded, want an error")
			}
			if took > tt.maxTime {
				t.Errorf("Send took %v, want at most %v", took, tt.maxTime)
			}
			if n := len(rec.requests()); n != tt.tries {
				t.Errorf("receiver saw %d requests, want %d", n, tt.tries)
			}
			var se *sender.Error
			if !errors.As(err, &se) {
				t.Fatalf("error %T %q is not a *sender.Error", err, err)
			}
			if !se.Temporary || se.Status != tt.status {
				t.Errorf("error = %+v, want temporary with status %d", *se, tt.status)
			}
			if tt.ctxErr && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %q does not wrap context.DeadlineExceeded", err)
			}
			assertClean(t, err)
		})
	}
}

func TestWebhookNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/sms?token=hunter2"
	srv.Close() // nothing listens there any more
	wh := newTestWebhook(t, Config{URL: url, MaxRetryDelay: 10 * time.Millisecond, Options: sender.Options{MaxAttempts: 2}})
	_, err := send(t, wh, 5*time.Second)
	if err == nil {
		t.Fatal("Send succeeded, want an error")
	}
	var se *sender.Error
	if !errors.As(err, &se) || !se.Temporary || se.Status != 0 {
		t.Fatalf("error %q, want a temporary *sender.Error without status", err)
	}
	if !strings.Contains(se.Msg, "gave up after 2 attempts") {
		t.Errorf("error %q: a refused connection is retried, want both attempts made", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %q contains the URL's token", err)
	}
	assertClean(t, err)
}

func TestWebhookContextCancelled(t *testing.T) {
	rec, url := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	wh := newTestWebhook(t, Config{URL: url})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	msg := testMessage
	err := wh.Send(ctx, &msg)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Send = %v, want context.Canceled", err)
	}
	if n := len(rec.requests()); n != 0 {
		t.Errorf("receiver saw %d requests after the context was cancelled", n)
	}
	if err := wh.Send(t.Context(), nil); err == nil {
		t.Error("Send(nil) succeeded")
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"http", Config{URL: "http://127.0.0.1:9999/sms"}, ""},
		{"https", Config{URL: "https://sms.example.com/hook", SigningSecret: spec.secret}, ""},
		{"upper-case scheme", Config{URL: "HTTPS://sms.example.com/hook"}, ""},
		{"empty", Config{}, "must be http or https"},
		{"no scheme", Config{URL: "sms.example.com/hook"}, "must be http or https"},
		{"ftp", Config{URL: "ftp://sms.example.com/"}, `not "ftp"`},
		{"file", Config{URL: "file:///etc/passwd"}, "must be http or https"},
		{"no host", Config{URL: "http:///sms"}, "no host"},
		{"opaque", Config{URL: "http:sms"}, "no host"},
		{"unparsable", Config{URL: "http://user:s3cret@exa mple.com/"}, "invalid webhook url"},
		{"secret without prefix", Config{URL: "http://127.0.0.1/", SigningSecret: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, `form "whsec_<base64>"`},
		{"secret not base64", Config{URL: "http://127.0.0.1/", SigningSecret: "whsec_s3cret!!"}, "not valid base64"},
		{"secret too short", Config{URL: "http://127.0.0.1/", SigningSecret: "whsec_czNjcmV0"}, "6 bytes long, want at least 24"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if w.Name() != "webhook" {
					t.Errorf("Name = %q, want webhook", w.Name())
				}
				return
			}
			if err == nil {
				t.Fatalf("New succeeded, want an error with %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want %q in it", err, tt.wantErr)
			}
			for _, secret := range []string{"s3cret", "czNjcmV0", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains the secret", err)
				}
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	r := retrier(Config{MaxRetryDelay: time.Second})
	for n := 1; n <= 70; n++ {
		limit := min(100*time.Millisecond<<(n-1), time.Second)
		if n > 10 {
			limit = time.Second
		}
		var longest time.Duration
		for range 200 {
			d := r.Backoff(n)
			if d <= 0 || d > limit {
				t.Fatalf("backoff(%d) = %v, want within (0, %v]", n, d, limit)
			}
			longest = max(longest, d)
		}
		if longest < limit/4 {
			t.Errorf("backoff(%d): longest of 200 draws is %v, want spread up to %v", n, longest, limit)
		}
	}
}
