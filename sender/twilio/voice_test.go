package twilio

import (
	"encoding/base64"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/internal/httpsend"
	pt "github.com/caddy-stepup/caddy-stepup/sender/internal/providertest"
)

const caller = "+15557122661"

// Twilio's answers to a call, as documented (Call resource).
const (
	callQueued      = `{"account_sid":"AC0123456789abcdef0123456789abcdef","answered_by":null,"api_version":"2010-04-01","caller_name":null,"date_created":null,"direction":"outbound-api","duration":null,"from":"+15557122661","from_formatted":"(555) 712-2661","parent_call_sid":null,"price":null,"price_unit":"USD","sid":"CAaaaabbbbccccddddeeeeffff00001111","start_time":null,"status":"queued","to":"+14155550100","to_formatted":"(415) 555-0100","uri":"/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Calls/CAaaaabbbbccccddddeeeeffff00001111.json","queue_time":"0"}`
	callGeoRefused  = `{"code": 21215, "message": "Account not authorized to call +14155550100. Perhaps you need to enable some international permissions: https://www.twilio.com/console/voice/calls/geo-permissions/low-risk", "more_info": "https://www.twilio.com/docs/errors/21215", "status": 400}`
	callBlocked     = `{"code": 21216, "message": "Account not allowed to call +14155550100", "more_info": "https://www.twilio.com/docs/errors/21216", "status": 400}`
	callFromInvalid = `{"code": 21210, "message": "The source phone number provided, +15557122661, is not yet verified for your account.", "more_info": "https://www.twilio.com/docs/errors/21210", "status": 400}`
)

// say is a <Say> of the TwiML the stand-in reads back.
type say struct {
	Language string `xml:"language,attr"`
	Voice    string `xml:"voice,attr"`
	Text     string `xml:",chardata"`
}

// twimlDoc is the TwiML of a call: its verbs in order.
type twimlDoc struct {
	XMLName xml.Name
	Verbs   []struct {
		XMLName  xml.Name
		Length   string `xml:"length,attr"`
		Language string `xml:"language,attr"`
		Voice    string `xml:"voice,attr"`
		Text     string `xml:",chardata"`
	} `xml:",any"`
}

// checkCall asserts the wire format of a call: method, path, content
// type, credentials, exactly To, From and Twiml, and TwiML that is a
// <Response> of a one-second <Pause> before each <Say>. It returns the
// form and the <Say> verbs.
func checkCall(t *testing.T, r *http.Request, user, pass string) (url.Values, []say) {
	t.Helper()
	if r.Method != http.MethodPost {
		t.Errorf("method %s, want POST", r.Method)
	}
	if want := "/2010-04-01/Accounts/" + sid + "/Calls.json"; r.URL.Path != want {
		t.Errorf("path %q, want %q", r.URL.Path, want)
	}
	if got := r.Header.Get("Content-Type"); got != "application/x-www-form-urlencoded" {
		t.Errorf("content type %q", got)
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	if got := r.Header.Get("Authorization"); got != want {
		t.Errorf("Authorization %q, want %q", got, want)
	}
	b, _ := io.ReadAll(r.Body)
	form, err := url.ParseQuery(string(b))
	if err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	var keys []string
	for k := range form {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if strings.Join(keys, ",") != "From,To,Twiml" {
		t.Errorf("parameters %v, want From, To and Twiml only", keys)
	}
	var doc twimlDoc
	if err := xml.Unmarshal([]byte(form.Get("Twiml")), &doc); err != nil {
		t.Fatalf("Twiml %q: %v", form.Get("Twiml"), err)
	}
	if doc.XMLName.Local != "Response" {
		t.Errorf("TwiML root <%s>, want <Response>", doc.XMLName.Local)
	}
	var says []say
	for i, v := range doc.Verbs {
		switch {
		case i%2 == 0 && (v.XMLName.Local != "Pause" || v.Length != "1"):
			t.Errorf("verb %d is <%s length=%q>, want <Pause length=\"1\">", i, v.XMLName.Local, v.Length)
		case i%2 == 1 && v.XMLName.Local != "Say":
			t.Errorf("verb %d is <%s>, want <Say>", i, v.XMLName.Local)
		case i%2 == 1:
			says = append(says, say{Language: v.Language, Voice: v.Voice, Text: v.Text})
		}
	}
	return form, says
}

func voiceConfig(endpoint string) VoiceConfig {
	return VoiceConfig{Endpoint: endpoint, Account: Account{AccountSID: sid, AuthToken: token}, From: caller}
}

func newVoice(t *testing.T, cfg VoiceConfig) *VoiceSender {
	t.Helper()
	s, err := NewVoice(cfg)
	if err != nil {
		t.Fatalf("NewVoice: %v", err)
	}
	return s
}

func voiceMessage(locale string) *sender.Message {
	msg := pt.Message()
	msg.Channel = sender.Voice
	msg.Locale = locale
	return msg
}

func TestVoiceWireFormat(t *testing.T) {
	var form url.Values
	var says []say
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		form, says = checkCall(t, r, sid, token)
		pt.JSON(http.StatusCreated, callQueued)(w, r)
	}))
	defer srv.Close()
	s := newVoice(t, voiceConfig(srv.URL+"/"))
	if err := s.Send(t.Context(), voiceMessage("")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if form.Get("To") != pt.To || form.Get("From") != caller {
		t.Errorf("To %q, From %q", form.Get("To"), form.Get("From"))
	}
	want := `<Response>` +
		`<Pause length="1"/><Say language="en-US" voice="Google.en-US-Standard-C">Your code is 4, 9, 3, 8, 1, 7.</Say>` +
		`<Pause length="1"/><Say language="en-US" voice="Google.en-US-Standard-C">Your code is 4, 9, 3, 8, 1, 7.</Say>` +
		`</Response>`
	if got := form.Get("Twiml"); got != want {
		t.Errorf("Twiml\n got %s\nwant %s", got, want)
	}
	if len(says) != DefaultRepeat {
		t.Errorf("%d <Say>, want %d", len(says), DefaultRepeat)
	}
}

