package fields

import (
	"fmt"
	"net/http"
	"strings"
)

// Missing stands for a value the request does not have.
const Missing = "?"

// Template is a describe template such as "Pay {form.amount} to
// {form.merchant}": text with references in braces.
type Template struct {
	parts []part
	refs  []Ref
	// params are the refs' names as request parameters (a JSON path's
	// first step), in the order of refs.
	params *Params
}

// part is literal text, or the reference refs[ref] when ref >= 0.
type part struct {
	text string
	ref  int
}

// ParseTemplate compiles a template. A '{' always opens a reference: an
// unclosed one or an unknown source is an error, so that a typo shows at
// provision, not in an SMS.
func ParseTemplate(s string) (*Template, error) {
	t := &Template{}
	rest := s
	for rest != "" {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			t.parts = append(t.parts, part{text: rest, ref: -1})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, part{text: rest[:i], ref: -1})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("describe %q: unclosed placeholder", s)
		}
		f, err := parseRef(rest[i+1 : i+j])
		if err != nil {
			return nil, fmt.Errorf("describe %q: %v", s, err)
		}
		t.parts = append(t.parts, part{ref: len(t.refs)})
		t.refs = append(t.refs, f)
		rest = rest[i+j+1:]
	}
	names := make([]string, len(t.refs))
	for i, f := range t.refs {
		names[i] = f.Name
		if f.Source == JSON {
			names[i] = f.path[0]
		}
	}
	t.params = NewParams(names...)
	return t, nil
}

// Elsewhere refuses a request that carries one of the template's fields
// (a JSON path's first step) in a cookie or a header, where some app
// reads it as a parameter ([EachOtherParam]: PHP's $_REQUEST and
// ASP.NET's Request[] read cookies, Spring 6.2 binds headers): the
// error matches ErrAmbiguous. [Template.Render] checks it; a transaction
// grant's use and a preserved request's replay check it again on the
// request that goes upstream.
func (t *Template) Elsewhere(r *http.Request) error {
	if i, where := t.params.Elsewhere(r); i >= 0 {
		return ambiguous(t.refs[i], elsewhereReason(where))
	}
	return nil
}

// Refs returns the template's references, in order.
func (t *Template) Refs() []Ref { return append([]Ref(nil), t.refs...) }

// ReadsRequest reports whether the template shows anything taken from the
// request.
func (t *Template) ReadsRequest() bool { return len(t.refs) > 0 }

// String returns the template as it was parsed.
func (t *Template) String() string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.ref >= 0 {
			b.WriteString(t.refs[p.ref].String())
		} else {
			b.WriteString(p.text)
		}
	}
	return b.String()
}

// Render fills the template from r and its body (read with [ReadBody]).
// Each value is cleaned ([Clean]) and cut to [MaxValue] runes; a missing
// or empty one shows as [Missing]; the whole text is cut to [MaxText]
// runes. The error matches ErrAmbiguous when the request must be refused:
// besides the refusals of [Reader.Value], a template refuses what it
// would describe as nothing ("Pay ? to ?"), since a code approves what
// the app then reads:
//
//   - a non-empty body whose Content-Type is not one the template's
//     references read, when some of them read the body: {form.x} on a
//     JSON body, {json.x} on a form, any body sent as text/plain,
//     text/json, application/octet-stream or without a Content-Type
//     (Laravel parses any type that holds "/json", many Go apps decode
//     the body whatever its type). A template of {query.x} alone does not
//     read the body, and takes any.
//   - a request in which every reference of the template is missing or
//     shows as empty once cleaned.
//   - a request that carries a referenced field in a cookie or a header
//     ([Template.Elsewhere]).
func (t *Template) Render(r *http.Request, body []byte) (string, error) {
	if err := t.Elsewhere(r); err != nil {
		return "", err
	}
	rd := NewReader(r, body)
	if err := rd.checkBodyType(t.refs); err != nil {
		return "", err
	}
	var b strings.Builder
	shown := 0
	for _, p := range t.parts {
		if p.ref < 0 {
			b.WriteString(p.text)
			continue
		}
		v, ok, err := rd.Value(t.refs[p.ref])
		if err != nil {
			return "", err
		}
		v = Clean(v, MaxValue)
		if !ok || v == "" {
			v = Missing
		} else {
			shown++
		}
		b.WriteString(v)
	}
	if len(t.refs) > 0 && shown == 0 {
		return "", ambiguous(t.refs[0], "the request has none of the described fields")
	}
	return capText(b.String(), MaxText), nil
}
