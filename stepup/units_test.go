package stepup

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestNewCodeUniform(t *testing.T) {
	t.Parallel()
	var counts [6][10]int
	const n = 20000
	for i := 0; i < n; i++ {
		c := newCode(6)
		if len(c) != 6 {
			t.Fatalf("code %q", c)
		}
		for j := 0; j < 6; j++ {
			d := c[j] - '0'
			if d > 9 {
				t.Fatalf("code %q", c)
			}
			counts[j][d]++
		}
	}
	// Chi-square with 9 degrees of freedom: 27.9 is p = 0.001.
	for pos, row := range counts {
		chi := 0.0
		for _, o := range row {
			e := float64(n) / 10
			chi += (float64(o) - e) * (float64(o) - e) / e
		}
		if chi > 27.9 {
			t.Errorf("position %d: chi-square %.1f, digits not uniform: %v", pos, chi, row)
		}
	}
	if got := len(newCode(10)); got != 10 {
		t.Fatalf("10-digit code has %d digits", got)
	}
}

func TestNormalizeCode(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"123456":                 "123456",
		" 123 456 ":              "123456",
		"123-456":                "123456",
		"12.34.56":               "123456",
		"12345":                  "",
		"1234567":                "",
		"12345a":                 "",
		"１２３４５６":                 "",
		"":                       "",
		strings.Repeat("1", 100): "",
	} {
		got, ok := normalizeCode(in, 6)
		if got != want || ok != (want != "") {
			t.Errorf("normalizeCode(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func testKeys(t testing.TB) keys {
	k, err := deriveKeys(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestGrantToken(t *testing.T) {
	t.Parallel()
	k := testKeys(t)
	now := time.Now()
	g := Grant{Kind: SessionGrant, Policy: "p", IssuedAt: now, Expires: now.Add(time.Minute)}
	base := grantBinding{Policy: "p", Version: "v1", Scope: "site\x00shop", Gen: "g1", User: "alice", Session: "sid:1"}
	tok := k.issueGrant(g, base)
	if len(tok) != grantTokenLen {
		t.Fatalf("token length %d", len(tok))
	}
	got, ok := k.verifyGrant(tok, &base, now)
	if !ok || got.Kind != SessionGrant || got.IssuedAt.Unix() != now.Unix() || got.ID == "" {
		t.Fatalf("verify = %+v, %v", got, ok)
	}
	// Every part of the binding counts (findings 7, 9, 17).
	for name, change := range map[string]func(b *grantBinding){
		"other policy":         func(b *grantBinding) { b.Policy = "q" },
		"changed policy":       func(b *grantBinding) { b.Version = "v2" },
		"other scope":          func(b *grantBinding) { b.Scope = "site\x00other" },
		"other generation":     func(b *grantBinding) { b.Gen = "g2" },
		"other user":           func(b *grantBinding) { b.User = "bob" },
		"other session":        func(b *grantBinding) { b.Session = "sid:2" },
		"shifted parts":        func(b *grantBinding) { b.User, b.Session = "alic", "esid:1" },
		"empty policy":         func(b *grantBinding) { b.Policy = "" },
		"a transaction's hash": func(b *grantBinding) { b.Tx = "tx" },
	} {
		b := base
		change(&b)
		if _, ok := k.verifyGrant(tok, &b, now); ok {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, bad := range map[string]string{"truncated": tok[:len(tok)-1], "empty": ""} {
		if _, ok := k.verifyGrant(bad, &base, now); ok {
			t.Errorf("%s: accepted", name)
		}
	}
	// Flip every character of the token: always refused.
	for i := range tok {
		b := []byte(tok)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		if _, ok := k.verifyGrant(string(b), &base, now); ok {
			t.Errorf("token with byte %d changed accepted", i)
		}
	}
	if _, ok := k.verifyGrant(tok, &base, now.Add(time.Minute)); ok {
		t.Error("expired grant accepted")
	}
	// Another secret: refused.
	other, _ := deriveKeys([]byte(strings.Repeat("x", 32)))
	if _, ok := other.verifyGrant(tok, &base, now); ok {
		t.Error("grant accepted under another secret")
	}
}

func FuzzGrantToken(f *testing.F) {
	k := testKeys(f)
	now := time.Unix(1_800_000_000, 0)
	b := grantBinding{Policy: "p", User: "u", Session: "s"}
	f.Add(k.issueGrant(Grant{Kind: SessionGrant, Policy: "p", IssuedAt: now, Expires: now.Add(time.Hour)}, b))
	f.Add(k.issueGrant(Grant{Kind: TransactionGrant, Policy: "p", IssuedAt: now, Expires: now.Add(time.Hour)}, b))
	f.Add("")
	f.Add(strings.Repeat("A", grantTokenLen))
	f.Add(strings.Repeat("A", 40) + "." + strings.Repeat("_", 22))
	f.Fuzz(func(t *testing.T, tok string) {
		g, ok := k.verifyGrant(tok, &b, now)
		if ok {
			// Only a token we issued verifies: re-issuing its fields under
			// the same key yields the same token.
			again := k.issueGrant(g, b)
			if again != tok {
				t.Fatalf("accepted a token we did not issue: %q (would issue %q)", tok, again)
			}
		}
	})
}

// hostileReturnURLs must never be accepted as return paths.
var hostileReturnURLs = []string{
	"https://evil.example/",
	"http://evil.example",
	"//evil.example",
	"//evil.example/path",
	"/\\evil.example",
	"\\\\evil.example",
	"/%2F%2Fevil.example",
	"/%2f/evil.example",
	"/%5Cevil.example",
	"/%5cevil.example",
	"/%252F%252Fevil.example",
	"javascript:alert(1)",
	"JaVaScRiPt:alert(1)",
	"data:text/html,<script>alert(1)</script>",
	"evil.example",
	"",
	" /path",
	"/path\r\nSet-Cookie: x=y",
	"/path\x00",
	"/\t/evil.example",
	"/%09/evil.example",
	"/%0d%0aLocation:%20https://evil.example",
	"///evil.example",
	"/.//evil.example/..",
	"/" + strings.Repeat("a", 3000),
	"https:/evil.example",
	"/path\\..\\..\\evil",
}

func TestSafeReturnPath(t *testing.T) {
	t.Parallel()
	for _, s := range hostileReturnURLs {
		if got, ok := SafeReturnPath(s); ok {
			t.Errorf("SafeReturnPath(%q) accepted as %q", s, got)
		}
	}
	for _, s := range []string{"/", "/checkout", "/account/payment-methods?tab=cards&x=%2F", "/a/b/../c", "/search?q=//x", "/caf%C3%A9"} {
		if got, ok := SafeReturnPath(s); !ok || got != s {
			t.Errorf("SafeReturnPath(%q) = %q, %v", s, got, ok)
		}
	}
}

func FuzzSafeReturnPath(f *testing.F) {
	for _, s := range hostileReturnURLs {
		f.Add(s)
	}
	f.Add("/checkout?x=1")
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := SafeReturnPath(s)
		if !ok {
			return
		}
		if got != s {
			t.Fatalf("changed %q to %q", s, got)
		}
		// Whatever is accepted resolves to the same origin.
		base, _ := url.Parse("https://shop.example/base/page")
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("accepted unparsable %q", s)
		}
		if r := base.ResolveReference(u); r.Host != "shop.example" || r.Scheme != "https" {
			t.Fatalf("accepted %q resolves to %s", s, r)
		}
		// Browsers treat "\" like "/" and drop tabs and newlines.
		clean := strings.NewReplacer("\\", "/", "\t", "", "\n", "", "\r", "").Replace(s)
		if strings.HasPrefix(clean, "//") {
			t.Fatalf("accepted %q, which a browser reads as %q", s, clean)
		}
	})
}

func FuzzNormalizeCode(f *testing.F) {
	for _, s := range []string{"123456", " 123 456 ", "12-34-56", "１２３４５６", "12345a", "", "1234567890", "\u00a0123456"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, n := range []int{6, 8, 10} {
			got, ok := normalizeCode(s, n)
			if !ok {
				if got != "" {
					t.Fatalf("refused %q but returned %q", s, got)
				}
				continue
			}
			if len(got) != n {
				t.Fatalf("normalizeCode(%q, %d) = %q", s, n, got)
			}
			for i := 0; i < len(got); i++ {
				if got[i] < '0' || got[i] > '9' {
					t.Fatalf("normalizeCode(%q) = %q: not digits", s, got)
				}
			}
		}
	})
}
