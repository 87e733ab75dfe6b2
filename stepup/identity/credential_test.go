package identity

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// Every way we know of to make some parser read another PHPSESSID than
// the first plain one, and what a plain request looks like.
func TestCookieFind(t *testing.T) {
	const amb = "ambiguous"
	c := newCookieName("PHPSESSID")
	for name, tc := range map[string]struct {
		lines []string
		want  string // the value, "" for not found, amb for an ambiguous error
	}{
		"plain":                 {[]string{"cart=1; PHPSESSID=abc123; theme=dark"}, "abc123"},
		"no spaces":             {[]string{"cart=1;PHPSESSID=abc123"}, "abc123"},
		"absent":                {[]string{"cart=1; theme=dark"}, ""},
		"no Cookie header":      {nil, ""},
		"empty value":           {[]string{"PHPSESSID="}, "="},
		"bare name":             {[]string{"PHPSESSID"}, "="},
		"longer name":           {[]string{"PHPSESSIDX=v; XPHPSESSID=v"}, ""},
		"percent in value":      {[]string{"PHPSESSID=s%3Aabc.sig"}, "s%3Aabc.sig"},
		"value with equals":     {[]string{"PHPSESSID=abc=="}, "abc=="},
		"twice":                 {[]string{"PHPSESSID=mallory; PHPSESSID=victim"}, amb},
		"twice, same value":     {[]string{"PHPSESSID=abc; PHPSESSID=abc"}, amb},
		"two lines":             {[]string{"PHPSESSID=mallory", "PHPSESSID=victim"}, amb},
		"lower case":            {[]string{"PHPSESSID=mallory; phpsessid=victim"}, amb},
		"only other case":       {[]string{"phpsessid=victim"}, amb},
		"percent-encoded name":  {[]string{"PHPSESSID=mallory; PHP%53ESSID=victim"}, amb},
		"double-encoded name":   {[]string{"PHPSESSID=mallory; PHP%2553ESSID=victim"}, amb},
		"NUL ends the name":     {[]string{"PHPSESSID%00x=victim; PHPSESSID=mallory"}, amb},
		"encoded NUL, twice":    {[]string{"PHPSESSID=mallory; PHPSESSID%2500anything=victim"}, amb},
		"PHP array":             {[]string{"PHPSESSID=mallory; PHPSESSID[x]=victim"}, amb},
		"leading space encoded": {[]string{"PHPSESSID=mallory; %20PHPSESSID=victim"}, amb},
		"quoted name":           {[]string{`PHPSESSID=mallory; "PHPSESSID"=victim`}, amb},
		"dollar name":           {[]string{"PHPSESSID=mallory; $PHPSESSID=victim"}, amb},
		"Rack 2 comma":          {[]string{"x=1, PHPSESSID=victim; PHPSESSID=mallory"}, amb},
		"SimpleCookie space":    {[]string{"PHPSESSID=mallory; x=1 PHPSESSID=victim"}, amb},
		"inside a quoted value": {[]string{`PHPSESSID=mallory; x="a;PHPSESSID=victim"`}, amb},
		"invalid for Go":        {[]string{`PHPSESSID=mallory; PHPSESSID="\166ictim"`}, amb},
		"space before equals":   {[]string{"PHPSESSID =victim"}, amb},
		"value with space":      {[]string{"PHPSESSID=a b"}, amb},
		"quoted value":          {[]string{`PHPSESSID="abc"`}, amb},
		"only under a comma":    {[]string{"x=1,PHPSESSID=victim"}, amb},
		"NBSP separates":        {[]string{"PHPSESSID=mallory;\xa0PHPSESSID=victim"}, amb},
		"NEL separates":         {[]string{"PHPSESSID=mallory; x=1\x85PHPSESSID=victim"}, amb},
		"once, in one of two":   {[]string{"PHPSESSID=mallory", "x"}, amb},
		"space before ';'":      {[]string{"PHPSESSID=abc ; x=1"}, amb},
		"other line only":       {[]string{"cart=1", "theme=dark"}, ""},
	} {
		h := http.Header{}
		for _, l := range tc.lines {
			h.Add("Cookie", l)
		}
		v, found, err := c.find(h)
		switch {
		case tc.want == amb:
			if !errors.Is(err, ErrAmbiguousCredential) {
				t.Errorf("%s: %q %v %v, want ErrAmbiguousCredential", name, v, found, err)
			}
		case err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.want == "=":
			if !found || v != "" {
				t.Errorf("%s: %q %v, want found and empty", name, v, found)
			}
		case found != (tc.want != "") || v != tc.want:
			t.Errorf("%s: %q %v, want %q", name, v, found, tc.want)
		}
	}

	// A name with a dot: PHP reads laravel.session and laravel_session as
	// the same cookie.
	dotted := newCookieName("laravel_session")
	h := http.Header{"Cookie": {"laravel_session=a; laravel.session=b"}}
	if _, _, err := dotted.find(h); !errors.Is(err, ErrAmbiguousCredential) {
		t.Errorf("laravel.session: %v, want ErrAmbiguousCredential", err)
	}
	// A Cookie header under a non-canonical key counts too.
	h = http.Header{"Cookie": {"PHPSESSID=mallory"}, "cookie": {"PHPSESSID=victim"}}
	if _, _, err := c.find(h); !errors.Is(err, ErrAmbiguousCredential) {
		t.Errorf("lower-case Cookie key: %v, want ErrAmbiguousCredential", err)
	}
}

