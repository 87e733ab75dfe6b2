package caddymodule

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
)

// The header source, provisioned from JSON: an over-long value is the
// request's fault (ErrBadIdentity, 400), and a header the app could read
// in another copy is ambiguous (also 400), never an outage (503).
func TestHeaderIdentityRefusals(t *testing.T) {
	mod, err := provisionIdentity(t, `{"source":"header","user":"x-remote-user","phone":"X-Remote-Phone"}`)
	if err != nil {
		t.Fatal(err)
	}
	src := mod.(*HeaderIdentity)
	req := func() *http.Request {
		r := httptest.NewRequest("GET", "/account", nil)
		r.Header.Set("X-Remote-User", "alice")
		r.Header.Set("X-Remote-Phone", "+14155550100")
		return r
	}
	if id, err := src.Identify(req()); err != nil || id.User != "alice" {
		t.Fatalf("plain: %+v %v", id, err)
	}
	for name, tc := range map[string]struct {
		edit func(h http.Header)
		want error
	}{
		"300-byte user":   {func(h http.Header) { h.Set("X-Remote-User", strings.Repeat("u", 300)) }, identity.ErrBadIdentity},
		"40-char phone":   {func(h http.Header) { h.Set("X-Remote-Phone", "+"+strings.Repeat("1", 39)) }, identity.ErrBadIdentity},
		"control in user": {func(h http.Header) { h.Set("X-Remote-User", "alice\x01") }, identity.ErrBadIdentity},
		"user twice":      {func(h http.Header) { h.Add("X-Remote-User", "victim") }, identity.ErrAmbiguousCredential},
		"X_Remote_User":   {func(h http.Header) { h["X_remote_user"] = []string{"victim"} }, identity.ErrAmbiguousCredential},
		"x-remote-phone":  {func(h http.Header) { h["x-remote-phone"] = []string{"+14155550199"} }, identity.ErrAmbiguousCredential},
	} {
		r := req()
		tc.edit(r.Header)
		_, err := src.Identify(r)
		if !errors.Is(err, tc.want) || errors.Is(err, identity.ErrNoIdentity) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}
