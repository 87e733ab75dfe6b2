package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/redis/go-redis/v9"

	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
)

func init() {
	caddy.RegisterModule(CookieIdentity{})
}

// Defaults of the cookie identity source.
const defaultHTTPLookupCache = 30 * time.Second

// CookieIdentity takes a legacy app's session cookie as the session and
// looks up the phone number of the account signed in with it: in Redis,
// in a key the app writes at login, or by asking the app over HTTP with
// the cookie forwarded. Only the SHA-256 of the cookie value is kept or
// logged; it is the identity's session.
//
// The user is the account id the lookup returns; a Redis lookup that
// returns only the phone number makes the user "phone:" + SHA-256 of the
// number, so that failure counts and lockouts follow the number.
//
// A Redis lookup uses the stepup handler's Redis client (its redis
// option), handed over with SetRedis; without one, protected requests
// fail closed with an error that says so.
//
// A request that carries the session cookie so that the app could read
// another session than stepup looked up (the cookie twice, also under a
// name some parsers fold into it such as phpsessid or PHP%53ESSID,
// quoted, or another id in the query or a ";name=" path parameter) is
// refused with identity.ErrAmbiguousCredential before any lookup; an
// account whose values are over their bounds with identity.ErrBadIdentity:
// both 400.
type CookieIdentity struct {
	// Name is the session cookie's name (PHPSESSID). Required.
	Name string `json:"name,omitempty"`
	// PhoneLookup says where the phone number is found. Required.
	PhoneLookup *PhoneLookup `json:"phone_lookup,omitempty"`
	// Cache keeps successful lookups this long. Failures are never
	// cached. Default: 30s for an HTTP lookup, none for Redis; a negative
	// value switches it off.
	Cache caddy.Duration `json:"cache,omitempty"`
	// Timeout bounds one lookup; beyond it the request fails closed.
	// Default: 2s
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// LoginPage is where browsers without a session are sent; {return} is
	// replaced by the escaped path and query to come back to. Default:
	// none (401).
	LoginPage string `json:"login_url,omitempty"`

	source *identity.Cookie
	lookup *identity.RedisLookup
	redis  redis.UniversalClient
}

