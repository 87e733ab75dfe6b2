// Package msg91 sends codes by SMS through MSG91's Flow API (POST
// /api/v5/flow), the usual route for Indian numbers: the DLT template is
// mapped to the MSG91 template in MSG91's panel, and the request carries
// only the template and its variables. MSG91's delivery reports, which
// it signs with nothing, are taken at a URL that carries a secret token.
package msg91

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
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
	// default "otp". It must be the variable's name exactly as the
	// template in MSG91's panel writes it between ## (##OTP## is "OTP",
	// not "otp"): MSG91 compares names with their case, and a variable
	// it does not find leaves the template's placeholder in the SMS,
	// which then matches no DLT template and is dropped.
	CodeVar string `json:"code_var,omitempty"`
	// TTLVar, when set, names a template variable that receives the
	// code's lifetime in whole minutes; the same rules as CodeVar.
	TTLVar string `json:"ttl_var,omitempty"`
	// ReceiptToken is a secret that the delivery report URL set in
	// MSG91's panel carries (?stepup_token=...): MSG91 signs nothing, so
	// a report is taken only with it. Without it the sender takes no
	// receipts.
	ReceiptToken string `json:"receipt_token,omitempty" placeholder:"optional"`
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
	if err := checkVar("code_var", codeVar); err != nil {
		return err
	}
	if c.TTLVar != "" {
		return checkVar("ttl_var", c.TTLVar)
	}
	return nil
}

// checkVar refuses the variable names that cannot match a template's
// variable, the mistakes seen when copying them from MSG91's panel.
func checkVar(option, name string) error {
	switch {
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("msg91 sender: %s %q has spaces around it: MSG91 would not find the variable", option, name)
	case strings.Contains(name, "{#"):
		return fmt.Errorf("msg91 sender: %s %q is a DLT placeholder, not an MSG91 variable: give the name the MSG91 template writes between ##", option, name)
	case strings.ContainsAny(name, "#{}\""):
		return fmt.Errorf("msg91 sender: %s %q: give the variable's name without the ## around it (##OTP## is OTP)", option, name)
	}
	return nil
}

// Sender sends codes through MSG91. It is safe for concurrent use.
//
// The message text is not sent: the template (registered on the DLT
// platform) is the text, and the code goes in a variable. The request
// asks for realTimeResponse, so that MSG91 checks it before answering
// and a wrong template or variable comes back at once. MSG91 answers
// {"type":"success","message":"<request id>"} or {"type":"error",...},
// sometimes with HTTP 200 for an error, so the answer's type decides;
// the request id is the message id its delivery reports name. 408, 429
// and 5xx answers are retried with backoff and jitter while the deadline
// allows (see httpsend's retry policy). MSG91 gives no error codes: a
// refused authentication key and an unknown template or flow are told by
// their text, and are sender.Error.Config.
type Sender struct {
	httpsend.Base
	url        string
	authKey    string
	templateID string
	codeVar    string
	ttlVar     string
	token      string // the receipt URL token; "": no receipts
}

var (
	_ httpsend.Provider = (*Sender)(nil)
	_ sender.IDSender   = (*Sender)(nil)
	_ sender.Receipter  = (*Sender)(nil)
)

// New returns a Sender for cfg, or an error saying what is missing or
// malformed. Errors never contain a credential.
func New(cfg Config) (*Sender, error) {
	base, err := httpsend.Prepare("msg91", &cfg, cfg.Endpoint, DefaultEndpoint)
	if err != nil {
		return nil, err
	}
	if cfg.ReceiptToken != "" {
		if err := httpsend.CheckTokenOption("msg91", cfg.ReceiptToken); err != nil {
			return nil, err
		}
	}
	return &Sender{
		Base:       httpsend.NewBase(cfg.Options, "msg91", httpsend.Retrier{}),
		url:        base + "/api/v5/flow",
		authKey:    cfg.AuthKey,
		templateID: cfg.TemplateID,
		codeVar:    cmp.Or(cfg.CodeVar, DefaultCodeVar),
		ttlVar:     cfg.TTLVar,
		token:      cfg.ReceiptToken,
	}, nil
}

// Channel returns sender.SMS.
func (*Sender) Channel() sender.Channel { return sender.SMS }

// flow is the request body.
type flow struct {
	TemplateID       string              `json:"template_id"`
	ShortURL         string              `json:"short_url"`
	RealTimeResponse string              `json:"realTimeResponse"`
	Recipients       []map[string]string `json:"recipients"`
}

// Send posts msg to MSG91. The error is a *sender.Error; it never holds
// the code, the number or MSG91's answer as such.
func (s *Sender) Send(ctx context.Context, msg *sender.Message) error {
	_, err := s.SendWithID(ctx, msg)
	return err
}

// SendWithID is Send, returning MSG91's request id.
func (s *Sender) SendWithID(ctx context.Context, msg *sender.Message) (string, error) {
	if msg == nil {
		return "", &sender.Error{Sender: s.Name(), Msg: "no message"}
	}
	digits, ok := httpsend.E164Digits(msg.To)
	if !ok {
		return "", httpsend.NotE164(s.Name())
	}
	recipient := map[string]string{"mobiles": digits, s.codeVar: msg.Code}
	if s.ttlVar != "" {
		recipient[s.ttlVar] = strconv.Itoa(max(int(msg.TTL/time.Minute), 1))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(flow{TemplateID: s.templateID, ShortURL: "0", RealTimeResponse: "1",
		Recipients: []map[string]string{recipient}}); err != nil {
		return "", &sender.Error{Sender: s.Name(), Msg: "encoding the request failed"}
	}
	return httpsend.SendID(ctx, &s.Base, httpsend.Request{
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
	if o, ok := resp.Failure(se, httpsend.Retryable); ok {
		se.Msg = httpsend.WithText("MSG91 did not take the message", a.Message)
		return o
	}
	switch {
	case resp.Status >= 200 && resp.Status <= 299 && a.Type == "success":
		return httpsend.Accepted(requestID(a.Message))
	case a.Type == "error":
		se.Msg = httpsend.WithText("MSG91 refused the message", a.Message)
		se.Config = resp.Status == http.StatusUnauthorized || configText(a.Message)
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
	se.Config = resp.Status == http.StatusUnauthorized
	return httpsend.Failed(se, false)
}

// configTexts are words of MSG91's error messages about the account or
// the template, which an operator must fix.
var configTexts = []string{"authenticat", "authkey", "flow not found", "template"}

func configText(message string) bool {
	m := strings.ToLower(message)
	for _, w := range configTexts {
		if strings.Contains(m, w) {
			return true
		}
	}
	return false
}

// requestID returns the request id of a success answer's message: a
// token of letters and digits, else "" (the message is then a sentence,
// not an id).
func requestID(message string) string {
	if message == "" || len(message) > 64 {
		return ""
	}
	for _, c := range message {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return ""
		}
	}
	return message
}
