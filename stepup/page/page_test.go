package page

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup/page/pagetest"
)

var placeholderRE = regexp.MustCompile(`\{[a-z]+\}`)

func placeholders(s string) []string {
	p := placeholderRE.FindAllString(s, -1)
	sort.Strings(p)
	return slices.Compact(p)
}

// Every locale translates every message and state, with the same
// placeholders as English, and plural forms for its language.
func TestCatalogComplete(t *testing.T) {
	if got := Locales(); got[0] != "en" || !slices.Contains(got, "hi") || !slices.Contains(got, "es") ||
		!slices.Contains(got, "de") || !slices.Contains(got, "pt-BR") || !slices.Contains(got, "ar") {
		t.Fatalf("Locales() = %v", got)
	}
	english := en()
	if got := english.Text("sms.session"); got != DefaultMessage {
		t.Errorf("en sms.session = %q, want DefaultMessage %q", got, DefaultMessage)
	}
	if got := english.Text("sms.transaction"); got != DefaultTransactionMessage {
		t.Errorf("en sms.transaction = %q, want DefaultTransactionMessage %q", got, DefaultTransactionMessage)
	}
	for _, l := range locales {
		for key, m := range english.msgs {
			lm, ok := l.msgs[key]
			if !ok {
				t.Errorf("%s: no message %q (add it to stepup/page/locales/%s.json)", l.tag, key, l.tag)
				continue
			}
			want := placeholders(m["other"])
			for form, s := range lm {
				got := placeholders(s)
				// A plural form may spell its number out ("one minute").
				if form != "other" && len(got) < len(want) {
					got = append(got, "{n}")
					sort.Strings(got)
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s %s [%s] = %q: placeholders %v, want %v", l.tag, key, form, s, got, want)
				}
			}
			if len(m) > 1 {
				for _, n := range []int{0, 1, 2, 3, 5, 11, 100} {
					if _, ok := lm[l.plural(n)]; !ok && l.plural(n) != "other" {
						t.Errorf("%s %s: no plural form %q (for %d)", l.tag, key, l.plural(n), n)
					}
				}
			}
		}
		for key := range l.msgs {
			if _, ok := english.msgs[key]; !ok {
				t.Errorf("%s: message %q is not in en.json", l.tag, key)
			}
		}
		if l == english {
			if len(l.states) != 0 {
				t.Errorf("en.json has states: English state texts live in StateText")
			}
			continue
		}
		for st, txt := range StateText {
			tr, ok := l.states[st]
			if !ok || tr[0] == "" || (txt[1] != "" && tr[1] == "") {
				t.Errorf("%s: state %q is not translated (add it to stepup/page/locales/%s.json)", l.tag, st, l.tag)
			}
		}
		for st := range l.states {
			if _, ok := StateText[st]; !ok {
				t.Errorf("%s: translates state %q, which does not exist", l.tag, st)
			}
		}
	}
}

