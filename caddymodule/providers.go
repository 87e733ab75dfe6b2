package caddymodule

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/email"
	"github.com/caddy-stepup/caddy-stepup/sender/msg91"
	"github.com/caddy-stepup/caddy-stepup/sender/sns"
	"github.com/caddy-stepup/caddy-stepup/sender/twilio"
	"github.com/caddy-stepup/caddy-stepup/sender/vonage"
	"github.com/caddy-stepup/caddy-stepup/sender/whatsapp"
)

func init() {
	caddy.RegisterModule(TwilioSender{})
	caddy.RegisterModule(VonageSender{})
	caddy.RegisterModule(MSG91Sender{})
	caddy.RegisterModule(SNSSender{})
	caddy.RegisterModule(WhatsAppSender{})
	caddy.RegisterModule(EmailSender{})
}

// Bounds of a provider sender's timeout option.
const (
	minSenderTimeout = 100 * time.Millisecond
	maxSenderTimeout = 2 * time.Minute
)

// SenderOptions are the options every provider sender has.
type SenderOptions struct {
	// SenderName names the sender in logs, metrics and the challenge
	// record; give two senders of one provider different names. Default:
	// the provider's name.
	SenderName string `json:"name,omitempty"`
	// CountryCodes limits the sender to the phone numbers of these ISO
	// 3166-1 alpha-2 regions ("IN"); the other numbers skip it and go to
	// the next sender. Default: every region.
	CountryCodes []string `json:"countries,omitempty"`
	// SendTimeout bounds one delivery through this sender, its retries
	// included, within the handler's send_timeout. Default: 5s (the
	// failover chain's share per sender).
	SendTimeout caddy.Duration `json:"timeout,omitempty"`
}

// Countries implements sender.Regional.
func (o *SenderOptions) Countries() []string { return o.CountryCodes }

// Timeout implements sender.Timeouter.
func (o *SenderOptions) Timeout() time.Duration { return time.Duration(o.SendTimeout) }

// validate checks the options that a Caddyfile did not.
func (o *SenderOptions) validate(kind string) error {
	regions, err := sender.ParseRegions(o.CountryCodes)
	if err != nil {
		return fmt.Errorf("%s sender: countries: %v", kind, err)
	}
	o.CountryCodes = regions
	if t := time.Duration(o.SendTimeout); t != 0 && (t < minSenderTimeout || t > maxSenderTimeout) {
		return fmt.Errorf("%s sender: timeout %s out of range (%s to %s)", kind, t, minSenderTimeout, maxSenderTimeout)
	}
	return nil
}

// parseBlock parses "sender KIND [<arg>] [{ ... }]": the one inline
// argument into inline (none allowed when inline is nil), the common
// options here, the string options through strs, the others through
// extra (which reports whether it knew the option). Unknown options are
// errors.
func (o *SenderOptions) parseBlock(d *caddyfile.Dispenser, kind string, inline *string, strs map[string]*string, extra func(key string) (bool, error)) error {
	d.Next() // the module name
	if inline != nil && d.NextArg() {
		*inline = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		switch key {
		case "name":
			v, err := singleArg(d)
			if err != nil {
				return err
			}
			o.SenderName = v
		case "countries":
			if kind == "email" {
				return d.Err("sender email takes no countries: e-mail addresses have none")
			}
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			regions, err := sender.ParseRegions(args)
			if err != nil {
				return d.Errf("countries: %v", err)
			}
			o.CountryCodes = regions
		case "timeout":
			v, err := durationArg(d, minSenderTimeout, maxSenderTimeout)
			if err != nil {
				return err
			}
			o.SendTimeout = v
		default:
			if p, ok := strs[key]; ok {
				v, err := singleArg(d)
				if err != nil {
					return err
				}
				*p = v
				continue
			}
			if extra != nil {
				known, err := extra(key)
				if err != nil {
					return err
				}
				if known {
					continue
				}
			}
			return d.Errf("unrecognized %s option '%s'", kind, key)
		}
	}
	return nil
}

