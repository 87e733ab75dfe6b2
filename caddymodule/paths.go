package caddymodule

import (
	"net/http"
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

// pathReadings is the number of ways a path is read besides as sent:
// each combination of decoding once more, backslashes as slashes and
// path parameters stripped.
const pathReadings = 7

// pathState is the other readings of a request's path, computed once,
// when first needed. A path without ';', '\' or '%' has none, and costs
// no allocation.
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
	if !pathMayVary(path) || !strings.HasPrefix(path, "/") {
		return
	}
	for mask := 1; mask <= pathReadings; mask++ {
		p := readPath(path, mask&1 != 0, mask&2 != 0, mask&4 != 0)
		if p == path || ps.has(p) {
			continue
		}
		ps.readings[ps.n] = p
		ps.clean[ps.n] = caddyhttp.CleanPath(strings.ToLower(p), true)
		ps.n++
	}
}

func (ps *pathState) has(p string) bool {
	for i := 0; i < ps.n; i++ {
		if ps.readings[i] == p {
			return true
		}
	}
	return false
}

// hasAnyPrefix reports whether another reading of r's path, cleaned and
// lower-cased, starts with one of prefixes.
func (ps *pathState) hasAnyPrefix(r *http.Request, prefixes []string) bool {
	ps.init(r.URL.Path)
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
