package vonage

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/caddy-stepup/caddy-stepup/sender/internal/httpsend"
)

const appID = "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab"

// testKey is an RSA key made once for the package's tests, and its PEM
// (PKCS #8, as the Vonage dashboard makes it).
var testKey = sync.OnceValues(func() (*rsa.PrivateKey, string) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(err)
	}
	return key, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
})

func testPEM() string {
	_, p := testKey()
	return p
}

// checkJWT verifies an Authorization header as Vonage would: a Bearer
// JWT signed RS256 by the application's key, with application_id, iat,
// jti and exp. It returns the jti.
func checkJWT(t *testing.T, header string) string {
	t.Helper()
	tok, ok := strings.CutPrefix(header, "Bearer ")
	if !ok {
		t.Fatalf("Authorization %q is not a Bearer token", header)
	}
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("JWT: %v", err)
	}
	if typ := parsed.Headers[0].ExtraHeaders[jose.HeaderType]; typ != "JWT" {
		t.Errorf("JWT typ %v", typ)
	}
	key, _ := testKey()
	var std jwt.Claims
	var app struct {
		ApplicationID string `json:"application_id"`
	}
	if err := parsed.Claims(&key.PublicKey, &std, &app); err != nil {
		t.Fatalf("JWT signature: %v", err)
	}
	if app.ApplicationID != appID {
		t.Errorf("application_id %q, want %q", app.ApplicationID, appID)
	}
	if std.IssuedAt == nil || std.Expiry == nil || std.ID == "" {
		t.Fatalf("claims %+v: want iat, exp and jti", std)
	}
	iat := std.IssuedAt.Time()
	if time.Since(iat) > time.Minute || time.Until(iat) > time.Second {
		t.Errorf("iat %v is not now", iat)
	}
	if d := std.Expiry.Time().Sub(iat); d != tokenLifetime {
		t.Errorf("exp is %v after iat, want %v", d, tokenLifetime)
	}
	if err := std.Validate(jwt.Expected{Time: time.Now()}); err != nil {
		t.Errorf("claims: %v", err)
	}
	return std.ID
}

func TestParsePrivateKey(t *testing.T) {
	key, pkcs8 := testKey()
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallDER, _ := x509.MarshalPKCS8PrivateKey(small)
	for name, in := range map[string]string{
		"PKCS #8":             pkcs8,
		"PKCS #1":             pkcs1,
		"escaped line breaks": strings.ReplaceAll(strings.TrimSpace(pkcs8), "\n", `\n`),
		"spaces around":       "\n  " + pkcs8 + "\n\n",
	} {
		got, err := parsePrivateKey([]byte(in))
		if err != nil || !got.Equal(key) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, tt := range map[string]struct{ in, want string }{
		"empty":       {"", "not PEM"},
		"not PEM":     {"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "not PEM"},
		"public key":  {string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}})), `"PUBLIC KEY"`},
		"garbage DER": {string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("secret-bytes")})), "readable"},
		"EC key":      {string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})), "RSA"},
		"1024 bits":   {string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: smallDER})), "at least 2048"},
	} {
		_, err := parsePrivateKey([]byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", name, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "MII") {
			t.Errorf("%s: error %q quotes the key", name, err)
		}
	}
}

func TestApplicationTokens(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "private.key")
	if err := os.WriteFile(keyFile, []byte(testPEM()), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, app := range map[string]Application{
		"inline": {ApplicationID: appID, PrivateKey: testPEM()},
		"file":   {ApplicationID: appID, PrivateKeyFile: keyFile},
	} {
		s, err := app.tokens("vonage_voice")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		set, serr := s.bearer("vonage_voice")
		if serr != nil {
			t.Fatal(serr)
		}
		h := http.Header{}
		set(h)
		first := checkJWT(t, h.Get("Authorization"))
		set, _ = s.bearer("vonage_voice")
		set(h)
		if second := checkJWT(t, h.Get("Authorization")); second == first {
			t.Errorf("%s: two tokens with the jti %q", name, first)
		}
	}
	for name, tt := range map[string]struct {
		app  Application
		want string
	}{
		"not a UUID":   {Application{ApplicationID: "my-app", PrivateKey: testPEM()}, "UUID"},
		"missing file": {Application{ApplicationID: appID, PrivateKeyFile: filepath.Join(dir, "nope.key")}, "reading private_key_file: no such file"},
		"bad key":      {Application{ApplicationID: appID, PrivateKey: "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----"}, "private key"},
	} {
		_, err := tt.app.tokens("vonage_voice")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", name, err, tt.want)
		}
		if err != nil && (strings.Contains(err.Error(), "c2VjcmV0") || strings.Contains(err.Error(), dir)) {
			t.Errorf("%s: error %q quotes the key or its path", name, err)
		}
	}
}