// resolver replaces placeholders ({env.X}, {file.path}) in option values
// at provision time and keeps the first error.
type resolver struct {
	kind string
	repl *caddy.Replacer
	err  error
}

func newResolver(kind string) *resolver {
	return &resolver{kind: kind, repl: caddy.NewReplacer()}
}

// required returns v with its placeholders replaced; it is an error for
// v, or a placeholder in it, to be empty.
func (r *resolver) required(option, v string) string {
	if r.err != nil {
		return ""
	}
	if v == "" {
		r.err = fmt.Errorf("%s sender: %s is required", r.kind, option)
		return ""
	}
	out, err := r.repl.ReplaceOrErr(v, true, true)
	if err != nil {
		r.err = fmt.Errorf("%s sender: %s: %v (is its environment variable set?)", r.kind, option, err)
		return ""
	}
	return out
}

// optional returns v with its placeholders replaced; an unknown
// placeholder is an error, an empty one leaves the option unset.
func (r *resolver) optional(option, v string) string {
	if r.err != nil || v == "" {
		return ""
	}
	out, err := r.repl.ReplaceOrErr(v, false, true)
	if err != nil {
		r.err = fmt.Errorf("%s sender: %s: %v", r.kind, option, err)
		return ""
	}
	return out
}

// TwilioSender sends codes by SMS through Twilio Programmable Messaging.
// The code's lifetime is sent as ValidityPeriod; throttling (429, Twilio
// code 20429) and 5xx answers are retried with backoff and jitter.
type TwilioSender struct {
	// Endpoint is the API base URL. Default: https://api.twilio.com
	Endpoint string `json:"endpoint,omitempty"`
	// AccountSID is the account ("AC...").
	AccountSID string `json:"account_sid,omitempty"`
	// AuthToken is the account's auth token; or use APIKey and APISecret.
	AuthToken string `json:"auth_token,omitempty"`
	// APIKey is an API key SID ("SK...") of the account.
	APIKey string `json:"api_key,omitempty"`
	// APISecret is the API key's secret.
	APISecret string `json:"api_secret,omitempty"`
	// From is the sending number or alphanumeric sender ID.
	From string `json:"from,omitempty"`
	// MessagingServiceSID ("MG...") lets a Messaging Service choose the
	// sender, instead of From.
	MessagingServiceSID string `json:"messaging_service_sid,omitempty"`
	SenderOptions

	s *twilio.Sender
}

// CaddyModule returns the Caddy module information.
func (TwilioSender) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.stepup.senders.twilio", New: func() caddy.Module { return new(TwilioSender) }}
}

// Provision resolves placeholders and builds the sender.
func (m *TwilioSender) Provision(caddy.Context) error {
	if err := m.validate("twilio"); err != nil {
		return err
	}
	r := newResolver("twilio")
	cfg := twilio.Config{
		Endpoint:            r.optional("endpoint", m.Endpoint),
		AccountSID:          r.required("account_sid", m.AccountSID),
		AuthToken:           r.optional("auth_token", m.AuthToken),
		APIKey:              r.optional("api_key", m.APIKey),
		APISecret:           r.optional("api_secret", m.APISecret),
		From:                r.optional("from", m.From),
		MessagingServiceSID: r.optional("messaging_service_sid", m.MessagingServiceSID),
		Name:                m.SenderName,
		Timeout:             time.Duration(m.SendTimeout),
	}
	if r.err != nil {
		return r.err
	}
	s, err := twilio.New(cfg)
	if err != nil {
		return err
	}
	m.s = s
	return nil
}

// Name implements sender.Sender.
func (m *TwilioSender) Name() string { return m.s.Name() }

// Channel implements sender.Channeler.
func (m *TwilioSender) Channel() sender.Channel { return sender.SMS }

// Send implements sender.Sender.
func (m *TwilioSender) Send(ctx context.Context, msg *sender.Message) error {
	return m.s.Send(ctx, msg)
}

