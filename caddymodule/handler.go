// Package caddymodule registers caddy-stepup with Caddy: the HTTP handler
// module http.handlers.stepup, its Caddyfile directive stepup, and the
// guest modules for identity sources (http.stepup.identity.*) and code
// senders (http.stepup.senders.*).
//
// The step-up logic itself lives in package stepup; this package only
// adapts configuration, matchers, placeholders and shared resources.
package caddymodule

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup"
	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
	"github.com/caddy-stepup/caddy-stepup/stepup/page"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler adds step-up authentication by one-time code in front of the
// routes it wraps. Requests matching a policy's matchers must present a
// grant for that policy, won by entering a code sent to the user's phone;
// all other requests pass through untouched.
//
// On verified requests the upstream receives the headers Stepup-Policy,
// Stepup-User and Stepup-Verified-At (names configurable); copies of any
// Stepup-* header sent by a client are always removed.
//
// Placeholders set for later handlers and logs:
//
//	{http.stepup.policy}  name of the policy that matched the request
//	{http.stepup.user}    the verified user, when a grant was used
//	{http.stepup.reason}  why a browser was refused (locked, expired,
//	                      rate_limited, ...), in the site's handle_errors
//	{http.stepup.challenge_url}  the challenge page a refusal concerns
//	{http.stepup.identity_user}  the user the identity source gave, on
//	                      protected requests (kept for their audit events)
type Handler struct {
	// Redis holds the shared state. Without it, an in-memory store serves
	// this instance only.
	Redis *RedisConfig `json:"redis,omitempty"`

	// Secret keys every MAC (codes at rest, grants, form tokens): at least
	// 32 bytes, the same on every instance, usually a placeholder such as
	// {env.STEPUP_SECRET}. It may be omitted only with the memory store,
	// in which case a random per-process secret is used.
	Secret string `json:"secret,omitempty"`

	// PreviousSecrets are still accepted for verification while a secret
	// rotation rolls out (grants, pending challenges, forms); everything
	// new is made with Secret. Remove them after the longest grant_ttl.
	PreviousSecrets []string `json:"previous_secrets,omitempty"`

	// Limits bound how often challenges start and codes are sent.
	Limits *LimitsConfig `json:"limits,omitempty"`

	// Pumping is the SMS-pumping defense that learns from conversion.
	// Default: mode monitor (see PumpingConfig).
	Pumping *PumpingConfig `json:"pumping,omitempty"`

	// PathPrefix is where the plugin's own pages live. Default: /.stepup
	PathPrefix string `json:"path_prefix,omitempty"`

	// IdentityRaw is the identity source module (http.stepup.identity.*).
	IdentityRaw json.RawMessage `json:"identity,omitempty" caddy:"namespace=http.stepup.identity inline_key=source"`

	// SendersRaw are the code senders (http.stepup.senders.*), tried in
	// order until one delivers.
	SendersRaw []json.RawMessage `json:"senders,omitempty" caddy:"namespace=http.stepup.senders inline_key=sender"`

	// The options below take their defaults and bounds from the engine
	// (stepup.Config); zero or absent means the default. Out-of-range
	// values are refused at start, from JSON as from a Caddyfile.

	// CodeLength is the number of digits of a code (6 to 10). Default: 6
	CodeLength int `json:"code_length,omitempty"`
	// CodeTTL is how long a code is valid (30s to 10m). Default: 5m
	CodeTTL caddy.Duration `json:"code_ttl,omitempty"`
	// MaxAttempts is how many codes may be tried per challenge (1 to 10).
	// Default: 5
	MaxAttempts int `json:"max_attempts,omitempty"`
	// ResendAfter is the cooldown between two sends (1s to less than
	// code_ttl). Default: 30s
	ResendAfter caddy.Duration `json:"resend_after,omitempty"`
	// MaxSends is how many codes one challenge may send (1 to 10).
	// Default: 3
	MaxSends int `json:"max_sends,omitempty"`
	// MaxFailures is how many wrong codes a user may enter within
	// FailureWindow before being locked out (1 to 100). Default: 20
	MaxFailures int `json:"max_failures,omitempty"`
	// FailureWindow is the period failures are counted in (1m to 30d).
	// Default: 24h
	FailureWindow caddy.Duration `json:"failure_window,omitempty"`
	// AllowCountries, when set, limits codes to numbers of these regions
	// (ISO 3166-1 alpha-2: "IN", "US"); DenyCountries refuses regions.
	AllowCountries []string `json:"allow_countries,omitempty"`
	DenyCountries  []string `json:"deny_countries,omitempty"`
	// AllowNumberTypes lists the number types codes may go to. Default:
	// mobile and fixed_line_or_mobile; premium-rate, toll-free, VoIP and
	// fixed lines are refused (SMS-pumping defense).
	AllowNumberTypes []string `json:"allow_number_types,omitempty"`
	// AllowNonGeographic lets codes go to numbers of the non-geographic
	// plans: satellite phones (+870, +881, +882 16) and international
	// networks (+882, +883); the number types still apply, so +800, +808
	// and +979 stay refused unless allowed by type too. Default: refused,
	// as they are among the dearest SMS destinations and a classic target
	// of SMS pumping. ("001" in AllowCountries allows them as well.)
	AllowNonGeographic bool `json:"allow_non_geographic,omitempty"`

	// DefaultRegion lets national phone numbers parse (an ISO 3166-1
	// alpha-2 code with phone numbers, such as "IN" or "GB"). Default:
	// none; numbers must be in E.164 form.
	DefaultRegion string `json:"default_region,omitempty"`
	// SiteName is shown on the page and in messages. Default: the host.
	SiteName string `json:"site_name,omitempty"`
	// Message is the text template of a code message, with {code},
	// {site} and {ttl}. A WebOTP line "@host #code" is appended.
	Message string `json:"message,omitempty"`
	// SendTimeout bounds the delivery of one code across all senders
	// (1s to 2m). Default: 10s
	SendTimeout caddy.Duration `json:"send_timeout,omitempty"`
	// Receipts turns on delivery receipts and the failover they drive.
	Receipts *ReceiptsConfig `json:"receipts,omitempty"`
	// Headers renames the headers sent upstream on verified requests.
	Headers *HeadersConfig `json:"headers,omitempty"`
	// Passkeys configures passkeys (WebAuthn), for policies whose
	// methods include passkey.
	Passkeys *PasskeysConfig `json:"passkeys,omitempty"`

	// Page brands and localizes the challenge page and the code message
	// (docs/PAGE.md).
	Page *page.Config `json:"page,omitempty"`
	// Assertion, when set, adds a signed JWT to every verified request so
	// that the upstream can check that step-up happened.
	Assertion *AssertionConfig `json:"assertion,omitempty"`

	// AuditStream, when set, is a Redis stream that receives every
	// step-up event (capped at AuditMaxLen entries, 100 to 10000000,
	// default 100000), for security teams to consume. Requires redis.
	AuditStream string `json:"audit_stream,omitempty"`
	AuditMaxLen int64  `json:"audit_max_len,omitempty"`

	// MaxBody bounds, in bytes, a request body preserved across a
	// challenge or bound to a transaction (1 byte to 32 MiB). Larger
	// requests get 413. Default: 1 MiB
	MaxBody int64 `json:"max_body,omitempty"`
	// BodyTimeout bounds the reading of a body that is preserved or
	// bound to a transaction (1s to 5m); a client that has not sent it
	// by then gets 408. Default: 15s
	BodyTimeout caddy.Duration `json:"body_timeout,omitempty"`

	// Domain is the site's host name ("shop.example.com"). Code messages
	// end with the WebOTP line "@domain #code" only when it is set; it is
	// never taken from a request's Host header. It is also the site's
	// name in messages when neither site_name nor a page title is set.
	Domain string `json:"domain,omitempty"`
	// Scope, when set, lets handlers that share the secret and the store
	// accept each other's grants for policies of the same name (several
	// sites of one shop). Default: grants and challenges are valid only
	// at the site (host and port) and path prefix they were made at.
	Scope string `json:"scope,omitempty"`
	// AllowCrossSite lets requests that a browser says come from another
	// site be preserved and replayed after the code (with their original
	// Origin, Referer and Sec-Fetch-* headers). Default: refused (403).
	AllowCrossSite bool `json:"allow_cross_site,omitempty"`
	// APIGrantHeader lets API clients send their grant in the
	// Stepup-Grant header as well as the cookie. Default: off, because
	// access logs record request headers in full.
	APIGrantHeader bool `json:"api_grant_header,omitempty"`
	// RequestFailureWindow replaces failure_window for identity request
	// (sign-up, reset), where strangers can name any account (1m to 1h).
	// Default: 15m
	RequestFailureWindow caddy.Duration `json:"request_failure_window,omitempty"`
	// RevocationGrace is how long session grants keep passing on the
	// last revocation state and store generation read while Redis is
	// unreachable (up to 30s; -1 for none). Default: 30s
	RevocationGrace caddy.Duration `json:"revocation_grace,omitempty"`

	// Policies are the protected areas, checked in order; the first whose
	// matchers match a request applies.
	Policies []*Policy `json:"policies,omitempty"`

	// AuditUser says how audit events name their user: hmac (default; a
	// keyed hash of the user id under the secret, which `caddy stepup
	// unlock|revoke` print too), plain (the user id) or none. Never the
	// phone number.
	AuditUser string `json:"audit_user,omitempty"`

	engine *stepup.Engine
	// chain and senderErrs are read by the admin API's status.
	chain      *sender.Chain
	senderErrs *senderErrors
	logger     *zap.Logger
	poolKeys   []string
	// formMethods are the methods a POST form's _method field could ask
	// for that a policy's matchers might care about.
	formMethods []string
}

