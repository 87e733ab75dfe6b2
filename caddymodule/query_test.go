package caddymodule

import "testing"

// queryHandler has policies with query matchers, as 28_query_matcher_names.sh
// bypassed them (R3-2): PHP, Rack 2 and qs read names Go does not.
func queryHandler(t *testing.T) *Handler {
	return provisioned(t, `{"secret":"0123456789abcdef0123456789abcdef",`+
		`"identity":{"source":"header","user":"U","phone":"P"},"senders":[{"sender":"log"}],"max_body":1024,"policies":[`+
		`{"name":"admin-delete","match":[{"path":["/admin*"],"query":{"action":["delete"]}}],"mode":"transaction"},`+
		`{"name":"admin","match":[{"path":["/admin*"]}]},`+
		`{"name":"export","match":[{"path":["/export*"],"query":{"format":["csv"],"all":["1"]}}]},`+
		`{"name":"expr","match":[{"path":["/report*"],"expression":"query({'scope': 'everyone'})"}]},`+
		`{"name":"not-preview","match":[{"path":["/publish*"],"not":[{"query":{"preview":["1"]}}]}]}]}`)
}

// Each name an app reads as "action" makes the query-matched policy
// apply; where a weaker policy matches the query as Go reads it, the
// readings disagree (400).
func TestMatchPolicyQueryReadings(t *testing.T) {
	h := queryHandler(t)
	for _, tc := range []matchCase{
		{name: "as sent", method: "GET", target: "/admin/users?action=delete", want: "admin-delete"},
		{name: "plain, other pairs", method: "GET", target: "/admin/users?id=7&action=delete", want: "admin-delete"},
		{name: "escaped value", method: "GET", target: "/admin/users?action=%64elete", want: "admin-delete"},
		{name: "export", method: "GET", target: "/export?format=csv&all=1", want: "export"},
		{name: "expression", method: "GET", target: "/report?scope=everyone", want: "expr"},
		{name: "not, as sent", method: "GET", target: "/publish?preview=1", want: ""},
		{name: "not, plain", method: "GET", target: "/publish?x=1", want: "not-preview"},
		{name: "export, other spellings", method: "GET", target: "/export?[format]=csv;all%00x=1", want: "export"},
		{name: "expression, rack name", method: "GET", target: "/report?scope]=everyone", want: "expr"},
		{name: "expression, php name", method: "GET", target: "/report?+scope=everyone", want: "expr"},
		{name: "export, semicolon", method: "GET", target: "/export?format=csv;all=1", want: "export"},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, h) })
	}
	// Every spelling of 28_query_matcher_names.sh: under Go's reading it
	// is the session policy "admin", under the app's the transaction
	// "admin-delete": refused.
	for _, q := range []string{"action%00=delete", "action%00x=delete", "+action=delete", "%20action=delete",
		"x=1;action=delete", "action=delete;x=1", "action=delete&x=%zz", "[action]=delete", "action]=delete",
		"]action=delete", "[[action]]=delete", "%5Baction%5D=delete", "!action=delete", "ACTION=delete",
		"action[]=delete", "action.x=delete"} {
		matchCase{name: q, method: "GET", target: "/admin/users?" + q, want: "400 policy"}.run(t, h)
	}
	// Not "action=delete" to any app: the session policy alone.
	for _, q := range []string{"", "action=view", "xaction=delete", "action=deletex", "action_x=delete", "a=action%3Ddelete", "action%01=delete", "x[action]=delete"} {
		matchCase{name: q, method: "GET", target: "/admin/users?" + q, want: "admin"}.run(t, h)
	}
}

func TestQueryStateReading(t *testing.T) {
	for raw, want := range map[string]string{
		"":                "",
		"action=delete":   "",
		"a=1&b=2":         "",
		"a=1;b=2":         "a=1&b=2",
		"[action]=delete": "%5Baction%5D=delete&action=delete",
		"+action=x+y":     "+action=x+y&action=x+y",
		"Action%00x=%zz":  "Action%00x=%25zz&action%00x=%25zz&Action=%25zz&action=%25zz",
		"!a.b=1&&=2":      "%21a.b=1&%21a_b=1&a=1",
		"_method=DELETE":  "",
	} {
		var qs queryState
		qs.init(raw)
		if qs.alt != want {
			t.Errorf("reading of %q = %q, want %q", raw, qs.alt, want)
		}
	}
}

// A policy without query matchers costs nothing for a query; one with
// them reads it only when its other matchers could match.
func TestQueryReadingsOnlyForQueryPolicies(t *testing.T) {
	h := queryHandler(t)
	for _, p := range h.Policies {
		if want := p.Name != "admin"; p.readsQuery != want {
			t.Errorf("policy %s: readsQuery = %v, want %v", p.Name, p.readsQuery, want)
		}
	}
	h = methodHandler(t)
	r := prepared("GET", "/catalog/espresso?page=2&[x]=1;y")
	if n := testing.AllocsPerRun(100, func() {
		if _, err := h.MatchPolicy(r); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("MatchPolicy of a query no policy reads allocates %v times", n)
	}
}
