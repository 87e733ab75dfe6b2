package stepup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
	"github.com/caddy-stepup/caddy-stepup/stepup/page"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// Next is the rest of the handler chain (caddyhttp.Handler satisfies it).
type Next interface {
	ServeHTTP(w http.ResponseWriter, r *http.Request) error
}

// NextFunc adapts a function to Next.
type NextFunc func(w http.ResponseWriter, r *http.Request) error

// ServeHTTP implements Next.
func (f NextFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) error { return f(w, r) }

// Matcher finds the policy that applies to a request, or nil.
type Matcher interface {
	MatchPolicy(r *http.Request) (*Policy, error)
}

// ErrAmbiguousPolicy is returned, wrapped, by a Matcher for a request
// whose readings (the method and path as the apps behind stepup may read
// them) fall under different enforcing policies: stepup cannot know which
// of them the app will execute, so no code can say what was approved.
// Such a request is refused (400).
var ErrAmbiguousPolicy = errors.New("stepup: readings of the request fall under different policies")

// MatchFunc adapts a function to Matcher.
type MatchFunc func(r *http.Request) (*Policy, error)

// MatchPolicy implements Matcher.
func (f MatchFunc) MatchPolicy(r *http.Request) (*Policy, error) { return f(r) }

// GrantCookie carries an API client's grant token on the retried
// request: a cookie, because Caddy's access log (and most others)
// redact the Cookie header, and the token must never reach a log.
const GrantCookie = "Stepup-Grant"

// GrantHeader is the header an API client may carry its grant in
// instead, only where Config.GrantHeader allows it: access logs record
// it in full unless the operator filters it out.
const GrantHeader = "Stepup-Grant"

// apiGrant is the grant an API client's request carries: where it came
// from, and whether it is ambiguous (two of them).
type apiGrant struct {
	token      string
	fromHeader bool
	ambiguous  bool
}

// readAPIGrant finds the request's API grant in the Stepup-Grant header
// (read before StripHeaders removes it) or cookie.
func readAPIGrant(r *http.Request) apiGrant {
	var g apiGrant
	if v := r.Header[GrantHeader]; len(v) > 0 {
		g.token, g.fromHeader, g.ambiguous = v[0], true, len(v) > 1
	}
	if !hasCookieNamed(r, GrantCookie) {
		return g
	}
	first, n := cookiesNamed(r, GrantCookie)
	switch {
	case n == 0:
	case g.token != "" || n > 1:
		g.ambiguous = true
	default:
		g.token = first
	}
	return g
}

// hasCookieNamed is a cheap test before parsing cookies: a substring
// search of the Cookie header.
func hasCookieNamed(r *http.Request, name string) bool {
	for _, v := range r.Header["Cookie"] {
		if strings.Contains(v, name) {
			return true
		}
	}
	return false
}

// Serve runs step-up for one request: it removes client-supplied Stepup-*
// headers, serves the engine's own endpoints, replays a preserved request
// after its verification, and applies the policy m finds, if any. Requests
// no policy matches go to next untouched but for stepup's own cookies,
// which never go upstream (StripOwnCookies).
func (e *Engine) Serve(w http.ResponseWriter, r *http.Request, m Matcher, next Next) error {
	var grant apiGrant
	if len(r.Header) > 0 {
		grant = readAPIGrant(r)
	}
	e.StripHeaders(r.Header)
	if r.Trailer != nil && r.Body != nil && r.Body != http.NoBody {
		// Declared trailers arrive with the end of the body, after every
		// handler has seen the headers: strip them as they arrive.
		r.Body = &trailerGuard{ReadCloser: r.Body, r: r, e: e}
	}
	if e.IsEndpoint(r.URL.Path) {
		return e.guard(w, r, next, func(Next) error { return e.ServeEndpoint(w, r) })
	}
	if mayHoldOwnCookie(r.Header) {
		// Whatever goes upstream from here goes without stepup's own
		// cookies, which the engine reads first.
		next = ownCookiesStripped{next}
	}
	if hasReplayCookie(r) {
		var done bool
		err := e.guard(w, r, next, func(next Next) (err error) {
			done, err = e.replay(w, r, next)
			return err
		})
		if done {
			return err
		}
	}
	p, err := m.MatchPolicy(r)
	if errors.Is(err, ErrAmbiguousMethod) {
		// Method overrides that disagree: the app may run either, so no
		// code can say which was approved.
		e.refuse(w, r, "", http.StatusBadRequest, page.StateAmbiguous, "ambiguous_method", err)
		return nil
	}
	if errors.Is(err, ErrAmbiguousPolicy) {
		// The path or method read one way falls under one policy, read
		// another way under another: the app may run either.
		e.refuse(w, r, "", http.StatusBadRequest, page.StateAmbiguous, "ambiguous_policy", err)
		return nil
	}
	if err != nil {
		return err
	}
	if p == nil {
		return next.ServeHTTP(w, r)
	}
	return e.guard(w, r, next, func(next Next) error { return e.protect(w, r, p, grant, next) })
}

