package fields

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// node is a value of a JSON body.
type node struct {
	kind  byte // 'o'bject, 'a'rray, 's'tring, 'n'umber, 'b'ool, 'z' (null)
	text  string
	keys  []string // object keys, in order
	vals  []*node  // object values or array elements
	folds map[string]struct{}
}

// parseJSON decodes a JSON body strictly: one value, valid UTF-8, no lone
// surrogate escapes, no keys that repeat (also under case folding), at
// most MaxDepth deep.
func parseJSON(body []byte) (*node, string) {
	if len(bytes.TrimLeft(body, " \t\r\n")) == 0 {
		return nil, "" // no value: nothing to read
	}
	if !utf8.Valid(body) {
		return nil, "the JSON body is not UTF-8"
	}
	if loneSurrogate(body) {
		return nil, "the JSON body has a lone surrogate escape"
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var root *node
	var stack []*node
	var key string
	haveKey := false
	// add puts v where the decoder is: under the pending key, in the
	// array, or at the top.
	add := func(v *node) {
		if len(stack) == 0 {
			root = v
			return
		}
		top := stack[len(stack)-1]
		if top.kind == 'o' {
			top.keys = append(top.keys, key)
			haveKey = false
		}
		top.vals = append(top.vals, v)
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if root == nil || len(stack) > 0 {
				return nil, "the JSON body is malformed"
			}
			return root, ""
		}
		if err != nil {
			return nil, "the JSON body is malformed"
		}
		if root != nil && len(stack) == 0 {
			return nil, "the JSON body has data after its value"
		}
		inObject := len(stack) > 0 && stack[len(stack)-1].kind == 'o'
		if inObject && !haveKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			k, ok := tok.(string)
			if !ok {
				return nil, "the JSON body is malformed"
			}
			top := stack[len(stack)-1]
			fk := fold(k)
			if _, dup := top.folds[fk]; dup {
				return nil, "the JSON body repeats a key (or one that differs only in case)"
			}
			top.folds[fk] = struct{}{}
			key, haveKey = k, true
			continue
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if len(stack) == MaxDepth {
					return nil, "the JSON body is nested too deep"
				}
				n := &node{kind: 'a'}
				if t == '{' {
					n.kind, n.folds = 'o', map[string]struct{}{}
				}
				add(n)
				stack = append(stack, n)
			default: // ']'; '}' after a key is a decoder error
				stack = stack[:len(stack)-1]
			}
		case string:
			add(&node{kind: 's', text: t})
		case json.Number:
			add(&node{kind: 'n', text: string(t)})
		case bool:
			add(&node{kind: 'b', text: strconv.FormatBool(t)})
		case nil:
			add(&node{kind: 'z'})
		}
	}
}

// loneSurrogate reports whether a JSON text has a \u escape of a UTF-16
// surrogate that is not part of a pair: Go reads it as U+FFFD, others
// keep it or fail.
func loneSurrogate(b []byte) bool {
	in := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			in = !in
		case in && c == '\\':
			if i+1 < len(b) && b[i+1] == 'u' {
				u, ok := hex4(b, i+2)
				switch {
				case !ok:
					// Malformed: the decoder refuses it.
				case 0xD800 <= u && u < 0xDC00:
					if i+7 >= len(b) || b[i+6] != '\\' || b[i+7] != 'u' {
						return true
					}
					if lo, ok := hex4(b, i+8); !ok || lo < 0xDC00 || lo > 0xDFFF {
						return true
					}
					i += 6
				case 0xDC00 <= u && u <= 0xDFFF:
					return true
				}
			}
			i++ // the escaped character
		}
	}
	return false
}

// hex4 reads four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// document returns the JSON body (nil for other bodies), or why the
// request is refused.
func (rd *Reader) document() (*node, string) {
	if rd.docDone {
		return rd.doc, rd.docBad
	}
	rd.docDone = true
	media, bad := rd.bodyType()
	switch {
	case bad != "":
		rd.docBad = bad
	case media == mediaJSON:
		rd.doc, rd.docBad = parseJSON(rd.body)
	}
	return rd.doc, rd.docBad
}

