package page

import (
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The message catalog: what the page and the code message say, in every
// language shipped. One JSON file per locale under locales/; English
// state texts live in StateText (page.go), every other locale has its
// own "states".
//
//go:embed locales/*.json
var localeFS embed.FS

// DefaultLocale is the locale used when nothing else matches.
const DefaultLocale = "en"

// Locale is one language of the catalog.
type Locale struct {
	// tag is the BCP 47 tag ("en", "pt-BR"); base its language ("pt").
	tag, base string
	name      string
	rtl       bool
	msgs      map[string]message
	states    map[State][2]string
	plural    func(n int) string
	// words are the page's fixed words, looked up once; client the
	// texts of the page's script, as JSON.
	words  Words
	client []byte
}

// message is one text of the catalog, by CLDR plural category ("one",
// "few", ...); a text without plural forms has "other" only.
type message map[string]string

// UnmarshalJSON reads a text, or its forms by plural category.
func (m *message) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*m = message{"other": s}
		return nil
	}
	var forms map[string]string
	if err := json.Unmarshal(b, &forms); err != nil {
		return err
	}
	if _, ok := forms["other"]; !ok {
		return fmt.Errorf("plural forms without \"other\"")
	}
	*m = forms
	return nil
}

// locales are the catalog's locales, DefaultLocale first.
var locales = mustLoadLocales()

func mustLoadLocales() []*Locale {
	ls, err := loadLocales()
	if err != nil {
		panic("stepup: embedded locale catalog: " + err.Error())
	}
	return ls
}

func loadLocales() ([]*Locale, error) {
	files, err := localeFS.ReadDir("locales")
	if err != nil {
		return nil, err
	}
	var out []*Locale
	for _, f := range files {
		b, err := localeFS.ReadFile(path.Join("locales", f.Name()))
		if err != nil {
			return nil, err
		}
		var raw struct {
			Locale   string
			Name     string
			Dir      string
			Messages map[string]message
			States   map[string][2]string
		}
		if err := json.Unmarshal(b, &raw); err != nil {
			return nil, fmt.Errorf("%s: %v", f.Name(), err)
		}
		if raw.Locale+".json" != f.Name() {
			return nil, fmt.Errorf("%s: locale %q does not match the file name", f.Name(), raw.Locale)
		}
		base, _, _ := strings.Cut(raw.Locale, "-")
		l := &Locale{
			tag:    raw.Locale,
			base:   base,
			name:   raw.Name,
			rtl:    raw.Dir == "rtl",
			msgs:   raw.Messages,
			states: make(map[State][2]string, len(raw.States)),
			plural: pluralRule(base),
		}
		for k, v := range raw.States {
			l.states[State(k)] = v
		}
		out = append(out, l)
	}
	sort.SliceStable(out, func(i, j int) bool {
		return out[i].tag == DefaultLocale || out[j].tag != DefaultLocale && out[i].tag < out[j].tag
	})
	if len(out) == 0 || out[0].tag != DefaultLocale {
		return nil, fmt.Errorf("no %s catalog", DefaultLocale)
	}
	return out, nil
}

// Locales returns the tags of the locales shipped, DefaultLocale first.
func Locales() []string {
	tags := make([]string, len(locales))
	for i, l := range locales {
		tags[i] = l.tag
	}
	return tags
}

// FindLocale returns the catalog's locale for a BCP 47 tag: an exact
// match ("pt-BR"), else the first of the same language ("pt-PT" gets
// pt-BR, "de-AT" gets de), else nil.
func FindLocale(tag string) *Locale {
	tag = strings.TrimSpace(tag)
	if tag == "" || len(tag) > 35 {
		return nil
	}
	for _, l := range locales {
		if strings.EqualFold(l.tag, tag) {
			return l
		}
	}
	base := tag
	if i := strings.IndexAny(tag, "-_"); i >= 0 {
		base = tag[:i]
	}
	for _, l := range locales {
		if strings.EqualFold(l.base, base) {
			return l
		}
	}
	return nil
}

// matchAcceptLanguage picks the locale an Accept-Language header prefers
// most (RFC 9110 §12.5.4): the highest weight wins, the earlier entry on
// a tie; "*" and unknown languages are skipped. It does not allocate, so
// that refusing a flood stays cheap. nil when nothing matches.
func matchAcceptLanguage(header string) *Locale {
	if len(header) > 512 {
		header = header[:512]
	}
	var best *Locale
	bestQ := 0.0
	for header != "" {
		var item string
		item, header, _ = strings.Cut(header, ",")
		tag, params, _ := strings.Cut(item, ";")
		q := 1.0
		for params != "" {
			var p string
			p, params, _ = strings.Cut(params, ";")
			p = strings.TrimSpace(p)
			if v, ok := strings.CutPrefix(p, "q="); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil || f < 0 || f > 1 {
					f = 0
				}
				q = f
			}
		}
		if q <= bestQ {
			continue
		}
		if l := FindLocale(tag); l != nil {
			best, bestQ = l, q
		}
	}
	return best
}