// trailerGuard removes client-sent Stepup-* (and configured upstream)
// fields, identity headers and method overrides from a request's
// trailers when the body has been read, which is when net/http fills
// them in and before a proxy forwards them.
type trailerGuard struct {
	io.ReadCloser
	r *http.Request
	e *Engine
}

func (g *trailerGuard) Read(p []byte) (int, error) {
	n, err := g.ReadCloser.Read(p)
	if err != nil {
		g.e.StripHeaders(g.r.Trailer)
		// Nor may a trailer carry the identity the source read from the
		// headers (an app that merges trailers would see another user),
		// nor a method override, which policies read from the headers
		// only (such an app would run a DELETE that matched as a POST).
		for k := range g.r.Trailer {
			for _, name := range g.e.identityHeaders {
				if identity.FoldedEqual(k, name) {
					delete(g.r.Trailer, k)
				}
			}
			for _, name := range MethodOverrideHeaders {
				if identity.FoldedEqual(k, name) {
					delete(g.r.Trailer, k)
				}
			}
		}
	}
	return n, err
}

// markedNext notes whether the request was handed on, so that guard can
// tell a panic of ours from one further down the chain.
type markedNext struct {
	Next
	entered bool
}

func (m *markedNext) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	m.entered = true
	return m.Next.ServeHTTP(w, r)
}

// guard runs fn and turns a panic in our own code into a 500 page: the
// request fails closed, nothing reaches the upstream, and the panic's
// value (which could hold anything) is not logged, only its type and
// stack. A panic from the handlers after us goes on up unchanged.
func (e *Engine) guard(w http.ResponseWriter, r *http.Request, next Next, fn func(Next) error) (err error) {
	mn := &markedNext{Next: next}
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if mn.entered {
			panic(v)
		}
		e.log.Error("panic in stepup, request refused", zap.String("panic_type", fmt.Sprintf("%T", v)), zap.Stack("stack"))
		e.renderStatus(w, r, http.StatusInternalServerError, page.StateError, nil)
		err = nil
	}()
	return fn(mn)
}

// Protect runs policy p on a request that matched it: it calls next when
// the request may pass (a valid grant, or monitor mode) and otherwise
// answers with a challenge or an error itself. It removes client-supplied
// Stepup-* headers first, as Serve does.
func (e *Engine) Protect(w http.ResponseWriter, r *http.Request, p *Policy, next Next) error {
	grant := readAPIGrant(r)
	e.StripHeaders(r.Header)
	return e.protect(w, r, p, grant, ownCookiesStripped{next})
}

// visit is a request a policy matched, on its way through the policy:
// who it comes from, in which session, and whether it is a browser's
// (decided once, here).
type visit struct {
	w    http.ResponseWriter
	r    *http.Request
	p    *Policy
	next Next
	id   identity.Identity
	// session is what grants and challenges bind to (see Engine.session);
	// "" until the engine's own browser-session cookie is set.
	session string
	api     bool
}

