package caddymodule

import (
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

// queryState is the other reading of a request's query, computed once,
// when a policy that may read the query is tried on a request with one.
type queryState struct {
	done bool
	// alt is the other reading as a RawQuery; "" when the query has none
	// besides the query as sent.
	alt string
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
