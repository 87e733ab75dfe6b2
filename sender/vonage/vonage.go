// Package vonage sends codes by SMS through the Vonage (formerly Nexmo)
// SMS API (POST /sms/json), signed when the account has a signature
// secret, reads them aloud in calls through the Voice API (VoiceSender)
// and sends them as RCS messages through the Messages API (RCSSender);
// the last two authenticate with an application's JWT (Application). It
// takes Vonage's delivery receipts.
package vonage

import (
	"cmp"
	"context"
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

// DefaultEndpoint is Vonage's production SMS API.
const DefaultEndpoint = "https://rest.nexmo.com"

// Bounds of the ttl parameter, in milliseconds.
const (
	minTTL = 20000
	maxTTL = 604800000
)

// maxClientRef is the longest client-ref Vonage takes.
const maxClientRef = 100

// maxCallback is the longest callback URL Vonage takes with a message;
// a longer receipt URL goes in the dashboard instead.
const maxCallback = 100

// Config configures a Sender. Its JSON is the vonage sender's in a
// Caddy config; see sender.Options for the fields every sender has, and
// for the placeholder tags.
type Config struct {
	// Endpoint is the API base URL; default DefaultEndpoint.
	Endpoint string `json:"endpoint,omitempty" placeholder:"optional"`
	// APIKey is the account's API key.
	APIKey string `json:"api_key,omitempty" placeholder:"required"`
	// APISecret is the account's API secret. Not needed, and not sent,
	// with SignatureSecret.
	APISecret string `json:"api_secret,omitempty" placeholder:"optional"`
	// SignatureSecret is the account's signature secret (dashboard,
	// API settings). When set, every request is signed with it (a sig
	// and a timestamp instead of api_secret, as accounts that require
	// signed requests want), and delivery receipts must carry a valid
	// sig.
	SignatureSecret string `json:"signature_secret,omitempty" placeholder:"optional"`
	// SignatureMethod is the account's signing method, as set in the
	// dashboard: "md5hash" (the default), "md5", "sha1", "sha256" or
	// "sha512" (HMAC).
	SignatureMethod string `json:"signature_method,omitempty"`
	// ReceiptToken, for an account without signed receipts, is a secret
	// the sender adds to its receipt URL (?stepup_token=...): unsigned
	// receipts are accepted only when they carry it. Without it, and
	// without SignatureSecret, the sender takes no receipts.
	ReceiptToken string `json:"receipt_token,omitempty" placeholder:"optional"`
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
		return errors.New("vonage sender: needs api_key, and api_secret or signature_secret: api_key is required")
	case c.APISecret == "" && c.SignatureSecret == "":
		return errors.New("vonage sender: needs api_key, and api_secret or signature_secret")
	case c.SignatureMethod != "" && c.SignatureSecret == "":
		return errors.New("vonage sender: signature_method needs signature_secret")
	case !validMethod(c.SignatureMethod):
		return fmt.Errorf("vonage sender: signature_method %q: want md5hash, md5, sha1, sha256 or sha512", c.SignatureMethod)
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
// otherwise, the code's lifetime as ttl, the challenge id as client-ref,
// and the message's ReceiptURL, when the sender takes receipts, as
// callback. With a signature secret the request is signed (sig and
// timestamp) and carries no api_secret. Vonage answers HTTP 200
// whatever happened: the message is accepted only when every part's
// status is "0", and the first part's message-id is the message id.
// Status 1 (throttled), 5 (internal error) and 10 (too many binds), and
// HTTP 408, 429 and 5xx, are retried with backoff and jitter while the
// deadline allows (see httpsend's retry policy); the others fail at
// once, credentials, signature, credit and sender errors as
// sender.Error.Config.
type Sender struct {
	httpsend.Base
	url       string
	key       string
	secret    string
	sigSecret string // "": requests are not signed
	sigMethod string
	token     string // the receipt URL token, for unsigned receipts
	from      string
	entityID  string
	contentID string
	now       func() time.Time
}

var (
	_ httpsend.Provider    = (*Sender)(nil)
	_ sender.IDSender      = (*Sender)(nil)
	_ sender.Receipter     = (*Sender)(nil)
	_ sender.TemplateBound = (*Sender)(nil)
)

// New returns a Sender for cfg, or an error saying what is missing or
// malformed. Errors never contain a credential.
func New(cfg Config) (*Sender, error) {
	base, err := httpsend.Prepare("vonage", &cfg, cfg.Endpoint, DefaultEndpoint)
	if err != nil {
		return nil, err
	}
	if cfg.ReceiptToken != "" {
		if err := httpsend.CheckTokenOption("vonage", cfg.ReceiptToken); err != nil {
			return nil, err
		}
	}
	return &Sender{
		Base:      httpsend.NewBase(cfg.Options, "vonage", httpsend.Retrier{}),
		url:       base + "/sms/json",
		key:       cfg.APIKey,
		secret:    cfg.APISecret,
		sigSecret: cfg.SignatureSecret,
		sigMethod: cmp.Or(cfg.SignatureMethod, MD5Hash),
		token:     cfg.ReceiptToken,
		from:      cfg.From,
		entityID:  cfg.EntityID,
		contentID: cfg.ContentID,
		now:       time.Now,
	}, nil
}

// Channel returns sender.SMS.
func (*Sender) Channel() sender.Channel { return sender.SMS }

// TemplateBound reports whether the sender carries India's DLT
// identifiers: its texts must then match the registered template.
func (s *Sender) TemplateBound() bool { return s.entityID != "" }

// Send posts msg to Vonage. The error is a *sender.Error; it never holds
// the code, the number or Vonage's answer as such.
func (s *Sender) Send(ctx context.Context, msg *sender.Message) error {
	_, err := s.SendWithID(ctx, msg)
	return err
}

// SendWithID is Send, returning the message-id of the message's first
// part (a long text goes in parts, each with its own id and receipt).
func (s *Sender) SendWithID(ctx context.Context, msg *sender.Message) (string, error) {
	if msg == nil {
		return "", &sender.Error{Sender: s.Name(), Msg: "no message"}
	}
	digits, ok := httpsend.E164Digits(msg.To)
	if !ok {
		return "", httpsend.NotE164(s.Name())
	}
	form := url.Values{}
	form.Set("api_key", s.key)
	if s.sigSecret == "" {
		form.Set("api_secret", s.secret)
	}
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
	if cb := s.callback(msg.ReceiptURL); cb != "" {
		form.Set("callback", cb)
	}
	if s.sigSecret != "" {
		// Signed once per Send: the timestamp stays within Vonage's
		// five minutes for every retry of the budget (at most 2m).
		form.Set("timestamp", strconv.FormatInt(s.now().Unix(), 10))
		form.Set("sig", Sign(s.sigMethod, s.sigSecret, flatten(form)))
	}
	return httpsend.SendID(ctx, &s.Base, httpsend.Request{
		URL:         s.url,
		ContentType: "application/x-www-form-urlencoded",
		Body:        []byte(form.Encode()),
	}, parseResponse)
}

// callback returns the callback to send for receipt URL u: u, with the
// receipt token when receipts are not signed; "" when the sender takes
// no receipts or the URL is longer than Vonage takes (then set it in the
// dashboard).
func (s *Sender) callback(u string) string {
	if u == "" || !s.Receipts() {
		return ""
	}
	if s.sigSecret == "" {
		u = httpsend.WithToken(u, s.token)
	}
	if len(u) > maxCallback {
		return ""
	}
	return u
}

// flatten returns the first value of each parameter of form.
func flatten(form url.Values) map[string]string {
	m := make(map[string]string, len(form))
	for k, v := range form {
		m[k] = v[0]
	}
	return m
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
	MessageID string `json:"message-id"`
}

// Vonage statuses worth another attempt: throttled, internal error, too
// many binds.
var retryStatuses = map[string]bool{"1": true, "5": true, "10": true}

// Statuses about the destination: invalid message (unrecognized number
// prefix), number barred, non-whitelisted destination (trial accounts),
// number de-activated.
var recipientStatuses = map[string]bool{"6": true, "7": true, "29": true, "33": true}

// Statuses an operator must fix: bad credentials, account barred, out
// of credit, invalid signature, invalid sender address.
var configStatuses = map[string]bool{"4": true, "8": true, "9": true, "14": true, "15": true}

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
	"14": "invalid signature",
	"15": "invalid sender address",
	"29": "non-whitelisted destination",
}

// parseResponse turns Vonage's answer into an outcome.
func parseResponse(name string, resp *httpsend.Response) httpsend.Outcome {
	se := &sender.Error{Sender: name, Status: resp.Status}
	if o, ok := resp.Failure(se, httpsend.Retryable); ok {
		se.Msg = "Vonage did not take the message"
		return o
	}
	if resp.Status < 200 || resp.Status > 299 {
		se.Msg = "Vonage refused the request"
		se.Config = resp.Status == http.StatusUnauthorized
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
		return httpsend.Accepted(a.Messages[0].MessageID)
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
	case configStatuses[failed.Status]:
		se.Config = true
	}
	return httpsend.Failed(se, false)
}