// protect is Protect with the request's API grant (Stepup-Grant), read
// before StripHeaders.
func (e *Engine) protect(w http.ResponseWriter, r *http.Request, p *Policy, grant apiGrant, next Next) error {
	if p.Mode == Monitor {
		e.monitor(r, p)
		return next.ServeHTTP(w, r)
	}
	id, err := e.identify(r)
	if err != nil {
		return e.identityError(w, r, p.Name, err)
	}
	v := &visit{w: w, r: r, p: p, next: next, id: id, api: !wantsHTML(r)}
	v.session = e.session(r, id, v.api)
	if !v.api && !grant.fromHeader {
		// A browser's grants are its per-policy cookies; a Stepup-Grant
		// cookie on a navigation is someone else's doing (a sibling
		// subdomain can set one) and must not stand in its way.
		grant = apiGrant{}
	}
	switch {
	case grant.ambiguous:
		return e.refuseGrant(w, r, p, "ambiguous")
	case grant.fromHeader && !e.cfg.GrantHeader:
		// The token is in the access log now: it must open nothing any
		// more.
		if err := e.burnLogged(v, grant.token); err != nil {
			return e.storeError(w, r, "revoke", err)
		}
		e.emit(r, &Event{Kind: EventGrantRefused, Policy: p.Name, Mode: p.Mode.String(), Outcome: "header_disabled"})
		w.Header().Set("WWW-Authenticate", `StepUp error="invalid_request"`)
		page.WriteError(w, http.StatusBadRequest, "grant_header_disabled",
			"send the grant as the cookie "+GrantCookie+"=TOKEN: a header is written to access logs, so this grant was revoked", nil)
		return nil
	case grant.token != "":
		return e.useGrant(v, grant.token)
	}
	if p.Mode == Session {
		if passed, err := e.sessionGrant(v); passed || err != nil {
			return err
		}
	}
	return e.challenge(v)
}

// burnLogged makes a grant that arrived where logs record it (a refused
// Stepup-Grant header) worthless: a session grant of this user is revoked
// with every grant of theirs issued until now, a transaction grant is
// used up. Only a grant that verifies for this very user and session
// revokes anything, so nobody can revoke another's grants (least of all
// where anyone can name any user: identity request, which has no
// session grants to leak).
func (e *Engine) burnLogged(v *visit, tok string) error {
	if len(tok) != grantTokenLen || e.fromRequest {
		return nil
	}
	if v.p.Mode == Transaction {
		// Bound to a body this request need not carry: burn it by its
		// id (a stranger who knows an id learns nothing by it and can
		// only spend a grant they hold).
		if id, ok := grantID(tok); ok {
			if err := e.store.UseGrant(v.r.Context(), id, time.Time{}); err != nil &&
				!errors.Is(err, store.ErrGrantUsed) && !errors.Is(err, store.ErrGrantUnknown) {
				return err
			}
		}
		return nil
	}
	b, err := e.binding(v.r, v.p, v.id.User, v.session, "")
	if err != nil {
		return err
	}
	if g, ok := e.verifyGrant(tok, b); ok && g.Kind == SessionGrant {
		return e.RevokeUser(v.r.Context(), v.id.User)
	}
	return nil
}

// sessionGrant lets v through on its session grant cookie, if it has a
// valid, unrevoked one (passed).
func (e *Engine) sessionGrant(v *visit) (passed bool, err error) {
	w, r, p := v.w, v.r, v.p
	g, ok, err := e.grantFor(r, p, v.id.User, v.session)
	if err != nil {
		return true, e.storeError(w, r, "generation", err)
	}
	if !ok {
		return false, nil
	}
	if revoked, err := e.revoked(r.Context(), v.id.User, g.IssuedAt); err != nil {
		return true, e.storeError(w, r, "revocation", err)
	} else if revoked {
		return false, nil
	}
	if err := e.setUpstreamHeaders(r, p, v.id.User, g.IssuedAt, nil, g.Method); err != nil {
		return true, err
	}
	e.emit(r, &Event{Kind: EventGrantUsed, Policy: p.Name, Mode: "session", Outcome: "passed"})
	return true, v.next.ServeHTTP(w, r)
}

