// Package email sends codes by e-mail over SMTP, through
// github.com/wneessen/go-mail.
//
// E-mail is a fallback channel, never the only one: NIST SP 800-63B
// rev 4 §3.1.3.1 says that e-mail SHALL NOT be used as an out-of-band
// authenticator, since mailboxes are reached with a password alone and
// messages cross servers the operator does not control. Offer it to
// users who cannot receive an SMS, after the phone senders.
package email

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"regexp"
	"strings"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/internal/httpsend"
)

// TLSMode says how the connection to the SMTP server is protected.
type TLSMode string

// The TLS modes.
const (
	// StartTLS connects in plain text and upgrades with STARTTLS, which
	// the server must offer: without it nothing is sent. Default port 587.
	StartTLS TLSMode = "starttls"
	// ImplicitTLS speaks TLS from the first byte (SMTPS). Default port 465.
	ImplicitTLS TLSMode = "implicit"
	// NoTLS sends in plain text. Only for a relay on the same host or a
	// private network; password authentication is then refused unless the
	// server is on localhost. Default port 25.
	NoTLS TLSMode = "none"
)

// Auth mechanisms.
const (
	AuthPlain = "plain"
	AuthLogin = "login"
	// AuthXOAUTH2 authenticates with an OAuth 2.0 access token instead
	// of a password (SASL XOAUTH2): Microsoft 365 (Exchange Online) and
	// Google Workspace, which turn password authentication off. The
	// token comes from Config.OAuthToken, read again for every message.
	AuthXOAUTH2 = "xoauth2"
)

// DefaultSubject is the subject of a code message.
const DefaultSubject = "Your verification code"

// Config configures a Sender. Its JSON is the email sender's in a Caddy
// config; see sender.Options for the fields every sender has (but
// countries: e-mail addresses have none), and for the placeholder tags.
type Config struct {
	// Host is the SMTP server's name; it is also the name its certificate
	// must carry.
	Host string `json:"host,omitempty" placeholder:"required"`
	// Port is the SMTP server's port, from 1 to 65535; default 587, 465
	// with ImplicitTLS, 25 with NoTLS.
	Port int `json:"port,omitempty"`
	// TLS is the TLS mode; default StartTLS.
	TLS TLSMode `json:"tls,omitempty"`
	// TLSConfig replaces the TLS settings (a private CA); its ServerName
	// defaults to Host.
	TLSConfig *tls.Config `json:"-"`
	// Username authenticates, with Password (or OAuthToken), when set.
	// With AuthXOAUTH2 it is the mailbox the token was issued for.
	Username string `json:"username,omitempty" placeholder:"required"`
	// Password is Username's password.
	Password string `json:"password,omitempty" placeholder:"optional"`
	// Auth is the mechanism, AuthPlain (default), AuthLogin or
	// AuthXOAUTH2.
	Auth string `json:"auth,omitempty"`
	// OAuthToken is where AuthXOAUTH2 finds its access token, read
	// again for every message since such tokens last about an hour and
	// something else renews them: "{file./run/secrets/smtp-token}" (a
	// file an agent rewrites), "{env.SMTP_OAUTH_TOKEN}" (an environment
	// variable of the process), or the token itself (only for a test:
	// it expires). The placeholder is resolved by this package at each
	// send, not when the config is loaded; it must resolve when the
	// sender is built too, so that a wrong name fails at start.
	OAuthToken string `json:"oauth_token,omitempty"`
	// From is the sender address ("Shop <no-reply@shop.example>").
	From string `json:"from,omitempty" placeholder:"required"`
	// Subject is the subject; default DefaultSubject. It never holds the
	// code, which would show on lock screens and in notifications.
	Subject string `json:"subject,omitempty"`
	sender.Options
}

