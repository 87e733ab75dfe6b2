// Package page is how the step-up engine answers: the challenge page and
// every state a verification can end in, in the customer's language, or
// their JSON for API clients, under the page's headers (a CSP nonce,
// no-store). It holds the built-in template, the message catalog and its
// locales, the page options (Config: branding, support link, a custom
// template checked at start), the previews of every state, and the code
// message in the customer's language.
//
// The engine (package stepup) decides what to answer: the status, the
// State and its Data (for a live challenge, from a Challenge), and
// whether the client is a browser. A Responder decides how.
package page

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"html/template"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/caddy-stepup/caddy-stepup/stepup/page/lint"
)

// The built-in page: its template, stylesheet and script. The stylesheet
// and the script are inlined into every page under the response's CSP
// nonce, so the page makes no request of its own.
//
//go:embed templates/page.html templates/page.css templates/page.js
var templateFS embed.FS

// State is what a page tells the customer: its name is the API's
// "error" code.
type State string

// The page states.
const (
	StateChallenge       State = "challenge"
	StateExpired         State = "expired"
	StateUsed            State = "already_used"
	StateExhausted       State = "attempts_exhausted"
	StateLocked          State = "locked"
	StateNotFound        State = "not_found"
	StateNoIdentity      State = "unauthenticated"
	StateBadPhone        State = "phone_unusable"
	StateUnavailable     State = "unavailable"
	StateUnsupported     State = "unsupported"
	StateForbidden       State = "forbidden"
	StateBadForm         State = "bad_request"
	StateError           State = "error"
	StateTooLarge        State = "request_too_large"
	StateAlreadySent     State = "already_sent"
	StateStashExpired    State = "request_expired"
	StateInvalidGrant    State = "invalid_grant"
	StatePhoneUnverified State = "phone_unverified"
	StateRateLimited     State = "rate_limited"
	StateBodyTimeout     State = "request_timeout"
	StateAmbiguous       State = "ambiguous_request"
	StateCrossSite       State = "cross_site"
	StateBadIdentity     State = "bad_identity"
	// StatePasskeyOffer offers a passkey after a verification by code
	// ("use a passkey next time"); StatePasskeys lists the user's
	// passkeys (rename, remove).
	StatePasskeyOffer State = "passkey_offer"
	StatePasskeys     State = "passkeys"
)

// StateText is the heading and text of each state. No text says which
// part of a verification was wrong, nor whether a user exists.
var StateText = map[State][2]string{
	StateChallenge:       {"Confirm it’s you", ""},
	StateExpired:         {"This code has expired", "For your security, codes are only valid for a few minutes. Start again to get a new one."},
	StateUsed:            {"This code was already used", "This verification is complete. You can continue where you were."},
	StateExhausted:       {"Too many attempts", "This code can no longer be used. Start again to get a new one."},
	StateLocked:          {"Please try again later", "Too many incorrect codes were entered, so verification is paused for your security."},
	StateNotFound:        {"This page is no longer valid", "The verification link has expired or belongs to another session. Go back and try again."},
	StateNoIdentity:      {"Please sign in", "You need to be signed in to continue."},
	StateBadPhone:        {"A mobile number is needed", "We could not find a valid mobile number on your account. Add one in your account settings, then try again."},
	StateUnavailable:     {"Verification is temporarily unavailable", "We could not check your verification right now. Nothing was sent or changed. Please try again in a moment."},
	StateUnsupported:     {"This action cannot be verified", "This kind of request cannot be verified on this site yet. Please contact support."},
	StateForbidden:       {"This form has expired", "For your security, reload the verification page and try again."},
	StateBadForm:         {"Something was wrong with the form", "Reload the page and try again."},
	StateError:           {"Something went wrong", "Please go back and try again."},
	StateTooLarge:        {"This request is too large to verify", "The form you sent is larger than this site accepts for verification. Nothing was sent."},
	StateAlreadySent:     {"This request was already sent", "Your verified request was sent once and will not be sent again. Check your account or order history for the result."},
	StateStashExpired:    {"This request has expired", "Your request was not sent, because it waited too long for verification. Go back and submit it again."},
	StateRateLimited:     {"Please wait a moment", "Too many verification codes were requested. No code was sent this time."},
	StatePhoneUnverified: {"Your mobile number is not verified", "Your account's mobile number has not been verified yet, so we cannot send a code to it. Verify it in your account settings, then try again."},
	StateInvalidGrant:    {"This approval cannot be used", "The approval does not match this request, or it was already used or has expired. Nothing was sent."},
	StateBodyTimeout:     {"This request took too long", "Your form did not arrive in time, so nothing was sent. Check your connection and submit it again."},
	StateAmbiguous:       {"This request cannot be verified", "The form holds a field twice or in a form we cannot show you exactly, so it cannot be approved. Nothing was sent."},
	StateCrossSite:       {"This request came from another site", "For your security, a request sent from another website cannot be approved here. Nothing was sent. Go to this site and try again there."},
	StateBadIdentity:     {"Your sign-in could not be read", "Your account details in this request are not valid. Sign in again, then try again. Nothing was sent."},
	StatePasskeyOffer:    {"Use a passkey next time?", "You are verified. Next time, confirm with your fingerprint, face or screen lock instead of waiting for a code."},
	StatePasskeys:        {"Your passkeys", "Passkeys let you confirm it’s you with your fingerprint, face or screen lock. If you lose a device, remove its passkey here: you can always get a code by SMS instead."},
}