// monitor logs and counts what enforcing the policy would have done.
func (e *Engine) monitor(r *http.Request, p *Policy) {
	outcome := "challenge"
	id, err := e.identify(r)
	switch {
	case err != nil:
		outcome = "no_identity"
	default:
		if _, ok, _ := e.grantFor(r, p, id.User, e.session(r, id, false)); ok {
			outcome = "pass"
		}
	}
	if outcome != "pass" {
		e.emit(r, &Event{Kind: EventMonitor, Policy: p.Name, Mode: "monitor", Outcome: outcome})
	}
	e.emit(r, &Event{Kind: EventRequest, Policy: p.Name, Mode: "monitor", Outcome: "monitored"})
}

// apiSession is the session of API clients whose identity source knows
// none: they keep no cookies, so their grants are bearer tokens bound to
// the user.
const apiSession = "api"

// session returns the session a grant or challenge binds to: the
// identity's own, the engine's browser-session cookie, or apiSession.
func (e *Engine) session(r *http.Request, id identity.Identity, api bool) string {
	if id.Session != "" {
		return "id:" + id.Session
	}
	if api {
		return apiSession
	}
	if v := cookieValue(r, sessionCookie(r)); v != "" && len(v) <= 64 {
		return "sid:" + v
	}
	return ""
}

// grantFor returns a valid session grant of the request for p, from its
// cookie.
func (e *Engine) grantFor(r *http.Request, p *Policy, user, session string) (Grant, bool, error) {
	if session == "" || session == apiSession {
		return Grant{}, false, nil
	}
	tok := cookieValue(r, grantCookie(r, p.Name))
	if tok == "" || len(tok) > MaxGrantTokenLen {
		return Grant{}, false, nil
	}
	bind, err := e.binding(r, p, user, session, "")
	if err != nil {
		return Grant{}, false, err
	}
	g, ok := e.verifyGrant(tok, bind)
	if !ok || g.Kind != SessionGrant {
		return Grant{}, false, nil
	}
	return g, true, nil
}

// useGrant lets an API client's retried request through with the grant
// it got from the verify endpoint: a session grant until it expires, a
// transaction grant once, for the very same request.
func (e *Engine) useGrant(v *visit, tok string) error {
	w, r, p, id, session, next := v.w, v.r, v.p, v.id, v.session, v.next
	if len(tok) > MaxGrantTokenLen {
		return e.refuseGrant(w, r, p, "malformed")
	}
	var bind string
	kind := SessionGrant
	if p.Mode == Transaction {
		body, ok := e.readBound(w, r, p)
		if !ok {
			return nil
		}
		// A described field (or _method) in a cookie or a header is read
		// by PHP's $_REQUEST, ASP.NET's Request[] or Spring 6.2 over (or
		// beside) the approved body: the grant does not open such a
		// request, and stays unused.
		if p.desc.elsewhere(r) != nil || MethodParamElsewhere(r) {
			return e.refuseGrant(w, r, p, "ambiguous_fields")
		}
		bind = string(txHash(p.Name, r.Method, r.URL.RequestURI(), r.Header, body, id.User))
		kind = TransactionGrant
	}
	b, err := e.binding(r, p, id.User, session, bind)
	if err != nil {
		return e.storeError(w, r, "generation", err)
	}
	g, ok := e.verifyGrant(tok, b)
	if !ok || g.Kind != kind {
		return e.refuseGrant(w, r, p, "invalid")
	}
	if revoked, err := e.revoked(r.Context(), id.User, g.IssuedAt); err != nil {
		return e.storeError(w, r, "revocation", err)
	} else if revoked {
		return e.refuseGrant(w, r, p, "revoked")
	}
	if kind == TransactionGrant {
		switch err := e.store.UseGrant(r.Context(), g.ID, g.Expires); {
		case errors.Is(err, store.ErrGrantUsed):
			return e.refuseGrant(w, r, p, "used")
		case errors.Is(err, store.ErrGrantUnknown):
			return e.refuseGrant(w, r, p, "unknown")
		case err != nil:
			return e.storeError(w, r, "use_grant", err)
		}
	}
	var tx []byte
	if kind == TransactionGrant {
		tx = []byte(bind)
	}
	if err := e.setUpstreamHeaders(r, p, id.User, g.IssuedAt, tx, g.Method); err != nil {
		return err
	}
	mode := "session"
	if kind == TransactionGrant {
		mode = "transaction"
	}
	e.emit(r, &Event{Kind: EventGrantUsed, Policy: p.Name, Mode: mode, Outcome: "passed"})
	return next.ServeHTTP(w, r)
}

