package caddymodule

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-stepup/caddy-stepup/sender"
)

// providerCase is one Caddyfile input for a provider sender: the JSON it
// must produce, or a part of the error it must give.
type providerCase struct {
	name    string
	input   string
	want    string
	wantErr string
}

func runProviderCases(t *testing.T, newModule func() caddyfile.Unmarshaler, cases []providerCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			m := newModule()
			err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("UnmarshalCaddyfile: %v", err)
			}
			got, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("JSON\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestTwilioCaddyfile(t *testing.T) {
	runProviderCases(t, func() caddyfile.Unmarshaler { return new(TwilioSender) }, []providerCase{
		{"auth token", `twilio {
			account_sid {env.TWILIO_SID}
			auth_token {env.TWILIO_TOKEN}
			from +15557122661
		}`, `{"account_sid":"{env.TWILIO_SID}","auth_token":"{env.TWILIO_TOKEN}","from":"+15557122661"}`, ""},
		{"API key, service, common options", `twilio {
			account_sid AC123
			api_key SK123
			api_secret {env.TWILIO_SECRET}
			messaging_service_sid MG123
			endpoint http://127.0.0.1:9000
			name twilio-us
			countries us ca
			timeout 4s
		}`, `{"endpoint":"http://127.0.0.1:9000","account_sid":"AC123","api_key":"SK123","api_secret":"{env.TWILIO_SECRET}","messaging_service_sid":"MG123","name":"twilio-us","countries":["US","CA"],"timeout":4000000000}`, ""},
		{"unknown option", "twilio {\n account_sid AC1\n auth_token t\n from +1\n sender_id X\n}", "", "unrecognized twilio option 'sender_id'"},
		{"inline argument", "twilio AC1", "", "wrong argument count"},
		{"no account", "twilio {\n auth_token t\n from +1\n}", "", "needs account_sid"},
		{"no credentials", "twilio {\n account_sid AC1\n from +1\n}", "", "needs auth_token, or api_key and api_secret"},
		{"key without secret", "twilio {\n account_sid AC1\n auth_token t\n api_key SK1\n from +1\n}", "", "together"},
		{"no sender", "twilio {\n account_sid AC1\n auth_token t\n}", "", "needs from or messaging_service_sid"},
		{"two senders", "twilio {\n account_sid AC1\n auth_token t\n from +1\n messaging_service_sid MG1\n}", "", "needs from or messaging_service_sid"},
		{"option without value", "twilio {\n account_sid\n}", "", "wrong argument count"},
		{"option with two values", "twilio {\n account_sid AC1 AC2\n}", "", "wrong argument count"},
		{"bad country", "twilio {\n account_sid AC1\n auth_token t\n from +1\n countries India\n}", "", "countries"},
		{"no country", "twilio {\n account_sid AC1\n auth_token t\n from +1\n countries\n}", "", "wrong argument count"},
		{"timeout too long", "twilio {\n account_sid AC1\n auth_token t\n from +1\n timeout 5m\n}", "", "out of range"},
		{"timeout malformed", "twilio {\n account_sid AC1\n auth_token t\n from +1\n timeout soon\n}", "", "timeout"},
	})
}

func TestVonageCaddyfile(t *testing.T) {
	runProviderCases(t, func() caddyfile.Unmarshaler { return new(VonageSender) }, []providerCase{
		{"India DLT", `vonage {
			api_key {env.VONAGE_KEY}
			api_secret {env.VONAGE_SECRET}
			from ACMEIN
			entity_id 1201159100000000001
			content_id 1207161700000000002
			countries IN
		}`, `{"api_key":"{env.VONAGE_KEY}","api_secret":"{env.VONAGE_SECRET}","from":"ACMEIN","entity_id":"1201159100000000001","content_id":"1207161700000000002","countries":["IN"]}`, ""},
		{"unknown option", "vonage {\n api_key k\n api_secret s\n from A\n type unicode\n}", "", "unrecognized vonage option 'type'"},
		{"no secret", "vonage {\n api_key k\n from A\n}", "", "needs api_key, and api_secret or signature_secret"},
		{"no from", "vonage {\n api_key k\n api_secret s\n}", "", "needs from"},
		{"entity only", "vonage {\n api_key k\n api_secret s\n from A\n entity_id 1\n}", "", "both entity_id and content_id"},
		{"signed requests and receipts", `vonage {
			api_key {env.VONAGE_KEY}
			signature_secret {env.VONAGE_SIGNATURE_SECRET}
			signature_method sha256
			from ACME
		}`, `{"api_key":"{env.VONAGE_KEY}","signature_secret":"{env.VONAGE_SIGNATURE_SECRET}","signature_method":"sha256","from":"ACME"}`, ""},
		{"unsigned receipts with a token", "vonage {\n api_key k\n api_secret s\n receipt_token {env.VONAGE_RECEIPT_TOKEN}\n from A\n}",
			`{"api_key":"k","api_secret":"s","receipt_token":"{env.VONAGE_RECEIPT_TOKEN}","from":"A"}`, ""},
		{"unknown signature method", "vonage {\n api_key k\n signature_secret x\n signature_method sha384\n from A\n}", "", "want md5hash, md5, sha1, sha256 or sha512"},
	})
}

