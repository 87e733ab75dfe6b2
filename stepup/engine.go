// Package stepup is the step-up authentication engine: it decides whether
// a request to a protected area may pass, challenges the user with a
// one-time code when it may not, verifies the code, and hands out grants.
//
// It speaks net/http and never imports Caddy: the Caddy adapter
// (package caddymodule) matches requests to policies and calls Protect,
// and routes the engine's own pages (under Config.PathPrefix) to
// ServeEndpoint.
package stepup

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// Defaults and bounds of the engine's settings (see DESIGN's security
// table: OWASP ASVS V2.7, NIST SP 800-63B).
const (
	DefaultPathPrefix    = "/.stepup"
	DefaultCodeLength    = 6
	DefaultCodeTTL       = 5 * time.Minute
	MaxCodeTTL           = 10 * time.Minute
	DefaultMaxAttempts   = 5
	MaxMaxAttempts       = 10
	DefaultResendAfter   = 30 * time.Second
	DefaultMaxSends      = 3
	DefaultMaxFailures   = 20
	MaxMaxFailures       = 100
	DefaultFailureWindow = 24 * time.Hour
	// DefaultRetain is how long a finished challenge is kept so that a
	// late request learns it expired or was used.
	DefaultRetain = 10 * time.Minute
)

// Headers names the headers the upstream receives on a verified request.
type Headers struct {
	Policy     string
	User       string
	VerifiedAt string
}

// DefaultHeaders are the upstream headers unless configured otherwise.
var DefaultHeaders = Headers{
	Policy:     "Stepup-Policy",
	User:       "Stepup-User",
	VerifiedAt: "Stepup-Verified-At",
}

// Config is the engine's configuration. Zero values take the defaults.
type Config struct {
	// Secret keys every MAC (codes at rest, grants, forms). At least
	// MinSecretLen bytes; the same on every instance sharing a store.
	Secret []byte
	// PreviousSecrets are still accepted for verification (grants, codes
	// of pending challenges, forms, preserved requests) while a rotation
	// rolls out; everything new is made with Secret.
	PreviousSecrets [][]byte
	// Limits bound how often challenges start and codes are sent.
	Limits Limits
	// PhoneRules decide which numbers codes may go to; the zero value
	// refuses premium-rate and other non-mobile numbers.
	PhoneRules sender.PhoneRules
	// Page brands and localizes the pages and the code message
	// (docs/PAGE.md).
	Page PageConfig
	// PathPrefix is where the engine's pages live ("/.stepup").
	PathPrefix string
	// CodeLength is the number of digits (6 to 10).
	CodeLength int
	// CodeTTL is the code lifetime (at most 10 minutes).
	CodeTTL time.Duration
	// MaxAttempts is how many codes may be tried per challenge (1 to 10).
	MaxAttempts int
	// ResendAfter is the cooldown between two sends of one challenge.
	ResendAfter time.Duration
	// MaxSends is how many codes one challenge may send, the first included.
	MaxSends int
	// MaxFailures is how many wrong codes one user may enter in
	// FailureWindow before being locked out (at most 100).
	MaxFailures   int
	FailureWindow time.Duration
	// DefaultRegion parses national phone numbers ("IN", "US"); empty
	// means numbers must be in international form.
	DefaultRegion string
	// SiteName is shown on the page and in the message; defaults to the
	// page title, then Domain.
	SiteName string
	// Scope, when set, lets handlers that share the secret and the store
	// accept each other's grants for policies of the same name (a
	// deliberate choice: several sites of one shop). Empty: grants and
	// challenges are valid only at the site (host and port) and path
	// prefix they were made at.
	Scope string
	// Domain is the site's host name ("shop.example.com"). Code messages
	// end with the WebOTP line "@domain #code" only when it is set: it
	// must come from configuration, never from a request's Host header.
	Domain string
	// Message is the text template of a code message; see DefaultMessage.
	Message string
	// Headers names the upstream headers.
	Headers Headers
	// Retain is how long finished challenges are kept.
	Retain time.Duration
	// SendTimeout bounds the delivery of one code, failover included.
	SendTimeout time.Duration
	// MaxBody bounds a request body preserved across a challenge (and
	// read to bind a transaction). Larger requests get 413.
	MaxBody int64
	// BodyTimeout bounds the reading of a body that is preserved or
	// bound: a client that has not sent it all by then gets 408.
	BodyTimeout time.Duration
	// AllowCrossSite lets requests that a browser says come from another
	// site (Sec-Fetch-Site, Origin) be preserved and replayed after the
	// code. Off by default: the replay would carry the customer's
	// cookies for a request another site made.
	AllowCrossSite bool
	// GrantHeader lets API clients send their grant in the Stepup-Grant
	// header as well as in the Stepup-Grant cookie. Off by default:
	// access logs record request headers (Caddy redacts only cookies
	// and credentials), and a grant must never reach a log.
	GrantHeader bool
	// RequestFailureWindow replaces FailureWindow where the identity
	// comes from the request (sign-up, password reset): anyone can name
	// anyone's account there, so a lockout that strangers can cause must
	// end soon. At most MaxRequestFailureWindow.
	RequestFailureWindow time.Duration
	// RevocationGrace is how long an instance keeps honouring session
	// grants on the revocation state and store generation it read last
	// while the store is unreachable (at most MaxRevocationGrace). Zero
	// takes the default; a negative value means none: grant checks fail
	// closed as soon as the store does.
	RevocationGrace time.Duration
}