// verifyGrant checks a grant token under the current secret, then the
// previous ones. A session grant that verified is remembered with its
// binding (grantCache): the same token for the same binding verifies
// again without its MAC being computed again, its expiry checked each
// time.
func (e *Engine) verifyGrant(tok string, b grantBinding) (Grant, bool) {
	now := e.now()
	if v, ok := e.verified.m.Load(tok); ok {
		if ent := v.(*verifiedGrant); ent.b == b {
			if !now.Before(ent.g.Expires) {
				return Grant{}, false
			}
			return ent.g, true
		}
	}
	for _, k := range e.all {
		if g, ok := k.verifyGrant(tok, &b, now); ok {
			if g.Kind == SessionGrant {
				e.verified.remember(tok, b, g)
			}
			return g, true
		}
	}
	return Grant{}, false
}

// grantCacheMax bounds the cache of verified grants; past it, it starts
// afresh.
const grantCacheMax = 50_000

// grantCache remembers session grants that verified: token -> the
// binding it verified for and the grant. Only a token whose MAC verified
// under this engine's secrets enters it, and an entry answers only for
// the very same binding (policy and its version, scope, store
// generation, user, session), so it answers as the MAC would; the
// secrets of an engine never change. Revocation is checked after it, as
// before.
type grantCache struct {
	m    sync.Map // token -> *verifiedGrant
	size atomic.Int64
}

type verifiedGrant struct {
	b grantBinding
	g Grant
}

func (c *grantCache) remember(tok string, b grantBinding, g Grant) {
	if c.size.Add(1) > grantCacheMax {
		c.m.Clear()
		c.size.Store(1)
	}
	// Copies, so that the entry does not keep the request's headers
	// (the token is a piece of its Cookie header) alive.
	b.User, b.Session = strings.Clone(b.User), strings.Clone(b.Session)
	c.m.Store(strings.Clone(tok), &verifiedGrant{b: b, g: g})
}

// binding is what a grant of policy p for user in session, made or used
// at request r, is bound to (tx: the transaction hash, or "").
func (e *Engine) binding(r *http.Request, p *Policy, user, session, tx string) (grantBinding, error) {
	gen, err := e.generation(r.Context())
	if err != nil {
		return grantBinding{}, err
	}
	return grantBinding{Policy: p.Name, Version: p.Version, Scope: e.scope(r), Gen: gen, User: user, Session: session, Tx: tx}, nil
}

// scope names where grants and challenges are valid: the configured
// shared scope, or else this handler's site: the host the request was
// for and the local port it came in on, under the engine's path prefix.
// Two handlers with the same secret and policy names (two sites, two
// ports) so never accept each other's grants; instances of one config
// behind a load balancer share them.
func (e *Engine) scope(r *http.Request) string {
	if e.cfg.Scope != "" {
		return "shared\x00" + e.cfg.Scope
	}
	a, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	ta, tcp := a.(*net.TCPAddr)
	if tcp {
		// The scope of the last request, when this one came for the
		// same Host on the same port.
		if c := e.lastScope.Load(); c != nil && c.host == r.Host && c.port == ta.Port {
			return c.scope
		}
	}
	host := r.Host
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	var port string
	if tcp {
		port = strconv.Itoa(ta.Port)
	} else if a != nil {
		if _, p, err := net.SplitHostPort(a.String()); err == nil {
			port = p
		}
	}
	scope := "site\x00" + e.cfg.PathPrefix + "\x00" + strings.ToLower(host) + "\x00" + port
	if tcp {
		e.lastScope.Store(&scopeEntry{host: r.Host, port: ta.Port, scope: scope})
	}
	return scope
}

// scopeEntry is a scope worked out for a request's Host and local port.
type scopeEntry struct {
	host  string
	port  int
	scope string
}

// verifiedAtEntry is the Stepup-Verified-At value of a time, in seconds.
type verifiedAtEntry struct {
	unix  int64
	value string
}