// Config brands and localizes the engine's pages (Caddyfile: the
// stepup directive's page block). The zero value is the built-in page in
// the customer's language, named after the site name
// (Options.SiteName) or the host.
type Config struct {
	// Title is the shop's name at the top of the page and in the
	// browser tab. Default: the site name (Options.SiteName), else the
	// request's host.
	Title string `json:"title,omitempty"`
	// Logo is shown instead of the title (which becomes its alt text):
	// a same-origin path ("/static/logo.svg") or a data:image URI. The
	// page's CSP loads images from nowhere else.
	Logo string `json:"logo,omitempty"`
	// BrandColor colors the buttons, links and focus rings: "#rrggbb",
	// "#rgb", or the same without '#'. Text on it is black or white, whichever contrasts more,
	// and links are darkened (or, in dark mode, lightened) until they
	// meet WCAG AA contrast.
	BrandColor string `json:"brand_color,omitempty"`
	// SupportURL adds a "Need help? Contact support" link: https://,
	// http://, mailto:, tel:, or a same-origin path.
	SupportURL string `json:"support_url,omitempty"`
	// Template is the path of an html/template file that replaces the
	// whole page (data model: docs/PAGE.md). It is parsed and rendered
	// in every state and locale when the engine starts: a broken
	// template fails the configuration, never a request.
	Template string `json:"template,omitempty"`
	// Locale forces one language for the pages and the code messages
	// ("hi", "pt-BR"); empty follows each request's Accept-Language.
	Locale string `json:"locale,omitempty"`
	// HomeURL is where the pages that end a flow (locked, rate limited,
	// unavailable, not found...) link back to: a same-origin path or an
	// https:// URL. Default: "/"; "off": no link.
	HomeURL string `json:"home_url,omitempty"`
	// SupportText is the help line those pages show when there is no
	// SupportURL ("Call us on 0800 123 456"). Default: a sentence that
	// asks the customer to contact customer service, in their language;
	// "off": none.
	SupportText string `json:"support_text,omitempty"`
}

// Off turns a page option with a default off (home_url off).
const Off = "off"

// Validate checks the options that need no file: everything but
// Template, which ParseTemplate (and New) check.
func (pc *Config) Validate() error {
	if n := utf8.RuneCountInString(pc.Title); n > 80 {
		return fmt.Errorf("page title is %d characters, at most 80", n)
	}
	for _, r := range pc.Title {
		if unicode.IsControl(r) {
			return errors.New("page title has a control character")
		}
	}
	if pc.Logo != "" {
		if err := checkLogo(pc.Logo); err != nil {
			return err
		}
	}
	if pc.BrandColor != "" {
		if _, ok := parseColor(pc.BrandColor); !ok {
			return fmt.Errorf("page brand_color %q: want a hex color such as 7a1fa2 or \"#7a1fa2\" (quoted: # starts a Caddyfile comment)", pc.BrandColor)
		}
	}
	if pc.SupportURL != "" {
		if err := checkSupportURL(pc.SupportURL); err != nil {
			return err
		}
	}
	if pc.HomeURL != "" && pc.HomeURL != Off {
		if err := checkHomeURL(pc.HomeURL); err != nil {
			return err
		}
	}
	if n := utf8.RuneCountInString(pc.SupportText); n > 200 || strings.ContainsAny(pc.SupportText, "\r\n") {
		return fmt.Errorf("page support_text: one line of at most 200 characters")
	}
	if pc.Locale != "" && FindLocale(pc.Locale) == nil {
		return fmt.Errorf("page locale %q: not shipped (have %s)", pc.Locale, strings.Join(Locales(), ", "))
	}
	return nil
}

