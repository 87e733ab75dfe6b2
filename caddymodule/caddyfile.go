package caddymodule

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("stepup", parseCaddyfile)
	// After authentication (basic_auth, forward_auth) has said who the user
	// is, before anything that answers or proxies the request.
	httpcaddyfile.RegisterDirectiveOrder("stepup", httpcaddyfile.After, "forward_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var s Handler
	err := s.UnmarshalCaddyfile(h.Dispenser)
	return &s, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	stepup {
//		redis [<url>] [{
//			url           <url>
//			sentinel {
//				master   <name>
//				addrs    <host:port...>
//				[username <user>]
//				[password <password>]
//			}
//			cluster {
//				addrs <host:port...>
//			}
//			username      <acl user>
//			password      <password>
//			db            <n>
//			tls {
//				[ca          <file>]
//				[cert        <file>]
//				[key         <file>]
//				[server_name <name>]
//			}
//			pool_size     <n>
//			dial_timeout  <duration>
//			read_timeout  <duration>
//			write_timeout <duration>
//			key_prefix    <prefix>
//		}]
//		secret <secret>
//		previous_secrets <secret...>
//		path_prefix <path>
//
//		limits {
//			per_user    <count>/<period>|off
//			per_ip      <count>/<period>|off
//			per_number  <count>/<period>|off
//			per_country <region|calling code|*> <count>/<period>
//			global      <count>/<period>|off
//		}
//
//		identity header {
//			user    <header>
//			phone   <header>
//			[email   <header>]
//			[session <header>]
//		}
//		sender <module> [<args...>] [{
//			...
//		}]
//
//		code_length    <digits>
//		code_ttl       <duration>
//		max_attempts   <n>
//		resend_after   <duration>
//		max_sends      <n>
//		max_failures   <n>
//		failure_window <duration>
//		default_region <ISO 3166 code>
//		allow_countries <regions...>
//		deny_countries  <regions...>
//		allow_number_types <types...>
//		site_name      <name>
//		message        <template>
//		send_timeout   <duration>
//		max_body       <size>
//		audit_stream   <key> [maxlen <n>]
//		assertion {
//			[header   <name>]
//			[ttl      <duration>]
//			[alg      HS256|EdDSA]
//			key       <secret or base64 Ed25519 seed> | key_file <PEM file>
//			[issuer   <iss>]
//			[audience <aud>]
//		}
//		page {
//			[title       <shop name>]
//			[logo        <path|data:image URI>]
//			[brand_color <rrggbb|"#rrggbb">]
//			[support_url <url>]
//			[template    <file>]
//			[locale      <tag>]
//		}
//		headers {
//			policy      <header>
//			user        <header>
//			verified_at <header>
//		}
//
//		protect <name> {
//			match {
//				<matchers...>
//			}
//			mode      session|transaction|monitor
//			grant_ttl <duration>
//			describe  <template>
//		}
//	}
//
// Senders are tried in the order given. Policies are checked in the
// order given; the first that matches a request applies.
func (s *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "redis":
			if err := s.parseRedis(d); err != nil {
				return err
			}
		case "secret":
			v, err := singleArg(d)
			if err != nil {
				return err
			}
			if !strings.Contains(v, "{") && len(v) < stepup.MinSecretLen {
				return d.Errf("secret is %d bytes, need at least %d (use a placeholder such as {env.STEPUP_SECRET})", len(v), stepup.MinSecretLen)
			}
			s.Secret = v
		case "previous_secrets":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			for _, v := range args {
				if !strings.Contains(v, "{") && len(v) < stepup.MinSecretLen {
					return d.Errf("previous secret is %d bytes, need at least %d", len(v), stepup.MinSecretLen)
				}
			}
			s.PreviousSecrets = append(s.PreviousSecrets, args...)
		case "limits":
			if err := s.parseLimits(d); err != nil {
				return err
			}
		case "path_prefix":
			v, err := singleArg(d)
			if err != nil {
				return err
			}
			if !strings.HasPrefix(v, "/") || strings.HasSuffix(v, "/") || len(v) < 2 {
				return d.Errf("path_prefix %q must start with '/' and not end with '/'", v)
			}
			s.PathPrefix = v
		case "identity":
			if s.IdentityRaw != nil {
				return d.Err("identity already set")
			}
			raw, err := guestModule(d, "http.stepup.identity", "source")
			if err != nil {
				return err
			}
			s.IdentityRaw = raw
		case "sender":
			raw, err := guestModule(d, "http.stepup.senders", "sender")
			if err != nil {
				return err
			}
			s.SendersRaw = append(s.SendersRaw, raw)
		case "code_length":
			n, err := intArg(d, stepup.MinCodeLength, stepup.MaxCodeLength)
			if err != nil {
				return err
			}
			s.CodeLength = n
		case "code_ttl":
			v, err := durationArg(d, 30*time.Second, stepup.MaxCodeTTL)
			if err != nil {
				return err
			}
			s.CodeTTL = v
		case "max_attempts":
			n, err := intArg(d, 1, stepup.MaxMaxAttempts)
			if err != nil {
				return err
			}
			s.MaxAttempts = n
		case "resend_after":
			v, err := durationArg(d, time.Second, stepup.MaxCodeTTL)
			if err != nil {
				return err
			}
			s.ResendAfter = v
		case "max_sends":
			n, err := intArg(d, 1, 10)
			if err != nil {
				return err
			}
			s.MaxSends = n
		case "max_failures":
			n, err := intArg(d, 1, stepup.MaxMaxFailures)
			if err != nil {
				return err
			}
			s.MaxFailures = n
		case "failure_window":
			v, err := durationArg(d, time.Minute, 30*24*time.Hour)
			if err != nil {
				return err
			}
			s.FailureWindow = v
		case "allow_countries", "deny_countries":
			name := d.Val()
			args := d.RemainingArgs()
			regions, err := sender.ParseRegions(args)
			if err != nil || len(args) == 0 {
				if err == nil {
					return d.ArgErr()
				}
				return d.Errf("%s: %v", name, err)
			}
			if name == "allow_countries" {
				s.AllowCountries = append(s.AllowCountries, regions...)
			} else {
				s.DenyCountries = append(s.DenyCountries, regions...)
			}
		case "allow_number_types":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			for _, a := range args {
				if _, err := sender.ParseNumberType(a); err != nil {
					return d.Errf("allow_number_types: %v", err)
				}
			}
			s.AllowNumberTypes = append(s.AllowNumberTypes, args...)
		case "default_region":
			v, err := singleArg(d)
			if err != nil {
				return err
			}
			if len(v) != 2 {
				return d.Errf("default_region %q: want a two-letter region code such as IN or US", v)
			}
			s.DefaultRegion = strings.ToUpper(v)
		case "site_name":
			v, err := singleArg(d)
			if err != nil {
				return err
			}
			s.SiteName = v
		case "message":
			v, err := singleArg(d)
			if err != nil {
				return err
			}
			if !strings.Contains(v, "{code}") {
				return d.Err("message must contain {code}")
			}
			s.Message = v
		case "send_timeout":
			v, err := durationArg(d, time.Second, 2*time.Minute)
			if err != nil {
				return err
			}
			s.SendTimeout = v
		case "headers":
			if err := s.parseHeaders(d); err != nil {
				return err
			}
		case "page":
			if err := s.parsePage(d); err != nil {
				return err
			}
		case "assertion":
			if d.NextArg() {
				return d.ArgErr()
			}
			a := &AssertionConfig{}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				opt := d.Val()
				var err error
				switch opt {
				case "header":
					a.Header, err = singleArg(d)
				case "ttl":
					a.TTL, err = durationArg(d, time.Second, time.Hour)
				case "alg":
					a.Alg, err = singleArg(d)
					if err == nil && a.Alg != "HS256" && a.Alg != "EdDSA" {
						err = d.Errf("assertion alg %q: want HS256 or EdDSA", a.Alg)
					}
				case "key":
					a.Key, err = singleArg(d)
				case "key_file":
					a.KeyFile, err = singleArg(d)
				case "issuer":
					a.Issuer, err = singleArg(d)
				case "audience":
					a.Audience, err = singleArg(d)
				default:
					err = d.Errf("unrecognized assertion option '%s'", opt)
				}
				if err != nil {
					return err
				}
			}
			if a.Key == "" && a.KeyFile == "" {
				return d.Err("assertion needs a key (HS256 secret or EdDSA seed) or a key_file (Ed25519 PEM)")
			}
			s.Assertion = a
		case "audit_stream":
			args := d.RemainingArgs()
			if len(args) != 1 && !(len(args) == 3 && args[1] == "maxlen") {
				return d.Err("audit_stream <key> [maxlen <n>]")
			}
			s.AuditStream = args[0]
			if len(args) == 3 {
				n, err := strconv.ParseInt(args[2], 10, 64)
				if err != nil || n < 100 {
					return d.Errf("audit_stream maxlen %q: want a number of at least 100", args[2])
				}
				s.AuditMaxLen = n
			}
		case "max_body":
			v, err := singleArg(d)
			if err != nil {
				return err
			}
			n, err := humanize.ParseBytes(v)
			if err != nil {
				return d.Errf("max_body: %v", err)
			}
			if n < 1 || n > uint64(stepup.MaxMaxBody) {
				return d.Errf("max_body %s out of range (1B to %s)", v, humanize.IBytes(uint64(stepup.MaxMaxBody)))
			}
			s.MaxBody = int64(n)
		case "protect":
			p, err := parsePolicy(d)
			if err != nil {
				return err
			}
			for _, q := range s.Policies {
				if q.Name == p.Name {
					return d.Errf("policy %q defined twice", p.Name)
				}
			}
			s.Policies = append(s.Policies, p)
		default:
			return d.Errf("unrecognized subdirective '%s'", d.Val())
		}
	}
	if s.IdentityRaw == nil {
		return d.Err("stepup needs an identity source (identity header|oidc|cookie {...})")
	}
	if len(s.SendersRaw) == 0 {
		return d.Err("stepup needs at least one sender (sender webhook <url>, or sender log for development)")
	}
	return nil
}

