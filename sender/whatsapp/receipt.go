package whatsapp

// The Cloud API's status webhooks as delivery receipts.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/internal/httpsend"
)

// statuses maps the Cloud API's message statuses onto the normalized
// ones.
var statuses = map[string]sender.DeliveryStatus{
	"sent":      sender.StatusSent,
	"delivered": sender.StatusDelivered,
	"read":      sender.StatusRead,
	"played":    sender.StatusRead, // a voice message, played
	"failed":    sender.StatusFailed,
}

// challengeRE is what a hub.challenge may be: Meta sends a number.
var challengeRE = regexp.MustCompile(`^[0-9A-Za-z._-]{1,128}$`)

// The webhook's JSON: only what receipts use.
type (
	webhook struct {
		Object string  `json:"object"`
		Entry  []entry `json:"entry"`
	}
	entry struct {
		Changes []struct {
			Field string `json:"field"`
			Value struct {
				Statuses []status `json:"statuses"`
			} `json:"value"`
		} `json:"changes"`
	}
	status struct {
		ID        string `json:"id"`
		Status    string `json:"status"`
		Timestamp string `json:"timestamp"`
		Errors    []struct {
			Code int `json:"code"`
		} `json:"errors"`
	}
)

// Receipts reports whether the sender takes status webhooks: it has the
// app secret that signs them and the verify token of the subscription.
func (s *Sender) Receipts() bool { return s.appSecret != "" }

// ParseReceipt verifies a Cloud API webhook and returns the receipts
// of its statuses.
//
// A POST of JSON (entry[].changes[].value.statuses[]: id, the wamid the
// send returned; status sent, delivered, read or failed; timestamp;
// errors[].code such as 131026 for a number without WhatsApp) must be
// signed in X-Hub-Signature-256: "sha256=" and the hex HMAC-SHA256 of
// the raw body keyed by the app secret. Changes other than statuses
// (incoming messages, template updates) give no receipt. Meta signs no
// time and may deliver a webhook more than once: a replay verifies, and
// is the same fact again.
//
// A GET is Meta's check of the callback URL (hub.mode=subscribe,
// hub.verify_token, hub.challenge): when the token matches, the error is
// a *sender.Handshake whose body is the challenge.
//
// The app's webhook is one URL for all its phone numbers: statuses of
// messages other senders sent come here too, and name messages the
// caller does not know.
func (s *Sender) ParseReceipt(r *http.Request, _ string) ([]sender.Receipt, error) {
	if !s.Receipts() {
		return nil, fmt.Errorf("%w: whatsapp needs app_secret and verify_token", sender.ErrReceiptsOff)
	}
	switch r.Method {
	case http.MethodGet:
		return nil, s.handshake(r)
	case http.MethodPost:
	default:
		return nil, fmt.Errorf("%w: method %s", sender.ErrReceiptMalformed, r.Method)
	}
	if httpsend.MediaType(r) != "application/json" {
		return nil, fmt.Errorf("%w: whatsapp webhooks are JSON", sender.ErrReceiptMalformed)
	}
	body, err := httpsend.ReadReceipt(r)
	if err != nil {
		return nil, err
	}
	if err := s.verify(r.Header.Get("X-Hub-Signature-256"), body); err != nil {
		return nil, err
	}
	var w webhook
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("%w: not a webhook of the Cloud API", sender.ErrReceiptMalformed)
	}
	if w.Object != "whatsapp_business_account" {
		return nil, nil // another product of the app: nothing for us
	}
	now := time.Now()
	var out []sender.Receipt
	for _, e := range w.Entry {
		for _, c := range e.Changes {
			if c.Field != "messages" {
				continue
			}
			for _, st := range c.Value.Statuses {
				if st.ID == "" || st.Status == "" {
					continue
				}
				rc := sender.Receipt{MessageID: st.ID, ProviderStatus: st.Status, Status: sender.StatusUnknown, Time: now}
				if n, ok := statuses[st.Status]; ok {
					rc.Status = n
				}
				if sec, err := strconv.ParseInt(st.Timestamp, 10, 64); err == nil && sec > 0 {
					rc.Time = time.Unix(sec, 0)
				}
				if len(st.Errors) > 0 && st.Errors[0].Code != 0 {
					rc.ErrorCode = strconv.Itoa(st.Errors[0].Code)
				}
				out = append(out, rc)
			}
		}
	}
	return out, nil
}

// verify checks an X-Hub-Signature-256 header against body.
func (s *Sender) verify(header string, body []byte) error {
	if header == "" {
		return fmt.Errorf("%w: no X-Hub-Signature-256", sender.ErrReceiptUnsigned)
	}
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	got, err := hex.DecodeString(hexSig)
	if !ok || err != nil {
		return fmt.Errorf("%w: X-Hub-Signature-256 is not sha256=<hex>", sender.ErrReceiptForged)
	}
	if !hmac.Equal(got, Signature(s.appSecret, body)) {
		return fmt.Errorf("%w: X-Hub-Signature-256", sender.ErrReceiptForged)
	}
	return nil
}

// Signature returns the HMAC-SHA256 of body keyed by the app secret, as
// X-Hub-Signature-256 carries it in hex after "sha256=".
func Signature(appSecret string, body []byte) []byte {
	h := hmac.New(sha256.New, []byte(appSecret))
	h.Write(body)
	return h.Sum(nil)
}

// handshake answers Meta's subscription check.
func (s *Sender) handshake(r *http.Request) error {
	q := r.URL.Query()
	if q.Get("hub.mode") != "subscribe" {
		return fmt.Errorf("%w: a GET is only Meta's subscription check (hub.mode=subscribe)", sender.ErrReceiptMalformed)
	}
	token := q.Get("hub.verify_token")
	if token == "" {
		return fmt.Errorf("%w: no hub.verify_token", sender.ErrReceiptUnsigned)
	}
	if !httpsend.Equal(token, s.verifyToken) {
		return fmt.Errorf("%w: hub.verify_token does not match verify_token", sender.ErrReceiptForged)
	}
	challenge := q.Get("hub.challenge")
	if !challengeRE.MatchString(challenge) {
		return fmt.Errorf("%w: hub.challenge missing or not a plain token", sender.ErrReceiptMalformed)
	}
	return &sender.Handshake{ContentType: "text/plain; charset=utf-8", Body: []byte(challenge)}
}
