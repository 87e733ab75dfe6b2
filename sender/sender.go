// Package sender delivers one-time codes: the Sender interface, the
// Options every sender's configuration has, the development Log sender,
// failover across a list of senders with a circuit breaker each and
// per-country routing (Chain), the phone-number handling they share
// (E.164 parsing, masking, PhoneRules), the SMS length rules (Segments),
// Standard Webhooks signatures (SignWebhook, VerifyWebhook), and what a
// delivery receipt is (Receipt, Receipter): the provider's word, after
// it accepted a message, on whether the message reached the handset.
//
// The senders live in subpackages: the generic webhook, and the
// providers twilio (SMS, voice calls, RCS), vonage (SMS, voice calls,
// RCS), msg91, sns, whatsapp and email. Each owns its configuration (a
// Config with its JSON form, its defaults and its Validate) and builds
// its Sender with New. Voice senders read the code aloud with
// SpokenCode.
//
// The package knows nothing of challenges or policies beyond the few
// strings a Message carries; the step-up engine (package stepup) builds the
// message and decides when to send. It never imports stepup.
package sender

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Channel names the medium a code travels on.
type Channel string

// The channels a sender can deliver on.
const (
	SMS      Channel = "sms"
	WhatsApp Channel = "whatsapp"
	Voice    Channel = "voice"
	Email    Channel = "email"
	// RCS is Rich Communication Services business messaging: a branded
	// chat message in the phone's own messaging app.
	RCS Channel = "rcs"
)

// Message is one code to deliver.
//
// Code is the secret: implementations put it on the wire and nowhere else
// (never in an error, a log line or a metric label).
type Message struct {
	// To is the destination in E.164 form ("+14155550100"), or an e-mail
	// address for the email channel.
	To string
	// Code is the one-time code, digits only.
	Code string
	// Text is the full message text, already rendered (it contains Code).
	Text string
	// Channel is the medium asked for; senders that serve one channel only
	// may ignore it.
	Channel Channel
	// ChannelOnly makes Channel a requirement: the customer chose it
	// ("use another channel"). A Chain then offers the message only to
	// senders of that channel and to senders that declare none (a
	// webhook, which passes the channel on); without it, Channel is a
	// hint and the chain fails over to any sender of the destination.
	ChannelOnly bool
	// Policy is the name of the protect policy the code is for.
	Policy string
	// Challenge is the challenge id, useful to correlate deliveries.
	Challenge string
	// TTL is how long the code stays valid; providers that support a
	// validity period (Twilio ValidityPeriod, Vonage ttl) use it.
	TTL time.Duration
	// Email is an optional e-mail address to fall back on: senders of the
	// email channel deliver to To when it is an address, and to Email
	// when To is a phone number. Phone senders ignore it.
	Email string
	// ReceiptURL, when set, is where the provider should report the
	// delivery of this message: the public URL of this sender's receipt
	// endpoint ({public_url}{path_prefix}/receipts/{sender name}), without
	// a query. A Chain sets it, per sender, from ChainOptions.ReceiptURL,
	// for the senders that take receipts (Receipter); a sender that takes
	// none ignores it. Providers that take the URL with each message
	// (Twilio StatusCallback, Vonage callback, the webhook's receipt_url)
	// are given it; the others report to the URL configured in their
	// console. Empty: no receipt is asked for.
	ReceiptURL string
	// Locale is the customer's language as a BCP 47 tag ("hi", "pt-BR"),
	// the one Text was written in; empty means English. Voice senders
	// speak in it (see VoiceLocale); the others ignore it.
	Locale string
}

// Sender delivers a message through one provider.
//
// Send must honour ctx (its deadline bounds the whole delivery, retries
// included) and return nil only when the provider accepted the message. The
// error it returns should be an *Error so that failover can tell a
// temporary failure from a permanent one; any other error is treated as
// temporary.
type Sender interface {
	// Name identifies the sender in logs, metrics and the challenge record
	// ("webhook", "twilio", or the name the operator gave it).
	Name() string
	// Send delivers msg.
	Send(ctx context.Context, msg *Message) error
}

// IDSender is implemented by senders whose provider names the messages
// it accepts. The id is what the provider's delivery receipts refer to
// (Receipt.MessageID), so that a receipt can be matched with the code
// it reports on. Senders that do not implement it report no id; use
// SendWithID to call either kind.
type IDSender interface {
	Sender
	// SendWithID delivers msg as Send does and returns the provider's id
	// of the accepted message ("SM...", "wamid...."), or "" when the
	// provider gave none. The id is not secret: it names neither the
	// destination nor the code.
	SendWithID(ctx context.Context, msg *Message) (id string, err error)
}

