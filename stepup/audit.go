package stepup

import (
	"fmt"
	"net/http"
)

// AuditUser says how events name the user they concern (the "user" field
// of log lines, Caddy events and the audit stream).
type AuditUser string

// The ways events can name a user.
const (
	// AuditUserHMAC names the user by a keyed hash of the user id under
	// the handler's secret (UserKey: 22 characters of base64url), the
	// default. `caddy stepup unlock|revoke --user ID` prints the same
	// value, so events can be matched to a user on request without the
	// logs holding the id.
	AuditUserHMAC AuditUser = "hmac"
	// AuditUserPlain names the user by the id the identity source gives,
	// except with identity request (sign-up, reset), where the id is
	// what a stranger typed into a form, often a phone number: there it
	// is the keyed hash too.
	AuditUserPlain AuditUser = "plain"
	// AuditUserNone leaves the user out.
	AuditUserNone AuditUser = "none"
)

// ParseAuditUser checks an audit_user value ("" is the default, hmac).
func ParseAuditUser(v string) (AuditUser, error) {
	switch AuditUser(v) {
	case "", AuditUserHMAC:
		return AuditUserHMAC, nil
	case AuditUserPlain, AuditUserNone:
		return AuditUser(v), nil
	}
	return "", fmt.Errorf("audit_user %q: want hmac, plain or none", v)
}

// UserMemo remembers the user identified on a request, so that the
// events the request makes later can name it. The Caddy adapter keeps it
// with the request's placeholders.
type UserMemo interface {
	// Remember notes the user identified on r.
	Remember(r *http.Request, user string)
	// Recall returns the user noted for r, or "".
	Recall(r *http.Request) string
}

// audit is how the engine names users in events.
type audit struct {
	mode AuditUser
	memo UserMemo
}

// SetAuditUser sets how events name their user, and where the engine
// keeps the user identified on a request until its events are made.
// Without it, events name no user. Call it before the engine serves.
func (e *Engine) SetAuditUser(mode AuditUser, memo UserMemo) {
	e.audit = audit{mode: mode, memo: memo}
}

// AuditUserOf returns the value events carry for user: the user itself,
// its keyed hash (see AuditUserHMAC) or "".
func (e *Engine) AuditUserOf(user string) string {
	switch e.audit.mode {
	case AuditUserPlain:
		if !e.fromRequest {
			return user
		}
		fallthrough
	case AuditUserHMAC:
		if user == "" {
			return ""
		}
		return e.keys.userKey(user)
	}
	return ""
}

// remember notes the user identified on r for the request's events.
func (a *audit) remember(r *http.Request, user string) {
	if a.memo != nil && a.mode != AuditUserNone && a.mode != "" && user != "" {
		a.memo.Remember(r, user)
	}
}

// fillUser sets ev.User, as configured, from the user noted for r. An
// event that set User itself has it shown the same way.
func (e *Engine) fillUser(r *http.Request, ev *Event) {
	if ev.userShown || e.audit.mode == "" {
		return
	}
	ev.userShown = true
	if ev.User == "" && r != nil && e.audit.memo != nil {
		ev.User = e.audit.memo.Recall(r)
	}
	ev.User = e.AuditUserOf(ev.User)
}
