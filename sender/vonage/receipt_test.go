package vonage

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/internal/httpsend"
	pt "github.com/caddy-stepup/caddy-stepup/sender/internal/providertest"
)

// Signatures from Vonage's PHP SDK tests (test/Client/SignatureTest.php):
// an inbound message signed by each method, and outbound requests.
func TestSignVonageVectors(t *testing.T) {
	inbound := map[string]string{
		"message-timestamp": "2013-11-21 15:27:30",
		"messageId":         "020000001B0FE827",
		"msisdn":            "14843472194",
		"text":              "Test again",
		"timestamp":         "1385047698",
		"to":                "13239877404",
		"type":              "text",
	}
	const secret = "my_secret_key_for_testing"
	for method, want := range map[string]string{
		MD5Hash:    "d2e7b1dc968737c5998ad624e02f90b7",
		HMACMD5:    "DDEBD46008C2D4E93CCE578A332A52D5",
		HMACSHA1:   "27D0D05C2876C7CB1720DBCDBA4D492E1E55C09A",
		HMACSHA256: "DDB8397C2B90AAC7F3882D306475C9A5058C92322EEF43C92B298B6E0FC0D330",
		HMACSHA512: "E0D3C650F8C9D1A5C174D10DDDBFB003E561F59B265616208B0487C5D819481CD3C311D59CF6165ECD1139622D5BA3A256C0D763AC4A9AD9144B5A426B94FE82",
	} {
		if got := Sign(method, secret, inbound); got != want {
			t.Errorf("%s: Sign = %s, want %s", method, got, want)
		}
	}
	// '&' and '=' in a value; a sig among the parameters is left out.
	withAmp := map[string]string{
		"keyword": "TEST", "message-timestamp": "2017-04-04 22:57:47", "messageId": "0B00000042AC53BD",
		"msisdn": "14843472194", "nonce": "929d6744-bd28-42c8-b6cf-31d5b4f43732", "sig": "e06d9763e3fd0b9c31beb5fc2fcb011c",
		"text": "Test with & and =", "timestamp": "1491346667", "to": "12192259404", "type": "text",
	}
	if got := Sign(MD5Hash, secret, withAmp); got != "e06d9763e3fd0b9c31beb5fc2fcb011c" {
		t.Errorf("with & and =: Sign = %s", got)
	}
	outbound := map[string]string{"api_key": "not_a_key", "from": "12192259404", "text": "Test&test=something",
		"timestamp": "1490638615", "to": "14843472194"}
	if got := Sign(MD5Hash, secret, outbound); got != "17f5e3b22f778ec73464c01d180e9d0f" {
		t.Errorf("outbound: Sign = %s", got)
	}
	hmacOutbound := map[string]string{"api_key": "fake_api_key", "to": "14155550100", "from": "AcmeInc",
		"text": "Test From Nexmo", "type": "text", "timestamp": "1540924779"}
	if got := Sign(HMACSHA256, "71efab63122f1d179f51c46bac838fb5", hmacOutbound); got != "9FEC5EF6D0F2B3D2BB7558B6E4042569823CAB9EA0DD30503472B7B304601975" {
		t.Errorf("HMAC outbound: Sign = %s", got)
	}
}

const sigSecret = "0123456789abcdef0123456789abcdef"

var dlrClock = time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)

func signedSender(t *testing.T, method string, endpoint string) *Sender {
	s := newSender(t, Config{Endpoint: endpoint, APIKey: "abcd1234", SignatureSecret: sigSecret, SignatureMethod: method, From: "ACME"})
	s.now = func() time.Time { return dlrClock }
	return s
}

