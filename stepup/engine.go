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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"go.uber.org/zap"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
	"github.com/caddy-stepup/caddy-stepup/stepup/page"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// Defaults of the engine's settings (see DESIGN's security table: OWASP
// ASVS V2.7, NIST SP 800-63B). Each is written here only; the Caddy
// adapter leaves an option unset to get its default.
const (
	DefaultPathPrefix    = "/.stepup"
	DefaultCodeLength    = 6
	DefaultCodeTTL       = 5 * time.Minute
	DefaultMaxAttempts   = 5
	DefaultResendAfter   = 30 * time.Second
	DefaultMaxSends      = 3
	DefaultMaxFailures   = 20
	DefaultFailureWindow = 24 * time.Hour
	// DefaultRetain is how long a finished challenge is kept so that a
	// late request learns it expired or was used.
	DefaultRetain = 10 * time.Minute
	// DefaultSendTimeout bounds the delivery of one code, failover
	// included.
	DefaultSendTimeout = 10 * time.Second
)

// Upper bounds the security table fixes (also in the Bounds below).
const (
	MaxCodeTTL     = 10 * time.Minute
	MaxMaxAttempts = 10
	MaxMaxFailures = 100
)

// Bounds of the engine's settings. Each is the one place its option's
// range is written and checked: Config's defaults check call them, and
// the Caddy adapter's parser calls the same Check on a value as written,
// so that a Caddyfile and its JSON are refused with the same words.
var (
	CodeLengthBound    = Bound[int]{"code_length", MinCodeLength, MaxCodeLength}
	CodeTTLBound       = Bound[time.Duration]{"code_ttl", 30 * time.Second, MaxCodeTTL}
	MaxAttemptsBound   = Bound[int]{"max_attempts", 1, MaxMaxAttempts}
	ResendAfterBound   = Bound[time.Duration]{"resend_after", time.Second, MaxCodeTTL}
	MaxSendsBound      = Bound[int]{"max_sends", 1, 10}
	MaxFailuresBound   = Bound[int]{"max_failures", 1, MaxMaxFailures}
	FailureWindowBound = Bound[time.Duration]{"failure_window", time.Minute, 30 * 24 * time.Hour}
	RetainBound        = Bound[time.Duration]{"retain", time.Minute, 24 * time.Hour}
	SendTimeoutBound   = Bound[time.Duration]{"send_timeout", time.Second, 2 * time.Minute}
	MaxBodyBound       = Bound[int64]{"max_body", 1, MaxMaxBody}
	BodyTimeoutBound   = Bound[time.Duration]{"body_timeout", time.Second, MaxBodyTimeout}
	// RequestFailureWindowBound is short: strangers can cause the lockout.
	RequestFailureWindowBound = Bound[time.Duration]{"request_failure_window", time.Minute, MaxRequestFailureWindow}
	RevocationGraceBound      = Bound[time.Duration]{"revocation_grace", 0, MaxRevocationGrace}
	// GrantTTLBound is checked by Policy.Validate.
	GrantTTLBound = Bound[time.Duration]{"grant_ttl", time.Second, MaxGrantTTL}
	// AssertionTTLBound bounds an upstream assertion's lifetime.
	AssertionTTLBound = Bound[time.Duration]{"assertion ttl", time.Second, time.Hour}
)

// Bound is the allowed range of a numeric option, both ends included.
type Bound[T int | int64 | time.Duration] struct {
	// Option names the option as the configuration spells it.
	Option   string
	Min, Max T
}

// Check returns nil if v is within the bound, else an error that names
// the option, the value and the range:
// "failure_window 1ns out of range (1m to 30d)".
func (b Bound[T]) Check(v T) error {
	if v >= b.Min && v <= b.Max {
		return nil
	}
	return fmt.Errorf("%s %s out of range (%s to %s)", b.Option, b.show(v, false), b.show(b.Min, true), b.show(b.Max, true))
}

// show writes a value: durations as Go writes them ("90s" is 1m30s), the
// range's ends shortest ("10m", "30d"), byte sizes of max_body with
// their unit.
func (b Bound[T]) show(v T, end bool) string {
	switch x := any(v).(type) {
	case time.Duration:
		if !end {
			return x.String()
		}
		return shortDuration(x)
	case int64:
		if b.Option == "max_body" {
			return byteSize(x)
		}
	}
	return fmt.Sprint(v)
}

