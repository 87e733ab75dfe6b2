package stepup

import (
	"net/url"
	"strings"
)

// maxReturnURLLen bounds a stored return URL.
const maxReturnURLLen = 2048

// SafeReturnPath returns s if it is a same-origin relative reference
// (a path starting with a single "/", with optional query), and false for
// anything a browser could resolve to another origin: absolute URLs,
// scheme-relative "//host", "/\host" (browsers treat "\" as "/"),
// encoded variants of those, control characters, or a fragment-less
// oddity that does not parse. It never panics.
func SafeReturnPath(s string) (string, bool) {
	if s == "" || len(s) > maxReturnURLLen || s[0] != '/' {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || c == '\\' {
			return "", false
		}
	}
	if len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
		return "", false
	}
	// No empty path segment anywhere: "/.//host" normalizes to "//host"
	// in some hands.
	path, _, _ := strings.Cut(s, "?")
	if strings.Contains(path, "//") {
		return "", false
	}
	// Decode repeatedly: "/%2F%2Fevil" or "/%5Cevil" must not survive a
	// later decode into "//evil".
	d := s
	for range 3 {
		u, err := url.PathUnescape(d)
		if err != nil {
			return "", false
		}
		if u == d {
			break
		}
		d = u
	}
	if strings.HasPrefix(d, "//") || strings.HasPrefix(d, "/\\") || strings.ContainsAny(d, "\\\x00\r\n\t") {
		return "", false
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "", false
	}
	return s, true
}
