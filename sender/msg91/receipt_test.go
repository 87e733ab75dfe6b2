package msg91

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/internal/httpsend"
)

const (
	receiptToken = "msg91-0123456789abcdefXYZ"
	receiptURL   = "https://shop.example/.stepup/receipts/msg91"
	withToken    = receiptURL + "?" + httpsend.TokenParam + "=" + receiptToken
	reqID        = "3763646c3058373530393832"
)

// Delivery reports as MSG91's help page documents them ("How to use
// Webhook to get the delivery report on the desired URL"), numbers and
// ids replaced by ours.
const (
	// Version 2: form-encoded, a JSON array in the data field.
	reportV2 = `[{"senderId":"ACMEIN","requestId":"` + reqID + `","report":[{"date":"2026-12-06 14:36:20","amount":"0.01","clientid":"","INMSID":"0","CRQID":"0","ctCode":"900","number":"919876543210","credit":"1","status":"1","desc":"DELIVERED","failedReason":""}],"userId":"27XXXX","campaignName":"Sendhttp"}]`
	// Version 3: a JSON object.
	reportV3 = `{"date":"2026-12-06 14:28:16","number":"919876543210","senderId":"ACMEIN","amount":"0.01","requestId":"` + reqID + `","INMSID":"0","CRQID":"0","credit":"1","userId":"27XXXX","campaignName":"Sendhttp","status":"16","desc":"REJECTED"}`
	// Version 4: no request id to go by.
	reportV4 = `[{"data":[{"meta":"0","INMSID":"0","description":"DELIVERED","ts":1796547600}],"event":"delivered"}]`
	// The new webhook, with the fields its sample payload offers.
	reportNew = `{"requestId":"` + reqID + `","requestedAt":"2026-12-06 14:28:10","status":"Delivered","deliveryTime":"2026-12-06 14:28:16","telNum":"919876543210","credit":"1","senderId":"ACMEIN","campaignName":"API","failureReason":""}`
)

func receiptSender(t *testing.T) *Sender {
	return newSender(t, Config{AuthKey: "k", TemplateID: "t", ReceiptToken: receiptToken})
}

