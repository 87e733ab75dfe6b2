// Package twilio sends codes by SMS through Twilio Programmable Messaging
// (POST /2010-04-01/Accounts/{AccountSid}/Messages.json), as RCS
// messages through a Messaging Service with an RCS sender (RCSSender),
// and reads them aloud in calls through Programmable Voice
// (VoiceSender); it takes Twilio's status callbacks as delivery receipts.
package twilio

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/internal/httpsend"
)

// DefaultEndpoint is Twilio's production API.
const DefaultEndpoint = "https://api.twilio.com"

// maxBody is the longest Body Twilio accepts, in characters.
const maxBody = 1600

// ValidityPeriod bounds, in seconds.
const (
	minValidity = 1
	maxValidity = 36000
)

// Config configures a Sender. Its JSON is the twilio sender's in a
// Caddy config; see sender.Options for the fields every sender has, and
// for the placeholder tags.
type Config struct {
	// Endpoint is the API base URL; default DefaultEndpoint. Regional
	// Twilio endpoints and test servers go here.
	Endpoint string `json:"endpoint,omitempty" placeholder:"optional"`
	// AccountSID is the account ("AC..."); it is always in the URL path.
	AccountSID string `json:"account_sid,omitempty" placeholder:"required"`
	// AuthToken authenticates as the account, unless APIKey is set. It
	// is also what Twilio signs its status callbacks with: delivery
	// receipts need it, even beside an API key.
	AuthToken string `json:"auth_token,omitempty" placeholder:"optional"`
	// APIKey ("SK...") authenticates, with APISecret, as an API key of
	// the account, which can be revoked on its own: the better choice.
	APIKey string `json:"api_key,omitempty" placeholder:"optional"`
	// APISecret is the API key's secret.
	APISecret string `json:"api_secret,omitempty" placeholder:"optional"`
	// From is the sending number (E.164) or alphanumeric sender ID. Set
	// it or MessagingServiceSID, not both.
	From string `json:"from,omitempty" placeholder:"optional"`
	// MessagingServiceSID ("MG...") lets a Messaging Service pick the
	// sender.
	MessagingServiceSID string `json:"messaging_service_sid,omitempty" placeholder:"optional"`
	sender.Options
}

// Validate checks the configuration as written, placeholders
// unresolved: an account, credentials, one sender. New checks the forms
// of the values.
func (c *Config) Validate() error {
	if err := c.Options.Validate("twilio"); err != nil {
		return err
	}
	switch {
	case c.AccountSID == "":
		return errors.New("twilio sender: needs account_sid")
	case (c.APIKey == "") != (c.APISecret == ""):
		return errors.New("twilio sender: set api_key and api_secret together")
	case c.AuthToken == "" && c.APIKey == "":
		return errors.New("twilio sender: credentials missing: needs auth_token, or api_key and api_secret")
	case c.From == "" && c.MessagingServiceSID == "":
		return errors.New("twilio sender: needs from or messaging_service_sid (one of them)")
	case c.From != "" && c.MessagingServiceSID != "":
		return errors.New("twilio sender: needs from or messaging_service_sid, not both")
	}
	return nil
}

// Sender sends codes through Twilio. It is safe for concurrent use.
//
// The message text goes in Body, the code's lifetime in ValidityPeriod
// (at most 36,000 s), so that Twilio drops a message still queued when
// the code has expired, and the message's ReceiptURL, when the sender
// takes receipts (it has the auth token), in StatusCallback. A 201
// answer means accepted; its sid is the message id. Only 429 (Twilio
// code 20429), which Twilio documents as never processed, is retried,
// with backoff and jitter while the deadline allows (see httpsend's
// retry policy); after a 5xx or a 408 Twilio may have sent and billed the
// message, so the error is temporary (a Chain moves on) but the message
// is not sent again through Twilio. Other answers fail at once: numbers
// Twilio cannot or may not reach are sender.Error.Recipient; refused
// credentials, a sender Twilio does not know and a region the account
// may not send to (21408) are sender.Error.Config.
type Sender struct {
	httpsend.Base
	url     string
	user    string
	pass    string
	from    string
	service string
	account string
	token   string // the auth token, which signs status callbacks; "" takes no receipts
}

var (
	_ httpsend.Provider = (*Sender)(nil)
	_ sender.IDSender   = (*Sender)(nil)
	_ sender.Receipter  = (*Sender)(nil)
)

// New returns a Sender for cfg, or an error saying what is missing or
// malformed. Errors never contain a credential.
func New(cfg Config) (*Sender, error) {
	base, err := httpsend.Prepare("twilio", &cfg, cfg.Endpoint, DefaultEndpoint)
	if err != nil {
		return nil, err
	}
	switch {
	case !strings.HasPrefix(cfg.AccountSID, "AC"):
		return nil, errors.New(`twilio sender: account_sid must be an account SID ("AC...")`)
	case cfg.APIKey != "" && !strings.HasPrefix(cfg.APIKey, "SK"):
		return nil, errors.New(`twilio sender: api_key must be an API key SID ("SK...")`)
	case cfg.MessagingServiceSID != "" && !strings.HasPrefix(cfg.MessagingServiceSID, "MG"):
		return nil, errors.New(`twilio sender: messaging_service_sid must be a Messaging Service SID ("MG...")`)
	}
	s := &Sender{
		Base:    httpsend.NewBase(cfg.Options, "twilio", httpsend.Retrier{}),
		url:     base + "/2010-04-01/Accounts/" + url.PathEscape(cfg.AccountSID) + "/Messages.json",
		user:    cfg.AccountSID,
		pass:    cfg.AuthToken,
		from:    cfg.From,
		service: cfg.MessagingServiceSID,
		account: cfg.AccountSID,
		token:   cfg.AuthToken,
	}
	if cfg.APIKey != "" {
		s.user, s.pass = cfg.APIKey, cfg.APISecret
	}
	return s, nil
}

