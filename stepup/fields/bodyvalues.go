package fields

import (
	"net/http"
	"strings"
)

// BodyValues returns the text values that the apps behind stepup could
// read for the top-level field name from the request's body, each in the
// order found:
//
//   - in an urlencoded or multipart body, the value of each field that
//     some parser files under name (see [TopNames]: PHP's "name[]",
//     ".name", "name\x00x", Rack 2's "[name]", "name]", "]name", qs's
//     "[name]"); a part with a filename is a file, not a value.
//   - in a JSON body, the value of a top-level key name when it is a
//     string (Laravel reads a JSON body's top level as its input). The
//     body is read as JSON when its Content-Type holds "/json" or
//     "+json", as Laravel tells JSON, in any case.
//   - in a POST without a Content-Type, read as an urlencoded body (Rack
//     reads such a body as a form).
//
// A body of another type has none. The error matches [ErrAmbiguous] when
// the body cannot be read the same way by every parser (see the package
// documentation): its values are then unknown.
func (rd *Reader) BodyValues(name string) ([]string, error) {
	f := Ref{Source: Form, Name: name}
	media, bad := rd.bodyType()
	if bad == "" && media == "" {
		media, bad = rd.otherBodyType()
	}
	if bad != "" {
		return nil, ambiguous(f, bad)
	}
	var out []string
	switch media {
	case mediaForm, mediaMultipart, untypedForm:
		var l *pairList
		if media == untypedForm {
			l, bad = parseURLEncoded(string(rd.body), "body")
		} else {
			l, bad = rd.formPairs()
		}
		if bad != "" {
			return nil, ambiguous(f, bad)
		}
		if l == nil {
			break
		}
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
	case mediaJSON:
		doc, bad := parseJSON(rd.body)
		if bad != "" {
			return nil, ambiguous(f, bad)
		}
		if doc != nil && doc.kind == 'o' {
			for i, k := range doc.keys {
				if k == name && doc.vals[i].kind == 's' {
					out = append(out, doc.vals[i].text)
				}
			}
		}
	}
	return out, nil
}

// untypedForm is the body of a POST without a Content-Type, which Rack
// reads as an urlencoded form.
const untypedForm = "(none)"

// otherBodyType is how an app reads a body whose Content-Type stepup does
// not read for references: JSON for Laravel when the type holds "/json"
// or "+json", a form for Rack when a POST has no Content-Type; "" for
// none.
func (rd *Reader) otherBodyType() (string, string) {
	hs := rd.r.Header.Values("Content-Type")
	var media string
	switch {
	case len(hs) == 0 && strings.EqualFold(rd.r.Method, http.MethodPost):
		media = untypedForm
	case len(hs) == 1 && (containsFold(hs[0], "/json") || containsFold(hs[0], "+json")):
		media = mediaJSON
	default:
		return "", ""
	}
	for _, ce := range rd.r.Header.Values("Content-Encoding") {
		if !strings.EqualFold(strings.TrimSpace(ce), "identity") {
			return "", "the request body has a Content-Encoding"
		}
	}
	return media, ""
}

// containsFold reports whether s holds sub in any ASCII case.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}