// Names with '_' that PHP reads from ' ', '.' and an unclosed '[' (an
// outside test against php-fpm: "shop session=victim" reached the app as
// shop_session, the first of a name winning there).
func TestCookieFindPHPNames(t *testing.T) {
	c := newCookieName("shop_session")
	for name, tc := range map[string]struct {
		line string
		ok   string // the value found, "" when ambiguous
	}{
		"plain":                  {"shop_session=abc", "abc"},
		"space inside the name":  {"shop session=victim; shop_session=mallory", ""},
		"only a space":           {"shop session=victim", ""},
		"unclosed bracket":       {"shop[session=victim; shop_session=mallory", ""},
		"only an unclosed one":   {"shop[session=victim", ""},
		"dot inside the name":    {"shop.session=victim; shop_session=mallory", ""},
		"closed bracket (array)": {"shop[x]=1; shop_session=abc", "abc"},
	} {
		v, found, err := c.find(http.Header{"Cookie": {tc.line}})
		switch {
		case tc.ok == "" && !errors.Is(err, ErrAmbiguousCredential):
			t.Errorf("%s: %q %v %v, want ErrAmbiguousCredential", name, v, found, err)
		case tc.ok != "" && (err != nil || !found || v != tc.ok):
			t.Errorf("%s: %q %v %v, want %q", name, v, found, err, tc.ok)
		}
	}
}

func TestHeaderCredential(t *testing.T) {
	const amb = "ambiguous"
	for name, tc := range map[string]struct {
		v      string
		bearer bool
		want   string
	}{
		"bearer":                 {"Bearer a.b.c", true, "a.b.c"},
		"bearer lower case":      {"bearer a.b.c", true, "a.b.c"},
		"bearer tab, spaces":     {"Bearer\t  a.b.c  ", true, "a.b.c"},
		"basic":                  {"Basic dXNlcjpwYXNz", true, ""},
		"digest":                 {`Digest username="a", realm="b", nonce="c"`, true, ""},
		"empty":                  {"", true, ""},
		"bearer without token":   {"Bearer", true, ""},
		"bare token, bearer":     {"a.b.c", true, ""},
		"two bearer tokens":      {"Bearer a.b.c, Bearer d.e.f", true, amb},
		"bearer, comma":          {"Bearer a.b.c,d.e.f", true, amb},
		"two tokens, space":      {"Bearer a.b.c d.e.f", true, amb},
		"basic then bearer":      {"Basic dXNlcjpwYXNz, Bearer d.e.f", true, amb},
		"basic then bearer case": {"Basic x,bEaReR d.e.f", true, amb},
		"custom bare":            {"a.b.c", false, "a.b.c"},
		"custom with Bearer":     {"Bearer a.b.c", false, "a.b.c"},
		"custom two":             {"a.b.c, d.e.f", false, amb},
		"NBSP after Bearer":      {"Bearer\u00a0a.b.c", true, amb},
		"NBSP, raw byte":         {"Bearer\xa0a.b.c", true, amb},
		"control":                {"Bearer a.b.c\x0b", true, amb},
		"custom, NBSP":           {"a.b.c\u00a0d.e.f", false, amb},
	} {
		got, err := headerCredential(tc.v, tc.bearer)
		switch {
		case tc.want == amb:
			if !errors.Is(err, ErrAmbiguousCredential) {
				t.Errorf("%s: %q %v, want ErrAmbiguousCredential", name, got, err)
			}
		case err != nil || got != tc.want:
			t.Errorf("%s: %q %v, want %q", name, got, err, tc.want)
		}
	}
}