func TestMSG91Caddyfile(t *testing.T) {
	runProviderCases(t, func() caddyfile.Unmarshaler { return new(MSG91Sender) }, []providerCase{
		{"flow", `msg91 {
			auth_key {env.MSG91_KEY}
			template_id 64f0c0ffee
			code_var OTP
			ttl_var minutes
			countries in
			timeout 3s
		}`, `{"auth_key":"{env.MSG91_KEY}","template_id":"64f0c0ffee","code_var":"OTP","ttl_var":"minutes","countries":["IN"],"timeout":3000000000}`, ""},
		{"unknown option", "msg91 {\n auth_key k\n template_id t\n sender ACME\n}", "", "unrecognized msg91 option 'sender'"},
		{"no key", "msg91 {\n template_id t\n}", "", "needs auth_key"},
		{"no template", "msg91 {\n auth_key k\n}", "", "needs template_id"},
		{"receipt token", "msg91 {\n auth_key k\n template_id t\n receipt_token {env.MSG91_RECEIPT_TOKEN}\n}",
			`{"auth_key":"k","template_id":"t","receipt_token":"{env.MSG91_RECEIPT_TOKEN}"}`, ""},
		{"variable with hashes", "msg91 {\n auth_key k\n template_id t\n code_var \"##OTP##\"\n}", "", "without the ## around it"},
	})
}

func TestSNSCaddyfile(t *testing.T) {
	runProviderCases(t, func() caddyfile.Unmarshaler { return new(SNSSender) }, []providerCase{
		{"default credential chain", "sns {\n region ap-south-1\n}", `{"region":"ap-south-1"}`, ""},
		{"static keys and DLT", `sns {
			region ap-south-1
			access_key_id {env.AWS_KEY}
			secret_access_key {env.AWS_SECRET}
			sender_id ACMEIN
			max_price 0.50
			entity_id 1201159100000000001
			template_id 1207161700000000002
			name sns-in
		}`, `{"region":"ap-south-1","access_key_id":"{env.AWS_KEY}","secret_access_key":"{env.AWS_SECRET}","sender_id":"ACMEIN","max_price":"0.50","entity_id":"1201159100000000001","template_id":"1207161700000000002","name":"sns-in"}`, ""},
		{"empty block", "sns", `{}`, ""},
		{"unknown option", "sns {\n topic_arn x\n}", "", "unrecognized sns option 'topic_arn'"},
		{"key without secret", "sns {\n access_key_id k\n}", "", "both access_key_id and secret_access_key"},
		{"template only", "sns {\n template_id 1\n}", "", "both entity_id and template_id"},
	})
}

func TestWhatsAppCaddyfile(t *testing.T) {
	runProviderCases(t, func() caddyfile.Unmarshaler { return new(WhatsAppSender) }, []providerCase{
		{"template", `whatsapp {
			phone_number_id 106540352242922
			access_token {env.WA_TOKEN}
			template verification_code
			language en_US
			version v26.0
		}`, `{"version":"v26.0","phone_number_id":"106540352242922","access_token":"{env.WA_TOKEN}","template":"verification_code","language":"en_US"}`, ""},
		{"status webhooks", `whatsapp {
			phone_number_id 106540352242922
			access_token {env.WA_TOKEN}
			template verification_code
			app_secret {env.WA_APP_SECRET}
			verify_token {env.WA_VERIFY_TOKEN}
		}`, `{"phone_number_id":"106540352242922","access_token":"{env.WA_TOKEN}","template":"verification_code","app_secret":"{env.WA_APP_SECRET}","verify_token":"{env.WA_VERIFY_TOKEN}"}`, ""},
		{"app secret alone", "whatsapp {\n phone_number_id 1\n access_token t\n template x\n app_secret s\n}", "", "app_secret and verify_token go together"},
		{"unknown option", "whatsapp {\n phone_number_id 1\n access_token t\n template x\n body hi\n}", "", "unrecognized whatsapp option 'body'"},
		{"no phone number id", "whatsapp {\n access_token t\n template x\n}", "", "needs phone_number_id"},
		{"no token", "whatsapp {\n phone_number_id 1\n template x\n}", "", "needs access_token"},
		{"no template", "whatsapp {\n phone_number_id 1\n access_token t\n}", "", "needs template"},
	})
}

