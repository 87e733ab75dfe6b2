package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/zap"

	"github.com/caddy-stepup/caddy-stepup/stepup"
)

// Defaults of an OIDC source.
const (
	DefaultPhoneClaim         = "phone_number"
	DefaultPhoneVerifiedClaim = "phone_number_verified"
	DefaultEmailClaim         = "email"
	DefaultSessionClaim       = "sid"
	DefaultOIDCTimeout        = 10 * time.Second
)

// Algorithms lists the signing algorithms an OIDC source may be limited
// to: the asymmetric ones go-oidc verifies. "none" and the HMAC family
// are never accepted.
var Algorithms = []string{
	oidc.RS256, oidc.RS384, oidc.RS512,
	oidc.ES256, oidc.ES384, oidc.ES512,
	oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.EdDSA,
}

// maxIdPResponse bounds a discovery document or key set, in bytes.
const maxIdPResponse = 1 << 20

// OIDCConfig configures an OIDC source.
type OIDCConfig struct {
	// Issuer is the provider's issuer URL, exactly as it appears in the
	// "iss" claim (https://sso.example.com/realms/shop). Discovery reads
	// Issuer + "/.well-known/openid-configuration". Required.
	Issuer string
	// ClientID is the expected audience: tokens whose "aud" does not
	// contain it are refused. Required.
	ClientID string
	// Cookie is the name of a cookie holding the ID token.
	Cookie string
	// Header is the name of a header holding the ID token. For
	// Authorization the value must use the Bearer scheme; any other
	// header holds the bare token (an optional "Bearer " is removed).
	// When both Header and Cookie are set, the header is tried first.
	// Neither set: Authorization.
	Header string
	// PhoneClaim names the claim holding the phone number.
	// Default: phone_number
	PhoneClaim string
	// PhoneVerifiedClaim names the boolean claim saying the provider
	// verified the number. Default: phone_number_verified
	PhoneVerifiedClaim string
	// RequireVerifiedPhone refuses (stepup.ErrPhoneUnverified) tokens
	// whose PhoneVerifiedClaim is not true: no code goes to a number the
	// provider has not verified.
	RequireVerifiedPhone bool
	// EmailClaim names the claim holding the e-mail address; an address
	// whose email_verified claim is false is ignored. Default: email
	EmailClaim string
	// SessionClaim names the claim holding the login session id. Tokens
	// without it get a session derived from a hash of the token, which
	// changes whenever the token is refreshed. Default: sid
	SessionClaim string
	// Algorithms limits the signing algorithms accepted (see
	// Algorithms). Default: those the issuer advertises in its discovery
	// document, else RS256.
	Algorithms []string
	// LoginURL is where browsers without a valid token are sent instead
	// of getting 401; ReturnPlaceholder in it is replaced by the request's
	// escaped path and query. Empty: 401.
	LoginURL string
	// Timeout bounds each request to the provider (discovery, keys).
	// Default: 10s
	Timeout time.Duration
	// Transport makes the requests to the provider. Default: a clone of
	// http.DefaultTransport.
	Transport http.RoundTripper
	// Context ends background work (discovery) when done, such as the
	// Caddy config's context. Default: context.Background()
	Context context.Context
	// Logger gets discovery and key events. Default: no logging.
	Logger *zap.Logger
	// Now is the clock tokens are checked against. Default: time.Now
	Now func() time.Time
}

// OIDC is an identity source reading an OpenID Connect ID token from a
// cookie or a header. The token is verified with go-oidc: signature by a
// key from the issuer's JWKS (fetched at first use, cached, fetched again
// when a token names a key not yet seen, so rotations need no restart),
// issuer, audience, expiry and algorithm.
//
// The identity is User = "sub", Session = the session claim ("sid") or
// else the SHA-256 of the token, Phone and Email from their claims.
//
// Discovery is lazy: NewOIDC never contacts the provider, so a server
// starts while the provider is down. The first request with a token runs
// discovery; while it fails, requests with a token get a plain error (the
// engine fails closed with 503) and discovery is tried again with a
// backoff of 1s doubling up to 10s, until it works.
type OIDC struct {
	cfg       OIDCConfig
	header    string
	bearer    bool // header is Authorization: Bearer scheme required
	discovery *http.Client
	keys      *http.Client
	keysOK    atomic.Bool // the last key set request succeeded
	log       *zap.Logger

	retryMin, retryMax time.Duration

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	inflight chan struct{}
	lastErr  error
	backoff  time.Duration
	nextTry  time.Time
}

