// Package msg91 sends codes by SMS through MSG91's Flow API (POST
// /api/v5/flow), the usual route for Indian numbers: the DLT template is
// mapped to the MSG91 template in MSG91's panel, and the request carries
// only the template and its variables.
package msg91

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/internal/httpsend"
	"github.com/caddy-stepup/caddy-stepup/sender/internal/netretry"
)

// DefaultEndpoint is MSG91's production API.
const DefaultEndpoint = "https://control.msg91.com"

// DefaultCodeVar is the template variable that receives the code.
const DefaultCodeVar = "otp"

// Config configures a Sender.
type Config struct {
	// Endpoint is the API base URL; default DefaultEndpoint.
	Endpoint string
	// AuthKey is the account's authentication key (header authkey).
	AuthKey string
	// TemplateID is the MSG91 flow template, mapped to a DLT template.
	TemplateID string
	// CodeVar names the template variable that receives the code;
	// default "otp".
	CodeVar string
	// TTLVar, when set, names a template variable that receives the
	// code's lifetime in whole minutes.
	TTLVar string
	// Name identifies the sender; default "msg91".
	Name string
	// Timeout bounds one Send, retries included; default 10s.
	Timeout time.Duration
	// MaxAttempts bounds the attempts of one Send; default 3.
	MaxAttempts int
	// Client sends the requests; nil means a client with sensible
	// timeouts that follows no redirect.
	Client *http.Client
}

// Sender sends codes through MSG91. It is safe for concurrent use.
//
// The message text is not sent: the template (registered on the DLT
// platform) is the text, and the code goes in a variable. MSG91 answers
// {"type":"success",...} or {"type":"error",...}, sometimes with HTTP
// 200 for an error, so the answer's type decides. 429 and 5xx answers
// are retried with backoff and jitter while the deadline allows.
type Sender struct {
	url        string
	authKey    string
	templateID string
	codeVar    string
	ttlVar     string
	name       string
	timeout    time.Duration
	client     *http.Client
	retry      httpsend.Retrier
}

var (
	_ sender.Sender    = (*Sender)(nil)
	_ sender.Channeler = (*Sender)(nil)
	_ sender.Timeouter = (*Sender)(nil)
)

// reserved are keys of a recipient object that a variable may not take.
var reserved = map[string]bool{"mobiles": true}

// New returns a Sender for cfg, or an error saying what is missing or
// malformed. Errors never contain a credential.
func New(cfg Config) (*Sender, error) {
	base, err := httpsend.Endpoint(cfg.Endpoint, DefaultEndpoint)
	if err != nil {
		return nil, errors.New("msg91: " + err.Error())
	}
	codeVar := cmp.Or(cfg.CodeVar, DefaultCodeVar)
	switch {
	case cfg.AuthKey == "":
		return nil, errors.New("msg91: auth_key is required")
	case cfg.TemplateID == "":
		return nil, errors.New("msg91: template_id is required")
	case reserved[codeVar] || reserved[cfg.TTLVar]:
		return nil, errors.New(`msg91: "mobiles" cannot be a template variable`)
	case cfg.TTLVar == codeVar:
		return nil, errors.New("msg91: code_var and ttl_var must differ")
	}
	s := &Sender{
		url:        base + "/api/v5/flow",
		authKey:    cfg.AuthKey,
		templateID: cfg.TemplateID,
		codeVar:    codeVar,
		ttlVar:     cfg.TTLVar,
		name:       cmp.Or(cfg.Name, "msg91"),
		timeout:    cmp.Or(cfg.Timeout, httpsend.DefaultTimeout),
		client:     cfg.Client,
		retry:      httpsend.Retrier{MaxAttempts: cfg.MaxAttempts},
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

// flow is the request body.
type flow struct {
	TemplateID string              `json:"template_id"`
	ShortURL   string              `json:"short_url"`
	Recipients []map[string]string `json:"recipients"`
}

// Send posts msg to MSG91. The error is a *sender.Error; it never holds
// the code, the number or MSG91's answer as such.
func (s *Sender) Send(ctx context.Context, msg *sender.Message) error {
	if msg == nil {
		return &sender.Error{Sender: s.name, Msg: "no message"}
	}
	digits, ok := httpsend.E164Digits(msg.To)
	if !ok {
		return httpsend.NotE164(s.name)
	}
	recipient := map[string]string{"mobiles": digits, s.codeVar: msg.Code}
	if s.ttlVar != "" {
		recipient[s.ttlVar] = strconv.Itoa(max(int(msg.TTL/time.Minute), 1))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(flow{TemplateID: s.templateID, ShortURL: "0", Recipients: []map[string]string{recipient}}); err != nil {
		return &sender.Error{Sender: s.name, Msg: "encoding the request failed"}
	}
	body := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.retry.Do(ctx, func(ctx context.Context, _ int) httpsend.Outcome {
		header := http.Header{}
		header.Set("authkey", s.authKey)
		resp, err := httpsend.Post(ctx, s.client, s.url, "application/json", header, body)
		if err != nil {
			return httpsend.TransportFailure(s.name, err)
		}
		return parseResponse(s.name, resp)
	})
}

// answer is MSG91's JSON answer.
type answer struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// parseResponse turns MSG91's answer into an outcome.
func parseResponse(name string, resp *httpsend.Response) httpsend.Outcome {
	var a answer
	jsonErr := json.Unmarshal(resp.Body, &a)
	se := &sender.Error{Sender: name, Status: resp.Status}
	switch {
	case resp.Status == http.StatusTooManyRequests || resp.Status >= 500:
		se.Temporary = true
		se.Msg = httpsend.WithText("MSG91 did not take the message", a.Message)
		o := httpsend.Failed(se, true)
		o.After = netretry.RetryAfter(resp.Header.Get("Retry-After"), time.Now())
		return o
	case resp.Status >= 200 && resp.Status <= 299 && a.Type == "success":
		return httpsend.Outcome{}
	case a.Type == "error":
		se.Msg = httpsend.WithText("MSG91 refused the message", a.Message)
		return httpsend.Failed(se, false)
	case resp.Status >= 200 && resp.Status <= 299:
		// No type to go by: maybe sent, maybe not. Do not send it twice;
		// another sender may try.
		se.Temporary = true
		se.Msg = "MSG91 gave an answer that could not be read"
		if jsonErr == nil {
			se.Msg = "MSG91 gave an answer of unknown type"
		}
		return httpsend.Failed(se, false)
	}
	se.Msg = "MSG91 refused the request"
	return httpsend.Failed(se, false)
}
