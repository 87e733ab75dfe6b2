package sender

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender/internal/netretry"
)

// Defaults of a Webhook.
const (
	defaultWebhookName    = "webhook"
	defaultMaxRetryDelay  = 2 * time.Second
	defaultRetryBaseDelay = 100 * time.Millisecond
	defaultMaxAttempts    = 4
	defaultWebhookTimeout = 10 * time.Second

	// maxDrain is how much of a response body is read, and discarded, so
	// that the connection can be reused.
	maxDrain = 4 << 10

	// minSecretLen is the shortest signing key accepted. Standard Webhooks
	// asks for keys of 24 to 64 bytes.
	minSecretLen = 24

	userAgent = "caddy-stepup"
)

// DefaultWebhookTolerance is how far a webhook timestamp may be from the
// receiver's clock, either way, when VerifyWebhook is given no tolerance;
// it is the window Standard Webhooks recommends.
const DefaultWebhookTolerance = 5 * time.Minute

// Errors of VerifyWebhook.
var (
	// ErrWebhookSignature means that no signature in the header matches
	// the message.
	ErrWebhookSignature = errors.New("sender: webhook signature does not match")
	// ErrWebhookTimestamp means that the timestamp is malformed or too far
	// from the receiver's clock (a replay, or a clock out of sync).
	ErrWebhookTimestamp = errors.New("sender: webhook timestamp malformed or outside the tolerance")
)

// WebhookConfig configures a Webhook.
type WebhookConfig struct {
	// URL receives the POST requests. It must be an absolute http or
	// https URL.
	URL string
	// SigningSecret, when set, is a Standard Webhooks secret,
	// "whsec_" and the base64 of a key of at least 24 bytes; requests are
	// then signed with it. See ParseWebhookSecret.
	SigningSecret string
	// Name identifies the sender; default "webhook".
	Name string
	// Client sends the requests. Nil means a client with connect, TLS
	// handshake and response header timeouts that follows no redirect
	// (a redirect is a failure: the code is not re-sent elsewhere). A
	// client given here is used as is.
	Client *http.Client
	// MaxRetryDelay caps the exponential backoff between attempts;
	// default 2s. A Retry-After from the receiver may ask for longer, and
	// is honoured if the deadline allows it.
	MaxRetryDelay time.Duration
	// MaxAttempts bounds the attempts of one Send, the first included;
	// default 4.
	MaxAttempts int
	// Timeout bounds one Send, retries included, when the context has no
	// earlier deadline; default 10s.
	Timeout time.Duration
}

// Webhook sends codes to an HTTP endpoint of the operator's, which passes
// them on to the SMS gateway of its choice.
//
// Each message is one POST of a JSON object:
//
//	{"to":"+14155550100","code":"123456","message":"...","channel":"sms","policy":"checkout","challenge":"ID"}
//
// Every request carries the headers webhook-id (the same on every retry
// of a message, so that the receiver can drop duplicates) and
// webhook-timestamp. With a signing secret it also carries
// webhook-signature, computed the Standard Webhooks way
// (standardwebhooks.com) for each attempt; receivers check it with
// VerifyWebhook or any Standard Webhooks library.
//
// A 2xx answer means sent. 408, 429, 5xx and network errors are retried
// with exponential backoff and full jitter, waiting at least as long as a
// Retry-After header asks, for as long as the context's deadline allows.
// Other answers fail at once. Response bodies are discarded unread: a
// receiver may echo the code.
//
// A Webhook is safe for concurrent use.
type Webhook struct {
	url         string
	key         []byte // nil: requests are not signed
	name        string
	client      *http.Client
	baseDelay   time.Duration
	maxDelay    time.Duration
	maxAttempts int
	timeout     time.Duration
}

var _ Sender = (*Webhook)(nil)

// NewWebhook returns a Webhook for cfg, or an error if the URL or the
// signing secret is malformed.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		// url.Parse quotes the URL, which may hold credentials.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("sender: invalid webhook url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("sender: webhook url must be http or https, not %q", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("sender: webhook url has no host")
	}
	w := &Webhook{
		url:         u.String(),
		name:        cmp.Or(cfg.Name, defaultWebhookName),
		client:      cfg.Client,
		maxDelay:    cfg.MaxRetryDelay,
		maxAttempts: cfg.MaxAttempts,
		timeout:     cfg.Timeout,
	}
	if cfg.SigningSecret != "" {
		if w.key, err = ParseWebhookSecret(cfg.SigningSecret); err != nil {
			return nil, err
		}
	}
	if w.client == nil {
		w.client = defaultWebhookClient()
	}
	if w.maxDelay <= 0 {
		w.maxDelay = defaultMaxRetryDelay
	}
	w.baseDelay = min(defaultRetryBaseDelay, w.maxDelay)
	if w.maxAttempts <= 0 {
		w.maxAttempts = defaultMaxAttempts
	}
	if w.timeout <= 0 {
		w.timeout = defaultWebhookTimeout
	}
	return w, nil
}

