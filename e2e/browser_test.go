package e2e

// The challenge page in a real browser: headless Chromium (Debian's
// chromium package) driven with chromedp, through a real Caddy, against
// the webhook receiver and the upstream of the harness. The browser is
// the trusted front end here, so it sets the identity headers itself.
//
// Every page visited must log no console error, report no CSP violation
// and request nothing but itself; axe-core (from npm, installed into
// .cache/axe on first use) must find no serious or critical violation.
// Screenshots of every state at phone and desktop widths go to a folder
// under the test's temp dir (STEPUP_SCREENSHOT_DIR keeps them); with
// STEPUP_UPDATE_SCREENSHOTS=1 the reference set in docs/screenshots is
// rewritten.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/caddy-stepup/caddy-stepup/sender"

	stepuppage "github.com/caddy-stepup/caddy-stepup/stepup/page"
)

// axeVersion is the axe-core release the accessibility checks run.
const axeVersion = "4.14.1"

// chromiumPath is Debian's chromium; STEPUP_CHROMIUM overrides it.
const chromiumPath = "/usr/bin/chromium"

// Viewports of the screenshots: a phone (390x844 CSS px at 2x) and a
// desktop.
type viewport struct {
	name          string
	width, height int64
	scale         float64
	mobile        bool
}

var (
	phone   = viewport{"phone", 390, 844, 2, true}
	desktop = viewport{"desktop", 1280, 800, 1, false}
)

