package fields

import (
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
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
	t.params = NewParams(names...).Remembering()
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
// Each value is cleaned ([Clean]); a missing or empty one shows as
// [Missing]. Nothing taken from the request is ever cut: a value longer
// than [MaxValue] runes once cleaned, or a text longer than [MaxText], is
// refused, as are values that [showable] refuses. The error matches
// ErrAmbiguous when the request must be refused:
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
		if err := showable(t.refs[p.ref], v); err != nil {
			return "", err
		}
		v = Clean(v, MaxValue)
		if strings.HasSuffix(v, Ellipsis) {
			return "", ambiguous(t.refs[p.ref], fmt.Sprintf("longer than the %d characters an SMS shows of a value", MaxValue))
		}
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
	text, cut := capText(b.String(), MaxText)
	if cut && len(t.refs) > 0 {
		return "", ambiguous(t.refs[0], fmt.Sprintf("the description is longer than the %d characters an SMS shows", MaxText))
	}
	return text, nil
}

// showable refuses a value that the customer would read otherwise than
// the app's number parsers do, so that a code never approves an amount
// other than the one it shows:
//
//   - decimal digits of a script other than ASCII ("1٠٠٠٠" reads as
//     "1" followed by dots to most customers; Java, Python and .NET read
//     10000, PHP reads 1);
//   - a number in exponent notation ("0.01e6" is 10000 to every parser).
//
// Values longer than [MaxValue] are refused by Render after cleaning:
// the cut part would be what the customer must see.
func showable(f Ref, v string) error {
	for _, r := range v {
		if r >= utf8.RuneSelf && unicode.IsDigit(r) {
			return ambiguous(f, "holds digits of a script other than 0-9, which apps read as digits and customers may not")
		}
	}
	if exponent(v) {
		return ambiguous(f, "is a number in exponent notation, which apps read as another magnitude than it shows")
	}
	return nil
}

// exponent reports whether v, trimmed of spaces, is a decimal number in
// exponent notation: an optional sign, digits with at most one '.', then
// 'e' or 'E', an optional sign and digits ("1e3", "-0.5E-2", ".1e9").
func exponent(v string) bool {
	v = strings.TrimSpace(v)
	if v != "" && (v[0] == '+' || v[0] == '-') {
		v = v[1:]
	}
	mant, exp, ok := strings.Cut(strings.ToLower(v), "e")
	if !ok || mant == "" || exp == "" {
		return false
	}
	digits, dots := 0, 0
	for _, c := range mant {
		switch {
		case '0' <= c && c <= '9':
			digits++
		case c == '.':
			dots++
		default:
			return false
		}
	}
	if digits == 0 || dots > 1 {
		return false
	}
	if exp[0] == '+' || exp[0] == '-' {
		exp = exp[1:]
	}
	if exp == "" {
		return false
	}
	for _, c := range exp {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
