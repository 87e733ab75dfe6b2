// Package providertest holds what the tests of the providers share: a
// message, checks that errors leak nothing, and servers that misbehave.
package providertest

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
)

// Values of the test message.
const (
	To        = "+14155550100"
	ToIN      = "+919876543210"
	Code      = "493817"
	Challenge = "ch_7Qx"
)

// Message returns a fresh test message to To.
func Message() *sender.Message {
	return &sender.Message{
		To:        To,
		Code:      Code,
		Text:      "Your code is " + Code + ".\n\n@shop.example #" + Code,
		Channel:   sender.SMS,
		Policy:    "checkout",
		Challenge: Challenge,
		TTL:       5 * time.Minute,
	}
}

var longDigits = regexp.MustCompile(`[0-9]{7,}`)

// AssertClean fails t if err's text holds the code, the number (with or
// without "+", national part alone) or any run of seven digits or more.
func AssertClean(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	text := err.Error()
	for _, s := range []string{Code, "4155550100", "9876543210"} {
		if strings.Contains(text, s) {
			t.Errorf("error %q contains %q", text, s)
		}
	}
	if m := longDigits.FindString(text); m != "" {
		t.Errorf("error %q contains the digit run %q", text, m)
	}
}

// SenderError returns err as a *sender.Error, failing t if it is not one.
func SenderError(t testing.TB, err error) *sender.Error {
	t.Helper()
	var se *sender.Error
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *sender.Error", err, err)
	}
	return se
}

// Slow returns a server that reads each request, then answers only after
// d or when the client gives up, and counts its requests.
//
// The body is read first because net/http notices that the client went
// away (and cancels r.Context()) only once the body has been read: a
// handler that stalls on an unread body holds the test, and the server's
// Close, for the whole of d.
func Slow(t testing.TB, d time.Duration) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		io.Copy(io.Discard, r.Body)
		select {
		case <-time.After(d):
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// Sequence returns a handler that answers with the handlers in turn, the
// last one for every request after, and counts the requests.
func Sequence(handlers ...http.HandlerFunc) (http.HandlerFunc, *atomic.Int32) {
	var n atomic.Int32
	return func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		handlers[min(i, len(handlers)-1)](w, r)
	}, &n
}

// JSON returns a handler that answers status with body as JSON.
func JSON(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write([]byte(body))
	}
}

// ClosedURL returns the URL of a server that is already closed: every
// connection is refused.
func ClosedURL(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}
