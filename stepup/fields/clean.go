package fields

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Caps of a description, in runes. What a customer reads in an SMS must
// stay short and cannot be steered far by a crafted field.
const (
	// MaxValue caps one value of a description.
	MaxValue = 40
	// MaxText caps a whole description.
	MaxText = 140
	// maxMarks caps the combining marks on one character (enough for
	// Vietnamese and Indic scripts, not for "Zalgo" text).
	maxMarks = 4
)

// Ellipsis ends a value or a description that was cut.
const Ellipsis = "…"

// Clean reduces a value taken from a request to text that is safe to
// show in an SMS and on a page, whoever wrote it, and cuts it to at most
// max runes (then ends it with [Ellipsis]). What passes:
//
//   - letters of any script (Unicode L), except modifier letters that
//     look like punctuation (U+02B0–U+02FF, such as "ː") and the few
//     letters that look like '+' or '.' (U+1427–U+1429, U+A788, U+A78F);
//   - combining marks (Mn, Mc) after a letter or digit, at most 4 on one;
//   - decimal digits of any script (Nd);
//   - currency symbols (Sc: € $ £ ¥ ₹ ...);
//   - the punctuation . , - ' & / ( ) , with ‘ ’ ʼ read as ' and the
//     dashes U+2010–U+2015 and U+2212 read as -, except for two kinds of
//     '.', which become a space so that no phone makes a link of them:
//     a '.' right before a letter ("evil.com" shows as "evil com"), and
//     every '.' of a run of digits and dots (combining marks included)
//     that holds a digit and three dots or more, as an IPv4 address does
//     ("203.0.113.7/pay" shows as "203 0 113 7/pay", "1.2.3.4.5" as
//     "1 2 3 4 5"). "1,234.56", "24.90", "1.234.567,89", "1.2.3", "Co.
//     Ltd" and "Wait..." stay.
//
// Everything else becomes a space: line breaks, control, format and bidi
// characters, '+', ':', '@', '#', '*', '=', '<', '>', '?', '!', '%',
// quotes, symbols and emoji. Runs of spaces become one, and the value is
// trimmed. HTML escaping stays the page template's job.
func Clean(s string, max int) string {
	out := make([]rune, 0, min(len(s), 2*max+2))
	marks, kept := 0, 0
	for _, r := range s {
		if kept > max+1 {
			break // it will be cut: the rest does not show
		}
		r = cleanRune(r)
		if unicode.In(r, unicode.Mn, unicode.Mc) {
			if n := len(out); n == 0 || marks == maxMarks || !baseOrMark(out[n-1]) {
				continue
			}
			marks++
			out = append(out, r)
			continue
		}
		marks = 0
		if r != ' ' {
			kept++
		}
		out = append(out, r)
	}
	for i, r := range out {
		if r == '.' && i+1 < len(out) && unicode.IsLetter(out[i+1]) {
			out[i] = ' '
		}
	}
	unlinkAddresses(out)
	return capRunes(out, max)
}

// unlinkAddresses turns into spaces the dots of each run of digits and
// dots (and combining marks) that holds a digit and three dots or more:
// what a phone would link as an IPv4 address.
func unlinkAddresses(rs []rune) {
	for i := 0; i < len(rs); {
		j, dots, digits := i, 0, 0
		for ; j < len(rs); j++ {
			r := rs[j]
			if r == '.' {
				dots++
			} else if unicode.IsDigit(r) {
				digits++
			} else if j == i || !unicode.In(r, unicode.Mn, unicode.Mc) {
				break
			}
		}
		if dots >= 3 && digits > 0 {
			for k := i; k < j; k++ {
				if rs[k] == '.' {
					rs[k] = ' '
				}
			}
		}
		i = max(j, i+1)
	}
}

// cleanRune maps a rune to itself, to its plain form, or to a space.
func cleanRune(r rune) rune {
	switch {
	case r == '\u2018' || r == '\u2019' || r == '\u02bc':
		return '\''
	case r >= '\u2010' && r <= '\u2015' || r == '\u2212':
		return '-'
	case r < utf8.RuneSelf:
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
			return r
		case strings.ContainsRune(".,-'&/()$", r):
			return r
		}
		return ' '
	case r == utf8.RuneError:
		return ' '
	case unicode.IsLetter(r):
		if r >= '\u02b0' && r <= '\u02ff' || r >= '\u1427' && r <= '\u1429' || r == '\ua788' || r == '\ua78f' {
			return ' '
		}
		return r
	case unicode.In(r, unicode.Mn, unicode.Mc, unicode.Nd, unicode.Sc):
		return r
	}
	return ' '
}

// baseOrMark reports whether a combining mark may follow r.
func baseOrMark(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.In(r, unicode.Mn, unicode.Mc)
}

// capRunes collapses runs of spaces, trims and cuts to max runes.
func capRunes(rs []rune, max int) string {
	s, _ := capRunesCut(rs, max)
	return s
}

// capRunesCut is capRunes, and reports whether it cut.
func capRunesCut(rs []rune, max int) (string, bool) {
	var b strings.Builder
	n := 0
	space := false
	for _, r := range rs {
		if r == ' ' {
			if space || n == 0 {
				continue
			}
			space = true
		} else {
			space = false
		}
		if n == max {
			return strings.TrimRight(b.String(), " ") + Ellipsis, true
		}
		b.WriteRune(r)
		n++
	}
	return strings.TrimRight(b.String(), " "), false
}

// capText makes operator text with values in it fit a description: no
// control or format characters (newlines, bidi overrides, zero-width
// tricks), runs of spaces collapsed, at most max runes; it reports
// whether it cut.
func capText(s string, max int) (string, bool) {
	rs := make([]rune, 0, len(s))
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsSpace(r) || unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs) ||
			r == '\u2028' || r == '\u2029' {
			r = ' '
		}
		rs = append(rs, r)
	}
	return capRunesCut(rs, max)
}