// UnmarshalCaddyfile sets up the sender from Caddyfile tokens. Syntax:
//
//	sender twilio {
//		account_sid           <AC...>
//		auth_token            <token>
//		api_key               <SK...>
//		api_secret            <secret>
//		from                  <number|sender id>
//		messaging_service_sid <MG...>
//		endpoint              <url>
//		name                  <name>
//		countries             <regions...>
//		timeout               <duration>
//	}
//
// Give auth_token, or api_key and api_secret; from, or
// messaging_service_sid.
func (m *TwilioSender) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	err := m.parseBlock(d, "twilio", nil, map[string]*string{
		"endpoint":              &m.Endpoint,
		"account_sid":           &m.AccountSID,
		"auth_token":            &m.AuthToken,
		"api_key":               &m.APIKey,
		"api_secret":            &m.APISecret,
		"from":                  &m.From,
		"messaging_service_sid": &m.MessagingServiceSID,
	}, nil)
	switch {
	case err != nil:
		return err
	case m.AccountSID == "":
		return d.Err("sender twilio needs account_sid")
	case m.AuthToken == "" && (m.APIKey == "" || m.APISecret == ""):
		return d.Err("sender twilio needs auth_token, or api_key and api_secret")
	case m.AuthToken != "" && (m.APIKey != "" || m.APISecret != ""):
		return d.Err("sender twilio: set auth_token, or api_key and api_secret, not both")
	case (m.From == "") == (m.MessagingServiceSID == ""):
		return d.Err("sender twilio needs from or messaging_service_sid (one of them)")
	}
	return nil
}

// VonageSender sends codes by SMS through the Vonage SMS API. Text that
// does not fit GSM-7 goes as type unicode; the code's lifetime as ttl;
// India's DLT identifiers as entity-id and content-id. Vonage status 1
// (throttled) is retried with backoff and jitter.
type VonageSender struct {
	// Endpoint is the API base URL. Default: https://rest.nexmo.com
	Endpoint string `json:"endpoint,omitempty"`
	// APIKey is the account's API key.
	APIKey string `json:"api_key,omitempty"`
	// APISecret is the account's API secret.
	APISecret string `json:"api_secret,omitempty"`
	// From is the sending number or alphanumeric sender ID (for India,
	// the DLT-registered header).
	From string `json:"from,omitempty"`
	// EntityID is India's DLT principal entity ID.
	EntityID string `json:"entity_id,omitempty"`
	// ContentID is the DLT template ID the message matches.
	ContentID string `json:"content_id,omitempty"`
	SenderOptions

	s *vonage.Sender
}

// CaddyModule returns the Caddy module information.
func (VonageSender) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.stepup.senders.vonage", New: func() caddy.Module { return new(VonageSender) }}
}

// Provision resolves placeholders and builds the sender.
func (m *VonageSender) Provision(caddy.Context) error {
	if err := m.validate("vonage"); err != nil {
		return err
	}
	r := newResolver("vonage")
	cfg := vonage.Config{
		Endpoint:  r.optional("endpoint", m.Endpoint),
		APIKey:    r.required("api_key", m.APIKey),
		APISecret: r.required("api_secret", m.APISecret),
		From:      r.required("from", m.From),
		EntityID:  r.optional("entity_id", m.EntityID),
		ContentID: r.optional("content_id", m.ContentID),
		Name:      m.SenderName,
		Timeout:   time.Duration(m.SendTimeout),
	}
	if r.err != nil {
		return r.err
	}
	s, err := vonage.New(cfg)
	if err != nil {
		return err
	}
	m.s = s
	return nil
}

// Name implements sender.Sender.
func (m *VonageSender) Name() string { return m.s.Name() }

// Channel implements sender.Channeler.
func (m *VonageSender) Channel() sender.Channel { return sender.SMS }

// Send implements sender.Sender.
func (m *VonageSender) Send(ctx context.Context, msg *sender.Message) error {
	return m.s.Send(ctx, msg)
}

