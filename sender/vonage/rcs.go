package vonage

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"unicode/utf8"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/internal/httpsend"
)

// Bounds of an RCS message's ttl, in seconds, and of its text.
const (
	minRCSTTL  = 300
	maxRCSTTL  = 259200
	maxRCSText = 3072
)

var agentRE = regexp.MustCompile(`^[a-zA-Z0-9_&-]+$`)

// RCSConfig configures an RCSSender. Its JSON is the vonage_rcs sender's
// in a Caddy config; see sender.Options for the fields every sender has,
// and for the placeholder tags.
type RCSConfig struct {
	// Endpoint is the API base URL; default DefaultAPIEndpoint.
	Endpoint string `json:"endpoint,omitempty" placeholder:"optional"`
	// Application authenticates with the application's JWT: the better
	// choice. Set it, or APIKey and APISecret.
	Application
	// APIKey is the account's API key, for HTTP Basic authentication.
	APIKey string `json:"api_key,omitempty" placeholder:"optional"`
	// APISecret is the account's API secret.
	APISecret string `json:"api_secret,omitempty" placeholder:"optional"`
	// From is the RCS agent ID that sends.
	From string `json:"from,omitempty" placeholder:"required"`
	sender.Options
}

// Validate checks the configuration as written, placeholders
// unresolved: one kind of credentials, an agent. NewRCS checks the
// forms of the values and reads the key.
func (c *RCSConfig) Validate() error {
	if err := c.Options.Validate("vonage_rcs"); err != nil {
		return err
	}
	basic := c.APIKey != "" || c.APISecret != ""
	switch {
	case basic && c.configured():
		return errors.New("vonage_rcs sender: set application_id and its private key, or api_key and api_secret, not both")
	case basic && (c.APIKey == "" || c.APISecret == ""):
		return errors.New("vonage_rcs sender: needs api_key and api_secret (both)")
	case !basic && !c.configured():
		return errors.New("vonage_rcs sender: credentials missing: needs application_id and private_key (or private_key_file), or api_key and api_secret")
	case !basic:
		if err := c.validate("vonage_rcs"); err != nil {
			return err
		}
	}
	if c.From == "" {
		return errors.New("vonage_rcs sender: needs from (the RCS agent ID)")
	}
	return nil
}

// RCSSender sends codes as RCS business messages through the Vonage
// Messages API (POST /v1/messages, channel rcs), authenticated with the
// application's JWT or the account's key and secret. It is safe for
// concurrent use.
//
// The message text goes as it is, the code's lifetime as ttl (at least
// 300 s, Vonage's minimum) and the challenge id as client_ref. A 202
// answer means Vonage took the message, not that the phone can show
// RCS: that comes later, in the message's status (rejected or
// undeliverable). 408, 429 (error 1000) and 5xx are retried with
// backoff and jitter while the deadline allows (see httpsend's retry
// policy); other answers fail at once, with the fragment of the error's
// type as its code ("1150", "unauthorized").
type RCSSender struct {
	httpsend.Base
	tokens *tokenSigner // nil: Basic
	basic  string
	url    string
	from   string
}

var _ httpsend.Provider = (*RCSSender)(nil)

// NewRCS returns an RCSSender for cfg, or an error saying what is
// missing or malformed. It reads the private key; errors never contain
// a credential.
func NewRCS(cfg RCSConfig) (*RCSSender, error) {
	base, err := httpsend.Prepare("vonage_rcs", &cfg, cfg.Endpoint, DefaultAPIEndpoint)
	if err != nil {
		return nil, err
	}
	if !agentRE.MatchString(cfg.From) {
		return nil, errors.New("vonage_rcs sender: from must be an RCS agent ID (letters, digits, '-', '_', '&')")
	}
	s := &RCSSender{
		Base: httpsend.NewBase(cfg.Options, "vonage_rcs", httpsend.Retrier{}),
		url:  base + "/v1/messages",
		from: cfg.From,
	}
	if cfg.APIKey != "" {
		r := http.Request{Header: http.Header{}}
		r.SetBasicAuth(cfg.APIKey, cfg.APISecret)
		s.basic = r.Header.Get("Authorization")
		return s, nil
	}
	if s.tokens, err = cfg.tokens("vonage_rcs"); err != nil {
		return nil, err
	}
	return s, nil
}

// Channel returns sender.RCS.
func (*RCSSender) Channel() sender.Channel { return sender.RCS }

// rcsRequest is the request body; the field order is the documented
// one.
type rcsRequest struct {
	MessageType string `json:"message_type"`
	Channel     string `json:"channel"`
	To          string `json:"to"`
	From        string `json:"from"`
	Text        string `json:"text"`
	TTL         int64  `json:"ttl,omitempty"`
	ClientRef   string `json:"client_ref,omitempty"`
}

// Send posts msg to Vonage. The error is a *sender.Error; it never
// holds the code, the number or Vonage's answer as such.
func (s *RCSSender) Send(ctx context.Context, msg *sender.Message) error {
	if msg == nil {
		return &sender.Error{Sender: s.Name(), Msg: "no message"}
	}
	to, ok := httpsend.E164Digits(msg.To)
	if !ok {
		return httpsend.NotE164(s.Name())
	}
	if n := utf8.RuneCountInString(msg.Text); n > maxRCSText {
		return &sender.Error{Sender: s.Name(), Msg: "message text is " + strconv.Itoa(n) + " characters, Vonage takes at most 3072"}
	}
	req := rcsRequest{MessageType: "text", Channel: "rcs", To: to, From: s.from, Text: msg.Text}
	if secs := int64(msg.TTL.Seconds()); secs > 0 {
		req.TTL = min(max(secs, minRCSTTL), maxRCSTTL)
	}
	if ref := msg.Challenge; ref != "" {
		if len(ref) > maxClientRef {
			ref = ref[:maxClientRef]
		}
		req.ClientRef = ref
	}
	body, err := json.Marshal(req)
	if err != nil {
		return &sender.Error{Sender: s.Name(), Msg: "encoding the message failed", Err: err}
	}
	header := func(h http.Header) { h.Set("Authorization", s.basic) }
	if s.tokens != nil {
		var serr *sender.Error
		if header, serr = s.tokens.bearer(s.Name()); serr != nil {
			return serr
		}
	}
	return httpsend.Send(ctx, &s.Base, httpsend.Request{
		URL:         s.url,
		ContentType: "application/json",
		Body:        body,
		Header:      header,
	}, parseMessagesResponse)
}

// Messages API error codes: throttled (1000), and those about the
// destination: an unrecognised number prefix (1040), a barred number
// (1050).
var (
	messagesRetryCodes     = map[string]bool{"1000": true}
	messagesRecipientCodes = map[string]bool{"1040": true, "1050": true}
)

// parseMessagesResponse turns the Messages API's answer into an
// outcome.
func parseMessagesResponse(name string, resp *httpsend.Response) httpsend.Outcome {
	return parseProblem(name, "the message", resp, messagesRetryCodes, messagesRecipientCodes)
}