// checkLogo accepts a same-origin path or a data:image URI.
func checkLogo(s string) error {
	bad := fmt.Errorf("page logo %q: want a same-origin path such as /static/logo.svg, or a data:image URI "+
		"(the page's Content-Security-Policy loads images from nowhere else)", truncate(s, 60))
	if rest, ok := strings.CutPrefix(s, "data:"); ok {
		if len(s) > 64<<10 {
			return fmt.Errorf("page logo: the data URI is %d bytes, at most 64 KiB", len(s))
		}
		mediatype, _, _ := strings.Cut(rest, ",")
		mediatype, _, _ = strings.Cut(mediatype, ";")
		switch mediatype {
		case "image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml", "image/avif":
			return nil
		}
		return bad
	}
	u, err := url.Parse(s)
	if err != nil || !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || strings.Contains(s, `\`) ||
		u.Scheme != "" || u.Host != "" || strings.ContainsAny(s, " \t\r\n\"'<>") {
		return bad
	}
	return nil
}

// checkHomeURL accepts a same-origin path or an https:// URL.
func checkHomeURL(s string) error {
	u, err := url.Parse(s)
	bad := fmt.Errorf("page home_url %q: want a path starting with / or an https:// URL, or off", truncate(s, 60))
	switch {
	case err != nil || strings.ContainsAny(s, " \t\r\n\"'<>\\") || len(s) > 2048:
		return bad
	case strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "//") && u.Scheme == "" && u.Host == "":
		return nil
	case strings.EqualFold(u.Scheme, "https") && u.Host != "":
		return nil
	}
	return bad
}

// checkSupportURL accepts web, mail and phone links and same-origin paths.
func checkSupportURL(s string) error {
	u, err := url.Parse(s)
	bad := fmt.Errorf("page support_url %q: want an https://, http://, mailto: or tel: URL, or a path starting with /", truncate(s, 60))
	if err != nil || strings.ContainsAny(s, " \t\r\n\"'<>\\") || len(s) > 2048 {
		return bad
	}
	switch strings.ToLower(u.Scheme) {
	case "https", "http":
		if u.Host == "" {
			return bad
		}
	case "mailto", "tel":
		if u.Opaque == "" {
			return bad
		}
	case "":
		if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") {
			return bad
		}
	default:
		return bad
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Data is what the page template sees: the data model of a `template
// FILE` (docs/PAGE.md lists every field). The engine may set
// ContinueURL, Description, Text, Error and Notice (its English texts
// are shown in the page's language); the Responder fills in the rest. T
// translates a catalog key for the page's locale.
type Data struct {
	State   State
	Heading string
	Text    string
	Site    string
	Nonce   string

	// The challenge form.
	Policy       string
	Description  string
	To           string
	CodeLength   int
	Action       string
	ResendAction string
	CSRF         string
	AttemptsLeft int
	ExpiresIn    string
	ExpiresAt    string
	CanResend    bool
	ResendIn     string
	SendsLeft    int
	SendFailed   bool
	Error        string
	Notice       string
	// Channels are the other channels the next code can be asked on
	// ("use another channel"): each a resend form that posts its Name as
	// "channel", labelled in the page's language.
	Channels []Channel
	// Delivery is how the code's delivery goes (sending, sent,
	// delivered, not_delivered, failed_over, failed; "" when unknown),
	// DeliveryText says it in the page's language ("" when there is
	// nothing to add to Text), and StatusURL is where the page's script
	// polls for changes.
	Delivery, DeliveryText, StatusURL string

	// Passkeys. Passkey: a passkey may answer the challenge (the script
	// asks the browser for it, then posts the assertion to Action);
	// PasskeyFirst: the policy prefers it to a code; NoCode: no code
	// went out yet (the code form is then hidden while a passkey may
	// answer, and "Send a code by SMS" posts to ResendAction).
	Passkey, PasskeyFirst, NoCode bool
	// EnrolAction is where a new passkey is posted (passkey_offer);
	// ManageAction where the passkeys page posts renames and removals.
	EnrolAction, ManageAction string
	// Passkeys are the passkeys the passkeys page lists.
	Passkeys []PasskeyItem

	// Finished states: where to go on.
	ContinueURL string
	// Locked: roughly when to retry.
	RetryIn string

	// Language and direction of the page ("hi", "ltr"; "ar", "rtl").
	Lang string
	Dir  string
	// Branding (Config).
	Logo       template.URL
	SupportURL template.URL
	// HomeURL is the site's front page, linked from the pages that end
	// a flow (page home_url; empty on the challenge page and when off).
	HomeURL template.URL
	// PolicyLabel is the policy's name made readable ("Payment methods").
	PolicyLabel string
	// CodePattern is the code field's pattern ("[0-9]{6}").
	CodePattern string
	// ExpiresSeconds and ResendSeconds are the countdowns' starts;
	// ResendSeconds is 0 when a new code can be asked for now.
	ExpiresSeconds int
	ResendSeconds  int
	// ContinueText labels the ContinueURL button.
	ContinueText string
	// Icon names the state's picture: shield, clock, check, error, info;
	// IconSVG and ErrorSVG (set with an error, and on the challenge for
	// errors the script shows) are the built-in pictures (inline SVG).
	Icon              string
	IconSVG, ErrorSVG template.HTML
	// Style and Script are the built-in stylesheet (branding included)
	// and script; Client is the script's data (JSON). A custom template
	// may reuse them: <style nonce="{{.Nonce}}">{{.Style}}</style>.
	Style  template.CSS
	Script template.JS
	Client template.JS
	// Say are the page's words in its language, sentences filled in.
	Say Words

	loc *Locale
	// Durations the page says in its language.
	expires, resendWait, retry time.Duration
	timed, retrySet            bool
	// sentText marks a challenge whose Text the page words itself.
	sentText bool
	// deliveryCh is the channel of the delivery's last message.
	deliveryCh string
	// passkeyOptions and createOptions are the WebAuthn request and
	// creation options (JSON) the script passes to the browser.
	passkeyOptions, createOptions string
}

// PasskeyItem is one passkey on the passkeys page.
type PasskeyItem struct {
	// ID is the credential id (base64url), Name what the user calls it.
	ID, Name string
	// Created and LastUsed are dates ("2026-12-06"); LastUsed is "" if
	// never used. Meta says both in the page's language.
	Created, LastUsed, Meta string
}

// Channel is a channel the page offers ("whatsapp", "Send the code
// by WhatsApp instead").
type Channel struct {
	Name, Label string
}

// Words are the words of the built-in page in its language: fixed
// labels, and the sentences of this page with their numbers filled in.
// Looking them up once keeps the template free of calls.
type Words struct {
	// Fixed words.
	CodeLabel, Verify, Approving, ContinueTo, SendFailedHint, Resend, ResendRetry,
	NeverShare, StartAgain, Continue, Help, ContactSupport string
	// BackToSite labels the link to HomeURL; SupportLine is the help line
	// shown without a SupportURL (SupportText, or the default sentence).
	BackToSite, SupportLine string
	// ErrorTitle is the page title when it shows an error ("Error: ...").
	ErrorTitle string
	// The challenge's expiry, attempts left and resend cooldown, and a
	// locked user's wait ("You can try again in about 3 hours.").
	ExpiresIn, AttemptsLeft, ResendIn, TryAgainIn string
	// Passkeys: the challenge's buttons, the enrolment offer's and the
	// passkeys page's words.
	PasskeyUse, PasskeyInstead, SMSInstead, SendCode, PasskeyCreate, NotNow,
	PasskeyName, Rename, Remove, NoPasskeys string
}

// T returns the catalog message key in the page's language, with
// placeholders filled from args given as name, value pairs:
// {{.T "page.attempts_left" "n" .AttemptsLeft}}.
func (d *Data) T(key string, args ...any) string {
	l := d.loc
	if l == nil {
		l = en()
	}
	return l.Text(key, args...)
}

// The built-in page's parts, read once.
var (
	builtinPage = template.Must(template.New("page.html").ParseFS(templateFS, "templates/page.html"))
	baseCSS     = mustRead("templates/page.css")
	pageScript  = mustRead("templates/page.js")
	// icons are the page's pictures (the template's "icon"), by name.
	icons = renderIcons("shield", "clock", "check", "error", "info")
)

func renderIcons(names ...string) map[string]template.HTML {
	m := make(map[string]template.HTML, len(names))
	for _, name := range names {
		var b strings.Builder
		if err := builtinPage.ExecuteTemplate(&b, "icon", name); err != nil {
			panic("stepup: " + err.Error())
		}
		m[name] = template.HTML(strings.TrimSpace(b.String()))
	}
	return m
}

func mustRead(name string) string {
	b, err := templateFS.ReadFile(name)
	if err != nil {
		panic("stepup: " + err.Error())
	}
	return string(b)
}

// maxTemplateSize bounds a custom page template file.
const maxTemplateSize = 1 << 20

// ParseTemplate reads and checks an operator's page template (the
// page option `template FILE`): it must parse as html/template, render
// every state in every locale with sample data (docs/PAGE.md has the data
// model), post the code form to {{.Action}} with the csrf and code
// fields, and keep to the page's CSP: nonce="{{.Nonce}}" on every script
// and style, no inline event handlers or style attributes, no resources
// from other origins. The error says what is wrong and where.
func ParseTemplate(path string) (*template.Template, error) {
	t, err := parseTemplateFile(path)
	if err != nil {
		return nil, err
	}
	if err := newResponder(t, Options{CodeLength: sampleCodeLength}).check(); err != nil {
		return nil, fmt.Errorf("page template %s: %w", path, err)
	}
	return t, nil
}

func parseTemplateFile(path string) (*template.Template, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading page template: %v", err)
	}
	if fi.IsDir() || fi.Size() > maxTemplateSize {
		return nil, fmt.Errorf("page template %s: not a file of at most %d bytes", path, maxTemplateSize)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading page template: %v", err)
	}
	t, err := template.New(filepath.Base(path)).Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("parsing page template %s: %v", path, err)
	}
	return t, nil
}