// UnmarshalCaddyfile sets up the sender from Caddyfile tokens. Syntax:
//
//	sender vonage {
//		api_key    <key>
//		api_secret <secret>
//		from       <number|sender id>
//		entity_id  <DLT entity id>
//		content_id <DLT template id>
//		endpoint   <url>
//		name       <name>
//		countries  <regions...>
//		timeout    <duration>
//	}
func (m *VonageSender) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	err := m.parseBlock(d, "vonage", nil, map[string]*string{
		"endpoint":   &m.Endpoint,
		"api_key":    &m.APIKey,
		"api_secret": &m.APISecret,
		"from":       &m.From,
		"entity_id":  &m.EntityID,
		"content_id": &m.ContentID,
	}, nil)
	switch {
	case err != nil:
		return err
	case m.APIKey == "" || m.APISecret == "":
		return d.Err("sender vonage needs api_key and api_secret")
	case m.From == "":
		return d.Err("sender vonage needs from")
	case (m.EntityID == "") != (m.ContentID == ""):
		return d.Err("sender vonage: India DLT needs both entity_id and content_id")
	}
	return nil
}

// MSG91Sender sends codes by SMS through MSG91's Flow API, the usual
// route for Indian numbers: the flow template is mapped to a
// DLT-registered template in MSG91's panel, and the code is sent as one of
// its variables.
type MSG91Sender struct {
	// Endpoint is the API base URL. Default: https://control.msg91.com
	Endpoint string `json:"endpoint,omitempty"`
	// AuthKey is the account's authentication key.
	AuthKey string `json:"auth_key,omitempty"`
	// TemplateID is the flow template.
	TemplateID string `json:"template_id,omitempty"`
	// CodeVar names the template variable for the code. Default: otp
	CodeVar string `json:"code_var,omitempty"`
	// TTLVar, when set, names a template variable that receives the
	// code's lifetime in minutes.
	TTLVar string `json:"ttl_var,omitempty"`
	SenderOptions

	s *msg91.Sender
}

// CaddyModule returns the Caddy module information.
func (MSG91Sender) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.stepup.senders.msg91", New: func() caddy.Module { return new(MSG91Sender) }}
}

// Provision resolves placeholders and builds the sender.
func (m *MSG91Sender) Provision(caddy.Context) error {
	if err := m.validate("msg91"); err != nil {
		return err
	}
	r := newResolver("msg91")
	cfg := msg91.Config{
		Endpoint:   r.optional("endpoint", m.Endpoint),
		AuthKey:    r.required("auth_key", m.AuthKey),
		TemplateID: r.required("template_id", m.TemplateID),
		CodeVar:    m.CodeVar,
		TTLVar:     m.TTLVar,
		Name:       m.SenderName,
		Timeout:    time.Duration(m.SendTimeout),
	}
	if r.err != nil {
		return r.err
	}
	s, err := msg91.New(cfg)
	if err != nil {
		return err
	}
	m.s = s
	return nil
}

// Name implements sender.Sender.
func (m *MSG91Sender) Name() string { return m.s.Name() }

// Channel implements sender.Channeler.
func (m *MSG91Sender) Channel() sender.Channel { return sender.SMS }

// Send implements sender.Sender.
func (m *MSG91Sender) Send(ctx context.Context, msg *sender.Message) error { return m.s.Send(ctx, msg) }

// UnmarshalCaddyfile sets up the sender from Caddyfile tokens. Syntax:
//
//	sender msg91 {
//		auth_key    <key>
//		template_id <id>
//		code_var    <variable>
//		ttl_var     <variable>
//		endpoint    <url>
//		name        <name>
//		countries   <regions...>
//		timeout     <duration>
//	}
func (m *MSG91Sender) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	err := m.parseBlock(d, "msg91", nil, map[string]*string{
		"endpoint":    &m.Endpoint,
		"auth_key":    &m.AuthKey,
		"template_id": &m.TemplateID,
		"code_var":    &m.CodeVar,
		"ttl_var":     &m.TTLVar,
	}, nil)
	switch {
	case err != nil:
		return err
	case m.AuthKey == "":
		return d.Err("sender msg91 needs auth_key")
	case m.TemplateID == "":
		return d.Err("sender msg91 needs template_id")
	}
	return nil
}

