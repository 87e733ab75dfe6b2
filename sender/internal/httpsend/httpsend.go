// Package httpsend holds what the senders of package sender share: the
// Base every provider's Sender embeds (name, budget, regions, client,
// retrier), a default client, one request with a bounded answer, the
// retry policy, endpoint checks and the redaction of provider texts that
// may quote a number or a code.
//
// # Retry policy
//
// One policy for every HTTP sender, the generic webhook and the
// providers alike. An attempt is repeated, with the same message (for
// the webhook, the same webhook-id), after an exponential backoff with
// full jitter and no sooner than a Retry-After header asks, for as long
// as the attempts and the deadline allow, only when the message was not
// taken:
//
//   - the connection was never made (refused, a failed DNS lookup);
//   - the answer says that the message was not taken: an HTTP status
//     the provider documents so, or its own throttling code.
//
// Which HTTP statuses say "not taken" is each provider's word, which
// its parser gives Response.Failure, where the policy is applied in one
// place: Retryable (408, 429 and 5xx) for the webhook, whose receivers
// drop a repeated webhook-id, and for Vonage, MSG91 and the Graph API,
// whose errors are in their answers' bodies; Throttled (429 alone) for
// Twilio, which documents only 429 (20429) as never processed. Another
// 408 or 5xx is Ambiguous: the message may have been sent and billed,
// and is not sent again through the same sender.
//
// After a timeout, a reset or a dropped connection, the request may have
// reached the receiver, which may deliver it: the attempt is not
// repeated, since a gateway that ignores webhook-id, or a provider
// without an idempotency key, would send a second SMS. The error is
// temporary, so a Chain goes on to its next sender. (A connection that
// turns out to be stale before anything was written is retried by
// net/http itself.)
package httpsend

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/internal/netretry"
)

// UserAgent is sent with every request.
const UserAgent = "caddy-stepup"

// MaxBody is how much of an answer is read; providers answer in far less.
const MaxBody = 64 << 10

// DefaultTimeout bounds one Send of a provider, retries included, when
// its configuration gives none.
const DefaultTimeout = 10 * time.Second

// DefaultMaxAttempts is how many attempts one Send makes at most.
const DefaultMaxAttempts = 3

