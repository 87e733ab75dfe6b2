package stepup

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	xhtml "golang.org/x/net/html"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
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
	if got := english.text("sms.session"); got != DefaultMessage {
		t.Errorf("en sms.session = %q, want DefaultMessage %q", got, DefaultMessage)
	}
	if got := english.text("sms.transaction"); got != DefaultTransactionMessage {
		t.Errorf("en sms.transaction = %q, want DefaultTransactionMessage %q", got, DefaultTransactionMessage)
	}
	for _, l := range locales {
		for key, m := range english.msgs {
			lm, ok := l.msgs[key]
			if !ok {
				t.Errorf("%s: no message %q (add it to stepup/locales/%s.json)", l.tag, key, l.tag)
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
				t.Errorf("en.json has states: English state texts live in stateText")
			}
			continue
		}
		for st, txt := range stateText {
			tr, ok := l.states[st]
			if !ok || tr[0] == "" || (txt[1] != "" && tr[1] == "") {
				t.Errorf("%s: state %q is not translated (add it to stepup/locales/%s.json)", l.tag, st, l.tag)
			}
		}
		for st := range l.states {
			if _, ok := stateText[st]; !ok {
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
		if got := findLocale(tc.tag).duration(tc.d); got != tc.want {
			t.Errorf("%s duration(%s) = %q, want %q", tc.tag, tc.d, got, tc.want)
		}
	}
	// The English durations are humanDuration's.
	for _, d := range []time.Duration{0, time.Second, 59 * time.Second, time.Minute, 10 * time.Minute, 2 * time.Hour} {
		if en().duration(d) != humanDuration(d) {
			t.Errorf("en duration(%s) = %q, humanDuration %q", d, en().duration(d), humanDuration(d))
		}
	}
	if got := findLocale("ar").text("page.attempts_left", "n", 1); got != "تتبقى محاولة واحدة." {
		t.Errorf("ar one attempt = %q", got)
	}
	if got := findLocale("pt-BR").text("page.attempts_left", "n", 1); got != "Resta 1 tentativa." {
		t.Errorf("pt-BR one attempt = %q", got)
	}
}

// htmlCheck checks that a page is well-formed enough for every browser
// and assistive technology: balanced elements, unique ids, labels and
// ARIA references that resolve, one h1 and one main, a language and a
// direction.
func htmlCheck(page []byte) error {
	void := map[string]bool{"area": true, "base": true, "br": true, "col": true, "embed": true, "hr": true, "img": true,
		"input": true, "link": true, "meta": true, "source": true, "track": true, "wbr": true}
	z := xhtml.NewTokenizer(bytes.NewReader(page))
	var stack []string
	ids := map[string]bool{}
	var refs []string
	count := map[string]int{}
	var problems []string
	inSVG := 0
	for {
		tt := z.Next()
		if tt == xhtml.ErrorToken {
			if z.Err() != io.EOF {
				return z.Err()
			}
			break
		}
		tok := z.Token()
		switch tt {
		case xhtml.StartTagToken, xhtml.SelfClosingTagToken:
			count[tok.Data]++
			attrs := map[string]string{}
			for _, a := range tok.Attr {
				if _, dup := attrs[a.Key]; dup {
					problems = append(problems, fmt.Sprintf("<%s> repeats attribute %s", tok.Data, a.Key))
				}
				attrs[a.Key] = a.Val
			}
			if id, ok := attrs["id"]; ok {
				if ids[id] {
					problems = append(problems, "duplicate id "+id)
				}
				ids[id] = true
			}
			if v, ok := attrs["for"]; ok {
				refs = append(refs, v)
			}
			if v, ok := attrs["aria-describedby"]; ok {
				refs = append(refs, strings.Fields(v)...)
			}
			if tok.Data == "img" && attrs["alt"] == "" {
				problems = append(problems, "<img> without alt text")
			}
			if tok.Data == "html" && (attrs["lang"] == "" || attrs["dir"] == "") {
				problems = append(problems, "<html> without lang and dir")
			}
			if tt == xhtml.StartTagToken && !void[tok.Data] && inSVG == 0 {
				stack = append(stack, tok.Data)
			}
			if tt == xhtml.StartTagToken && tok.Data == "svg" {
				inSVG++ // its shapes close themselves ("<path/>")
			}
		case xhtml.EndTagToken:
			if tok.Data == "svg" {
				inSVG--
			}
			if inSVG > 0 {
				continue
			}
			if len(stack) == 0 || stack[len(stack)-1] != tok.Data {
				return fmt.Errorf("</%s> closes <%s>", tok.Data, strings.Join(stack, "><"))
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) != 0 {
		problems = append(problems, "unclosed <"+strings.Join(stack, "><")+">")
	}
	for _, r := range refs {
		if !ids[r] {
			problems = append(problems, "reference to missing id "+r)
		}
	}
	if count["h1"] != 1 || count["main"] != 1 || count["title"] != 1 {
		problems = append(problems, fmt.Sprintf("want one h1, main and title, have %d, %d, %d", count["h1"], count["main"], count["title"]))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

var nonceAttrRE = regexp.MustCompile(`nonce="([^"]+)"`)

// checkPageResponse checks the headers and markup of one page answer.
func checkPageResponse(t *testing.T, what string, resp *http.Response, body []byte, lang string) {
	t.Helper()
	h := resp.Header
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s: CSP %q lacks %s", what, csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || strings.Contains(csp, "http") {
		t.Errorf("%s: CSP %q", what, csp)
	}
	if h.Get("Cache-Control") != "no-store" || h.Get("X-Frame-Options") != "DENY" || h.Get("Content-Language") != lang {
		t.Errorf("%s: headers %v", what, h)
	}
	m := regexp.MustCompile(`'nonce-([^']+)'`).FindAllStringSubmatch(csp, -1)
	nonce := ""
	if len(m) > 0 {
		nonce = m[0][1]
		for _, x := range m {
			if x[1] != nonce {
				t.Errorf("%s: CSP has two nonces: %q", what, csp)
			}
		}
		for _, a := range nonceAttrRE.FindAllStringSubmatch(string(body), -1) {
			if a[1] != nonce {
				t.Errorf("%s: page nonce %q differs from the CSP's %q", what, a[1], nonce)
			}
		}
		if err := lintPage(body, nonce); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	} else if bytes.Contains(body, []byte("<script")) || !strings.Contains(csp, "style-src 'sha256-") {
		t.Errorf("%s: a page without nonce must be the prebuilt one (CSP %q)", what, csp)
	}
	if err := htmlCheck(body); err != nil {
		t.Errorf("%s: %v", what, err)
	}
	if !bytes.Contains(body, []byte(`lang="`+lang+`"`)) {
		t.Errorf("%s: no lang=%q", what, lang)
	}
	wantDir := `dir="ltr"`
	if lang == "ar" {
		wantDir = `dir="rtl"`
	}
	if !bytes.Contains(body, []byte(wantDir)) {
		t.Errorf("%s: no %s", what, wantDir)
	}
}

// Every designed page, in every locale, through the preview handler
// (which renders exactly as the engine does).
func TestRenderEveryStateEveryLocale(t *testing.T) {
	h, err := PreviewHandler(PageConfig{Title: "Demo Shop", SupportURL: "https://help.example/otp", BrandColor: "#7a1fa2"}, "")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	samples := PageSamples()
	for st := range stateText {
		if !slices.Contains(samples, string(st)) && st != stateChallenge {
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
			checkPageResponse(t, what, resp, body, tag)
			text := html.UnescapeString(string(body))
			l := findLocale(tag)
			st := state(name)
			if strings.HasPrefix(name, "challenge") {
				st = stateChallenge
			}
			if !strings.Contains(text, l.heading(st)) {
				t.Errorf("%s: heading %q missing", what, l.heading(st))
			}
			if tag != "en" && st != stateChallenge && stateText[st][1] != "" && strings.Contains(text, stateText[st][1]) {
				t.Errorf("%s: English text in a %s page", what, tag)
			}
			if st == stateChallenge {
				number := "+1******0100"
				if name == "challenge-number-hidden" {
					if strings.Contains(text, "0100") || strings.Contains(text, "***") {
						t.Errorf("%s: shows the hidden number", what)
					}
					number = l.text("page.sent_hidden", "n", 6)
				}
				for _, want := range []string{`autocomplete="one-time-code"`, `inputmode="numeric"`, `pattern="[0-9]{6}"`,
					`maxlength="6"`, `name="csrf"`, number, l.text("page.code_label"), `<meta name="referrer" content="same-origin">`} {
					if !strings.Contains(text, want) {
						t.Errorf("%s: lacks %q", what, want)
					}
				}
				if strings.Contains(name, "wrong-code") && (!strings.Contains(text, l.text("msg.wrong_code")) ||
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

// A live challenge through the engine, in every locale: the texts come
// from the catalog (errors included), the number is masked and isolated
// in right-to-left pages, and neither the code nor the full number
// reaches the page.
func TestChallengePageLocalized(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		h := newHarness(t, st, nil)
		for i, tag := range Locales() {
			phone := fmt.Sprintf("+1415555%04d", 100+i)
			b := h.browser("user-"+tag, phone)
			resp, _ := b.do("GET", "/account/payment-methods", nil, "Accept-Language", tag)
			loc := resp.Header.Get("Location")
			resp, page := b.do("GET", loc, nil, "Accept-Language", tag)
			checkPageResponse(t, tag, resp, []byte(page), tag)
			l := findLocale(tag)
			text := html.UnescapeString(page)
			msg := h.out.last(t)
			for _, leak := range []string{msg.Code, strings.TrimPrefix(phone, "+"), phone[2:]} {
				if strings.Contains(text, leak) {
					t.Errorf("%s: page carries %q", tag, leak)
				}
			}
			want := l.text("page.sent_to", "n", 6, "to", l.isolate(sender.MaskPhone(phone)))
			if !strings.Contains(text, want) {
				t.Errorf("%s: page lacks %q", tag, want)
			}
			if tag == "ar" && !strings.Contains(text, "\u2066"+sender.MaskPhone(phone)+"\u2069") {
				t.Errorf("ar: the number is not isolated")
			}
			for _, want := range []string{l.text("page.expires_in", "time", l.duration(5*time.Minute)),
				l.text("page.attempts_left", "n", 5), l.text("page.resend_in", "time", l.duration(30*time.Second))} {
				if !strings.Contains(text, want) {
					t.Errorf("%s: page lacks %q", tag, want)
				}
			}
			// The script's data: counts, texts and the resend form.
			m := regexp.MustCompile(`(?s)<script type="application/json" id="stepup-data">(.*?)</script>`).FindStringSubmatch(page)
			var data struct {
				N, Expires, Resend int
				ResendURL, Format  string
				T                  map[string]string
				Dur                map[string]any
			}
			if m == nil || json.Unmarshal([]byte(m[1]), &data) != nil {
				t.Fatalf("%s: no script data", tag)
			}
			if data.N != 6 || data.Expires < 298 || data.Expires > 300 || data.Resend != 30 || data.ResendURL != loc+"/resend" ||
				data.Format != l.text("msg.code_format", "n", 6) || data.T["expired"] != l.text("page.expired") ||
				data.Dur["moment"] != l.text("dur.moment") {
				t.Errorf("%s: script data %+v", tag, data)
			}
			csrf := csrfOf(t, page)
			wrong := otherCode(msg.Code)
			resp, page = b.do("POST", loc, url.Values{"csrf": {csrf}, "code": {wrong}}, "Accept-Language", tag)
			text = html.UnescapeString(page)
			if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(text, l.text("msg.wrong_code")) ||
				!strings.Contains(text, l.text("page.attempts_left", "n", 4)) || !strings.Contains(text, l.text("page.error_title", "title", l.heading(stateChallenge))) {
				t.Errorf("%s: wrong code page = %d\n%s", tag, resp.StatusCode, page)
			}
			resp, page = b.do("POST", loc, url.Values{"csrf": {csrf}, "code": {"12"}}, "Accept-Language", tag)
			if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(html.UnescapeString(page), l.text("msg.code_format", "n", 6)) {
				t.Errorf("%s: malformed code page = %d", tag, resp.StatusCode)
			}
			resp, page = b.do("POST", loc+"/resend", url.Values{"csrf": {csrf}}, "Accept-Language", tag)
			if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(html.UnescapeString(page), l.text("msg.resend_wait")) {
				t.Errorf("%s: resend during cooldown = %d", tag, resp.StatusCode)
			}
			// The API's JSON message follows Accept-Language too.
			resp, _ = b.do("GET", "/.stepup/challenge/"+sampleChallengeID, nil, "Accept", "application/json", "Accept-Language", tag)
			if resp.Header.Get("Content-Language") != tag {
				t.Errorf("%s: JSON Content-Language %q", tag, resp.Header.Get("Content-Language"))
			}
		}
	})
}

// otherCode returns a code that is not code.
func otherCode(code string) string {
	if code == "000000" {
		return "111111"
	}
	return "000000"
}

func TestLockedAndFinishedPagesLocalized(t *testing.T) {
	h := newHarness(t, store.NewMemory(time.Minute), func(c *Config, _ []*Policy) { c.MaxFailures = 1 })
	b := h.browser("alice", "+14155550100")
	loc, csrf := b.start("/account/payment-methods")
	resp, page := b.do("POST", loc, url.Values{"csrf": {csrf}, "code": {otherCode(h.out.last(t).Code)}}, "Accept-Language", "de")
	de := findLocale("de")
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(html.UnescapeString(page), de.heading(stateLocked)) ||
		!strings.Contains(html.UnescapeString(page), "Sie können es in etwa 24 Stunden erneut versuchen.") {
		t.Fatalf("locked = %d\n%s", resp.StatusCode, page)
	}
	checkPageResponse(t, "locked", resp, []byte(page), "de")
	// Expired, with a preserved request: the engine's English sentence is
	// shown in the page's language.
	h2 := newTxHarness(t, store.NewMemory(time.Minute))
	bob := h2.browser("bob", "+14155550101")
	resp, _ = bob.do("POST", "/checkout", url.Values{"amount": {"EUR 10.00"}, "merchant": {"Café Müller"}})
	loc = resp.Header.Get("Location")
	h2.clock.add(6 * time.Minute)
	resp, page = bob.do("GET", loc, nil, "Accept-Language", "pt-BR")
	pt := findLocale("pt-BR")
	text := html.UnescapeString(page)
	if resp.StatusCode != http.StatusGone || !strings.Contains(text, pt.text("msg.expired_not_sent")) ||
		!strings.Contains(text, pt.text("page.start_again")) || !strings.Contains(text, "Pay EUR 10.00 to Café Müller") {
		t.Fatalf("expired transaction = %d\n%s", resp.StatusCode, page)
	}
	checkPageResponse(t, "expired", resp, []byte(page), "pt-BR")
}

// The code message in every locale: the code first, the WebOTP line
// last, and within one SMS where the alphabet allows.
func TestLocalizedMessage(t *testing.T) {
	h := newHarness(t, store.NewMemory(time.Minute), nil)
	e := h.e
	for _, tag := range Locales() {
		for _, describe := range []string{"", "Pay EUR 42.00 to Café Müller"} {
			r := httptest.NewRequest("GET", "https://shop.example/checkout", nil)
			r.Header.Set("Accept-Language", tag)
			text := e.localizedText(r, "123456", describe)
			if !strings.HasPrefix(text, "123456 ") || !strings.HasSuffix(text, "\n\n@shop.example #123456") ||
				strings.Count(text, "123456") != 2 || !strings.Contains(text, "Demo Shop") || !strings.Contains(text, describe) {
				t.Errorf("%s: %q", tag, text)
			}
			l := findLocale(tag)
			if !strings.Contains(text, l.duration(5*time.Minute)) {
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
	if got, want := e.localizedText(r, "123456", ""), "123456 is your Demo Shop verification code. It expires in 5 minutes. Do not share it.\n\n@shop.example #123456"; got != want {
		t.Errorf("en = %q, want %q", got, want)
	}
	// An operator's message is theirs: only a configured locale changes
	// its {ttl}.
	e.cfg.Message = "Code {code} for {site}, valid {ttl}. #{code}"
	r.Header.Set("Accept-Language", "de")
	if got := e.localizedText(r, "123456", ""); got != "Code 123456 for Demo Shop, valid 5 minutes. #123456" {
		t.Errorf("custom message = %q", got)
	}
	e.page = mustPage(t, PageConfig{Locale: "de"}, "")
	if got := e.localizedText(r, "123456", ""); got != "Code 123456 for Demo Shop, valid 5 Minuten. #123456" {
		t.Errorf("custom message, locale de = %q", got)
	}
	e.cfg.Message = DefaultMessage
	r.Header.Set("Accept-Language", "hi")
	if got := e.localizedText(r, "123456", ""); !strings.HasPrefix(got, "123456 ist Ihr Bestätigungscode") {
		t.Errorf("locale override = %q", got)
	}
}

func mustPage(t *testing.T, pc PageConfig, site string) *pageRenderer {
	t.Helper()
	p, err := newPage(pc, site, DefaultCodeLength)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPageConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		pc PageConfig
		ok bool
	}{
		{PageConfig{}, true},
		{PageConfig{Title: "Café Müller", Logo: "/static/logo.svg", BrandColor: "#0a7", SupportURL: "https://help.example/otp", Locale: "pt-br"}, true},
		{PageConfig{Logo: "data:image/svg+xml;base64,PHN2Zy8+"}, true},
		{PageConfig{Logo: "data:image/png;base64,iVBORw0KGgo="}, true},
		{PageConfig{SupportURL: "mailto:help@shop.example"}, true},
		{PageConfig{SupportURL: "tel:+14155550100"}, true},
		{PageConfig{SupportURL: "/help"}, true},
		{PageConfig{Locale: "de-AT"}, true},
		{PageConfig{Logo: "https://cdn.example/logo.png"}, false},
		{PageConfig{Logo: "//cdn.example/logo.png"}, false},
		{PageConfig{Logo: "logo.png"}, false},
		{PageConfig{Logo: "data:text/html;base64,PHNjcmlwdD4="}, false},
		{PageConfig{Logo: "/a\" onerror=\"x"}, false},
		{PageConfig{BrandColor: "7a1fa2"}, true},
		{PageConfig{BrandColor: "red"}, false},
		{PageConfig{BrandColor: "+12345"}, false},
		{PageConfig{BrandColor: "#12345"}, false},
		{PageConfig{BrandColor: "#gggggg"}, false},
		{PageConfig{SupportURL: "javascript:alert(1)"}, false},
		{PageConfig{SupportURL: "//evil.example"}, false},
		{PageConfig{SupportURL: "https://"}, false},
		{PageConfig{Locale: "xx"}, false},
		{PageConfig{Title: strings.Repeat("a", 81)}, false},
		{PageConfig{Title: "a\nb"}, false},
	} {
		err := tc.pc.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%+v: err = %v, want ok=%v", tc.pc, err, tc.ok)
		}
		if _, err2 := newPage(tc.pc, "", 6); (err2 == nil) != tc.ok {
			t.Errorf("newPage(%+v) = %v", tc.pc, err2)
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

func writeTemplate(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "page.html")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// customTemplate is a minimal operator page that keeps to the rules.
const customTemplate = `<!doctype html>
<html lang="{{.Lang}}" dir="{{.Dir}}"><head><meta charset="utf-8"><meta name="referrer" content="same-origin"><title>{{.Heading}} | {{.Site}}</title>
<style nonce="{{.Nonce}}">{{.Style}} body{background:#fafafa}</style></head>
<body><main><h1 class="custom-marker">{{.Heading}}</h1>
{{if eq .State "challenge"}}<p>{{.Text}}</p>
<form method="post" action="{{.Action}}"><input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="code">{{.T "page.code_label"}}</label><input id="code" name="code" autocomplete="one-time-code" inputmode="numeric" maxlength="{{.CodeLength}}">
{{with .Error}}<p>{{.}}</p>{{end}}<button>{{.T "page.verify"}}</button></form>
<script type="application/json" id="stepup-data">{{.Client}}</script><script nonce="{{.Nonce}}">{{.Script}}</script>
{{else}}<p>{{.Text}}</p>{{with .ContinueURL}}<a href="{{.}}">{{$.ContinueText}}</a>{{end}}{{end}}
</main></body></html>`

func TestParsePageTemplate(t *testing.T) {
	if _, err := ParsePageTemplate(writeTemplate(t, customTemplate)); err != nil {
		t.Fatalf("good template: %v", err)
	}
	for name, tc := range map[string]struct{ body, want string }{
		"syntax":        {`{{if .State}}`, "parsing page template"},
		"missing field": {strings.Replace(customTemplate, "{{.Heading}}</h1>", "{{.Headline}}</h1>", 1), "can't evaluate field Headline"},
		"bad key":       {strings.Replace(customTemplate, `{{.T "page.verify"}}`, `{{.T}}`, 1), "state challenge"},
		"no nonce":      {strings.Replace(customTemplate, `<style nonce="{{.Nonce}}">`, `<style>`, 1), "<style> without nonce"},
		"handler":       {strings.Replace(customTemplate, "<button>", `<button onclick="go()">`, 1), "inline event handlers"},
		"style attr":    {strings.Replace(customTemplate, "<main>", `<main style="color:red">`, 1), "style attributes"},
		"external":      {strings.Replace(customTemplate, "</main>", `<img src="https://cdn.example/x.png" alt="x"></main>`, 1), "other origins"},
		"no csrf":       {strings.Replace(customTemplate, `<input type="hidden" name="csrf" value="{{.CSRF}}">`, "", 1), "name=\"csrf\""},
		"wrong action":  {strings.Replace(customTemplate, `action="{{.Action}}"`, `action="/verify"`, 1), "{{.Action}}"},
		"refresh":       {strings.Replace(customTemplate, "<title>", `<meta http-equiv="refresh" content="5"><title>`, 1), "refresh"},
		"no-referrer":   {strings.Replace(customTemplate, `content="same-origin"`, `content="no-referrer"`, 1), "Origin: null"},
	} {
		_, err := ParsePageTemplate(writeTemplate(t, tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, tc.want)
		}
	}
	if _, err := ParsePageTemplate(filepath.Join(t.TempDir(), "missing.html")); err == nil {
		t.Error("missing file accepted")
	}
	// A broken template fails the configuration, not a request.
	if _, err := newPage(PageConfig{Template: writeTemplate(t, `{{.Nope}}`)}, "", 6); err == nil || !strings.Contains(err.Error(), "page template") {
		t.Errorf("newPage with a broken template: %v", err)
	}
}

// A custom template serves the real pages, under the same headers.
func TestCustomTemplateServed(t *testing.T) {
	h := newHarness(t, store.NewMemory(time.Minute), nil)
	h.e.page = mustPage(t, PageConfig{Template: writeTemplate(t, customTemplate), Title: "Custom Shop"}, "Demo Shop")
	b := h.browser("alice", "+14155550100")
	loc, csrf := b.start("/account/payment-methods")
	resp, page := b.do("GET", loc, nil, "Accept-Language", "es")
	if !strings.Contains(page, "custom-marker") || !strings.Contains(page, "| Custom Shop") {
		t.Fatalf("custom page not served:\n%s", page)
	}
	checkPageResponse(t, "custom", resp, []byte(page), "es")
	resp, _ = b.do("POST", loc, url.Values{"csrf": {csrf}, "code": {h.out.last(t).Code}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("verify through the custom page = %d", resp.StatusCode)
	}
}

// Branding reaches the page: title, logo, colors, support link.
func TestBrandedPage(t *testing.T) {
	h := newHarness(t, store.NewMemory(time.Minute), nil)
	h.e.page = mustPage(t, PageConfig{Title: "Café Müller", Logo: "/static/logo.svg", BrandColor: "#7a1fa2",
		SupportURL: "tel:+14155550199"}, "Demo Shop")
	b := h.browser("alice", "+14155550100")
	loc, _ := b.start("/account/payment-methods")
	resp, page := b.do("GET", loc, nil)
	checkPageResponse(t, "branded", resp, []byte(page), "en")
	for _, want := range []string{`<img class="logo" src="/static/logo.svg" alt="Café Müller">`, "--accent:#7a1fa2",
		`href="tel:&#43;14155550199"`, "Contact support", "<title>Confirm it’s you · Café Müller</title>", "Payment methods"} {
		if !strings.Contains(page, want) {
			t.Errorf("branded page lacks %q", want)
		}
	}
}

// The rate-limited page is prebuilt per locale and styled by hash.
func TestRateLimitedPage(t *testing.T) {
	p := mustPage(t, PageConfig{BrandColor: "#e91e63", Title: "Demo Shop"}, "")
	for _, tag := range Locales() {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept-Language", tag)
		h := http.Header{}
		pageHeaders(h, "")
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
		checkPageResponse(t, "rate_limited/"+tag, resp, body, tag)
		l := findLocale(tag)
		if !strings.Contains(html.UnescapeString(string(body)), l.stateText(stateRateLimited)) {
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
	p, err := newPage(PageConfig{}, "", 6)
	if err != nil {
		b.Fatal(err)
	}
	s := pageSamples(6)[0]
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Accept-Language", "hi-IN,hi;q=0.9,en;q=0.8")
	b.ReportAllocs()
	for b.Loop() {
		d := s.data()
		p.prepare(d, s.state, p.localeFor(r), 6)
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
	doc, err := os.ReadFile("../docs/PAGE.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)A minimal template.*?```html\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("no template example in docs/PAGE.md")
	}
	if _, err := ParsePageTemplate(writeTemplate(t, string(m[1]))); err != nil {
		t.Fatalf("the documented template: %v", err)
	}
}
