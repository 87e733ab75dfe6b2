package stepup

import (
	"crypto/hmac"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
	"github.com/caddy-stepup/caddy-stepup/stepup/page"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// After a browser verifies a code for a preserved request, it is sent back
// (303) to the request's URL with a short-lived replay cookie scoped to
// that path. That GET, and only that one, is turned into the preserved
// request and sent upstream, so the upstream's answer (a page, a
// redirect) shows at the original URL. The store hands the stash out once:
// a reload, a second tab or a double submit never sends it again.

const (
	replayCookieName = "stepup_replay"
	replayCookieTTL  = 2 * time.Minute
)

// replayCookie is the cookie name: __Secure- on HTTPS (the path scope
// rules out __Host-).
func replayCookie(r *http.Request) string {
	if secure(r) {
		return "__Secure-" + replayCookieName
	}
	return replayCookieName
}

// hasReplayCookie is the cheap test every request pays: a substring
// search of the Cookie header, no parsing.
func hasReplayCookie(r *http.Request) bool {
	for _, v := range r.Header["Cookie"] {
		if strings.Contains(v, replayCookieName+"=") {
			return true
		}
	}
	return false
}

// replayMAC binds a replay cookie to its challenge, the browser session,
// the path it may be used on, and the handler (its path prefix) that
// stashed the request: another stepup handler in the same chain, even
// with the same secret, leaves it alone.
func (k *keys) replayMAC(id, sessionKey, path, prefix string) string {
	return b64.EncodeToString(mac(k.replay, id, sessionKey, path, prefix)[:16])
}

// cookiePath returns the longest prefix of an escaped path that a
// browser sends back byte for byte, to be a cookie's Path attribute:
// up to the last '/' before anything a browser may re-encode or decode
// ('%' escapes, which some canonicalize, and characters outside a
// cookie attribute), or "/".
func cookiePath(escaped string) string {
	for i := 0; i < len(escaped); i++ {
		if c := escaped[i]; c <= ' ' || c == ';' || c == ',' || c == '"' || c == '\\' || c == '%' || c >= 0x7f {
			if j := strings.LastIndexByte(escaped[:i], '/'); j > 0 {
				return escaped[:j+1]
			}
			return "/"
		}
	}
	return escaped
}

// replayPath is the path a replay cookie is bound to: the decoded path,
// as r.URL.Path of the browser's request will read it however the
// browser spells the escapes ("/%63heckout" and "/checkout" are one path
// to the app, and to the policy that matched it).
func replayPath(returnURL string) string {
	u, err := url.ParseRequestURI(returnURL)
	if err != nil {
		return ""
	}
	return u.Path
}

func (e *Engine) setReplayCookie(w http.ResponseWriter, r *http.Request, k *keys, id, sessionKey, returnURL string) {
	escaped, _, _ := strings.Cut(returnURL, "?")
	http.SetCookie(w, &http.Cookie{
		Name:     replayCookie(r),
		Value:    id + "." + k.replayMAC(id, sessionKey, replayPath(returnURL), e.cfg.PathPrefix),
		Path:     cookiePath(escaped),
		MaxAge:   int(replayCookieTTL / time.Second),
		HttpOnly: true,
		Secure:   secure(r),
		SameSite: http.SameSiteLaxMode,
	})
}

func clearReplayCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name:     replayCookie(r),
		Value:    "",
		Path:     cookiePath(r.URL.EscapedPath()),
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   secure(r),
		SameSite: http.SameSiteLaxMode,
	})
}

