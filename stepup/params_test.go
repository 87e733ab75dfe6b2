package stepup

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// The fourth outside test (R4-7, R4-8): PHP's $_REQUEST with no php.ini
// and ASP.NET's Request[] read a form field from a cookie over the
// posted one, Spring 6.2 binds a header into a field the request does
// not carry. A described field in a cookie or a header is one more
// occurrence of it: refused with 400 before any code is made or sent,
// as the other ambiguous readings are.
func TestDescribeRefusesFieldInCookieOrHeader(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		h := newTxHarness(t, st)
		alice := h.browser("alice", "+14155550100")
		cases := []struct {
			name, body string
			extra      []string
		}{
			{"cookie over the posted field", "amount=1&merchant=ACME", []string{"Cookie", "amount=9999; merchant=EVIL"}},
			{"cookie for a missing field", "merchant=ACME", []string{"Cookie", "session=x; amount=9999"}},
			{"cookie in another case (ASP.NET)", "amount=1&merchant=ACME", []string{"Cookie", "AMOUNT=9999"}},
			{"cookie php array name", "amount=1&merchant=ACME", []string{"Cookie", "amount[x]=9999"}},
			{"cookie php dot name", "amount=1&merchant=ACME", []string{"Cookie", " merchant.x=EVIL"}},
			{"cookie encoded name (old PHP)", "amount=1&merchant=ACME", []string{"Cookie", "%61mount=9999"}},
			{"cookie after a comma (ASP.NET)", "amount=1&merchant=ACME", []string{"Cookie", "a=1,amount=9999"}},
			{"header for a missing field (Spring 6.2)", "merchant=ACME", []string{"Amount", "9999"}},
			{"header over a field", "amount=1&merchant=ACME", []string{"Merchant", "EVIL"}},
			{"header field default", "merchant=ACME", []string{"!amount", "9999"}},
		}
		for _, tc := range cases {
			for _, accept := range []string{"text/html", "application/json"} {
				extra := append([]string{"Accept", accept, "Origin", h.srv.URL}, tc.extra...)
				resp, page := alice.raw("POST", "/checkout", "application/x-www-form-urlencoded", []byte(tc.body), extra...)
				if resp.StatusCode != http.StatusBadRequest {
					t.Fatalf("%s, %s: POST = %d, want 400", tc.name, accept, resp.StatusCode)
				}
				if strings.Contains(page, "9999") || strings.Contains(page, "EVIL") {
					t.Fatalf("%s: the answer shows a value", tc.name)
				}
			}
		}
		if n := h.out.count(); n != 0 {
			t.Fatalf("%d codes sent", n)
		}
		if h.upstream.Load() != 0 {
			t.Fatal("the request reached the upstream")
		}
		logs := logValues(h.logs.String())
		if !strings.Contains(logs, `"outcome":"ambiguous_fields"`) || strings.Contains(logs, "9999") {
			t.Fatalf("events: want ambiguous_fields and no value:\n%s", logs)
		}
	})
}

// No false refusal: a browser's ordinary headers and cookies, those
// stepup reads itself (identity, forwarding) included, pass through the
// whole transaction, and only the app's cookies reach the upstream.
func TestDescribeBrowserRequestWithManyHeaders(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		h := newTxHarness(t, st)
		alice := h.browser("alice", "+14155550100")
		alice.jar["PHPSESSID"] = "abc123"
		alice.jar["_ga"] = "GA1.1.1.1"
		alice.jar["cart"] = "%7B%22amountless%22%3A1%7D"
		browser := []string{"Origin", h.srv.URL, "Referer", h.srv.URL + "/cart",
			"User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
			"Accept-Language", "en-US,en;q=0.5", "Accept-Encoding", "gzip, deflate, br, zstd",
			"Sec-Fetch-Dest", "document", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Site", "same-origin", "Sec-Fetch-User", "?1",
			"Upgrade-Insecure-Requests", "1", "Priority", "u=0, i", "Cache-Control", "max-age=0",
			"X-Forwarded-For", "192.0.2.1", "X-Forwarded-Proto", "https", "X-Requested-With", "XMLHttpRequest"}
		resp, _ := alice.raw("POST", "/checkout", "application/x-www-form-urlencoded", []byte("amount=12&merchant=ACME"), browser...)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("POST /checkout = %d", resp.StatusCode)
		}
		if resp := alice.verifyLast(resp.Header.Get("Location")); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("verify = %d", resp.StatusCode)
		}
		resp, got := alice.do("GET", "/checkout", nil, browser...)
		if resp.StatusCode != 200 || got != "upstream /checkout" || h.upstream.Load() != 1 {
			t.Fatalf("replay = %d %q, upstream %d", resp.StatusCode, got, h.upstream.Load())
		}
		c := (*h.lastUp.Load()).Get("Cookie")
		for _, want := range []string{"PHPSESSID=abc123", "_ga=GA1.1.1.1", "cart="} {
			if !strings.Contains(c, want) {
				t.Errorf("upstream Cookie %q lacks %s", c, want)
			}
		}
		if strings.Contains(c, "stepup_") {
			t.Errorf("upstream Cookie %q holds stepup's own", c)
		}
	})
}

