package vonage

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/internal/httpsend"
	pt "github.com/caddy-stepup/caddy-stepup/sender/internal/providertest"
)

// The Voice API's answers, as documented.
const (
	callStarted  = `{"uuid":"63f61863-4a51-4f6b-86e1-46edebcf9356","status":"started","direction":"outbound","conversation_uuid":"CON-f972836a-550f-45fa-956c-12a2ab5b7d22"}`
	unauthorized = `{"type":"https://developer.nexmo.com/api-errors#unauthorized","title":"Unauthorized","detail":"You did not provide correct credentials.","instance":"797a8f199c45014ab7b08bfe9cc1c12c"}`
	lowBalance   = `{"type":"https://developer.nexmo.com/api-errors/#low-balance","title":"Low balance","detail":"This request could not be performed due to your account balance being low.","instance":"bf0ca0bf927b3b52e3cb03217e1a1ddf"}`
	rateLimited  = `{"type":"https://developer.vonage.com/api-errors#throttled","title":"Rate Limit Hit","detail":"Please wait, then retry your request","instance":"bf0ca0bf927b3b52e3cb03217e1a1ddf"}`
	badRequest   = `{"type":"https://developer.nexmo.com/api-errors#invalid-request","title":"Invalid Request","detail":"Invalid number 14155550100","instance":"798b8f199c45014ab7b08bfe9cc1c12c"}`
	serverError  = `{"type":"https://developer.nexmo.com/api-errors#internal","title":"Internal Error","instance":"798b8f199c45014ab7b08bfe9cc1c12c"}`
)

// checkCall asserts the wire format of a call: method, path, content
// type, the application JWT, and a body of exactly to, from and ncco. It
// returns the body, decoded.
func checkCall(t *testing.T, r *http.Request) callRequest {
	t.Helper()
	if r.Method != http.MethodPost || r.URL.Path != "/v1/calls" {
		t.Errorf("%s %s, want POST /v1/calls", r.Method, r.URL.Path)
	}
	if got := r.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("content type %q", got)
	}
	checkJWT(t, r.Header.Get("Authorization"))
	b, _ := io.ReadAll(r.Body)
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		t.Fatalf("body %s: %v", b, err)
	}
	if len(keys) != 3 || keys["to"] == nil || keys["from"] == nil || keys["ncco"] == nil {
		t.Errorf("body %s: want to, from and ncco only", b)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var req callRequest
	if err := dec.Decode(&req); err != nil {
		t.Fatalf("body %s: %v", b, err)
	}
	return req
}

func voiceConfig(endpoint string) VoiceConfig {
	return VoiceConfig{Endpoint: endpoint, Application: Application{ApplicationID: appID, PrivateKey: testPEM()}, From: "447700900001"}
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
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		r.Body = io.NopCloser(strings.NewReader(body))
		checkCall(t, r)
		pt.JSON(http.StatusCreated, callStarted)(w, r)
	}))
	defer srv.Close()
	if err := newVoice(t, voiceConfig(srv.URL+"/")).Send(t.Context(), voiceMessage("")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	want := `{"to":[{"type":"phone","number":"14155550100"}],"from":{"type":"phone","number":"447700900001"},` +
		`"ncco":[{"action":"talk","text":"Your code is 4, 9, 3, 8, 1, 7. Your code is 4, 9, 3, 8, 1, 7.","language":"en-US"}]}`
	if body != want {
		t.Errorf("body\n got %s\nwant %s", body, want)
	}
}

