package stepup

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
	"go.uber.org/zap"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// The SMS-pumping defense that learns from conversion: toll-fraud rings
// make a site send codes to number ranges whose revenue they share, and
// nobody ever enters those codes. stepup counts, per number prefix (the
// number without its last four digits: a range of 10,000 numbers) and per
// country, the codes sent and the codes verified over a sliding window;
// a prefix with at least MinSends sends of which fewer than
// MinConversion percent were verified is blocked for BlockFor (enforce),
// or only logged and counted (monitor). It is the approach of Twilio
// Verify's Fraud Guard and Vonage Verify's anti-fraud system, on the
// site's own traffic (docs/SECURITY.md, "SMS pumping").

// PumpingMode says what the pumping defense does with a prefix whose
// conversion collapsed.
type PumpingMode string

// The pumping defense's modes.
const (
	// PumpingMonitor logs and counts a prefix whose conversion
	// collapsed (event prefix_blocked with mode monitor) and sends on:
	// the default, as it never costs a sale.
	PumpingMonitor PumpingMode = "monitor"
	// PumpingEnforce blocks the prefix for BlockFor: its sends are
	// refused as a rate limit refuses them.
	PumpingEnforce PumpingMode = "enforce"
	// PumpingOff counts nothing.
	PumpingOff PumpingMode = "off"
)

// Pumping configures the SMS-pumping defense. Zero values take the
// defaults.
type Pumping struct {
	// Mode is monitor (the default), enforce or off.
	Mode PumpingMode
	// Window is how far back sends and verified codes are counted
	// (default 1h). It is counted in store.PumpBuckets sub-buckets, so a
	// count covers between 5/6 of it and all of it.
	Window time.Duration
	// MinSends is how many codes a prefix must be sent in the window
	// before its conversion is judged (default 20).
	MinSends int
	// MinConversion is the lowest share of a prefix's codes, in percent,
	// that must be verified (default 20).
	MinConversion int
	// BlockFor is how long a block lasts (default 6h).
	BlockFor time.Duration
	// Safe lists number prefixes that are never counted nor blocked:
	// "+" and digits, a country calling code at least ("+44",
	// "+4477009"). The safe list always wins.
	Safe []string
}

// Defaults of the pumping defense (docs/SECURITY.md, "SMS pumping").
const (
	DefaultPumpingMode          = PumpingMonitor
	DefaultPumpingWindow        = time.Hour
	DefaultPumpingMinSends      = 20
	DefaultPumpingMinConversion = 20
	DefaultPumpingBlockFor      = 6 * time.Hour
)

// Bounds of the pumping defense's options.
var (
	PumpingWindowBound        = Bound[time.Duration]{"pumping window", 10 * time.Minute, 7 * 24 * time.Hour}
	PumpingMinSendsBound      = Bound[int]{"pumping min_sends", 3, 100_000}
	PumpingMinConversionBound = Bound[int]{"pumping min_conversion", 1, 99}
	PumpingBlockForBound      = Bound[time.Duration]{"pumping block_for", time.Minute, 30 * 24 * time.Hour}
)

// ParsePumpingMode checks a mode ("" is the default, monitor).
func ParsePumpingMode(v string) (PumpingMode, error) {
	switch PumpingMode(v) {
	case "":
		return DefaultPumpingMode, nil
	case PumpingMonitor, PumpingEnforce, PumpingOff:
		return PumpingMode(v), nil
	}
	return "", fmt.Errorf("pumping mode %q: want monitor, enforce or off", v)
}

// ParsePercent reads a percentage written "20%" or "20".
func ParsePercent(v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSuffix(v, "%"))
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole percentage such as 20%%", v)
	}
	return n, nil
}

