// Package fields is the one place where stepup names and reads the fields
// of a request: the placeholders {form.NAME} (an urlencoded or multipart
// body), {json.PATH} (a dotted path into a JSON body, array indexes as
// numbers) and {query.NAME}, in a transaction's describe template and in
// the identity request source (the number or account a sign-up or reset
// form names). It reads the body once, under one cap ([ReadBody]).
//
// # One value, or none
//
// A code approves what its SMS shows, and the app behind stepup acts on
// its own reading of the same request: PHP, Rack and Rails, Spring,
// ASP.NET, Express or Go. Those parsers disagree on requests that are not
// plain, so a field is read only when every one of them would read the
// same value, and otherwise the request is refused with an error that
// matches [ErrAmbiguous] (the engine answers 400 before any code is made
// or sent). Refused, for a referenced field:
//
//   - a name that occurs more than once: "amount=1.00&amount=9999.00"
//     shows the first to Go and the last to PHP and Rack.
//   - names that apps read as the same field: compared under Unicode case
//     folding (ASP.NET binds case-insensitively), the way PHP and Rails
//     read them ("amount[]" and "amount[x]" make an array of "amount";
//     PHP turns "." and " " in a name into "_", drops leading spaces and
//     cuts at NUL) and the way Spring and qs read dots ("a.b" is b inside
//     a, and "a['b']" is "a[b]"), the way Rack 2 reads them (Rails <= 7.0,
//     Sinatra: leading brackets and the ']'s after a key dropped, so
//     "[amount]", "]amount", "[[amount]]", "amount]", "[amount",
//     "[]amount" are "amount") and the way qs reads them (Express:
//     "[amount]" is "amount"). "Amount", " amount", "amount[]",
//     "amount.x" and "[amount]" all clash with {form.amount};
//     "user[phone]" clashes with "user", "[user][phone]" and
//     "user[phone][]", not with "user[email]". A referenced field found
//     only under such another name is refused too, never missing.
//   - a name found in the query and the body at once, for {form.x} and
//     {query.x} alike, even if only the other source has it (PHP's
//     $_REQUEST and Rails' params merge them); for {json.a.b} a query
//     name "a" (Rails merges JSON bodies into params).
//   - in a JSON body: duplicate object keys anywhere in the document, also
//     keys equal under case folding (Go's encoding/json matches struct
//     fields case-insensitively, with Unicode folding: "\u212a" is "k"), a
//     key found only under another case, data after the value, invalid
//     UTF-8, lone surrogate escapes ("\ud800"), nesting deeper than
//     [MaxDepth] (Ruby's default limit), a referenced number that a
//     float64 reader would change (exponents, more than 15 significant
//     digits), a referenced value that is an array or an object
//     (JavaScript's Number([9999]) is 9999), a path that runs into a
//     string, number or boolean ("9999"[0] is "9"), and, in an object on
//     the path's way, a key other than the path's step that holds '.',
//     brackets, a space or NUL and that a name reading turns into the rest
//     of the path ("payee.name" or "payee[name]" beside "payee": lodash's
//     _.get(body, "payee.name") reads the literal key). A path that ends
//     at a missing key, an index out of range or null is missing.
//   - in an urlencoded body or a query: pairs that Go's parser rejects
//     (a ';', which Go drops and older parsers split on, or a bad %
//     escape, such as IIS's %u0041), and more than [MaxFields] pairs
//     (PHP's max_input_vars drops the rest silently).
//   - a multipart body in any shape but the one browsers and common
//     clients send (see canonicalMultipart for the exact shape): multipart
//     parsers disagree on everything else. Among what that refuses: a
//     Content-Type in which "boundary" occurs again outside the boundary
//     ("xboundary=YY; boundary=XX": PHP reads YY, Go XX), a boundary
//     with spaces around it or not of RFC 2046; parts after the close
//     delimiter (Go stops there, PHP reads on) and any epilogue text; the
//     delimiter anywhere but at the start of a CRLF-ended line of its
//     own (after a bare LF it starts a part for PHP, not for Go) and the
//     boundary in the preamble; part headers other than one
//     Content-Disposition and one Content-Type (Content-Transfer-Encoding:
//     Go decodes quoted-printable, PHP does not), folded or not written
//     "Name: value"; a disposition other than exactly `form-data;
//     name="N"` with an optional `; filename="F"` (single quotes, which
//     PHP strips and Go keeps; "attachment", which PHP reads and Go does
//     not; two names, RFC 2231 "name*=", escapes, a parameter without
//     '='); a nested multipart part. Also refused: more than [MaxFields]
//     parts, and a referenced field sent as a file with an empty filename
//     (Go reads it as the field, PHP as a file). A field and a file of
//     the same name are a name that occurs twice; a file alone is not the
//     field's value (missing).
//   - a Content-Type given twice or that does not parse, a form or
//     multipart type whose text holds "json" anywhere (Laravel's isJson()
//     reads "application/x-www-form-urlencoded; v=+json" as JSON: see
//     [BodyKindOf], the one rule for a body's type), a '*' (RFC 2231)
//     in it, a charset other than UTF-8 (in Content-Type, a part's
//     Content-Type or a _charset_ field), and a Content-Encoding on a body
//     that is read.
//   - a referenced value that is not UTF-8 or holds NUL (C strings end
//     there).
//   - for a template ([Template.Elsewhere]) and the identity request
//     source ([Reader.Elsewhere]): a referenced name (a JSON path's first
//     step) that the request also carries in a cookie or a header, where
//     PHP's $_REQUEST, ASP.NET's Request[] or Spring 6.2's data binder
//     read it as a parameter ([EachOtherParam]).
//
// Any other type whose text holds "json" (text/json, text/x-json,
// "text/plain; v=+json") is a JSON body. A body whose Content-Type is
// not one a reference reads ({form.x} on a JSON body, or no
// Content-Type) is not sniffed: to [Reader.Value] the
// value is missing. A [Template] refuses such a body when it is not
// empty, and a request that has none of the template's fields: a code
// must not approve "Pay ? to ?" while the app reads the body its own way
// (see [Template.Render]). Names in error messages are the configured
// references, never request text or values.
//
// # Showing a value
//
// [Clean] reduces a value to text that is safe in an SMS and on a page,
// and [Template.Render] caps each value and the whole description: see
// [Clean] for exactly what passes.
//
// [Reader.BodyValues] reads one top-level field (a method override) the
// way the apps behind stepup read the body, for policy matching, under
// the same refusals.
//
// The package does not import package stepup; stepup and its identity
// sources import it.
package fields

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds of what a request may make us read.
const (
	// MaxFields bounds the pairs of an urlencoded body or query, and the
	// parts of a multipart body, that a reference reads through.
	MaxFields = 1000
	// MaxDepth bounds the nesting of a JSON body.
	MaxDepth = 100
	// maxName bounds a configured field name, in bytes.
	maxName = 256
)