func TestVoiceLocales(t *testing.T) {
	for _, tt := range []struct{ locale, language, sentence string }{
		{"en", "en-US", "Your code is 4, 9, 3, 8, 1, 7."},
		{"hi", "hi-IN", "आपका कोड है: 4, 9, 3, 8, 1, 7।"},
		{"es", "es-ES", "Tu código es 4, 9, 3, 8, 1, 7."},
		{"de", "de-DE", "Ihr Code lautet 4, 9, 3, 8, 1, 7."},
		{"pt-BR", "pt-BR", "Seu código é 4, 9, 3, 8, 1, 7."},
		{"ar", "ar", "رمزك هو 4، 9، 3، 8، 1، 7."},
		{"es-MX", "es-ES", "Tu código es 4, 9, 3, 8, 1, 7."},
		{"ja", "en-US", "Your code is 4, 9, 3, 8, 1, 7."},
	} {
		t.Run(tt.locale, func(t *testing.T) {
			var req callRequest
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				req = checkCall(t, r)
				pt.JSON(http.StatusCreated, callStarted)(w, r)
			}))
			defer srv.Close()
			if err := newVoice(t, voiceConfig(srv.URL)).Send(t.Context(), voiceMessage(tt.locale)); err != nil {
				t.Fatalf("Send: %v", err)
			}
			want := talk{Action: "talk", Text: tt.sentence + " " + tt.sentence, Language: tt.language}
			if len(req.NCCO) != 1 || req.NCCO[0] != want {
				t.Errorf("ncco %+v, want %+v", req.NCCO, want)
			}
		})
	}
	for _, l := range sender.VoiceLocales() {
		if !slices.ContainsFunc(DefaultSpeakers, func(s Speaker) bool { return s.Locale == l }) {
			t.Errorf("no default speaker for locale %q", l)
		}
	}
}

