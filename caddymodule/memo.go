package caddymodule

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"
)

// identityUserKey is the placeholder under which a request keeps the
// user stepup identified on it, until its audit events are made.
const identityUserKey = "http.stepup.identity_user"

// replacerMemo keeps the identified user with the request's
// placeholders (stepup.UserMemo): Caddy's Replacer is per request, safe
// for concurrent use, and already in the request's context, so this
// costs nothing on requests no policy matches.
type replacerMemo struct{}

// Remember implements stepup.UserMemo.
func (replacerMemo) Remember(r *http.Request, user string) {
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set(identityUserKey, user)
	}
}

// Recall implements stepup.UserMemo.
func (replacerMemo) Recall(r *http.Request) string {
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		v, _ := repl.GetString(identityUserKey)
		return v
	}
	return ""
}