// RedisConfig says where the shared state lives: one server (URL), a
// Sentinel-managed master, or a Cluster. Every string field takes
// placeholders ({env.REDIS_PASSWORD}).
type RedisConfig struct {
	// URL is a redis://, rediss:// (TLS) or unix:// URL, with optional ACL
	// user, password and database: redis://user:pass@host:6379/0.
	URL string `json:"url,omitempty"`
	// Sentinel finds the master through Redis Sentinel.
	Sentinel *SentinelConfig `json:"sentinel,omitempty"`
	// Cluster connects to a Redis Cluster.
	Cluster *ClusterConfig `json:"cluster,omitempty"`
	// Username and Password authenticate (ACL); they override the URL's.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// DB selects the database (not with Cluster).
	DB int `json:"db,omitempty"`
	// TLS enables TLS with these settings (rediss:// enables it too).
	TLS *RedisTLS `json:"tls,omitempty"`
	// PoolSize is the connections per node (1 to 10000). Default:
	// go-redis's (10 per CPU).
	PoolSize int `json:"pool_size,omitempty"`
	// DialTimeout, ReadTimeout and WriteTimeout bound each operation
	// (10ms to 1m). Defaults: 2s, 1s, 1s.
	DialTimeout  caddy.Duration `json:"dial_timeout,omitempty"`
	ReadTimeout  caddy.Duration `json:"read_timeout,omitempty"`
	WriteTimeout caddy.Duration `json:"write_timeout,omitempty"`
	// KeyPrefix is put before every key: up to 64 letters, digits and
	// ':' '_' '-' '.' '/'. Default: "stepup:" (the store's).
	KeyPrefix string `json:"key_prefix,omitempty"`
	// WaitReplicas, when set, makes every single-use write (a code
	// consumed, a transaction grant used, a preserved request taken, a
	// failure counted, a revocation) wait until that many replicas have
	// it (Redis WAIT), so that a failover cannot undo it; fewer within
	// WaitTimeout fails the request closed.
	WaitReplicas int `json:"wait_replicas,omitempty"`
	// WaitTimeout bounds each wait (1ms up to below read_timeout).
	// Default: 100ms
	WaitTimeout caddy.Duration `json:"wait_timeout,omitempty"`
}

// Bounds of the options the Caddy adapter alone has. Like the engine's
// (stepup.Bound), each is checked in Provision and, on the value as
// written, by the Caddyfile parser, with the same words.
var (
	redisPoolSizeBound     = stepup.Bound[int]{Option: "redis pool_size", Min: 1, Max: 10000}
	redisDBBound           = stepup.Bound[int]{Option: "redis db", Min: 0, Max: 65535}
	redisDialTimeoutBound  = stepup.Bound[time.Duration]{Option: "redis dial_timeout", Min: 10 * time.Millisecond, Max: time.Minute}
	redisReadTimeoutBound  = stepup.Bound[time.Duration]{Option: "redis read_timeout", Min: 10 * time.Millisecond, Max: time.Minute}
	redisWriteTimeoutBound = stepup.Bound[time.Duration]{Option: "redis write_timeout", Min: 10 * time.Millisecond, Max: time.Minute}
	auditMaxLenBound       = stepup.Bound[int64]{Option: "audit_max_len", Min: 100, Max: 10_000_000}
	redisWaitReplicasBound = stepup.Bound[int]{Option: "redis wait_replicas", Min: 0, Max: 16}
	redisWaitTimeoutBound  = stepup.Bound[time.Duration]{Option: "redis wait_timeout", Min: time.Millisecond, Max: time.Minute}
)

// defaultWaitTimeout bounds a wait for replicas unless wait_timeout says.
const defaultWaitTimeout = 100 * time.Millisecond

// defaultAuditMaxLen caps the audit stream unless audit_max_len says.
const defaultAuditMaxLen = 100000

// keyPrefixRE is what a key prefix may hold. Braces are left out on
// purpose: keys carry a {hash tag} so that Redis Cluster keeps each
// challenge's keys in one slot, and a brace in the prefix would move it.
var keyPrefixRE = regexp.MustCompile(`^[A-Za-z0-9:_.\-/]{1,64}$`)

