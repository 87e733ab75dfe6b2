package sender

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Bounds of Options.SendTimeout.
const (
	MinTimeout = 100 * time.Millisecond
	MaxTimeout = 2 * time.Minute
)

// Options are what every sender's configuration has. The providers'
// Config types embed them, so that their JSON carries these fields
// beside the provider's own:
//
//	{"account_sid":"AC...","name":"twilio-us","countries":["US","CA"],"timeout":"4s"}
//
// # Placeholders
//
// A provider's string options may be written as placeholders that the
// program embedding the sender resolves before it calls New (Caddy's
// {env.TWILIO_TOKEN} or {file./run/secrets/token}). Such fields carry a
// struct tag, and New sees only resolved values:
//
//	placeholder:"required"  a placeholder written there must not resolve
//	                        to nothing (an unset environment variable is
//	                        an error, not a missing option)
//	placeholder:"optional"  a placeholder that resolves to nothing leaves
//	                        the option unset
//
// Options without the tag are taken as written. A provider's Validate
// checks the options as written, placeholders unresolved: what must be
// set, what excludes what, bounds and enumerations. The form of a value
// that may be a placeholder (a URL, an account ID, an address) is
// checked by New, once it is resolved.
type Options struct {
	// Name identifies the sender in logs, metrics and the challenge
	// record; give two senders of one provider different names.
	// Default: the provider's name.
	Name string `json:"name,omitempty"`
	// CountryCodes limits the sender to the phone numbers of these ISO
	// 3166-1 alpha-2 regions ("IN"); the other numbers skip it and go to
	// the next sender (see Regional). Default: every region.
	CountryCodes []string `json:"countries,omitempty"`
	// SendTimeout bounds one delivery through this sender, its retries
	// included, from MinTimeout to MaxTimeout. Zero leaves it to the
	// Chain (its PerSender budget, 5s by default); a sender used on its
	// own then takes 10s.
	SendTimeout Duration `json:"timeout,omitempty"`
	// MaxAttempts bounds the attempts of one Send, the first included.
	// Default: the provider's (3, or 4 for the webhook).
	MaxAttempts int `json:"-"`
	// Client sends the requests of an HTTP provider. Nil means a client
	// with connect, TLS handshake and response header timeouts that
	// follows no redirect (a provider that redirects is misconfigured,
	// and the credentials must not follow). A client given here is used
	// as is.
	Client *http.Client `json:"-"`
}

// Countries returns the regions the sender is limited to, as configured
// (see Regional).
func (o *Options) Countries() []string { return o.CountryCodes }

// Timeout returns the configured budget of one Send, zero when unset
// (see Timeouter): a Chain then gives the sender its default budget.
func (o *Options) Timeout() time.Duration { return time.Duration(o.SendTimeout) }

// Validate checks the options for a sender of the given kind ("twilio"),
// whose name starts the error: regions that exist, a timeout within its
// bounds.
func (o *Options) Validate(kind string) error {
	if _, err := ParseRegions(o.CountryCodes); err != nil {
		return fmt.Errorf("%s sender: countries: %v", kind, err)
	}
	if t := time.Duration(o.SendTimeout); t != 0 && (t < MinTimeout || t > MaxTimeout) {
		return fmt.Errorf("%s sender: timeout %s out of range (%s to %s)", kind, t, MinTimeout, MaxTimeout)
	}
	if o.MaxAttempts < 0 {
		return fmt.Errorf("%s sender: attempts %d must not be negative", kind, o.MaxAttempts)
	}
	return nil
}

// Duration is a time.Duration in JSON: a number of nanoseconds, or a
// string such as "4s" or "1m30s" (time.ParseDuration). It is written as
// nanoseconds, as Caddy writes its durations.
type Duration time.Duration

// UnmarshalJSON reads a number of nanoseconds or a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = Duration(v)
		return nil
	}
	var v time.Duration
	if err := json.Unmarshal(bytes.TrimSpace(b), &v); err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
