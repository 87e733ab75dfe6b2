package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// IDPlaceholder is replaced in a RedisLookup key by the session cookie's
// value.
const IDPlaceholder = "{id}"

// maxAccountLen bounds a lookup answer (a Redis value, an HTTP body).
const maxAccountLen = 64 << 10

// ErrNoRedis is returned by a RedisLookup that was given no Redis client:
// the stepup handler has no redis configured. Requests fail closed.
var ErrNoRedis = errors.New("phone_lookup redis needs a Redis client: configure redis in the stepup block")

// RedisLookup finds the account of a session in Redis, in a key that
// the app writes at login, named after the session cookie's value.
//
// Without Field, the key is a string (GET): either the phone number
// alone, or a JSON object {"user": ..., "phone": ..., "email": ...}. With
// Field, the key is a hash (HMGET of Field, UserField and EmailField). A
// missing key means the session is unknown (no identity); a key without
// a phone number means the account has none (the engine asks the
// customer to add one). Write an empty value or hash field for signed-in
// customers without a number, so that they see that page rather than
// the sign-in page.
type RedisLookup struct {
	// Key is the key name with IDPlaceholder ("shop:session:{id}").
	Key string
	// Field is the hash field holding the phone number. Empty: the key
	// is a string.
	Field string
	// UserField is the hash field holding the account id (with Field).
	UserField string
	// EmailField is the hash field holding the e-mail address (with
	// Field).
	EmailField string

	client atomic.Pointer[redisBox]
}

type redisBox struct{ redis.UniversalClient }

// Validate checks the configuration.
func (l *RedisLookup) Validate() error {
	if !strings.Contains(l.Key, IDPlaceholder) {
		return fmt.Errorf("phone_lookup redis: key %q must contain %s (the session cookie's value)", l.Key, IDPlaceholder)
	}
	if l.Field == "" && (l.UserField != "" || l.EmailField != "") {
		return errors.New("phone_lookup redis: user_field and email_field need the phone's hash field (field <name>)")
	}
	return nil
}

// SetClient gives the lookup its Redis client (the stepup handler's
// shared one). Safe to call while requests are served.
func (l *RedisLookup) SetClient(c redis.UniversalClient) {
	if c == nil {
		l.client.Store(nil)
		return
	}
	l.client.Store(&redisBox{c})
}

// Lookup implements Lookup.
func (l *RedisLookup) Lookup(ctx context.Context, _, value string) (Account, error) {
	box := l.client.Load()
	if box == nil {
		return Account{}, ErrNoRedis
	}
	if !cookieOctets(value) {
		return Account{}, noIdentity("cookie: malformed session cookie")
	}
	key := strings.ReplaceAll(l.Key, IDPlaceholder, value)
	if l.Field == "" {
		v, err := box.Get(ctx, key).Result()
		if errors.Is(err, redis.Nil) {
			return Account{}, noIdentity("cookie: session not found in redis")
		}
		if err != nil {
			return Account{}, err
		}
		if len(v) > maxAccountLen {
			return Account{}, fmt.Errorf("session value larger than %d bytes", maxAccountLen)
		}
		v = strings.TrimSpace(v)
		if strings.HasPrefix(v, "{") {
			return decodeAccount([]byte(v))
		}
		return Account{Phone: v}, nil
	}

	fields := []string{l.Field}
	if l.UserField != "" {
		fields = append(fields, l.UserField)
	}
	if l.EmailField != "" {
		fields = append(fields, l.EmailField)
	}
	var exists *redis.IntCmd
	var vals *redis.SliceCmd
	_, err := box.TxPipelined(ctx, func(p redis.Pipeliner) error {
		exists = p.Exists(ctx, key)
		vals = p.HMGet(ctx, key, fields...)
		return nil
	})
	if err != nil {
		return Account{}, err
	}
	if exists.Val() == 0 {
		return Account{}, noIdentity("cookie: session not found in redis")
	}
	got := vals.Val()
	field := func(name string) string {
		for i, f := range fields {
			if f == name && i < len(got) {
				if s, ok := got[i].(string); ok {
					return strings.TrimSpace(s)
				}
			}
		}
		return ""
	}
	a := Account{Phone: field(l.Field)}
	if l.UserField != "" {
		a.User = field(l.UserField)
	}
	if l.EmailField != "" {
		a.Email = field(l.EmailField)
	}
	return a, nil
}