// ErrAmbiguous matches (errors.Is) every refusal of a request whose
// referenced fields could be read differently by the app behind stepup.
var ErrAmbiguous = errors.New("ambiguous request field")

// AmbiguousError says which reference a request was refused for, and
// why. It holds no request text: only the configured reference and a
// fixed reason.
type AmbiguousError struct {
	// Field is the reference as configured, such as "{form.amount}".
	Field string
	// Reason is a fixed phrase, such as "occurs more than once".
	Reason string
}

// Error says which reference was refused, and why.
func (e *AmbiguousError) Error() string {
	return "request field " + e.Field + ": " + e.Reason
}

// Is reports whether target is ErrAmbiguous.
func (e *AmbiguousError) Is(target error) bool { return target == ErrAmbiguous }

// Source is where a reference reads from.
type Source uint8

// Sources of a reference.
const (
	// Form is an urlencoded or multipart body: {form.NAME}.
	Form Source = iota + 1
	// JSON is a JSON body: {json.PATH}.
	JSON
	// Query is the URL's query: {query.NAME}.
	Query
)

// String returns the source's name in a placeholder: "form", "json" or
// "query".
func (s Source) String() string {
	switch s {
	case Form:
		return "form"
	case JSON:
		return "json"
	case Query:
		return "query"
	}
	return "unknown"
}

// Ref is a reference to one field of a request.
type Ref struct {
	// Source is where the field is read.
	Source Source
	// Name is the field's name ("amount", "user[phone]") or, for JSON,
	// its dotted path ("order.items.0.price").
	Name string

	path []string // Name split at dots (JSON)
}

// String returns the reference as a placeholder: "{form.amount}".
func (f Ref) String() string { return "{" + f.Source.String() + "." + f.Name + "}" }

// ParseRef parses a placeholder such as "{form.phone}",
// "{json.customer.phone}" or "{query.phone}".
func ParseRef(s string) (Ref, error) {
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return Ref{}, fmt.Errorf("%q: want a placeholder such as {form.phone}", s)
	}
	return parseRef(s[1 : len(s)-1])
}

// parseRef parses a placeholder without its braces.
func parseRef(ph string) (Ref, error) {
	source, name, _ := strings.Cut(ph, ".")
	f := Ref{Name: name}
	switch source {
	case "form":
		f.Source = Form
	case "json":
		f.Source = JSON
	case "query":
		f.Source = Query
	default:
		return Ref{}, fmt.Errorf("unknown placeholder {%s} (use {form.NAME}, {json.PATH} or {query.NAME})", ph)
	}
	if err := checkName(name); err != nil {
		return Ref{}, fmt.Errorf("placeholder {%s}: %v", ph, err)
	}
	if f.Source == JSON {
		f.path = strings.Split(name, ".")
		for _, seg := range f.path {
			if seg == "" {
				return Ref{}, fmt.Errorf("placeholder {%s}: empty step in the JSON path", ph)
			}
		}
	}
	return f, nil
}

// checkName accepts a configured field name.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("no field name")
	case len(name) > maxName:
		return fmt.Errorf("field name longer than %d bytes", maxName)
	case !utf8.ValidString(name):
		return errors.New("field name is not UTF-8")
	case strings.TrimSpace(name) != name:
		return errors.New("field name starts or ends with a space")
	}
	for _, r := range name {
		if r == '{' || r == '}' || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return fmt.Errorf("field name holds %q", r)
		}
	}
	return nil
}

// ambiguous is the error of a refused reference.
func ambiguous(f Ref, reason string) error {
	return &AmbiguousError{Field: f.String(), Reason: reason}
}
