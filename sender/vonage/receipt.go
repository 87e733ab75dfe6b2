package vonage

// Vonage's signed requests, and its SMS delivery receipts.

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/internal/httpsend"
)

// The signing methods of a Vonage account (dashboard, API settings).
const (
	// MD5Hash is the default: MD5 of the signed string followed by the
	// secret, in lower-case hex.
	MD5Hash = "md5hash"
	// HMACMD5, HMACSHA1, HMACSHA256 and HMACSHA512 are HMACs of the
	// signed string keyed by the secret, in upper-case hex.
	HMACMD5    = "md5"
	HMACSHA1   = "sha1"
	HMACSHA256 = "sha256"
	HMACSHA512 = "sha512"
)

var hmacs = map[string]func() hash.Hash{
	HMACMD5: md5.New, HMACSHA1: sha1.New, HMACSHA256: sha256.New, HMACSHA512: sha512.New,
}

func validMethod(m string) bool { return m == "" || m == MD5Hash || hmacs[m] != nil }

// SignatureTolerance is how far a signed request's timestamp may be
// from the clock, either way: Vonage's SDKs refuse receipts signed more
// than five minutes ago.
const SignatureTolerance = 5 * time.Minute

// Sign returns Vonage's signature of params with secret by method, as
// Vonage's SDKs compute it: the parameters but sig, sorted by name,
// each written "&name=value" with every '&' and '=' in names and values
// replaced by '_'; then MD5 of that string and the secret (MD5Hash, lower
// case) or its HMAC keyed by the secret (upper case). Parameters with an
// empty value are written like the others (Vonage's PHP SDK); its Java
// SDK leaves them out, which VerifySignature accepts too.
func Sign(method, secret string, params map[string]string) string {
	return signParams(method, secret, params, false)
}

func signParams(method, secret string, params map[string]string, skipEmpty bool) string {
	names := make([]string, 0, len(params))
	for k, v := range params {
		if k == "sig" || skipEmpty && strings.TrimSpace(v) == "" {
			continue
		}
		names = append(names, k)
	}
	slices.Sort(names)
	clean := strings.NewReplacer("&", "_", "=", "_")
	var b strings.Builder
	for _, k := range names {
		b.WriteString("&")
		b.WriteString(clean.Replace(k))
		b.WriteString("=")
		b.WriteString(clean.Replace(params[k]))
	}
	if method == "" || method == MD5Hash {
		sum := md5.Sum([]byte(b.String() + secret))
		return hex.EncodeToString(sum[:])
	}
	newHash := hmacs[method]
	if newHash == nil {
		return ""
	}
	h := hmac.New(newHash, []byte(secret))
	h.Write([]byte(b.String()))
	return strings.ToUpper(hex.EncodeToString(h.Sum(nil)))
}

// VerifySignature checks the sig of params (whatever its case) with
// secret by method, with empty parameters signed or left out, and its
// timestamp within SignatureTolerance of now. The error wraps
// sender.ErrReceiptUnsigned or sender.ErrReceiptForged.
func VerifySignature(method, secret string, params map[string]string, now time.Time) error {
	sig := params["sig"]
	if sig == "" {
		return fmt.Errorf("%w: no sig", sender.ErrReceiptUnsigned)
	}
	ts, err := strconv.ParseInt(params["timestamp"], 10, 64)
	if err != nil {
		return fmt.Errorf("%w: no timestamp to the sig", sender.ErrReceiptForged)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > SignatureTolerance || d < -SignatureTolerance {
		return fmt.Errorf("%w: signed more than %v from now", sender.ErrReceiptForged, SignatureTolerance)
	}
	got := []byte(strings.ToLower(sig))
	for _, skip := range []bool{false, true} {
		want := []byte(strings.ToLower(signParams(method, secret, params, skip)))
		if hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("%w: sig", sender.ErrReceiptForged)
}

// dlrStatuses maps the status of a Vonage delivery receipt onto the
// normalized ones.
var dlrStatuses = map[string]sender.DeliveryStatus{
	"accepted":  sender.StatusSent, // accepted by the carrier
	"buffered":  sender.StatusSent, // held by the carrier for the handset
	"delivered": sender.StatusDelivered,
	"expired":   sender.StatusUndelivered,
	"failed":    sender.StatusFailed,
	"rejected":  sender.StatusFailed,
	"unknown":   sender.StatusUnknown,
}

// Receipts reports whether the sender takes delivery receipts: signed
// ones (it has the signature secret), or unsigned ones at a URL that
// carries its receipt token.
func (s *Sender) Receipts() bool { return s.sigSecret != "" || s.token != "" }

// ParseReceipt verifies a Vonage SMS delivery receipt and returns it.
//
// Vonage sends receipts to the message's callback (or the dashboard's
// delivery receipt URL) as a GET query, a POST form or a POST of JSON,
// as the account is set, with messageId, status (delivered, expired,
// failed, rejected, accepted, buffered, unknown), err-code, scts,
// client-ref, network-code, msisdn, to, price, api-key and
// message-timestamp. With a signature secret, the receipt must carry a
// sig over its parameters (see Sign) and a timestamp no more than five
// minutes off; a receipt of another api-key is forged. Without one, the
// receipt must carry the sender's receipt token in its URL. Carrier and
// handset receipts differ and not every network sends one. msisdn and to
// are not kept.
func (s *Sender) ParseReceipt(r *http.Request, _ string) ([]sender.Receipt, error) {
	if !s.Receipts() {
		return nil, fmt.Errorf("%w: vonage needs signature_secret or receipt_token", sender.ErrReceiptsOff)
	}
	if s.sigSecret == "" {
		// Unsigned receipts: the URL token, before anything is read.
		if err := httpsend.CheckToken(r, s.token); err != nil {
			return nil, err
		}
	}
	body, err := httpsend.ReadReceipt(r)
	if err != nil {
		return nil, err
	}
	params, err := httpsend.Params(r, body)
	if err != nil {
		return nil, err
	}
	if s.sigSecret != "" {
		if err := VerifySignature(s.sigMethod, s.sigSecret, params, s.now()); err != nil {
			return nil, err
		}
	}
	if key := params["api-key"]; key != "" && key != s.key {
		return nil, fmt.Errorf("%w: the receipt is another account's", sender.ErrReceiptForged)
	}
	id, status := params["messageId"], params["status"]
	if id == "" || status == "" {
		return nil, fmt.Errorf("%w: no messageId or status", sender.ErrReceiptMalformed)
	}
	rc := sender.Receipt{MessageID: id, ProviderStatus: status, Status: sender.StatusUnknown,
		Challenge: params["client-ref"], Time: receiptTime(params, s.now())}
	if st, ok := dlrStatuses[strings.ToLower(status)]; ok {
		rc.Status = st
	}
	if code := params["err-code"]; code != "" && code != "0" {
		rc.ErrorCode = code
	}
	return []sender.Receipt{rc}, nil
}

// receiptTime is when the carrier reported the status (scts,
// YYMMDDHHMM, UTC), else when Vonage sent the receipt
// (message-timestamp), else now.
func receiptTime(params map[string]string, now time.Time) time.Time {
	if t, err := time.Parse("0601021504", params["scts"]); err == nil {
		return t
	}
	if t, err := time.Parse(time.DateTime, params["message-timestamp"]); err == nil {
		return t
	}
	return now
}