// verifiedAt formats at for the Stepup-Verified-At header (RFC 3339,
// UTC, whole seconds as grants keep them).
func (e *Engine) verifiedAt(at time.Time) string {
	if at.Nanosecond() == 0 {
		if c := e.lastVerifiedAt.Load(); c != nil && c.unix == at.Unix() {
			return c.value
		}
	}
	v := at.UTC().Format(time.RFC3339)
	if at.Nanosecond() == 0 {
		e.lastVerifiedAt.Store(&verifiedAtEntry{unix: at.Unix(), value: v})
	}
	return v
}

// refuseGrant answers a grant token that does not open this request: it
// was made for another request body, policy, identity or session, it
// expired, or (transactions) it was used already. Nothing goes upstream.
func (e *Engine) refuseGrant(w http.ResponseWriter, r *http.Request, p *Policy, why string) error {
	e.emit(r, &Event{Kind: EventGrantRefused, Policy: p.Name, Mode: p.Mode.String(), Outcome: why})
	w.Header().Set("WWW-Authenticate", `StepUp error="invalid_grant"`)
	e.renderStatus(w, r, http.StatusForbidden, page.StateInvalidGrant, nil)
	return nil
}

// setUpstreamHeaders tells the upstream what was verified, and signs it
// when an assertion is configured. tx is the transaction hash, if any;
// method how the step-up was made ("" reads as SMS). An error (the
// signer failed) means the request must not go on.
func (e *Engine) setUpstreamHeaders(r *http.Request, p *Policy, user string, at time.Time, tx []byte, method string) error {
	h := e.cfg.Headers
	if method == "" {
		method = MethodSMS
	}
	r.Header.Set(h.Policy, p.Name)
	r.Header.Set(h.User, user)
	r.Header.Set(h.VerifiedAt, e.verifiedAt(at))
	r.Header.Set(h.Method, method)
	if a := e.assertion; a != nil {
		tok, err := a.sign(user, p.Name, at, e.now(), tx, method)
		if err != nil {
			return fmt.Errorf("signing the step-up assertion: %w", err)
		}
		r.Header.Set(a.Header, tok)
	}
	if e.onVerified != nil {
		e.onVerified(r, p.Name, user)
	}
	return nil
}

// identityError answers a request whose identity is missing or could not
// be read.
func (e *Engine) identityError(w http.ResponseWriter, r *http.Request, policy string, err error) error {
	if e.refuseFields(w, r, policy, err) {
		return nil
	}
	switch {
	case errors.Is(err, identity.ErrNoIdentity):
		e.emit(r, &Event{Kind: EventIdentityRefused, Policy: policy, Outcome: "no_identity", Err: err})
		if lr, ok := e.identity.(identity.LoginRedirector); ok && wantsHTML(r) {
			if u := lr.LoginURL(r); u != "" {
				http.Redirect(w, r, u, http.StatusSeeOther)
				return nil
			}
		}
		e.renderStatus(w, r, http.StatusUnauthorized, page.StateNoIdentity, nil)
		return nil
	case errors.Is(err, identity.ErrPhoneUnverified):
		e.emit(r, &Event{Kind: EventIdentityRefused, Policy: policy, Outcome: "phone_unverified"})
		e.renderStatus(w, r, http.StatusForbidden, page.StatePhoneUnverified, nil)
		return nil
	}
	if errors.Is(err, identity.ErrBadIdentity) {
		// Malformed, over-long or ambiguous (a credential the app could
		// read differently): the client's doing, not an outage.
		outcome := "bad_identity"
		if errors.Is(err, identity.ErrAmbiguousCredential) {
			outcome = "ambiguous_credential"
		}
		e.emit(r, &Event{Kind: EventIdentityRefused, Policy: policy, Outcome: outcome, Err: err})
		e.renderStatus(w, r, http.StatusBadRequest, page.StateBadIdentity, nil)
		return nil
	}
	e.emit(r, &Event{Kind: EventIdentityRefused, Policy: policy, Outcome: "source_error", Err: err})
	e.renderStatus(w, r, http.StatusServiceUnavailable, page.StateUnavailable, nil)
	return nil
}