func formReport(target, data string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(url.Values{"data": {data}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

func jsonReport(target, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

func TestParseReceiptShapes(t *testing.T) {
	s := receiptSender(t)
	tests := []struct {
		name       string
		r          *http.Request
		wantStatus sender.DeliveryStatus
		wantCode   string
	}{
		{"v2 form", formReport(withToken, reportV2), sender.StatusDelivered, ""},
		{"v3 JSON", jsonReport(withToken, reportV3), sender.StatusFailed, "16"},
		{"new webhook", jsonReport(withToken, reportNew), sender.StatusDelivered, ""},
		{"v3 as an array", jsonReport(withToken, "["+reportV3+"]"), sender.StatusFailed, "16"},
		{"number status", jsonReport(withToken, `{"requestId":"`+reqID+`","status":17}`), sender.StatusFailed, "17"},
		{"GET", httptest.NewRequest(http.MethodGet, withToken+"&requestId="+reqID+"&status=2&desc=FAILED", nil), sender.StatusFailed, "2"},
		{"words only", jsonReport(withToken, `{"requestId":"`+reqID+`","desc":"NDNC"}`), sender.StatusFailed, ""},
		{"unknown status", jsonReport(withToken, `{"requestId":"`+reqID+`","status":"8","desc":"SUBMITTED"}`), sender.StatusSent, ""},
	}
	for _, tt := range tests {
		got, err := s.ParseReceipt(tt.r, receiptURL)
		if err != nil || len(got) != 1 {
			t.Fatalf("%s: ParseReceipt = %+v, %v", tt.name, got, err)
		}
		rc := got[0]
		if rc.MessageID != reqID || rc.Status != tt.wantStatus || rc.ErrorCode != tt.wantCode || rc.Time.IsZero() {
			t.Errorf("%s: receipt %+v, want %s with code %q", tt.name, rc, tt.wantStatus, tt.wantCode)
		}
		if strings.Contains(fmt.Sprint(rc), "9876543210") {
			t.Errorf("%s: receipt %+v holds the number", tt.name, rc)
		}
	}
	// Version 4 names no request: nothing to report, and no error (MSG91
	// would send it again).
	if got, err := s.ParseReceipt(jsonReport(withToken, reportV4), receiptURL); err != nil || len(got) != 0 {
		t.Errorf("v4: %+v, %v", got, err)
	}
	// Rejected (16, 25) and blocked (17) are failures with their code.
	for _, code := range []string{"16", "17", "25", "9"} {
		got, err := s.ParseReceipt(jsonReport(withToken, `{"requestId":"r1","status":"`+code+`"}`), receiptURL)
		if err != nil || got[0].Status != sender.StatusFailed || got[0].ErrorCode != code {
			t.Errorf("status %s: %+v, %v", code, got, err)
		}
	}
}

func TestParseReceiptRefused(t *testing.T) {
	s := receiptSender(t)
	tests := []struct {
		name string
		r    *http.Request
		want error
	}{
		{"no token", jsonReport(receiptURL, reportV3), sender.ErrReceiptUnsigned},
		{"wrong token", jsonReport(receiptURL+"?"+httpsend.TokenParam+"=msg91-0123456789abcdefXYY", reportV3), sender.ErrReceiptForged},
		{"token in the body only", jsonReport(receiptURL, `{"stepup_token":"`+receiptToken+`","requestId":"r","status":"1"}`), sender.ErrReceiptUnsigned},
		{"not JSON", jsonReport(withToken, `{"requestId":`), sender.ErrReceiptMalformed},
		{"v2 data not JSON", formReport(withToken, `[{"requestId":`), sender.ErrReceiptMalformed},
		{"DELETE", httptest.NewRequest(http.MethodDelete, withToken, nil), sender.ErrReceiptMalformed},
	}
	for _, tt := range tests {
		got, err := s.ParseReceipt(tt.r, receiptURL)
		if !errors.Is(err, tt.want) || got != nil {
			t.Errorf("%s: ParseReceipt = %v, %v; want %v", tt.name, got, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), receiptToken) {
			t.Errorf("%s: error %q holds the token", tt.name, err)
		}
	}
	// Unsigned: a replay with the token is the same report again.
	a, _ := s.ParseReceipt(jsonReport(withToken, reportV3), receiptURL)
	b, err := s.ParseReceipt(jsonReport(withToken, reportV3), receiptURL)
	if err != nil || a[0].MessageID != b[0].MessageID || a[0].Status != b[0].Status {
		t.Errorf("replay: %v %v %v", a, b, err)
	}

	off := newSender(t, Config{AuthKey: "k", TemplateID: "t"})
	if _, err := off.ParseReceipt(jsonReport(withToken, reportV3), receiptURL); !errors.Is(err, sender.ErrReceiptsOff) {
		t.Errorf("sender without token: %v", err)
	}
}

func FuzzParseReceipt(f *testing.F) {
	for _, b := range []string{reportV2, reportV3, reportV4, reportNew, `[[[[[[[{}]]]]]]]`, `{"data":"[{\"requestId\":\"x\"}]"}`} {
		f.Add(b)
	}
	s, _ := New(Config{AuthKey: "k", TemplateID: "t", ReceiptToken: receiptToken})
	f.Fuzz(func(t *testing.T, body string) {
		got, err := s.ParseReceipt(jsonReport(withToken, body), receiptURL)
		if err != nil && !errors.Is(err, sender.ErrReceiptMalformed) {
			t.Fatalf("error %v", err)
		}
		for _, rc := range got {
			if rc.MessageID == "" {
				t.Fatalf("receipt without id from %q", body)
			}
		}
	})
}
