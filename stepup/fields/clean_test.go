package fields

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"EUR 1,234.56":                          "EUR 1,234.56",
		"€ 10.00":                               "€ 10.00",
		"₹500 / ¥300 / £4 / $5":                 "₹500 / ¥300 / £4 / $5",
		"Café Müller GmbH & Co. KG":             "Café Müller GmbH & Co. KG",
		"Bäckerei Ünal (Köln)":                  "Bäckerei Ünal (Köln)",
		"東京 カフェ コーヒー":                           "東京 カフェ コーヒー",
		"O’Brien – d'Arc":                       "O'Brien - d'Arc",
		"Zoë":                                   "Zoë",
		"Zoe\u0308":                             "Zoe\u0308",
		"St. Louis":                             "St. Louis",
		"evil.com":                              "evil com",
		"EVIL.COM/login":                        "EVIL COM/login",
		"http://evil.com":                       "http //evil com",
		"www.evil.co.uk":                        "www evil co uk",
		"a@b.com":                               "a b com",
		"CALL +1 415 555 0199 NOW, prize!":      "CALL 1 415 555 0199 NOW, prize",
		"#123456 =<b>x</b> *?%:":                "123456 b x /b",
		"10\n\n@evil.example #123456":           "10 evil example 123456",
		"\u202eevil\u200b\u2028x\u00a0y":        "evil x y",
		"\xff\xfeok":                            "ok",
		"\u0301leading mark":                    "leading mark",
		"e\u0301\u0301\u0301\u0301\u0301\u0301": "e\u0301\u0301\u0301\u0301",
		"x\u20dd keycap 1\u20e3":                "x keycap 1",
		"a\u02d0b ꞉ c\u1429d e\ua78ff":          "a b c d e f",
		"ＣＡＬＬ ＋１ ４１５":                           "ＣＡＬＬ １ ４１５",
		"evil．com evil。com":                     "evil com evil com",
		"a.\u0301b":                             "a b",
		"😀 emoji ™":                             "emoji",
		"  ":                                    "",
		// IPv4 addresses, which phones link, and amounts, which stay.
		"203.0.113.7/pay":        "203 0 113 7/pay",
		"http://10.0.0.1:8080/x": "http //10 0 0 1 8080/x",
		"ACME 192.168.1.1":       "ACME 192 168 1 1",
		"v1.2.3.4.5":             "v1 2 3 4 5",
		"1...2":                  "1 2",
		"1,2.3.4.5":              "1,2 3 4 5",
		"1.2.3.4.nip.io":         "1 2 3 4 nip io",
		"1\u0301.2.3.4":          "1\u0301 2 3 4",
		"１.２.３.４":                "１ ２ ３ ４",
		"EUR 24.90":              "EUR 24.90",
		"1.234.567,89":           "1.234.567,89",
		"1.2.3":                  "1.2.3",
		"Wait...":                "Wait...",
		"1.2.3 4.5.6":            "1.2.3 4.5.6",
	} {
		if got := Clean(in, 100); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Clean(strings.Repeat("é", 100), MaxValue); got != strings.Repeat("é", MaxValue)+Ellipsis {
		t.Errorf("cut = %q", got)
	}
	if got := Clean("a "+strings.Repeat("b", 38)+" c", MaxValue); got != "a "+strings.Repeat("b", 38)+Ellipsis {
		t.Errorf("cut before a space = %q", got)
	}
}

// cleanAllowed reports whether Clean may let r through.
func cleanAllowed(r rune) bool {
	switch {
	case r == ' ', strings.ContainsRune(".,-'&/()", r), r == []rune(Ellipsis)[0]:
		return true
	case r >= 0x02b0 && r <= 0x02ff, r >= 0x1427 && r <= 0x1429, r == 0xa788, r == 0xa78f:
		return false
	}
	return unicode.IsLetter(r) || unicode.In(r, unicode.Mn, unicode.Mc, unicode.Nd, unicode.Sc)
}

func checkClean(t *testing.T, in, got string, max int) {
	t.Helper()
	if !utf8.ValidString(got) {
		t.Fatalf("Clean(%q) = %q: invalid UTF-8", in, got)
	}
	rs := []rune(got)
	if len(rs) > max+1 {
		t.Fatalf("Clean(%q) has %d runes", in, len(rs))
	}
	if strings.Contains(got, "  ") || strings.TrimSpace(got) != got {
		t.Fatalf("Clean(%q) = %q: spaces not collapsed", in, got)
	}
	for i, r := range rs {
		if !cleanAllowed(r) {
			t.Fatalf("Clean(%q) = %q keeps %U", in, got, r)
		}
		if r == '.' && i+1 < len(rs) && unicode.IsLetter(rs[i+1]) {
			t.Fatalf("Clean(%q) = %q keeps a dot before a letter", in, got)
		}
		if r == '.' && addressRun(rs, i) {
			t.Fatalf("Clean(%q) = %q keeps a dot of an address", in, got)
		}
		if string(r) == Ellipsis && i != len(rs)-1 {
			t.Fatalf("Clean(%q) = %q: ellipsis inside", in, got)
		}
	}
	if !strings.HasSuffix(got, Ellipsis) && Clean(got, max) != got {
		t.Fatalf("Clean(%q) = %q is not stable: %q", in, got, Clean(got, max))
	}
}

// addressRun reports whether the dot at rs[i] is in a run of digits, dots
// and marks with a digit and three dots or more.
func addressRun(rs []rune, i int) bool {
	in := func(r rune) bool { return r == '.' || unicode.IsDigit(r) || unicode.In(r, unicode.Mn, unicode.Mc) }
	lo, hi := i, i
	for lo > 0 && in(rs[lo-1]) {
		lo--
	}
	for hi < len(rs) && in(rs[hi]) {
		hi++
	}
	dots, digits := 0, 0
	for _, r := range rs[lo:hi] {
		if r == '.' {
			dots++
		} else if unicode.IsDigit(r) {
			digits++
		}
	}
	return dots >= 3 && digits > 0
}
