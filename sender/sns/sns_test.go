package sns

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
	pt "github.com/caddy-stepup/caddy-stepup/sender/internal/providertest"
)

// SNS's answers (Query protocol, XML).
const (
	published = `<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">
  <PublishResult>
    <MessageId>567910cd-659e-55d4-8ccb-5aaf14679dc0</MessageId>
  </PublishResult>
  <ResponseMetadata>
    <RequestId>d74b8436-ae13-5ab4-a9ff-ce54dfea72a0</RequestId>
  </ResponseMetadata>
</PublishResponse>`
	invalidPhone = `<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">
  <Error>
    <Type>Sender</Type>
    <Code>InvalidParameter</Code>
    <Message>Invalid parameter: PhoneNumber Reason: +14155550100 is not valid to publish to</Message>
  </Error>
  <RequestId>9dd01905-5012-5f99-8663-4b3ecd0dfaef</RequestId>
</ErrorResponse>`
	throttling = `<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">
  <Error>
    <Type>Sender</Type>
    <Code>Throttling</Code>
    <Message>Rate exceeded</Message>
  </Error>
  <RequestId>9dd01905-5012-5f99-8663-4b3ecd0dfaef</RequestId>
</ErrorResponse>`
	denied = `<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">
  <Error>
    <Type>Sender</Type>
    <Code>AuthorizationError</Code>
    <Message>User: arn:aws:iam::123456789012:user/otp is not authorized to perform: SNS:Publish on resource: +14155550100</Message>
  </Error>
  <RequestId>9dd01905-5012-5f99-8663-4b3ecd0dfaef</RequestId>
</ErrorResponse>`
	// SNS's own throttling error (ThrottledException, code Throttled),
	// which the SDK's default retryer does not know.
	throttled = `<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">
  <Error>
    <Type>Sender</Type>
    <Code>Throttled</Code>
    <Message>Rate exceeded</Message>
  </Error>
  <RequestId>9dd01905-5012-5f99-8663-4b3ecd0dfaef</RequestId>
</ErrorResponse>`
	internal = `<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">
  <Error>
    <Type>Receiver</Type>
    <Code>InternalError</Code>
    <Message>Internal Error</Message>
  </Error>
  <RequestId>9dd01905-5012-5f99-8663-4b3ecd0dfaef</RequestId>
</ErrorResponse>`
)

func xmlAnswer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		w.Write([]byte(body))
	}
}

// request is a Publish as the server saw it.
type request struct {
	method, path, contentType, auth, date string
	form                                  url.Values
}

func record(t *testing.T, got *[]request, answer http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		form, err := url.ParseQuery(string(b))
		if err != nil {
			t.Errorf("body %q: %v", b, err)
		}
		*got = append(*got, request{r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), r.Header.Get("X-Amz-Date"), form})
		answer(w, r)
	}
}

// attributes decodes the MessageAttributes.entry.N.* parameters.
func attributes(t *testing.T, form url.Values) map[string]string {
	t.Helper()
	attrs := map[string]string{}
	for i := 1; ; i++ {
		p := "MessageAttributes.entry." + strconv.Itoa(i) + "."
		name := form.Get(p + "Name")
		if name == "" {
			break
		}
		want := "String"
		if name == "AWS.SNS.SMS.MaxPrice" {
			want = "Number" // as SNS documents it
		}
		if dt := form.Get(p + "Value.DataType"); dt != want {
			t.Errorf("attribute %s has data type %q, want %s", name, dt, want)
		}
		attrs[name] = form.Get(p + "Value.StringValue")
	}
	return attrs
}