func TestVoiceOptions(t *testing.T) {
	var req callRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req = checkCall(t, r)
		pt.JSON(http.StatusCreated, callStarted)(w, r)
	}))
	defer srv.Close()
	cfg := voiceConfig(srv.URL)
	cfg.From = "+447700900001"
	cfg.Voices = []Speaker{{Locale: "en", Language: "en-GB", Style: 3}}
	cfg.Repeat = 1
	s := newVoice(t, cfg)
	if err := s.Send(t.Context(), voiceMessage("en")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	want := talk{Action: "talk", Text: "Your code is 4, 9, 3, 8, 1, 7.", Language: "en-GB", Style: 3}
	if req.From.Number != "447700900001" || len(req.NCCO) != 1 || req.NCCO[0] != want {
		t.Errorf("from %+v, ncco %+v, want %+v", req.From, req.NCCO, want)
	}
	if err := s.Send(t.Context(), voiceMessage("hi")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if req.NCCO[0].Language != "hi-IN" || req.NCCO[0].Style != 0 {
		t.Errorf("hi spoken as %+v", req.NCCO[0])
	}
}

// Each Send signs its own token; its retries carry the same one.
func TestVoiceTokenPerSend(t *testing.T) {
	var mu sync.Mutex
	var tokens []string
	h, calls := pt.Sequence(
		func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			tokens = append(tokens, checkJWT(t, r.Header.Get("Authorization")))
			mu.Unlock()
			pt.JSON(429, rateLimited)(w, r)
		},
		func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			tokens = append(tokens, checkJWT(t, r.Header.Get("Authorization")))
			mu.Unlock()
			pt.JSON(201, callStarted)(w, r)
		})
	srv := httptest.NewServer(h)
	defer srv.Close()
	cfg := voiceConfig(srv.URL)
	cfg.SendTimeout = sender.Duration(5 * time.Second)
	s := newVoice(t, cfg)
	if err := s.Send(t.Context(), voiceMessage("en")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if err := s.Send(t.Context(), voiceMessage("en")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if calls.Load() != 3 || tokens[0] != tokens[1] || tokens[1] == tokens[2] {
		t.Errorf("%d requests with jti %v: want the retry to reuse its send's token, the next send a new one", calls.Load(), tokens)
	}
}

func TestVoiceErrors(t *testing.T) {
	tests := []struct {
		name          string
		answers       []http.HandlerFunc
		wantCalls     int32
		wantOK        bool
		wantTemporary bool
		wantStatus    int
		wantCode      string
		wantText      string
	}{
		{"throttled then placed", []http.HandlerFunc{pt.JSON(429, rateLimited), pt.JSON(201, callStarted)}, 2, true, false, 0, "", ""},
		{"5xx then placed", []http.HandlerFunc{pt.JSON(500, serverError), pt.JSON(201, callStarted)}, 2, true, false, 0, "", ""},
		{"throttled throughout", []http.HandlerFunc{pt.JSON(429, rateLimited)}, 3, false, true, 429, "throttled", "gave up after 3 attempts"},
		{"bad credentials", []http.HandlerFunc{pt.JSON(401, unauthorized)}, 1, false, false, 401, "unauthorized", "Vonage refused the call: Unauthorized"},
		{"out of credit", []http.HandlerFunc{pt.JSON(403, lowBalance)}, 1, false, false, 403, "low-balance", "balance being low"},
		{"bad request naming the number", []http.HandlerFunc{pt.JSON(400, badRequest)}, 1, false, false, 400, "invalid-request", "Invalid number ***"},
		{"not JSON", []http.HandlerFunc{func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(404); w.Write([]byte("<html>")) }}, 1, false, false, 404, "", "Vonage refused the call"},
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
			if se.Sender != "vonage_voice" || se.Temporary != tt.wantTemporary || se.Recipient ||
				se.Status != tt.wantStatus || se.Code != tt.wantCode || !strings.Contains(se.Msg, tt.wantText) {
				t.Errorf("error %+v, want temporary %v, status %d, code %q, text %q",
					*se, tt.wantTemporary, tt.wantStatus, tt.wantCode, tt.wantText)
			}
			if strings.Contains(err.Error(), "PRIVATE") || strings.Contains(err.Error(), "Bearer") {
				t.Errorf("error %q contains a credential", err)
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
	if se := pt.SenderError(t, err); !se.Temporary || se.Msg != "timed out" {
		t.Errorf("error %+v, want a temporary timeout", *se)
	}
	if took := time.Since(start); took > 2*time.Second || calls.Load() != 1 {
		t.Errorf("took %v with %d requests, want about 200ms and one request", took, calls.Load())
	}
}

func TestVoiceRefusesBeforeCalling(t *testing.T) {
	h, calls := pt.Sequence(pt.JSON(201, callStarted))
	srv := httptest.NewServer(h)
	defer srv.Close()
	s := newVoice(t, voiceConfig(srv.URL))
	for name, msg := range map[string]*sender.Message{
		"nil":      nil,
		"national": {To: "4155550100", Code: pt.Code},
		"email":    {To: "a@b.example", Code: pt.Code},
		"no code":  {To: pt.To, Text: "Your code is 493817"},
		"letters":  {To: pt.To, Code: "49381x"},
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
		{"from with +", func(c *VoiceConfig) { c.From = "+447700900001" }, ""},
		{"no application", func(c *VoiceConfig) { c.ApplicationID = "" }, "needs application_id"},
		{"application not a UUID", func(c *VoiceConfig) { c.ApplicationID = "app-1" }, "UUID"},
		{"no key", func(c *VoiceConfig) { c.PrivateKey = "" }, "needs the application's private key"},
		{"two keys", func(c *VoiceConfig) { c.PrivateKeyFile = "/etc/vonage.key" }, "not both"},
		{"bad key", func(c *VoiceConfig) { c.PrivateKey = "secret" }, "private key: not PEM"},
		{"no caller", func(c *VoiceConfig) { c.From = "" }, "needs from"},
		{"caller not a number", func(c *VoiceConfig) { c.From = "ACME" }, "international form"},
		{"repeat too high", func(c *VoiceConfig) { c.Repeat = 4 }, "out of range"},
		{"unknown locale", func(c *VoiceConfig) { c.Voices = []Speaker{{Locale: "it", Language: "it-IT"}} }, `locale "it"`},
		{"locale twice", func(c *VoiceConfig) {
			c.Voices = []Speaker{{Locale: "hi", Language: "hi-IN"}, {Locale: "hi", Language: "en-IN"}}
		}, "two voices"},
		{"bad language", func(c *VoiceConfig) { c.Voices = []Speaker{{Locale: "hi", Language: "Hindi!"}} }, "language"},
		{"bad style", func(c *VoiceConfig) { c.Voices = []Speaker{{Locale: "hi", Language: "hi-IN", Style: -1}} }, "style"},
		{"bad endpoint", func(c *VoiceConfig) { c.Endpoint = "api.nexmo.com" }, "endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := voiceConfig("")
			tt.modify(&cfg)
			s, err := NewVoice(cfg)
			if tt.want == "" {
				if err != nil || s.Name() != "vonage_voice" || s.Channel() != sender.Voice || s.Timeout() != httpsend.DefaultTimeout {
					t.Fatalf("NewVoice = %v, %v", s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewVoice error %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "MII") {
				t.Errorf("error %q contains the key", err)
			}
		})
	}
}