func defaultWebhookClient() *http.Client {
	return &http.Client{
		Transport: netretry.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// ParseWebhookSecret decodes a Standard Webhooks signing secret,
// "whsec_" followed by the base64 of the key, and returns the key. Keys
// shorter than 24 bytes are refused. Surrounding white space is ignored.
// The error never contains the secret.
func ParseWebhookSecret(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(strings.TrimSpace(s), "whsec_")
	if !ok {
		return nil, errors.New(`sender: webhook signing secret must have the form "whsec_<base64>"`)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(b64)
	}
	if err != nil {
		return nil, errors.New(`sender: webhook signing secret is not valid base64 after "whsec_"`)
	}
	if len(key) < minSecretLen {
		return nil, fmt.Errorf("sender: webhook signing secret is %d bytes long, want at least %d", len(key), minSecretLen)
	}
	return key, nil
}

// SignWebhook returns the webhook-signature header value for a message:
// "v1," and the standard base64 of HMAC-SHA256(key, id "." timestamp "."
// body), the timestamp being ts in Unix seconds.
func SignWebhook(key []byte, id string, ts time.Time, body []byte) string {
	mac := webhookMAC(key, id, strconv.FormatInt(ts.Unix(), 10), body)
	return "v1," + base64.StdEncoding.EncodeToString(mac)
}

func webhookMAC(key []byte, id, timestamp string, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	io.WriteString(h, id)
	io.WriteString(h, ".")
	io.WriteString(h, timestamp)
	io.WriteString(h, ".")
	h.Write(body)
	return h.Sum(nil)
}

// VerifyWebhook checks a signed webhook as a receiver does: id,
// timestamp and signatureHeader are the values of the webhook-id,
// webhook-timestamp and webhook-signature headers, body the raw request
// body. The header may list several space-separated signatures (during a
// key rotation); one matching "v1" signature is enough. Signatures are
// compared in constant time. A timestamp more than tolerance away from
// now, either way, is refused; a tolerance of zero or less means
// DefaultWebhookTolerance.
//
// The error is ErrWebhookTimestamp or ErrWebhookSignature, possibly
// wrapped.
func VerifyWebhook(key []byte, id, timestamp, signatureHeader string, body []byte, now time.Time, tolerance time.Duration) error {
	if len(key) == 0 {
		return fmt.Errorf("%w: no key", ErrWebhookSignature)
	}
	if tolerance <= 0 {
		tolerance = DefaultWebhookTolerance
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrWebhookTimestamp
	}
	// The distance in seconds, computed in uint64 where it cannot
	// overflow whatever ts and now are.
	var skew uint64
	if sec := now.Unix(); ts < sec {
		skew = uint64(sec) - uint64(ts)
	} else {
		skew = uint64(ts) - uint64(sec)
	}
	if skew > uint64(tolerance/time.Second) {
		return ErrWebhookTimestamp
	}
	want := webhookMAC(key, id, timestamp, body)
	for _, sig := range strings.Fields(signatureHeader) {
		version, b64, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrWebhookSignature
}

// Name returns the name of the sender.
func (w *Webhook) Name() string { return w.name }

// webhookPayload is the JSON body; the field order is the wire format's.
type webhookPayload struct {
	To        string  `json:"to"`
	Code      string  `json:"code"`
	Message   string  `json:"message"`
	Channel   Channel `json:"channel"`
	Policy    string  `json:"policy"`
	Challenge string  `json:"challenge"`
}

// Send posts msg to the webhook, retrying temporary failures while ctx
// and the configured Timeout allow. The error is an *Error; it never
// contains the code, the number or the receiver's answer.
func (w *Webhook) Send(ctx context.Context, msg *Message) error {
	if msg == nil {
		return &Error{Sender: w.name, Msg: "no message"}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(webhookPayload{
		To:        msg.To,
		Code:      msg.Code,
		Message:   msg.Text,
		Channel:   msg.Channel,
		Policy:    msg.Policy,
		Challenge: msg.Challenge,
	}); err != nil {
		return &Error{Sender: w.name, Msg: "encoding the message failed"}
	}
	body := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))

	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()

	id := "msg_" + rand.Text()
	for attempt := 1; ; attempt++ {
		retryAfter, err := w.post(ctx, id, body)
		if err == nil {
			return nil
		}
		if !err.Temporary || ctx.Err() != nil {
			return err
		}
		if attempt >= w.maxAttempts {
			err.Msg += fmt.Sprintf("; gave up after %d attempts", attempt)
			return err
		}
		wait := max(retryAfter, w.backoff(attempt))
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			err.Msg += fmt.Sprintf("; no time left for attempt %d", attempt+1)
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// post makes one attempt. On a retryable answer it also returns how long
// the receiver asked to wait (Retry-After), or 0.
func (w *Webhook) post(ctx context.Context, id string, body []byte) (time.Duration, *Error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return 0, &Error{Sender: w.name, Msg: "building the request failed", Err: err}
	}
	now := time.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	if w.key != nil {
		req.Header.Set("webhook-signature", SignWebhook(w.key, id, now, body))
	}

	resp, err := w.client.Do(req)
	if err != nil {
		// The *url.Error around err repeats the URL, which may hold a
		// token: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		var certErr *tls.CertificateVerificationError
		return 0, &Error{
			Sender:    w.name,
			Temporary: !errors.As(err, &certErr),
			Msg:       "request failed",
			Err:       err,
		}
	}
	// Read a little of the body so that the connection can be reused, but
	// never look at it: a receiver may echo the code.
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	resp.Body.Close()

	switch s := resp.StatusCode; {
	case s >= 200 && s <= 299:
		return 0, nil
	case s == http.StatusRequestTimeout, s == http.StatusTooManyRequests, s >= 500:
		wait := netretry.RetryAfter(resp.Header.Get("Retry-After"), time.Now())
		return wait, &Error{Sender: w.name, Status: s, Temporary: true, Msg: "receiver did not take the message"}
	case s >= 300 && s <= 399:
		return 0, &Error{Sender: w.name, Status: s, Msg: "receiver answered with a redirect, which is not followed"}
	default:
		return 0, &Error{Sender: w.name, Status: s, Msg: "receiver refused the message"}
	}
}

// backoff returns the wait before attempt n+1 (full jitter, up to
// baseDelay·2^(n-1), capped at maxDelay).
func (w *Webhook) backoff(n int) time.Duration {
	return netretry.Backoff(n, w.baseDelay, w.maxDelay)
}
