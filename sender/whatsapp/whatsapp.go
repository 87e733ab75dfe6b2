// Package whatsapp sends codes through the WhatsApp Business Cloud API as
// an authentication template with a copy-code button (POST
// /{version}/{phone_number_id}/messages on the Graph API), and takes
// the Cloud API's status webhooks as delivery receipts.
//
// The Cloud API accepts most messages with a 200 and tells later, in a
// status webhook, that it could not deliver them: a number without
// WhatsApp (131026), an old app, a spam limit. Without receipts those
// failures are silent; with them (app_secret, verify_token, and the
// app's webhook pointed at the receipt URL) the code goes on through
// the next sender.
package whatsapp

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"unicode/utf8"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/internal/httpsend"
)

// Defaults of a Sender.
const (
	// DefaultEndpoint is Meta's Graph API.
	DefaultEndpoint = "https://graph.facebook.com"
	// DefaultVersion is the Graph API version used: the newest when this
	// was written (July 2026). Meta supports each version about two
	// years; Config.Version pins another.
	DefaultVersion = "v26.0"
	// DefaultLanguage is the template language used.
	DefaultLanguage = "en_US"
)

// maxCode is the longest code an authentication template takes.
const maxCode = 15

var (
	versionRE  = regexp.MustCompile(`^v[0-9]+\.[0-9]+$`)
	languageRE = regexp.MustCompile(`^[a-z]{2,3}(_[A-Z]{2})?$`)
	idRE       = regexp.MustCompile(`^[0-9]+$`)
	templateRE = regexp.MustCompile(`^[a-z0-9_]+$`)
)

// Config configures a Sender. Its JSON is the whatsapp sender's in a
// Caddy config; see sender.Options for the fields every sender has, and
// for the placeholder tags.
type Config struct {
	// Endpoint is the API base URL; default DefaultEndpoint.
	Endpoint string `json:"endpoint,omitempty" placeholder:"optional"`
	// Version is the Graph API version ("v26.0"); default DefaultVersion.
	Version string `json:"version,omitempty"`
	// PhoneNumberID is the WhatsApp Business phone number ID (digits) that
	// sends.
	PhoneNumberID string `json:"phone_number_id,omitempty" placeholder:"required"`
	// AccessToken is a system user access token with the
	// whatsapp_business_messaging permission.
	AccessToken string `json:"access_token,omitempty" placeholder:"required"`
	// Template is the name of an approved authentication template with a
	// copy-code button.
	Template string `json:"template,omitempty" placeholder:"required"`
	// Language is the template's language code; default "en_US".
	Language string `json:"language,omitempty"`
	// AppSecret is the Meta app's secret (App settings, Basic), which
	// signs its webhooks (X-Hub-Signature-256). With VerifyToken, the
	// sender takes status webhooks as delivery receipts.
	AppSecret string `json:"app_secret,omitempty" placeholder:"optional"`
	// VerifyToken is the token typed in the app's webhook settings,
	// which Meta sends back when it checks the callback URL
	// (hub.verify_token).
	VerifyToken string `json:"verify_token,omitempty" placeholder:"optional"`
	sender.Options
}

// Validate checks the configuration as written, placeholders
// unresolved: a phone number ID, a token, a template, a version and a
// language of the right form.
func (c *Config) Validate() error {
	if err := c.Options.Validate("whatsapp"); err != nil {
		return err
	}
	switch {
	case c.PhoneNumberID == "":
		return errors.New("whatsapp sender: needs phone_number_id")
	case c.AccessToken == "":
		return errors.New("whatsapp sender: needs access_token")
	case c.Template == "":
		return errors.New("whatsapp sender: needs template (an approved authentication template)")
	case !versionRE.MatchString(cmp.Or(c.Version, DefaultVersion)):
		return errors.New(`whatsapp sender: version must look like "v26.0"`)
	case (c.AppSecret == "") != (c.VerifyToken == ""):
		return errors.New("whatsapp sender: app_secret and verify_token go together (status webhooks need both)")
	case !languageRE.MatchString(cmp.Or(c.Language, DefaultLanguage)):
		return errors.New(`whatsapp sender: language must be a template language code such as "en_US" or "hi"`)
	}
	return nil
}

