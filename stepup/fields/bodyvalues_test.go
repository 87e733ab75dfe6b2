package fields

import (
	"errors"
	"strings"
	"testing"
)

func TestPHPName(t *testing.T) {
	for name, want := range map[string]string{
		"_method": "_method", ".method": "_method", " method": "method", "  _method": "_method", " .method": "_method",
		"_method[]": "_method", "_method[x]": "_method", "_method[ ]": "_method", "_method\x00": "_method", "_method\x00x": "_method",
		"_method\x00[x": "_method", "_method[": "_method_", "_method[x": "_method_x", "a[b.c[d": "a_b_c_d", "a.b[c.d]": "a_b",
		"[_method]": "", "\x00_method": "", "_METHOD": "_METHOD", "_method\x01": "_method\x01", "x_method": "x_method",
	} {
		if got := PHPName(name); got != want {
			t.Errorf("PHPName(%q) = %q, want %q", name, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = PHPName("_method[x]") }); n != 0 {
		t.Errorf("PHPName of a name it keeps allocates %v times", n)
	}
}

// BodyValues finds the values of a top-level field as the apps behind
// stepup read the body, and refuses a body they could read differently.
func TestBodyValues(t *testing.T) {
	const none = ""
	for _, tc := range []struct {
		name   string
		method string
		req    req
		want   string // values joined by ",", refused for an error
	}{
		{"form", "", req{ctype: form, body: "reason=moving&_method=DELETE"}, "DELETE"},
		{"form, php names", "", req{ctype: form, body: ".method=a&+_method=b&_method[]=c&_method%00x=d&_method[x]=e"}, "a,b,c,d,e"},
		{"form, other names", "", req{ctype: form, body: "_METHOD=a&x_method=b&_methods=c&_method%01=d&_method[=e&method=g&_method%5B=h&x[_method]=i"}, none},
		{"form, rack 2 and qs names", "", req{ctype: form, body: "[_method]=a&_method]=b&]_method=c&[[_method]]=d&%5B_method%5D=e&[]_method=f&]]_method]]=g&[_method=h"}, "a,b,c,d,e,f,g,h"},
		{"multipart, rack 2 and qs names", "", req{ctype: mpct, body: mp(field("[_method]", "DELETE"))}, "DELETE"},
		{"post without a type, rack 2 name", "", req{body: "_method]=DELETE"}, "DELETE"},
		{"json bracketed key (read as it is)", "", req{ctype: js, body: `{"[_method]":"DELETE"}`}, none},
		{"form, query not read", "", req{ctype: form, query: "_method=PUT", body: "a=1"}, none},
		{"form semicolon", "", req{ctype: form, body: "a=1;_method=DELETE"}, refused},
		{"form gzip", "", req{ctype: form, body: "_method=DELETE", hdr: []string{"Content-Encoding", "gzip"}}, refused},
		{"multipart", "", req{ctype: mpct, body: mp(field("reason", "moving"), field("_method", "DELETE"))}, "DELETE"},
		{"multipart php name", "", req{ctype: mpct, body: mp(field(" .method[]", "DELETE"))}, "DELETE"},
		{"multipart nul in a name", "", req{ctype: mpct, body: mp(field("_method\x00x", "DELETE"))}, refused},
		{"multipart file", "", req{ctype: mpct, body: mp("Content-Disposition: form-data; name=\"_method\"; filename=\"m.txt\"\r\n\r\nDELETE")}, none},
		{"multipart file without a name", "", req{ctype: mpct, body: mp("Content-Disposition: form-data; name=\"_method\"; filename=\"\"\r\n\r\nDELETE")}, refused},
		{"multipart attachment", "", req{ctype: mpct, body: mp("Content-Disposition: attachment; name=\"_method\"\r\n\r\nDELETE")}, refused},
		{"multipart name twice", "", req{ctype: mpct, body: mp("Content-Disposition: form-data; name=\"x\"; name=\"_method\"\r\n\r\nDELETE")}, refused},
		{"multipart parameter without =", "", req{ctype: mpct, body: mp("Content-Disposition: form-data; x; name=\"_method\"\r\n\r\nDELETE")}, refused},
		{"multipart single quotes", "", req{ctype: mpct, body: mp("Content-Disposition: form-data; name='_method'\r\n\r\nDELETE")}, refused},
		{"multipart ; in a quoted value", "", req{ctype: mpct, body: mp("Content-Disposition: form-data; name=\"f\"; filename=\"a; name=_method \"\r\n\r\nDELETE")}, refused},
		{"multipart part after the end", "", req{ctype: mpct, body: mp(field("x", "1")) + mp(field("_method", "DELETE"))}, refused},
		{"multipart bare LF delimiter", "", req{ctype: mpct, body: mp(field("x", "1\n--XX\r\n"+field("_method", "DELETE")))}, refused},
		{"multipart padded delimiter", "", req{ctype: mpct, body: strings.Replace(mp(field("x", "1"), field("_method", "DELETE")), "--XX\r\n", "--XX \r\n", 1)}, refused},
		{"multipart boundary PHP reads elsewhere", "", req{ctype: "multipart/form-data; x=\"boundary=YY\"; boundary=XX", body: mp(field("x", "1"))}, refused},
		// Not the shape browsers send (canonicalMultipart): refused.
		{"multipart boundary in another case", "", req{ctype: "multipart/form-data; BOUNDARY=XX", body: mp(field("_method", "DELETE"))}, refused},
		{"multipart quoted boundary", "", req{ctype: "multipart/form-data; boundary=\"XX\"", body: mp(field("_method", "DELETE"))}, "DELETE"},
		{"json", "", req{ctype: js, body: `{"_method":"DELETE","x":1}`}, "DELETE"},
		{"json charset", "", req{ctype: js + "; charset=utf-8", body: `{"_method":"DELETE"}`}, "DELETE"},
		{"json +json", "", req{ctype: "application/merge-patch+json", body: `{"_method":"DELETE"}`}, "DELETE"},
		{"json text/json (Laravel)", "", req{ctype: "text/json", body: `{"_method":"DELETE"}`}, "DELETE"},
		{"json in upper case", "", req{ctype: "APPLICATION/JSON", body: `{"_method":"DELETE"}`}, "DELETE"},
		// Express's method-override takes an array's first element (R3-6):
		// every string of an array is asked for; any other value is
		// refused (any method), null asks for none.
		{"json array", "", req{ctype: js, body: `{"_method":["DELETE"],"a":{"_method":"PUT"}}`}, "DELETE"},
		{"json array of two", "", req{ctype: js, body: `{"_method":["DELETE","POST"]}`}, "DELETE,POST"},
		{"json empty array", "", req{ctype: js, body: `{"_method":[]}`}, none},
		{"json array of an array", "", req{ctype: js, body: `{"_method":[["DELETE"]]}`}, refused},
		{"json array of a number", "", req{ctype: js, body: `{"_method":["DELETE",1]}`}, refused},
		{"json object", "", req{ctype: js, body: `{"_method":{"0":"DELETE"}}`}, refused},
		{"json number", "", req{ctype: js, body: `{"_method":1}`}, refused},
		{"json bool", "", req{ctype: js, body: `{"_method":true}`}, refused},
		{"json null", "", req{ctype: js, body: `{"_method":null}`}, none},
		// A type holding "json" anywhere is JSON, as Laravel's isJson()
		// tells it; a form type that holds it is refused (R3-1).
		{"form type +json (Laravel)", "", req{ctype: "application/x-www-form-urlencoded;charset=utf-8;v=+json", body: `{"_method":"DELETE"}`}, refused},
		{"form type quoted /json", "", req{ctype: "application/x-www-form-urlencoded; charset=\"/json\"", body: `_method=DELETE`}, refused},
		{"form type JSON in any case", "", req{ctype: "application/x-www-form-urlencoded; v=JsOn", body: `{"_method":"DELETE"}`}, refused},
		{"multipart type +json", "", req{ctype: "multipart/form-data; boundary=XX; v=+json", body: mp(field("a", "1"))}, refused},
		{"multipart/mixed +json", "", req{ctype: "multipart/mixed; boundary=XX; v=+json", body: mp(field("a", "1"))}, refused},
		{"text/plain +json", "", req{ctype: "text/plain; v=+json", body: `{"_method":"DELETE"}`}, "DELETE"},
		{"text/x-json (Rails)", "", req{ctype: "text/x-json", body: `{"_method":"DELETE"}`}, "DELETE"},
		{"octet-stream json parameter", "", req{ctype: "application/octet-stream; v=json", body: `{"_method":"DELETE"}`}, "DELETE"},
		{"multipart/mixed (Rack)", "", req{ctype: "multipart/mixed; boundary=XX", body: mp(field("_method", "DELETE"))}, "DELETE"},
		{"empty type (Rack)", "", req{ctype: " ", body: "_method=DELETE"}, "DELETE"},
		{"json other case", "", req{ctype: js, body: `{"_METHOD":"DELETE"}`}, none},
		{"json array", "", req{ctype: js, body: `[{"_method":"DELETE"}]`}, none},
		{"json duplicate", "", req{ctype: js, body: `{"_method":"GET","_method":"DELETE"}`}, refused},
		{"json malformed", "", req{ctype: js, body: `{"_method":"DELETE"`}, refused},
		{"text/json malformed", "", req{ctype: "text/json", body: `{"_method":`}, refused},
		{"text/json gzip", "", req{ctype: "text/json", body: `x`, hdr: []string{"Content-Encoding", "gzip"}}, refused},
		{"post without a type (Rack)", "", req{body: "_method=DELETE"}, "DELETE"},
		{"put without a type", "PUT", req{body: "_method=DELETE"}, none},
		{"text/plain", "", req{ctype: "text/plain", body: "_method=DELETE"}, none},
		{"empty form", "", req{ctype: form}, none},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, body := tc.req.build(t)
			if tc.method != "" {
				r.Method = tc.method
			}
			got, err := NewReader(r, body).BodyValues("_method")
			switch {
			case tc.want == refused:
				if !errors.Is(err, ErrAmbiguous) {
					t.Fatalf("BodyValues = %q, %v; want ErrAmbiguous", got, err)
				}
			case err != nil:
				t.Fatalf("BodyValues: %v", err)
			case strings.Join(got, ",") != tc.want:
				t.Fatalf("BodyValues = %q, want %q", got, tc.want)
			}
		})
	}
}

