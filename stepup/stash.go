package stepup

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/caddy-stepup/caddy-stepup/stepup/fields"
	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
)

// Bounds of a stashed request body.
const (
	DefaultMaxBody       = fields.DefaultMaxBody
	MaxMaxBody     int64 = 32 << 20
)

// stash is a request preserved across a challenge, replayed byte for byte
// once the code is verified.
type stash struct {
	Method string
	URI    string
	Header http.Header
	Body   []byte
}

// Headers that are never stashed: credentials and session state come
// from the request that triggers the replay (the same, verified user),
// hop-by-hop headers belong to one connection, and Stepup-* are ours.
var unstashed = map[string]bool{
	"Cookie":              true,
	"Authorization":       true,
	"Proxy-Authorization": true,
	"Connection":          true,
	"Keep-Alive":          true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
	"Content-Length":      true,
	"Expect":              true,
}

// replayedFromLater are the headers a replay takes from the request that
// triggers it (a GET of the same verified user) rather than from the
// stash: its credentials, which must be the current ones, and what the
// proxies in front say about its connection (X-Forwarded-For, -Proto and
// -Host: Caddy's reverse_proxy replaces a client's own unless it comes
// from a trusted proxy) and the trace context of Caddy's tracing. The
// identity source's headers come from it too (see replayRequest). Every
// other header is the preserved request's: the later GET cannot add
// routing headers (X-Original-URL, X-Forwarded-Prefix), an
// Idempotency-Key or anything else to the approved request.
var replayedFromLater = []string{
	"Cookie", "Authorization",
	"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host",
	"Traceparent", "Tracestate",
}

// readBody reads the whole body of r, up to max bytes, with the reader
// the identity request source shares (a body it read already is not read
// again). A larger body fails with fields.ErrTooLarge before anything is
// kept. Afterwards r.Body reads the same bytes again.
func readBody(r *http.Request, max int64) ([]byte, error) {
	return fields.ReadBody(r, max)
}

// newStash captures r (whose body was read into body): its method, URI,
// body and end-to-end headers, but not its credentials, cookies,
// hop-by-hop headers, Stepup-* headers nor the identity source's headers
// (any spelling a gateway folds into one of them), which the replay
// takes from the later request.
func newStash(r *http.Request, body []byte, identityHeaders []string) *stash {
	h := make(http.Header, len(r.Header))
	for k, v := range r.Header {
		if unstashed[k] || strings.HasPrefix(k, "Stepup-") || isIdentityHeader(k, identityHeaders) {
			continue
		}
		h[k] = append([]string(nil), v...)
	}
	return &stash{Method: r.Method, URI: r.URL.RequestURI(), Header: h, Body: body}
}

// isIdentityHeader reports whether the header named k is one of names as
// CGI-style gateways read names (see Engine.StripHeaders).
func isIdentityHeader(k string, names []string) bool {
	for _, n := range names {
		if identity.FoldedEqual(k, n) {
			return true
		}
	}
	return false
}

// Stash encoding: version(1), then length-prefixed method, URI, header
// count and per header its name, value count and values, then the body.
const stashVersion = 1

func (s *stash) marshal() []byte {
	size := 1 + 4 + len(s.Method) + 4 + len(s.URI) + 4 + 4 + len(s.Body)
	for k, vs := range s.Header {
		size += 8 + len(k)
		for _, v := range vs {
			size += 4 + len(v)
		}
	}
	b := make([]byte, 0, size)
	b = append(b, stashVersion)
	b = appendString(b, s.Method)
	b = appendString(b, s.URI)
	b = binary.BigEndian.AppendUint32(b, uint32(len(s.Header)))
	for k, vs := range s.Header {
		b = appendString(b, k)
		b = binary.BigEndian.AppendUint32(b, uint32(len(vs)))
		for _, v := range vs {
			b = appendString(b, v)
		}
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(s.Body)))
	return append(b, s.Body...)
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