func TestMatchAcceptLanguage(t *testing.T) {
	for header, want := range map[string]string{
		"":                                 "",
		"hi":                               "hi",
		"hi-IN,hi;q=0.9,en-US;q=0.8":       "hi",
		"en-US,en;q=0.9":                   "en",
		"de-CH":                            "de",
		"pt-PT,pt;q=0.9":                   "pt-BR",
		"PT-br":                            "pt-BR",
		"es-419,es;q=0.9":                  "es",
		"fr-FR,fr;q=0.9,de;q=0.5":          "de",
		"fr, es;q=0.2, de;q=0.7":           "de",
		"de;q=0.5, es;q=0.5":               "de",
		"de;q=0, es;q=0.1":                 "es",
		"*":                                "",
		"zh-CN,zh;q=0.9":                   "",
		"ar-EG":                            "ar",
		"es;q=abc, de":                     "de",
		"en;q=0.1, hi;q=1.5, de;q=.9":      "de",
		strings.Repeat("x-y,", 300) + "de": "",
	} {
		got := ""
		if l := matchAcceptLanguage(header); l != nil {
			got = l.tag
		}
		if got != want {
			t.Errorf("matchAcceptLanguage(%.40q) = %q, want %q", header, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { matchAcceptLanguage("fr-FR,fr;q=0.9,en-US;q=0.8,de;q=0.7") }); n != 0 {
		t.Errorf("matchAcceptLanguage allocates %v times", n)
	}
}

func TestPluralAndDurations(t *testing.T) {
	for _, tc := range []struct {
		tag  string
		d    time.Duration
		want string
	}{
		{"en", 0, "a moment"},
		{"en", time.Second, "1 second"},
		{"en", 30 * time.Second, "30 seconds"},
		{"en", 5 * time.Minute, "5 minutes"},
		{"en", 61 * time.Second, "2 minutes"},
		{"en", 3 * time.Hour, "about 3 hours"},
		{"de", time.Minute, "1 Minute"},
		{"de", 5 * time.Minute, "5 Minuten"},
		{"es", 30 * time.Second, "30 segundos"},
		{"pt-BR", time.Hour, "cerca de 1 hora"},
		{"hi", 5 * time.Minute, "5 मिनट"},
		{"ar", 2 * time.Minute, "دقيقتين"},
		{"ar", 5 * time.Minute, "5 دقائق"},
		{"ar", 30 * time.Second, "30 ثانية"},
	} {
		if got := FindLocale(tc.tag).Duration(tc.d); got != tc.want {
			t.Errorf("%s duration(%s) = %q, want %q", tc.tag, tc.d, got, tc.want)
		}
	}
	// The English durations are humanDuration's.
	for _, d := range []time.Duration{0, time.Second, 59 * time.Second, time.Minute, 10 * time.Minute, 2 * time.Hour} {
		if en().Duration(d) != humanDuration(d) {
			t.Errorf("en duration(%s) = %q, humanDuration %q", d, en().Duration(d), humanDuration(d))
		}
	}
	if got := FindLocale("ar").Text("page.attempts_left", "n", 1); got != "تتبقى محاولة واحدة." {
		t.Errorf("ar one attempt = %q", got)
	}
	if got := FindLocale("pt-BR").Text("page.attempts_left", "n", 1); got != "Resta 1 tentativa." {
		t.Errorf("pt-BR one attempt = %q", got)
	}
}

// Every designed page, in every locale, through the preview handler
// (which renders exactly as the engine does).
func TestRenderEveryStateEveryLocale(t *testing.T) {
	h, err := PreviewHandler(Config{Title: "Demo Shop", SupportURL: "https://help.example/otp", BrandColor: "#7a1fa2"}, "")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	samples := Samples()
	for st := range StateText {
		if !slices.Contains(samples, string(st)) && st != StateChallenge {
			t.Errorf("no sample page for state %s", st)
		}
	}
	for _, name := range samples {
		for _, tag := range Locales() {
			what := name + "/" + tag
			req, _ := http.NewRequest("GET", srv.URL+"/"+name, nil)
			req.Header.Set("Accept-Language", tag+";q=0.9, en;q=0.1")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			pagetest.CheckResponse(t, what, resp, body, tag)
			text := html.UnescapeString(string(body))
			l := FindLocale(tag)
			st := State(name)
			if strings.HasPrefix(name, "challenge") {
				st = StateChallenge
			}
			if !strings.Contains(text, l.Heading(st)) {
				t.Errorf("%s: heading %q missing", what, l.Heading(st))
			}
			if tag != "en" && st != StateChallenge && StateText[st][1] != "" && strings.Contains(text, StateText[st][1]) {
				t.Errorf("%s: English text in a %s page", what, tag)
			}
			if st == StateChallenge {
				number := "+1******0100"
				if name == "challenge-number-hidden" {
					if strings.Contains(text, "0100") || strings.Contains(text, "***") {
						t.Errorf("%s: shows the hidden number", what)
					}
					number = l.Text("page.sent_hidden", "n", 6)
				}
				if strings.HasPrefix(name, "challenge-passkey") && name != "challenge-passkey-code" {
					// No code sent yet: the passkey first, the number not shown.
					number = l.Text("page.passkey_prompt")
					for _, want := range []string{`id="passkey-button"`, l.Text("page.passkey_use"), l.Text("page.sms_instead"), `novalidate hidden`} {
						if !strings.Contains(text, want) {
							t.Errorf("%s: lacks %q", what, want)
						}
					}
				}
				for _, want := range []string{`autocomplete="one-time-code"`, `inputmode="numeric"`, `pattern="[0-9]{6}"`,
					`maxlength="6"`, `name="csrf"`, number, l.Text("page.code_label"), `<meta name="referrer" content="same-origin">`} {
					if !strings.Contains(text, want) {
						t.Errorf("%s: lacks %q", what, want)
					}
				}
				if strings.Contains(name, "wrong-code") && (!strings.Contains(text, l.Text("msg.wrong_code")) ||
					!strings.Contains(text, `aria-invalid="true"`)) {
					t.Errorf("%s: wrong-code error not shown in %s next to the field", what, tag)
				}
			}
			if resp.StatusCode == 0 || resp.StatusCode == http.StatusInternalServerError && name != "error" {
				t.Errorf("%s: status %d", what, resp.StatusCode)
			}
		}
	}
}

// The code message in every locale: the code first, the WebOTP line
// last, and within one SMS where the alphabet allows.
func TestLocalizedMessage(t *testing.T) {
	opts := Options{SiteName: "Demo Shop", Domain: "shop.example", CodeLength: 6, CodeTTL: 5 * time.Minute, Message: DefaultMessage}
	p := mustPage(t, Config{}, opts)
	for _, tag := range Locales() {
		for _, describe := range []string{"", "Pay EUR 42.00 to Café Müller"} {
			r := httptest.NewRequest("GET", "https://shop.example/checkout", nil)
			r.Header.Set("Accept-Language", tag)
			text := p.Message(r, "123456", describe)
			if !strings.HasPrefix(text, "123456 ") || !strings.HasSuffix(text, "\n\n@shop.example #123456") ||
				strings.Count(text, "123456") != 2 || !strings.Contains(text, "Demo Shop") || !strings.Contains(text, describe) {
				t.Errorf("%s: %q", tag, text)
			}
			l := FindLocale(tag)
			if !strings.Contains(text, l.Duration(5*time.Minute)) {
				t.Errorf("%s: %q does not say the lifetime", tag, text)
			}
			enc, _, n := sender.Segments(text)
			switch tag {
			case "hi", "ar":
				if enc != sender.UCS2 || n > 3 || describe == "" && n > 2 {
					t.Errorf("%s: %q is %d %s segments", tag, text, n, enc)
				}
			default:
				// Latin-script messages stay in GSM-7: one SMS for a
				// session code, two at most with a description.
				if enc != sender.GSM7 || n > 2 || describe == "" && n > 1 {
					t.Errorf("%s: %q is %d %s segments", tag, text, n, enc)
				}
			}
		}
	}
	// English is exactly the historical message.
	r := httptest.NewRequest("GET", "https://shop.example/", nil)
	if got, want := p.Message(r, "123456", ""), "123456 is your Demo Shop verification code. It expires in 5 minutes. Do not share it.\n\n@shop.example #123456"; got != want {
		t.Errorf("en = %q, want %q", got, want)
	}
	// An operator's message is theirs: only a configured locale changes
	// its {ttl}.
	opts.Message = "Code {code} for {site}, valid {ttl}. #{code}"
	p = mustPage(t, Config{}, opts)
	r.Header.Set("Accept-Language", "de")
	if got := p.Message(r, "123456", ""); got != "Code 123456 for Demo Shop, valid 5 minutes. #123456" {
		t.Errorf("custom message = %q", got)
	}
	p = mustPage(t, Config{Locale: "de"}, opts)
	if got := p.Message(r, "123456", ""); got != "Code 123456 for Demo Shop, valid 5 Minuten. #123456" {
		t.Errorf("custom message, locale de = %q", got)
	}
	opts.Message = DefaultMessage
	p = mustPage(t, Config{Locale: "de"}, opts)
	r.Header.Set("Accept-Language", "hi")
	if got := p.Message(r, "123456", ""); !strings.HasPrefix(got, "123456 ist Ihr Bestätigungscode") {
		t.Errorf("locale override = %q", got)
	}
}

func mustPage(t *testing.T, pc Config, opts Options) *Responder {
	t.Helper()
	p, err := New(pc, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPageConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		pc Config
		ok bool
	}{
		{Config{}, true},
		{Config{Title: "Café Müller", Logo: "/static/logo.svg", BrandColor: "#0a7", SupportURL: "https://help.example/otp", Locale: "pt-br"}, true},
		{Config{Logo: "data:image/svg+xml;base64,PHN2Zy8+"}, true},
		{Config{Logo: "data:image/png;base64,iVBORw0KGgo="}, true},
		{Config{SupportURL: "mailto:help@shop.example"}, true},
		{Config{SupportURL: "tel:+14155550100"}, true},
		{Config{SupportURL: "/help"}, true},
		{Config{Locale: "de-AT"}, true},
		{Config{Logo: "https://cdn.example/logo.png"}, false},
		{Config{Logo: "//cdn.example/logo.png"}, false},
		{Config{Logo: "logo.png"}, false},
		{Config{Logo: "data:text/html;base64,PHNjcmlwdD4="}, false},
		{Config{Logo: "/a\" onerror=\"x"}, false},
		{Config{BrandColor: "7a1fa2"}, true},
		{Config{BrandColor: "red"}, false},
		{Config{BrandColor: "+12345"}, false},
		{Config{BrandColor: "#12345"}, false},
		{Config{BrandColor: "#gggggg"}, false},
		{Config{SupportURL: "javascript:alert(1)"}, false},
		{Config{SupportURL: "//evil.example"}, false},
		{Config{SupportURL: "https://"}, false},
		{Config{Locale: "xx"}, false},
		{Config{Title: strings.Repeat("a", 81)}, false},
		{Config{Title: "a\nb"}, false},
	} {
		err := tc.pc.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%+v: err = %v, want ok=%v", tc.pc, err, tc.ok)
		}
		if _, err2 := New(tc.pc, Options{CodeLength: 6}); (err2 == nil) != tc.ok {
			t.Errorf("New(%+v) = %v", tc.pc, err2)
		}
	}
}

// Whatever the brand color, text on buttons and links meet WCAG AA.
func TestBrandColorContrast(t *testing.T) {
	colors := []string{"#000", "#fff", "#ff0", "#777777", "#808080", "#0000ff", "#ff0000", "#00ff00", "#7a1fa2", "#0b5cad", "#ffa500", "#2e7d32", "#e91e63"}
	for i := 0; i < 200; i++ {
		colors = append(colors, fmt.Sprintf("#%06x", (i*2654435761)&0xffffff))
	}
	varRE := regexp.MustCompile(`--(accent|on-accent|link):(#[0-9a-f]{6})`)
	for _, c := range colors {
		css := brandCSS(c)
		parts := strings.SplitN(css, "@media", 2)
		for i, part := range parts {
			v := map[string]rgb{}
			for _, m := range varRE.FindAllStringSubmatch(part, -1) {
				v[m[1]], _ = parseColor(m[2])
			}
			if len(v) != 3 {
				t.Fatalf("%s: css %q", c, css)
			}
			if r := contrast(v["accent"], v["on-accent"]); r < 4.5 {
				t.Errorf("%s: button text contrast %.2f", c, r)
			}
			bgs := []rgb{lightCard, lightBg}
			if i == 1 {
				bgs = []rgb{darkCard, darkBg}
			}
			for _, bg := range bgs {
				if r := contrast(v["link"], bg); r < 4.5 {
					t.Errorf("%s: link contrast %.2f on %s", c, r, bg.hex())
				}
			}
		}
	}
}

// The colors of the built-in stylesheet meet WCAG AA in both schemes.
func TestStylesheetContrast(t *testing.T) {
	for i, block := range strings.SplitN(baseCSS, "@media (prefers-color-scheme:dark)", 2) {
		end := strings.Index(block, "}")
		v := map[string]rgb{}
		for _, m := range regexp.MustCompile(`--([a-z-]+):(#[0-9a-f]{3,6})`).FindAllStringSubmatch(block[:end], -1) {
			v[m[1]], _ = parseColor(m[2])
		}
		for _, pair := range [][3]string{
			{"fg", "bg", "4.5"}, {"fg", "card", "4.5"}, {"muted", "card", "4.5"}, {"muted", "bg", "4.5"},
			{"link", "card", "4.5"}, {"link", "bg", "4.5"}, {"err", "card", "4.5"}, {"on-accent", "accent", "4.5"},
			{"fg", "ok-bg", "4.5"}, {"fg", "warn-bg", "4.5"}, {"field-line", "card", "3"}, {"field-line", "field", "3"},
			{"fg", "field", "4.5"},
		} {
			var min float64
			fmt.Sscan(pair[2], &min)
			if r := contrast(v[pair[0]], v[pair[1]]); r < min {
				t.Errorf("scheme %d: --%s on --%s has contrast %.2f, want %s", i, pair[0], pair[1], r, pair[2])
			}
		}
	}
}

func TestParsePageTemplate(t *testing.T) {
	if _, err := ParseTemplate(pagetest.WriteTemplate(t, pagetest.CustomTemplate)); err != nil {
		t.Fatalf("good template: %v", err)
	}
	for name, tc := range map[string]struct{ body, want string }{
		"syntax":        {`{{if .State}}`, "parsing page template"},
		"missing field": {strings.Replace(pagetest.CustomTemplate, "{{.Heading}}</h1>", "{{.Headline}}</h1>", 1), "can't evaluate field Headline"},
		"bad key":       {strings.Replace(pagetest.CustomTemplate, `{{.T "page.verify"}}`, `{{.T}}`, 1), "state challenge"},
		"no nonce":      {strings.Replace(pagetest.CustomTemplate, `<style nonce="{{.Nonce}}">`, `<style>`, 1), "<style> without nonce"},
		"handler":       {strings.Replace(pagetest.CustomTemplate, "<button>", `<button onclick="go()">`, 1), "inline event handlers"},
		"style attr":    {strings.Replace(pagetest.CustomTemplate, "<main>", `<main style="color:red">`, 1), "style attributes"},
		"external":      {strings.Replace(pagetest.CustomTemplate, "</main>", `<img src="https://cdn.example/x.png" alt="x"></main>`, 1), "other origins"},
		"no csrf":       {strings.Replace(pagetest.CustomTemplate, `<input type="hidden" name="csrf" value="{{.CSRF}}">`, "", 1), "name=\"csrf\""},
		"wrong action":  {strings.Replace(pagetest.CustomTemplate, `action="{{.Action}}"`, `action="/verify"`, 1), "{{.Action}}"},
		"refresh":       {strings.Replace(pagetest.CustomTemplate, "<title>", `<meta http-equiv="refresh" content="5"><title>`, 1), "refresh"},
		"no-referrer":   {strings.Replace(pagetest.CustomTemplate, `content="same-origin"`, `content="no-referrer"`, 1), "Origin: null"},
	} {
		_, err := ParseTemplate(pagetest.WriteTemplate(t, tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, tc.want)
		}
	}
	if _, err := ParseTemplate(filepath.Join(t.TempDir(), "missing.html")); err == nil {
		t.Error("missing file accepted")
	}
	// A broken template fails the configuration, not a request.
	if _, err := New(Config{Template: pagetest.WriteTemplate(t, `{{.Nope}}`)}, Options{CodeLength: 6}); err == nil || !strings.Contains(err.Error(), "page template") {
		t.Errorf("New with a broken template: %v", err)
	}
}

// The rate-limited page is prebuilt per locale and styled by hash.
func TestRateLimitedPage(t *testing.T) {
	p := mustPage(t, Config{BrandColor: "#e91e63", Title: "Demo Shop"}, Options{CodeLength: 6})
	for _, tag := range Locales() {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept-Language", tag)
		h := http.Header{}
		setHeaders(h, "")
		body := p.rateLimited(h, r)
		m := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindSubmatch(body)
		if m == nil {
			t.Fatalf("%s: no style", tag)
		}
		sum := sha256.Sum256(m[1])
		if !strings.Contains(h.Get("Content-Security-Policy"), "style-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") {
			t.Errorf("%s: CSP %q does not allow the style", tag, h.Get("Content-Security-Policy"))
		}
		resp := &http.Response{Header: h}
		pagetest.CheckResponse(t, "rate_limited/"+tag, resp, body, tag)
		l := FindLocale(tag)
		if !strings.Contains(html.UnescapeString(string(body)), l.stateText(StateRateLimited)) {
			t.Errorf("%s: text missing", tag)
		}
		// Choosing the page costs no allocation (setting its three
		// headers costs what the English-only page did).
		if n := testing.AllocsPerRun(50, func() { _ = p.limited[p.localeFor(r)] }); n > 0 {
			t.Errorf("%s: choosing the page allocates %v times", tag, n)
		}
	}
}

func BenchmarkRenderChallenge(b *testing.B) {
	p, err := New(Config{}, Options{CodeLength: 6})
	if err != nil {
		b.Fatal(err)
	}
	s := samplePages(6)[0]
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Accept-Language", "hi-IN,hi;q=0.9,en;q=0.8")
	b.ReportAllocs()
	for b.Loop() {
		d := s.data()
		p.prepare(d, s.state, p.localeFor(r))
		w := httptest.NewRecorder()
		_ = p.write(w, r, 200, d)
	}
}

func BenchmarkMatchAcceptLanguage(b *testing.B) {
	for b.Loop() {
		matchAcceptLanguage("fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5")
	}
}

// The minimal template of docs/PAGE.md passes the checks it documents.
func TestDocumentedTemplate(t *testing.T) {
	doc, err := os.ReadFile("../../docs/PAGE.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)A minimal template.*?```html\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("no template example in docs/PAGE.md")
	}
	if _, err := ParseTemplate(pagetest.WriteTemplate(t, string(m[1]))); err != nil {
		t.Fatalf("the documented template: %v", err)
	}
}

// The pages that end a flow have a way out: a link back to the site and
// a support line by default, both configurable (issue 17).
func TestTerminalPagesHaveAWayOut(t *testing.T) {
	for _, tc := range []struct {
		cfg        Config
		home, help string // "" for none
	}{
		{Config{}, `href="/"`, "If this keeps happening, please contact customer service."},
		{Config{HomeURL: "https://shop.example/", SupportText: "Call us on 0800 123 456"}, `href="https://shop.example/"`, "Call us on 0800 123 456"},
		{Config{HomeURL: Off, SupportText: Off}, "", ""},
		{Config{SupportURL: "mailto:help@shop.example"}, `href="/"`, `href="mailto:help@shop.example"`},
	} {
		p, err := New(tc.cfg, Options{SiteName: "Shop", CodeLength: 6})
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range []State{StateLocked, StateUnavailable, StateNotFound, StateRateLimited} {
			w := httptest.NewRecorder()
			r := httptest.NewRequest("GET", "/", nil)
			if st == StateRateLimited {
				p.RateLimited(w, r, true)
			} else if err := p.Status(w, r, true, 429, st, Retry(time.Minute)); err != nil {
				t.Fatal(err)
			}
			body := w.Body.String()
			if tc.home != "" && !strings.Contains(body, tc.home) || tc.home == "" && strings.Contains(body, "Back to the site") {
				t.Errorf("%+v %s: home link %q missing or shown:\n%s", tc.cfg, st, tc.home, body)
			}
			if tc.help != "" && !strings.Contains(body, tc.help) || tc.help == "" && strings.Contains(body, `class="help"`) {
				t.Errorf("%+v %s: help line %q missing or shown", tc.cfg, st, tc.help)
			}
		}
		// The challenge itself stays as it was: no home link there.
		w := httptest.NewRecorder()
		c := &Challenge{Policy: "p", CodeLength: 6, Action: "/x", ResendAction: "/x/resend", CSRF: "t", AttemptsLeft: 5, ExpiresIn: time.Minute}
		if err := p.Status(w, httptest.NewRequest("GET", "/", nil), true, 200, StateChallenge, c.Data()); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(w.Body.String(), "Back to the site") {
			t.Errorf("%+v: the challenge page links back to the site", tc.cfg)
		}
	}
	for _, bad := range []Config{{HomeURL: "//evil.example"}, {HomeURL: "javascript:alert(1)"}, {HomeURL: "http://shop.example/"}, {SupportText: "a\nb"}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