func TestSendSigned(t *testing.T) {
	for _, method := range []string{"", MD5Hash, HMACSHA1, HMACSHA256, HMACSHA512} {
		var forms []url.Values
		srv := httptest.NewServer(capture(t, &forms, accepted))
		s := signedSender(t, method, srv.URL)
		msg := pt.Message()
		msg.Text = "Pay 5 & more = fine? " + msg.Text
		msg.ReceiptURL = "https://shop.example/.stepup/receipts/vonage"
		id, err := s.SendWithID(t.Context(), msg)
		srv.Close()
		if err != nil || id != "0A0000000123ABCD1" {
			t.Fatalf("%s: SendWithID = %q, %v", method, id, err)
		}
		form := forms[0]
		if form.Has("api_secret") {
			t.Errorf("%s: a signed request carries api_secret", method)
		}
		if form.Get("timestamp") != strconv.FormatInt(dlrClock.Unix(), 10) {
			t.Errorf("%s: timestamp %q", method, form.Get("timestamp"))
		}
		// Vonage recomputes the sig over what it received.
		if err := VerifySignature(cmpMethod(method), sigSecret, flatten(form), dlrClock); err != nil {
			t.Errorf("%s: the request's sig does not verify: %v", method, err)
		}
		// Signed receipts need no token in the callback.
		if form.Get("callback") != "https://shop.example/.stepup/receipts/vonage" {
			t.Errorf("%s: callback %q", method, form.Get("callback"))
		}
	}
}

func cmpMethod(m string) string {
	if m == "" {
		return MD5Hash
	}
	return m
}

func TestCallback(t *testing.T) {
	const token = "tok_0123456789abcdefXYZ"
	for name, tt := range map[string]struct {
		cfg  Config
		url  string
		want string
	}{
		"token":          {Config{APIKey: "k", APISecret: "s", From: "A", ReceiptToken: token}, "https://shop.example/.stepup/receipts/vonage", "https://shop.example/.stepup/receipts/vonage?stepup_token=" + token},
		"no receipts":    {Config{APIKey: "k", APISecret: "s", From: "A"}, "https://shop.example/.stepup/receipts/vonage", ""},
		"no URL":         {Config{APIKey: "k", APISecret: "s", From: "A", ReceiptToken: token}, "", ""},
		"URL over limit": {Config{APIKey: "k", APISecret: "s", From: "A", ReceiptToken: token}, "https://shop.example/" + strings.Repeat("x", 60) + "/receipts/vonage", ""},
	} {
		var forms []url.Values
		srv := httptest.NewServer(capture(t, &forms, accepted))
		tt.cfg.Endpoint = srv.URL
		s := newSender(t, tt.cfg)
		msg := pt.Message()
		msg.ReceiptURL = tt.url
		if err := s.Send(t.Context(), msg); err != nil {
			t.Fatal(err)
		}
		srv.Close()
		if got := forms[0].Get("callback"); got != tt.want {
			t.Errorf("%s: callback %q, want %q", name, got, tt.want)
		}
	}
}

// dlr returns a delivery receipt as Vonage sends it for message
// 0A0000000123ABCD1, signed at ts when secret is set.
func dlr(status, errCode string, ts time.Time, method, secret string) map[string]string {
	p := map[string]string{
		"msisdn":            "14155550100",
		"to":                "ACME",
		"network-code":      "310090",
		"messageId":         "0A0000000123ABCD1",
		"price":             "0.03330000",
		"status":            status,
		"scts":              "2612060901",
		"err-code":          errCode,
		"api-key":           "abcd1234",
		"client-ref":        pt.Challenge,
		"message-timestamp": "2026-12-06 09:01:05",
	}
	if secret != "" {
		p["timestamp"] = strconv.FormatInt(ts.Unix(), 10)
		p["nonce"] = "7b2b6d3a-6f0e-4c1e-9d8e-2a1b3c4d5e6f"
		p["sig"] = Sign(method, secret, p)
	}
	return p
}

func dlrValues(p map[string]string) url.Values {
	v := url.Values{}
	for k, x := range p {
		v.Set(k, x)
	}
	return v
}

const receiptURL = "https://shop.example/.stepup/receipts/vonage"

// The three ways Vonage delivers a receipt, as the account is set.
func asGET(p map[string]string, query string) *http.Request {
	return httptest.NewRequest(http.MethodGet, receiptURL+"?"+dlrValues(p).Encode()+query, nil)
}