func staticConfig(endpoint string) Config {
	return Config{Region: "ap-south-1", Endpoint: endpoint, AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG", Options: sender.Options{MaxAttempts: 1, SendTimeout: sender.Duration(5 * time.Second)}}
}

func newSender(t *testing.T, cfg Config) *Sender {
	t.Helper()
	s, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func TestPublishWireFormat(t *testing.T) {
	tests := []struct {
		name      string
		modify    func(*Config)
		wantAttrs map[string]string
	}{
		{"transactional", func(*Config) {}, map[string]string{"AWS.SNS.SMS.SMSType": "Transactional"}},
		{"India DLT with sender ID and price cap", func(c *Config) {
			c.SenderID, c.EntityID, c.TemplateID, c.MaxPrice = "ACMEIN", "1201159100000000001", "1207161700000000002", "0.50"
		}, map[string]string{
			"AWS.SNS.SMS.SMSType":   "Transactional",
			"AWS.SNS.SMS.SenderID":  "ACMEIN",
			"AWS.SNS.SMS.MaxPrice":  "0.50",
			"AWS.MM.SMS.EntityId":   "1201159100000000001",
			"AWS.MM.SMS.TemplateId": "1207161700000000002",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []request
			srv := httptest.NewServer(record(t, &got, xmlAnswer(200, published)))
			defer srv.Close()
			cfg := staticConfig(srv.URL)
			tt.modify(&cfg)
			msg := pt.Message()
			msg.To = pt.ToIN
			if err := newSender(t, cfg).Send(t.Context(), msg); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if len(got) != 1 {
				t.Fatalf("%d requests, want 1", len(got))
			}
			r := got[0]
			if r.method != http.MethodPost || r.path != "/" || r.contentType != "application/x-www-form-urlencoded" {
				t.Errorf("request %s %s (%s), want a form POST to /", r.method, r.path, r.contentType)
			}
			if !strings.HasPrefix(r.auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") || !strings.Contains(r.auth, "/ap-south-1/sns/aws4_request") || r.date == "" {
				t.Errorf("Authorization %q, X-Amz-Date %q: want a SigV4 signature for ap-south-1/sns", r.auth, r.date)
			}
			if r.form.Get("Action") != "Publish" || r.form.Get("Version") != "2010-03-31" ||
				r.form.Get("PhoneNumber") != pt.ToIN || r.form.Get("Message") != msg.Text {
				t.Errorf("form %v", r.form)
			}
			if r.form.Has("TopicArn") || r.form.Has("TargetArn") {
				t.Errorf("form %v names a topic", r.form)
			}
			attrs := attributes(t, r.form)
			if len(attrs) != len(tt.wantAttrs) {
				t.Errorf("attributes %v, want %v", attrs, tt.wantAttrs)
			}
			for k, v := range tt.wantAttrs {
				if attrs[k] != v {
					t.Errorf("attribute %s = %q, want %q", k, attrs[k], v)
				}
			}
		})
	}
}

func TestPublishErrors(t *testing.T) {
	tests := []struct {
		name          string
		answer        http.HandlerFunc
		wantTemporary bool
		wantRecipient bool
		wantCode      string
		wantText      string
		wantConfig    bool
	}{
		{"invalid phone", xmlAnswer(400, invalidPhone), false, true, "InvalidParameter", "Invalid parameter: PhoneNumber Reason: *** is not valid", false},
		{"throttling", xmlAnswer(400, throttling), true, false, "Throttling", "Rate exceeded", false},
		{"throttled", xmlAnswer(400, throttled), true, false, "Throttled", "Rate exceeded", false},
		{"throttled 429", xmlAnswer(429, throttled), true, false, "Throttled", "Rate exceeded", false},
		{"not authorized", xmlAnswer(403, denied), false, false, "AuthorizationError", "not authorized", true},
		{"internal error", xmlAnswer(500, internal), true, false, "InternalError", "Internal Error", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []request
			srv := httptest.NewServer(record(t, &got, tt.answer))
			defer srv.Close()
			err := newSender(t, staticConfig(srv.URL)).Send(t.Context(), pt.Message())
			se := pt.SenderError(t, err)
			pt.AssertClean(t, err)
			if strings.Contains(err.Error(), "123456789012") || strings.Contains(err.Error(), "wJalr") {
				t.Errorf("error %q leaks the account or the secret", err)
			}
			if len(got) != 1 {
				t.Errorf("%d requests with RetryMaxAttempts 1, want 1", len(got))
			}
			if se.Sender != "sns" || se.Temporary != tt.wantTemporary || se.Recipient != tt.wantRecipient || se.Config != tt.wantConfig ||
				se.Code != tt.wantCode || !strings.Contains(se.Msg, tt.wantText) {
				t.Errorf("error %+v, want temporary %v, recipient %v, config %v, code %q, text %q",
					*se, tt.wantTemporary, tt.wantRecipient, tt.wantConfig, tt.wantCode, tt.wantText)
			}
		})
	}
}

// The SDK itself retries throttling when allowed more than one attempt,
// SNS's own Throttled code included, with static credentials or the
// default chain.
func TestSDKRetriesThrottling(t *testing.T) {
	for _, body := range []string{throttling, throttled} {
		for _, static := range []bool{true, false} {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 {
					xmlAnswer(400, body)(w, r)
					return
				}
				xmlAnswer(200, published)(w, r)
			}))
			cfg := staticConfig(srv.URL)
			if !static {
				t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
				t.Setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG")
				t.Setenv("AWS_REGION", "ap-south-1")
				cfg.AccessKeyID, cfg.SecretAccessKey = "", ""
			}
			cfg.MaxAttempts = 2
			id, err := newSender(t, cfg).SendWithID(t.Context(), pt.Message())
			srv.Close()
			if err != nil || id != "567910cd-659e-55d4-8ccb-5aaf14679dc0" {
				t.Fatalf("static %v: SendWithID = %q, %v", static, id, err)
			}
			if n.Load() != 2 {
				t.Errorf("static %v: %d requests, want 2", static, n.Load())
			}
		}
	}
}