// DefaultClient returns a client on Transport that follows no redirect: a
// provider that redirects is misconfigured, and the credentials must not
// follow.
func DefaultClient() *http.Client {
	return &http.Client{
		Transport: netretry.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Endpoint checks a provider base URL: absolute http or https, a host, no
// query, fragment or user info. It returns the URL without a trailing
// slash, or def when raw is empty. The error never quotes the URL.
func Endpoint(raw, def string) (string, error) {
	if raw == "" {
		raw = def
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("invalid endpoint: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("endpoint must be an http or https URL, not %q", u.Scheme)
	case u.Host == "":
		return "", errors.New("endpoint has no host")
	case u.User != nil:
		return "", errors.New("endpoint must not carry credentials; use the credential options")
	case u.RawQuery != "" || u.Fragment != "":
		return "", errors.New("endpoint must not have a query or a fragment")
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// Prepare starts a provider's New: it validates cfg, then checks its
// endpoint as Endpoint does, and returns the endpoint's base URL. Its
// errors start with "<kind> sender: ".
func Prepare(kind string, cfg interface{ Validate() error }, endpoint, def string) (string, error) {
	if err := cfg.Validate(); err != nil {
		return "", err
	}
	base, err := Endpoint(endpoint, def)
	if err != nil {
		return "", fmt.Errorf("%s sender: %w", kind, err)
	}
	return base, nil
}

// Response is a provider's answer, its body read up to MaxBody.
type Response struct {
	// Status is the HTTP status code.
	Status int
	// Header holds the response headers.
	Header http.Header
	// Body is the start of the body, at most MaxBody bytes.
	Body []byte
}

// Retryable reports whether an HTTP status says that the message was not
// taken and may be sent again: 408 (the request did not arrive in
// time), 429 (throttled) and 5xx.
func Retryable(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}

// Throttled reports whether an HTTP status is 429 alone: the statuses
// that say "not taken" for providers that document nothing else as
// never processed (Twilio).
func Throttled(status int) bool { return status == http.StatusTooManyRequests }

// Ambiguous returns an Outcome for a failure after which the provider
// may have sent the message (a 5xx from a provider that does not say it
// was not taken): temporary, so that a Chain moves on, and not retried
// by the same sender, which could send it, and bill it, twice.
func Ambiguous(se *sender.Error) Outcome {
	se.Temporary = true
	return Outcome{Err: se}
}

// Failure returns the Outcome of a failed answer as its HTTP status
// alone tells it, by the provider's notTaken (Retryable or Throttled):
// retried, no sooner than Retry-After, when notTaken says the message was
// not taken; else, for a 408 or a 5xx, Ambiguous. ok is false for the
// other statuses, which the provider's parser reads itself. se is marked
// temporary when ok.
func (r *Response) Failure(se *sender.Error, notTaken func(status int) bool) (o Outcome, ok bool) {
	switch {
	case notTaken(r.Status):
		return r.Retry(se), true
	case r.Status == http.StatusRequestTimeout || r.Status >= 500:
		return Ambiguous(se), true
	}
	return Outcome{}, false
}

// Retry returns an Outcome that retries se, marked temporary, no sooner
// than the answer's Retry-After asks.
func (r *Response) Retry(se *sender.Error) Outcome {
	se.Temporary = true
	return Outcome{Err: se, Retry: true, After: netretry.RetryAfter(r.Header.Get("Retry-After"), time.Now())}
}

// Post sends one request and reads the answer. The error is the
// transport's, without the *url.Error around it (which repeats the URL).
func Post(ctx context.Context, client *http.Client, rawURL, contentType string, header http.Header, body []byte) (*Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// Outcome is the result of one attempt.
type Outcome struct {
	// Err is nil when the provider accepted the message.
	Err *sender.Error
	// Retry says that the same sender may try again: the provider said
	// it did not process the message (throttling, 5xx) or the connection
	// was never made.
	Retry bool
	// After is how long the provider asked to wait (Retry-After), or 0.
	After time.Duration
	// ID is, on success, the provider's id of the accepted message, when
	// its answer gives one.
	ID string
}

// Accepted returns the Outcome of an accepted message with the
// provider's id, "" when it gave none.
func Accepted(id string) Outcome { return Outcome{ID: id} }

// Failed returns an Outcome for err, retried if retry.
func Failed(err *sender.Error, retry bool) Outcome { return Outcome{Err: err, Retry: retry} }

// TransportFailure classifies an error of Post. Every transport failure
// is temporary, except a certificate that does not verify. Only a
// connection that was never made is retried: after a reset, a dropped
// connection or a timeout the receiver may have taken the message, and a
// retry would send it twice (see the package's retry policy).
func TransportFailure(name string, err error) Outcome {
	se := &sender.Error{Sender: name, Temporary: true, Msg: "request failed", Err: err}
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		se.Temporary = false
		se.Msg = "the provider's certificate does not verify"
		return Outcome{Err: se}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		se.Msg = "timed out"
		return Outcome{Err: se}
	}
	var opErr *net.OpError
	retry := errors.As(err, &opErr) && opErr.Op == "dial"
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		retry = true
	}
	return Outcome{Err: se, Retry: retry}
}

// Retrier runs attempts with exponential backoff and full jitter.
type Retrier struct {
	// MaxAttempts bounds the attempts, the first included; 0 means
	// DefaultMaxAttempts.
	MaxAttempts int
	// BaseDelay is the backoff before the second attempt; 0 means 200ms.
	BaseDelay time.Duration
	// MaxDelay caps the backoff; 0 means 2s. A provider's Retry-After may
	// ask for longer and is honoured when the deadline allows it.
	MaxDelay time.Duration
}

// Do calls attempt until it succeeds, fails without Retry, runs out of
// attempts, or the context's deadline leaves no room for the wait before
// the next one. It returns nil or the last attempt's *sender.Error.
func (r Retrier) Do(ctx context.Context, attempt func(ctx context.Context, n int) Outcome) error {
	_, err := r.DoID(ctx, attempt)
	return err
}

// DoID is Do, returning as well the successful attempt's Outcome.ID.
func (r Retrier) DoID(ctx context.Context, attempt func(ctx context.Context, n int) Outcome) (string, error) {
	maxAttempts := r.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = DefaultMaxAttempts
	}
	for n := 1; ; n++ {
		o := attempt(ctx, n)
		if o.Err == nil {
			return o.ID, nil
		}
		if !o.Retry || ctx.Err() != nil {
			return "", o.Err
		}
		if n >= maxAttempts {
			o.Err.Msg += fmt.Sprintf("; gave up after %d attempts", n)
			return "", o.Err
		}
		wait := max(o.After, r.Backoff(n))
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			o.Err.Msg += fmt.Sprintf("; no time left for attempt %d", n+1)
			return "", o.Err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", o.Err
		case <-t.C:
		}
	}
}

// Backoff returns the wait after attempt n (1 for the first): full
// jitter up to BaseDelay·2^(n-1), capped at MaxDelay.
func (r Retrier) Backoff(n int) time.Duration {
	return netretry.Backoff(n, r.BaseDelay, r.MaxDelay)
}

// Base is what every provider's Sender has: its name, its budget for one
// Send, its regions, its client and its retrier. A Sender embeds it, and
// so has its Name, Timeout and Countries methods; Send and Do run
// attempts with it.
type Base struct {
	name      string
	timeout   time.Duration
	countries []string
	client    *http.Client
	retry     Retrier
}

// NewBase returns the Base of a sender configured with o: named name
// unless o names it, with DefaultTimeout unless o sets one, DefaultClient
// unless o gives one, and retry, whose MaxAttempts o may replace.
func NewBase(o sender.Options, name string, retry Retrier) Base {
	regions, _ := sender.ParseRegions(o.CountryCodes) // Options.Validate refused bad ones
	b := Base{
		name:      cmp.Or(o.Name, name),
		timeout:   cmp.Or(time.Duration(o.SendTimeout), DefaultTimeout),
		countries: regions,
		client:    o.Client,
		retry:     retry,
	}
	if o.MaxAttempts > 0 {
		b.retry.MaxAttempts = o.MaxAttempts
	}
	if b.client == nil {
		b.client = DefaultClient()
	}
	return b
}

// Name returns the sender's name.
func (b *Base) Name() string { return b.name }

// Timeout returns the budget of one Send, retries included.
func (b *Base) Timeout() time.Duration { return b.timeout }

// Countries returns the regions the sender serves; none means every
// region (see sender.Regional).
func (b *Base) Countries() []string { return b.countries }

// Provider is what every provider's Sender is, through its Base and its
// own Channel and Send: a sender of one channel, with its budget and its
// regions. It serves the providers' interface guards.
type Provider interface {
	sender.Sender
	sender.Channeler
	sender.Regional
	sender.Timeouter
}

// Request is a message for an HTTP provider: the same bytes on every
// attempt.
type Request struct {
	// URL receives the POST.
	URL string
	// ContentType is the body's media type.
	ContentType string
	// Body is the request body.
	Body []byte
	// Header, when set, sets headers of each attempt: credentials, or a
	// signature over a fresh timestamp.
	Header func(http.Header)
}

// Send posts r with b's client, within b's budget, repeating attempts as
// the retry policy says; parse turns each answer into an Outcome. It
// returns nil or the last attempt's *sender.Error.
func Send(ctx context.Context, b *Base, r Request, parse func(name string, resp *Response) Outcome) error {
	_, err := SendID(ctx, b, r, parse)
	return err
}

// SendID is Send, returning as well the provider's id of the accepted
// message (the Outcome.ID parse gave).
func SendID(ctx context.Context, b *Base, r Request, parse func(name string, resp *Response) Outcome) (string, error) {
	return DoID(ctx, b, func(ctx context.Context) Outcome {
		header := http.Header{}
		if r.Header != nil {
			r.Header(header)
		}
		resp, err := Post(ctx, b.client, r.URL, r.ContentType, header, r.Body)
		if err != nil {
			return TransportFailure(b.name, err)
		}
		return parse(b.name, resp)
	})
}

// Do runs attempt with b's retrier, within b's budget: what Send does,
// for a sender that is not HTTP.
func Do(ctx context.Context, b *Base, attempt func(ctx context.Context) Outcome) error {
	_, err := DoID(ctx, b, attempt)
	return err
}

// DoID is Do, returning as well the successful attempt's Outcome.ID.
func DoID(ctx context.Context, b *Base, attempt func(ctx context.Context) Outcome) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.retry.DoID(ctx, func(ctx context.Context, _ int) Outcome { return attempt(ctx) })
}

// E164Digits returns the digits of an E.164 number ("+" and 2 to 15
// digits, the first not 0), without the "+", and whether s is one.
func E164Digits(s string) (string, bool) {
	if len(s) < 3 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return "", false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", false
		}
	}
	return s[1:], true
}

// NotE164 is the error for a destination that is not an E.164 number.
func NotE164(name string) *sender.Error {
	return &sender.Error{Sender: name, Recipient: true, Msg: "destination is not a phone number in E.164 form"}
}

// WithText returns what, followed by ": " and the provider's redacted
// text when there is one.
func WithText(what, providerText string) string {
	if t := Redact(providerText); t != "" {
		return what + ": " + t
	}
	return what
}
