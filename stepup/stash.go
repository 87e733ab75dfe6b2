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

// replayedFromStash are the headers that describe the preserved request
// itself: on replay they come from the stash even though the request that
// triggers the replay (a GET) has its own.
// Origin, Referer and the Fetch Metadata headers say where the original
// request came from: the app's CSRF checks (Go's CrossOriginProtection,
// Rails, Django) must see those of the request the customer sent, never
// those of the GET that brings the browser back. The method overrides
// are bound to the transaction and come from the stash too.
var replayedFromStash = []string{
	"Content-Type", "Content-Encoding", "Content-Language", "Content-Md5",
	"Origin", "Referer", "X-Requested-With", "Accept",
	"Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Sec-Fetch-User",
	"X-Http-Method-Override", "X-Http-Method", "X-Method-Override",
}

// readBody reads the whole body of r, up to max bytes, with the reader
// the identity request source shares (a body it read already is not read
// again). A larger body fails with fields.ErrTooLarge before anything is
// kept. Afterwards r.Body reads the same bytes again.
func readBody(r *http.Request, max int64) ([]byte, error) {
	return fields.ReadBody(r, max)
}

// newStash captures r (whose body was read into body).
func newStash(r *http.Request, body []byte) *stash {
	h := make(http.Header, len(r.Header))
	for k, v := range r.Header {
		if unstashed[k] || strings.HasPrefix(k, "Stepup-") {
			continue
		}
		h[k] = append([]string(nil), v...)
	}
	return &stash{Method: r.Method, URI: r.URL.RequestURI(), Header: h, Body: body}
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
// request that triggers the replay, from the same verified user): r's
// credentials, cookies and forwarding headers, the stash's method, URI,
// body and content headers.
func replayRequest(r *http.Request, s *stash) (*http.Request, error) {
	u, err := url.ParseRequestURI(s.URI)
	if err != nil {
		return nil, errBadStash
	}
	rr := r.Clone(r.Context())
	rr.Method = s.Method
	rr.URL = u
	rr.RequestURI = s.URI
	for _, k := range replayedFromStash {
		rr.Header.Del(k)
	}
	for k, v := range s.Header {
		if _, present := rr.Header[k]; !present {
			rr.Header[k] = append([]string(nil), v...)
		}
	}
	rr.Header.Del("Content-Length")
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
