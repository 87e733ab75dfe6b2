package caddymodule

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-stepup/caddy-stepup/stepup/fields"
)

// How MatchPolicy reads a request's query. Caddy's query matcher (and
// an expression's query(), a {query.x} placeholder) sees Go's reading:
// pairs split on '&' only, names as sent, and a query Go cannot parse
// (a ';', a bad escape) matches nothing at all. The app behind stepup
// reads it its way: PHP cuts a name at NUL and drops its leading spaces
// ("action%00x", "+action"), Rack 2 splits on ';' too and reads
// "[action]", "action]", "]action" and "[[action]]" as action, qs reads
// "[action]", Spring "!action" and "action.x". So a policy whose
// matchers may look at the query is also run under one more reading of
// it: every pair (split on '&' and ';', decoded as PHP decodes, leaving
// a bad escape as it is) under each name some app files it under
// (fields.TopKeys), written as Go reads it. The readings fall under
// policies as the method and path readings do (MatchPolicy).

// maxQueryPairs bounds the pairs of a query read for its other reading:
// more than any app behind stepup reads (PHP's max_input_vars and qs's
// parameterLimit are 1000, Rack's params limit 4096, Tomcat's
// maxParameterCount at most 10000).
const maxQueryPairs = 10000

// Where the apps read a parameter besides the query. Laravel's input(),
// PHP's $_REQUEST, Rack's params, Servlet's getParameter() and Spring's
// @RequestParam merge the query with a form body (Laravel and Rails a
// JSON body too), PHP's $_REQUEST with no php.ini and ASP.NET's
// Request[] read cookies, and Spring 6.2 binds headers
// (fields.EachOtherParam). So a policy whose matchers may read
// parameters (a query matcher, an expression, a module we do not know:
// matchersReadParams) is also run under one more reading: the query's
// readings with every cookie and header parameter added, and, when that
// does not match either, with the body's parameters too (the body read
// by the strict field reader, under max_body; fields.Reader.BodyParams),
// every name under each name an app files it under (fields.TopKeys). A
// body that cannot be told (larger than max_body, content-encoded, one
// parsers read differently) may carry any parameter: the policy then
// applies when its matchers match with the parameters its query matchers
// name (queryProbe), and always when other matchers may read them
// (opaqueParams). Only policies that may read parameters pay for this,
// on the requests their other matchers leave to it.

// queryState is the other reading of a request's query, computed once,
// when a policy that may read the query is tried on a request with one,
// and the readings with the request's other parameters.
type queryState struct {
	done bool
	// alt is the other reading as a RawQuery; "" when the query has none
	// besides the query as sent.
	alt string

	// params is the query's readings with the cookies' and headers'
	// parameters; "" when it adds nothing.
	paramsDone bool
	params     string
	// body is params with the body's parameters; "" when the body adds
	// none. bodyUnknown: the body could not be told.
	bodyDone, bodyUnknown bool
	body                  string
}

// base returns the query's readings as a RawQuery.
func (qs *queryState) base(raw string) string {
	qs.init(raw)
	if qs.alt != "" {
		return qs.alt
	}
	return raw
}

// initParams computes the reading with the cookies' and headers'
// parameters.
func (qs *queryState) initParams(r *http.Request) {
	if qs.paramsDone {
		return
	}
	qs.paramsDone = true
	base := qs.base(r.URL.RawQuery)
	var b strings.Builder
	b.WriteString(base)
	fields.EachOtherParam(r, func(_, name, value string) bool {
		writeParam(&b, name, value)
		return true
	})
	if b.Len() > len(base) {
		qs.params = b.String()
	}
}

// initBody computes the reading with the body's parameters too.
func (qs *queryState) initBody(r *http.Request, limit int64) {
	if qs.bodyDone {
		return
	}
	qs.bodyDone = true
	if !bodyMayHoldParams(r) {
		return
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		qs.bodyUnknown = true
		return
	}
	buf, ok := peekBody(r, limit)
	if !ok {
		qs.bodyUnknown = true
		return
	}
	base := qs.params
	if base == "" {
		base = qs.base(r.URL.RawQuery)
	}
	var b strings.Builder
	b.WriteString(base)
	err := fields.NewReader(r, buf).BodyParams(func(name, value string) {
		writeParam(&b, name, value)
	})
	switch {
	case err != nil:
		qs.bodyUnknown = true
	case b.Len() > len(base):
		qs.body = b.String()
	}
}

// bodyMayHoldParams reports whether r has a body an app may read
// parameters from (fields.BodyKindOf: not a plain type no app reads
// fields from; an untyped one only on a POST, as Rack reads it).
func bodyMayHoldParams(r *http.Request) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return false
	}
	switch kind, _ := fields.BodyKindOf(r.Header["Content-Type"]); kind {
	case fields.BodyNone:
		return false
	case fields.BodyUntyped:
		return strings.EqualFold(r.Method, http.MethodPost)
	}
	return true
}

// writeParam adds a parameter to a reading, under each name an app files
// it under (fields.TopKeys), written as Go reads a query.
func writeParam(b *strings.Builder, name, value string) {
	value = url.QueryEscape(value)
	for _, k := range fields.TopKeys(name) {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(k))
		b.WriteByte('=')
		b.WriteString(value)
	}
}

