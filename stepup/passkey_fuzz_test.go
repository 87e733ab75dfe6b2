package stepup

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/internal/softauthn"
	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// FuzzPasskeyAssertion feeds arbitrary bytes, as an assertion, through
// the verification core (parse, the spent attempt, the check against the
// challenge, the counter): nothing panics, and nothing but the right
// authenticator's signature over this very challenge verifies. The
// seeds are a real assertion for another challenge, its tampered
// variants, and malformed JSON.
func FuzzPasskeyAssertion(f *testing.F) {
	st := store.NewMemory(time.Minute)
	f.Cleanup(func() { _ = st.Close() })
	e, err := New(Config{Secret: testSecret, Passkeys: Passkeys{RPID: "shop.example", Origins: []string{testOrigin}}},
		[]*Policy{{Name: "p", Mode: Transaction, Methods: []string{MethodPasskey, MethodSMS}}},
		Options{Store: st, Identity: &identity.Header{UserHeader: "X-U", PhoneHeader: "X-P"}, Sender: &outbox{}})
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	auth := &softauthn.Authenticator{Origin: testOrigin}
	opts := softauthn.CreationOptions{Challenge: "AAAAAAAAAAAAAAAAAAAAAA"}
	opts.RP.ID = "shop.example"
	opts.User.ID = b64.EncodeToString([]byte("handle"))
	if _, err := auth.Create(opts); err != nil {
		f.Fatal(err)
	}
	// The credential, enrolled the way the engine stores it.
	pub := auth.PublicKeyCOSE()
	owner := e.keys.short("passkeys", "alice")
	if err := st.AddPasskey(ctx, owner, store.Passkey{ID: auth.ID, PublicKey: pub, UserHandle: []byte("handle"), Created: time.Now()}, 10); err != nil {
		f.Fatal(err)
	}
	newBound := func() *bound {
		c, err := e.newChallenge(httptest.NewRequest("GET", "http://shop.example/", nil), e.Policy("p"), e.keys.userKey("alice"), e.keys.sessionKey("s"), "/")
		if err != nil {
			f.Fatal(err)
		}
		c.Phone, c.TxHash, c.CodeMAC = "+14155550100", []byte("tx-hash"), e.keys.codeMAC(c.ID, "123456")
		if err := st.Create(ctx, c, "", time.Minute); err != nil {
			f.Fatal(err)
		}
		return &bound{c: c, p: e.Policy("p"), id: identity.Identity{User: "alice"}, session: "s", sessionKey: e.keys.sessionKey("s"), k: &e.keys}
	}
	// A real assertion, for another challenge.
	other := newBound()
	as, _ := auth.Sign(b64.EncodeToString(e.keys.passkeyChallenge(other.c, 0)))
	f.Add(auth.JSON(as))
	tampered := as
	tampered.AuthData = append([]byte(nil), as.AuthData...)
	tampered.AuthData[32] = softauthn.FlagUP
	f.Add(auth.JSON(tampered))
	f.Add([]byte(`{"id":"","rawId":"","type":"public-key","response":{"clientDataJSON":"","authenticatorData":"","signature":""}}`))
	f.Add([]byte(`{"type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"AAAA"}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, raw []byte) {
		b := newBound()
		res, _, _, err := e.compare(ctx, b, &passkeyProof{raw: raw})
		if err != nil {
			t.Fatalf("error on fuzz input: %v", err)
		}
		if res == verified {
			t.Fatalf("an assertion made for another challenge verified: %q", raw)
		}
		_ = e.store.ClearFailures(ctx, b.c.UserKey)
	})
}