// check renders every sample page in every locale with p's template and
// checks the result against the rules the engine and the CSP rely on.
func (p *Responder) check() error {
	var buf bytes.Buffer
	for _, s := range samplePages(p.opts.CodeLength) {
		for _, l := range locales {
			if s.state == StateRateLimited {
				continue // prebuilt, never from the template
			}
			d := s.data()
			p.prepare(d, s.state, l)
			d.Site, d.Nonce = "Example Shop", samplePreviewNonce
			buf.Reset()
			if err := p.tmpl.Execute(&buf, d); err != nil {
				return fmt.Errorf("state %s (%s): %v", s.name, l.tag, err)
			}
			if err := lint.Page(buf.Bytes(), d.Nonce); err != nil {
				return fmt.Errorf("state %s (%s): %v", s.name, l.tag, err)
			}
			if s.state == StateChallenge {
				if err := lint.CodeForm(buf.Bytes(), d.Action, d.CSRF); err != nil {
					return fmt.Errorf("state %s (%s): %v", s.name, l.tag, err)
				}
				// The response says Referrer-Policy: no-referrer, under
				// which browsers post forms with "Origin: null", and the
				// engine refuses form posts from an unknown origin. The
				// page relaxes it to same-origin: still nothing for other
				// sites.
				if lint.ReferrerPolicy(buf.Bytes()) != "same-origin" {
					return fmt.Errorf(`state %s (%s): the page needs <meta name="referrer" content="same-origin"> `+
						`(under the response's no-referrer policy browsers post the code form with Origin: null, which is refused)`, s.name, l.tag)
				}
			}
		}
	}
	return nil
}

