package stepup

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds of a transaction description: what a customer reads in an SMS
// must stay short and cannot be steered by a crafted field.
const (
	maxDescribeValue = 40  // runes per placeholder value
	maxDescribe      = 140 // runes in all
	maxDescribeField = 4 << 10
)

// describer renders a describe template such as
// "Pay {form.amount} to {form.merchant}" from a request: {form.NAME}
// (urlencoded or multipart fields), {json.PATH} (dotted path into a JSON
// body, array indexes as numbers) and {query.NAME}.
type describer struct {
	parts []describePart
	// needs tells which sources the template reads.
	form, json bool
}

type describePart struct {
	literal string
	source  string // "form", "json", "query"; "" for a literal
	name    string
}

// parseDescribe compiles a describe template. Unknown placeholder sources
// are an error, so that a typo shows at provision, not in an SMS.
func parseDescribe(tmpl string) (*describer, error) {
	d := &describer{}
	rest := tmpl
	for rest != "" {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			d.parts = append(d.parts, describePart{literal: rest})
			break
		}
		if i > 0 {
			d.parts = append(d.parts, describePart{literal: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("describe %q: unclosed placeholder", tmpl)
		}
		ph := rest[i+1 : i+j]
		source, name, ok := strings.Cut(ph, ".")
		if !ok || name == "" || (source != "form" && source != "json" && source != "query") {
			return nil, fmt.Errorf("describe %q: unknown placeholder {%s} (use {form.NAME}, {json.PATH} or {query.NAME})", tmpl, ph)
		}
		d.parts = append(d.parts, describePart{source: source, name: name})
		d.form = d.form || source == "form"
		d.json = d.json || source == "json"
		rest = rest[i+j+1:]
	}
	return d, nil
}

// render fills the template from the request and its (already read) body.
// Values are cleaned and capped; a missing value shows as "?".
func (d *describer) render(r *http.Request, body []byte) string {
	var form url.Values
	var doc any
	ctype, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if d.form {
		switch ctype {
		case "application/x-www-form-urlencoded":
			form, _ = url.ParseQuery(string(body))
		case "multipart/form-data":
			form = multipartFields(body, params["boundary"])
		}
	}
	if d.json && (ctype == "application/json" || strings.HasSuffix(ctype, "+json")) {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		_ = dec.Decode(&doc)
	}
	var query url.Values
	var b strings.Builder
	for _, p := range d.parts {
		if p.source == "" {
			b.WriteString(p.literal)
			continue
		}
		var v string
		var ok bool
		switch p.source {
		case "form":
			if vs := form[p.name]; len(vs) > 0 {
				v, ok = vs[0], true
			}
		case "json":
			v, ok = jsonPath(doc, p.name)
		case "query":
			if query == nil {
				query = r.URL.Query()
			}
			if vs := query[p.name]; len(vs) > 0 {
				v, ok = vs[0], true
			}
		}
		v = cleanValue(v, maxDescribeValue)
		if !ok || v == "" {
			v = "?"
		}
		b.WriteString(v)
	}
	return cleanValue(b.String(), maxDescribe)
}

// multipartFields returns the non-file fields of a multipart body.
func multipartFields(body []byte, boundary string) url.Values {
	vals := url.Values{}
	if boundary == "" {
		return vals
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for {
		part, err := mr.NextPart()
		if err != nil {
			return vals
		}
		if part.FileName() == "" && part.FormName() != "" {
			v, _ := io.ReadAll(io.LimitReader(part, maxDescribeField))
			vals.Add(part.FormName(), string(v))
		}
		_ = part.Close()
	}
}

// jsonPath looks up a dotted path ("order.items.0.price") in a decoded
// JSON document and formats a scalar found there.
func jsonPath(doc any, path string) (string, bool) {
	cur := doc
	for _, key := range strings.Split(path, ".") {
		switch node := cur.(type) {
		case map[string]any:
			v, ok := node[key]
			if !ok {
				return "", false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(node) {
				return "", false
			}
			cur = node[i]
		default:
			return "", false
		}
	}
	switch v := cur.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

// cleanValue makes a request value safe to show in an SMS and on a page:
// valid UTF-8 only, no control or format characters (newlines, bidi
// overrides, zero-width tricks), runs of spaces collapsed, at most max
// runes (cut with an ellipsis). HTML escaping is the page template's job.
func cleanValue(s string, max int) string {
	var b strings.Builder
	n := 0
	space := false
	for _, r := range s {
		if r == utf8.RuneError || unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) ||
			unicode.Is(unicode.Co, r) || unicode.Is(unicode.Cs, r) || r == '\u2028' || r == '\u2029' {
			r = ' '
		}
		if unicode.IsSpace(r) {
			if space || n == 0 {
				continue
			}
			space = true
			r = ' '
		} else {
			space = false
		}
		if n == max {
			return strings.TrimRight(b.String(), " ") + "…"
		}
		b.WriteRune(r)
		n++
	}
	return strings.TrimRight(b.String(), " ")
}
