package sender

// Delivery receipts: what a provider reports, after it accepted a
// message, about what became of it.

import (
	"errors"
	"net/http"
	"time"
)

// DeliveryStatus is where a message is, as a provider's receipt says,
// normalized across providers.
type DeliveryStatus string

// The delivery statuses. Providers say more (Twilio "sending", Vonage
// "buffered", MSG91 "16"); each sender maps its own onto these, and keeps
// the provider's word in Receipt.ProviderStatus.
const (
	// StatusQueued: the provider holds the message, not yet handed to a
	// carrier.
	StatusQueued DeliveryStatus = "queued"
	// StatusSent: handed to the carrier (or WhatsApp's servers), not yet
	// confirmed on the handset.
	StatusSent DeliveryStatus = "sent"
	// StatusDelivered: the handset (or the recipient's mail server, app)
	// received it.
	StatusDelivered DeliveryStatus = "delivered"
	// StatusUndelivered: the carrier gave up (handset off for too long,
	// the message expired, the number unreachable).
	StatusUndelivered DeliveryStatus = "undelivered"
	// StatusFailed: the provider or the carrier refused it (a rejected
	// number or template, a blocked destination, not a WhatsApp user).
	StatusFailed DeliveryStatus = "failed"
	// StatusRead: the recipient opened it (WhatsApp read receipts).
	StatusRead DeliveryStatus = "read"
	// StatusUnknown: a status this package does not know; the receipt is
	// still well formed.
	StatusUnknown DeliveryStatus = "unknown"
)

// Final reports whether no later receipt is expected to change s:
// delivered, read, undelivered and failed. (Providers may still send
// "read" after "delivered".)
func (s DeliveryStatus) Final() bool {
	return s == StatusDelivered || s == StatusRead || s == StatusUndelivered || s == StatusFailed
}

// Reached reports whether the message reached the recipient: delivered
// or read.
func (s DeliveryStatus) Reached() bool { return s == StatusDelivered || s == StatusRead }

// Failed reports whether the message will not reach the recipient:
// undelivered or failed.
func (s DeliveryStatus) Failed() bool { return s == StatusUndelivered || s == StatusFailed }

// Receipt is one provider report on one message.
//
// A receipt carries no code and no destination: a Receipter drops the
// phone numbers and texts that providers put in their callbacks. It
// changes no code either: it only tells the caller which message (by
// the provider's id, as SendWithID returned it) reached which status.
//
// Providers deliver receipts at least once and in any order (Twilio and
// Meta say so): the same receipt may come twice, "sent" after
// "delivered". A signature proves who sent a receipt, not that it is
// new; where the scheme signs a time (Vonage, the webhook), receipts
// older than five minutes are refused, elsewhere a replay is the same
// fact told again. Callers keep the most advanced status per message and
// ignore receipts for messages they do not know.
type Receipt struct {
	// MessageID is the provider's id of the message, as it answered the
	// send ("SM...", a Vonage message-id, "wamid....", an MSG91 request
	// id, the webhook-id of a webhook send).
	MessageID string
	// Status is the provider's status, normalized.
	Status DeliveryStatus
	// ProviderStatus is the provider's own status ("undelivered",
	// "expired", "16").
	ProviderStatus string
	// ErrorCode is the provider's error code when it gave one
	// ("30003", "131026"), else "".
	ErrorCode string
	// Time is when the status was reached, as the provider says, or
	// when the receipt arrived if the provider says nothing usable.
	Time time.Time
	// Challenge is the challenge id when the provider echoes the
	// reference it was given with the message (Vonage client-ref, the
	// webhook's challenge); else "". It is the provider's claim, covered
	// by the receipt's signature: use it to cross-check, not to find the
	// message.
	Challenge string
}