func TestWebhookCaddyfile(t *testing.T) {
	runProviderCases(t, func() caddyfile.Unmarshaler { return new(WebhookSender) }, []providerCase{
		{"inline URL", "webhook {env.SMS_HOOK}", `{"url":"{env.SMS_HOOK}"}`, ""},
		{"every option", `webhook http://127.0.0.1:9999/sms {
			signing_secret {env.HOOK_SECRET}
			name gateway
			countries in
			timeout 3s
		}`, `{"url":"http://127.0.0.1:9999/sms","signing_secret":"{env.HOOK_SECRET}","name":"gateway","countries":["IN"],"timeout":3000000000}`, ""},
		{"URL in the block", "webhook {\n url http://127.0.0.1/\n}", `{"url":"http://127.0.0.1/"}`, ""},
		{"no URL", "webhook {\n name x\n}", "", "sender webhook needs a URL"},
		{"two URLs", "webhook http://a/ http://b/", "", "wrong argument count"},
		{"unknown option", "webhook http://127.0.0.1/ {\n max_retry_delay 1s\n}", "", "unrecognized webhook option 'max_retry_delay'"},
		{"timeout too short", "webhook http://127.0.0.1/ {\n timeout 1ms\n}", "", "out of range"},
	})
}

func TestEmailCaddyfile(t *testing.T) {
	runProviderCases(t, func() caddyfile.Unmarshaler { return new(EmailSender) }, []providerCase{
		{"STARTTLS", `email {
			host smtp.example.com
			username mailer
			password {env.SMTP_PASSWORD}
			from "Shop <no-reply@shop.example>"
		}`, `{"host":"smtp.example.com","username":"mailer","password":"{env.SMTP_PASSWORD}","from":"Shop \u003cno-reply@shop.example\u003e"}`, ""},
		{"every option", `email {
			host smtp.example.com
			port 465
			tls implicit
			username mailer
			password pw
			auth login
			from no-reply@shop.example
			subject "Your Shop code"
			name mail
			timeout 8s
		}`, `{"host":"smtp.example.com","port":465,"tls":"implicit","username":"mailer","password":"pw","auth":"login","from":"no-reply@shop.example","subject":"Your Shop code","name":"mail","timeout":8000000000}`, ""},
		{"unknown option", "email {\n host h\n from a@b.c\n cc x@y.z\n}", "", "unrecognized email option 'cc'"},
		{"countries refused", "email {\n host h\n from a@b.c\n countries IN\n}", "", "takes no countries"},
		{"bad port", "email {\n host h\n from a@b.c\n port 0\n}", "", "port"},
		{"bad tls", "email {\n host h\n from a@b.c\n tls ssl\n}", "", "want starttls, implicit or none"},
		{"bad auth", "email {\n host h\n from a@b.c\n auth cram-md5\n}", "", "want plain, login or xoauth2"},
		{"no host", "email {\n from a@b.c\n}", "", "needs host"},
		{"no from", "email {\n host h\n}", "", "needs from"},
		{"user without password", "email {\n host h\n from a@b.c\n username u\n}", "", "both username and password"},
		// The token's placeholder is the sender's to resolve, at each send.
		{"XOAUTH2", "email {\n host smtp.office365.com\n from otp@shop.example\n username otp@shop.example\n auth xoauth2\n oauth_token {file./run/secrets/m365-token}\n}",
			`{"host":"smtp.office365.com","username":"otp@shop.example","auth":"xoauth2","oauth_token":"{file./run/secrets/m365-token}","from":"otp@shop.example"}`, ""},
		{"XOAUTH2 without token", "email {\n host h\n from a@b.c\n username u\n auth xoauth2\n}", "", "needs username (the mailbox) and oauth_token"},
	})
}