// Sender sends codes through the WhatsApp Cloud API. It is safe for
// concurrent use.
//
// The message text is not sent: the approved template is the text, and
// the code goes twice, as the body parameter and as the copy-code
// button's parameter. The answer's wamid is the message id. Graph API
// errors are told apart by error.code, whatever the HTTP status: 130429
// (throughput) and the transient codes are retried with backoff and
// jitter while the deadline allows; without a Graph code, HTTP 408, 429
// and 5xx are (see httpsend's retry policy). 131056 (too many messages
// to this one user) is not retried within seconds and concerns that
// recipient only (sender.Error.Recipient: no circuit opens); 131048
// (spam rate limit), 4 (app call limit) and 80007 (account rate limit)
// last longer than a send: temporary, not retried. Credentials,
// permissions and templates are sender.Error.Config.
type Sender struct {
	httpsend.Base
	url         string
	token       string
	template    string
	language    string
	appSecret   string // "": no receipts
	verifyToken string
}

var (
	_ httpsend.Provider = (*Sender)(nil)
	_ sender.IDSender   = (*Sender)(nil)
	_ sender.Receipter  = (*Sender)(nil)
)

// New returns a Sender for cfg, or an error saying what is missing or
// malformed. Errors never contain a credential.
func New(cfg Config) (*Sender, error) {
	base, err := httpsend.Prepare("whatsapp", &cfg, cfg.Endpoint, DefaultEndpoint)
	if err != nil {
		return nil, err
	}
	switch {
	case !idRE.MatchString(cfg.PhoneNumberID):
		return nil, errors.New("whatsapp sender: phone_number_id must be all digits")
	case !templateRE.MatchString(cfg.Template):
		return nil, errors.New("whatsapp sender: template must be the name of an approved authentication template (lower case, digits, '_')")
	}
	return &Sender{
		Base:        httpsend.NewBase(cfg.Options, "whatsapp", httpsend.Retrier{}),
		url:         base + "/" + cmp.Or(cfg.Version, DefaultVersion) + "/" + url.PathEscape(cfg.PhoneNumberID) + "/messages",
		token:       cfg.AccessToken,
		template:    cfg.Template,
		language:    cmp.Or(cfg.Language, DefaultLanguage),
		appSecret:   cfg.AppSecret,
		verifyToken: cfg.VerifyToken,
	}, nil
}

// Channel returns sender.WhatsApp.
func (*Sender) Channel() sender.Channel { return sender.WhatsApp }

// The request body; the field order is the documented one.
type (
	request struct {
		MessagingProduct string   `json:"messaging_product"`
		RecipientType    string   `json:"recipient_type"`
		To               string   `json:"to"`
		Type             string   `json:"type"`
		Template         template `json:"template"`
	}
	template struct {
		Name       string      `json:"name"`
		Language   language    `json:"language"`
		Components []component `json:"components"`
	}
	language struct {
		Code string `json:"code"`
	}
	component struct {
		Type       string      `json:"type"`
		SubType    string      `json:"sub_type,omitempty"`
		Index      string      `json:"index,omitempty"`
		Parameters []parameter `json:"parameters"`
	}
	parameter struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
)

// Send posts msg to the Cloud API. The error is a *sender.Error; it never
// holds the code, the number or Meta's answer as such.
func (s *Sender) Send(ctx context.Context, msg *sender.Message) error {
	_, err := s.SendWithID(ctx, msg)
	return err
}

// SendWithID is Send, returning the message's wamid. That the Cloud API
// took the message does not mean that it will deliver it: see the
// package documentation.
func (s *Sender) SendWithID(ctx context.Context, msg *sender.Message) (string, error) {
	if msg == nil {
		return "", &sender.Error{Sender: s.Name(), Msg: "no message"}
	}
	digits, ok := httpsend.E164Digits(msg.To)
	if !ok {
		return "", httpsend.NotE164(s.Name())
	}
	if msg.Code == "" || utf8.RuneCountInString(msg.Code) > maxCode {
		return "", &sender.Error{Sender: s.Name(), Msg: "an authentication template takes a code of 1 to 15 characters"}
	}
	code := []parameter{{Type: "text", Text: msg.Code}}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(request{
		MessagingProduct: "whatsapp",
		RecipientType:    "individual",
		To:               digits,
		Type:             "template",
		Template: template{
			Name:     s.template,
			Language: language{Code: s.language},
			Components: []component{
				{Type: "body", Parameters: code},
				{Type: "button", SubType: "url", Index: "0", Parameters: code},
			},
		},
	})
	if err != nil {
		return "", &sender.Error{Sender: s.Name(), Msg: "encoding the request failed"}
	}
	return httpsend.SendID(ctx, &s.Base, httpsend.Request{
		URL:         s.url,
		ContentType: "application/json",
		Body:        bytes.TrimSuffix(buf.Bytes(), []byte("\n")),
		Header:      func(h http.Header) { h.Set("Authorization", "Bearer "+s.token) },
	}, parseResponse)
}