// Each locale the page speaks is read in its own language and voice; a
// locale without words of its own is read as its language's, or in
// English.
func TestVoiceLocales(t *testing.T) {
	for _, tt := range []struct {
		locale, language, voice, text string
	}{
		{"en", "en-US", "Google.en-US-Standard-C", "Your code is 4, 9, 3, 8, 1, 7."},
		{"hi", "hi-IN", "Google.hi-IN-Standard-A", "आपका कोड है: 4, 9, 3, 8, 1, 7।"},
		{"es", "es-ES", "Google.es-ES-Standard-C", "Tu código es 4, 9, 3, 8, 1, 7."},
		{"de", "de-DE", "Google.de-DE-Standard-A", "Ihr Code lautet 4, 9, 3, 8, 1, 7."},
		{"pt-BR", "pt-BR", "Google.pt-BR-Standard-C", "Seu código é 4, 9, 3, 8, 1, 7."},
		{"ar", "ar-XA", "Google.ar-XA-Standard-A", "رمزك هو 4، 9، 3، 8، 1، 7."},
		{"pt-PT", "pt-BR", "Google.pt-BR-Standard-C", "Seu código é 4, 9, 3, 8, 1, 7."},
		{"de-AT", "de-DE", "Google.de-DE-Standard-A", "Ihr Code lautet 4, 9, 3, 8, 1, 7."},
		{"fr", "en-US", "Google.en-US-Standard-C", "Your code is 4, 9, 3, 8, 1, 7."},
	} {
		t.Run(tt.locale, func(t *testing.T) {
			var says []say
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, says = checkCall(t, r, sid, token)
				pt.JSON(http.StatusCreated, callQueued)(w, r)
			}))
			defer srv.Close()
			if err := newVoice(t, voiceConfig(srv.URL)).Send(t.Context(), voiceMessage(tt.locale)); err != nil {
				t.Fatalf("Send: %v", err)
			}
			want := say{Language: tt.language, Voice: tt.voice, Text: tt.text}
			if len(says) != 2 || says[0] != want || says[1] != want {
				t.Errorf("<Say> %+v, want twice %+v", says, want)
			}
		})
	}
	// Every locale the senders speak has a default speaker.
	for _, l := range sender.VoiceLocales() {
		if !slices.ContainsFunc(DefaultSpeakers, func(s Speaker) bool { return s.Locale == l }) {
			t.Errorf("no default speaker for locale %q", l)
		}
	}
}

