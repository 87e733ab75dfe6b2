package caddymodule

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
)

func init() {
	caddy.RegisterModule(OIDCIdentity{})
}

// OIDCIdentity reads the user from an OpenID Connect ID token, held in a
// cookie or sent as "Authorization: Bearer", verified with go-oidc:
// signature by a key of the issuer's JWKS (fetched at first use, cached,
// fetched again when a token names a new key), issuer, audience
// (client_id), expiry and signing algorithm; then the authorized party
// (azp) when the token has several audiences or names one, an iat not in
// the future, and a lifetime within max_token_age. The user is the
// token's "sub", the session its "sid" claim (else a SHA-256 of the
// token), the phone number its phone_number claim.
//
// A request that carries its token so that the app behind could read
// another one (in the header and the cookie, different; twice; under a
// cookie name some parsers fold into the configured one; another bearer
// token in Authorization; another token in the query) is refused with
// identity.ErrAmbiguousCredential, and over-long claims with
// identity.ErrBadIdentity: both 400.
//
// The provider is not contacted at provisioning: Caddy starts while it is
// down, and protected requests fail closed (503) until discovery works.
type OIDCIdentity struct {
	// Issuer is the provider's issuer URL, exactly as in the tokens'
	// "iss" claim. Required.
	Issuer string `json:"issuer,omitempty"`
	// ClientID is the audience the tokens must be issued for. Required.
	ClientID string `json:"client_id,omitempty"`
	// Cookie is the name of the cookie holding the ID token.
	Cookie string `json:"cookie,omitempty"`
	// Header is the header holding the ID token (Authorization: Bearer
	// scheme). Default, when no cookie is given either: Authorization
	Header string `json:"header,omitempty"`
	// PhoneClaim names the phone number claim. Default: phone_number
	PhoneClaim string `json:"phone_claim,omitempty"`
	// PhoneVerifiedClaim names the claim saying the number is verified.
	// Default: phone_number_verified
	PhoneVerifiedClaim string `json:"phone_verified_claim,omitempty"`
	// RequireVerifiedPhone refuses, with a page saying so, tokens whose
	// number the provider has not verified.
	RequireVerifiedPhone bool `json:"require_verified_phone,omitempty"`
	// EmailClaim names the e-mail claim. Default: email
	EmailClaim string `json:"email_claim,omitempty"`
	// SessionClaim names the login session claim. Default: sid
	SessionClaim string `json:"session_claim,omitempty"`
	// Algorithms limits the accepted signing algorithms. Default: those
	// the issuer advertises, else RS256. Never none or HS*.
	Algorithms []string `json:"algorithms,omitempty"`
	// LoginPage is where browsers without a valid token are sent;
	// {return} is replaced by the escaped path and query to come back
	// to. Default: none (401).
	LoginPage string `json:"login_url,omitempty"`
	// MaxTokenAge refuses tokens valid for longer than this: exp more
	// than this after iat, or after now. Default: 24h; at most 720h.
	MaxTokenAge caddy.Duration `json:"max_token_age,omitempty"`
	// Timeout bounds each request to the provider. Default: 10s
	Timeout caddy.Duration `json:"timeout,omitempty"`

	source *identity.OIDC
}

// CaddyModule returns the Caddy module information.
func (OIDCIdentity) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.stepup.identity.oidc",
		New: func() caddy.Module { return new(OIDCIdentity) },
	}
}

// Provision resolves placeholders and checks the configuration. It does
// not contact the provider.
func (o *OIDCIdentity) Provision(ctx caddy.Context) error {
	repl := caddy.NewReplacer()
	issuer, err := requiredPlaceholderValue(repl, "issuer", o.Issuer, true)
	if err != nil {
		return err
	}
	clientID, err := requiredPlaceholderValue(repl, "client_id", o.ClientID, true)
	if err != nil {
		return err
	}
	loginURL := repl.ReplaceKnown(o.LoginPage, "")
	src, err := identity.NewOIDC(identity.OIDCConfig{
		Issuer:               issuer,
		ClientID:             clientID,
		Cookie:               repl.ReplaceKnown(o.Cookie, ""),
		Header:               repl.ReplaceKnown(o.Header, ""),
		PhoneClaim:           o.PhoneClaim,
		PhoneVerifiedClaim:   o.PhoneVerifiedClaim,
		RequireVerifiedPhone: o.RequireVerifiedPhone,
		EmailClaim:           o.EmailClaim,
		SessionClaim:         o.SessionClaim,
		Algorithms:           o.Algorithms,
		LoginURL:             loginURL,
		MaxTokenAge:          time.Duration(o.MaxTokenAge),
		Timeout:              time.Duration(o.Timeout),
		Context:              ctx,
		Logger:               ctx.Logger(),
	})
	if err != nil {
		return fmt.Errorf("identity %v", err)
	}
	o.source = src
	return nil
}

