package stepup

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// pumpNumber is the i-th number of the range a pumping ring owns: one
// prefix, +44740012.
func pumpNumber(i int) string { return fmt.Sprintf("+44740012%04d", i) }

const pumpPrefixDigits = "44740012"

// newRedisStoreAt is a Redis store under prefix: two of them with one
// prefix are two instances of one site.
func newRedisStoreAt(prefix string) store.Store {
	return store.NewRedis(redis.NewClient(&redis.Options{Addr: redisServer.Addr()}), prefix, true)
}

// pumpingConfig turns the fixed budgets off (so that only the pumping
// defense can refuse) and sets the defense's mode and safe list.
func pumpingConfig(mode PumpingMode, safe ...string) func(*Config, []*Policy) {
	return func(c *Config, _ []*Policy) {
		c.Limits.PerUser, c.Limits.PerIP, c.Limits.PerNumber = store.Limit{Rate: -1}, store.Limit{Rate: -1}, store.Limit{Rate: -1}
		c.Pumping = Pumping{Mode: mode, Safe: safe}
	}
}

// pump starts n challenges for n users with numbers first..first+n-1
// of the ring's range and returns the status codes seen, by code.
func pump(h *harness, first, n int) map[int]int {
	h.t.Helper()
	seen := map[int]int{}
	for i := first; i < first+n; i++ {
		resp, _ := h.browser(fmt.Sprintf("ring-%d", i), pumpNumber(i)).do("GET", "/account/payment-methods", nil)
		seen[resp.StatusCode]++
	}
	return seen
}

func countEvents(h *harness, kind EventKind) int {
	return strings.Count(h.logs.String(), `"msg":"`+string(kind)+`"`)
}

// A ring pumping one prefix through the engine and the Redis store:
// hundreds of sends, no code ever verified. Enforce blocks the prefix
// once min_sends (20) codes went unverified; the refusal is a rate
// limit's, to the byte; the logs name the country, never the prefix.
func TestPumpingSimulationEnforce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, newRedisStoreAt("t:pump-enforce:"+randomID()+":"), pumpingConfig(PumpingEnforce))
	h.secret(pumpPrefixDigits)
	// One of the ring's challenges is made by the API, before the block.
	early := h.browser("early", pumpNumber(5000))
	_, first := early.apiDo("GET", "/account/payment-methods", nil)
	if first["challenge"] == nil {
		t.Fatalf("no challenge: %v", first)
	}
	seen := pump(h, 0, 300)
	if seen[http.StatusSeeOther] != DefaultPumpingMinSends-1 || seen[http.StatusTooManyRequests] != 300-DefaultPumpingMinSends+1 {
		t.Fatalf("statuses %v; want %d challenges, the rest refused", seen, DefaultPumpingMinSends)
	}
	if h.out.count() != DefaultPumpingMinSends {
		t.Fatalf("%d codes sent; want %d", h.out.count(), DefaultPumpingMinSends)
	}
	if n := countEvents(h, EventPrefixBlocked); n != 1 {
		t.Fatalf("%d prefix_blocked events; want 1", n)
	}
	logs := h.logs.String()
	if !strings.Contains(logs, `"country":"44"`) || !strings.Contains(logs, `"mode":"enforce"`) || !strings.Contains(logs, `"limit":"pumping"`) {
		t.Fatalf("the block's events lack country, mode or limit:\n%s", logs)
	}
	// Another prefix of the same country is not blocked.
	if resp, _ := h.browser("other", "+447911123456").do("GET", "/account/payment-methods", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("another prefix = %d; want a challenge", resp.StatusCode)
	}

	// The refusal is a rate limit's: the same page, and Retry-After.
	resp, blockedPage := h.browser("ring-x", pumpNumber(9999)).do("GET", "/account/payment-methods", nil)
	retry := resp.Header.Get("Retry-After")
	if resp.StatusCode != http.StatusTooManyRequests || retry != "61" {
		// Never the block's remaining time (R4-3): per_number is off
		// here, so a minute (and the second every Retry-After adds).
		t.Fatalf("blocked send = %d, Retry-After %q; want 429, 61", resp.StatusCode, retry)
	}
	// The store's keys hold no digits of the range (R4-3).
	keys, err := redis.NewClient(&redis.Options{Addr: redisServer.Addr()}).Keys(context.Background(), "t:pump-enforce:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys %v, %v", keys, err)
	}
	for _, k := range keys {
		if strings.Contains(k, "740012") {
			t.Fatalf("a Redis key names the prefix: %s", k)
		}
	}
	limited := newHarness(t, store.NewMemory(time.Minute), func(c *Config, _ []*Policy) {
		c.Limits.PerNumber = store.Limit{Rate: 1, Period: time.Hour}
	})
	limited.browser("a", "+447911123456").do("GET", "/account/payment-methods", nil)
	resp2, limitedPage := limited.browser("b", "+447911123456").do("GET", "/account/payment-methods", nil)
	if resp2.StatusCode != http.StatusTooManyRequests || resp2.Header.Get("Retry-After") == "" || limitedPage != blockedPage {
		t.Fatalf("a blocked send does not answer as a rate limit:\n%d %s\nvs\n%d %s", resp.StatusCode, blockedPage, resp2.StatusCode, limitedPage)
	}
	// And in JSON alike.
	_, blockedJSON := h.browser("ring-y", pumpNumber(9998)).apiDo("GET", "/account/payment-methods", nil)
	limited.browser("c", "+447911123499").apiDo("GET", "/account/payment-methods", nil)
	_, limitedJSON := limited.browser("d", "+447911123499").apiDo("GET", "/account/payment-methods", nil)
	if fmt.Sprint(blockedJSON) != fmt.Sprint(limitedJSON) {
		t.Fatalf("JSON differs: %v vs %v", blockedJSON, limitedJSON)
	}

	// A resend to a blocked prefix is refused as a resend within a
	// budget: too early, with Retry-After.
	h.clock.add(DefaultResendAfter + time.Second)
	resp, out := early.apiDo("POST", "/.stepup/resend", []byte(`{"challenge":"`+first["challenge"].(string)+`"}`))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || out["error"] != "resend_too_early" {
		t.Fatalf("resend to a blocked prefix = %d %v", resp.StatusCode, out)
	}
}