func asForm(p map[string]string, query string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, receiptURL+query, strings.NewReader(dlrValues(p).Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

func asJSON(p map[string]string, query string) *http.Request {
	b, _ := json.Marshal(p)
	r := httptest.NewRequest(http.MethodPost, receiptURL+query, strings.NewReader(string(b)))
	r.Header.Set("Content-Type", "application/json")
	return r
}

func TestParseReceiptSigned(t *testing.T) {
	for _, method := range []string{MD5Hash, HMACMD5, HMACSHA1, HMACSHA256, HMACSHA512} {
		s := signedSender(t, method, "")
		for how, req := range map[string]func(map[string]string, string) *http.Request{"GET": asGET, "form": asForm, "JSON": asJSON} {
			got, err := s.ParseReceipt(req(dlr("delivered", "0", dlrClock.Add(-time.Minute), method, sigSecret), ""), receiptURL)
			if err != nil || len(got) != 1 {
				t.Fatalf("%s %s: ParseReceipt = %v, %v", method, how, got, err)
			}
			want := sender.Receipt{MessageID: "0A0000000123ABCD1", Status: sender.StatusDelivered, ProviderStatus: "delivered",
				Time: time.Date(2026, 12, 6, 9, 1, 0, 0, time.UTC), Challenge: pt.Challenge}
			if got[0] != want {
				t.Errorf("%s %s: receipt %+v, want %+v", method, how, got[0], want)
			}
		}
	}
	s := signedSender(t, HMACSHA256, "")
	for status, want := range map[string]sender.DeliveryStatus{
		"accepted": sender.StatusSent, "buffered": sender.StatusSent, "expired": sender.StatusUndelivered,
		"failed": sender.StatusFailed, "rejected": sender.StatusFailed, "unknown": sender.StatusUnknown, "new-word": sender.StatusUnknown,
	} {
		got, err := s.ParseReceipt(asForm(dlr(status, "6", dlrClock, HMACSHA256, sigSecret), ""), "")
		if err != nil || got[0].Status != want || got[0].ErrorCode != "6" {
			t.Errorf("%s: %+v, %v; want %s with err-code 6", status, got, err, want)
		}
	}
	// Java SDK: empty values left out of the signed string.
	p := dlr("delivered", "", dlrClock, HMACSHA256, "")
	p["timestamp"] = strconv.FormatInt(dlrClock.Unix(), 10)
	p["sig"] = signParams(HMACSHA256, sigSecret, p, true)
	if _, err := s.ParseReceipt(asForm(p, ""), ""); err != nil {
		t.Errorf("empty values left out of the signature: %v", err)
	}
}

func TestParseReceiptRefused(t *testing.T) {
	s := signedSender(t, HMACSHA256, "")
	good := func() map[string]string { return dlr("delivered", "0", dlrClock, HMACSHA256, sigSecret) }
	tampered := good()
	tampered["status"] = "failed"
	otherKey := dlr("delivered", "0", dlrClock, HMACSHA256, sigSecret)
	otherKey["api-key"] = "zzzz9999"
	otherKey["sig"] = Sign(HMACSHA256, sigSecret, otherKey)
	unsigned := dlr("delivered", "0", dlrClock, "", "")
	noID := good()
	delete(noID, "messageId")
	noID["sig"] = Sign(HMACSHA256, sigSecret, noID)
	twice := asGET(good(), "&status=failed")
	put := asForm(good(), "")
	put.Method = http.MethodPut
	xml := asForm(good(), "")
	xml.Header.Set("Content-Type", "text/xml")

	tests := []struct {
		name string
		r    *http.Request
		want error
	}{
		{"unsigned", asForm(unsigned, ""), sender.ErrReceiptUnsigned},
		{"other secret", asForm(dlr("delivered", "0", dlrClock, HMACSHA256, "another-secret-of-32-characters!"), ""), sender.ErrReceiptForged},
		{"other method", asForm(dlr("delivered", "0", dlrClock, MD5Hash, sigSecret), ""), sender.ErrReceiptForged},
		{"status changed after signing", asForm(tampered, ""), sender.ErrReceiptForged},
		{"replayed after 6 minutes", asForm(dlr("delivered", "0", dlrClock.Add(-6*time.Minute), HMACSHA256, sigSecret), ""), sender.ErrReceiptForged},
		{"dated 6 minutes ahead", asForm(dlr("delivered", "0", dlrClock.Add(6*time.Minute), HMACSHA256, sigSecret), ""), sender.ErrReceiptForged},
		{"another account", asForm(otherKey, ""), sender.ErrReceiptForged},
		{"no messageId", asForm(noID, ""), sender.ErrReceiptMalformed},
		{"parameter twice", twice, sender.ErrReceiptMalformed},
		{"PUT", put, sender.ErrReceiptMalformed},
		{"XML", xml, sender.ErrReceiptMalformed},
		{"JSON not flat", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, receiptURL, strings.NewReader(`{"messageId":{"x":1}}`))
			r.Header.Set("Content-Type", "application/json")
			return r
		}(), sender.ErrReceiptMalformed},
	}
	for _, tt := range tests {
		got, err := s.ParseReceipt(tt.r, receiptURL)
		if !errors.Is(err, tt.want) || got != nil {
			t.Errorf("%s: ParseReceipt = %v, %v; want %v", tt.name, got, err, tt.want)
		}
		if err != nil && (strings.Contains(err.Error(), sigSecret) || strings.Contains(err.Error(), "4155550100")) {
			t.Errorf("%s: error %q leaks", tt.name, err)
		}
	}

	// Within the five minutes a replay verifies, and says the same again.
	a, err1 := s.ParseReceipt(asForm(good(), ""), receiptURL)
	b, err2 := s.ParseReceipt(asForm(good(), ""), receiptURL)
	if err1 != nil || err2 != nil || a[0] != b[0] {
		t.Errorf("replay within the tolerance: %v %v, %v %v", a, err1, b, err2)
	}
}

