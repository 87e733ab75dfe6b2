package msg91

// MSG91's delivery reports as receipts. MSG91 documents several shapes
// (webhook versions 2, 3 and 4 of its SMS panel, and the newer "Webhook
// (New)" with fields of the operator's choosing) and signs none: the
// parser is tolerant of the shape, strict about the URL token.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/internal/httpsend"
)

// codes maps MSG91's numeric report statuses onto the normalized ones:
// 1 delivered, 2 failed, 9 NDNC (a promotional SMS to a do-not-disturb
// number), 16 and 25 rejected, 17 blocked number.
var codes = map[string]sender.DeliveryStatus{
	"1":  sender.StatusDelivered,
	"2":  sender.StatusFailed,
	"9":  sender.StatusFailed,
	"16": sender.StatusFailed,
	"17": sender.StatusFailed,
	"25": sender.StatusFailed,
}

// words maps the words MSG91 writes for a status (desc, description,
// event, or a status field of the new webhook) onto the normalized ones.
var words = map[string]sender.DeliveryStatus{
	"delivered": sender.StatusDelivered,
	"failed":    sender.StatusFailed,
	"rejected":  sender.StatusFailed,
	"blocked":   sender.StatusFailed,
	"ndnc":      sender.StatusFailed,
	"sent":      sender.StatusSent,
	"submitted": sender.StatusSent,
	"pending":   sender.StatusQueued,
	"queued":    sender.StatusQueued,
}

// Receipts reports whether the sender takes delivery reports: it has a
// receipt token for their URL to carry.
func (s *Sender) Receipts() bool { return s.token != "" }

// ParseReceipt checks the URL token of an MSG91 delivery report and
// returns a receipt per report in it.
//
// The report URL set in MSG91's panel must carry the sender's token
// (?stepup_token=...); without it, or with another one, nothing is read.
// The field names are taken as MSG91 documents them, tolerantly:
//
//   - version 2, a form whose data field holds a JSON array of
//     {"requestId", "report": [{"status", "desc", "date", "number"}]};
//   - version 3 and the new webhook, a JSON object {"requestId",
//     "status", "desc"}, or an array of them;
//   - a GET or a form with requestId and status.
//
// requestId is the id the Flow API answered with; a report without one
// (version 4) gives no receipt. Statuses are MSG91's numbers (1
// delivered, 2 failed, 16 and 25 rejected, 17 blocked, 9 NDNC) or words;
// ErrorCode is the number of a failed one. Numbers are not kept.
func (s *Sender) ParseReceipt(r *http.Request, _ string) ([]sender.Receipt, error) {
	if !s.Receipts() {
		return nil, fmt.Errorf("%w: msg91 needs receipt_token", sender.ErrReceiptsOff)
	}
	if err := httpsend.CheckToken(r, s.token); err != nil {
		return nil, err
	}
	body, err := httpsend.ReadReceipt(r)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var v any
	switch {
	case r.Method == http.MethodGet:
		v = flat(r.URL.Query())
	case r.Method != http.MethodPost:
		return nil, fmt.Errorf("%w: method %s", sender.ErrReceiptMalformed, r.Method)
	case httpsend.MediaType(r) == "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fmt.Errorf("%w: the form does not parse", sender.ErrReceiptMalformed)
		}
		v = flat(form)
	default:
		// JSON, whatever the Content-Type says (MSG91's new webhook
		// documents JSON only).
		if v, err = decode(body); err != nil {
			return nil, err
		}
	}
	var out []sender.Receipt
	if err := collect(v, "", now, &out, 0); err != nil {
		return nil, err
	}
	return out, nil
}

// flat turns form or query values into a JSON-like object, the token
// left out.
func flat(vs url.Values) map[string]any {
	m := make(map[string]any, len(vs))
	for k, v := range vs {
		if k != httpsend.TokenParam && len(v) > 0 {
			m[k] = v[0]
		}
	}
	return m
}

func decode(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: not JSON", sender.ErrReceiptMalformed)
	}
	return v, nil
}

// maxDepth bounds the nesting collect follows.
const maxDepth = 4

// collect appends the receipts of v, a report or a list of them; id is
// the requestId of an enclosing object.
func collect(v any, id string, now time.Time, out *[]sender.Receipt, depth int) error {
	if depth > maxDepth {
		return nil
	}
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			if err := collect(e, id, now, out, depth+1); err != nil {
				return err
			}
		}
	case map[string]any:
		if rid := text(v["requestId"]); rid != "" {
			id = rid
		}
		// Version 2: a JSON array inside the data field.
		if data, ok := v["data"].(string); ok && strings.HasPrefix(strings.TrimSpace(data), "[") {
			inner, err := decode([]byte(data))
			if err != nil {
				return err
			}
			return collect(inner, id, now, out, depth+1)
		}
		if report, ok := v["report"]; ok {
			return collect(report, id, now, out, depth+1)
		}
		if rc, ok := receipt(v, id, now); ok {
			*out = append(*out, rc)
		}
	}
	return nil
}

// receipt reads one report object.
func receipt(m map[string]any, id string, now time.Time) (sender.Receipt, bool) {
	status := text(m["status"])
	desc := text(m["desc"])
	if desc == "" {
		desc = text(m["description"])
	}
	if id == "" || status == "" && desc == "" {
		return sender.Receipt{}, false
	}
	rc := sender.Receipt{MessageID: id, Status: sender.StatusUnknown, Time: now, ProviderStatus: strings.TrimSpace(status + " " + desc)}
	if st, ok := codes[status]; ok {
		rc.Status = st
		if status != "1" {
			rc.ErrorCode = status
		}
	} else if st, ok := words[strings.ToLower(status)]; ok {
		rc.Status = st
	} else if st, ok := words[strings.ToLower(desc)]; ok {
		rc.Status = st
	}
	return rc, true
}

// text returns a JSON string or number as text.
func text(v any) string {
	switch v := v.(type) {
	case string:
		return strings.TrimSpace(v)
	case json.Number:
		return v.String()
	}
	return ""
}