// A transaction grant opens the approved request only without a
// described field (or _method) in a cookie or a header: refused 403 as a
// grant that does not match, nothing upstream, and the grant stays
// unused for the request as approved.
func TestGrantRefusedWithFieldInCookieOrHeader(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		h := newTxHarness(t, st)
		api := h.browser("alice", "+14155550100")
		const form = "application/x-www-form-urlencoded"
		body := []byte("amount=1&merchant=ACME")
		grant := apiTransaction(t, h, form, body)
		h.secret(grant)
		for _, extra := range [][]string{
			{"Cookie", GrantCookie + "=" + grant + "; amount=9999; merchant=EVIL"},
			{"Cookie", "amount=9999; " + GrantCookie + "=" + grant},
			{"Cookie", GrantCookie + "=" + grant + "; _method=DELETE"},
			{"Cookie", GrantCookie + "=" + grant, "Amount", "9999"},
			{"Cookie", GrantCookie + "=" + grant, "Merchant", "EVIL"},
		} {
			resp, out := api.apiDo("POST", "/checkout", body, append([]string{"Content-Type", form}, extra...)...)
			if resp.StatusCode != http.StatusForbidden || out["error"] != "invalid_grant" {
				t.Fatalf("%v: %d %v", extra, resp.StatusCode, out)
			}
		}
		if h.upstream.Load() != 0 {
			t.Fatal("a refused grant reached the upstream")
		}
		if !strings.Contains(h.logs.String(), `"outcome":"ambiguous_fields"`) {
			t.Error("no grant_refused ambiguous_fields event")
		}
		// The request as approved, with the app's own cookie: passes,
		// and the grant cookie does not go upstream.
		resp, out := api.apiDo("POST", "/checkout", body, "Content-Type", form, "Cookie", "sess=1; "+GrantCookie+"="+grant)
		if resp.StatusCode != 200 || h.upstream.Load() != 1 {
			t.Fatalf("grant as approved = %d %v", resp.StatusCode, out)
		}
		if c := (*h.lastUp.Load()).Get("Cookie"); c != "sess=1" {
			t.Fatalf("upstream Cookie = %q, want the app's alone", c)
		}
	})
}

// The browser replay takes its cookies from the later GET (a script can
// set document.cookie after the approval): a described field among them
// refuses the replay, nothing upstream (R4-7, repro-07 (c)).
func TestReplayRefusedWithFieldInCookie(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		for _, planted := range [][2]string{{"amount", "9999"}, {"merchant", "EVIL"}, {"_method", "DELETE"}} {
			h := newTxHarness(t, st)
			alice := h.browser("alice", "+14155550100")
			resp, _ := alice.raw("POST", "/checkout", "application/x-www-form-urlencoded", []byte("amount=1&merchant=ACME"), "Origin", h.srv.URL)
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("POST /checkout = %d", resp.StatusCode)
			}
			if resp := alice.verifyLast(resp.Header.Get("Location")); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("verify = %d", resp.StatusCode)
			}
			alice.jar[planted[0]] = planted[1] // document.cookie = ...
			resp, page := alice.do("GET", "/checkout", nil)
			if resp.StatusCode != http.StatusForbidden || h.upstream.Load() != 0 {
				t.Fatalf("%s: replay = %d, upstream %d\n%s", planted[0], resp.StatusCode, h.upstream.Load(), page)
			}
			if !strings.Contains(h.logs.String(), `"outcome":"ambiguous_fields"`) {
				t.Errorf("%s: no replay_refused ambiguous_fields event", planted[0])
			}
		}
	})
}

// stepup's own cookies never reach the upstream: not on a request no
// policy matches, not on one a session grant lets through; the app's
// cookies do, as sent.
func TestOwnCookiesNotUpstream(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		h := newHarness(t, st, nil)
		alice := h.browser("alice", "+14155550100")
		ch, csrf := alice.start("/account/payment-methods")
		resp, _ := alice.do("POST", ch, map[string][]string{"csrf": {csrf}, "code": {h.out.last(t).Code}})
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("verify = %d", resp.StatusCode)
		}
		alice.jar["app"] = "1"
		alice.jar["stepup_other"] = "x"
		alice.jar["__Host-stepup_sid"] = "y"
		alice.jar[GrantCookie] = "z"
		for _, path := range []string{"/account/payment-methods", "/catalog"} {
			resp, _ := alice.do("GET", path, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("GET %s = %d", path, resp.StatusCode)
			}
			if c := (*h.lastUp.Load()).Get("Cookie"); c != "app=1" {
				t.Errorf("GET %s: upstream Cookie = %q, want app=1", path, c)
			}
		}
	})
}

func TestStripOwnCookies(t *testing.T) {
	for in, want := range map[string]string{
		"a=1; b=2":                      "a=1; b=2",
		"stepup_sid=x":                  "",
		"a=1; stepup_sid=x; b=2":        "a=1; b=2",
		"Stepup-Grant=t;a=1":            "a=1",
		"__Host-stepup_checkout=g; a=1": "a=1",
		"__Secure-stepup_replay=r":      "",
		"my_stepup_x=1; xstepup_sid=2":  "my_stepup_x=1; xstepup_sid=2",
		"a=stepup_sid; Stepup-Grant2=1": "a=stepup_sid; Stepup-Grant2=1",
		" stepup_sid=x ;  a=1 ; ; b=2":  "a=1; b=2",
	} {
		h := http.Header{"Cookie": {in}}
		StripOwnCookies(h)
		if got := h.Get("Cookie"); got != want {
			t.Errorf("StripOwnCookies(%q) = %q, want %q", in, got, want)
		}
		if want == "" && len(h["Cookie"]) != 0 {
			t.Errorf("StripOwnCookies(%q) left %q", in, h["Cookie"])
		}
	}
	h := http.Header{"Cookie": {"session=abc; theme=dark"}}
	if n := testing.AllocsPerRun(100, func() { StripOwnCookies(h) }); n != 0 {
		t.Errorf("StripOwnCookies without our cookies allocates %v times", n)
	}
}

// logTimes matches the time field of a JSON log line.
var logTimes = regexp.MustCompile(`"ts":[0-9.e+]+`)

// logValues is a log without its time fields, whose digits may hold
// what a test looks for ("9999") by chance.
func logValues(log string) string { return logTimes.ReplaceAllString(log, `"ts":0`) }
