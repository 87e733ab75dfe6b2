package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// profileHandler has the policy an outside test bypassed with method
// readings PHP makes and Go does not.
func profileHandler(t *testing.T) *Handler {
	return provisioned(t, `{"secret":"0123456789abcdef0123456789abcdef",`+
		`"identity":{"source":"header","user":"U","phone":"P"},"senders":[{"sender":"log"}],"max_body":1024,"policies":[`+
		`{"name":"profile","match":[{"method":["PUT","DELETE"],"path":["/profile*"]}]}]}`)
}

// emptyType is a Content-Type header sent empty ("Content-Type:"),
// which Rack takes for none.
var emptyType = map[string][]string{"Content-Type": {""}}

// raw multipart bodies, boundary XX, as 03_method_override.sh sends them.
const (
	mpType = "multipart/form-data; boundary=XX"
	mpEnd  = "--XX--\r\n"
)

func mpPart(disposition, value string) string {
	return "--XX\r\nContent-Disposition: " + disposition + "\r\n\r\n" + value + "\r\n"
}

// The _method readings of PHP (Symfony, Laravel) that Go's parsers do not
// make: a name cut at NUL, a JSON body, and multipart bodies whose parts
// PHP reads otherwise. A body stepup cannot read the way every app does
// is taken to ask for the method.
func TestMatchPolicyPHPMethodReadings(t *testing.T) {
	h := profileHandler(t)
	plainMP, plainMPType := multipartBody(map[string]string{"payment_method": "DELETE", "x_method": "DELETE"})
	for _, tc := range []matchCase{
		// Readings the app makes: the policy applies.
		{name: "query _method cut at NUL", method: "POST", target: "/profile?_method%00=DELETE", want: "profile"},
		{name: "query _method cut at NUL, more after", method: "POST", target: "/profile?a=1&_method%00x=delete", want: "profile"},
		{name: "form _method cut at NUL", method: "POST", target: "/profile", body: "_method%00x=DELETE", want: "profile", keepsBody: true},
		{name: "json _method", method: "POST", target: "/profile", body: `{"_method":"DELETE"}`, ctype: "application/json", want: "profile", keepsBody: true},
		{name: "json _method lower-case", method: "POST", target: "/profile", body: `{"name":"x","_method":"delete"}`, ctype: "application/json; charset=utf-8", want: "profile", keepsBody: true},
		{name: "json _method, +json type", method: "POST", target: "/profile", body: `{"_method":"PUT"}`, ctype: "application/vnd.api+json", want: "profile", keepsBody: true},
		{name: "json _method, text/json (Laravel's /json)", method: "POST", target: "/profile", body: `{"_method":"DELETE"}`, ctype: "text/json", want: "profile", keepsBody: true},
		{name: "multipart attachment disposition", method: "POST", target: "/profile", body: mpPart(`attachment; name="_method"`, "DELETE") + mpEnd, ctype: mpType, want: "profile", keepsBody: true},
		{name: "multipart name parameter twice", method: "POST", target: "/profile", body: mpPart(`form-data; name="x"; name="_method"`, "DELETE") + mpEnd, ctype: mpType, want: "profile", keepsBody: true},
		{name: "multipart parameter without =", method: "POST", target: "/profile", body: mpPart(`form-data; x; name="_method"`, "DELETE") + mpEnd, ctype: mpType, want: "profile", keepsBody: true},
		{name: "multipart single-quoted name", method: "POST", target: "/profile", body: mpPart(`form-data; name='_method'`, "DELETE") + mpEnd, ctype: mpType, want: "profile", keepsBody: true},
		{name: "multipart part after the closing delimiter", method: "POST", target: "/profile", body: mpPart(`form-data; name="x"`, "1") + mpEnd + mpPart(`form-data; name="_method"`, "DELETE") + mpEnd, ctype: mpType, want: "profile", keepsBody: true},
		{name: "multipart delimiter after a bare LF", method: "POST", target: "/profile", body: mpPart(`form-data; name="x"`, "1\n"+strings.TrimSuffix(mpPart(`form-data; name="_method"`, "DELETE"), "\r\n")) + mpEnd, ctype: mpType, want: "profile", keepsBody: true},
		{name: "multipart ; in a quoted filename", method: "POST", target: "/profile", body: mpPart(`form-data; name="f"; filename="a; name=_method "`, "DELETE") + mpEnd, ctype: mpType, want: "profile", keepsBody: true},
		{name: "multipart boundary PHP takes elsewhere", method: "POST", target: "/profile", body: mpPart(`form-data; name="x"`, "1") + mpEnd, ctype: `multipart/form-data; x="boundary=YY"; boundary=XX`, want: "profile", keepsBody: true},
		// R3-6: Express's method-override takes an array's first element.
		{name: "json _method array", method: "POST", target: "/profile", body: `{"_method":["DELETE"]}`, ctype: "application/json", want: "profile", keepsBody: true},
		{name: "json _method array of PUT", method: "POST", target: "/profile", body: `{"_method":["put"]}`, ctype: "application/json", want: "profile", keepsBody: true},
		{name: "json _method array of two", method: "POST", target: "/profile", body: `{"_method":["DELETE","POST"]}`, ctype: "application/json", want: "400", keepsBody: true},
		{name: "json _method object (any method)", method: "POST", target: "/profile", body: `{"_method":{"0":"DELETE"}}`, ctype: "application/json", want: "profile", keepsBody: true},
		{name: "json _method number (any method)", method: "POST", target: "/profile", body: `{"_method":1}`, ctype: "application/json", want: "profile", keepsBody: true},
		{name: "json _method array of arrays (any method)", method: "POST", target: "/profile", body: `{"_method":[["DELETE"]]}`, ctype: "application/json", want: "profile", keepsBody: true},
		// R3-1: Laravel's isJson() finds "+json" in a parameter; a form
		// type that holds "json" cannot be told (any method), another
		// type that holds it is JSON.
		{name: "form type with +json (Laravel reads json)", method: "POST", target: "/profile", body: `{"_method":"DELETE"}`, ctype: "application/x-www-form-urlencoded;charset=utf-8;v=+json", want: "profile", keepsBody: true},
		{name: "form type with quoted /json", method: "POST", target: "/profile", body: `{"_method":"DELETE"}`, ctype: `application/x-www-form-urlencoded; v="a/json"`, want: "profile", keepsBody: true},
		{name: "text/plain with +json", method: "POST", target: "/profile", body: `{"_method":"DELETE"}`, ctype: "text/plain; v=+json", want: "profile", keepsBody: true},
		{name: "text/x-json (Rails)", method: "POST", target: "/profile", body: `{"_method":"DELETE"}`, ctype: "text/x-json", want: "profile", keepsBody: true},
		{name: "json malformed", method: "POST", target: "/profile", body: `{"_method":"DELETE"`, ctype: "application/json", want: "profile", keepsBody: true},
		{name: "json key twice", method: "POST", target: "/profile", body: `{"_method":"GET","_method":"DELETE"}`, ctype: "application/json", want: "profile", keepsBody: true},
		{name: "json too large to tell", method: "POST", target: "/profile", body: `{"x":"` + strings.Repeat("x", 2000) + `"}`, ctype: "application/json", want: "profile", keepsBody: true},
		{name: "post without a type (Rack reads a form)", method: "POST", target: "/profile", body: "_method=DELETE", untyped: true, want: "profile", keepsBody: true},
		// Rack 2 (Rack::MethodOverride, Rails <= 7.0, Sinatra) and qs
		// (Express's method-override on req.body._method).
		{name: "query [_method] (Rack 2, qs)", method: "POST", target: "/profile?[_method]=DELETE", want: "profile"},
		{name: "query _method] (Rack 2)", method: "POST", target: "/profile?_method%5D=DELETE", want: "profile"},
		{name: "form [_method] (Rack 2, qs)", method: "POST", target: "/profile", body: "[_method]=DELETE", want: "profile", keepsBody: true},
		{name: "form %5B_method%5D (qs)", method: "POST", target: "/profile", body: "%5B_method%5D=DELETE", want: "profile", keepsBody: true},
		{name: "form _method] (Rack 2)", method: "POST", target: "/profile", body: "_method]=DELETE", want: "profile", keepsBody: true},
		{name: "form ]_method (Rack 2)", method: "POST", target: "/profile", body: "]_method=DELETE", want: "profile", keepsBody: true},
		{name: "form [[_method]] (Rack 2)", method: "POST", target: "/profile", body: "[[_method]]=DELETE", want: "profile", keepsBody: true},
		{name: "multipart ]]_method]] (Rack 2)", method: "POST", target: "/profile", body: mpPart(`form-data; name="]]_method]]"`, "DELETE") + mpEnd, ctype: mpType, want: "profile", keepsBody: true},
		{name: "post without a type, [_method] (Rack 2)", method: "POST", target: "/profile", body: "[_method]=DELETE", untyped: true, want: "profile", keepsBody: true},
		// Types Rack reads as a form or multipart, and types that do not
		// parse: read as Rack does, or taken to ask for any method.
		{name: "empty type (Rack reads a form)", method: "POST", target: "/profile", body: "_method=DELETE", untyped: true, headers: emptyType, want: "profile", keepsBody: true},
		{name: "blank type", method: "POST", target: "/profile", body: "_method=put", untyped: true, headers: map[string][]string{"Content-Type": {"  "}}, want: "profile", keepsBody: true},
		{name: "empty type, _method twice", method: "POST", target: "/profile", body: "_method=GET&_method=DELETE", untyped: true, headers: emptyType, want: "400", keepsBody: true},
		{name: "type ;", method: "POST", target: "/profile", body: "_method=DELETE", ctype: ";", want: "profile", keepsBody: true},
		{name: "type garbage", method: "POST", target: "/profile", body: "_method=DELETE", ctype: "form", want: "profile", keepsBody: true},
		{name: "type list", method: "POST", target: "/profile", body: "_method=DELETE", ctype: "text/plain, application/x-www-form-urlencoded", want: "profile", keepsBody: true},
		{name: "type twice", method: "POST", target: "/profile", body: "_method=DELETE", untyped: true, headers: map[string][]string{"Content-Type": {"text/plain", "text/plain"}}, want: "profile", keepsBody: true},
		{name: "multipart/mixed", method: "POST", target: "/profile", body: mpPart(`form-data; name="_method"`, "DELETE") + mpEnd, ctype: "multipart/mixed; boundary=XX", want: "profile", keepsBody: true},
		{name: "multipart/related", method: "POST", target: "/profile", body: mpPart(`form-data; name="_method"`, "PUT") + mpEnd, ctype: "Multipart/Related; boundary=XX", want: "profile", keepsBody: true},
		{name: "multipart/mixed without a boundary", method: "POST", target: "/profile", body: mpPart(`form-data; name="_method"`, "DELETE") + mpEnd, ctype: "multipart/mixed", want: "profile", keepsBody: true},
		{name: "multipart/mixed, non-canonical", method: "POST", target: "/profile", body: mpPart(`form-data; name='_method'`, "DELETE") + mpEnd, ctype: "multipart/mixed; boundary=XX", want: "profile", keepsBody: true},

		// Not readings of DELETE or PUT: the policy does not apply.
		{name: "json _method GET", method: "POST", target: "/profile", body: `{"_method":"GET"}`, ctype: "application/json", want: "", keepsBody: true},
		{name: "json without _method", method: "POST", target: "/profile", body: `{"name":"x","payment_method":"DELETE"}`, ctype: "application/json", want: "", keepsBody: true},
		{name: "json _method nested", method: "POST", target: "/profile", body: `{"a":{"_method":"DELETE"}}`, ctype: "application/json", want: "", keepsBody: true},
		{name: "json _method null", method: "POST", target: "/profile", body: `{"_method":null}`, ctype: "application/json", want: "", keepsBody: true},
		{name: "json _method array of GET", method: "POST", target: "/profile", body: `{"_method":["GET"]}`, ctype: "application/json", want: "", keepsBody: true},
		{name: "json _METHOD", method: "POST", target: "/profile", body: `{"_METHOD":"DELETE"}`, ctype: "application/json", want: "", keepsBody: true},
		{name: "json _method elsewhere", method: "POST", target: "/catalog", body: `{"_method":"DELETE"}`, ctype: "application/json", want: "", keepsBody: true},
		{name: "query name not cut", method: "POST", target: "/profile?_method%01=DELETE&x_method=DELETE", want: ""},
		{name: "form names not _method", method: "POST", target: "/profile", body: "x_method=DELETE&_method%01=DELETE&_methods=PUT&x%5B_method%5D=PUT&%5Bx%5D_method=PUT&_method%5B=PUT", want: "", keepsBody: true},
		{name: "multipart without _method", method: "POST", target: "/profile", body: plainMP, ctype: plainMPType, want: "", keepsBody: true},
		{name: "text/plain body", method: "POST", target: "/profile", body: "_method=DELETE", ctype: "text/plain", want: "", keepsBody: true},
		{name: "post without a type, no _method", method: "POST", target: "/profile", body: "reason=moving", untyped: true, want: "", keepsBody: true},
		{name: "empty type, no _method", method: "POST", target: "/profile", body: "reason=moving", untyped: true, headers: emptyType, want: "", keepsBody: true},
		{name: "empty type, _method GET", method: "POST", target: "/profile", body: "_method=GET", untyped: true, headers: emptyType, want: "", keepsBody: true},
		{name: "multipart/mixed without _method", method: "POST", target: "/profile", body: mpPart(`form-data; name="x"`, "DELETE") + mpEnd, ctype: "multipart/mixed; boundary=XX", want: "", keepsBody: true},
		{name: "xml body", method: "POST", target: "/profile", body: "_method=DELETE", ctype: "application/xml; charset=utf-8", want: "", keepsBody: true},
		{name: "octet-stream body", method: "POST", target: "/profile", body: "_method=DELETE", ctype: "Application/Octet-Stream", want: "", keepsBody: true},

		// Readings that disagree.
		{name: "query cut at NUL and header disagree", method: "POST", target: "/profile?_method%00=PUT", headers: map[string][]string{"X-Http-Method-Override": {"DELETE"}}, want: "400"},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, h) })
	}
}

