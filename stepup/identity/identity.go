// Package identity says who a request comes from: the [Identity] value
// the step-up engine binds challenges and grants to, the [Source]
// interface, and the sources:
//
//   - [Header] reads headers set by a trusted handler in front
//     (forward_auth with copy_headers).
//   - [OIDC] reads an OpenID Connect ID token from a cookie or the
//     Authorization header and verifies it with go-oidc (discovery, JWKS
//     cached and refreshed on key rotation, issuer, audience, expiry and
//     algorithm checks).
//   - [Cookie] takes a legacy app's session cookie as the session and
//     looks the account's phone number up in Redis ([RedisLookup]) or by
//     asking the app itself ([HTTPLookup]).
//
// All produce the same [Identity], so
// policies, challenges and grants bind the same way whatever the source.
// None ever logs or stores a token or a session cookie: only SHA-256
// hashes of them. Errors wrap [ErrNoIdentity] when the request
// carries no usable login, [ErrAmbiguousCredential] when it
// carries its credential so that the app behind stepup could read
// another one than stepup verified (see credential.go),
// [ErrBadIdentity] when the identity found is malformed (a value
// over its bound), [ErrPhoneUnverified] when the identity
// provider has not verified the number, and are plain errors (the engine
// fails closed with 503) when a backend could not answer.
//
// The package has no Caddy dependency; package caddymodule adapts it.
package identity

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Bounds on what a request or a backend may hand us, so that a hostile
// client or a broken backend cannot make us hash, store or log megabytes.
const (
	// MaxTokenLen bounds an ID token, in bytes. Browsers keep cookies
	// under 4 KiB; tokens with many group claims in an Authorization
	// header can be larger.
	MaxTokenLen = 16 << 10
	// MaxCookieLen bounds a legacy session cookie value, in bytes.
	MaxCookieLen = 512

	// maxSIDLen bounds a session claim kept as is; longer ones are
	// hashed.
	maxSIDLen    = 128
	maxReasonLen = 200
)

// ReturnPlaceholder is replaced in a login URL by the query-escaped path
// and query of the request that needed a login, so that the login page
// can send the user back ("/login?next={return}").
const ReturnPlaceholder = "{return}"

// Hash returns the hex SHA-256 of v: what stands for a token or session
// cookie wherever one would otherwise be stored or logged.
func Hash(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:])
}

// noIdentity wraps ErrNoIdentity with a reason that never
// contains the credential.
func noIdentity(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNoIdentity, fmt.Sprintf(format, args...))
}

// loginURL expands ReturnPlaceholder in u for r.
func loginURL(u string, r *http.Request) string {
	if u == "" || !strings.Contains(u, ReturnPlaceholder) {
		return u
	}
	ret := "/"
	if r != nil && r.URL != nil {
		// Only a same-origin path: never a scheme or host from the request.
		if p := r.URL.RequestURI(); strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "//") {
			ret = p
		}
	}
	return strings.ReplaceAll(u, ReturnPlaceholder, url.QueryEscape(ret))
}

// validLoginURL checks a configured login URL: absolute http(s) or a
// path on the same site.
func validLoginURL(u string) error {
	if u == "" {
		return nil
	}
	p, err := url.Parse(strings.ReplaceAll(u, ReturnPlaceholder, "x"))
	if err != nil {
		return fmt.Errorf("login URL: %v", err)
	}
	switch {
	case p.Scheme == "" && p.Host == "" && strings.HasPrefix(p.Path, "/") && !strings.HasPrefix(u, "//"):
	case (p.Scheme == "https" || p.Scheme == "http") && p.Host != "":
	default:
		return fmt.Errorf("login URL %q: want an http(s) URL or a path starting with '/'", u)
	}
	return nil
}

// validToken reports whether name is an HTTP token (RFC 9110): usable as
// a header or cookie name.
func validToken(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// cookieOctets reports whether v is non-empty, at most MaxCookieLen bytes
// and made only of RFC 6265 cookie-octets: printable US-ASCII without
// space, double quote, comma, semicolon or backslash.
func cookieOctets(v string) bool {
	if v == "" || len(v) > MaxCookieLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= 0x20 || c >= 0x7f || c == '"' || c == ',' || c == ';' || c == '\\' {
			return false
		}
	}
	return true
}

// clip shortens a log reason.
func clip(s string) string {
	if len(s) <= maxReasonLen {
		return s
	}
	return s[:maxReasonLen] + "…"
}

// userFromPhone derives a stable user id from a phone number, for
// sources that know the number but no account id: the same number is
// the same user, so the engine's failure counter and lockout follow the
// number across sessions and re-logins.
func userFromPhone(phone string) string {
	return "phone:" + Hash(phone)
}

// userFromSession derives a user id from a session hash, for a session
// that has neither account id nor phone number (the engine then shows the
// "add a number" page; nothing is ever sent).
func userFromSession(sessionHash string) string {
	return "session:" + sessionHash
}