// prepare fills in what the template shows for st in l: the texts in
// the page's language (the engine's English messages are translated),
// the durations, the branding, and the script's data.
func (p *Responder) prepare(d *Data, st State, l *Locale) {
	codeLength := p.opts.CodeLength
	d.State, d.loc = st, l
	d.Lang, d.Dir = l.tag, l.dir()
	d.Heading = l.Heading(st)
	if d.CodeLength == 0 {
		d.CodeLength = codeLength
	}
	switch {
	case st == StateChallenge && d.sentText && d.Passkey && d.NoCode:
		d.Text = l.Text("page.passkey_prompt")
	case st == StateChallenge && d.sentText && d.NoCode:
		d.Text = l.Text("page.no_code_yet")
	case st == StateChallenge && d.sentText && d.SendFailed && d.To == "":
		d.Text = l.Text("page.send_failed_hidden")
	case st == StateChallenge && d.sentText && d.SendFailed:
		d.Text = l.Text("page.send_failed", "to", l.Isolate(d.To))
	case st == StateChallenge && d.sentText && d.To == "":
		d.Text = l.Text("page.sent_hidden", "n", d.CodeLength)
	case st == StateChallenge && d.sentText:
		d.Text = l.Text("page.sent_to", "n", d.CodeLength, "to", l.Isolate(d.To))
	case d.Text == "":
		d.Text = l.stateText(st)
	default:
		d.Text = l.translate(d.Text, codeLength)
	}
	d.Error = l.translate(d.Error, codeLength)
	d.Notice = l.translate(d.Notice, codeLength)
	if d.timed {
		d.ExpiresIn = l.Duration(d.expires)
		if d.ResendIn != "" {
			d.ResendIn = l.Duration(d.resendWait)
		}
	}
	if d.retrySet {
		d.RetryIn = l.Duration(d.retry)
	}
	d.CodePattern = "[0-9]{" + strconv.Itoa(d.CodeLength) + "}"
	d.Say = l.words
	d.ContinueText = d.Say.StartAgain
	if st == StateUsed || st == StateAlreadySent {
		d.ContinueText = d.Say.Continue
	}
	if d.Error != "" {
		d.Say.ErrorTitle = l.Text("page.error_title", "title", d.Heading)
	}
	if st == StateChallenge {
		d.Say.ExpiresIn = l.Text("page.expires_in", "time", d.ExpiresIn)
		if d.NoCode {
			// No code yet: the request expires, not a code.
			d.Say.ExpiresIn = l.Text("page.passkey_expires_in", "time", d.ExpiresIn)
		}
		d.Say.AttemptsLeft = l.Text("page.attempts_left", "n", d.AttemptsLeft)
		if d.ResendIn != "" {
			d.Say.ResendIn = l.Text("page.resend_in", "time", d.ResendIn)
		}
	}
	if d.RetryIn != "" {
		d.Say.TryAgainIn = l.Text("page.try_again_in", "time", d.RetryIn)
	}
	for i := range d.Channels {
		d.Channels[i].Label = l.Text("page.use_" + d.Channels[i].Name)
	}
	if st == StateChallenge {
		d.DeliveryText = l.deliveryText(d.Delivery, d.deliveryCh)
	}
	d.Icon = iconFor(st)
	d.IconSVG = icons[d.Icon]
	if d.Error != "" || st == StateChallenge {
		d.ErrorSVG = icons["error"]
	}
	d.Logo = template.URL(p.cfg.Logo)
	d.SupportURL = template.URL(p.cfg.SupportURL)
	if home := firstOf(p.cfg.HomeURL, "/"); home != Off && st != StateChallenge {
		d.HomeURL = template.URL(home)
	}
	switch {
	case p.cfg.SupportURL != "", p.cfg.SupportText == Off, st == StateChallenge:
		d.Say.SupportLine = ""
	case p.cfg.SupportText != "":
		d.Say.SupportLine = p.cfg.SupportText
	}
	for i := range d.Passkeys {
		it := &d.Passkeys[i]
		if it.LastUsed == "" {
			it.Meta = l.Text("passkeys.added_never_used", "date", it.Created)
		} else {
			it.Meta = l.Text("passkeys.added_used", "date", it.Created, "used", it.LastUsed)
		}
	}
	d.Style, d.Script = p.style, p.script
	switch st {
	case StateChallenge:
		d.Client = clientJSON(d, l)
	case StatePasskeyOffer:
		d.Client = passkeyClientJSON(d, l)
	}
}

