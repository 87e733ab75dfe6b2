// Package vonage sends codes by SMS through the Vonage (formerly Nexmo)
// SMS API (POST /sms/json), reads them aloud in calls through the Voice
// API (VoiceSender) and sends them as RCS messages through the Messages
// API (RCSSender); the last two authenticate with an application's JWT
// (Application).
package vonage

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/internal/httpsend"
)

// DefaultEndpoint is Vonage's production SMS API.
const DefaultEndpoint = "https://rest.nexmo.com"

// Bounds of the ttl parameter, in milliseconds.
const (
	minTTL = 20000
	maxTTL = 604800000
)

// maxClientRef is the longest client-ref Vonage takes.
const maxClientRef = 100

// Config configures a Sender. Its JSON is the vonage sender's in a
// Caddy config; see sender.Options for the fields every sender has, and
// for the placeholder tags.
type Config struct {
	// Endpoint is the API base URL; default DefaultEndpoint.
	Endpoint string `json:"endpoint,omitempty" placeholder:"optional"`
	// APIKey is the account's API key.
	APIKey string `json:"api_key,omitempty" placeholder:"required"`
	// APISecret is the account's API secret.
	APISecret string `json:"api_secret,omitempty" placeholder:"required"`
	// From is the sender: a number or an alphanumeric sender ID (for
	// India, the DLT-registered header).
	From string `json:"from,omitempty" placeholder:"required"`
	// EntityID is the principal entity ID registered on India's DLT
	// platform (entity-id); needed for Indian numbers.
	EntityID string `json:"entity_id,omitempty" placeholder:"optional"`
	// ContentID is the DLT template ID the message text matches
	// (content-id); needed for Indian numbers.
	ContentID string `json:"content_id,omitempty" placeholder:"optional"`
	sender.Options
}

// Validate checks the configuration as written, placeholders
// unresolved: credentials, a sender, both DLT identifiers or neither.
func (c *Config) Validate() error {
	if err := c.Options.Validate("vonage"); err != nil {
		return err
	}
	switch {
	case c.APIKey == "":
		return errors.New("vonage sender: needs api_key and api_secret: api_key is required")
	case c.APISecret == "":
		return errors.New("vonage sender: needs api_key and api_secret: api_secret is required")
	case c.From == "":
		return errors.New("vonage sender: needs from")
	case (c.EntityID == "") != (c.ContentID == ""):
		return errors.New("vonage sender: India DLT needs both entity_id and content_id")
	}
	return nil
}

// Sender sends codes through Vonage. It is safe for concurrent use.
//
// The text goes as type=text when it fits GSM-7 and type=unicode
// otherwise, the code's lifetime as ttl, the challenge id as client-ref.
// Vonage answers HTTP 200 whatever happened: the message is accepted
// only when every part's status is "0". Status 1 (throttled), 5
// (internal error) and 10 (too many binds), and HTTP 408, 429 and 5xx,
// are retried with backoff and jitter while the deadline allows (see
// httpsend's retry policy); the others fail at once.
type Sender struct {
	httpsend.Base
	url       string
	key       string
	secret    string
	from      string
	entityID  string
	contentID string
}

var _ httpsend.Provider = (*Sender)(nil)

// New returns a Sender for cfg, or an error saying what is missing or
// malformed. Errors never contain a credential.
func New(cfg Config) (*Sender, error) {
	base, err := httpsend.Prepare("vonage", &cfg, cfg.Endpoint, DefaultEndpoint)
	if err != nil {
		return nil, err
	}
	return &Sender{
		Base:      httpsend.NewBase(cfg.Options, "vonage", httpsend.Retrier{}),
		url:       base + "/sms/json",
		key:       cfg.APIKey,
		secret:    cfg.APISecret,
		from:      cfg.From,
		entityID:  cfg.EntityID,
		contentID: cfg.ContentID,
	}, nil
}

// Channel returns sender.SMS.
func (*Sender) Channel() sender.Channel { return sender.SMS }

