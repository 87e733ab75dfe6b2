package fields

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// How apps read a field name. Each reading turns a name into a path of
// folded segments; two names clash when, in one reading, one's path is
// a prefix of the other's (the app would see one field, or one inside the
// other). A name a parser drops has no path in its reading (nil), and
// clashes with nothing there.
const (
	plainReading   = iota // the name as it is (Go, Java, ASP.NET)
	bracketReading        // PHP (Symfony, Laravel): "a[b][]"
	dotReading            // Spring ("!a" is a's default) and qs with allowDots: "a.b[c]"
	rackReading           // Rack 2 (Rails <= 7.0, Sinatra 2 and 3): "[a]", "a]", "]]a" are a
	qsReading             // qs (Express's extended parser): "[a]" is a
	readings
)

// wildcard is the segment of an empty "[]": the next index of an array,
// so any segment.
const wildcard = "\x00"

// paths is a name under each reading.
type paths [readings][]string

// readName returns the paths of a request's (or a reference's) field
// name: the one reading of names that every consumer (a reference's
// lookup, the query and body merge, a JSON body's keys, a method
// override through [TopNames]) compares.
func readName(name string) paths {
	var p paths
	p[plainReading] = []string{fold(name)}

	// PHP: see PHPName.
	n := phpTrim(name)
	base, segs, matched := splitBrackets(n)
	p[bracketReading] = append([]string{fold(phpMangle(base, matched))}, segs...)

	// Spring and qs with dots: "a.b" is b inside a. Spring's data
	// binder also reads a field default: "!amount" gives amount its
	// value when amount is absent, so a leading '!' is dropped (once, as
	// Spring does). Its field marker "_amount" is not read as amount: it
	// only resets an absent amount to empty (false, an empty array or
	// null), never gives it a value, and a described field that is
	// absent shows as missing all the same.
	if !matched {
		base = n
	}
	if spring, ok := strings.CutPrefix(base, "!"); ok {
		base = spring
	}
	var dots []string
	for _, s := range strings.Split(base, ".") {
		dots = append(dots, fold(s))
	}
	p[dotReading] = append(dots, segs...)

	p[rackReading] = rackPath(name)
	p[qsReading] = qsPath(name)
	return p
}

// TopNames returns the key each parser files a request field's name
// under at the top of its parameters, unfolded, in the order plain,
// PHP ([PHPName]), Rack 2, qs; "" where a parser drops the name. A field
// is a parameter P for some app when one of them is P: "_method",
// ".method", "_method[x]", "[_method]", "_method]", "]_method" and
// "[[_method]]" are all "_method" to one app or another. It allocates
// only where PHP changes the name.
func TopNames(name string) [4]string {
	k, _, _ := rackStep(name)
	return [4]string{name, PHPName(name), k, qsTop(name)}
}

// HasTopName reports whether some parser files the field name under the
// top-level key top (see [TopNames]).
func HasTopName(name, top string) bool {
	if top == "" {
		return false
	}
	for _, n := range TopNames(name) {
		if n == top {
			return true
		}
	}
	return false
}

// rackStep reads one level of a name the way Rack 2's normalize_params
// does (\A[\[\]]*([^\[\]]+)\]*): leading brackets dropped, the key
// runs to the next bracket, the ']'s after it dropped; after is the rest,
// read at the next level. k is "" for a name Rack drops. array reports
// an "[]" after the key (the next array index), after it the rest. A
// name whose key is followed by a lone "[" is a key of its own, whole.
func rackStep(name string) (k, after string, array bool) {
	i := 0
	for i < len(name) && (name[i] == '[' || name[i] == ']') {
		i++
	}
	j := i
	for j < len(name) && name[j] != '[' && name[j] != ']' {
		j++
	}
	if j == i {
		return "", "", false
	}
	k = name[i:j]
	for j < len(name) && name[j] == ']' {
		j++
	}
	after = name[j:]
	switch {
	case after == "[":
		return name, "", false
	case rackArray(after):
		return k, after[2:], true
	}
	return k, after, false
}

