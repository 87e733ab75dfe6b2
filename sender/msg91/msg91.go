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
)

// DefaultEndpoint is MSG91's production API.
const DefaultEndpoint = "https://control.msg91.com"

// DefaultCodeVar is the template variable that receives the code.
const DefaultCodeVar = "otp"

// Config configures a Sender. Its JSON is the msg91 sender's in a Caddy
// config; see sender.Options for the fields every sender has, and for
// the placeholder tags.
type Config struct {
	// Endpoint is the API base URL; default DefaultEndpoint.
	Endpoint string `json:"endpoint,omitempty" placeholder:"optional"`
	// AuthKey is the account's authentication key (header authkey).
	AuthKey string `json:"auth_key,omitempty" placeholder:"required"`
	// TemplateID is the MSG91 flow template, mapped to a DLT template.
	TemplateID string `json:"template_id,omitempty" placeholder:"required"`
	// CodeVar names the template variable that receives the code;
	// default "otp".
	CodeVar string `json:"code_var,omitempty"`
	// TTLVar, when set, names a template variable that receives the
	// code's lifetime in whole minutes.
	TTLVar string `json:"ttl_var,omitempty"`
	sender.Options
}

// reserved are keys of a recipient object that a variable may not take.
var reserved = map[string]bool{"mobiles": true}

// Validate checks the configuration as written, placeholders
// unresolved: a key, a template, variables that can be told apart.
func (c *Config) Validate() error {
	if err := c.Options.Validate("msg91"); err != nil {
		return err
	}
	codeVar := cmp.Or(c.CodeVar, DefaultCodeVar)
	switch {
	case c.AuthKey == "":
		return errors.New("msg91 sender: needs auth_key")
	case c.TemplateID == "":
		return errors.New("msg91 sender: needs template_id")
	case reserved[codeVar] || reserved[c.TTLVar]:
		return errors.New(`msg91 sender: "mobiles" cannot be a template variable`)
	case c.TTLVar == codeVar:
		return errors.New("msg91 sender: code_var and ttl_var must differ")
	}
	return nil
}

// Sender sends codes through MSG91. It is safe for concurrent use.
//
// The message text is not sent: the template (registered on the DLT
// platform) is the text, and the code goes in a variable. MSG91 answers
// {"type":"success",...} or {"type":"error",...}, sometimes with HTTP
// 200 for an error, so the answer's type decides. 408, 429 and 5xx
// answers are retried with backoff and jitter while the deadline allows
// (see httpsend's retry policy).
type Sender struct {
	httpsend.Base
	url        string
	authKey    string
	templateID string
	codeVar    string
	ttlVar     string
}

var _ httpsend.Provider = (*Sender)(nil)

// New returns a Sender for cfg, or an error saying what is missing or
// malformed. Errors never contain a credential.
func New(cfg Config) (*Sender, error) {
	base, err := httpsend.Prepare("msg91", &cfg, cfg.Endpoint, DefaultEndpoint)
	if err != nil {
		return nil, err
	}
	return &Sender{
		Base:       httpsend.NewBase(cfg.Options, "msg91", httpsend.Retrier{}),
		url:        base + "/api/v5/flow",
		authKey:    cfg.AuthKey,
		templateID: cfg.TemplateID,
		codeVar:    cmp.Or(cfg.CodeVar, DefaultCodeVar),
		ttlVar:     cfg.TTLVar,
	}, nil
}

// Channel returns sender.SMS.
func (*Sender) Channel() sender.Channel { return sender.SMS }

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
		return &sender.Error{Sender: s.Name(), Msg: "no message"}
	}
	digits, ok := httpsend.E164Digits(msg.To)
	if !ok {
		return httpsend.NotE164(s.Name())
	}
	recipient := map[string]string{"mobiles": digits, s.codeVar: msg.Code}
	if s.ttlVar != "" {
		recipient[s.ttlVar] = strconv.Itoa(max(int(msg.TTL/time.Minute), 1))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(flow{TemplateID: s.templateID, ShortURL: "0", Recipients: []map[string]string{recipient}}); err != nil {
		return &sender.Error{Sender: s.Name(), Msg: "encoding the request failed"}
	}
	return httpsend.Send(ctx, &s.Base, httpsend.Request{
		URL:         s.url,
		ContentType: "application/json",
		Body:        bytes.TrimSuffix(buf.Bytes(), []byte("\n")),
		Header:      func(h http.Header) { h.Set("authkey", s.authKey) },
	}, parseResponse)
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
	case httpsend.Retryable(resp.Status):
		se.Msg = httpsend.WithText("MSG91 did not take the message", a.Message)
		return resp.Retry(se)
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
