package fields

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"strings"
	"unicode/utf8"
)

// maxBoundary is the longest boundary RFC 2046 allows.
const maxBoundary = 70

var (
	crlf     = []byte("\r\n")
	crlfCRLF = []byte("\r\n\r\n")
)

// canonicalMultipart accepts a multipart/form-data request only in the
// one shape that browsers and common clients (curl, Go's mime/multipart,
// Python's requests, .NET, OkHttp) send, and returns its boundary; for
// anything else it returns why the request is refused. Multipart parsers
// disagree on everything outside that shape (PHP alone: it takes the
// first "boundary" substring of the header, finds delimiters at any line
// start, reads parts after the close delimiter, strips single quotes
// around names, and ignores the disposition type), so the shape is
// checked as a whole before Go's reader sees the body, rather than
// ruling out the differences one by one.
//
// ctype is the request's Content-Type value. The shape:
//
//   - The first "boundary" in ctype, in any case, is the parameter,
//     written in lower case right after a ';' (and optional spaces):
//     boundary=B or boundary="B", followed by the end or a ';'. The word
//     occurs nowhere else, in any case, but inside B, and "boundary="
//     not even there. (PHP takes the first "boundary" it finds,
//     case-sensitively and then not, Rack the last "boundary="; browsers'
//     own boundaries hold the word: "----WebKitFormBoundary...",
//     "----geckoformboundary...".) B is a valid RFC 2046 boundary
//     without space or comma ('"', '\' and ',' end a boundary in one
//     parser and not in another): 1 to 70 of the letters, digits and
//     ' ( ) + _ - . / : = ?, and the boundary Go's mime package reads.
//   - The body is an optional preamble that ends with CRLF and does not
//     contain B at all, then one or more parts, each "--B" CRLF headers
//     CRLF CRLF content, each part but the first after a CRLF, then the
//     close delimiter CRLF "--B--", then nothing or CRLF and at most
//     whitespace (an epilogue of CR, LF, space or tab: no text, no more
//     parts).
//   - "--B" occurs nowhere else: not in a value or file, not after a bare
//     LF, not followed by anything but CRLF or "--", and not after the
//     close delimiter.
//   - A part's headers are lines "Name: value" (one space after the
//     colon, no space before it, none at the end of the value, no folded
//     lines, no control characters), names compared without case:
//     exactly one Content-Disposition and at most one Content-Type, and
//     no other header (no Content-Transfer-Encoding).
//   - The Content-Disposition is exactly `form-data; name="N"` or
//     `form-data; name="N"; filename="F"`: N is not empty; N and F are
//     UTF-8 without '"', '\' or ';' (an older Rack reads the last
//     "; name=" in the header, even one inside quotes).
//   - The Content-Type parses, has no RFC 2231 parameter, is not itself
//     multipart, and names no charset but UTF-8.
func canonicalMultipart(ctype string, body []byte) (boundary, bad string) {
	lower := asciiLower(ctype)
	i := strings.Index(lower, "boundary")
	if i < 0 {
		return "", "the multipart body has no boundary"
	}
	if ctype[i:i+len("boundary")] != "boundary" || !strings.HasSuffix(strings.TrimRight(ctype[:i], " \t"), ";") {
		return "", "the multipart boundary is not a parameter of its own"
	}
	rest, ok := strings.CutPrefix(ctype[i+len("boundary"):], "=")
	if !ok {
		return "", "the multipart boundary is not written boundary=..."
	}
	if q, ok := strings.CutPrefix(rest, `"`); ok {
		j := strings.IndexByte(q, '"')
		if j < 0 {
			return "", "the multipart boundary is not written boundary=..."
		}
		boundary, rest = q[:j], q[j+1:]
	} else {
		j := strings.IndexByte(rest, ';')
		if j < 0 {
			j = len(rest)
		}
		boundary, rest = rest[:j], rest[j:]
	}
	if rest != "" && rest[0] != ';' {
		return "", "the multipart boundary is not written boundary=..."
	}
	if lb := asciiLower(boundary); strings.Count(lower, "boundary") != 1+strings.Count(lb, "boundary") ||
		strings.Contains(lb, "boundary=") {
		return "", "the multipart Content-Type says boundary more than once"
	}
	if !validBoundary(boundary) {
		return "", "the multipart boundary is not a plain RFC 2046 boundary"
	}
	if _, params, err := mime.ParseMediaType(ctype); err != nil || params["boundary"] != boundary {
		return "", "the multipart boundary is not a plain RFC 2046 boundary"
	}

	delim := []byte("--" + boundary)
	pos := bytes.Index(body, delim)
	if pos < 0 {
		return "", "the multipart body has no delimiter"
	}
	if pos > 0 && (!bytes.HasSuffix(body[:pos], crlf) || bytes.Contains(body[:pos], delim[2:])) {
		return "", "the multipart preamble holds the boundary or does not end a line"
	}
	for parts := 0; ; parts++ {
		// body[pos:] starts with the delimiter, at the start of the body
		// or of a line.
		after := body[pos+len(delim):]
		if tail, ok := bytes.CutPrefix(after, []byte("--")); ok {
			switch {
			case parts == 0:
				return "", "the multipart body has no part"
			case len(tail) > 0 && !bytes.HasPrefix(tail, crlf), len(bytes.Trim(tail, " \t\r\n")) > 0,
				bytes.Contains(body[pos+1:], delim):
				return "", "the multipart body has data after its close delimiter"
			}
			return boundary, ""
		}
		if !bytes.HasPrefix(after, crlf) {
			return "", "a multipart delimiter has more on its line"
		}
		start := pos + len(delim) + len(crlf)
		next := bytes.Index(body[start:], delim)
		if next < 0 {
			return "", "the multipart body has no close delimiter"
		}
		next += start
		if next-start < len(crlf) || !bytes.Equal(body[next-2:next], crlf) {
			return "", "the multipart boundary occurs inside a part or after a bare LF"
		}
		if bad := canonicalPart(body[start : next-2]); bad != "" {
			return "", bad
		}
		pos = next
	}
}

