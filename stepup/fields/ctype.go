package fields

import "strings"

// BodyKind is how the apps behind stepup may read a request body, told
// from the text of its Content-Type header lines alone. [BodyKindOf] is
// the one rule: the references of a describe or an identity request
// ([Reader.Value]), the body's method override ([Reader.BodyValues]) and
// the adapter's check of whether a POST's body may override its method
// all take the body's type from it, and only refine what they then read.
type BodyKind uint8

// Kinds of body.
const (
	// BodyNone is a body of one Content-Type that parses as a plain
	// media type no app reads fields from (text/plain,
	// application/octet-stream, image/png), and that does not hold
	// "json".
	BodyNone BodyKind = iota
	// BodyUntyped is a body without a Content-Type, or with an empty one:
	// Rack reads a POST's such body as a form, FastAPI as JSON.
	BodyUntyped
	// BodyForm is application/x-www-form-urlencoded.
	BodyForm
	// BodyMultipart is any multipart/* type: PHP, Go and most parsers read
	// multipart/form-data, Rack any multipart type's named parts.
	BodyMultipart
	// BodyJSON is a body whose Content-Type text holds "json", in any
	// case, anywhere (the media type, a suffix, a parameter), and whose
	// media type is not read as fields: Laravel's isJson() is
	// Str::contains(CONTENT_TYPE, ['/json', '+json']) over the whole
	// header, Rails reads text/x-json, Express and Flask +json types.
	BodyJSON
	// BodyAmbiguous is a body apps may read in different ways: more than
	// one Content-Type, one that does not parse as type/subtype (apps cut
	// it at ';', ',' or a space, each its way), or a form or multipart
	// type whose text also holds "json" (Laravel reads
	// "application/x-www-form-urlencoded; v=+json" as JSON, every other
	// app as a form).
	BodyAmbiguous
)

// BodyKindOf returns how apps may read a body whose Content-Type header
// lines are ct (r.Header["Content-Type"]), and, for BodyAmbiguous, why,
// as a fixed phrase. It allocates nothing.
func BodyKindOf(ct []string) (BodyKind, string) {
	switch len(ct) {
	case 0:
		return BodyUntyped, ""
	case 1:
	default:
		return BodyAmbiguous, "the request has more than one Content-Type"
	}
	v := strings.TrimSpace(ct[0])
	if v == "" {
		return BodyUntyped, ""
	}
	media, _, _ := strings.Cut(v, ";")
	media = strings.TrimRight(media, " \t")
	if !plainMediaType(media) {
		return BodyAmbiguous, "the request's Content-Type does not parse"
	}
	json := containsFold(v, "json")
	var kind BodyKind
	switch {
	case strings.EqualFold(media, mediaForm):
		kind = BodyForm
	case hasPrefixFold(media, "multipart/"):
		kind = BodyMultipart
	case json:
		return BodyJSON, ""
	default:
		return BodyNone, ""
	}
	if json {
		// A multipart body can never be valid JSON (it starts with its
		// delimiter), but which of the two an app read it as is not
		// worth telling apart: a browser's boundary holding "json" is
		// one request in many thousands, and it gets a new one when
		// sent again.
		return BodyAmbiguous, "the request's Content-Type names a form and JSON at once"
	}
	return kind, ""
}

// plainMediaType reports whether s is type "/" subtype, both tokens
// (RFC 9110), and nothing else.
func plainMediaType(s string) bool {
	slash := strings.IndexByte(s, '/')
	return slash > 0 && slash < len(s)-1 && isToken(s[:slash]) && isToken(s[slash+1:])
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
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
