// Package twilio sends codes by SMS through Twilio Programmable Messaging
// (POST /2010-04-01/Accounts/{AccountSid}/Messages.json).
package twilio

import (
	"cmp"
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
	"github.com/caddy-stepup/caddy-stepup/sender/internal/netretry"
)

// DefaultEndpoint is Twilio's production API.
const DefaultEndpoint = "https://api.twilio.com"

// maxBody is the longest Body Twilio accepts, in characters.
const maxBody = 1600

// ValidityPeriod bounds, in seconds.
const (
	minValidity = 1
	maxValidity = 14400
)

// Config configures a Sender.
type Config struct {
	// Endpoint is the API base URL; default DefaultEndpoint. Regional
	// Twilio endpoints and test servers go here.
	Endpoint string
	// AccountSID is the account ("AC..."); it is always in the URL path.
	AccountSID string
	// AuthToken authenticates as the account. Set it, or APIKey and
	// APISecret.
	AuthToken string
	// APIKey ("SK...") authenticates, with APISecret, as an API key of
	// the account, which can be revoked on its own: the better choice.
	APIKey string
	// APISecret is the API key's secret.
	APISecret string
	// From is the sending number (E.164) or alphanumeric sender ID. Set
	// it or MessagingServiceSID, not both.
	From string
	// MessagingServiceSID ("MG...") lets a Messaging Service pick the
	// sender.
	MessagingServiceSID string
	// Name identifies the sender; default "twilio".
	Name string
	// Timeout bounds one Send, retries included; default 10s.
	Timeout time.Duration
	// MaxAttempts bounds the attempts of one Send; default 3.
	MaxAttempts int
	// Client sends the requests; nil means a client with sensible
	// timeouts that follows no redirect.
	Client *http.Client
}

// Sender sends codes through Twilio. It is safe for concurrent use.
//
// The message text goes in Body and the code's lifetime in
// ValidityPeriod, so that Twilio drops a message still queued when the
// code has expired. A 201 answer means accepted. 429 (Twilio code 20429)
// and 5xx answers are retried with backoff and jitter while the deadline
// allows; the message was not processed. Other answers fail at once;
// numbers Twilio cannot or may not reach are reported as
// sender.Error.Recipient.
type Sender struct {
	url     string
	user    string
	pass    string
	from    string
	service string
	name    string
	timeout time.Duration
	client  *http.Client
	retry   httpsend.Retrier
}

var (
	_ sender.Sender    = (*Sender)(nil)
	_ sender.Channeler = (*Sender)(nil)
	_ sender.Timeouter = (*Sender)(nil)
)

// New returns a Sender for cfg, or an error saying what is missing or
// malformed. Errors never contain a credential.
func New(cfg Config) (*Sender, error) {
	base, err := httpsend.Endpoint(cfg.Endpoint, DefaultEndpoint)
	if err != nil {
		return nil, errors.New("twilio: " + err.Error())
	}
	switch {
	case !strings.HasPrefix(cfg.AccountSID, "AC"):
		return nil, errors.New(`twilio: account_sid must be an account SID ("AC...")`)
	case cfg.AuthToken != "" && (cfg.APIKey != "" || cfg.APISecret != ""):
		return nil, errors.New("twilio: set auth_token, or api_key and api_secret, not both")
	case cfg.AuthToken == "" && (cfg.APIKey == "" || cfg.APISecret == ""):
		return nil, errors.New("twilio: credentials missing: set auth_token, or api_key and api_secret")
	case cfg.APIKey != "" && !strings.HasPrefix(cfg.APIKey, "SK"):
		return nil, errors.New(`twilio: api_key must be an API key SID ("SK...")`)
	case cfg.From == "" && cfg.MessagingServiceSID == "":
		return nil, errors.New("twilio: set from or messaging_service_sid")
	case cfg.From != "" && cfg.MessagingServiceSID != "":
		return nil, errors.New("twilio: set from or messaging_service_sid, not both")
	case cfg.MessagingServiceSID != "" && !strings.HasPrefix(cfg.MessagingServiceSID, "MG"):
		return nil, errors.New(`twilio: messaging_service_sid must be a Messaging Service SID ("MG...")`)
	}
	s := &Sender{
		url:     base + "/2010-04-01/Accounts/" + url.PathEscape(cfg.AccountSID) + "/Messages.json",
		user:    cfg.AccountSID,
		pass:    cfg.AuthToken,
		from:    cfg.From,
		service: cfg.MessagingServiceSID,
		name:    cmp.Or(cfg.Name, "twilio"),
		timeout: cmp.Or(cfg.Timeout, httpsend.DefaultTimeout),
		client:  cfg.Client,
		retry:   httpsend.Retrier{MaxAttempts: cfg.MaxAttempts},
	}
	if cfg.APIKey != "" {
		s.user, s.pass = cfg.APIKey, cfg.APISecret
	}
	if s.client == nil {
		s.client = httpsend.DefaultClient()
	}
	return s, nil
}