// Validate checks the redis block: exactly one of a URL, a sentinel block
// and a cluster block, and every value within its bounds. Placeholders
// are checked after replacement, when the client is made.
func (c *RedisConfig) Validate() error {
	modes := 0
	for _, set := range []bool{c.URL != "", c.Sentinel != nil, c.Cluster != nil} {
		if set {
			modes++
		}
	}
	switch {
	case modes == 0:
		return errors.New("redis needs a URL (redis://127.0.0.1:6379/0), a sentinel block or a cluster block")
	case modes > 1:
		return errors.New("redis takes one of a URL, a sentinel block and a cluster block")
	case c.Sentinel != nil && (c.Sentinel.Master == "" || len(c.Sentinel.Addrs) == 0):
		return errors.New("redis sentinel needs master and addrs")
	case c.Cluster != nil && len(c.Cluster.Addrs) == 0:
		return errors.New("redis cluster needs addrs")
	case c.Cluster != nil && c.DB != 0:
		return errors.New("redis cluster has no databases: remove db")
	case c.TLS != nil && (c.TLS.Cert == "") != (c.TLS.Key == ""):
		return errors.New("redis tls: cert and key go together")
	}
	if err := checkRedisURL(c.URL); err != nil {
		return err
	}
	if c.Sentinel != nil {
		for _, a := range c.Sentinel.Addrs {
			if err := checkRedisAddr("redis sentinel addrs", a); err != nil {
				return err
			}
		}
	}
	if c.Cluster != nil {
		for _, a := range c.Cluster.Addrs {
			if err := checkRedisAddr("redis cluster addrs", a); err != nil {
				return err
			}
		}
	}
	if err := checkKeyPrefix(c.KeyPrefix); err != nil {
		return err
	}
	if err := redisWaitReplicasBound.Check(c.WaitReplicas); err != nil {
		return err
	}
	if c.WaitTimeout != 0 {
		if err := redisWaitTimeoutBound.Check(time.Duration(c.WaitTimeout)); err != nil {
			return err
		}
	}
	if c.PoolSize != 0 {
		if err := redisPoolSizeBound.Check(c.PoolSize); err != nil {
			return err
		}
	}
	for _, t := range []struct {
		b stepup.Bound[time.Duration]
		v caddy.Duration
	}{{redisDialTimeoutBound, c.DialTimeout}, {redisReadTimeoutBound, c.ReadTimeout}, {redisWriteTimeoutBound, c.WriteTimeout}} {
		if t.v != 0 {
			if err := t.b.Check(time.Duration(t.v)); err != nil {
				return err
			}
		}
	}
	return redisDBBound.Check(c.DB)
}

// checkRedisURL checks the scheme and port of a URL without
// placeholders.
func checkRedisURL(u string) error {
	if u == "" || strings.Contains(u, "{") || strings.HasPrefix(u, "unix://") {
		return nil
	}
	if !strings.HasPrefix(u, "redis://") && !strings.HasPrefix(u, "rediss://") {
		return fmt.Errorf("redis URL %q: want redis://, rediss:// or unix://", u)
	}
	opts, err := redis.ParseURL(u)
	if err != nil {
		return fmt.Errorf("redis URL: %v", err)
	}
	return checkRedisAddr("redis URL", opts.Addr)
}

// checkRedisAddr checks that a host:port of option has a port Redis can
// listen on (1 to 65535): go-redis would take 99999 and fail each
// request at dial time.
func checkRedisAddr(option, addr string) error {
	if strings.Contains(addr, "{") {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s: %q is not host:port: %v", option, addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%s: port %q of %q is out of range (1 to 65535)", option, port, addr)
	}
	return nil
}

// checkKeyPrefix checks a key prefix ("" takes the store's default).
func checkKeyPrefix(p string) error {
	if p == "" || keyPrefixRE.MatchString(p) {
		return nil
	}
	return fmt.Errorf("redis key_prefix %q: use 1 to 64 letters, digits and ':' '_' '-' '.' '/' (no braces: keys carry Redis Cluster hash tags)", p)
}

// SentinelConfig names a Sentinel-managed master.
type SentinelConfig struct {
	// Master is the master's name in Sentinel.
	Master string `json:"master,omitempty"`
	// Addrs are the Sentinels (host:port).
	Addrs []string `json:"addrs,omitempty"`
	// Username and Password authenticate to the Sentinels.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
}

// ClusterConfig lists Redis Cluster nodes to start from.
type ClusterConfig struct {
	Addrs []string `json:"addrs,omitempty"`
}

// RedisTLS configures TLS to Redis. File paths are PEM.
type RedisTLS struct {
	// CA verifies the server (default: the system roots).
	CA string `json:"ca,omitempty"`
	// Cert and Key are a client certificate (mutual TLS).
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
	// ServerName overrides the name verified in the server certificate.
	ServerName string `json:"server_name,omitempty"`
}

// AssertionConfig configures the upstream assertion (a JWT per verified
// request; see docs/PRODUCTION.md for verifying it).
type AssertionConfig struct {
	// Header carries the token. Default: Stepup-Assertion
	Header string `json:"header,omitempty"`
	// TTL is the token's lifetime (1s to 1h). Default: 60s
	TTL caddy.Duration `json:"ttl,omitempty"`
	// Alg is HS256 (shared key) or EdDSA (Ed25519; the public key is
	// served at {path_prefix}/jwks.json). Default: EdDSA when key_file is
	// set, else HS256.
	Alg string `json:"alg,omitempty"`
	// Key is the HS256 key (at least 32 bytes), or for EdDSA the base64
	// of a 32-byte Ed25519 seed. Usually a placeholder.
	Key string `json:"key,omitempty"`
	// KeyFile is a PEM file with an Ed25519 private key (PKCS #8).
	KeyFile string `json:"key_file,omitempty"`
	// Issuer and Audience are the iss and aud claims.
	Issuer   string `json:"issuer,omitempty"`
	Audience string `json:"audience,omitempty"`
}

// check checks what needs no key material: a key or key file is given,
// the algorithm is known, the TTL within its bounds.
func (a *AssertionConfig) check() error {
	if a.Key == "" && a.KeyFile == "" {
		return errors.New("assertion needs a key (HS256 secret or EdDSA seed) or a key_file (Ed25519 PEM)")
	}
	if err := checkAssertionAlg(a.Alg); err != nil {
		return err
	}
	if a.TTL != 0 {
		return stepup.AssertionTTLBound.Check(time.Duration(a.TTL))
	}
	return nil
}

func checkAssertionAlg(alg string) error {
	switch alg {
	case "", "HS256", "EdDSA":
		return nil
	}
	return fmt.Errorf("assertion alg %q: want HS256 or EdDSA", alg)
}

// build makes the engine's assertion signer.
func (a *AssertionConfig) build(repl *caddy.Replacer) (*stepup.Assertion, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	base := stepup.Assertion{Header: a.Header, TTL: time.Duration(a.TTL), Issuer: a.Issuer, Audience: a.Audience}
	key := repl.ReplaceKnown(a.Key, "")
	alg := a.Alg
	if alg == "" {
		alg = "HS256"
		if a.KeyFile != "" {
			alg = "EdDSA"
		}
	}
	switch alg {
	case "HS256":
		if a.KeyFile != "" {
			return nil, errors.New("assertion: key_file is for EdDSA")
		}
		return stepup.NewHS256Assertion(base, []byte(key))
	case "EdDSA":
		var priv ed25519.PrivateKey
		switch {
		case a.KeyFile != "" && key != "":
			return nil, errors.New("assertion: set key or key_file, not both")
		case a.KeyFile != "":
			pemBytes, err := os.ReadFile(repl.ReplaceKnown(a.KeyFile, ""))
			if err != nil {
				return nil, fmt.Errorf("assertion: %v", err)
			}
			block, _ := pem.Decode(pemBytes)
			if block == nil {
				return nil, errors.New("assertion: key_file holds no PEM block")
			}
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("assertion: key_file: %v", err)
			}
			var ok bool
			if priv, ok = k.(ed25519.PrivateKey); !ok {
				return nil, errors.New("assertion: key_file is not an Ed25519 key")
			}
		default:
			seed, err := base64.StdEncoding.DecodeString(key)
			if err != nil || len(seed) != ed25519.SeedSize {
				return nil, errors.New("assertion: an EdDSA key is the base64 of a 32-byte Ed25519 seed")
			}
			priv = ed25519.NewKeyFromSeed(seed)
		}
		return stepup.NewEdDSAAssertion(base, priv)
	}
	return nil, checkAssertionAlg(alg)
}