// replay sends the preserved request of a verified challenge upstream, if
// r is the browser coming back for it. done is false when r is not a
// replay (no valid cookie for this path and session): it then goes on as
// any other request.
func (e *Engine) replay(w http.ResponseWriter, r *http.Request, next Next) (done bool, err error) {
	if r.Method != http.MethodGet {
		return false, nil
	}
	v := cookieValue(r, replayCookie(r))
	id, tag, ok := strings.Cut(v, ".")
	if !ok || !validID(id) || len(tag) > 32 {
		return false, nil
	}
	var ident identity.Identity
	if !e.fromRequest {
		var err error
		if ident, err = e.identify(r); err != nil {
			return false, nil
		}
	}
	session := e.session(r, ident, false)
	if session == "" {
		return false, nil
	}
	var k *keys
	for _, kk := range e.all {
		if hmac.Equal([]byte(tag), []byte(kk.replayMAC(id, kk.sessionKey(session), r.URL.Path, e.cfg.PathPrefix))) {
			k = kk
			break
		}
	}
	if k == nil {
		return false, nil
	}

	// From here on the request is ours: the cookie goes, whatever happens.
	clearReplayCookie(w, r)
	ctx := r.Context()
	c, err := e.store.Get(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		e.renderStatus(w, r, http.StatusGone, page.StateStashExpired, &page.Data{ContinueURL: "/"})
		return true, nil
	case err != nil:
		return true, e.storeError(w, r, "get", err)
	}
	// A challenge of an earlier store generation is refused, as its
	// grants are: the store may have rolled back to a snapshot in which
	// the stash was not yet sent.
	if gen, err := e.generation(ctx); err != nil {
		return true, e.storeError(w, r, "generation", err)
	} else if c.Generation != gen {
		e.renderStatus(w, r, http.StatusGone, page.StateStashExpired, &page.Data{ContinueURL: "/"})
		return true, nil
	}
	if e.fromRequest {
		ident.User = c.User // the form that named it is the stashed request
		e.audit.remember(r, c.User)
	}
	if !hmac.Equal([]byte(c.UserKey), []byte(e.challengeUserKey(k, ident.User))) {
		e.renderStatus(w, r, http.StatusNotFound, page.StateNotFound, nil)
		return true, nil
	}
	// A revocation ends a verified transaction still waiting for its
	// replay as it ends a grant: the verification is the grant's issue,
	// in whole seconds as grants carry it, so a verification in the
	// second of the revocation counts as revoked.
	if revoked, err := e.revoked(ctx, ident.User, c.Used.Truncate(time.Second)); err != nil {
		return true, e.storeError(w, r, "revocation", err)
	} else if revoked {
		e.emit(r, &Event{Kind: EventReplayRefused, Policy: c.Policy, Outcome: "revoked"})
		w.Header().Set("WWW-Authenticate", `StepUp error="invalid_grant"`)
		e.renderStatus(w, r, http.StatusForbidden, page.StateInvalidGrant, nil)
		return true, nil
	}
	// The replay takes its cookies (and the identity headers) from this
	// GET: a described field or _method among them would be read by
	// PHP's $_REQUEST, ASP.NET's Request[] or Spring 6.2 over the
	// approved body. Refused before the stash is taken.
	if laterParams(r, e.policies[c.Policy], e.identityHeaders, e.identity) {
		e.emit(r, &Event{Kind: EventReplayRefused, Policy: c.Policy, Outcome: "ambiguous_fields"})
		w.Header().Set("WWW-Authenticate", `StepUp error="invalid_grant"`)
		e.renderStatus(w, r, http.StatusForbidden, page.StateInvalidGrant, nil)
		return true, nil
	}
	blob, err := e.store.TakeStash(ctx, id)
	switch {
	case errors.Is(err, store.ErrReplayed):
		e.emit(r, &Event{Kind: EventReplayRefused, Policy: c.Policy, Outcome: "already_sent"})
		e.renderStatus(w, r, http.StatusConflict, page.StateAlreadySent, &page.Data{ContinueURL: "/", Description: c.Description})
		return true, nil
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrPending):
		e.renderStatus(w, r, http.StatusGone, page.StateStashExpired, &page.Data{ContinueURL: "/", Description: c.Description})
		return true, nil
	case err != nil:
		return true, e.storeError(w, r, "take_stash", err)
	}
	plain, err := k.open(id, blob)
	var st *stash
	if err == nil {
		st, err = unmarshalStash(plain)
	}
	var rr *http.Request
	if err == nil {
		rr, err = replayRequest(r, st, e.identityHeaders)
	}
	if err != nil {
		// Sealed with another secret, or damaged: nothing goes upstream.
		e.emit(r, &Event{Kind: EventReplayRefused, Policy: c.Policy, Outcome: "unreadable", Err: err})
		e.renderStatus(w, r, http.StatusGone, page.StateStashExpired, &page.Data{ContinueURL: "/"})
		return true, nil
	}
	e.StripHeaders(rr.Header) // a stash from before X-Original-URL was stripped may hold it
	p := e.policies[c.Policy]
	if p == nil {
		p = &Policy{Name: c.Policy}
	}
	if err := e.setUpstreamHeaders(rr, p, ident.User, c.Used, c.TxHash, c.Method); err != nil {
		return true, err
	}
	e.emit(r, &Event{Kind: EventReplayed, Policy: c.Policy, Mode: p.Mode.String(), Outcome: st.Method})
	return true, next.ServeHTTP(w, rr)
}

// laterParams reports whether the headers a replay takes from the later
// request r (its cookies, credentials and identity headers, see
// replayRequest) carry a field that p describes, the field an identity
// request source reads, or _method, where an app reads it as a parameter
// (fields.EachOtherParam).
func laterParams(r *http.Request, p *Policy, identityHeaders []string, source identity.Source) bool {
	h := make(http.Header, len(replayedFromLater)+len(identityHeaders))
	for _, k := range replayedFromLater {
		if v, ok := r.Header[k]; ok {
			h[k] = v
		}
	}
	for _, n := range identityHeaders {
		k := http.CanonicalHeaderKey(n)
		if v, ok := r.Header[k]; ok {
			h[k] = v
		}
	}
	later := &http.Request{Header: h}
	if p != nil && p.desc.elsewhere(later) != nil {
		return true
	}
	if src, ok := source.(interface{ Elsewhere(*http.Request) error }); ok && src.Elsewhere(later) != nil {
		return true // the identity request source's field
	}
	return MethodParamElsewhere(later)
}
