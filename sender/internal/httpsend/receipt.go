package httpsend

// What the providers' receipt parsers share: a bounded body, the
// parameters of a callback however it is encoded, the URL token of
// providers that sign nothing, and the URL a provider called.

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddy-stepup/caddy-stepup/sender"
)

// MaxReceiptBody is the largest receipt body read; providers send a few
// KiB at most (a WhatsApp webhook batches statuses).
const MaxReceiptBody = 256 << 10

// TokenParam is the query parameter that carries a receipt URL token,
// for providers that sign nothing (MSG91, Vonage without a signature
// secret): {receipt url}?stepup_token=TOKEN.
const TokenParam = "stepup_token"

// minToken is the shortest receipt token accepted.
const minToken = 20

// CheckTokenOption checks a receipt_token option: at least 20
// characters, each a letter, a digit, '-', '_', '.' or '~', so that it
// goes into a URL as written. The error never quotes the token.
func CheckTokenOption(kind, token string) error {
	if len(token) < minToken {
		return fmt.Errorf("%s sender: receipt_token must be at least %d characters long (use a random one: openssl rand -hex 16)", kind, minToken)
	}
	for i := 0; i < len(token); i++ {
		c := token[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~') {
			return fmt.Errorf("%s sender: receipt_token may hold only letters, digits, '-', '_', '.' and '~'", kind)
		}
	}
	return nil
}

// WithToken returns the receipt URL u with the token as TokenParam.
func WithToken(u, token string) string {
	return u + "?" + TokenParam + "=" + url.QueryEscape(token)
}

// CheckToken verifies the receipt URL token of r against token:
// ErrReceiptUnsigned when r has none, ErrReceiptForged when it differs.
// The comparison takes the same time whatever the tokens.
func CheckToken(r *http.Request, token string) error {
	got := r.URL.Query().Get(TokenParam)
	if got == "" {
		return fmt.Errorf("%w: no %s in the URL", sender.ErrReceiptUnsigned, TokenParam)
	}
	if !Equal(got, token) {
		return fmt.Errorf("%w: wrong %s", sender.ErrReceiptForged, TokenParam)
	}
	return nil
}

// Equal compares two secrets in constant time, their lengths included.
func Equal(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// ReadReceipt reads r's body, at most MaxReceiptBody bytes; a longer one
// is malformed.
func ReadReceipt(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, MaxReceiptBody+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the body failed", sender.ErrReceiptMalformed)
	}
	if len(b) > MaxReceiptBody {
		return nil, fmt.Errorf("%w: body over %d bytes", sender.ErrReceiptMalformed, MaxReceiptBody)
	}
	return b, nil
}

// MediaType returns r's Content-Type without its parameters, in lower
// case.
func MediaType(r *http.Request) string {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return mt
}

// Params returns the parameters of a callback that may come as a GET
// query, a POST form or a POST of a flat JSON object (Vonage's delivery
// receipts come in all three, as the account is set): the query for a
// GET, the body for a POST. JSON numbers and booleans become their text;
// a name given twice is malformed (a signature covers one value).
// TokenParam is left out.
func Params(r *http.Request, body []byte) (map[string]string, error) {
	out := map[string]string{}
	add := func(vs url.Values) error {
		for k, v := range vs {
			if k == TokenParam {
				continue
			}
			if len(v) != 1 {
				return fmt.Errorf("%w: parameter given %d times", sender.ErrReceiptMalformed, len(v))
			}
			out[k] = v[0]
		}
		return nil
	}
	switch r.Method {
	case http.MethodGet:
		return out, add(r.URL.Query())
	case http.MethodPost:
	default:
		return nil, fmt.Errorf("%w: method %s", sender.ErrReceiptMalformed, r.Method)
	}
	switch MediaType(r) {
	case "application/x-www-form-urlencoded":
		vs, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fmt.Errorf("%w: form body does not parse", sender.ErrReceiptMalformed)
		}
		return out, add(vs)
	case "application/json":
		return FlatJSON(body)
	}
	return nil, fmt.Errorf("%w: content type not a form or JSON", sender.ErrReceiptMalformed)
}

// FlatJSON reads a JSON object whose values are strings, numbers,
// booleans or null (as text; null as ""). Nested values are malformed.
func FlatJSON(body []byte) (map[string]string, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
		return nil, fmt.Errorf("%w: not a JSON object", sender.ErrReceiptMalformed)
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		s, ok := Scalar(v)
		if !ok {
			return nil, fmt.Errorf("%w: a JSON value is not a string or a number", sender.ErrReceiptMalformed)
		}
		out[k] = s
	}
	return out, nil
}

// Scalar returns a JSON string, number or boolean as text, null as "",
// and false for an object or an array.
func Scalar(v json.RawMessage) (string, bool) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "", false
	}
	switch v[0] {
	case '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", false
		}
		return s, true
	case '{', '[':
		return "", false
	}
	if string(v) == "null" {
		return "", true
	}
	return string(v), true
}

// CallURL returns the URL the provider called with r: publicURL (the
// receipt URL the provider was given, without a query) followed by r's
// query, or, when publicURL is empty, the URL r arrived at (https when
// it came over TLS, its Host, its path and query).
func CallURL(r *http.Request, publicURL string) string {
	u := publicURL
	if u == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		u = scheme + "://" + r.Host + r.URL.EscapedPath()
	} else if i := strings.IndexByte(u, '?'); i >= 0 {
		u = u[:i]
	}
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	return u
}