// HTTPLookup asks the legacy app who is signed in: a GET to URL with
// the session cookie (and no other) forwarded, answered by JSON
// {"user": "...", "phone": "+...", "email": "..."} (user ids may be
// numbers). The answer must name the user; the phone may be empty or
// missing. Redirects are not followed.
//
//   - 200 with a user: the account.
//   - 401, 403, 404 or a redirect (a login page), or 200 without a user:
//     nobody is signed in with that cookie (no identity).
//   - anything else, a network error or a timeout: the lookup failed
//     (requests fail closed).
type HTTPLookup struct {
	// URL is the app's endpoint (http or https).
	URL string
	// Transport makes the requests. Default: a clone of
	// http.DefaultTransport.
	Transport http.RoundTripper

	once   sync.Once
	client *http.Client
}

// Validate checks the configuration.
func (l *HTTPLookup) Validate() error {
	u, err := url.Parse(l.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("phone_lookup http: %q is not an http(s) URL", l.URL)
	}
	return nil
}

func (l *HTTPLookup) httpClient() *http.Client {
	l.once.Do(func() {
		t := l.Transport
		if t == nil {
			t = http.DefaultTransport.(*http.Transport).Clone()
		}
		l.client = &http.Client{
			Transport:     t,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	})
	return l.client
}

// CloseIdleConnections closes the lookup's idle connections to the app.
func (l *HTTPLookup) CloseIdleConnections() {
	l.httpClient().CloseIdleConnections()
}

// Lookup implements Lookup.
func (l *HTTPLookup) Lookup(ctx context.Context, name, value string) (Account, error) {
	client := l.httpClient()
	if !cookieOctets(value) || !validToken(name) {
		return Account{}, noIdentity("cookie: malformed session cookie")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.URL, nil)
	if err != nil {
		return Account{}, err
	}
	req.Header.Set("Cookie", name+"="+value)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "caddy-stepup phone lookup")
	resp, err := client.Do(req)
	if err != nil {
		return Account{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAccountLen+1))
	if err != nil {
		return Account{}, fmt.Errorf("reading the answer: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden, resp.StatusCode == http.StatusNotFound:
		return Account{}, noIdentity("cookie: the app answered %d to the phone lookup", resp.StatusCode)
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return Account{}, noIdentity("cookie: the app redirected the phone lookup (%d): taken as not signed in", resp.StatusCode)
	default:
		return Account{}, fmt.Errorf("the app answered %s", resp.Status)
	}
	if len(body) > maxAccountLen {
		return Account{}, fmt.Errorf("answer larger than %d bytes", maxAccountLen)
	}
	a, err := decodeAccount(body)
	if err != nil {
		return Account{}, err
	}
	if a.User == "" {
		return Account{}, noIdentity("cookie: the app's answer names no user")
	}
	return a, nil
}

// decodeAccount reads {"user": ..., "phone": ..., "email": ...}; each
// may be a string, a number or null.
func decodeAccount(b []byte) (Account, error) {
	var raw struct {
		User  json.RawMessage `json:"user"`
		Phone json.RawMessage `json:"phone"`
		Email json.RawMessage `json:"email"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return Account{}, fmt.Errorf("answer is not a JSON object: %v", err)
	}
	var a Account
	var err error
	if a.User, err = jsonScalar(raw.User); err != nil {
		return Account{}, fmt.Errorf("user: %v", err)
	}
	if a.Phone, err = jsonScalar(raw.Phone); err != nil {
		return Account{}, fmt.Errorf("phone: %v", err)
	}
	if a.Email, err = jsonScalar(raw.Email); err != nil {
		return Account{}, fmt.Errorf("email: %v", err)
	}
	return a, nil
}

// jsonScalar returns a JSON string's value or a number's text; "" for
// null or absent.
func jsonScalar(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.TrimSpace(s), nil
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), nil
	}
	return "", errors.New("want a string or a number")
}
