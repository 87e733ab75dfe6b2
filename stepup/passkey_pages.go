package stepup

import (
	"crypto/hmac"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"go.uber.org/zap"

	"github.com/caddy-stepup/caddy-stepup/stepup/page"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// The passkey pages: the offer to create a passkey after a verification
// by code ({prefix}/challenge/{id}/passkey), and the passkeys page
// ({prefix}/passkeys) that lists, renames and removes them behind a
// fresh step-up (the built-in policy ManagePolicy).

// enrolWindow is how long after a verification by code its offer to
// create a passkey stands.
const enrolWindow = 5 * time.Minute

// enrolRecord names the single-use record of the offer made after
// challenge id (a grant record of the store: issued with the offer,
// used by the enrolment).
func (k *keys) enrolRecord(id string) string { return k.short("enrol", id) }

// offerEnrol reports whether the customer who just verified b's
// challenge by code is offered a passkey: its policy offers passkeys
// and the user has room for one more. It records the offer's single
// use. A preserved request waits for the customer to leave the offer
// (goOn).
func (e *Engine) offerEnrol(r *http.Request, b *bound) bool {
	c := b.c
	if e.wa == nil || b.p == nil || !b.p.offers(MethodPasskey) || c.Method != MethodSMS || c.Hidden || c.Decoy() {
		return false
	}
	owner, err := e.passkeysOf(r.Context(), b.id.User)
	if err != nil || len(owner.keys) >= e.cfg.Passkeys.MaxPerUser {
		return false
	}
	if err := e.store.IssueGrant(r.Context(), b.k.enrolRecord(c.ID), c.Used.Add(enrolWindow)); err != nil {
		e.log.Warn("recording a passkey offer", zap.Error(err))
		return false
	}
	return true
}

// enrolURL is the offer's page of challenge id.
func (e *Engine) enrolURL(id string) string { return e.challengeURL(id) + "/passkey" }

// passkeyHandle is the WebAuthn user handle of user: that of the
// passkeys already enrolled, else a keyed hash of the user id (no
// personal data goes to the authenticator in it).
func (e *Engine) passkeyHandle(owner passkeyOwner, user string) []byte {
	if len(owner.keys) > 0 && len(owner.keys[0].UserHandle) > 0 {
		return owner.keys[0].UserHandle
	}
	return mac(e.keys.passkey, "handle", user)
}

// enrolBound loads challenge id for an enrolment: verified by code by
// this user in this session, within enrolWindow. ok is false when it
// answered.
func (e *Engine) enrolBound(w http.ResponseWriter, r *http.Request, id string) (b bound, ok bool, err error) {
	if e.wa == nil {
		e.renderStatus(w, r, http.StatusNotFound, page.StateNotFound, nil)
		return b, false, nil
	}
	if b, ok, err = e.load(w, r, id, false); !ok {
		return b, false, err
	}
	c := b.c
	if c.Used.IsZero() {
		// Not verified: nothing to enrol after, nowhere to go on to.
		http.Redirect(w, r, e.challengeURL(c.ID), http.StatusSeeOther)
		return b, false, nil
	}
	if c.Method != MethodSMS || b.p == nil || !b.p.offers(MethodPasskey) || !e.now().Before(c.Used.Add(enrolWindow)) {
		e.goOn(w, r, &b)
		return b, false, nil
	}
	return b, true, nil
}

// leaveOffer goes on from the offer without a passkey ("Not now"): to
// where the customer was going, with the preserved request, if any.
func (e *Engine) leaveOffer(w http.ResponseWriter, r *http.Request, id string) error {
	b, ok, err := e.load(w, r, id, false)
	if !ok {
		return err
	}
	if b.c.Used.IsZero() {
		http.Redirect(w, r, e.challengeURL(id), http.StatusSeeOther)
		return nil
	}
	e.goOn(w, r, &b)
	return nil
}

// registerSelection is what a new passkey must be: user verification
// required, a discoverable credential preferred.
var registerSelection = protocol.AuthenticatorSelection{
	ResidentKey:      protocol.ResidentKeyRequirementPreferred,
	UserVerification: protocol.VerificationRequired,
}

// showEnrol renders the offer to create a passkey after challenge id.
func (e *Engine) showEnrol(w http.ResponseWriter, r *http.Request, id string) error {
	b, ok, err := e.enrolBound(w, r, id)
	if !ok {
		return err
	}
	owner, err := e.passkeysOf(r.Context(), b.id.User)
	if err != nil {
		return e.storeError(w, r, "passkeys", err)
	}
	user := &passkeyUser{handle: e.passkeyHandle(owner, b.id.User), name: b.id.User}
	exclude := make([]protocol.CredentialDescriptor, 0, len(owner.keys))
	for _, p := range owner.keys {
		exclude = append(exclude, protocol.CredentialDescriptor{Type: protocol.PublicKeyCredentialType, CredentialID: p.ID, Transport: transports(p.Transports)})
	}
	challenge := b.k.enrolChallenge(b.c)
	creation, _, err := e.wa.BeginRegistration(user,
		webauthn.WithExclusions(exclude),
		webauthn.WithAuthenticatorSelection(registerSelection),
		webauthn.WithCredentialParameters(webauthn.CredentialParametersDefault()),
		func(o *protocol.PublicKeyCredentialCreationOptions) error {
			o.Challenge = challenge
			o.Timeout = int(enrolWindow / time.Millisecond)
			return nil
		})
	if err != nil {
		return err
	}
	opts, err := json.Marshal(creation.Response)
	if err != nil {
		return err
	}
	d := page.PasskeyOffer(e.enrolURL(b.c.ID), b.k.csrfToken(b.c.ID, b.sessionKey), e.challengeURL(b.c.ID)+"/continue", string(opts))
	e.renderStatus(w, r, http.StatusOK, page.StatePasskeyOffer, d)
	return nil
}

// enrol takes the passkey created on the offer's page: it is checked
// against the offer's challenge, origin and RP ID, with user presence
// and verification, once, and stored for the user.
func (e *Engine) enrol(w http.ResponseWriter, r *http.Request, id string) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		e.respond(w, r, true, http.StatusBadRequest, page.StateBadForm, nil)
		return nil
	}
	if !sameOrigin(r) {
		e.respond(w, r, true, http.StatusForbidden, page.StateForbidden, nil)
		return nil
	}
	b, ok, err := e.enrolBound(w, r, id)
	if !ok {
		return err
	}
	if !b.k.checkCSRF(r.PostForm.Get("csrf"), b.c.ID, b.sessionKey) {
		e.emit(r, &Event{Kind: EventPasskeyRefused, Policy: b.c.Policy, Outcome: "csrf"})
		e.respond(w, r, true, http.StatusForbidden, page.StateForbidden, nil)
		return nil
	}
	ret, _ := SafeReturnPath(b.c.ReturnURL)
	if ret == "" {
		ret = "/"
	}
	refuse := func(why string, err error) error {
		e.emit(r, &Event{Kind: EventPasskeyRefused, Policy: b.c.Policy, Method: MethodPasskey, Outcome: why, Err: err})
		e.respond(w, r, true, http.StatusBadRequest, page.StateBadForm, &page.Data{ContinueURL: ret})
		return nil
	}
	raw := []byte(r.PostForm.Get("credential"))
	if len(raw) == 0 || len(raw) > maxFormBytes || !json.Valid(raw) {
		return refuse("malformed", nil)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(raw)
	if err != nil {
		return refuse("malformed", nil)
	}
	owner, err := e.passkeysOf(r.Context(), b.id.User)
	if err != nil {
		return e.storeError(w, r, "passkeys", err)
	}
	handle := e.passkeyHandle(owner, b.id.User)
	user := &passkeyUser{handle: handle, name: b.id.User}
	session := webauthn.SessionData{
		Challenge:        protocol.URLEncodedBase64(b.k.enrolChallenge(b.c)).String(),
		RelyingPartyID:   e.cfg.Passkeys.RPID,
		UserID:           handle,
		UserVerification: protocol.VerificationRequired,
		CredParams:       webauthn.CredentialParametersDefault(),
	}
	cred, err := e.wa.CreateCredential(user, session, parsed)
	if err != nil {
		return refuse("invalid", errors.New(assertionReason(err)))
	}
	// The offer is used once: a second enrolment on it is refused.
	switch err := e.store.UseGrant(r.Context(), b.k.enrolRecord(b.c.ID), b.c.Used.Add(enrolWindow)); {
	case errors.Is(err, store.ErrGrantUsed), errors.Is(err, store.ErrGrantUnknown):
		return refuse("offer_used", nil)
	case err != nil:
		return e.storeError(w, r, "use_offer", err)
	}
	now := e.now()
	p := store.Passkey{
		ID:             cred.ID,
		PublicKey:      cred.PublicKey,
		UserHandle:     handle,
		AAGUID:         cred.Authenticator.AAGUID,
		BackupEligible: cred.Flags.BackupEligible,
		SignCount:      cred.Authenticator.SignCount,
		Created:        now,
		Name:           passkeyName(r.PostForm.Get("name"), len(owner.keys)+1),
	}
	for _, t := range cred.Transport {
		p.Transports = append(p.Transports, string(t))
	}
	switch err := e.passkeys.AddPasskey(r.Context(), owner.key, p, e.cfg.Passkeys.MaxPerUser); {
	case errors.Is(err, store.ErrPasskeyExists), errors.Is(err, store.ErrPasskeyLimit):
		return refuse("not_added", err)
	case err != nil:
		return e.storeError(w, r, "add_passkey", err)
	}
	e.emit(r, &Event{Kind: EventPasskeyAdded, Policy: b.c.Policy, Method: MethodPasskey, Outcome: "ok"})
	e.goOn(w, r, &b)
	return nil
}

