package fields

import (
	"net/http"
	"strings"
)

// BodyValues returns the text values that the apps behind stepup could
// read for the top-level field name from the request's body, each in the
// order found. The body's kind is [BodyKindOf]'s:
//
//   - in an urlencoded or multipart body (any multipart/* type, as Rack
//     reads them), the value of each field that some parser files under
//     name (see [TopNames]: PHP's "name[]", ".name", "name\x00x", Rack
//     2's "[name]", "name]", "]name", qs's "[name]"); a part with a
//     filename is a file, not a value.
//   - in a JSON body (a Content-Type holding "json" anywhere, as Laravel
//     tells JSON), the value of a top-level key name when it is a
//     string, and each element of it when it is an array of strings
//     (Express's method-override takes an array's first element). A
//     value that is neither, nor null, is refused: apps read such values
//     each their way.
//   - in a POST without a Content-Type, or with an empty one, read as an
//     urlencoded body (Rack reads such a body as a form).
//
// A body of another type has none. The error matches [ErrAmbiguous] when
// the body cannot be read the same way by every parser (see the package
// documentation, and BodyAmbiguous: a form type whose Content-Type holds
// "json"): its values are then unknown.
func (rd *Reader) BodyValues(name string) ([]string, error) {
	f := Ref{Source: Form, Name: name}
	l, doc, bad := rd.appBody()
	if bad != "" {
		return nil, ambiguous(f, bad)
	}
	var out []string
	if l != nil {
		for _, p := range l.pairs {
			switch {
			case p.file && !p.named:
				if HasTopName(p.name, name) {
					// Go reads it as the field, PHP as a file not chosen.
					return nil, ambiguous(f, "is sent as a file without a name")
				}
			case !p.file && HasTopName(p.name, name):
				out = append(out, p.value)
			}
		}
	}
	if doc != nil && doc.kind == 'o' {
		for i, k := range doc.keys {
			if k != name {
				continue
			}
			switch v := doc.vals[i]; v.kind {
			case 's':
				out = append(out, v.text)
			case 'z':
				// null: no app reads a value from it.
			case 'a':
				for _, e := range v.vals {
					if e.kind != 's' {
						return nil, ambiguous(f, "is an array that holds other than strings")
					}
					out = append(out, e.text)
				}
			default:
				return nil, ambiguous(f, "is neither a string nor an array of strings")
			}
		}
	}
	return out, nil
}

// appBody reads the body as the apps behind stepup may (BodyKindOf),
// beyond what a reference reads: the fields of an urlencoded body, of a
// body of any multipart/* type (Rack reads their named parts), or of a
// POST's untyped body (Rack reads it as a form); or the JSON document of
// a body whose Content-Type holds "json". bad says why the body cannot
// be told.
func (rd *Reader) appBody() (l *pairList, doc *node, bad string) {
	hs := rd.r.Header.Values("Content-Type")
	kind, bad := BodyKindOf(hs)
	if bad != "" {
		return nil, nil, bad
	}
	switch kind {
	case BodyNone:
		return nil, nil, ""
	case BodyUntyped:
		if !strings.EqualFold(rd.r.Method, http.MethodPost) {
			return nil, nil, ""
		}
	}
	for _, ce := range rd.r.Header.Values("Content-Encoding") {
		if !strings.EqualFold(strings.TrimSpace(ce), "identity") {
			return nil, nil, "the request body has a Content-Encoding"
		}
	}
	switch kind {
	case BodyUntyped:
		l, bad = parseURLEncoded(string(rd.body), "body")
		return l, nil, bad
	case BodyMultipart:
		media, bad := rd.bodyType()
		if bad != "" {
			return nil, nil, bad
		}
		if media != mediaMultipart {
			// Another multipart type, read as Rack reads it: its named
			// parts, in the one shape canonicalMultipart accepts.
			l, bad = parseMultipart(hs[0], rd.body)
			if l != nil && bad == "" {
				bad = checkCharsetField(l)
			}
			return l, nil, bad
		}
		l, bad = rd.formPairs()
		return l, nil, bad
	case BodyForm:
		l, bad = rd.formPairs()
		return l, nil, bad
	}
	doc, bad = rd.document()
	return nil, doc, bad
}

// BodyParams calls fn with each top-level parameter the apps behind
// stepup could read from the request's body (the body as
// [Reader.BodyValues] reads it, for every name): each text field of an
// urlencoded, multipart or untyped POST body, under its name as sent,
// and each top-level key of a JSON object body whose value is a
// string, a number or a boolean (its text), or an array of those (each
// element). A JSON value that is an object or null gives none. The error
// matches [ErrAmbiguous] when the body cannot be read the same way by
// every parser: its parameters are then unknown.
func (rd *Reader) BodyParams(fn func(name, value string)) error {
	l, doc, bad := rd.appBody()
	if bad != "" {
		return ambiguous(Ref{Source: Form, Name: "*"}, bad)
	}
	if l != nil {
		for _, p := range l.pairs {
			if !p.file {
				fn(p.name, p.value)
			}
		}
	}
	if doc != nil && doc.kind == 'o' {
		for i, k := range doc.keys {
			switch v := doc.vals[i]; v.kind {
			case 's', 'n', 'b':
				fn(k, v.text)
			case 'a':
				for _, e := range v.vals {
					if e.kind == 's' || e.kind == 'n' || e.kind == 'b' {
						fn(k, e.text)
					}
				}
			}
		}
	}
	return nil
}
