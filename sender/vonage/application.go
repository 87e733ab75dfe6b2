package vonage

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/internal/httpsend"
)

// DefaultAPIEndpoint is Vonage's production API of the Voice and
// Messages APIs.
const DefaultAPIEndpoint = "https://api.nexmo.com"

// tokenLifetime is how long an application JWT is valid. Each Send
// signs its own, used by its attempts only.
const tokenLifetime = 5 * time.Minute

// minKeyBits is the smallest RSA key accepted.
const minKeyBits = 2048

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Application is a Vonage application's credentials, with which the
// Voice and Messages APIs are called: its ID, and the private key of the
// public key Vonage holds, in PEM (PKCS #8, as the Vonage dashboard
// makes it, or PKCS #1). Its fields are options of the vonage_voice and
// vonage_rcs senders.
type Application struct {
	// ApplicationID is the application's ID, a UUID.
	ApplicationID string `json:"application_id,omitempty" placeholder:"required"`
	// PrivateKey is the private key in PEM, usually a placeholder:
	// {file./etc/caddy/vonage.key} or {env.VONAGE_PRIVATE_KEY} (where
	// "\n" may stand for the line breaks). Set it or PrivateKeyFile.
	PrivateKey string `json:"private_key,omitempty" placeholder:"required"`
	// PrivateKeyFile is the path of a file holding the private key in
	// PEM, read when the sender is built.
	PrivateKeyFile string `json:"private_key_file,omitempty" placeholder:"required"`
}

// configured reports whether any field is set.
func (a *Application) configured() bool {
	return a.ApplicationID != "" || a.PrivateKey != "" || a.PrivateKeyFile != ""
}

// validate checks the application as written: an ID and one key.
func (a *Application) validate(kind string) error {
	switch {
	case a.ApplicationID == "":
		return errors.New(kind + " sender: needs application_id")
	case a.PrivateKey != "" && a.PrivateKeyFile != "":
		return errors.New(kind + " sender: set private_key or private_key_file, not both")
	case a.PrivateKey == "" && a.PrivateKeyFile == "":
		return errors.New(kind + " sender: needs the application's private key: private_key or private_key_file")
	}
	return nil
}

// tokens returns what signs the application's JWTs, once the ID has the
// form of a UUID and the key reads. Errors never quote the key.
func (a *Application) tokens(kind string) (*tokenSigner, error) {
	if !uuidRE.MatchString(a.ApplicationID) {
		return nil, errors.New(kind + " sender: application_id must be an application ID (a UUID)")
	}
	pemText := []byte(a.PrivateKey)
	if a.PrivateKeyFile != "" {
		b, err := os.ReadFile(a.PrivateKeyFile)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fmt.Errorf("%s sender: reading private_key_file: %v", kind, err)
		}
		pemText = b
	}
	key, err := parsePrivateKey(pemText)
	if err != nil {
		return nil, fmt.Errorf("%s sender: private key: %v", kind, err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("%s sender: private key: %v", kind, err)
	}
	return &tokenSigner{id: a.ApplicationID, signer: signer, now: time.Now}, nil
}

// parsePrivateKey reads an RSA private key of at least minKeyBits from
// PEM. An environment variable may hold the PEM with "\n" for its line
// breaks.
func parsePrivateKey(b []byte) (*rsa.PrivateKey, error) {
	if !bytes.Contains(b, []byte("\n")) && bytes.Contains(b, []byte(`\n`)) {
		b = bytes.ReplaceAll(b, []byte(`\n`), []byte("\n"))
	}
	block, _ := pem.Decode(bytes.TrimSpace(b))
	if block == nil {
		return nil, errors.New("not PEM (want -----BEGIN PRIVATE KEY-----)")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("a PEM block of type %q, want PRIVATE KEY", block.Type)
	}
	if err != nil {
		return nil, errors.New("the PEM block does not hold a readable private key")
	}
	rsaKey, ok := key.(*rsa.PrivateKey)
	switch {
	case !ok:
		return nil, fmt.Errorf("a %T, want an RSA key (RS256)", key)
	case rsaKey.N.BitLen() < minKeyBits:
		return nil, fmt.Errorf("an RSA key of %d bits, want at least %d", rsaKey.N.BitLen(), minKeyBits)
	}
	return rsaKey, nil
}