// requiredPlaceholderValue replaces the known placeholders of a required
// value and refuses one left empty. With strict, a value still holding a
// placeholder afterwards is refused too (a typo in an {env.*} name).
func requiredPlaceholderValue(repl *caddy.Replacer, name, v string, strict bool) (string, error) {
	out := repl.ReplaceKnown(v, "")
	if out == "" {
		if v != "" {
			return "", fmt.Errorf("identity: %s %q is empty after placeholder replacement (is its environment variable set?)", name, v)
		}
		return "", fmt.Errorf("identity: %s is required", name)
	}
	if strict && strings.Contains(out, "{") && strings.Contains(out, "}") {
		return "", fmt.Errorf("identity: %s %q holds a placeholder that could not be resolved", name, v)
	}
	return out, nil
}

// Cleanup drops the source's idle connections. It runs after a failed
// Provision too.
func (o *OIDCIdentity) Cleanup() error {
	if o.source != nil {
		return o.source.Close()
	}
	return nil
}

// Identify implements identity.Source.
func (o *OIDCIdentity) Identify(r *http.Request) (identity.Identity, error) {
	return o.source.Identify(r)
}

// LoginURL implements identity.LoginRedirector.
func (o *OIDCIdentity) LoginURL(r *http.Request) string {
	return o.source.LoginURL(r)
}

// UnmarshalCaddyfile sets up the source from Caddyfile tokens. Syntax:
//
//	identity oidc {
//		issuer     <url>
//		client_id  <id>
//		[cookie    <name>]
//		[header    <name>]
//		[phone_claim          <claim>]
//		[phone_verified_claim <claim>]
//		[require_verified_phone]
//		[email_claim   <claim>]
//		[session_claim <claim>]
//		[algorithms    <alg...>]
//		[login_url     <url>]
//		[max_token_age <duration>]
//		[timeout       <duration>]
//	}
//
// Without cookie and header, the token is read from Authorization:
// Bearer. With both, either may hold it, and when both do they must hold
// the same token. {return} in login_url is replaced by the escaped path
// and query to come back to.
func (o *OIDCIdentity) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // "oidc"
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		if seen[key] {
			return d.Errf("identity oidc: %s already set", key)
		}
		seen[key] = true
		var err error
		switch key {
		case "issuer":
			if o.Issuer, err = singleArg(d); err == nil && !strings.Contains(o.Issuer, "{") {
				if u, perr := url.Parse(o.Issuer); perr != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
					return d.Errf("identity oidc: issuer %q is not an http(s) URL", o.Issuer)
				}
			}
		case "client_id":
			o.ClientID, err = singleArg(d)
		case "cookie":
			o.Cookie, err = singleArg(d)
		case "header":
			o.Header, err = singleArg(d)
		case "phone_claim":
			o.PhoneClaim, err = singleArg(d)
		case "phone_verified_claim":
			o.PhoneVerifiedClaim, err = singleArg(d)
		case "require_verified_phone":
			if d.NextArg() {
				return d.ArgErr()
			}
			o.RequireVerifiedPhone = true
		case "email_claim":
			o.EmailClaim, err = singleArg(d)
		case "session_claim":
			o.SessionClaim, err = singleArg(d)
		case "algorithms":
			o.Algorithms = d.RemainingArgs()
			if len(o.Algorithms) == 0 {
				return d.ArgErr()
			}
			for _, a := range o.Algorithms {
				if !slices.Contains(identity.Algorithms, a) {
					return d.Errf("identity oidc: algorithm %q not allowed (use %s)", a, strings.Join(identity.Algorithms, ", "))
				}
			}
		case "login_url":
			o.LoginPage, err = singleArg(d)
		case "max_token_age":
			o.MaxTokenAge, err = durationArg(d, time.Minute, identity.MaxMaxTokenAge)
		case "timeout":
			o.Timeout, err = durationArg(d, 100*time.Millisecond, time.Minute)
		default:
			return d.Errf("unrecognized identity oidc option '%s'", key)
		}
		if err != nil {
			return err
		}
	}
	if o.Issuer == "" || o.ClientID == "" {
		return d.Err("identity oidc needs 'issuer' and 'client_id'")
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner        = (*OIDCIdentity)(nil)
	_ caddy.CleanerUpper       = (*OIDCIdentity)(nil)
	_ caddyfile.Unmarshaler    = (*OIDCIdentity)(nil)
	_ identity.Source          = (*OIDCIdentity)(nil)
	_ identity.LoginRedirector = (*OIDCIdentity)(nil)
)

// HeaderNames implements identity.HeaderNamer.
func (o *OIDCIdentity) HeaderNames() []string {
	if o.source == nil {
		return nil
	}
	return o.source.HeaderNames()
}
