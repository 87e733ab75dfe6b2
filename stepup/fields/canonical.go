package fields

import (
	"bytes"
	"strings"
)

// Multipart bodies that PHP's parser (rfc1867.c) reads otherwise than
// Go's. Go's mime/multipart is the reader here; a body on which the two
// could disagree about its parts or their names is refused.

// phpBoundary returns the boundary PHP takes from a multipart
// Content-Type: the text after the first '=' that follows the first
// "boundary" (looked for case-sensitively, then in any case, anywhere in
// the header, parameter or not), up to its closing quote if quoted, and
// otherwise up to a ',' or ';'.
func phpBoundary(ctype string) string {
	i := strings.Index(ctype, "boundary")
	if i < 0 {
		i = strings.Index(strings.ToLower(ctype), "boundary")
	}
	if i < 0 {
		return ""
	}
	_, b, ok := strings.Cut(ctype[i:], "=")
	if !ok {
		return ""
	}
	if strings.HasPrefix(b, `"`) {
		b, _, ok = strings.Cut(b[1:], `"`)
		if !ok {
			return ""
		}
		return b
	}
	if j := strings.IndexAny(b, ",;"); j >= 0 {
		b = b[:j]
	}
	return b
}

// checkDispositionParams refuses a part's Content-Disposition parameter
// that PHP reads otherwise than Go: PHP splits the header at every ';',
// inside quotes too ("filename=\"x; name=_method \"" names the part
// _method), and takes a value in single quotes ("name='_method'") for a
// quoted one.
func checkDispositionParams(params map[string]string) string {
	for _, v := range params {
		if strings.ContainsRune(v, ';') || strings.HasPrefix(v, "'") {
			return "a multipart part's Content-Disposition has a parameter PHP reads otherwise"
		}
	}
	return ""
}

// checkDelimiters refuses a multipart body in which "--" and the
// boundary occur anywhere but at the delimiters of the parts Go read:
// PHP takes a boundary after a bare LF and after the closing delimiter
// (a part "after the end" is a part to PHP), and Go does not. Each
// delimiter must start the body or follow CRLF, and be followed by CRLF
// (or, the last one, by "--"), and only line breaks and spaces may follow
// the closing delimiter.
func checkDelimiters(body []byte, boundary string, parts int) string {
	const bad = "the multipart body has delimiters that parsers read differently"
	dash := []byte("--" + boundary)
	seen := 0
	for rest, off := body, 0; ; {
		i := bytes.Index(rest, dash)
		if i < 0 {
			break
		}
		at := off + i
		if at != 0 && (at < 2 || body[at-2] != '\r' || body[at-1] != '\n') {
			return bad
		}
		after := body[at+len(dash):]
		seen++
		switch {
		case bytes.HasPrefix(after, []byte("\r\n")) && seen <= parts:
		case bytes.HasPrefix(after, []byte("--")) && seen == parts+1:
			if len(bytes.Trim(after[2:], " \t\r\n")) != 0 {
				return bad
			}
		default:
			return bad
		}
		off = at + len(dash)
		rest = body[off:]
	}
	if seen != parts+1 {
		return bad
	}
	return ""
}