// Validate checks the configuration as written, placeholders
// unresolved: a server and a sender address, both credentials or
// neither, a known TLS mode and mechanism, a port in range, a one-line
// subject, and no countries.
func (c *Config) Validate() error {
	if len(c.CountryCodes) > 0 {
		return errors.New("email sender: takes no countries: e-mail addresses have none")
	}
	if err := c.Options.Validate("email"); err != nil {
		return err
	}
	xoauth2 := strings.ToLower(c.Auth) == AuthXOAUTH2
	switch {
	case c.Host == "":
		return errors.New("email sender: needs host")
	case c.From == "":
		return errors.New("email sender: needs from")
	case xoauth2 && (c.Username == "" || c.OAuthToken == ""):
		return errors.New("email sender: auth xoauth2 needs username (the mailbox) and oauth_token")
	case xoauth2 && c.Password != "":
		return errors.New("email sender: auth xoauth2 takes oauth_token, not password")
	case !xoauth2 && c.OAuthToken != "":
		return errors.New("email sender: oauth_token goes with auth xoauth2")
	case !xoauth2 && (c.Username == "") != (c.Password == ""):
		return errors.New("email sender: set both username and password, or neither")
	case c.Port < 0 || c.Port > 65535:
		return fmt.Errorf("email sender: port %d: want a number from 1 to 65535", c.Port)
	case strings.ContainsAny(c.Subject, "\r\n"):
		return errors.New("email sender: subject must be one line")
	}
	switch c.TLS {
	case "", StartTLS, ImplicitTLS, NoTLS:
	default:
		return fmt.Errorf("email sender: tls %q: want %s, %s or %s", c.TLS, StartTLS, ImplicitTLS, NoTLS)
	}
	switch strings.ToLower(c.Auth) {
	case "", AuthPlain, AuthLogin, AuthXOAUTH2:
	default:
		return fmt.Errorf("email sender: auth %q: want %s, %s or %s", c.Auth, AuthPlain, AuthLogin, AuthXOAUTH2)
	}
	return nil
}

// Sender sends codes by e-mail. It is safe for concurrent use.
//
// The destination is Message.To when it is an e-mail address, otherwise
// Message.Email; without either Send fails with Error.Recipient set. The
// body is the message text as plain text, less its WebOTP line ("@host
// #code"), which only browsers reading an SMS use. Temporary SMTP
// failures (4xx replies, connections refused) are retried with backoff
// and jitter while the deadline allows, with the same Message-ID, which
// SendWithID returns. Mail has no delivery receipt the sender could take
// (a bounce comes later, to the envelope sender): the sender is no
// sender.Receipter. Refused authentication and a missing OAuth token are
// sender.Error.Config.
type Sender struct {
	httpsend.Base
	host     string
	port     int
	mode     TLSMode
	tlsCfg   *tls.Config
	user     string
	pass     string
	auth     mail.SMTPAuthType
	from     string
	subject  string
	hostname string
	token    tokenSource // AuthXOAUTH2
}

var (
	_ httpsend.Provider = (*Sender)(nil)
	_ sender.IDSender   = (*Sender)(nil)
)

