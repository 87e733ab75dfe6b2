package twilio

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-stepup/caddy-stepup/sender"
	pt "github.com/caddy-stepup/caddy-stepup/sender/internal/providertest"
)

// The example of Twilio's webhook security guide, as Twilio's own
// libraries test it (twilio-go client/request_validator_test.go).
const (
	exampleToken = "12345"
	exampleURL   = "https://mycompany.com/myapp.php?foo=1&bar=2"
	exampleSig   = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
)

var exampleParams = url.Values{
	"Digits":  {"1234"},
	"CallSid": {"CA1234567890ABCDE"},
	"To":      {"+18005551212"},
	"Caller":  {"+14158675309"},
	"From":    {"+14158675309"},
}

func TestSignatureExample(t *testing.T) {
	got := base64.StdEncoding.EncodeToString(Signature(exampleToken, exampleURL, exampleParams))
	if got != exampleSig {
		t.Fatalf("Signature = %s, want Twilio's %s", got, exampleSig)
	}
}

const receiptURL = "https://shop.example/.stepup/receipts/twilio"

// callback returns a status callback as Twilio posts it for message
// SM...1111, with the fields Twilio documents.
func statusCallback(status, errorCode string) url.Values {
	v := url.Values{
		"AccountSid":          {sid},
		"ApiVersion":          {"2010-04-01"},
		"From":                {"+15557122661"},
		"MessageSid":          {"SMaaaabbbbccccddddeeeeffff00001111"},
		"MessageStatus":       {status},
		"MessagingServiceSid": {"MG0123456789abcdef0123456789abcdef"},
		"SmsSid":              {"SMaaaabbbbccccddddeeeeffff00001111"},
		"SmsStatus":           {status},
		"To":                  {pt.To},
	}
	if errorCode != "" {
		v.Set("ErrorCode", errorCode)
	}
	return v
}

// post returns the request Twilio makes to target with form, signed
// with key for signedURL ("" leaves it unsigned).
func postCallback(target string, form url.Values, key, signedURL string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	r.Header.Set("I-Twilio-Idempotency-Token", "c9b6a3f2-0000-4000-8000-000000000001")
	if signedURL != "" {
		r.Header.Set("X-Twilio-Signature", base64.StdEncoding.EncodeToString(Signature(key, signedURL, form)))
	}
	return r
}

func receiptSender(t *testing.T) *Sender {
	return newSender(t, Config{AccountSID: sid, AuthToken: token, From: "+15557122661"})
}

func TestParseReceipt(t *testing.T) {
	s := receiptSender(t)
	for status, want := range map[string]sender.DeliveryStatus{
		"queued":      sender.StatusQueued,
		"accepted":    sender.StatusQueued,
		"sending":     sender.StatusSent,
		"sent":        sender.StatusSent,
		"delivered":   sender.StatusDelivered,
		"undelivered": sender.StatusUndelivered,
		"failed":      sender.StatusFailed,
		"read":        sender.StatusRead,
		"receiving":   sender.StatusUnknown,
	} {
		code := ""
		if want.Failed() {
			code = "30003"
		}
		r := postCallback(receiptURL, statusCallback(status, code), token, receiptURL)
		got, err := s.ParseReceipt(r, receiptURL)
		if err != nil || len(got) != 1 {
			t.Fatalf("%s: ParseReceipt = %+v, %v", status, got, err)
		}
		rc := got[0]
		if rc.MessageID != "SMaaaabbbbccccddddeeeeffff00001111" || rc.Status != want || rc.ProviderStatus != status ||
			rc.ErrorCode != code || rc.Time.IsZero() {
			t.Errorf("%s: receipt %+v, want status %s, error code %q", status, rc, want, code)
		}
		if strings.Contains(fmt.Sprint(rc), "4155550100") {
			t.Errorf("receipt %+v holds the number", rc)
		}
	}
}

func TestParseReceiptURL(t *testing.T) {
	s := newSender(t, Config{AccountSID: sid, AuthToken: exampleToken, From: "+15557122661"})
	// Twilio's example request, at the path and query it names: the
	// signature verifies, and since it is a voice webhook, not a status
	// callback, it is then malformed.
	r := postCallback(exampleURL, exampleParams, exampleToken, "")
	r.Header.Set("X-Twilio-Signature", exampleSig)
	_, err := s.ParseReceipt(r, "https://mycompany.com/myapp.php")
	if !errors.Is(err, sender.ErrReceiptMalformed) {
		t.Errorf("Twilio's example: %v, want the signature to verify and the receipt to be malformed", err)
	}
	// The same URL signed with the default port written out, as
	// Twilio's libraries accept.
	r = postCallback(exampleURL, exampleParams, exampleToken, "https://mycompany.com:443/myapp.php?foo=1&bar=2")
	if _, err := s.ParseReceipt(r, "https://mycompany.com/myapp.php"); !errors.Is(err, sender.ErrReceiptMalformed) {
		t.Errorf("URL signed with :443: %v, want it to verify", err)
	}

	// Behind a proxy: Caddy hears http://10.0.0.5:8080/..., Twilio
	// called (and signed) the public https URL.
	s = receiptSender(t)
	internal := "http://10.0.0.5:8080/.stepup/receipts/twilio"
	r = postCallback(internal, statusCallback("delivered", ""), token, receiptURL)
	if _, err := s.ParseReceipt(r, receiptURL); err != nil {
		t.Errorf("with the public URL: %v", err)
	}
	r = postCallback(internal, statusCallback("delivered", ""), token, receiptURL)
	if _, err := s.ParseReceipt(r, ""); !errors.Is(err, sender.ErrReceiptForged) {
		t.Errorf("without the public URL, behind a proxy: %v, want forged (the URL Caddy heard is not the one Twilio signed)", err)
	}
	// Without a proxy the URL the request arrived at is the one.
	r = postCallback(internal, statusCallback("delivered", ""), token, internal)
	if _, err := s.ParseReceipt(r, ""); err != nil {
		t.Errorf("no proxy, no public URL: %v", err)
	}
}

