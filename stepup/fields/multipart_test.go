package fields

import (
	"bytes"
	"errors"
	"mime/multipart"
	"net/textproto"
	"strings"
	"testing"
)

// cd is a part's Content-Disposition header line for a field.
func cd(name string) string { return `Content-Disposition: form-data; name="` + name + `"` }

// Parts of the multipart bodies below, under boundary XX.
const (
	amount1  = "--XX\r\n" + `Content-Disposition: form-data; name="amount"` + "\r\n\r\n1\r\n"
	merchant = "--XX\r\n" + `Content-Disposition: form-data; name="merchant"` + "\r\n\r\nACME\r\n"
	end      = "--XX--\r\n"
)

// nonCanonical are multipart requests that are not in the canonical
// shape: each is read one way by Go and another by PHP (the security
// test's reproductions, 01 and 02), Rack or Django, or is a shape no
// browser or common client sends.
var nonCanonical = []struct {
	name, ctype, body string
}{
	// (a) 01/02: more parts after the close delimiter. Go stops at
	// "--XX--", PHP reads on and takes the last amount.
	{"parts after the close delimiter", mpct, amount1 + merchant + end +
		"--XX\r\n" + cd("amount") + "\r\n\r\n9999\r\n--XX--\r\n"},
	{"bare LF after the close delimiter", mpct, amount1 + "--XX--\n"},
	{"space after the close delimiter", mpct, amount1 + "--XX-- \r\n"},
	{"epilogue text", mpct, amount1 + end + "thanks\r\n"},
	{"epilogue holding the delimiter", mpct, amount1 + end + "x --XX"},
	// (b) 01: "\n--XX" inside a part is content to Go, a delimiter
	// line to PHP.
	{"bare LF before the delimiter", mpct, amount1 + merchant + "--XX\r\n" + cd("note") + "\r\n\r\nthanks\n" +
		"--XX\r\n" + cd("amount") + "\r\n\r\n9999\r\n" + end},
	{"delimiter inside a value", mpct, "--XX\r\n" + cd("amount") + "\r\n\r\n1 --XX 9999\r\n" + end},
	{"delimiter with more after it", mpct, amount1 + "--XXY\r\n" + cd("amount") + "\r\n\r\n9999\r\n" + end},
	{"delimiter with transport padding", mpct, "--XX\r\n" + cd("note") + "\r\n\r\nx\r\n--XX \r\n" + cd("amount") + "\r\n\r\n1\r\n" + end},
	{"delimiter cut by NUL", mpct, "--XX\r\n" + cd("note") + "\r\n\r\nx\r\n--XX\x00\r\n" + cd("amount") + "\r\n\r\n9999\r\n" + amount1 + end},
	{"LF line ends", mpct, strings.ReplaceAll(amount1+end, "\r\n", "\n")},
	{"CR line ends", mpct, strings.ReplaceAll(amount1+end, "\r\n", "\r")},
	{"no close delimiter", mpct, amount1},
	{"close delimiter only", mpct, end},
	{"preamble holding the boundary", mpct, "XX\r\n" + amount1 + end},
	{"preamble not ending a line", mpct, "preamble" + amount1 + end},
	// (c) 01: a single-quoted name is "'amount'" to Go, "amount" to PHP.
	{"single-quoted name", mpct, amount1 + merchant + "--XX\r\nContent-Disposition: form-data; name='amount'\r\n\r\n9999\r\n" + end},
	{"unquoted name", mpct, "--XX\r\nContent-Disposition: form-data; name=amount\r\n\r\n1\r\n" + end},
	{"empty name", mpct, amount1 + "--XX\r\n" + cd("") + "\r\n\r\n9999\r\n" + end},
	{"name holding a ';'", mpct, amount1 + "--XX\r\n" + cd("x; name=amount") + "\r\n\r\n9999\r\n" + end},
	{"filename holding a ';'", mpct, amount1 + "--XX\r\n" + cd("x") + `; filename="a; name=amount"` + "\r\n\r\n9999\r\n" + end},
	{"filename not closed", mpct, amount1 + "--XX\r\n" + cd("x") + "; filename=\"\r\n\r\n9999\r\n" + end},
	{"filename closed twice", mpct, amount1 + "--XX\r\n" + cd("x") + "; filename=\"a\"\"\r\n\r\n9999\r\n" + end},
	{"filename single-quoted", mpct, amount1 + "--XX\r\n" + cd("x") + "; filename='a'\r\n\r\n9999\r\n" + end},
	// (d) 01: PHP takes the first "boundary" in the header (YY), Go
	// and Rack the parameter (XX).
	{"xboundary parameter", "multipart/form-data; xboundary=YY; boundary=XX", amount1 + merchant + "--XX\r\n" + cd("note") + "\r\n\r\n" +
		"--YY\r\n" + cd("amount") + "\r\n\r\n9999\r\n--YY\r\n" + cd("merchant") + "\r\n\r\nEVIL Corp\r\n--YY--\r\n\r\n" + end},
	{"boundary in another parameter", "multipart/form-data; boundary=XX; x=\"a boundary\"", amount1 + end},
	{"boundary after another boundary-like parameter", "multipart/form-data; boundary=XX; BOUNDARY2=YY", amount1 + end},
	{"boundary parameter in upper case", "multipart/form-data; BOUNDARY=----geckoformboundary0123; charset=utf-8",
		strings.ReplaceAll(amount1+end, "XX", "----geckoformboundary0123")},
	{"boundary word before the parameter", "multipart/form-data; x=boundary; boundary=XX", amount1 + end},
	{"boundary= inside the boundary", `multipart/form-data; boundary="a-boundary=XX"`, strings.ReplaceAll(amount1+end, "XX", "a-boundary=XX")},
	{"space after the boundary", "multipart/form-data; boundary=XX ; charset=utf-8", amount1 + end},
	{"space around '='", "multipart/form-data; boundary = XX", amount1 + end},
	{"boundary too long", "multipart/form-data; boundary=" + strings.Repeat("X", 71),
		"--" + strings.Repeat("X", 71) + "\r\n" + cd("amount") + "\r\n\r\n1\r\n--" + strings.Repeat("X", 71) + "--\r\n"},
	{"boundary with a comma", `multipart/form-data; boundary="X,X"`, strings.ReplaceAll(amount1+end, "XX", "X,X")},
	{"boundary with a space", `multipart/form-data; boundary="X X"`, strings.ReplaceAll(amount1+end, "XX", "X X")},
	// Part headers: only Content-Disposition (form-data, one quoted
	// name, an optional filename) and Content-Type.
	{"attachment", mpct, "--XX\r\nContent-Disposition: attachment; name=\"amount\"\r\n\r\n1\r\n" + end},
	{"two name parameters", mpct, "--XX\r\nContent-Disposition: form-data; name=\"x\"; name=\"amount\"\r\n\r\n9999\r\n" + end},
	{"parameter without '='", mpct, "--XX\r\nContent-Disposition: form-data; x; name=\"amount\"\r\n\r\n1\r\n" + end},
	{"FORM-DATA", mpct, "--XX\r\nContent-Disposition: FORM-DATA; name=\"amount\"\r\n\r\n1\r\n" + end},
	{"no space after ';'", mpct, "--XX\r\nContent-Disposition: form-data;name=\"amount\"\r\n\r\n1\r\n" + end},
	{"filename before name", mpct, "--XX\r\nContent-Disposition: form-data; filename=\"a\"; name=\"x\"\r\n\r\n1\r\n" + amount1 + end},
	{"other parameter", mpct, "--XX\r\nContent-Disposition: form-data; name=\"amount\"; size=1\r\n\r\n1\r\n" + end},
	{"no Content-Disposition", mpct, "--XX\r\nContent-Type: text/plain\r\n\r\n9999\r\n" + amount1 + end},
	{"other header", mpct, "--XX\r\n" + cd("amount") + "\r\nContent-Length: 1\r\n\r\n1\r\n" + end},
	{"folded header", mpct, "--XX\r\nContent-Disposition: form-data;\r\n name=\"amount\"\r\n\r\n1\r\n" + end},
	{"header line without ':'", mpct, "--XX\r\n" + cd("x") + "\r\nname=\"amount\"\r\n\r\n1\r\n" + end},
	{"space before ':'", mpct, "--XX\r\nContent-Disposition : form-data; name=\"amount\"\r\n\r\n1\r\n" + end},
	{"no space after ':'", mpct, "--XX\r\nContent-Disposition:form-data; name=\"amount\"\r\n\r\n1\r\n" + end},
	{"trailing space", mpct, "--XX\r\n" + cd("amount") + " \r\n\r\n1\r\n" + end},
	{"NUL in a header", mpct, "--XX\r\n" + cd("amount") + "\x00\r\n\r\n1\r\n" + end},
	{"bare LF in the headers", mpct, "--XX\r\n" + cd("x") + "\nContent-Type: text/plain\r\n\r\n1\r\n" + amount1 + end},
	{"part without headers", mpct, "--XX\r\n\r\n" + cd("amount") + "\r\n\r\n1\r\n" + end},
	{"part without a blank line", mpct, "--XX\r\n" + cd("amount") + "\r\n" + end},
	{"two Content-Types", mpct, "--XX\r\n" + cd("amount") + "\r\nContent-Type: text/plain\r\nContent-Type: text/html\r\n\r\n1\r\n" + end},
	{"part Content-Type that does not parse", mpct, "--XX\r\n" + cd("amount") + "\r\nContent-Type: text/\r\n\r\n1\r\n" + end},
}

