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
	// request's host.
	SiteName string
	// Message is the text template of a code message; see DefaultMessage.
	Message string
	// Headers names the upstream headers.
	Headers Headers
	// Retain is how long finished challenges are kept.
	Retain time.Duration
	// SendTimeout bounds the delivery of one code, failover included.
	SendTimeout time.Duration
}

// DefaultMessage is the code message unless configured otherwise. The
// last line lets Android Chrome fill the code in (WebOTP); it is added
// only when the host is known.
const DefaultMessage = "{code} is your {site} verification code. It expires in {ttl}. Do not share it."

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
	return nil
}

// Deliverer sends a code through one or more senders and says which one
// delivered it. *sender.Chain implements it.
type Deliverer interface {
	Send(ctx context.Context, msg *sender.Message) (sentBy string, err error)
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
}

// Engine runs step-up for a set of policies. It is safe for concurrent
// use.
type Engine struct {
	cfg      Config
	keys     keys
	store    store.Store
	identity Source
	sender   Deliverer
	log      *zap.Logger
	clientIP func(*http.Request) string
	now      func() time.Time
	policies map[string]*Policy
	page     *pageRenderer
	// stripHeaders are the header names never accepted from a client.
	custom []string
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
	if opts.Store == nil || opts.Identity == nil || opts.Sender == nil {
		return nil, errors.New("engine needs a store, an identity source and a sender")
	}
	e := &Engine{
		cfg:      cfg,
		keys:     k,
		store:    opts.Store,
		identity: opts.Identity,
		sender:   opts.Sender,
		log:      opts.Logger,
		clientIP: opts.ClientIP,
		now:      opts.Now,
		policies: make(map[string]*Policy, len(policies)),
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
	for _, h := range []string{cfg.Headers.Policy, cfg.Headers.User, cfg.Headers.VerifiedAt} {
		if !strings.HasPrefix(h, "Stepup-") {
			e.custom = append(e.custom, h)
		}
	}
	if e.page, err = newPageRenderer(); err != nil {
		return nil, err
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
func (e *Engine) StripHeaders(h http.Header) {
	for k := range h {
		if strings.HasPrefix(k, "Stepup-") {
			delete(h, k)
		}
	}
	for _, k := range e.custom {
		delete(h, k)
	}
}

// Next is the rest of the handler chain.
type Next func(w http.ResponseWriter, r *http.Request) error

// Protect runs policy p on a request that matched it: it calls next when
// the request may pass (valid grant, or monitor mode) and otherwise
// answers with a challenge or an error page itself.
func (e *Engine) Protect(w http.ResponseWriter, r *http.Request, p *Policy, next Next) error {
	if p.Mode == Monitor {
		e.monitor(r, p)
		return next(w, r)
	}
	id, err := e.identity.Identify(r)
	if err != nil {
		return e.identityError(w, r, p.Name, err)
	}
	session := e.session(r, id)
	if g, ok := e.grantFor(r, p, id.User, session); ok {
		e.setUpstreamHeaders(r, p, id.User, g.IssuedAt)
		if c := e.log.Check(zap.DebugLevel, "grant used"); c != nil {
			c.Write(zap.String("policy", p.Name), zap.String("client_ip", e.clientIP(r)))
		}
		return next(w, r)
	}
	if p.Mode == Transaction {
		// Transaction mode needs request preservation (a later
		// milestone): refuse rather than let anything through.
		e.renderStatus(w, r, http.StatusNotImplemented, stateUnsupported, nil)
		return nil
	}
	return e.challenge(w, r, p, id, session)
}

// monitor logs what enforcing the policy would have done.
func (e *Engine) monitor(r *http.Request, p *Policy) {
	c := e.log.Check(zap.InfoLevel, "monitor_would_challenge")
	if c == nil {
		return
	}
	outcome := "challenge"
	id, err := e.identity.Identify(r)
	switch {
	case err != nil:
		outcome = "no_identity"
	default:
		if _, ok := e.grantFor(r, p, id.User, e.session(r, id)); ok {
			return
		}
	}
	c.Write(zap.String("policy", p.Name), zap.String("would", outcome),
		zap.String("client_ip", e.clientIP(r)), zap.String("method", r.Method))
}

// session returns the session a grant or challenge binds to: the
// identity's own, or the engine's browser-session cookie.
func (e *Engine) session(r *http.Request, id Identity) string {
	if id.Session != "" {
		return "id:" + id.Session
	}
	if v := cookieValue(r, sessionCookie(r)); v != "" && len(v) <= 64 {
		return "sid:" + v
	}
	return ""
}

// grantFor returns a valid grant of the request for p, from its cookie.
func (e *Engine) grantFor(r *http.Request, p *Policy, user, session string) (Grant, bool) {
	if session == "" {
		return Grant{}, false
	}
	tok := cookieValue(r, grantCookie(r, p.Name))
	if tok == "" || len(tok) > MaxGrantTokenLen {
		return Grant{}, false
	}
	g, ok := e.keys.verifyGrant(tok, p.Name, user, session, e.now())
	if !ok || g.Kind != SessionGrant {
		return Grant{}, false
	}
	return g, true
}

// setUpstreamHeaders tells the upstream what was verified.
func (e *Engine) setUpstreamHeaders(r *http.Request, p *Policy, user string, at time.Time) {
	h := e.cfg.Headers
	r.Header.Set(h.Policy, p.Name)
	r.Header.Set(h.User, user)
	r.Header.Set(h.VerifiedAt, at.UTC().Format(time.RFC3339))
}

// identityError answers a protected request whose identity is missing or
// could not be read.
func (e *Engine) identityError(w http.ResponseWriter, r *http.Request, policy string, err error) error {
	if errors.Is(err, ErrNoIdentity) {
		e.log.Info("no identity on a protected request", zap.String("policy", policy), zap.String("client_ip", e.clientIP(r)))
		e.renderStatus(w, r, http.StatusUnauthorized, stateNoIdentity, nil)
		return nil
	}
	e.log.Error("reading identity", zap.String("policy", policy), zap.Error(err))
	e.renderStatus(w, r, http.StatusServiceUnavailable, stateUnavailable, nil)
	return nil
}

// storeError answers when the store failed: fail closed.
func (e *Engine) storeError(w http.ResponseWriter, r *http.Request, op string, err error) error {
	e.log.Error("store unavailable, failing closed", zap.String("op", op), zap.Error(err))
	w.Header().Set("Retry-After", "5")
	e.renderStatus(w, r, http.StatusServiceUnavailable, stateUnavailable, nil)
	return nil
}

// challenge starts (or resumes) a challenge for p and redirects the
// browser to its page.
func (e *Engine) challenge(w http.ResponseWriter, r *http.Request, p *Policy, id Identity, session string) error {
	ctx := r.Context()
	phone, err := sender.ParsePhone(id.Phone, e.cfg.DefaultRegion)
	if err != nil {
		e.log.Warn("no usable phone number for the user", zap.String("policy", p.Name), zap.String("reason", phoneReason(id.Phone)))
		e.renderStatus(w, r, http.StatusBadRequest, stateBadPhone, nil)
		return nil
	}
	userKey := e.keys.userKey(id.User)
	if locked, retry, err := e.lockedOut(ctx, userKey); err != nil {
		return e.storeError(w, r, "failures", err)
	} else if locked {
		e.renderLocked(w, r, retry)
		return nil
	}
	returnURL, ok := SafeReturnPath(r.URL.RequestURI())
	if !ok {
		returnURL = "/"
	}
	if session == "" {
		sid := randomID()
		setSessionCookie(w, r, sid)
		session = "sid:" + sid
	}
	sessionKey := e.keys.sessionKey(session)
	pending := e.keys.short("pending", p.Name, userKey, sessionKey, r.Method, returnURL)
	if existing, ok, err := e.resume(ctx, pending, userKey, sessionKey); err != nil {
		return e.storeError(w, r, "pending", err)
	} else if ok {
		http.Redirect(w, r, e.challengeURL(existing), http.StatusSeeOther)
		return nil
	}

	now := e.now()
	c := &store.Challenge{
		ID:          randomID(),
		Policy:      p.Name,
		UserKey:     userKey,
		SessionKey:  sessionKey,
		Phone:       phone.E164,
		ReturnURL:   returnURL,
		Created:     now,
		Expires:     now.Add(e.cfg.CodeTTL),
		MaxAttempts: e.cfg.MaxAttempts,
	}
	code := newCode(e.cfg.CodeLength)
	c.CodeMAC = e.keys.codeMAC(c.ID, code)
	if err := e.store.Create(ctx, c, pending, e.cfg.Retain); err != nil {
		return e.storeError(w, r, "create", err)
	}
	e.log.Info("challenge_created", zap.String("policy", p.Name), zap.String("to", phone.Masked()),
		zap.String("client_ip", e.clientIP(r)))
	e.deliver(r, c, code)
	http.Redirect(w, r, e.challengeURL(c.ID), http.StatusSeeOther)
	return nil
}

// resume returns the pending challenge for the same user, session, policy
// and URL when it can still be answered, so that a reload does not send
// another code.
func (e *Engine) resume(ctx context.Context, pending, userKey, sessionKey string) (string, bool, error) {
	id, err := e.store.Pending(ctx, pending)
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	c, err := e.store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	now := e.now()
	if c.UserKey != userKey || c.SessionKey != sessionKey || !c.Used.IsZero() ||
		!now.Before(c.Expires) || c.Attempts >= c.MaxAttempts {
		return "", false, nil
	}
	return c.ID, true, nil
}

// lockedOut reports whether the user entered too many wrong codes.
func (e *Engine) lockedOut(ctx context.Context, userKey string) (bool, time.Duration, error) {
	n, ttl, err := e.store.Failures(ctx, userKey)
	if err != nil {
		return false, 0, err
	}
	return n >= e.cfg.MaxFailures, ttl, nil
}

// deliver sends code for challenge c and records the outcome. A failed
// delivery leaves the challenge usable: the page offers a resend.
func (e *Engine) deliver(r *http.Request, c *store.Challenge, code string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), e.cfg.SendTimeout)
	defer cancel()
	msg := &sender.Message{
		To:        c.Phone,
		Code:      code,
		Text:      e.messageText(r, code),
		Channel:   sender.SMS,
		Policy:    c.Policy,
		Challenge: c.ID,
		TTL:       e.cfg.CodeTTL,
	}
	start := e.now()
	by, err := e.sender.Send(ctx, msg)
	masked := sender.MaskPhone(c.Phone)
	if err != nil {
		e.log.Error("code_send_failed", zap.String("policy", c.Policy), zap.String("to", masked), zap.Error(err))
	} else {
		e.log.Info("code_sent", zap.String("policy", c.Policy), zap.String("to", masked),
			zap.String("sender", by), zap.Duration("took", e.now().Sub(start)))
	}
	if rerr := e.store.RecordSend(ctx, c.ID, by, err != nil); rerr != nil {
		e.log.Error("recording send outcome", zap.Error(rerr))
	}
}

// messageText renders the code message for the request's site.
func (e *Engine) messageText(r *http.Request, code string) string {
	host := requestHost(r)
	site := e.cfg.SiteName
	if site == "" {
		site = host
	}
	text := strings.NewReplacer(
		"{code}", code,
		"{site}", site,
		"{ttl}", humanDuration(e.cfg.CodeTTL),
		"{describe}", "",
	).Replace(e.cfg.Message)
	if host != "" && !strings.Contains(e.cfg.Message, "#{code}") {
		text += "\n\n@" + host + " #" + code
	}
	return text
}

// challengeURL is the page of challenge id.
func (e *Engine) challengeURL(id string) string {
	return e.cfg.PathPrefix + "/challenge/" + id
}

// phoneReason says why a phone value is unusable without revealing it.
func phoneReason(raw string) string {
	if raw == "" {
		return "missing"
	}
	return "invalid"
}