// pluralRule returns the CLDR plural category of an integer for a
// language (unicode.org/cldr, plural rules, integers only).
func pluralRule(lang string) func(n int) string {
	switch lang {
	case "pt", "hi":
		// pt: i = 0..1; hi: i = 0 or n = 1.
		return func(n int) string {
			if n == 0 || n == 1 {
				return "one"
			}
			return "other"
		}
	case "ar":
		return func(n int) string {
			switch m := n % 100; {
			case n == 0:
				return "zero"
			case n == 1:
				return "one"
			case n == 2:
				return "two"
			case m >= 3 && m <= 10:
				return "few"
			case m >= 11 && m <= 99:
				return "many"
			}
			return "other"
		}
	}
	// en, de, es and most others: one for 1.
	return func(n int) string {
		if n == 1 {
			return "one"
		}
		return "other"
	}
}

func init() {
	for _, l := range locales {
		l.words = Words{
			CodeLabel:      l.Text("page.code_label"),
			Verify:         l.Text("page.verify"),
			Approving:      l.Text("page.approving"),
			ContinueTo:     l.Text("page.continue_to"),
			SendFailedHint: l.Text("page.send_failed_hint"),
			Resend:         l.Text("page.resend"),
			ResendRetry:    l.Text("page.resend_retry"),
			NeverShare:     l.Text("page.never_share"),
			StartAgain:     l.Text("page.start_again"),
			Continue:       l.Text("page.continue"),
			Help:           l.Text("page.help"),
			ContactSupport: l.Text("page.contact_support"),
			BackToSite:     l.Text("page.back_to_site"),
			SupportLine:    l.Text("page.support_default"),
			PasskeyUse:     l.Text("page.passkey_use"),
			PasskeyInstead: l.Text("page.passkey_instead"),
			SMSInstead:     l.Text("page.sms_instead"),
			SendCode:       l.Text("page.send_code"),
			PasskeyCreate:  l.Text("page.passkey_create"),
			NotNow:         l.Text("page.not_now"),
			PasskeyName:    l.Text("passkeys.name"),
			Rename:         l.Text("passkeys.rename"),
			Remove:         l.Text("passkeys.remove"),
			NoPasskeys:     l.Text("passkeys.none"),
		}
		c := clientStatic{
			T: map[string]string{
				"verifying":     l.Text("page.verifying"),
				"resend":        l.Text("page.resend"),
				"resendIn":      l.Text("page.resend_in"),
				"resendReady":   l.Text("page.resend_ready"),
				"expiresIn":     l.Text("page.expires_in"),
				"expired":       l.Text("page.expired"),
				"passkeyFailed": l.Text("page.passkey_failed"),
				"working":       l.Text("page.verifying"),
			},
			Dur: clientDurations{Moment: l.Text("dur.moment")},
		}
		for _, k := range deliveryKeys {
			c.T["delivery."+k] = l.Text("page.delivery_" + k)
		}
		c.Dur.Seconds, _ = l.lookup("dur.seconds")
		c.Dur.Minutes, _ = l.lookup("dur.minutes")
		c.Dur.Hours, _ = l.lookup("dur.hours")
		b, err := json.Marshal(c)
		if err != nil {
			panic("stepup: " + err.Error())
		}
		l.client = b
	}
}

// deliveryKeys are the delivery lines of the catalog
// ("page.delivery_" + key), which the page's script gets too
// ("delivery." + key).
var deliveryKeys = []string{"sending", "delivered", "not_delivered", "failed_over",
	"failed_over_sms", "failed_over_whatsapp", "failed_over_voice", "failed_over_email", "failed_over_rcs"}

// deliveryText says a delivery state in l ("" for none to show: sent,
// failed, which the page's text says already, or unknown).
func (l *Locale) deliveryText(state, channel string) string {
	switch state {
	case "sending", "delivered", "not_delivered":
		return l.Text("page.delivery_" + state)
	case "failed_over":
		switch channel {
		case "sms", "whatsapp", "voice", "email", "rcs":
			return l.Text("page.delivery_failed_over_" + channel)
		}
		return l.Text("page.delivery_failed_over")
	}
	return ""
}

// en is the default locale.
func en() *Locale { return locales[0] }