// Receipter is implemented by senders whose provider reports delivery
// (Twilio status callbacks, Vonage delivery receipts, WhatsApp status
// webhooks, MSG91 delivery reports, the webhook's receipt calls).
//
// The caller routes a request that arrives at the sender's receipt URL
// ({public_url}{path_prefix}/receipts/{sender name}) to ParseReceipt, and
// answers from its error (see ReceiptHTTPStatus). ParseReceipt never
// logs, and its errors and receipts hold no phone number and no code.
type Receipter interface {
	// Receipts reports whether the sender, as configured, takes receipts:
	// it has what it needs to verify them (a signing secret, an auth
	// token, a URL token). When false, a Chain gives it no ReceiptURL and
	// ParseReceipt refuses every request with ErrReceiptsOff.
	Receipts() bool
	// ParseReceipt verifies r the provider's way and returns the
	// receipts it carries: none for a well-formed request that reports
	// nothing this package uses (a WhatsApp webhook about an incoming
	// message); the caller answers it with a 2xx all the same, so that
	// the provider does not send it again.
	//
	// publicURL is the URL the provider was given for this sender's
	// receipts (the Message.ReceiptURL of the send), scheme, host and
	// path, without a query: schemes that sign the URL (Twilio) need it
	// as the provider called it, not as a proxy in front of Caddy passed
	// it on. The request's query is taken from r. An empty publicURL
	// means the URL r was received at (its TLS state, Host and path),
	// right only when nothing rewrites the request on its way in.
	//
	// The error is, wrapped: ErrReceiptUnsigned when r carries no
	// signature or token; ErrReceiptForged when they do not verify or
	// their time is outside the tolerance; ErrReceiptMalformed when r is
	// not a receipt of the provider's form; ErrReceiptsOff when the
	// sender takes no receipts; or a *Handshake when r is the provider's
	// check of the endpoint, to be answered with its body.
	ParseReceipt(r *http.Request, publicURL string) ([]Receipt, error)
}

// Errors of Receipter.ParseReceipt, wrapped with what went wrong.
var (
	// ErrReceiptUnsigned: the request has no signature (or no URL token
	// where the provider signs nothing). Answer 401.
	ErrReceiptUnsigned = errors.New("sender: receipt not signed")
	// ErrReceiptForged: the signature or the token does not match, the
	// signed time is outside the tolerance (a replay, or a clock out of
	// sync), or the receipt names another account. Answer 403.
	ErrReceiptForged = errors.New("sender: receipt signature does not verify")
	// ErrReceiptMalformed: not a receipt of the provider's form (method,
	// content type, body, missing fields). Answer 400.
	ErrReceiptMalformed = errors.New("sender: receipt malformed")
	// ErrReceiptsOff: the sender takes no receipts as configured, or
	// none at all. Answer 404.
	ErrReceiptsOff = errors.New("sender: this sender takes no receipts")
)

// Handshake is the error ParseReceipt returns for a request that is not
// a receipt but the provider's check that the endpoint is the
// operator's: Meta's webhook subscription (a GET with hub.mode=subscribe,
// hub.verify_token and hub.challenge) is answered 200 with the
// challenge as the body, once the token matched.
type Handshake struct {
	// ContentType is the answer's media type.
	ContentType string
	// Body is what to write.
	Body []byte
}

// Error says that the request was a handshake.
func (h *Handshake) Error() string { return "sender: provider handshake, answered" }

// ReceiptHTTPStatus is the HTTP status to answer a receipt request with,
// from ParseReceipt's error: 200 for nil and a *Handshake, 401 for
// ErrReceiptUnsigned, 403 for ErrReceiptForged, 400 for
// ErrReceiptMalformed, 404 for ErrReceiptsOff, 500 for anything else
// (which providers retry).
func ReceiptHTTPStatus(err error) int {
	var hs *Handshake
	switch {
	case err == nil, errors.As(err, &hs):
		return http.StatusOK
	case errors.Is(err, ErrReceiptUnsigned):
		return http.StatusUnauthorized
	case errors.Is(err, ErrReceiptForged):
		return http.StatusForbidden
	case errors.Is(err, ErrReceiptMalformed):
		return http.StatusBadRequest
	case errors.Is(err, ErrReceiptsOff):
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}