// iconFor names the picture of a state.
func iconFor(st State) string {
	switch st {
	case StateChallenge:
		return "shield"
	case StateUsed, StateAlreadySent, StatePasskeyOffer:
		return "check"
	case StateExpired, StateStashExpired, StateExhausted, StateLocked, StateRateLimited:
		return "clock"
	case StateError, StateUnavailable:
		return "error"
	}
	return "info"
}

// clientStatic is the part of the script's data that depends on the
// locale only: its texts. It is marshaled once per locale (i18n.go).
type clientStatic struct {
	T   map[string]string `json:"t"`
	Dur clientDurations   `json:"dur"`
}

type clientDurations struct {
	Moment  string  `json:"moment"`
	Seconds message `json:"seconds"`
	Minutes message `json:"minutes"`
	Hours   message `json:"hours"`
}

// clientJSON is the script's data as JSON for a <script
// type="application/json"> element: counts, the resend form's address,
// and the texts the script shows (encoding/json escapes '<', '>' and
// '&', so the element cannot be closed from inside).
func clientJSON(d *Data, l *Locale) template.JS {
	resend, resendURL := -1, ""
	switch {
	case d.CanResend:
		resend = 0
	case d.ResendIn != "":
		resend, resendURL = d.ResendSeconds, d.ResendAction
	}
	format, _ := json.Marshal(l.Text("msg.code_format", "n", d.CodeLength))
	b := make([]byte, 0, 128+len(resendURL)+len(format)+len(l.client))
	b = append(b, `{"n":`...)
	b = strconv.AppendInt(b, int64(d.CodeLength), 10)
	b = append(b, `,"expires":`...)
	b = strconv.AppendInt(b, int64(d.ExpiresSeconds), 10)
	b = append(b, `,"resend":`...)
	b = strconv.AppendInt(b, int64(resend), 10)
	if resendURL != "" {
		u, _ := json.Marshal(resendURL)
		b = append(append(b, `,"resendUrl":`...), u...)
	}
	if d.StatusURL != "" {
		u, _ := json.Marshal(d.StatusURL)
		b = append(append(b, `,"status":`...), u...)
		st, _ := json.Marshal(d.Delivery)
		b = append(append(b, `,"delivery":`...), st...)
	}
	if d.passkeyOptions != "" {
		b = append(append(b, `,"passkey":`...), d.passkeyOptions...)
		if d.NoCode {
			exp, _ := json.Marshal(l.Text("page.passkey_expires_in"))
			b = append(append(b, `,"expiresText":`...), exp...)
		}
	}
	b = append(append(b, `,"format":`...), format...)
	b = append(append(b, ','), l.client[1:]...)
	return template.JS(b)
}

