package stepup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"go.uber.org/zap"

	"github.com/caddy-stepup/caddy-stepup/stepup/page"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// Passkeys (WebAuthn) as a step-up method beside the code: enrolled after
// a verification by code, offered first where a policy prefers them, and
// in transaction mode bound to the very request being approved. A
// passkey's assertion is one more input to the verification core
// (verify.go): the same attempt cap, failure budget and lockout, the
// same grants.

// The step-up methods a policy may offer (Policy.Methods).
const (
	MethodSMS     = "sms"
	MethodPasskey = "passkey"
)

// Passkeys configures WebAuthn (docs/PASSKEYS.md). It is needed as soon
// as a policy offers the passkey method.
type Passkeys struct {
	// RPID is the WebAuthn relying party id: the site's registrable
	// host name ("shop.example.com" or "example.com"). It comes from
	// configuration, never from a request's Host header.
	RPID string `json:"rp_id,omitempty"`
	// RPName is the name authenticators show; default: the site name,
	// else the RP ID.
	RPName string `json:"rp_name,omitempty"`
	// Origins are the origins assertions may come from
	// ("https://shop.example.com"); default: https:// and the RP ID.
	Origins []string `json:"origins,omitempty"`
	// Attestation is the attestation conveyance asked at enrolment:
	// none (default), indirect or direct.
	Attestation string `json:"attestation,omitempty"`
	// MaxPerUser bounds the passkeys one user may enrol (default 10).
	MaxPerUser int `json:"max_per_user,omitempty"`
	// ManageWindow is how fresh a step-up must be to list, rename or
	// remove passkeys at {path_prefix}/passkeys (default 5m).
	ManageWindow time.Duration `json:"manage_window,omitempty"`
}

// Defaults and bounds of Passkeys.
const (
	DefaultMaxPasskeys  = 10
	DefaultManageWindow = 5 * time.Minute
)

// Bounds of the passkey options.
var (
	MaxPasskeysBound  = Bound[int]{"max_per_user", 1, 50}
	ManageWindowBound = Bound[time.Duration]{"manage_window", time.Minute, time.Hour}
)

// on reports whether passkeys are configured.
func (p *Passkeys) on() bool { return p.RPID != "" }

// setDefaults fills and checks the passkey options; site names the RP
// by default.
func (p *Passkeys) setDefaults(site string) error {
	if !p.on() {
		if len(p.Origins) > 0 || p.RPName != "" || p.Attestation != "" || p.MaxPerUser != 0 || p.ManageWindow != 0 {
			return errors.New("passkeys: rp_id is required")
		}
		return nil
	}
	if !validDomain(p.RPID) {
		return fmt.Errorf("passkeys rp_id %q: want a host name such as shop.example.com (no scheme, no port)", p.RPID)
	}
	if p.RPName == "" {
		p.RPName = firstNonEmpty(site, p.RPID)
	}
	if len(p.Origins) == 0 {
		p.Origins = []string{"https://" + p.RPID}
	}
	for i, o := range p.Origins {
		norm, err := checkOrigin(o, p.RPID)
		if err != nil {
			return err
		}
		p.Origins[i] = norm
	}
	switch p.Attestation {
	case "":
		p.Attestation = "none"
	case "none", "indirect", "direct":
	default:
		return fmt.Errorf("passkeys attestation %q: want none, indirect or direct", p.Attestation)
	}
	setInt(&p.MaxPerUser, DefaultMaxPasskeys)
	setDuration(&p.ManageWindow, DefaultManageWindow)
	if err := MaxPasskeysBound.Check(p.MaxPerUser); err != nil {
		return fmt.Errorf("passkeys %v", err)
	}
	if err := ManageWindowBound.Check(p.ManageWindow); err != nil {
		return fmt.Errorf("passkeys %v", err)
	}
	return nil
}

// checkOrigin checks an allowed origin: https (http only for localhost),
// a host that is the RP ID or under it, no path. It returns the origin
// in lower case.
func checkOrigin(o, rpID string) (string, error) {
	bad := fmt.Errorf("passkeys origin %q: want https://HOST[:PORT] where HOST is %s or a subdomain of it (http only for localhost)", o, rpID)
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", bad
	}
	host := strings.ToLower(u.Hostname())
	switch strings.ToLower(u.Scheme) {
	case "https":
	case "http":
		if host != "localhost" {
			return "", bad
		}
	default:
		return "", bad
	}
	if host != rpID && !strings.HasSuffix(host, "."+rpID) {
		return "", bad
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host), nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// checkMethods checks a policy's methods: known, each once, SMS among
// them (the enrolment and the fallback). Empty means SMS alone.
func checkMethods(ms []string) error {
	seen := map[string]bool{}
	for _, m := range ms {
		switch m {
		case MethodSMS, MethodPasskey:
		default:
			return fmt.Errorf("unknown method %q (want passkey or sms)", m)
		}
		if seen[m] {
			return fmt.Errorf("method %s named twice", m)
		}
		seen[m] = true
	}
	if len(ms) > 0 && !seen[MethodSMS] {
		return errors.New("methods must include sms: passkeys are enrolled after a code, and a code is the way back when a device is lost")
	}
	return nil
}

