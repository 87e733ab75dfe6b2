package email

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-stepup/caddy-stepup/sender"
	pt "github.com/caddy-stepup/caddy-stepup/sender/internal/providertest"
)

// The token is read again for each message: an agent that rewrites the
// file (or the variable) renews it without a reload.
func TestXOAUTH2TokenReadPerSend(t *testing.T) {
	file := filepath.Join(t.TempDir(), "smtp-token")
	for name, tt := range map[string]struct {
		source string
		set    func(token string)
	}{
		"file": {"{file." + file + "}", func(token string) {
			if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		"env": {"{env.STEPUP_TEST_SMTP_TOKEN}", func(token string) { t.Setenv("STEPUP_TEST_SMTP_TOKEN", token) }},
	} {
		t.Run(name, func(t *testing.T) {
			srv := &smtpd{startTLS: true, user: "otp@shop.example", token: "ya29.first-token"}
			port, pool := srv.start(t)
			tt.set("ya29.first-token")
			cfg := config(port, pool)
			cfg.Username, cfg.Password, cfg.Auth, cfg.OAuthToken = "otp@shop.example", "", AuthXOAUTH2, tt.source
			s := newSender(t, cfg)
			if err := s.Send(t.Context(), emailMessage()); err != nil {
				t.Fatalf("Send with the first token: %v", err)
			}
			// The server now wants a renewed token; the old one is refused.
			srv.mu.Lock()
			srv.token = "ya29.renewed-token"
			srv.mu.Unlock()
			err := s.Send(t.Context(), emailMessage())
			se := pt.SenderError(t, err)
			if !se.Config || se.Temporary || strings.Contains(err.Error(), "ya29") {
				t.Errorf("expired token: %+v, want a configuration error without the token", *se)
			}
			tt.set("ya29.renewed-token")
			if err := s.Send(t.Context(), emailMessage()); err != nil {
				t.Fatalf("Send with the renewed token: %v", err)
			}
			_, commands, authTLS, _, _, _, data := srv.snapshot()
			if len(data) != 2 || slices.Contains(authTLS, false) || !slices.Contains(commands, "STARTTLS") {
				t.Errorf("%d messages, AUTH over TLS %v, commands %v", len(data), authTLS, commands)
			}
		})
	}
}

func TestXOAUTH2TokenGone(t *testing.T) {
	file := filepath.Join(t.TempDir(), "smtp-token")
	os.WriteFile(file, []byte("ya29.token"), 0o600)
	srv := &smtpd{startTLS: true, user: "otp@shop.example", token: "ya29.token"}
	port, pool := srv.start(t)
	cfg := config(port, pool)
	cfg.Username, cfg.Password, cfg.Auth, cfg.OAuthToken = "otp@shop.example", "", AuthXOAUTH2, "{file."+file+"}"
	s := newSender(t, cfg)
	os.Remove(file)
	err := s.Send(t.Context(), emailMessage())
	if se := pt.SenderError(t, err); !se.Config || !strings.Contains(se.Msg, "no OAuth token") {
		t.Errorf("token file gone: %v, want a configuration error", err)
	}
}

func TestXOAUTH2Config(t *testing.T) {
	file := filepath.Join(t.TempDir(), "smtp-token")
	os.WriteFile(file, []byte("ya29.token"), 0o600)
	t.Setenv("STEPUP_TEST_EMPTY", "")
	ok := Config{Host: "smtp.office365.com", Username: "otp@shop.example", Auth: AuthXOAUTH2,
		OAuthToken: "{file." + file + "}", From: "no-reply@shop.example"}
	if _, err := New(ok); err != nil {
		t.Fatalf("New: %v", err)
	}
	for name, modify := range map[string]func(*Config){
		"no token":               func(c *Config) { c.OAuthToken = "" },
		"no username":            func(c *Config) { c.Username = "" },
		"password too":           func(c *Config) { c.Password = "p" },
		"token without xoauth2":  func(c *Config) { c.Auth = AuthPlain; c.Password = "p" },
		"file missing":           func(c *Config) { c.OAuthToken = "{file." + file + ".missing}" },
		"variable unset":         func(c *Config) { c.OAuthToken = "{env.STEPUP_TEST_NEVER_SET}" },
		"variable empty":         func(c *Config) { c.OAuthToken = "{env.STEPUP_TEST_EMPTY}" },
		"in the clear, off host": func(c *Config) { c.TLS = NoTLS },
	} {
		cfg := ok
		modify(&cfg)
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		} else if strings.Contains(err.Error(), "ya29") {
			t.Errorf("%s: error %q holds the token", name, err)
		}
	}
	// In the clear to a relay on this machine is allowed.
	local := ok
	local.Host, local.TLS = "127.0.0.1", NoTLS
	if _, err := New(local); err != nil {
		t.Errorf("xoauth2 to localhost without TLS: %v", err)
	}
}

func TestMessageID(t *testing.T) {
	srv := &smtpd{startTLS: true, user: "mailer", pass: "p4ssw0rd", rcptReply: []string{"451 4.3.0 try again", "250 2.1.5 ok"}}
	port, pool := srv.start(t)
	s := newSender(t, config(port, pool))
	id, err := s.SendWithID(t.Context(), emailMessage())
	if err != nil || !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@shop.example>") {
		t.Fatalf("SendWithID = %q, %v; want <...@shop.example>", id, err)
	}
	// The retry after the 451 went through with the id returned.
	_, _, _, _, _, _, data := srv.snapshot()
	if len(data) != 1 || !strings.Contains(data[0], "Message-ID: "+id+"\n") {
		t.Errorf("message %v lacks Message-ID %s", data, id)
	}
	var _ sender.IDSender = s
}