// Bounds of Config.RevocationGrace.
const (
	DefaultRevocationGrace = 30 * time.Second
	MaxRevocationGrace     = 30 * time.Second
)

// revocationGrace is RevocationGrace with its default and "none" read.
func (c *Config) revocationGrace() time.Duration {
	switch {
	case c.RevocationGrace < 0:
		return 0
	case c.RevocationGrace == 0:
		return DefaultRevocationGrace
	}
	return c.RevocationGrace
}

// Bounds of Config.RequestFailureWindow.
const (
	DefaultRequestFailureWindow = 15 * time.Minute
	MaxRequestFailureWindow     = time.Hour
)

// Bounds of Config.BodyTimeout.
const (
	DefaultBodyTimeout = 15 * time.Second
	MaxBodyTimeout     = 5 * time.Minute
)

// DefaultMessage is the code message unless configured otherwise. The
// last line lets Android Chrome fill the code in (WebOTP); it is added
// only when the host is known.
const DefaultMessage = "{code} is your {site} verification code. It expires in {ttl}. Do not share it."

// DefaultTransactionMessage replaces DefaultMessage when a transaction
// has a description, so the customer sees what the code approves
// (PSD2 dynamic linking).
const DefaultTransactionMessage = "{code} is your {site} code to approve: {describe}. It expires in {ttl}. Do not share it."

