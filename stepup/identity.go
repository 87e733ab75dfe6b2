package stepup

import (
	"errors"
	"net/http"
	"net/textproto"
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

// Bounds on identity values, so that a hostile header cannot make us
// store or hash megabytes.
const (
	maxUserLen  = 256
	maxPhoneLen = 32
	maxEmailLen = 254
)

// HeaderSource reads the identity from request headers set by a trusted
// handler that runs before stepup (forward_auth with copy_headers, an
// authentication module). Clients must never be able to set these headers
// themselves: the handler in front must overwrite or remove them.
type HeaderSource struct {
	// UserHeader holds the user id (required).
	UserHeader string
	// PhoneHeader holds the phone number in E.164 form.
	PhoneHeader string
	// EmailHeader holds the e-mail address (optional).
	EmailHeader string
	// SessionHeader holds a session id (optional).
	SessionHeader string
}

// Identify implements Source.
func (s *HeaderSource) Identify(r *http.Request) (Identity, error) {
	id := Identity{
		User:    headerValue(r.Header, s.UserHeader),
		Phone:   headerValue(r.Header, s.PhoneHeader),
		Email:   headerValue(r.Header, s.EmailHeader),
		Session: headerValue(r.Header, s.SessionHeader),
	}
	if id.User == "" {
		return Identity{}, ErrNoIdentity
	}
	if len(id.User) > maxUserLen || len(id.Phone) > maxPhoneLen || len(id.Email) > maxEmailLen || len(id.Session) > maxUserLen {
		return Identity{}, errors.New("identity header too long")
	}
	return id, nil
}

// headerValue returns the single value of a canonical header name, or ""
// when it is absent or given more than once (ambiguous).
func headerValue(h http.Header, name string) string {
	if name == "" {
		return ""
	}
	v := h[name]
	if v == nil {
		v = h[textproto.CanonicalMIMEHeaderKey(name)]
	}
	if len(v) != 1 {
		return ""
	}
	return v[0]
}