// graphError is the Graph API's error body.
type graphError struct {
	Error struct {
		Message   string `json:"message"`
		Type      string `json:"type"`
		Code      int    `json:"code"`
		Subcode   int    `json:"error_subcode"`
		ErrorData struct {
			Details string `json:"details"`
		} `json:"error_data"`
	} `json:"error"`
}

// success is the Cloud API's answer to an accepted message.
type success struct {
	Messages []struct {
		ID string `json:"id"`
	} `json:"messages"`
}

// Graph error codes worth another attempt within a send.
var retryCodes = map[int]bool{
	1:      true, // API unknown (transient)
	2:      true, // API service (temporary)
	130429: true, // rate limit hit (throughput)
	131000: true, // something went wrong
	131016: true, // service unavailable
}

// Graph error codes of limits that outlast a send: not retried, but
// temporary (later, or another sender, may work).
var limitCodes = map[int]bool{
	4:      true, // API too many calls (app rate limit, for the hour)
	80007:  true, // rate limit issues (WhatsApp Business Account)
	131048: true, // spam rate limit hit (this business number, for a while)
}

// codePairLimit is the (business, consumer) pair rate limit: too many
// messages to this one user in a short time. It is about this recipient
// only, and lasts longer than a retry's seconds.
const codePairLimit = 131056

// Graph error codes about the destination. 131026 usually comes in the
// status webhook after a 200 (see ParseReceipt), rarely at once.
var recipientCodes = map[int]bool{
	131026: true, // message undeliverable (not on WhatsApp, old app, ...)
	131030: true, // recipient phone number not in allowed list (test numbers)
	131021: true, // recipient cannot be sender
}

// Graph error codes an operator must fix: the token, the app's
// permissions, the account, the template.
var configCodes = map[int]bool{
	0:      true, // AuthException
	3:      true, // API method (capability or permission)
	10:     true, // permission denied
	190:    true, // access token expired or invalid
	131031: true, // account locked
	131042: true, // business eligibility: payment issue
	132000: true, // template parameter count mismatch
	132001: true, // template does not exist
	133010: true, // phone number not registered
}

// parseResponse turns the Graph API's answer into an outcome.
func parseResponse(name string, resp *httpsend.Response) httpsend.Outcome {
	if resp.Status >= 200 && resp.Status <= 299 {
		var ok success
		if err := json.Unmarshal(resp.Body, &ok); err != nil || len(ok.Messages) == 0 || ok.Messages[0].ID == "" {
			// Maybe sent, maybe not: do not send it twice.
			return httpsend.Failed(&sender.Error{Sender: name, Status: resp.Status, Temporary: true,
				Msg: "WhatsApp gave an answer without a message id"}, false)
		}
		return httpsend.Accepted(ok.Messages[0].ID)
	}
	var g graphError
	_ = json.Unmarshal(resp.Body, &g)
	e := g.Error
	se := &sender.Error{Sender: name, Status: resp.Status}
	if e.Code != 0 {
		se.Code = strconv.Itoa(e.Code)
	}
	text := e.Message
	if e.ErrorData.Details != "" {
		text += " (" + e.ErrorData.Details + ")"
	}
	graph := e.Code != 0 || e.Type != ""
	if retryCodes[e.Code] {
		se.Msg = httpsend.WithText("WhatsApp did not take the message", text)
		return resp.Retry(se)
	}
	if !graph {
		if o, ok := resp.Failure(se, httpsend.Retryable); ok {
			se.Msg = httpsend.WithText("WhatsApp did not take the message", text)
			return o
		}
	}
	switch {
	case e.Code == codePairLimit:
		// Meta allows about one message every few seconds to one user:
		// retrying within this send would hit it again. Another sender
		// (SMS) may still reach the customer; the sender works for
		// everyone else, so the breaker must not count it.
		se.Temporary, se.Recipient = true, true
		se.Msg = httpsend.WithText("WhatsApp is limiting messages to this recipient for now", text)
		return httpsend.Failed(se, false)
	case limitCodes[e.Code]:
		se.Temporary = true
		se.Msg = httpsend.WithText("WhatsApp is limiting this sender for now", text)
		return httpsend.Failed(se, false)
	case recipientCodes[e.Code]:
		se.Recipient = true
	case graph && (configCodes[e.Code] || e.Code >= 200 && e.Code <= 299): // 2xx codes: permissions
		se.Config = true
	}
	se.Msg = httpsend.WithText("WhatsApp refused the message", text)
	return httpsend.Failed(se, false)
}
