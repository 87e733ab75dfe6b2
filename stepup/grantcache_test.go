package stepup

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// A remembered grant answers exactly as its MAC would: for its own
// binding only, and never past its expiry.
func TestGrantCacheAnswersAsTheMAC(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	clock := func() time.Time { return now }
	e, err := New(Config{Secret: testSecret}, []*Policy{{Name: "p"}}, Options{
		Store: store.NewMemory(0), Sender: &outbox{}, Now: clock,
		Identity: &identity.Header{UserHeader: "X-Remote-User", PhoneHeader: "X-Remote-Phone"},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/vault", nil)
	b, err := e.binding(r, e.Policy("p"), "alice", "sid:s1", "")
	if err != nil {
		t.Fatal(err)
	}
	tok := e.keys.issueGrant(Grant{Kind: SessionGrant, Policy: "p", IssuedAt: now, Expires: now.Add(time.Minute)}, b)
	for i := range 2 { // the MAC, then the cache
		if _, ok := e.verifyGrant(tok, b); !ok {
			t.Fatalf("check %d: the grant did not verify", i)
		}
	}
	if _, ok := e.verified.m.Load(tok); !ok {
		t.Fatal("a verified session grant was not remembered")
	}
	for name, other := range map[string]func(grantBinding) grantBinding{
		"user":    func(b grantBinding) grantBinding { b.User = "mallory"; return b },
		"session": func(b grantBinding) grantBinding { b.Session = "sid:s2"; return b },
		"scope":   func(b grantBinding) grantBinding { b.Scope += "x"; return b },
		"gen":     func(b grantBinding) grantBinding { b.Gen += "x"; return b },
		"version": func(b grantBinding) grantBinding { b.Version += "x"; return b },
		"policy":  func(b grantBinding) grantBinding { b.Policy = "q"; return b },
		"tx":      func(b grantBinding) grantBinding { b.Tx = "t"; return b },
	} {
		if _, ok := e.verifyGrant(tok, other(b)); ok {
			t.Errorf("the remembered grant verified for another %s", name)
		}
	}
	if _, ok := e.verifyGrant(tok, b); !ok {
		t.Fatal("the grant no longer verifies for its own binding")
	}
	now = now.Add(time.Minute)
	if _, ok := e.verifyGrant(tok, b); ok {
		t.Fatal("a remembered grant verified at its expiry")
	}
	// Bounded: past grantCacheMax it starts afresh.
	e.verified.size.Store(grantCacheMax)
	now = now.Add(-30 * time.Second)
	forged := tok[:len(tok)-2] + "AA"
	if forged == tok {
		forged = tok[:len(tok)-2] + "BA"
	}
	if _, ok := e.verifyGrant(forged, b); ok {
		t.Fatal("a forged token verified")
	}
	e.verified.m.Clear()
	if _, ok := e.verifyGrant(tok, b); !ok {
		t.Fatal("the grant did not verify")
	}
	if n := e.verified.size.Load(); n != 1 {
		t.Fatalf("cache size after starting afresh = %d, want 1", n)
	}
}