func TestVoiceOptions(t *testing.T) {
	var form url.Values
	var says []say
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		form, says = checkCall(t, r, "SK0123456789abcdef0123456789abcdef", "key-secret")
		pt.JSON(http.StatusCreated, callQueued)(w, r)
	}))
	defer srv.Close()
	cfg := VoiceConfig{
		Endpoint: srv.URL,
		Account:  Account{AccountSID: sid, APIKey: "SK0123456789abcdef0123456789abcdef", APISecret: "key-secret"},
		From:     caller,
		Voices: []Speaker{
			{Locale: "en", Language: "en-IN", Voice: "Polly.Raveena"},
			{Locale: "hi", Language: "hi-IN"},
		},
		Repeat: 3,
	}
	s := newVoice(t, cfg)
	if err := s.Send(t.Context(), voiceMessage("en")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	want := say{Language: "en-IN", Voice: "Polly.Raveena", Text: "Your code is 4, 9, 3, 8, 1, 7."}
	if len(says) != 3 || says[0] != want || says[2] != want {
		t.Errorf("<Say> %+v, want three times %+v", says, want)
	}
	// Without a voice, <Say> has no voice attribute: the account's
	// default voice speaks.
	if err := s.Send(t.Context(), voiceMessage("hi")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if strings.Contains(form.Get("Twiml"), "voice=") || says[0].Language != "hi-IN" {
		t.Errorf("Twiml %s: want hi-IN without a voice attribute", form.Get("Twiml"))
	}
	// Other locales keep their default speakers.
	if err := s.Send(t.Context(), voiceMessage("de")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if says[0].Voice != "Google.de-DE-Standard-A" {
		t.Errorf("de spoken by %q", says[0].Voice)
	}
}

// What goes into the TwiML is escaped, whatever a speaker holds.
func TestVoiceTwimlEscaped(t *testing.T) {
	s := newVoice(t, voiceConfig("http://127.0.0.1:9"))
	s.speakers["en"] = Speaker{Locale: "en", Language: `en"><Play>x</Play><Say a="`, Voice: `V&<`}
	got := s.twiml("en", "12")
	var doc twimlDoc
	if err := xml.Unmarshal([]byte(got), &doc); err != nil {
		t.Fatalf("TwiML %s: %v", got, err)
	}
	for _, v := range doc.Verbs {
		if v.XMLName.Local != "Pause" && v.XMLName.Local != "Say" {
			t.Errorf("TwiML %s has a <%s>", got, v.XMLName.Local)
		}
	}
}

func TestVoiceErrors(t *testing.T) {
	tests := []struct {
		name          string
		answers       []http.HandlerFunc
		wantCalls     int32
		wantOK        bool
		wantTemporary bool
		wantRecipient bool
		wantStatus    int
		wantCode      string
		wantText      string
	}{
		{"throttled then placed", []http.HandlerFunc{pt.JSON(429, throttled), pt.JSON(201, callQueued)}, 2, true, false, false, 0, "", ""},
		{"5xx: no second call", []http.HandlerFunc{pt.JSON(503, internal), pt.JSON(201, callQueued)}, 1, false, true, false, 503, "20500", "may have been sent"},
		{"throttled throughout", []http.HandlerFunc{pt.JSON(429, throttled)}, 3, false, true, false, 429, "20429", "gave up after 3 attempts"},
		{"invalid number", []http.HandlerFunc{pt.JSON(400, invalidTo)}, 1, false, false, true, 400, "21211", "Twilio refused the call"},
		{"geographic permissions", []http.HandlerFunc{pt.JSON(400, callGeoRefused)}, 1, false, false, true, 400, "21215", "Account not authorized to call ***"},
		{"blocked destination", []http.HandlerFunc{pt.JSON(400, callBlocked)}, 1, false, false, true, 400, "21216", "not allowed to call"},
		{"caller not verified", []http.HandlerFunc{pt.JSON(400, callFromInvalid)}, 1, false, false, false, 400, "21210", "not yet verified"},
		{"bad credentials", []http.HandlerFunc{pt.JSON(401, authFail)}, 1, false, false, false, 401, "20003", "Authenticate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, calls := pt.Sequence(tt.answers...)
			srv := httptest.NewServer(h)
			defer srv.Close()
			cfg := voiceConfig(srv.URL)
			cfg.SendTimeout = sender.Duration(5 * time.Second)
			err := newVoice(t, cfg).Send(t.Context(), voiceMessage("en"))
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("%d requests, want %d", got, tt.wantCalls)
			}
			if tt.wantOK {
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				return
			}
			se := pt.SenderError(t, err)
			pt.AssertClean(t, err)
			if se.Sender != "twilio_voice" || se.Temporary != tt.wantTemporary || se.Recipient != tt.wantRecipient ||
				se.Status != tt.wantStatus || se.Code != tt.wantCode || !strings.Contains(se.Msg, tt.wantText) {
				t.Errorf("error %+v, want temporary %v, recipient %v, status %d, code %q, text %q",
					*se, tt.wantTemporary, tt.wantRecipient, tt.wantStatus, tt.wantCode, tt.wantText)
			}
			if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), "5557122661") {
				t.Errorf("error %q contains the token or the caller", err)
			}
		})
	}
}