func TestQueryAndPathParams(t *testing.T) {
	id, access := newCookieName("id_token"), newCookieName("access_token")
	for q, want := range map[string]int{
		"":                                 0,
		"tab=cards":                        0,
		"id_token=x":                       1,
		"ID_TOKEN=x":                       1,
		"id%5Ftoken=x":                     1,
		"id.token=x":                       1,
		"a=1;access_token=x&id_token=y":    2,
		"id_tokens=x&xid_token=y":          0,
		"access_token[]=x":                 1,
		"next=%2Faccount%3Fid_token%3Dx":   0,
		"id_token=a&id_token=b&tab=x&q=id": 2,
	} {
		if got := len(queryValues(q, id, access)); got != want {
			t.Errorf("%q: %d values, want %d", q, got, want)
		}
	}
	if v := queryValues("id_token=a%2Eb", id); len(v) != 1 || v[0] != "a.b" {
		t.Errorf("values are decoded: %q", v)
	}
	js := newCookieName("JSESSIONID")
	if v := pathParamValues("/shop;jsessionid=ABC/cart;x=1", js); len(v) != 1 || v[0] != "ABC" {
		t.Errorf("path parameter: %q", v)
	}
	if v := pathParamValues("/shop/cart", js); v != nil {
		t.Errorf("no path parameter: %q", v)
	}
}

func TestFoldedHeaderEqual(t *testing.T) {
	for a, b := range map[string]string{
		"X-Id-Token":    "X_Id_Token",
		"Authorization": "authorization",
		"X-Remote-User": "x.remote user",
	} {
		if !FoldedEqual(a, b) {
			t.Errorf("%q and %q should fold together", a, b)
		}
	}
	for a, b := range map[string]string{
		"X-Id-Token":    "X-Id-Tokens",
		"Authorization": "Authorizatiom",
		"X-Remote-User": "X-Remote-Usex",
	} {
		if FoldedEqual(a, b) {
			t.Errorf("%q and %q should not fold together", a, b)
		}
	}
}

// Models of how apps read a Cookie header, for FuzzCookieFind: PHP
// (';' only, leading whitespace dropped, names %-decoded and mangled,
// first wins) and Python's SimpleCookie or Django (whitespace also
// separates, in Latin-1 text; last wins).
func phpCookie(lines []string, name string) (string, bool) {
	for part := range strings.SplitSeq(strings.Join(lines, ", "), ";") {
		part = strings.TrimLeft(part, " \t\n\v\f\r")
		n, v, _ := strings.Cut(part, "=")
		if d, err := url.QueryUnescape(n); err == nil {
			n = d
		}
		if i := strings.IndexByte(n, 0); i >= 0 {
			n = n[:i] // PHP's C strings end at a NUL
		}
		n = strings.TrimLeft(n, " ")
		if i := strings.IndexByte(n, '['); i >= 0 {
			n = n[:i]
		}
		n = strings.NewReplacer(" ", "_", ".", "_").Replace(n)
		if n == name {
			if d, err := url.QueryUnescape(v); err == nil {
				v = d
			}
			return v, true
		}
	}
	return "", false
}

