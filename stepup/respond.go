package stepup

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-stepup/caddy-stepup/stepup/page"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// The engine's side of its answers: it decides the status, the state and
// its data, and whether the client is a browser; its page.Responder
// (e.page) writes the page or the JSON.

// wantsHTML tells a browser navigation from an API client: browsers send
// Sec-Fetch-Mode: navigate or accept text/html.
func wantsHTML(r *http.Request) bool {
	if r.Header.Get("Sec-Fetch-Mode") == "navigate" {
		return true
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// pageOptions are the settings of c that the pages and the code message
// show.
func (c *Config) pageOptions() page.Options {
	return page.Options{SiteName: c.SiteName, CodeLength: c.CodeLength, Message: c.Message, CodeTTL: c.CodeTTL, Domain: c.Domain}
}

// renderStatus answers with state st: its page, or for an API client its
// JSON, in the language the request asks for.
func (e *Engine) renderStatus(w http.ResponseWriter, r *http.Request, status int, st page.State, d *page.Data) {
	e.respond(w, r, wantsHTML(r), status, st, d)
}

// respond is renderStatus for a request already known to be a browser's
// (html) or an API client's.
func (e *Engine) respond(w http.ResponseWriter, r *http.Request, html bool, status int, st page.State, d *page.Data) {
	if html && status >= 400 && e.refusals != nil && e.refusals(w, r, status, string(st)) {
		return
	}
	if err := e.page.Status(w, r, html, status, st, d); err != nil {
		e.log.Error("rendering page: " + err.Error())
	}
}

// renderLocked writes the lockout page (or JSON).
func (e *Engine) renderLocked(w http.ResponseWriter, r *http.Request, html bool, retry time.Duration) {
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds())+1))
	}
	e.respond(w, r, html, http.StatusTooManyRequests, page.StateLocked, page.Retry(retry))
}

// challengeData is what the page of b's live challenge shows at now.
func (e *Engine) challengeData(b bound, now time.Time) *page.Challenge {
	c := b.c
	pc := &page.Challenge{
		Policy:       c.Policy,
		Description:  c.Description,
		To:           maskedTo(c), // empty when the challenge hides the number (api.go)
		CodeLength:   e.cfg.CodeLength,
		Action:       e.challengeURL(c.ID),
		ResendAction: e.challengeURL(c.ID) + "/resend",
		CSRF:         b.k.csrfToken(c.ID, b.sessionKey),
		AttemptsLeft: c.MaxAttempts - c.Attempts,
		SendsLeft:    e.cfg.MaxSends - c.Sends,
		ExpiresIn:    c.Expires.Sub(now),
		ExpiresAt:    c.Expires,
		SendFailed:   sendFailed(c),
		Channels:     channelNames(e.otherChannels(b)),
		NoCode:       c.Sends == 0,
	}
	if c.Sends > 0 {
		// No code on its way yet (a passkey first): no delivery to tell.
		pc.Delivery, pc.DeliveryChannel = deliveryState(c)
	}
	pc.StatusURL = e.cfg.PathPrefix + "/status?challenge=" + c.ID
	if ret, ok := SafeReturnPath(c.ReturnURL); ok {
		pc.ContinueURL = ret
	}
	if !c.LastSend.IsZero() {
		pc.ResendWait = e.cfg.ResendAfter - now.Sub(c.LastSend)
	}
	return pc
}

// finishedData is the page data of a challenge that can take no code.
func finishedData(c *store.Challenge) *page.Data {
	ret, ok := SafeReturnPath(c.ReturnURL)
	if !ok {
		ret = "/"
	}
	d := &page.Data{ContinueURL: ret, Description: c.Description}
	if c.HasStash && c.Used.IsZero() {
		d.Text = page.StateText[page.StateExpired][1] + " Your request was not sent."
	}
	return d
}

// MessageSamples renders the code message in every locale customers can
// get it in (page.Responder.MessageSamples), for an operator's cost
// check.
func (e *Engine) MessageSamples() []page.MessageSample { return e.page.MessageSamples() }