func (s *Handler) parseRedis(d *caddyfile.Dispenser) error {
	if s.Redis != nil {
		return d.Err("redis already set")
	}
	r := &RedisConfig{}
	s.Redis = r
	if d.NextArg() {
		r.URL = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		var err error
		switch opt {
		case "url":
			r.URL, err = singleArg(d)
		case "key_prefix":
			r.KeyPrefix, err = singleArg(d)
		case "username":
			r.Username, err = singleArg(d)
		case "password":
			r.Password, err = singleArg(d)
		case "db":
			r.DB, err = intArg(d, 0, 1<<16)
		case "pool_size":
			r.PoolSize, err = intArg(d, 1, 10000)
		case "dial_timeout":
			r.DialTimeout, err = durationArg(d, 10*time.Millisecond, time.Minute)
		case "read_timeout":
			r.ReadTimeout, err = durationArg(d, 10*time.Millisecond, time.Minute)
		case "write_timeout":
			r.WriteTimeout, err = durationArg(d, 10*time.Millisecond, time.Minute)
		case "sentinel":
			r.Sentinel = &SentinelConfig{}
			err = redisSubBlock(d, func(key string, args []string) error {
				switch key {
				case "master":
					r.Sentinel.Master = args[0]
				case "addrs":
					r.Sentinel.Addrs = append(r.Sentinel.Addrs, args...)
					return nil
				case "username":
					r.Sentinel.Username = args[0]
				case "password":
					r.Sentinel.Password = args[0]
				default:
					return d.Errf("unrecognized sentinel option '%s'", key)
				}
				if len(args) != 1 {
					return d.ArgErr()
				}
				return nil
			})
		case "cluster":
			r.Cluster = &ClusterConfig{}
			err = redisSubBlock(d, func(key string, args []string) error {
				if key != "addrs" {
					return d.Errf("unrecognized cluster option '%s'", key)
				}
				r.Cluster.Addrs = append(r.Cluster.Addrs, args...)
				return nil
			})
		case "tls":
			r.TLS = &RedisTLS{}
			err = redisSubBlock(d, func(key string, args []string) error {
				if len(args) != 1 {
					return d.ArgErr()
				}
				switch key {
				case "ca":
					r.TLS.CA = args[0]
				case "cert":
					r.TLS.Cert = args[0]
				case "key":
					r.TLS.Key = args[0]
				case "server_name":
					r.TLS.ServerName = args[0]
				default:
					return d.Errf("unrecognized tls option '%s'", key)
				}
				return nil
			})
		default:
			return d.Errf("unrecognized redis option '%s'", opt)
		}
		if err != nil {
			return err
		}
	}
	modes := 0
	for _, set := range []bool{r.URL != "", r.Sentinel != nil, r.Cluster != nil} {
		if set {
			modes++
		}
	}
	switch {
	case modes == 0:
		return d.Err("redis needs a URL (redis://127.0.0.1:6379/0), a sentinel block or a cluster block")
	case modes > 1:
		return d.Err("redis takes one of a URL, a sentinel block and a cluster block")
	case r.Sentinel != nil && (r.Sentinel.Master == "" || len(r.Sentinel.Addrs) == 0):
		return d.Err("redis sentinel needs master and addrs")
	case r.Cluster != nil && len(r.Cluster.Addrs) == 0:
		return d.Err("redis cluster needs addrs")
	case r.Cluster != nil && r.DB != 0:
		return d.Err("redis cluster has no databases: remove db")
	case r.TLS != nil && (r.TLS.Cert == "") != (r.TLS.Key == ""):
		return d.Err("redis tls: cert and key go together")
	}
	if r.URL != "" && !strings.Contains(r.URL, "{") && !strings.HasPrefix(r.URL, "redis://") &&
		!strings.HasPrefix(r.URL, "rediss://") && !strings.HasPrefix(r.URL, "unix://") {
		return d.Errf("redis URL %q: want redis://, rediss:// or unix://", r.URL)
	}
	return nil
}

