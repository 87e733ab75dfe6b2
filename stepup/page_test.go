package stepup

import (
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup/page"
	"github.com/caddy-stepup/caddy-stepup/stepup/page/pagetest"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// The engine's pages through the engine (package page tests the pages
// themselves).

// unknownChallengeID is a well-formed challenge id that exists nowhere.
const unknownChallengeID = "PREVIEW_0123456789abcd"

// mustPage is the page.Responder of an engine configured as cfg, with pc
// as its page options.
func mustPage(t *testing.T, cfg Config, pc page.Config) *page.Responder {
	t.Helper()
	p, err := page.New(pc, cfg.pageOptions())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A live challenge through the engine, in every locale: the texts come
// from the catalog (errors included), the number is masked and isolated
// in right-to-left pages, and neither the code nor the full number
// reaches the page.
func TestChallengePageLocalized(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		h := newHarness(t, st, nil)
		for i, tag := range page.Locales() {
			phone := fmt.Sprintf("+1415555%04d", 100+i)
			b := h.browser("user-"+tag, phone)
			resp, _ := b.do("GET", "/account/payment-methods", nil, "Accept-Language", tag)
			loc := resp.Header.Get("Location")
			resp, body := b.do("GET", loc, nil, "Accept-Language", tag)
			pagetest.CheckResponse(t, tag, resp, []byte(body), tag)
			l := page.FindLocale(tag)
			text := html.UnescapeString(body)
			msg := h.out.last(t)
			for _, leak := range []string{msg.Code, strings.TrimPrefix(phone, "+"), phone[2:]} {
				if strings.Contains(text, leak) {
					t.Errorf("%s: page carries %q", tag, leak)
				}
			}
			want := l.Text("page.sent_to", "n", 6, "to", l.Isolate(sender.MaskPhone(phone)))
			if !strings.Contains(text, want) {
				t.Errorf("%s: page lacks %q", tag, want)
			}
			if tag == "ar" && !strings.Contains(text, "\u2066"+sender.MaskPhone(phone)+"\u2069") {
				t.Errorf("ar: the number is not isolated")
			}
			for _, want := range []string{l.Text("page.expires_in", "time", l.Duration(5*time.Minute)),
				l.Text("page.attempts_left", "n", 5), l.Text("page.resend_in", "time", l.Duration(30*time.Second))} {
				if !strings.Contains(text, want) {
					t.Errorf("%s: page lacks %q", tag, want)
				}
			}
			// The script's data: counts, texts and the resend form.
			m := regexp.MustCompile(`(?s)<script type="application/json" id="stepup-data">(.*?)</script>`).FindStringSubmatch(body)
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
				data.Format != l.Text("msg.code_format", "n", 6) || data.T["expired"] != l.Text("page.expired") ||
				data.Dur["moment"] != l.Text("dur.moment") {
				t.Errorf("%s: script data %+v", tag, data)
			}
			csrf := csrfOf(t, body)
			wrong := otherCode(msg.Code)
			resp, body = b.do("POST", loc, url.Values{"csrf": {csrf}, "code": {wrong}}, "Accept-Language", tag)
			text = html.UnescapeString(body)
			if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(text, l.Text("msg.wrong_code")) ||
				!strings.Contains(text, l.Text("page.attempts_left", "n", 4)) || !strings.Contains(text, l.Text("page.error_title", "title", l.Heading(page.StateChallenge))) {
				t.Errorf("%s: wrong code page = %d\n%s", tag, resp.StatusCode, body)
			}
			resp, body = b.do("POST", loc, url.Values{"csrf": {csrf}, "code": {"12"}}, "Accept-Language", tag)
			if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(html.UnescapeString(body), l.Text("msg.code_format", "n", 6)) {
				t.Errorf("%s: malformed code page = %d", tag, resp.StatusCode)
			}
			resp, body = b.do("POST", loc+"/resend", url.Values{"csrf": {csrf}}, "Accept-Language", tag)
			if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(html.UnescapeString(body), l.Text("msg.resend_wait")) {
				t.Errorf("%s: resend during cooldown = %d", tag, resp.StatusCode)
			}
			// The API's JSON message follows Accept-Language too.
			resp, _ = b.do("GET", "/.stepup/challenge/"+unknownChallengeID, nil, "Accept", "application/json", "Accept-Language", tag)
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
	t.Parallel()
	h := newHarness(t, store.NewMemory(time.Minute), func(c *Config, _ []*Policy) { c.MaxFailures = 1 })
	b := h.browser("alice", "+14155550100")
	loc, csrf := b.start("/account/payment-methods")
	resp, body := b.do("POST", loc, url.Values{"csrf": {csrf}, "code": {otherCode(h.out.last(t).Code)}}, "Accept-Language", "de")
	de := page.FindLocale("de")
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(html.UnescapeString(body), de.Heading(page.StateLocked)) ||
		!strings.Contains(html.UnescapeString(body), "Sie können es in etwa 24 Stunden erneut versuchen.") {
		t.Fatalf("locked = %d\n%s", resp.StatusCode, body)
	}
	pagetest.CheckResponse(t, "locked", resp, []byte(body), "de")
	// Expired, with a preserved request: the engine's English sentence is
	// shown in the page's language.
	h2 := newTxHarness(t, store.NewMemory(time.Minute))
	bob := h2.browser("bob", "+14155550101")
	resp, _ = bob.do("POST", "/checkout", url.Values{"amount": {"EUR 10.00"}, "merchant": {"Café Müller"}})
	loc = resp.Header.Get("Location")
	h2.clock.add(6 * time.Minute)
	resp, body = bob.do("GET", loc, nil, "Accept-Language", "pt-BR")
	pt := page.FindLocale("pt-BR")
	text := html.UnescapeString(body)
	if resp.StatusCode != http.StatusGone || !strings.Contains(text, pt.Text("msg.expired_not_sent")) ||
		!strings.Contains(text, pt.Text("page.start_again")) || !strings.Contains(text, "Pay EUR 10.00 to Café Müller") {
		t.Fatalf("expired transaction = %d\n%s", resp.StatusCode, body)
	}
	pagetest.CheckResponse(t, "expired", resp, []byte(body), "pt-BR")
}

// A custom template serves the real pages, under the same headers.
func TestCustomTemplateServed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory(time.Minute), nil)
	h.e.page = mustPage(t, h.e.cfg, page.Config{Template: pagetest.WriteTemplate(t, pagetest.CustomTemplate), Title: "Custom Shop"})
	b := h.browser("alice", "+14155550100")
	loc, csrf := b.start("/account/payment-methods")
	resp, body := b.do("GET", loc, nil, "Accept-Language", "es")
	if !strings.Contains(body, "custom-marker") || !strings.Contains(body, "| Custom Shop") {
		t.Fatalf("custom page not served:\n%s", body)
	}
	pagetest.CheckResponse(t, "custom", resp, []byte(body), "es")
	resp, _ = b.do("POST", loc, url.Values{"csrf": {csrf}, "code": {h.out.last(t).Code}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("verify through the custom page = %d", resp.StatusCode)
	}
}

// Branding reaches the page: title, logo, colors, support link.
func TestBrandedPage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory(time.Minute), nil)
	h.e.page = mustPage(t, h.e.cfg, page.Config{Title: "Café Müller", Logo: "/static/logo.svg", BrandColor: "#7a1fa2",
		SupportURL: "tel:+14155550199"})
	b := h.browser("alice", "+14155550100")
	loc, _ := b.start("/account/payment-methods")
	resp, body := b.do("GET", loc, nil)
	pagetest.CheckResponse(t, "branded", resp, []byte(body), "en")
	for _, want := range []string{`<img class="logo" src="/static/logo.svg" alt="Café Müller">`, "--accent:#7a1fa2",
		`href="tel:&#43;14155550199"`, "Contact support", "<title>Confirm it’s you · Café Müller</title>", "Payment methods"} {
		if !strings.Contains(body, want) {
			t.Errorf("branded page lacks %q", want)
		}
	}
}

// The sample pages (previews, template checks) show a challenge with the
// engine's default settings.
func TestPageSamplesShowDefaults(t *testing.T) {
	t.Parallel()
	tmpl := strings.Replace(pagetest.CustomTemplate, "</main>",
		`<p id="settings">{{.CodeLength}} {{.AttemptsLeft}} {{.SendsLeft}} {{.ExpiresSeconds}} {{.ResendSeconds}} {{.Action}}</p></main>`, 1)
	h, err := page.PreviewHandler(page.Config{Template: pagetest.WriteTemplate(t, tmpl)}, "")
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/challenge", nil))
	want := fmt.Sprintf(`<p id="settings">%d %d %d %d %d %s/challenge/`, DefaultCodeLength, DefaultMaxAttempts, DefaultMaxSends-1,
		int(DefaultCodeTTL/time.Second), int(DefaultResendAfter/time.Second), DefaultPathPrefix)
	if !strings.Contains(w.Body.String(), want) {
		t.Errorf("sample challenge lacks %q:\n%s", want, w.Body)
	}
}