// passkeyName is the name a new passkey gets: the one given, trimmed,
// else "Passkey n".
func passkeyName(given string, n int) string {
	given = strings.TrimSpace(given)
	if given != "" && len(given) <= store.MaxPasskeyName && !strings.ContainsAny(given, "\r\n\t") {
		return given
	}
	return "Passkey " + strconv.Itoa(n)
}

// hmacEqual compares two tokens in constant time.
func hmacEqual(a, b string) bool { return hmac.Equal([]byte(a), []byte(b)) }

// managePage serves {prefix}/passkeys: the user's passkeys, to rename or
// remove, behind a fresh step-up (a session grant of ManagePolicy, for
// Passkeys.ManageWindow). Without one, the page is challenged like any
// protected page.
func (e *Engine) managePage(w http.ResponseWriter, r *http.Request) error {
	if e.wa == nil {
		e.renderStatus(w, r, http.StatusNotFound, page.StateNotFound, nil)
		return nil
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return e.protect(w, r, e.manage, apiGrant{}, NextFunc(func(w http.ResponseWriter, r *http.Request) error {
			return e.showPasskeys(w, r)
		}))
	case http.MethodPost:
		return e.changePasskey(w, r)
	}
	w.Header().Set("Allow", "GET, HEAD, POST")
	e.renderStatus(w, r, http.StatusMethodNotAllowed, page.StateError, nil)
	return nil
}

