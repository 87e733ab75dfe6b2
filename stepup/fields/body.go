package fields

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// DefaultMaxBody is the largest body read unless the operator says
// (max_body).
const DefaultMaxBody int64 = 1 << 20

// ErrTooLarge is returned by [ReadBody] for a body over its cap: the
// engine answers 413.
var ErrTooLarge = errors.New("request body too large")

// ReadBody reads the whole body of r, up to max bytes, and puts an
// identical one back for the handlers after us. A larger body fails with
// ErrTooLarge before anything is kept (r.Body is then partly read).
//
// A body that ReadBody put back and nobody has read since is returned
// again without a copy, so that the identity source and the engine read a
// request once between them. The returned bytes are shared with r.Body:
// do not change them.
func ReadBody(r *http.Request, max int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if b, ok := r.Body.(*body); ok && b.Len() == len(b.buf) {
		if int64(len(b.buf)) > max {
			return nil, ErrTooLarge
		}
		return b.buf, nil
	}
	if r.ContentLength > max {
		return nil, ErrTooLarge
	}
	size := r.ContentLength
	if size < 0 || size > max {
		size = 512
	}
	buf := bytes.NewBuffer(make([]byte, 0, size+1))
	n, err := buf.ReadFrom(io.LimitReader(r.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading request body: %w", err)
	}
	if n > max {
		return nil, ErrTooLarge
	}
	data := buf.Bytes()
	r.Body = &body{Reader: bytes.NewReader(data), buf: data}
	r.ContentLength = int64(len(data))
	return data, nil
}

// body is a request body that ReadBody read and put back.
type body struct {
	*bytes.Reader
	buf []byte
}

// Close implements io.Closer.
func (*body) Close() error { return nil }