// The multipart shapes PHP reads otherwise than Go are refused for a
// reference too.
func TestReaderRefusesPHPMultipart(t *testing.T) {
	for name, q := range map[string]req{
		"single quotes":        {ctype: mpct, body: mp("Content-Disposition: form-data; name='amount'\r\n\r\n9999")},
		"; in a quoted value":  {ctype: mpct, body: mp(field("amount", "1"), "Content-Disposition: form-data; name=\"f\"; filename=\"a; name=amount \"\r\n\r\n9999")},
		"part after the end":   {ctype: mpct, body: mp(field("amount", "1")) + mp(field("amount", "9999"))},
		"bare LF delimiter":    {ctype: mpct, body: mp(field("amount", "1\n--XX\r\n"+field("amount", "9999")))},
		"boundary PHP reads":   {ctype: "multipart/form-data; x=\"boundary=YY\"; boundary=XX", body: mp(field("amount", "1"))},
		"data after the close": {ctype: mpct, body: mp(field("amount", "1")) + "--XX"},
	} {
		r, body := q.build(t)
		if v, ok, err := NewReader(r, body).Value(mustRef(t, "{form.amount}")); !errors.Is(err, ErrAmbiguous) {
			t.Errorf("%s: Value = %q, %v, %v; want ErrAmbiguous", name, v, ok, err)
		}
	}
	// A body as browsers send it still reads.
	r, body := req{ctype: "multipart/form-data; boundary=----WebKitFormBoundaryq1w2e3", body: strings.ReplaceAll(mp(field("amount", "1"),
		"Content-Disposition: form-data; name=\"f\"; filename=\"it's a file.txt\"\r\nContent-Type: text/plain\r\n\r\n--X--"), "XX", "----WebKitFormBoundaryq1w2e3")}.build(t)
	if v, ok, err := NewReader(r, body).Value(mustRef(t, "{form.amount}")); err != nil || !ok || v != "1" {
		t.Errorf("a browser's body: Value = %q, %v, %v", v, ok, err)
	}
}
