package stepup

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
	"go.uber.org/zap"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup/page"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// Limits bound how often challenges start and codes are sent, so that
// nobody can make the site send SMS without end (toll fraud, "SMS
// pumping") or flood one person's phone. A limit with Rate 0 takes its
// default; a negative Rate switches it off.
type Limits struct {
	// PerUser bounds the challenges one user starts. Default 10 per hour.
	PerUser store.Limit
	// PerIP bounds the challenges one client address starts (Caddy's
	// trusted_proxies decide the address). Default 30 per hour.
	PerIP store.Limit
	// PerNumber bounds the codes sent to one phone number, resends
	// included. Default 10 per hour.
	PerNumber store.Limit
	// PerCountry bounds the codes sent to each country calling code
	// (1, 44, 91, ...); the entry 0 applies to every country without its
	// own. Default: none.
	PerCountry map[int]store.Limit
	// Global bounds the codes the whole site sends. Default: none.
	Global store.Limit
}

// Default limits (DESIGN's security table).
var (
	DefaultPerUser   = store.Limit{Rate: 10, Period: time.Hour, Burst: 10}
	DefaultPerIP     = store.Limit{Rate: 30, Period: time.Hour, Burst: 30}
	DefaultPerNumber = store.Limit{Rate: 10, Period: time.Hour, Burst: 10}
)

// Bounds of a limit's count and period.
var (
	LimitCountBound  = Bound[int]{"count", 1, 1_000_000}
	LimitPeriodBound = Bound[time.Duration]{"period", time.Second, 31 * 24 * time.Hour}
)

// limitOr returns l with its default def when unset; a limit switched
// off stays off (Rate -1), so that applying it twice changes nothing.
func limitOr(l, def store.Limit) store.Limit {
	switch {
	case l.Rate < 0:
		return store.Limit{Rate: -1}
	case l.Rate == 0:
		return def
	}
	if l.Burst < 1 {
		l.Burst = l.Rate
	}
	return l
}

// checkLimit holds a limit that is on (a positive Rate) to the bounds
// ParseLimit applies; a rate without a period is refused, not taken as
// off.
func checkLimit(name string, l store.Limit) error {
	if l.Rate <= 0 {
		return nil
	}
	for _, err := range []error{LimitCountBound.Check(l.Rate), LimitPeriodBound.Check(l.Period), LimitCountBound.Check(l.Burst)} {
		if err != nil {
			return fmt.Errorf("limits %s: %v", name, err)
		}
	}
	return nil
}

// setDefaults fills the default limits and checks every limit's bounds
// and every country of PerCountry. PerCountry is copied, not changed.
func (l *Limits) setDefaults() error {
	l.PerUser = limitOr(l.PerUser, DefaultPerUser)
	l.PerIP = limitOr(l.PerIP, DefaultPerIP)
	l.PerNumber = limitOr(l.PerNumber, DefaultPerNumber)
	l.Global = limitOr(l.Global, store.Limit{})
	for _, f := range []struct {
		name string
		l    store.Limit
	}{{"per_user", l.PerUser}, {"per_ip", l.PerIP}, {"per_number", l.PerNumber}, {"global", l.Global}} {
		if err := checkLimit(f.name, f.l); err != nil {
			return err
		}
	}
	if l.PerCountry == nil {
		return nil
	}
	countries := make(map[int]store.Limit, len(l.PerCountry))
	for cc, cl := range l.PerCountry {
		if cc != 0 && phonenumbers.GetRegionCodeForCountryCode(cc) == phonenumbers.UNKNOWN_REGION {
			return fmt.Errorf("limits per_country: +%d is not a country calling code", cc)
		}
		cl = limitOr(cl, store.Limit{})
		if err := checkLimit("per_country +"+strconv.Itoa(cc), cl); err != nil {
			return err
		}
		countries[cc] = cl
	}
	l.PerCountry = countries
	return nil
}

// limited is a rate-limit refusal: which limit, and when to retry.
type limited struct {
	name  string
	retry time.Duration
}

// allowStart counts a new challenge against the client address and user
// budgets and returns the first limit that refuses; allowSend then counts
// its code. Nothing is sent when one refuses.
func (e *Engine) allowStart(ctx context.Context, r *http.Request, userKey string) (*limited, error) {
	l := e.cfg.Limits
	if lim, err := e.allow(ctx, "per_ip", "ip:"+e.clientIP(r), l.PerIP); lim != nil || err != nil {
		return lim, err
	}
	return e.allow(ctx, "per_user", "u:"+userKey, l.PerUser)
}

// allowSend counts one code sent to phone against the number, country
// and site budgets.
func (e *Engine) allowSend(ctx context.Context, phone sender.Phone) (*limited, error) {
	l := e.cfg.Limits
	if lim, err := e.allow(ctx, "per_number", "n:"+e.keys.short("number", phone.E164), l.PerNumber); lim != nil || err != nil {
		return lim, err
	}
	if lim, err := e.allowCountry(ctx, phone); lim != nil || err != nil {
		return lim, err
	}
	return e.allow(ctx, "global", "g", l.Global)
}