// asciiLower lower-cases the ASCII letters of s, byte for byte, as HTTP
// and PHP compare names (strings.ToLower folds Unicode and changes
// lengths: "\u212a" is "k", and an invalid byte becomes three).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// validBoundary reports whether b is an RFC 2046 boundary without space
// or comma.
func validBoundary(b string) bool {
	if b == "" || len(b) > maxBoundary {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("'()+_-./:=?", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// canonicalPart checks a part's headers (see canonicalMultipart): p is
// the part from after its delimiter line to before the CRLF of the next.
func canonicalPart(p []byte) string {
	end := bytes.Index(p, crlfCRLF)
	if end < 0 {
		return "a multipart part has no blank line after its headers"
	}
	disposition, ctype := false, false
	for _, line := range bytes.Split(p[:end], crlf) {
		for _, c := range line {
			if c < 0x20 || c == 0x7f {
				return "a multipart part header holds a control character"
			}
		}
		i := bytes.IndexByte(line, ':')
		if i < 0 {
			return "a multipart part header is not Name: value"
		}
		value, ok := strings.CutPrefix(string(line[i+1:]), " ")
		if !ok || value == "" || value[0] == ' ' || value[len(value)-1] == ' ' {
			return "a multipart part header is not Name: value"
		}
		switch name := string(line[:i]); {
		case asciiLower(name) == "content-disposition" && !disposition:
			disposition = true
			if bad := canonicalDisposition(value); bad != "" {
				return bad
			}
		case asciiLower(name) == "content-type" && !ctype:
			ctype = true
			media, params, err := mime.ParseMediaType(value)
			switch {
			case err != nil || strings.ContainsRune(value, '*'):
				return "a multipart part's Content-Type does not parse"
			case strings.HasPrefix(media, "multipart/"):
				return "a multipart part is itself multipart"
			case params["charset"] != "" && !isUTF8(params["charset"]):
				return "a multipart part's charset is not UTF-8"
			}
		default:
			return "a multipart part has a header other than one Content-Disposition and one Content-Type"
		}
	}
	if !disposition {
		return "a multipart part has no Content-Disposition"
	}
	return ""
}

// canonicalDisposition checks a part's Content-Disposition value: exactly
// `form-data; name="N"`, optionally followed by `; filename="F"`.
func canonicalDisposition(v string) string {
	const bad = `a multipart part's Content-Disposition is not form-data; name="..."[; filename="..."]`
	rest, ok := strings.CutPrefix(v, `form-data; name="`)
	if !ok {
		return bad
	}
	i := strings.IndexByte(rest, '"')
	if i <= 0 || !plainParam(rest[:i]) {
		return bad
	}
	rest = rest[i+1:]
	if rest == "" {
		return ""
	}
	filename, ok := strings.CutPrefix(rest, `; filename="`)
	if !ok {
		return bad
	}
	filename, ok = strings.CutSuffix(filename, `"`)
	if !ok || strings.IndexByte(filename, '"') >= 0 || !plainParam(filename) {
		return bad
	}
	return ""
}

// plainParam reports whether a quoted name or filename reads the same to
// every parser: UTF-8, no backslash (an escape to Go, Rack and Django,
// not to PHP) and no ';' (quotes and control characters are ruled out
// before).
func plainParam(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsAny(s, `\;`)
}

// parseMultipart reads the parts of a multipart/form-data body whose
// Content-Type is ctype, once canonicalMultipart has accepted the shape.
func parseMultipart(ctype string, body []byte) (*pairList, string) {
	boundary, bad := canonicalMultipart(ctype, body)
	if bad != "" {
		return nil, bad
	}
	l := &pairList{}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			return l, ""
		}
		if err != nil {
			return nil, "the multipart body is malformed"
		}
		if len(l.pairs) == MaxFields {
			return nil, "the multipart body has too many parts"
		}
		_, params, err := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
		if err != nil || params["name"] == "" {
			// Not in the canonical shape: cannot happen.
			return nil, "the multipart body is malformed"
		}
		name := params["name"]
		filename, file := params["filename"]
		p := pair{name: name, file: file, named: filename != "", paths: readName(name)}
		if !file {
			v, err := io.ReadAll(part)
			if err != nil {
				return nil, "the multipart body is malformed"
			}
			p.value = string(v)
		}
		l.pairs = append(l.pairs, p)
	}
}