// NewOIDC checks cfg and returns the source. It does not contact the
// provider.
func NewOIDC(cfg OIDCConfig) (*OIDC, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("oidc: an issuer URL is required")
	}
	u, err := url.Parse(cfg.Issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("oidc: issuer %q: want an http(s) URL without query", cfg.Issuer)
	}
	if cfg.ClientID == "" {
		return nil, errors.New("oidc: a client_id is required (the audience tokens are issued for)")
	}
	if cfg.Cookie != "" && !validToken(cfg.Cookie) {
		return nil, fmt.Errorf("oidc: invalid cookie name %q", cfg.Cookie)
	}
	if cfg.Header != "" && !validToken(cfg.Header) {
		return nil, fmt.Errorf("oidc: invalid header name %q", cfg.Header)
	}
	for _, a := range cfg.Algorithms {
		if !slices.Contains(Algorithms, a) {
			return nil, fmt.Errorf("oidc: algorithm %q not allowed (use %s)", a, strings.Join(Algorithms, ", "))
		}
	}
	if err := validLoginURL(cfg.LoginURL); err != nil {
		return nil, fmt.Errorf("oidc: %v", err)
	}
	if cfg.Timeout < 0 {
		return nil, errors.New("oidc: negative timeout")
	}
	setDefault(&cfg.PhoneClaim, DefaultPhoneClaim)
	setDefault(&cfg.PhoneVerifiedClaim, DefaultPhoneVerifiedClaim)
	setDefault(&cfg.EmailClaim, DefaultEmailClaim)
	setDefault(&cfg.SessionClaim, DefaultSessionClaim)
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultOIDCTimeout
	}
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	if cfg.Context == nil {
		cfg.Context = context.Background()
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &OIDC{
		cfg:      cfg,
		header:   http.CanonicalHeaderKey(cfg.Header),
		log:      cfg.Logger,
		retryMin: time.Second,
		retryMax: 10 * time.Second,
	}
	if cfg.Header == "" && cfg.Cookie == "" {
		s.header = "Authorization"
	}
	s.bearer = s.header == "Authorization"
	s.discovery = &http.Client{Timeout: cfg.Timeout, Transport: &limitTransport{base: cfg.Transport}}
	s.keys = &http.Client{Timeout: cfg.Timeout, Transport: &limitTransport{base: cfg.Transport, ok: &s.keysOK}}
	s.keysOK.Store(true)
	return s, nil
}