// A provider sender inside the stepup directive comes out as a guest
// module with its inline key.
func TestProviderInHandlerCaddyfile(t *testing.T) {
	h, err := parse(t, `stepup {
		identity header {
			user X-Remote-User
			phone X-Remote-Phone
		}
		sender msg91 {
			auth_key {env.MSG91_KEY}
			template_id 64f0c0ffee
			countries IN
		}
		sender twilio {
			account_sid AC1
			auth_token {env.TWILIO_TOKEN}
			from +15557122661
		}
		sender email {
			host smtp.example.com
			from no-reply@shop.example
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
		`{"auth_key":"{env.MSG91_KEY}","countries":["IN"],"sender":"msg91","template_id":"64f0c0ffee"}`,
		`{"account_sid":"AC1","auth_token":"{env.TWILIO_TOKEN}","from":"+15557122661","sender":"twilio"}`,
		`{"from":"no-reply@shop.example","host":"smtp.example.com","sender":"email"}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("senders\n got %s\nwant %s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func newCaddyContext(t *testing.T) caddy.Context {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return ctx
}

// provisionJSON loads a sender module from its JSON the way the handler
// does, placeholders and validation included.
func provisionJSON(t *testing.T, raw string) (sender.Sender, error) {
	t.Helper()
	holder := struct {
		SendersRaw []json.RawMessage `json:"senders" caddy:"namespace=http.stepup.senders inline_key=sender"`
	}{SendersRaw: []json.RawMessage{json.RawMessage(raw)}}
	mods, err := newCaddyContext(t).LoadModule(&holder, "SendersRaw")
	if err != nil {
		return nil, err
	}
	return mods.([]any)[0].(sender.Sender), nil
}

func TestProvidersProvision(t *testing.T) {
	t.Setenv("STEPUP_TEST_TOKEN", "tok_from_env")
	t.Setenv("STEPUP_TEST_EMPTY", "")
	t.Setenv("STEPUP_TEST_URL", "http://127.0.0.1:9/sms")
	t.Setenv("STEPUP_TEST_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	tests := []struct {
		name     string
		raw      string
		wantName string
		wantErr  string
	}{
		{"twilio", `{"sender":"twilio","account_sid":"AC1","auth_token":"{env.STEPUP_TEST_TOKEN}","from":"+15557122661","countries":["IN"]}`, "twilio", ""},
		{"twilio unset variable", `{"sender":"twilio","account_sid":"AC1","auth_token":"{env.STEPUP_TEST_EMPTY}","from":"+1"}`, "", "credentials missing"},
		{"twilio unknown placeholder", `{"sender":"twilio","account_sid":"{nope.x}","auth_token":"t","from":"+1"}`, "", "account_sid"},
		{"twilio empty required variable", `{"sender":"twilio","account_sid":"{env.STEPUP_TEST_EMPTY}","auth_token":"t","from":"+1"}`, "", "account_sid"},
		{"twilio bad countries in JSON", `{"sender":"twilio","account_sid":"AC1","auth_token":"t","from":"+1","countries":["XX"]}`, "", "countries"},
		{"twilio bad timeout in JSON", `{"sender":"twilio","account_sid":"AC1","auth_token":"t","from":"+1","timeout":1}`, "", "timeout"},
		{"vonage", `{"sender":"vonage","api_key":"k","api_secret":"{env.STEPUP_TEST_TOKEN}","from":"ACME","name":"vonage-in"}`, "vonage-in", ""},
		{"vonage missing secret", `{"sender":"vonage","api_key":"k","from":"ACME"}`, "", "api_secret or signature_secret"},
		{"msg91", `{"sender":"msg91","auth_key":"{env.STEPUP_TEST_TOKEN}","template_id":"t"}`, "msg91", ""},
		{"msg91 unset key", `{"sender":"msg91","auth_key":"{env.STEPUP_TEST_EMPTY}","template_id":"t"}`, "", "auth_key"},
		{"sns static", `{"sender":"sns","region":"ap-south-1","access_key_id":"AKID","secret_access_key":"{env.STEPUP_TEST_TOKEN}"}`, "sns", ""},
		{"sns unset secret", `{"sender":"sns","region":"ap-south-1","access_key_id":"AKID","secret_access_key":"{env.STEPUP_TEST_EMPTY}"}`, "", "secret_access_key"},
		{"whatsapp", `{"sender":"whatsapp","phone_number_id":"1065","access_token":"{env.STEPUP_TEST_TOKEN}","template":"verification_code"}`, "whatsapp", ""},
		{"whatsapp bad template", `{"sender":"whatsapp","phone_number_id":"1065","access_token":"t","template":"Verify Code"}`, "", "template"},
		{"email", `{"sender":"email","host":"smtp.example.com","username":"u","password":"{env.STEPUP_TEST_TOKEN}","from":"no-reply@shop.example"}`, "email", ""},
		{"email unset password", `{"sender":"email","host":"smtp.example.com","username":"u","password":"{env.STEPUP_TEST_EMPTY}","from":"no-reply@shop.example"}`, "", "password"},
		{"email countries in JSON", `{"sender":"email","host":"h","from":"a@b.example","countries":["IN"]}`, "", "countries"},
		{"vonage unset optional variables", `{"sender":"vonage","api_key":"k","api_secret":"s","from":"ACME","entity_id":"{env.STEPUP_TEST_EMPTY}","content_id":"{env.STEPUP_TEST_EMPTY}"}`, "vonage", ""},
		{"sns unset static keys", `{"sender":"sns","region":"ap-south-1","access_key_id":"{env.STEPUP_TEST_EMPTY}","secret_access_key":"{env.STEPUP_TEST_EMPTY}"}`, "", "access_key_id"},
		{"email unset user", `{"sender":"email","host":"h","username":"{env.STEPUP_TEST_EMPTY}","password":"{env.STEPUP_TEST_EMPTY}","from":"a@b.example"}`, "", "username"},
		{"webhook", `{"sender":"webhook","url":"{env.STEPUP_TEST_URL}","signing_secret":"{env.STEPUP_TEST_SECRET}","timeout":"4s","name":"gateway"}`, "gateway", ""},
		{"webhook unset url", `{"sender":"webhook","url":"{env.STEPUP_TEST_EMPTY}"}`, "", "url"},
		{"webhook unknown placeholder", `{"sender":"webhook","url":"http://127.0.0.1:9/{http.request.host}"}`, "", "url"},
		{"webhook unset secret", `{"sender":"webhook","url":"http://127.0.0.1:9/","signing_secret":"{env.STEPUP_TEST_EMPTY}"}`, "", "signing_secret"},
		{"webhook bad timeout", `{"sender":"webhook","url":"http://127.0.0.1:9/","timeout":"5m"}`, "", "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := provisionJSON(t, tt.raw)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "tok_from_env") {
					t.Errorf("error %q contains the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("provision: %v", err)
			}
			if s.Name() != tt.wantName {
				t.Errorf("Name = %q, want %q", s.Name(), tt.wantName)
			}
		})
	}
}

// A provisioned module sends with the resolved credentials, and the chain
// routes by its countries.
func TestProvidersSendThroughChain(t *testing.T) {
	t.Setenv("STEPUP_TEST_TOKEN", "tok_from_env")
	var twilioForm url.Values
	var twilioAuth string
	twilioSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		twilioForm, _ = url.ParseQuery(string(b))
		twilioAuth = r.Header.Get("Authorization")
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"sid":"SM1","status":"queued"}`))
	}))
	defer twilioSrv.Close()
	var msg91Calls atomic.Int32
	var msg91Body string
	msg91Srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		msg91Calls.Add(1)
		b, _ := io.ReadAll(r.Body)
		msg91Body = string(b)
		if r.Header.Get("authkey") != "tok_from_env" {
			t.Errorf("authkey %q", r.Header.Get("authkey"))
		}
		w.Write([]byte(`{"type":"success","message":"3763"}`))
	}))
	defer msg91Srv.Close()

	in, err := provisionJSON(t, `{"sender":"msg91","endpoint":"`+msg91Srv.URL+`","auth_key":"{env.STEPUP_TEST_TOKEN}","template_id":"t","countries":["IN"],"timeout":2000000000}`)
	if err != nil {
		t.Fatal(err)
	}
	world, err := provisionJSON(t, `{"sender":"twilio","endpoint":"`+twilioSrv.URL+`","account_sid":"AC1","auth_token":"{env.STEPUP_TEST_TOKEN}","from":"+15557122661"}`)
	if err != nil {
		t.Fatal(err)
	}
	if tm, ok := in.(sender.Timeouter); !ok || tm.Timeout() != 2*time.Second {
		t.Errorf("msg91 module does not report its 2s timeout")
	}
	// Without a timeout of its own, a module leaves its budget to the
	// chain (5s by default), not to its provider's 10s.
	if tm, ok := world.(sender.Timeouter); !ok || tm.Timeout() != 0 {
		t.Errorf("twilio module without a timeout reports %v, want 0", tm.Timeout())
	}
	chain := sender.NewChain([]sender.Sender{in, world}, sender.ChainOptions{})

	msg := &sender.Message{To: "+14155550100", Code: "493817", Text: "Your code is 493817", TTL: 5 * time.Minute}
	if by, err := chain.Send(t.Context(), msg); err != nil || by != "twilio" {
		t.Fatalf("US number: Send = %q, %v; want twilio", by, err)
	}
	// Through the module, the chain sees the provider's message id and
	// that it takes receipts.
	receiptURL := func(name string) string { return "https://shop.example/.stepup/receipts/" + name }
	d, err := sender.NewChain([]sender.Sender{in, world}, sender.ChainOptions{ReceiptURL: receiptURL}).Deliver(t.Context(), msg)
	if want := (sender.Delivery{Sender: "twilio", MessageID: "SM1", ReceiptURL: receiptURL("twilio")}); err != nil || d != want {
		t.Errorf("Deliver = %+v, %v; want %+v", d, err, want)
	}
	if twilioForm.Get("StatusCallback") != receiptURL("twilio") {
		t.Errorf("twilio StatusCallback %q", twilioForm.Get("StatusCallback"))
	}
	// msg91 without receipt_token takes no receipts; a request for one
	// is refused as such.
	if rc, ok := in.(sender.Receipter); !ok || rc.Receipts() {
		t.Errorf("msg91 module without receipt_token takes receipts")
	} else if _, err := rc.ParseReceipt(httptest.NewRequest(http.MethodPost, receiptURL("msg91"), nil), ""); sender.ReceiptHTTPStatus(err) != http.StatusNotFound {
		t.Errorf("msg91 module ParseReceipt = %v, want ErrReceiptsOff", err)
	}
	if msg91Calls.Load() != 0 || twilioForm.Get("To") != "+14155550100" || twilioForm.Get("ValidityPeriod") != "300" {
		t.Errorf("msg91 calls %d, twilio form %v", msg91Calls.Load(), twilioForm)
	}
	if want := "Basic QUMxOnRva19mcm9tX2Vudg=="; twilioAuth != want { // AC1:tok_from_env
		t.Errorf("twilio Authorization %q, want %q", twilioAuth, want)
	}
	msg.To = "+919876543210"
	if by, err := chain.Send(t.Context(), msg); err != nil || by != "msg91" {
		t.Fatalf("Indian number: Send = %q, %v; want msg91", by, err)
	}
	if want := `{"template_id":"t","short_url":"0","realTimeResponse":"1","recipients":[{"mobiles":"919876543210","otp":"493817"}]}`; msg91Body != want {
		t.Errorf("msg91 body %s, want %s", msg91Body, want)
	}
}

func FuzzProviderCaddyfile(f *testing.F) {
	modules := []func() caddyfile.Unmarshaler{
		func() caddyfile.Unmarshaler { return new(TwilioSender) },
		func() caddyfile.Unmarshaler { return new(VonageSender) },
		func() caddyfile.Unmarshaler { return new(MSG91Sender) },
		func() caddyfile.Unmarshaler { return new(SNSSender) },
		func() caddyfile.Unmarshaler { return new(WhatsAppSender) },
		func() caddyfile.Unmarshaler { return new(EmailSender) },
	}
	for _, seed := range []string{
		"twilio {\n account_sid AC1\n auth_token t\n from +1\n countries in us\n timeout 3s\n}",
		"vonage {\n api_key k\n api_secret s\n from A\n entity_id 1\n content_id 2\n}",
		"msg91 {\n auth_key k\n template_id t\n}",
		"sns {\n region ap-south-1\n}",
		"whatsapp {\n phone_number_id 1\n access_token t\n template x\n}",
		"email {\n host h\n from a@b.c\n port 25\n tls none\n}",
		"x {\n countries\n}",
		"x {\n name {\n}",
	} {
		for i := range modules {
			f.Add(uint8(i), seed)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, input string) {
		m := modules[int(which)%len(modules)]()
		err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err != nil {
			return
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("marshal after a successful parse: %v", err)
		}
		// What parses must also load: countries are valid regions.
		var opts sender.Options
		if err := json.Unmarshal(b, &opts); err != nil {
			t.Fatal(err)
		}
		if _, err := sender.ParseRegions(opts.CountryCodes); err != nil {
			t.Fatalf("input %q parsed to bad countries %v", input, opts.CountryCodes)
		}
	})
}
