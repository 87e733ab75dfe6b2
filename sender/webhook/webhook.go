// Package webhook sends codes to an HTTP endpoint of the operator's (an
// SMS gateway, a queue, a serverless function), which passes them on to
// the provider of its choice: the generic webhook sender.
//
// Each message is one POST of a JSON object:
//
//	{"to":"+14155550100","code":"123456","message":"...","channel":"sms","policy":"checkout","challenge":"ID"}
//
// signed, when a secret is configured, the Standard Webhooks way
// (standardwebhooks.com): receivers check it with sender.VerifyWebhook or
// any Standard Webhooks library. When receipts are asked for, the object
// ends with "receipt_url": where the gateway reports what became of the
// message.
//
// # Receipts
//
// A signed webhook takes delivery receipts: the gateway POSTs to the
// receipt_url it was given a JSON object
//
//	{"message_id":"msg_...","status":"delivered","challenge":"ID","error_code":"30003","provider_status":"DELIVRD","time":"2026-12-06T09:01:00Z"}
//
// signed the Standard Webhooks way with the same secret (its own
// webhook-id, a webhook-timestamp within five minutes of the clock, a
// webhook-signature). message_id is the webhook-id of the send it
// reports on; status is queued, sent, delivered, undelivered, failed,
// read or unknown; the others are optional (challenge as it was sent,
// the gateway's provider's error code and status, when the status was
// reached in RFC 3339). See ParseReceipt.
package webhook

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/internal/httpsend"
)

// Defaults of a Sender.
const (
	defaultMaxRetryDelay  = 2 * time.Second
	defaultRetryBaseDelay = 100 * time.Millisecond
	defaultMaxAttempts    = 4
)

// Config configures a Sender. Its JSON is the webhook sender's in a
// Caddy config; see sender.Options for the fields every sender has, and
// for the placeholder tags. Options.MaxAttempts defaults to 4 here.
type Config struct {
	// URL receives the POST requests. It must be an absolute http or
	// https URL.
	URL string `json:"url,omitempty" placeholder:"required"`
	// SigningSecret, when set, is a Standard Webhooks secret, "whsec_"
	// and the base64 of a key of at least 24 bytes; requests are then
	// signed with it (see sender.ParseWebhookSecret). A placeholder
	// written here must resolve: a secret that comes out empty never
	// leaves the webhook unsigned.
	SigningSecret string `json:"signing_secret,omitempty" placeholder:"required"`
	// MaxRetryDelay caps the exponential backoff between attempts;
	// default 2s. A Retry-After from the receiver may ask for longer, and
	// is honoured if the deadline allows it.
	MaxRetryDelay time.Duration `json:"-"`
	sender.Options
}

// Validate checks the configuration as written, placeholders
// unresolved. New checks the URL and the secret.
func (c *Config) Validate() error {
	if err := c.Options.Validate("webhook"); err != nil {
		return err
	}
	if c.MaxRetryDelay < 0 {
		return errors.New("webhook sender: the retry delay must not be negative")
	}
	return nil
}

// Sender posts codes to the webhook. It is safe for concurrent use.
//
// Every request carries the headers webhook-id (the same on every retry
// of a message, so that the receiver can drop duplicates) and
// webhook-timestamp; with a signing secret also webhook-signature,
// computed for each attempt.
//
// A 2xx answer means sent. The other answers, and the failures, follow
// the retry policy of every HTTP sender: the connection was never made,
// or the receiver answered 408, 429 or 5xx, and the attempt is repeated
// with exponential backoff and full jitter, no sooner than a Retry-After
// header asks, for as long as the attempts and the deadline allow. After
// a timeout, a reset or a dropped connection the receiver may have taken
// the message: it is not sent again through this webhook, since a
// gateway that ignores webhook-id would send a second SMS, and the
// temporary error sends the chain on to the next sender. Other answers
// fail at once, a redirect included (it is not followed). Response
// bodies are never looked at: a receiver may echo the code.
type Sender struct {
	httpsend.Base
	url string
	key []byte // nil: requests are not signed
}

var (
	_ sender.Sender    = (*Sender)(nil)
	_ sender.Regional  = (*Sender)(nil)
	_ sender.Timeouter = (*Sender)(nil)
	_ sender.IDSender  = (*Sender)(nil)
	_ sender.Receipter = (*Sender)(nil)
)