// Name returns the sender's name.
func (s *Sender) Name() string { return s.name }

// Channel returns sender.SMS.
func (*Sender) Channel() sender.Channel { return sender.SMS }

// Timeout returns the budget of one Send.
func (s *Sender) Timeout() time.Duration { return s.timeout }

// Send posts msg to Twilio. The error is a *sender.Error; it never holds
// the code, the number or Twilio's answer as such (its message is
// redacted of anything that looks like a number).
func (s *Sender) Send(ctx context.Context, msg *sender.Message) error {
	if msg == nil {
		return &sender.Error{Sender: s.name, Msg: "no message"}
	}
	if _, ok := httpsend.E164Digits(msg.To); !ok {
		return httpsend.NotE164(s.name)
	}
	if n := utf8.RuneCountInString(msg.Text); n > maxBody {
		return &sender.Error{Sender: s.name, Msg: "message text is " + strconv.Itoa(n) + " characters, Twilio takes at most 1600"}
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
	body := []byte(form.Encode())

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.retry.Do(ctx, func(ctx context.Context, _ int) httpsend.Outcome {
		header := http.Header{}
		header.Set("Authorization", basicAuth(s.user, s.pass))
		resp, err := httpsend.Post(ctx, s.client, s.url, "application/x-www-form-urlencoded", header, body)
		if err != nil {
			return httpsend.TransportFailure(s.name, err)
		}
		return parseResponse(s.name, resp)
	})
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

// Twilio error codes with a meaning for failover.
const (
	codeTooManyRequests = 20429
)

// recipientCodes are Twilio errors about the destination, not the
// account: the sender works, another destination would go through.
var recipientCodes = map[int]bool{
	21211: true, // invalid 'To' phone number
	21214: true, // 'To' phone number cannot be reached
	21217: true, // phone number does not appear to be valid
	21408: true, // permission to send an SMS has not been enabled for the region
	21610: true, // attempt to send to unsubscribed recipient
	21612: true, // the 'To' number is not currently reachable via SMS
	21614: true, // 'To' number is not a valid mobile number
	21635: true, // 'To' number cannot be a landline
}

// parseResponse turns Twilio's answer into an outcome.
func parseResponse(name string, resp *httpsend.Response) httpsend.Outcome {
	if resp.Status >= 200 && resp.Status <= 299 {
		return httpsend.Outcome{}
	}
	var e apiError
	_ = json.Unmarshal(resp.Body, &e)
	se := &sender.Error{Sender: name, Status: resp.Status, Msg: httpsend.WithText("Twilio refused the message", e.Message)}
	if e.Code != 0 {
		se.Code = strconv.Itoa(e.Code)
	}
	switch {
	case resp.Status == http.StatusTooManyRequests || e.Code == codeTooManyRequests:
		se.Temporary = true
		se.Msg = httpsend.WithText("Twilio is throttling", e.Message)
		o := httpsend.Failed(se, true)
		o.After = netretry.RetryAfter(resp.Header.Get("Retry-After"), time.Now())
		return o
	case resp.Status >= 500:
		se.Temporary = true
		se.Msg = httpsend.WithText("Twilio failed", e.Message)
		o := httpsend.Failed(se, true)
		o.After = netretry.RetryAfter(resp.Header.Get("Retry-After"), time.Now())
		return o
	case resp.Status >= 300 && resp.Status <= 399:
		se.Msg = "Twilio answered with a redirect, which is not followed"
	case recipientCodes[e.Code]:
		se.Recipient = true
	}
	return httpsend.Failed(se, false)
}