// CheckPumpingPrefix checks a number prefix as the safe list and unblock
// take it: "+" and up to 14 digits that begin with a country calling
// code. It returns the calling code.
func CheckPumpingPrefix(prefix string) (int, error) {
	digits, ok := strings.CutPrefix(prefix, "+")
	if !ok || len(digits) < 1 || len(digits) > 14 || strings.Trim(digits, "0123456789") != "" {
		return 0, fmt.Errorf("prefix %q: want + and digits, such as +44 or +4477009000", prefix)
	}
	for n := 1; n <= 3 && n <= len(digits); n++ {
		cc, _ := strconv.Atoi(digits[:n])
		if phonenumbers.GetRegionCodeForCountryCode(cc) != phonenumbers.UNKNOWN_REGION {
			return cc, nil
		}
	}
	return 0, fmt.Errorf("prefix %q does not begin with a country calling code", prefix)
}

// setDefaults fills the pumping defense's defaults and checks its
// bounds and safe list; Safe is copied, not changed.
func (p *Pumping) setDefaults() error {
	mode, err := ParsePumpingMode(string(p.Mode))
	if err != nil {
		return err
	}
	p.Mode = mode
	setDuration(&p.Window, DefaultPumpingWindow)
	setInt(&p.MinSends, DefaultPumpingMinSends)
	setInt(&p.MinConversion, DefaultPumpingMinConversion)
	setDuration(&p.BlockFor, DefaultPumpingBlockFor)
	for _, err := range []error{
		PumpingWindowBound.Check(p.Window),
		PumpingMinSendsBound.Check(p.MinSends),
		PumpingMinConversionBound.Check(p.MinConversion),
		PumpingBlockForBound.Check(p.BlockFor),
	} {
		if err != nil {
			return err
		}
	}
	safe := make([]string, 0, len(p.Safe))
	for _, s := range p.Safe {
		if _, err := CheckPumpingPrefix(s); err != nil {
			return fmt.Errorf("pumping safe: %v", err)
		}
		safe = append(safe, s)
	}
	p.Safe = safe
	return nil
}

// WithDefaults returns p with its defaults filled in, or an error
// naming the first option out of its bounds (Config.WithDefaults checks
// the same; the Caddyfile parser calls it to point at the block).
func (p Pumping) WithDefaults() (Pumping, error) {
	err := p.setDefaults()
	return p, err
}

// rule is the store's form of p.
func (p *Pumping) rule() store.PumpRule {
	return store.PumpRule{Window: p.Window, MinSends: p.MinSends, MinConversion: p.MinConversion,
		BlockFor: p.BlockFor, Enforce: p.Mode == PumpingEnforce}
}

// safe reports whether e164 is on the safe list.
func (p *Pumping) safe(e164 string) bool {
	for _, s := range p.Safe {
		if strings.HasPrefix(e164, s) {
			return true
		}
	}
	return false
}

// NumberPrefix returns the prefix the pumping defense counts a number
// under: the number in E.164 form without its last four digits, and never
// shorter than its country calling code.
func NumberPrefix(phone sender.Phone) string {
	return numberPrefix(phone.E164, strconv.Itoa(phone.CountryCode))
}

// numberPrefix is NumberPrefix of the E.164 number e164 whose country
// calling code is cc (digits, no "+").
func numberPrefix(e164, cc string) string {
	return e164[:min(len(e164), max(len(cc)+1, len(e164)-4))]
}

// pumpStore returns the store's pumping state, or nil when the defense
// is off.
func (e *Engine) pumpStore() store.PumpingStore {
	if e.cfg.Pumping.Mode == PumpingOff {
		return nil
	}
	ps, _ := e.store.(store.PumpingStore)
	return ps
}

// checkPumping refuses to make an engine that enforces the pumping
// defense over a store that cannot keep its state; in monitor mode such
// a store only gets a warning, as monitoring never refuses anything.
func (e *Engine) checkPumping() error {
	if e.cfg.Pumping.Mode == PumpingOff {
		return nil
	}
	if _, ok := e.store.(store.PumpingStore); ok {
		return nil
	}
	if e.cfg.Pumping.Mode == PumpingEnforce {
		return errors.New("pumping mode enforce needs a store that keeps the pumping defense's state (memory or redis); this store does not")
	}
	e.log.Warn("this store keeps no pumping-defense state: the SMS-pumping defense (pumping mode monitor) counts nothing")
	return nil
}

