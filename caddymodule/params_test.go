package caddymodule

import (
	"net/http"
	"strings"
	"testing"
)

// paramsHandler has the policy of the fourth outside test's repro-01 (a
// query matcher alone), one on a path, an expression, and a session
// policy on /account for the _method refusals.
func paramsHandler(t *testing.T) *Handler {
	return provisioned(t, `{"secret":"0123456789abcdef0123456789abcdef",`+
		`"identity":{"source":"header","user":"U","phone":"P"},"senders":[{"sender":"log"}],"max_body":1024,"policies":[`+
		`{"name":"danger","match":[{"query":{"action":["delete"]}}]},`+
		`{"name":"wipe","match":[{"path":["/data*"],"query":{"wipe":["all"]}}],"mode":"transaction"},`+
		`{"name":"expr","match":[{"path":["/report*"],"expression":"query({'scope': 'everyone'})"}]},`+
		`{"name":"account","match":[{"path":["/account*"]}]}]}`)
}

func cookies(v string) map[string][]string { return map[string][]string{"Cookie": {v}} }

// R4-1: a query matcher applies wherever the apps read the parameter:
// the query, a form, JSON or multipart body (Laravel's input(), PHP's
// $_REQUEST, Rack's params, Servlet's getParameter()), a cookie (PHP's
// $_REQUEST with no php.ini, ASP.NET's Request[]) and a header (Spring
// 6.2's data binder).
func TestMatchPolicyQueryParamsElsewhere(t *testing.T) {
	h := paramsHandler(t)
	mp, mpCtype := multipartBody(map[string]string{"action": "delete", "name": "x"})
	bigMP, bigMPCtype := multipartBody(map[string]string{"file": strings.Repeat("x", 2000)})
	for _, tc := range []matchCase{
		{name: "query", method: "POST", target: "/profile?action=delete", want: "danger"},
		{name: "form body", method: "POST", target: "/profile", body: "action=delete", want: "danger", keepsBody: true},
		{name: "form body, php name", method: "POST", target: "/profile", body: "name=x&action%00x=delete", want: "danger", keepsBody: true},
		{name: "form body, rack name", method: "POST", target: "/profile", body: "[action]=delete", want: "danger", keepsBody: true},
		{name: "json body on a GET (Laravel)", method: "GET", target: "/profile", body: `{"action":"delete"}`, ctype: "application/json", want: "danger", keepsBody: true},
		{name: "json body, array", method: "POST", target: "/profile", body: `{"action":["delete"]}`, ctype: "application/json", want: "danger", keepsBody: true},
		{name: "multipart body", method: "POST", target: "/profile", body: mp, ctype: mpCtype, want: "danger", keepsBody: true},
		{name: "untyped post (Rack)", method: "POST", target: "/profile", body: "action=delete", untyped: true, want: "danger", keepsBody: true},
		{name: "cookie", method: "GET", target: "/profile", headers: cookies("session=abc; action=delete"), want: "danger"},
		{name: "cookie, encoded name", method: "GET", target: "/profile", headers: cookies("session=abc; %61ction=delete"), want: "danger"},
		{name: "cookie, comma", method: "GET", target: "/profile", headers: cookies("session=abc,action=delete"), want: "danger"},
		{name: "header (Spring 6.2)", method: "POST", target: "/profile", headers: map[string][]string{"Action": {"delete"}}, want: "danger"},
		{name: "path policy, form body", method: "POST", target: "/data/x", body: "wipe=all", want: "wipe", keepsBody: true},
		{name: "path policy, cookie", method: "POST", target: "/data/x", headers: cookies("wipe=all"), want: "wipe"},
		{name: "path policy, header", method: "POST", target: "/data/x", headers: map[string][]string{"Wipe": {"all"}}, want: "wipe"},
		{name: "expression, form body", method: "POST", target: "/report", body: "scope=everyone", want: "expr", keepsBody: true},
		{name: "expression, cookie", method: "GET", target: "/report", headers: cookies("scope=everyone"), want: "expr"},
		// A body that cannot be told may carry the parameter: the policy
		// applies where its other matchers match; "danger", which has
		// no other matcher, applies everywhere, and beside "wipe" or
		// "expr" the request is ambiguous.
		{name: "body too large to tell", method: "POST", target: "/data/x", body: bigMP, ctype: bigMPCtype, want: "400 policy", keepsBody: true},
		{name: "body that cannot be told, expression", method: "POST", target: "/report", body: "a=1&a=%zz", want: "400 policy", keepsBody: true},
		{name: "body encoded", method: "POST", target: "/data/x", body: "not gzip", encoding: "gzip", want: "400 policy", keepsBody: true},
		{name: "too large elsewhere", method: "POST", target: "/upload", body: bigMP, ctype: bigMPCtype, want: "danger", keepsBody: true},
		// Not the parameter to any app.
		{name: "other value in the body", method: "POST", target: "/profile", body: "action=view", want: "", keepsBody: true},
		{name: "text/plain body", method: "POST", target: "/profile", body: "action=delete", ctype: "text/plain", want: "", keepsBody: true},
		{name: "untyped put", method: "PUT", target: "/profile", body: "action=delete", untyped: true, want: "", keepsBody: true},
		{name: "other path", method: "POST", target: "/other", body: "wipe=all", want: "", keepsBody: true},
		{name: "cookie of another name", method: "GET", target: "/profile", headers: cookies("xaction=delete; action_x=delete"), want: ""},
		{name: "header of another name", method: "GET", target: "/profile", headers: map[string][]string{"X-Action": {"delete"}}, want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, h) })
	}
}

