package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// accountConfig protects sign-up and password reset with identity
// request in a route of their own, next to a logged-in area.
func accountConfig(hook, up, prefix string) string {
	return fmt.Sprintf(`{
	admin 127.0.0.1:{ADMIN}
	auto_https off
}
http://127.0.0.1:{PORT} {
	@account path /signup /.stepup-account/*
	route @account {
		stepup {
			path_prefix /.stepup-account
			redis %s {
				key_prefix %s
			}
			secret {env.STEPUP_SECRET}
			identity request {
				phone {form.phone}
			}
			sender webhook %s/sms {
				signing_secret %s
			}
			protect signup {
				match {
					method POST
					path /signup
				}
				mode transaction
			}
		}
	}
	@reset path /reset /.stepup-reset/*
	route @reset {
		stepup {
			path_prefix /.stepup-reset
			redis %s {
				key_prefix %s
			}
			secret {env.STEPUP_SECRET}
			identity request {
				user {form.email}
				phone_lookup redis "%saccount:{id}" field phone
			}
			sender webhook %s/sms {
				signing_secret %s
			}
			protect reset {
				match {
					method POST
					path /reset
				}
				mode transaction
			}
		}
	}
	reverse_proxy %s
}
`, sharedRedis.URL(), prefix, hook, signingSecret, sharedRedis.URL(), prefix, prefix, hook, signingSecret, strings.TrimPrefix(up, "http://"))
}

// anonymous is a browser with no identity headers (nobody is logged in).
func anonymous(t *testing.T) *browser { return newBrowser(t, "", "") }

