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
)

// Defaults of an OIDC source.
const (
	DefaultPhoneClaim         = "phone_number"
	DefaultPhoneVerifiedClaim = "phone_number_verified"
	DefaultEmailClaim         = "email"
	DefaultSessionClaim       = "sid"
	DefaultOIDCTimeout        = 10 * time.Second
	// DefaultMaxTokenAge bounds how long a token may be valid (see
	// OIDCConfig.MaxTokenAge). Providers issue ID tokens for minutes to
	// hours (Keycloak 5m, Entra ID and Google 1h, Auth0 10h).
	DefaultMaxTokenAge = 24 * time.Hour
	// MaxMaxTokenAge is the largest MaxTokenAge accepted.
	MaxMaxTokenAge = 30 * 24 * time.Hour
	// ClockSkew is how far a token's iat may be ahead of our clock, and
	// its exp beyond MaxTokenAge from now.
	ClockSkew = 2 * time.Minute
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
	// Neither set: Authorization.
	//
	// When both Header and Cookie are set, either may hold the token, and
	// when both do, they must hold the same one. A request whose
	// Authorization header holds a bearer token other than the one
	// verified is refused even when Header is not Authorization: apps
	// read bearer tokens there.
	Header string
	// PhoneClaim names the claim holding the phone number.
	// Default: phone_number
	PhoneClaim string
	// PhoneVerifiedClaim names the boolean claim saying the provider
	// verified the number. Default: phone_number_verified
	PhoneVerifiedClaim string
	// RequireVerifiedPhone refuses (ErrPhoneUnverified) tokens
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
	// MaxTokenAge bounds how long a token may be valid: a token whose
	// exp is more than this after its iat, or more than this (plus
	// ClockSkew) after now, is refused, and so is one whose iat is more
	// than ClockSkew ahead of now. It caps the harm of a token minted
	// with a stolen key or a misconfigured lifetime. Default:
	// DefaultMaxTokenAge; at most MaxMaxTokenAge.
	MaxTokenAge time.Duration
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
// issuer, audience, expiry and algorithm; then by this source: the
// authorized party (azp) when the token has several audiences or names
// one (OIDC Core 3.1.3.7), an iat not in the future, and a lifetime
// within MaxTokenAge.
//
// A request that carries its token in a way the app could read
// differently (two tokens, in two places that disagree, a repeated
// header or cookie, a cookie under a name some parsers fold into the
// configured one, another token in the query) is refused with
// ErrAmbiguousCredential; see credential.go. Values over their
// bounds are refused with ErrBadIdentity.
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
	cookie    cookieName
	query     []cookieName // query parameters that may hold a token
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
	if cfg.MaxTokenAge < 0 || cfg.MaxTokenAge > MaxMaxTokenAge {
		return nil, fmt.Errorf("oidc: max token age %s out of range (up to %s)", cfg.MaxTokenAge, MaxMaxTokenAge)
	}
	if cfg.MaxTokenAge == 0 {
		cfg.MaxTokenAge = DefaultMaxTokenAge
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
	s.query = []cookieName{newCookieName("id_token"), newCookieName("access_token")}
	if cfg.Cookie != "" {
		s.cookie = newCookieName(cfg.Cookie)
		s.query = append(s.query, s.cookie)
	}
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

// LoginURL implements LoginRedirector.
func (s *OIDC) LoginURL(r *http.Request) string {
	return loginURL(s.cfg.LoginURL, r)
}

// Identify implements Source.
func (s *OIDC) Identify(r *http.Request) (Identity, error) {
	raw, err := s.token(r)
	if err != nil {
		return Identity{}, err
	}
	v, err := s.getVerifier(r.Context())
	if err != nil {
		return Identity{}, err
	}
	sig := new(sigState)
	tok, err := v.Verify(context.WithValue(r.Context(), sigStateKey{}, sig), raw)
	if err != nil {
		var expired *oidc.TokenExpiredError
		switch {
		case sig.failed.Load() && !s.keysOK.Load():
			return Identity{}, fmt.Errorf("oidc: the issuer's keys could not be fetched to verify a token signed with a key not seen before: %w",
				errUnavailable)
		case errors.As(err, &expired):
			return Identity{}, noIdentity("oidc: token expired")
		case sig.failed.Load():
			return Identity{}, noIdentity("oidc: signature not verified by any of the issuer's keys")
		}
		return Identity{}, noIdentity("oidc: %s", scrub(err.Error(), raw))
	}
	return s.identity(tok, raw)
}

// errUnavailable marks errors of a provider that could not be reached.
var errUnavailable = errors.New("identity provider unavailable")

// identity builds the Identity from a verified token.
func (s *OIDC) identity(tok *oidc.IDToken, raw string) (Identity, error) {
	if tok.Subject == "" {
		return Identity{}, noIdentity("oidc: token has no sub claim")
	}
	var claims map[string]json.RawMessage
	if err := tok.Claims(&claims); err != nil {
		return Identity{}, noIdentity("oidc: reading claims: %v", err)
	}
	if err := s.checkClaims(tok, claims); err != nil {
		return Identity{}, err
	}
	id := Identity{User: tok.Subject}

	if sid, _ := claimString(claims, s.cfg.SessionClaim); sid != "" {
		if len(sid) > maxSIDLen {
			sid = Hash(sid)
		}
		id.Session = sid
	} else {
		id.Session = Hash(raw)
	}

	phone, err := optionalClaimString(claims, s.cfg.PhoneClaim)
	if err != nil {
		return Identity{}, err
	}
	id.Phone = phone
	email, err := optionalClaimString(claims, s.cfg.EmailClaim)
	if err != nil {
		return Identity{}, err
	}
	if verified, ok := claimBool(claims, "email_verified"); !ok || verified {
		id.Email = email
	}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("oidc: %w", err)
	}
	if id.Phone != "" && s.cfg.RequireVerifiedPhone {
		if verified, ok := claimBool(claims, s.cfg.PhoneVerifiedClaim); !ok || !verified {
			return Identity{}, fmt.Errorf("%w: oidc: claim %s is not true", ErrPhoneUnverified, s.cfg.PhoneVerifiedClaim)
		}
	}
	return id, nil
}

// checkClaims checks what go-oidc leaves to the client: the authorized
// party (OIDC Core 3.1.3.7, steps 4 and 5: a token issued to another
// client that also lists us in aud is not ours), an iat in the future,
// and the token's lifetime.
func (s *OIDC) checkClaims(tok *oidc.IDToken, claims map[string]json.RawMessage) error {
	if rawAzp, ok := claims["azp"]; ok || len(tok.Audience) > 1 {
		if !ok {
			return noIdentity("oidc: token has several audiences and no azp claim")
		}
		var azp string
		if json.Unmarshal(rawAzp, &azp) != nil || azp != s.cfg.ClientID {
			return noIdentity("oidc: token's azp claim names another client than client_id")
		}
	}
	now := s.cfg.Now()
	iat := tok.IssuedAt
	switch {
	case !iat.IsZero() && iat.After(now.Add(ClockSkew)):
		return noIdentity("oidc: token issued in the future (iat more than %s ahead)", ClockSkew)
	case tok.Expiry.After(now.Add(s.cfg.MaxTokenAge + ClockSkew)):
		return noIdentity("oidc: token expires more than max_token_age (%s) from now", s.cfg.MaxTokenAge)
	case !iat.IsZero() && tok.Expiry.Sub(iat) > s.cfg.MaxTokenAge:
		return noIdentity("oidc: token valid for longer than max_token_age (%s)", s.cfg.MaxTokenAge)
	}
	return nil
}

// token returns the raw ID token of r: an error wrapping
// ErrNoIdentity when there is none, or
// ErrAmbiguousCredential when the request carries more than one
// token, or one the app behind stepup could read differently.
func (s *OIDC) token(r *http.Request) (string, error) {
	var raw, from string
	take := func(v, place string) error {
		switch {
		case v == "":
		case raw == "":
			raw, from = v, place
		case v != raw:
			return ambiguous("oidc: the %s and the %s hold different credentials", from, place)
		}
		return nil
	}
	if s.header != "" {
		v, err := headerToken(r.Header, s.header)
		if err == nil {
			err = take(v, s.header+" header")
		}
		if err != nil {
			return "", err
		}
	}
	if s.cfg.Cookie != "" {
		v, _, err := s.cookie.find(r.Header)
		if err == nil {
			err = take(v, s.cfg.Cookie+" cookie")
		}
		if err != nil {
			return "", fmt.Errorf("oidc: %w", err)
		}
	}
	if raw == "" {
		return "", noIdentity("oidc: no ID token")
	}
	// Places stepup does not read but apps do: a bearer token in
	// Authorization, a token in the query.
	if s.header != "Authorization" {
		v, err := headerToken(r.Header, "Authorization")
		if err == nil && v != "" && v != raw {
			err = ambiguous("oidc: the Authorization header holds another bearer token than the %s", from)
		}
		if err != nil {
			return "", err
		}
	}
	for _, v := range queryValues(r.URL.RawQuery, s.query...) {
		if v != raw {
			return "", ambiguous("oidc: the query holds another token than the %s", from)
		}
	}
	switch {
	case len(raw) > MaxTokenLen:
		return "", noIdentity("oidc: ID token larger than %d bytes", MaxTokenLen)
	case !jwsShape(raw):
		return "", noIdentity("oidc: ID token is not a signed JWT")
	}
	return raw, nil
}

// headerToken returns the token in header key ("" when there is none),
// or an error wrapping ErrAmbiguousCredential when the header is
// sent more than once (also under a name that folds into key) or holds
// more than one credential.
func headerToken(h http.Header, key string) (string, error) {
	lines := headerLines(h, key)
	switch len(lines) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", ambiguous("oidc: %s header sent more than once", key)
	}
	v, err := headerCredential(lines[0], key == "Authorization")
	if err != nil {
		return "", fmt.Errorf("oidc: %s header: %w", key, err)
	}
	return v, nil
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

// optionalClaimString returns a string claim, "" when it is absent or
// null, and an error wrapping ErrBadIdentity when it is of
// another type.
func optionalClaimString(claims map[string]json.RawMessage, name string) (string, error) {
	if _, present := claims[name]; !present {
		return "", nil
	}
	v, ok := claimString(claims, name)
	if !ok {
		return "", fmt.Errorf("%w: oidc: claim %s is not a string", ErrBadIdentity, name)
	}
	return v, nil
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

// HeaderNames implements HeaderNamer: the header that holds the token,
// if any (a replayed request takes it from the request that triggers the
// replay, and trailers may not carry it).
func (s *OIDC) HeaderNames() []string {
	if s.header == "" {
		return nil
	}
	return []string{s.header}
}
