package caddymodule

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/email"
	"github.com/caddy-stepup/caddy-stepup/sender/msg91"
	"github.com/caddy-stepup/caddy-stepup/sender/sns"
	"github.com/caddy-stepup/caddy-stepup/sender/twilio"
	"github.com/caddy-stepup/caddy-stepup/sender/vonage"
	"github.com/caddy-stepup/caddy-stepup/sender/webhook"
	"github.com/caddy-stepup/caddy-stepup/sender/whatsapp"
)

// The sender modules (http.stepup.senders.*). Each embeds its
// provider's Config, whose fields are the module's JSON and Caddyfile
// options, and whose sender.Options give every module name, countries
// and timeout; Provision replaces the placeholders and builds the
// provider's sender, which the module then is. The Caddyfile syntax of
// each is on its UnmarshalCaddyfile.

func init() {
	caddy.RegisterModule(WebhookSender{})
	caddy.RegisterModule(LogSender{})
	caddy.RegisterModule(TwilioSender{})
	caddy.RegisterModule(VonageSender{})
	caddy.RegisterModule(MSG91Sender{})
	caddy.RegisterModule(SNSSender{})
	caddy.RegisterModule(WhatsAppSender{})
	caddy.RegisterModule(EmailSender{})
	caddy.RegisterModule(TwilioVoiceSender{})
	caddy.RegisterModule(TwilioRCSSender{})
	caddy.RegisterModule(VonageVoiceSender{})
	caddy.RegisterModule(VonageRCSSender{})
}

// WebhookSender posts each code as JSON to a URL of your own (an SMS
// gateway, a queue, a serverless function), signed the Standard Webhooks
// way when it has a signing secret; see package sender/webhook for the
// wire format and the retries.
type WebhookSender struct {
	webhook.Config
	delivery
}

// CaddyModule returns the Caddy module information.
func (WebhookSender) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.stepup.senders.webhook", New: func() caddy.Module { return new(WebhookSender) }}
}

// Provision replaces placeholders and builds the sender.
func (m *WebhookSender) Provision(caddy.Context) (err error) {
	m.s, err = provision("webhook", m.Config, webhook.New)
	return err
}

// LogSender writes each code to Caddy's log instead of sending it. It is
// for development and demos only: anyone who can read the log can pass
// every challenge. Caddy warns at start when it is configured.
type LogSender struct {
	delivery
}

// CaddyModule returns the Caddy module information.
func (LogSender) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.stepup.senders.log", New: func() caddy.Module { return new(LogSender) }}
}

// Provision sets up the logger and warns that codes will be logged.
func (m *LogSender) Provision(ctx caddy.Context) error {
	logger := ctx.Logger()
	logger.Warn("sender log writes one-time codes to the log: for development only, never in production",
		zap.String("sender", "log"))
	m.s = sender.NewLog(logger)
	return nil
}

// TwilioSender sends codes by SMS through Twilio Programmable Messaging
// (package sender/twilio).
type TwilioSender struct {
	twilio.Config
	channelDelivery
}

// CaddyModule returns the Caddy module information.
func (TwilioSender) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.stepup.senders.twilio", New: func() caddy.Module { return new(TwilioSender) }}
}

// Provision replaces placeholders and builds the sender.
func (m *TwilioSender) Provision(caddy.Context) (err error) {
	m.s, err = provision("twilio", m.Config, twilio.New)
	return err
}

// VonageSender sends codes by SMS through the Vonage SMS API (package
// sender/vonage), with India's DLT identifiers when configured.
type VonageSender struct {
	vonage.Config
	channelDelivery
}

// CaddyModule returns the Caddy module information.
func (VonageSender) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.stepup.senders.vonage", New: func() caddy.Module { return new(VonageSender) }}
}

// Provision replaces placeholders and builds the sender.
func (m *VonageSender) Provision(caddy.Context) (err error) {
	m.s, err = provision("vonage", m.Config, vonage.New)
	return err
}

// MSG91Sender sends codes by SMS through MSG91's Flow API (package
// sender/msg91), the usual route for Indian numbers.
type MSG91Sender struct {
	msg91.Config
	channelDelivery
}

// CaddyModule returns the Caddy module information.
func (MSG91Sender) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.stepup.senders.msg91", New: func() caddy.Module { return new(MSG91Sender) }}
}

// Provision replaces placeholders and builds the sender.
func (m *MSG91Sender) Provision(caddy.Context) (err error) {
	m.s, err = provision("msg91", m.Config, msg91.New)
	return err
}

// SNSSender sends codes by SMS through Amazon SNS (package sender/sns).
// Without static credentials the AWS SDK's default chain applies
// (environment, shared files, web identity, ECS or EC2 role).
type SNSSender struct {
	sns.Config
	channelDelivery
}

// CaddyModule returns the Caddy module information.
func (SNSSender) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.stepup.senders.sns", New: func() caddy.Module { return new(SNSSender) }}
}

// Provision replaces placeholders and builds the sender. It reads the
// AWS shared configuration but contacts no service.
func (m *SNSSender) Provision(ctx caddy.Context) (err error) {
	m.s, err = provision("sns", m.Config, func(cfg sns.Config) (*sns.Sender, error) { return sns.New(ctx, cfg) })
	return err
}

// WhatsAppSender sends codes through the WhatsApp Business Cloud API as
// an approved authentication template (package sender/whatsapp).
type WhatsAppSender struct {
	whatsapp.Config
	channelDelivery
}

