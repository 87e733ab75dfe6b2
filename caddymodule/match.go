package caddymodule

import (
	"bytes"
	"io"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-stepup/caddy-stepup/stepup"
	"github.com/caddy-stepup/caddy-stepup/stepup/fields"
)

// How MatchPolicy reads a request's method: the app behind stepup may
// read it in several ways (stepup.Methods), and a policy applies if its
// matchers match under any of them. The matchers stay Caddy's: each
// other reading is tried by setting r.Method to it for the call and
// putting it back, so any matcher that looks at the method (method, not,
// expression's method()) sees it.

// standardOverrides are the methods a POST's form may ask for with
// _method (Rails accepts GET, PUT, PATCH and DELETE among others), tried
// beside the methods the policies name.
var standardOverrides = []string{http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete}

// methodState is what MatchPolicy learns about a request's method,
// computed once, when first needed.
type methodState struct {
	done    bool
	methods stepup.Methods
	err     error // stepup.ErrAmbiguousMethod
	// The readings besides r.Method as sent: n of them, the first in
	// fixed, any further in more (a request with many overrides). No
	// slice points into the state itself, so that it stays on the
	// stack of MatchPolicy.
	n     int
	fixed [6]string
	more  []string
	// inBody: a POST whose body may carry _method (bodyMayOverride).
	inBody bool
	// The body's _method values, once read; bodyKnown is false when
	// the body could not be told (too large, encoded, ambiguous).
	bodyRead, bodyKnown bool
	body                []string
}

func (s *methodState) init(r *http.Request) {
	if s.done {
		return
	}
	s.done = true
	s.methods, s.err = stepup.RequestMethods(r)
	s.add(r.Method, s.methods.Sent)
	for _, o := range s.methods.Overrides {
		s.add(r.Method, o)
	}
	s.inBody = s.methods.Sent == http.MethodPost && bodyMayOverride(r.Header)
}

// add adds m, and GET for a HEAD, unless sent or there already.
func (s *methodState) add(sent, m string) {
	for _, v := range [2]string{m, stepup.AsGET(m)} {
		if s.tried(sent, v) {
			continue
		}
		if s.n < len(s.fixed) {
			s.fixed[s.n] = v
		} else {
			s.more = append(s.more, v)
		}
		s.n++
	}
}

// reading returns the i-th reading besides the method as sent.
func (s *methodState) reading(i int) string {
	if i < len(s.fixed) {
		return s.fixed[i]
	}
	return s.more[i-len(s.fixed)]
}

// tried reports whether m is r.Method as sent or one of the readings.
func (s *methodState) tried(sent, m string) bool {
	if m == sent {
		return true
	}
	for i := 0; i < s.n; i++ {
		if s.reading(i) == m {
			return true
		}
	}
	return false
}

