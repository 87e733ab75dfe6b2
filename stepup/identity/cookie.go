package identity

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Defaults of a cookie source.
const (
	DefaultLookupTimeout = 2 * time.Second
	DefaultCacheSize     = 10000
)

// Account is what a phone lookup found for a session.
type Account struct {
	// User is the account's id in the app. Empty: the source derives one
	// (see Cookie).
	User string
	// Phone is the account's mobile number. Empty: the account has none,
	// and the engine asks the customer to add one.
	Phone string
	// Email is the account's e-mail address, if the lookup knows it.
	Email string
}

// Lookup finds the account behind a legacy session cookie.
type Lookup interface {
	// Lookup returns the account of the session whose cookie is
	// name=value: an error wrapping ErrNoIdentity when the session
	// is unknown (nobody is signed in with it), another error when the
	// backend could not answer. Errors never contain the cookie value.
	Lookup(ctx context.Context, name, value string) (Account, error)
}

// CookieConfig configures a cookie source.
type CookieConfig struct {
	// Name is the session cookie's name (PHPSESSID, laravel_session).
	// Required.
	Name string
	// Lookup finds the account of a session: a *RedisLookup or an
	// *HTTPLookup. Required.
	Lookup Lookup
	// Cache keeps successful lookups this long (by the hash of the
	// cookie). Failures and unknown sessions are never cached. 0: no
	// cache.
	Cache time.Duration
	// CacheSize bounds the cache's entries. Default: 10000
	CacheSize int
	// Timeout bounds one lookup. Default: 2s
	Timeout time.Duration
	// LoginURL is where browsers without a session are sent instead of
	// getting 401; ReturnPlaceholder in it is replaced by the request's
	// escaped path and query. Empty: 401.
	LoginURL string
	// Logger gets lookup events (never a cookie or a phone number).
	// Default: no logging.
	Logger *zap.Logger
	// Now is the cache's clock. Default: time.Now
	Now func() time.Time
}

// Cookie is an identity source for legacy apps with their own session
// cookie: the cookie is the session, and the account's phone number is
// looked up by it. Only the SHA-256 of the cookie value is kept (in
// Identity.Session and the cache) or logged.
//
// The identity is Session = hex SHA-256 of the cookie value, Phone and
// Email as the lookup found them, and User:
//   - the account id the lookup returned, when it returned one;
//   - otherwise "phone:" + SHA-256 of the phone number, so that the
//     engine's failure counter and lockout follow the number across
//     sessions (a new login does not reset them);
//   - otherwise (no id, no number) "session:" + the session hash; the
//     engine then only shows its "add a mobile number" page.
//
// A request without the cookie, or with a malformed one (empty, longer
// than MaxCookieLen, or not made of RFC 6265 cookie-octets), has no
// identity. A request that carries the cookie so that the app could read
// another value than stepup (twice, under a name some parsers fold into
// it, quoted, or with another session id in the query or a ";name="
// path parameter) is refused with ErrAmbiguousCredential; see
// credential.go. An account whose values are over their bounds is
// refused with ErrBadIdentity.
type Cookie struct {
	cfg   CookieConfig
	name  cookieName
	log   *zap.Logger
	cache *cache
}

