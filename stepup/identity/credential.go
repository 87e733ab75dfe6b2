package identity

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// This file finds a credential in a request the way the app behind
// stepup could find it, whatever the app is written in. stepup verifies
// one credential and the app acts on the request: if the app could read
// another credential from the same bytes (the second of two cookies of
// the same name, the Authorization header where stepup read the cookie),
// a code sent to one person would authorize another. So a credential
// that could be read two ways is refused (ErrAmbiguousCredential),
// never guessed.
//
// What parsers do with a Cookie header (checked in their sources):
//
//   - Go's net/http: splits on ';' only, reads every Cookie line, names
//     case-sensitive and not decoded, one pair of double quotes around a
//     value removed, pairs with invalid names or values skipped silently;
//     Request.Cookie returns the first.
//   - PHP ($_COOKIE): splits on ';' only, leading whitespace of names
//     removed, names and values %-decoded ('+' as space), then ' ' and
//     '.' in names become '_' and "name[...]" makes an array; the first
//     of a name wins. Behind Caddy's php_fastcgi, several Cookie lines
//     arrive joined by ", ".
//   - Python's http.cookies.SimpleCookie: a regular expression that also
//     takes whitespace as a separator, unquotes "..." values with
//     backslash and octal escapes; names case-sensitive, not decoded; the
//     last of a name wins. Django's parse_cookie: last wins, unquotes.
//   - Rack 3: splits on ';', values %-decoded, names not; the first
//     wins. Rack 2 also split on ',' and decoded names.
//   - ASP.NET: names compared without case, names and values
//     %-decoded. Tomcat tries each JSESSIONID until one is valid.
//
// So the credential cookie counts as found more than once when any
// word of any Cookie line (separated by ';', ',', whitespace, control
// characters or non-ASCII bytes) has a name that equals its name after
// quotes, a '$' prefix and up to two rounds of %-decoding are removed,
// PHP's mangling is applied (' ', '.' and an unclosed '[' become '_')
// and case is ignored; a part's whole name counts as well as each of
// its words.

// FoldedEqual reports whether header names a and b are the same to a
// gateway that ignores case and turns '-', '_', '.' and ' ' into '_'
// (CGI, FastCGI, WSGI: X_Id_Token and X-Id-Token both reach PHP as
// HTTP_X_ID_TOKEN).
func FoldedEqual(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := lower(a[i]), lower(b[i])
		if x != y && !(foldsToUnderscore(x) && foldsToUnderscore(y)) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func foldsToUnderscore(c byte) bool {
	return c == '-' || c == '_' || c == '.' || c == ' '
}

// headerLines returns every line of header key (canonical) in h,
// including those kept under names that fold into the same one (see
// foldedHeaderEqual). It allocates only when there are such names.
func headerLines(h http.Header, key string) []string {
	lines := h[key]
	extra := false
	for k := range h {
		if k != key && FoldedEqual(k, key) {
			extra = true
			break
		}
	}
	if !extra {
		return lines
	}
	all := append([]string(nil), lines...)
	for k, v := range h {
		if k != key && FoldedEqual(k, key) {
			all = append(all, v...)
		}
	}
	return all
}

// ambiguous wraps ErrAmbiguousCredential with a reason that never
// contains the credential.
func ambiguous(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrAmbiguousCredential, fmt.Sprintf(format, args...))
}