func TestVoiceTimeout(t *testing.T) {
	srv, calls := pt.Slow(t, 5*time.Second)
	cfg := voiceConfig(srv.URL)
	cfg.SendTimeout = sender.Duration(200 * time.Millisecond)
	start := time.Now()
	err := newVoice(t, cfg).Send(t.Context(), voiceMessage("en"))
	se := pt.SenderError(t, err)
	if !se.Temporary || se.Msg != "timed out" {
		t.Errorf("error %+v, want a temporary timeout", *se)
	}
	// The call may have been placed: no second one.
	if took := time.Since(start); took > 2*time.Second || calls.Load() != 1 {
		t.Errorf("took %v with %d requests, want about 200ms and one request", took, calls.Load())
	}
}

func TestVoiceRefusesBeforeCalling(t *testing.T) {
	h, calls := pt.Sequence(pt.JSON(201, callQueued))
	srv := httptest.NewServer(h)
	defer srv.Close()
	s := newVoice(t, voiceConfig(srv.URL))
	for name, msg := range map[string]*sender.Message{
		"nil":           nil,
		"national":      {To: "4155550100", Code: pt.Code},
		"email":         {To: "a@b.example", Code: pt.Code},
		"no code":       {To: pt.To, Text: "Your code is 493817"},
		"letters":       {To: pt.To, Code: "49381x"},
		"spaced digits": {To: pt.To, Code: "493 817"},
	} {
		err := s.Send(t.Context(), msg)
		if err == nil {
			t.Errorf("%s: Send succeeded", name)
		}
		pt.AssertClean(t, err)
	}
	if calls.Load() != 0 {
		t.Errorf("%d requests made, want none", calls.Load())
	}
}

func TestNewVoice(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*VoiceConfig)
		want   string
	}{
		{"valid", func(*VoiceConfig) {}, ""},
		{"no account", func(c *VoiceConfig) { c.AccountSID = "" }, "needs account_sid"},
		{"bad account", func(c *VoiceConfig) { c.AccountSID = "SK123" }, "account_sid"},
		{"no credentials", func(c *VoiceConfig) { c.AuthToken = "" }, "credentials missing"},
		{"both credentials", func(c *VoiceConfig) { c.APIKey, c.APISecret = "SK1", "s" }, "not both"},
		{"bad key", func(c *VoiceConfig) { c.AuthToken, c.APIKey, c.APISecret = "", "AC1", "s" }, "api_key"},
		{"no caller", func(c *VoiceConfig) { c.From = "" }, "needs from"},
		{"caller not E.164", func(c *VoiceConfig) { c.From = "ACME" }, "E.164"},
		{"repeat too high", func(c *VoiceConfig) { c.Repeat = 4 }, "repeat 4 out of range"},
		{"repeat negative", func(c *VoiceConfig) { c.Repeat = -1 }, "out of range"},
		{"unknown locale", func(c *VoiceConfig) { c.Voices = []Speaker{{Locale: "fr", Language: "fr-FR"}} }, `locale "fr"`},
		{"locale twice", func(c *VoiceConfig) {
			c.Voices = []Speaker{{Locale: "en", Language: "en-GB"}, {Locale: "en", Language: "en-IN"}}
		}, "two voices"},
		{"bad language", func(c *VoiceConfig) { c.Voices = []Speaker{{Locale: "en", Language: "English"}} }, "language"},
		{"bad voice", func(c *VoiceConfig) { c.Voices = []Speaker{{Locale: "en", Language: "en-GB", Voice: "Polly Amy"}} }, "voice name"},
		{"bad endpoint", func(c *VoiceConfig) { c.Endpoint = "ftp://x" }, "endpoint"},
		{"bad timeout", func(c *VoiceConfig) { c.SendTimeout = sender.Duration(time.Hour) }, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := voiceConfig("")
			tt.modify(&cfg)
			s, err := NewVoice(cfg)
			if tt.want == "" {
				if err != nil || s.Name() != "twilio_voice" || s.Channel() != sender.Voice || s.Timeout() != httpsend.DefaultTimeout {
					t.Fatalf("NewVoice = %v, %v", s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewVoice error %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("error %q contains a credential", err)
			}
		})
	}
}