// jsonTops returns the top-level keys of a JSON object body, read as
// field names.
func (rd *Reader) jsonTops() ([]paths, string) {
	doc, bad := rd.document()
	if bad != "" || doc == nil || doc.kind != 'o' {
		return nil, bad
	}
	if rd.docTop == nil {
		rd.docTop = make([]paths, len(doc.keys))
		for i, k := range doc.keys {
			rd.docTop[i] = readName(k)
		}
	}
	return rd.docTop, ""
}

func (rd *Reader) jsonValue(f Ref) (string, bool, error) {
	doc, bad := rd.document()
	if bad != "" {
		return "", false, ambiguous(f, bad)
	}
	query, bad := rd.queryPairs()
	if bad != "" {
		return "", false, ambiguous(f, bad)
	}
	// Rails merges a JSON body's top level into params with the query.
	want := readName(f.path[0])
	if err := inOther(query, f, &want, "query"); err != nil {
		return "", false, err
	}
	cur := doc
	for i, seg := range f.path {
		if cur == nil {
			return "", false, nil
		}
		switch cur.kind {
		case 'o':
			if err := pathKeys(cur, f, f.path[i:]); err != nil {
				return "", false, err
			}
			next := -1
			for j, k := range cur.keys {
				if k == seg {
					next = j
					break
				}
			}
			if next < 0 {
				if _, ok := cur.folds[fold(seg)]; ok {
					return "", false, ambiguous(f, "is in the body only under another case")
				}
				return "", false, nil
			}
			cur = cur.vals[next]
		case 'a':
			i, ok := index(seg)
			if !ok || i >= len(cur.vals) {
				return "", false, nil
			}
			cur = cur.vals[i]
		case 'z':
			return "", false, nil
		default:
			// "9999"[0] is "9" to PHP and JavaScript.
			return "", false, ambiguous(f, "runs into a value that is not an object or array")
		}
	}
	switch cur.kind {
	case 's':
		if err := checkValue(f, cur.text); err != nil {
			return "", false, err
		}
		return cur.text, true, nil
	case 'n':
		if !plainNumber(cur.text) {
			return "", false, ambiguous(f, "is a number that not every parser reads the same (exponent, or over 15 significant digits)")
		}
		return cur.text, true, nil
	case 'b':
		return cur.text, true, nil
	case 'a', 'o':
		// Number([9999]) is 9999 to JavaScript; PHP and Ruby take the
		// first element or the object as they please.
		return "", false, ambiguous(f, "is an array or object, not a single value")
	}
	return "", false, nil // null: no value
}

// pathKeys refuses an object on a JSON path's way that has a key, other
// than the path's own step, that some reader could take for the rest of
// the path: "payee.name" or "payee[name]" beside "payee" (lodash's
// _.get(body, "payee.name") reads a literal key first), or any key that a
// field-name reading (readName: dots, brackets, Rack's and qs's "[payee]")
// turns into the rest of the path, or a path inside it or around it.
func pathKeys(o *node, f Ref, rest []string) error {
	var want paths
	w := make([]string, len(rest))
	for i, s := range rest {
		w[i] = canonicalIndex(fold(s))
	}
	for r := range want {
		want[r] = w
	}
	for _, k := range o.keys {
		if k == rest[0] || !strings.ContainsAny(k, ".[] \x00") {
			// The step itself, or a key that every reading keeps whole:
			// the decoder refused one equal to the step under folding.
			continue
		}
		if p := readName(k); clash(&p, &want) {
			return ambiguous(f, "clashes with a key that holds '.' or brackets")
		}
	}
	return nil
}

// index reads an array index: decimal digits only.
func index(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

// plainNumber reports whether a JSON number reads the same as a float64:
// no exponent, at most 15 significant digits.
func plainNumber(s string) bool {
	digits := 0
	zeros := 0 // zeros seen since the last non-zero digit
	started := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == 'e' || c == 'E':
			return false
		case c == '0':
			if started {
				zeros++
			}
		case '1' <= c && c <= '9':
			if started {
				digits += zeros
			}
			zeros = 0
			started = true
			digits++
		}
	}
	return digits <= 15
}
