package caddymodule

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup/page"
)

func TestTwilioVoiceCaddyfile(t *testing.T) {
	runProviderCases(t, func() caddyfile.Unmarshaler { return new(TwilioVoiceSender) }, []providerCase{
		{"auth token", `twilio_voice {
			account_sid {env.TWILIO_SID}
			auth_token {env.TWILIO_TOKEN}
			from +15557122661
		}`, `{"account_sid":"{env.TWILIO_SID}","auth_token":"{env.TWILIO_TOKEN}","from":"+15557122661"}`, ""},
		{"every option", `twilio_voice {
			account_sid AC123
			api_key SK123
			api_secret {env.TWILIO_SECRET}
			from +15557122661
			voice en en-IN Polly.Raveena
			voice hi hi-IN
			repeat 3
			endpoint http://127.0.0.1:9000
			name call-in
			countries in
			timeout 8s
		}`, `{"endpoint":"http://127.0.0.1:9000","account_sid":"AC123","api_key":"SK123","api_secret":"{env.TWILIO_SECRET}","from":"+15557122661",` +
			`"voices":[{"locale":"en","language":"en-IN","voice":"Polly.Raveena"},{"locale":"hi","language":"hi-IN"}],"repeat":3,"name":"call-in","countries":["IN"],"timeout":8000000000}`, ""},
		{"unknown option", "twilio_voice {\n account_sid AC1\n auth_token t\n from +1\n twiml x\n}", "", "unrecognized twilio_voice option 'twiml'"},
		{"no caller", "twilio_voice {\n account_sid AC1\n auth_token t\n}", "", "needs from"},
		{"no credentials", "twilio_voice {\n account_sid AC1\n from +1\n}", "", "credentials missing"},
		{"voice without language", "twilio_voice {\n account_sid AC1\n auth_token t\n from +1\n voice en\n}", "", "wrong argument count"},
		{"voice with four values", "twilio_voice {\n account_sid AC1\n auth_token t\n from +1\n voice en en-GB Polly.Amy x\n}", "", "wrong argument count"},
		{"voice of an unknown locale", "twilio_voice {\n account_sid AC1\n auth_token t\n from +1\n voice fr fr-FR\n}", "", `locale "fr"`},
		{"voice twice", "twilio_voice {\n account_sid AC1\n auth_token t\n from +1\n voice en en-GB\n voice en en-US\n}", "", "two voices"},
		{"voices as JSON", "twilio_voice {\n account_sid AC1\n auth_token t\n from +1\n voices x\n}", "", "cannot be set in a Caddyfile"},
		{"repeat zero", "twilio_voice {\n account_sid AC1\n auth_token t\n from +1\n repeat 0\n}", "", "above 0"},
		{"repeat too high", "twilio_voice {\n account_sid AC1\n auth_token t\n from +1\n repeat 4\n}", "", "out of range"},
	})
}

func TestTwilioRCSCaddyfile(t *testing.T) {
	runProviderCases(t, func() caddyfile.Unmarshaler { return new(TwilioRCSSender) }, []providerCase{
		{"service", `twilio_rcs {
			account_sid AC123
			auth_token {env.TWILIO_TOKEN}
			messaging_service_sid {env.TWILIO_RCS_SERVICE}
		}`, `{"account_sid":"AC123","auth_token":"{env.TWILIO_TOKEN}","messaging_service_sid":"{env.TWILIO_RCS_SERVICE}"}`, ""},
		{"every option", `twilio_rcs {
			account_sid AC123
			api_key SK123
			api_secret s
			messaging_service_sid MG123
			fallback sms
			fallback_from +15557122661
			endpoint http://127.0.0.1:9000
			name rcs-us
			countries US
			timeout 4s
		}`, `{"endpoint":"http://127.0.0.1:9000","account_sid":"AC123","api_key":"SK123","api_secret":"s","messaging_service_sid":"MG123","fallback":"sms","fallback_from":"+15557122661","name":"rcs-us","countries":["US"],"timeout":4000000000}`, ""},
		{"RCS only", "twilio_rcs {\n account_sid AC1\n auth_token t\n messaging_service_sid MG1\n fallback none\n}",
			`{"account_sid":"AC1","auth_token":"t","messaging_service_sid":"MG1","fallback":"none"}`, ""},
		{"from refused", "twilio_rcs {\n account_sid AC1\n auth_token t\n messaging_service_sid MG1\n from +1\n}", "", "unrecognized twilio_rcs option 'from'"},
		{"no service", "twilio_rcs {\n account_sid AC1\n auth_token t\n}", "", "needs messaging_service_sid"},
		{"unknown fallback", "twilio_rcs {\n account_sid AC1\n auth_token t\n messaging_service_sid MG1\n fallback mms\n}", "", "want sms or none"},
		{"fallback_from without fallback", "twilio_rcs {\n account_sid AC1\n auth_token t\n messaging_service_sid MG1\n fallback none\n fallback_from +1\n}", "", "fallback_from"},
	})
}

