package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
)

const receiptURL = "https://shop.example/.stepup/receipts/webhook"

// specSign signs a receipt call as a gateway would, from the Standard
// Webhooks specification, independently of the code under test.
func specSign(secret, id string, ts time.Time, body string) string {
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.FormatInt(ts.Unix(), 10) + "." + body))
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// receiptCall is a gateway's receipt call, signed with secret at ts
// ("" leaves it unsigned).
func receiptCall(body, secret string, ts time.Time) *http.Request {
	r := httptest.NewRequest(http.MethodPost, receiptURL, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	id := "msg_receipt_2x9Qa"
	r.Header.Set("webhook-id", id)
	r.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	if secret != "" {
		r.Header.Set("webhook-signature", specSign(secret, id, ts, body))
	}
	return r
}

// A send asks for a receipt (receipt_url), its id is its webhook-id, and
// the gateway's receipt naming that id comes back as a receipt.
func TestReceiptRoundTrip(t *testing.T) {
	rec, url := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { echo(w, http.StatusOK) })
	wh := newTestWebhook(t, Config{URL: url, SigningSecret: spec.secret})
	msg := testMessage
	msg.ReceiptURL = receiptURL
	id, err := wh.SendWithID(t.Context(), &msg)
	if err != nil {
		t.Fatalf("SendWithID: %v", err)
	}
	r := rec.requests()[0]
	if id != r.header.Get("webhook-id") {
		t.Errorf("id %q, want the webhook-id %q", id, r.header.Get("webhook-id"))
	}
	want := strings.TrimSuffix(testBody, "}") + `,"receipt_url":"` + receiptURL + `"}`
	if string(r.body) != want {
		t.Errorf("body\n got %s\nwant %s", r.body, want)
	}

	body := `{"message_id":"` + id + `","status":"undelivered","challenge":"ch_7Qx","error_code":"30003","provider_status":"UNDELIV","time":"2026-12-06T09:01:00Z"}`
	got, err := wh.ParseReceipt(receiptCall(body, spec.secret, time.Now()), receiptURL)
	if err != nil || len(got) != 1 {
		t.Fatalf("ParseReceipt = %v, %v", got, err)
	}
	wantRc := sender.Receipt{MessageID: id, Status: sender.StatusUndelivered, ProviderStatus: "UNDELIV", ErrorCode: "30003",
		Challenge: "ch_7Qx", Time: time.Date(2026, 12, 6, 9, 1, 0, 0, time.UTC)}
	if got[0] != wantRc {
		t.Errorf("receipt %+v, want %+v", got[0], wantRc)
	}
	// The smallest receipt.
	got, err = wh.ParseReceipt(receiptCall(`{"message_id":"`+id+`","status":"delivered"}`, spec.secret, time.Now()), receiptURL)
	if err != nil || got[0].Status != sender.StatusDelivered || got[0].ProviderStatus != "delivered" || got[0].Time.IsZero() {
		t.Errorf("minimal receipt: %+v, %v", got, err)
	}
}

func TestReceiptUnsignedWebhook(t *testing.T) {
	rec, url := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { echo(w, http.StatusOK) })
	wh := newTestWebhook(t, Config{URL: url})
	msg := testMessage
	msg.ReceiptURL = receiptURL
	if _, err := wh.SendWithID(t.Context(), &msg); err != nil {
		t.Fatal(err)
	}
	// No secret: no receipt_url is offered, and no receipt is taken.
	if string(rec.requests()[0].body) != testBody || wh.Receipts() {
		t.Errorf("body %s, receipts %v", rec.requests()[0].body, wh.Receipts())
	}
	_, err := wh.ParseReceipt(receiptCall(`{"message_id":"m","status":"delivered"}`, spec.secret, time.Now()), receiptURL)
	if !errors.Is(err, sender.ErrReceiptsOff) {
		t.Errorf("ParseReceipt = %v, want ErrReceiptsOff", err)
	}
}

