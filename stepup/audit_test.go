package stepup

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// lastUserMemo remembers the last user identified (the tests send one
// request at a time).
type lastUserMemo struct {
	mu   sync.Mutex
	user string
}

func (m *lastUserMemo) Remember(_ *http.Request, user string) {
	m.mu.Lock()
	m.user = user
	m.mu.Unlock()
}

func (m *lastUserMemo) Recall(*http.Request) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.user
}

// Audit events name their user as audit_user says: a keyed hash by
// default (the value an operator's unlock prints), the id, or nothing;
// never the number.
func TestAuditUser(t *testing.T) {
	for _, tc := range []struct {
		mode AuditUser
		want func(e *Engine) string // the user field; "" for none
	}{
		{AuditUserHMAC, func(e *Engine) string { return e.keys.userKey("alice") }},
		{AuditUserPlain, func(*Engine) string { return "alice" }},
		{AuditUserNone, func(*Engine) string { return "" }},
	} {
		h := newHarness(t, store.NewMemory(time.Minute), nil)
		h.e.SetAuditUser(tc.mode, &lastUserMemo{})
		b := h.browser("alice", "+14155550100")
		b.start("/account/payment-methods")
		logs := h.logs.String()
		want := tc.want(h.e)
		var line string
		for _, l := range strings.Split(logs, "\n") {
			if strings.Contains(l, `"msg":"challenge_created"`) {
				line = l
			}
		}
		switch {
		case line == "":
			t.Fatalf("%s: no challenge_created line:\n%s", tc.mode, logs)
		case want == "" && strings.Contains(line, `"user"`):
			t.Errorf("%s: %s", tc.mode, line)
		case want != "" && !strings.Contains(line, `"user":"`+want+`"`):
			t.Errorf("%s: want user %q in %s", tc.mode, want, line)
		case strings.Contains(line, "4155550100"):
			t.Errorf("%s: the number in %s", tc.mode, line)
		}
		if tc.mode == AuditUserHMAC {
			key, _ := UserKey([]byte(testSecret), "alice")
			if h.e.AuditUserOf("alice") != key {
				t.Errorf("AuditUserOf = %q, UserKey = %q: unlock would print another value than the events carry", h.e.AuditUserOf("alice"), key)
			}
		}
	}
	if _, err := ParseAuditUser("email"); err == nil {
		t.Error("audit_user email accepted")
	}
}
