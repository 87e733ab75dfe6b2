package fields

import (
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Reader reads the fields of one request strictly (see the package
// documentation). It parses each source once, when a reference first
// needs it. A Reader is not safe for concurrent use.
type Reader struct {
	r    *http.Request
	body []byte

	ctypeDone bool
	ctype     string // the body's media type, when it is one we read
	ctypeBad  string // why the Content-Type cannot be trusted

	form, query *pairList
	formDone    bool
	queryDone   bool
	formBad     string
	queryBad    string
	doc         *node
	docDone     bool
	docBad      string
	docTop      []paths // the JSON body's top-level keys, read as names
}

// NewReader returns a reader of r, whose body (read with [ReadBody]) is
// body.
func NewReader(r *http.Request, body []byte) *Reader {
	return &Reader{r: r, body: body}
}

// Value returns the value f refers to: ok is false when the request does
// not have it (or the body is not of the type f reads). The error, when
// not nil, matches ErrAmbiguous: the request must be refused.
func (rd *Reader) Value(f Ref) (v string, ok bool, err error) {
	switch f.Source {
	case Form:
		return rd.formValue(f)
	case Query:
		return rd.queryValue(f)
	case JSON:
		return rd.jsonValue(f)
	}
	return "", false, nil
}

// media types the body is read as.
const (
	mediaForm      = "application/x-www-form-urlencoded"
	mediaMultipart = "multipart/form-data"
	mediaJSON      = "application/json"
)

// bodyType returns the body's media type when a reference reads that
// type ("" otherwise), or why the request is refused: the body's kind is
// BodyKindOf's (a form type whose text holds "json" is refused, any
// other type holding "json" is read as JSON), and a reference reads
// urlencoded, multipart/form-data and JSON bodies.
func (rd *Reader) bodyType() (string, string) {
	if rd.ctypeDone {
		return rd.ctype, rd.ctypeBad
	}
	rd.ctypeDone = true
	rd.ctype, rd.ctypeBad = rd.readBodyType()
	return rd.ctype, rd.ctypeBad
}

func (rd *Reader) readBodyType() (string, string) {
	hs := rd.r.Header.Values("Content-Type")
	kind, bad := BodyKindOf(hs)
	switch kind {
	case BodyAmbiguous:
		return "", bad
	case BodyForm, BodyMultipart, BodyJSON:
	default:
		return "", ""
	}
	media, params, err := mime.ParseMediaType(hs[0])
	if err != nil {
		return "", "the request's Content-Type does not parse"
	}
	if strings.ContainsRune(hs[0], '*') {
		// RFC 2231 parameters (boundary*=, charset*0=), which Go decodes
		// and most parsers do not.
		return "", "the request's Content-Type has an extended parameter"
	}
	if cs, ok := params["charset"]; ok && !isUTF8(cs) {
		return "", "the request's charset is not UTF-8"
	}
	for _, ce := range rd.r.Header.Values("Content-Encoding") {
		if !strings.EqualFold(strings.TrimSpace(ce), "identity") {
			return "", "the request body has a Content-Encoding"
		}
	}
	if kind == BodyMultipart && params["boundary"] == "" {
		return "", "the multipart body has no boundary"
	}
	if kind == BodyMultipart && media != mediaMultipart {
		// multipart/mixed and the like: Rack reads their named parts
		// (Reader.BodyValues does), PHP does not; a reference does not.
		return "", ""
	}
	if kind == BodyJSON {
		media = mediaJSON
	}
	return media, ""
}

// checkBodyType refuses a non-empty body whose media type none of refs
// reads, when some of them read the body ({form.x} or {json.x}): the app
// behind us may well read it (as JSON, say), and we would show nothing.
func (rd *Reader) checkBodyType(refs []Ref) error {
	if len(rd.body) == 0 {
		return nil
	}
	var first *Ref
	form, json := false, false
	for i := range refs {
		switch refs[i].Source {
		case Form:
			form = true
		case JSON:
			json = true
		default:
			continue
		}
		if first == nil {
			first = &refs[i]
		}
	}
	if first == nil {
		return nil
	}
	media, bad := rd.bodyType()
	switch {
	case bad != "":
		return ambiguous(*first, bad)
	case form && (media == mediaForm || media == mediaMultipart), json && media == mediaJSON:
		return nil
	}
	return ambiguous(*first, "the body's Content-Type is not one the template reads")
}

// isUTF8 reports whether a charset parameter names UTF-8.
func isUTF8(cs string) bool { return strings.EqualFold(cs, "utf-8") }

// pair is one field of an urlencoded or multipart body or a query.
type pair struct {
	name, value string
	// file: a multipart part with a filename parameter; named: one that
	// is not empty.
	file, named bool
	paths       paths
}

// pairList is the fields of one source, in order.
type pairList struct {
	pairs []pair
}

// formPairs returns the fields of an urlencoded or multipart body (nil
// for other bodies), or why the request is refused.
func (rd *Reader) formPairs() (*pairList, string) {
	if rd.formDone {
		return rd.form, rd.formBad
	}
	rd.formDone = true
	media, bad := rd.bodyType()
	switch {
	case bad != "":
		rd.formBad = bad
	case media == mediaForm:
		rd.form, rd.formBad = parseURLEncoded(string(rd.body), "body")
	case media == mediaMultipart:
		rd.form, rd.formBad = parseMultipart(rd.r.Header.Get("Content-Type"), rd.body)
	}
	if rd.form != nil && rd.formBad == "" {
		rd.formBad = checkCharsetField(rd.form)
	}
	return rd.form, rd.formBad
}

// queryPairs returns the query's fields, or why the request is refused.
func (rd *Reader) queryPairs() (*pairList, string) {
	if rd.queryDone {
		return rd.query, rd.queryBad
	}
	rd.queryDone = true
	rd.query, rd.queryBad = parseURLEncoded(rd.r.URL.RawQuery, "query")
	return rd.query, rd.queryBad
}

// checkCharsetField refuses a body whose _charset_ field (HTML's way of
// telling the form's encoding) names anything but UTF-8.
func checkCharsetField(l *pairList) string {
	for _, p := range l.pairs {
		if p.name == "_charset_" && !isUTF8(p.value) {
			return "the body's _charset_ is not UTF-8"
		}
	}
	return ""
}

// parseURLEncoded splits an urlencoded body or query the way Go does, and
// refuses what Go's parser would drop or reject.
func parseURLEncoded(s, what string) (*pairList, string) {
	l := &pairList{}
	for s != "" {
		var kv string
		kv, s, _ = strings.Cut(s, "&")
		if kv == "" {
			continue
		}
		if strings.Contains(kv, ";") {
			return nil, "the " + what + " has a ';' (Go drops the pair, older parsers split on it)"
		}
		if len(l.pairs) == MaxFields {
			return nil, "the " + what + " has too many fields"
		}
		k, v, _ := strings.Cut(kv, "=")
		k, err := url.QueryUnescape(k)
		if err != nil {
			return nil, "the " + what + " has a malformed escape"
		}
		v, err = url.QueryUnescape(v)
		if err != nil {
			return nil, "the " + what + " has a malformed escape"
		}
		l.pairs = append(l.pairs, pair{name: k, value: v, paths: readName(k)})
	}
	return l, ""
}

// lookup finds f's name among l's fields: its value when exactly one
// field has the name and none clashes with it.
func lookup(l *pairList, f Ref, want *paths) (string, bool, error) {
	if l == nil {
		return "", false, nil
	}
	var found *pair
	n := 0
	for i := range l.pairs {
		p := &l.pairs[i]
		if !clash(&p.paths, want) {
			continue
		}
		n++
		if p.name == f.Name {
			found = p
		}
	}
	switch {
	case n == 0:
		return "", false, nil
	case n > 1 && found != nil && allNamed(l, f.Name, n):
		return "", false, ambiguous(f, "occurs more than once")
	case n > 1 || found == nil:
		return "", false, ambiguous(f, "clashes with another field's name (case, [], '.' or ' ')")
	case found.file && !found.named:
		// Go reads it as the field, PHP as a file that was not chosen.
		return "", false, ambiguous(f, "is sent as a file without a name")
	case found.file:
		// A file: no app reads it as the field's text.
		return "", false, nil
	}
	if err := checkValue(f, found.value); err != nil {
		return "", false, err
	}
	return found.value, true, nil
}

// allNamed reports whether the n fields of l that clash with name are
// all named exactly name.
func allNamed(l *pairList, name string, n int) bool {
	c := 0
	for _, p := range l.pairs {
		if p.name == name {
			c++
		}
	}
	return c == n
}

// checkValue refuses a value that apps could read differently.
func checkValue(f Ref, v string) error {
	if !utf8.ValidString(v) {
		return ambiguous(f, "is not UTF-8")
	}
	if strings.IndexByte(v, 0) >= 0 {
		return ambiguous(f, "holds NUL")
	}
	return nil
}

// inOther refuses f when a field of other shares its first segment (the
// query for a body field, the body for a query field).
func inOther(other *pairList, f Ref, want *paths, where string) error {
	if other == nil {
		return nil
	}
	for i := range other.pairs {
		if sameTop(&other.pairs[i].paths, want) {
			return ambiguous(f, "is also in the "+where)
		}
	}
	return nil
}

func (rd *Reader) formValue(f Ref) (string, bool, error) {
	form, bad := rd.formPairs()
	if bad != "" {
		return "", false, ambiguous(f, bad)
	}
	query, bad := rd.queryPairs()
	if bad != "" {
		return "", false, ambiguous(f, bad)
	}
	want := readName(f.Name)
	if err := inOther(query, f, &want, "query"); err != nil {
		return "", false, err
	}
	return lookup(form, f, &want)
}

func (rd *Reader) queryValue(f Ref) (string, bool, error) {
	query, bad := rd.queryPairs()
	if bad != "" {
		return "", false, ambiguous(f, bad)
	}
	want := readName(f.Name)
	// The body as the apps read it, which Rails and PHP's $_REQUEST
	// merge with the query: also an untyped POST body and any multipart
	// type, which Rack reads as a form.
	form, doc, bad := rd.appBody()
	if bad != "" {
		return "", false, ambiguous(f, bad)
	}
	if err := inOther(form, f, &want, "body"); err != nil {
		return "", false, err
	}
	if doc != nil {
		tops, bad := rd.jsonTops()
		if bad != "" {
			return "", false, ambiguous(f, bad)
		}
		for i := range tops {
			if sameTop(&tops[i], &want) {
				return "", false, ambiguous(f, "is also in the body")
			}
		}
	}
	return lookup(query, f, &want)
}