func TestReceiptRefused(t *testing.T) {
	wh := newTestWebhook(t, Config{URL: "http://127.0.0.1:1/sms", SigningSecret: spec.secret})
	const good = `{"message_id":"msg_abc","status":"delivered"}`
	now := time.Now()
	tampered := receiptCall(`{"message_id":"msg_abc","status":"failed"}`, "", now)
	tampered.Header.Set("webhook-signature", specSign(spec.secret, "msg_receipt_2x9Qa", now, good))
	noID := receiptCall(good, spec.secret, now)
	noID.Header.Del("webhook-id")
	get := receiptCall(good, spec.secret, now)
	get.Method = http.MethodGet
	form := receiptCall(good, spec.secret, now)
	form.Header.Set("Content-Type", "application/x-www-form-urlencoded")

	tests := []struct {
		name string
		r    *http.Request
		want error
	}{
		{"unsigned", receiptCall(good, "", now), sender.ErrReceiptUnsigned},
		{"no webhook-id", noID, sender.ErrReceiptUnsigned},
		{"another secret", receiptCall(good, "whsec_"+base64.StdEncoding.EncodeToString([]byte("another key of 32 bytes, really")), now), sender.ErrReceiptForged},
		{"status changed after signing", tampered, sender.ErrReceiptForged},
		{"replayed after 6 minutes", receiptCall(good, spec.secret, now.Add(-6*time.Minute)), sender.ErrReceiptForged},
		{"dated 6 minutes ahead", receiptCall(good, spec.secret, now.Add(6*time.Minute)), sender.ErrReceiptForged},
		{"not JSON", receiptCall(`message_id=msg_abc`, spec.secret, now), sender.ErrReceiptMalformed},
		{"no message_id", receiptCall(`{"status":"delivered"}`, spec.secret, now), sender.ErrReceiptMalformed},
		{"provider's status word", receiptCall(`{"message_id":"msg_abc","status":"DELIVRD"}`, spec.secret, now), sender.ErrReceiptMalformed},
		{"time not RFC 3339", receiptCall(`{"message_id":"msg_abc","status":"sent","time":"06/12/2026"}`, spec.secret, now), sender.ErrReceiptMalformed},
		{"status a number", receiptCall(`{"message_id":"msg_abc","status":1}`, spec.secret, now), sender.ErrReceiptMalformed},
		{"field too long", receiptCall(`{"message_id":"`+strings.Repeat("m", 201)+`","status":"sent"}`, spec.secret, now), sender.ErrReceiptMalformed},
		{"GET", get, sender.ErrReceiptMalformed},
		{"form", form, sender.ErrReceiptMalformed},
	}
	for _, tt := range tests {
		got, err := wh.ParseReceipt(tt.r, receiptURL)
		if !errors.Is(err, tt.want) || got != nil {
			t.Errorf("%s: ParseReceipt = %v, %v; want %v", tt.name, got, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), spec.secret) {
			t.Errorf("%s: error %q holds the secret", tt.name, err)
		}
	}
	// Within the five minutes a replay verifies and tells the same.
	a, _ := wh.ParseReceipt(receiptCall(good, spec.secret, now), receiptURL)
	b, err := wh.ParseReceipt(receiptCall(good, spec.secret, now), receiptURL)
	if err != nil || a[0].MessageID != b[0].MessageID || a[0].Status != b[0].Status {
		t.Errorf("replay: %v %v %v", a, b, err)
	}
	// Every normalized status is accepted as written.
	for _, st := range []string{"queued", "sent", "delivered", "undelivered", "failed", "read", "unknown"} {
		body, _ := json.Marshal(map[string]string{"message_id": "m", "status": st})
		if got, err := wh.ParseReceipt(receiptCall(string(body), spec.secret, now), receiptURL); err != nil || string(got[0].Status) != st {
			t.Errorf("%s: %v, %v", st, got, err)
		}
	}
}