// headerCredential reads the credential of one header line. With bearer
// (the Authorization header) only the Bearer scheme (any case) carries
// one; other schemes (Basic, Digest) hold none for us. Otherwise the
// line is the bare credential, with an optional "Bearer " before it.
// A line holding more than one credential ("Bearer a, Bearer b",
// "Bearer a b"), or control or non-ASCII characters, is an ambiguous
// error: some parsers read the first, some the last, some the whole.
func headerCredential(v string, bearer bool) (string, error) {
	for i := 0; i < len(v); i++ {
		// Tokens and Basic credentials are ASCII. Python's str.split()
		// takes NBSP for a space, so "Bearer\u00a0A" is a bearer token
		// to some apps and none to others.
		if c := v[i]; (c < ' ' && c != '\t') || c >= 0x7f {
			return "", ambiguous("control or non-ASCII characters in a credential header")
		}
	}
	v = strings.Trim(v, " \t")
	if v == "" {
		return "", nil
	}
	scheme, rest := v, ""
	if i := strings.IndexAny(v, " \t"); i >= 0 {
		scheme, rest = v[:i], v[i+1:]
	}
	switch {
	case rest != "" && strings.EqualFold(scheme, "Bearer"):
		v = strings.Trim(rest, " \t")
	case strings.EqualFold(v, "Bearer"):
		return "", nil
	case bearer:
		// Another scheme. A list such as "Basic x, Bearer y" hides a
		// bearer token that lenient parsers find.
		for _, item := range strings.Split(v, ",")[1:] {
			item = strings.TrimLeft(item, " \t")
			if len(item) >= 6 && strings.EqualFold(item[:6], "Bearer") {
				return "", ambiguous("a bearer token after another credential in one header line")
			}
		}
		return "", nil
	}
	if strings.ContainsAny(v, ", \t") {
		return "", ambiguous("more than one credential in one header line")
	}
	return v, nil
}

// cookieName is the name of a credential cookie, prepared for finding it.
type cookieName struct {
	name   string // as configured
	folded string // foldCookieName(name)
}

func newCookieName(name string) cookieName {
	return cookieName{name: name, folded: foldCookieName(name)}
}

// foldCookieName removes from a cookie name what some parser removes or
// changes: surrounding whitespace and quotes, a '$' prefix (RFC 2965
// attributes), up to two rounds of %-decoding with '+' as space, and
// PHP's reading (the name ends at a NUL, leading spaces removed, an
// array index "[...]" cut, ' ' and '.' as '_'). Compare results with strings.EqualFold.
func foldCookieName(n string) string {
	if plainCookieName(n) {
		return n // the common case: nothing to fold, no allocation
	}
	n = strings.TrimFunc(n, func(r rune) bool { return r == '"' || isCookieSeparator(r) })
	n = strings.TrimPrefix(n, "$")
	for range 2 {
		if !strings.ContainsAny(n, "%+") {
			break
		}
		d, err := url.QueryUnescape(n)
		if err != nil {
			break
		}
		n = d
	}
	if i := strings.IndexByte(n, 0); i >= 0 {
		n = n[:i] // PHP's names end at a NUL ("PHPSESSID\x00x" is PHPSESSID)
	}
	n = strings.TrimFunc(n, isCookieSeparator)
	if i := strings.IndexByte(n, '['); i >= 0 {
		if strings.IndexByte(n[i:], ']') > 0 {
			n = n[:i] // "name[x]": an array under name
		} else {
			// PHP turns an unclosed '[' into '_' ("shop[session" is
			// shop_session), as it does ' ' and '.'.
			n = n[:i] + "_" + n[i+1:]
		}
	}
	return strings.NewReplacer(" ", "_", ".", "_").Replace(n)
}

// plainCookieName reports whether n has nothing foldCookieName changes
// (no quotes, '$', '%', '+', '[', '.', whitespace, controls or
// non-ASCII).
func plainCookieName(n string) bool {
	for i := 0; i < len(n); i++ {
		switch c := n[i]; {
		case c <= ' ' || c >= 0x7f:
			return false
		case strings.IndexByte("\"$%+[.", c) >= 0:
			return false
		}
	}
	return true
}

// matches reports whether a cookie named n could be read as c.
func (c cookieName) matches(n string) bool {
	return strings.EqualFold(foldCookieName(n), c.folded)
}