// storeError answers when the store failed: fail closed.
func (e *Engine) storeError(w http.ResponseWriter, r *http.Request, op string, err error) error {
	if errors.Is(r.Context().Err(), context.Canceled) && errors.Is(err, context.Canceled) {
		// The client went away and took its request's context with it:
		// the store is fine, and nobody reads the answer.
		e.log.Debug("request canceled by the client", zap.String("op", op))
		w.WriteHeader(499)
		return nil
	}
	e.emit(r, &Event{Kind: EventStoreError, Outcome: op, Err: err})
	w.Header().Set("Retry-After", "5")
	e.renderStatus(w, r, http.StatusServiceUnavailable, page.StateUnavailable, nil)
	return nil
}

// safeMethod reports methods that change nothing, whose requests need no
// preserving: after verification the browser simply asks again.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions || m == http.MethodTrace
}

// deliver sends code for challenge c and records the outcome. A failed
// delivery leaves the challenge usable: the page offers a resend.
// channel, when set, is the one the customer chose: the code goes by it
// or not at all.
//
// A browser's answer goes out first and the code after: the customer
// never waits for a slow provider, and the page shows how the send goes
// (the status endpoint, or the page itself on a reload), a failure
// included. Where the identity comes from the request (sign-up,
// password reset) the same holds for API clients: how long a send
// takes, and whether it fails, must not tell who has an account (decoys
// send nothing). Other API clients (wait) get the send's outcome in
// their answer.
func (e *Engine) deliver(r *http.Request, c *store.Challenge, email, code string, resend bool, channel sender.Channel, wait bool) {
	msg := &sender.Message{
		To:          c.Phone,
		Code:        code,
		Text:        e.page.Message(r, code, c.Description),
		Channel:     sender.SMS,
		ChannelOnly: channel != "",
		Policy:      c.Policy,
		Challenge:   c.ID,
		TTL:         e.cfg.CodeTTL,
		Locale:      e.page.Locale(r),
		// Email senders in the chain use it as the fallback destination.
		Email: email,
	}
	if channel != "" {
		msg.Channel = channel
	}
	if e.fromRequest || !wait {
		// A detached copy: the request is over when the send runs; c is
		// the caller's, and the send only reads its copy.
		dr := r.Clone(context.WithoutCancel(r.Context()))
		cc := *c
		e.background(func() { e.send(dr, &cc, msg, resend) })
		return
	}
	c.SentBy, c.SendFailed = e.send(r, c, msg, resend)
}

// send delivers msg for challenge c and records the outcome (who
// delivered it, or that it failed) in the store and the events. c is
// only read: the send may outlive the request.
//
// A failed send lifts the resend cooldown, so that the customer can try
// again at once, except on a challenge that hides its number (a reset
// flow): there an early resend button would tell that the account exists
// and its gateway failed, where a decoy's never does.
func (e *Engine) send(r *http.Request, c *store.Challenge, msg *sender.Message, resend bool) (by string, failed bool) {
	id, policy, phone, hidden := c.ID, c.Policy, c.Phone, c.Hidden
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), e.cfg.SendTimeout)
	defer cancel()
	start := time.Now()
	var d sender.Delivery
	var err error
	if dr, ok := e.sender.(DeliveryReporter); ok {
		d, err = dr.Deliver(ctx, msg)
	} else {
		d.Sender, err = e.sender.Send(ctx, msg)
	}
	by = d.Sender
	ev := &Event{Kind: EventCodeSent, Policy: policy, To: sender.MaskPhone(phone), Sender: by,
		Channel: string(e.channelOf(by)), MessageID: d.MessageID, Country: countryOf(phone), Duration: time.Since(start), Resend: resend, Outcome: "ok"}
	if err != nil {
		ev.Kind, ev.Outcome, ev.Err = EventCodeSendFailed, "failed", err
	}
	e.emit(r, ev)
	if err != nil {
		if rerr := e.store.RecordSend(ctx, id, by, !hidden); rerr != nil {
			e.emit(r, &Event{Kind: EventStoreError, Policy: policy, Outcome: "record_send", Err: rerr})
		}
		return by, true
	}
	// Who sent it goes with the delivery record, in one step.
	e.recordDelivery(ctx, r, c, msg, d, false)
	return by, false
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
