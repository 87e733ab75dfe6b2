package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
	"github.com/caddy-stepup/caddy-stepup/stepup/identity/oidctest"
)

// identitySite wraps an identity block into a minimal stepup block.
func identitySite(block string) string {
	return "stepup {\n\tsecret 0123456789abcdef0123456789abcdef\n" + block + "\n\tsender log\n}"
}

// parseIdentityJSON parses a stepup block and returns the JSON of its
// identity source.
func parseIdentityJSON(t *testing.T, input string) (string, error) {
	t.Helper()
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
		return "", err
	}
	return string(h.IdentityRaw), nil
}

// provisionIdentity loads a source module from its JSON the way the
// handler does, provisioned with a fresh Caddy context.
func provisionIdentity(t *testing.T, raw string) (any, error) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	h := &Handler{IdentityRaw: json.RawMessage(raw)}
	return ctx.LoadModule(h, "IdentityRaw")
}

// assertRoundTrip checks that a source's JSON (as adapted from the
// Caddyfile) loads into mod and marshals back to the same JSON.
func assertRoundTrip(t *testing.T, name, raw string, mod any) {
	t.Helper()
	var in map[string]any
	if err := json.Unmarshal([]byte(raw), &in); err != nil {
		t.Fatal(err)
	}
	delete(in, "source")
	stripped, _ := json.Marshal(in)
	if err := json.Unmarshal(stripped, mod); err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	again, _ := json.Marshal(mod)
	var out map[string]any
	_ = json.Unmarshal(again, &out)
	a, _ := json.Marshal(in)
	b, _ := json.Marshal(out)
	if string(a) != string(b) {
		t.Errorf("%s: JSON round trip changed the source:\n%s\n%s", name, a, b)
	}
}

func TestOIDCIdentityCaddyfile(t *testing.T) {
	for name, tc := range map[string]struct {
		block string
		want  string
	}{
		"minimal": {"\tidentity oidc {\n\t\tissuer https://sso.example.com/realms/shop\n\t\tclient_id shop\n\t}",
			`{"client_id":"shop","issuer":"https://sso.example.com/realms/shop","source":"oidc"}`},
		"full": {`	identity oidc {
		issuer {env.OIDC_ISSUER}
		client_id {env.OIDC_CLIENT}
		cookie KC_ID_TOKEN
		header Authorization
		phone_claim mobile
		phone_verified_claim mobile_verified
		require_verified_phone
		email_claim mail
		session_claim session_state
		algorithms RS256 ES256
		login_url "https://sso.example.com/login?next={return}"
		max_token_age 12h
		timeout 5s
	}`, `{"algorithms":["RS256","ES256"],"client_id":"{env.OIDC_CLIENT}","cookie":"KC_ID_TOKEN","email_claim":"mail",` +
			`"header":"Authorization","issuer":"{env.OIDC_ISSUER}","login_url":"https://sso.example.com/login?next={return}",` +
			`"max_token_age":43200000000000,"phone_claim":"mobile","phone_verified_claim":"mobile_verified","require_verified_phone":true,` +
			`"session_claim":"session_state","source":"oidc","timeout":5000000000}`},
	} {
		got, err := parseIdentityJSON(t, identitySite(tc.block))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", name, got, tc.want)
		}
		assertRoundTrip(t, name, got, new(OIDCIdentity))
	}
}

func TestOIDCIdentityCaddyfileErrors(t *testing.T) {
	block := func(lines string) string {
		return identitySite("\tidentity oidc {\n" + lines + "\n\t}")
	}
	base := "\t\tissuer https://sso.example.com\n\t\tclient_id shop\n"
	for name, tc := range map[string]struct {
		input string
		want  string
	}{
		"unknown option":         {block(base + "\t\tcolour blue"), "unrecognized identity oidc option 'colour'"},
		"no issuer":              {block("\t\tclient_id shop"), "needs 'issuer' and 'client_id'"},
		"no client_id":           {block("\t\tissuer https://sso.example.com"), "needs 'issuer' and 'client_id'"},
		"issuer not a URL":       {block("\t\tissuer sso.example.com\n\t\tclient_id shop"), `issuer "sso.example.com" is not an http(s) URL`},
		"issuer twice":           {block(base + "\t\tissuer https://other.example.com"), "issuer already set"},
		"issuer two args":        {block("\t\tissuer https://a https://b\n\t\tclient_id shop"), "wrong argument count"},
		"alg none":               {block(base + "\t\talgorithms none"), `algorithm "none" not allowed`},
		"alg HS256":              {block(base + "\t\talgorithms RS256 HS256"), `algorithm "HS256" not allowed`},
		"algorithms empty":       {block(base + "\t\talgorithms"), "wrong argument count"},
		"verified with arg":      {block(base + "\t\trequire_verified_phone yes"), "wrong argument count"},
		"timeout too long":       {block(base + "\t\ttimeout 5m"), "timeout 5m0s out of range"},
		"max_token_age too long": {block(base + "\t\tmax_token_age 1000h"), "max_token_age 1000h0m0s out of range"},
		"max_token_age bad":      {block(base + "\t\tmax_token_age soon"), "max_token_age"},
		"argument on oidc":       {identitySite("\tidentity oidc https://sso.example.com {\n" + base + "\t}"), "wrong argument count"},
		"cookie without value":   {block(base + "\t\tcookie"), "wrong argument count"},
	} {
		_, err := parseIdentityJSON(t, tc.input)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not say %q", name, err, tc.want)
		}
		if !strings.Contains(err.Error(), "Testfile:") {
			t.Errorf("%s: error %q does not name file and line", name, err)
		}
	}
}