func TestParseReceiptRefused(t *testing.T) {
	s := receiptSender(t)
	other := "https://shop.example/.stepup/receipts/twilio-eu"
	body := statusCallback("failed", "30003").Encode()
	tampered := httptest.NewRequest(http.MethodPost, receiptURL, strings.NewReader(body))
	tampered.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	tampered.Header.Set("X-Twilio-Signature", base64.StdEncoding.EncodeToString(Signature(token, receiptURL, statusCallback("delivered", ""))))

	otherAccount := statusCallback("delivered", "")
	otherAccount.Set("AccountSid", "AC99999999999999999999999999999999")
	noSid := statusCallback("delivered", "")
	noSid.Del("MessageSid")
	noSid.Del("SmsSid")

	get := httptest.NewRequest(http.MethodGet, receiptURL+"?MessageSid=SM1&MessageStatus=delivered", nil)
	get.Header.Set("X-Twilio-Signature", base64.StdEncoding.EncodeToString(Signature(token, receiptURL+"?MessageSid=SM1&MessageStatus=delivered", nil)))
	asJSON := postCallback(receiptURL, statusCallback("delivered", ""), token, receiptURL)
	asJSON.Header.Set("Content-Type", "application/json")

	tests := []struct {
		name string
		r    *http.Request
		want error
	}{
		{"unsigned", postCallback(receiptURL, statusCallback("delivered", ""), "", ""), sender.ErrReceiptUnsigned},
		{"signed with another token", postCallback(receiptURL, statusCallback("delivered", ""), "not-the-token", receiptURL), sender.ErrReceiptForged},
		{"status changed after signing", tampered, sender.ErrReceiptForged},
		{"signed for another sender's URL", postCallback(receiptURL, statusCallback("delivered", ""), token, other), sender.ErrReceiptForged},
		{"signature not base64", func() *http.Request {
			r := postCallback(receiptURL, statusCallback("delivered", ""), "", "")
			r.Header.Set("X-Twilio-Signature", "%%%")
			return r
		}(), sender.ErrReceiptForged},
		{"another account", postCallback(receiptURL, otherAccount, token, receiptURL), sender.ErrReceiptForged},
		{"no message sid", postCallback(receiptURL, noSid, token, receiptURL), sender.ErrReceiptMalformed},
		{"GET", get, sender.ErrReceiptMalformed},
		{"JSON", asJSON, sender.ErrReceiptMalformed},
		{"body too large", postCallback(receiptURL, url.Values{"x": {strings.Repeat("a", 300<<10)}}, token, receiptURL), sender.ErrReceiptMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ParseReceipt(tt.r, receiptURL)
			if !errors.Is(err, tt.want) || got != nil {
				t.Fatalf("ParseReceipt = %v, %v; want %v", got, err, tt.want)
			}
			if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), "4155550100") {
				t.Errorf("error %q leaks", err)
			}
		})
	}

	// Without the auth token nothing can be verified.
	noToken := newSender(t, Config{AccountSID: sid, APIKey: "SK0123456789abcdef0123456789abcdef", APISecret: "s", From: "+15557122661"})
	if _, err := noToken.ParseReceipt(postCallback(receiptURL, statusCallback("delivered", ""), token, receiptURL), receiptURL); !errors.Is(err, sender.ErrReceiptsOff) {
		t.Errorf("sender without auth token: %v, want ErrReceiptsOff", err)
	}
}

// A replayed callback verifies (Twilio signs no time) and tells the same
// thing again: the caller keeps one status per message.
func TestParseReceiptReplayed(t *testing.T) {
	s := receiptSender(t)
	form := statusCallback("delivered", "")
	a, err1 := s.ParseReceipt(postCallback(receiptURL, form, token, receiptURL), receiptURL)
	b, err2 := s.ParseReceipt(postCallback(receiptURL, form, token, receiptURL), receiptURL)
	if err1 != nil || err2 != nil || a[0].MessageID != b[0].MessageID || a[0].Status != b[0].Status {
		t.Fatalf("replay: %v %v, %v %v", a, err1, b, err2)
	}
}
