package fields

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseTemplate: a template that parses prints back as itself, and
// renders (on any request) to capped text without line breaks.
func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{"Pay {form.amount} to {form.merchant}", "{json.a.b.0}", "{query.q}", "Pay {amount}",
		"{form.", "}{", "{form.a}{json.b}", "{json.a..b}", "{form.\u202e}", "Sign up"} {
		f.Add(s)
	}
	r, body := req{ctype: form, query: "a=1", body: "amount=1&merchant=M"}.build(f)
	f.Fuzz(func(t *testing.T, s string) {
		tp, err := ParseTemplate(s)
		if err != nil {
			return
		}
		if tp.String() != s {
			t.Fatalf("%q prints as %q", s, tp.String())
		}
		if !strings.Contains(s, "{") && tp.ReadsRequest() {
			t.Fatalf("%q reads the request", s)
		}
		out, err := tp.Render(r, body)
		if err != nil && !errors.Is(err, ErrAmbiguous) {
			t.Fatalf("Render: %v", err)
		}
		if !utf8.ValidString(out) || utf8.RuneCountInString(out) > MaxText+1 || strings.ContainsAny(out, "\r\n\u2028\u2029") {
			t.Fatalf("Render(%q) = %q", s, out)
		}
	})
}

// FuzzReader: whatever the request, a value the strict reader returns is
// the one value Go's own parsers find under that name, and a name Go's
// parsers find twice is refused.
func FuzzReader(f *testing.F) {
	for _, tc := range readerCases {
		f.Add(tc.req.ctype, tc.req.query, []byte(tc.req.body), tc.ref[1:len(tc.ref)-1])
	}
	for _, tc := range nonCanonical {
		f.Add(tc.ctype, "", []byte(tc.body), "form.amount")
	}
	for _, tc := range canonicalBodies() {
		f.Add(tc.ctype, "", []byte(tc.body), "form.merchant")
	}
	// Rack 2's and qs's spellings of the field, in every source.
	for _, s := range bracketSpellings {
		f.Add(form, "", []byte("amount=1&merchant=ACME&"+s+"=9999"), "form.amount")
		f.Add(form, s+"=9999", []byte("amount=1"), "form.amount")
		f.Add("", "amount=1&"+s+"=9999", []byte(nil), "query.amount")
		f.Add(mpct, "", []byte(mp(field("amount", "1"), field(s, "9999"))), "form.amount")
		f.Add(js, "", []byte(`{"amount":"1","`+s+`":"9999"}`), "json.amount")
	}
	f.Add(js, "", []byte(`{"amount":[9999],"payee":{"name":"ACME"}}`), "json.amount")
	f.Add(js, "", []byte(`{"payee":{"name":"ACME"},"payee.name":"EVIL Corp"}`), "json.payee.name")
	f.Fuzz(func(t *testing.T, ctype, query string, body []byte, ref string) {
		fr, err := parseRef(ref)
		if err != nil {
			return
		}
		r, err := http.NewRequest("POST", "/x", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.URL.RawQuery = query
		if ctype != "" {
			r.Header.Set("Content-Type", ctype)
		}
		v, ok, err := NewReader(r, body).Value(fr)
		if err != nil {
			if !errors.Is(err, ErrAmbiguous) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Value: %v", err)
			}
		}
		if ok && (err != nil || !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0) {
			t.Fatalf("Value = %q, %v, %v", v, ok, err)
		}
		media, params, _ := mime.ParseMediaType(ctype)
		qv, qerr := url.ParseQuery(query)
		switch fr.Source {
		case Query:
			if err == nil && qerr == nil && len(qv[fr.Name]) > 1 {
				t.Fatalf("%s read although the query has it %d times", fr, len(qv[fr.Name]))
			}
			if ok && (qerr != nil || len(qv[fr.Name]) != 1 || qv[fr.Name][0] != v) {
				t.Fatalf("%s = %q, Go reads %q (%v)", fr, v, qv[fr.Name], qerr)
			}
		case Form:
			if ok || err == nil {
				for k := range qv {
					if strings.EqualFold(k, fr.Name) {
						t.Fatalf("%s read although the query has %q", fr, k)
					}
				}
			}
			switch media {
			case mediaForm:
				bv, berr := url.ParseQuery(string(body))
				if err == nil && berr == nil && len(bv[fr.Name]) > 1 {
					t.Fatalf("%s read although the body has it %d times", fr, len(bv[fr.Name]))
				}
				if ok && (berr != nil || len(bv[fr.Name]) != 1 || bv[fr.Name][0] != v) {
					t.Fatalf("%s = %q, Go reads %q (%v)", fr, v, bv[fr.Name], berr)
				}
				for k := range bv {
					if ok && k != fr.Name && strings.EqualFold(k, fr.Name) {
						t.Fatalf("%s read although the body has %q", fr, k)
					}
				}
			case mediaMultipart:
				if !ok {
					return
				}
				gr, _ := http.NewRequest("POST", "/x", bytes.NewReader(body))
				gr.Header.Set("Content-Type", mime.FormatMediaType(media, params))
				if perr := gr.ParseMultipartForm(1 << 20); perr != nil {
					t.Fatalf("%s = %q, Go's multipart reader fails: %v", fr, v, perr)
				}
				mf := gr.MultipartForm
				if len(mf.Value[fr.Name]) != 1 || mf.Value[fr.Name][0] != v || len(mf.File[fr.Name]) != 0 {
					t.Fatalf("%s = %q, Go reads %q and %d files", fr, v, mf.Value[fr.Name], len(mf.File[fr.Name]))
				}
				// PHP finds that one value too, and no other field or
				// file that it reads as the same name.
				parts, pok := phpMultipart(ctype, body)
				want := readName(fr.Name)
				var php []phpPart
				for _, p := range parts {
					if pn := readName(p.name); clash(&pn, &want) {
						php = append(php, p)
					}
				}
				if !pok || len(php) != 1 || php[0].file || php[0].value != v {
					t.Fatalf("%s = %q, PHP reads %#v (%v)", fr, v, php, pok)
				}
			default:
				if ok {
					t.Fatalf("%s read from a %q body", fr, media)
				}
			}
		case JSON:
			if !ok {
				return
			}
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			var doc any
			if derr := dec.Decode(&doc); derr != nil {
				t.Fatalf("%s = %q, Go's decoder fails: %v", fr, v, derr)
			}
			if got, found := walk(doc, fr.path); !found || got != v {
				t.Fatalf("%s = %q, Go reads %q", fr, v, got)
			}
		}
	})
}