// manageURL is the passkeys page.
func (e *Engine) manageURL() string { return e.cfg.PathPrefix + "/passkeys" }

// manageCSRF is the passkeys page's form token for a session.
func (k *keys) manageCSRF(sessionKey string) string { return k.csrfToken("passkeys-page", sessionKey) }

// showPasskeys renders the passkeys page (the step-up is fresh).
func (e *Engine) showPasskeys(w http.ResponseWriter, r *http.Request) error {
	id, err := e.identify(r)
	if err != nil {
		return e.identityError(w, r, ManagePolicy, err)
	}
	owner, err := e.passkeysOf(r.Context(), id.User)
	if err != nil {
		return e.storeError(w, r, "passkeys", err)
	}
	session := e.session(r, id, false)
	items := make([]page.PasskeyItem, 0, len(owner.keys))
	for _, p := range owner.keys {
		it := page.PasskeyItem{ID: b64.EncodeToString(p.ID), Name: p.Name, Created: p.Created.UTC().Format("2006-01-02")}
		if !p.LastUsed.IsZero() {
			it.LastUsed = p.LastUsed.UTC().Format("2006-01-02")
		}
		items = append(items, it)
	}
	var notice string
	switch r.URL.Query().Get("done") {
	case "renamed":
		notice = "The passkey was renamed."
	case "removed":
		notice = "The passkey was removed."
	}
	d := page.PasskeyList(items, e.manageURL(), e.keys.manageCSRF(e.keys.sessionKey(session)), notice)
	e.renderStatus(w, r, http.StatusOK, page.StatePasskeys, d)
	return nil
}