// pathHandler has policies on paths, as 09_path_params.sh bypassed them,
// and other matchers that look at the path.
func pathHandler(t *testing.T) *Handler {
	return provisioned(t, `{"secret":"0123456789abcdef0123456789abcdef",`+
		`"identity":{"source":"header","user":"U","phone":"P"},"senders":[{"sender":"log"}],"policies":[`+
		`{"name":"account","match":[{"path":["/account*"]}]},`+
		`{"name":"settings","match":[{"path":["/settings"]}]},`+
		`{"name":"admin-delete","match":[{"method":["DELETE"],"path":["/admin/*"]}]},`+
		`{"name":"billing","match":[{"path_regexp":{"pattern":"^/billing(/|$)"}}]},`+
		`{"name":"reports","match":[{"expression":"path('/reports/*') && method('GET')"}]}]}`)
}

// A policy applies if its matchers match under any reading of the path an
// app may make: path parameters stripped from every segment (Tomcat,
// Jetty), backslashes as slashes, one more round of percent-decoding,
// and dot segments resolved after each.
func TestMatchPolicyPathReadings(t *testing.T) {
	h := pathHandler(t)
	for _, tc := range []matchCase{
		// As 09_path_params.sh sent them.
		{name: "path parameter in the first segment", target: "/;jsessionid=x/account", want: "account"},
		{name: "dot segment with a parameter", target: "/x/..;/account", want: "account"},
		{name: "double-encoded dot", target: "/%252e/account", want: "account"},
		{name: "encoded backslash", target: "/%5caccount", want: "account"},

		{name: "encoded backslash, upper case", target: "/%5Caccount/x", want: "account"},
		{name: "backslash dot segments", target: "/x%5c..%5caccount", want: "account"},
		{name: "escaped parameter", target: "/x/..%3b/account", want: "account"},
		{name: "parameters in every segment", target: "/a;b/c;d/..;e/..;f/account;g", want: "account"},
		{name: "double-encoded dot segment", target: "/x/%252e%252e/account", want: "account"},
		{name: "double-encoded dots, upper case", target: "/x/%252E%252E/Account", want: "account"},
		{name: "double-encoded slash", target: "/x%252f..%252faccount", want: "account"},
		{name: "backslash and parameter", target: "/x%5c..;/account", want: "account"},
		{name: "double-encoded dots and parameter", target: "/x/%252e%252e;y/account", want: "account"},
		{name: "double-encoded backslash", target: "/x/..%255caccount", want: "account"},
		{name: "exact path with a parameter", target: "/settings;jsessionid=1", want: "settings"},
		{name: "exact path, parameter elsewhere", target: "/x/..;/settings", want: "settings"},
		{name: "path_regexp with a parameter", target: "/billing;x", want: "billing"},
		{name: "path_regexp behind a dot segment", target: "/;x/..;/billing/y", want: "billing"},
		{name: "expression with a parameter", target: "/reports;x/2024", want: "reports"},
		{name: "expression behind an encoded backslash", target: "/x%5c..%5creports/2024", want: "reports"},
		{name: "method and path readings together", method: "POST", target: "/x/..;/admin/users?_method=DELETE", want: "admin-delete"},

		// Front controllers: php_fastcgi's PATH_INFO.
		{name: "front controller", target: "/index.php/account/settings", want: "account"},
		{name: "front controller, upper case", target: "/INDEX.PHP/Account", want: "account"},
		{name: "front controller in a directory", target: "/app/index.php/account", want: "account"},
		{name: "front controller, exact path", target: "/index.php/settings", want: "settings"},
		{name: "front controller, escaped slash", target: "/index.php%2faccount", want: "account"},
		{name: "front controller and a parameter", target: "/index.php/x/..;/account", want: "account"},
		{name: "front controller, double-encoded", target: "/index.php%252faccount", want: "account"},
		{name: "front controller, backslash", target: `/index.php%5caccount`, want: "account"},
		{name: "front controller, later segment", target: "/a.php.bak/index.php/account", want: "account"},
		{name: "front controller, path_regexp", target: "/index.php/billing/7", want: "billing"},
		{name: "front controller, expression", target: "/index.php/reports/2024", want: "reports"},
		{name: "front controller, method reading", method: "POST", target: "/index.php/admin/users?_method=DELETE", want: "admin-delete"},

		// Readings that reach no policy.
		{name: "front controller elsewhere", target: "/index.php/catalog", want: ""},
		{name: "front controller alone", target: "/index.php", want: ""},
		{name: "front controller, unprotected route", target: "/shop.php/catalog/account", want: ""},
		{name: "not a .php segment", target: "/app.phpx/account", want: ""},
		{name: "parameter elsewhere", target: "/x;y/catalog", want: ""},
		{name: "backslash elsewhere", target: "/%5ccatalog", want: ""},
		{name: "double-encoded elsewhere", target: "/%252e/catalog", want: ""},
		{name: "dot segment out of a protected path", target: "/catalog;/../x", want: ""},
		{name: "decoded once more only", target: "/%2525/account", want: ""},
		{name: "not an escape after decoding", target: "/a%25zz/account", want: ""},
		{name: "exact path, longer", target: "/settings;x/y", want: ""},
		{name: "path_regexp, longer name", target: "/billing-report;x", want: ""},
		{name: "expression, another method", method: "POST", target: "/reports;x/2024", want: ""},
		{name: "method reading missing", method: "POST", target: "/x/..;/admin/users", want: ""},
	} {
		if tc.method == "" {
			tc.method = "GET"
		}
		t.Run(tc.name, func(t *testing.T) { tc.run(t, h) })
	}
}