// Monitor mode only logs and counts: every code goes, and the prefix is
// reported once per block_for.
func TestPumpingSimulationMonitor(t *testing.T) {
	t.Parallel()
	h := newHarness(t, newRedisStoreAt("t:pump-monitor:"+randomID()+":"), pumpingConfig(""))
	h.secret(pumpPrefixDigits)
	if h.e.Config().Pumping.Mode != PumpingMonitor {
		t.Fatalf("default mode %q; want monitor", h.e.Config().Pumping.Mode)
	}
	seen := pump(h, 0, 300)
	if seen[http.StatusSeeOther] != 300 || h.out.count() != 300 {
		t.Fatalf("statuses %v, %d sent; want every code sent", seen, h.out.count())
	}
	if n := countEvents(h, EventPrefixBlocked); n != 1 {
		t.Fatalf("%d prefix_blocked events; want 1", n)
	}
	if !strings.Contains(h.logs.String(), `"mode":"monitor"`) {
		t.Fatal("the event does not say monitor")
	}
	// The country's own conversion collapsed too: one alarm a minute.
	if n := strings.Count(h.logs.String(), "country_conversion_low"); n != 1 || !strings.Contains(h.logs.String(), `"calling_code":"44","sends":100`) {
		t.Fatalf("%d country_conversion_low lines; want 1, at the 100th send:\n%s", n, h.logs.String())
	}
	pb, err := h.e.PrefixBlocks(context.Background(), 1000)
	if err != nil || pb.Flagged != 1 || pb.Blocked != 0 {
		t.Fatalf("PrefixBlocks = %+v, %v; want 1 flagged", pb, err)
	}
}

// A prefix whose codes are verified is never blocked, however many it
// gets: here hundreds, half of them verified.
func TestPumpingConvertingPrefixNeverBlocked(t *testing.T) {
	t.Parallel()
	h := newHarness(t, newRedisStoreAt("t:pump-converting:"+randomID()+":"), pumpingConfig(PumpingEnforce))
	for i := 0; i < 300; i++ {
		b := h.browser(fmt.Sprintf("customer-%d", i), pumpNumber(i))
		resp, ch := b.apiDo("GET", "/account/payment-methods", nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("customer %d: %d %v; want a challenge", i, resp.StatusCode, ch)
		}
		if i%2 == 0 {
			if resp, out := b.apiVerify(ch["challenge"].(string), h.out.last(t).Code); resp.StatusCode != http.StatusOK {
				t.Fatalf("verify %d = %d %v", i, resp.StatusCode, out)
			}
		}
	}
	if strings.Contains(h.logs.String(), "country_conversion_low") {
		t.Fatal("a converting country raised the alarm")
	}
	if n := countEvents(h, EventPrefixBlocked); n != 0 || h.out.count() != 300 {
		t.Fatalf("%d blocks, %d sent; want none and 300", n, h.out.count())
	}
}

