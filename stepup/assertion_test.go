package stepup

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

func assertionEngine(t *testing.T, a *Assertion) *Engine {
	t.Helper()
	e, err := New(Config{Secret: testSecret}, []*Policy{{Name: "checkout", Mode: Transaction}}, Options{
		Store: store.NewMemory(0), Sender: &outbox{}, Assertion: a,
		Identity: &identity.Header{UserHeader: "X-Remote-User", PhoneHeader: "X-Remote-Phone"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func checkClaims(t *testing.T, tok string, key any, alg jose.SignatureAlgorithm, tx []byte, verifiedAt time.Time) {
	t.Helper()
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{alg})
	if err != nil {
		t.Fatal(err)
	}
	var c assertionClaims
	if err := parsed.Claims(key, &c); err != nil {
		t.Fatalf("the upstream cannot verify the assertion: %v", err)
	}
	if err := c.Claims.ValidateWithLeeway(jwt.Expected{Issuer: "caddy-stepup", Subject: "alice", AnyAudience: jwt.Audience{"shop"}, Time: time.Now()}, 0); err != nil {
		t.Fatalf("claims: %v", err)
	}
	if c.ACR != AssertionACR || len(c.AMR) != 1 || c.AMR[0] != "sms" || c.Policy != "checkout" ||
		c.AuthTime != verifiedAt.Unix() || c.Tx != hex.EncodeToString(tx) || c.ID == "" {
		t.Fatalf("claims = %+v", c)
	}
	if exp := c.Expiry.Time().Sub(c.IssuedAt.Time()); exp != 30*time.Second {
		t.Fatalf("lifetime %v, want 30s", exp)
	}
	// A token for another key or algorithm does not verify.
	if _, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256}); err == nil {
		t.Fatal("parsed with a wrong algorithm list")
	}
}

func TestAssertionHS256(t *testing.T) {
	t.Parallel()
	key := []byte(strings.Repeat("k", 32))
	a, err := NewHS256Assertion(Assertion{TTL: 30 * time.Second, Audience: "shop"}, key)
	if err != nil {
		t.Fatal(err)
	}
	e := assertionEngine(t, a)
	r := httptest.NewRequest("POST", "/checkout", nil)
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	tx := txHash("checkout", "POST", "/checkout", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, []byte("amount=1"), "alice")
	if err := e.setUpstreamHeaders(r, e.Policy("checkout"), "alice", at, tx, ""); err != nil {
		t.Fatal(err)
	}
	tok := r.Header.Get("Stepup-Assertion")
	checkClaims(t, tok, key, jose.HS256, tx, at)
	parsed, _ := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.HS256})
	var c jwt.Claims
	if parsed.Claims([]byte(strings.Repeat("x", 32)), &c) == nil {
		t.Fatal("verified under another key")
	}
	if _, err := NewHS256Assertion(Assertion{}, []byte("short")); err == nil {
		t.Fatal("a short HS256 key was accepted")
	}
}

func TestAssertionEdDSAAndJWKS(t *testing.T) {
	t.Parallel()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	a, err := NewEdDSAAssertion(Assertion{TTL: 30 * time.Second, Audience: "shop", Header: "x-stepup-assertion"}, priv)
	if err != nil {
		t.Fatal(err)
	}
	e := assertionEngine(t, a)
	// The public key is served for upstreams.
	w := httptest.NewRecorder()
	_ = e.ServeEndpoint(w, httptest.NewRequest("GET", "/.stepup/jwks.json", nil))
	var set jose.JSONWebKeySet
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &set) != nil || len(set.Keys) != 1 || !set.Keys[0].IsPublic() {
		t.Fatalf("jwks = %d %s", w.Code, w.Body)
	}
	if strings.Contains(w.Body.String(), `"d"`) {
		t.Fatal("the JWK set carries the private key")
	}
	at := time.Now().Truncate(time.Second)
	r := httptest.NewRequest("GET", "/checkout", nil)
	if err := e.setUpstreamHeaders(r, e.Policy("checkout"), "alice", at, nil, ""); err != nil {
		t.Fatal(err)
	}
	checkClaims(t, r.Header.Get("X-Stepup-Assertion"), set.Keys[0].Key, jose.EdDSA, nil, at)

	// A client cannot send its own assertion through.
	req := httptest.NewRequest("GET", "/open", nil)
	req.Header.Set("X-Stepup-Assertion", "forged")
	var seen http.Header
	_ = e.Serve(httptest.NewRecorder(), req, MatchFunc(func(*http.Request) (*Policy, error) { return nil, nil }),
		NextFunc(func(_ http.ResponseWriter, r *http.Request) error { seen = r.Header; return nil }))
	if seen.Get("X-Stepup-Assertion") != "" {
		t.Fatal("a client-supplied assertion reached the upstream")
	}
}

// A step-up by passkey says so upstream: Stepup-Method and the
// assertion's acr and amr (RFC 8176: hwk, user).
func TestAssertionPasskeyClaims(t *testing.T) {
	t.Parallel()
	key := []byte(strings.Repeat("k", 32))
	a, err := NewHS256Assertion(Assertion{TTL: 30 * time.Second}, key)
	if err != nil {
		t.Fatal(err)
	}
	e := assertionEngine(t, a)
	for method, want := range map[string]struct {
		acr string
		amr []string
	}{
		MethodPasskey: {"urn:stepup:passkey", []string{"hwk", "user"}},
		MethodSMS:     {"urn:stepup:sms", []string{"sms"}},
		"":            {"urn:stepup:sms", []string{"sms"}},
	} {
		r := httptest.NewRequest("GET", "/account", nil)
		if err := e.setUpstreamHeaders(r, e.Policy("checkout"), "alice", time.Now(), nil, method); err != nil {
			t.Fatal(err)
		}
		wantHeader := method
		if wantHeader == "" {
			wantHeader = MethodSMS
		}
		if got := r.Header.Get("Stepup-Method"); got != wantHeader {
			t.Errorf("%q: Stepup-Method %q", method, got)
		}
		parsed, err := jwt.ParseSigned(r.Header.Get(a.Header), []jose.SignatureAlgorithm{jose.HS256})
		if err != nil {
			t.Fatal(err)
		}
		var c assertionClaims
		if err := parsed.Claims(key, &c); err != nil {
			t.Fatal(err)
		}
		if c.ACR != want.acr || strings.Join(c.AMR, ",") != strings.Join(want.amr, ",") {
			t.Errorf("%q: acr %q amr %v, want %q %v", method, c.ACR, c.AMR, want.acr, want.amr)
		}
	}
}
