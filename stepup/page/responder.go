package page

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Responder writes the engine's answers the way one configuration wants
// them: the page of a state in the request's language, or its JSON for
// an API client, under the page's headers. The engine decides what to
// answer (the status, the state and its data, and whether the client is
// a browser); the Responder decides how. Protocol headers (Retry-After,
// WWW-Authenticate, Allow) are the engine's to set before it calls.
//
// A Responder is safe for concurrent use.
type Responder struct {
	tmpl *template.Template
	cfg  Config
	opts Options
	// fixed is the configured locale; nil follows Accept-Language.
	fixed  *Locale
	style  template.CSS
	script template.JS
	// limited are the prebuilt rate-limited pages by locale, styled by
	// a hash in limitedCSP instead of a per-response nonce.
	limited    map[*Locale][]byte
	limitedCSP string
	pool       sync.Pool
}

// Options are the engine's settings that its pages and code messages
// show.
type Options struct {
	// SiteName is the engine's site name: the page's Site when Config
	// has no Title, the message's {site} before the title.
	SiteName string
	// CodeLength is the number of digits of a code.
	CodeLength int
	// Message is the code message template; "" or DefaultMessage sends
	// the catalog's message in the customer's language.
	Message string
	// CodeTTL is a code's lifetime, the message's {ttl}.
	CodeTTL time.Duration
	// Domain is the site's configured host name: the message's last
	// {site} choice and its WebOTP line ("@domain #code"); empty adds
	// no such line.
	Domain string
}

// New validates cfg and prepares the pages it describes. A custom
// template is parsed and rendered in every state and locale here, so
// that a broken one fails the configuration rather than a request.
func New(cfg Config, opts Options) (*Responder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := newResponder(builtinPage, opts)
	p.cfg = cfg
	if cfg.Locale != "" {
		p.fixed = FindLocale(cfg.Locale)
		p.cfg.Locale = p.fixed.tag
	}
	if cfg.BrandColor != "" {
		p.style += template.CSS(brandCSS(cfg.BrandColor))
	}
	p.buildLimited()
	if cfg.Template != "" {
		t, err := parseTemplateFile(cfg.Template)
		if err != nil {
			return nil, err
		}
		p.tmpl = t
		if err := p.check(); err != nil {
			return nil, fmt.Errorf("page template %s: %w", cfg.Template, err)
		}
	}
	return p, nil
}

// newResponder returns a Responder of tmpl with the built-in style and
// script, unbranded.
func newResponder(tmpl *template.Template, opts Options) *Responder {
	return &Responder{tmpl: tmpl, opts: opts, style: template.CSS(baseCSS), script: template.JS(pageScript),
		pool: sync.Pool{New: func() any { return new(bytes.Buffer) }}}
}

// Status answers with state st and status: a browser (html) gets the
// page in the language the request asks for, an API client the JSON
// {"error":st,"message":...}, its message in that language, with
// "retry_in" when d says when to try again. d is the state's data, nil
// for none; Status fills it in. A non-nil error means the page could not
// be rendered, and a plain 500 went out instead: the built-in template
// is ours and a custom one was rendered in every state at start, so it
// is a bug, not an input problem.
func (p *Responder) Status(w http.ResponseWriter, r *http.Request, html bool, status int, st State, d *Data) error {
	if d == nil {
		d = &Data{}
	}
	p.answer(w.Header(), r, st, d)
	if !html {
		var extra map[string]any
		if d.RetryIn != "" {
			extra = map[string]any{"retry_in": d.RetryIn}
		}
		WriteError(w, status, string(st), d.Text, extra)
		return nil
	}
	if err := p.write(w, r, status, d); err != nil {
		// Fail closed with a plain answer.
		setHeaders(w.Header(), "")
		http.Error(w, "verification page unavailable", http.StatusInternalServerError)
		return err
	}
	return nil
}

// answer prepares d for st in r's language and sets the answer's
// Content-Language.
func (p *Responder) answer(h http.Header, r *http.Request, st State, d *Data) {
	l := p.localeFor(r)
	p.prepare(d, st, l)
	h.Set("Content-Language", l.tag)
}

// write renders d (prepared) under a fresh nonce and sends it, naming
// the site unless d does.
func (p *Responder) write(w http.ResponseWriter, r *http.Request, status int, d *Data) error {
	if d.Site == "" {
		d.Site = firstOf(p.cfg.Title, p.opts.SiteName, requestHost(r))
	}
	d.Nonce = newNonce()
	buf := p.pool.Get().(*bytes.Buffer)
	buf.Reset()
	defer p.pool.Put(buf)
	if err := p.tmpl.Execute(buf, d); err != nil {
		return err
	}
	setHeaders(w.Header(), d.Nonce)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
	return nil
}

// RateLimited answers 429 to a request a rate limit refused: a browser
// (html) gets the page prebuilt for its language, an API client a fixed
// JSON body. Refusing a flood must cost far less than serving a
// challenge: no template, no nonce, no per-request data but the
// Retry-After the engine sets.
func (p *Responder) RateLimited(w http.ResponseWriter, r *http.Request, html bool) {
	h := w.Header()
	setHeaders(h, "")
	body := rateLimitedJSON
	if html {
		body = p.rateLimited(h, r) // sets its own CSP, type and language
	} else {
		h.Set("Content-Type", "application/json")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusTooManyRequests)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// rateLimitedJSON is the API's rate-limited answer, built once.
var rateLimitedJSON = []byte(`{"error":"rate_limited","message":"` + StateText[StateRateLimited][1] + `"}` + "\n")

// rateLimited returns the prebuilt rate-limited page for r's language and
// sets its Content-Security-Policy, Content-Type and Content-Language
// (RateLimited sends it after setHeaders).
func (p *Responder) rateLimited(h http.Header, r *http.Request) []byte {
	l := p.localeFor(r)
	h.Set("Content-Security-Policy", p.limitedCSP)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Language", l.tag)
	return p.limited[l]
}

// WriteJSON answers with v as JSON under the page's headers: every JSON
// answer of the engine goes out here.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	setHeaders(w.Header(), "")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError answers with the JSON {"error":code,"message":...} plus
// the fields of extra.
func WriteError(w http.ResponseWriter, status int, code, message string, extra map[string]any) {
	body := map[string]any{"error": code, "message": message}
	for k, v := range extra {
		body[k] = v
	}
	WriteJSON(w, status, body)
}

// pageCSP is the page's Content-Security-Policy without its script and
// style sources: nothing loads from anywhere but the page itself, and
// its script asks only its own origin (the delivery status).
const pageCSP = "default-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; img-src 'self' data:; connect-src 'self'"

// setHeaders sets the headers of every page and JSON answer of the
// engine. With a nonce, the page's one stylesheet and one script may run.
func setHeaders(h http.Header, nonce string) {
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	csp := pageCSP
	if nonce != "" {
		csp += "; style-src 'nonce-" + nonce + "'; script-src 'nonce-" + nonce + "'"
	}
	h.Set("Content-Security-Policy", csp)
}

// newNonce returns a fresh CSP nonce.
func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// requestHost returns the request's host name without port, lowercased,
// or "" if it holds anything but letters, digits, dots and dashes (so it
// can go into a page safely).
func requestHost(r *http.Request) string {
	h := r.Host
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	if h == "" || len(h) > 253 {
		return ""
	}
	h = strings.ToLower(h)
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return ""
		}
	}
	return h
}