// rackArray reports whether Rack 2 reads after (what follows a key) as
// an array: "[]" alone, "[][key]", or "[]" and more that its regular
// expression \[\](.+) takes, whose "." takes no newline.
func rackArray(after string) bool {
	rest, ok := strings.CutPrefix(after, "[]")
	switch {
	case !ok:
		return false
	case rest == "":
		return true
	case len(rest) > 2 && rest[0] == '[' && rest[len(rest)-1] == ']' && !strings.ContainsAny(rest[1:len(rest)-1], "[]"):
		return true // [][key]
	}
	return !strings.Contains(rest, "\n")
}

// rackPath returns a name's folded path as Rack 2 reads it: "[a]",
// "]a", "[[a]]", "a]", "[a", "[]a" and "]]a]]" are all a; "a[b]" and
// "a]b" are b inside a; nil for a name it drops.
func rackPath(name string) []string {
	var segs []string
	rest := name
	for depth := 0; rest != "" && depth < 100; depth++ {
		k, after, array := rackStep(rest)
		if k == "" {
			break
		}
		segs = append(segs, fold(k))
		if array {
			segs = append(segs, wildcard)
		}
		rest = after
	}
	return segs
}

// qsDepth is how many bracket groups qs reads (its depth option's
// default); it keeps the rest as one key.
const qsDepth = 5

// qsGroup finds the first "[...]" without brackets inside in s[from:]:
// its start and end (after the ']'), or -1.
func qsGroup(s string, from int) (start, end int) {
	for i := from; i < len(s); i++ {
		if s[i] != '[' {
			continue
		}
		for j := i + 1; j < len(s); j++ {
			if s[j] == ']' {
				return i, j + 1
			}
			if s[j] == '[' {
				break
			}
		}
	}
	return -1, -1
}

// qsTop returns the top-level key qs files a name under: the part before
// the first bracket group, or when that is empty the group's content ("0"
// for "[]": an array, merged into the top as index 0).
func qsTop(name string) string {
	start, end := qsGroup(name, 0)
	switch {
	case start < 0:
		return name
	case start > 0:
		return name[:start]
	case end == 2:
		return "0"
	}
	return name[1 : end-1]
}

// qsPath returns a name's folded path as qs reads it: the part before
// the first bracket group (when not empty), then each group's content,
// groups found anywhere after ("a[b]x[c]" is a, b, c); after qsDepth
// groups the rest is one segment.
func qsPath(name string) []string {
	start, end := qsGroup(name, 0)
	if start < 0 {
		return []string{fold(name)}
	}
	var segs []string
	if start > 0 {
		segs = append(segs, fold(name[:start]))
	}
	for n := 0; start >= 0; n++ {
		if n == qsDepth {
			segs = append(segs, fold(name[start:]))
			break
		}
		switch inner := name[start+1 : end-1]; {
		case inner != "":
			segs = append(segs, fold(inner))
		case len(segs) == 0:
			segs = append(segs, "0")
		default:
			segs = append(segs, wildcard)
		}
		start, end = qsGroup(name, end)
	}
	return segs
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
		if len(a[r]) > 0 && len(b[r]) > 0 && prefix(a[r], b[r], r != plainReading) {
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
		if len(a[r]) > 0 && len(b[r]) > 0 && a[r][0] == b[r][0] {
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

// TopKeys returns every top-level key under which some app files a
// request field's name (decoded), each once, for a matcher that compares
// names as written: the name itself and [TopNames]' readings (PHP, Rack
// 2, qs), Spring's (a field default's '!' dropped, up to the first '.'
// or '['), and each of these in lower case (ASP.NET and Spring's binder
// read names in any case). "action\x00x", " action", "[action]",
// "action]", "[[action]]", "!action" and "action.x" all give "action".
// A name no app reads gives none.
func TopKeys(name string) []string {
	var out []string
	add := func(k string) {
		for _, v := range [2]string{k, strings.ToLower(k)} {
			if v != "" && !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
	}
	for _, k := range TopNames(name) {
		add(k)
	}
	spring := strings.TrimPrefix(name, "!")
	if i := strings.IndexAny(spring, ".["); i >= 0 {
		spring = spring[:i]
	}
	add(spring)
	return out
}
