package stepup

import (
	"net"
	"net/http"
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