func TestParseProblem(t *testing.T) {
	for _, tt := range []struct {
		status        int
		body          string
		wantCode      string
		wantRetry     bool
		wantRecipient bool
		wantText      string
	}{
		{201, `{"uuid":"x"}`, "", false, false, ""},
		{401, `{"type":"https://developer.nexmo.com/api-errors#unauthorized","title":"Unauthorized","detail":"You did not provide correct credentials.","instance":"797a8f199c45014ab7b08bfe9cc1c12c"}`, "unauthorized", false, false, "Vonage refused the call: Unauthorized: You did not provide correct credentials."},
		{403, `{"type":"https://developer.nexmo.com/api-errors/#low-balance","title":"Low balance","detail":"This request could not be performed due to your account balance being low.","instance":"bf0c"}`, "low-balance", false, false, "Low balance"},
		{429, `{"type":"https://developer.vonage.com/api-errors#throttled","title":"Rate Limit Hit","detail":"Please wait, then retry your request","instance":"bf0c"}`, "throttled", true, false, "Vonage is throttling: Rate Limit Hit"},
		{422, `{"type":"https://developer.vonage.com/api-errors/messages#1000","title":"Throttled","detail":"You have exceeded the submission capacity allowed on this account.","instance":"bf0c"}`, "1000", true, false, "throttling"},
		{422, `{"type":"https://developer.vonage.com/api-errors/messages#1050","title":"Number barred","detail":"The number 447700900000 is barred.","instance":"bf0c"}`, "1050", false, true, "The number *** is barred."},
		{500, `{"type":"https://developer.nexmo.com/api-errors#internal","title":"Internal Error"}`, "internal", true, false, "Vonage failed: Internal Error"},
		{502, `<html>Bad gateway</html>`, "", true, false, "Vonage failed"},
		{400, `{"type":"https://x.example/errors#not a code","title":"Bad Request","detail":"Bad Request"}`, "", false, false, "Vonage refused the call: Bad Request"},
		{302, ``, "", false, false, "redirect"},
	} {
		o := parseProblem("vonage_voice", "the call", &httpsend.Response{Status: tt.status, Header: http.Header{}, Body: []byte(tt.body)},
			messagesRetryCodes, messagesRecipientCodes)
		if tt.status < 300 {
			if o.Err != nil {
				t.Errorf("status %d: %v", tt.status, o.Err)
			}
			continue
		}
		if o.Err == nil {
			t.Fatalf("status %d: accepted", tt.status)
		}
		if o.Err.Code != tt.wantCode || o.Retry != tt.wantRetry || o.Err.Temporary != tt.wantRetry ||
			o.Err.Recipient != tt.wantRecipient || !strings.Contains(o.Err.Msg, tt.wantText) || o.Err.Status != tt.status {
			t.Errorf("status %d %s: outcome %+v %+v", tt.status, tt.body, o, *o.Err)
		}
	}
}

func FuzzParseProblem(f *testing.F) {
	f.Add(401, []byte(`{"type":"https://developer.nexmo.com/api-errors#unauthorized","title":"Unauthorized"}`))
	f.Add(422, []byte(`{"type":"a#1050","detail":"The number +14155550100 is barred, code 493817"}`))
	f.Add(202, []byte(`{"message_uuid":"x"}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 999 {
			return
		}
		o := parseProblem("vonage_rcs", "the message", &httpsend.Response{Status: status, Header: http.Header{}, Body: body},
			messagesRetryCodes, messagesRecipientCodes)
		if (status >= 200 && status <= 299) != (o.Err == nil) {
			t.Fatalf("status %d: outcome %+v", status, o)
		}
		if o.Err != nil && (strings.Contains(o.Err.Msg, "493817") || strings.Contains(o.Err.Msg, "4155550100") ||
			strings.Contains(o.Err.Code, "493817")) {
			t.Errorf("error %+v leaks", *o.Err)
		}
	})
}
