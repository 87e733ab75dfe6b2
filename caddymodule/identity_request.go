package caddymodule

import (
	"errors"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/redis/go-redis/v9"

	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
)

func init() {
	caddy.RegisterModule(RequestIdentity{})
}

// RequestIdentity takes the identity from the protected request itself,
// for the two places shops send codes to people who are not logged in:
//
//   - sign-up: `phone {form.phone}` is the number the person typed; the
//     code proves they own it before the sign-up form reaches the app.
//   - password reset: `user {form.email}` names the account and
//     `phone_lookup redis "KEY {id}"` finds its number. An unknown
//     account is answered exactly like a known one, and nothing is sent,
//     so that nobody can learn which accounts exist.
//
// Because whoever sends the request chooses the destination, the handler
// refuses this source unless its per_ip and per_number limits are on
// (they are by default), and refuses a describe that shows text from the
// request (anyone could have it sent to any number). The field is read
// strictly: a request in which the app could read another number or
// account (the field twice, in query and body, ...) gets 400, and a body
// over the handler's max_body 413.
type RequestIdentity struct {
	// Phone is the typed number: {form.NAME}, {json.PATH} or {query.NAME}.
	Phone string `json:"phone,omitempty"`
	// User names the account, in the same placeholder form.
	User string `json:"user,omitempty"`
	// PhoneLookup finds the account's number (Redis only).
	PhoneLookup *PhoneLookup `json:"phone_lookup,omitempty"`
	// DefaultRegion parses typed national numbers ("IN").
	DefaultRegion string `json:"default_region,omitempty"`

	source *identity.Request
	lookup *identity.RedisLookup
}

// CaddyModule returns the Caddy module information.
func (RequestIdentity) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.stepup.identity.request",
		New: func() caddy.Module { return new(RequestIdentity) },
	}
}

// Provision builds the source.
func (s *RequestIdentity) Provision(caddy.Context) error {
	cfg := identity.RequestConfig{Phone: s.Phone, User: s.User, DefaultRegion: strings.ToUpper(s.DefaultRegion)}
	if pl := s.PhoneLookup; pl != nil {
		if pl.HTTP != "" || pl.Redis == "" {
			return errors.New("identity request: phone_lookup must be redis <key with {id}>")
		}
		key, err := requiredPlaceholderValue(caddy.NewReplacer(), "phone_lookup redis key", pl.Redis, false)
		if err != nil {
			return err
		}
		s.lookup = &identity.RedisLookup{Key: key, Field: pl.Field, EmailField: pl.EmailField}
		if err := s.lookup.Validate(); err != nil {
			return err
		}
		cfg.Lookup = s.lookup
	}
	src, err := identity.NewRequest(cfg)
	if err != nil {
		return err
	}
	s.source = src
	return nil
}

// SetRedis gives the lookup the handler's Redis client.
func (s *RequestIdentity) SetRedis(client redis.UniversalClient) {
	if s.lookup != nil {
		s.lookup.SetClient(client)
	}
}

// SetMaxBody bounds the body the source reads to the handler's max_body
// (0: the default), so that one cap, and one 413, holds for the whole
// request.
func (s *RequestIdentity) SetMaxBody(n int64) {
	if s.source != nil {
		s.source.SetMaxBody(n)
	}
}

// NeedsRedis reports whether a Redis lookup is configured.
func (s *RequestIdentity) NeedsRedis() bool { return s.PhoneLookup != nil }

// Identify implements identity.Source.
func (s *RequestIdentity) Identify(r *http.Request) (identity.Identity, error) {
	return s.source.Identify(r)
}

// IdentityFromRequest implements identity.RequestIdentity.
func (s *RequestIdentity) IdentityFromRequest() bool { return true }

// Elsewhere refuses a request that carries the source's field in a cookie
// or a header (identity.Request.Elsewhere): the engine checks it on a
// replay.
func (s *RequestIdentity) Elsewhere(r *http.Request) error { return s.source.Elsewhere(r) }

// UnmarshalCaddyfile sets up the source from Caddyfile tokens. Syntax:
//
//	identity request {
//		phone <placeholder>                        # sign-up
//		# or
//		user <placeholder>                         # password reset
//		phone_lookup redis <key with {id}> [field <field>]
//		[default_region <region>]
//	}
func (s *RequestIdentity) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // "request"
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "phone", "user", "default_region":
			v, err := singleArg(d)
			if err != nil {
				return err
			}
			switch opt {
			case "phone":
				s.Phone = requestFieldPlaceholders(v)
			case "user":
				s.User = requestFieldPlaceholders(v)
			default:
				s.DefaultRegion = v
			}
		case "phone_lookup":
			args := d.RemainingArgs()
			if len(args) < 2 || args[0] != "redis" {
				return d.Err("identity request: phone_lookup redis <key with {id}> [field <field>]")
			}
			if !strings.Contains(args[1], identity.IDPlaceholder) {
				return d.Errf("phone_lookup redis: key %q must contain %s (the account name from the form)", args[1], identity.IDPlaceholder)
			}
			s.PhoneLookup = &PhoneLookup{Redis: args[1]}
			switch {
			case len(args) == 2:
			case len(args) == 4 && args[2] == "field":
				s.PhoneLookup.Field = args[3]
			default:
				return d.ArgErr()
			}
		default:
			return d.Errf("unrecognized identity request option '%s'", opt)
		}
	}
	if _, err := identity.NewRequest(identity.RequestConfig{Phone: s.Phone, User: s.User, Lookup: lookupIf(s.PhoneLookup)}); err != nil {
		return d.Err(err.Error())
	}
	return nil
}

// lookupIf stands for a configured lookup in the parse-time check.
func lookupIf(pl *PhoneLookup) *identity.RedisLookup {
	if pl == nil {
		return nil
	}
	return &identity.RedisLookup{}
}

// Interface guards
var (
	_ caddy.Provisioner        = (*RequestIdentity)(nil)
	_ caddyfile.Unmarshaler    = (*RequestIdentity)(nil)
	_ identity.Source          = (*RequestIdentity)(nil)
	_ identity.RequestIdentity = (*RequestIdentity)(nil)
)
