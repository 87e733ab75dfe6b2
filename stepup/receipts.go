package stepup

// Delivery receipts: the providers' word, after they accepted a code,
// on whether it reached the handset. They arrive at
// {path_prefix}/receipts/{sender name}, from the providers, not from
// browsers: no identity, no CSRF token, no Fetch Metadata; the sender's
// own signature scheme (sender.Receipter) is what authenticates them.

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-stepup/caddy-stepup/sender"
)

// Receipts configures delivery receipts and the failover they drive.
// The zero value takes none.
type Receipts struct {
	// PublicURL is the scheme and host (and any path a proxy in front
	// strips) at which providers reach this handler: each sender that
	// takes receipts is given {PublicURL}{PathPrefix}/receipts/{name}
	// with its messages, and signatures over the URL are checked against
	// it, never against the request's Host. Empty: no receipts, no
	// failover on non-delivery.
	PublicURL string
	// FailoverAfter is how long a code sent through a sender that takes
	// receipts may go without a "delivered" before it is sent through
	// the next sender of the chain. Default DefaultFailoverAfter; it
	// must be shorter than the code's lifetime.
	FailoverAfter time.Duration
}

// DefaultFailoverAfter is Receipts.FailoverAfter unless configured.
const DefaultFailoverAfter = 30 * time.Second

// FailoverAfterBound bounds Receipts.FailoverAfter.
var FailoverAfterBound = Bound[time.Duration]{"failover_after", 5 * time.Second, MaxCodeTTL}

// maxReceiptBody bounds the body of a receipt request (the senders read
// at most 256 KiB themselves; this stops a larger one at the door).
const maxReceiptBody = 256 << 10

// setDefaults fills and checks the receipt options of c (after CodeTTL).
func (rc *Receipts) setDefaults(codeTTL time.Duration) error {
	if rc.PublicURL == "" {
		if rc.FailoverAfter != 0 {
			return errors.New("failover_after needs receipts public_url: without receipts no code is known to be undelivered")
		}
		return nil
	}
	u, err := CheckPublicURL(rc.PublicURL)
	if err != nil {
		return err
	}
	rc.PublicURL = u
	setDuration(&rc.FailoverAfter, DefaultFailoverAfter)
	if err := FailoverAfterBound.Check(rc.FailoverAfter); err != nil {
		return err
	}
	if rc.FailoverAfter >= codeTTL {
		return fmt.Errorf("failover_after %s must be shorter than code_ttl %s: the failover would come after the code expired", rc.FailoverAfter, codeTTL)
	}
	return nil
}

// CheckPublicURL checks a receipts public_url and returns it without a
// trailing '/': an absolute http or https URL with a host, no user
// information, query or fragment ("https://shop.example.com",
// "https://example.com/shop").
func CheckPublicURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" {
		return "", fmt.Errorf("receipts public_url %q: want the scheme and host providers call, such as https://shop.example.com, without a query", s)
	}
	return strings.TrimRight(s, "/"), nil
}

// ReceiptURL returns the URL at which the sender named name takes
// receipts, {public_url}{path_prefix}/receipts/{name}, or "" when
// receipts are off. It is what the Caddy adapter gives the sender chain
// (sender.ChainOptions.ReceiptURL); call it on a Config with its
// defaults (WithDefaults).
func (c *Config) ReceiptURL(name string) string {
	if c.Receipts.PublicURL == "" {
		return ""
	}
	return c.Receipts.PublicURL + c.PathPrefix + "/receipts/" + url.PathEscape(name)
}

// ReceiptSource is implemented by Deliverers whose senders take delivery
// receipts (sender.Chain does).
type ReceiptSource interface {
	// Receipter returns the sender named name when it takes receipts.
	Receipter(name string) (sender.Receipter, bool)
}

// serveReceipt answers a provider's request to a sender's receipt URL.
// It needs no identity and no CSRF token: the sender verifies the
// provider's signature (or URL token), and a request it cannot verify
// changes nothing. The answer is the provider's: 200 for a receipt
// taken (a receipt for a message this handler does not know, or no
// longer knows, included: the provider must not retry it), 401, 403,
// 400 or 404 as sender.ReceiptHTTPStatus says.
func (e *Engine) serveReceipt(w http.ResponseWriter, r *http.Request, name string) error {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	src, ok := e.sender.(ReceiptSource)
	var rec sender.Receipter
	if ok && e.cfg.Receipts.PublicURL != "" {
		rec, ok = src.Receipter(name)
	}
	if rec == nil || !ok {
		http.Error(w, "no receipts here", http.StatusNotFound)
		return nil
	}
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return nil
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxReceiptBody)
	}
	receipts, err := rec.ParseReceipt(r, e.cfg.ReceiptURL(name))
	status := sender.ReceiptHTTPStatus(err)
	var hs *sender.Handshake
	switch {
	case errors.As(err, &hs):
		e.log.Info("receipt endpoint handshake answered", zap.String("sender", name))
		w.Header().Set("Content-Type", hs.ContentType)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(hs.Body)
		return nil
	case err != nil:
		// The error names what did not verify, never a number, a code
		// or a secret (sender.Receipter).
		e.log.Warn("receipt refused", zap.String("sender", name), zap.Int("status", status), zap.Error(err))
		http.Error(w, http.StatusText(status), status)
		return nil
	}
	for _, rc := range receipts {
		if err := e.takeReceipt(r, name, rc); err != nil {
			// The provider tries again later: a receipt is not lost to
			// a store outage.
			e.emit(r, &Event{Kind: EventStoreError, Outcome: "receipt", Err: err})
			http.Error(w, "try again later", http.StatusServiceUnavailable)
			return nil
		}
	}
	w.WriteHeader(http.StatusOK)
	return nil
}