// shopPage is the shop's checkout form: a real HTML form, posted by the
// browser.
const shopPage = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Checkout</title></head><body><main><h1>Checkout</h1>` +
	`<form method="post" action="/checkout"><input type="hidden" name="amount" value="EUR 42.00">` +
	`<input type="hidden" name="merchant" value="Café Müller"><button id="pay" type="submit">Pay</button></form></main></body></html>`

func browserConfig(hook, up, prefix string) string {
	return fmt.Sprintf(`{
	admin 127.0.0.1:{ADMIN}
	auto_https off
}
http://127.0.0.1:{PORT} {
	stepup {
		redis %s {
			key_prefix %s
		}
		secret {env.STEPUP_SECRET}
		site_name "Demo Shop"
		identity header {
			user X-Remote-User
			phone X-Remote-Phone
		}
		sender webhook %s/sms {
			signing_secret %s
		}
		resend_after 2s
		receipts {
			public_url http://127.0.0.1:{PORT}
		}
		protect payment-methods {
			match {
				path /account/payment-methods*
			}
			grant_ttl 15m
		}
		protect checkout {
			match {
				method POST
				path /checkout
			}
			mode transaction
			describe "Pay {form.amount} to {form.merchant}"
		}
	}
	@shop path /shop
	header @shop Content-Type "text/html; charset=utf-8"
	respond @shop %s 200
	reverse_proxy %s
}
`, sharedRedis.URL(), prefix, hook, signingSecret, "`"+shopPage+"`", strings.TrimPrefix(up, "http://"))
}

func TestBrowser(t *testing.T) {
	t.Parallel()
	bin := os.Getenv("STEPUP_CHROMIUM")
	if bin == "" {
		bin = chromiumPath
	}
	if _, err := exec.LookPath(bin); err != nil {
		t.Fatalf("the browser tests need headless Chromium at %s (%v). Install Debian's package: "+
			"apt-get install -y --no-install-recommends chromium (./xcaddy.sh test does), or set STEPUP_CHROMIUM", bin, err)
	}
	axe := axeSource(t)
	shots := newShots(t)

	up := newUpstream(t)
	hook := newReceiver(t)
	c := startCaddy(t, browserConfig(hook.URL, up.URL, "e2e-browser:"))
	br := newChrome(t, bin, axe, shots)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("caddy's log:\n%s", c.logs)
		}
	})

	t.Run("session", func(t *testing.T) {
		t.Parallel()
		tb := br.tab(t, "alice", "+14155550100", "")
		target := c.url("/account/payment-methods?tab=cards")
		sent := hook.count()
		tb.navigate(target)
		id := tb.onChallenge()
		tb.expectText("#code-meta", "The code expires in 5 minutes.")
		tb.expectText("#code-meta", "5 attempts left.")
		tb.expectText("main", "We sent a 6-digit code to +1******0100.")
		tb.expectText(".what", "Payment methods")
		if active := evaluate[string](tb, `document.activeElement.id`); active != "code" {
			t.Errorf("focus at load is on %q, want the code field", active)
		}
		tb.noLeaks("+14155550100")
		tb.shoot("flow-challenge", false, phone, desktop)
		tb.axe("challenge")
		code := hook.waitCode(t, sent, id)
		tb.typeAndLand(code, target, "upstream GET /account/payment-methods?tab=cards policy=payment-methods user=alice")
		tb.clean("upstream answer")
	})

	// The page asks how the code's delivery goes and says it when the
	// gateway's receipt comes in, under the page's CSP.
	t.Run("delivery_receipt", func(t *testing.T) {
		tb := br.tab(t, "dave", "+14155550101", "")
		sent := hook.count()
		tb.navigate(c.url("/account/payment-methods"))
		id := tb.onChallenge()
		hook.waitCode(t, sent, id)
		m := hook.last(t)
		// Once the code is out the line goes (the page may have loaded
		// while it was being sent, and says so until its next poll).
		tb.waitJS(`document.getElementById('delivery').hidden`, 10*time.Second)
		key, _ := sender.ParseWebhookSecret(signingSecret)
		if got := gatewayReceipt(t, m.ReceiptURL, m.ID, "delivered", key); got != 200 {
			t.Fatalf("receipt = %d", got)
		}
		tb.waitJS(`document.getElementById('delivery').textContent === 'Your code was delivered.' && !document.getElementById('delivery').hidden`, 15*time.Second)
		tb.clean("delivery line")
	})

	t.Run("transaction", func(t *testing.T) {
		t.Parallel()
		tb := br.tab(t, "bob", "+14155550101", "")
		tb.navigate(c.url("/shop"))
		sent := hook.count()
		before, _ := up.posts()
		tb.do(chromedp.Click(chromedp.ID("pay")))
		id := tb.onChallenge()
		tb.expectText(".what", "You are approving")
		tb.expectText(".what", "Pay EUR 42.00 to Café Müller")
		tb.shoot("flow-transaction", false, phone, desktop)
		tb.axe("transaction challenge")
		code := hook.waitCode(t, sent, id)
		if m := hook.messageFor(id).Message; !strings.Contains(m, "Pay EUR 42.00 to Café Müller") {
			t.Errorf("the SMS does not say what it approves: %q", m)
		}
		tb.typeAndLand(code, c.url("/checkout"), "upstream POST /checkout policy=checkout user=bob")
		reqs, bodies := up.posts()
		if len(reqs) != len(before)+1 {
			t.Fatalf("upstream got %d POSTs, want exactly one more than %d", len(reqs), len(before))
		}
		if got := string(bodies[len(bodies)-1]); got != "amount=EUR+42.00&merchant=Caf%C3%A9+M%C3%BCller" {
			t.Errorf("replayed body = %q", got)
		}
		tb.clean("replayed answer")
	})

	t.Run("resend_and_wrong_code", func(t *testing.T) {
		t.Parallel()
		tb := br.tab(t, "carol", "+14155550199", "")
		target := c.url("/account/payment-methods")
		sent := hook.count()
		tb.navigate(target)
		id := tb.onChallenge()
		first := hook.waitCode(t, sent, id)
		// The cooldown counts down, then the page offers a new code
		// and says so in its live region.
		if evaluate[bool](tb, `!document.getElementById('resend-button')`) {
			tb.expectText("#resend-wait", "You can ask for a new code in")
			tb.shoot("flow-countdown", false, phone)
		} else {
			// On a loaded machine the code may arrive after the cooldown.
			t.Log("the cooldown had passed when the page was first checked")
		}
		tb.waitJS(`!!document.getElementById('resend-button')`, 10*time.Second)
		tb.waitJS(`document.getElementById('announce').textContent === 'You can now ask for a new code.'`, 3*time.Second)
		tb.shoot("flow-resend-ready", false, phone)
		tb.clean("countdown")
		sent = hook.count()
		tb.reloadBy(chromedp.Click(chromedp.ID("resend-button")))
		tb.expectText(".notice", "We sent you a new code.")
		second := hook.waitCode(t, sent, id)
		if second == first {
			t.Log("the new code happens to equal the old one")
		}
		tb.shoot("flow-new-code", false, phone, desktop)
		tb.axe("new code sent")

		// A code of the wrong shape is refused in the page: no request,
		// no attempt spent.
		tb.do(chromedp.Evaluate[chromedp.Void](`window.__stay = 1`), chromedp.SendKeys(chromedp.ID("code"), "12\r"))
		tb.waitJS(`!!document.getElementById('code-error')`, 3*time.Second)
		tb.expectText("#code-error", "Enter the 6-digit code from the message.")
		if !evaluate[bool](tb, `window.__stay === 1 && document.getElementById('code').getAttribute('aria-invalid') === 'true' &&
			!!document.querySelector('#code-error svg') && document.getElementById('code').getAttribute('aria-describedby').startsWith('code-error')`) {
			t.Error("a malformed code left the page, or its error is not shown like the server's, next to and describing the field")
		}
		tb.expectText("#code-meta", "5 attempts left.")
		tb.shoot("flow-format-error", false, phone)

		// A wrong code: the page again, the error next to the field,
		// read with it, and the focus back on it.
		tb.do(chromedp.SetValue(chromedp.ID("code"), ""))
		tb.reloadBy(chromedp.SendKeys(chromedp.ID("code"), otherCode(second)))
		tb.expectText("#code-error", "That code is not correct. Check the latest message and try again.")
		tb.expectText("#code-meta", "4 attempts left.")
		if !evaluate[bool](tb, `(() => { const c = document.getElementById('code');
			return document.activeElement === c && c.getAttribute('aria-invalid') === 'true' &&
				c.getAttribute('aria-describedby').split(' ').includes('code-error') })()`) {
			t.Error("after a wrong code the field is not focused, invalid and described by the error")
		}
		if title := evaluate[string](tb, `document.title`); !strings.HasPrefix(title, "Error: ") {
			t.Errorf("title = %q, want it to start with Error:", title)
		}
		tb.shoot("flow-wrong-code", false, phone, desktop)
		tb.axe("wrong code")
		tb.typeAndLand(second, target, "upstream GET /account/payment-methods policy=payment-methods user=carol")
	})

	t.Run("hindi", func(t *testing.T) {
		t.Parallel()
		tb := br.tab(t, "dev", "+14155550100", "hi-IN,hi;q=0.9,en;q=0.5")
		target := c.url("/account/payment-methods?lang=hi")
		sent := hook.count()
		tb.navigate(target)
		id := tb.onChallenge()
		if lang := evaluate[string](tb, `document.documentElement.lang`); lang != "hi" {
			t.Fatalf("page language %q, want hi", lang)
		}
		tb.expectText("h1", "पुष्टि करें कि यह आप ही हैं")
		tb.expectText("#code-meta", "5 प्रयास बाकी हैं।")
		tb.shoot("flow-hindi", false, phone)
		tb.axe("hindi challenge")
		code := hook.waitCode(t, sent, id)
		tb.typeAndLand(code, target, "upstream GET /account/payment-methods?lang=hi policy=payment-methods user=dev")
	})

	// Every page state in every language, and the checks that need a
	// page of their own, each in a tab of its own, in parallel.
	t.Run("every_state", func(t *testing.T) {
		t.Parallel()
		preview, err := stepuppage.PreviewHandler(stepuppage.Config{SupportURL: "https://help.example/otp"}, "Demo Shop")
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(preview)
		t.Cleanup(srv.Close)
		axeEvery := []string{"challenge", "challenge-wrong-code", "locked", "expired", "rate_limited"}
		for _, name := range stepuppage.Samples() {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				tb := br.tab(t, "", "", "")
				for _, lang := range stepuppage.Locales() {
					what := name + "/" + lang
					tb.navigate(srv.URL + "/" + name + "?lang=" + lang)
					tb.clean(what)
					if got := evaluate[string](tb, `document.documentElement.lang`); got != lang {
						t.Errorf("%s: lang %q", what, got)
					}
					if wantDir := map[bool]string{true: "rtl", false: "ltr"}[lang == "ar"]; evaluate[string](tb, `document.dir`) != wantDir {
						t.Errorf("%s: dir is not %s", what, wantDir)
					}
					if lang == "en" || slices.Contains(axeEvery, name) {
						tb.axe(what)
					}
					switch {
					case lang == "en":
						tb.shoot(name+"-en", true, phone, desktop)
					case name == "challenge" || name == "challenge-wrong-code":
						tb.shoot(name+"-"+lang, true, phone)
					}
				}
				tb.clean(name)
			})
		}
		// Dark mode: colors and contrast.
		t.Run("dark", func(t *testing.T) {
			t.Parallel()
			tb := br.tab(t, "", "", "")
			tb.media("prefers-color-scheme", "dark")
			for _, name := range []string{"challenge", "challenge-wrong-code", "challenge-send-failed", "locked"} {
				tb.navigate(srv.URL + "/" + name + "?lang=en")
				if bg := evaluate[string](tb, `getComputedStyle(document.body).backgroundColor`); bg != "rgb(13, 17, 23)" {
					t.Errorf("dark %s: background %s", name, bg)
				}
				tb.axe("dark " + name)
				tb.shoot(name+"-en-dark", true, phone)
			}
			tb.clean("dark")
		})
		// The code runs out while the page is open: the page says so
		// (also to screen readers) and offers to start again.
		t.Run("expiring", func(t *testing.T) {
			t.Parallel()
			tb := br.tab(t, "", "", "")
			tb.navigate(srv.URL + "/challenge-expiring")
			tb.expectText("#expiry", "The code expires in")
			tb.waitJS(`document.getElementById('expiry').textContent === 'This code has expired.'`, 10*time.Second)
			tb.waitJS(`document.getElementById('announce').textContent === 'This code has expired.'`, 2*time.Second)
			if !evaluate[bool](tb, `!document.getElementById('start-again').hidden`) {
				t.Error("no way to start again once the code expired")
			}
			tb.shoot("challenge-expiring-en", false, phone)
			tb.clean("expiring")
		})
		t.Run("motion_and_focus", func(t *testing.T) {
			t.Parallel()
			tb := br.tab(t, "", "", "")
			// Reduced motion: no transition.
			tb.media("prefers-reduced-motion", "reduce")
			tb.navigate(srv.URL + "/challenge")
			if d := evaluate[string](tb, `getComputedStyle(document.querySelector('.btn')).transitionDuration`); d != "0s" {
				t.Errorf("with reduced motion the button transitions for %s", d)
			}
			tb.media("prefers-reduced-motion", "no-preference")
			// Focus is visible: the field at load, the button after Tab.
			tb.navigate(srv.URL + "/challenge")
			// A loaded machine may evaluate before autofocus applies.
			tb.waitJS(`document.activeElement && document.activeElement.id === 'code'`, 5*time.Second)
			if o := evaluate[string](tb, `(() => { const s = getComputedStyle(document.activeElement); return document.activeElement.id + ' ' + s.outlineStyle + ' ' + s.outlineWidth })()`); o != "code solid 3px" {
				t.Errorf("focus at load: %q", o)
			}
			tb.do(chromedp.KeyEvent("\t"))
			if o := evaluate[string](tb, `(() => { const s = getComputedStyle(document.activeElement); return document.activeElement.tagName + ' ' + s.outlineStyle })()`); o != "BUTTON solid" {
				t.Errorf("focus after Tab: %q", o)
			}
			tb.clean("accessibility checks")
		})
		// Reflow: at 200% and 400% zoom (640 and 320 CSS px wide) no
		// page scrolls sideways, whatever the language.
		for _, width := range []int64{640, 320} {
			t.Run(fmt.Sprintf("reflow_%d", width), func(t *testing.T) {
				t.Parallel()
				tb := br.tab(t, "", "", "")
				tb.do(chromedp.EmulateViewport(width, 600))
				for _, name := range []string{"challenge-transaction", "challenge-wrong-code", "challenge-send-failed", "phone_unverified"} {
					for _, lang := range []string{"en", "de", "hi", "ar"} {
						tb.navigate(srv.URL + "/" + name + "?lang=" + lang)
						if w := evaluate[[]int](tb, `[document.documentElement.scrollWidth, window.innerWidth]`); len(w) != 2 || w[0] > w[1] {
							t.Errorf("%s/%s at %d px: scroll width %v", name, lang, width, w)
						}
					}
				}
				tb.clean("reflow checks")
			})
		}
		// Branding: logo, brand color and title.
		t.Run("branded", func(t *testing.T) {
			t.Parallel()
			branded, err := stepuppage.PreviewHandler(stepuppage.Config{Title: "Café Müller", Logo: demoLogo, BrandColor: "#7a1fa2",
				SupportURL: "mailto:help@cafe-mueller.example"}, "")
			if err != nil {
				t.Fatal(err)
			}
			bsrv := httptest.NewServer(branded)
			t.Cleanup(bsrv.Close)
			tb := br.tab(t, "", "", "")
			for _, name := range []string{"challenge-transaction", "rate_limited"} {
				tb.navigate(bsrv.URL + "/" + name)
				tb.clean("branded " + name)
				if !evaluate[bool](tb, `document.querySelector('img.logo').complete && document.querySelector('img.logo').naturalWidth > 0`) {
					t.Errorf("branded %s: logo not shown", name)
				}
				tb.axe("branded " + name)
				tb.shoot(name+"-branded-en", true, phone, desktop)
			}
		})
	})
}

// demoLogo is a small SVG logo for the branding screenshot.
const demoLogo = "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIHZpZXdCb3g9IjAgMCAxNjAgNDAiIHdpZHRoPSIxNjAiIGhlaWdodD0iNDAiPjxjaXJjbGUgY3g9IjIwIiBjeT0iMjAiIHI9IjE2IiBmaWxsPSIjN2ExZmEyIi8+PHBhdGggZD0iTTEyIDI0aDE2bC0yIDZoLTEyeiIgZmlsbD0iI2ZmZiIvPjxyZWN0IHg9IjQ2IiB5PSIxMiIgd2lkdGg9IjEwMCIgaGVpZ2h0PSI2IiByeD0iMyIgZmlsbD0iIzdhMWZhMiIvPjxyZWN0IHg9IjQ2IiB5PSIyMiIgd2lkdGg9IjcwIiBoZWlnaHQ9IjYiIHJ4PSIzIiBmaWxsPSIjYjM4OGM4Ii8+PC9zdmc+"

func otherCode(code string) string {
	if code == "000000" {
		return "111111"
	}
	return "000000"
}

// waitCode waits for a code for challenge id sent after the receiver
// held after messages (other subtests' codes may come in between).
func (rc *receiver) waitCode(t *testing.T, after int, id string) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		rc.mu.Lock()
		for _, m := range rc.msgs[min(after, len(rc.msgs)):] {
			if m.Challenge == id {
				rc.mu.Unlock()
				return m.Code
			}
		}
		rc.mu.Unlock()
	}
	t.Fatalf("no code for challenge %s reached the webhook receiver", id)
	return ""
}

// messageFor returns the last message the receiver got for challenge id.
func (rc *receiver) messageFor(id string) webhookMsg {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i := len(rc.msgs) - 1; i >= 0; i-- {
		if rc.msgs[i].Challenge == id {
			return rc.msgs[i]
		}
	}
	return webhookMsg{}
}

// axeSource returns axe-core's script, installing it from npm into
// .cache/axe when missing. It fails the test, never skips it.
// axeInstall serializes the npm install of axe-core: the browser tests
// run in parallel, and two npm installs into one folder at once leave
// it half written for the other's check (a fresh clone has none yet).
var axeInstall sync.Mutex

func axeSource(t *testing.T) string {
	t.Helper()
	axeInstall.Lock()
	defer axeInstall.Unlock()
	dir := filepath.Join(repoRoot, ".cache", "axe")
	pkg := filepath.Join(dir, "node_modules", "axe-core")
	installed := func() bool {
		b, err := os.ReadFile(filepath.Join(pkg, "package.json"))
		var meta struct{ Version string }
		return err == nil && json.Unmarshal(b, &meta) == nil && meta.Version == axeVersion
	}
	if !installed() {
		npm, err := exec.LookPath("npm")
		if err != nil {
			t.Fatalf("the accessibility check needs axe-core %s from npm, and npm is not installed (apt-get install -y npm): %v", axeVersion, err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(npm, "install", "--prefix", dir, "--no-audit", "--no-fund", "--ignore-scripts", "axe-core@"+axeVersion)
		out, err := cmd.CombinedOutput()
		if err != nil || !installed() {
			t.Fatalf("installing axe-core %s with npm into %s failed (%v):\n%s", axeVersion, dir, err, out)
		}
	}
	src, err := os.ReadFile(filepath.Join(pkg, "axe.min.js"))
	if err != nil {
		t.Fatalf("reading axe-core: %v", err)
	}
	return string(src)
}

// shots saves screenshots: all of them under one folder, the reference
// ones also to docs/screenshots when STEPUP_UPDATE_SCREENSHOTS=1.
type shots struct {
	dir, ref string
}

func newShots(t *testing.T) *shots {
	s := &shots{dir: os.Getenv("STEPUP_SCREENSHOT_DIR")}
	if s.dir == "" {
		s.dir = filepath.Join(t.TempDir(), "screenshots")
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("STEPUP_UPDATE_SCREENSHOTS") == "1" {
		s.ref = filepath.Join(repoRoot, "docs", "screenshots")
		if err := os.MkdirAll(s.ref, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots in %s", s.dir)
	return s
}

// referenceShots are the screenshots committed under docs/screenshots.
var referenceShots = map[string]bool{
	"challenge-en-phone": true, "challenge-en-desktop": true,
	"challenge-transaction-en-phone": true, "challenge-transaction-en-desktop": true,
	"challenge-wrong-code-en-phone": true, "challenge-wrong-code-en-desktop": true,
	"challenge-new-code-en-phone": true, "challenge-send-failed-en-phone": true, "challenge-channels-en-phone": true,
	"expired-en-phone": true, "locked-en-phone": true, "rate_limited-en-phone": true,
	"unavailable-en-phone": true, "already_used-en-phone": true,
	"expired-en-desktop": true, "locked-en-desktop": true, "unavailable-en-desktop": true,
	"challenge-hi-phone": true, "challenge-ar-phone": true, "challenge-es-phone": true,
	"challenge-de-phone": true, "challenge-pt-BR-phone": true,
	"challenge-en-dark-phone": true, "challenge-wrong-code-en-dark-phone": true,
	"challenge-transaction-branded-en-phone": true, "challenge-transaction-branded-en-desktop": true,
	"challenge-sending-en-phone": true, "challenge-delivered-en-phone": true, "challenge-failed-over-en-phone": true,
	"challenge-passkey-en-phone": true, "challenge-passkey-en-desktop": true, "challenge-passkey-transaction-en-phone": true,
	"challenge-passkey-code-en-phone": true, "challenge-passkey-failed-en-phone": true,
	"passkey_offer-en-phone": true, "passkeys-en-phone": true,
}

// chrome is one headless Chromium for the whole test.
type chrome struct {
	ctx   context.Context
	axe   string
	shots *shots
	out   *syncBuffer
}

func newChrome(t *testing.T, bin, axe string, s *shots) *chrome {
	out := &syncBuffer{}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter,AutofillServerCommunication"),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("font-render-hinting", "none"),
		chromedp.Flag("lang", "en-US"),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.CombinedOutput(out),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v\n%s", bin, err, out)
	}
	return &chrome{ctx: ctx, axe: axe, shots: s, out: out}
}

// tab is a browser tab in its own browser context (its own cookies) that
// records what its pages log and request.
type tab struct {
	t     *testing.T
	br    *chrome
	ctx   context.Context
	mu    sync.Mutex
	logs  []chromedp.ConsoleMessage
	reqs  []*network.EventRequestWillBeSent
	pages []string // documents loaded
}

// tab opens a tab whose requests carry the identity headers (empty: none)
// and Accept-Language (empty: the browser's).
func (br *chrome) tab(t *testing.T, user, phone, lang string) *tab {
	ctx, cancel := chromedp.NewContext(br.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	tb := &tab{t: t, br: br, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	console := chromedp.Console(ctx)
	requests := chromedp.Events(ctx, network.RequestWillBeSent)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.logs = append(tb.logs, m)
			tb.mu.Unlock()
		}
	}()
	go func() {
		for ev, err := range requests {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.reqs = append(tb.reqs, &ev)
			tb.mu.Unlock()
		}
	}()
	headers := network.Headers{}
	if user != "" {
		headers["X-Remote-User"] = user
		headers["X-Remote-Phone"] = phone
	}
	if lang != "" {
		headers["Accept-Language"] = lang
	}
	tb.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: headers}); err != nil {
			return err
		}
		// Record CSP violations as the page sees them, in every document.
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
			Source: `window.__csp = []; document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));`,
		})
		return err
	}))
	return tb
}

// do runs actions with a timeout; a failure ends the test.
func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("browser: %v\n%s", err, tb.br.out)
	}
}

func evaluate[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// navigate loads u and waits for its load event.
func (tb *tab) navigate(u string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(u))
	tb.loaded()
}

// reloadBy runs an action that makes the page load another document (a
// form submission) and waits until it has.
func (tb *tab) reloadBy(a chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	tb.do(chromedp.Evaluate[chromedp.Void](`window.__old = true`), a)
	tb.waitJS(`window.__old === undefined && document.readyState === 'complete'`, 15*time.Second)
	tb.loaded()
}

// loaded notes the document now shown.
func (tb *tab) loaded() {
	tb.t.Helper()
	tb.waitJS(`document.readyState === 'complete'`, 15*time.Second)
	loc := evaluate[string](tb, `location.href`)
	tb.mu.Lock()
	tb.pages = append(tb.pages, loc)
	tb.mu.Unlock()
}

// waitJS polls expr until it is true; errors while a document loads are
// retried.
func (tb *tab) waitJS(expr string, timeout time.Duration) {
	tb.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(tb.ctx, 2*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			loc, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[string](`location.href + '\n' + document.body.innerText`))
			tb.t.Fatalf("waiting for %s: %v\n%s", expr, err, loc)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var challengeRE = regexp.MustCompile(`/\.stepup/challenge/([A-Za-z0-9_-]{22})$`)

// onChallenge checks that the tab shows a challenge page and returns its
// challenge id.
func (tb *tab) onChallenge() string {
	tb.t.Helper()
	tb.waitJS(`!!document.getElementById('code')`, 15*time.Second)
	loc := evaluate[string](tb, `location.pathname`)
	m := challengeRE.FindStringSubmatch(loc)
	if m == nil {
		tb.t.Fatalf("not on a challenge page: %s", loc)
	}
	tb.clean("challenge page")
	return m[1]
}

// expectText checks that the first element matching sel contains want.
func (tb *tab) expectText(sel, want string) {
	tb.t.Helper()
	got := evaluate[string](tb, fmt.Sprintf(`(document.querySelector(%q) || {innerText: ''}).innerText`, sel))
	if !strings.Contains(strings.Join(strings.Fields(got), " "), want) {
		tb.t.Errorf("%s says %q, want %q", sel, got, want)
	}
}

// noLeaks checks that the full number is nowhere in the document.
func (tb *tab) noLeaks(number string) {
	tb.t.Helper()
	html := evaluate[string](tb, `document.documentElement.outerHTML`)
	if strings.Contains(html, strings.TrimPrefix(number, "+")) {
		tb.t.Errorf("the page carries the full number %s", number)
	}
}

// typeAndLand types the code (the page submits itself once every digit is
// in) and waits for the upstream's answer at want.
func (tb *tab) typeAndLand(code, want, body string) {
	tb.t.Helper()
	tb.do(chromedp.SendKeys(chromedp.ID("code"), code))
	tb.waitJS(fmt.Sprintf(`location.href === %q && document.readyState === 'complete'`, want), 15*time.Second)
	tb.loaded()
	if got := evaluate[string](tb, `document.body.innerText`); !strings.Contains(got, body) {
		tb.t.Fatalf("landed on %s with %q, want %q", want, got, body)
	}
}

// statusLine is how Chromium logs a document answered with an error
// status; the engine's pages use such statuses on purpose.
var statusLine = regexp.MustCompile(`^Failed to load resource: the server responded with a status of [45]\d\d `)

// clean checks what happened since the last check: no console error or
// warning, no CSP violation, no request but the documents themselves
// (to 127.0.0.1), and nothing for the engine's pages but themselves.
func (tb *tab) clean(what string) {
	tb.t.Helper()
	time.Sleep(100 * time.Millisecond) // let the last events arrive
	csp := evaluate[[]string](tb, `window.__csp || []`)
	for _, v := range csp {
		tb.t.Errorf("%s: CSP violation: %s", what, v)
	}
	tb.mu.Lock()
	logs, reqs, pages := tb.logs, tb.reqs, tb.pages
	tb.logs, tb.reqs = nil, nil
	tb.mu.Unlock()
	for _, m := range logs {
		switch {
		case m.Type == chromedp.ConsoleError && m.Source == "network" && statusLine.MatchString(m.Text) && slices.Contains(pages, m.URL):
			// the page's own status, by design
		case m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning || m.IsException():
			tb.t.Errorf("%s: console %s: %s (%s)", what, m.Type, m.Text, m.URL)
		}
	}
	for _, r := range reqs {
		u, err := url.Parse(r.Request.URL)
		switch {
		case err != nil:
			tb.t.Errorf("%s: request to %q", what, r.Request.URL)
		case u.Scheme == "data":
		case u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost":
			tb.t.Errorf("%s: request to another host: %s", what, r.Request.URL)
		case r.Type == network.ResourceTypeFetch && strings.HasSuffix(u.Path, "/status") && u.Query().Get("challenge") != "":
			// the page's delivery poll, by design (same origin, connect-src 'self')
		case r.Type != network.ResourceTypeDocument && u.Path != "/favicon.ico":
			tb.t.Errorf("%s: the page requested %s (%s)", what, r.Request.URL, r.Type)
		case r.Type != network.ResourceTypeDocument && (strings.Contains(r.DocumentURL, "/.stepup/") || strings.Contains(r.DocumentURL, "?lang=")):
			tb.t.Errorf("%s: an engine page requested %s", what, r.Request.URL)
		}
	}
}

type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// axe runs axe-core on the page (WCAG 2.x A and AA, and best practices)
// and fails on any serious or critical violation; others are logged.
func (tb *tab) axe(what string) {
	tb.t.Helper()
	if !evaluate[bool](tb, `typeof axe !== 'undefined'`) {
		tb.do(chromedp.Evaluate[chromedp.Void](tb.br.axe))
	}
	ctx, cancel := context.WithTimeout(tb.ctx, 60*time.Second)
	defer cancel()
	vs, err := chromedp.Run(ctx, chromedp.Evaluate[[]axeViolation](`axe.run(document, {
		runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']},
		resultTypes: ['violations']
	}).then(r => r.violations.map(v => ({id: v.id, impact: v.impact || '', help: v.help,
		nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))})))`, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("%s: running axe-core: %v", what, err)
	}
	for _, v := range vs {
		msg := fmt.Sprintf("%s: axe %s (%s): %s at %s", what, v.ID, v.Impact, v.Help, strings.Join(v.Nodes, ", "))
		if v.Impact == "serious" || v.Impact == "critical" {
			tb.t.Error(msg)
		} else {
			tb.t.Log(msg)
		}
	}
	tb.clean(what + " (axe)")
}

// media emulates a CSS media feature.
func (tb *tab) media(name, value string) {
	tb.t.Helper()
	tb.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: name, Value: value}},
		})
		return err
	}))
}

// shoot saves a full-page screenshot per viewport; a reference one also
// goes to docs/screenshots when asked to.
func (tb *tab) shoot(name string, reference bool, vps ...viewport) {
	tb.t.Helper()
	for _, vp := range vps {
		opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(vp.scale)}
		if vp.mobile {
			opts = append(opts, chromedp.EmulateMobile)
		}
		tb.do(chromedp.EmulateViewport(vp.width, vp.height, opts...),
			chromedp.Evaluate[chromedp.Void](`new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))`, chromedp.EvalAwaitPromise))
		ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			tb.t.Fatalf("screenshot %s: %v", name, err)
		}
		file := name + "-" + vp.name
		if err := os.WriteFile(filepath.Join(tb.br.shots.dir, file+".png"), png, 0o644); err != nil {
			tb.t.Fatal(err)
		}
		if reference && tb.br.shots.ref != "" && referenceShots[file] {
			if err := os.WriteFile(filepath.Join(tb.br.shots.ref, file+".png"), png, 0o644); err != nil {
				tb.t.Fatal(err)
			}
		}
	}
	// Back to the default viewport for what follows.
	tb.do(chromedp.EmulateViewport(desktop.width, desktop.height))
}
