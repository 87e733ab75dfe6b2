package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"

	"github.com/caddy-stepup/caddy-stepup/internal/testredis"
	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
)

func TestCookieIdentityCaddyfile(t *testing.T) {
	for name, tc := range map[string]struct {
		block string
		want  string
	}{
		"redis string": {"\tidentity cookie PHPSESSID {\n\t\tphone_lookup redis \"shop:phone:{id}\"\n\t}",
			`{"name":"PHPSESSID","phone_lookup":{"redis":"shop:phone:{id}"},"source":"cookie"}`},
		"redis hash, all options": {`	identity cookie PHPSESSID {
		phone_lookup redis "{shop}:session:{id}" field phone
		user_field customer_id
		email_field email
		cache 1m
		timeout 500ms
		login_url "/login.php?back={return}"
	}`, `{"cache":60000000000,"login_url":"/login.php?back={return}","name":"PHPSESSID",` +
			`"phone_lookup":{"email_field":"email","field":"phone","redis":"{shop}:session:{id}","user_field":"customer_id"},` +
			`"source":"cookie","timeout":500000000}`},
		"http": {"\tidentity cookie laravel_session {\n\t\tphone_lookup http http://127.0.0.1:8081/api/me\n\t\tcache off\n\t}",
			`{"cache":-1,"name":"laravel_session","phone_lookup":{"http":"http://127.0.0.1:8081/api/me"},"source":"cookie"}`},
		"http placeholder": {"\tidentity cookie sid {\n\t\tphone_lookup http {env.APP_ME_URL}\n\t}",
			`{"name":"sid","phone_lookup":{"http":"{env.APP_ME_URL}"},"source":"cookie"}`},
	} {
		got, err := parseIdentityJSON(t, identitySite(tc.block))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", name, got, tc.want)
		}
		assertRoundTrip(t, name, got, new(CookieIdentity))
	}
}

func TestCookieIdentityCaddyfileErrors(t *testing.T) {
	block := func(lines string) string {
		return identitySite("\tidentity cookie PHPSESSID {\n" + lines + "\n\t}")
	}
	redisLookup := "\t\tphone_lookup redis s:{id}\n"
	for name, tc := range map[string]struct {
		input string
		want  string
	}{
		"no name":              {identitySite("\tidentity cookie {\n" + redisLookup + "\t}"), "needs the session cookie's name"},
		"two names":            {identitySite("\tidentity cookie a b {\n" + redisLookup + "\t}"), "wrong argument count"},
		"no lookup":            {block("\t\tcache 10s"), "needs a phone_lookup"},
		"unknown option":       {block(redisLookup + "\t\tcolour blue"), "unrecognized identity cookie option 'colour'"},
		"unknown lookup":       {block("\t\tphone_lookup ldap ldap://x"), "unrecognized phone_lookup kind 'ldap'"},
		"lookup without arg":   {block("\t\tphone_lookup redis"), "phone_lookup needs a kind and a target"},
		"key without {id}":     {block("\t\tphone_lookup redis phones"), "must contain {id}"},
		"redis junk":           {block("\t\tphone_lookup redis s:{id} hash phone"), `unexpected "hash phone"`},
		"http two args":        {block("\t\tphone_lookup http http://a/ http://b/"), "wrong argument count"},
		"http not a URL":       {block("\t\tphone_lookup http /api/me"), "is not an http(s) URL"},
		"two lookups":          {block(redisLookup + "\t\tphone_lookup http http://a/"), "phone_lookup already set"},
		"user_field with http": {block("\t\tphone_lookup http http://a/\n\t\tuser_field uid"), "are for phone_lookup redis"},
		"user_field no field":  {block(redisLookup + "\t\tuser_field uid"), "need the phone's hash field"},
		"cache too long":       {block(redisLookup + "\t\tcache 1h"), "want off or a duration from 1s to 5m"},
		"cache word":           {block(redisLookup + "\t\tcache forever"), "want off or a duration"},
		"timeout too long":     {block(redisLookup + "\t\ttimeout 1m"), "timeout 1m0s out of range"},
		"login_url no value":   {block(redisLookup + "\t\tlogin_url"), "wrong argument count"},
	} {
		_, err := parseIdentityJSON(t, tc.input)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not say %q", name, err, tc.want)
		}
		if !strings.Contains(err.Error(), "Testfile:") {
			t.Errorf("%s: error %q does not name file and line", name, err)
		}
	}
}