func TestVonageVoiceCaddyfile(t *testing.T) {
	runProviderCases(t, func() caddyfile.Unmarshaler { return new(VonageVoiceSender) }, []providerCase{
		{"key from a file placeholder", `vonage_voice {
			application_id {env.VONAGE_APP_ID}
			private_key {file./etc/caddy/vonage.key}
			from 447700900001
		}`, `{"application_id":"{env.VONAGE_APP_ID}","private_key":"{file./etc/caddy/vonage.key}","from":"447700900001"}`, ""},
		{"every option", `vonage_voice {
			application_id aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab
			private_key_file /etc/caddy/vonage.key
			from +447700900001
			voice en en-GB 3
			voice ar ar
			repeat 1
			endpoint https://api-eu.vonage.com
			name vonage-call
			countries GB IE
			timeout 6s
		}`, `{"endpoint":"https://api-eu.vonage.com","application_id":"aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab","private_key_file":"/etc/caddy/vonage.key","from":"+447700900001",` +
			`"voices":[{"locale":"en","language":"en-GB","style":3},{"locale":"ar","language":"ar"}],"repeat":1,"name":"vonage-call","countries":["GB","IE"],"timeout":6000000000}`, ""},
		{"unknown option", "vonage_voice {\n application_id a\n private_key k\n from 1\n api_key k\n}", "", "unrecognized vonage_voice option 'api_key'"},
		{"no application", "vonage_voice {\n private_key k\n from 1\n}", "", "needs application_id"},
		{"no key", "vonage_voice {\n application_id a\n from 1\n}", "", "needs the application's private key"},
		{"two keys", "vonage_voice {\n application_id a\n private_key k\n private_key_file f\n from 1\n}", "", "not both"},
		{"no caller", "vonage_voice {\n application_id a\n private_key k\n}", "", "needs from"},
		{"style not a number", "vonage_voice {\n application_id a\n private_key k\n from 1\n voice en en-GB loud\n}", "", `style "loud"`},
		{"voice of an unknown locale", "vonage_voice {\n application_id a\n private_key k\n from 1\n voice ja ja-JP\n}", "", `locale "ja"`},
	})
}

func TestVonageRCSCaddyfile(t *testing.T) {
	runProviderCases(t, func() caddyfile.Unmarshaler { return new(VonageRCSSender) }, []providerCase{
		{"application", `vonage_rcs {
			application_id {env.VONAGE_APP_ID}
			private_key {env.VONAGE_PRIVATE_KEY}
			from ShopAgent
		}`, `{"application_id":"{env.VONAGE_APP_ID}","private_key":"{env.VONAGE_PRIVATE_KEY}","from":"ShopAgent"}`, ""},
		{"key and secret", `vonage_rcs {
			api_key {env.VONAGE_KEY}
			api_secret {env.VONAGE_SECRET}
			from ShopAgent
			name rcs-eu
			countries DE FR
			timeout 3s
		}`, `{"api_key":"{env.VONAGE_KEY}","api_secret":"{env.VONAGE_SECRET}","from":"ShopAgent","name":"rcs-eu","countries":["DE","FR"],"timeout":3000000000}`, ""},
		{"unknown option", "vonage_rcs {\n api_key k\n api_secret s\n from A\n channel sms\n}", "", "unrecognized vonage_rcs option 'channel'"},
		{"no credentials", "vonage_rcs {\n from A\n}", "", "credentials missing"},
		{"both credentials", "vonage_rcs {\n api_key k\n api_secret s\n application_id a\n private_key k\n from A\n}", "", "not both"},
		{"no agent", "vonage_rcs {\n api_key k\n api_secret s\n}", "", "needs from"},
	})
}

