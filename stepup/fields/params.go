package fields

import (
	"net/http"
	"strings"
	"sync"
)

// Where the apps behind stepup read request parameters from, besides the
// query and the body. Frameworks merge more than those two into what
// they read as a request's parameters:
//
//   - cookies: PHP's $_REQUEST with no php.ini (request_order unset, so
//     variables_order "EGPCS": GET, then POST, then COOKIE, a later one
//     winning; the official php Docker images ship no php.ini), and
//     classic ASP.NET's Request["x"] and Request.Params (QueryString,
//     Form, then Cookies). A Cookie header is split on ';' and ','
//     (ASP.NET splits on both), each name read as sent and decoded as a
//     URL escape (PHP before the fix of CVE-2022-31629 decodes cookie
//     names), under every reading of names ([TopKeys], PHP's
//     [PHPName], case folding).
//   - headers: Spring Framework 6.2 and later bind request headers into
//     @ModelAttribute objects (ExtendedServletRequestDataBinder): a
//     header's name with every '-' removed and its first letter lower
//     case ("Pay-To" is payTo) is a bind value when no request parameter
//     has that name, and a constructor parameter payTo is looked up as a
//     header of that name in any case. A header is so read as the
//     parameter named by its name without '-', compared under case
//     folding and the same readings. The headers stepup itself reads or
//     that carry the transport (transportHeader) are left out: they
//     name no field an operator describes, and refusing them would
//     refuse every request.
//
// [EachOtherParam] walks them, [Params.Elsewhere] says whether one of a
// set of names is among them.

// Where a parameter outside the query and body was found.
const (
	InCookie = "cookie"
	InHeader = "header"
)

// transportHeader reports whether a header (in any case) is one stepup
// reads itself or that carries the request's transport, framing or
// forwarding: never a parameter for the checks here.
func transportHeader(k string) bool {
	switch {
	case hasPrefixFold(k, "X-Forwarded-"), hasPrefixFold(k, "Stepup-"), hasPrefixFold(k, "Proxy-"),
		hasPrefixFold(k, "Sec-"):
		return true
	}
	for _, n := range transportHeaders {
		if strings.EqualFold(k, n) {
			return true
		}
	}
	return false
}

// transportHeaders are the headers (besides the prefixes of
// transportHeader: X-Forwarded-*, Stepup-*, Proxy-*, and Sec-*, which
// only the browser sets) that are never a parameter here: those stepup
// reads (the Cookie, credentials, the body's type and encoding, method
// overrides), the hop-by-hop and framing ones, those the proxies in
// front set, those only the browser sets (Origin, Referer, User-Agent)
// and Priority, which Spring leaves out itself. Any other header counts,
// Accept and the like included: a header named like a described field
// is refused only when a field of that very name is described.
var transportHeaders = [...]string{
	"Cookie", "Authorization", "Host", "Content-Type", "Content-Length", "Content-Encoding",
	"Transfer-Encoding", "Connection", "Keep-Alive", "Te", "Trailer", "Upgrade", "Expect",
	"Via", "Forwarded", "X-Real-Ip", "User-Agent", "Referer", "Origin", "Priority",
	"X-Http-Method-Override", "X-Http-Method", "X-Method-Override",
	"Traceparent", "Tracestate",
}

// SpringHeaderName returns the parameter name Spring 6.2's data binder
// reads a header as: every '-' removed, the first letter in lower case
// ("Pay-To" is "payTo"). It allocates only for a name it changes.
func SpringHeaderName(h string) string {
	if strings.IndexByte(h, '-') >= 0 {
		h = strings.ReplaceAll(h, "-", "")
	}
	if h != "" && 'A' <= h[0] && h[0] <= 'Z' {
		h = string(h[0]+'a'-'A') + h[1:]
	}
	return h
}

// EachOtherParam calls fn with each parameter that some app reads from
// r outside its query and body: each cookie (as sent, and again decoded
// when decoding changes its name) and each header but the transport ones
// (under its Spring name, SpringHeaderName, once for each value). where
// is InCookie or InHeader. It stops when fn returns false.
func EachOtherParam(r *http.Request, fn func(where, name, value string) bool) {
	if !eachCookie(r, func(name, value string) bool { return fn(InCookie, name, value) }) {
		return
	}
	for k, vs := range r.Header {
		if transportHeader(k) {
			continue
		}
		name := SpringHeaderName(k)
		for _, v := range vs {
			if !fn(InHeader, name, v) {
				return
			}
		}
	}
}

// eachCookie is EachOtherParam's walk of the cookies. It reports false
// when fn stopped it.
func eachCookie(r *http.Request, fn func(name, value string) bool) bool {
	for _, line := range r.Header["Cookie"] {
		for line != "" {
			var c string
			if i := strings.IndexAny(line, ";,"); i >= 0 {
				c, line = line[:i], line[i+1:]
			} else {
				c, line = line, ""
			}
			name, value, _ := strings.Cut(c, "=")
			name = strings.Trim(name, " \t\r\n\v\f")
			value = strings.TrimSpace(value)
			if name == "" {
				continue
			}
			if !fn(name, value) {
				return false
			}
			if d := decodeLenient(name); d != name && !fn(d, decodeLenient(value)) {
				return false
			}
		}
	}
	return true
}