// LimitsConfig bounds how often challenges start and codes are sent. Each
// value is "COUNT/PERIOD" ("10/1h") or "off"; empty takes the default.
type LimitsConfig struct {
	// PerUser: challenges started per user. Default: 10/1h
	PerUser string `json:"per_user,omitempty"`
	// PerIP: challenges started per client IP. Default: 30/1h
	PerIP string `json:"per_ip,omitempty"`
	// PerNumber: codes sent per phone number. Default: 10/1h
	PerNumber string `json:"per_number,omitempty"`
	// PerCountry: codes sent per country, keyed by region code ("IN"),
	// calling code ("91"), or "*" for every country without its own.
	PerCountry map[string]string `json:"per_country,omitempty"`
	// Global: codes sent for the whole site. Default: off
	Global string `json:"global,omitempty"`
}

// engineLimits converts the configuration.
func (l *LimitsConfig) engineLimits() (stepup.Limits, error) {
	var out stepup.Limits
	if l == nil {
		return out, nil
	}
	for _, f := range []struct {
		name string
		v    string
		dst  *store.Limit
	}{
		{"per_user", l.PerUser, &out.PerUser},
		{"per_ip", l.PerIP, &out.PerIP},
		{"per_number", l.PerNumber, &out.PerNumber},
		{"global", l.Global, &out.Global},
	} {
		if f.v == "" {
			continue
		}
		lim, err := parseLimit(f.name, f.v)
		if err != nil {
			return out, err
		}
		*f.dst = lim
	}
	if len(l.PerCountry) > 0 {
		out.PerCountry = make(map[int]store.Limit, len(l.PerCountry))
		seen := make(map[int]string, len(l.PerCountry))
		for _, country := range slices.Sorted(maps.Keys(l.PerCountry)) {
			cc, lim, err := parseCountryLimit(country, l.PerCountry[country])
			if err != nil {
				return out, err
			}
			if other, dup := seen[cc]; dup {
				return out, fmt.Errorf("limits per_country: %s and %s are the same calling code (+%d)", other, country, cc)
			}
			seen[cc] = country
			out.PerCountry[cc] = lim
		}
	}
	return out, nil
}

// parseLimit parses the limit of option name ("per_ip").
func parseLimit(name, v string) (store.Limit, error) {
	lim, err := stepup.ParseLimit(v)
	if err != nil {
		return lim, fmt.Errorf("limits %s: %v", name, err)
	}
	return lim, nil
}

// parseCountryLimit parses one per_country entry.
func parseCountryLimit(country, v string) (int, store.Limit, error) {
	if _, err := strconv.Atoi(strings.TrimPrefix(country, "+")); err != nil && country != "*" {
		if err := checkRegion("limits per_country", country, false); err != nil {
			return 0, store.Limit{}, err
		}
	}
	cc, err := stepup.ParseCountry(country)
	if err != nil {
		return 0, store.Limit{}, fmt.Errorf("limits per_country: %v", err)
	}
	lim, err := parseLimit("per_country "+country, v)
	return cc, lim, err
}

// numberTypes parses allow_number_types.
func numberTypes(names []string) ([]sender.NumberType, error) {
	var out []sender.NumberType
	for _, t := range names {
		nt, err := sender.ParseNumberType(t)
		if err != nil {
			return nil, fmt.Errorf("allow_number_types: %v", err)
		}
		out = append(out, nt)
	}
	return out, nil
}

// checkSecret checks a secret (or previous secret, named by what) after
// placeholder replacement.
func checkSecret(what, v string) error {
	if len(v) < stepup.MinSecretLen {
		return fmt.Errorf("%s is %d bytes, need at least %d (use a placeholder such as {env.STEPUP_SECRET})", what, len(v), stepup.MinSecretLen)
	}
	return nil
}

// Errors for a missing identity source or sender, from Provision and the
// Caddyfile parser alike.
var (
	errNoIdentity = errors.New("stepup needs an identity source (identity header|oidc|cookie|request {...})")
	errNoSender   = errors.New("stepup needs at least one sender (sender webhook <url>, or sender log for development)")
)

// HeadersConfig names the headers sent upstream on verified requests.
type HeadersConfig struct {
	Policy     string `json:"policy,omitempty"`
	User       string `json:"user,omitempty"`
	VerifiedAt string `json:"verified_at,omitempty"`
	// Method says how the step-up was made (sms, passkey).
	// Default: Stepup-Method
	Method string `json:"method,omitempty"`
}

// PasskeysConfig configures passkeys (WebAuthn) for the policies that
// offer them (docs/PASSKEYS.md).
type PasskeysConfig struct {
	// RPID is the relying party id: the site's registrable host name
	// ("shop.example.com"), never taken from a request. Required.
	RPID string `json:"rp_id,omitempty"`
	// RPName is the name authenticators show. Default: the site name.
	RPName string `json:"rp_name,omitempty"`
	// Origins are the origins passkeys may be used from.
	// Default: https:// and the RP ID.
	Origins []string `json:"origins,omitempty"`
	// Attestation asked at enrolment: none, indirect or direct.
	// Default: none
	Attestation string `json:"attestation,omitempty"`
	// MaxPerUser bounds the passkeys of one user (1 to 50). Default: 10
	MaxPerUser int `json:"max_per_user,omitempty"`
	// ManageWindow is how fresh a step-up must be for the passkeys page
	// (1m to 1h). Default: 5m
	ManageWindow caddy.Duration `json:"manage_window,omitempty"`
}

func (p *PasskeysConfig) engine() stepup.Passkeys {
	if p == nil {
		return stepup.Passkeys{}
	}
	return stepup.Passkeys{RPID: p.RPID, RPName: p.RPName, Origins: append([]string(nil), p.Origins...),
		Attestation: p.Attestation, MaxPerUser: p.MaxPerUser, ManageWindow: time.Duration(p.ManageWindow)}
}