// A sign-up form reaches the app only after the typed number is verified,
// once, byte for byte.
func TestSignupVerifiesTypedNumber(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	hook := newReceiver(t)
	p := startCaddy(t, accountConfig(hook.URL, up.URL, "e2e-signup:"))
	b := anonymous(t)
	form := []byte("name=Zo%C3%AB&phone=%2B1+415+555+0123&password=s3cret")
	resp := b.post(p.url("/signup"), "application/x-www-form-urlencoded", form)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/.stepup-account/challenge/") {
		t.Fatalf("sign-up POST = %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	hook.wait(t, 1) // sent after the answer
	if hook.last(t).To != "+14155550123" {
		t.Fatalf("code went to %q, want the typed number", hook.last(t).To)
	}
	if up.hits.Load() != 0 {
		t.Fatal("the sign-up reached the app before the number was verified")
	}
	challenge := resolve(p.url("/"), resp.Header.Get("Location"))
	_, page := b.do("GET", challenge, nil)
	csrf := csrfOf(t, page)
	// A wrong code does not let it through.
	wrong := "000000"
	if hook.last(t).Code == wrong {
		wrong = "111111"
	}
	if resp, _ := b.do("POST", challenge, url.Values{"csrf": {csrf}, "code": {wrong}}); resp.StatusCode != http.StatusUnprocessableEntity || up.hits.Load() != 0 {
		t.Fatalf("wrong code = %d, upstream %d", resp.StatusCode, up.hits.Load())
	}
	next := b.passChallenge(p.url("/"), &http.Response{StatusCode: http.StatusSeeOther, Header: http.Header{"Location": {challenge}}}, hook)
	resp, _ = b.do("GET", next, nil)
	reqs, bodies := up.posts()
	if resp.StatusCode != 200 || len(reqs) != 1 || string(bodies[0]) != string(form) || reqs[0].Header.Get("Stepup-Policy") != "signup" {
		t.Fatalf("after verification: %d, %d POSTs, body %q", resp.StatusCode, len(reqs), bodies)
	}
	// Another browser cannot take over the challenge.
	other := anonymous(t)
	if resp, _ := other.do("GET", challenge, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("challenge from another browser = %d", resp.StatusCode)
	}
}

var volatileRE = regexp.MustCompile(`(challenge[/=][A-Za-z0-9_-]{22}|name="csrf" value="[^"]+"|nonce="[^"]+"|nonce-[A-Za-z0-9_-]+|\d+ seconds?|\d+ minutes?|"(expires|resend)[a-z_]*":\s*"?[0-9TZ:.-]+"?)`)

// A reset for an unknown account is answered exactly like one for a
// known account (same status, same page but for per-challenge tokens, no
// number shown), and sends nothing.
func TestResetDoesNotRevealAccounts(t *testing.T) {
	// Not parallel: it gives codes sent after the answer a fixed time.
	up := newUpstream(t)
	hook := newReceiver(t)
	p := startCaddy(t, accountConfig(hook.URL, up.URL, "e2e-reset:"))
	rc := redis.NewClient(&redis.Options{Addr: sharedRedis.Addr()})
	defer rc.Close()
	if err := rc.HSet(context.Background(), "e2e-reset:account:alice@example.com", "phone", "+14155550100").Err(); err != nil {
		t.Fatal(err)
	}
	try := func(email string) (int, string, string, int) {
		b := anonymous(t)
		before := hook.count()
		resp := b.post(p.url("/reset"), "application/x-www-form-urlencoded", []byte("email="+url.QueryEscape(email)))
		status := resp.StatusCode
		_, page := b.do("GET", resolve(p.url("/"), resp.Header.Get("Location")), nil)
		time.Sleep(500 * time.Millisecond) // codes go out after the answer
		return status, resp.Header.Get("Location"), page, hook.count() - before
	}
	s1, loc1, page1, sent1 := try("alice@example.com")
	s2, loc2, page2, sent2 := try("nobody@example.com")
	if sent1 != 1 || sent2 != 0 {
		t.Fatalf("codes sent: known account %d, unknown %d; want 1 and 0", sent1, sent2)
	}
	if s1 != s2 || !strings.HasPrefix(loc1, "/.stepup-reset/challenge/") || !strings.HasPrefix(loc2, "/.stepup-reset/challenge/") {
		t.Fatalf("answers differ: %d %q vs %d %q", s1, loc1, s2, loc2)
	}
	n1, n2 := volatileRE.ReplaceAllString(page1, "X"), volatileRE.ReplaceAllString(page2, "X")
	if n1 != n2 {
		t.Fatalf("the pages for a known and an unknown account differ:\n--- known\n%s\n--- unknown\n%s", n1, n2)
	}
	if strings.Contains(page1, "0100") || strings.Contains(page1, "******") {
		t.Fatal("the reset page shows the number on file")
	}
	// The known account's code opens the reset, once.
	b := anonymous(t)
	before := hook.count()
	resp := b.post(p.url("/reset"), "application/x-www-form-urlencoded", []byte("email=alice%40example.com"))
	hook.wait(t, before+1)
	next := b.passChallenge(p.url("/"), resp, hook)
	b.do("GET", next, nil)
	if reqs, _ := up.posts(); len(reqs) != 1 || reqs[0].Header.Get("Stepup-User") != "alice@example.com" {
		t.Fatalf("reset reached the app %d times", len(reqs))
	}
}

// Finding 4: a password reset answers the same for a known account, an
// unknown one, one whose number on file cannot take a code (a landline),
// and one whose code cannot be sent: same status, same page, and no
// difference in time however slow the gateway (the code goes out after
// the answer).
func TestResetLeaksNothing(t *testing.T) {
	// Not parallel: it measures answer times.
	up := newUpstream(t)
	hook := newReceiver(t)
	p := startCaddy(t, accountConfig(hook.URL, up.URL, "e2e-resetleak:"))
	rc := redis.NewClient(&redis.Options{Addr: sharedRedis.Addr()})
	defer rc.Close()
	ctx := context.Background()
	for email, phone := range map[string]string{
		"mobile@example.com":   "+14155550100",
		"landline@example.com": "+442079460000", // a London landline: no SMS
	} {
		if err := rc.HSet(ctx, "e2e-resetleak:account:"+email, "phone", phone).Err(); err != nil {
			t.Fatal(err)
		}
	}
	type answer struct {
		status int
		took   time.Duration
		page   string
	}
	try := func(email string) answer {
		b := anonymous(t)
		start := time.Now()
		resp := b.post(p.url("/reset"), "application/x-www-form-urlencoded", []byte("email="+url.QueryEscape(email)))
		took := time.Since(start)
		_, page := b.do("GET", resolve(p.url("/"), resp.Header.Get("Location")), nil)
		return answer{resp.StatusCode, took, volatileRE.ReplaceAllString(page, "X")}
	}
	// A slow gateway: a real send takes a second.
	hook.delay.Store(int64(time.Second))
	known := try("mobile@example.com")
	unknown := try("nobody@example.com")
	landline := try("landline@example.com")
	if known.took > 700*time.Millisecond {
		t.Errorf("a known account's answer waited for the gateway: %s", known.took)
	}
	for name, a := range map[string]answer{"unknown": unknown, "landline": landline} {
		if a.status != known.status || a.page != known.page {
			t.Errorf("%s account answered %d differently from a known one (%d):\n%s\n---\n%s", name, a.status, known.status, a.page, known.page)
		}
	}
	// A gateway that fails: the page still says nothing of it.
	hook.delay.Store(0)
	hook.fails.Store(100)
	time.Sleep(1500 * time.Millisecond) // the slow send above is done
	failing := try("mobile@example.com")
	time.Sleep(300 * time.Millisecond) // its send has failed by now
	b := anonymous(t)
	resp := b.post(p.url("/reset"), "application/x-www-form-urlencoded", []byte("email=mobile%40example.com"))
	time.Sleep(500 * time.Millisecond)
	_, page := b.do("GET", resolve(p.url("/"), resp.Header.Get("Location")), nil)
	hook.fails.Store(0)
	for name, got := range map[string]string{"first": failing.page, "second": volatileRE.ReplaceAllString(page, "X")} {
		if got != known.page {
			t.Errorf("a failing gateway shows on the reset page (%s): %s", name, firstDiff(got, known.page))
		}
	}
}

// firstDiff shows where a and b first differ.
func firstDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(la) && i < len(lb); i++ {
		if la[i] != lb[i] {
			return fmt.Sprintf("line %d: %q vs %q", i+1, la[i], lb[i])
		}
	}
	return fmt.Sprintf("%d lines vs %d", len(la), len(lb))
}