// The safe list wins: a safe prefix is neither counted nor blocked, a
// block in place included.
func TestPumpingSafeListWins(t *testing.T) {
	t.Parallel()
	prefix := "t:pump-safe:" + randomID() + ":"
	h := newHarness(t, newRedisStoreAt(prefix), pumpingConfig(PumpingEnforce, "+4474001"))
	if seen := pump(h, 0, 100); seen[http.StatusSeeOther] != 100 || countEvents(h, EventPrefixBlocked) != 0 {
		t.Fatalf("safe prefix: %v, %d blocks", seen, countEvents(h, EventPrefixBlocked))
	}
	// Blocked by an instance without the safe list, it still gets codes
	// from the one with it.
	other := newHarness(t, newRedisStoreAt(prefix), pumpingConfig(PumpingEnforce))
	if seen := pump(other, 100, 30); seen[http.StatusTooManyRequests] == 0 {
		t.Fatalf("no block without the safe list: %v", seen)
	}
	if seen := pump(h, 200, 10); seen[http.StatusSeeOther] != 10 {
		t.Fatalf("safe prefix under a block: %v", seen)
	}
}

// Two instances on one Redis share the block, and an unblock on one
// lifts it on both.
func TestPumpingBlockShared(t *testing.T) {
	t.Parallel()
	prefix := "t:pump-shared:" + randomID() + ":"
	a := newHarness(t, newRedisStoreAt(prefix), pumpingConfig(PumpingEnforce))
	b := newHarness(t, newRedisStoreAt(prefix), pumpingConfig(PumpingEnforce))
	// Half the ring's requests reach each instance.
	for i := 0; i < DefaultPumpingMinSends; i += 2 {
		pump(a, i, 1)
		pump(b, i+1, 1)
	}
	if a.out.count()+b.out.count() != DefaultPumpingMinSends {
		t.Fatalf("%d+%d sent", a.out.count(), b.out.count())
	}
	for _, h := range []*harness{a, b} {
		if seen := pump(h, 100, 5); seen[http.StatusTooManyRequests] != 5 {
			t.Fatalf("an instance does not see the block: %v", seen)
		}
	}
	ok, err := b.e.UnblockPrefix(context.Background(), "+"+pumpPrefixDigits)
	if err != nil || !ok {
		t.Fatalf("UnblockPrefix = %v, %v", ok, err)
	}
	if n := countEvents(b, EventPrefixUnblocked); n != 1 {
		t.Fatalf("%d prefix_unblocked events; want 1", n)
	}
	if seen := pump(a, 200, 5); seen[http.StatusSeeOther] != 5 {
		t.Fatalf("after unblock: %v", seen)
	}
	if ok, err := a.e.UnblockPrefix(context.Background(), "+"+pumpPrefixDigits); ok || err != nil {
		t.Fatalf("unblocking an unblocked prefix = %v, %v; want false", ok, err)
	}
	if _, err := a.e.UnblockPrefix(context.Background(), "+999"); err == nil {
		t.Fatal("a prefix without a calling code was taken")
	}
}

