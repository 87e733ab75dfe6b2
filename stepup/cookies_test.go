package stepup

import (
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// netHTTPCookies is what net/http reads: r.Cookie's value and the number
// of cookies r.CookiesNamed finds.
func netHTTPCookies(r *http.Request, name string) (string, int) {
	var first string
	if c, err := r.Cookie(name); err == nil {
		first = c.Value
	}
	return first, len(r.CookiesNamed(name))
}

func checkCookiesNamed(t *testing.T, lines []string, name string) {
	t.Helper()
	r := httptest.NewRequest("GET", "/", nil)
	for _, l := range lines {
		r.Header.Add("Cookie", l)
	}
	wantV, wantN := netHTTPCookies(r, name)
	gotV, gotN := cookiesNamed(r, name)
	if gotV != wantV || gotN != wantN {
		t.Fatalf("cookiesNamed(%q, %q) = %q, %d; net/http reads %q, %d", lines, name, gotV, gotN, wantV, wantN)
	}
	if v := cookieValue(r, name); v != wantV {
		t.Fatalf("cookieValue(%q, %q) = %q; net/http reads %q", lines, name, v, wantV)
	}
}

// The zero-allocation cookie reader reads exactly what net/http reads.
func TestCookiesNamedLikeNetHTTP(t *testing.T) {
	cases := [][]string{
		{"stepup_sid=abc; stepup_vault=tok"},
		{" stepup_sid = abc ;stepup_vault=\"tok\""},
		{"stepup_sid=\"abc"},
		{"stepup_sid=a\\b; stepup_sid=second"},
		{"stepup_sid=a b", "stepup_sid=x"},
		{"stepup_sid", "stepup_sid="},
		{"a=1;;; ;stepup_sid=\"\";"},
		{"Stepup_sid=upper; stepup_sid=lower"},
		{"stepup_sid=é"},
		{"stepup_sid=\x7f; stepup_sid=ok"},
		{"", "  ", "stepup_sid=\t x \t"},
		{strings.Repeat("a=b;", 3001) + "stepup_sid=many"},
		{strings.Repeat("a=b;", 2998) + "stepup_sid=edge"},
	}
	for _, lines := range cases {
		for _, name := range []string{"stepup_sid", "Stepup_sid", "stepup_vault", "a", "bad name", ""} {
			checkCookiesNamed(t, lines, name)
		}
	}
	// Random headers from the bytes that matter.
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"stepup_sid", "stepup_vault", "=", ";", " ", "\t", "\"", "\\", "x", "é", "\x01", "a=b", "stepup_sid="}
	for range 20000 {
		var lines []string
		for range 1 + rng.IntN(3) {
			var b strings.Builder
			for range rng.IntN(12) {
				b.WriteString(alphabet[rng.IntN(len(alphabet))])
			}
			lines = append(lines, b.String())
		}
		checkCookiesNamed(t, lines, []string{"stepup_sid", "stepup_vault"}[rng.IntN(2)])
	}
}

func TestCookieValueAllocatesNothing(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Cookie", "app=1; stepup_sid=abc; stepup_vault=tok; other=\"q\"")
	if n := testing.AllocsPerRun(100, func() {
		if cookieValue(r, "stepup_vault") != "tok" {
			t.Fatal("wrong value")
		}
	}); n != 0 {
		t.Fatalf("cookieValue allocates %v times", n)
	}
}

func FuzzCookiesNamed(f *testing.F) {
	f.Add("stepup_sid=abc; stepup_vault=tok", "", "stepup_sid")
	f.Add(" stepup_sid = \"abc\" ;;", "stepup_sid=x", "stepup_sid")
	f.Add("a=b", "", "a")
	f.Fuzz(func(t *testing.T, line1, line2, name string) {
		lines := []string{line1}
		if line2 != "" {
			lines = append(lines, line2)
		}
		checkCookiesNamed(t, lines, name)
	})
}