func pythonCookie(lines []string, name string) (string, bool) {
	var got string
	found := false
	for _, line := range lines {
		for part := range strings.SplitSeq(line, ";") {
			for word := range strings.FieldsFuncSeq(part, func(r rune) bool {
				return unicode.IsSpace(r) || r == 0x85 || r == 0xa0 || r >= utf8.RuneSelf
			}) {
				if n, v, _ := strings.Cut(word, "="); n == name {
					got, found = strings.Trim(v, `"`), true
				}
			}
		}
	}
	return got, found
}

// Whatever the header, a value find accepts is the one Go's
// Request.Cookie, PHP and Python read (PHP %-decoded), or the app reads
// none: there is never a second reading.
func FuzzCookieFind(f *testing.F) {
	for _, s := range []string{
		"cart=1; PHPSESSID=abc123; theme=dark",
		"PHPSESSID=mallory; PHPSESSID=victim",
		"PHPSESSID=mallory; PHP%53ESSID=victim",
		"PHPSESSID%00x=victim; PHPSESSID=mallory",
		"x=1, PHPSESSID=victim; PHPSESSID=mallory",
		"PHPSESSID=mallory; x=1 PHPSESSID=victim",
		"PHPSESSID=mallory;\xa0PHPSESSID=victim",
		"PHPSESSID=mallory;\x85PHPSESSID=victim",
		`PHPSESSID=mallory; x="a;PHPSESSID=victim"`,
		`PHPSESSID="abc"`,
		"PHPSESSID=s%3Aabc.sig",
	} {
		f.Add(s, "")
		f.Add(s, "PHPSESSID=second-line")
	}
	c := newCookieName("PHPSESSID")
	f.Fuzz(func(t *testing.T, line1, line2 string) {
		lines := []string{line1}
		if line2 != "" {
			lines = append(lines, line2)
		}
		h := http.Header{"Cookie": lines}
		v, found, err := c.find(h)
		if err != nil || !found || !cookieOctets(v) {
			return
		}
		r := &http.Request{Header: h}
		if ck, err := r.Cookie("PHPSESSID"); err != nil || ck.Value != v {
			t.Fatalf("find read %q, Go's Request.Cookie %v %v", v, ck, err)
		}
		if pv, ok := phpCookie(lines, "PHPSESSID"); ok {
			if want, err := url.QueryUnescape(v); err == nil && pv != want {
				t.Fatalf("find read %q, PHP %q", v, pv)
			}
		}
		if pv, ok := pythonCookie(lines, "PHPSESSID"); ok && pv != v {
			t.Fatalf("find read %q, Python %q", v, pv)
		}
	})
}

// A token headerCredential accepts from an Authorization line is what
// common app code reads from it: Python's value.split() (on the line
// decoded as Latin-1), and Go's strings.CutPrefix(value, "Bearer ").
func FuzzHeaderCredential(f *testing.F) {
	for _, s := range []string{"Bearer a.b.c", "bearer a.b.c", "Bearer  a.b.c", "Bearer a.b.c, Bearer d.e.f",
		"Basic x, Bearer d.e.f", "Bearer\u00a0a.b.c", "Bearer\ta.b.c", "Bearer a.b.c d.e.f", "Digest a=\"b, c\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		v, err := headerCredential(line, true)
		if err != nil || v == "" {
			return
		}
		latin1 := make([]rune, len(line))
		for i := 0; i < len(line); i++ {
			latin1[i] = rune(line[i])
		}
		if fields := strings.Fields(string(latin1)); len(fields) != 2 || !strings.EqualFold(fields[0], "Bearer") || fields[1] != v {
			t.Fatalf("%q: read %q, Python's split() %q", line, v, fields)
		}
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "Bearer "); ok && strings.TrimSpace(rest) != v {
			t.Fatalf("%q: read %q, CutPrefix %q", line, v, rest)
		}
	})
}