func setDefault(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

// Close drops the idle connections to the provider. The source keeps
// working (it dials again when needed).
func (s *OIDC) Close() error {
	s.discovery.CloseIdleConnections()
	s.keys.CloseIdleConnections()
	return nil
}

// LoginURL implements stepup.LoginRedirector.
func (s *OIDC) LoginURL(r *http.Request) string {
	return loginURL(s.cfg.LoginURL, r)
}

// Identify implements stepup.Source.
func (s *OIDC) Identify(r *http.Request) (stepup.Identity, error) {
	raw, err := s.token(r)
	if err != nil {
		return stepup.Identity{}, err
	}
	v, err := s.getVerifier(r.Context())
	if err != nil {
		return stepup.Identity{}, err
	}
	sig := new(sigState)
	tok, err := v.Verify(context.WithValue(r.Context(), sigStateKey{}, sig), raw)
	if err != nil {
		var expired *oidc.TokenExpiredError
		switch {
		case sig.failed.Load() && !s.keysOK.Load():
			return stepup.Identity{}, fmt.Errorf("oidc: the issuer's keys could not be fetched to verify a token signed with a key not seen before: %w",
				errUnavailable)
		case errors.As(err, &expired):
			return stepup.Identity{}, noIdentity("oidc: token expired")
		case sig.failed.Load():
			return stepup.Identity{}, noIdentity("oidc: signature not verified by any of the issuer's keys")
		}
		return stepup.Identity{}, noIdentity("oidc: %s", scrub(err.Error(), raw))
	}
	return s.identity(tok, raw)
}

// errUnavailable marks errors of a provider that could not be reached.
var errUnavailable = errors.New("identity provider unavailable")

// identity builds the Identity from a verified token.
func (s *OIDC) identity(tok *oidc.IDToken, raw string) (stepup.Identity, error) {
	if tok.Subject == "" {
		return stepup.Identity{}, noIdentity("oidc: token has no sub claim")
	}
	if len(tok.Subject) > maxUserLen {
		return stepup.Identity{}, noIdentity("oidc: sub claim longer than %d bytes", maxUserLen)
	}
	var claims map[string]json.RawMessage
	if err := tok.Claims(&claims); err != nil {
		return stepup.Identity{}, noIdentity("oidc: reading claims: %v", err)
	}
	id := stepup.Identity{User: tok.Subject}

	if sid, _ := claimString(claims, s.cfg.SessionClaim); sid != "" {
		if len(sid) > maxSessionLen {
			sid = Hash(sid)
		}
		id.Session = sid
	} else {
		id.Session = Hash(raw)
	}

	if phone, _ := claimString(claims, s.cfg.PhoneClaim); phone != "" && len(phone) <= maxPhoneLen {
		id.Phone = phone
	}
	if id.Phone != "" && s.cfg.RequireVerifiedPhone {
		if verified, ok := claimBool(claims, s.cfg.PhoneVerifiedClaim); !ok || !verified {
			return stepup.Identity{}, fmt.Errorf("%w: oidc: claim %s is not true", stepup.ErrPhoneUnverified, s.cfg.PhoneVerifiedClaim)
		}
	}
	if email, _ := claimString(claims, s.cfg.EmailClaim); email != "" && len(email) <= maxEmailLen {
		if verified, ok := claimBool(claims, "email_verified"); !ok || verified {
			id.Email = email
		}
	}
	return id, nil
}

// token returns the raw ID token of r, or an error wrapping
// stepup.ErrNoIdentity.
func (s *OIDC) token(r *http.Request) (string, error) {
	var raw string
	if s.header != "" {
		v := strings.TrimSpace(singleValue(r.Header, s.header))
		if scheme, rest, ok := strings.Cut(v, " "); ok && strings.EqualFold(scheme, "Bearer") {
			raw = strings.TrimSpace(rest)
		} else if !s.bearer {
			raw = v
		}
	}
	if raw == "" && s.cfg.Cookie != "" {
		if c, err := r.Cookie(s.cfg.Cookie); err == nil {
			raw = c.Value
		}
	}
	switch {
	case raw == "":
		return "", noIdentity("oidc: no ID token")
	case len(raw) > MaxTokenLen:
		return "", noIdentity("oidc: ID token larger than %d bytes", MaxTokenLen)
	case strings.Count(raw, ".") != 2:
		return "", noIdentity("oidc: ID token is not a signed JWT")
	}
	return raw, nil
}

// getVerifier returns the verifier, running discovery first when it has
// not succeeded yet. While the backoff after a failed discovery runs, it
// fails at once.
func (s *OIDC) getVerifier(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	s.mu.Lock()
	if s.verifier != nil {
		v := s.verifier
		s.mu.Unlock()
		return v, nil
	}
	if s.inflight == nil {
		if wait := time.Until(s.nextTry); wait > 0 {
			err := s.lastErr
			s.mu.Unlock()
			return nil, fmt.Errorf("oidc: discovery of %s failed, next attempt in %s: %w", s.cfg.Issuer, wait.Round(time.Millisecond), err)
		}
		s.inflight = make(chan struct{})
		go s.discover(s.inflight)
	}
	done := s.inflight
	s.mu.Unlock()

	select {
	case <-done:
	case <-ctx.Done():
		return nil, fmt.Errorf("oidc: waiting for discovery of %s: %w", s.cfg.Issuer, ctx.Err())
	}
	s.mu.Lock()
	v, err := s.verifier, s.lastErr
	s.mu.Unlock()
	if v == nil {
		return nil, fmt.Errorf("oidc: discovery of %s failed: %w", s.cfg.Issuer, err)
	}
	return v, nil
}

// discover runs one discovery attempt and closes done when it ends.
func (s *OIDC) discover(done chan struct{}) {
	ctx, cancel := context.WithTimeout(s.cfg.Context, s.cfg.Timeout)
	v, err := s.discoverOnce(ctx)
	cancel()

	s.mu.Lock()
	if err == nil {
		s.verifier, s.lastErr, s.backoff = v, nil, 0
		s.log.Info("oidc discovery done", zap.String("issuer", s.cfg.Issuer))
	} else {
		switch {
		case s.backoff == 0:
			s.backoff = s.retryMin
		case s.backoff < s.retryMax:
			s.backoff = min(2*s.backoff, s.retryMax)
		}
		s.nextTry = time.Now().Add(s.backoff)
		s.lastErr = fmt.Errorf("%w: %s", errUnavailable, clip(err.Error()))
		s.log.Warn("oidc discovery failed, protected requests fail closed until it works",
			zap.String("issuer", s.cfg.Issuer), zap.Duration("retry_in", s.backoff), zap.String("error", clip(err.Error())))
	}
	s.inflight = nil
	s.mu.Unlock()
	close(done)
}

func (s *OIDC) discoverOnce(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, s.discovery), s.cfg.Issuer)
	if err != nil {
		return nil, err
	}
	var meta struct {
		JWKSURL    string   `json:"jwks_uri"`
		Algorithms []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := p.Claims(&meta); err != nil {
		return nil, fmt.Errorf("reading discovery document: %v", err)
	}
	if u, err := url.Parse(meta.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("discovery document has no usable jwks_uri (%q)", meta.JWKSURL)
	}
	algs := s.cfg.Algorithms
	if len(algs) == 0 {
		for _, a := range meta.Algorithms {
			if slices.Contains(Algorithms, a) {
				algs = append(algs, a)
			}
		}
	}
	if len(algs) == 0 {
		algs = []string{oidc.RS256}
	}
	remote := oidc.NewRemoteKeySet(oidc.ClientContext(context.Background(), s.keys), meta.JWKSURL)
	return oidc.NewVerifier(s.cfg.Issuer, keySet{remote: remote, lastRetry: new(atomic.Int64)}, &oidc.Config{
		ClientID:             s.cfg.ClientID,
		SupportedSigningAlgs: algs,
		Now:                  s.cfg.Now,
	}), nil
}

