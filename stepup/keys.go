package stepup

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"strconv"
)

// MinSecretLen is the shortest secret accepted, in bytes.
const MinSecretLen = 32

var (
	b64 = base64.RawURLEncoding
	// b64Strict refuses non-canonical trailing bits, so that exactly one
	// string decodes to a given token.
	b64Strict = base64.RawURLEncoding.Strict()
)

// keys are the purpose-bound keys derived from the operator's secret, so
// that a MAC made for one use (a code) can never pass for another (a
// grant).
type keys struct {
	code    []byte // code MACs at rest
	grant   []byte // grant tokens
	csrf    []byte // form tokens
	binding []byte // user, session and pending-challenge keys
	stash   []byte // AES-256-GCM key of preserved requests
	replay  []byte // replay cookies

	// aead is the stash cipher under the stash key (AES-256-GCM, safe
	// for concurrent use).
	aead cipher.AEAD
}

func deriveKeys(secret []byte) (keys, error) {
	if len(secret) < MinSecretLen {
		return keys{}, errors.New("secret must be at least " + strconv.Itoa(MinSecretLen) + " bytes")
	}
	derive := func(label string) []byte {
		k, err := hkdf.Key(sha256.New, secret, nil, "caddy-stepup v1 "+label, 32)
		if err != nil {
			panic(err) // only for lengths hkdf cannot produce; 32 is fine
		}
		return k
	}
	stash := derive("stash")
	block, err := aes.NewCipher(stash)
	if err != nil {
		return keys{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return keys{}, err
	}
	return keys{
		code:    derive("code"),
		grant:   derive("grant"),
		csrf:    derive("csrf"),
		binding: derive("binding"),
		stash:   stash,
		replay:  derive("replay"),
		aead:    aead,
	}, nil
}

// mac writes parts, each length-prefixed so that no two lists of parts
// collide, into an HMAC under key.
func mac(key []byte, parts ...string) []byte {
	h := hmac.New(sha256.New, key)
	writeParts(h, parts...)
	return h.Sum(nil)
}

func writeParts(h hash.Hash, parts ...string) {
	var n [binaryLenSize]byte
	for _, p := range parts {
		putLen(n[:], len(p))
		h.Write(n[:])
		h.Write([]byte(p))
	}
}

const binaryLenSize = 4

func putLen(b []byte, n int) {
	b[0], b[1], b[2], b[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
}

// short returns a 128-bit keyed hash of parts, base64url (22 chars). It
// stands for an identity in the store without revealing it.
func (k *keys) short(kind string, parts ...string) string {
	return b64.EncodeToString(mac(k.binding, append([]string{kind}, parts...)...)[:16])
}

func (k *keys) userKey(user string) string       { return k.short("user", user) }
func (k *keys) sessionKey(session string) string { return k.short("session", session) }

// codeMAC binds a code to its challenge: the same code in another
// challenge has another MAC.
func (k *keys) codeMAC(challengeID, code string) []byte {
	return mac(k.code, challengeID, code)
}

// csrfToken binds a form to one challenge in one session.
func (k *keys) csrfToken(challengeID, sessionKey string) string {
	return b64.EncodeToString(mac(k.csrf, challengeID, sessionKey)[:16])
}

// checkCSRF compares a submitted token with the expected one in constant
// time.
func (k *keys) checkCSRF(token, challengeID, sessionKey string) bool {
	want := k.csrfToken(challengeID, sessionKey)
	return hmac.Equal([]byte(token), []byte(want))
}

// randomID returns 128 random bits, base64url: challenge ids, session ids.
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return b64.EncodeToString(b[:])
}

// UserKey returns the key under which the store keeps a user's failure
// count and limits, for the given secret: what an operator tool needs to
// clear a lockout without an engine.
func UserKey(secret []byte, user string) (string, error) {
	k, err := deriveKeys(secret)
	if err != nil {
		return "", err
	}
	return k.userKey(user), nil
}