// A multipart body that is not in the canonical shape is refused, whatever
// Go's reader makes of it.
func TestMultipartNonCanonicalRefused(t *testing.T) {
	for _, tc := range nonCanonical {
		t.Run(tc.name, func(t *testing.T) {
			r, body := req{ctype: tc.ctype, body: tc.body}.build(t)
			for _, ref := range []string{"{form.amount}", "{query.amount}"} {
				v, ok, err := NewReader(r, body).Value(mustRef(t, ref))
				if !errors.Is(err, ErrAmbiguous) {
					t.Fatalf("%s = %q, %v, %v: want ErrAmbiguous", ref, v, ok, err)
				}
			}
		})
	}
}

// The security test's sign-up reproduction (02): the code would go to the
// first number, PHP registers the last one.
func TestMultipartSignupAfterClose(t *testing.T) {
	body := "--XX\r\n" + cd("phone") + "\r\n\r\n+14155550177\r\n--XX\r\n" + cd("username") + "\r\n\r\nnewuser\r\n--XX--\r\n" +
		"--XX\r\n" + cd("phone") + "\r\n\r\n+14155550999\r\n--XX--\r\n"
	r, b := req{ctype: mpct, body: body}.build(t)
	if v, ok, err := NewReader(r, b).Value(mustRef(t, "{form.phone}")); !errors.Is(err, ErrAmbiguous) {
		t.Fatalf("{form.phone} = %q, %v, %v: want ErrAmbiguous", v, ok, err)
	}
}