// passkeyClientJSON is the script's data on the enrolment offer: the
// creation options and the texts.
func passkeyClientJSON(d *Data, l *Locale) template.JS {
	b := []byte(`{"create":`)
	if d.createOptions != "" {
		b = append(b, d.createOptions...)
	} else {
		b = append(b, "null"...)
	}
	b = append(append(b, ','), l.client[1:]...)
	return template.JS(b)
}

// policyLabel makes a policy name readable: "payment-methods" becomes
// "Payment methods".
func policyLabel(name string) string {
	s := strings.NewReplacer("-", " ", "_", " ").Replace(name)
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return ""
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

// humanDuration says a duration the way a page would: "5 minutes",
// "30 seconds", "about 3 hours". The page and the messages say it in the
// customer's language (Locale.Duration); this English form remains for
// logs and JSON.
func humanDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "a moment"
	case d < time.Minute:
		s := int((d + time.Second - 1) / time.Second)
		return plural(s, "second")
	case d < time.Hour:
		m := int((d + time.Minute - 1) / time.Minute)
		return plural(m, "minute")
	default:
		h := int((d + time.Hour - 1) / time.Hour)
		return "about " + plural(h, "hour")
	}
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

// Branding colors.

type rgb struct{ r, g, b float64 }

var (
	white       = rgb{1, 1, 1}
	lightCard   = rgb{1, 1, 1}
	lightBg     = rgb{0xf3 / 255.0, 0xf5 / 255.0, 0xf8 / 255.0}
	darkCard    = rgb{0x16 / 255.0, 0x1b / 255.0, 0x22 / 255.0}
	darkBg      = rgb{0x0d / 255.0, 0x11 / 255.0, 0x17 / 255.0}
	pureBlack   = rgb{0, 0, 0}
	minContrast = 4.5 // WCAG 2.x AA, normal text
)

// parseColor parses "#rgb" or "#rrggbb", with or without the '#' (a
// Caddyfile token that starts with '#' is a comment unless quoted).
func parseColor(s string) (rgb, bool) {
	h := strings.TrimPrefix(s, "#")
	if len(h) != 3 && len(h) != 6 || strings.ContainsAny(h, "+-") {
		return rgb{}, false
	}
	if len(h) == 3 {
		h = string([]byte{h[0], h[0], h[1], h[1], h[2], h[2]})
	}
	v, err := strconv.ParseUint(h, 16, 32)
	if err != nil {
		return rgb{}, false
	}
	return rgb{float64(v>>16&0xff) / 255, float64(v>>8&0xff) / 255, float64(v&0xff) / 255}, true
}

func (c rgb) hex() string {
	to := func(f float64) int { return int(math.Round(math.Max(0, math.Min(1, f)) * 255)) }
	return fmt.Sprintf("#%02x%02x%02x", to(c.r), to(c.g), to(c.b))
}

// luminance is the WCAG relative luminance.
func (c rgb) luminance() float64 {
	lin := func(v float64) float64 {
		if v <= 0.04045 {
			return v / 12.92
		}
		return math.Pow((v+0.055)/1.055, 2.4)
	}
	return 0.2126*lin(c.r) + 0.7152*lin(c.g) + 0.0722*lin(c.b)
}