// The module, provisioned from JSON with placeholders, verifies tokens
// of a real (local) issuer; provisioning contacts nobody.
func TestOIDCIdentityProvision(t *testing.T) {
	is, k := oidctest.New(t)
	t.Setenv("TEST_OIDC_ISSUER", is.URL)
	mod, err := provisionIdentity(t, `{"source":"oidc","issuer":"{env.TEST_OIDC_ISSUER}","client_id":"shop","cookie":"id_token",`+
		`"require_verified_phone":true,"login_url":"/login?next={return}"}`)
	if err != nil {
		t.Fatal(err)
	}
	if is.DiscoveryHits() != 0 {
		t.Fatal("provisioning contacted the issuer")
	}
	src := mod.(*OIDCIdentity)
	r := httptest.NewRequest("GET", "/account", nil)
	r.AddCookie(&http.Cookie{Name: "id_token", Value: is.Token(t, k, "alice",
		map[string]any{"sid": "s1", "phone_number": "+14155550100", "phone_number_verified": true})})
	id, err := src.Identify(r)
	if err != nil {
		t.Fatal(err)
	}
	if id != (identity.Identity{User: "alice", Session: "s1", Phone: "+14155550100"}) {
		t.Fatalf("identity %+v", id)
	}
	r = httptest.NewRequest("GET", "/account", nil)
	r.AddCookie(&http.Cookie{Name: "id_token", Value: is.Token(t, k, "alice",
		map[string]any{"phone_number": "+14155550100", "phone_number_verified": false})})
	if _, err := src.Identify(r); !errors.Is(err, identity.ErrPhoneUnverified) {
		t.Fatalf("unverified phone: %v", err)
	}
	// Through the module too: the session cookie twice is refused as
	// ambiguous (400), an over-long phone claim as malformed (400).
	r = httptest.NewRequest("GET", "/account", nil)
	r.Header.Set("Cookie", "id_token="+is.Token(t, k, "mallory", nil)+"; id_token="+is.Token(t, k, "alice", nil))
	if _, err := src.Identify(r); !errors.Is(err, identity.ErrAmbiguousCredential) {
		t.Fatalf("two id_token cookies: %v", err)
	}
	r = httptest.NewRequest("GET", "/account", nil)
	r.AddCookie(&http.Cookie{Name: "id_token", Value: is.Token(t, k, "alice",
		map[string]any{"phone_number": "+" + strings.Repeat("1", 39), "phone_number_verified": true})})
	if _, err := src.Identify(r); !errors.Is(err, identity.ErrBadIdentity) || errors.Is(err, identity.ErrAmbiguousCredential) {
		t.Fatalf("40-character phone: %v", err)
	}
	if got := src.LoginURL(httptest.NewRequest("GET", "/account?x=1", nil)); got != "/login?next=%2Faccount%3Fx%3D1" {
		t.Fatalf("LoginURL = %q", got)
	}

	for name, tc := range map[string]struct{ json, want string }{
		"unset env issuer":    {`{"source":"oidc","issuer":"{env.TEST_OIDC_UNSET}","client_id":"shop"}`, "empty after placeholder replacement"},
		"no client id":        {`{"source":"oidc","issuer":"https://sso.example.com"}`, "client_id is required"},
		"unknown placeholder": {`{"source":"oidc","issuer":"https://{nosuch.thing}/","client_id":"shop"}`, "could not be resolved"},
		"bad header":          {`{"source":"oidc","issuer":"https://sso.example.com","client_id":"a","header":"X Y"}`, "invalid header name"},
		"bad algorithm":       {`{"source":"oidc","issuer":"https://sso.example.com","client_id":"a","algorithms":["none"]}`, `algorithm "none" not allowed`},
		"bad login url":       {`{"source":"oidc","issuer":"https://sso.example.com","client_id":"a","login_url":"ftp://x/"}`, "login URL"},
		"max_token_age long":  {`{"source":"oidc","issuer":"https://sso.example.com","client_id":"a","max_token_age":3600000000000000}`, "max token age"},
	} {
		_, err := provisionIdentity(t, tc.json)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

// `caddy validate` provisions a config whose issuer is down.
func TestOIDCIdentityValidateWithIssuerDown(t *testing.T) {
	is := oidctest.NewDown(t)
	cfgFile := "{\n\tadmin off\n\tauto_https off\n}\nhttp://127.0.0.1:1 {\n\tstepup {\n" +
		"\t\tidentity oidc {\n\t\t\tissuer " + is.URL + "\n\t\t\tclient_id shop\n\t\t\tcookie id_token\n\t\t}\n" +
		"\t\tsender log\n\t\tprotect p {\n\t\t\tmatch {\n\t\t\t\tpath /p\n\t\t\t}\n\t\t}\n\t}\n\trespond ok\n}\n"
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfgFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	var cfg caddy.Config
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(&cfg); err != nil {
		t.Fatalf("validate with the issuer down: %v", err)
	}
}
