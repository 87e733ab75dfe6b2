package sender

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
)

// The example of the Standard Webhooks specification and its reference
// libraries: secret, message id, timestamp, body and signature.
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specBody      = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// testMessage is the message the webhook tests send. Its text holds
// characters that JSON must escape and a WebOTP line.
var testMessage = Message{
	To:        "+14155550100",
	Code:      "493817",
	Text:      "Your code is 493817 to pay \"ACME\" <shop> & co.\n\n@shop.example #493817",
	Channel:   SMS,
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
	text := err.Error()
	for _, s := range []string{testMessage.Code, "4155550100", "cannot send"} {
		if strings.Contains(text, s) {
			t.Errorf("error %q contains %q", text, s)
		}
	}
}

func newTestWebhook(t *testing.T, cfg WebhookConfig) *Webhook {
	t.Helper()
	w, err := NewWebhook(cfg)
	if err != nil {
		t.Fatalf("NewWebhook: %v", err)
	}
	return w
}

func send(t *testing.T, w *Webhook, timeout time.Duration) (time.Duration, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	msg := testMessage
	start := time.Now()
	err := w.Send(ctx, &msg)
	return time.Since(start), err
}

func TestSpecVector(t *testing.T) {
	key, err := ParseWebhookSecret(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := SignWebhook(key, specID, time.Unix(specTimestamp, 0), []byte(specBody)); got != specSignature {
		t.Errorf("SignWebhook = %q, want %q", got, specSignature)
	}
	ts := strconv.Itoa(specTimestamp)
	now := time.Unix(specTimestamp+60, 0)
	if err := VerifyWebhook(key, specID, ts, specSignature, []byte(specBody), now, 0); err != nil {
		t.Errorf("VerifyWebhook of the specification's example: %v", err)
	}
	h := http.Header{}
	h.Set("webhook-id", specID)
	h.Set("webhook-timestamp", ts)
	h.Set("webhook-signature", specSignature)
	if err := specVerify(specSecret, h, []byte(specBody), now); err != nil {
		t.Errorf("the test's own verifier rejects the specification's example: %v", err)
	}
}

func TestWebhookSend(t *testing.T) {
	for _, signed := range []bool{true, false} {
		t.Run(fmt.Sprintf("signed=%v", signed), func(t *testing.T) {
			rec, url := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				echo(w, http.StatusAccepted)
			})
			cfg := WebhookConfig{URL: url}
			if signed {
				cfg.SigningSecret = specSecret
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
			if err := specVerify(specSecret, r.header, r.body, time.Now()); err != nil {
				t.Errorf("signature %q does not verify: %v", sig, err)
			}
			if err := specVerify(specSecret, r.header, append(r.body, ' '), time.Now()); err == nil {
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
		{"connection dropped", func(w http.ResponseWriter) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		}, 0},
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
			wh := newTestWebhook(t, WebhookConfig{URL: url, SigningSecret: specSecret})
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
				if err := specVerify(specSecret, r.header, r.body, r.at); err != nil {
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
			wh := newTestWebhook(t, WebhookConfig{URL: url, SigningSecret: specSecret, Name: "gateway"})
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
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("error %T %q is not an *Error", err, err)
			}
			if se.Status != tt.status || se.Temporary || se.Sender != "gateway" {
				t.Errorf("error = %+v, want status %d, permanent, sender gateway", *se, tt.status)
			}
			if IsTemporary(err) {
				t.Error("IsTemporary = true, want false")
			}
			assertClean(t, err)
		})
	}
}

