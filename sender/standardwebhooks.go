package sender

// Standard Webhooks signatures (standardwebhooks.com), as the generic
// webhook sender (package sender/webhook) makes them and as receivers
// check them.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// minSecretLen is the shortest signing key accepted. Standard Webhooks
// asks for keys of 24 to 64 bytes.
const minSecretLen = 24

// DefaultWebhookTolerance is how far a webhook timestamp may be from the
// receiver's clock, either way, when VerifyWebhook is given no tolerance;
// it is the window Standard Webhooks recommends.
const DefaultWebhookTolerance = 5 * time.Minute

// Errors of VerifyWebhook.
var (
	// ErrWebhookSignature means that no signature in the header matches
	// the message.
	ErrWebhookSignature = errors.New("sender: webhook signature does not match")
	// ErrWebhookTimestamp means that the timestamp is malformed or too far
	// from the receiver's clock (a replay, or a clock out of sync).
	ErrWebhookTimestamp = errors.New("sender: webhook timestamp malformed or outside the tolerance")
)

// ParseWebhookSecret decodes a Standard Webhooks signing secret,
// "whsec_" followed by the base64 of the key, and returns the key. Keys
// shorter than 24 bytes are refused. Surrounding white space is ignored.
// The error never contains the secret.
func ParseWebhookSecret(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(strings.TrimSpace(s), "whsec_")
	if !ok {
		return nil, errors.New(`sender: webhook signing secret must have the form "whsec_<base64>"`)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(b64)
	}
	if err != nil {
		return nil, errors.New(`sender: webhook signing secret is not valid base64 after "whsec_"`)
	}
	if len(key) < minSecretLen {
		return nil, fmt.Errorf("sender: webhook signing secret is %d bytes long, want at least %d", len(key), minSecretLen)
	}
	return key, nil
}

// SignWebhook returns the webhook-signature header value for a message:
// "v1," and the standard base64 of HMAC-SHA256(key, id "." timestamp "."
// body), the timestamp being ts in Unix seconds.
func SignWebhook(key []byte, id string, ts time.Time, body []byte) string {
	mac := webhookMAC(key, id, strconv.FormatInt(ts.Unix(), 10), body)
	return "v1," + base64.StdEncoding.EncodeToString(mac)
}

func webhookMAC(key []byte, id, timestamp string, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	io.WriteString(h, id)
	io.WriteString(h, ".")
	io.WriteString(h, timestamp)
	io.WriteString(h, ".")
	h.Write(body)
	return h.Sum(nil)
}

// VerifyWebhook checks a signed webhook as a receiver does: id,
// timestamp and signatureHeader are the values of the webhook-id,
// webhook-timestamp and webhook-signature headers, body the raw request
// body. The header may list several space-separated signatures (during a
// key rotation); one matching "v1" signature is enough. Signatures are
// compared in constant time. A timestamp more than tolerance away from
// now, either way, is refused; a tolerance of zero or less means
// DefaultWebhookTolerance.
//
// The error is ErrWebhookTimestamp or ErrWebhookSignature, possibly
// wrapped.
func VerifyWebhook(key []byte, id, timestamp, signatureHeader string, body []byte, now time.Time, tolerance time.Duration) error {
	if len(key) == 0 {
		return fmt.Errorf("%w: no key", ErrWebhookSignature)
	}
	if tolerance <= 0 {
		tolerance = DefaultWebhookTolerance
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrWebhookTimestamp
	}
	// The distance in seconds, computed in uint64 where it cannot
	// overflow whatever ts and now are.
	var skew uint64
	if sec := now.Unix(); ts < sec {
		skew = uint64(sec) - uint64(ts)
	} else {
		skew = uint64(ts) - uint64(sec)
	}
	if skew > uint64(tolerance/time.Second) {
		return ErrWebhookTimestamp
	}
	want := webhookMAC(key, id, timestamp, body)
	for _, sig := range strings.Fields(signatureHeader) {
		version, b64, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrWebhookSignature
}