var errBadStash = errors.New("malformed stash")

func unmarshalStash(b []byte) (*stash, error) {
	if len(b) == 0 || b[0] != stashVersion {
		return nil, errBadStash
	}
	b = b[1:]
	next := func() ([]byte, bool) {
		if len(b) < 4 {
			return nil, false
		}
		n := binary.BigEndian.Uint32(b)
		if uint64(n) > uint64(len(b)-4) {
			return nil, false
		}
		v := b[4 : 4+n]
		b = b[4+n:]
		return v, true
	}
	count := func() (int, bool) {
		if len(b) < 4 {
			return 0, false
		}
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		return int(n), uint64(n) <= uint64(len(b))
	}
	s := &stash{}
	m, ok1 := next()
	u, ok2 := next()
	n, ok3 := count()
	if !ok1 || !ok2 || !ok3 {
		return nil, errBadStash
	}
	s.Method, s.URI = string(m), string(u)
	s.Header = make(http.Header, n)
	for i := 0; i < n; i++ {
		k, ok := next()
		if !ok {
			return nil, errBadStash
		}
		nv, ok := count()
		if !ok {
			return nil, errBadStash
		}
		vs := make([]string, 0, nv)
		for j := 0; j < nv; j++ {
			v, ok := next()
			if !ok {
				return nil, errBadStash
			}
			vs = append(vs, string(v))
		}
		s.Header[string(k)] = vs
	}
	body, ok := next()
	if !ok || len(b) != 0 {
		return nil, errBadStash
	}
	s.Body = body
	return s, nil
}

// seal encrypts a stash for challenge id (AES-256-GCM, the id as
// associated data, so a stash cannot be moved to another challenge).
func (k *keys) seal(id string, plain []byte) []byte {
	aead := k.aead
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	_, _ = rand.Read(nonce)
	return aead.Seal(nonce, nonce, plain, []byte(id))
}

func (k *keys) open(id string, sealed []byte) ([]byte, error) {
	aead := k.aead
	if len(sealed) < aead.NonceSize() {
		return nil, errBadStash
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(id))
	if err != nil {
		return nil, errBadStash
	}
	return plain, nil
}

// replayRequest builds the preserved request from s, on top of r (the
// request that triggers the replay, from the same verified user): the
// stash's method, URI, body and headers, with r's replayedFromLater
// headers and r's identityHeaders (the identity source's) in place of any
// the stash has. Nothing else of r's headers is kept.
func replayRequest(r *http.Request, s *stash, identityHeaders []string) (*http.Request, error) {
	u, err := url.ParseRequestURI(s.URI)
	if err != nil {
		return nil, errBadStash
	}
	rr := r.Clone(r.Context())
	rr.Method = s.Method
	rr.URL = u
	rr.RequestURI = s.URI
	h := make(http.Header, len(s.Header)+len(replayedFromLater))
	for k, v := range s.Header {
		// A stash from before identity headers were left out may hold them.
		if !unstashed[k] && !isIdentityHeader(k, identityHeaders) {
			h[k] = append([]string(nil), v...)
		}
	}
	for _, k := range replayedFromLater {
		delete(h, k)
		if v, ok := r.Header[k]; ok {
			h[k] = append([]string(nil), v...)
		}
	}
	for _, n := range identityHeaders {
		k := http.CanonicalHeaderKey(n)
		if v, ok := r.Header[k]; ok {
			h[k] = append([]string(nil), v...)
		}
	}
	rr.Header = h
	rr.TransferEncoding = nil
	rr.Body = io.NopCloser(bytes.NewReader(s.Body))
	rr.ContentLength = int64(len(s.Body))
	body := s.Body
	rr.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	if len(s.Body) == 0 {
		rr.Body = http.NoBody
	} else {
		rr.Header.Set("Content-Length", strconv.Itoa(len(s.Body)))
	}
	return rr, nil
}
