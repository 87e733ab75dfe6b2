package caddymodule

import (
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// How MatchPolicy reads a request's path. Caddy's matchers see the path
// decoded once and cleaned; the app behind stepup may read it otherwise:
// servlet containers (Tomcat, Jetty) strip path parameters from every
// segment before they resolve dot segments ("/x/..;/account" and
// "/;jsessionid=x/account" are /account), some servers take a backslash
// for a slash ("/%5caccount") or decode once more ("/%252e/account"). A
// policy applies if its matchers match under any of these readings: each
// is tried by setting r.URL.Path (and clearing RawPath) for the call and
// putting them back, as the method readings do.
//
// PHP front controllers are read too: Caddy's php_fastcgi (split_path
// .php) runs "/index.php/account/settings" as the script /index.php with
// PATH_INFO "/account/settings", and Symfony, Laravel and Slim route on
// PATH_INFO. So what follows ".php" (in any ASCII case) is one more
// reading of the path, and of each of the readings above: after the
// first ".php" (where php_fastcgi's transport splits) and after the
// first ".php" that ends a segment (where its file matcher does).

// pathVariants is the number of ways a path is read besides as sent,
// ahead of PHP's split: each combination of decoding once more,
// backslashes as slashes and path parameters stripped.
const pathVariants = 7

// pathReadings bounds the readings of a path besides as sent: the
// variants, and what follows ".php" in the path as sent and in each of
// them, two ways (phpRemainders).
const pathReadings = pathVariants + (1+1+pathVariants)*2

// pathState is the other readings of a request's path, computed once,
// when first needed. A path without ';', '\', '%' or ".php" has none,
// and costs no allocation.
type pathState struct {
	done bool
	n    int
	// readings are the other readings, dot segments resolved; clean are
	// the same cleaned and lower-cased as the path prefilter compares.
	readings [pathReadings]string
	clean    [pathReadings]string
}

// pathMayVary reports whether an app may read a decoded path otherwise
// than Caddy: it holds a path parameter (';'), a backslash, or a '%' (an
// escape left after one decoding).
func pathMayVary(path string) bool {
	return strings.ContainsAny(path, `;\%`)
}

func (ps *pathState) init(path string) {
	if ps.done {
		return
	}
	ps.done = true
	if !strings.HasPrefix(path, "/") {
		return
	}
	vary, php := pathMayVary(path), containsPHP(path)
	if !vary && !php {
		return
	}
	if php {
		ps.addPHP(path, path)
	}
	for mask := 0; mask <= pathVariants; mask++ {
		if mask > 0 && !vary {
			break
		}
		p := readPath(path, mask&1 != 0, mask&2 != 0, mask&4 != 0)
		ps.add(path, p)
		if php {
			ps.addPHP(path, p)
		}
	}
}

// add adds p as a reading of path, unless it is path or there already.
func (ps *pathState) add(path, p string) {
	if p == path || ps.has(p) || ps.n == len(ps.readings) {
		return
	}
	ps.readings[ps.n] = p
	ps.clean[ps.n] = caddyhttp.CleanPath(strings.ToLower(p), true)
	ps.n++
}

// addPHP adds the readings of p as a front controller's PATH_INFO.
func (ps *pathState) addPHP(path, p string) {
	first, segment := phpRemainders(p)
	for _, rest := range [2]string{first, segment} {
		if rest == "" {
			continue
		}
		if !strings.HasPrefix(rest, "/") {
			rest = "/" + rest
		}
		ps.add(path, caddyhttp.CleanPath(rest, false))
	}
}

// containsPHP reports whether p holds ".php" in any ASCII case, as
// containsFold(p, ".php") does, at the cost of a byte search for '.'.
func containsPHP(p string) bool {
	for {
		i := strings.IndexByte(p, '.')
		if i < 0 || len(p)-i < len(".php") {
			return false
		}
		if p[i+1]|0x20 == 'p' && p[i+2]|0x20 == 'h' && p[i+3]|0x20 == 'p' {
			return true
		}
		p = p[i+1:]
	}
}

// phpRemainders returns what follows the first ".php" of p, in any ASCII
// case, as php_fastcgi's transport splits a path into SCRIPT_NAME and
// PATH_INFO, and what follows the first ".php" that ends a segment, as
// its file matcher (try_files with split_path) does; "" for none.
func phpRemainders(p string) (first, segment string) {
	const ext = ".php"
	found := false
	for i := 0; i+len(ext) <= len(p); i++ {
		if !strings.EqualFold(p[i:i+len(ext)], ext) {
			continue
		}
		rest := p[i+len(ext):]
		if !found {
			found, first = true, rest
		}
		if rest == "" || rest[0] == '/' {
			return first, rest
		}
	}
	return first, ""
}

func (ps *pathState) has(p string) bool {
	for i := 0; i < ps.n; i++ {
		if ps.readings[i] == p {
			return true
		}
	}
	return false
}

// anyHasPrefix reports whether another reading of the path (init ran),
// cleaned and lower-cased, starts with one of prefixes: nothing to do
// for a plain path, which has no other reading.
func (ps *pathState) anyHasPrefix(prefixes []string) bool {
	for i := 0; i < ps.n; i++ {
		if hasAnyPrefix(ps.clean[i], prefixes) {
			return true
		}
	}
	return false
}

// readPath returns a reading of a decoded path: decoded once more,
// backslashes taken for slashes, path parameters stripped from every
// segment (in that order, each if asked), then dot segments resolved.
func readPath(p string, decode, backslash, params bool) string {
	if decode {
		p = decodeOnce(p)
	}
	if backslash {
		p = strings.ReplaceAll(p, `\`, "/")
	}
	if params {
		p = stripParams(p)
	}
	return caddyhttp.CleanPath(p, false)
}

// decodeOnce decodes the percent escapes of s, leaving a '%' that does
// not start one as it is, as servers that decode twice do.
func decodeOnce(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// stripParams removes the parameters of every segment of a path
// ("/a;x/b;y" is "/a/b"), as servlet containers do.
func stripParams(p string) string {
	if !strings.Contains(p, ";") {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for p != "" {
		i := strings.IndexByte(p, ';')
		if i < 0 {
			b.WriteString(p)
			break
		}
		b.WriteString(p[:i])
		j := strings.IndexByte(p[i:], '/')
		if j < 0 {
			break
		}
		p = p[i+j:]
	}
	return b.String()
}