// canonicalBodies are multipart requests in the shape browsers and
// common clients send, each with the fields amount=12.50 and
// merchant=Café Müller.
func canonicalBodies() []struct{ name, ctype, body string } {
	// Go's own writer, with a file, under its random boundary.
	var gob bytes.Buffer
	w := multipart.NewWriter(&gob)
	_ = w.WriteField("amount", "12.50")
	_ = w.WriteField("merchant", "Café Müller")
	fw, _ := w.CreateFormFile("receipt", "r.pdf")
	_, _ = fw.Write([]byte("%PDF-1.4\r\n\x00\xff\r\n--"))
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="note"`)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	pw, _ := w.CreatePart(h)
	_, _ = pw.Write([]byte("line 1\r\nline 2"))
	_ = w.Close()

	// curl -F amount=12.50 -F merchant=... -F receipt=@r.pdf
	const curlB = "------------------------d74496d66958873e"
	curl := "--" + curlB + "\r\n" + cd("amount") + "\r\n\r\n12.50\r\n" +
		"--" + curlB + "\r\n" + cd("merchant") + "\r\n\r\nCafé Müller\r\n" +
		"--" + curlB + "\r\n" + cd("receipt") + "; filename=\"r.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4\r\n" +
		"--" + curlB + "--\r\n"

	// Chrome: a file, an empty file input, a textarea with line breaks.
	const chromeB = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
	chrome := "--" + chromeB + "\r\n" + cd("amount") + "\r\n\r\n12.50\r\n" +
		"--" + chromeB + "\r\n" + cd("merchant") + "\r\n\r\nCafé Müller\r\n" +
		"--" + chromeB + "\r\n" + cd("note") + "\r\n\r\nline 1\r\nline 2\r\n" +
		"--" + chromeB + "\r\n" + cd("receipt") + "; filename=\"Rechnung März.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF\x00\xff\r\n" +
		"--" + chromeB + "\r\n" + cd("other") + "; filename=\"\"\r\nContent-Type: application/octet-stream\r\n\r\n\r\n" +
		"--" + chromeB + "--\r\n"

	// Firefox.
	const firefoxB = "----geckoformboundary5f8e1a2b3c4d5e6f7a8b9c0d1e2f3a4b"
	firefox := "--" + firefoxB + "\r\n" + cd("amount") + "\r\n\r\n12.50\r\n" +
		"--" + firefoxB + "\r\n" + cd("merchant") + "\r\n\r\nCafé Müller\r\n" +
		"--" + firefoxB + "\r\n" + cd("receipt") + "; filename=\"r.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n\r\n" +
		"--" + firefoxB + "--\r\n"

	// .NET's HttpClient quotes the boundary; no CRLF after the close.
	const dotnetB = "5b2f3c1e-8a9d-4f7b-9c2e-1a2b3c4d5e6f"
	dotnet := "--" + dotnetB + "\r\n" + cd("amount") + "\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n12.50\r\n" +
		"--" + dotnetB + "\r\n" + cd("merchant") + "\r\n\r\nCafé Müller\r\n--" + dotnetB + "--"

	return []struct{ name, ctype, body string }{
		{"go writer", w.FormDataContentType(), gob.String()},
		{"curl", "multipart/form-data; boundary=" + curlB, curl},
		{"chrome", "multipart/form-data; boundary=" + chromeB, chrome},
		{"firefox", "multipart/form-data; boundary=" + firefoxB, firefox},
		{"dotnet", `multipart/form-data; boundary="` + dotnetB + `"`, dotnet},
		{"charset after the boundary", "multipart/form-data; boundary=" + curlB + "; charset=UTF-8", curl},
		{"upper-case media type", "Multipart/Form-Data; boundary=" + curlB, curl},
		{"preamble and blank epilogue", "multipart/form-data; boundary=" + curlB, "This is a preamble.\r\n" + curl + "\r\n \t\r\n"},
		{"lower-case part header names", "multipart/form-data; boundary=" + curlB,
			strings.ReplaceAll(strings.ReplaceAll(curl, "Content-Disposition:", "content-disposition:"), "Content-Type:", "content-type:")},
	}
}

// Bodies in the shape browsers and common clients send are read.
func TestMultipartCanonicalRead(t *testing.T) {
	for _, tc := range canonicalBodies() {
		t.Run(tc.name, func(t *testing.T) {
			r, body := req{ctype: tc.ctype, body: tc.body}.build(t)
			rd := NewReader(r, body)
			for ref, want := range map[string]string{"{form.amount}": "12.50", "{form.merchant}": "Café Müller"} {
				if v, ok, err := rd.Value(mustRef(t, ref)); err != nil || !ok || v != want {
					t.Errorf("%s = %q, %v, %v, want %q", ref, v, ok, err, want)
				}
			}
			if strings.Contains(tc.body, `name="receipt"`) {
				if v, ok, err := rd.Value(mustRef(t, "{form.receipt}")); err != nil || ok {
					t.Errorf("{form.receipt} (a file) = %q, %v, %v, want missing", v, ok, err)
				}
			}
			if strings.Contains(tc.body, `name="note"`) {
				if v, ok, err := rd.Value(mustRef(t, "{form.note}")); err != nil || !ok || v != "line 1\r\nline 2" {
					t.Errorf("{form.note} = %q, %v, %v", v, ok, err)
				}
			}
		})
	}
}

// The PHP model reads the security test's bodies as PHP did.
func TestPHPModel(t *testing.T) {
	for _, tc := range nonCanonical[:1] {
		parts, ok := phpMultipart(tc.ctype, []byte(tc.body))
		if !ok || len(parts) != 3 || parts[2] != (phpPart{name: "amount", value: "9999"}) {
			t.Errorf("%s: PHP reads %#v, %v", tc.name, parts, ok)
		}
	}
	last := func(parts []phpPart, name string) string {
		v := ""
		for _, p := range parts {
			if p.name == name {
				v = p.value
			}
		}
		return v
	}
	for _, tc := range nonCanonical {
		switch tc.name {
		case "bare LF before the delimiter", "single-quoted name", "xboundary parameter":
			parts, ok := phpMultipart(tc.ctype, []byte(tc.body))
			if !ok || last(parts, "amount") != "9999" {
				t.Errorf("%s: PHP reads %#v, %v", tc.name, parts, ok)
			}
			if tc.name == "xboundary parameter" && last(parts, "merchant") != "EVIL Corp" {
				t.Errorf("%s: PHP reads %#v", tc.name, parts)
			}
		}
	}
	for _, tc := range canonicalBodies() {
		parts, ok := phpMultipart(tc.ctype, []byte(tc.body))
		if !ok || last(parts, "amount") != "12.50" || last(parts, "merchant") != "Café Müller" {
			t.Errorf("%s: PHP reads %#v, %v", tc.name, parts, ok)
		}
	}
}

// A Content-Type with bytes that Unicode lower-casing changes in length
// (invalid UTF-8, the Kelvin sign) is read by ASCII case, as PHP does,
// without a panic (found by FuzzMultipart).
func TestMultipartNonASCIIContentType(t *testing.T) {
	for _, ctype := range []string{
		"multipart/form-data; x=\"\xd6\xd6\xd6\xd6\"; boundary=XX",
		"multipart/form-data; x=\"\u212a\u212a\u212a\u212a\u212a\u212a\"; boundary=XX",
	} {
		r, body := req{ctype: ctype, body: amount1 + end}.build(t)
		if v, ok, err := NewReader(r, body).Value(mustRef(t, "{form.amount}")); err != nil || !ok || v != "1" {
			t.Errorf("%q: {form.amount} = %q, %v, %v", ctype, v, ok, err)
		}
	}
	if _, bad := canonicalMultipart("\xd6BoundArY", []byte("0")); bad == "" {
		t.Error("a Content-Type without a boundary parameter accepted")
	}
}
