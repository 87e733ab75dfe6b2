package fields

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

// req is a request to read fields from.
type req struct {
	ctype string // Content-Type, "" for none
	query string
	body  string
	hdr   []string // more header name, value pairs (added)
}

func (q req) build(t testing.TB) (*http.Request, []byte) {
	t.Helper()
	r, err := http.NewRequest("POST", "/checkout", strings.NewReader(q.body))
	if err != nil {
		t.Fatal(err)
	}
	r.URL.RawQuery = q.query
	if q.ctype != "" {
		r.Header.Set("Content-Type", q.ctype)
	}
	for i := 0; i+1 < len(q.hdr); i += 2 {
		r.Header.Add(q.hdr[i], q.hdr[i+1])
	}
	return r, []byte(q.body)
}

const (
	form = "application/x-www-form-urlencoded"
	mpct = "multipart/form-data; boundary=XX"
	js   = "application/json"
)

// mp builds a multipart body with boundary XX from parts, each its
// headers, a blank line and its content.
func mp(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString("--XX\r\n" + p + "\r\n")
	}
	b.WriteString("--XX--\r\n")
	return b.String()
}

// field is a multipart part of a plain field.
func field(name, value string) string {
	return "Content-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" + value
}

func mustRef(t testing.TB, s string) Ref {
	t.Helper()
	f, err := ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// refused is what a case wants when the request must be refused.
const refused = "\x00refused"

// missing is what a case wants when the request has no such value.
const missing = "\x00missing"

// readerCases are requests and what a reference reads from them: the
// value, missing, or refused. Every refused case is one where an app
// behind stepup can read another value than the one shown.
var readerCases = []struct {
	name string
	req  req
	ref  string
	want string
}{
	// Plain requests read as before.
	{"form", req{ctype: form, body: "amount=EUR+10.00&merchant=Caf%C3%A9&item=1&item=2"}, "{form.merchant}", "Café"},
	{"form with charset utf-8", req{ctype: form + "; charset=UTF-8", body: "amount=1"}, "{form.amount}", "1"},
	{"form without the field", req{ctype: form, body: "merchant=x"}, "{form.amount}", missing},
	{"form repeats another field", req{ctype: form, body: "amount=1&item=1&item=2"}, "{form.amount}", "1"},
	{"form empty value", req{ctype: form, body: "amount="}, "{form.amount}", ""},
	{"form _charset_ utf-8", req{ctype: form, body: "_charset_=UTF-8&amount=1"}, "{form.amount}", "1"},
	{"rails names", req{ctype: form, body: "user[email]=a%40b.c&user[phone]=%2B14155550100&user[name]=x"}, "{form.user[phone]}", "+14155550100"},
	{"similar names", req{ctype: form, body: "amount=1&amount_currency=EUR&amounts=2&the_amount=3"}, "{form.amount}", "1"},
	{"query", req{query: "q=%E2%82%AC&page=2"}, "{query.q}", "€"},
	{"query with form body", req{ctype: form, query: "step=pay", body: "amount=1"}, "{query.step}", "pay"},
	{"multipart", req{ctype: mpct, body: mp(field("amount", "99"), field("merchant", "Bäckerei"),
		"Content-Disposition: form-data; name=\"receipt\"; filename=\"r.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n\x00\xff--X")}, "{form.merchant}", "Bäckerei"},
	{"multipart part charset utf-8", req{ctype: mpct, body: mp("Content-Disposition: form-data; name=\"amount\"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n5")}, "{form.amount}", "5"},
	{"json", req{ctype: js, body: `{"a":{"b":[1,2.50,3]},"amount":"10.00"}`}, "{json.a.b.1}", "2.50"},
	{"json +json type", req{ctype: "application/vnd.api+json; charset=utf-8", body: `{"amount":"7"}`}, "{json.amount}", "7"},
	// R3-1: Laravel's isJson() looks for "/json" or "+json" in the whole
	// Content-Type; a form type that holds "json" is read both ways.
	{"form type +json", req{ctype: "application/x-www-form-urlencoded;charset=utf-8;v=+json", body: `{"x":"=&phone=%2B14155550177&y=","phone":"+14155550999"}`}, "{form.phone}", refused},
	{"form type +json, json ref", req{ctype: "application/x-www-form-urlencoded; v=+json", body: `{"phone":"+14155550999"}`}, "{json.phone}", refused},
	{"multipart type json", req{ctype: "multipart/form-data; boundary=XX; v=JSON", body: mp(field("phone", "1"))}, "{form.phone}", refused},
	{"text/plain +json is json", req{ctype: "text/plain; v=+json", body: `{"phone":"+14155550999"}`}, "{json.phone}", "+14155550999"},
	{"json bool", req{ctype: js, body: `{"ok":true}`}, "{json.ok}", "true"},
	{"json null", req{ctype: js, body: `{"amount":null}`}, "{json.amount}", missing},
	{"json object", req{ctype: js, body: `{"amount":{"v":1}}`}, "{json.amount}", refused},
	{"json array", req{ctype: js, body: `{"amount":[9999],"payee":{"name":"ACME"}}`}, "{json.amount}", refused},
	{"json empty array", req{ctype: js, body: `{"amount":[]}`}, "{json.amount}", refused},
	{"json path through a string", req{ctype: js, body: `{"items":"9999"}`}, "{json.items.0}", refused},
	{"json path through null", req{ctype: js, body: `{"payee":null}`}, "{json.payee.name}", missing},
	{"json absent", req{ctype: js, body: `{"payee":{"iban":"x"}}`}, "{json.payee.name}", missing},
	{"json dotted key beside the path", req{ctype: js, body: `{"payee":{"name":"ACME"},"payee.name":"EVIL Corp 9999"}`}, "{json.payee.name}", refused},
	{"json dotted key alone", req{ctype: js, body: `{"payee.name":"EVIL Corp 9999"}`}, "{json.payee.name}", refused},
	{"json bracketed key", req{ctype: js, body: `{"payee":{"name":"ACME"},"payee[name]":"9999"}`}, "{json.payee.name}", refused},
	{"json rack key", req{ctype: js, body: `{"amount":"1","[amount]":"9999"}`}, "{json.amount}", refused},
	{"json dotted key deeper", req{ctype: js, body: `{"order":{"payee":{"name":"ACME"},"payee.name":"9999"}}`}, "{json.order.payee.name}", refused},
	{"json dotted key inside", req{ctype: js, body: `{"payee":{"name":"ACME","name.x":"9999"}}`}, "{json.payee.name}", refused},
	{"json dotted key elsewhere", req{ctype: js, body: `{"payee":{"name":"ACME"},"meta":{"payee.name":"x"},"x.y":1,"payeex.name":2}`}, "{json.payee.name}", "ACME"},
	{"json dotted key off the path", req{ctype: js, body: `{"payee":{"name":"ACME"},"payee.iban":"x"}`}, "{json.payee.name}", "ACME"},
	{"json index out of range", req{ctype: js, body: `{"a":[1]}`}, "{json.a.3}", missing},
	{"json empty body", req{ctype: js, body: "  "}, "{json.amount}", missing},
	{"json repeats keys in other objects", req{ctype: js, body: `{"items":[{"id":1},{"id":2}],"amount":"1"}`}, "{json.amount}", "1"},
	{"json big number", req{ctype: js, body: `{"amount":123456789012345}`}, "{json.amount}", "123456789012345"},
	{"json escaped pair", req{ctype: js, body: `{"m":"\ud83d\ude00 x"}`}, "{json.m}", "😀 x"},

	// A body the reference does not read shows nothing, and no guess.
	{"form ref on json body", req{ctype: js, body: `{"amount":"9999"}`}, "{form.amount}", missing},
	{"json ref on form body", req{ctype: form, body: "amount=9999"}, "{json.amount}", missing},
	{"no content type", req{body: "amount=9999"}, "{form.amount}", missing},
	{"text/plain body", req{ctype: "text/plain", body: "amount=9999"}, "{form.amount}", missing},
	{"text/plain latin-1 body, query ref", req{ctype: "text/plain; charset=latin1", query: "q=1", body: "x"}, "{query.q}", "1"},

	// A name that occurs twice.
	{"form duplicate", req{ctype: form, body: "amount=1.00&merchant=Charity&amount=9999.00"}, "{form.amount}", refused},
	{"form duplicate, same value", req{ctype: form, body: "amount=1&amount=1"}, "{form.amount}", refused},
	{"query duplicate", req{query: "amount=1&amount=2"}, "{query.amount}", refused},
	{"multipart duplicate", req{ctype: mpct, body: mp(field("amount", "1"), field("amount", "9999"))}, "{form.amount}", refused},
	{"json duplicate", req{ctype: js, body: `{"amount":"1","amount":"9999"}`}, "{json.amount}", refused},
	{"json duplicate elsewhere", req{ctype: js, body: `{"amount":"1","x":[{"y":1,"y":2}]}`}, "{json.amount}", refused},
	{"json duplicate under case folding", req{ctype: js, body: `{"amount":"1","AMOUNT":"9999"}`}, "{json.amount}", refused},
	{"json duplicate by the Kelvin sign", req{ctype: js, body: `{"k":"1","` + "\u212a" + `":"9999"}`}, "{json.k}", refused},
	{"json duplicate by an escaped Kelvin sign", req{ctype: js, body: `{"k":"1","\u212a":"9999"}`}, "{json.k}", refused},
	{"json duplicate by escape", req{ctype: js, body: `{"amount":"1","\u0061mount":"9999"}`}, "{json.amount}", refused},
	{"json key only in another case", req{ctype: js, body: `{"Amount":"9999"}`}, "{json.amount}", refused},

	// Names that apps read as the same field.
	{"php array after", req{ctype: form, body: "amount=1&amount[]=9999"}, "{form.amount}", refused},
	{"php array before", req{ctype: form, body: "amount[]=9999&amount=1"}, "{form.amount}", refused},
	{"php map", req{ctype: form, body: "amount=1&amount[x]=9999"}, "{form.amount}", refused},
	{"php dot", req{ctype: form, body: "a_b=1&a.b=9999"}, "{form.a_b}", refused},
	{"php space", req{ctype: form, body: "a_b=1&a+b=9999"}, "{form.a_b}", refused},
	{"php leading space", req{ctype: form, body: "amount=1&+amount=9999"}, "{form.amount}", refused},
	{"php unmatched bracket", req{ctype: form, body: "a_b=1&a[b=9999"}, "{form.a_b}", refused},
	{"nul cuts the name", req{ctype: form, body: "amount=1&amount%00x=9999"}, "{form.amount}", refused},
	{"case", req{ctype: form, body: "amount=1&Amount=9999"}, "{form.amount}", refused},
	{"unicode case", req{ctype: form, body: "k=1&%E2%84%AA=9999"}, "{form.k}", refused},
	{"only another case", req{ctype: form, body: "Amount=9999"}, "{form.amount}", refused},
	{"spring dot", req{ctype: form, body: "amount=1&amount.x=9999"}, "{form.amount}", refused},
	{"rails parent", req{ctype: form, body: "user[phone]=1&user=9999"}, "{form.user[phone]}", refused},
	{"rails child array", req{ctype: form, body: "user[phone]=1&user[phone][]=9999"}, "{form.user[phone]}", refused},
	{"rails array index", req{ctype: form, body: "a[0]=1&a[]=9999"}, "{form.a[0]}", refused},
	{"spring quoted key", req{ctype: form, body: "user[phone]=1&user['phone']=9999"}, "{form.user[phone]}", refused},
	{"leading zero index", req{ctype: form, body: "a[1]=1&a[01]=9999"}, "{form.a[1]}", refused},
	{"rack 2 and qs [x]", req{ctype: form, body: "amount=1&merchant=ACME&[amount]=9999"}, "{form.amount}", refused},
	{"rack 2 and qs [x] alone", req{ctype: form, body: "[amount]=9999&merchant=ACME"}, "{form.amount}", refused},
	{"rack 2 nested", req{ctype: form, body: "user[phone]=1&[user][phone]=9999"}, "{form.user[phone]}", refused},
	{"rack 2 x]y", req{ctype: form, body: "user[phone]=1&user]phone=9999"}, "{form.user[phone]}", refused},
	{"qs a[b]x[c]", req{ctype: form, body: "a[b][c]=1&a[b]x[c]=9999"}, "{form.a[b][c]}", refused},
	{"qs top-level []", req{ctype: form, body: "0=1&[]=9999"}, "{form.0}", refused},
	{"rack 2 names that are not the field", req{ctype: form, body: "amount=1&[x]amount=2&amount[=3&amount_x]=4&[]=5&]]=6"}, "{form.amount}", "1"},
	{"multipart rack 2 name", req{ctype: mpct, body: mp(field("amount", "1"), field("]]amount]]", "9999"))}, "{form.amount}", refused},
	{"query rack 2 name", req{query: "amount=1&amount]=9999"}, "{query.amount}", refused},
	{"form ref, rack 2 name in query", req{ctype: form, query: "[amount]=9999", body: "amount=1"}, "{form.amount}", refused},
	{"query ref, qs name in body", req{ctype: form, query: "amount=1", body: "%5Bamount%5D=9999"}, "{query.amount}", refused},
	{"json ref, rack 2 name in query", req{ctype: js, query: "[amount]=9999", body: `{"amount":"1"}`}, "{json.amount}", refused},
	{"multipart php array", req{ctype: mpct, body: mp(field("amount", "1"), field("amount[]", "9999"))}, "{form.amount}", refused},

	// A name in the query and the body.
	{"form ref, name in query too", req{ctype: form, query: "amount=9999", body: "amount=1"}, "{form.amount}", refused},
	{"form ref, name only in query", req{ctype: form, query: "amount=9999", body: "merchant=x"}, "{form.amount}", refused},
	{"form ref, array in query", req{ctype: form, query: "amount[]=9999", body: "amount=1"}, "{form.amount}", refused},
	{"query ref, name in body too", req{ctype: form, query: "amount=1", body: "amount=9999"}, "{query.amount}", refused},
	{"query ref, name in multipart", req{ctype: mpct, query: "amount=1", body: mp(field("Amount", "9999"))}, "{query.amount}", refused},
	{"query ref, name in json", req{ctype: js, query: "amount=1", body: `{"amount":9999}`}, "{query.amount}", refused},
	{"json ref, name in query", req{ctype: js, query: "amount=9999", body: `{"amount":"1"}`}, "{json.amount}", refused},
	{"json ref, nested name in query", req{ctype: js, query: "order[total]=9999", body: `{"order":{"total":"1"}}`}, "{json.order.total}", refused},

	// Pairs Go's parser drops or rejects.
	{"semicolon", req{ctype: form, body: "merchant=x&amount=1;amount=9999"}, "{form.amount}", refused},
	{"semicolon elsewhere", req{ctype: form, body: "amount=1&x=1;amount=9999"}, "{form.amount}", refused},
	{"semicolon in query", req{ctype: form, query: "x=1;amount=9999", body: "amount=1"}, "{form.amount}", refused},
	{"bad escape", req{ctype: form, body: "amount=1&x=%zz"}, "{form.amount}", refused},
	{"iis %u escape", req{ctype: form, body: "%u0061mount=9999&amount=1"}, "{form.amount}", refused},
	{"too many fields", req{ctype: form, body: strings.Repeat("x=1&", MaxFields) + "amount=1"}, "{form.amount}", refused},

	// Charsets and encodings.
	{"form charset latin-1", req{ctype: form + "; charset=iso-8859-1", body: "amount=1"}, "{form.amount}", refused},
	{"json charset utf-16", req{ctype: js + "; charset=utf-16", body: `{"amount":"1"}`}, "{json.amount}", refused},
	{"_charset_ field", req{ctype: form, body: "_charset_=ISO-8859-1&amount=1"}, "{form.amount}", refused},
	{"multipart part charset", req{ctype: mpct, body: mp("Content-Disposition: form-data; name=\"amount\"\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\n1")}, "{form.amount}", refused},
	{"two content types", req{ctype: form, body: "amount=1", hdr: []string{"Content-Type", js}}, "{form.amount}", refused},
	{"content type does not parse", req{ctype: form + "; charset", body: "amount=1"}, "{form.amount}", refused},
	{"content type rfc 2231", req{ctype: "multipart/form-data; boundary*=utf-8''XX", body: mp(field("amount", "1"))}, "{form.amount}", refused},
	{"gzip body", req{ctype: form, body: "amount=1", hdr: []string{"Content-Encoding", "gzip"}}, "{form.amount}", refused},
	{"value not utf-8", req{ctype: form, body: "merchant=Caf%E9"}, "{form.merchant}", refused},
	{"value with nul", req{ctype: form, body: "amount=1%009999"}, "{form.amount}", refused},

	// Multipart parts that parsers read differently.
	{"quoted-printable part", req{ctype: mpct, body: mp("Content-Disposition: form-data; name=\"amount\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=39=39=39=39")}, "{form.amount}", refused},
	{"base64 part elsewhere", req{ctype: mpct, body: mp(field("amount", "1"), "Content-Disposition: form-data; name=\"x\"\r\nContent-Transfer-Encoding: base64\r\n\r\nYW1vdW50")}, "{form.amount}", refused},
	{"rfc 2231 name", req{ctype: mpct, body: mp("Content-Disposition: form-data; name*=utf-8''amount\r\n\r\n9999")}, "{form.amount}", refused},
	{"rfc 2231 name beside a plain one", req{ctype: mpct, body: mp(field("amount", "1"), "Content-Disposition: form-data; name=\"x\"; name*=utf-8''amount\r\n\r\n9999")}, "{form.amount}", refused},
	{"escaped name", req{ctype: mpct, body: mp(field("amount", "1"), "Content-Disposition: form-data; name=\"amo\\unt\"\r\n\r\n9999")}, "{form.amount}", refused},
	{"two dispositions", req{ctype: mpct, body: mp("Content-Disposition: form-data; name=\"amount\"\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1")}, "{form.amount}", refused},
	{"not form-data", req{ctype: mpct, body: mp("Content-Disposition: attachment; name=\"amount\"\r\n\r\n1")}, "{form.amount}", refused},
	{"field sent as a file without a name", req{ctype: mpct, body: mp("Content-Disposition: form-data; name=\"amount\"; filename=\"\"\r\n\r\n9999")}, "{form.amount}", refused},
	{"only a file of its name", req{ctype: mpct, body: mp("Content-Disposition: form-data; name=\"amount\"; filename=\"a.txt\"\r\n\r\n9999")}, "{form.amount}", missing},
	{"field and a file of its name", req{ctype: mpct, body: mp(field("amount", "1"), "Content-Disposition: form-data; name=\"amount\"; filename=\"a.txt\"\r\n\r\n9999")}, "{form.amount}", refused},
	{"nested multipart", req{ctype: mpct, body: mp("Content-Disposition: form-data; name=\"amount\"\r\nContent-Type: multipart/mixed; boundary=YY\r\n\r\n--YY\r\n\r\n9\r\n--YY--")}, "{form.amount}", refused},
	{"no closing boundary", req{ctype: mpct, body: "--XX\r\n" + field("amount", "1") + "\r\n"}, "{form.amount}", refused},
	{"no boundary", req{ctype: "multipart/form-data", body: mp(field("amount", "1"))}, "{form.amount}", refused},

	// JSON that parsers read differently.
	{"json trailing value", req{ctype: js, body: `{"amount":"1"}{"amount":"9999"}`}, "{json.amount}", refused},
	{"json trailing garbage", req{ctype: js, body: `{"amount":"1"} x`}, "{json.amount}", refused},
	{"json invalid utf-8", req{ctype: js, body: "{\"amount\":\"1\",\"m\":\"Caf\xe9\"}"}, "{json.amount}", refused},
	{"json lone high surrogate", req{ctype: js, body: `{"amount":"1","m":"\ud800"}`}, "{json.amount}", refused},
	{"json lone low surrogate", req{ctype: js, body: `{"amount":"1","m":"\udc00x"}`}, "{json.amount}", refused},
	{"json malformed", req{ctype: js, body: `{"amount":"1",}`}, "{json.amount}", refused},
	{"json exponent", req{ctype: js, body: `{"amount":1e3}`}, "{json.amount}", refused},
	{"json too precise", req{ctype: js, body: `{"amount":9007199254740993}`}, "{json.amount}", refused},
	{"json too deep", req{ctype: js, body: `{"amount":"1","x":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}`}, "{json.amount}", refused},
	{"json nul", req{ctype: js, body: `{"amount":"1\u00009999"}`}, "{json.amount}", refused},
}

func TestReader(t *testing.T) {
	for _, tc := range readerCases {
		t.Run(tc.name, func(t *testing.T) {
			r, body := tc.req.build(t)
			f := mustRef(t, tc.ref)
			v, ok, err := NewReader(r, body).Value(f)
			switch {
			case tc.want == refused:
				if !errors.Is(err, ErrAmbiguous) {
					t.Fatalf("Value = %q, %v, %v: want ErrAmbiguous", v, ok, err)
				}
				var ae *AmbiguousError
				if !errors.As(err, &ae) || ae.Field != tc.ref || ae.Reason == "" {
					t.Fatalf("error %#v does not name %s", err, tc.ref)
				}
				if strings.Contains(err.Error(), "9999") {
					t.Fatalf("error %q shows a value", err)
				}
			case err != nil:
				t.Fatalf("Value: %v", err)
			case tc.want == missing:
				if ok {
					t.Fatalf("Value = %q, want missing", v)
				}
			case !ok || v != tc.want:
				t.Fatalf("Value = %q, %v, want %q", v, ok, tc.want)
			}
		})
	}
}

// A reference whose source repeats names it does not read is not refused
// for them, and each source is parsed once for many references.
func TestReaderManyRefs(t *testing.T) {
	r, body := req{ctype: form, query: "step=pay&tab=1&tab=2", body: "amount=1&merchant=M&item=1&item=2"}.build(t)
	rd := NewReader(r, body)
	for ref, want := range map[string]string{"{form.amount}": "1", "{form.merchant}": "M", "{query.step}": "pay"} {
		if v, ok, err := rd.Value(mustRef(t, ref)); err != nil || !ok || v != want {
			t.Fatalf("%s = %q, %v, %v", ref, v, ok, err)
		}
	}
	if _, _, err := rd.Value(mustRef(t, "{query.tab}")); !errors.Is(err, ErrAmbiguous) {
		t.Fatal("a repeated query name was read")
	}
	if _, _, err := rd.Value(mustRef(t, "{form.item}")); !errors.Is(err, ErrAmbiguous) {
		t.Fatal("a repeated body name was read")
	}
}

func TestParseRef(t *testing.T) {
	for _, bad := range []string{"form.x", "{form.x", "{form.}", "{form}", "{cookie.x}", "{Form.x}", "{json.a..b}", "{json..a}",
		"{form. x}", "{form.x }", "{form.a\x00}", "{form.a\u202e}", "{form.\xff}", "{form." + strings.Repeat("a", 300) + "}"} {
		if f, err := ParseRef(bad); err == nil {
			t.Errorf("ParseRef(%q) = %v", bad, f)
		}
	}
	for s, want := range map[string]Ref{
		"{form.phone}":             {Source: Form, Name: "phone"},
		"{form.user[phone]}":       {Source: Form, Name: "user[phone]"},
		"{query.a.b}":              {Source: Query, Name: "a.b"},
		"{json.customer.phone.0}":  {Source: JSON, Name: "customer.phone.0", path: []string{"customer", "phone", "0"}},
		"{json.Straße}":            {Source: JSON, Name: "Straße", path: []string{"Straße"}},
		"{form.name with a space}": {Source: Form, Name: "name with a space"},
	} {
		f, err := ParseRef(s)
		if err != nil || f.Source != want.Source || f.Name != want.Name || strings.Join(f.path, "|") != strings.Join(want.path, "|") {
			t.Errorf("ParseRef(%q) = %#v, %v", s, f, err)
		}
		if f.String() != s {
			t.Errorf("%q prints as %q", s, f.String())
		}
	}
}

func TestFold(t *testing.T) {
	for _, p := range [][2]string{{"k", "\u212a"}, {"amount", "AMOUNT"}, {"straße", "STRAßE"}, {"ſ", "s"}, {"Σ", "ς"}} {
		if fold(p[0]) != fold(p[1]) {
			t.Errorf("fold(%q) != fold(%q)", p[0], p[1])
		}
		if !strings.EqualFold(p[0], p[1]) {
			t.Errorf("the test's pair %q is not EqualFold", p)
		}
	}
	if fold("a\xffb") != fold("A\xffB") || fold("a\xff") == fold("a\xfe") {
		t.Error("fold mishandles invalid UTF-8")
	}
}