// New returns a Sender for cfg, or an error saying what is missing or
// malformed. Errors never contain a credential.
func New(cfg Config) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if strings.ContainsAny(cfg.Host, " /:@") {
		return nil, errors.New("email sender: host must be the SMTP server's name, without port")
	}
	from, err := netmail.ParseAddress(cfg.From)
	if err != nil || strings.ContainsAny(cfg.From, "\r\n") {
		return nil, errors.New(`email sender: from must be an address such as "Shop <no-reply@shop.example>"`)
	}
	s := &Sender{
		Base:    httpsend.NewBase(cfg.Options, "email", httpsend.Retrier{}),
		host:    cfg.Host,
		port:    cfg.Port,
		mode:    cmp.Or(cfg.TLS, StartTLS),
		user:    cfg.Username,
		pass:    cfg.Password,
		auth:    mail.SMTPAuthPlain,
		from:    from.String(),
		subject: cmp.Or(cfg.Subject, DefaultSubject),
	}
	switch s.mode {
	case StartTLS:
		s.port = cmp.Or(s.port, 587)
	case ImplicitTLS:
		s.port = cmp.Or(s.port, 465)
	case NoTLS:
		s.port = cmp.Or(s.port, 25)
	}
	switch strings.ToLower(cfg.Auth) {
	case AuthLogin:
		s.auth = mail.SMTPAuthLogin
	case AuthXOAUTH2:
		// go-mail's XOAUTH2 sends the token whatever the connection:
		// never in the clear to another host.
		if s.mode == NoTLS && !isLocal(s.host) {
			return nil, errors.New("email sender: auth xoauth2 over tls none is refused unless the server is on localhost")
		}
		s.auth = mail.SMTPAuthXOAUTH2
		s.token = parseTokenSource(cfg.OAuthToken)
		if _, err := s.token.read(); err != nil {
			return nil, fmt.Errorf("email sender: oauth_token: %v", err)
		}
	}
	if cfg.TLSConfig != nil {
		s.tlsCfg = cfg.TLSConfig.Clone()
	} else {
		s.tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if s.tlsCfg.ServerName == "" {
		s.tlsCfg.ServerName = s.host
	}
	// The name given in EHLO: the sending domain, so that no local host
	// name leaks into the headers of the server's Received line.
	s.hostname = from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	return s, nil
}

// Channel returns sender.Email.
func (*Sender) Channel() sender.Channel { return sender.Email }

// Send mails msg. The error is a *sender.Error; it never holds the code,
// the address or the server's replies as such (they are redacted of
// addresses and numbers).
func (s *Sender) Send(ctx context.Context, msg *sender.Message) error {
	_, err := s.SendWithID(ctx, msg)
	return err
}

// SendWithID is Send, returning the message's Message-ID ("<...@domain>",
// the domain of the sender address).
func (s *Sender) SendWithID(ctx context.Context, msg *sender.Message) (string, error) {
	if msg == nil {
		return "", &sender.Error{Sender: s.Name(), Msg: "no message"}
	}
	to := msg.To
	if !strings.Contains(to, "@") {
		to = msg.Email
	}
	if to == "" {
		return "", &sender.Error{Sender: s.Name(), Recipient: true, Msg: "no e-mail address for this recipient"}
	}
	addr, err := netmail.ParseAddress(to)
	if err != nil || addr.Address != to {
		return "", &sender.Error{Sender: s.Name(), Recipient: true, Msg: "destination is not a plain e-mail address"}
	}
	text := StripWebOTP(msg.Text)
	// The same Message-ID on every attempt, named after the sending
	// domain, not this host.
	id := "<" + rand.Text() + "@" + s.hostname + ">"

	err = httpsend.Do(ctx, &s.Base, func(ctx context.Context) httpsend.Outcome {
		return s.attempt(ctx, addr.Address, text, id)
	})
	if err != nil {
		return "", err
	}
	return id, nil
}

