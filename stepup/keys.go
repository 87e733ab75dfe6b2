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
	"sync"
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
	code    *macKey // code MACs at rest
	grant   *macKey // grant tokens
	csrf    *macKey // form tokens
	binding *macKey // user, session and pending-challenge keys
	replay  *macKey // replay cookies
	passkey *macKey // WebAuthn challenges

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
		code:    newMACKey(derive("code")),
		grant:   newMACKey(derive("grant")),
		csrf:    newMACKey(derive("csrf")),
		binding: newMACKey(derive("binding")),
		replay:  newMACKey(derive("replay")),
		passkey: newMACKey(derive("passkey")),
		aead:    aead,
	}, nil
}

// macKey is an HMAC-SHA256 key with a pool of hashes keyed with it, so
// that a MAC (one or more per request) costs neither the key schedule
// nor the allocation of a new hash.
type macKey struct {
	pool sync.Pool // of *macState, reset
}

// macState is a keyed hash and the buffer its input is gathered in, so
// that it gets a single Write.
type macState struct {
	h   hash.Hash
	buf []byte
}

func newMACKey(key []byte) *macKey {
	m := &macKey{}
	m.pool.New = func() any { return &macState{h: hmac.New(sha256.New, key), buf: make([]byte, 0, 256)} }
	return m
}

func (m *macKey) get() *macState { return m.pool.Get().(*macState) }

// raw adds b as it is.
func (s *macState) raw(b []byte) { s.buf = append(s.buf, b...) }

// part adds p with its length first, so that no two lists of parts
// collide.
func (s *macState) part(p string) {
	var l [binaryLenSize]byte
	putLen(l[:], len(p))
	s.buf = append(s.buf, l[:]...)
	s.buf = append(s.buf, p...)
}

// sum appends the MAC of what was added to dst and returns s to the
// pool.
func (m *macKey) sum(s *macState, dst []byte) []byte {
	s.h.Write(s.buf)
	dst = s.h.Sum(dst)
	s.h.Reset()
	if cap(s.buf) > 64<<10 {
		s.buf = make([]byte, 0, 256) // do not keep a huge one
	}
	s.buf = s.buf[:0]
	m.pool.Put(s)
	return dst
}

// mac is the MAC of parts (each length-prefixed) under m, in a new slice.
func mac(m *macKey, parts ...string) []byte {
	s := m.get()
	for _, p := range parts {
		s.part(p)
	}
	return m.sum(s, make([]byte, 0, sha256.Size))
}

const binaryLenSize = 4

func putLen(b []byte, n int) {
	b[0], b[1], b[2], b[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
}

// short returns a 128-bit keyed hash of parts, base64url (22 chars). It
// stands for an identity in the store without revealing it.
func (k *keys) short(kind string, parts ...string) string {
	s := k.binding.get()
	s.part(kind)
	for _, p := range parts {
		s.part(p)
	}
	var sum [sha256.Size]byte
	return b64.EncodeToString(k.binding.sum(s, sum[:0])[:16])
}

func (k *keys) userKey(user string) string { return k.short("user", user) }

// challengeUserKey is the key challenges, failure counts and start
// budgets of user are kept under. Where identities come from the request
// (sign-up, reset), anyone can name anyone, so they are kept apart from
// the same user's signed-in step-up: a stranger's wrong codes on a reset
// form never lock the account's own step-up.
func (e *Engine) challengeUserKey(k *keys, user string) string {
	if e.fromRequest {
		return k.short("request-user", user)
	}
	return k.userKey(user)
}
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

// writeParts writes parts into h as macState.part does (for plain
// hashes).
func writeParts(h hash.Hash, parts ...string) {
	var n [binaryLenSize]byte
	for _, p := range parts {
		putLen(n[:], len(p))
		h.Write(n[:])
		h.Write([]byte(p))
	}
}