// New returns a Sender for cfg, or an error if the URL or the signing
// secret is malformed. Errors never contain the secret, nor the URL
// (which may hold a token).
func New(cfg Config) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		// url.Parse quotes the URL, which may hold credentials.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("webhook sender: invalid webhook url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("webhook sender: webhook url must be http or https, not %q", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("webhook sender: webhook url has no host")
	}
	s := &Sender{
		Base: httpsend.NewBase(cfg.Options, "webhook", retrier(cfg)),
		url:  u.String(),
	}
	if cfg.SigningSecret != "" {
		if s.key, err = sender.ParseWebhookSecret(cfg.SigningSecret); err != nil {
			return nil, fmt.Errorf("webhook sender: %w", err)
		}
	}
	return s, nil
}

// retrier returns the webhook's retrier: more attempts than a provider's,
// sooner, since the receiver is usually close.
func retrier(cfg Config) httpsend.Retrier {
	maxDelay := cfg.MaxRetryDelay
	if maxDelay <= 0 {
		maxDelay = defaultMaxRetryDelay
	}
	return httpsend.Retrier{
		MaxAttempts: defaultMaxAttempts,
		BaseDelay:   min(defaultRetryBaseDelay, maxDelay),
		MaxDelay:    maxDelay,
	}
}

// payload is the JSON body; the field order is the wire format's.
type payload struct {
	To        string         `json:"to"`
	Code      string         `json:"code"`
	Message   string         `json:"message"`
	Channel   sender.Channel `json:"channel"`
	Policy    string         `json:"policy"`
	Challenge string         `json:"challenge"`
	// ReceiptURL is where the gateway reports delivery; only when the
	// sender takes receipts and the chain asked for them.
	ReceiptURL string `json:"receipt_url,omitempty"`
}

// Send posts msg to the webhook, repeating attempts as the retry policy
// allows within ctx and the configured timeout. The error is a
// *sender.Error; it never contains the code, the number or the
// receiver's answer.
func (s *Sender) Send(ctx context.Context, msg *sender.Message) error {
	_, err := s.SendWithID(ctx, msg)
	return err
}

// SendWithID is Send, returning the message's webhook-id ("msg_..."),
// which the gateway's receipts name as message_id.
func (s *Sender) SendWithID(ctx context.Context, msg *sender.Message) (string, error) {
	if msg == nil {
		return "", &sender.Error{Sender: s.Name(), Msg: "no message"}
	}
	p := payload{
		To:        msg.To,
		Code:      msg.Code,
		Message:   msg.Text,
		Channel:   msg.Channel,
		Policy:    msg.Policy,
		Challenge: msg.Challenge,
	}
	if s.Receipts() {
		p.ReceiptURL = msg.ReceiptURL
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return "", &sender.Error{Sender: s.Name(), Msg: "encoding the message failed"}
	}
	body := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	id := "msg_" + rand.Text()
	err := httpsend.Send(ctx, &s.Base, httpsend.Request{
		URL:         s.url,
		ContentType: "application/json",
		Body:        body,
		Header: func(h http.Header) {
			now := time.Now()
			h.Set("webhook-id", id)
			h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
			if s.key != nil {
				h.Set("webhook-signature", sender.SignWebhook(s.key, id, now, body))
			}
		},
	}, parseResponse)
	if err != nil {
		return "", err
	}
	return id, nil
}

// parseResponse turns the receiver's answer into an outcome, from its
// status alone.
func parseResponse(name string, resp *httpsend.Response) httpsend.Outcome {
	se := &sender.Error{Sender: name, Status: resp.Status}
	switch s := resp.Status; {
	case s >= 200 && s <= 299:
		return httpsend.Outcome{}
	case s >= 300 && s <= 399:
		se.Msg = "receiver answered with a redirect, which is not followed"
		return httpsend.Failed(se, false)
	}
	if o, ok := resp.Failure(se, httpsend.Retryable); ok {
		se.Msg = "receiver did not take the message"
		return o
	}
	se.Msg = "receiver refused the message"
	return httpsend.Failed(se, false)
}