// tokenSigner signs application JWTs (RS256).
type tokenSigner struct {
	id     string
	signer jose.Signer
	now    func() time.Time
}

// appClaims are the claims Vonage reads beside the registered ones.
type appClaims struct {
	ApplicationID string `json:"application_id"`
}

// token returns a fresh JWT: application_id, iat, jti and exp, valid for
// tokenLifetime.
func (s *tokenSigner) token() (string, error) {
	now := s.now()
	return jwt.Signed(s.signer).
		Claims(appClaims{ApplicationID: s.id}).
		Claims(jwt.Claims{
			IssuedAt: jwt.NewNumericDate(now),
			Expiry:   jwt.NewNumericDate(now.Add(tokenLifetime)),
			ID:       rand.Text(),
		}).
		Serialize()
}

// bearer returns a function that sets the Authorization header of each
// attempt to token, or an error, the sender's, when no token could be
// signed.
func (s *tokenSigner) bearer(name string) (func(http.Header), *sender.Error) {
	tok, err := s.token()
	if err != nil {
		return nil, &sender.Error{Sender: name, Msg: "signing the application token failed", Err: err}
	}
	return func(h http.Header) { h.Set("Authorization", "Bearer "+tok) }, nil
}

// problem is the body of a Voice or Messages API error (RFC 7807).
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
}

// problemCodeRE matches the codes of Vonage errors: a word, or a number
// of at most four digits (a longer one might be a number or a code).
var problemCodeRE = regexp.MustCompile(`^([0-9]{1,4}|[A-Za-z][A-Za-z0-9_-]{0,39})$`)

// code returns the error's code: the fragment of its type URL
// (".../messages#1150" gives "1150", ".../api-errors#unauthorized" gives
// "unauthorized"), or "" when it has none of a sane form.
func (p *problem) code() string {
	_, frag, ok := strings.Cut(p.Type, "#")
	if !ok || !problemCodeRE.MatchString(frag) {
		return ""
	}
	return frag
}

// text returns the title and the detail, for WithText.
func (p *problem) text() string {
	switch {
	case p.Title == "":
		return p.Detail
	case p.Detail == "" || p.Detail == p.Title:
		return p.Title
	}
	return p.Title + ": " + p.Detail
}

// parseProblem turns an answer of the Voice or Messages API into an
// outcome: a 2xx is accepted; 408, 429, 5xx and the retry codes are
// retried; the recipient codes concern the destination. what names the
// thing refused ("the call").
func parseProblem(name, what string, resp *httpsend.Response, retryCodes, recipientCodes map[string]bool) httpsend.Outcome {
	if resp.Status >= 200 && resp.Status <= 299 {
		return httpsend.Outcome{}
	}
	var p problem
	_ = json.Unmarshal(resp.Body, &p)
	se := &sender.Error{Sender: name, Status: resp.Status, Code: p.code(), Msg: httpsend.WithText("Vonage refused "+what, p.text())}
	switch {
	case resp.Status == http.StatusTooManyRequests || retryCodes[se.Code]:
		se.Msg = httpsend.WithText("Vonage is throttling", p.text())
		return resp.Retry(se)
	case httpsend.Retryable(resp.Status):
		se.Msg = httpsend.WithText("Vonage failed", p.text())
		return resp.Retry(se)
	case resp.Status >= 300 && resp.Status <= 399:
		se.Msg = "Vonage answered with a redirect, which is not followed"
	case recipientCodes[se.Code]:
		se.Recipient = true
	}
	return httpsend.Failed(se, false)
}