// lookup returns the message key of l, falling back to English.
func (l *Locale) lookup(key string) (message, bool) {
	if m, ok := l.msgs[key]; ok {
		return m, true
	}
	m, ok := en().msgs[key]
	return m, ok
}

// Text returns message key in l with its {name} placeholders filled from
// args, given as name, value pairs. An int value named "n" chooses the
// plural form. An unknown key returns the key itself, so that a mistake
// shows on the page instead of failing it.
func (l *Locale) Text(key string, args ...any) string {
	m, ok := l.lookup(key)
	if !ok {
		return key
	}
	form := "other"
	for i := 0; i+1 < len(args); i += 2 {
		if args[i] == "n" {
			if n, ok := args[i+1].(int); ok {
				form = l.plural(n)
			}
		}
	}
	s, ok := m[form]
	if !ok {
		s = m["other"]
	}
	return fill(s, args...)
}

// fill replaces {name} in s by the matching value of args (name, value
// pairs). Values are strings or ints; other placeholders stay.
func fill(s string, args ...any) string {
	if len(args) < 2 || !strings.Contains(s, "{") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 32)
	for {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			break
		}
		b.WriteString(s[:i])
		name := s[i+1 : i+j]
		v, ok := arg(name, args)
		if ok {
			b.WriteString(v)
		} else {
			b.WriteString(s[i : i+j+1])
		}
		s = s[i+j+1:]
	}
	b.WriteString(s)
	return b.String()
}

func arg(name string, args []any) (string, bool) {
	for i := 0; i+1 < len(args); i += 2 {
		if args[i] != name {
			continue
		}
		switch v := args[i+1].(type) {
		case string:
			return v, true
		case int:
			return strconv.Itoa(v), true
		case fmt.Stringer:
			return v.String(), true
		}
		return fmt.Sprint(args[i+1]), true
	}
	return "", false
}

// Heading and stateText return the texts of st in l: the catalog's, else
// StateText's English (a state added without its translations still
// shows, in English).
func (l *Locale) Heading(st State) string {
	if t, ok := l.states[st]; ok && t[0] != "" {
		return t[0]
	}
	return StateText[st][0]
}

func (l *Locale) stateText(st State) string {
	if t, ok := l.states[st]; ok && (t[1] != "" || t[0] != "") {
		return t[1]
	}
	return StateText[st][1]
}

// Duration says d the way humanDuration does, in l: "5 minutes", "30
// seconds", "about 3 hours", "a moment".
func (l *Locale) Duration(d time.Duration) string {
	switch {
	case d <= 0:
		return l.Text("dur.moment")
	case d < time.Minute:
		s := int((d + time.Second - 1) / time.Second)
		return l.Text("dur.seconds", "n", s)
	case d < time.Hour:
		m := int((d + time.Minute - 1) / time.Minute)
		return l.Text("dur.minutes", "n", m)
	}
	h := int((d + time.Hour - 1) / time.Hour)
	return l.Text("dur.hours", "n", h)
}

// Isolate wraps text that runs left to right (a phone number) so that it
// keeps its order inside a right-to-left sentence (Unicode LRI ... PDI).
func (l *Locale) Isolate(s string) string {
	if !l.rtl || s == "" {
		return s
	}
	return "\u2066" + s + "\u2069"
}

func (l *Locale) dir() string {
	if l.rtl {
		return "rtl"
	}
	return "ltr"
}

// englishMessages maps the English texts other parts of the engine hand
// to the page (errors, notices) to their catalog keys, so that the page
// can show them in the customer's language.
var englishMessages = func() map[string]string {
	m := make(map[string]string)
	for k, v := range en().msgs {
		if strings.HasPrefix(k, "msg.") && !strings.Contains(v["other"], "{") {
			m[v["other"]] = k
		}
	}
	return m
}()

// translate returns an English message of the engine in l. Texts with
// parameters are recognised for the engine's code length; a text the
// catalog does not know is returned as it is.
func (l *Locale) translate(s string, codeLength int) string {
	if s == "" {
		return s
	}
	if key, ok := englishMessages[s]; ok {
		return l.Text(key)
	}
	if s == en().Text("msg.code_format", "n", codeLength) {
		return l.Text("msg.code_format", "n", codeLength)
	}
	return s
}

// localeFor is the locale of a request: the configured one, else the one
// its Accept-Language prefers, else DefaultLocale.
func (p *Responder) localeFor(r *http.Request) *Locale {
	if p.fixed != nil {
		return p.fixed
	}
	if r != nil {
		if l := matchAcceptLanguage(r.Header.Get("Accept-Language")); l != nil {
			return l
		}
	}
	return en()
}