// redisSubBlock parses a block of "key args..." lines.
func redisSubBlock(d *caddyfile.Dispenser, set func(key string, args []string) error) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.ArgErr()
		}
		if err := set(key, args); err != nil {
			return err
		}
	}
	return nil
}

func (s *Handler) parseLimits(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	if s.Limits == nil {
		s.Limits = &LimitsConfig{}
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		args := d.RemainingArgs()
		want := 1
		if key == "per_country" {
			want = 2
		}
		if len(args) != want {
			return d.ArgErr()
		}
		v := args[want-1]
		if _, err := stepup.ParseLimit(v); err != nil {
			return d.Err(err.Error())
		}
		switch key {
		case "per_user":
			s.Limits.PerUser = v
		case "per_ip":
			s.Limits.PerIP = v
		case "per_number":
			s.Limits.PerNumber = v
		case "global":
			s.Limits.Global = v
		case "per_country":
			if _, err := stepup.ParseCountry(args[0]); err != nil {
				return d.Err(err.Error())
			}
			if s.Limits.PerCountry == nil {
				s.Limits.PerCountry = map[string]string{}
			}
			s.Limits.PerCountry[strings.ToUpper(args[0])] = v
		default:
			return d.Errf("unrecognized limits option '%s'", key)
		}
	}
	return nil
}