// SNSSender sends codes by SMS through Amazon SNS (Publish to a phone
// number) with the AWS SDK: messages are Transactional, and carry the
// sender ID and India's DLT identifiers when configured. Without static
// credentials the SDK's default chain applies (environment, shared
// files, web identity, ECS or EC2 role).
type SNSSender struct {
	// Region is the AWS region. Default: the SDK's (AWS_REGION).
	Region string `json:"region,omitempty"`
	// Endpoint replaces the regional SNS endpoint.
	Endpoint string `json:"endpoint,omitempty"`
	// AccessKeyID is a static access key.
	AccessKeyID string `json:"access_key_id,omitempty"`
	// SecretAccessKey is the static key's secret.
	SecretAccessKey string `json:"secret_access_key,omitempty"`
	// SessionToken is the static key's session token, if temporary.
	SessionToken string `json:"session_token,omitempty"`
	// SenderID is the alphanumeric sender ID (AWS.SNS.SMS.SenderID).
	SenderID string `json:"sender_id,omitempty"`
	// OriginationNumber is the number to send from
	// (AWS.MM.SMS.OriginationNumber).
	OriginationNumber string `json:"origination_number,omitempty"`
	// MaxPrice caps the price of one SMS in USD (AWS.SNS.SMS.MaxPrice).
	MaxPrice string `json:"max_price,omitempty"`
	// EntityID is India's DLT principal entity ID (AWS.MM.SMS.EntityId).
	EntityID string `json:"entity_id,omitempty"`
	// TemplateID is India's DLT template ID (AWS.MM.SMS.TemplateId).
	TemplateID string `json:"template_id,omitempty"`
	SenderOptions

	s *sns.Sender
}

// CaddyModule returns the Caddy module information.
func (SNSSender) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.stepup.senders.sns", New: func() caddy.Module { return new(SNSSender) }}
}

// Provision resolves placeholders and builds the sender. It reads the
// AWS shared configuration but contacts no service.
func (m *SNSSender) Provision(ctx caddy.Context) error {
	if err := m.validate("sns"); err != nil {
		return err
	}
	r := newResolver("sns")
	cfg := sns.Config{
		Region:            r.optional("region", m.Region),
		Endpoint:          r.optional("endpoint", m.Endpoint),
		AccessKeyID:       r.optional("access_key_id", m.AccessKeyID),
		SecretAccessKey:   r.optional("secret_access_key", m.SecretAccessKey),
		SessionToken:      r.optional("session_token", m.SessionToken),
		SenderID:          r.optional("sender_id", m.SenderID),
		OriginationNumber: r.optional("origination_number", m.OriginationNumber),
		MaxPrice:          r.optional("max_price", m.MaxPrice),
		EntityID:          r.optional("entity_id", m.EntityID),
		TemplateID:        r.optional("template_id", m.TemplateID),
		Name:              m.SenderName,
		Timeout:           time.Duration(m.SendTimeout),
	}
	if m.AccessKeyID != "" {
		// Static keys written in the config must resolve to something.
		cfg.AccessKeyID = r.required("access_key_id", m.AccessKeyID)
		cfg.SecretAccessKey = r.required("secret_access_key", m.SecretAccessKey)
	}
	if r.err != nil {
		return r.err
	}
	s, err := sns.New(ctx, cfg)
	if err != nil {
		return err
	}
	m.s = s
	return nil
}

// Name implements sender.Sender.
func (m *SNSSender) Name() string { return m.s.Name() }

// Channel implements sender.Channeler.
func (m *SNSSender) Channel() sender.Channel { return sender.SMS }

// Send implements sender.Sender.
func (m *SNSSender) Send(ctx context.Context, msg *sender.Message) error { return m.s.Send(ctx, msg) }