// shortDuration writes a round duration in its largest whole unit ("30d",
// "24h", "10m", "30s"; days from two on), anything else as Go does.
func shortDuration(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if d >= u.d && d%u.d == 0 && (u.name != "d" || d >= 48*time.Hour) {
			return strconv.FormatInt(int64(d/u.d), 10) + u.name
		}
	}
	return d.String()
}

// byteSize writes n bytes in the largest binary unit that divides it.
func byteSize(n int64) string {
	for _, u := range []struct {
		n    int64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n >= u.n && n%u.n == 0 {
			return strconv.FormatInt(n/u.n, 10) + " " + u.name
		}
	}
	if n == 1 {
		return "1 byte"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// Headers names the headers the upstream receives on a verified request.
type Headers struct {
	Policy     string
	User       string
	VerifiedAt string
	// Method says how the step-up was made (sms, passkey).
	Method string
}

// DefaultHeaders are the upstream headers unless configured otherwise.
var DefaultHeaders = Headers{
	Policy:     "Stepup-Policy",
	User:       "Stepup-User",
	VerifiedAt: "Stepup-Verified-At",
	Method:     "Stepup-Method",
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
	// Pumping is the SMS-pumping defense that learns from conversion
	// (pumping.go); monitor by default.
	Pumping Pumping
	// PhoneRules decide which numbers codes may go to; the zero value
	// refuses premium-rate and other non-mobile numbers.
	PhoneRules sender.PhoneRules
	// Page brands and localizes the pages and the code message
	// (docs/PAGE.md).
	Page page.Config
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
	// Message is the text template of a code message; see
	// page.DefaultMessage.
	Message string
	// Headers names the upstream headers.
	Headers Headers
	// Retain is how long finished challenges are kept.
	Retain time.Duration
	// SendTimeout bounds the delivery of one code, failover included.
	SendTimeout time.Duration
	// Receipts configures delivery receipts, and the failover to the
	// next sender when a code is not delivered (off by default).
	Receipts Receipts
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
	// Passkeys configures WebAuthn, for policies that offer passkeys
	// (docs/PASSKEYS.md).
	Passkeys Passkeys
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

// WithDefaults returns c with every zero value replaced by its default,
// or an error naming the first option out of its bounds. New calls it;
// callers that need the effective values before making the engine (the
// Caddy adapter sizes the sender chain by SendTimeout) may call it first,
// since applying it twice changes nothing.
func (c Config) WithDefaults() (Config, error) {
	err := c.setDefaults()
	return c, err
}

// setDefaults fills zero values and checks bounds. Every default and
// bound of the engine's options is applied here (and in Limits and
// sender.PhoneRules, which it calls), so that every way of configuring
// the engine is held to the same rules.
func (c *Config) setDefaults() error {
	if c.PathPrefix == "" {
		c.PathPrefix = DefaultPathPrefix
	}
	if err := CheckPathPrefix(c.PathPrefix); err != nil {
		return err
	}
	setInt(&c.CodeLength, DefaultCodeLength)
	setDuration(&c.CodeTTL, DefaultCodeTTL)
	setInt(&c.MaxAttempts, DefaultMaxAttempts)
	setDuration(&c.ResendAfter, DefaultResendAfter)
	setInt(&c.MaxSends, DefaultMaxSends)
	setInt(&c.MaxFailures, DefaultMaxFailures)
	setDuration(&c.FailureWindow, DefaultFailureWindow)
	setDuration(&c.Retain, DefaultRetain)
	setDuration(&c.SendTimeout, DefaultSendTimeout)
	setDuration(&c.BodyTimeout, DefaultBodyTimeout)
	setDuration(&c.RequestFailureWindow, DefaultRequestFailureWindow)
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	for _, err := range []error{
		CodeLengthBound.Check(c.CodeLength),
		CodeTTLBound.Check(c.CodeTTL),
		MaxAttemptsBound.Check(c.MaxAttempts),
		ResendAfterBound.Check(c.ResendAfter),
		MaxSendsBound.Check(c.MaxSends),
		MaxFailuresBound.Check(c.MaxFailures),
		FailureWindowBound.Check(c.FailureWindow),
		RetainBound.Check(c.Retain),
		SendTimeoutBound.Check(c.SendTimeout),
		MaxBodyBound.Check(c.MaxBody),
		BodyTimeoutBound.Check(c.BodyTimeout),
		RequestFailureWindowBound.Check(c.RequestFailureWindow),
		RevocationGraceBound.Check(c.revocationGrace()),
	} {
		if err != nil {
			return err
		}
	}
	if err := c.Receipts.setDefaults(c.CodeTTL); err != nil {
		return err
	}
	if c.ResendAfter >= c.CodeTTL {
		return fmt.Errorf("resend_after %s must be shorter than code_ttl %s: a resend would come after the code expired", c.ResendAfter, c.CodeTTL)
	}
	if c.Domain != "" && !validDomain(c.Domain) {
		return fmt.Errorf("domain %q: want a host name such as shop.example.com (lowercase letters, digits, dots and dashes, no port)", c.Domain)
	}
	if c.Message == "" {
		c.Message = page.DefaultMessage
	}
	if err := CheckMessage(c.Message); err != nil {
		return err
	}
	if c.DefaultRegion != "" {
		if err := CheckDefaultRegion(c.DefaultRegion); err != nil {
			return err
		}
		c.DefaultRegion = strings.ToUpper(c.DefaultRegion)
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
	if c.Headers.Method == "" {
		c.Headers.Method = DefaultHeaders.Method
	}
	c.Headers.Method = http.CanonicalHeaderKey(c.Headers.Method)
	c.Headers.Policy = http.CanonicalHeaderKey(c.Headers.Policy)
	c.Headers.User = http.CanonicalHeaderKey(c.Headers.User)
	c.Headers.VerifiedAt = http.CanonicalHeaderKey(c.Headers.VerifiedAt)
	if err := c.Passkeys.setDefaults(firstNonEmpty(c.SiteName, c.Page.Title, c.Domain)); err != nil {
		return err
	}
	if err := c.Limits.setDefaults(); err != nil {
		return err
	}
	if err := c.Pumping.setDefaults(); err != nil {
		return err
	}
	return c.PhoneRules.Validate()
}

func setInt(v *int, def int) {
	if *v == 0 {
		*v = def
	}
}

func setDuration(v *time.Duration, def time.Duration) {
	if *v == 0 {
		*v = def
	}
}

// CheckPathPrefix checks a path_prefix: it starts with '/', does not end
// with one, and has a name.
func CheckPathPrefix(p string) error {
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || len(p) < 2 {
		return fmt.Errorf("path_prefix %q must start with '/' and not end with '/'", p)
	}
	return nil
}

// CheckDefaultRegion checks a default_region: an ISO 3166-1 alpha-2
// region with phone numbers, in either case ("GB", not "UK").
func CheckDefaultRegion(region string) error {
	if err := sender.CheckRegion(region); err != nil {
		return fmt.Errorf("default_region: %v", err)
	}
	return nil
}

// CheckMessage checks a message template: it must show the code.
func CheckMessage(m string) error {
	if !strings.Contains(m, "{code}") {
		return errors.New("message must contain {code}")
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
	Identity identity.Source
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
	// Refuse, when set, is offered every refusal the engine is about to
	// answer a browser with (a page with status 400 or more; reason is
	// the page's state, such as "locked" or "expired"). When it returns
	// true the engine writes nothing and the caller answers instead: the
	// Caddy adapter hands the refusal to the site's handle_errors routes.
	// API clients always get the engine's JSON, which their protocol
	// needs.
	Refuse func(w http.ResponseWriter, r *http.Request, status int, reason string) bool
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
	identity identity.Source
	sender   Deliverer
	log      *zap.Logger
	clientIP func(*http.Request) string
	now      func() time.Time
	policies map[string]*Policy
	page     *page.Responder
	// custom are configured upstream header names outside Stepup-*,
	// also never accepted from a client.
	custom     []string
	onVerified func(r *http.Request, policy, user string)
	refusals   func(w http.ResponseWriter, r *http.Request, status int, reason string) bool
	observer   Observer
	requestID  func(*http.Request) string
	revs       revocations
	gens       generations
	// identityHeaders are the request headers the identity source reads
	// (identity.HeaderNamer), never accepted from a client as trailers.
	identityHeaders []string
	// alarms remembers when each country's budget alarm last fired, so
	// that a flood logs one line a minute, not one per request.
	alarms    sync.Map
	assertion *Assertion
	// audit says how events name their user (SetAuditUser).
	audit audit
	// fromRequest: the identity comes from the protected request itself
	// (identity.RequestIdentity), so challenges bind to the browser session.
	fromRequest bool
	// failoverQueue names this configuration's queue of due failovers
	// in the store.
	failoverQueue string
	// expiryQueue names its queue of challenges to look at when their
	// code expires (abandonment).
	expiryQueue string
	// bg counts the sends and failovers running after their request.
	bg sync.WaitGroup
	// wa is the WebAuthn relying party and passkeys the store's passkeys,
	// when passkeys are configured; manage is the built-in policy of the
	// passkeys page (a fresh step-up).
	wa       *webauthn.WebAuthn
	passkeys store.PasskeyStore
	manage   *Policy
	// lastScope and lastVerifiedAt remember the last value each worked
	// out, for the next request that needs the same (one site, one
	// grant): one entry each, so nothing a client sends can grow them.
	lastScope      atomic.Pointer[scopeEntry]
	lastVerifiedAt atomic.Pointer[verifiedAtEntry]
	// verified remembers session grants that verified (verifyGrant).
	verified grantCache
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
		refusals:   opts.Refuse,
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
	if err := e.checkPumping(); err != nil {
		return nil, err
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
	if err := e.setupPasskeys(policies); err != nil {
		return nil, err
	}
	upstream := []string{cfg.Headers.Policy, cfg.Headers.User, cfg.Headers.VerifiedAt, cfg.Headers.Method}
	if opts.Assertion != nil {
		upstream = append(upstream, opts.Assertion.Header)
	}
	for _, h := range upstream {
		if !strings.HasPrefix(h, "Stepup-") {
			e.custom = append(e.custom, h)
		}
	}
	e.all[0] = &e.keys
	e.failoverQueue = failoverQueueName(&e.keys, cfg.PathPrefix, opts.Sender)
	e.expiryQueue = failoverQueueName(&e.keys, cfg.PathPrefix+"\x00expiry", opts.Sender)
	if hn, ok := opts.Identity.(identity.HeaderNamer); ok {
		e.identityHeaders = hn.HeaderNames()
	}
	if ri, ok := opts.Identity.(identity.RequestIdentity); ok && ri.IdentityFromRequest() {
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
	if e.page, err = page.New(cfg.Page, cfg.pageOptions()); err != nil {
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
// upstream header names. It also removes the URL-rewrite headers
// X-Original-URL and X-Rewrite-Url, on which some apps route instead of
// the request line (Yii2, Laminas and Zend behind IIS): with Caddy in
// front only a client can have set them, and they would take such an
// app to a protected page on an unprotected path. Call it on every
// request, protected or not.
//
// Names are compared as CGI-style gateways read them (FastCGI, WSGI:
// case ignored, '-', '_', '.' and ' ' alike), so that "Stepup_User" or
// "stepup.user" cannot reach an app that reads HTTP_STEPUP_USER.
func (e *Engine) StripHeaders(h http.Header) {
	for k := range h {
		if len(k) >= len("Stepup-") && identity.FoldedEqual(k[:len("Stepup-")], "Stepup-") ||
			identity.FoldedEqual(k, "X-Original-Url") || identity.FoldedEqual(k, "X-Rewrite-Url") {
			delete(h, k)
			continue
		}
		for _, c := range e.custom {
			if identity.FoldedEqual(k, c) {
				delete(h, k)
				break
			}
		}
	}
}

// identify finds the request's identity and checks its values' bounds,
// whatever the source.
func (e *Engine) identify(r *http.Request) (identity.Identity, error) {
	id, err := e.identity.Identify(r)
	if err != nil {
		return id, err
	}
	if err := id.Validate(); err != nil {
		return identity.Identity{}, err
	}
	e.audit.remember(r, id.User)
	return id, nil
}
