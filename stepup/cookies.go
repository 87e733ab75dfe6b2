package stepup

import (
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Cookie names. On HTTPS they carry the "__Host-" prefix, which makes the
// browser insist on Secure, Path=/ and no Domain: no subdomain can plant
// or read them.
const (
	sessionCookieName = "stepup_sid"
	grantCookiePrefix = "stepup_"
)

func secure(r *http.Request) bool { return r.TLS != nil }

func cookieName(r *http.Request, name string) string {
	if secure(r) {
		return "__Host-" + name
	}
	return name
}

func sessionCookie(r *http.Request) string { return cookieName(r, sessionCookieName) }

func grantCookie(r *http.Request, policy string) string {
	return cookieName(r, grantCookiePrefix+policy)
}

// cookieValue returns the value of the named cookie, or "": what
// r.Cookie(name) returns, without parsing every cookie of the request
// into an allocated http.Cookie (a grant check reads two cookies of
// headers that carry the app's too).
func cookieValue(r *http.Request, name string) string {
	v, _ := cookiesNamed(r, name)
	return v
}

// maxCookies is net/http's default limit on the number of cookies of a
// request (GODEBUG httpcookiemaxnum): beyond it, net/http reads none.
const maxCookies = 3000

// cookiesNamed returns the value of the first cookie called name and the
// number of such cookies, exactly as net/http's readCookies filters them
// (r.Cookie, r.CookiesNamed): the same trimming, name and value checks,
// and double quotes stripped. It allocates nothing. Requests with more
// cookies than maxCookies are left to net/http itself, whose limit a
// GODEBUG setting may change.
func cookiesNamed(r *http.Request, name string) (first string, n int) {
	lines := r.Header["Cookie"]
	if len(lines) == 0 || name == "" {
		return "", 0
	}
	count := 0
	for _, line := range lines {
		count += strings.Count(line, ";") + 1
	}
	if count > maxCookies {
		cs := r.CookiesNamed(name)
		if len(cs) == 0 {
			return "", 0
		}
		return cs[0].Value, len(cs)
	}
	if !httpguts.ValidHeaderFieldName(name) {
		return "", 0
	}
	for _, line := range lines {
		line = textproto.TrimString(line)
		var part string
		for len(line) > 0 {
			part, line, _ = strings.Cut(line, ";")
			part = textproto.TrimString(part)
			if part == "" {
				continue
			}
			k, v, _ := strings.Cut(part, "=")
			if textproto.TrimString(k) != name {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if !validCookieValue(v) {
				continue
			}
			if n == 0 {
				first = v
			}
			n++
		}
	}
	return first, n
}

// validCookieValue: every byte of v may be in a cookie value (net/http's
// validCookieValueByte).
func validCookieValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return false
		}
	}
	return true
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		HttpOnly: true,
		Secure:   secure(r),
		SameSite: http.SameSiteLaxMode,
	}
	if maxAge > 0 {
		c.MaxAge = int(maxAge / time.Second)
	}
	http.SetCookie(w, c)
}

// setSessionCookie starts the engine's browser session (a session cookie:
// gone when the browser closes).
func setSessionCookie(w http.ResponseWriter, r *http.Request, sid string) {
	setCookie(w, r, sessionCookie(r), sid, 0)
}

func setGrantCookie(w http.ResponseWriter, r *http.Request, policy, token string, ttl time.Duration) {
	setCookie(w, r, grantCookie(r, policy), token, ttl)
}

// remoteIP is the client address without port.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// ownCookie reports whether a cookie name is one of stepup's own: the
// browser session (stepup_sid), a policy's session grant (stepup_NAME),
// the replay cookie (stepup_replay), each also with its "__Host-" or
// "__Secure-" prefix, and an API client's grant (Stepup-Grant). The
// names starting "stepup_" are stepup's.
func ownCookie(name string) bool {
	name = strings.TrimPrefix(name, "__Host-")
	name = strings.TrimPrefix(name, "__Secure-")
	return strings.HasPrefix(name, grantCookiePrefix) || name == GrantCookie
}

// mayHoldOwnCookie is the cheap test every request pays: a substring
// search of the Cookie header, no parsing, no allocation.
func mayHoldOwnCookie(h http.Header) bool {
	for _, v := range h["Cookie"] {
		if strings.Contains(v, grantCookiePrefix) || strings.Contains(v, GrantCookie) {
			return true
		}
	}
	return false
}

// StripOwnCookies removes stepup's own cookies (ownCookie) from the
// Cookie header lines of h, which go upstream: the app has no use for
// them, and one that logs or echoes its cookies must not learn grants,
// replay tokens or the browser session. Every other cookie stays as it
// was sent, in order; a line left empty goes. A Cookie header without
// any of them is left alone, without allocating.
func StripOwnCookies(h http.Header) {
	if !mayHoldOwnCookie(h) {
		return
	}
	var out []string
	for _, line := range h["Cookie"] {
		var kept []string
		for _, c := range strings.Split(line, ";") {
			c = strings.TrimSpace(c)
			name, _, _ := strings.Cut(c, "=")
			if c == "" || ownCookie(strings.TrimSpace(name)) {
				continue
			}
			kept = append(kept, c)
		}
		if len(kept) > 0 {
			out = append(out, strings.Join(kept, "; "))
		}
	}
	if len(out) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = out
}

// ownCookiesStripped is the rest of the chain, with stepup's own cookies
// removed from the request it is handed (StripOwnCookies).
type ownCookiesStripped struct{ Next }

func (n ownCookiesStripped) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	StripOwnCookies(r.Header)
	return n.Next.ServeHTTP(w, r)
}