// UnmarshalCaddyfile sets up the sender from Caddyfile tokens. Syntax:
//
//	sender sns {
//		region             <region>
//		access_key_id      <key>
//		secret_access_key  <secret>
//		session_token      <token>
//		sender_id          <sender id>
//		origination_number <number>
//		max_price          <USD>
//		entity_id          <DLT entity id>
//		template_id        <DLT template id>
//		endpoint           <url>
//		name               <name>
//		countries          <regions...>
//		timeout            <duration>
//	}
//
// Without access_key_id, credentials come from the AWS SDK's default
// chain.
func (m *SNSSender) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	err := m.parseBlock(d, "sns", nil, map[string]*string{
		"region":             &m.Region,
		"endpoint":           &m.Endpoint,
		"access_key_id":      &m.AccessKeyID,
		"secret_access_key":  &m.SecretAccessKey,
		"session_token":      &m.SessionToken,
		"sender_id":          &m.SenderID,
		"origination_number": &m.OriginationNumber,
		"max_price":          &m.MaxPrice,
		"entity_id":          &m.EntityID,
		"template_id":        &m.TemplateID,
	}, nil)
	switch {
	case err != nil:
		return err
	case (m.AccessKeyID == "") != (m.SecretAccessKey == ""):
		return d.Err("sender sns: set both access_key_id and secret_access_key, or neither to use the AWS default credential chain")
	case (m.EntityID == "") != (m.TemplateID == ""):
		return d.Err("sender sns: India DLT needs both entity_id and template_id")
	}
	return nil
}

// WhatsAppSender sends codes through the WhatsApp Business Cloud API as an
// approved authentication template with a copy-code button; the code
// fills the body parameter and the button. Graph errors 130429, 131056
// and 131048 (rate limits) are retried with backoff and jitter.
type WhatsAppSender struct {
	// Endpoint is the Graph API base URL. Default: https://graph.facebook.com
	Endpoint string `json:"endpoint,omitempty"`
	// Version is the Graph API version. Default: v21.0
	Version string `json:"version,omitempty"`
	// PhoneNumberID is the WhatsApp Business phone number ID.
	PhoneNumberID string `json:"phone_number_id,omitempty"`
	// AccessToken is a system user token with whatsapp_business_messaging.
	AccessToken string `json:"access_token,omitempty"`
	// Template is the approved authentication template's name.
	Template string `json:"template,omitempty"`
	// Language is the template's language code. Default: en_US
	Language string `json:"language,omitempty"`
	SenderOptions

	s *whatsapp.Sender
}

// CaddyModule returns the Caddy module information.
func (WhatsAppSender) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.stepup.senders.whatsapp", New: func() caddy.Module { return new(WhatsAppSender) }}
}

// Provision resolves placeholders and builds the sender.
func (m *WhatsAppSender) Provision(caddy.Context) error {
	if err := m.validate("whatsapp"); err != nil {
		return err
	}
	r := newResolver("whatsapp")
	cfg := whatsapp.Config{
		Endpoint:      r.optional("endpoint", m.Endpoint),
		Version:       m.Version,
		PhoneNumberID: r.required("phone_number_id", m.PhoneNumberID),
		AccessToken:   r.required("access_token", m.AccessToken),
		Template:      r.required("template", m.Template),
		Language:      m.Language,
		Name:          m.SenderName,
		Timeout:       time.Duration(m.SendTimeout),
	}
	if r.err != nil {
		return r.err
	}
	s, err := whatsapp.New(cfg)
	if err != nil {
		return err
	}
	m.s = s
	return nil
}

// Name implements sender.Sender.
func (m *WhatsAppSender) Name() string { return m.s.Name() }

// Channel implements sender.Channeler.
func (m *WhatsAppSender) Channel() sender.Channel { return sender.WhatsApp }

// Send implements sender.Sender.
func (m *WhatsAppSender) Send(ctx context.Context, msg *sender.Message) error {
	return m.s.Send(ctx, msg)
}

