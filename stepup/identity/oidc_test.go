package identity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-stepup/caddy-stepup/stepup/identity/oidctest"
)

// newOIDC returns a source for is reading the token from the cookie
// id_token or the Authorization header, with fast discovery retries, and
// the log it writes.
func newOIDC(t *testing.T, is *oidctest.Issuer, edit func(*OIDCConfig)) (*OIDC, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	cfg := OIDCConfig{
		Issuer:   is.URL,
		ClientID: oidctest.ClientID,
		Cookie:   "id_token",
		Header:   "Authorization",
		Timeout:  2 * time.Second,
		Logger:   zap.New(core),
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := NewOIDC(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.retryMin, s.retryMax = 20*time.Millisecond, 100*time.Millisecond
	return s, logs
}

func cookieRequest(name, value string) *http.Request {
	r := httptest.NewRequest("GET", "http://shop.example/account?tab=cards", nil)
	r.AddCookie(&http.Cookie{Name: name, Value: value})
	return r
}

func bearerRequest(tok string) *http.Request {
	r := httptest.NewRequest("GET", "http://shop.example/api/cards", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

func TestOIDCValidTokens(t *testing.T) {
	is, rsKey := oidctest.New(t)
	esKey := is.NewKey(t, jose.ES256)
	is.Publish(rsKey, esKey)
	s, logs := newOIDC(t, is, nil)

	for name, tc := range map[string]struct {
		key   *oidctest.Key
		extra map[string]any
		req   func(string) *http.Request
		want  Identity
	}{
		"RS256 cookie with sid": {rsKey, map[string]any{"sid": "sess-1", "phone_number": "+14155550100", "email": "a@example.com", "email_verified": true},
			func(tok string) *http.Request { return cookieRequest("id_token", tok) },
			Identity{User: "alice", Session: "sess-1", Phone: "+14155550100", Email: "a@example.com"}},
		"ES256 bearer": {esKey, map[string]any{"sid": "sess-2", "phone_number": "+14155550101"},
			bearerRequest,
			Identity{User: "alice", Session: "sess-2", Phone: "+14155550101"}},
		"the same token in header and cookie": {rsKey, map[string]any{"sid": "sess-4"},
			func(tok string) *http.Request {
				r := bearerRequest(tok)
				r.AddCookie(&http.Cookie{Name: "id_token", Value: tok})
				return r
			},
			Identity{User: "alice", Session: "sess-4"}},
		"basic auth beside the cookie": {rsKey, map[string]any{"sid": "sess-5"},
			func(tok string) *http.Request {
				r := cookieRequest("id_token", tok)
				r.SetBasicAuth("staging", "pw")
				return r
			},
			Identity{User: "alice", Session: "sess-5"}},
		"the same token in the query": {rsKey, map[string]any{"sid": "sess-6"},
			func(tok string) *http.Request { r := bearerRequest(tok); r.URL.RawQuery = "id_token=" + tok; return r },
			Identity{User: "alice", Session: "sess-6"}},
		"no phone claim": {rsKey, map[string]any{"sid": "sess-3"},
			func(tok string) *http.Request { return cookieRequest("id_token", tok) },
			Identity{User: "alice", Session: "sess-3"}},
		"unverified email dropped": {rsKey, map[string]any{"sid": "s", "phone_number": "+14155550100", "email": "a@example.com", "email_verified": false},
			bearerRequest,
			Identity{User: "alice", Session: "s", Phone: "+14155550100"}},
		"phone claim null": {rsKey, map[string]any{"sid": "s", "phone_number": json.RawMessage("null")},
			bearerRequest,
			Identity{User: "alice", Session: "s"}},
	} {
		tok := is.Token(t, tc.key, "alice", tc.extra)
		id, err := s.Identify(tc.req(tok))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if id != tc.want {
			t.Errorf("%s: identity = %+v, want %+v", name, id, tc.want)
		}
	}
	if is.DiscoveryHits() != 1 || is.KeysHits() != 1 {
		t.Errorf("discovery fetched %d times, keys %d times; want 1 and 1 (cached)", is.DiscoveryHits(), is.KeysHits())
	}
	for _, e := range logs.All() {
		if strings.Contains(e.Message+" "+fieldsString(e), "4155550") {
			t.Errorf("log entry with a phone number: %s %v", e.Message, e.Context)
		}
	}
}

// Without a sid claim the session is a hash of the token: never the
// token itself.
func TestOIDCSessionFromTokenHash(t *testing.T) {
	is, k := oidctest.New(t)
	s, _ := newOIDC(t, is, nil)
	tok := is.Token(t, k, "alice", map[string]any{"phone_number": "+14155550100"})
	id, err := s.Identify(cookieRequest("id_token", tok))
	if err != nil {
		t.Fatal(err)
	}
	if id.Session != Hash(tok) || len(id.Session) != 64 || strings.Contains(tok, id.Session) {
		t.Fatalf("session = %q, want the SHA-256 of the token", id.Session)
	}
	// A custom session claim, and one too long to keep as is.
	s2, _ := newOIDC(t, is, func(c *OIDCConfig) { c.SessionClaim = "session_state" })
	long := strings.Repeat("x", 300)
	id, err = s2.Identify(bearerRequest(is.Token(t, k, "alice", map[string]any{"session_state": long})))
	if err != nil {
		t.Fatal(err)
	}
	if id.Session != Hash(long) {
		t.Fatalf("long session claim kept as %q", id.Session)
	}
}

func TestOIDCRefusesBadTokens(t *testing.T) {
	is, k := oidctest.New(t)
	s, logs := newOIDC(t, is, nil)
	other := is.NewKey(t, jose.RS256) // never published
	valid := is.Token(t, k, "alice", map[string]any{"sid": "s1"})
	parts := strings.Split(valid, ".")
	forgedPayload := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"` + is.URL + `","aud":"shop","sub":"mallory","exp":` +
		"9999999999" + `}`))

	for name, tc := range map[string]struct {
		token string
		want  string
	}{
		"expired":          {is.Token(t, k, "alice", map[string]any{"exp": time.Now().Add(-time.Minute).Unix(), "iat": time.Now().Add(-time.Hour).Unix()}), "expired"},
		"wrong audience":   {is.Token(t, k, "alice", map[string]any{"aud": "another-app"}), "audience"},
		"wrong issuer":     {is.Token(t, k, "alice", map[string]any{"iss": "http://127.0.0.1:1"}), "different provider"},
		"alg none":         {oidctest.Unsigned(is.Claims("alice")), "malformed"},
		"unpublished key":  {is.Token(t, other, "alice", nil), "signature not verified"},
		"tampered payload": {parts[0] + "." + forgedPayload + "." + parts[2], "signature not verified"},
		"no sub":           {is.Token(t, k, "", nil), "no sub"},
		"not yet valid":    {is.Token(t, k, "alice", map[string]any{"nbf": time.Now().Add(time.Hour).Unix()}), "nbf"},
		"not a JWT":        {"hello", "not a signed JWT"},
		"too large":        {strings.Repeat("a", MaxTokenLen) + ".b.c", "larger than"},
	} {
		for _, req := range []*http.Request{cookieRequest("id_token", tc.token), bearerRequest(tc.token)} {
			id, err := s.Identify(req)
			if !errors.Is(err, ErrNoIdentity) {
				t.Errorf("%s: identity %+v, error %v; want ErrNoIdentity", name, id, err)
				continue
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: error %q does not say %q", name, err, tc.want)
			}
			for _, p := range strings.Split(tc.token, ".") {
				if len(p) > 8 && strings.Contains(err.Error(), p) {
					t.Errorf("%s: error contains a piece of the token", name)
				}
			}
		}
	}
	for name, r := range map[string]*http.Request{
		"no token":     httptest.NewRequest("GET", "/", nil),
		"basic auth":   func() *http.Request { r := httptest.NewRequest("GET", "/", nil); r.SetBasicAuth("a", "b"); return r }(),
		"other cookie": cookieRequest("session", valid),
	} {
		if _, err := s.Identify(r); !errors.Is(err, ErrNoIdentity) {
			t.Errorf("%s: error %v, want ErrNoIdentity", name, err)
		}
	}
	for _, e := range logs.All() {
		for _, p := range parts {
			if strings.Contains(e.Message+fieldsString(e), p) {
				t.Errorf("log entry with a piece of a token: %s", e.Message)
			}
		}
	}
}

// Only the configured algorithms pass.
func TestOIDCAlgorithms(t *testing.T) {
	is, rs := oidctest.New(t)
	es := is.NewKey(t, jose.ES256)
	is.Publish(rs, es)
	s, _ := newOIDC(t, is, func(c *OIDCConfig) { c.Algorithms = []string{"ES256"} })
	if _, err := s.Identify(bearerRequest(is.Token(t, rs, "alice", nil))); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("RS256 token with algorithms ES256: %v", err)
	}
	if _, err := s.Identify(bearerRequest(is.Token(t, es, "alice", nil))); err != nil {
		t.Fatalf("ES256 token: %v", err)
	}
}

// A key rotation at the issuer is picked up without restart; a token
// signed by the rotated-out key is then refused.
func TestOIDCKeyRotation(t *testing.T) {
	is, oldKey := oidctest.New(t)
	s, _ := newOIDC(t, is, nil)
	oldTok := is.Token(t, oldKey, "alice", nil)
	if _, err := s.Identify(bearerRequest(oldTok)); err != nil {
		t.Fatal(err)
	}
	newKey := is.NewKey(t, jose.ES256)
	is.Publish(newKey)
	hits := is.KeysHits()
	if _, err := s.Identify(bearerRequest(is.Token(t, newKey, "alice", nil))); err != nil {
		t.Fatalf("token signed by the new key: %v", err)
	}
	if is.KeysHits() != hits+1 {
		t.Fatalf("keys fetched %d times for the new key, want once", is.KeysHits()-hits)
	}
	// go-oidc stores the keys it fetched just after handing them to the
	// waiting request: give it that moment before checking that the old
	// key is gone from its cache.
	time.Sleep(50 * time.Millisecond)
	if _, err := s.Identify(bearerRequest(oldTok)); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("token signed by the rotated-out key: %v", err)
	}
}

// The identity provider is down when the source is made (and nothing
// contacts it then): requests with a token fail closed (an error that is
// not ErrNoIdentity), requests without one are simply not signed in, and
// once it is up the source works without restart.
func TestOIDCIssuerDownAtStart(t *testing.T) {
	is := oidctest.NewDown(t)
	k := is.NewKey(t, jose.RS256)
	is.Publish(k)
	s, logs := newOIDC(t, is, nil)
	tok := is.Token(t, k, "alice", map[string]any{"phone_number": "+14155550100"})

	_, err := s.Identify(cookieRequest("id_token", tok))
	if err == nil || errors.Is(err, ErrNoIdentity) || !errors.Is(err, errUnavailable) {
		t.Fatalf("issuer down: %v, want a fail-closed error", err)
	}
	// During the backoff, at once and still closed.
	start := time.Now()
	if _, err := s.Identify(cookieRequest("id_token", tok)); err == nil || errors.Is(err, ErrNoIdentity) {
		t.Fatalf("issuer down, in backoff: %v", err)
	} else if time.Since(start) > 500*time.Millisecond {
		t.Fatalf("a request in backoff waited %s", time.Since(start))
	}
	if _, err := s.Identify(httptest.NewRequest("GET", "/", nil)); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("no token, issuer down: %v, want ErrNoIdentity", err)
	}
	if logs.FilterMessage("oidc discovery failed, protected requests fail closed until it works").Len() == 0 {
		t.Error("the failed discovery was not logged")
	}

	if err := is.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		id, err := s.Identify(cookieRequest("id_token", tok))
		if err == nil {
			if id.User != "alice" || id.Phone != "+14155550100" {
				t.Fatalf("identity after recovery = %+v", id)
			}
			break
		}
		if errors.Is(err, ErrNoIdentity) {
			t.Fatalf("while recovering: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery within 5s: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Discovery is done once; an outage after it does not matter while
	// the keys are cached (go-oidc stores them just after answering the
	// request that fetched them: give it that moment).
	time.Sleep(50 * time.Millisecond)
	is.Stop()
	if _, err := s.Identify(cookieRequest("id_token", tok)); err != nil {
		t.Fatalf("issuer down after discovery, key cached: %v", err)
	}
	// A token signed with a key not seen yet cannot be checked: closed,
	// not "forged".
	_, err = s.Identify(bearerRequest(is.Token(t, is.NewKey(t, jose.ES256), "alice", nil)))
	if err == nil || errors.Is(err, ErrNoIdentity) {
		t.Fatalf("unknown key with the key set unreachable: %v, want a fail-closed error", err)
	}
}

// NewOIDC and a request without a token contact nobody.
func TestOIDCLazy(t *testing.T) {
	is, _ := oidctest.New(t)
	s, _ := newOIDC(t, is, nil)
	_, _ = s.Identify(httptest.NewRequest("GET", "/", nil))
	if is.DiscoveryHits() != 0 || is.KeysHits() != 0 {
		t.Fatalf("contacted the issuer: %d discovery, %d keys", is.DiscoveryHits(), is.KeysHits())
	}
}

// Many first requests at once run one discovery.
func TestOIDCConcurrentDiscovery(t *testing.T) {
	is, k := oidctest.New(t)
	s, _ := newOIDC(t, is, nil)
	tok := is.Token(t, k, "alice", nil)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Identify(bearerRequest(tok))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if is.DiscoveryHits() != 1 {
		t.Fatalf("%d discoveries, want 1", is.DiscoveryHits())
	}
}

// A discovery document for another issuer is a configuration error:
// fail closed.
func TestOIDCIssuerMismatch(t *testing.T) {
	is, k := oidctest.New(t)
	s, _ := newOIDC(t, is, func(c *OIDCConfig) { c.Issuer = is.URL + "/" })
	_, err := s.Identify(bearerRequest(is.Token(t, k, "alice", nil)))
	if err == nil || errors.Is(err, ErrNoIdentity) || !strings.Contains(err.Error(), "did not match") {
		t.Fatalf("issuer mismatch: %v", err)
	}
}

// A request that gives up while discovery runs returns at once.
func TestOIDCDiscoveryHonoursRequestContext(t *testing.T) {
	stall := make(chan struct{})
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	defer idp.Close()
	defer close(stall)
	s, err := NewOIDC(OIDCConfig{Issuer: idp.URL, ClientID: "shop", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	r := bearerRequest("a.b.c").WithContext(ctx)
	start := time.Now()
	if _, err := s.Identify(r); err == nil || errors.Is(err, ErrNoIdentity) {
		t.Fatalf("stalled discovery: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("waited %s", d)
	}
}

func TestOIDCPhoneVerification(t *testing.T) {
	is, k := oidctest.New(t)
	strict, _ := newOIDC(t, is, func(c *OIDCConfig) { c.RequireVerifiedPhone = true })
	lax, _ := newOIDC(t, is, nil)
	for name, tc := range map[string]struct {
		extra      map[string]any
		strictErr  error
		wantPhone  string
		laxIsFine  bool
		strictOnly bool
	}{
		"verified true":     {map[string]any{"phone_number": "+14155550100", "phone_number_verified": true}, nil, "+14155550100", true, false},
		"verified \"true\"": {map[string]any{"phone_number": "+14155550100", "phone_number_verified": "true"}, nil, "+14155550100", true, false},
		"verified false":    {map[string]any{"phone_number": "+14155550100", "phone_number_verified": false}, ErrPhoneUnverified, "", true, false},
		"verified absent":   {map[string]any{"phone_number": "+14155550100"}, ErrPhoneUnverified, "", true, false},
		"no phone at all":   {map[string]any{"phone_number_verified": false}, nil, "", true, false},
	} {
		tok := is.Token(t, k, "alice", tc.extra)
		id, err := strict.Identify(bearerRequest(tok))
		if !errors.Is(err, tc.strictErr) || (tc.strictErr == nil && err != nil) {
			t.Errorf("%s: strict: %v, want %v", name, err, tc.strictErr)
		}
		if err == nil && id.Phone != tc.wantPhone {
			t.Errorf("%s: strict phone %q", name, id.Phone)
		}
		if errors.Is(err, ErrNoIdentity) {
			t.Errorf("%s: an unverified phone is not a missing identity", name)
		}
		if _, err := lax.Identify(bearerRequest(tok)); err != nil {
			t.Errorf("%s: without require_verified_phone: %v", name, err)
		}
	}
}

func TestOIDCTokenPlaces(t *testing.T) {
	is, k := oidctest.New(t)
	tok := is.Token(t, k, "alice", nil)
	headerOnly, _ := newOIDC(t, is, func(c *OIDCConfig) { c.Cookie = "" })
	cookieOnly, _ := newOIDC(t, is, func(c *OIDCConfig) { c.Header = "" })
	custom, _ := newOIDC(t, is, func(c *OIDCConfig) { c.Header = "X-Id-Token"; c.Cookie = "" })
	defaulted, err := NewOIDC(OIDCConfig{Issuer: is.URL, ClientID: oidctest.ClientID})
	if err != nil {
		t.Fatal(err)
	}
	raw := httptest.NewRequest("GET", "/", nil)
	raw.Header.Set("X-Id-Token", tok)
	for name, tc := range map[string]struct {
		s    *OIDC
		r    *http.Request
		pass bool
	}{
		"header source, bearer":     {headerOnly, bearerRequest(tok), true},
		"header source, cookie":     {headerOnly, cookieRequest("id_token", tok), false},
		"cookie source, cookie":     {cookieOnly, cookieRequest("id_token", tok), true},
		"cookie source, bearer":     {cookieOnly, bearerRequest(tok), false},
		"custom header, bare token": {custom, raw, true},
		"default is Authorization":  {defaulted, bearerRequest(tok), true},
		"Authorization needs Bearer": {headerOnly, func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Authorization", tok)
			return r
		}(), false},
		"bearer scheme case-insensitive": {headerOnly, func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Authorization", "bearer "+tok)
			return r
		}(), true},
	} {
		_, err := tc.s.Identify(tc.r)
		if tc.pass != (err == nil) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestNewOIDCErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  OIDCConfig
		want string
	}{
		"no issuer":               {OIDCConfig{ClientID: "a"}, "issuer URL is required"},
		"issuer not URL":          {OIDCConfig{Issuer: "sso.example.com", ClientID: "a"}, "want an http(s) URL"},
		"issuer query":            {OIDCConfig{Issuer: "https://sso.example.com/?x=1", ClientID: "a"}, "want an http(s) URL"},
		"no client id":            {OIDCConfig{Issuer: "https://sso.example.com"}, "client_id is required"},
		"alg none":                {OIDCConfig{Issuer: "https://sso.example.com", ClientID: "a", Algorithms: []string{"none"}}, `algorithm "none" not allowed`},
		"alg HS256":               {OIDCConfig{Issuer: "https://sso.example.com", ClientID: "a", Algorithms: []string{"HS256"}}, `algorithm "HS256" not allowed`},
		"bad cookie":              {OIDCConfig{Issuer: "https://sso.example.com", ClientID: "a", Cookie: "id token"}, "invalid cookie name"},
		"bad header":              {OIDCConfig{Issuer: "https://sso.example.com", ClientID: "a", Header: "X:Y"}, "invalid header name"},
		"negative max token age":  {OIDCConfig{Issuer: "https://sso.example.com", ClientID: "a", MaxTokenAge: -time.Hour}, "max token age"},
		"max token age too long":  {OIDCConfig{Issuer: "https://sso.example.com", ClientID: "a", MaxTokenAge: 31 * 24 * time.Hour}, "max token age"},
		"bad login url":           {OIDCConfig{Issuer: "https://sso.example.com", ClientID: "a", LoginURL: "javascript:alert(1)"}, "login URL"},
		"protocol-relative login": {OIDCConfig{Issuer: "https://sso.example.com", ClientID: "a", LoginURL: "//evil.example/"}, "login URL"},
	} {
		_, err := NewOIDC(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

func TestLoginURL(t *testing.T) {
	s, err := NewOIDC(OIDCConfig{Issuer: "https://sso.example.com", ClientID: "a", LoginURL: "https://sso.example.com/login?next={return}"})
	if err != nil {
		t.Fatal(err)
	}
	var _ LoginRedirector = s
	r := httptest.NewRequest("GET", "http://shop.example/account/cards?tab=a&b=c", nil)
	if got, want := s.LoginURL(r), "https://sso.example.com/login?next=%2Faccount%2Fcards%3Ftab%3Da%26b%3Dc"; got != want {
		t.Fatalf("LoginURL = %q, want %q", got, want)
	}
	plain, _ := NewOIDC(OIDCConfig{Issuer: "https://sso.example.com", ClientID: "a"})
	if plain.LoginURL(r) != "" {
		t.Fatal("LoginURL without login_url is not empty")
	}
}

func fieldsString(e observer.LoggedEntry) string {
	var b strings.Builder
	for k, v := range e.ContextMap() {
		b.WriteString(k)
		b.WriteString("=")
		b.WriteString(strings.TrimSpace(strings.ReplaceAll(toString(v), "\n", " ")))
		b.WriteString(" ")
	}
	return b.String()
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case error:
		return x.Error()
	}
	return ""
}

// Forged tokens make go-oidc fetch the key set again, one fetch each;
// the retry after a failed check adds at most one per second.
func TestOIDCForgedTokensFetchBound(t *testing.T) {
	is, k := oidctest.New(t)
	s, _ := newOIDC(t, is, nil)
	if _, err := s.Identify(bearerRequest(is.Token(t, k, "alice", nil))); err != nil {
		t.Fatal(err)
	}
	forger := is.NewKey(t, jose.RS256)
	before := is.KeysHits()
	start := time.Now()
	const n = 20
	for range n {
		if _, err := s.Identify(bearerRequest(is.Token(t, forger, "mallory", nil))); !errors.Is(err, ErrNoIdentity) {
			t.Fatalf("forged token: %v", err)
		}
	}
	retries := int(time.Since(start)/retryEvery) + 1
	if got := is.KeysHits() - before; got > n+retries {
		t.Fatalf("%d forged tokens caused %d key fetches, want at most %d", n, got, n+retries)
	}
}

// Over-long or malformed identity values in a valid token are
// ErrBadIdentity (the engine answers 400), never taken for an outage,
// never silently dropped, and the error never carries the value.
func TestOIDCBadIdentityValues(t *testing.T) {
	is, k := oidctest.New(t)
	s, _ := newOIDC(t, is, nil)
	for name, tc := range map[string]struct {
		sub   string
		extra map[string]any
	}{
		"300-byte sub":         {"u" + strings.Repeat("7", 299), nil},
		"40-character phone":   {"alice", map[string]any{"phone_number": "+" + strings.Repeat("7", 39)}},
		"300-byte email":       {"alice", map[string]any{"email": strings.Repeat("7", 290) + "@example.com"}},
		"phone not a string":   {"alice", map[string]any{"phone_number": 14155550100}},
		"email not a string":   {"alice", map[string]any{"email": []string{"a@example.com"}}},
		"control chars in sub": {"alice\u0000admin", nil},
		"newline in phone":     {"alice", map[string]any{"phone_number": "+1415555\n0100"}},
	} {
		tok := is.Token(t, k, tc.sub, tc.extra)
		for _, r := range []*http.Request{bearerRequest(tok), cookieRequest("id_token", tok)} {
			id, err := s.Identify(r)
			if !errors.Is(err, ErrBadIdentity) || errors.Is(err, ErrNoIdentity) {
				t.Errorf("%s: %+v %v, want ErrBadIdentity", name, id, err)
				continue
			}
			if strings.Contains(err.Error(), "7777777") || strings.Contains(err.Error(), "admin") {
				t.Errorf("%s: the error %q carries the value", name, err)
			}
		}
	}
}

// The credential stepup verifies must be the one the app reads: a
// request that carries a token in a way the app could read another one
// is refused before anything is verified or sent.
func TestOIDCAmbiguousCredential(t *testing.T) {
	is, k := oidctest.New(t)
	both, _ := newOIDC(t, is, nil) // cookie id_token and header Authorization
	cookieOnly, _ := newOIDC(t, is, func(c *OIDCConfig) { c.Header = "" })
	custom, _ := newOIDC(t, is, func(c *OIDCConfig) { c.Header = "X-Id-Token"; c.Cookie = "" })
	mallory := is.Token(t, k, "mallory", map[string]any{"phone_number": "+14155550666"})
	victim := is.Token(t, k, "victim", map[string]any{"phone_number": "+14155550100"})

	req := func(lines ...string) *http.Request {
		r := httptest.NewRequest("GET", "/account", nil)
		for _, l := range lines {
			name, v, _ := strings.Cut(l, ": ")
			r.Header.Add(name, v)
		}
		return r
	}
	for name, tc := range map[string]struct {
		s *OIDC
		r *http.Request
	}{
		"bearer and a different cookie": {both, req("Authorization: Bearer "+mallory, "Cookie: id_token="+victim)},
		"two Authorization lines":       {both, req("Authorization: Bearer "+mallory, "Authorization: Bearer "+victim, "Cookie: id_token="+mallory)},
		"two Authorization lines alone": {both, req("Authorization: Bearer "+mallory, "Authorization: Bearer "+mallory)},
		"two tokens on one line":        {both, req("Authorization: Bearer " + mallory + ", Bearer " + victim)},
		"two tokens, space":             {both, req("Authorization: Bearer " + mallory + " " + victim)},
		"basic hiding a bearer":         {both, req("Authorization: Basic eDp5, Bearer "+victim, "Cookie: id_token="+mallory)},
		"cookie twice":                  {both, req("Cookie: id_token=" + mallory + "; id_token=" + victim)},
		"cookie in two lines":           {both, req("Cookie: id_token="+mallory, "Cookie: id_token="+victim)},
		"cookie, other case":            {both, req("Cookie: id_token=" + mallory + "; ID_TOKEN=" + victim)},
		"cookie, encoded name":          {both, req("Cookie: id_token=" + mallory + "; id%5Ftoken=" + victim)},
		"cookie, dotted name":           {both, req("Cookie: id_token=" + mallory + "; id.token=" + victim)},
		"cookie after a comma":          {both, req("Cookie: x=1, id_token=" + victim + "; id_token=" + mallory)},
		"cookie quoted":                 {both, req(`Cookie: id_token="` + mallory + `"`)},
		"cookie source, other bearer":   {cookieOnly, req("Authorization: Bearer "+victim, "Cookie: id_token="+mallory)},
		"cookie source, opaque bearer":  {cookieOnly, req("Authorization: Bearer opaque-access-token", "Cookie: id_token="+mallory)},
		"query id_token":                {both, req("Authorization: Bearer " + mallory)},
		"query access_token":            {cookieOnly, req("Cookie: id_token=" + mallory)},
		"custom header twice":           {custom, req("X-Id-Token: "+mallory, "X-Id-Token: "+victim)},
		"custom header, underscore":     {custom, req("X-Id-Token: "+mallory, "X_Id_Token: "+victim)},
		"custom header, other bearer":   {custom, req("X-Id-Token: "+mallory, "Authorization: Bearer "+victim)},
	} {
		switch name {
		case "query id_token":
			tc.r.URL.RawQuery = "tab=cards&id_token=" + victim
		case "query access_token":
			tc.r.URL.RawQuery = "access_token=" + victim
		}
		id, err := tc.s.Identify(tc.r)
		if !errors.Is(err, ErrAmbiguousCredential) || errors.Is(err, ErrNoIdentity) {
			t.Errorf("%s: %+v %v, want ErrAmbiguousCredential", name, id, err)
			continue
		}
		for _, tok := range []string{mallory, victim} {
			for _, p := range strings.Split(tok, ".") {
				if strings.Contains(err.Error(), p) {
					t.Errorf("%s: the error carries a piece of a token", name)
				}
			}
		}
	}
	if n := is.DiscoveryHits(); n != 0 {
		t.Errorf("the issuer was asked %d times: ambiguous requests must be refused before any verification", n)
	}
}

// azp: a token issued to another client that also lists us in aud is
// not ours (OIDC Core 3.1.3.7, steps 4 and 5).
func TestOIDCAuthorizedParty(t *testing.T) {
	is, k := oidctest.New(t)
	s, _ := newOIDC(t, is, func(c *OIDCConfig) { c.ClientID = "shop-web" })
	for name, tc := range map[string]struct {
		extra map[string]any
		ok    bool
	}{
		"one audience, no azp":          {map[string]any{"aud": "shop-web"}, true},
		"one audience, our azp":         {map[string]any{"aud": "shop-web", "azp": "shop-web"}, true},
		"several audiences, our azp":    {map[string]any{"aud": []string{"other-app", "shop-web"}, "azp": "shop-web"}, true},
		"several audiences, other azp":  {map[string]any{"aud": []string{"other-app", "shop-web"}, "azp": "other-app"}, false},
		"several audiences, no azp":     {map[string]any{"aud": []string{"other-app", "shop-web"}}, false},
		"one audience, other azp":       {map[string]any{"aud": "shop-web", "azp": "other-app"}, false},
		"azp not a string":              {map[string]any{"aud": "shop-web", "azp": []string{"shop-web"}}, false},
		"audience array of one, no azp": {map[string]any{"aud": []string{"shop-web"}}, true},
	} {
		_, err := s.Identify(bearerRequest(is.Token(t, k, "alice", tc.extra)))
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v", name, err)
		case !tc.ok && !errors.Is(err, ErrNoIdentity):
			t.Errorf("%s: %v, want ErrNoIdentity", name, err)
		case !tc.ok && !strings.Contains(err.Error(), "azp"):
			t.Errorf("%s: %q does not name azp", name, err)
		}
	}
}

// Tokens issued in the future, or valid for longer than max_token_age,
// are refused.
func TestOIDCTokenAge(t *testing.T) {
	is, k := oidctest.New(t)
	s, _ := newOIDC(t, is, nil)
	long, _ := newOIDC(t, is, func(c *OIDCConfig) { c.MaxTokenAge = 48 * time.Hour })
	now := time.Now()
	at := func(d time.Duration) int64 { return now.Add(d).Unix() }
	for name, tc := range map[string]struct {
		s     *OIDC
		extra map[string]any
		want  string // "" when accepted
	}{
		"an hour":                         {s, nil, ""},
		"iat a minute ahead (skew)":       {s, map[string]any{"iat": at(time.Minute)}, ""},
		"iat ten minutes ahead":           {s, map[string]any{"iat": at(10 * time.Minute)}, "issued in the future"},
		"iat a year ahead":                {s, map[string]any{"iat": at(365 * 24 * time.Hour), "exp": at(366 * 24 * time.Hour)}, "issued in the future"},
		"exp 23h ahead":                   {s, map[string]any{"exp": at(23 * time.Hour)}, ""},
		"exp 24h ahead, iat a minute ago": {s, map[string]any{"iat": at(-time.Minute), "exp": at(24*time.Hour - time.Minute)}, ""},
		"exp 25h ahead":                   {s, map[string]any{"exp": at(25 * time.Hour)}, "max_token_age"},
		"exp 25h ahead, no iat":           {s, map[string]any{"iat": nil, "exp": at(25 * time.Hour)}, "max_token_age"},
		"exp in 2100":                     {s, map[string]any{"exp": time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix()}, "max_token_age"},
		"lifetime 25h, issued 20h ago":    {s, map[string]any{"iat": at(-20 * time.Hour), "exp": at(5 * time.Hour)}, "max_token_age"},
		"exp 25h ahead, max age 48h":      {long, map[string]any{"exp": at(25 * time.Hour)}, ""},
	} {
		_, err := tc.s.Identify(bearerRequest(is.Token(t, k, "alice", tc.extra)))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.want != "" && (!errors.Is(err, ErrNoIdentity) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want ErrNoIdentity saying %q", name, err, tc.want)
		}
	}
}

// HeaderNames names the header the token is read from, so that the
// engine takes it from the request that triggers a replay and never from
// a trailer.
func TestOIDCHeaderNames(t *testing.T) {
	for _, c := range []struct {
		cfg  OIDCConfig
		want string
	}{
		{OIDCConfig{Issuer: "https://sso.example.com", ClientID: "a"}, "Authorization"},
		{OIDCConfig{Issuer: "https://sso.example.com", ClientID: "a", Header: "x-id-token"}, "X-Id-Token"},
		{OIDCConfig{Issuer: "https://sso.example.com", ClientID: "a", Cookie: "id_token"}, ""},
	} {
		s, err := NewOIDC(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(s.HeaderNames(), ","); got != c.want {
			t.Errorf("%+v: HeaderNames = %q, want %q", c.cfg, got, c.want)
		}
	}
}