// Policy is one protected area.
type Policy struct {
	// Name identifies the policy (letters, digits, '-', '_').
	Name string `json:"name"`
	// MatcherSetsRaw selects the requests the policy covers; any Caddy
	// request matcher may be used. No matcher: every request.
	MatcherSetsRaw caddyhttp.RawMatcherSets `json:"match,omitempty" caddy:"namespace=http.matchers"`
	// Mode is session (default), transaction or monitor.
	Mode string `json:"mode,omitempty"`
	// GrantTTL is how long a session-mode verification lasts. Default: 15m
	GrantTTL caddy.Duration `json:"grant_ttl,omitempty"`
	// Describe is what a transaction authorizes, with placeholders from
	// the request ("Pay {form.amount} to {form.merchant}").
	Describe string `json:"describe,omitempty"`
	// Methods are the step-up methods offered, preferred first: sms,
	// passkey (which needs passkeys configured). Default: ["sms"]
	Methods []string `json:"methods,omitempty"`

	matchers caddyhttp.MatcherSets
	policy   *stepup.Policy
	// prefixes, when not nil, are literal path prefixes one of which a
	// request's cleaned, lowercased path must start with for the
	// matchers to possibly match (see pathPrefixes).
	prefixes []string
	// readsQuery: the matchers may look at the query, so they are run
	// under its other reading too (queryState).
	readsQuery bool
	// readsParams: the matchers may read parameters (a query matcher, an
	// expression), so they are run under the readings with the
	// cookies', headers' and body's parameters too (queryState);
	// paramProbe and opaqueParams say what a body that cannot be told is
	// taken to carry (paramProbe).
	readsParams  bool
	paramProbe   string
	opaqueParams bool
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.stepup",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets up the handler. It never contacts Redis, so that
// `caddy validate` and a start during a Redis outage both work.
//
// Every option is checked here, against the bounds the engine (and, for
// the options only this adapter has, this package) defines once, so that
// JSON and Caddyfile configurations are held to the same rules and
// refused with the same words.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	repl := caddy.NewReplacer()

	if err := h.checkOptions(); err != nil {
		return err
	}
	cfg, err := h.engineConfig(repl)
	if err != nil {
		return err
	}
	st, client, err := h.provisionStore(repl)
	if err != nil {
		return err
	}

	idMod, err := ctx.LoadModule(h, "IdentityRaw")
	if err != nil {
		return fmt.Errorf("loading identity source: %v", err)
	}
	source, ok := idMod.(identity.Source)
	if !ok {
		return fmt.Errorf("identity module %T is not an identity source", idMod)
	}
	// Sources that read Redis (a legacy app's phone table) share the
	// handler's client.
	if rs, ok := source.(interface{ SetRedis(redis.UniversalClient) }); ok && client != nil {
		rs.SetRedis(client)
	}
	if nr, ok := source.(interface{ NeedsRedis() bool }); ok && nr.NeedsRedis() && client == nil {
		return errors.New("identity cookie: phone_lookup redis needs the redis option of the stepup block")
	}
	// Sources that read the request body read it under max_body too.
	if mb, ok := source.(interface{ SetMaxBody(int64) }); ok {
		mb.SetMaxBody(h.MaxBody)
	}

	sMods, err := ctx.LoadModule(h, "SendersRaw")
	if err != nil {
		return fmt.Errorf("loading senders: %v", err)
	}
	var senders []sender.Sender
	for _, m := range sMods.([]any) {
		s, ok := m.(sender.Sender)
		if !ok {
			return fmt.Errorf("sender module %T is not a sender", m)
		}
		senders = append(senders, s)
	}

	policies := make([]*stepup.Policy, 0, len(h.Policies))
	for _, p := range h.Policies {
		if err := p.provision(ctx); err != nil {
			return err
		}
		warnExactPaths(h.logger, p)
		policies = append(policies, p.policy)
	}
	h.formMethods = formMethodCandidates(h.Policies)

	obs, err := h.provisionObserver(ctx, client)
	if err != nil {
		return err
	}
	if rs, ok := st.(*store.Redis); ok {
		// Hourly delivery tallies for caddy stepup stats.
		obs.tally = make(chan tallyCount, 4096)
		go tallyWriter(ctx, rs, obs.tally, h.logger)
	}
	var assertion *stepup.Assertion
	if h.Assertion != nil {
		if assertion, err = h.Assertion.build(repl); err != nil {
			return err
		}
	}
	auditUser, err := stepup.ParseAuditUser(h.AuditUser)
	if err != nil {
		return err
	}
	h.senderErrs = newSenderErrors()
	h.chain = sender.NewChain(senders, sender.ChainOptions{Timeout: cfg.SendTimeout, ReceiptURL: cfg.ReceiptURL,
		Logger: h.logger.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return zapcore.NewTee(c, h.senderErrs) }))})
	h.engine, err = stepup.New(cfg, policies, stepup.Options{
		Store:     st,
		Identity:  source,
		Sender:    h.chain,
		Logger:    h.logger,
		ClientIP:  clientIP,
		Observer:  obs,
		RequestID: requestID,
		Assertion: assertion,
		OnVerified: func(r *http.Request, _, user string) {
			if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
				repl.Set("http.stepup.user", user)
			}
		},
		Refuse: h.refuse,
	})
	if err != nil {
		return err
	}
	h.engine.SetAuditUser(auditUser, replacerMemo{})
	h.warnSenders(senders)
	if ri, ok := source.(identity.RequestIdentity); ok && ri.IdentityFromRequest() {
		l := h.engine.Config().Limits
		h.logger.Info("identity request: codes go to numbers taken from the request, so the per_ip and per_number limits are enforced",
			zap.Int("per_ip", l.PerIP.Rate), zap.Duration("per_ip_period", l.PerIP.Period),
			zap.Int("per_number", l.PerNumber.Rate), zap.Duration("per_number_period", l.PerNumber.Period))
	}
	h.warnNoEffect()
	register(ctx, h)
	// Due failovers and abandoned challenges, until this config is
	// unloaded (ctx ends then).
	go h.engine.Run(ctx)
	return nil
}

// checkOptions checks what the engine does not see: the pieces every
// handler needs and the options only this adapter has.
func (h *Handler) checkOptions() error {
	if h.IdentityRaw == nil {
		return errNoIdentity
	}
	if len(h.SendersRaw) == 0 {
		return errNoSender
	}
	if h.Redis != nil {
		if err := h.Redis.Validate(); err != nil {
			return err
		}
	}
	if h.AuditStream != "" && h.Redis == nil {
		return errors.New("audit_stream needs redis")
	}
	if h.AuditMaxLen != 0 {
		if err := auditMaxLenBound.Check(h.AuditMaxLen); err != nil {
			return err
		}
	}
	if h.Assertion != nil {
		if err := h.Assertion.check(); err != nil {
			return err
		}
	}
	return h.checkWords()
}

