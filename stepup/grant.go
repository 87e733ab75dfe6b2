package stepup

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"net/http"
	"strings"
	"time"
)

// GrantKind tells what a grant opens.
type GrantKind byte

// Grant kinds.
const (
	// SessionGrant opens its policy until it expires.
	SessionGrant GrantKind = 's'
	// TransactionGrant opens one request (its hash is bound in the store).
	TransactionGrant GrantKind = 't'
)

// Grant is what a verified code buys: a policy opened for one identity in
// one session until Expires.
type Grant struct {
	Kind     GrantKind
	Policy   string
	IssuedAt time.Time
	Expires  time.Time
	// ID is random; it names the grant for single use and revocation.
	ID string
	// Method is how the step-up was made: MethodSMS ("" reads as SMS)
	// or MethodPasskey.
	Method string
}

// Token layout: base64url(payload) "." base64url(mac[:16]), where payload
// is version(1) kind(1) issued(8) expires(8) id(12), big-endian Unix
// seconds, and mac = HMAC(grant key, payload, binding), the binding
// being everything the grant is valid for (grantBinding).
// Nothing in the token names the user: it only verifies for the same
// identity, so a token copied to another login is worthless.
const (
	grantVersion    = 2
	grantPayloadLen = 30
	grantMACLen     = 16
	grantTokenLen   = 40 + 1 + 22 // base64url lengths of 30 and 16 bytes
	// MaxGrantTokenLen bounds what the parser reads from a cookie or header.
	MaxGrantTokenLen = 128
)

// grantBinding is what a grant is valid for, beyond its own lifetime:
// a grant verifies only where every one of these is the same as where
// it was issued.
type grantBinding struct {
	// Policy and Version: the policy's name and its definition when the
	// grant was issued (a changed policy never honours older grants).
	Policy, Version string
	// Scope is the handler's scope: the site and port it serves, or the
	// configured shared scope.
	Scope string
	// Gen is the store generation: after the store lost its data, no
	// grant issued before verifies.
	Gen string
	// User and Session are who verified, and in which session.
	User, Session string
	// Tx is the transaction hash of a transaction grant, else "".
	Tx string
}

// issueGrant returns the token for g, bound to b.
func (k *keys) issueGrant(g Grant, b grantBinding) string {
	var p [grantPayloadLen]byte
	p[0] = grantVersion
	p[1] = byte(g.Kind)
	if g.Method == MethodPasskey {
		// The kind in upper case: a passkey's grant ('S', 'T').
		p[1] -= 'a' - 'A'
	}
	binary.BigEndian.PutUint64(p[2:10], uint64(g.IssuedAt.Unix()))
	binary.BigEndian.PutUint64(p[10:18], uint64(g.Expires.Unix()))
	if g.ID == "" {
		_, _ = rand.Read(p[18:30])
	} else if id, err := b64.DecodeString(g.ID); err == nil && len(id) == 12 {
		copy(p[18:30], id)
	} else {
		_, _ = rand.Read(p[18:30])
	}
	m := k.grantMAC(p[:], &b)
	var sb strings.Builder
	sb.Grow(grantTokenLen)
	sb.WriteString(b64.EncodeToString(p[:]))
	sb.WriteByte('.')
	sb.WriteString(b64.EncodeToString(m[:grantMACLen]))
	return sb.String()
}

func (k *keys) grantMAC(payload []byte, b *grantBinding) []byte {
	s := k.grant.get()
	s.raw(payload)
	s.part(b.Policy)
	s.part(b.Version)
	s.part(b.Scope)
	s.part(b.Gen)
	s.part(b.User)
	s.part(b.Session)
	s.part(b.Tx)
	return k.grant.sum(s, make([]byte, 0, sha256.Size))
}

// verifyGrant parses token and checks that it was issued for b and is
// unexpired at now. It never panics on any input.
func (k *keys) verifyGrant(token string, b *grantBinding, now time.Time) (Grant, bool) {
	if len(token) != grantTokenLen || token[40] != '.' {
		return Grant{}, false
	}
	var p [grantPayloadLen]byte
	var m [grantMACLen]byte
	if n, err := b64Strict.Decode(p[:], []byte(token[:40])); err != nil || n != grantPayloadLen {
		return Grant{}, false
	}
	if n, err := b64Strict.Decode(m[:], []byte(token[41:])); err != nil || n != grantMACLen {
		return Grant{}, false
	}
	if p[0] != grantVersion {
		return Grant{}, false
	}
	want := k.grantMAC(p[:], b)
	if !hmac.Equal(m[:], want[:grantMACLen]) {
		return Grant{}, false
	}
	kind, method := p[1], MethodSMS
	if kind == 'S' || kind == 'T' {
		kind, method = kind+('a'-'A'), MethodPasskey
	}
	g := Grant{
		Kind:     GrantKind(kind),
		Method:   method,
		Policy:   b.Policy,
		IssuedAt: time.Unix(int64(binary.BigEndian.Uint64(p[2:10])), 0),
		Expires:  time.Unix(int64(binary.BigEndian.Uint64(p[10:18])), 0),
		ID:       b64.EncodeToString(p[18:30]),
	}
	if !now.Before(g.Expires) {
		return Grant{}, false
	}
	return g, true
}

// grantID returns the id in a grant token's payload, unverified.
func grantID(token string) (string, bool) {
	if len(token) != grantTokenLen || token[40] != '.' {
		return "", false
	}
	var p [grantPayloadLen]byte
	if n, err := b64Strict.Decode(p[:], []byte(token[:40])); err != nil || n != grantPayloadLen {
		return "", false
	}
	return b64.EncodeToString(p[18:30]), true
}

// issue makes the grant that verifying b's challenge (just consumed)
// buys, as its policy stood when the challenge was made: a session grant
// for the policy's grant_ttl, or a single-use transaction grant bound to
// the challenge's transaction hash, usable once its issuance record is
// in the store.
func (e *Engine) issue(r *http.Request, b *bound) (string, Grant, error) {
	c, p := b.c, b.p
	g := Grant{Kind: SessionGrant, Policy: c.Policy, IssuedAt: c.Used, Expires: c.Used.Add(p.GrantTTL), Method: c.Method}
	var tx string
	if p.Mode == Transaction {
		var id [12]byte
		_, _ = rand.Read(id[:])
		g.Kind, g.Expires, g.ID, tx = TransactionGrant, c.Used.Add(e.cfg.CodeTTL), b64.EncodeToString(id[:]), string(c.TxHash)
	}
	bind, err := e.binding(r, p, b.id.User, b.session, tx)
	if err != nil {
		return "", g, err
	}
	if g.Kind == TransactionGrant {
		if err := e.store.IssueGrant(r.Context(), g.ID, g.Expires); err != nil {
			return "", g, err
		}
	}
	return e.keys.issueGrant(g, bind), g, nil
}