// changePasskey renames or removes one of the user's passkeys: a form
// of the passkeys page, from this origin, with its token, under a fresh
// step-up.
func (e *Engine) changePasskey(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		e.respond(w, r, true, http.StatusBadRequest, page.StateBadForm, nil)
		return nil
	}
	if !sameOrigin(r) {
		e.respond(w, r, true, http.StatusForbidden, page.StateForbidden, nil)
		return nil
	}
	id, err := e.identify(r)
	if err != nil {
		return e.identityError(w, r, ManagePolicy, err)
	}
	session := e.session(r, id, false)
	g, ok, err := e.grantFor(r, e.manage, id.User, session)
	if err != nil {
		return e.storeError(w, r, "generation", err)
	}
	if ok {
		if revoked, err := e.revoked(r.Context(), id.User, g.IssuedAt); err != nil {
			return e.storeError(w, r, "revocation", err)
		} else if revoked {
			ok = false
		}
	}
	if !ok || !hmacEqual(r.PostForm.Get("csrf"), e.keys.manageCSRF(e.keys.sessionKey(session))) {
		// No fresh step-up (or it ran out): back to the page, which asks
		// for one.
		e.emit(r, &Event{Kind: EventPasskeyRefused, Policy: ManagePolicy, Outcome: "not_fresh"})
		http.Redirect(w, r, e.manageURL(), http.StatusSeeOther)
		return nil
	}
	credID, err := b64Strict.DecodeString(r.PostForm.Get("id"))
	if err != nil || len(credID) == 0 || len(credID) > 1023 {
		e.respond(w, r, true, http.StatusBadRequest, page.StateBadForm, nil)
		return nil
	}
	owner, err := e.passkeysOf(r.Context(), id.User)
	if err != nil {
		return e.storeError(w, r, "passkeys", err)
	}
	var done string
	switch r.PostForm.Get("action") {
	case "rename":
		name := strings.TrimSpace(r.PostForm.Get("name"))
		if name == "" || len(name) > store.MaxPasskeyName || strings.ContainsAny(name, "\r\n\t") {
			e.respond(w, r, true, http.StatusBadRequest, page.StateBadForm, &page.Data{ContinueURL: e.manageURL()})
			return nil
		}
		err, done = e.passkeys.RenamePasskey(r.Context(), owner.key, credID, name), "renamed"
	case "remove":
		err, done = e.passkeys.RemovePasskey(r.Context(), owner.key, credID), "removed"
	default:
		e.respond(w, r, true, http.StatusBadRequest, page.StateBadForm, nil)
		return nil
	}
	switch {
	case errors.Is(err, store.ErrPasskeyNotFound):
		http.Redirect(w, r, e.manageURL(), http.StatusSeeOther)
		return nil
	case err != nil:
		return e.storeError(w, r, "passkeys", err)
	}
	e.emit(r, &Event{Kind: EventPasskeyChanged, Policy: ManagePolicy, Method: MethodPasskey, Outcome: done})
	http.Redirect(w, r, e.manageURL()+"?done="+done, http.StatusSeeOther)
	return nil
}
