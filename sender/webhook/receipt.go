package webhook

// The gateway's receipt calls.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/internal/httpsend"
)

// receipt is the JSON of a receipt call.
type receipt struct {
	MessageID      string `json:"message_id"`
	Status         string `json:"status"`
	Challenge      string `json:"challenge"`
	ErrorCode      string `json:"error_code"`
	ProviderStatus string `json:"provider_status"`
	Time           string `json:"time"`
}

// known are the statuses a receipt call may give.
var known = map[sender.DeliveryStatus]bool{
	sender.StatusQueued: true, sender.StatusSent: true, sender.StatusDelivered: true,
	sender.StatusUndelivered: true, sender.StatusFailed: true, sender.StatusRead: true, sender.StatusUnknown: true,
}

// maxField bounds the length of a receipt's strings.
const maxField = 200

// Receipts reports whether the webhook takes receipt calls: it has a
// signing secret, which signs them too.
func (s *Sender) Receipts() bool { return s.key != nil }

// ParseReceipt verifies a receipt call of the gateway (see the package
// documentation) and returns its receipt.
//
// The call is a POST of JSON signed the Standard Webhooks way with the
// sender's signing secret: webhook-id, webhook-timestamp (refused more
// than five minutes from the clock, either way: a replay or a clock out
// of sync) and webhook-signature. message_id (the webhook-id of the send)
// and status are required, status one of the normalized ones; an unknown
// field is ignored, a malformed one refused, so that a gateway's mistake
// shows at once as a 400.
func (s *Sender) ParseReceipt(r *http.Request, _ string) ([]sender.Receipt, error) {
	if !s.Receipts() {
		return nil, fmt.Errorf("%w: the webhook needs signing_secret to take receipts", sender.ErrReceiptsOff)
	}
	if r.Method != http.MethodPost {
		return nil, fmt.Errorf("%w: receipt calls are POST, not %s", sender.ErrReceiptMalformed, r.Method)
	}
	if httpsend.MediaType(r) != "application/json" {
		return nil, fmt.Errorf("%w: receipt calls are JSON", sender.ErrReceiptMalformed)
	}
	body, err := httpsend.ReadReceipt(r)
	if err != nil {
		return nil, err
	}
	id, ts, sig := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature")
	if id == "" || ts == "" || sig == "" {
		return nil, fmt.Errorf("%w: needs webhook-id, webhook-timestamp and webhook-signature", sender.ErrReceiptUnsigned)
	}
	switch err := sender.VerifyWebhook(s.key, id, ts, sig, body, time.Now(), sender.DefaultWebhookTolerance); {
	case errors.Is(err, sender.ErrWebhookTimestamp):
		return nil, fmt.Errorf("%w: webhook-timestamp malformed or more than five minutes from now", sender.ErrReceiptForged)
	case err != nil:
		return nil, fmt.Errorf("%w: webhook-signature", sender.ErrReceiptForged)
	}
	var rc receipt
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&rc); err != nil {
		return nil, fmt.Errorf("%w: not a JSON receipt object", sender.ErrReceiptMalformed)
	}
	status := sender.DeliveryStatus(rc.Status)
	switch {
	case rc.MessageID == "":
		return nil, fmt.Errorf("%w: no message_id", sender.ErrReceiptMalformed)
	case !known[status]:
		return nil, fmt.Errorf("%w: status must be queued, sent, delivered, undelivered, failed, read or unknown", sender.ErrReceiptMalformed)
	case len(rc.MessageID) > maxField || len(rc.Challenge) > maxField || len(rc.ErrorCode) > maxField || len(rc.ProviderStatus) > maxField:
		return nil, fmt.Errorf("%w: a field is over %d bytes", sender.ErrReceiptMalformed, maxField)
	}
	out := sender.Receipt{
		MessageID:      rc.MessageID,
		Status:         status,
		ProviderStatus: rc.ProviderStatus,
		ErrorCode:      rc.ErrorCode,
		Challenge:      rc.Challenge,
		Time:           time.Now(),
	}
	if out.ProviderStatus == "" {
		out.ProviderStatus = rc.Status
	}
	if rc.Time != "" {
		t, err := time.Parse(time.RFC3339, rc.Time)
		if err != nil {
			return nil, fmt.Errorf("%w: time is not RFC 3339", sender.ErrReceiptMalformed)
		}
		out.Time = t
	}
	return []sender.Receipt{out}, nil
}