// UnmarshalCaddyfile sets up the sender from Caddyfile tokens. Syntax:
//
//	sender whatsapp {
//		phone_number_id <id>
//		access_token    <token>
//		template        <name>
//		language        <code>
//		version         <v21.0>
//		endpoint        <url>
//		name            <name>
//		countries       <regions...>
//		timeout         <duration>
//	}
func (m *WhatsAppSender) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	err := m.parseBlock(d, "whatsapp", nil, map[string]*string{
		"endpoint":        &m.Endpoint,
		"version":         &m.Version,
		"phone_number_id": &m.PhoneNumberID,
		"access_token":    &m.AccessToken,
		"template":        &m.Template,
		"language":        &m.Language,
	}, nil)
	switch {
	case err != nil:
		return err
	case m.PhoneNumberID == "":
		return d.Err("sender whatsapp needs phone_number_id")
	case m.AccessToken == "":
		return d.Err("sender whatsapp needs access_token")
	case m.Template == "":
		return d.Err("sender whatsapp needs template (an approved authentication template)")
	}
	return nil
}

// EmailSender sends codes by e-mail over SMTP, with STARTTLS required by
// default. The address is the one the identity source gives for the
// user. E-mail is a fallback channel, never the only one (NIST SP 800-63B
// rev 4 §3.1.3.1): put it after the phone senders.
type EmailSender struct {
	// Host is the SMTP server.
	Host string `json:"host,omitempty"`
	// Port is the SMTP port. Default: 587 (465 with tls implicit, 25 with
	// tls none)
	Port int `json:"port,omitempty"`
	// TLS is starttls (required, the default), implicit (SMTPS) or none.
	TLS string `json:"tls,omitempty"`
	// Username authenticates, with Password.
	Username string `json:"username,omitempty"`
	// Password authenticates, with Username.
	Password string `json:"password,omitempty"`
	// Auth is the mechanism, plain or login. Default: plain
	Auth string `json:"auth,omitempty"`
	// From is the sender address ("Shop <no-reply@shop.example>").
	From string `json:"from,omitempty"`
	// Subject is the subject line. Default: Your verification code
	Subject string `json:"subject,omitempty"`
	SenderOptions

	s *email.Sender
}

// CaddyModule returns the Caddy module information.
func (EmailSender) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.stepup.senders.email", New: func() caddy.Module { return new(EmailSender) }}
}

// Provision resolves placeholders and builds the sender.
func (m *EmailSender) Provision(caddy.Context) error {
	if len(m.CountryCodes) > 0 {
		return fmt.Errorf("email sender: countries: e-mail addresses have none")
	}
	if err := m.validate("email"); err != nil {
		return err
	}
	r := newResolver("email")
	cfg := email.Config{
		Host:     r.required("host", m.Host),
		Port:     m.Port,
		TLS:      email.TLSMode(m.TLS),
		Username: r.optional("username", m.Username),
		Password: r.optional("password", m.Password),
		Auth:     m.Auth,
		From:     r.required("from", m.From),
		Subject:  m.Subject,
		Name:     m.SenderName,
		Timeout:  time.Duration(m.SendTimeout),
	}
	if m.Username != "" {
		cfg.Password = r.required("password", m.Password)
	}
	if r.err != nil {
		return r.err
	}
	s, err := email.New(cfg)
	if err != nil {
		return err
	}
	m.s = s
	return nil
}

// Name implements sender.Sender.
func (m *EmailSender) Name() string { return m.s.Name() }

// Channel implements sender.Channeler.
func (m *EmailSender) Channel() sender.Channel { return sender.Email }

// Send implements sender.Sender.
func (m *EmailSender) Send(ctx context.Context, msg *sender.Message) error { return m.s.Send(ctx, msg) }