// engineConfig converts the options to the engine's configuration, with
// the engine's defaults filled in and its bounds checked.
func (h *Handler) engineConfig(repl *caddy.Replacer) (stepup.Config, error) {
	var cfg stepup.Config
	secret, err := h.provisionSecret(repl)
	if err != nil {
		return cfg, err
	}
	var previous [][]byte
	for i, ps := range h.PreviousSecrets {
		v := repl.ReplaceKnown(ps, "")
		if err := checkSecret(fmt.Sprintf("previous_secrets %d", i+1), v); err != nil {
			return cfg, err
		}
		previous = append(previous, []byte(v))
	}
	limits, err := h.Limits.engineLimits()
	if err != nil {
		return cfg, err
	}
	types, err := numberTypes(h.AllowNumberTypes)
	if err != nil {
		return cfg, err
	}
	cfg = stepup.Config{
		Secret:          secret,
		PreviousSecrets: previous,
		Limits:          limits,
		Pumping:         h.Pumping.engine(),
		PhoneRules: sender.PhoneRules{Allow: h.AllowCountries, Deny: h.DenyCountries, AllowTypes: types,
			AllowNonGeographic: h.AllowNonGeographic},
		PathPrefix:           h.PathPrefix,
		CodeLength:           h.CodeLength,
		CodeTTL:              time.Duration(h.CodeTTL),
		MaxAttempts:          h.MaxAttempts,
		ResendAfter:          time.Duration(h.ResendAfter),
		MaxSends:             h.MaxSends,
		MaxFailures:          h.MaxFailures,
		FailureWindow:        time.Duration(h.FailureWindow),
		DefaultRegion:        h.DefaultRegion,
		SiteName:             h.SiteName,
		Message:              h.Message,
		SendTimeout:          time.Duration(h.SendTimeout),
		MaxBody:              h.MaxBody,
		BodyTimeout:          time.Duration(h.BodyTimeout),
		Domain:               h.Domain,
		Scope:                h.Scope,
		AllowCrossSite:       h.AllowCrossSite,
		GrantHeader:          h.APIGrantHeader,
		RequestFailureWindow: time.Duration(h.RequestFailureWindow),
		RevocationGrace:      time.Duration(h.RevocationGrace),
		Passkeys:             h.Passkeys.engine(),
	}
	if h.Receipts != nil {
		cfg.Receipts = stepup.Receipts{PublicURL: h.Receipts.PublicURL, FailoverAfter: time.Duration(h.Receipts.FailoverAfter)}
	}
	if h.Headers != nil {
		cfg.Headers = stepup.Headers{Policy: h.Headers.Policy, User: h.Headers.User, VerifiedAt: h.Headers.VerifiedAt, Method: h.Headers.Method}
	}
	if h.Page != nil {
		cfg.Page = *h.Page
		cfg.Page.Template = repl.ReplaceKnown(cfg.Page.Template, "")
		if err := cfg.Page.Validate(); err != nil {
			return cfg, err
		}
	}
	return cfg.WithDefaults()
}

// provisionStore acquires the shared store this handler uses, and the
// Redis client behind it (nil for the memory store).
func (h *Handler) provisionStore(repl *caddy.Replacer) (store.Store, redis.UniversalClient, error) {
	if h.Redis == nil {
		h.logger.Warn("no redis configured: using the in-memory store, which serves this single instance only; " +
			"challenges and grants are not shared with other instances and are lost on restart")
		st, key, err := acquireMemory()
		if err != nil {
			return nil, nil, err
		}
		h.poolKeys = append(h.poolKeys, key)
		return st, nil, nil
	}
	client, key, err := acquireRedis(h.Redis, repl)
	if err != nil {
		return nil, nil, fmt.Errorf("configuring redis: %v", err)
	}
	h.poolKeys = append(h.poolKeys, key)
	wait := time.Duration(h.Redis.WaitTimeout)
	if wait == 0 && h.Redis.WaitReplicas > 0 {
		wait = defaultWaitTimeout
	}
	st, err := store.NewRedisWith(client, store.RedisOptions{Prefix: h.Redis.KeyPrefix,
		WaitReplicas: h.Redis.WaitReplicas, WaitTimeout: wait})
	if err != nil {
		return nil, nil, fmt.Errorf("configuring redis: %v", err)
	}
	return st, client, nil
}

// warnSenders warns at start about code messages that cost more than one
// SMS segment, in whichever locale costs most, and about email as the
// only channel.
func (h *Handler) warnSenders(senders []sender.Sender) {
	warnSegments(h.logger, h.engine.MessageSamples())
	onlyEmail := len(senders) > 0
	for _, s := range senders {
		if c, ok := s.(sender.Channeler); !ok || c.Channel() != sender.Email {
			onlyEmail = false
		}
	}
	if onlyEmail {
		h.logger.Warn("email is the only channel: NIST SP 800-63B §3.1.3.1 does not accept email as an out-of-band authenticator; add an SMS or WhatsApp sender")
	}
}

// warnSegments warns when a code message costs more than one SMS
// segment, for the locale whose message costs most, listing every locale
// over one segment: with the page's locale unset, customers get the
// message in their browser's language, and a Hindi or Arabic message
// (UCS-2, 70 characters a segment) costs twice what the English one does.
func warnSegments(log *zap.Logger, samples []page.MessageSample) {
	type cost struct {
		locale, encoding string
		chars, segments  int
	}
	var session, transaction cost
	var sessionOver, transactionOver []string
	note := func(worst *cost, over *[]string, locale, text string) {
		enc, chars, n := sender.Segments(text)
		if n > 1 {
			*over = append(*over, locale)
		}
		if n > worst.segments || n == worst.segments && chars > worst.chars {
			*worst = cost{locale, enc, chars, n}
		}
	}
	for _, s := range samples {
		note(&session, &sessionOver, s.Locale, s.Session)
		if s.Transaction != "" {
			note(&transaction, &transactionOver, s.Locale, s.Transaction)
		}
	}
	if session.segments > 1 {
		log.Warn("the code message costs more than one SMS segment; shorten message or site_name, or set page locale",
			zap.String("locale", session.locale), zap.String("encoding", session.encoding),
			zap.Int("characters", session.chars), zap.Int("segments", session.segments), zap.Strings("locales", sessionOver))
	}
	if transaction.segments > 1 {
		log.Warn("a transaction message with a long description costs more than one SMS segment",
			zap.String("locale", transaction.locale), zap.String("encoding", transaction.encoding),
			zap.Int("characters", transaction.chars), zap.Int("segments", transaction.segments), zap.Strings("locales", transactionOver))
	}
}

// provisionObserver registers the metrics and sets up Caddy events and
// the audit stream.
func (h *Handler) provisionObserver(ctx caddy.Context, client redis.UniversalClient) (*observer, error) {
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return nil, fmt.Errorf("registering metrics: %v", err)
	}
	obs := &observer{ctx: ctx}
	// Caddy events go out only when the events app is configured (someone
	// subscribes); otherwise there is nobody to tell.
	evApp, err := ctx.AppIfConfigured("events")
	switch {
	case err == nil:
		obs.events = evApp.(*caddyevents.App)
	case !errors.Is(err, caddy.ErrNotConfigured):
		return nil, fmt.Errorf("loading events app: %v", err)
	}
	if h.AuditStream != "" && client != nil {
		maxLen := h.AuditMaxLen
		if maxLen == 0 {
			maxLen = defaultAuditMaxLen
		}
		obs.audit = make(chan map[string]any, 4096)
		go auditWriter(ctx, client, h.AuditStream, maxLen, obs.audit, h.logger)
	}
	return obs, nil
}

// processSecret is the random secret used when none is configured with
// the memory store: one per process, so that grants survive reloads.
var processSecret = sync.OnceValue(func() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
})

func (h *Handler) provisionSecret(repl *caddy.Replacer) ([]byte, error) {
	if h.Secret == "" {
		if h.Redis != nil {
			return nil, errors.New("secret is required with redis: every instance must share it")
		}
		h.logger.Warn("no secret configured: using a random per-process secret; grants end when Caddy restarts")
		return processSecret(), nil
	}
	s := repl.ReplaceKnown(h.Secret, "")
	if s == "" {
		return nil, errors.New("secret is empty after placeholder replacement (is its environment variable set?)")
	}
	if strings.Contains(s, "{") && strings.Contains(h.Secret, "{") && s == h.Secret {
		return nil, fmt.Errorf("secret placeholder %q could not be resolved", h.Secret)
	}
	if err := checkSecret("secret", s); err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// enginePolicy converts and checks a policy's options (not its matchers).
func (p *Policy) enginePolicy() (*stepup.Policy, error) {
	mode, err := policyMode(p.Name, p.Mode)
	if err != nil {
		return nil, err
	}
	// The policy's version is its whole definition, matchers included
	// (compacted JSON: the same on every instance of one config), so that
	// a reload that changes it honours no earlier challenge or grant.
	def, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %v", p.Name, err)
	}
	sum := sha256.Sum256(def)
	sp := &stepup.Policy{Name: p.Name, Mode: mode, GrantTTL: time.Duration(p.GrantTTL), Describe: p.Describe, Methods: p.Methods,
		Version: base64.RawURLEncoding.EncodeToString(sum[:12])}
	if err := sp.Validate(); err != nil {
		return nil, err
	}
	return sp, nil
}