// allowCountry counts one code sent to phone against its country's
// budget (or the budget of every country without one).
func (e *Engine) allowCountry(ctx context.Context, phone sender.Phone) (*limited, error) {
	l := e.cfg.Limits
	cl, ok := l.PerCountry[phone.CountryCode]
	if !ok {
		cl = l.PerCountry[0]
	}
	cc := strconv.Itoa(phone.CountryCode)
	lim, err := e.allow(ctx, "per_country", "cc:"+cc, cl)
	if lim != nil {
		e.countryAlarm(cc)
	}
	return lim, err
}

// allowHiddenSend counts a send to an account whose number is hidden (a
// password reset) the same way whether the account exists or not: the
// per-number budget under a stand-in number for the account, and the
// site's budget. Counting the real number would let someone who spent a
// number's budget elsewhere (a sign-up form) learn which account has it;
// the per-country budget is checked silently afterwards (destination).
func (e *Engine) allowHiddenSend(ctx context.Context, userKey string) (*limited, error) {
	l := e.cfg.Limits
	if lim, err := e.allow(ctx, "per_number", "n:"+e.keys.short("number", "decoy:"+userKey), l.PerNumber); lim != nil || err != nil {
		return lim, err
	}
	return e.allow(ctx, "global", "g", l.Global)
}

func (e *Engine) allow(ctx context.Context, name, key string, l store.Limit) (*limited, error) {
	if l.Off() {
		return nil, nil
	}
	ok, retry, err := e.store.Allow(ctx, key, l)
	if err != nil || ok {
		return nil, err
	}
	return &limited{name: name, retry: retry}, nil
}

// countryAlarm reports a country whose send rate went over its budget: the
// typical sign of SMS pumping.
func (e *Engine) countryAlarm(cc string) {
	now := e.now()
	if last, ok := e.alarms.Load(cc); ok && now.Sub(last.(time.Time)) < time.Minute {
		return
	}
	e.alarms.Store(cc, now)
	e.log.Warn("country_budget_exceeded: codes to this country calling code are over their budget (possible SMS pumping)",
		zap.String("calling_code", cc))
}

// rateLimited answers a refused request: a small page or JSON with
// Retry-After, the same whichever limit refused.
func (e *Engine) rateLimited(w http.ResponseWriter, r *http.Request, p *Policy, lim *limited) error {
	e.emit(r, &Event{Kind: EventRateLimited, Policy: p.Name, Limit: lim.name, Duration: lim.retry})
	e.emit(r, &Event{Kind: EventRequest, Policy: p.Name, Mode: p.Mode.String(), Outcome: "refused"})
	secs := int(lim.retry/time.Second) + 1
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	html := wantsHTML(r)
	if html && e.refusals != nil && e.refusals(w, r, http.StatusTooManyRequests, string(page.StateRateLimited)) {
		return nil
	}
	e.page.RateLimited(w, r, html) // prebuilt, the same whichever limit refused
	return nil
}

// ParseLimit parses a limit written "COUNT/PERIOD": "10/1h", "30/h",
// "500/24h", "5/m", "100/7d", or "off". PERIOD is a duration, or a unit
// alone (s, m, h, d) meaning one of it. COUNT and PERIOD are held to
// LimitCountBound and LimitPeriodBound.
func ParseLimit(s string) (store.Limit, error) {
	if s == "off" {
		return store.Limit{Rate: -1}, nil
	}
	n, per, ok := strings.Cut(s, "/")
	count, err := strconv.Atoi(n)
	if !ok || err != nil {
		return store.Limit{}, fmt.Errorf("limit %q: want COUNT/PERIOD such as 10/1h, or off", s)
	}
	if err := LimitCountBound.Check(count); err != nil {
		return store.Limit{}, fmt.Errorf("limit %q: %v", s, err)
	}
	switch per {
	case "s", "m", "h", "d":
		per = "1" + per
	}
	if days, ok := strings.CutSuffix(per, "d"); ok {
		d, err := strconv.Atoi(days)
		if err != nil || d < 0 || d > 1000 {
			return store.Limit{}, fmt.Errorf("limit %q: bad period", s)
		}
		per = strconv.Itoa(d*24) + "h"
	}
	d, err := time.ParseDuration(per)
	if err != nil {
		return store.Limit{}, fmt.Errorf("limit %q: bad period", s)
	}
	if err := LimitPeriodBound.Check(d); err != nil {
		return store.Limit{}, fmt.Errorf("limit %q: %v", s, err)
	}
	return store.Limit{Rate: count, Period: d, Burst: count}, nil
}

// ParseCountry turns a region code ("IN") or a country calling code
// ("91", "+91") into the calling code; "*" is 0, every other country.
func ParseCountry(s string) (int, error) {
	if s == "*" {
		return 0, nil
	}
	if cc, err := strconv.Atoi(strings.TrimPrefix(s, "+")); err == nil {
		if phonenumbers.GetRegionCodeForCountryCode(cc) == "ZZ" {
			return 0, fmt.Errorf("country %q: unknown calling code", s)
		}
		return cc, nil
	}
	cc := phonenumbers.GetCountryCodeForRegion(strings.ToUpper(s))
	if cc == 0 {
		return 0, fmt.Errorf("country %q: want a region code (IN, US) or a calling code (91)", s)
	}
	return cc, nil
}
