// Package softauthn is a software WebAuthn authenticator for tests: an
// ECDSA P-256 key per credential, with the authenticator data, client
// data and signatures built by hand (CBOR included), as a platform
// authenticator with user verification would make them. It speaks the
// JSON forms browsers post (PublicKeyCredential.toJSON).
package softauthn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
)

var b64 = base64.RawURLEncoding

// Authenticator holds one credential per RP.
type Authenticator struct {
	// Origin is where the "browser" runs ("https://shop.example").
	Origin string
	// Counter is the signature counter; it grows by one per assertion
	// unless Frozen (an authenticator that keeps none: always 0).
	Counter uint32
	Frozen  bool
	// Flags override the authenticator data flags when not zero.
	Flags byte

	// RPID is the relying party the credential was made for (its hash
	// starts the authenticator data); ID the credential id; Handle the
	// user handle the relying party gave.
	RPID   string
	ID     []byte
	Handle []byte
	key    *ecdsa.PrivateKey
}

// Flag bits of authenticator data.
const (
	FlagUP = 0x01
	FlagUV = 0x04
	FlagAT = 0x40
)

// CreationOptions is the part of PublicKeyCredentialCreationOptions
// (JSON form) the authenticator reads.
type CreationOptions struct {
	Challenge string `json:"challenge"`
	RP        struct {
		ID string `json:"id"`
	} `json:"rp"`
	User struct {
		ID string `json:"id"`
	} `json:"user"`
}

// RequestOptions is the part of PublicKeyCredentialRequestOptions (JSON
// form) the authenticator reads.
type RequestOptions struct {
	Challenge string `json:"challenge"`
	RPID      string `json:"rpId"`
}

func (a *Authenticator) flags(base byte) byte {
	if a.Flags != 0 {
		return a.Flags | base&FlagAT
	}
	return base | FlagUP | FlagUV
}

// Create makes a new credential for the creation options and returns the
// registration response JSON (attestation "none").
func (a *Authenticator) Create(opts CreationOptions) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	handle, err := b64.DecodeString(opts.User.ID)
	if err != nil {
		return nil, errors.New("softauthn: user.id is not base64url")
	}
	a.key, a.RPID, a.Handle = key, opts.RP.ID, handle
	a.ID = make([]byte, 32)
	_, _ = rand.Read(a.ID)
	clientData := a.clientData("webauthn.create", opts.Challenge)
	auth := a.authData(a.flags(FlagAT), a.counterNext())
	auth = append(auth, make([]byte, 16)...) // AAGUID: zero
	auth = binary.BigEndian.AppendUint16(auth, uint16(len(a.ID)))
	auth = append(auth, a.ID...)
	auth = append(auth, coseKey(&key.PublicKey)...)
	att := []byte{0xa3}
	att = append(att, cborText("fmt")...)
	att = append(att, cborText("none")...)
	att = append(att, cborText("attStmt")...)
	att = append(att, 0xa0)
	att = append(att, cborText("authData")...)
	att = append(att, cborBytes(auth)...)
	return json.Marshal(map[string]any{
		"id": b64.EncodeToString(a.ID), "rawId": b64.EncodeToString(a.ID), "type": "public-key",
		"authenticatorAttachment": "platform",
		"clientExtensionResults":  map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(clientData),
			"attestationObject": b64.EncodeToString(att),
			"transports":        []string{"internal"},
		},
	})
}

// Assertion is the parts of an assertion, before it is written as JSON,
// for tests that tamper with one.
type Assertion struct {
	ClientData, AuthData, Signature []byte
}

// Get signs the request options' challenge and returns the assertion
// JSON.
func (a *Authenticator) Get(opts RequestOptions) ([]byte, error) {
	as, err := a.Sign(opts.Challenge)
	if err != nil {
		return nil, err
	}
	return a.JSON(as), nil
}

// Sign makes the parts of an assertion of challenge (base64url).
func (a *Authenticator) Sign(challenge string) (Assertion, error) {
	if a.key == nil {
		return Assertion{}, errors.New("softauthn: no credential")
	}
	clientData := a.clientData("webauthn.get", challenge)
	auth := a.authData(a.flags(0), a.counterNext())
	return Assertion{ClientData: clientData, AuthData: auth, Signature: a.SignParts(auth, clientData)}, nil
}

// SignParts signs authData and clientData as an assertion does.
func (a *Authenticator) SignParts(authData, clientData []byte) []byte {
	sum := sha256.Sum256(clientData)
	msg := append(append([]byte(nil), authData...), sum[:]...)
	h := sha256.Sum256(msg)
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, h[:])
	if err != nil {
		panic(err)
	}
	return sig
}

// JSON writes as the assertion JSON a browser posts.
func (a *Authenticator) JSON(as Assertion) []byte {
	b, _ := json.Marshal(map[string]any{
		"id": b64.EncodeToString(a.ID), "rawId": b64.EncodeToString(a.ID), "type": "public-key",
		"authenticatorAttachment": "platform",
		"clientExtensionResults":  map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(as.ClientData),
			"authenticatorData": b64.EncodeToString(as.AuthData),
			"signature":         b64.EncodeToString(as.Signature),
			"userHandle":        b64.EncodeToString(a.Handle),
		},
	})
	return b
}

func (a *Authenticator) counterNext() uint32 {
	if a.Frozen {
		return 0
	}
	a.Counter++
	return a.Counter
}

func (a *Authenticator) clientData(typ, challenge string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": a.Origin, "crossOrigin": false})
	return b
}

func (a *Authenticator) authData(flags byte, counter uint32) []byte {
	rp := sha256.Sum256([]byte(a.RPID))
	out := append([]byte(nil), rp[:]...)
	out = append(out, flags)
	return binary.BigEndian.AppendUint32(out, counter)
}

// PublicKeyCOSE is the credential's public key as COSE, as a relying
// party stores it.
func (a *Authenticator) PublicKeyCOSE() []byte { return coseKey(&a.key.PublicKey) }

// coseKey writes an EC2 P-256 public key as COSE (CBOR): {1: 2, 3: -7,
// -1: 1, -2: x, -3: y}.
func coseKey(pub *ecdsa.PublicKey) []byte {
	raw, _ := pub.Bytes() // 0x04 || x || y
	x, y := raw[1:33], raw[33:65]
	out := []byte{0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21}
	out = append(out, cborBytes(x)...)
	out = append(out, 0x22)
	return append(out, cborBytes(y)...)
}

func cborHead(major byte, n int) []byte {
	switch {
	case n < 24:
		return []byte{major<<5 | byte(n)}
	case n < 256:
		return []byte{major<<5 | 24, byte(n)}
	default:
		return []byte{major<<5 | 25, byte(n >> 8), byte(n)}
	}
}

func cborBytes(b []byte) []byte { return append(cborHead(2, len(b)), b...) }
func cborText(s string) []byte  { return append(cborHead(3, len(s)), s...) }