// A policy that excludes paths (not path) applies under a reading that
// leaves the excluded path.
func TestMatchPolicyPathReadingsNot(t *testing.T) {
	h := provisioned(t, `{"secret":"0123456789abcdef0123456789abcdef",`+
		`"identity":{"source":"header","user":"U","phone":"P"},"senders":[{"sender":"log"}],"policies":[`+
		`{"name":"private","match":[{"not":[{"path":["/public*"]}]}]}]}`)
	for _, tc := range []matchCase{
		{name: "out of the public path", method: "GET", target: "/public/..;/admin", want: "private"},
		{name: "double-encoded out of it", method: "GET", target: "/public/%252e%252e/admin", want: "private"},
		{name: "inside it", method: "GET", target: "/public/x;y/z", want: ""},
		{name: "plain public path", method: "GET", target: "/public/app.css", want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, h) })
	}
}

// The other readings of a path, in the order they are tried.
func TestPathStateReadings(t *testing.T) {
	for path, want := range map[string][]string{
		"/account":               nil,
		"/caf\u00e9/a.b-c":       nil,
		"*":                      nil,
		"/;jsessionid=x/account": {"//account"},
		"/x/..;/account":         {"/account"},
		"/%2e/account":           {"/account"},
		`/\account`:              {"//account"},
		`/x\..;/account`:         {"/x/..;/account", `/x\../account`, "/account"},
		"/x/%2e%2e;y/account":    {"/x/..;y/account", "/x/%2e%2e/account", "/account"},
		"/a%zz/%41":              {"/a%zz/A"},
		"/account;a/b;c":         {"/account/b"},
		"/index.php/account":     {"/account"},
		"/x/Index.PHP":           nil,
		"/a.phpx/b.php/c":        {"/x/b.php/c", "/c"},
		"/index.php/x;y/account": {"/x;y/account", "/index.php/x/account", "/x/account"},
	} {
		var ps pathState
		ps.init(path)
		if got := ps.readings[:ps.n]; strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("readings of %q = %q, want %q", path, got, want)
		}
	}
}

