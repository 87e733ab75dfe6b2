package stepup

import (
	"crypto/sha256"
	"fmt"
	"regexp"
	"time"
)

// Mode says what verifying a code opens.
type Mode int

// The modes of a policy.
const (
	// Session: one verification opens the policy for the grant's
	// lifetime, in this browser session, for this user.
	Session Mode = iota
	// Transaction: one code authorizes exactly one request, bound to its
	// method, path, body and identity.
	Transaction
	// Monitor: log and count what would be challenged; enforce nothing.
	Monitor
)

func (m Mode) String() string {
	switch m {
	case Session:
		return "session"
	case Transaction:
		return "transaction"
	case Monitor:
		return "monitor"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// ParseMode parses "session", "transaction" or "monitor".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "session", "":
		return Session, nil
	case "transaction":
		return Transaction, nil
	case "monitor":
		return Monitor, nil
	}
	return 0, fmt.Errorf("unknown mode %q (want session, transaction or monitor)", s)
}

// Bounds and defaults of a policy's grant lifetime.
const (
	DefaultGrantTTL = 15 * time.Minute
	MaxGrantTTL     = 24 * time.Hour
)

// Policy is one protected area: what verifying opens, and for how long.
// Which requests it covers is the caller's business (the Caddy adapter
// matches requests with Caddy matchers).
type Policy struct {
	// Name identifies the policy in cookies, headers, logs and metrics.
	Name string
	// Mode is session, transaction or monitor.
	Mode Mode
	// GrantTTL is how long a session-mode verification lasts.
	GrantTTL time.Duration
	// Describe is the template of what a transaction authorizes, shown on
	// the page and in the message ("Pay {form.amount} to {form.merchant}").
	Describe string
	// Version identifies the policy's whole definition (the Caddy
	// adapter hashes its configuration, matchers included); empty, it
	// is derived from the fields above. Challenges and grants remember
	// it: after a reload that changes the policy they expire, so that a
	// change can never widen what an earlier code approved.
	Version string
	// Methods are the step-up methods offered, in order of preference:
	// "sms" (a code; the default when empty) and "passkey" (WebAuthn,
	// for users who enrolled one). SMS must be among them.
	Methods []string

	desc *describer
}

var policyName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$`)

// Validate checks the policy and fills defaults.
func (p *Policy) Validate() error {
	if !policyName.MatchString(p.Name) {
		return fmt.Errorf("policy name %q: use 1 to 48 letters, digits, '-' or '_', starting with a letter or digit", p.Name)
	}
	if p.Mode < Session || p.Mode > Monitor {
		return fmt.Errorf("policy %s: invalid mode %d", p.Name, p.Mode)
	}
	if p.GrantTTL == 0 {
		p.GrantTTL = DefaultGrantTTL
	}
	if err := GrantTTLBound.Check(p.GrantTTL); err != nil {
		return fmt.Errorf("policy %s: %v", p.Name, err)
	}
	if err := checkMethods(p.Methods); err != nil {
		return fmt.Errorf("policy %s: %v", p.Name, err)
	}
	if p.Version == "" {
		sum := sha256.New()
		writeParts(sum, "policy-v1", p.Name, p.Mode.String(), p.GrantTTL.String(), p.Describe)
		if len(p.Methods) > 0 {
			writeParts(sum, p.Methods...)
		}
		p.Version = b64.EncodeToString(sum.Sum(nil)[:12])
	}
	if p.Describe != "" {
		d, err := parseDescribe(p.Describe)
		if err != nil {
			return fmt.Errorf("policy %s: %v", p.Name, err)
		}
		p.desc = d
	}
	return nil
}