// NewCookie checks cfg and returns the source. It contacts nothing.
func NewCookie(cfg CookieConfig) (*Cookie, error) {
	if !validToken(cfg.Name) {
		return nil, fmt.Errorf("cookie: invalid cookie name %q", cfg.Name)
	}
	if cfg.Lookup == nil {
		return nil, errors.New("cookie: a phone lookup is required (redis or http)")
	}
	if v, ok := cfg.Lookup.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return nil, err
		}
	}
	if cfg.Cache < 0 || cfg.Timeout < 0 || cfg.CacheSize < 0 {
		return nil, errors.New("cookie: negative cache, cache size or timeout")
	}
	if err := validLoginURL(cfg.LoginURL); err != nil {
		return nil, fmt.Errorf("cookie: %v", err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultLookupTimeout
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Cookie{cfg: cfg, name: newCookieName(cfg.Name), log: cfg.Logger}
	if cfg.Cache > 0 {
		s.cache = &cache{max: cfg.CacheSize, m: make(map[string]cacheEntry)}
	}
	return s, nil
}

// Close drops the lookup's idle connections (HTTP lookups). The source
// keeps working.
func (s *Cookie) Close() error {
	if c, ok := s.cfg.Lookup.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	return nil
}

// LoginURL implements LoginRedirector.
func (s *Cookie) LoginURL(r *http.Request) string {
	return loginURL(s.cfg.LoginURL, r)
}

// Identify implements Source.
func (s *Cookie) Identify(r *http.Request) (Identity, error) {
	value, err := s.sessionCookie(r)
	if err != nil {
		return Identity{}, err
	}
	session := Hash(value)
	now := s.cfg.Now()
	if s.cache != nil {
		if a, ok := s.cache.get(session, now); ok {
			return identityOf(a, session), nil
		}
	}

	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	a, err := s.cfg.Lookup.Lookup(ctx, s.cfg.Name, value)
	timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
	cancel()
	switch {
	case err == nil:
	case errors.Is(err, ErrNoIdentity), errors.Is(err, ErrBadIdentity):
		return Identity{}, err
	case timedOut:
		return Identity{}, fmt.Errorf("cookie: %s phone lookup timed out after %s: %w", lookupKind(s.cfg.Lookup), s.cfg.Timeout, err)
	default:
		return Identity{}, fmt.Errorf("cookie: %s phone lookup: %w", lookupKind(s.cfg.Lookup), err)
	}

	id := identityOf(a, session)
	if err := id.Validate(); err != nil {
		// The account's data is malformed (a number over 32 characters,
		// an id over 256 bytes): a 400 for this customer, no outage.
		return Identity{}, fmt.Errorf("cookie: the %s phone lookup's answer: %w", lookupKind(s.cfg.Lookup), err)
	}
	if a.Phone == "" {
		s.log.Info("no phone number on file for the session's account",
			zap.String("lookup", lookupKind(s.cfg.Lookup)), zap.String("session", session[:12]))
	}
	if s.cache != nil {
		s.cache.put(session, a, now, now.Add(s.cfg.Cache))
	}
	return id, nil
}

// sessionCookie returns the value of the session cookie: an error
// wrapping ErrNoIdentity when there is none (or a malformed one),
// or ErrAmbiguousCredential when the app could read another.
func (s *Cookie) sessionCookie(r *http.Request) (string, error) {
	value, found, err := s.name.find(r.Header)
	switch {
	case err != nil:
		return "", fmt.Errorf("cookie: %w", err)
	case !found:
		return "", noIdentity("cookie: no %s cookie", s.cfg.Name)
	case !cookieOctets(value):
		return "", noIdentity("cookie: malformed %s cookie", s.cfg.Name)
	}
	// Apps may also take the session id from the URL (PHP without
	// session.use_only_cookies, servlet containers' ;jsessionid=): one
	// there must be the same.
	for _, v := range queryValues(r.URL.RawQuery, s.name) {
		if v != value {
			return "", ambiguous("cookie: the query holds another %s than the cookie", s.cfg.Name)
		}
	}
	for _, v := range pathParamValues(r.URL.Path, s.name) {
		if v != value {
			return "", ambiguous("cookie: a path parameter holds another %s than the cookie", s.cfg.Name)
		}
	}
	return value, nil
}

// identityOf builds the identity of a session from its account.
func identityOf(a Account, session string) Identity {
	id := Identity{User: a.User, Session: session, Phone: a.Phone, Email: a.Email}
	if id.User == "" {
		if id.Phone != "" {
			id.User = userFromPhone(id.Phone)
		} else {
			id.User = userFromSession(session)
		}
	}
	return id
}

func lookupKind(l Lookup) string {
	switch l.(type) {
	case *RedisLookup:
		return "redis"
	case *HTTPLookup:
		return "http"
	}
	return "custom"
}

// cache keeps accounts by session hash, bounded in size.
type cache struct {
	mu  sync.Mutex
	max int
	m   map[string]cacheEntry
}

type cacheEntry struct {
	a   Account
	exp time.Time
}

func (c *cache) get(key string, now time.Time) (Account, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok {
		return Account{}, false
	}
	if !now.Before(e.exp) {
		delete(c.m, key)
		return Account{}, false
	}
	return e.a, true
}

func (c *cache) put(key string, a Account, now, exp time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		for k, e := range c.m {
			if !now.Before(e.exp) {
				delete(c.m, k)
			}
		}
		// Still full: drop an eighth of the entries at random (map
		// order), so that the sweep above runs rarely. An evicted session
		// is simply looked up again.
		for k := range c.m {
			if len(c.m) < c.max-c.max/8 {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = cacheEntry{a: a, exp: exp}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
