package identity

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

func headerSource() *Header {
	return &Header{UserHeader: "X-Remote-User", PhoneHeader: "X-Remote-Phone", EmailHeader: "X-Remote-Email", SessionHeader: "X-Remote-Session"}
}

// Over-long or malformed values are the request's fault: ErrBadIdentity
// (a 400), never an error the engine takes for an outage, and the error
// never carries the value.
func TestHeaderSourceBadValues(t *testing.T) {
	long := func(n int) string { return strings.Repeat("7", n) }
	for name, tc := range map[string]struct{ header, value string }{
		"300-byte user":   {"X-Remote-User", "u" + long(299)},
		"40-char phone":   {"X-Remote-Phone", "+" + long(39)},
		"300-byte email":  {"X-Remote-Email", long(290) + "@example.com"},
		"300-byte sess":   {"X-Remote-Session", long(300)},
		"control in user": {"X-Remote-User", "alice\x01admin"},
		"bad UTF-8 user":  {"X-Remote-User", "m\xfcller"},
		"C1 in phone":     {"X-Remote-Phone", "+1415\u0085555"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-Remote-User", "alice")
		r.Header.Set("X-Remote-Phone", "+14155550100")
		r.Header.Set(tc.header, tc.value)
		_, err := headerSource().Identify(r)
		if !errors.Is(err, ErrBadIdentity) || errors.Is(err, ErrNoIdentity) {
			t.Errorf("%s: %v, want ErrBadIdentity", name, err)
			continue
		}
		if strings.Contains(err.Error(), long(20)) || strings.Contains(err.Error(), "admin") {
			t.Errorf("%s: the error %q carries the value", name, err)
		}
	}
}

// A header the trusted handler in front sets must not also reach the app
// in another copy: twice, or under a name that CGI-style gateways fold
// into the same variable (PHP reads X_Remote_User and X-Remote-User both
// as $_SERVER['HTTP_X_REMOTE_USER']).
func TestHeaderSourceAmbiguous(t *testing.T) {
	for name, add := range map[string]func(h map[string][]string){
		"user twice":          func(h map[string][]string) { h["X-Remote-User"] = append(h["X-Remote-User"], "victim") },
		"phone twice":         func(h map[string][]string) { h["X-Remote-Phone"] = append(h["X-Remote-Phone"], "+14155550199") },
		"underscore variant":  func(h map[string][]string) { h["X_remote_user"] = []string{"victim"} },
		"lower-case key":      func(h map[string][]string) { h["x-remote-user"] = []string{"victim"} },
		"session dot variant": func(h map[string][]string) { h["X.Remote.Session"] = []string{"s2"} },
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-Remote-User", "alice")
		r.Header.Set("X-Remote-Phone", "+14155550100")
		r.Header.Set("X-Remote-Session", "s1")
		add(r.Header)
		_, err := headerSource().Identify(r)
		if !errors.Is(err, ErrAmbiguousCredential) || !errors.Is(err, ErrBadIdentity) {
			t.Errorf("%s: %v, want ErrAmbiguousCredential", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "victim") {
			t.Errorf("%s: the error carries the value", name)
		}
	}

	// Unrelated headers that look alike are fine, and so is the plain case.
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Remote-User", "alice")
	r.Header.Set("X-Remote-Phone", "+14155550100")
	r.Header.Set("X-Remote-Users", "x")
	r.Header.Set("X-Remote_Phonf", "x")
	id, err := headerSource().Identify(r)
	if err != nil || id != (Identity{User: "alice", Phone: "+14155550100"}) {
		t.Fatalf("plain headers: %+v %v", id, err)
	}
	if _, err := headerSource().Identify(httptest.NewRequest("GET", "/", nil)); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("no headers: %v, want ErrNoIdentity", err)
	}
}

func TestIdentityValidate(t *testing.T) {
	for id, ok := range map[Identity]bool{
		{User: "alice"}: true,
		{User: "alice", Phone: "+14155550100", Email: "a@example.com", Session: "s"}: true,
		{User: "Zoë 山田"}:                               true,
		{User: strings.Repeat("u", 256)}:               true,
		{User: strings.Repeat("u", 257)}:               false,
		{User: ""}:                                     false,
		{User: "a", Phone: strings.Repeat("1", 33)}:    false,
		{User: "a", Email: strings.Repeat("e", 255)}:   false,
		{User: "a", Session: strings.Repeat("s", 257)}: false,
		{User: "a\tb"}:                                 false,
		{User: "a\x7fb"}:                               false,
		{User: "a\xffb"}:                               false,
		{User: "a", Email: "a@b\n.com"}:                false,
	} {
		err := id.Validate()
		if ok != (err == nil) || (err != nil && !errors.Is(err, ErrBadIdentity)) {
			t.Errorf("%q: %v", id.User+"|"+id.Phone+"|"+id.Email, err)
		}
	}
	if !errors.Is(ErrAmbiguousCredential, ErrBadIdentity) || errors.Is(ErrBadIdentity, ErrNoIdentity) {
		t.Fatal("ErrAmbiguousCredential must wrap ErrBadIdentity, and ErrBadIdentity must not be ErrNoIdentity")
	}
}