func (s *Sender) attempt(ctx context.Context, to, text, id string) httpsend.Outcome {
	m := mail.NewMsg()
	if err := m.From(s.from); err != nil {
		return httpsend.Failed(&sender.Error{Sender: s.Name(), Msg: "invalid from address"}, false)
	}
	if err := m.To(to); err != nil {
		return httpsend.Failed(&sender.Error{Sender: s.Name(), Recipient: true, Msg: "invalid destination address"}, false)
	}
	m.Subject(s.subject)
	m.SetDate()
	m.SetGenHeader(mail.HeaderMessageID, id)
	m.SetGenHeader(mail.Header("Auto-Submitted"), "auto-generated")
	m.SetBodyString(mail.TypeTextPlain, text)

	// go-mail bounds each step of the conversation with its timeout: give
	// it what remains of the deadline.
	remaining := s.Timeout()
	if d, ok := ctx.Deadline(); ok {
		remaining = time.Until(d)
	}
	if remaining <= 0 {
		return httpsend.Failed(&sender.Error{Sender: s.Name(), Temporary: true, Msg: "timed out"}, false)
	}
	// Dial here rather than in go-mail, to close the connection whatever
	// happens: go-mail leaves it open when STARTTLS or AUTH fails.
	var opened []net.Conn
	defer func() {
		for _, c := range opened {
			c.Close()
		}
	}()
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		d := &net.Dialer{}
		var c net.Conn
		var err error
		if s.mode == ImplicitTLS {
			c, err = (&tls.Dialer{NetDialer: d, Config: s.tlsCfg}).DialContext(ctx, network, address)
		} else {
			c, err = d.DialContext(ctx, network, address)
		}
		if err != nil {
			return nil, err
		}
		opened = append(opened, c)
		return c, nil
	}
	opts := []mail.Option{
		mail.WithPort(s.port),
		mail.WithTimeout(remaining),
		mail.WithTLSConfig(s.tlsCfg),
		mail.WithHELO(s.hostname),
		mail.WithDialContextFunc(dial),
		// A fresh connection per message: no NOOP to check it, no RSET
		// to reuse it.
		mail.WithoutNoop(),
		mail.WithoutRset(),
	}
	switch s.mode {
	case StartTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	case ImplicitTLS:
		// The connection is TLS from the start (see dial).
		opts = append(opts, mail.WithSSL())
	case NoTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	}
	if s.user != "" {
		pass := s.pass
		if s.auth == mail.SMTPAuthXOAUTH2 {
			token, err := s.token.read()
			if err != nil {
				return httpsend.Failed(&sender.Error{Sender: s.Name(), Config: true, Msg: "no OAuth token for SMTP: " + err.Error()}, false)
			}
			pass = token
		}
		opts = append(opts, mail.WithSMTPAuth(s.auth), mail.WithUsername(s.user), mail.WithPassword(pass))
	}
	c, err := mail.NewClient(s.host, opts...)
	if err != nil {
		return httpsend.Failed(&sender.Error{Sender: s.Name(), Msg: httpsend.WithText("configuring the SMTP client failed", err.Error())}, false)
	}
	if err := c.DialAndSendWithContext(ctx, m); err != nil {
		return classify(s.Name(), err)
	}
	return httpsend.Outcome{}
}

// classify turns an error of go-mail into an outcome.
func classify(name string, err error) httpsend.Outcome {
	se := &sender.Error{Sender: name, Msg: httpsend.WithText("SMTP delivery failed", err.Error())}
	var sendErr *mail.SendError
	var opErr *net.OpError
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), isTimeout(err):
		se.Temporary = true
		se.Msg = "timed out"
		return httpsend.Failed(se, false)
	case errors.As(err, &certErr):
		se.Msg = "the SMTP server's certificate does not verify"
		return httpsend.Failed(se, false)
	case errors.As(err, &sendErr):
		if code := sendErr.ErrorCode(); code != 0 {
			se.Code = fmt.Sprint(code)
		}
		if sendErr.IsTemp() {
			se.Temporary = true
			return httpsend.Failed(se, true)
		}
		if sendErr.Reason == mail.ErrSMTPRcptTo {
			se.Recipient = true
		}
		return httpsend.Failed(se, false)
	case errors.As(err, &opErr) && opErr.Op == "dial", errors.As(err, &dnsErr):
		se.Temporary = true
		return httpsend.Failed(se, true)
	}
	// STARTTLS missing, authentication refused, a reply out of protocol:
	// the configuration or the server is wrong.
	se.Config = true
	return httpsend.Failed(se, false)
}

// isLocal reports whether host names this machine.
func isLocal(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// webOTPLine matches a WebOTP line: "@" a host, one space, "#" a code.
var webOTPLine = regexp.MustCompile(`^@[^\s@#]+ #[^\s]+$`)

// StripWebOTP returns text without its last line when that line is a
// WebOTP line ("@shop.example #123456"), and without the blank lines
// that preceded it.
func StripWebOTP(text string) string {
	i := strings.LastIndexByte(text, '\n')
	if i < 0 || !webOTPLine.MatchString(strings.TrimRight(text[i+1:], "\r")) {
		return text
	}
	return strings.TrimRight(text[:i], "\r\n")
}
