package stepup

import (
	"net"
	"net/http"
	"strings"
	"time"
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

// cookieValue returns the value of the named cookie, or "".
func cookieValue(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
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