// setDefaults fills zero values and checks bounds.
func (c *Config) setDefaults() error {
	if c.PathPrefix == "" {
		c.PathPrefix = DefaultPathPrefix
	}
	if !strings.HasPrefix(c.PathPrefix, "/") || strings.HasSuffix(c.PathPrefix, "/") || len(c.PathPrefix) < 2 {
		return fmt.Errorf("path_prefix %q must start with '/' and not end with '/'", c.PathPrefix)
	}
	if c.CodeLength == 0 {
		c.CodeLength = DefaultCodeLength
	}
	if c.CodeLength < MinCodeLength || c.CodeLength > MaxCodeLength {
		return fmt.Errorf("code_length %d out of range (%d to %d)", c.CodeLength, MinCodeLength, MaxCodeLength)
	}
	if c.CodeTTL == 0 {
		c.CodeTTL = DefaultCodeTTL
	}
	if c.CodeTTL < 30*time.Second || c.CodeTTL > MaxCodeTTL {
		return fmt.Errorf("code_ttl %s out of range (30s to %s)", c.CodeTTL, MaxCodeTTL)
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.MaxAttempts < 1 || c.MaxAttempts > MaxMaxAttempts {
		return fmt.Errorf("max_attempts %d out of range (1 to %d)", c.MaxAttempts, MaxMaxAttempts)
	}
	if c.ResendAfter == 0 {
		c.ResendAfter = DefaultResendAfter
	}
	if c.ResendAfter < time.Second || c.ResendAfter >= c.CodeTTL {
		return fmt.Errorf("resend_after %s out of range (1s to less than code_ttl)", c.ResendAfter)
	}
	if c.MaxSends == 0 {
		c.MaxSends = DefaultMaxSends
	}
	if c.MaxSends < 1 || c.MaxSends > 10 {
		return fmt.Errorf("max_sends %d out of range (1 to 10)", c.MaxSends)
	}
	if c.MaxFailures == 0 {
		c.MaxFailures = DefaultMaxFailures
	}
	if c.MaxFailures < 1 || c.MaxFailures > MaxMaxFailures {
		return fmt.Errorf("max_failures %d out of range (1 to %d)", c.MaxFailures, MaxMaxFailures)
	}
	if c.FailureWindow == 0 {
		c.FailureWindow = DefaultFailureWindow
	}
	if c.Message == "" {
		c.Message = DefaultMessage
	}
	if !strings.Contains(c.Message, "{code}") {
		return errors.New("message template must contain {code}")
	}
	if c.Headers.Policy == "" {
		c.Headers.Policy = DefaultHeaders.Policy
	}
	if c.Headers.User == "" {
		c.Headers.User = DefaultHeaders.User
	}
	if c.Headers.VerifiedAt == "" {
		c.Headers.VerifiedAt = DefaultHeaders.VerifiedAt
	}
	c.Headers.Policy = http.CanonicalHeaderKey(c.Headers.Policy)
	c.Headers.User = http.CanonicalHeaderKey(c.Headers.User)
	c.Headers.VerifiedAt = http.CanonicalHeaderKey(c.Headers.VerifiedAt)
	if c.Retain == 0 {
		c.Retain = DefaultRetain
	}
	if c.SendTimeout == 0 {
		c.SendTimeout = 10 * time.Second
	}
	c.Limits.setDefaults()
	if err := c.PhoneRules.Validate(); err != nil {
		return fmt.Errorf("phone rules: %v", err)
	}
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.MaxBody < 1 || c.MaxBody > MaxMaxBody {
		return fmt.Errorf("max_body %d out of range (1 to %d bytes)", c.MaxBody, MaxMaxBody)
	}
	if c.Domain != "" && !validDomain(c.Domain) {
		return fmt.Errorf("domain %q: want a host name such as shop.example.com (lowercase letters, digits, dots and dashes, no port)", c.Domain)
	}
	if c.RevocationGrace > MaxRevocationGrace {
		return fmt.Errorf("revocation_grace %s out of range (off, or up to %s)", c.RevocationGrace, MaxRevocationGrace)
	}
	if c.RequestFailureWindow == 0 {
		c.RequestFailureWindow = DefaultRequestFailureWindow
	}
	if c.RequestFailureWindow < time.Minute || c.RequestFailureWindow > MaxRequestFailureWindow {
		return fmt.Errorf("request_failure_window %s out of range (1m to %s)", c.RequestFailureWindow, MaxRequestFailureWindow)
	}
	if c.BodyTimeout == 0 {
		c.BodyTimeout = DefaultBodyTimeout
	}
	if c.BodyTimeout < time.Second || c.BodyTimeout > MaxBodyTimeout {
		return fmt.Errorf("body_timeout %s out of range (1s to %s)", c.BodyTimeout, MaxBodyTimeout)
	}
	return nil
}

// validDomain reports whether s is a lowercase DNS host name.
func validDomain(s string) bool {
	if s == "" || len(s) > 253 || s[0] == '.' || s[0] == '-' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// Deliverer sends a code through one or more senders and says which one
// delivered it. *sender.Chain implements it.
type Deliverer interface {
	Send(ctx context.Context, msg *sender.Message) (sentBy string, err error)
}

// ChannelChooser is implemented by Deliverers that know which channels
// reach a destination (sender.Chain does). With two or more, the page
// and the API offer the customer the others ("use another channel").
type ChannelChooser interface {
	// Channels returns the channels that can reach msg's destination.
	Channels(msg *sender.Message) []sender.Channel
	// ChannelOf returns the channel of the sender named name, or "".
	ChannelOf(name string) sender.Channel
}

// Options are the engine's collaborators.
type Options struct {
	Store    store.Store
	Identity Source
	Sender   Deliverer
	Logger   *zap.Logger
	// ClientIP returns the client address of a request, honouring
	// trusted proxies; nil uses RemoteAddr.
	ClientIP func(*http.Request) string
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
	// OnVerified, when set, is called for every request that goes
	// upstream on a verified grant (the Caddy adapter sets placeholders).
	OnVerified func(r *http.Request, policy, user string)
	// Observer, when set, receives every step-up event (metrics, audit).
	Observer Observer
	// RequestID, when set, returns the id of a request for log lines.
	RequestID func(*http.Request) string
	// Assertion, when set, signs every verified request for the upstream.
	Assertion *Assertion
}

// Engine runs step-up for a set of policies. It is safe for concurrent
// use.
type Engine struct {
	cfg  Config
	keys keys
	// all holds the current keys first, then those of PreviousSecrets.
	all      []*keys
	store    store.Store
	identity Source
	sender   Deliverer
	log      *zap.Logger
	clientIP func(*http.Request) string
	now      func() time.Time
	policies map[string]*Policy
	page     *pageRenderer
	// custom are configured upstream header names outside Stepup-*,
	// also never accepted from a client.
	custom     []string
	onVerified func(r *http.Request, policy, user string)
	observer   Observer
	requestID  func(*http.Request) string
	revs       revocations
	gens       generations
	assertion  *Assertion
	// fromRequest: the identity comes from the protected request itself
	// (RequestIdentity), so challenges bind to the browser session.
	fromRequest bool
}

// New returns an engine for policies.
func New(cfg Config, policies []*Policy, opts Options) (*Engine, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	k, err := deriveKeys(cfg.Secret)
	if err != nil {
		return nil, err
	}
	all := []*keys{nil}
	for i, old := range cfg.PreviousSecrets {
		pk, err := deriveKeys(old)
		if err != nil {
			return nil, fmt.Errorf("previous secret %d: %v", i+1, err)
		}
		all = append(all, &pk)
	}
	if opts.Store == nil || opts.Identity == nil || opts.Sender == nil {
		return nil, errors.New("engine needs a store, an identity source and a sender")
	}
	e := &Engine{
		cfg:        cfg,
		keys:       k,
		store:      opts.Store,
		identity:   opts.Identity,
		sender:     opts.Sender,
		log:        opts.Logger,
		clientIP:   opts.ClientIP,
		now:        opts.Now,
		policies:   make(map[string]*Policy, len(policies)),
		all:        all,
		onVerified: opts.OnVerified,
		observer:   opts.Observer,
		requestID:  opts.RequestID,
		assertion:  opts.Assertion,
	}
	if e.log == nil {
		e.log = zap.NewNop()
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.clientIP == nil {
		e.clientIP = remoteIP
	}
	for _, p := range policies {
		if err := p.Validate(); err != nil {
			return nil, err
		}
		if _, dup := e.policies[p.Name]; dup {
			return nil, fmt.Errorf("policy %q defined twice", p.Name)
		}
		e.policies[p.Name] = p
	}
	upstream := []string{cfg.Headers.Policy, cfg.Headers.User, cfg.Headers.VerifiedAt}
	if opts.Assertion != nil {
		upstream = append(upstream, opts.Assertion.Header)
	}
	for _, h := range upstream {
		if !strings.HasPrefix(h, "Stepup-") {
			e.custom = append(e.custom, h)
		}
	}
	e.all[0] = &e.keys
	if ri, ok := opts.Identity.(RequestIdentity); ok && ri.IdentityFromRequest() {
		e.fromRequest = true
		if e.cfg.Limits.PerIP.Off() || e.cfg.Limits.PerNumber.Off() {
			return nil, errors.New("an identity taken from the request (identity request) needs the per_ip and per_number limits: " +
				"anyone can name any number or account in a form")
		}
		for _, p := range policies {
			if p.desc != nil && p.desc.readsRequest() {
				return nil, fmt.Errorf("policy %s: describe %q shows text from the request, and with identity request anyone "+
					"could have that text sent to any number: use a describe without placeholders", p.Name, p.Describe)
			}
		}
	}
	if e.page, err = newPage(cfg.Page, cfg.SiteName, cfg.CodeLength); err != nil {
		return nil, err
	}
	if cfg.Domain == "" {
		e.log.Warn("no domain configured: code messages carry no WebOTP line (@domain #code), so browsers will not offer to fill codes in; set domain to the site's host name")
	}
	return e, nil
}

// Config returns the engine's configuration with defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

// Policy returns the policy named name, or nil.
func (e *Engine) Policy(name string) *Policy { return e.policies[name] }

// IsEndpoint reports whether path is one of the engine's own pages.
func (e *Engine) IsEndpoint(path string) bool {
	p := e.cfg.PathPrefix
	return strings.HasPrefix(path, p) && (len(path) == len(p) || path[len(p)] == '/')
}

// StripHeaders removes every header a client could use to pretend a
// verification happened: all "Stepup-*" headers and the configured
// upstream header names. Call it on every request, protected or not.
//
// Names are compared as CGI-style gateways read them (FastCGI, WSGI:
// case ignored, '-', '_', '.' and ' ' alike), so that "Stepup_User" or
// "stepup.user" cannot reach an app that reads HTTP_STEPUP_USER.
func (e *Engine) StripHeaders(h http.Header) {
	for k := range h {
		if len(k) >= len("Stepup-") && foldedHeaderEqual(k[:len("Stepup-")], "Stepup-") {
			delete(h, k)
			continue
		}
		for _, c := range e.custom {
			if foldedHeaderEqual(k, c) {
				delete(h, k)
				break
			}
		}
	}
}

// identify finds the request's identity and checks its values' bounds,
// whatever the source.
func (e *Engine) identify(r *http.Request) (Identity, error) {
	id, err := e.identity.Identify(r)
	if err != nil {
		return id, err
	}
	if err := id.Validate(); err != nil {
		return Identity{}, err
	}
	return id, nil
}