// find returns the value of the credential cookie in h: found is false
// when no Cookie line has it. The error wraps
// ErrAmbiguousCredential when the cookie is there more than once
// (under its own name or one that folds into it), under another name
// only, in a request with more than one Cookie line, or as more than a
// plain name=value pair (a value with spaces or commas, or quoted:
// parsers split or unquote those differently).
func (c cookieName) find(h http.Header) (value string, found bool, err error) {
	count, clean := 0, false
	lines := headerLines(h, "Cookie")
	for _, line := range lines {
		for part := range strings.SplitSeq(line, ";") {
			// Only leading whitespace goes: in "a=b ;" PHP keeps the space
			// in the value, so that part is not a plain pair.
			part = strings.TrimLeft(part, " \t")
			// The part's whole name, spaces and all, is how PHP reads it
			// ("shop session=x" is shop_session); the words it holds are
			// how parsers that split on whitespace and commas read it.
			if n, v, _ := strings.Cut(part, "="); n != "" && c.matches(n) {
				if count++; count > 1 {
					return "", false, ambiguous("cookie %s sent more than once (or under a name some parsers read as it)", c.name)
				}
				value, clean = v, n == c.name
			}
			for word := range strings.FieldsFuncSeq(part, isCookieSeparator) {
				if len(word) == len(part) {
					continue // the whole part, seen above
				}
				n, v, _ := strings.Cut(word, "=")
				if n == "" || !c.matches(n) {
					continue
				}
				if count++; count > 1 {
					return "", false, ambiguous("cookie %s sent more than once (or under a name some parsers read as it)", c.name)
				}
				value, clean = v, false
			}
		}
	}
	switch {
	case count == 0:
		return "", false, nil
	case len(lines) > 1:
		// Browsers send one Cookie line (HTTP/2 and HTTP/3 crumbs are
		// joined by the server). Gateways join several differently:
		// php_fastcgi with ", ", so that the credential's value runs
		// into the next line.
		return "", false, ambiguous("cookie %s sent with more than one Cookie header line", c.name)
	case !clean:
		return "", false, ambiguous("cookie %s not sent as a plain %s=value pair", c.name, c.name)
	case strings.ContainsAny(value, "\"\\"):
		return "", false, ambiguous("cookie %s has a quoted value, which parsers read differently", c.name)
	}
	return value, true, nil
}

// isCookieSeparator reports whether r may end a cookie name or value for
// some parser: a comma (Rack 2), or whitespace. Python's SimpleCookie
// matches \s on text decoded as Latin-1, so NEL (0x85) and NBSP (0xa0)
// separate too; every control character and non-ASCII byte is taken as
// a separator, which can only find more occurrences, never fewer.
func isCookieSeparator(r rune) bool {
	return r == ',' || r <= ' ' || r >= 0x7f
}

// queryValues returns the values of the query parameters of rawQuery
// whose names could be read as one of names (folded like cookie names:
// PHP mangles query names the same way), %-decoded. Both '&' and ';'
// separate parameters, as in older parsers.
func queryValues(rawQuery string, names ...cookieName) []string {
	if rawQuery == "" {
		return nil
	}
	var out []string
	for pair := range strings.FieldsFuncSeq(rawQuery, func(r rune) bool { return r == '&' || r == ';' }) {
		n, v, _ := strings.Cut(pair, "=")
		for _, c := range names {
			if c.matches(n) {
				if d, err := url.QueryUnescape(v); err == nil {
					v = d
				}
				out = append(out, v)
				break
			}
		}
	}
	return out
}

// pathParamValues returns the values of path parameters (";jsessionid=X"
// as servlet containers read them) named like c.
func pathParamValues(path string, c cookieName) []string {
	if strings.IndexByte(path, ';') < 0 {
		return nil
	}
	var out []string
	for seg := range strings.SplitSeq(path, "/") {
		params := strings.Split(seg, ";")
		for _, p := range params[1:] {
			if n, v, _ := strings.Cut(p, "="); c.matches(n) {
				out = append(out, v)
			}
		}
	}
	return out
}

// jwsShape reports whether raw looks like a compact JWS: three base64url
// segments separated by dots.
func jwsShape(raw string) bool {
	dots := 0
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '.':
			dots++
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return dots == 2
}