// The new senders inside the stepup directive come out as guest modules
// with their inline key.
func TestVoiceRCSInHandlerCaddyfile(t *testing.T) {
	h, err := parse(t, `stepup {
		identity header {
			user X-Remote-User
			phone X-Remote-Phone
		}
		sender twilio {
			account_sid AC1
			auth_token {env.TWILIO_TOKEN}
			from +15557122661
		}
		sender twilio_rcs {
			account_sid AC1
			auth_token {env.TWILIO_TOKEN}
			messaging_service_sid MG1
		}
		sender vonage_voice {
			application_id {env.VONAGE_APP_ID}
			private_key {file./etc/caddy/vonage.key}
			from 447700900001
			voice en en-GB
		}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, raw := range h.SendersRaw {
		got = append(got, string(raw))
	}
	want := []string{
		`{"account_sid":"AC1","auth_token":"{env.TWILIO_TOKEN}","from":"+15557122661","sender":"twilio"}`,
		`{"account_sid":"AC1","auth_token":"{env.TWILIO_TOKEN}","messaging_service_sid":"MG1","sender":"twilio_rcs"}`,
		`{"application_id":"{env.VONAGE_APP_ID}","from":"447700900001","private_key":"{file./etc/caddy/vonage.key}","sender":"vonage_voice","voices":[{"language":"en-GB","locale":"en"}]}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("senders\n got %s\nwant %s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// testKeyPEM is an RSA private key in PEM, made once.
var testKeyPEM = sync.OnceValue(func() string {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
})

const testAppID = "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab"

func TestVoiceRCSProvision(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "vonage.key")
	if err := os.WriteFile(keyFile, []byte(testKeyPEM()), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STEPUP_TEST_TOKEN", "tok_from_env")
	t.Setenv("STEPUP_TEST_EMPTY", "")
	t.Setenv("STEPUP_TEST_APP", testAppID)
	t.Setenv("STEPUP_TEST_KEY", testKeyPEM())
	t.Setenv("STEPUP_TEST_KEY_ESCAPED", strings.ReplaceAll(strings.TrimSpace(testKeyPEM()), "\n", `\n`))
	t.Setenv("STEPUP_TEST_BAD_KEY", "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleQ==\n-----END PRIVATE KEY-----")
	tests := []struct {
		name        string
		raw         string
		wantName    string
		wantChannel sender.Channel
		wantErr     string
	}{
		{"twilio_voice", `{"sender":"twilio_voice","account_sid":"AC1","auth_token":"{env.STEPUP_TEST_TOKEN}","from":"+15557122661","voices":[{"locale":"hi","language":"hi-IN","voice":"Polly.Aditi"}]}`, "twilio_voice", sender.Voice, ""},
		{"twilio_voice unset token", `{"sender":"twilio_voice","account_sid":"AC1","auth_token":"{env.STEPUP_TEST_EMPTY}","from":"+15557122661"}`, "", "", "credentials missing"},
		{"twilio_voice unset caller", `{"sender":"twilio_voice","account_sid":"AC1","auth_token":"t","from":"{env.STEPUP_TEST_EMPTY}"}`, "", "", "from"},
		{"twilio_voice bad voice in JSON", `{"sender":"twilio_voice","account_sid":"AC1","auth_token":"t","from":"+15557122661","voices":[{"locale":"xx","language":"en"}]}`, "", "", `locale "xx"`},
		{"twilio_rcs", `{"sender":"twilio_rcs","account_sid":"AC1","auth_token":"{env.STEPUP_TEST_TOKEN}","messaging_service_sid":"MG1","name":"rcs"}`, "rcs", sender.RCS, ""},
		{"twilio_rcs bad fallback in JSON", `{"sender":"twilio_rcs","account_sid":"AC1","auth_token":"t","messaging_service_sid":"MG1","fallback":"yes"}`, "", "", "want sms or none"},
		{"vonage_voice key in a variable", `{"sender":"vonage_voice","application_id":"{env.STEPUP_TEST_APP}","private_key":"{env.STEPUP_TEST_KEY}","from":"447700900001"}`, "vonage_voice", sender.Voice, ""},
		{"vonage_voice key with escaped line breaks", `{"sender":"vonage_voice","application_id":"` + testAppID + `","private_key":"{env.STEPUP_TEST_KEY_ESCAPED}","from":"447700900001"}`, "vonage_voice", sender.Voice, ""},
		{"vonage_voice key from a file placeholder", `{"sender":"vonage_voice","application_id":"` + testAppID + `","private_key":"{file.` + keyFile + `}","from":"447700900001"}`, "vonage_voice", sender.Voice, ""},
		{"vonage_voice key file", `{"sender":"vonage_voice","application_id":"` + testAppID + `","private_key_file":"` + keyFile + `","from":"447700900001"}`, "vonage_voice", sender.Voice, ""},
		{"vonage_voice unset key", `{"sender":"vonage_voice","application_id":"` + testAppID + `","private_key":"{env.STEPUP_TEST_EMPTY}","from":"447700900001"}`, "", "", "private_key"},
		{"vonage_voice bad key", `{"sender":"vonage_voice","application_id":"` + testAppID + `","private_key":"{env.STEPUP_TEST_BAD_KEY}","from":"447700900001"}`, "", "", "private key"},
		{"vonage_voice missing key file", `{"sender":"vonage_voice","application_id":"` + testAppID + `","private_key_file":"` + keyFile + `.gone","from":"447700900001"}`, "", "", "reading private_key_file"},
		{"vonage_rcs application", `{"sender":"vonage_rcs","application_id":"{env.STEPUP_TEST_APP}","private_key_file":"` + keyFile + `","from":"ShopAgent"}`, "vonage_rcs", sender.RCS, ""},
		{"vonage_rcs key and secret", `{"sender":"vonage_rcs","api_key":"k","api_secret":"{env.STEPUP_TEST_TOKEN}","from":"ShopAgent"}`, "vonage_rcs", sender.RCS, ""},
		{"vonage_rcs unset application", `{"sender":"vonage_rcs","application_id":"{env.STEPUP_TEST_EMPTY}","private_key_file":"` + keyFile + `","from":"ShopAgent"}`, "", "", "application_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := provisionJSON(t, tt.raw)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				for _, secret := range []string{"tok_from_env", "c2VjcmV0", "MII"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error %q contains a secret", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("provision: %v", err)
			}
			if s.Name() != tt.wantName || s.(sender.Channeler).Channel() != tt.wantChannel {
				t.Errorf("Name = %q, channel %q; want %q, %q", s.Name(), s.(sender.Channeler).Channel(), tt.wantName, tt.wantChannel)
			}
		})
	}
}

// A chain with SMS, voice and RCS senders offers the three channels, and
// a code asked for by voice goes to the voice sender only, in the
// customer's language.
func TestVoiceRCSThroughChain(t *testing.T) {
	t.Setenv("STEPUP_TEST_TOKEN", "tok_from_env")
	var mu sync.Mutex
	paths := map[string]url.Values{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(b))
		mu.Lock()
		paths[r.URL.Path] = form
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"sid":"CA1","status":"queued"}`))
	}))
	defer srv.Close()
	var senders []sender.Sender
	for _, raw := range []string{
		`{"sender":"twilio","endpoint":"` + srv.URL + `","account_sid":"AC1","auth_token":"{env.STEPUP_TEST_TOKEN}","from":"+15557122661"}`,
		`{"sender":"twilio_voice","endpoint":"` + srv.URL + `","account_sid":"AC1","auth_token":"{env.STEPUP_TEST_TOKEN}","from":"+15557122661"}`,
		`{"sender":"twilio_rcs","endpoint":"` + srv.URL + `","account_sid":"AC1","auth_token":"{env.STEPUP_TEST_TOKEN}","messaging_service_sid":"MG1"}`,
	} {
		s, err := provisionJSON(t, raw)
		if err != nil {
			t.Fatal(err)
		}
		senders = append(senders, s)
	}
	chain := sender.NewChain(senders, sender.ChainOptions{})
	msg := &sender.Message{To: "+14155550100", Code: "493817", Text: "493817 is your code", TTL: 5 * time.Minute, Locale: "de"}
	if got := chain.Channels(msg); !slices.Equal(got, []sender.Channel{sender.SMS, sender.Voice, sender.RCS}) {
		t.Errorf("channels %v, want sms, voice, rcs", got)
	}
	msg.Channel, msg.ChannelOnly = sender.Voice, true
	if by, err := chain.Send(t.Context(), msg); err != nil || by != "twilio_voice" {
		t.Fatalf("Send by voice = %q, %v", by, err)
	}
	call := paths["/2010-04-01/Accounts/AC1/Calls.json"]
	if !strings.Contains(call.Get("Twiml"), `<Say language="de-DE" voice="Google.de-DE-Standard-A">Ihr Code lautet 4, 9, 3, 8, 1, 7.</Say>`) {
		t.Errorf("call %v: want the code read in German", call)
	}
	if _, ok := paths["/2010-04-01/Accounts/AC1/Messages.json"]; ok {
		t.Errorf("a message was sent for a code asked for by voice")
	}
	msg.Channel = sender.RCS
	if by, err := chain.Send(t.Context(), msg); err != nil || by != "twilio_rcs" {
		t.Fatalf("Send by RCS = %q, %v", by, err)
	}
	if got := paths["/2010-04-01/Accounts/AC1/Messages.json"].Get("MessagingServiceSid"); got != "MG1" {
		t.Errorf("RCS message through service %q", got)
	}
}

// Every locale the code page ships has words for a call, and a label
// for every channel a sender can declare.
func TestChannelsInEveryLocale(t *testing.T) {
	en := page.FindLocale("en")
	for _, tag := range page.Locales() {
		if got := sender.VoiceLocale(tag); got != tag {
			t.Errorf("page locale %q: a call speaks %q; add its sentence to sender/spoken.go", tag, got)
		}
		l := page.FindLocale(tag)
		for _, ch := range []sender.Channel{sender.SMS, sender.WhatsApp, sender.Voice, sender.Email, sender.RCS} {
			key := "page.use_" + string(ch)
			got := l.Text(key)
			if got == key || (tag != "en" && got == en.Text(key)) {
				t.Errorf("locale %q has no %s (%q)", tag, key, got)
			}
		}
	}
}

func FuzzVoiceRCSCaddyfile(f *testing.F) {
	modules := []func() caddyfile.Unmarshaler{
		func() caddyfile.Unmarshaler { return new(TwilioVoiceSender) },
		func() caddyfile.Unmarshaler { return new(TwilioRCSSender) },
		func() caddyfile.Unmarshaler { return new(VonageVoiceSender) },
		func() caddyfile.Unmarshaler { return new(VonageRCSSender) },
	}
	for _, seed := range []string{
		"twilio_voice {\n account_sid AC1\n auth_token t\n from +1\n voice en en-GB Polly.Amy\n repeat 2\n}",
		"twilio_rcs {\n account_sid AC1\n auth_token t\n messaging_service_sid MG1\n fallback none\n}",
		"vonage_voice {\n application_id a\n private_key k\n from 1\n voice hi hi-IN 2\n}",
		"vonage_rcs {\n api_key k\n api_secret s\n from A\n countries de\n}",
		"x {\n voice\n}",
		"x {\n voice en {\n}",
	} {
		for i := range modules {
			f.Add(uint8(i), seed)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, input string) {
		m := modules[int(which)%len(modules)]()
		if err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
			return
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("marshal after a successful parse: %v", err)
		}
		// What parses must validate again from its JSON.
		again := modules[int(which)%len(modules)]()
		if err := json.Unmarshal(b, again); err != nil {
			t.Fatal(err)
		}
		if err := again.(interface{ Validate() error }).Validate(); err != nil {
			t.Fatalf("input %q parsed to %s, which does not validate: %v", input, b, err)
		}
	})
}