func TestCookieIdentityProvisionErrors(t *testing.T) {
	for name, tc := range map[string]struct{ json, want string }{
		"no lookup":       {`{"source":"cookie","name":"sid"}`, "one phone_lookup is required"},
		"two lookups":     {`{"source":"cookie","name":"sid","phone_lookup":{"redis":"s:{id}","http":"http://a/"}}`, "one phone_lookup is required"},
		"no name":         {`{"source":"cookie","phone_lookup":{"redis":"s:{id}"}}`, "cookie name is required"},
		"bad name":        {`{"source":"cookie","name":"a b","phone_lookup":{"redis":"s:{id}"}}`, "invalid cookie name"},
		"unset env url":   {`{"source":"cookie","name":"sid","phone_lookup":{"http":"{env.TEST_UNSET_URL}"}}`, "empty after placeholder replacement"},
		"field with http": {`{"source":"cookie","name":"sid","phone_lookup":{"http":"http://a/","field":"phone"}}`, "are for phone_lookup redis"},
		"key without id":  {`{"source":"cookie","name":"sid","phone_lookup":{"redis":"phones"}}`, "must contain {id}"},
	} {
		_, err := provisionIdentity(t, tc.json)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

// A Redis lookup uses the client the handler hands over with SetRedis,
// before or after Provision; without one it fails closed and says why.
func TestCookieIdentityRedis(t *testing.T) {
	srv := testredis.Run(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	client.HSet(context.Background(), "shop:s:abc", "phone", "+14155550100", "uid", "alice")
	t.Setenv("TEST_SESSION_PREFIX", "shop:s:")

	req := func() *http.Request {
		r := httptest.NewRequest("GET", "/account", nil)
		r.AddCookie(&http.Cookie{Name: "PHPSESSID", Value: "abc"})
		return r
	}
	mod, err := provisionIdentity(t, `{"source":"cookie","name":"PHPSESSID","phone_lookup":{"redis":"{env.TEST_SESSION_PREFIX}{id}","field":"phone","user_field":"uid"}}`)
	if err != nil {
		t.Fatal(err)
	}
	src := mod.(*CookieIdentity)
	if !src.NeedsRedis() {
		t.Fatal("a redis lookup does not say it needs Redis")
	}
	_, err = src.Identify(req())
	if !errors.Is(err, identity.ErrNoRedis) || errors.Is(err, identity.ErrNoIdentity) || !strings.Contains(err.Error(), "configure redis in the stepup block") {
		t.Fatalf("without a client: %v", err)
	}
	src.SetRedis(client)
	id, err := src.Identify(req())
	if err != nil {
		t.Fatal(err)
	}
	if id != (identity.Identity{User: "alice", Session: identity.Hash("abc"), Phone: "+14155550100"}) {
		t.Fatalf("identity %+v", id)
	}
	// Two sessions in one request: refused as ambiguous (400), and a
	// number over 32 characters as malformed (400), not as an outage.
	r := req()
	r.AddCookie(&http.Cookie{Name: "PHPSESSID", Value: "victim"})
	if _, err := src.Identify(r); !errors.Is(err, identity.ErrAmbiguousCredential) {
		t.Fatalf("two PHPSESSID cookies: %v", err)
	}
	client.HSet(context.Background(), "shop:s:long", "phone", "+"+strings.Repeat("1", 39), "uid", "bob")
	r = httptest.NewRequest("GET", "/account", nil)
	r.AddCookie(&http.Cookie{Name: "PHPSESSID", Value: "long"})
	if _, err := src.Identify(r); !errors.Is(err, identity.ErrBadIdentity) || errors.Is(err, identity.ErrAmbiguousCredential) {
		t.Fatalf("40-character phone: %v", err)
	}

	// SetRedis before Provision works too.
	early := &CookieIdentity{Name: "PHPSESSID", PhoneLookup: &PhoneLookup{Redis: "shop:s:{id}", Field: "phone"}}
	early.SetRedis(client)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := early.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if id, err := early.Identify(req()); err != nil || id.Phone != "+14155550100" {
		t.Fatalf("SetRedis before Provision: %+v %v", id, err)
	}
}

// An HTTP lookup is cached 30s by default; timeouts and 5xx fail closed.
func TestCookieIdentityHTTP(t *testing.T) {
	var hits atomic.Int32
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		c, err := r.Cookie("sid")
		switch {
		case err != nil:
			w.WriteHeader(http.StatusUnauthorized)
		case c.Value == "good":
			fmt.Fprint(w, `{"user":"alice","phone":"+14155550100"}`)
		case c.Value == "slow":
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		case c.Value == "down":
			w.WriteHeader(http.StatusBadGateway)
		default:
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer app.Close()
	mod, err := provisionIdentity(t, `{"source":"cookie","name":"sid","phone_lookup":{"http":"`+app.URL+`"},"timeout":200000000}`)
	if err != nil {
		t.Fatal(err)
	}
	src := mod.(*CookieIdentity)
	if src.NeedsRedis() {
		t.Fatal("an HTTP lookup says it needs Redis")
	}
	req := func(v string) *http.Request {
		r := httptest.NewRequest("GET", "/account", nil)
		r.AddCookie(&http.Cookie{Name: "sid", Value: v})
		return r
	}
	for range 3 {
		if id, err := src.Identify(req("good")); err != nil || id.User != "alice" {
			t.Fatalf("good: %+v %v", id, err)
		}
	}
	if hits.Load() != 1 {
		t.Fatalf("%d lookups for 3 requests, want 1 (cached)", hits.Load())
	}
	if _, err := src.Identify(req("guest")); !errors.Is(err, identity.ErrNoIdentity) {
		t.Fatalf("guest: %v", err)
	}
	for _, v := range []string{"slow", "down"} {
		if _, err := src.Identify(req(v)); err == nil || errors.Is(err, identity.ErrNoIdentity) {
			t.Fatalf("%s: %v, want a fail-closed error", v, err)
		}
	}
}
