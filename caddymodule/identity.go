package caddymodule

import (
	"errors"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
)

func init() {
	caddy.RegisterModule(HeaderIdentity{})
}

// HeaderIdentity reads the user and phone number from request headers set
// by a trusted handler that runs before stepup, such as forward_auth with
// copy_headers. Clients must never be able to set these headers
// themselves: the handler in front has to overwrite or delete them on
// every request (forward_auth's copy_headers does).
//
// A header sent twice, or also under a name that CGI-style gateways
// (php_fastcgi) fold into the same variable, such as X_Remote_User, is
// refused with identity.ErrAmbiguousCredential; a value over its bound
// (user 256 bytes, phone 32) with identity.ErrBadIdentity: both 400.
type HeaderIdentity struct {
	// User is the header holding the user id. Required.
	User string `json:"user,omitempty"`
	// Phone is the header holding the phone number (E.164). Required.
	Phone string `json:"phone,omitempty"`
	// Email is the header holding the e-mail address. Optional.
	Email string `json:"email,omitempty"`
	// Session is the header holding a login session id. Optional; without
	// it stepup keeps its own browser-session cookie.
	Session string `json:"session,omitempty"`

	source identity.Header
}

// CaddyModule returns the Caddy module information.
func (HeaderIdentity) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.stepup.identity.header",
		New: func() caddy.Module { return new(HeaderIdentity) },
	}
}

// Provision checks the configuration.
func (h *HeaderIdentity) Provision(caddy.Context) error {
	if h.User == "" || h.Phone == "" {
		return errors.New("identity header: both user and phone headers are required")
	}
	h.source = identity.Header{
		UserHeader:    http.CanonicalHeaderKey(h.User),
		PhoneHeader:   http.CanonicalHeaderKey(h.Phone),
		EmailHeader:   http.CanonicalHeaderKey(h.Email),
		SessionHeader: http.CanonicalHeaderKey(h.Session),
	}
	return nil
}

// Identify implements identity.Source.
func (h *HeaderIdentity) Identify(r *http.Request) (identity.Identity, error) {
	return h.source.Identify(r)
}

// HeaderNames implements identity.HeaderNamer: the engine keeps clients
// from sending these headers as trailers.
func (h *HeaderIdentity) HeaderNames() []string { return h.source.HeaderNames() }

// UnmarshalCaddyfile sets up the source from Caddyfile tokens. Syntax:
//
//	identity header {
//		user    <header>
//		phone   <header>
//		[email   <header>]
//		[session <header>]
//	}
func (h *HeaderIdentity) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // "header"
	if d.NextArg() {
		return d.ArgErr()
	}
	err := keyValues(d, func(key, v string) error {
		switch key {
		case "user":
			h.User = v
		case "phone":
			h.Phone = v
		case "email":
			h.Email = v
		case "session":
			h.Session = v
		default:
			return d.Errf("unrecognized identity header option '%s'", key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if h.User == "" || h.Phone == "" {
		return d.Err("identity header needs both 'user' and 'phone' headers")
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner     = (*HeaderIdentity)(nil)
	_ caddyfile.Unmarshaler = (*HeaderIdentity)(nil)
	_ identity.Source       = (*HeaderIdentity)(nil)
	_ identity.HeaderNamer  = (*HeaderIdentity)(nil)
)
