package fields

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadBody(t *testing.T) {
	const max = 16
	newReq := func(body string, length int64) *http.Request {
		r, _ := http.NewRequest("POST", "/", io.NopCloser(strings.NewReader(body)))
		r.ContentLength = length
		return r
	}
	// Within the cap: read, and put back identical.
	r := newReq("amount=1", -1)
	b, err := ReadBody(r, max)
	if err != nil || string(b) != "amount=1" || r.ContentLength != 8 {
		t.Fatalf("ReadBody = %q, %v (length %d)", b, err, r.ContentLength)
	}
	// Read again while unread: the same bytes, no copy.
	b2, err := ReadBody(r, max)
	if err != nil || &b2[0] != &b[0] {
		t.Fatalf("second ReadBody = %q, %v: copied", b2, err)
	}
	// ... but a smaller cap still holds.
	if _, err := ReadBody(r, 4); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("second ReadBody over a smaller cap: %v", err)
	}
	if got, _ := io.ReadAll(r.Body); string(got) != "amount=1" {
		t.Fatalf("the handlers after us read %q", got)
	}
	// Partly read since: read what is left, as any body.
	r = newReq("amount=1", -1)
	_, _ = ReadBody(r, max)
	_, _ = r.Body.Read(make([]byte, 3))
	if b, err := ReadBody(r, max); err != nil || string(b) != "unt=1" {
		t.Fatalf("ReadBody after a partial read = %q, %v", b, err)
	}

	// Over the cap, declared or not.
	for _, length := range []int64{-1, 17} {
		if _, err := ReadBody(newReq(strings.Repeat("x", 17), length), max); !errors.Is(err, ErrTooLarge) {
			t.Errorf("length %d: %v, want ErrTooLarge", length, err)
		}
	}
	// A lying Content-Length does not get past the cap.
	if _, err := ReadBody(newReq(strings.Repeat("x", 17), 3), max); !errors.Is(err, ErrTooLarge) {
		t.Errorf("short Content-Length: %v", err)
	}
	// Exactly the cap is fine; no body is fine.
	if b, err := ReadBody(newReq(strings.Repeat("x", 16), -1), max); err != nil || len(b) != 16 {
		t.Errorf("at the cap: %d, %v", len(b), err)
	}
	r, _ = http.NewRequest("GET", "/", nil)
	if b, err := ReadBody(r, max); err != nil || b != nil {
		t.Errorf("no body: %q, %v", b, err)
	}
	// A failing read is an error, not ErrTooLarge.
	r = newReq("", -1)
	r.Body = io.NopCloser(iotest.ErrReader(errors.New("boom")))
	if _, err := ReadBody(r, max); err == nil || errors.Is(err, ErrTooLarge) {
		t.Errorf("failing body: %v", err)
	}
}
