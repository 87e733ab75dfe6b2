package twilio

import (
	"context"
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

// The values of RCSConfig.Fallback.
const (
	// FallbackSMS lets the Messaging Service send an SMS when the phone
	// cannot take RCS (Twilio's default).
	FallbackSMS = "sms"
	// FallbackNone sends by RCS only: to "rcs:+14155550100".
	FallbackNone = "none"
)

// RCSConfig configures an RCSSender. Its JSON is the twilio_rcs sender's
// in a Caddy config; see sender.Options for the fields every sender has,
// and for the placeholder tags.
type RCSConfig struct {
	// Endpoint is the API base URL; default DefaultEndpoint.
	Endpoint string `json:"endpoint,omitempty" placeholder:"optional"`
	Account
	// MessagingServiceSID ("MG...") is the Messaging Service whose
	// sender pool holds the RCS sender (and, for the fallback, SMS
	// senders).
	MessagingServiceSID string `json:"messaging_service_sid,omitempty" placeholder:"required"`
	// Fallback is FallbackSMS (the default) or FallbackNone.
	Fallback string `json:"fallback,omitempty"`
	// FallbackFrom is the SMS sender the fallback uses (a number of the
	// account, an alphanumeric sender ID or a short code), instead of
	// one the service picks.
	FallbackFrom string `json:"fallback_from,omitempty" placeholder:"optional"`
	sender.Options
}

// Validate checks the configuration as written, placeholders
// unresolved: an account and its credentials, a Messaging Service, a
// known fallback. NewRCS checks the forms of the values.
func (c *RCSConfig) Validate() error {
	if err := c.Options.Validate("twilio_rcs"); err != nil {
		return err
	}
	if err := c.validate("twilio_rcs"); err != nil {
		return err
	}
	switch {
	case c.MessagingServiceSID == "":
		return errors.New("twilio_rcs sender: needs messaging_service_sid (the Messaging Service with the RCS sender)")
	case c.Fallback != "" && c.Fallback != FallbackSMS && c.Fallback != FallbackNone:
		return errors.New("twilio_rcs sender: fallback " + strconv.Quote(c.Fallback) + ": want sms or none")
	case c.Fallback == FallbackNone && c.FallbackFrom != "":
		return errors.New("twilio_rcs sender: fallback_from needs the SMS fallback, and fallback is none")
	}
	return nil
}

// RCSSender sends codes as RCS business messages through a Twilio
// Messaging Service that has an RCS sender in its sender pool (POST
// /2010-04-01/Accounts/{AccountSid}/Messages.json with
// MessagingServiceSid). It is safe for concurrent use.
//
// Twilio tries RCS first. With FallbackSMS, a phone that cannot take
// RCS gets the same text by SMS from the service's other senders (or
// FallbackFrom), which is Twilio's own doing: the request is the same.
// With FallbackNone the destination is "rcs:" and the number, and such
// a phone gets nothing; Twilio says so only afterwards, in the
// message's status. The text, the validity period, the answers and the
// retries are those of the SMS Sender.
type RCSSender struct {
	httpsend.Base
	account      Account
	url          string
	service      string
	rcsOnly      bool
	fallbackFrom string
}

var _ httpsend.Provider = (*RCSSender)(nil)

// NewRCS returns an RCSSender for cfg, or an error saying what is
// missing or malformed. Errors never contain a credential.
func NewRCS(cfg RCSConfig) (*RCSSender, error) {
	base, err := httpsend.Prepare("twilio_rcs", &cfg, cfg.Endpoint, DefaultEndpoint)
	if err != nil {
		return nil, err
	}
	if err := cfg.check("twilio_rcs"); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(cfg.MessagingServiceSID, "MG") {
		return nil, errors.New(`twilio_rcs sender: messaging_service_sid must be a Messaging Service SID ("MG...")`)
	}
	return &RCSSender{
		Base:         httpsend.NewBase(cfg.Options, "twilio_rcs", httpsend.Retrier{}),
		account:      cfg.Account,
		url:          cfg.url(base, "Messages.json"),
		service:      cfg.MessagingServiceSID,
		rcsOnly:      cfg.Fallback == FallbackNone,
		fallbackFrom: cfg.FallbackFrom,
	}, nil
}

// Channel returns sender.RCS.
func (*RCSSender) Channel() sender.Channel { return sender.RCS }

// Send posts msg to Twilio. The error is a *sender.Error; it never holds
// the code, the number or Twilio's answer as such.
func (s *RCSSender) Send(ctx context.Context, msg *sender.Message) error {
	if msg == nil {
		return &sender.Error{Sender: s.Name(), Msg: "no message"}
	}
	if _, ok := httpsend.E164Digits(msg.To); !ok {
		return httpsend.NotE164(s.Name())
	}
	if n := utf8.RuneCountInString(msg.Text); n > maxBody {
		return &sender.Error{Sender: s.Name(), Msg: "message text is " + strconv.Itoa(n) + " characters, Twilio takes at most 1600"}
	}
	form := url.Values{}
	if s.rcsOnly {
		form.Set("To", "rcs:"+msg.To)
	} else {
		form.Set("To", msg.To)
	}
	form.Set("MessagingServiceSid", s.service)
	if s.fallbackFrom != "" {
		form.Set("FallbackFrom", s.fallbackFrom)
	}
	form.Set("Body", msg.Text)
	if msg.TTL > 0 {
		secs := min(max(int(msg.TTL/time.Second), minValidity), maxValidity)
		form.Set("ValidityPeriod", strconv.Itoa(secs))
	}
	return httpsend.Send(ctx, &s.Base, httpsend.Request{
		URL:         s.url,
		ContentType: "application/x-www-form-urlencoded",
		Body:        []byte(form.Encode()),
		Header:      func(h http.Header) { h.Set("Authorization", s.account.authorization()) },
	}, parseResponse)
}
