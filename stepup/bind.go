package stepup

import (
	"crypto/sha256"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/caddy-stepup/caddy-stepup/stepup/page"
)

// What a transaction code and grant are bound to. The app behind stepup
// acts on its own reading of a request, so the binding covers everything
// that reading depends on: the method the app will execute, the URI, the
// body bytes, and every header that changes how the body is parsed or
// which method runs. Two requests that differ in any of these get
// different hashes; a request whose reading is ambiguous (two
// Content-Type fields, trailers) is refused before anything is bound.

// txVersion tags the transaction hash (docs/PRODUCTION.md specifies it,
// TestTxHashWorkedExample checks the worked example there).
const txVersion = "stepup-tx-v2"

// boundHeaders are the request headers a transaction is bound to, in
// this order: those that change how the app parses the body, and the
// method overrides that frameworks honour.
var boundHeaders = []string{
	"Content-Type",
	"Content-Encoding",
	"X-Http-Method-Override",
	"X-Http-Method",
	"X-Method-Override",
}

// singleHeaders may occur at most once in a request that is bound: with
// two, the app may read either.
var singleHeaders = []string{"Content-Type", "Content-Encoding"}

// bindMethod is the method as the app reads it: case-insensitive, HEAD
// as GET.
func bindMethod(m string) string {
	m = strings.ToUpper(m)
	if m == http.MethodHead {
		return http.MethodGet
	}
	return m
}

// txHash binds a transaction to its request and identity:
//
//	SHA-256( part("stepup-tx-v2") part(policy) part(METHOD) part(request URI)
//	         for each bound header: part(name) count(values) part(value)...
//	         part(body) part(user) )
//
// where part(s) is the 4-byte big-endian length of s followed by s, and
// count(n) is n as 4 bytes big-endian. METHOD is upper-cased, HEAD read
// as GET; the request URI is the path and query exactly as the client
// sent them.
func txHash(policy, method, uri string, h http.Header, body []byte, user string) []byte {
	sum := sha256.New()
	writeParts(sum, txVersion, policy, bindMethod(method), uri)
	var n [binaryLenSize]byte
	for _, name := range boundHeaders {
		vs := h[name]
		writeParts(sum, name)
		putLen(n[:], len(vs))
		sum.Write(n[:])
		writeParts(sum, vs...)
	}
	// The body as writeParts would write it, without copying it.
	putLen(n[:], len(body))
	sum.Write(n[:])
	sum.Write(body)
	writeParts(sum, user)
	return sum.Sum(nil)
}

// ambiguousRequest names what makes a request's reading ambiguous for
// binding (ambiguous_headers, trailers), or "" when there is nothing: a header the app reads once that
// occurs twice, or trailers (fields that arrive after the body, which
// the binding cannot cover and some apps merge into the headers).
func ambiguousRequest(r *http.Request) string {
	for _, name := range singleHeaders {
		if len(r.Header[name]) > 1 {
			return "ambiguous_headers"
		}
	}
	for _, vs := range r.Trailer {
		if len(vs) > 0 {
			return "trailers"
		}
	}
	return ""
}

// readBound reads the body of a request that is to be preserved or bound
// (up to max_body, within body_timeout) and refuses one whose reading is
// ambiguous. When it returns ok false it has answered the request:
// 413, 408 or 400, with nothing created or sent.
func (e *Engine) readBound(w http.ResponseWriter, r *http.Request, p *Policy) (body []byte, ok bool) {
	body, err := e.readBodyTimed(w, r)
	switch {
	case e.refuseFields(w, r, p.Name, err):
		return nil, false
	case isTimeout(err):
		w.Header().Set("Connection", "close")
		e.refuse(w, r, p.Name, http.StatusRequestTimeout, page.StateBodyTimeout, "body_timeout", nil)
		return nil, false
	case err != nil:
		e.refuse(w, r, p.Name, http.StatusBadRequest, page.StateBadForm, "unreadable_body", nil)
		return nil, false
	}
	if why := ambiguousRequest(r); why != "" {
		e.refuse(w, r, p.Name, http.StatusBadRequest, page.StateAmbiguous, why, nil)
		return nil, false
	}
	return body, true
}

// readBodyTimed is readBody under the body_timeout read deadline, so
// that a client trickling its body cannot hold a request open.
func (e *Engine) readBodyTimed(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	rc := http.NewResponseController(w)
	deadline := rc.SetReadDeadline(time.Now().Add(e.cfg.BodyTimeout)) == nil
	body, err := readBody(r, e.cfg.MaxBody)
	if deadline {
		// The body is read (or the request is over); the server sets its
		// own deadlines for the next request on the connection.
		_ = rc.SetReadDeadline(time.Time{})
	}
	return body, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return err != nil && errors.As(err, &ne) && ne.Timeout()
}
