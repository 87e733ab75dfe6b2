package page

import (
	"net/http"
	"strings"
)

// DefaultMessage is the code message unless configured otherwise: the
// catalog's "sms.session" in English (every locale has its own). The
// last line lets Android Chrome fill the code in (WebOTP); it is added
// only when the host is known.
const DefaultMessage = "{code} is your {site} verification code. It expires in {ttl}. Do not share it."

// DefaultTransactionMessage replaces DefaultMessage when a transaction
// has a description, so the customer sees what the code approves
// (PSD2 dynamic linking): the catalog's "sms.transaction".
const DefaultTransactionMessage = "{code} is your {site} code to approve: {describe}. It expires in {ttl}. Do not share it."

// Message renders the code message for request r in the language the
// customer's browser (or API client) asks for in Accept-Language, or the
// page's configured locale. A custom Options.Message is used as it is,
// in the operator's words: only its {ttl} follows a configured locale.
// The last line lets Android Chrome fill the code in (WebOTP: "@domain
// #code"); it is added when a domain is configured (never taken from the
// request, which would let anyone make it name a phishing site) and the
// template does not place it itself.
func (p *Responder) Message(r *http.Request, code, description string) string {
	loc := p.localeFor(r)
	tmpl := p.opts.Message
	if p.defaultMessage() {
		key := "sms.session"
		if description != "" {
			key = "sms.transaction"
		}
		tmpl = loc.Text(key)
	} else if p.fixed == nil {
		loc = en()
	}
	text := strings.NewReplacer(
		"{code}", code,
		"{site}", p.siteName(),
		"{ttl}", loc.Duration(p.opts.CodeTTL),
		"{describe}", description,
	).Replace(tmpl)
	// An unnamed site leaves a double space behind.
	text = strings.ReplaceAll(text, "  ", " ")
	if p.opts.Domain != "" && !strings.Contains(tmpl, "#{code}") {
		text += "\n\n@" + p.opts.Domain + " #" + code
	}
	return text
}

// defaultMessage reports whether the code messages are the catalog's.
func (p *Responder) defaultMessage() bool {
	return p.opts.Message == "" || p.opts.Message == DefaultMessage
}

// siteName is the name the code message gives the site: site_name, else
// the page title, else the configured domain. Never the request's Host
// header: whoever sends the request chooses it.
func (p *Responder) siteName() string {
	return firstOf(p.opts.SiteName, p.cfg.Title, p.opts.Domain)
}

// MessageSample is a code message as the customers of one locale get it,
// for an operator's cost check.
type MessageSample struct {
	// Locale is the locale's tag ("en", "hi").
	Locale string
	// Session is the message of a session-mode code.
	Session string
	// Transaction is the message of a transaction with a description of
	// typical length, or "" when the message template shows none.
	Transaction string
}

// The host and description sample messages are rendered with.
const (
	sampleHost        = "shop.example.com"
	sampleDescription = "Pay EUR 1,234.56 to Example Merchant GmbH"
)

// MessageSamples renders the code message in every locale customers can
// get it in: the page's locale when one is configured, else every locale
// shipped, since messages then follow each request's Accept-Language.
// Each is rendered as Message renders it, with a code of the configured
// length. Locales whose messages come out the same (a custom message is
// in the operator's words whatever the customer's language) are given
// once, under the first of them.
func (p *Responder) MessageSamples() []MessageSample {
	code := strings.Repeat("8", p.opts.CodeLength)
	tags := Locales()
	if p.fixed != nil {
		tags = []string{p.fixed.tag}
	}
	describes := p.defaultMessage() || strings.Contains(p.opts.Message, "{describe}")
	var out []MessageSample
	seen := make(map[MessageSample]bool, len(tags))
	for _, tag := range tags {
		r := &http.Request{Host: sampleHost, Header: http.Header{"Accept-Language": {tag}}}
		s := MessageSample{Session: p.Message(r, code, "")}
		if describes {
			s.Transaction = p.Message(r, code, sampleDescription)
		}
		if seen[s] {
			continue
		}
		seen[s] = true
		s.Locale = tag
		out = append(out, s)
	}
	return out
}

// Locale returns the tag of the language r's customer gets the pages and
// the code message in ("hi", "pt-BR"): the configured locale, else the
// best match of Accept-Language, else English. Voice senders speak it.
func (p *Responder) Locale(r *http.Request) string { return p.localeFor(r).tag }
