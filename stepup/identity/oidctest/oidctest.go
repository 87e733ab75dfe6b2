// Package oidctest runs a small OpenID Connect issuer on 127.0.0.1 for
// tests: a discovery document, a JWKS with the keys it is told to
// publish, and ID tokens signed with go-jose (RS256 or ES256). It can be
// stopped and started again on the same address, to test an identity
// provider outage.
package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/caddy-stepup/caddy-stepup/internal/freeport"
)

// ClientID is the audience of the tokens Token issues.
const ClientID = "shop"

// Issuer is a local OpenID Connect issuer.
type Issuer struct {
	// URL is the issuer URL, "http://127.0.0.1:PORT".
	URL string

	addr string
	mu   sync.Mutex
	srv  *http.Server
	// hold keeps the port while the issuer is down: connections are
	// refused, and nothing else can take the address.
	hold *freeport.Port
	keys []*Key

	discoveryHits atomic.Int32
	keysHits      atomic.Int32
}

// Key is a signing key of the issuer.
type Key struct {
	// ID is the key's "kid".
	ID string
	// Algorithm is RS256 or ES256.
	Algorithm jose.SignatureAlgorithm

	priv crypto.Signer
}

// New starts an issuer on a free port of 127.0.0.1 with one RS256 key
// published; it stops when the test ends.
func New(tb testing.TB) (*Issuer, *Key) {
	tb.Helper()
	is := NewDown(tb)
	k := is.NewKey(tb, jose.RS256)
	is.Publish(k)
	if err := is.Start(); err != nil {
		tb.Fatal(err)
	}
	return is, k
}

// NewDown returns an issuer whose address is known but that does not
// listen yet (connections are refused) and has no keys: call Start.
func NewDown(tb testing.TB) *Issuer {
	tb.Helper()
	p, err := freeport.Hold()
	if err != nil {
		tb.Fatal(err)
	}
	is := &Issuer{URL: "http://" + p.Addr(), addr: p.Addr(), hold: p}
	tb.Cleanup(func() {
		is.Stop()
		is.mu.Lock()
		is.hold.Release()
		is.mu.Unlock()
	})
	return is
}

// Start listens (again) on the issuer's address.
func (is *Issuer) Start() error {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.srv != nil {
		return nil
	}
	l, err := is.hold.Listen()
	if err != nil {
		return fmt.Errorf("oidctest: listening on %s: %v", is.addr, err)
	}
	is.srv = &http.Server{Handler: http.HandlerFunc(is.serve), ReadHeaderTimeout: 5 * time.Second}
	go func(s *http.Server) { _ = s.Serve(l) }(is.srv)
	return nil
}

// Stop closes the listener and all connections: the issuer is down.
func (is *Issuer) Stop() {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.srv != nil {
		_ = is.srv.Close()
		is.srv = nil
		// Hold the port again at once, for the next Start.
		if p, err := freeport.HoldPort(is.hold.Num); err == nil {
			is.hold = p
		}
	}
}

// DiscoveryHits counts the discovery documents served.
func (is *Issuer) DiscoveryHits() int { return int(is.discoveryHits.Load()) }

// KeysHits counts the key sets served.
func (is *Issuer) KeysHits() int { return int(is.keysHits.Load()) }

func (is *Issuer) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		is.discoveryHits.Add(1)
		writeJSON(w, map[string]any{
			"issuer":                                is.URL,
			"authorization_endpoint":                is.URL + "/auth",
			"token_endpoint":                        is.URL + "/token",
			"jwks_uri":                              is.URL + "/keys",
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
		})
	case "/keys":
		is.keysHits.Add(1)
		is.mu.Lock()
		set := jose.JSONWebKeySet{}
		for _, k := range is.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.ID, Algorithm: string(k.Algorithm), Use: "sig"})
		}
		is.mu.Unlock()
		writeJSON(w, set)
	default:
		http.NotFound(w, r)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// NewKey makes a signing key (RS256 or ES256) with a random key id. It
// is not published until Publish.
func (is *Issuer) NewKey(tb testing.TB, alg jose.SignatureAlgorithm) *Key {
	tb.Helper()
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	k := &Key{ID: hex.EncodeToString(id), Algorithm: alg}
	var err error
	switch alg {
	case jose.RS256:
		k.priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		k.priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		err = errors.New("oidctest: only RS256 and ES256")
	}
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// Publish replaces the key set with keys (a rotation when they differ).
func (is *Issuer) Publish(keys ...*Key) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys = keys
}

// Claims returns valid claims for sub: issuer, audience ClientID, issued
// now, expiring in an hour.
func (is *Issuer) Claims(sub string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": is.URL,
		"aud": ClientID,
		"sub": sub,
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
}

// Sign returns the compact JWS of claims signed by k, with k's key id.
func Sign(tb testing.TB, k *Key, claims map[string]any) string {
	tb.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Algorithm, Key: k.priv},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.ID))
	if err != nil {
		tb.Fatal(err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// Token returns a valid token for sub signed by k, with the extra claims
// added (a nil value removes a claim).
func (is *Issuer) Token(tb testing.TB, k *Key, sub string, extra map[string]any) string {
	tb.Helper()
	c := is.Claims(sub)
	for name, v := range extra {
		if v == nil {
			delete(c, name)
			continue
		}
		c[name] = v
	}
	return Sign(tb, k, c)
}

// Unsigned returns a token with "alg": "none" and no signature.
func Unsigned(claims map[string]any) string {
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	payload, _ := json.Marshal(claims)
	return header + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
}
