package whatsapp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
	pt "github.com/caddy-stepup/caddy-stepup/sender/internal/providertest"
)

const (
	appSecret   = "6d7f1c9a2b3e4f50617283949aabbccd"
	verifyToken = "stepup-verify-4f3c2b1a"
	receiptURL  = "https://shop.example/.stepup/receipts/whatsapp"
	wamid       = "wamid.HBgLMTQxNTU1NTAxMDAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"
)

// Status webhooks as the Cloud API posts them (webhooks reference,
// messages/status): the field names and nesting are Meta's.
const (
	webhookDelivered = `{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15557122661","phone_number_id":"106540352242922"},"statuses":[{"id":"` + wamid + `","status":"sent","timestamp":"1796547600","recipient_id":"14155550100","conversation":{"id":"6ceb9d929c8b2a4c9c9b8a7f6e5d4c3b","origin":{"type":"authentication"}},"pricing":{"billable":true,"pricing_model":"PMP","category":"authentication"}},{"id":"` + wamid + `","status":"delivered","timestamp":"1796547603","recipient_id":"14155550100"}]},"field":"messages"}]}]}`
	webhookFailed    = `{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15557122661","phone_number_id":"106540352242922"},"statuses":[{"id":"` + wamid + `","status":"failed","timestamp":"1796547601","recipient_id":"14155550100","errors":[{"code":131026,"title":"Message undeliverable","message":"Message undeliverable","error_data":{"details":"Message Undeliverable."},"href":"https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}]}]},"field":"messages"}]}]}`
	webhookInbound   = `{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15557122661","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Kerry"},"wa_id":"14155550100"}],"messages":[{"from":"14155550100","id":"wamid.in","timestamp":"1796547700","text":{"body":"493817"},"type":"text"}]},"field":"messages"}]}]}`
)

func receiptSender(t *testing.T) *Sender {
	cfg := config("")
	cfg.AppSecret, cfg.VerifyToken = appSecret, verifyToken
	return newSender(t, cfg)
}

// sign is X-Hub-Signature-256 as Meta computes it, written out here.
func sign(secret, body string) string {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(h.Sum(nil))
}

func webhookRequest(body, signature string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, receiptURL, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if signature != "" {
		r.Header.Set("X-Hub-Signature-256", signature)
	}
	return r
}

func TestParseReceipt(t *testing.T) {
	s := receiptSender(t)
	got, err := s.ParseReceipt(webhookRequest(webhookDelivered, sign(appSecret, webhookDelivered)), receiptURL)
	if err != nil || len(got) != 2 {
		t.Fatalf("ParseReceipt = %+v, %v", got, err)
	}
	if got[0].MessageID != wamid || got[0].Status != sender.StatusSent || got[1].Status != sender.StatusDelivered ||
		!got[1].Time.Equal(time.Unix(1796547603, 0)) || got[1].ErrorCode != "" {
		t.Errorf("receipts %+v", got)
	}
	// The webhook of an incoming message: signed, well formed, no receipt.
	got, err = s.ParseReceipt(webhookRequest(webhookInbound, sign(appSecret, webhookInbound)), receiptURL)
	if err != nil || len(got) != 0 {
		t.Errorf("incoming message: %+v, %v; want no receipt and no error", got, err)
	}
	// A read receipt, and a status this package does not know.
	for status, want := range map[string]sender.DeliveryStatus{"read": sender.StatusRead, "deleted": sender.StatusUnknown} {
		body := strings.Replace(webhookDelivered, `"status":"delivered"`, `"status":"`+status+`"`, 1)
		got, err := s.ParseReceipt(webhookRequest(body, sign(appSecret, body)), "")
		if err != nil || got[1].Status != want || got[1].ProviderStatus != status {
			t.Errorf("%s: %+v, %v", status, got, err)
		}
	}
}

// The review's point: the Cloud API takes a message for a number without
// WhatsApp with a 200, and says 131026 in the status webhook. The send
// succeeds; the receipt fails, with the code.
func TestUndeliverableComesInTheWebhook(t *testing.T) {
	srv := httptest.NewServer(pt.JSON(http.StatusOK, sent))
	defer srv.Close()
	cfg := config(srv.URL)
	cfg.AppSecret, cfg.VerifyToken = appSecret, verifyToken
	s := newSender(t, cfg)
	id, err := s.SendWithID(t.Context(), pt.Message())
	if err != nil {
		t.Fatalf("SendWithID: %v (the Cloud API answered 200)", err)
	}
	got, err := s.ParseReceipt(webhookRequest(webhookFailed, sign(appSecret, webhookFailed)), receiptURL)
	if err != nil || len(got) != 1 {
		t.Fatalf("ParseReceipt = %+v, %v", got, err)
	}
	if got[0].MessageID != id || got[0].Status != sender.StatusFailed || got[0].ErrorCode != "131026" {
		t.Errorf("receipt %+v, want message %s failed with 131026", got[0], id)
	}
}