// allowPumping counts one send to phone for the pumping defense, first
// of the send's checks (one round trip): it returns a refusal when the
// number's prefix is blocked (enforce), and reports a prefix whose
// conversion collapsed with this send. A number on the safe list is
// neither counted nor refused.
func (e *Engine) allowPumping(r *http.Request, policy string, phone sender.Phone) (*limited, error) {
	ps := e.pumpStore()
	if ps == nil || e.cfg.Pumping.safe(phone.E164) {
		return nil, nil
	}
	cc := strconv.Itoa(phone.CountryCode)
	prefix := NumberPrefix(phone)
	res, err := ps.PumpSend(r.Context(), cc, e.pumpKey(prefix), e.cfg.Pumping.rule(), e.now())
	if err != nil {
		return nil, err
	}
	if res.CountrySends >= countryAlarmSends*e.cfg.Pumping.MinSends &&
		!e.cfg.Pumping.rule().Converting(res.CountrySends, res.CountryVerified) {
		e.countryConversionAlarm(cc, res.CountrySends, res.CountryVerified)
	}
	if res.NewBlock {
		e.emit(r, &Event{Kind: EventPrefixBlocked, Policy: policy, Mode: string(e.cfg.Pumping.Mode),
			Country: cc, Prefix: e.PrefixID(prefix), Sends: res.Sends, Verified: res.Verified,
			Duration: e.cfg.Pumping.BlockFor})
	}
	if res.Blocked {
		return &limited{name: "pumping", retry: e.pumpingRetry()}, nil
	}
	return nil, nil
}

// pumpingRetry is the Retry-After of a send refused by a block: what a
// spent per_number budget answers (its interval), never the block's
// remaining time, which would tell a ring that its range is blocked and
// for how long.
func (e *Engine) pumpingRetry() time.Duration {
	if l := e.cfg.Limits.PerNumber; !l.Off() {
		return l.Period / time.Duration(l.Rate)
	}
	return time.Minute
}

// Origins of a number, which the pumping defense counts and blocks
// apart: a number the request names (identity request: sign-up and
// reset forms, where whoever sends the request picks it) and a number
// on file (the identity source's account). So strangers who pump a
// range through a sign-up form block that form for the range, never the
// signed-in customers whose numbers on file are in it.
const (
	pumpOriginRequest = "r"
	pumpOriginAccount = "a"
)

// pumpKey is the store's name of a number prefix for this engine: the
// origin of its numbers and the prefix's keyed hash (PrefixID), so that
// Redis keys hold no digits of customers' numbers either.
func (e *Engine) pumpKey(prefix string) string {
	keys := pumpKeys(e.PrefixID(prefix))
	if e.fromRequest {
		return keys[0]
	}
	return keys[1]
}

// pumpKeys are the store's names of the prefix whose PrefixID is id: of
// numbers a request names, then of numbers on file.
func pumpKeys(id string) []string {
	return []string{pumpOriginRequest + ":" + id, pumpOriginAccount + ":" + id}
}

// PumpKeys returns the store's names of a number prefix under a
// handler's secret, one per origin of numbers (Engine.pumpKey), for the
// tools that reach the store without an engine: unblocking lifts both.
func PumpKeys(secret []byte, prefix string) ([]string, error) {
	id, err := PrefixID(secret, prefix)
	if err != nil {
		return nil, err
	}
	return pumpKeys(id), nil
}

// countryAlarmSends is how many times min_sends a country must be sent
// in the window before its own conversion is judged.
const countryAlarmSends = 5