func TestTimeout(t *testing.T) {
	srv, _ := pt.Slow(t, 5*time.Second)
	cfg := staticConfig(srv.URL)
	cfg.SendTimeout = sender.Duration(200 * time.Millisecond)
	start := time.Now()
	err := newSender(t, cfg).Send(t.Context(), pt.Message())
	se := pt.SenderError(t, err)
	if !se.Temporary || !strings.HasPrefix(se.Msg, "timed out") || time.Since(start) > 2*time.Second {
		t.Errorf("error %+v after %v, want a temporary timeout after about 200ms", *se, time.Since(start))
	}
}

// Without static credentials the SDK's default chain applies; here it
// finds them in the environment.
func TestDefaultCredentialChain(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secretfromenv")
	t.Setenv("AWS_REGION", "eu-west-1")
	if err := os.WriteFile(filepath.Join(dir, "config"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var got []request
	srv := httptest.NewServer(record(t, &got, xmlAnswer(200, published)))
	defer srv.Close()
	s := newSender(t, Config{Endpoint: srv.URL, Options: sender.Options{MaxAttempts: 1}})
	if err := s.Send(t.Context(), pt.Message()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if len(got) != 1 || !strings.Contains(got[0].auth, "Credential=AKIDFROMENV/") || !strings.Contains(got[0].auth, "/eu-west-1/sns/") {
		t.Errorf("requests %+v, want one signed with the environment's key for eu-west-1", got)
	}
}

func TestNew(t *testing.T) {
	ok := staticConfig("")
	for name, modify := range map[string]func(*Config){
		"key without secret":   func(c *Config) { c.SecretAccessKey = "" },
		"secret without key":   func(c *Config) { c.AccessKeyID = "" },
		"token alone":          func(c *Config) { c.AccessKeyID, c.SecretAccessKey, c.SessionToken = "", "", "tok" },
		"entity without tmpl":  func(c *Config) { c.EntityID = "1" },
		"template without ent": func(c *Config) { c.TemplateID = "1" },
		"bad price":            func(c *Config) { c.MaxPrice = "cheap" },
		"negative price":       func(c *Config) { c.MaxPrice = "-1" },
		"no region":            func(c *Config) { c.Region = "" },
		"bad endpoint":         func(c *Config) { c.Endpoint = "sns.local" },
	} {
		cfg := ok
		modify(&cfg)
		if _, err := New(t.Context(), cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		} else if strings.Contains(err.Error(), "wJalr") {
			t.Errorf("%s: error %q contains the secret", name, err)
		}
	}
	s := newSender(t, ok)
	if s.Name() != "sns" || s.Channel() != sender.SMS || s.Timeout() != 5*time.Second {
		t.Errorf("sender %+v", s)
	}
}

func TestTemplateBound(t *testing.T) {
	cfg := staticConfig("")
	if newSender(t, cfg).TemplateBound() {
		t.Error("a sender without DLT identifiers is template-bound")
	}
	cfg.EntityID, cfg.TemplateID = "1201159100000000001", "1207161700000000002"
	if !newSender(t, cfg).TemplateBound() {
		t.Error("a sender with DLT identifiers is not template-bound")
	}
}