// CaddyModule returns the Caddy module information.
func (WhatsAppSender) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.stepup.senders.whatsapp", New: func() caddy.Module { return new(WhatsAppSender) }}
}

// Provision replaces placeholders and builds the sender.
func (m *WhatsAppSender) Provision(caddy.Context) (err error) {
	m.s, err = provision("whatsapp", m.Config, whatsapp.New)
	return err
}

// EmailSender sends codes by e-mail over SMTP (package sender/email).
// E-mail is a fallback channel, never the only one (NIST SP 800-63B
// rev 4 §3.1.3.1): put it after the phone senders.
type EmailSender struct {
	email.Config
	channelDelivery
}

// CaddyModule returns the Caddy module information.
func (EmailSender) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.stepup.senders.email", New: func() caddy.Module { return new(EmailSender) }}
}

// Provision replaces placeholders and builds the sender.
func (m *EmailSender) Provision(caddy.Context) (err error) {
	m.s, err = provision("email", m.Config, email.New)
	return err
}

// TwilioVoiceSender reads codes aloud in a phone call through Twilio
// Programmable Voice (package sender/twilio, VoiceSender), in the
// customer's language.
type TwilioVoiceSender struct {
	twilio.VoiceConfig
	channelDelivery
}

// CaddyModule returns the Caddy module information.
func (TwilioVoiceSender) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.stepup.senders.twilio_voice", New: func() caddy.Module { return new(TwilioVoiceSender) }}
}

// Provision replaces placeholders and builds the sender.
func (m *TwilioVoiceSender) Provision(caddy.Context) (err error) {
	m.s, err = provision("twilio_voice", m.VoiceConfig, twilio.NewVoice)
	return err
}

// TwilioRCSSender sends codes as RCS messages through a Twilio
// Messaging Service with an RCS sender (package sender/twilio,
// RCSSender); the service falls back to SMS unless told not to.
type TwilioRCSSender struct {
	twilio.RCSConfig
	channelDelivery
}

// CaddyModule returns the Caddy module information.
func (TwilioRCSSender) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.stepup.senders.twilio_rcs", New: func() caddy.Module { return new(TwilioRCSSender) }}
}

// Provision replaces placeholders and builds the sender.
func (m *TwilioRCSSender) Provision(caddy.Context) (err error) {
	m.s, err = provision("twilio_rcs", m.RCSConfig, twilio.NewRCS)
	return err
}

// VonageVoiceSender reads codes aloud in a phone call through the
// Vonage Voice API (package sender/vonage, VoiceSender), in the
// customer's language.
type VonageVoiceSender struct {
	vonage.VoiceConfig
	channelDelivery
}

// CaddyModule returns the Caddy module information.
func (VonageVoiceSender) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.stepup.senders.vonage_voice", New: func() caddy.Module { return new(VonageVoiceSender) }}
}

// Provision replaces placeholders, reads the private key and builds the
// sender.
func (m *VonageVoiceSender) Provision(caddy.Context) (err error) {
	m.s, err = provision("vonage_voice", m.VoiceConfig, vonage.NewVoice)
	return err
}

// VonageRCSSender sends codes as RCS messages through the Vonage
// Messages API (package sender/vonage, RCSSender).
type VonageRCSSender struct {
	vonage.RCSConfig
	channelDelivery
}

// CaddyModule returns the Caddy module information.
func (VonageRCSSender) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.stepup.senders.vonage_rcs", New: func() caddy.Module { return new(VonageRCSSender) }}
}

// Provision replaces placeholders, reads the private key and builds the
// sender.
func (m *VonageRCSSender) Provision(caddy.Context) (err error) {
	m.s, err = provision("vonage_rcs", m.RCSConfig, vonage.NewRCS)
	return err
}

// providerModule is what a provider's module is: a Caddy module that
// delivers on one channel, within its own budget, maybe to some regions
// only.
type providerModule interface {
	caddy.Provisioner
	caddyfile.Unmarshaler
	sender.Sender
	sender.Channeler
	sender.Regional
	sender.Timeouter
	sender.IDSender
	sender.Receipter
	sender.TemplateBound
}

// Interface guards
var (
	_ caddy.Provisioner     = (*WebhookSender)(nil)
	_ caddyfile.Unmarshaler = (*WebhookSender)(nil)
	_ sender.Sender         = (*WebhookSender)(nil)
	_ sender.Regional       = (*WebhookSender)(nil)
	_ sender.Timeouter      = (*WebhookSender)(nil)
	_ sender.IDSender       = (*WebhookSender)(nil)
	_ sender.Receipter      = (*WebhookSender)(nil)

	_ caddy.Provisioner     = (*LogSender)(nil)
	_ caddyfile.Unmarshaler = (*LogSender)(nil)
	_ sender.Sender         = (*LogSender)(nil)

	_ providerModule = (*TwilioSender)(nil)
	_ providerModule = (*VonageSender)(nil)
	_ providerModule = (*MSG91Sender)(nil)
	_ providerModule = (*SNSSender)(nil)
	_ providerModule = (*WhatsAppSender)(nil)
	_ providerModule = (*EmailSender)(nil)
	_ providerModule = (*TwilioVoiceSender)(nil)
	_ providerModule = (*TwilioRCSSender)(nil)
	_ providerModule = (*VonageVoiceSender)(nil)
	_ providerModule = (*VonageRCSSender)(nil)
)