// Send posts msg to Vonage. The error is a *sender.Error; it never holds
// the code, the number or Vonage's answer as such.
func (s *Sender) Send(ctx context.Context, msg *sender.Message) error {
	if msg == nil {
		return &sender.Error{Sender: s.Name(), Msg: "no message"}
	}
	digits, ok := httpsend.E164Digits(msg.To)
	if !ok {
		return httpsend.NotE164(s.Name())
	}
	form := url.Values{}
	form.Set("api_key", s.key)
	form.Set("api_secret", s.secret)
	form.Set("from", s.from)
	form.Set("to", digits)
	form.Set("text", msg.Text)
	if sender.IsGSM7(msg.Text) {
		form.Set("type", "text")
	} else {
		form.Set("type", "unicode")
	}
	if msg.TTL > 0 {
		form.Set("ttl", strconv.FormatInt(min(max(msg.TTL.Milliseconds(), minTTL), maxTTL), 10))
	}
	if ref := msg.Challenge; ref != "" {
		if len(ref) > maxClientRef {
			ref = ref[:maxClientRef]
		}
		form.Set("client-ref", ref)
	}
	if s.entityID != "" {
		form.Set("entity-id", s.entityID)
		form.Set("content-id", s.contentID)
	}
	return httpsend.Send(ctx, &s.Base, httpsend.Request{
		URL:         s.url,
		ContentType: "application/x-www-form-urlencoded",
		Body:        []byte(form.Encode()),
	}, parseResponse)
}

// answer is Vonage's JSON answer; every value is a string.
type answer struct {
	MessageCount string `json:"message-count"`
	Messages     []part `json:"messages"`
}

// part is the outcome of one part of the message.
type part struct {
	Status    string `json:"status"`
	ErrorText string `json:"error-text"`
}

// Vonage statuses worth another attempt: throttled, internal error, too
// many binds.
var retryStatuses = map[string]bool{"1": true, "5": true, "10": true}

// Statuses about the destination: invalid message (unrecognized number
// prefix), number barred, non-whitelisted destination (trial accounts),
// number de-activated.
var recipientStatuses = map[string]bool{"6": true, "7": true, "29": true, "33": true}

// statusText names the statuses that matter, for logs.
var statusText = map[string]string{
	"1":  "throttled",
	"2":  "missing parameters",
	"3":  "invalid parameters",
	"4":  "invalid credentials",
	"5":  "internal error",
	"6":  "invalid message",
	"7":  "number barred",
	"8":  "account barred",
	"9":  "out of credit",
	"10": "too many existing binds",
	"15": "invalid sender address",
	"29": "non-whitelisted destination",
}

// parseResponse turns Vonage's answer into an outcome.
func parseResponse(name string, resp *httpsend.Response) httpsend.Outcome {
	se := &sender.Error{Sender: name, Status: resp.Status}
	switch {
	case httpsend.Retryable(resp.Status):
		se.Msg = "Vonage did not take the message"
		return resp.Retry(se)
	case resp.Status < 200 || resp.Status > 299:
		se.Msg = "Vonage refused the request"
		return httpsend.Failed(se, false)
	}
	se.Status = 0 // always 200: the status that matters is Vonage's
	var a answer
	if err := json.Unmarshal(resp.Body, &a); err != nil || len(a.Messages) == 0 {
		// Maybe sent, maybe not: do not send it twice, let another
		// sender try.
		se.Temporary = true
		se.Msg = "Vonage gave an answer that could not be read"
		return httpsend.Failed(se, false)
	}
	accepted := 0
	var failed *part
	for i := range a.Messages {
		if a.Messages[i].Status == "0" {
			accepted++
		} else if failed == nil {
			failed = &a.Messages[i]
		}
	}
	if failed == nil {
		return httpsend.Outcome{}
	}
	if len(failed.Status) <= 3 {
		se.Code = failed.Status
	}
	what := "Vonage refused the message"
	if t := statusText[failed.Status]; t != "" {
		what += " (" + t + ")"
	}
	se.Msg = httpsend.WithText(what, failed.ErrorText)
	switch {
	case accepted > 0:
		// Some parts left: sending again would duplicate them.
		se.Temporary = true
		se.Msg += "; only " + strconv.Itoa(accepted) + " of " + strconv.Itoa(len(a.Messages)) + " parts accepted"
		return httpsend.Failed(se, false)
	case retryStatuses[failed.Status]:
		se.Temporary = true
		return httpsend.Failed(se, true)
	case recipientStatuses[failed.Status]:
		se.Recipient = true
	}
	return httpsend.Failed(se, false)
}