// browserHeaders are what a browser sends with a form post: many headers
// and cookies, none named like a parameter a policy reads.
func browserHeaders() map[string][]string {
	return map[string][]string{
		"Accept":                    {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
		"Accept-Language":           {"en-US,en;q=0.5"},
		"Accept-Encoding":           {"gzip, deflate, br, zstd"},
		"User-Agent":                {"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"},
		"Referer":                   {"https://shop.example/cart"},
		"Origin":                    {"https://shop.example"},
		"Connection":                {"keep-alive"},
		"Upgrade-Insecure-Requests": {"1"},
		"Sec-Fetch-Dest":            {"document"},
		"Sec-Fetch-Mode":            {"navigate"},
		"Sec-Fetch-Site":            {"same-origin"},
		"Sec-Fetch-User":            {"?1"},
		"Priority":                  {"u=0, i"},
		"Cache-Control":             {"max-age=0"},
		"X-Forwarded-For":           {"192.0.2.1"},
		"X-Forwarded-Proto":         {"https"},
		"Authorization":             {"Bearer x"},
		"Cookie":                    {"PHPSESSID=abc123; _ga=GA1.1.1.1; cart=%7B%22n%22%3A1%7D; consent=a=1,b=2; theme=dark"},
	}
}

// No false positives: a browser's ordinary headers and cookies make no
// query policy apply and no _method refusal.
func TestMatchPolicyBrowserRequestNoParams(t *testing.T) {
	h := paramsHandler(t)
	for _, tc := range []matchCase{
		{name: "form post", method: "POST", target: "/profile", body: "name=x&email=y", headers: browserHeaders(), want: "", keepsBody: true},
		{name: "get", method: "GET", target: "/profile?page=2", headers: browserHeaders(), want: ""},
		{name: "protected form post", method: "POST", target: "/account/settings", body: "name=x", headers: browserHeaders(), want: "account", keepsBody: true},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, h) })
	}
}

// A _method in a cookie or a header, where a policy applies: the app may
// read it (PHP's $_REQUEST, ASP.NET's Request[], Spring 6.2), so the
// request is ambiguous (400); where none applies it passes.
func TestMatchPolicyMethodParamElsewhere(t *testing.T) {
	h := paramsHandler(t)
	for _, tc := range []matchCase{
		{name: "cookie", method: "POST", target: "/account/x", headers: cookies("_method=DELETE"), want: "400"},
		{name: "cookie, php name", method: "POST", target: "/account/x", headers: cookies("s=1; .method=DELETE"), want: "400"},
		{name: "header", method: "POST", target: "/account/x", headers: map[string][]string{"_method": {"DELETE"}}, want: "400"},
		{name: "unprotected", method: "POST", target: "/catalog", headers: cookies("_method=DELETE"), want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, h) })
	}
}