// Channel returns sender.SMS.
func (*Sender) Channel() sender.Channel { return sender.SMS }

// Send posts msg to Twilio. The error is a *sender.Error; it never holds
// the code, the number or Twilio's answer as such (its message is
// redacted of anything that looks like a number).
func (s *Sender) Send(ctx context.Context, msg *sender.Message) error {
	_, err := s.SendWithID(ctx, msg)
	return err
}

// SendWithID is Send, returning the message's sid ("SM...").
func (s *Sender) SendWithID(ctx context.Context, msg *sender.Message) (string, error) {
	if msg == nil {
		return "", &sender.Error{Sender: s.Name(), Msg: "no message"}
	}
	if _, ok := httpsend.E164Digits(msg.To); !ok {
		return "", httpsend.NotE164(s.Name())
	}
	if n := utf8.RuneCountInString(msg.Text); n > maxBody {
		return "", &sender.Error{Sender: s.Name(), Msg: "message text is " + strconv.Itoa(n) + " characters, Twilio takes at most 1600"}
	}
	form := url.Values{}
	form.Set("To", msg.To)
	if s.service != "" {
		form.Set("MessagingServiceSid", s.service)
	} else {
		form.Set("From", s.from)
	}
	form.Set("Body", msg.Text)
	if msg.TTL > 0 {
		secs := min(max(int(msg.TTL/time.Second), minValidity), maxValidity)
		form.Set("ValidityPeriod", strconv.Itoa(secs))
	}
	if msg.ReceiptURL != "" && s.Receipts() {
		form.Set("StatusCallback", msg.ReceiptURL)
	}
	return httpsend.SendID(ctx, &s.Base, httpsend.Request{
		URL:         s.url,
		ContentType: "application/x-www-form-urlencoded",
		Body:        []byte(form.Encode()),
		Header:      func(h http.Header) { h.Set("Authorization", basicAuth(s.user, s.pass)) },
	}, parseResponse)
}

func basicAuth(user, pass string) string {
	r := http.Request{Header: http.Header{}}
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

// apiError is Twilio's error body.
type apiError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

// accepted is the part of Twilio's 201 answer that is kept.
type accepted struct {
	SID string `json:"sid"`
}

// notTaken is what Twilio documents as never processed: 429 alone. A 5xx
// or a 408 may have been sent and billed (httpsend.Response.Failure).
var notTaken = httpsend.Throttled

// Twilio error codes with a meaning for failover.
const (
	codeTooManyRequests = 20429
	codeRegion          = 21408 // permission to send an SMS has not been enabled for the region
)

// recipientCodes are Twilio errors about the destination, not the
// account: the sender works, another destination would go through.
var recipientCodes = map[int]bool{
	21211: true, // invalid 'To' phone number
	21214: true, // 'To' phone number cannot be reached
	21217: true, // phone number does not appear to be valid
	21610: true, // attempt to send to unsubscribed recipient
	21612: true, // the 'To' number is not currently reachable via SMS
	21614: true, // 'To' number is not a valid mobile number
	21635: true, // 'To' number cannot be a landline
}

// configCodes are Twilio errors an operator must fix in the account or
// the configuration.
var configCodes = map[int]bool{
	20003:      true, // authentication failed
	21212:      true, // invalid 'From' number
	21606:      true, // 'From' is not a valid, SMS-capable number of the account
	codeRegion: true,
}

// parseResponse turns Twilio's answer into an outcome.
func parseResponse(name string, resp *httpsend.Response) httpsend.Outcome {
	if resp.Status >= 200 && resp.Status <= 299 {
		var c accepted
		_ = json.Unmarshal(resp.Body, &c)
		return httpsend.Accepted(c.SID)
	}
	var e apiError
	_ = json.Unmarshal(resp.Body, &e)
	se := &sender.Error{Sender: name, Status: resp.Status, Msg: httpsend.WithText("Twilio refused the message", e.Message)}
	if e.Code != 0 {
		se.Code = strconv.Itoa(e.Code)
	}
	if e.Code == codeTooManyRequests {
		se.Msg = httpsend.WithText("Twilio is throttling", e.Message)
		return resp.Retry(se)
	}
	if o, ok := resp.Failure(se, notTaken); ok {
		se.Msg = httpsend.WithText("Twilio is throttling", e.Message)
		if !o.Retry {
			// Maybe sent, and billed: not again through Twilio.
			se.Msg = httpsend.WithText("Twilio failed; the message may have been sent", e.Message)
		}
		return o
	}
	switch {
	case resp.Status >= 300 && resp.Status <= 399:
		se.Msg = "Twilio answered with a redirect, which is not followed"
	case e.Code == codeRegion:
		// The account may not send to this region: an operator must
		// enable it (Messaging > Settings > Geo permissions). Other
		// regions still work, so the breaker does not count it.
		se.Config, se.Recipient = true, true
		se.Msg = httpsend.WithText("Twilio refused the message: the account may not send SMS to this region (enable it in the console's Geo permissions)", e.Message)
	case configCodes[e.Code] || resp.Status == http.StatusUnauthorized:
		se.Config = true
	case recipientCodes[e.Code]:
		se.Recipient = true
	}
	return httpsend.Failed(se, false)
}