// decodeLenient decodes a name or value as PHP's urldecode does: '+' is
// a space, %XX a byte, and a '%' that does not start an escape stays as
// it is.
func decodeLenient(s string) string {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		default:
			b.WriteByte(c)
		}
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

// Params is a set of request parameter names ("amount", "user[phone]",
// "_method"), each read under every reading of names (see the package
// documentation: case folding, PHP's, Spring's '!' and dots, Rack's,
// qs's).
type Params struct {
	names []paths
	memo  *nameMemo // nil: nothing remembered
}

// NewParams returns the set of the given parameter names.
func NewParams(names ...string) *Params {
	ps := &Params{}
	for _, n := range names {
		ps.names = append(ps.names, readName(n))
	}
	return ps
}

// Remembering makes ps remember, for each cookie name and header it is
// asked about, which of its names that one reads as: for a set that
// lives long and sees the same cookies and headers on request after
// request (a policy's fields, the method parameter), so that each is
// read under every reading once, not on every request. What it
// remembers is bounded (nameMemoMax names; past that it starts afresh),
// since clients choose the names. It returns ps.
func (ps *Params) Remembering() *Params {
	ps.memo = &nameMemo{cookies: map[string]int{}, headers: map[string]int{}}
	return ps
}

// nameMemoMax bounds the cookie names and header keys a remembering
// Params keeps.
const nameMemoMax = 4096

// nameMemo is what a remembering Params knows: a cookie name, or a
// header's key as net/http holds it, to the index of the name it reads
// as (-1: none).
type nameMemo struct {
	mu      sync.RWMutex
	cookies map[string]int
	headers map[string]int
}

// index returns the index of the name n (a cookie name) or, for a
// header, SpringHeaderName(n) reads as, or -1.
func (ps *Params) index(n string, header bool) int {
	m := ps.memo
	if m == nil {
		return ps.lookup(n, header)
	}
	tab := m.cookies
	if header {
		tab = m.headers
	}
	m.mu.RLock()
	i, ok := tab[n]
	m.mu.RUnlock()
	if ok {
		return i
	}
	i = ps.lookup(n, header)
	m.mu.Lock()
	if len(m.cookies)+len(m.headers) >= nameMemoMax {
		clear(m.cookies)
		clear(m.headers)
	}
	tab[strings.Clone(n)] = i
	m.mu.Unlock()
	return i
}

// lookup is index without the memory. A transport header reads as
// none of the names.
func (ps *Params) lookup(n string, header bool) int {
	if header {
		if transportHeader(n) {
			return -1
		}
		n = SpringHeaderName(n)
	}
	p := readName(n)
	for i := range ps.names {
		if sameTop(&p, &ps.names[i]) {
			return i
		}
	}
	return -1
}

// Elsewhere reports whether r carries one of the names outside its query
// and body, where some app reads it as a parameter (EachOtherParam): the
// index of the first such name, and where (InCookie or InHeader); -1 and
// "" when none. A cookie or header counts when, under some reading, its
// name shares its first segment with one of the names: the apps merge
// cookies and headers with the query and body at their top level. Only a
// request that has cookies or non-transport headers costs anything.
func (ps *Params) Elsewhere(r *http.Request) (int, string) {
	if ps == nil || len(ps.names) == 0 {
		return -1, ""
	}
	found := -1
	eachCookie(r, func(name, _ string) bool {
		found = ps.index(name, false)
		return found < 0
	})
	if found >= 0 {
		return found, InCookie
	}
	// A header's values do not change how its name reads: once per key.
	for k, vs := range r.Header {
		if len(vs) == 0 {
			continue
		}
		// Transport headers are remembered as none (lookup).
		if found = ps.index(k, true); found >= 0 {
			return found, InHeader
		}
	}
	return -1, ""
}

// Elsewhere refuses f (the error matches ErrAmbiguous) when the request
// carries its name (a JSON path's first step) in a cookie or a header,
// where some app reads it as a parameter ([EachOtherParam]).
func (rd *Reader) Elsewhere(f Ref) error {
	name := f.Name
	if f.Source == JSON && len(f.path) > 0 {
		name = f.path[0]
	}
	if i, where := NewParams(name).Elsewhere(rd.r); i >= 0 {
		return ambiguous(f, elsewhereReason(where))
	}
	return nil
}

// elsewhereReason is the reason of a refusal for a reference found in a
// cookie or a header.
func elsewhereReason(where string) string {
	if where == InHeader {
		return "is also a request header's name (Spring 6.2 binds headers)"
	}
	return "is also a cookie's name (PHP's $_REQUEST, ASP.NET's Request[] read cookies)"
}
