package fields

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// How apps read a field name. Each reading turns a name into a path of
// folded segments; two names clash when, in one reading, one's path is
// a prefix of the other's (the app would see one field, or one inside the
// other).
const (
	plainReading   = iota // the name as it is (Go, Java, ASP.NET)
	bracketReading        // PHP, Rack and Rails: "a[b][]"
	dotReading            // Spring and qs: "a.b[c]"
	readings
)

// wildcard is the segment of an empty "[]": the next index of an array,
// so any segment.
const wildcard = "\x00"

// paths is a name under each reading.
type paths [readings][]string

// readName returns the paths of a request's (or a reference's) field
// name.
func readName(name string) paths {
	var p paths
	p[plainReading] = []string{fold(name)}

	// PHP, Rack and Rails: see PHPName.
	n := phpTrim(name)
	base, segs, matched := splitBrackets(n)
	p[bracketReading] = append([]string{fold(phpMangle(base, matched))}, segs...)

	// Spring and qs with dots: "a.b" is b inside a.
	if !matched {
		base = n
	}
	var dots []string
	for _, s := range strings.Split(base, ".") {
		dots = append(dots, fold(s))
	}
	p[dotReading] = append(dots, segs...)
	return p
}

// PHPName returns the name PHP files a request field under: its key in
// $_GET or $_POST. PHP (and so Symfony and Laravel; Rack and Rails
// alike) ends the name at a NUL, drops leading spaces, reads "a[b][]" as
// b and the next index inside a (key "a"), and turns ' ' and '.' in the
// key into '_', and '[' too when no ']' closes it ("a[b" is "a_b").
// "_method\x00x", " .method" and "_method[x]" are all filed under
// "_method". An empty result is a name PHP drops. It allocates only for
// a name it changes.
func PHPName(name string) string {
	n := phpTrim(name)
	base, matched := phpBase(n)
	return phpMangle(base, matched)
}

// phpTrim cuts a name at its first NUL and drops its leading spaces.
func phpTrim(name string) string {
	if i := strings.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	return strings.TrimLeft(name, " ")
}

// phpBase returns the part of a trimmed name before its first '[', when
// a later ']' closes it (matched), and otherwise the whole name.
func phpBase(n string) (base string, matched bool) {
	i := strings.IndexByte(n, '[')
	if i < 0 || strings.IndexByte(n[i:], ']') < 0 {
		return n, false
	}
	return n[:i], true
}

// phpMangle turns the characters PHP does not keep in a key into '_':
// ' ' and '.', and, in a name without a matched '[', '[' too.
func phpMangle(base string, matched bool) string {
	bad := " ."
	if !matched {
		bad = " .["
	}
	if !strings.ContainsAny(base, bad) {
		return base
	}
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '.' || r == '[' {
			return '_'
		}
		return r
	}, base)
}

// splitBrackets splits "a[b][]" into "a" and the folded segments "b" and
// wildcard. matched is false when the name has no '[' closed by a later
// ']'. As in PHP, reading stops at the first character after a ']' that
// is not '[', and a segment of one space ("[ ]") is an empty one; a
// quoted segment ("['b']", Spring) is read without its quotes.
func splitBrackets(n string) (base string, segs []string, matched bool) {
	base, matched = phpBase(n)
	if !matched {
		return n, nil, false
	}
	rest := n[len(base):]
	for len(rest) > 0 && rest[0] == '[' {
		j := strings.IndexByte(rest, ']')
		if j < 0 {
			break
		}
		seg := rest[1:j]
		if len(seg) >= 2 && (seg[0] == '\'' || seg[0] == '"') && seg[len(seg)-1] == seg[0] {
			seg = seg[1 : len(seg)-1] // Spring: map['key'] is map[key]
		}
		if seg == "" || len(seg) == 1 && isCSpace(seg[0]) {
			segs = append(segs, wildcard)
		} else {
			segs = append(segs, canonicalIndex(fold(seg)))
		}
		rest = rest[j+1:]
	}
	return base, segs, true
}

// isCSpace reports whether C's isspace holds for c.
func isCSpace(c byte) bool {
	return c == ' ' || '\t' <= c && c <= '\r'
}

// canonicalIndex drops the leading zeros of a decimal index, so that
// "a[01]" clashes with "a[1]".
func canonicalIndex(s string) string {
	if len(s) < 2 || s[0] != '0' {
		return s
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return s
		}
	}
	s = strings.TrimLeft(s, "0")
	if s == "" {
		return "0"
	}
	return s
}

// clash reports whether two names would be read, by one app or another,
// as the same field or one inside the other.
func clash(a, b *paths) bool {
	for r := range readings {
		if prefix(a[r], b[r], r != plainReading) {
			return true
		}
	}
	return false
}

// prefix reports whether one of a and b is a prefix of the other.
func prefix(a, b []string, wild bool) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] && (!wild || a[i] != wildcard && b[i] != wildcard) {
			return false
		}
	}
	return true
}

// sameTop reports whether two names share their first segment in some
// reading: what a shallow merge of query and body (PHP's $_REQUEST, Rails'
// params) puts in one place.
func sameTop(a, b *paths) bool {
	for r := range readings {
		if a[r][0] == b[r][0] {
			return true
		}
	}
	return false
}

// fold returns s with every rune replaced by the smallest rune of its
// simple case-folding orbit, as encoding/json folds names: two strings
// fold equal exactly when strings.EqualFold holds. Invalid UTF-8 stays as
// it is, byte for byte.
func fold(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
		if 'a' <= c && c <= 'z' {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteByte(s[i])
		} else {
			b.WriteRune(foldRune(r))
		}
		i += n
	}
	return b.String()
}

// foldRune returns the smallest rune of r's simple folding orbit.
func foldRune(r rune) rune {
	min := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < min {
			min = f
		}
	}
	return min
}
