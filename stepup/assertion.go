package stepup

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Assertion signs, for every request that reaches the upstream on a
// verified step-up, a short-lived JWT that the upstream can check
// cryptographically instead of trusting a plain header:
//
//	{"iss":"caddy-stepup","sub":"alice","aud":"shop","iat":...,"exp":...,
//	 "jti":"...","auth_time":...,"acr":"urn:stepup:sms","amr":["sms"],
//	 (a passkey: "acr":"urn:stepup:passkey","amr":["hwk","user"]),
//	 "policy":"checkout","tx":"<hex sha-256 of the transaction>"}
//
// With HS256 the upstream shares the key; with EdDSA it needs only the
// public key, served as a JWK set at {path_prefix}/jwks.json.
type Assertion struct {
	// Header carries the token. Default: Stepup-Assertion.
	Header string
	// TTL is the token lifetime. Default: 60s.
	TTL time.Duration
	// Issuer is the iss claim. Default: caddy-stepup.
	Issuer string
	// Audience is the aud claim, when set.
	Audience string

	signer jose.Signer
	jwks   []byte
}

// ACR and AMR are the step-up claims of an assertion made by a code
// (RFC 8176: sms).
const (
	AssertionACR = "urn:stepup:sms"
	AssertionAMR = "sms"
)

// AssertionPasskeyACR is the acr claim of an assertion made by a
// passkey.
const AssertionPasskeyACR = "urn:stepup:passkey"

// AssertionPasskeyAMR is the amr claim of an assertion made by a passkey
// (RFC 8176: hwk, proof of possession of a hardware-bound key, and user,
// the passkey's user verification).
var AssertionPasskeyAMR = []string{"hwk", "user"}

// methodClaims are the acr and amr claims of method.
func methodClaims(method string) (string, []string) {
	if method == MethodPasskey {
		return AssertionPasskeyACR, append([]string(nil), AssertionPasskeyAMR...)
	}
	return AssertionACR, []string{AssertionAMR}
}

// NewHS256Assertion signs with HMAC-SHA256 under key (at least 32 bytes).
func NewHS256Assertion(a Assertion, key []byte) (*Assertion, error) {
	if err := a.checkTTL(); err != nil {
		return nil, err
	}
	if len(key) < 32 {
		return nil, errors.New("assertion: an HS256 key needs at least 32 bytes")
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("assertion: %v", err)
	}
	a.signer = s
	return a.defaults(), nil
}

// NewEdDSAAssertion signs with Ed25519; the public key is published as a
// JWK set (see JWKS).
func NewEdDSAAssertion(a Assertion, key ed25519.PrivateKey) (*Assertion, error) {
	if err := a.checkTTL(); err != nil {
		return nil, err
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("assertion: not an Ed25519 private key")
	}
	pub := key.Public().(ed25519.PublicKey)
	sum := sha256.Sum256(pub)
	kid := hex.EncodeToString(sum[:8])
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("assertion: %v", err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: kid, Algorithm: string(jose.EdDSA), Use: "sig"}}}
	if a.jwks, err = json.Marshal(set); err != nil {
		return nil, err
	}
	a.signer = s
	return a.defaults(), nil
}

// checkTTL holds a set TTL to AssertionTTLBound (zero takes the default).
func (a Assertion) checkTTL() error {
	if a.TTL == 0 {
		return nil
	}
	return AssertionTTLBound.Check(a.TTL)
}

func (a Assertion) defaults() *Assertion {
	if a.Header == "" {
		a.Header = "Stepup-Assertion"
	}
	a.Header = http.CanonicalHeaderKey(a.Header)
	if a.TTL == 0 {
		a.TTL = time.Minute
	}
	if a.Issuer == "" {
		a.Issuer = "caddy-stepup"
	}
	return &a
}

// JWKS returns the public key set (EdDSA), or nil (HS256).
func (a *Assertion) JWKS() []byte { return a.jwks }

type assertionClaims struct {
	jwt.Claims
	AuthTime int64    `json:"auth_time"`
	ACR      string   `json:"acr"`
	AMR      []string `json:"amr"`
	Policy   string   `json:"policy"`
	Tx       string   `json:"tx,omitempty"`
}

// sign makes the token for one verified request.
func (a *Assertion) sign(user, policy string, verifiedAt, now time.Time, tx []byte, method string) (string, error) {
	acr, amr := methodClaims(method)
	c := assertionClaims{
		Claims: jwt.Claims{
			Issuer:   a.Issuer,
			Subject:  user,
			IssuedAt: jwt.NewNumericDate(now),
			Expiry:   jwt.NewNumericDate(now.Add(a.TTL)),
			ID:       randomID(),
		},
		AuthTime: verifiedAt.Unix(),
		ACR:      acr,
		AMR:      amr,
		Policy:   policy,
	}
	if a.Audience != "" {
		c.Audience = jwt.Audience{a.Audience}
	}
	if len(tx) > 0 {
		c.Tx = hex.EncodeToString(tx)
	}
	return jwt.Signed(a.signer).Claims(c).Serialize()
}