// countryConversionAlarm reports a country whose codes, over many
// prefixes, are sent but not verified: a ring spread over ranges too
// small for the prefix rule, or a route that drops codes. It never
// blocks (a whole country is too much to refuse on a guess): it logs
// country_conversion_low at most once a minute per country, beside
// country_budget_exceeded of the per-country budget.
func (e *Engine) countryConversionAlarm(cc string, sends, verified int) {
	now := e.now()
	key := "conversion:" + cc
	if last, ok := e.alarms.Load(key); ok && now.Sub(last.(time.Time)) < time.Minute {
		return
	}
	e.alarms.Store(key, now)
	e.log.Warn("country_conversion_low: codes to this country calling code are sent but rarely verified (possible SMS pumping, or a route that drops codes)",
		zap.String("calling_code", cc), zap.Int("sends", sends), zap.Int("verified", verified))
}

// pumpVerified counts a verified code of challenge c for the pumping
// defense. The code is verified whatever happens here: a store error is
// logged, not answered.
func (e *Engine) pumpVerified(ctx context.Context, c *store.Challenge) {
	ps := e.pumpStore()
	if ps == nil || c.Decoy() || e.cfg.Pumping.safe(c.Phone) {
		return
	}
	// c.Phone is the E.164 form ParsePhone made when the code was sent:
	// its calling code is all that is needed, not a second parse.
	cc := sender.CallingCode(c.Phone)
	if cc == "" {
		return
	}
	if err := ps.PumpVerified(ctx, cc, e.pumpKey(numberPrefix(c.Phone, cc)), e.cfg.Pumping.Window, e.now()); err != nil {
		e.log.Warn("counting a verified code for the pumping defense", zap.String("calling_code", cc), zap.Error(err))
	}
}

// PrefixID is the value events carry for a number prefix: a keyed hash
// under the handler's secret, so that a prefix's prefix_blocked and
// prefix_unblocked events can be matched without the logs holding digits
// that, beside a masked number, would complete it.
func (e *Engine) PrefixID(prefix string) string { return e.keys.short("prefix", prefix)[:12] }

// PrefixID returns what the events of a handler with secret carry for a
// number prefix (Engine.PrefixID), for the tools that reach the store
// without an engine.
func PrefixID(secret []byte, prefix string) (string, error) {
	k, err := deriveKeys(secret)
	if err != nil {
		return "", err
	}
	return k.short("prefix", prefix)[:12], nil
}

// ErrPumpingOff is returned by UnblockPrefix when the engine keeps no
// pumping state.
var ErrPumpingOff = errors.New("the pumping defense is off for this handler (pumping mode off, or a store without its state)")

// UnblockPrefix lifts the block (or monitor flag) of a number prefix
// ("+4477009000") and forgets its counts, on every instance sharing the
// store. It reports whether the prefix was blocked or flagged, and emits
// prefix_unblocked when it was.
func (e *Engine) UnblockPrefix(ctx context.Context, prefix string) (bool, error) {
	cc, err := CheckPumpingPrefix(prefix)
	if err != nil {
		return false, err
	}
	ps := e.pumpStore()
	if ps == nil {
		return false, ErrPumpingOff
	}
	ok := false
	for _, key := range pumpKeys(e.PrefixID(prefix)) {
		lifted, err := ps.UnblockPrefix(ctx, strconv.Itoa(cc), key)
		if err != nil {
			return false, err
		}
		ok = ok || lifted
	}
	if ok {
		e.emit(nil, &Event{Kind: EventPrefixUnblocked, Mode: string(e.cfg.Pumping.Mode),
			Country: strconv.Itoa(cc), Prefix: e.PrefixID(prefix), Outcome: "operator"})
	}
	return ok, nil
}

// PrefixBlocks counts the prefixes blocked and flagged in the store,
// looking at no more than limit keys; ErrPumpingOff when there is no
// pumping state.
func (e *Engine) PrefixBlocks(ctx context.Context, limit int) (store.PrefixBlocks, error) {
	ps := e.pumpStore()
	if ps == nil {
		return store.PrefixBlocks{}, ErrPumpingOff
	}
	return ps.PrefixBlocks(ctx, limit)
}