// keySet is go-oidc's RemoteKeySet (which caches the keys and fetches
// them again for a key it has not seen), noting in the request context
// that the signature check failed, so that Identify can tell a forged
// token from an unreachable key set.
//
// It also retries a failed check once, after a moment: RemoteKeySet
// hands a caller that arrives while a key fetch is finishing the result
// of that fetch, which may predate a key rotation, so the first token
// signed by a new key can fail once. Retries happen at most once per
// retryEvery, so that forged tokens cannot double the key fetches.
type keySet struct {
	remote    *oidc.RemoteKeySet
	lastRetry *atomic.Int64 // unix nanoseconds of the last retry
}

const (
	retryEvery  = time.Second
	retrySettle = 20 * time.Millisecond
)

type sigStateKey struct{}

type sigState struct{ failed atomic.Bool }

// VerifySignature implements oidc.KeySet.
func (k keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	payload, err := k.remote.VerifySignature(ctx, jwt)
	if err != nil && k.retryAllowed() {
		t := time.NewTimer(retrySettle)
		select {
		case <-t.C:
			payload, err = k.remote.VerifySignature(ctx, jwt)
		case <-ctx.Done():
			t.Stop()
		}
	}
	if err != nil {
		if st, ok := ctx.Value(sigStateKey{}).(*sigState); ok {
			st.failed.Store(true)
		}
	}
	return payload, err
}

func (k keySet) retryAllowed() bool {
	now := time.Now().UnixNano()
	last := k.lastRetry.Load()
	return now-last >= int64(retryEvery) && k.lastRetry.CompareAndSwap(last, now)
}

// claimString returns a string claim, and whether it was one.
func claimString(claims map[string]json.RawMessage, name string) (string, bool) {
	raw, ok := claims[name]
	if !ok {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// claimBool returns a boolean claim (true/false, or the strings "true"
// and "false" some providers send), and whether it was one.
func claimBool(claims map[string]json.RawMessage, name string) (bool, bool) {
	raw, ok := claims[name]
	if !ok {
		return false, false
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b, true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch strings.ToLower(s) {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	}
	return false, false
}

// scrub returns a verification error message fit for logs: clipped, and
// never with a piece of the token in it.
func scrub(msg, raw string) string {
	for _, part := range strings.Split(raw, ".") {
		if len(part) >= 8 && strings.Contains(msg, part) {
			return "invalid token"
		}
	}
	return clip(msg)
}

// limitTransport bounds response bodies and, when ok is set, records
// whether the last request succeeded (status 200, body read whole).
type limitTransport struct {
	base http.RoundTripper
	ok   *atomic.Bool
}

func (t *limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		t.mark(false)
		return nil, err
	}
	t.mark(resp.StatusCode == http.StatusOK)
	resp.Body = &limitedBody{body: resp.Body, left: maxIdPResponse, t: t}
	return resp, nil
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// base transport.
func (t *limitTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (t *limitTransport) mark(ok bool) {
	if t.ok != nil {
		t.ok.Store(ok)
	}
}

type limitedBody struct {
	body io.ReadCloser
	left int64
	t    *limitTransport
}

var errTooLarge = fmt.Errorf("identity provider response larger than %d bytes", maxIdPResponse)

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		b.t.mark(false)
		return 0, errTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.body.Read(p)
	b.left -= int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		b.t.mark(false)
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.body.Close() }