// shadowHandler has the policies an outside test shadowed: a weaker
// policy (monitor, or session) listed before a stronger one, which a
// request matched only under another reading of its path or method
// while the app executed the stronger policy's action.
func shadowHandler(t *testing.T) *Handler {
	return provisioned(t, `{"secret":"0123456789abcdef0123456789abcdef",`+
		`"identity":{"source":"header","user":"U","phone":"P"},"senders":[{"sender":"log"}],"max_body":1024,"policies":[`+
		`{"name":"admin-rollout","match":[{"path":["/admin*"]}],"mode":"monitor"},`+
		`{"name":"account","match":[{"path":["/account*"]}]},`+
		`{"name":"view-orders","match":[{"method":["GET"],"path":["/orders*"]}]},`+
		`{"name":"checkout","match":[{"method":["POST"],"path":["/checkout*"]}],"mode":"transaction"},`+
		`{"name":"place-order","match":[{"method":["POST"],"path":["/orders*"]}],"mode":"transaction"},`+
		`{"name":"admin-users","match":[{"method":["DELETE"],"path":["/admin/users*"]}]},`+
		`{"name":"account-close","match":[{"path":["/account/close*"]}],"mode":"transaction"}]}`)
}

// shadowCases are requests that matched a weaker policy under one
// reading while the app ran a stronger one's action; strong is the
// stronger policy.
var shadowCases = []struct {
	matchCase
	strong string
}{
	// A monitor policy before a transaction: the monitor never shadows.
	{matchCase{name: "monitor, parameter dot segment", method: "POST", target: "/checkout.php/..;/admin", body: "amount=1", want: "checkout"}, "checkout"},
	{matchCase{name: "monitor, double-encoded dots", method: "POST", target: "/checkout.php/%252e%252e/admin", body: "amount=1", want: "checkout"}, "checkout"},
	{matchCase{name: "monitor, plain parameter dot segment", method: "POST", target: "/checkout/..;/admin", body: "amount=1", want: "checkout"}, "checkout"},
	// A session policy before a transaction: the readings disagree.
	{matchCase{name: "session, parameter dot segment", method: "POST", target: "/checkout/..;/account", body: "amount=1", want: "400 policy"}, "checkout"},
	{matchCase{name: "session, encoded backslashes", method: "POST", target: "/checkout%5c..%5caccount", body: "amount=1", want: "400 policy"}, "checkout"},
	{matchCase{name: "session, double-encoded slashes", method: "POST", target: "/checkout%252f..%252faccount", body: "amount=1", want: "400 policy"}, "checkout"},
	{matchCase{name: "session, front controller", method: "POST", target: "/checkout.php/..;/account", body: "amount=1", want: "400 policy"}, "checkout"},
	// A GET session policy before a POST transaction: method readings.
	{matchCase{name: "override header GET", method: "POST", target: "/orders", headers: map[string][]string{"X-Http-Method-Override": {"GET"}}, body: "item=1", want: "400 policy"}, "place-order"},
	{matchCase{name: "X-HTTP-Method GET", method: "POST", target: "/orders", headers: map[string][]string{"X-Http-Method": {"get"}}, body: "item=1", want: "400 policy"}, "place-order"},
	{matchCase{name: "query _method GET", method: "POST", target: "/orders?_method=GET", body: "item=1", want: "400 policy"}, "place-order"},
	{matchCase{name: "form _method GET", method: "POST", target: "/orders", body: "item=1&_method=GET", want: "400 policy", keepsBody: true}, "place-order"},
	{matchCase{name: "json _method GET", method: "POST", target: "/orders", body: `{"_method":"GET"}`, ctype: "application/json", want: "400 policy", keepsBody: true}, "place-order"},
	{matchCase{name: "form too large to tell", method: "POST", target: "/orders", body: "item=" + strings.Repeat("x", 2000), want: "400 policy", keepsBody: true}, "place-order"},
	{matchCase{name: "json that cannot be told", method: "POST", target: "/orders", body: `{"_method":"GET","_method":"POST"}`, ctype: "application/json", want: "400 policy", keepsBody: true}, "place-order"},
	{matchCase{name: "empty type, _method GET", method: "POST", target: "/orders", body: "_method=GET", untyped: true, headers: emptyType, want: "400 policy", keepsBody: true}, "place-order"},
	{matchCase{name: "multipart/mixed _method GET", method: "POST", target: "/orders", body: mpPart(`form-data; name="_method"`, "GET") + mpEnd, ctype: "multipart/mixed; boundary=XX", want: "400 policy", keepsBody: true}, "place-order"},
	{matchCase{name: "HEAD override", method: "POST", target: "/orders", headers: map[string][]string{"X-Http-Method-Override": {"HEAD"}}, want: "400 policy"}, "place-order"},
	// Monitor before a session policy on the method.
	{matchCase{name: "monitor before a DELETE policy", method: "DELETE", target: "/admin/users/7", want: "admin-users"}, "admin-users"},
	{matchCase{name: "monitor before a DELETE override", method: "POST", target: "/admin/users/7?_method=DELETE", want: "admin-users"}, "admin-users"},
}

