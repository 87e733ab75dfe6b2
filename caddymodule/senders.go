package caddymodule

import (
	"context"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-stepup/caddy-stepup/sender"
)

func init() {
	caddy.RegisterModule(WebhookSender{})
	caddy.RegisterModule(LogSender{})
}

// WebhookSender posts each code as JSON to a URL of your own (an SMS
// gateway, a queue, a serverless function):
//
//	{"to":"+14155550100","code":"123456","message":"...","channel":"sms","policy":"checkout","challenge":"ID"}
//
// With a signing secret, requests are signed the Standard Webhooks way
// (headers webhook-id, webhook-timestamp, webhook-signature). A 2xx
// answer means sent; 408, 429, 5xx and network errors are retried with
// backoff (same webhook-id) within the send timeout; other 4xx fail at
// once, and the next sender is tried.
type WebhookSender struct {
	// URL receives the POST. Placeholders such as {env.SMS_HOOK} work.
	URL string `json:"url,omitempty"`
	// SigningSecret is a Standard Webhooks secret ("whsec_" + base64).
	SigningSecret string `json:"signing_secret,omitempty"`
	// SenderOptions adds name (default: webhook), countries and timeout.
	SenderOptions

	s *sender.Webhook
}

// CaddyModule returns the Caddy module information.
func (WebhookSender) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.stepup.senders.webhook",
		New: func() caddy.Module { return new(WebhookSender) },
	}
}

// Provision resolves placeholders and builds the sender.
func (w *WebhookSender) Provision(caddy.Context) error {
	if err := w.validate("webhook"); err != nil {
		return err
	}
	repl := caddy.NewReplacer()
	s, err := sender.NewWebhook(sender.WebhookConfig{
		URL:           repl.ReplaceKnown(w.URL, ""),
		SigningSecret: repl.ReplaceKnown(w.SigningSecret, ""),
		Name:          w.SenderName,
		Timeout:       time.Duration(w.SendTimeout),
	})
	if err != nil {
		return fmt.Errorf("webhook sender: %v", err)
	}
	w.s = s
	return nil
}

// Name implements sender.Sender.
func (w *WebhookSender) Name() string { return w.s.Name() }

// Send implements sender.Sender.
func (w *WebhookSender) Send(ctx context.Context, msg *sender.Message) error {
	return w.s.Send(ctx, msg)
}

// UnmarshalCaddyfile sets up the sender from Caddyfile tokens. Syntax:
//
//	sender webhook <url> [{
//		signing_secret <whsec_...>
//		name           <name>
//		countries      <regions...>
//		timeout        <duration>
//	}]
func (w *WebhookSender) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	err := w.parseBlock(d, "webhook", &w.URL, map[string]*string{
		"url":            &w.URL,
		"signing_secret": &w.SigningSecret,
	}, nil)
	if err != nil {
		return err
	}
	if w.URL == "" {
		return d.Err("sender webhook needs a URL")
	}
	return nil
}

// LogSender writes each code to Caddy's log instead of sending it. It is
// for development and demos only: anyone who can read the log can pass
// every challenge. Caddy warns at start when it is configured.
type LogSender struct {
	s *sender.Log
}

// CaddyModule returns the Caddy module information.
func (LogSender) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.stepup.senders.log",
		New: func() caddy.Module { return new(LogSender) },
	}
}

// Provision sets up the logger and warns that codes will be logged.
func (l *LogSender) Provision(ctx caddy.Context) error {
	logger := ctx.Logger()
	logger.Warn("sender log writes one-time codes to the log: for development only, never in production",
		zap.String("sender", "log"))
	l.s = sender.NewLog(logger)
	return nil
}

// Name implements sender.Sender.
func (l *LogSender) Name() string { return l.s.Name() }

// Send implements sender.Sender.
func (l *LogSender) Send(ctx context.Context, msg *sender.Message) error {
	return l.s.Send(ctx, msg)
}

// UnmarshalCaddyfile sets up the sender from Caddyfile tokens. Syntax:
//
//	sender log
func (l *LogSender) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // "log"
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(d.Nesting()) {
		return d.Errf("sender log takes no options, got '%s'", d.Val())
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner     = (*WebhookSender)(nil)
	_ caddyfile.Unmarshaler = (*WebhookSender)(nil)
	_ sender.Sender         = (*WebhookSender)(nil)
	_ sender.Regional       = (*WebhookSender)(nil)
	_ sender.Timeouter      = (*WebhookSender)(nil)
	_ caddy.Provisioner     = (*LogSender)(nil)
	_ caddyfile.Unmarshaler = (*LogSender)(nil)
	_ sender.Sender         = (*LogSender)(nil)
)