// offers reports whether p offers method m.
func (p *Policy) offers(m string) bool {
	if m == MethodSMS && len(p.Methods) == 0 {
		return true
	}
	return slices.Contains(p.Methods, m)
}

// passkeyFirst reports whether p prefers passkeys to codes.
func (p *Policy) passkeyFirst() bool { return len(p.Methods) > 0 && p.Methods[0] == MethodPasskey }

// newWebAuthn makes the relying party of cfg.
func newWebAuthn(cfg *Passkeys) (*webauthn.WebAuthn, error) {
	return webauthn.New(&webauthn.Config{
		RPID:                  cfg.RPID,
		RPDisplayName:         cfg.RPName,
		RPOrigins:             cfg.Origins,
		AttestationPreference: protocol.ConveyancePreference(cfg.Attestation),
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: protocol.VerificationRequired,
		},
	})
}

// passkeyOwner is where a user's passkeys are kept in the store: a keyed
// hash of the user id, under the current secret or, during a rotation,
// the previous one they were enrolled under.
type passkeyOwner struct {
	key  string
	keys []store.Passkey
}

// passkeysOf reads user's passkeys: under the current secret's key, else
// under a previous secret's (enrolled before a rotation). None when
// passkeys are off.
func (e *Engine) passkeysOf(ctx context.Context, user string) (passkeyOwner, error) {
	cur := passkeyOwner{key: e.keys.short("passkeys", user)}
	if e.passkeys == nil {
		return cur, nil
	}
	for i, k := range e.all {
		key := k.short("passkeys", user)
		ps, err := e.passkeys.Passkeys(ctx, key)
		if err != nil {
			return cur, err
		}
		if len(ps) > 0 || i == len(e.all)-1 {
			if len(ps) == 0 {
				return cur, nil
			}
			return passkeyOwner{key: key, keys: ps}, nil
		}
	}
	return cur, nil
}

// passkeyChallenge is the WebAuthn challenge of attempt n (the attempts
// made before it) of challenge c: a MAC of the challenge id, its
// transaction hash and n. The attempt counter is the single-use nonce:
// the store spends it atomically (BeginAttempt) before an assertion is
// checked, so an assertion verifies at most once, and only for this
// challenge and this very transaction.
func (k *keys) passkeyChallenge(c *store.Challenge, n int) []byte {
	return mac(k.passkey, "assert", c.ID, string(c.TxHash), strconv.Itoa(n))
}

// enrolChallenge is the WebAuthn challenge of an enrolment offered after
// challenge c was verified.
func (k *keys) enrolChallenge(c *store.Challenge) []byte {
	return mac(k.passkey, "enrol", c.ID, strconv.FormatInt(c.Used.UnixMilli(), 10))
}

// requestOptions are the WebAuthn request options (the JSON form of
// PublicKeyCredentialRequestOptions) a page or API client passes to
// navigator.credentials.get.
type requestOptions struct {
	Challenge        protocol.URLEncodedBase64 `json:"challenge"`
	RPID             string                    `json:"rpId"`
	AllowCredentials []credentialDescriptor    `json:"allowCredentials"`
	UserVerification string                    `json:"userVerification"`
	Timeout          int                       `json:"timeout"`
}

type credentialDescriptor struct {
	Type       string                    `json:"type"`
	ID         protocol.URLEncodedBase64 `json:"id"`
	Transports []string                  `json:"transports,omitempty"`
}

func descriptors(ps []store.Passkey) []credentialDescriptor {
	out := make([]credentialDescriptor, 0, len(ps))
	for _, p := range ps {
		out = append(out, credentialDescriptor{Type: "public-key", ID: p.ID, Transports: p.Transports})
	}
	return out
}

// assertOptions are the request options for b's challenge as it stands
// (its attempts so far), for the user's passkeys.
func (e *Engine) assertOptions(b *bound, ps []store.Passkey) *requestOptions {
	timeout := max(b.c.Expires.Sub(e.now()), time.Second)
	return &requestOptions{
		Challenge:        b.k.passkeyChallenge(b.c, b.c.Attempts),
		RPID:             e.cfg.Passkeys.RPID,
		AllowCredentials: descriptors(ps),
		UserVerification: string(protocol.VerificationRequired),
		Timeout:          int(timeout / time.Millisecond),
	}
}

// passkeyUser is a user as go-webauthn sees it, with the passkeys the
// check may use.
type passkeyUser struct {
	handle []byte
	name   string
	creds  []webauthn.Credential
}