func TestParseReceiptRefused(t *testing.T) {
	s := receiptSender(t)
	tampered := strings.Replace(webhookFailed, `"status":"failed"`, `"status":"delivered"`, 1)
	form := webhookRequest(webhookDelivered, sign(appSecret, webhookDelivered))
	form.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	tests := []struct {
		name string
		r    *http.Request
		want error
	}{
		{"unsigned", webhookRequest(webhookDelivered, ""), sender.ErrReceiptUnsigned},
		{"signed with another secret", webhookRequest(webhookDelivered, sign("another-app-secret", webhookDelivered)), sender.ErrReceiptForged},
		{"status changed after signing", webhookRequest(tampered, sign(appSecret, webhookFailed)), sender.ErrReceiptForged},
		{"SHA-1 header form", webhookRequest(webhookDelivered, "sha1="+strings.TrimPrefix(sign(appSecret, webhookDelivered), "sha256=")), sender.ErrReceiptForged},
		{"not hex", webhookRequest(webhookDelivered, "sha256=zz"), sender.ErrReceiptForged},
		{"not JSON", webhookRequest(`{"object":`, sign(appSecret, `{"object":`)), sender.ErrReceiptMalformed},
		{"form", form, sender.ErrReceiptMalformed},
		{"PUT", func() *http.Request {
			r := webhookRequest(webhookDelivered, sign(appSecret, webhookDelivered))
			r.Method = http.MethodPut
			return r
		}(), sender.ErrReceiptMalformed},
	}
	for _, tt := range tests {
		got, err := s.ParseReceipt(tt.r, receiptURL)
		if !errors.Is(err, tt.want) || got != nil {
			t.Errorf("%s: ParseReceipt = %v, %v; want %v", tt.name, got, err, tt.want)
		}
		if err != nil && (strings.Contains(err.Error(), appSecret) || strings.Contains(err.Error(), "4155550100")) {
			t.Errorf("%s: error %q leaks", tt.name, err)
		}
	}

	// Meta signs no time: a replayed webhook verifies and says the same.
	a, _ := s.ParseReceipt(webhookRequest(webhookFailed, sign(appSecret, webhookFailed)), receiptURL)
	b, err := s.ParseReceipt(webhookRequest(webhookFailed, sign(appSecret, webhookFailed)), receiptURL)
	if err != nil || len(a) != 1 || len(b) != 1 || a[0] != b[0] {
		t.Errorf("replay: %v, %v, %v", a, b, err)
	}

	off := newSender(t, config(""))
	if _, err := off.ParseReceipt(webhookRequest(webhookDelivered, sign(appSecret, webhookDelivered)), receiptURL); !errors.Is(err, sender.ErrReceiptsOff) {
		t.Errorf("sender without app secret: %v", err)
	}
}

func TestHandshake(t *testing.T) {
	s := receiptSender(t)
	get := func(query string) *http.Request {
		return httptest.NewRequest(http.MethodGet, receiptURL+"?"+query, nil)
	}
	_, err := s.ParseReceipt(get("hub.mode=subscribe&hub.verify_token="+verifyToken+"&hub.challenge=1158201444"), receiptURL)
	var hs *sender.Handshake
	if !errors.As(err, &hs) || string(hs.Body) != "1158201444" || !strings.HasPrefix(hs.ContentType, "text/plain") {
		t.Fatalf("handshake: %v", err)
	}
	if sender.ReceiptHTTPStatus(err) != http.StatusOK {
		t.Errorf("a handshake is not answered 200")
	}
	for query, want := range map[string]error{
		"hub.mode=subscribe&hub.challenge=1158201444":                                        sender.ErrReceiptUnsigned,
		"hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1158201444":                 sender.ErrReceiptForged,
		"hub.mode=unsubscribe&hub.verify_token=" + verifyToken + "&hub.challenge=1":          sender.ErrReceiptMalformed,
		"hub.mode=subscribe&hub.verify_token=" + verifyToken:                                 sender.ErrReceiptMalformed,
		"hub.mode=subscribe&hub.verify_token=" + verifyToken + "&hub.challenge=%3Cscript%3E": sender.ErrReceiptMalformed,
		"": sender.ErrReceiptMalformed,
	} {
		if _, err := s.ParseReceipt(get(query), receiptURL); !errors.Is(err, want) {
			t.Errorf("%q: %v, want %v", query, err, want)
		}
	}
}