// walk finds a path in a document decoded by encoding/json.
func walk(doc any, path []string) (string, bool) {
	for _, key := range path {
		switch node := doc.(type) {
		case map[string]any:
			doc = node[key]
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(node) {
				return "", false
			}
			doc = node[i]
		default:
			return "", false
		}
	}
	switch v := doc.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

// FuzzClean: whatever a field holds, what is shown passes the safe set,
// with no dot before a letter, capped, and stable.
func FuzzClean(f *testing.F) {
	for _, s := range []string{"EUR 10", "10\n\n@evil.example #123456", "\u202eevil", "a\u2028b", "\xff\xfe", "<b>x</b>",
		strings.Repeat("é", 100), "CALL +1 415 555 0199", "evil.com", "a.\u0301b", "e\u0301\u0301\u0301\u0301\u0301",
		"203.0.113.7/pay", "1,234.56", "1.2.3 .4", "1\u0301.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkClean(t, s, Clean(s, MaxValue), MaxValue)
	})
}

// FuzzMultipart: a multipart body in the canonical shape is read alike by
// Go's mime/multipart and by PHP (phpMultipart): the same parts, in
// order, with the same names, values and files.
func FuzzMultipart(f *testing.F) {
	for _, tc := range readerCases {
		if strings.HasPrefix(tc.req.ctype, "multipart/") {
			f.Add(tc.req.ctype, []byte(tc.req.body))
		}
	}
	for _, tc := range nonCanonical {
		f.Add(tc.ctype, []byte(tc.body))
	}
	for _, tc := range canonicalBodies() {
		f.Add(tc.ctype, []byte(tc.body))
	}
	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		boundary, bad := canonicalMultipart(ctype, body)
		if bad != "" {
			return
		}
		var goParts []phpPart
		mr := multipart.NewReader(bytes.NewReader(body), boundary)
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("canonical body, Go's reader fails: %v", err)
			}
			_, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
			if err != nil {
				t.Fatalf("canonical body, Go cannot parse a Content-Disposition: %v", err)
			}
			_, file := params["filename"]
			gp := phpPart{name: params["name"], file: file}
			if !file {
				v, err := io.ReadAll(p)
				if err != nil {
					t.Fatal(err)
				}
				gp.value = string(v)
			}
			goParts = append(goParts, gp)
		}
		php, ok := phpMultipart(ctype, body)
		if !ok || !slices.Equal(php, goParts) {
			t.Fatalf("canonical body read as %#v by Go, %#v by PHP (%v)", goParts, php, ok)
		}
	})
}