func (u *passkeyUser) WebAuthnID() []byte                         { return u.handle }
func (u *passkeyUser) WebAuthnName() string                       { return u.name }
func (u *passkeyUser) WebAuthnDisplayName() string                { return u.name }
func (u *passkeyUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

func credentialOf(p store.Passkey) webauthn.Credential {
	return webauthn.Credential{
		ID:        p.ID,
		PublicKey: p.PublicKey,
		Transport: transports(p.Transports),
		Flags:     webauthn.CredentialFlags{BackupEligible: p.BackupEligible, UserVerified: true, UserPresent: true},
		Authenticator: webauthn.Authenticator{
			AAGUID:    p.AAGUID,
			SignCount: p.SignCount,
		},
		AttestationType: "none",
	}
}

func transports(ts []string) []protocol.AuthenticatorTransport {
	out := make([]protocol.AuthenticatorTransport, 0, len(ts))
	for _, t := range ts {
		out = append(out, protocol.AuthenticatorTransport(t))
	}
	return out
}

// maxAssertionBytes bounds an assertion as posted (JSON).
const maxAssertionBytes = 4 << 10

// passkeyProof is a passkey's assertion offered to open a challenge.
type passkeyProof struct {
	raw    []byte
	parsed *protocol.ParsedCredentialAssertionData
	owner  passkeyOwner // the user's passkeys, read by parse
}

func (*passkeyProof) method() string { return MethodPasskey }

// parse reads the assertion; nothing is spent on one that cannot be
// read, where the challenge's policy offers no passkey, or where the
// user has none (their challenge asked for a code only).
func (pp *passkeyProof) parse(ctx context.Context, e *Engine, b *bound) (outcome, error) {
	if e.wa == nil || b.p == nil || !b.p.offers(MethodPasskey) || b.c.Decoy() || len(pp.raw) > maxAssertionBytes {
		return badAssertion, nil
	}
	parsed, err := parseAssertion(pp.raw)
	if err != nil {
		return badAssertion, nil
	}
	owner, err := e.passkeysOf(ctx, b.id.User)
	if err != nil {
		return 0, err
	}
	if len(owner.keys) == 0 {
		return badAssertion, nil
	}
	pp.parsed, pp.owner = parsed, owner
	return verified, nil
}

// parseAssertion parses an assertion (PublicKeyCredential JSON) without
// checking it. It never panics (FuzzParseAssertion).
func parseAssertion(raw []byte) (*protocol.ParsedCredentialAssertionData, error) {
	if len(raw) == 0 || len(raw) > maxAssertionBytes || !json.Valid(raw) {
		return nil, errors.New("not an assertion")
	}
	return protocol.ParseCredentialRequestResponseBytes(raw)
}

// matches checks the assertion against attempt n of b's challenge (n
// counts this attempt): the credential is one of the user's, the
// signature, the origin, the RP ID hash, user presence and verification,
// and the challenge derived from the challenge, its transaction and the
// nonce this attempt spent; then the signature counter must move on
// (atomically, in the store).
func (pp *passkeyProof) matches(ctx context.Context, e *Engine, b *bound, _ []byte, n int) (bool, error) {
	owner := pp.owner
	var cred *store.Passkey
	for i := range owner.keys {
		if bytes.Equal(owner.keys[i].ID, pp.parsed.RawID) {
			cred = &owner.keys[i]
		}
	}
	if cred == nil {
		e.log.Info("passkey assertion for an unknown credential", zap.String("policy", b.c.Policy), zap.String("credential", shortID(pp.parsed.RawID)))
		return false, nil
	}
	user := &passkeyUser{handle: cred.UserHandle, name: b.id.User, creds: []webauthn.Credential{credentialOf(*cred)}}
	session := webauthn.SessionData{
		Challenge:            protocol.URLEncodedBase64(b.k.passkeyChallenge(b.c, n-1)).String(),
		RelyingPartyID:       e.cfg.Passkeys.RPID,
		UserID:               cred.UserHandle,
		AllowedCredentialIDs: [][]byte{cred.ID},
		UserVerification:     protocol.VerificationRequired,
	}
	if _, err := e.wa.ValidateLogin(user, session, pp.parsed); err != nil {
		e.log.Info("passkey assertion refused", zap.String("policy", b.c.Policy), zap.String("credential", shortID(cred.ID)), zap.String("reason", assertionReason(err)))
		return false, nil
	}
	counter := pp.parsed.Response.AuthenticatorData.Counter
	switch err := e.passkeys.UsePasskey(ctx, owner.key, cred.ID, counter, e.now()); {
	case errors.Is(err, store.ErrSignCount):
		// A cloned authenticator, or an assertion replayed: refused.
		e.log.Warn("passkey signature counter did not increase", zap.String("policy", b.c.Policy),
			zap.String("credential", shortID(cred.ID)), zap.Uint32("counter", counter), zap.Uint32("stored", cred.SignCount))
		return false, nil
	case errors.Is(err, store.ErrPasskeyNotFound):
		return false, nil // removed meanwhile
	case err != nil:
		return false, err
	}
	return true, nil
}

// assertionReason is why go-webauthn refused an assertion, for the log
// (its words name no secret).
func assertionReason(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return truncateString(pe.Details, 120)
	}
	return truncateString(err.Error(), 120)
}