func (s *Handler) parsePage(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	if s.Page != nil {
		return d.Err("page already set")
	}
	s.Page = &stepup.PageConfig{}
	err := keyValues(d, func(key, v string) error {
		switch key {
		case "title":
			s.Page.Title = v
		case "logo":
			s.Page.Logo = v
		case "brand_color":
			s.Page.BrandColor = v
		case "support_url":
			s.Page.SupportURL = v
		case "template":
			s.Page.Template = v
		case "locale":
			s.Page.Locale = v
		default:
			return d.Errf("unrecognized page option '%s'", key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.Page.Validate(); err != nil {
		return d.Err(err.Error())
	}
	return nil
}

func (s *Handler) parseHeaders(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	s.Headers = &HeadersConfig{}
	return keyValues(d, func(key, v string) error {
		switch key {
		case "policy":
			s.Headers.Policy = v
		case "user":
			s.Headers.User = v
		case "verified_at":
			s.Headers.VerifiedAt = v
		default:
			return d.Errf("unrecognized headers option '%s'", key)
		}
		return nil
	})
}

func parsePolicy(d *caddyfile.Dispenser) (*Policy, error) {
	if !d.NextArg() {
		return nil, d.Err("protect needs a policy name")
	}
	p := &Policy{Name: d.Val()}
	if err := (&stepup.Policy{Name: p.Name}).Validate(); err != nil {
		return nil, d.Err(err.Error())
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "match":
			if p.MatcherSetsRaw != nil {
				return nil, d.Errf("policy %s: match already set", p.Name)
			}
			set, err := caddyhttp.ParseCaddyfileNestedMatcherSet(d)
			if err != nil {
				return nil, err
			}
			p.MatcherSetsRaw = caddyhttp.RawMatcherSets{set}
		case "mode":
			v, err := singleArg(d)
			if err != nil {
				return nil, err
			}
			if _, err := stepup.ParseMode(v); err != nil {
				return nil, d.Err(err.Error())
			}
			p.Mode = v
		case "grant_ttl":
			v, err := durationArg(d, time.Second, stepup.MaxGrantTTL)
			if err != nil {
				return nil, err
			}
			p.GrantTTL = v
		case "describe":
			v, err := singleArg(d)
			if err != nil {
				return nil, err
			}
			if err := (&stepup.Policy{Name: p.Name, Describe: v}).Validate(); err != nil {
				return nil, d.Err(err.Error())
			}
			p.Describe = v
		default:
			return nil, d.Errf("unrecognized protect option '%s'", d.Val())
		}
	}
	return p, nil
}

// guestModule parses "NAME [args] [{...}]" into the JSON of module
// namespace.NAME with its name under inlineKey.
func guestModule(d *caddyfile.Dispenser, namespace, inlineKey string) (json.RawMessage, error) {
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	name := d.Val()
	unm, err := caddyfile.UnmarshalModule(d, namespace+"."+name)
	if err != nil {
		return nil, err
	}
	var warnings []caddyconfig.Warning
	raw := caddyconfig.JSONModuleObject(unm, inlineKey, name, &warnings)
	return raw, nil
}

// keyValues parses a block of "key value" lines, calling set for each;
// set returns an error for an unknown key.
func keyValues(d *caddyfile.Dispenser, set func(key, value string) error) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		v, err := singleArg(d)
		if err != nil {
			return err
		}
		if err := set(key, v); err != nil {
			return err
		}
	}
	return nil
}

func singleArg(d *caddyfile.Dispenser) (string, error) {
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.ArgErr()
	}
	return v, nil
}

func intArg(d *caddyfile.Dispenser, lo, hi int) (int, error) {
	name := d.Val()
	v, err := singleArg(d)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, d.Errf("%s: %q is not a number", name, v)
	}
	if n < lo || n > hi {
		return 0, d.Errf("%s %d out of range (%d to %d)", name, n, lo, hi)
	}
	return n, nil
}

func durationArg(d *caddyfile.Dispenser, lo, hi time.Duration) (caddy.Duration, error) {
	name := d.Val()
	v, err := singleArg(d)
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil {
		return 0, d.Errf("%s: %v", name, err)
	}
	if dur < lo || dur > hi {
		return 0, d.Errf("%s %s out of range (%s to %s)", name, dur, lo, hi)
	}
	return caddy.Duration(dur), nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