// contrast is the WCAG contrast ratio of two colors.
func contrast(a, b rgb) float64 {
	la, lb := a.luminance(), b.luminance()
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

func (c rgb) mix(d rgb, t float64) rgb {
	return rgb{c.r + (d.r-c.r)*t, c.g + (d.g-c.g)*t, c.b + (d.b-c.b)*t}
}

// readable moves c toward to until it contrasts enough with every
// background.
func readable(c, to rgb, bgs ...rgb) rgb {
	for i := 0; i <= 40; i++ {
		// Tested as it will be written: rounded to #rrggbb.
		x, _ := parseColor(c.mix(to, float64(i)/40).hex())
		ok := true
		for _, bg := range bgs {
			if contrast(x, bg) < minContrast {
				ok = false
			}
		}
		if ok {
			return x
		}
	}
	return to
}

// brandCSS overrides the accent colors with the brand color, keeping AA
// contrast for text on buttons and for links in light and dark mode.
func brandCSS(hex string) string {
	c, _ := parseColor(hex)
	// Black or white: the better of the two always reaches 4.58:1.
	on := white
	if contrast(pureBlack, c) > contrast(white, c) {
		on = pureBlack
	}
	light := readable(c, pureBlack, lightCard, lightBg)
	dark := readable(c, white, darkCard, darkBg)
	return fmt.Sprintf("\n:root{--accent:%s;--on-accent:%s;--link:%s}\n@media (prefers-color-scheme:dark){:root{--accent:%s;--on-accent:%s;--link:%s}}\n",
		c.hex(), on.hex(), light.hex(), c.hex(), on.hex(), dark.hex())
}

// The rate-limited page is prebuilt for every locale, so that refusing a
// flood costs no template and no per-response nonce: its stylesheet is
// allowed by hash.

// limitedRules are the stylesheet rules the rate-limited page uses.
var limitedRules = []string{":root", "@media (prefers-color-scheme", "*,", "html", "body", "main", "@media (min-width:40rem){main",
	".brand", ".logo", ".site", ".card", "@media (min-width:40rem){.card", ".icon", "h1", "p{", "a{", ".btn:focus-visible", ".help"}

func (p *Responder) buildLimited() {
	var css strings.Builder
	for _, line := range strings.Split(baseCSS, "\n") {
		for _, prefix := range limitedRules {
			if strings.HasPrefix(line, prefix) {
				css.WriteString(line)
				css.WriteByte('\n')
				break
			}
		}
	}
	if p.cfg.BrandColor != "" {
		css.WriteString(brandCSS(p.cfg.BrandColor))
	}
	sum := sha256.Sum256([]byte(css.String()))
	p.limitedCSP = pageCSP + "; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	site := firstOf(p.cfg.Title, p.opts.SiteName)
	p.limited = make(map[*Locale][]byte, len(locales))
	for _, l := range locales {
		var b strings.Builder
		esc := html.EscapeString
		heading := l.Heading(StateRateLimited)
		b.WriteString(`<!doctype html><html lang="` + l.tag + `" dir="` + l.dir() + `"><head><meta charset="utf-8">` +
			`<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex, nofollow">` +
			`<link rel="icon" href="data:,"><title>` + esc(heading))
		if site != "" {
			b.WriteString(" · " + esc(site))
		}
		b.WriteString(`</title><style>` + css.String() + `</style></head><body><main><header class="brand">`)
		switch {
		case p.cfg.Logo != "":
			b.WriteString(`<img class="logo" src="` + esc(p.cfg.Logo) + `" alt="` + esc(site) + `">`)
		case site != "":
			b.WriteString(`<p class="site">` + esc(site) + `</p>`)
		}
		b.WriteString(`</header><div class="card"><span class="icon">` + string(icons["clock"]) + `</span><h1>` + esc(heading) + `</h1><p>` +
			esc(l.stateText(StateRateLimited)) + `</p><p>` + esc(l.Text("rate_limited.more")) + `</p>`)
		if home := firstOf(p.cfg.HomeURL, "/"); home != Off {
			b.WriteString(`<a class="btn btn-quiet" href="` + esc(home) + `">` + esc(l.Text("page.back_to_site")) + `</a>`)
		}
		switch {
		case p.cfg.SupportURL != "":
			b.WriteString(`<p class="help">` + esc(l.Text("page.help")) + ` <a href="` + esc(p.cfg.SupportURL) + `">` +
				esc(l.Text("page.contact_support")) + `</a></p>`)
		case p.cfg.SupportText == Off:
		case p.cfg.SupportText != "":
			b.WriteString(`<p class="help">` + esc(p.cfg.SupportText) + `</p>`)
		default:
			b.WriteString(`<p class="help">` + esc(l.Text("page.support_default")) + `</p>`)
		}
		b.WriteString("</div></main></body></html>\n")
		p.limited[l] = []byte(b.String())
	}
}