func TestWebhookGivesUp(t *testing.T) {
	tests := []struct {
		name    string
		cfg     WebhookConfig
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
			cfg:     WebhookConfig{Timeout: 500 * time.Millisecond},
			timeout: time.Minute,
			respond: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Retry-After", "2")
				echo(w, http.StatusServiceUnavailable)
			},
			tries: 1, maxTime: time.Second, status: http.StatusServiceUnavailable,
		},
		{
			name:    "attempts exhausted",
			cfg:     WebhookConfig{MaxAttempts: 3, MaxRetryDelay: 10 * time.Millisecond},
			timeout: 5 * time.Second,
			respond: func(w http.ResponseWriter, _ *http.Request) { echo(w, http.StatusInternalServerError) },
			tries:   3, maxTime: time.Second, status: http.StatusInternalServerError,
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
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("error %T %q is not an *Error", err, err)
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
	wh := newTestWebhook(t, WebhookConfig{URL: url, MaxAttempts: 2, MaxRetryDelay: 10 * time.Millisecond})
	_, err := send(t, wh, 5*time.Second)
	if err == nil {
		t.Fatal("Send succeeded, want an error")
	}
	var se *Error
	if !errors.As(err, &se) || !se.Temporary || se.Status != 0 {
		t.Fatalf("error %q, want a temporary *Error without status", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %q contains the URL's token", err)
	}
	assertClean(t, err)
}

func TestWebhookContextCancelled(t *testing.T) {
	rec, url := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	wh := newTestWebhook(t, WebhookConfig{URL: url})
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

func TestNewWebhook(t *testing.T) {
	tests := []struct {
		name    string
		cfg     WebhookConfig
		wantErr string
	}{
		{"http", WebhookConfig{URL: "http://127.0.0.1:9999/sms"}, ""},
		{"https", WebhookConfig{URL: "https://sms.example.com/hook", SigningSecret: specSecret}, ""},
		{"upper-case scheme", WebhookConfig{URL: "HTTPS://sms.example.com/hook"}, ""},
		{"empty", WebhookConfig{}, "must be http or https"},
		{"no scheme", WebhookConfig{URL: "sms.example.com/hook"}, "must be http or https"},
		{"ftp", WebhookConfig{URL: "ftp://sms.example.com/"}, `not "ftp"`},
		{"file", WebhookConfig{URL: "file:///etc/passwd"}, "must be http or https"},
		{"no host", WebhookConfig{URL: "http:///sms"}, "no host"},
		{"opaque", WebhookConfig{URL: "http:sms"}, "no host"},
		{"unparsable", WebhookConfig{URL: "http://user:s3cret@exa mple.com/"}, "invalid webhook url"},
		{"secret without prefix", WebhookConfig{URL: "http://127.0.0.1/", SigningSecret: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, `form "whsec_<base64>"`},
		{"secret not base64", WebhookConfig{URL: "http://127.0.0.1/", SigningSecret: "whsec_s3cret!!"}, "not valid base64"},
		{"secret too short", WebhookConfig{URL: "http://127.0.0.1/", SigningSecret: "whsec_czNjcmV0"}, "6 bytes long, want at least 24"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := NewWebhook(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewWebhook: %v", err)
				}
				if w.Name() != "webhook" {
					t.Errorf("Name = %q, want webhook", w.Name())
				}
				return
			}
			if err == nil {
				t.Fatalf("NewWebhook succeeded, want an error with %q", tt.wantErr)
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

func TestParseWebhookSecret(t *testing.T) {
	key24 := []byte("0123456789abcdefghijklmn")
	tests := []struct {
		in      string
		want    []byte
		wantErr bool
	}{
		{"whsec_" + base64.StdEncoding.EncodeToString(key24), key24, false},
		{" whsec_" + base64.StdEncoding.EncodeToString(key24) + "\n", key24, false},
		{"whsec_" + base64.RawStdEncoding.EncodeToString(key24[:23]), nil, true},
		{"whsec_" + base64.RawStdEncoding.EncodeToString(append(key24, 'o')), append(key24, 'o'), false},
		{"whsec_" + base64.URLEncoding.EncodeToString([]byte("\xfb\xff\xfe0123456789abcdefghijklmn")), nil, true},
		{"whsec_", nil, true},
		{"WHSEC_" + base64.StdEncoding.EncodeToString(key24), nil, true},
		{base64.StdEncoding.EncodeToString(key24), nil, true},
		{"", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseWebhookSecret(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseWebhookSecret(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if string(got) != string(tt.want) {
			t.Errorf("ParseWebhookSecret(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestVerifyWebhook(t *testing.T) {
	key, err := ParseWebhookSecret(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(specTimestamp, 0)
	ts := strconv.Itoa(specTimestamp)
	other := SignWebhook([]byte("another key of twenty-four bytes"), specID, now, []byte(specBody))
	tests := []struct {
		name      string
		key       []byte
		id, ts    string
		sig, body string
		now       time.Time
		tolerance time.Duration
		want      error
	}{
		{"valid", key, specID, ts, specSignature, specBody, now, 0, nil},
		{"one of several", key, specID, ts, other + " v1a,xyz " + specSignature, specBody, now, 0, nil},
		{"4m59s late", key, specID, ts, specSignature, specBody, now.Add(299 * time.Second), 0, nil},
		{"5m early", key, specID, ts, specSignature, specBody, now.Add(-300 * time.Second), 0, nil},
		{"5m01s late", key, specID, ts, specSignature, specBody, now.Add(301 * time.Second), 0, ErrWebhookTimestamp},
		{"5m01s early", key, specID, ts, specSignature, specBody, now.Add(-301 * time.Second), 0, ErrWebhookTimestamp},
		{"narrow tolerance", key, specID, ts, specSignature, specBody, now.Add(11 * time.Second), 10 * time.Second, ErrWebhookTimestamp},
		{"wide tolerance", key, specID, ts, specSignature, specBody, now.Add(time.Hour), 2 * time.Hour, nil},
		{"timestamp not a number", key, specID, "1614265330.0", specSignature, specBody, now, 0, ErrWebhookTimestamp},
		{"timestamp empty", key, specID, "", specSignature, specBody, now, 0, ErrWebhookTimestamp},
		{"timestamp in the distant past", key, specID, "-9223372036854775808", specSignature, specBody, now, 0, ErrWebhookTimestamp},
		{"wrong key", []byte("another key of twenty-four bytes"), specID, ts, specSignature, specBody, now, 0, ErrWebhookSignature},
		{"no key", nil, specID, ts, specSignature, specBody, now, 0, ErrWebhookSignature},
		{"other id", key, "msg_other", ts, specSignature, specBody, now, 0, ErrWebhookSignature},
		{"other body", key, specID, ts, specSignature, `{"test": 2432232315}`, now, 0, ErrWebhookSignature},
		{"other version", key, specID, ts, "v2," + strings.TrimPrefix(specSignature, "v1,"), specBody, now, 0, ErrWebhookSignature},
		{"no version", key, specID, ts, strings.TrimPrefix(specSignature, "v1,"), specBody, now, 0, ErrWebhookSignature},
		{"truncated", key, specID, ts, specSignature[:len(specSignature)-2], specBody, now, 0, ErrWebhookSignature},
		{"url base64", key, specID, ts, strings.NewReplacer("+", "-", "/", "_").Replace(specSignature), specBody, now, 0, ErrWebhookSignature},
		{"empty header", key, specID, ts, "", specBody, now, 0, ErrWebhookSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyWebhook(tt.key, tt.id, tt.ts, tt.sig, []byte(tt.body), tt.now, tt.tolerance)
			if !errors.Is(err, tt.want) {
				t.Errorf("VerifyWebhook = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestWebhookBackoff(t *testing.T) {
	w := newTestWebhook(t, WebhookConfig{URL: "http://127.0.0.1/", MaxRetryDelay: time.Second})
	for n := 1; n <= 70; n++ {
		limit := min(100*time.Millisecond<<(n-1), time.Second)
		if n > 10 {
			limit = time.Second
		}
		var longest time.Duration
		for range 200 {
			d := w.backoff(n)
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

func FuzzVerifyWebhook(f *testing.F) {
	f.Add([]byte("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), specID, int64(specTimestamp), []byte(specBody), specSignature, "1614265330", int64(0))
	f.Add([]byte{0}, "", int64(0), []byte{}, "", "", int64(-1))
	f.Add([]byte("k"), "msg_a.b", int64(-62135596800), []byte("\x00\xff"), "v1,AAAA v1,", "+1", int64(math.MaxInt64))
	f.Add([]byte("key"), "id", int64(math.MinInt64), []byte("body"), "v1,====", "-9223372036854775808", int64(300e9))
	f.Fuzz(func(t *testing.T, key []byte, id string, sec int64, body []byte, header, timestamp string, tolerance int64) {
		now := time.Unix(sec, 0)
		// Arbitrary input never panics.
		_ = VerifyWebhook(key, id, timestamp, header, body, now, time.Duration(tolerance))
		if len(key) == 0 {
			return
		}
		// What SignWebhook signs verifies, alone or among other signatures.
		sig := SignWebhook(key, id, now, body)
		ts := strconv.FormatInt(sec, 10)
		for _, h := range []string{sig, header + " " + sig, sig + " " + header} {
			if err := VerifyWebhook(key, id, ts, h, body, now, time.Duration(tolerance)); err != nil {
				t.Fatalf("VerifyWebhook of a SignWebhook signature in %q: %v", h, err)
			}
		}
		// And nothing else: not another body.
		if err := VerifyWebhook(key, id, ts, sig, append(body, 0), now, 0); !errors.Is(err, ErrWebhookSignature) {
			t.Fatalf("signature verifies a longer body: %v", err)
		}
	})
}
