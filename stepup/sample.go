package stepup

import (
	"net/http"
	"strings"
)

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
// Each is rendered as deliver renders it, with a code of the configured
// length. Locales whose messages come out the same (a custom message is
// in the operator's words whatever the customer's language) are given
// once, under the first of them.
func (e *Engine) MessageSamples() []MessageSample {
	code := strings.Repeat("8", e.cfg.CodeLength)
	tags := Locales()
	if e.page != nil && e.page.fixed != nil {
		tags = []string{e.page.fixed.tag}
	}
	describes := e.cfg.Message == "" || e.cfg.Message == DefaultMessage || strings.Contains(e.cfg.Message, "{describe}")
	var out []MessageSample
	seen := make(map[MessageSample]bool, len(tags))
	for _, tag := range tags {
		r := &http.Request{Host: sampleHost, Header: http.Header{"Accept-Language": {tag}}}
		s := MessageSample{Session: e.messageText(r, code, "")}
		if describes {
			s.Transaction = e.messageText(r, code, sampleDescription)
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