// PhoneLookup is where a cookie source finds the account of a session:
// exactly one of Redis and HTTP.
type PhoneLookup struct {
	// Redis is the Redis key holding the account, with {id} standing
	// for the session cookie's value ("shop:session:{id}").
	Redis string `json:"redis,omitempty"`
	// Field is the hash field holding the phone number. Default: the key
	// is a string holding the number, or JSON {"user","phone","email"}.
	Field string `json:"field,omitempty"`
	// UserField is the hash field holding the account id.
	UserField string `json:"user_field,omitempty"`
	// EmailField is the hash field holding the e-mail address.
	EmailField string `json:"email_field,omitempty"`
	// HTTP is the URL of the app's endpoint answering
	// {"user":"...","phone":"+...","email":"..."} for the forwarded
	// session cookie, and 401 when nobody is signed in.
	HTTP string `json:"http,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (CookieIdentity) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.stepup.identity.cookie",
		New: func() caddy.Module { return new(CookieIdentity) },
	}
}

// Provision resolves placeholders and checks the configuration. It
// contacts neither Redis nor the app.
func (c *CookieIdentity) Provision(ctx caddy.Context) error {
	repl := caddy.NewReplacer()
	name, err := requiredPlaceholderValue(repl, "cookie name", c.Name, true)
	if err != nil {
		return err
	}
	pl := c.PhoneLookup
	if pl == nil || (pl.Redis == "") == (pl.HTTP == "") {
		return errors.New("identity cookie: one phone_lookup is required (redis <key> or http <url>)")
	}
	cfg := identity.CookieConfig{
		Name:     name,
		Timeout:  time.Duration(c.Timeout),
		LoginURL: repl.ReplaceKnown(c.LoginPage, ""),
		Logger:   ctx.Logger(),
	}
	var lookup *identity.RedisLookup
	cache := time.Duration(c.Cache)
	if pl.Redis != "" {
		key, err := requiredPlaceholderValue(repl, "phone_lookup redis key", pl.Redis, false)
		if err != nil {
			return err
		}
		lookup = &identity.RedisLookup{Key: key, Field: pl.Field, UserField: pl.UserField, EmailField: pl.EmailField}
		cfg.Lookup = lookup
	} else {
		if pl.Field != "" || pl.UserField != "" || pl.EmailField != "" {
			return errors.New("identity cookie: field, user_field and email_field are for phone_lookup redis")
		}
		u, err := requiredPlaceholderValue(repl, "phone_lookup http URL", pl.HTTP, true)
		if err != nil {
			return err
		}
		cfg.Lookup = &identity.HTTPLookup{URL: u}
		if cache == 0 {
			cache = defaultHTTPLookupCache
		}
	}
	if cache > 0 {
		cfg.Cache = cache
	}
	src, err := identity.NewCookie(cfg)
	if err != nil {
		return fmt.Errorf("identity %v", err)
	}
	c.source, c.lookup = src, lookup
	if lookup != nil && c.redis != nil {
		lookup.SetClient(c.redis)
	}
	return nil
}

// SetRedis gives a Redis lookup the stepup handler's shared client. The
// handler calls it after provisioning the source, when it has redis
// configured; without it a Redis lookup fails closed.
func (c *CookieIdentity) SetRedis(client redis.UniversalClient) {
	c.redis = client
	if c.lookup != nil {
		c.lookup.SetClient(client)
	}
}

// NeedsRedis reports whether the source looks phone numbers up in Redis,
// so that a handler without redis configured can refuse the config at
// provisioning instead of failing every protected request.
func (c *CookieIdentity) NeedsRedis() bool {
	return c.PhoneLookup != nil && c.PhoneLookup.Redis != ""
}

// Cleanup drops the source's idle connections. It runs after a failed
// Provision too.
func (c *CookieIdentity) Cleanup() error {
	if c.source != nil {
		return c.source.Close()
	}
	return nil
}

// Identify implements identity.Source.
func (c *CookieIdentity) Identify(r *http.Request) (identity.Identity, error) {
	return c.source.Identify(r)
}

// LoginURL implements identity.LoginRedirector.
func (c *CookieIdentity) LoginURL(r *http.Request) string {
	return c.source.LoginURL(r)
}

// UnmarshalCaddyfile sets up the source from Caddyfile tokens. Syntax:
//
//	identity cookie <name> {
//		phone_lookup redis <key with {id}> [field <field>]
//		phone_lookup http  <url>
//		[user_field  <field>]
//		[email_field <field>]
//		[cache       <duration>|off]
//		[timeout     <duration>]
//		[login_url   <url>]
//	}
//
// One phone_lookup is required. user_field and email_field name more
// fields of the Redis hash (with field).
func (c *CookieIdentity) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // "cookie"
	if !d.NextArg() {
		return d.Err("identity cookie needs the session cookie's name (identity cookie PHPSESSID {...})")
	}
	c.Name = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		if seen[key] {
			return d.Errf("identity cookie: %s already set", key)
		}
		seen[key] = true
		var err error
		switch key {
		case "phone_lookup":
			err = c.parseLookup(d)
		case "user_field", "email_field":
			var v string
			if v, err = singleArg(d); err == nil {
				if c.PhoneLookup == nil {
					c.PhoneLookup = &PhoneLookup{}
				}
				if key == "user_field" {
					c.PhoneLookup.UserField = v
				} else {
					c.PhoneLookup.EmailField = v
				}
			}
		case "cache":
			var v string
			if v, err = singleArg(d); err != nil {
				break
			}
			if v == "off" {
				c.Cache = -1
				break
			}
			dur, perr := caddy.ParseDuration(v)
			if perr != nil || dur < time.Second || dur > 5*time.Minute {
				return d.Errf("identity cookie: cache %q: want off or a duration from 1s to 5m", v)
			}
			c.Cache = caddy.Duration(dur)
		case "timeout":
			c.Timeout, err = durationArg(d, 100*time.Millisecond, 30*time.Second)
		case "login_url":
			c.LoginPage, err = singleArg(d)
		default:
			return d.Errf("unrecognized identity cookie option '%s'", key)
		}
		if err != nil {
			return err
		}
	}
	pl := c.PhoneLookup
	switch {
	case pl == nil || (pl.Redis == "" && pl.HTTP == ""):
		return d.Err("identity cookie needs a phone_lookup (redis <key> or http <url>)")
	case pl.Redis == "" && (pl.UserField != "" || pl.EmailField != ""):
		return d.Err("identity cookie: user_field and email_field are for phone_lookup redis")
	case pl.Redis != "" && pl.Field == "" && (pl.UserField != "" || pl.EmailField != ""):
		return d.Err("identity cookie: user_field and email_field need the phone's hash field (phone_lookup redis <key> field <field>)")
	}
	return nil
}

func (c *CookieIdentity) parseLookup(d *caddyfile.Dispenser) error {
	if c.PhoneLookup == nil {
		c.PhoneLookup = &PhoneLookup{}
	}
	args := d.RemainingArgs()
	if len(args) < 2 {
		return d.Err("phone_lookup needs a kind and a target: redis <key> [field <field>], or http <url>")
	}
	switch args[0] {
	case "redis":
		if !strings.Contains(args[1], identity.IDPlaceholder) {
			return d.Errf("phone_lookup redis: key %q must contain %s (the session cookie's value)", args[1], identity.IDPlaceholder)
		}
		c.PhoneLookup.Redis = args[1]
		switch {
		case len(args) == 2:
		case len(args) == 4 && args[2] == "field":
			c.PhoneLookup.Field = args[3]
		default:
			return d.Errf("phone_lookup redis: unexpected %q (want: phone_lookup redis <key> [field <field>])", strings.Join(args[2:], " "))
		}
	case "http":
		if len(args) != 2 {
			return d.ArgErr()
		}
		if !strings.Contains(args[1], "{") && !strings.HasPrefix(args[1], "http://") && !strings.HasPrefix(args[1], "https://") {
			return d.Errf("phone_lookup http: %q is not an http(s) URL", args[1])
		}
		c.PhoneLookup.HTTP = args[1]
	default:
		return d.Errf("unrecognized phone_lookup kind '%s' (want redis or http)", args[0])
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner        = (*CookieIdentity)(nil)
	_ caddy.CleanerUpper       = (*CookieIdentity)(nil)
	_ caddyfile.Unmarshaler    = (*CookieIdentity)(nil)
	_ identity.Source          = (*CookieIdentity)(nil)
	_ identity.LoginRedirector = (*CookieIdentity)(nil)
	_ interface {
		SetRedis(redis.UniversalClient)
	} = (*CookieIdentity)(nil)
)
