package httpsend

import (
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddy-stepup/caddy-stepup/sender"
)

func TestFailure(t *testing.T) {
	for _, tt := range []struct {
		status      int
		notTaken    func(int) bool
		ok, retried bool
	}{
		{429, Retryable, true, true},
		{503, Retryable, true, true},
		{408, Retryable, true, true},
		{429, Throttled, true, true},
		{500, Throttled, true, false}, // maybe sent: ambiguous
		{408, Throttled, true, false},
		{400, Retryable, false, false},
		{401, Throttled, false, false},
		{200, Retryable, false, false},
	} {
		se := &sender.Error{Sender: "x", Status: tt.status}
		o, ok := (&Response{Status: tt.status, Header: http.Header{}}).Failure(se, tt.notTaken)
		if ok != tt.ok || o.Retry != tt.retried || ok && (o.Err != se || !se.Temporary) {
			t.Errorf("status %d: Failure = %+v, %v; want ok %v, retried %v, temporary", tt.status, o, ok, tt.ok, tt.retried)
		}
	}
}

func TestCheckToken(t *testing.T) {
	const token = "tok_0123456789abcdefXYZ"
	for target, want := range map[string]error{
		"https://shop.example/r?stepup_token=" + token:         nil,
		"https://shop.example/r?a=1&stepup_token=" + token:     nil,
		"https://shop.example/r":                               sender.ErrReceiptUnsigned,
		"https://shop.example/r?stepup_token=":                 sender.ErrReceiptUnsigned,
		"https://shop.example/r?stepup_token=" + token + "x":   sender.ErrReceiptForged,
		"https://shop.example/r?stepup_token=" + token[:10]:    sender.ErrReceiptForged,
		"https://shop.example/r?STEPUP_TOKEN=" + token:         sender.ErrReceiptUnsigned,
		"https://shop.example/r?stepup_token=" + token + "%00": sender.ErrReceiptForged,
	} {
		err := CheckToken(httptest.NewRequest(http.MethodGet, target, nil), token)
		if !errors.Is(err, want) || want == nil && err != nil {
			t.Errorf("%s: %v, want %v", target, err, want)
		}
		if err != nil && strings.Contains(err.Error(), token[:10]) {
			t.Errorf("%s: error %q holds the token", target, err)
		}
	}
	if got := WithToken("https://shop.example/r", "a.b~c"); got != "https://shop.example/r?stepup_token=a.b~c" {
		t.Errorf("WithToken = %s", got)
	}
	for token, ok := range map[string]bool{"short": false, strings.Repeat("a", 20): true, "tok_0123456789abcdef+/": false, "tok-0123456789.abc~_XYZ": true} {
		if err := CheckTokenOption("msg91", token); (err == nil) != ok {
			t.Errorf("CheckTokenOption(%q) = %v", token, err)
		} else if err != nil && strings.Contains(err.Error(), token) {
			t.Errorf("error %q quotes the token", err)
		}
	}
}

func TestParams(t *testing.T) {
	get := httptest.NewRequest(http.MethodGet, "/r?messageId=1&status=delivered&stepup_token=t", nil)
	if p, err := Params(get, nil); err != nil || len(p) != 2 || p["status"] != "delivered" {
		t.Errorf("GET: %v, %v", p, err)
	}
	form := httptest.NewRequest(http.MethodPost, "/r", strings.NewReader("messageId=1&status=failed"))
	form.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
	if p, err := Params(form, []byte("messageId=1&status=failed")); err != nil || p["status"] != "failed" {
		t.Errorf("form: %v, %v", p, err)
	}
	js := httptest.NewRequest(http.MethodPost, "/r", nil)
	js.Header.Set("Content-Type", "application/json")
	if p, err := Params(js, []byte(`{"messageId":"1","status":"delivered","price":0.033,"flag":true,"none":null}`)); err != nil ||
		p["price"] != "0.033" || p["flag"] != "true" || p["none"] != "" {
		t.Errorf("JSON: %v, %v", p, err)
	}
	for name, tt := range map[string]struct {
		r    *http.Request
		body string
	}{
		"twice":      {httptest.NewRequest(http.MethodGet, "/r?a=1&a=2", nil), ""},
		"nested":     {js, `{"a":{"b":1}}`},
		"array":      {js, `[1]`},
		"not JSON":   {js, `{`},
		"PUT":        {httptest.NewRequest(http.MethodPut, "/r", nil), ""},
		"no content": {httptest.NewRequest(http.MethodPost, "/r", nil), "a=1"},
	} {
		if _, err := Params(tt.r, []byte(tt.body)); !errors.Is(err, sender.ErrReceiptMalformed) {
			t.Errorf("%s: %v, want malformed", name, err)
		}
	}
}

func TestCallURL(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "http://10.0.0.5:8080/.stepup/receipts/twilio?x=1", nil)
	for public, want := range map[string]string{
		"https://shop.example/.stepup/receipts/twilio":     "https://shop.example/.stepup/receipts/twilio?x=1",
		"https://shop.example/.stepup/receipts/twilio?y=2": "https://shop.example/.stepup/receipts/twilio?x=1",
		"https://example.com/shop/.stepup/receipts/twilio": "https://example.com/shop/.stepup/receipts/twilio?x=1",
		"": "http://10.0.0.5:8080/.stepup/receipts/twilio?x=1",
	} {
		if got := CallURL(r, public); got != want {
			t.Errorf("CallURL(%q) = %s, want %s", public, got, want)
		}
	}
	r.TLS = &tls.ConnectionState{}
	if got := CallURL(r, ""); got != "https://10.0.0.5:8080/.stepup/receipts/twilio?x=1" {
		t.Errorf("over TLS: %s", got)
	}
}

func TestReadReceipt(t *testing.T) {
	big := httptest.NewRequest(http.MethodPost, "/r", strings.NewReader(strings.Repeat("a", MaxReceiptBody+1)))
	if _, err := ReadReceipt(big); !errors.Is(err, sender.ErrReceiptMalformed) {
		t.Errorf("oversized body: %v", err)
	}
	ok := httptest.NewRequest(http.MethodPost, "/r", strings.NewReader(strings.Repeat("a", MaxReceiptBody)))
	if b, err := ReadReceipt(ok); err != nil || len(b) != MaxReceiptBody {
		t.Errorf("body at the limit: %d, %v", len(b), err)
	}
}