// ambiguous returns ErrAmbiguousMethod when the overrides (headers,
// query, and a form body if it was read) ask for different methods.
func (s *methodState) ambiguous(r *http.Request) error {
	s.init(r)
	if s.err != nil {
		return s.err
	}
	if stepup.MethodParamElsewhere(r) {
		// A cookie or header named _method (PHP's $_REQUEST, ASP.NET's
		// Request[], Spring 6.2's header binding): the app may read it.
		return stepup.ErrAmbiguousMethod
	}
	if len(s.body) > 1 || len(s.body) == 1 && len(s.methods.Overrides) == 1 && s.body[0] != s.methods.Overrides[0] {
		return stepup.ErrAmbiguousMethod
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// matchPolicy reports whether p's matchers match r under any reading of
// its method, path and, when they may read it, query.
func (h *Handler) matchPolicy(p *Policy, r *http.Request, s *methodState, ps *pathState, qs *queryState) (bool, error) {
	if len(p.matchers) == 0 {
		return true, nil
	}
	ok, err := h.matchPaths(p, r, s, ps)
	if ok || err != nil || !p.readsQuery {
		return ok, err
	}
	if r.URL.RawQuery != "" {
		if qs.init(r.URL.RawQuery); qs.alt != "" {
			if ok, err := h.matchQueryAs(p, r, s, ps, qs.alt); ok || err != nil {
				return ok, err
			}
		}
	}
	if !p.readsParams {
		return false, nil
	}
	// The parameters of the cookies and headers, then of the body.
	if qs.initParams(r); qs.params != "" {
		if ok, err := h.matchQueryAs(p, r, s, ps, qs.params); ok || err != nil {
			return ok, err
		}
	}
	qs.initBody(r, h.engine.Config().MaxBody)
	switch {
	case qs.bodyUnknown && p.opaqueParams:
		return true, nil // any parameter: apply the policy
	case qs.bodyUnknown && p.paramProbe != "":
		base := qs.params
		if base == "" {
			base = qs.base(r.URL.RawQuery)
		}
		return h.matchQueryAs(p, r, s, ps, joinQuery(base, p.paramProbe))
	case qs.body != "":
		return h.matchQueryAs(p, r, s, ps, qs.body)
	}
	return false, nil
}

// matchQueryAs runs matchPaths on r as if its query were query.
func (h *Handler) matchQueryAs(p *Policy, r *http.Request, s *methodState, ps *pathState, query string) (bool, error) {
	s.init(r) // from the query as sent
	u := r.URL
	sent := u.RawQuery
	u.RawQuery = query
	defer func() { u.RawQuery = sent }()
	return h.matchPaths(p, r, s, ps)
}

// joinQuery joins two RawQuery texts.
func joinQuery(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "&" + b
}

// matchPaths reports whether p's matchers match r under any reading of
// its method and path.
func (h *Handler) matchPaths(p *Policy, r *http.Request, s *methodState, ps *pathState) (bool, error) {
	if ok, err := h.matchMethods(p, r, s); ok || err != nil {
		return ok, err
	}
	ps.init(r.URL.Path)
	for i := 0; i < ps.n; i++ {
		if ok, err := h.matchPathAs(p, r, s, ps.readings[i]); ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

// matchPathAs runs matchMethods on r as if its path were path.
func (h *Handler) matchPathAs(p *Policy, r *http.Request, s *methodState, path string) (bool, error) {
	u := r.URL
	sent, sentRaw := u.Path, u.RawPath
	u.Path, u.RawPath = path, ""
	defer func() { u.Path, u.RawPath = sent, sentRaw }()
	return h.matchMethods(p, r, s)
}

// matchMethods reports whether p's matchers match r under any reading of
// its method.
func (h *Handler) matchMethods(p *Policy, r *http.Request, s *methodState) (bool, error) {
	if ok, err := p.matchers.AnyMatchWithError(r); ok || err != nil {
		return ok, err
	}
	s.init(r)
	sent := r.Method
	for i := 0; i < s.n; i++ {
		if ok, err := matchAs(p.matchers, r, s.reading(i)); ok || err != nil {
			return ok, err
		}
	}
	if !s.inBody {
		return false, nil
	}
	// A POST's body may carry _method. The body is read only when the
	// policy would apply under a method the body could ask for.
	for _, m := range h.formMethods {
		if s.tried(sent, m) {
			continue
		}
		ok, err := matchAs(p.matchers, r, m)
		if err != nil || !ok {
			if err != nil {
				return false, err
			}
			continue
		}
		if !s.bodyRead {
			s.bodyRead = true
			s.body, s.bodyKnown = bodyMethodOverrides(r, h.engine.Config().MaxBody)
		}
		if !s.bodyKnown {
			return true, nil // cannot tell: apply the policy
		}
		for _, b := range s.body {
			for _, v := range [2]string{b, stepup.AsGET(b)} {
				if ok, err := matchAs(p.matchers, r, v); ok || err != nil {
					return ok, err
				}
			}
		}
		return false, nil
	}
	return false, nil
}

// matchAs runs the matchers on r as if its method were method.
func matchAs(sets caddyhttp.MatcherSets, r *http.Request, method string) (bool, error) {
	sent := r.Method
	r.Method = method
	defer func() { r.Method = sent }()
	return sets.AnyMatchWithError(r)
}

// bodyMayOverride reports whether a POST's body may carry _method as an
// app reads it, without allocating: unless its one Content-Type is a
// plain, well-formed media type that no app reads fields from and that
// does not hold "json" (fields.BodyNone), it may. The body's kind is
// told by fields.BodyKindOf, the one rule the field reader uses too: no
// Content-Type or an empty one (Rack reads the body as a form), a form,
// any multipart/* (Rack parses multipart/mixed and multipart/related as
// multipart/form-data), a type holding "json" anywhere (Laravel reads
// the body as JSON), more than one Content-Type, one that does not parse
// as type/subtype, or a form type that also holds "json".
func bodyMayOverride(h http.Header) bool {
	kind, _ := fields.BodyKindOf(h["Content-Type"])
	return kind != fields.BodyNone
}

// bodyMethodOverrides reads the _method values of a POST's body as the
// apps behind stepup would (fields.Reader.BodyValues: an urlencoded or
// any multipart body, a JSON one whose _method is a string or an array
// of strings, or an untyped one as Rack reads it), and puts the body
// back as it was for the engine and the upstream. known is false when
// the body cannot be told: larger than limit, content-encoded,
// unreadable, or one that parsers could read differently
// (fields.ErrAmbiguous: a form type whose Content-Type holds "json", a
// JSON _method that is neither a string nor an array of strings, ...):
// it asks for any method.
func bodyMethodOverrides(r *http.Request, limit int64) (methods []string, known bool) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, true
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return nil, false
	}
	buf, ok := peekBody(r, limit)
	if !ok {
		return nil, false
	}
	values, err := fields.NewReader(r, buf).BodyValues(stepup.MethodParam)
	if err != nil {
		return nil, false
	}
	for _, v := range values {
		v = strings.ToUpper(strings.TrimSpace(v))
		if v != "" && !contains(methods, v) {
			methods = append(methods, v)
		}
	}
	return methods, true
}

// peekBody reads r's body, up to limit bytes, and leaves r.Body reading
// the same bytes from the start: ok is false when the body is larger or
// could not be read. A body of known length is read by fields.ReadBody,
// so that the engine reads it again without a copy; one of unknown
// length is read here, and put back whole when it is too large.
func peekBody(r *http.Request, limit int64) (body []byte, ok bool) {
	if r.ContentLength > limit {
		return nil, false
	}
	if r.ContentLength >= 0 {
		b, err := fields.ReadBody(r, limit)
		return b, err == nil
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	r.Body = readCloser{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
	if err != nil || int64(len(buf)) > limit {
		return nil, false
	}
	return buf, true
}

type readCloser struct {
	io.Reader
	io.Closer
}

// formMethodCandidates returns the methods a POST form's _method may
// turn it into that could make a policy apply: the standard ones and
// every method the policies' method matchers name (POST and HEAD aside).
func formMethodCandidates(policies []*Policy) []string {
	out := append([]string(nil), standardOverrides...)
	var walk func(sets []caddyhttp.MatcherSet)
	walk = func(sets []caddyhttp.MatcherSet) {
		for _, set := range sets {
			for _, m := range set {
				switch v := m.(type) {
				case caddyhttp.MatchMethod:
					out = appendMethods(out, v)
				case *caddyhttp.MatchMethod:
					out = appendMethods(out, *v)
				case caddyhttp.MatchNot:
					walk(v.MatcherSets)
				case *caddyhttp.MatchNot:
					walk(v.MatcherSets)
				}
			}
		}
	}
	for _, p := range policies {
		walk(p.matchers)
	}
	return out
}

func appendMethods(out []string, methods []string) []string {
	for _, m := range methods {
		m = strings.ToUpper(m)
		if m != http.MethodPost && m != http.MethodHead && !contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// warnExactPaths warns about path patterns of an enforcing policy that
// match one exact path: apps commonly route "/checkout/" and
// "/checkout.json" (format suffixes) to the same handler as "/checkout",
// and those reach the app unchallenged. (Path parameters,
// "/checkout;jsessionid=1", are one of the path readings MatchPolicy
// tries, and need no pattern of their own.)
func warnExactPaths(log *zap.Logger, p *Policy) {
	if p.policy.Mode == stepup.Monitor {
		return
	}
	for _, set := range p.matchers {
		for _, mp := range pathMatchers(set) {
			for _, pattern := range mp {
				if strings.ContainsAny(pattern, "*{") {
					continue
				}
				base := strings.TrimSuffix(pattern, "/")
				escapes := []string{base + "/", base + ".json"}
				if base != pattern {
					escapes = []string{base + "/x", base, base + ".json"}
				}
				log.Warn("policy path pattern matches one exact path: the app may serve the same page at other paths "+
					"(a trailing slash, a format suffix), which reach it unchallenged; end the pattern with * (or list the variants)",
					zap.String("policy", p.Name), zap.String("pattern", pattern), zap.Strings("escapes", escapes),
					zap.String("fix", base+"*"), zap.Strings("or", []string{base, base + "/*", base + ".*"}))
			}
		}
	}
}

// pathMatchers returns the path matchers of a matcher set.
func pathMatchers(set caddyhttp.MatcherSet) []caddyhttp.MatchPath {
	var out []caddyhttp.MatchPath
	for _, m := range set {
		switch v := m.(type) {
		case caddyhttp.MatchPath:
			out = append(out, v)
		case *caddyhttp.MatchPath:
			out = append(out, *v)
		}
	}
	return out
}
