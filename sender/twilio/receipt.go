package twilio

// Twilio status callbacks as delivery receipts.

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/internal/httpsend"
)

// smsStatuses maps Twilio's MessageStatus values onto the normalized ones.
var smsStatuses = map[string]sender.DeliveryStatus{
	"accepted":    sender.StatusQueued,
	"scheduled":   sender.StatusQueued,
	"queued":      sender.StatusQueued,
	"sending":     sender.StatusSent,
	"sent":        sender.StatusSent,
	"delivered":   sender.StatusDelivered,
	"undelivered": sender.StatusUndelivered,
	"failed":      sender.StatusFailed,
	"canceled":    sender.StatusFailed,
	"read":        sender.StatusRead,
}

// Receipts reports whether the sender takes status callbacks: it has the
// account's auth token, which Twilio signs them with.
func (s *Sender) Receipts() bool { return s.token != "" }

// ParseReceipt verifies a Twilio status callback and returns its
// receipt.
//
// The callback is a form-encoded POST (MessageSid, MessageStatus,
// ErrorCode, AccountSid, To, From, ...) signed in X-Twilio-Signature:
// the base64 of HMAC-SHA1(auth token, the full URL Twilio requested, then
// each POST parameter's name and value, sorted by name). The URL is
// publicURL (the StatusCallback the message was sent with) and r's
// query; like Twilio's own libraries, ParseReceipt also accepts the
// signature of that URL with the scheme's default port written out or
// left out. A callback of another account is forged. To and From are
// not kept.
//
// Twilio sends a callback for each status (queued, sent, delivered ...),
// possibly out of order and more than once, and signs no time: a
// replayed callback verifies, and is the same fact again.
func (s *Sender) ParseReceipt(r *http.Request, publicURL string) ([]sender.Receipt, error) {
	if !s.Receipts() {
		return nil, fmt.Errorf("%w: twilio needs auth_token to verify status callbacks", sender.ErrReceiptsOff)
	}
	if r.Method != http.MethodPost {
		return nil, fmt.Errorf("%w: twilio status callbacks are POST, not %s", sender.ErrReceiptMalformed, r.Method)
	}
	if httpsend.MediaType(r) != "application/x-www-form-urlencoded" {
		return nil, fmt.Errorf("%w: twilio status callbacks are form-encoded", sender.ErrReceiptMalformed)
	}
	body, err := httpsend.ReadReceipt(r)
	if err != nil {
		return nil, err
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("%w: the form does not parse", sender.ErrReceiptMalformed)
	}
	sig := r.Header.Get("X-Twilio-Signature")
	if sig == "" {
		return nil, fmt.Errorf("%w: no X-Twilio-Signature", sender.ErrReceiptUnsigned)
	}
	if !s.verify(httpsend.CallURL(r, publicURL), form, sig) {
		return nil, fmt.Errorf("%w: X-Twilio-Signature", sender.ErrReceiptForged)
	}
	if acc := form.Get("AccountSid"); acc != "" && acc != s.account {
		return nil, fmt.Errorf("%w: the callback is another account's", sender.ErrReceiptForged)
	}
	id := formValue(form, "MessageSid", "SmsSid")
	status := formValue(form, "MessageStatus", "SmsStatus")
	if id == "" || status == "" {
		return nil, fmt.Errorf("%w: no MessageSid or MessageStatus", sender.ErrReceiptMalformed)
	}
	rc := sender.Receipt{MessageID: id, ProviderStatus: status, Status: sender.StatusUnknown, Time: time.Now()}
	if st, ok := smsStatuses[status]; ok {
		rc.Status = st
	}
	if code := form.Get("ErrorCode"); code != "" && code != "0" {
		rc.ErrorCode = code
	}
	return []sender.Receipt{rc}, nil
}

// formValue returns the value of the first of names that form has.
func formValue(form url.Values, names ...string) string {
	for _, n := range names {
		if v := form.Get(n); v != "" {
			return v
		}
	}
	return ""
}

// verify checks sig against the callback's URL and form, with the URL as
// given and with its default port added or removed.
func (s *Sender) verify(rawURL string, form url.Values, sig string) bool {
	got, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return false
	}
	for _, u := range urlVariants(rawURL) {
		if hmac.Equal(got, Signature(s.token, u, form)) {
			return true
		}
	}
	return false
}

// Signature returns Twilio's request signature: HMAC-SHA1 with the auth
// token over the URL followed by each parameter's name and value, the
// names sorted (and the values of a name given twice sorted too).
func Signature(authToken, rawURL string, form url.Values) []byte {
	h := hmac.New(sha1.New, []byte(authToken))
	h.Write([]byte(rawURL))
	names := make([]string, 0, len(form))
	for k := range form {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		vs := slices.Clone(form[k])
		slices.Sort(vs)
		for _, v := range vs {
			h.Write([]byte(k))
			h.Write([]byte(v))
		}
	}
	return h.Sum(nil)
}

// urlVariants returns u, and u with its scheme's default port written
// out or left out: Twilio signs the URL as it was configured, which a
// receiver cannot always know.
func urlVariants(u string) []string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return []string{u}
	}
	def := map[string]string{"http": "80", "https": "443"}[p.Scheme]
	if def == "" {
		return []string{u}
	}
	q := *p
	switch port := p.Port(); port {
	case "":
		q.Host = p.Host + ":" + def
	case def:
		q.Host = p.Hostname()
		if len(p.Hostname()) > 0 && p.Host[0] == '[' {
			q.Host = "[" + p.Hostname() + "]"
		}
	default:
		return []string{u}
	}
	return []string{u, q.String()}
}