// Every reading of a request that shadowed a stronger policy is refused
// (400) or gets the stronger policy, never the weaker one.
func TestMatchPolicyNoShadowing(t *testing.T) {
	h := shadowHandler(t)
	for _, tc := range shadowCases {
		if tc.want != "400 policy" && tc.want != tc.strong {
			t.Fatalf("%s: the case wants %s, neither 400 nor the stronger %s", tc.name, tc.want, tc.strong)
		}
		t.Run(tc.name, func(t *testing.T) { tc.run(t, h) })
	}
}

// Where no reading leaves the policy, or all stay under one, the order
// written decides as before.
func TestMatchPolicyOrderKept(t *testing.T) {
	h := shadowHandler(t)
	for _, tc := range []matchCase{
		{name: "plain checkout", method: "POST", target: "/checkout", body: "amount=1", want: "checkout"},
		{name: "checkout with a parameter", method: "POST", target: "/checkout;jsessionid=1", body: "amount=1", want: "checkout"},
		{name: "plain orders GET", method: "GET", target: "/orders/7", want: "view-orders"},
		{name: "plain orders HEAD", method: "HEAD", target: "/orders/7", want: "view-orders"},
		{name: "plain orders POST", method: "POST", target: "/orders", body: "item=1", want: "place-order", keepsBody: true},
		{name: "orders POST, override to POST", method: "POST", target: "/orders", headers: map[string][]string{"X-Http-Method-Override": {"POST"}}, want: "place-order"},
		{name: "orders POST, text body", method: "POST", target: "/orders", body: "_method=GET", ctype: "text/plain", want: "place-order", keepsBody: true},
		{name: "GET orders with a parameter", method: "GET", target: "/orders;x/7", want: "view-orders"},
		{name: "overlapping, first written wins", method: "GET", target: "/account/close", want: "account"},
		{name: "overlapping, under every reading", method: "POST", target: "/x/..;/account/close;y", want: "account"},
		{name: "monitor alone", method: "GET", target: "/admin/x", want: "admin-rollout"},
		{name: "monitor alone, GET of users", method: "GET", target: "/admin/users", want: "admin-rollout"},
		{name: "session reading, monitor as sent", method: "GET", target: "/admin/..;/account", want: "account"},
		{name: "unprotected", method: "GET", target: "/catalog;x", want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, h) })
	}
}

// The engine answers readings under different policies with 400, and
// the error it records names both policies and both readings; the
// request goes no further.
func TestAmbiguousPolicyRefused(t *testing.T) {
	h := shadowHandler(t)
	newRequest := func() *http.Request {
		r := preparedBody("POST", "/checkout/..;/account", strings.NewReader("amount=1"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("U", "alice")
		r.Header.Set("P", "+14155550100")
		return r
	}
	_, err := h.MatchPolicy(newRequest())
	for _, want := range []string{"policy checkout", "policy account", `"/checkout/..;/account"`, `"/account"`, "cannot know which"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("the error %v does not say %s", err, want)
		}
	}
	w := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		t.Error("an ambiguous request reached the app")
		return nil
	})
	if err := h.ServeHTTP(w, newRequest(), next); err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", w.Code)
	}
}