// SendWithID delivers msg through s and returns the provider's message
// id when s reports one (IDSender), else "".
func SendWithID(ctx context.Context, s Sender, msg *Message) (id string, err error) {
	if is, ok := s.(IDSender); ok {
		return is.SendWithID(ctx, msg)
	}
	return "", s.Send(ctx, msg)
}

// TemplateBound is implemented by senders whose messages must match a
// template registered for the destination: India's DLT (Vonage with
// entity_id and content_id, SNS with entity_id and template_id). Such a
// provider accepts a free text, and the Indian operators then drop it, so
// a test through such a sender sends the configured code message (with a
// placeholder code) rather than a free text.
type TemplateBound interface {
	// TemplateBound reports whether the sender, as configured, sends
	// only texts that match a registered template.
	TemplateBound() bool
}

// Channeler is implemented by senders that deliver on one channel. A
// Chain offers senders of the email channel only messages with an e-mail
// destination (To or Email), and senders of the other channels only
// messages whose To is a phone number. Senders that do not implement it
// (a webhook, the log) are offered every message.
type Channeler interface {
	// Channel returns the medium the sender delivers on.
	Channel() Channel
}

// Regional is implemented by senders limited to the phone numbers of some
// countries (a DLT-registered provider for India, a local gateway). A
// Chain offers such a sender only the numbers of those regions, and no
// e-mail destination.
type Regional interface {
	// Countries returns the ISO 3166-1 alpha-2 regions served ("IN");
	// none means every region.
	Countries() []string
}

// Timeouter is implemented by senders with a time budget of their own. A
// Chain gives such a sender that budget (bounded by what remains of the
// whole delivery) instead of its PerSender default.
type Timeouter interface {
	// Timeout returns the sender's budget for one Send, retries
	// included; zero or less means the Chain's default.
	Timeout() time.Duration
}

// Error is a failed delivery. It never contains the code.
type Error struct {
	// Sender is the name of the sender that failed.
	Sender string
	// Status is the provider's status: an HTTP status code, or 0 when the
	// request did not complete.
	Status int
	// Code is the provider's own error code, when it gave one.
	Code string
	// Temporary reports whether trying again later (or another sender)
	// may succeed: network errors, timeouts, throttling, 5xx.
	Temporary bool
	// Recipient reports that the failure concerns this destination only
	// (an invalid, unreachable, barred or opted-out number, a recipient
	// the provider limits for a while): the sender itself works, so its
	// circuit breaker does not count the failure. Another sender may
	// still deliver.
	Recipient bool
	// Config reports that the provider account or the sender's
	// configuration is at fault (credentials refused, a sender ID, a
	// template or a destination region not enabled for the account): it
	// lasts until an operator changes something. A Chain logs it as an
	// error of kind "configuration". With Recipient too, it concerns the
	// destinations of one region only (Twilio 21408): the breaker does not
	// count it, since the sender still serves the others, but it is still
	// reported as configuration, not as the recipient's fault.
	Config bool
	// Err is the underlying error, when there is one.
	Err error
	// Msg is a short description for logs.
	Msg string
}

// Error returns "sender: message", followed by the status, the
// provider's code, "(configuration)" for a configuration error, and the
// underlying error when there are any.
func (e *Error) Error() string {
	s := e.Sender + ": " + e.Msg
	if e.Status != 0 {
		s += fmt.Sprintf(" (status %d)", e.Status)
	}
	if e.Code != "" {
		s += " (code " + e.Code + ")"
	}
	if e.Config {
		s += " (configuration)"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Kind names what the failure is about, for logs and status reports:
// "configuration" (Config: an operator must act), "recipient" (this
// destination only), "temporary" (trying later or elsewhere may work) or
// "permanent".
func (e *Error) Kind() string {
	switch {
	case e.Config:
		return "configuration"
	case e.Recipient:
		return "recipient"
	case e.Temporary:
		return "temporary"
	}
	return "permanent"
}

// IsTemporary reports whether err is worth retrying: an *Error marked
// Temporary, a context deadline, or any error that is not an *Error.
func IsTemporary(err error) bool {
	if err == nil {
		return false
	}
	var se *Error
	if errors.As(err, &se) {
		return se.Temporary
	}
	return true
}
