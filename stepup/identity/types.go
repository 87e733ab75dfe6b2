package identity

import (
	"errors"
	"fmt"
	"net/http"
	"unicode"
	"unicode/utf8"
)

// Identity is who a request comes from, as an identity source found it.
// All sources (headers, OIDC, a legacy cookie) produce the same value, so
// policies, challenges and grants do not care where it came from.
type Identity struct {
	// User is the stable user id (a login name, an OIDC "sub").
	User string
	// Session identifies the login session when the source knows one (an
	// OIDC "sid", a legacy session cookie). Empty: the engine keeps its
	// own browser-session cookie.
	Session string
	// Phone is where codes go, as the source found it (parsed to E.164
	// by the engine).
	Phone string
	// Email is the user's e-mail address, when known (fallback channel).
	Email string
	// Decoy marks an identity made up for an account that does not exist
	// (a password reset for an unknown name): the engine answers exactly
	// as for a real one but sends nothing, so that nobody can learn which
	// accounts exist.
	Decoy bool
	// HideNumber asks the page not to show even the masked number (the
	// destination came from a lookup the requester must not learn).
	HideNumber bool
}

// RequestIdentity is implemented by sources that read the identity from
// the protected request itself (a sign-up or reset form). Their
// challenges bind to the browser session and remember the user, because
// the engine's own pages do not carry the form again; and the engine
// refuses them unless the per-IP and per-number limits are on, since the
// destination comes from whoever sends the request.
type RequestIdentity interface {
	IdentityFromRequest() bool
}

// Source finds the identity of a request.
type Source interface {
	// Identify returns the request's identity, or an error wrapping
	// ErrNoIdentity when there is none (no login), or another error when
	// the source could not tell (its backend failed: fail closed).
	Identify(r *http.Request) (Identity, error)
}

// ErrNoIdentity means the request carries no usable identity: the user
// is not logged in, or the credential is expired, forged or for another
// audience. Sources wrap it with the reason (never the credential).
var ErrNoIdentity = errors.New("no identity")

// ErrBadIdentity means the request's identity is malformed: a value over
// its bound (a 300-byte user id, a 40-character number) or not well
// formed (control characters, invalid UTF-8, a claim of the wrong type),
// in a header, a token's claims or a lookup's answer. The engine answers
// 400: the request is refused, and the source is not failing (no outage
// is counted). Sources wrap it with the reason, never the value.
var ErrBadIdentity = errors.New("the request's identity is malformed")

// ErrAmbiguousCredential means the request carries its credential in a
// way that the app behind stepup could read differently from stepup: in
// two places that disagree (a header and a cookie), twice (two
// Authorization lines, two tokens on one line, two cookies of the same
// name, also under names that some parsers fold together such as
// PHP%53ESSID or X_Remote_User), or in a form that parsers read
// differently (a quoted cookie value). Had stepup verified one reading
// and the app acted on another, a code sent to one person would
// authorize another. It wraps ErrBadIdentity (the engine answers 400).
var ErrAmbiguousCredential = fmt.Errorf("%w: ambiguous credential", ErrBadIdentity)

// ErrPhoneUnverified means the identity is valid but its phone number is
// not verified by the identity provider, and the source requires that it
// is: no code may be sent to it.
var ErrPhoneUnverified = errors.New("phone number not verified")

// LoginRedirector is implemented by sources that can send a browser
// without a valid identity to a login page instead of answering 401.
type LoginRedirector interface {
	// LoginURL returns where to send the browser, or "" for a plain 401.
	LoginURL(r *http.Request) string
}

// Bounds on identity values, so that a hostile header, token or lookup
// cannot make us store, hash or log megabytes.
const (
	maxUserLen    = 256
	maxPhoneLen   = 32
	maxEmailLen   = 254
	maxSessionLen = 256
)

// Validate checks that id's values are within their bounds (user 256
// bytes, phone 32, e-mail 254, session 256) and well formed (valid UTF-8
// without control characters), and that it names a user. The error wraps
// ErrBadIdentity and names the field, never its value. Sources call it
// on what they found; the engine may call it again on any source's
// answer.
func (id Identity) Validate() error {
	if id.User == "" {
		return fmt.Errorf("%w: no user id", ErrBadIdentity)
	}
	for _, f := range [...]struct {
		name, v string
		max     int
	}{
		{"user id", id.User, maxUserLen},
		{"phone number", id.Phone, maxPhoneLen},
		{"e-mail address", id.Email, maxEmailLen},
		{"session id", id.Session, maxSessionLen},
	} {
		if len(f.v) > f.max {
			return fmt.Errorf("%w: %s longer than %d bytes", ErrBadIdentity, f.name, f.max)
		}
		if !printable(f.v) {
			return fmt.Errorf("%w: %s is not printable UTF-8", ErrBadIdentity, f.name)
		}
	}
	return nil
}

// printable reports whether s is valid UTF-8 without control characters
// (C0, DEL, C1). Invalid UTF-8 is refused because JSON (the upstream
// assertion's sub) would carry another value than the one checked.
func printable(s string) bool {
	ascii := true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c == 0x7f:
			return false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	if ascii {
		return true
	}
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// Header reads the identity from request headers set by a trusted
// handler that runs before stepup (forward_auth with copy_headers, an
// authentication module). Clients must never be able to set these headers
// themselves: the handler in front must overwrite or remove them.
//
// A header given twice, or also under a name that CGI-style gateways
// fold into the same variable (X_Remote_User, x-remote-user: PHP sees
// both as HTTP_X_REMOTE_USER), is refused with ErrAmbiguousCredential:
// the handler in front overwrote one of them, and the app could read the
// other. Values over their bounds are refused with ErrBadIdentity.
type Header struct {
	// UserHeader holds the user id (required).
	UserHeader string
	// PhoneHeader holds the phone number in E.164 form.
	PhoneHeader string
	// EmailHeader holds the e-mail address (optional).
	EmailHeader string
	// SessionHeader holds a session id (optional).
	SessionHeader string
}

// HeaderNamer is implemented by sources that read the identity from
// request headers: the engine keeps clients from sending those as
// trailers.
type HeaderNamer interface {
	HeaderNames() []string
}

// HeaderNames implements HeaderNamer.
func (s *Header) HeaderNames() []string {
	var out []string
	for _, n := range [...]string{s.UserHeader, s.PhoneHeader, s.EmailHeader, s.SessionHeader} {
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}

// Identify implements Source.
func (s *Header) Identify(r *http.Request) (Identity, error) {
	keys := [...]string{s.UserHeader, s.PhoneHeader, s.EmailHeader, s.SessionHeader}
	var vals [len(keys)]string
	for i, name := range keys {
		if name == "" {
			continue
		}
		keys[i] = http.CanonicalHeaderKey(name)
		switch v := r.Header[keys[i]]; len(v) {
		case 0:
		case 1:
			vals[i] = v[0]
		default:
			return Identity{}, fmt.Errorf("%w: identity header %s sent more than once", ErrAmbiguousCredential, keys[i])
		}
	}
	for k := range r.Header {
		for _, key := range keys {
			if key != "" && k != key && FoldedEqual(k, key) {
				return Identity{}, fmt.Errorf("%w: identity header %s also sent as %q", ErrAmbiguousCredential, key, k)
			}
		}
	}
	id := Identity{User: vals[0], Phone: vals[1], Email: vals[2], Session: vals[3]}
	if id.User == "" {
		return Identity{}, ErrNoIdentity
	}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("identity header: %w", err)
	}
	return id, nil
}
