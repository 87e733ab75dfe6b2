package caddymodule

import (
	"encoding/json"
	"fmt"
	"regexp"
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
	"github.com/caddy-stepup/caddy-stepup/stepup/page"
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
//			wait_replicas <n>
//			wait_timeout  <duration>
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
//		pumping {
//			mode           monitor|enforce|off
//			window         <duration>
//			min_sends      <n>
//			min_conversion <percent>%
//			block_for      <duration>
//			safe           <prefix...>
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
//		allow_non_geographic
//		domain         <host name>
//		scope          <name>
//		allow_cross_site
//		api_grant_header
//		body_timeout   <duration>
//		request_failure_window <duration>
//		revocation_grace <duration>|off
//		site_name      <name>
//		message        <template>
//		send_timeout   <duration>
//		max_body       <size>
//		audit_stream   <key> [maxlen <n>]
//		audit_user     hmac|plain|none
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
//			[support_text <line>|off]
//			[home_url    <path|https URL>|off]
//		}
//		receipts {
//			public_url     <scheme://host[/path]>
//			[failover_after <duration>]
//		}
//		headers {
//			policy      <header>
//			user        <header>
//			verified_at <header>
//			method      <header>
//		}
//		passkeys {
//			rp_id         <host name>
//			[rp_name      <name>]
//			[origins      <origins...>]
//			[attestation  none|indirect|direct]
//			[max_per_user <n>]
//			[manage_window <duration>]
//		}
//
//		protect <name> {
//			match {
//				<matchers...>
//			}
//			mode      session|transaction|monitor
//			grant_ttl <duration>
//			describe  <template>
//			methods   <passkey|sms...>
//		}
//	}
//
// Senders are tried in the order given. Policies are checked in the
// order given; the first that matches a request applies.
//
// The parser only parses. Where it checks a value, so that `caddy adapt`
// points at the line, it calls the check Provision makes of the same
// option (the engine's stepup.Bound, sender.PhoneRules, ...), so that a
// Caddyfile and its JSON are refused with the same words.
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
			if !strings.Contains(v, "{") {
				if err := checkSecret("secret", v); err != nil {
					return wrap(d, err)
				}
			}
			s.Secret = v
		case "previous_secrets":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			for _, v := range args {
				s.PreviousSecrets = append(s.PreviousSecrets, v)
				if !strings.Contains(v, "{") {
					if err := checkSecret(fmt.Sprintf("previous_secrets %d", len(s.PreviousSecrets)), v); err != nil {
						return wrap(d, err)
					}
				}
			}
		case "limits":
			if err := s.parseLimits(d); err != nil {
				return err
			}
		case "pumping":
			if err := s.parsePumping(d); err != nil {
				return err
			}
		case "path_prefix":
			v, err := singleArg(d)
			if err != nil {
				return err
			}
			if err := stepup.CheckPathPrefix(v); err != nil {
				return wrap(d, err)
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
			n, err := boundedInt(d, stepup.CodeLengthBound)
			if err != nil {
				return err
			}
			s.CodeLength = n
		case "code_ttl":
			v, err := boundedDuration(d, stepup.CodeTTLBound)
			if err != nil {
				return err
			}
			s.CodeTTL = v
		case "max_attempts":
			n, err := boundedInt(d, stepup.MaxAttemptsBound)
			if err != nil {
				return err
			}
			s.MaxAttempts = n
		case "resend_after":
			v, err := boundedDuration(d, stepup.ResendAfterBound)
			if err != nil {
				return err
			}
			s.ResendAfter = v
		case "max_sends":
			n, err := boundedInt(d, stepup.MaxSendsBound)
			if err != nil {
				return err
			}
			s.MaxSends = n
		case "max_failures":
			n, err := boundedInt(d, stepup.MaxFailuresBound)
			if err != nil {
				return err
			}
			s.MaxFailures = n
		case "failure_window":
			v, err := boundedDuration(d, stepup.FailureWindowBound)
			if err != nil {
				return err
			}
			s.FailureWindow = v
		case "allow_countries", "deny_countries":
			name := d.Val()
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			if err := checkRegions(name, args); err != nil {
				return wrap(d, err)
			}
			rules := sender.PhoneRules{Allow: args}
			if name == "deny_countries" {
				rules = sender.PhoneRules{Deny: args}
			}
			if err := rules.Validate(); err != nil {
				return wrap(d, err)
			}
			regions, _ := sender.ParseRegions(args) // upper case, once each
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
			if _, err := numberTypes(args); err != nil {
				return wrap(d, err)
			}
			s.AllowNumberTypes = append(s.AllowNumberTypes, args...)
		case "allow_non_geographic":
			if d.NextArg() {
				return d.ArgErr()
			}
			s.AllowNonGeographic = true
		case "default_region":
			v, err := singleArg(d)
			if err != nil {
				return err
			}
			if err := checkRegion("default_region", v, false); err != nil {
				return wrap(d, err)
			}
			if err := stepup.CheckDefaultRegion(v); err != nil {
				return wrap(d, err)
			}
			s.DefaultRegion = strings.ToUpper(v)
		case "domain":
			v, err := singleArg(d)
			if err != nil {
				return err
			}
			s.Domain = v
		case "scope":
			v, err := singleArg(d)
			if err != nil {
				return err
			}
			s.Scope = v
		case "allow_cross_site":
			if d.NextArg() {
				return d.ArgErr()
			}
			s.AllowCrossSite = true
		case "api_grant_header":
			if d.NextArg() {
				return d.ArgErr()
			}
			s.APIGrantHeader = true
		case "body_timeout":
			v, err := boundedDuration(d, stepup.BodyTimeoutBound)
			if err != nil {
				return err
			}
			s.BodyTimeout = v
		case "request_failure_window":
			v, err := boundedDuration(d, stepup.RequestFailureWindowBound)
			if err != nil {
				return err
			}
			s.RequestFailureWindow = v
		case "revocation_grace":
			if d.NextArg() && d.Val() == "off" {
				if d.NextArg() {
					return d.ArgErr()
				}
				s.RevocationGrace = -1
				break
			}
			d.Prev()
			v, err := boundedDuration(d, stepup.RevocationGraceBound)
			if err != nil {
				return err
			}
			if v == 0 {
				v = -1 // 0s means none, as off does
			}
			s.RevocationGrace = v
		case "audit_user":
			v, err := singleArg(d)
			if err != nil {
				return err
			}
			if _, err := stepup.ParseAuditUser(v); err != nil {
				return wrap(d, err)
			}
			s.AuditUser = v
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
			if err := stepup.CheckMessage(v); err != nil {
				return wrap(d, err)
			}
			s.Message = v
		case "send_timeout":
			v, err := boundedDuration(d, stepup.SendTimeoutBound)
			if err != nil {
				return err
			}
			s.SendTimeout = v
		case "headers":
			if err := s.parseHeaders(d); err != nil {
				return err
			}
		case "passkeys":
			if err := s.parsePasskeys(d); err != nil {
				return err
			}
		case "receipts":
			if err := s.parseReceipts(d); err != nil {
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
					a.TTL, err = boundedDuration(d, stepup.AssertionTTLBound)
				case "alg":
					a.Alg, err = singleArg(d)
					if err == nil {
						err = wrap(d, checkAssertionAlg(a.Alg))
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
			if err := a.check(); err != nil {
				return wrap(d, err)
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
				if err != nil {
					return d.Errf("audit_stream maxlen %q is not a number", args[2])
				}
				if err := auditMaxLenBound.Check(n); err != nil {
					return wrap(d, err)
				}
				s.AuditMaxLen = n
			}
		case "max_body":
			v, err := singleArg(d)
			if err != nil {
				return err
			}
			n, err := humanize.ParseBytes(v)
			if err != nil || n > 1<<62 {
				return d.Errf("max_body %q is not a size (such as 1MiB or 512KB)", v)
			}
			if err := stepup.MaxBodyBound.Check(int64(n)); err != nil {
				return wrap(d, err)
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
		return wrap(d, errNoIdentity)
	}
	if len(s.SendersRaw) == 0 {
		return wrap(d, errNoSender)
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
			if r.KeyPrefix, err = singleArg(d); err == nil {
				err = wrap(d, checkKeyPrefix(r.KeyPrefix))
			}
		case "wait_replicas":
			r.WaitReplicas, err = boundedInt(d, redisWaitReplicasBound)
		case "wait_timeout":
			r.WaitTimeout, err = boundedDuration(d, redisWaitTimeoutBound)
		case "username":
			r.Username, err = singleArg(d)
		case "password":
			r.Password, err = singleArg(d)
		case "db":
			r.DB, err = boundedInt(d, redisDBBound)
		case "pool_size":
			r.PoolSize, err = boundedInt(d, redisPoolSizeBound)
		case "dial_timeout":
			r.DialTimeout, err = boundedDuration(d, redisDialTimeoutBound)
		case "read_timeout":
			r.ReadTimeout, err = boundedDuration(d, redisReadTimeoutBound)
		case "write_timeout":
			r.WriteTimeout, err = boundedDuration(d, redisWriteTimeoutBound)
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
	return wrap(d, r.Validate())
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
		var err error
		if key == "per_country" {
			_, _, err = parseCountryLimit(args[0], v)
		} else {
			_, err = parseLimit(key, v)
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
			if s.Limits.PerCountry == nil {
				s.Limits.PerCountry = map[string]string{}
			}
			s.Limits.PerCountry[strings.ToUpper(args[0])] = v
		default:
			return d.Errf("unrecognized limits option '%s'", key)
		}
		if err != nil {
			return wrap(d, err)
		}
	}
	_, err := s.Limits.engineLimits() // per_country entries naming one country twice
	return wrap(d, err)
}

func (s *Handler) parsePage(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	if s.Page != nil {
		return d.Err("page already set")
	}
	s.Page = &page.Config{}
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
		case "home_url":
			s.Page.HomeURL = v
		case "support_text":
			s.Page.SupportText = v
		default:
			return d.Errf("unrecognized page option '%s'", key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return wrap(d, s.Page.Validate())
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
		case "method":
			s.Headers.Method = v
		default:
			return d.Errf("unrecognized headers option '%s'", key)
		}
		return nil
	})
}

// parsePasskeys parses the passkeys block; its values are checked by
// the engine's own check (stepup.CheckPasskeys), as the JSON is.
func (s *Handler) parsePasskeys(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	if s.Passkeys != nil {
		return d.Err("passkeys already set")
	}
	p := &PasskeysConfig{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		var err error
		switch opt {
		case "rp_id":
			p.RPID, err = singleArg(d)
		case "rp_name":
			p.RPName, err = singleArg(d)
		case "origins":
			if p.Origins = d.RemainingArgs(); len(p.Origins) == 0 {
				err = d.ArgErr()
			}
		case "attestation":
			p.Attestation, err = singleArg(d)
		case "max_per_user":
			var v string
			if v, err = singleArg(d); err == nil {
				if p.MaxPerUser, err = strconv.Atoi(v); err != nil {
					err = d.Errf("passkeys max_per_user %q is not a number", v)
				}
			}
		case "manage_window":
			p.ManageWindow, err = durationValue(d)
		default:
			err = d.Errf("unrecognized passkeys option '%s'", opt)
		}
		if err != nil {
			return err
		}
	}
	if err := stepup.CheckPasskeys(p.engine(), s.SiteName); err != nil {
		return wrap(d, err)
	}
	s.Passkeys = p
	return nil
}

func parsePolicy(d *caddyfile.Dispenser) (*Policy, error) {
	if !d.NextArg() {
		return nil, d.Err("protect needs a policy name")
	}
	p := &Policy{Name: d.Val()}
	if err := (&stepup.Policy{Name: p.Name}).Validate(); err != nil {
		return nil, wrap(d, err)
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
			if _, err := policyMode(p.Name, v); err != nil {
				return nil, wrap(d, err)
			}
			p.Mode = v
		case "grant_ttl":
			v, err := durationValue(d)
			if err != nil {
				return nil, err
			}
			p.GrantTTL = v
			if err := (&stepup.Policy{Name: p.Name, GrantTTL: time.Duration(v)}).Validate(); err != nil {
				return nil, wrap(d, err)
			}
		case "describe":
			v, err := singleArg(d)
			if err != nil {
				return nil, err
			}
			v = requestFieldPlaceholders(v)
			if err := (&stepup.Policy{Name: p.Name, Describe: v}).Validate(); err != nil {
				return nil, wrap(d, err)
			}
			p.Describe = v
		case "methods":
			ms := d.RemainingArgs()
			if len(ms) == 0 {
				return nil, d.ArgErr()
			}
			if err := (&stepup.Policy{Name: p.Name, Methods: ms}).Validate(); err != nil {
				return nil, wrap(d, err)
			}
			p.Methods = ms
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
	if _, err := caddy.GetModule(namespace + "." + name); err != nil {
		var known []string
		for _, m := range caddy.GetModules(namespace) {
			known = append(known, m.ID.Name())
		}
		what := map[string]string{"http.stepup.identity": "identity source", "http.stepup.senders": "sender"}[namespace]
		return nil, d.Errf("unknown %s '%s' (known: %s)", what, name, strings.Join(known, ", "))
	}
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

// boundedInt parses the single number argument of an option and checks it
// with the option's bound.
func boundedInt(d *caddyfile.Dispenser, b stepup.Bound[int]) (int, error) {
	name := d.Val()
	v, err := singleArg(d)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, d.Errf("%s: %q is not a number", name, v)
	}
	return n, wrap(d, b.Check(n))
}

// boundedDuration parses the single duration argument of an option and
// checks it with the option's bound.
func boundedDuration(d *caddyfile.Dispenser, b stepup.Bound[time.Duration]) (caddy.Duration, error) {
	v, err := durationValue(d)
	if err != nil {
		return 0, err
	}
	return v, wrap(d, b.Check(time.Duration(v)))
}

// durationArg parses the single duration argument of an option and
// checks that it is within lo to hi (for options of the guest modules,
// whose bounds their own provisioning also checks).
func durationArg(d *caddyfile.Dispenser, lo, hi time.Duration) (caddy.Duration, error) {
	name := d.Val()
	v, err := durationValue(d)
	if err != nil {
		return 0, err
	}
	if dur := time.Duration(v); dur < lo || dur > hi {
		return 0, d.Errf("%s %s out of range (%s to %s)", name, dur, lo, hi)
	}
	return v, nil
}

// durationValue parses the single duration argument of an option.
func durationValue(d *caddyfile.Dispenser) (caddy.Duration, error) {
	name := d.Val()
	v, err := singleArg(d)
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil {
		return 0, d.Errf("%s: %v", name, err)
	}
	return caddy.Duration(dur), nil
}

// caddyQueryShorthand is what Caddy's Caddyfile adapter turns the
// shorthand {query.NAME} into before a directive sees its tokens.
var caddyQueryShorthand = regexp.MustCompile(`\{http\.request\.uri\.query\.([\w-]*)\}`)

// requestFieldPlaceholders turns Caddy's expansion of {query.NAME} back
// into stepup's own {query.NAME}, in the values that name request fields
// (describe, identity request's user and phone): there {query.NAME} is
// a field stepup reads itself, strictly, not a Caddy placeholder.
func requestFieldPlaceholders(v string) string {
	return caddyQueryShorthand.ReplaceAllString(v, "{query.$1}")
}

// wrap gives a check's error the file and line of the current token; nil
// stays nil.
func wrap(d *caddyfile.Dispenser, err error) error {
	if err == nil {
		return nil
	}
	return d.Err(err.Error())
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)

// parseReceipts parses the receipts block.
func (s *Handler) parseReceipts(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	rc := &ReceiptsConfig{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "public_url":
			v, err := singleArg(d)
			if err != nil {
				return err
			}
			if _, err := stepup.CheckPublicURL(v); err != nil {
				return wrap(d, err)
			}
			rc.PublicURL = v
		case "failover_after":
			v, err := boundedDuration(d, stepup.FailoverAfterBound)
			if err != nil {
				return err
			}
			rc.FailoverAfter = v
		default:
			return d.Errf("unknown receipts option %q", d.Val())
		}
	}
	if rc.PublicURL == "" && rc.FailoverAfter == 0 {
		return d.Err("receipts needs public_url: the scheme and host providers call back, such as https://shop.example.com")
	}
	s.Receipts = rc
	return nil
}
