package email

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
	pt "github.com/caddy-stepup/caddy-stepup/sender/internal/providertest"
)

const rcpt = "user@example.com"

func emailMessage() *sender.Message {
	msg := pt.Message()
	msg.To = rcpt
	msg.Channel = sender.Email
	return msg
}

func newSender(t *testing.T, cfg Config) *Sender {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func config(port int, pool *x509.CertPool) Config {
	return Config{
		Host:      "127.0.0.1",
		Port:      port,
		TLSConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		Username:  "mailer",
		Password:  "p4ssw0rd",
		From:      "Shop <no-reply@shop.example>",
		Options:   sender.Options{SendTimeout: sender.Duration(5 * time.Second)},
	}
}

func TestStartTLSConversation(t *testing.T) {
	for _, auth := range []string{AuthPlain, AuthLogin} {
		t.Run(auth, func(t *testing.T) {
			srv := &smtpd{startTLS: true, user: "mailer", pass: "p4ssw0rd"}
			port, pool := srv.start(t)
			cfg := config(port, pool)
			cfg.Auth = auth
			if err := newSender(t, cfg).Send(t.Context(), emailMessage()); err != nil {
				t.Fatalf("Send: %v", err)
			}
			conns, commands, authTLS, mailTLS, from, to, data := srv.snapshot()
			want := []string{"EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"}
			if conns != 1 || !slices.Equal(commands, want) {
				t.Errorf("%d connections, commands %v, want one with %v", conns, commands, want)
			}
			if !slices.Equal(authTLS, []bool{true}) || !slices.Equal(mailTLS, []bool{true}) {
				t.Errorf("AUTH over TLS %v, MAIL over TLS %v: want both encrypted", authTLS, mailTLS)
			}
			if len(from) != 1 || !strings.HasPrefix(from[0], "FROM:<no-reply@shop.example>") {
				t.Errorf("MAIL %v", from)
			}
			if len(to) != 1 || to[0] != "TO:<"+rcpt+">" {
				t.Errorf("RCPT %v", to)
			}
			if len(data) != 1 {
				t.Fatalf("%d messages, want 1", len(data))
			}
			m := data[0]
			for _, h := range []string{
				"From: \"Shop\" <no-reply@shop.example>\n",
				"To: <" + rcpt + ">\n",
				"Subject: Your verification code\n",
				"Auto-Submitted: auto-generated\n",
				"Content-Type: text/plain; charset=UTF-8\n",
				"Your code is 493817.",
			} {
				if !strings.Contains(m, h) {
					t.Errorf("message lacks %q:\n%s", h, m)
				}
			}
			if strings.Contains(m, "#493817") || strings.Contains(m, "@shop.example #") {
				t.Errorf("message kept the WebOTP line:\n%s", m)
			}
		})
	}
}

func TestImplicitTLS(t *testing.T) {
	srv := &smtpd{implicitTLS: true, user: "mailer", pass: "p4ssw0rd"}
	port, pool := srv.start(t)
	cfg := config(port, pool)
	cfg.TLS = ImplicitTLS
	if err := newSender(t, cfg).Send(t.Context(), emailMessage()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	_, commands, authTLS, _, _, _, data := srv.snapshot()
	if slices.Contains(commands, "STARTTLS") || !slices.Equal(authTLS, []bool{true}) || len(data) != 1 {
		t.Errorf("commands %v, AUTH over TLS %v, %d messages", commands, authTLS, len(data))
	}
}

func TestPlainRelayWithoutAuth(t *testing.T) {
	srv := &smtpd{}
	port, _ := srv.start(t)
	s := newSender(t, Config{Host: "127.0.0.1", Port: port, TLS: NoTLS, From: "no-reply@shop.example"})
	if err := s.Send(t.Context(), emailMessage()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	_, commands, authTLS, mailTLS, _, _, data := srv.snapshot()
	if slices.Contains(commands, "AUTH") || len(authTLS) != 0 || !slices.Equal(mailTLS, []bool{false}) || len(data) != 1 {
		t.Errorf("commands %v, %d messages", commands, len(data))
	}
}

// STARTTLS is mandatory by default: a server that does not offer it gets
// neither the password nor the message.
func TestStartTLSMandatory(t *testing.T) {
	srv := &smtpd{user: "mailer", pass: "p4ssw0rd"}
	port, pool := srv.start(t)
	err := newSender(t, config(port, pool)).Send(t.Context(), emailMessage())
	se := pt.SenderError(t, err)
	if se.Temporary || !strings.Contains(se.Msg, "STARTTLS") {
		t.Errorf("error %+v, want a permanent STARTTLS failure", *se)
	}
	_, commands, _, _, _, _, data := srv.snapshot()
	if slices.Contains(commands, "AUTH") || slices.Contains(commands, "MAIL") || len(data) != 0 {
		t.Errorf("commands %v: the server got more than EHLO", commands)
	}
	srv.waitClosed(t)
}

func TestUntrustedCertificate(t *testing.T) {
	srv := &smtpd{startTLS: true, user: "mailer", pass: "p4ssw0rd"}
	port, _ := srv.start(t)
	_, otherPool := newCert(t)
	err := newSender(t, config(port, otherPool)).Send(t.Context(), emailMessage())
	if se := pt.SenderError(t, err); se.Temporary || !strings.Contains(se.Msg, "certificate") {
		t.Errorf("error %+v, want a permanent certificate failure", *se)
	}
	if _, commands, _, _, _, _, _ := srv.snapshot(); slices.Contains(commands, "AUTH") {
		t.Errorf("commands %v: credentials sent over an untrusted connection", commands)
	}
	srv.waitClosed(t)
}

func TestSMTPFailures(t *testing.T) {
	tests := []struct {
		name          string
		srv           *smtpd
		wantConns     int
		wantOK        bool
		wantTemporary bool
		wantRecipient bool
		wantCode      string
	}{
		{"recipient rejected", &smtpd{startTLS: true, user: "mailer", pass: "p4ssw0rd",
			rcptReply: []string{"550 5.1.1 <" + rcpt + ">: Recipient address rejected: User unknown in virtual mailbox table"}},
			1, false, false, true, "550"},
		{"greylisted then accepted", &smtpd{startTLS: true, user: "mailer", pass: "p4ssw0rd",
			rcptReply: []string{"451 4.7.1 <" + rcpt + ">: Recipient address rejected: greylisted, try again", "250 2.1.5 ok"}},
			2, true, false, false, ""},
		{"greylisted throughout", &smtpd{startTLS: true, user: "mailer", pass: "p4ssw0rd",
			rcptReply: []string{"451 4.7.1 <" + rcpt + ">: try again later"}},
			3, false, true, false, "451"},
		{"wrong password", &smtpd{startTLS: true, user: "mailer", pass: "other"}, 1, false, false, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port, pool := tt.srv.start(t)
			err := newSender(t, config(port, pool)).Send(t.Context(), emailMessage())
			tt.srv.waitClosed(t)
			conns, commands, _, _, _, _, _ := tt.srv.snapshot()
			if conns != tt.wantConns {
				t.Errorf("%d connections (commands %v), want %d", conns, commands, tt.wantConns)
			}
			if tt.wantOK {
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				return
			}
			se := pt.SenderError(t, err)
			pt.AssertClean(t, err)
			if strings.Contains(err.Error(), rcpt) || strings.Contains(err.Error(), "p4ssw0rd") {
				t.Errorf("error %q leaks the address or the password", err)
			}
			if se.Temporary != tt.wantTemporary || se.Recipient != tt.wantRecipient || se.Code != tt.wantCode {
				t.Errorf("error %+v, want temporary %v, recipient %v, code %q", *se, tt.wantTemporary, tt.wantRecipient, tt.wantCode)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	srv := &smtpd{startTLS: true, greetDelay: 3 * time.Second}
	port, pool := srv.start(t)
	cfg := config(port, pool)
	cfg.SendTimeout = sender.Duration(300 * time.Millisecond)
	start := time.Now()
	err := newSender(t, cfg).Send(t.Context(), emailMessage())
	if se := pt.SenderError(t, err); !se.Temporary || se.Msg != "timed out" {
		t.Errorf("error %+v, want a temporary timeout", *se)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Send took %v, want about 300ms", took)
	}
	srv.waitClosed(t)
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	err = newSender(t, config(port, nil)).Send(t.Context(), emailMessage())
	if se := pt.SenderError(t, err); !se.Temporary || !strings.Contains(se.Msg, "gave up after 3 attempts") {
		t.Errorf("error %+v, want temporary after 3 attempts", *se)
	}
}

func TestDestination(t *testing.T) {
	srv := &smtpd{startTLS: true, user: "mailer", pass: "p4ssw0rd"}
	port, pool := srv.start(t)
	s := newSender(t, config(port, pool))

	// A phone number in To, the address in Email: the fallback.
	msg := pt.Message()
	msg.Email = "fallback@example.org"
	if err := s.Send(t.Context(), msg); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if _, _, _, _, _, to, _ := srv.snapshot(); len(to) != 1 || to[0] != "TO:<fallback@example.org>" {
		t.Errorf("RCPT %v, want the Email address", to)
	}

	for name, msg := range map[string]*sender.Message{
		"phone only":   pt.Message(),
		"display name": {To: "Eve <eve@example.com>", Text: "x"},
		"injection":    {To: "eve@example.com\r\nBcc: all@example.com", Text: "x"},
		"two":          {To: "a@example.com, b@example.com", Text: "x"},
	} {
		se := pt.SenderError(t, s.Send(t.Context(), msg))
		if !se.Recipient {
			t.Errorf("%s: error %+v, want a recipient error", name, *se)
		}
	}
	if conns, _, _, _, _, _, _ := srv.snapshot(); conns != 1 {
		t.Errorf("%d connections, want only the first message sent", conns)
	}
}

func TestNew(t *testing.T) {
	ok := Config{Host: "smtp.example.com", Username: "u", Password: "p", From: "no-reply@shop.example"}
	for name, modify := range map[string]func(*Config){
		"no host":          func(c *Config) { c.Host = "" },
		"host with port":   func(c *Config) { c.Host = "smtp.example.com:587" },
		"bad port":         func(c *Config) { c.Port = 70000 },
		"bad tls":          func(c *Config) { c.TLS = "ssl" },
		"bad auth":         func(c *Config) { c.Auth = "cram-md5" },
		"user only":        func(c *Config) { c.Password = "" },
		"no from":          func(c *Config) { c.From = "" },
		"bad from":         func(c *Config) { c.From = "not an address" },
		"two-line subject": func(c *Config) { c.Subject = "a\r\nBcc: x@example.com" },
	} {
		cfg := ok
		modify(&cfg)
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	for mode, port := range map[TLSMode]int{"": 587, StartTLS: 587, ImplicitTLS: 465, NoTLS: 25} {
		cfg := ok
		cfg.TLS = mode
		s := newSender(t, cfg)
		if s.port != port || s.Channel() != sender.Email || s.Name() != "email" {
			t.Errorf("tls %q: port %d, channel %s, name %s", mode, s.port, s.Channel(), s.Name())
		}
	}
}

func TestStripWebOTP(t *testing.T) {
	for in, want := range map[string]string{
		"Your code is 123456.\n\n@shop.example #123456":       "Your code is 123456.",
		"Your code is 123456.\r\n\r\n@shop.example #123456\r": "Your code is 123456.",
		"Your code is 123456.":                                "Your code is 123456.",
		"Write to @support #help now\nthanks":                 "Write to @support #help now\nthanks",
		"Code 1\n@ shop.example #1":                           "Code 1\n@ shop.example #1",
		"Code 1\nx @shop.example #1":                          "Code 1\nx @shop.example #1",
		"\n@shop.example #1":                                  "",
	} {
		if got := StripWebOTP(in); got != want {
			t.Errorf("StripWebOTP(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzStripWebOTP(f *testing.F) {
	f.Add("Your code is 123456.\n\n@shop.example #123456")
	f.Add("plain text")
	f.Add("\n@a #b")
	f.Fuzz(func(t *testing.T, text string) {
		got := StripWebOTP(text)
		if !strings.HasPrefix(text, got) {
			t.Fatalf("StripWebOTP(%q) = %q, not a prefix", text, got)
		}
		if got != text && !strings.Contains(text[len(got):], "@") {
			t.Fatalf("StripWebOTP(%q) removed %q, not a WebOTP line", text, text[len(got):])
		}
	})
}