func policyMode(name, mode string) (stepup.Mode, error) {
	m, err := stepup.ParseMode(mode)
	if err != nil {
		return m, fmt.Errorf("policy %s: %v", name, err)
	}
	return m, nil
}

func (p *Policy) provision(ctx caddy.Context) error {
	var err error
	if p.policy, err = p.enginePolicy(); err != nil {
		return err
	}
	if p.MatcherSetsRaw != nil {
		mods, err := ctx.LoadModule(p, "MatcherSetsRaw")
		if err != nil {
			return fmt.Errorf("policy %s: loading matchers: %v", p.Name, err)
		}
		if err := p.matchers.FromInterface(mods); err != nil {
			return fmt.Errorf("policy %s: %v", p.Name, err)
		}
		p.prefixes = pathPrefixes(p.matchers)
		p.readsQuery = matchersReadQuery(p.matchers)
		p.readsParams = matchersReadParams(p.matchers)
		p.paramProbe, p.opaqueParams = paramProbe(p.matchers)
	}
	return nil
}

// pathPrefixes returns, when every matcher set of a policy has a path
// matcher whose patterns all begin with a plain literal ("/admin/*",
// "/checkout"), those literals: Caddy's path matcher only matches a
// request whose cleaned, lowercased path starts with one of them. Such
// policies can be skipped for other paths without running their
// matchers, so that the unprotected routes of a site with many policies
// cost next to nothing. Any other shape (placeholders, escapes, "//",
// leading wildcards, non-path matchers only) returns nil: always run the
// matchers. Caddy's own matchers stay the authority for the rest.
func pathPrefixes(sets caddyhttp.MatcherSets) []string {
	if runtime.GOOS == "windows" || len(sets) == 0 {
		return nil // Caddy normalizes Windows paths further
	}
	var out []string
	for _, set := range sets {
		var found []string
		for _, mp := range pathMatchers(set) {
			if found = literalPrefixes(mp); found != nil {
				break
			}
		}
		if found == nil {
			return nil
		}
		out = append(out, found...)
	}
	return out
}

// literalPrefixes returns the literal part before the first '*' of each
// pattern (Caddy lowercases patterns at provision), or nil if any
// pattern is not of that simple shape.
func literalPrefixes(m caddyhttp.MatchPath) []string {
	var out []string
	for _, p := range m {
		if p == "*" || strings.ContainsAny(p, "{%") || strings.Contains(p, "//") {
			return nil
		}
		lit := p
		if i := strings.IndexByte(p, '*'); i >= 0 {
			lit = p[:i]
		}
		if lit == "" || strings.ContainsAny(lit, "?[\\") || lit != strings.ToLower(lit) {
			return nil
		}
		out = append(out, lit)
	}
	return out
}

// Validate checks what Provision could not.
func (h *Handler) Validate() error {
	if h.engine == nil {
		return errors.New("not provisioned")
	}
	return nil
}

// Cleanup releases the shared store this handler acquired. It runs after
// a failed Provision too, so it releases only what was taken.
func (h *Handler) Cleanup() error {
	unregister(h)
	var errs []error
	for _, k := range h.poolKeys {
		if _, err := pool.Delete(k); err != nil {
			errs = append(errs, err)
		}
	}
	h.poolKeys = nil
	return errors.Join(errs...)
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	err := h.engine.Serve(w, r, h, next)
	if err != nil {
		return err
	}
	// A refusal the engine left to the site's handle_errors (refuse).
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		if v, ok := repl.Get(refusedStatus); ok {
			if status, ok := v.(int); ok {
				reason, _ := repl.GetString("http.stepup.reason")
				return caddyhttp.Error(status, fmt.Errorf("step-up refused: %s", reason))
			}
		}
	}
	return nil
}

// refusedStatus is the placeholder under which refuse leaves the status
// of a refusal for ServeHTTP to return as an error.
const refusedStatus = "http.stepup.refused_status"

// refuse hands the engine's refusals of browsers (stepup.Options.Refuse)
// to Caddy's error routes when the site has handle_errors: it sets the
// placeholders {http.stepup.reason} (the page's state: locked, expired,
// rate_limited, ...) and, on a challenge's own page,
// {http.stepup.challenge_url}, and ServeHTTP returns the status as an
// error, so that {http.error.status_code} and the error routes take
// over. Without error routes the engine answers with its own page.
func (h *Handler) refuse(_ http.ResponseWriter, r *http.Request, status int, reason string) bool {
	srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if !ok || srv == nil || srv.Errors == nil || len(srv.Errors.Routes) == 0 {
		return false
	}
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return false
	}
	repl.Set("http.stepup.reason", reason)
	// Every placeholder an error route may name is known, empty when it
	// does not apply (an unknown one would be written out as it is).
	var challengeURL string
	if prefix := h.engine.Config().PathPrefix + "/challenge/"; strings.HasPrefix(r.URL.Path, prefix) {
		id, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, prefix), "/")
		challengeURL = prefix + id
	}
	repl.Set("http.stepup.challenge_url", challengeURL)
	if _, ok := repl.Get("http.stepup.policy"); !ok {
		repl.Set("http.stepup.policy", "")
	}
	repl.Set(refusedStatus, status)
	return true
}

