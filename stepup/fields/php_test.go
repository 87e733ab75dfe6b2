package fields

import (
	"bytes"
	"strings"
)

// phpPart is a part of a multipart body as PHP reads it.
type phpPart struct {
	name, value string
	file        bool
}

// phpMultipart reads a multipart/form-data body the way PHP 8's
// main/rfc1867.c does (a model for tests, from its source): the boundary
// is what follows the first '=' after the first "boundary" in ctype
// (case-sensitive, then not), up to ',' or ';', or inside quotes; a part
// starts at any line (LF-ended, one CR before it dropped, cut at NUL as a
// C string) that is exactly "--B", wherever it is, also after "--B--";
// header lines continue a header when they start with a space or have no
// ':'; the first Content-Disposition counts, its type is not looked at,
// and the last name= and filename= parameters win, in double or single
// quotes; a field's value runs to the first "\n--B" (with one CR before
// it dropped). ok is false when PHP finds no boundary or gives up.
func phpMultipart(ctype string, body []byte) (parts []phpPart, ok bool) {
	i := strings.Index(ctype, "boundary")
	if i < 0 {
		i = strings.Index(asciiLower(ctype), "boundary")
	}
	if i < 0 {
		return nil, false
	}
	j := strings.IndexByte(ctype[i:], '=')
	if j < 0 {
		return nil, false
	}
	b := ctype[i+j+1:]
	if q, quoted := strings.CutPrefix(b, `"`); quoted {
		k := strings.IndexByte(q, '"')
		if k < 0 {
			return nil, false
		}
		b = q[:k]
	} else if k := strings.IndexAny(b, ",;"); k >= 0 {
		b = b[:k]
	}
	dash := "--" + b
	next := []byte("\n" + dash)

	pos := 0
	// line returns the next LF-ended line, or false when none is left.
	line := func() (string, bool) {
		k := bytes.IndexByte(body[pos:], '\n')
		if k < 0 {
			return "", false
		}
		l := body[pos : pos+k]
		pos += k + 1
		l = bytes.TrimSuffix(l, []byte("\r"))
		if z := bytes.IndexByte(l, 0); z >= 0 {
			l = l[:z]
		}
		return string(l), true
	}
	for {
		// find_boundary
		found := false
		for {
			l, more := line()
			if !more {
				break
			}
			if l == dash {
				found = true
				break
			}
		}
		if !found {
			return parts, true
		}
		// multipart_buffer_headers
		type header struct{ key, value string }
		var hdrs []header
		for {
			l, more := line()
			if !more || l == "" {
				break
			}
			colon := -1
			if !isCSpace(l[0]) {
				colon = strings.IndexByte(l, ':')
			}
			switch {
			case colon >= 0:
				v := l[colon+1:]
				for v != "" && isCSpace(v[0]) {
					v = v[1:]
				}
				hdrs = append(hdrs, header{l[:colon], v})
			case len(hdrs) > 0:
				hdrs[len(hdrs)-1].value += l
			}
		}
		cd, hasCD := "", false
		for _, h := range hdrs {
			if asciiLower(h.key) == "content-disposition" {
				cd, hasCD = h.value, true
				break
			}
		}
		if !hasCD {
			continue
		}
		var name, filename string
		hasName, hasFile := false, false
		for cd != "" && isCSpace(cd[0]) {
			cd = cd[1:]
		}
		for cd != "" {
			var pair string
			pair, cd = phpGetword(cd, ';')
			for cd != "" && isCSpace(cd[0]) {
				cd = cd[1:]
			}
			if !strings.Contains(pair, "=") {
				continue
			}
			key, val := phpGetword(pair, '=')
			switch {
			case asciiLower(key) == "name":
				name, hasName = phpGetwordConf(val), true
			case asciiLower(key) == "filename":
				filename, hasFile = phpGetwordConf(val), true
			}
		}
		_ = filename
		if !hasName && !hasFile {
			return parts, false // "File Upload Mime headers garbled"
		}
		// multipart_buffer_read_body: up to "\n--B", one CR dropped.
		var data []byte
		if k := bytes.Index(body[pos:], next); k >= 0 {
			data = body[pos : pos+k]
			pos += k
			data = bytes.TrimSuffix(data, []byte("\r"))
		} else {
			data = body[pos:]
			pos = len(body)
		}
		p := phpPart{name: name, file: hasFile}
		if !hasFile {
			p.value = string(data)
		}
		parts = append(parts, p)
	}
}

// phpGetword is rfc1867.c's php_ap_getword: the text up to stop, not
// counting a stop inside double or single quotes, and the text after the
// stops that follow.
func phpGetword(s string, stop byte) (word, rest string) {
	pos := 0
	for pos < len(s) && s[pos] != stop {
		if q := s[pos]; q == '"' || q == '\'' {
			pos++
			for pos < len(s) && s[pos] != q {
				if s[pos] == '\\' && pos+1 < len(s) && s[pos+1] == q {
					pos += 2
				} else {
					pos++
				}
			}
			if pos < len(s) {
				pos++
			}
		} else {
			pos++
		}
	}
	word = s[:pos]
	for pos < len(s) && s[pos] == stop {
		pos++
	}
	return word, s[pos:]
}

// phpGetwordConf is rfc1867.c's php_ap_getword_conf: a value in double
// or single quotes (up to the closing quote, "\\" and an escaped quote
// unescaped), or up to a space.
func phpGetwordConf(s string) string {
	for s != "" && isCSpace(s[0]) {
		s = s[1:]
	}
	var quote byte
	if s != "" && (s[0] == '"' || s[0] == '\'') {
		quote, s = s[0], s[1:]
	} else {
		end := 0
		for end < len(s) && !isCSpace(s[end]) {
			end++
		}
		s = s[:end]
	}
	var b strings.Builder
	for i := 0; i < len(s) && (quote == 0 || s[i] != quote); i++ {
		if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '\\' || quote != 0 && s[i+1] == quote) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