func TestParseReceiptToken(t *testing.T) {
	const token = "tok_0123456789abcdefXYZ"
	s := newSender(t, Config{APIKey: "abcd1234", APISecret: "s", From: "ACME", ReceiptToken: token})
	p := dlr("expired", "27", dlrClock, "", "")
	for name, tt := range map[string]struct {
		r    *http.Request
		want error
	}{
		"GET with token":  {asGET(p, "&"+httpsend.TokenParam+"="+token), nil},
		"POST with token": {asForm(p, "?"+httpsend.TokenParam+"="+token), nil},
		"no token":        {asForm(p, ""), sender.ErrReceiptUnsigned},
		"wrong token":     {asForm(p, "?"+httpsend.TokenParam+"=tok_0123456789abcdefXYY"), sender.ErrReceiptForged},
	} {
		got, err := s.ParseReceipt(tt.r, receiptURL)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: ParseReceipt = %v, %v; want %v", name, got, err, tt.want)
		}
		if tt.want == nil && (len(got) != 1 || got[0].Status != sender.StatusUndelivered || got[0].ErrorCode != "27") {
			t.Errorf("%s: receipt %+v", name, got)
		}
	}
	// A sig does not stand in for the token on a sender without the
	// signature secret.
	if _, err := s.ParseReceipt(asForm(dlr("delivered", "0", dlrClock, MD5Hash, sigSecret), ""), receiptURL); !errors.Is(err, sender.ErrReceiptUnsigned) {
		t.Errorf("signed receipt to a token sender without the token: %v", err)
	}

	off := newSender(t, Config{APIKey: "abcd1234", APISecret: "s", From: "ACME"})
	if off.Receipts() {
		t.Error("a sender without signature secret or token takes receipts")
	}
	if _, err := off.ParseReceipt(asForm(p, "?"+httpsend.TokenParam+"="+token), receiptURL); !errors.Is(err, sender.ErrReceiptsOff) {
		t.Errorf("unsigned receipt to a sender that takes none: %v", err)
	}
}

func TestTemplateBound(t *testing.T) {
	if newSender(t, Config{APIKey: "k", APISecret: "s", From: "A"}).TemplateBound() {
		t.Error("a sender without DLT identifiers is template-bound")
	}
	if !newSender(t, Config{APIKey: "k", APISecret: "s", From: "ACMEIN", EntityID: "1201159100000000001", ContentID: "1207161700000000002"}).TemplateBound() {
		t.Error("a sender with DLT identifiers is not template-bound")
	}
}