// UnmarshalCaddyfile sets up the sender from Caddyfile tokens. Syntax:
//
//	sender email {
//		host     <smtp host>
//		port     <port>
//		tls      starttls|implicit|none
//		username <user>
//		password <password>
//		auth     plain|login
//		from     <address>
//		subject  <text>
//		name     <name>
//		timeout  <duration>
//	}
func (m *EmailSender) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	err := m.parseBlock(d, "email", nil, map[string]*string{
		"host":     &m.Host,
		"username": &m.Username,
		"password": &m.Password,
		"from":     &m.From,
		"subject":  &m.Subject,
	}, func(key string) (bool, error) {
		switch key {
		case "port":
			v, err := singleArg(d)
			if err != nil {
				return true, err
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 65535 {
				return true, d.Errf("port %q: want a number from 1 to 65535", v)
			}
			m.Port = n
		case "tls":
			v, err := singleArg(d)
			if err != nil {
				return true, err
			}
			switch email.TLSMode(v) {
			case email.StartTLS, email.ImplicitTLS, email.NoTLS:
			default:
				return true, d.Errf("tls %q: want starttls, implicit or none", v)
			}
			m.TLS = v
		case "auth":
			v, err := singleArg(d)
			if err != nil {
				return true, err
			}
			if v != email.AuthPlain && v != email.AuthLogin {
				return true, d.Errf("auth %q: want plain or login", v)
			}
			m.Auth = v
		default:
			return false, nil
		}
		return true, nil
	})
	switch {
	case err != nil:
		return err
	case m.Host == "":
		return d.Err("sender email needs host")
	case m.From == "":
		return d.Err("sender email needs from")
	case (m.Username == "") != (m.Password == ""):
		return d.Err("sender email: set both username and password, or neither")
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner     = (*TwilioSender)(nil)
	_ caddyfile.Unmarshaler = (*TwilioSender)(nil)
	_ sender.Sender         = (*TwilioSender)(nil)
	_ sender.Channeler      = (*TwilioSender)(nil)
	_ sender.Regional       = (*TwilioSender)(nil)
	_ sender.Timeouter      = (*TwilioSender)(nil)

	_ caddy.Provisioner     = (*VonageSender)(nil)
	_ caddyfile.Unmarshaler = (*VonageSender)(nil)
	_ sender.Sender         = (*VonageSender)(nil)
	_ sender.Channeler      = (*VonageSender)(nil)
	_ sender.Regional       = (*VonageSender)(nil)
	_ sender.Timeouter      = (*VonageSender)(nil)

	_ caddy.Provisioner     = (*MSG91Sender)(nil)
	_ caddyfile.Unmarshaler = (*MSG91Sender)(nil)
	_ sender.Sender         = (*MSG91Sender)(nil)
	_ sender.Channeler      = (*MSG91Sender)(nil)
	_ sender.Regional       = (*MSG91Sender)(nil)
	_ sender.Timeouter      = (*MSG91Sender)(nil)

	_ caddy.Provisioner     = (*SNSSender)(nil)
	_ caddyfile.Unmarshaler = (*SNSSender)(nil)
	_ sender.Sender         = (*SNSSender)(nil)
	_ sender.Channeler      = (*SNSSender)(nil)
	_ sender.Regional       = (*SNSSender)(nil)
	_ sender.Timeouter      = (*SNSSender)(nil)

	_ caddy.Provisioner     = (*WhatsAppSender)(nil)
	_ caddyfile.Unmarshaler = (*WhatsAppSender)(nil)
	_ sender.Sender         = (*WhatsAppSender)(nil)
	_ sender.Channeler      = (*WhatsAppSender)(nil)
	_ sender.Regional       = (*WhatsAppSender)(nil)
	_ sender.Timeouter      = (*WhatsAppSender)(nil)

	_ caddy.Provisioner     = (*EmailSender)(nil)
	_ caddyfile.Unmarshaler = (*EmailSender)(nil)
	_ sender.Sender         = (*EmailSender)(nil)
	_ sender.Channeler      = (*EmailSender)(nil)
	_ sender.Timeouter      = (*EmailSender)(nil)
)
