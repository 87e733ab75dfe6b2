package stepup

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddy-stepup/caddy-stepup/stepup/fields"
)

// MethodOverrideHeaders are the headers apps take a method override
// from, in canonical form: X-HTTP-Method-Override (Symfony, Laravel,
// Rails' Rack::MethodOverride, Express's method-override, Google APIs),
// X-HTTP-Method (ASP.NET Web API, OData) and X-Method-Override.
var MethodOverrideHeaders = [...]string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// MethodParam is the query or form field Symfony, Laravel and Rails take
// a method override from ("_method=DELETE"). Symfony and Laravel read
// it from the query as well as from a form body (Laravel from a JSON
// body too); Rails from the body.
const MethodParam = "_method"

// ErrAmbiguousMethod is returned, wrapped, for a request whose method
// overrides ask for different methods: which one the app executes
// depends on which override it reads, so stepup cannot bind a code to
// it. Such a request is refused (400) where a policy applies.
var ErrAmbiguousMethod = errors.New("stepup: the request's method overrides ask for different methods")

// Methods are the methods an app may execute for a request, depending on
// how it reads it. Apps differ: Symfony and Laravel upper-case the
// method ("post" is POST), most frameworks answer HEAD with the GET
// handler, and many honour a method override (MethodOverrideHeaders,
// MethodParam), some only on a POST, some not at all. A policy must
// apply if it applies under any of these readings.
type Methods struct {
	// Sent is the request's method, upper-cased. (Go keeps the case the
	// client sent.)
	Sent string
	// Overrides are the methods the override headers and the _method
	// query parameter ask for, upper-cased, each once, in the order
	// found; nil when there are none. More than one is ambiguous.
	// Overrides in the body are not read here (see MethodParam):
	// a transaction's code binds the body bytes, and so those.
	Overrides []string
}

// RequestMethods returns the methods an app may execute for r, and
// ErrAmbiguousMethod when its overrides disagree. It reads the request
// line, the override headers and the query, never the body, and
// allocates nothing for a request without overrides.
func RequestMethods(r *http.Request) (Methods, error) {
	m := Methods{Sent: strings.ToUpper(r.Method)}
	for _, name := range MethodOverrideHeaders {
		for _, v := range r.Header[name] {
			for v != "" {
				var one string
				one, v, _ = strings.Cut(v, ",")
				m.addOverride(one)
			}
		}
	}
	QueryMethodOverrides(r.URL.RawQuery, m.addOverride)
	if len(m.Overrides) > 1 {
		return m, ErrAmbiguousMethod
	}
	return m, nil
}

func (m *Methods) addOverride(v string) {
	v = strings.ToUpper(strings.TrimSpace(v))
	if v != "" && !contains(m.Overrides, v) {
		m.Overrides = append(m.Overrides, v)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Effective is the method the app executes if it honours the override,
// with HEAD read as GET: the override, else Sent. With ambiguous
// overrides it is the first.
func (m Methods) Effective() string {
	if len(m.Overrides) > 0 {
		return AsGET(m.Overrides[0])
	}
	return AsGET(m.Sent)
}

// Key is what a code or grant bound to the method binds: Sent, then each
// override, HEAD read as GET ("POST", "POST DELETE", "GET" for a HEAD).
// Two requests with the same Key are executed alike by every app,
// whether or not it honours overrides.
func (m Methods) Key() string {
	if len(m.Overrides) == 0 {
		return AsGET(m.Sent)
	}
	var b strings.Builder
	b.WriteString(AsGET(m.Sent))
	for _, o := range m.Overrides {
		b.WriteByte(' ')
		b.WriteString(AsGET(o))
	}
	return b.String()
}

// AsGET returns GET for HEAD, and method otherwise: apps answer a HEAD
// with the GET handler.
func AsGET(method string) string {
	if method == http.MethodHead {
		return http.MethodGet
	}
	return method
}

// QueryMethodOverrides calls add with each value of a _method field of
// an application/x-www-form-urlencoded text (a query), read as PHP reads
// it: "&" or ";" between fields, and names as IsMethodParam reads them
// ("_method", ".method", "%5Fmethod", "_method%00x", "[_method]" and
// "_method]" are all _method, and "_method[...]" counts too). A text that cannot hold such a field
// is passed over without allocating.
func QueryMethodOverrides(text string, add func(string)) {
	if !strings.Contains(text, "method") && !strings.Contains(text, "%") {
		return
	}
	for text != "" {
		var field string
		i := strings.IndexAny(text, "&;")
		if i < 0 {
			field, text = text, ""
		} else {
			field, text = text[:i], text[i+1:]
		}
		name, value, _ := strings.Cut(field, "=")
		if !strings.Contains(name, "%") && !strings.Contains(name, "method") {
			continue
		}
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		if !IsMethodParam(name) {
			continue
		}
		if v, err := url.QueryUnescape(value); err == nil {
			value = v
		}
		add(value)
	}
}

// methodParams is MethodParam as a request parameter name; it remembers
// how the cookies and headers it sees read (fields.Params.Remembering).
var methodParams = fields.NewParams(MethodParam).Remembering()

// MethodParamElsewhere reports whether r carries a _method parameter in
// a cookie or a header (fields.EachOtherParam: PHP's $_REQUEST and
// ASP.NET's Request[] read cookies as parameters, Spring 6.2 binds
// headers): an app that reads its method override from its merged
// parameters may execute another method than the one stepup sees, so a
// request that a policy applies to is refused as ambiguous
// (ErrAmbiguousMethod), and a grant or replay is not used on one. Only
// called where a policy applies: it costs a walk of the cookies and
// headers.
func MethodParamElsewhere(r *http.Request) bool {
	i, _ := methodParams.Elsewhere(r)
	return i >= 0
}

// IsMethodParam reports whether a form field name, decoded, is _method
// to some app: as it is, as PHP files names (fields.PHPName: cut at NUL,
// leading spaces dropped, " " and "." as "_", an array "_method[...]"),
// as Rack 2 (Rack::MethodOverride under Rails <= 7.0, Sinatra) reads
// "[_method]", "_method]", "]_method" and "[[_method]]", and as qs
// (Express) reads "[_method]". It is fields.HasTopName, the one reading
// of names that the body's _method (fields.Reader.BodyValues) uses too.
func IsMethodParam(name string) bool {
	return fields.HasTopName(name, MethodParam)
}