func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// shortID names a credential in logs by the start of its id only.
func shortID(id []byte) string {
	s := b64.EncodeToString(id)
	if len(s) > 8 {
		s = s[:8] + "…"
	}
	return s
}

// ManagePolicy names the built-in policy that guards the passkeys page:
// a session-mode step-up for Passkeys.ManageWindow.
const ManagePolicy = "passkeys"

// setupPasskeys makes the relying party when passkeys are configured and
// checks that what the policies ask of them can be given.
func (e *Engine) setupPasskeys(policies []*Policy) error {
	var wanted []string
	for _, p := range policies {
		if p.offers(MethodPasskey) {
			wanted = append(wanted, p.Name)
		}
	}
	cfg := &e.cfg.Passkeys
	if !cfg.on() {
		if len(wanted) > 0 {
			return fmt.Errorf("policy %s offers passkeys: configure passkeys { rp_id ... }", wanted[0])
		}
		return nil
	}
	ps, ok := e.store.(store.PasskeyStore)
	if !ok {
		return errors.New("passkeys need a store that keeps them (memory or redis)")
	}
	if e.fromRequest {
		return errors.New("passkeys cannot be used with an identity taken from the request (identity request): anyone can name any account there")
	}
	if _, dup := e.policies[ManagePolicy]; dup {
		return fmt.Errorf("policy name %q is reserved for the passkeys page when passkeys are configured", ManagePolicy)
	}
	wa, err := newWebAuthn(cfg)
	if err != nil {
		return fmt.Errorf("passkeys: %v", err)
	}
	e.wa, e.passkeys = wa, ps
	e.manage = &Policy{Name: ManagePolicy, Mode: Session, GrantTTL: cfg.ManageWindow, Methods: []string{MethodPasskey, MethodSMS}}
	if err := e.manage.Validate(); err != nil {
		return err
	}
	e.policies[ManagePolicy] = e.manage
	return nil
}

// methodsOf are p's methods, preferred first ("sms" when none are set).
func methodsOf(p *Policy) []string {
	if len(p.Methods) == 0 {
		return []string{MethodSMS}
	}
	return append([]string(nil), p.Methods...)
}

// offerPasskeyOn adds the passkey to the page of b's live challenge,
// when its policy offers one and the user has one: the request options
// for navigator.credentials.get, bound to this challenge, its
// transaction and its next attempt. A store that cannot say leaves the
// page to the code.
func (e *Engine) offerPasskeyOn(r *http.Request, b *bound, d *page.Challenge) {
	if e.wa == nil || b.p == nil || !b.p.offers(MethodPasskey) || b.c.Decoy() || b.c.Hidden || e.fromRequest {
		return
	}
	owner, err := e.passkeysOf(r.Context(), b.id.User)
	if err != nil {
		e.log.Warn("reading passkeys for the challenge page", zap.Error(err))
		return
	}
	if len(owner.keys) == 0 {
		return
	}
	opts, err := json.Marshal(e.assertOptions(b, owner.keys))
	if err != nil {
		return
	}
	d.PasskeyOptions = string(opts)
	d.PasskeyFirst = b.p.passkeyFirst()
}

// CheckPasskeys checks a passkeys block as the engine will (its
// defaults filled in on a copy): the Caddy adapter's parser calls it so
// that a Caddyfile and its JSON are refused with the same words.
func CheckPasskeys(p Passkeys, siteName string) error {
	p.Origins = append([]string(nil), p.Origins...)
	return p.setDefaults(siteName)
}

// RemoveUserPasskeys removes every passkey of user, under the current
// secret and the previous ones (an operator's answer to a lost device or
// a taken-over account): the user gets SMS from then on. It returns how
// many were removed.
func (e *Engine) RemoveUserPasskeys(ctx context.Context, user string) (int, error) {
	if e.passkeys == nil {
		return 0, nil
	}
	n := 0
	for _, k := range e.all {
		key := k.short("passkeys", user)
		ps, err := e.passkeys.Passkeys(ctx, key)
		if err != nil {
			return n, err
		}
		for _, p := range ps {
			if err := e.passkeys.RemovePasskey(ctx, key, p.ID); err != nil && !errors.Is(err, store.ErrPasskeyNotFound) {
				return n, err
			}
			n++
		}
	}
	return n, nil
}