// A hidden-number flow (password reset) answers alike whether the
// account exists or not, and whether its number's prefix is blocked or
// not: a blocked prefix sends nothing, silently.
func TestPumpingHiddenNumberAnswersAlike(t *testing.T) {
	t.Parallel()
	st := store.NewMemory(time.Minute)
	h := newResetHarness(t, st, func(c *Config) { c.Pumping = Pumping{Mode: PumpingEnforce} })
	b := h.browser("", "")
	// A challenge of the known account made before the block: its code
	// went out.
	_, early := b.resetAPI("known@example.com")
	time.Sleep(50 * time.Millisecond) // a hidden flow sends after the answer
	if h.out.count() != 1 {
		t.Fatalf("%d codes sent before the block; want 1", h.out.count())
	}
	// Block +1415555 (the known account's prefix) by pumping it.
	phone, err := sender.ParsePhone("+14155550100", "")
	if err != nil {
		t.Fatal(err)
	}
	pc := h.e.Config().Pumping
	rule := pc.rule()
	for i := 0; i <= rule.MinSends; i++ {
		if _, err := st.PumpSend(context.Background(), "1", h.e.pumpKey(NumberPrefix(phone)), rule, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	volatile := func(m map[string]any) string {
		delete(m, "challenge")
		delete(m, "expires_at")
		return fmt.Sprint(m)
	}
	r1, known := b.resetAPI("known@example.com")
	r2, unknown := b.resetAPI("nobody@example.com")
	unknownID, _ := unknown["challenge"].(string)
	if r1.StatusCode != r2.StatusCode || volatile(known) != volatile(unknown) {
		t.Fatalf("answers differ:\nknown   %d %v\nunknown %d %v", r1.StatusCode, known, r2.StatusCode, unknown)
	}
	// A resend of the challenge made before the block answers as one of
	// an unknown account, and sends nothing either.
	h.clock.add(DefaultResendAfter + time.Second)
	resend := func(user, id string) (int, string) {
		resp, out := b.apiDo("POST", "/.stepup/resend", []byte(`{"challenge":"`+id+`"}`), "X-Reset-User", user)
		delete(out, "challenge")
		delete(out, "expires_at")
		return resp.StatusCode, fmt.Sprint(out)
	}
	earlyID, _ := early["challenge"].(string)
	c1, o1 := resend("known@example.com", earlyID)
	c2, o2 := resend("nobody@example.com", unknownID)
	if c1 != c2 || o1 != o2 {
		t.Fatalf("resends differ:\nknown   %d %s\nunknown %d %s", c1, o1, c2, o2)
	}
	if c1 != http.StatusOK {
		t.Fatalf("resend = %d %s", c1, o1)
	}
	time.Sleep(50 * time.Millisecond)
	if h.out.count() != 1 {
		t.Fatalf("%d codes sent to a blocked prefix", h.out.count())
	}
}

func TestPumpingConfig(t *testing.T) {
	c, err := Config{Secret: testSecret}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	p := c.Pumping
	if p.Mode != PumpingMonitor || p.Window != time.Hour || p.MinSends != 20 || p.MinConversion != 20 || p.BlockFor != 6*time.Hour {
		t.Fatalf("defaults %+v", p)
	}
	for _, tc := range []struct {
		p    Pumping
		want string
	}{
		{Pumping{Mode: "block"}, `pumping mode "block": want monitor, enforce or off`},
		{Pumping{Window: time.Minute}, "pumping window 1m0s out of range (10m to 7d)"},
		{Pumping{MinSends: 2}, "pumping min_sends 2 out of range (3 to 100000)"},
		{Pumping{MinConversion: 100}, "pumping min_conversion 100 out of range (1 to 99)"},
		{Pumping{BlockFor: 31 * 24 * time.Hour}, "pumping block_for 744h0m0s out of range (1m to 30d)"},
		{Pumping{Safe: []string{"4477009"}}, `pumping safe: prefix "4477009": want + and digits, such as +44 or +4477009000`},
		{Pumping{Safe: []string{"+999"}}, `pumping safe: prefix "+999" does not begin with a country calling code`},
	} {
		_, err := Config{Secret: testSecret, Pumping: tc.p}.WithDefaults()
		if err == nil || err.Error() != tc.want {
			t.Errorf("%+v: %v; want %s", tc.p, err, tc.want)
		}
	}
	phone, _ := sender.ParsePhone("+447911123456", "")
	if got := NumberPrefix(phone); got != "+44791112" {
		t.Errorf("NumberPrefix = %s", got)
	}
}

// A verified code is counted under the prefix its send was counted
// under: pumpVerified takes the calling code from the stored E.164
// number instead of parsing it again, and must land on the same key for
// calling codes of one, two and three digits.
func TestVerifiedCountedUnderTheSendsPrefix(t *testing.T) {
	for _, raw := range []string{"+14155550100", "+447911123456", "+919876543210", "+353851234567",
		"+8613812345678", "+35799123456", "+16132345678", "+61412345678", "+5511987654321", "+2348031234567"} {
		phone, err := sender.ParsePhone(raw, "")
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		cc := sender.CallingCode(phone.E164)
		if cc != strconv.Itoa(phone.CountryCode) {
			t.Errorf("%s: CallingCode %q, parsed %d", raw, cc, phone.CountryCode)
		}
		if got, want := numberPrefix(phone.E164, cc), NumberPrefix(phone); got != want {
			t.Errorf("%s: verified under %q, sent under %q", raw, got, want)
		}
	}
}

// BenchmarkPumpingBlocked: each request is for a number whose prefix the
// pumping defense blocks (enforce). Compare with BenchmarkChallenge (both
// against Redis): a blocked send costs less than a send.
func BenchmarkPumpingBlocked(b *testing.B) {
	e, out := benchEngine(b, func(c *Config) {
		c.Limits = Limits{PerUser: store.Limit{Rate: -1}, PerIP: store.Limit{Rate: -1}, PerNumber: store.Limit{Rate: -1}}
		c.Pumping = Pumping{Mode: PumpingEnforce}
	})
	phone, _ := sender.ParsePhone("+14155550100", "")
	rule := e.cfg.Pumping.rule()
	for i := 0; i <= rule.MinSends; i++ {
		if _, err := e.store.(store.PumpingStore).PumpSend(context.Background(), "1", e.pumpKey(NumberPrefix(phone)), rule, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	benchServe(b, e, func(i int) string { return fmt.Sprintf("user-%d", i) })
	if out.count() != 0 {
		b.Fatalf("%d codes sent to a blocked prefix", out.count())
	}
}

// A blocked send is refused before any send budget is spent: once the
// prefix is unblocked, the number still has its whole budget.
func TestPumpingBlockedSendSpendsNoBudget(t *testing.T) {
	t.Parallel()
	st := store.NewMemory(time.Minute)
	h := newHarness(t, st, func(c *Config, _ []*Policy) {
		c.Limits.PerNumber = store.Limit{Rate: 1, Period: time.Hour}
		c.Limits.Global = store.Limit{Rate: 1, Period: time.Hour}
		c.Pumping = Pumping{Mode: PumpingEnforce}
	})
	phone, _ := sender.ParsePhone(pumpNumber(1), "")
	pc := h.e.Config().Pumping
	rule := pc.rule()
	for i := 0; i <= rule.MinSends; i++ {
		if _, err := st.PumpSend(context.Background(), "44", h.e.pumpKey(NumberPrefix(phone)), rule, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		if resp, _ := h.browser(fmt.Sprintf("u%d", i), pumpNumber(1)).do("GET", "/account/payment-methods", nil); resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("blocked send = %d", resp.StatusCode)
		}
	}
	if ok, err := h.e.UnblockPrefix(context.Background(), NumberPrefix(phone)); !ok || err != nil {
		t.Fatalf("UnblockPrefix = %v, %v", ok, err)
	}
	if resp, _ := h.browser("u9", pumpNumber(1)).do("GET", "/account/payment-methods", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after unblock = %d; want a challenge (the per-number and global budgets unspent)", resp.StatusCode)
	}
}

// signupSource is a sign-up identity source as identity request with
// phone {form.phone} makes it: whoever sends the request names the
// number (X-Signup-Phone here).
type signupSource struct{}

func (signupSource) Identify(r *http.Request) (identity.Identity, error) {
	p := r.Header.Get("X-Signup-Phone")
	if p == "" {
		return identity.Identity{}, identity.ErrNoIdentity
	}
	return identity.Identity{User: "signup:" + p, Phone: p}, nil
}

func (signupSource) IdentityFromRequest() bool { return true }

// R4-3: strangers who pump a range through a sign-up form (numbers the
// request names) block the form for that range, never the signed-in
// customers of the range, whose numbers are on file: the two origins
// are counted and blocked apart, on one store. An operator's unblock
// lifts both.
func TestPumpingStrangersCannotBlockCustomers(t *testing.T) {
	t.Parallel()
	st := store.NewMemory(time.Minute)
	signup := newHarness(t, st, pumpingConfig(PumpingEnforce))
	signup.e.identity = signupSource{}
	signup.e.fromRequest = true
	shop := newHarness(t, st, pumpingConfig(PumpingEnforce))

	seen := map[int]int{}
	for i := range 40 {
		resp, _ := signup.browser("", "").do("GET", "/account/payment-methods", nil, "X-Signup-Phone", pumpNumber(i))
		seen[resp.StatusCode]++
	}
	if seen[http.StatusTooManyRequests] == 0 || seen[http.StatusSeeOther] != DefaultPumpingMinSends {
		t.Fatalf("sign-up statuses %v; want %d challenges, then the range blocked", seen, DefaultPumpingMinSends)
	}
	// A signed-in customer of the range still gets a code.
	if resp, _ := shop.browser("customer", pumpNumber(9999)).do("GET", "/account/payment-methods", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("signed-in customer of a range strangers pumped = %d; want a challenge", resp.StatusCode)
	}
	phone, _ := sender.ParsePhone(pumpNumber(0), "")
	if ok, err := shop.e.UnblockPrefix(context.Background(), NumberPrefix(phone)); !ok || err != nil {
		t.Fatalf("unblock from the shop's handler = %v, %v; want the sign-up block lifted too", ok, err)
	}
	if resp, _ := signup.browser("", "").do("GET", "/account/payment-methods", nil, "X-Signup-Phone", pumpNumber(77)); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-up after unblock = %d; want a challenge", resp.StatusCode)
	}
}