// Which policies read parameters, and what a body that cannot be told is
// taken to carry.
func TestParamPolicies(t *testing.T) {
	h := paramsHandler(t)
	want := map[string]struct {
		reads  bool
		probe  string
		opaque bool
	}{
		"danger":  {true, "action=delete", false},
		"wipe":    {true, "wipe=all", false},
		"expr":    {true, "", true},
		"account": {false, "", false},
	}
	for _, p := range h.Policies {
		w := want[p.Name]
		if p.readsParams != w.reads || p.paramProbe != w.probe || p.opaqueParams != w.opaque {
			t.Errorf("policy %s: readsParams %v, probe %q, opaque %v; want %v, %q, %v",
				p.Name, p.readsParams, p.paramProbe, p.opaqueParams, w.reads, w.probe, w.opaque)
		}
	}
	// A header matcher does not read parameters.
	h = provisioned(t, `{"secret":"0123456789abcdef0123456789abcdef",`+
		`"identity":{"source":"header","user":"U","phone":"P"},"senders":[{"sender":"log"}],"policies":[`+
		`{"name":"api","match":[{"header":{"X-Api":["1"]}}]}]}`)
	if p := h.Policies[0]; p.readsParams {
		t.Error("a header matcher reads parameters")
	}
}

// An unmatched request with stepup's cookie names nowhere costs nothing
// more: checked by TestUnmatchedAllocatesNothing. Here: the header
// readings do not change the request.
func TestParamReadingsLeaveRequest(t *testing.T) {
	h := paramsHandler(t)
	r := preparedBody("GET", "/profile?a=1", nil)
	r.Header = http.Header{"Cookie": {"x=1"}, "Action": {"view"}}
	if p, err := h.MatchPolicy(r); err != nil || p != nil {
		t.Fatalf("MatchPolicy = %v, %v", p, err)
	}
	if r.URL.RawQuery != "a=1" || r.Header.Get("Cookie") != "x=1" {
		t.Fatalf("request changed: %q %v", r.URL.RawQuery, r.Header)
	}
}

// A body that cannot be told, without a policy that applies everywhere:
// each policy applies where the rest of its matchers match.
func TestMatchPolicyUnknownBodyProbe(t *testing.T) {
	h := provisioned(t, `{"secret":"0123456789abcdef0123456789abcdef",`+
		`"identity":{"source":"header","user":"U","phone":"P"},"senders":[{"sender":"log"}],"max_body":1024,"policies":[`+
		`{"name":"wipe","match":[{"path":["/data*"],"query":{"wipe":["all"]}}],"mode":"transaction"},`+
		`{"name":"expr","match":[{"path":["/report*"],"expression":"query({'scope': 'everyone'})"}]}]}`)
	bigMP, bigMPCtype := multipartBody(map[string]string{"file": strings.Repeat("x", 2000)})
	for _, tc := range []matchCase{
		{name: "too large, on the path", method: "POST", target: "/data/x", body: bigMP, ctype: bigMPCtype, want: "wipe", keepsBody: true},
		{name: "encoded, on the path", method: "POST", target: "/data/x", body: "not gzip", encoding: "gzip", want: "wipe", keepsBody: true},
		{name: "too large, elsewhere", method: "POST", target: "/upload", body: bigMP, ctype: bigMPCtype, want: "", keepsBody: true},
		{name: "ambiguous body, expression", method: "POST", target: "/report", body: "a=1&a=%zz", want: "expr", keepsBody: true},
		{name: "readable body, expression", method: "POST", target: "/report", body: "a=1", want: "", keepsBody: true},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, h) })
	}
}