// MatchPolicy implements stepup.Matcher: it finds the policy that
// applies to the request as the app behind stepup may read it.
//
// A policy matches if its matchers match under any reading of the method
// the app behind could make (stepup.Methods): the method as sent,
// upper-cased ("post" is POST to Symfony and Laravel), HEAD as GET, the
// method an override header or a _method query parameter asks for, and,
// for a POST where it matters, the _method of its body (a body that
// cannot be told is taken to ask for any method). A request whose
// overrides ask for different methods is refused with 400
// (stepup.ErrAmbiguousMethod) when a session or transaction policy
// applies: stepup could not know what the app will execute.
//
// Likewise for the path (pathState): as sent, and, when it holds ';', a
// backslash or '%', with path parameters stripped, backslashes as
// slashes and decoded once more; when it holds ".php", what follows it
// (the PATH_INFO front controllers route on). A request no policy
// matches, on a path without those, costs no allocation. And for the
// query, for a policy whose matchers may read it (queryState): as sent,
// and with every pair under each name an app files it under.
//
// Which policy applies:
//   - Under each one reading, the first enforcing (session or
//     transaction) policy in the order written that matches it.
//   - When the readings fall under different enforcing policies, the
//     request is refused with 400 (stepup.ErrAmbiguousPolicy): stepup
//     cannot know which of them the app will execute, and applying the
//     one would let the other's action through ("POST /checkout/..;/account"
//     is the checkout to one app, /account to another).
//   - A monitor policy applies only when no enforcing policy matches
//     under any reading: it never shadows one. Among monitor policies,
//     the first that matches applies.
func (h *Handler) MatchPolicy(r *http.Request) (*stepup.Policy, error) {
	var clean string
	var cleaned bool
	var methods methodState
	var paths pathState
	var query queryState
	var enforcing, monitor *Policy
	several := false
	for _, p := range h.Policies {
		isMonitor := p.policy.Mode == stepup.Monitor
		if isMonitor && (enforcing != nil || monitor != nil) {
			continue // it could not apply
		}
		if p.prefixes != nil {
			if !cleaned {
				// The same normalization as Caddy's path matcher.
				clean, cleaned = caddyhttp.CleanPath(strings.ToLower(r.URL.Path), true), true
				paths.init(r.URL.Path)
			}
			if p.skip(clean, &paths) {
				continue
			}
		}
		match, err := h.matchPolicy(p, r, &methods, &paths, &query)
		if err != nil {
			return nil, caddyhttp.Error(http.StatusInternalServerError, err)
		}
		switch {
		case !match:
		case isMonitor:
			monitor = p
		case enforcing == nil:
			enforcing = p
		default:
			several = true
		}
		if several {
			break
		}
	}
	p := enforcing
	if several {
		var err error
		if p, err = h.choosePolicy(r, &methods, &paths, &query); err != nil {
			return nil, err
		}
	}
	if p != nil {
		if err := methods.ambiguous(r); err != nil {
			return nil, caddyhttp.Error(http.StatusBadRequest, fmt.Errorf("policy %s: %w", p.Name, err))
		}
	} else if p = monitor; p == nil {
		return nil, nil
	}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set("http.stepup.policy", p.Name)
	}
	return p.policy, nil
}

// choosePolicy finds the enforcing policy of a request that more than
// one enforcing policy matches, under different readings or the same:
// each reading (path and method) falls under the first enforcing policy
// that matches it, and when two readings fall under different ones the
// request is ambiguous (400). Requests come here rarely (overlapping
// policies, or readings that leave one for another), so this tries
// every reading with every policy, without the shortcuts of
// matchPolicy.
func (h *Handler) choosePolicy(r *http.Request, s *methodState, ps *pathState, qs *queryState) (*Policy, error) {
	s.init(r)
	ps.init(r.URL.Path)
	queries := []string{r.URL.RawQuery}
	for _, p := range h.Policies {
		if p.readsQuery && p.policy.Mode != stepup.Monitor {
			if qs.init(r.URL.RawQuery); qs.alt != "" {
				queries = append(queries, qs.alt)
			}
			break
		}
	}
	for _, p := range h.Policies {
		if p.readsParams && p.policy.Mode != stepup.Monitor {
			if qs.initParams(r); qs.params != "" {
				queries = append(queries, qs.params)
			}
			if qs.initBody(r, h.engine.Config().MaxBody); qs.body != "" {
				queries = append(queries, qs.body)
			}
			// A body that cannot be told: each policy applies when it
			// would with the parameters it names (the probes).
			if qs.bodyUnknown {
				base := qs.params
				if base == "" {
					base = qs.base(r.URL.RawQuery)
				}
				for _, p := range h.Policies {
					if p.readsParams && p.paramProbe != "" && p.policy.Mode != stepup.Monitor {
						queries = append(queries, joinQuery(base, p.paramProbe))
					}
				}
			}
			break
		}
	}
	methods := []string{r.Method}
	for i := 0; i < s.n; i++ {
		methods = append(methods, s.reading(i))
	}
	if s.inBody {
		if !s.bodyRead {
			s.bodyRead = true
			s.body, s.bodyKnown = bodyMethodOverrides(r, h.engine.Config().MaxBody)
		}
		more := h.formMethods // a body that cannot be told: any method
		if s.bodyKnown {
			more = nil
			for _, b := range s.body {
				more = append(more, b, stepup.AsGET(b))
			}
		}
		for _, m := range more {
			if !contains(methods, m) {
				methods = append(methods, m)
			}
		}
	}
	paths := append([]string{r.URL.Path}, ps.readings[:ps.n]...)
	u := r.URL
	sentMethod, sentPath, sentRaw, sentQuery := r.Method, u.Path, u.RawPath, u.RawQuery
	defer func() { r.Method, u.Path, u.RawPath, u.RawQuery = sentMethod, sentPath, sentRaw, sentQuery }()
	var chosen *Policy
	var chosenPath, chosenMethod string
	for _, query := range queries {
		u.RawQuery = query
		for i, path := range paths {
			u.Path, u.RawPath = sentPath, sentRaw
			if i > 0 {
				u.Path, u.RawPath = path, ""
			}
			for _, m := range methods {
				r.Method = m
				for _, p := range h.Policies {
					if p.policy.Mode == stepup.Monitor {
						continue
					}
					ok := len(p.matchers) == 0
					if !ok {
						var err error
						if ok, err = p.matchers.AnyMatchWithError(r); err != nil {
							return nil, caddyhttp.Error(http.StatusInternalServerError, err)
						}
					}
					if !ok {
						continue
					}
					switch {
					case chosen == nil:
						chosen, chosenPath, chosenMethod = p, path, m
					case p != chosen:
						err := fmt.Errorf("%w: read as %s %q it is for policy %s, read as %s %q for policy %s; "+
							"stepup cannot know which the app will execute",
							stepup.ErrAmbiguousPolicy, chosenMethod, chosenPath, chosen.Name, m, path, p.Name)
						return nil, caddyhttp.Error(http.StatusBadRequest, err)
					}
					break
				}
			}
		}
	}
	if qs.bodyUnknown {
		// A body that cannot be told may carry any parameter: a policy
		// whose other matchers (an expression) may read it applies when
		// the rest of it matches, beside the one chosen.
		r.Method, u.Path, u.RawPath, u.RawQuery = sentMethod, sentPath, sentRaw, sentQuery
		for _, p := range h.Policies {
			if !p.opaqueParams || p.policy.Mode == stepup.Monitor || p == chosen {
				continue
			}
			ok, err := h.matchPolicy(p, r, s, ps, qs)
			switch {
			case err != nil:
				return nil, caddyhttp.Error(http.StatusInternalServerError, err)
			case !ok:
			case chosen == nil:
				chosen = p
			default:
				err := fmt.Errorf("%w: with a body stepup cannot read it may be for policy %s or policy %s; "+
					"stepup cannot know which the app will execute", stepup.ErrAmbiguousPolicy, chosen.Name, p.Name)
				return nil, caddyhttp.Error(http.StatusBadRequest, err)
			}
		}
	}
	return chosen, nil
}

// skip reports whether the path prefilter rules out p for a request
// whose path cleaned and lower-cased is clean: neither it nor another
// reading of the path (paths, initialized) starts with one of p's
// prefixes.
func (p *Policy) skip(clean string, paths *pathState) bool {
	return !hasAnyPrefix(clean, p.prefixes) && !paths.anyHasPrefix(p.prefixes)
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// clientIP is the client address as Caddy determined it, honouring the
// server's trusted_proxies.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	i := strings.LastIndexByte(r.RemoteAddr, ':')
	if i < 0 {
		return r.RemoteAddr
	}
	return strings.Trim(r.RemoteAddr[:i], "[]")
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ stepup.Matcher              = (*Handler)(nil)
)