// init computes the other reading of the query (RawQuery).
func (qs *queryState) init(raw string) {
	if qs.done {
		return
	}
	qs.done = true
	if raw == "" {
		return
	}
	var b strings.Builder
	rest := raw
	for n := 0; rest != "" && n < maxQueryPairs; n++ {
		var pair string
		if i := strings.IndexAny(rest, "&;"); i >= 0 {
			pair, rest = rest[:i], rest[i+1:]
		} else {
			pair, rest = rest, ""
		}
		name, value, _ := strings.Cut(pair, "=")
		if name == "" {
			continue
		}
		value = url.QueryEscape(decodeQuery(value))
		for _, k := range fields.TopKeys(decodeQuery(name)) {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(url.QueryEscape(k))
			b.WriteByte('=')
			b.WriteString(value)
		}
	}
	if alt := b.String(); alt != raw {
		qs.alt = alt
	}
}

// decodeQuery decodes a query name or value as PHP does: '+' is a
// space, and a '%' that does not start an escape stays as it is.
func decodeQuery(s string) string {
	if strings.IndexByte(s, '+') >= 0 {
		s = strings.ReplaceAll(s, "+", " ")
	}
	return decodeOnce(s)
}

// matchersReadQuery reports whether a policy's matchers may look at the
// query: any matcher but those that read only the host, path, method,
// protocol, TLS state or remote address (a header matcher's values may
// hold {query.x} placeholders; an expression, a vars matcher, or another
// module may read anything).
func matchersReadQuery(sets []caddyhttp.MatcherSet) bool {
	for _, set := range sets {
		for _, m := range set {
			switch v := m.(type) {
			case caddyhttp.MatchHost, *caddyhttp.MatchHost,
				caddyhttp.MatchPath, *caddyhttp.MatchPath,
				caddyhttp.MatchPathRE, *caddyhttp.MatchPathRE,
				caddyhttp.MatchMethod, *caddyhttp.MatchMethod,
				caddyhttp.MatchProtocol, *caddyhttp.MatchProtocol,
				caddyhttp.MatchTLS, *caddyhttp.MatchTLS,
				caddyhttp.MatchRemoteIP, *caddyhttp.MatchRemoteIP,
				caddyhttp.MatchClientIP, *caddyhttp.MatchClientIP:
			case caddyhttp.MatchNot:
				if matchersReadQuery(v.MatcherSets) {
					return true
				}
			case *caddyhttp.MatchNot:
				if matchersReadQuery(v.MatcherSets) {
					return true
				}
			default:
				return true
			}
		}
	}
	return false
}

// matchersReadParams reports whether a policy's matchers may read a
// request's parameters (see matchersReadQuery): a query matcher, an
// expression, or a matcher we do not know. A header matcher reads the
// query only through placeholders in its values, and is left out: a
// policy that names headers does not pay for reading the body.
func matchersReadParams(sets []caddyhttp.MatcherSet) bool {
	for _, set := range sets {
		for _, m := range set {
			switch v := m.(type) {
			case caddyhttp.MatchHeader, *caddyhttp.MatchHeader,
				caddyhttp.MatchHeaderRE, *caddyhttp.MatchHeaderRE:
			case caddyhttp.MatchNot:
				if matchersReadParams(v.MatcherSets) {
					return true
				}
			case *caddyhttp.MatchNot:
				if matchersReadParams(v.MatcherSets) {
					return true
				}
			default:
				if matchersReadQuery([]caddyhttp.MatcherSet{{m}}) {
					return true
				}
			}
		}
	}
	return false
}

// paramProbe returns what a body that cannot be told is taken to carry,
// for a policy whose matchers may read parameters: every pair its query
// matchers (outside a not: more parameters never make a not match) name,
// as a RawQuery, and opaque when other matchers (an expression, a module
// we do not know) may read parameters, so that any body may make the
// policy apply.
func paramProbe(sets []caddyhttp.MatcherSet) (probe string, opaque bool) {
	var b strings.Builder
	for _, set := range sets {
		for _, m := range set {
			var q caddyhttp.MatchQuery
			switch v := m.(type) {
			case caddyhttp.MatchQuery:
				q = v
			case *caddyhttp.MatchQuery:
				q = *v
			default:
				opaque = opaque || opaqueParams(m)
				continue
			}
			for k, vs := range q {
				for _, v := range vs {
					if b.Len() > 0 {
						b.WriteByte('&')
					}
					b.WriteString(url.QueryEscape(k))
					b.WriteByte('=')
					b.WriteString(url.QueryEscape(v))
				}
			}
		}
	}
	return b.String(), opaque
}

// opaqueParams reports whether a matcher may read parameters other than
// through a query matcher.
func opaqueParams(m any) bool {
	var sets caddyhttp.MatcherSets
	switch v := m.(type) {
	case caddyhttp.MatchQuery, *caddyhttp.MatchQuery:
		return false
	case caddyhttp.MatchNot:
		sets = v.MatcherSets
	case *caddyhttp.MatchNot:
		sets = v.MatcherSets
	default:
		return matchersReadParams([]caddyhttp.MatcherSet{{m}})
	}
	for _, set := range sets {
		for _, m := range set {
			if opaqueParams(m) {
				return true
			}
		}
	}
	return false
}
