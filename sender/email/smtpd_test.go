package email

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// smtpd is a small SMTP server for tests. It speaks just enough of RFC
// 5321 (EHLO, STARTTLS, AUTH PLAIN and LOGIN, MAIL, RCPT, DATA, RSET,
// NOOP, QUIT) for go-mail, and records the conversation.
type smtpd struct {
	// Settings, before start.
	startTLS    bool          // offer STARTTLS
	implicitTLS bool          // speak TLS from the first byte
	user, pass  string        // accept AUTH with these; "" = no AUTH offered
	token       string        // with user: offer XOAUTH2 too, and accept this bearer token
	rcptReply   []string      // replies to RCPT, one per connection, the last repeated; default 250
	greetDelay  time.Duration // wait before the greeting

	tlsCfg *tls.Config
	ln     net.Listener
	done   chan struct{} // closed when the test ends

	mu       sync.Mutex
	conns    int
	ended    int      // connections the client closed or quit
	commands []string // verbs in order, across connections
	authTLS  []bool   // whether each AUTH came over TLS
	mailTLS  []bool   // whether each MAIL came over TLS
	from, to []string
	data     []string
}

// newCert returns a self-signed certificate for 127.0.0.1 and a pool that
// trusts it.
func newCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "smtp test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// start listens on 127.0.0.1 and returns the port and the pool of the
// server's certificate.
func (s *smtpd) start(t *testing.T) (int, *x509.CertPool) {
	t.Helper()
	cert, pool := newCert(t)
	s.tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln = ln
	s.done = make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() {
		close(s.done)
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { s.serve(t, c) })
		}
	})
	return ln.Addr().(*net.TCPAddr).Port, pool
}

func (s *smtpd) record(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

func (s *smtpd) serve(t *testing.T, c net.Conn) {
	defer c.Close()
	defer s.record(func() { s.ended++ })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var n int
	s.record(func() { s.conns++; n = s.conns })
	overTLS := false
	if s.implicitTLS {
		c = tls.Server(c, s.tlsCfg)
		overTLS = true
	}
	r := bufio.NewReader(c)
	reply := func(lines ...string) {
		for _, l := range lines {
			if _, err := c.Write([]byte(l + "\r\n")); err != nil {
				return
			}
		}
	}
	readLine := func() (string, bool) {
		l, err := r.ReadString('\n')
		if err != nil {
			return "", false
		}
		return strings.TrimRight(l, "\r\n"), true
	}
	if s.greetDelay > 0 {
		// Wait, noticing a client that hangs up: it sends nothing before
		// the greeting, so a read ends only with its close or the delay.
		c.SetReadDeadline(time.Now().Add(s.greetDelay))
		var b [1]byte
		if _, err := c.Read(b[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
	}
	reply("220 127.0.0.1 ESMTP test")
	for {
		line, ok := readLine()
		if !ok {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		s.record(func() { s.commands = append(s.commands, verb) })
		switch verb {
		case "EHLO":
			ext := []string{"250-127.0.0.1 greets " + arg, "250-8BITMIME"}
			if s.startTLS && !overTLS {
				ext = append(ext, "250-STARTTLS")
			}
			switch {
			case s.user != "" && s.token != "":
				ext = append(ext, "250-AUTH PLAIN LOGIN XOAUTH2")
			case s.user != "":
				ext = append(ext, "250-AUTH PLAIN LOGIN")
			}
			ext = append(ext, "250 SIZE 10240000")
			reply(ext...)
		case "HELO":
			reply("250 127.0.0.1")
		case "STARTTLS":
			if !s.startTLS || overTLS {
				reply("502 5.5.1 not offered")
				continue
			}
			reply("220 2.0.0 ready to start TLS")
			tc := tls.Server(c, s.tlsCfg)
			if err := tc.Handshake(); err != nil {
				return
			}
			c, r, overTLS = tc, bufio.NewReader(tc), true
		case "AUTH":
			s.record(func() { s.authTLS = append(s.authTLS, overTLS) })
			user, pass, ok := s.auth(arg, reply, readLine)
			want := s.pass
			if strings.HasPrefix(strings.ToUpper(arg), "XOAUTH2") {
				want = s.token
			}
			if !ok || user != s.user || pass != want || want == "" {
				reply("535 5.7.8 authentication failed")
				continue
			}
			reply("235 2.7.0 authenticated")
		case "MAIL":
			s.record(func() {
				s.mailTLS = append(s.mailTLS, overTLS)
				s.from = append(s.from, arg)
			})
			reply("250 2.1.0 ok")
		case "RCPT":
			s.record(func() { s.to = append(s.to, arg) })
			rr := "250 2.1.5 ok"
			if len(s.rcptReply) > 0 {
				rr = s.rcptReply[min(n-1, len(s.rcptReply)-1)]
			}
			reply(rr)
		case "DATA":
			reply("354 end with <CRLF>.<CRLF>")
			var b strings.Builder
			for {
				l, ok := readLine()
				if !ok {
					return
				}
				if l == "." {
					break
				}
				b.WriteString(strings.TrimPrefix(l, ".") + "\n")
			}
			s.record(func() { s.data = append(s.data, b.String()) })
			reply("250 2.0.0 queued as 4F2A")
		case "RSET", "NOOP":
			reply("250 2.0.0 ok")
		case "QUIT":
			reply("221 2.0.0 bye")
			return
		default:
			reply("502 5.5.2 command not recognized")
		}
	}
}

// auth reads the credentials of an AUTH command.
func (s *smtpd) auth(arg string, reply func(...string), readLine func() (string, bool)) (user, pass string, ok bool) {
	mech, initial, _ := strings.Cut(arg, " ")
	decode := func(v string) string {
		b, _ := base64.StdEncoding.DecodeString(v)
		return string(b)
	}
	switch strings.ToUpper(mech) {
	case "PLAIN":
		if initial == "" {
			reply("334 ")
			if initial, ok = readLine(); !ok {
				return "", "", false
			}
		}
		parts := strings.Split(decode(initial), "\x00")
		if len(parts) != 3 {
			return "", "", false
		}
		return parts[1], parts[2], true
	case "LOGIN":
		if initial == "" {
			reply("334 " + base64.StdEncoding.EncodeToString([]byte("Username:")))
			if initial, ok = readLine(); !ok {
				return "", "", false
			}
		}
		user = decode(initial)
		reply("334 " + base64.StdEncoding.EncodeToString([]byte("Password:")))
		p, ok := readLine()
		if !ok {
			return "", "", false
		}
		return user, decode(p), true
	case "XOAUTH2":
		// "user=" user "\x01auth=Bearer " token "\x01\x01" (Google's and
		// Microsoft's SASL XOAUTH2).
		fields := strings.Split(strings.TrimSuffix(decode(initial), "\x01\x01"), "\x01")
		if len(fields) != 2 || !strings.HasPrefix(fields[0], "user=") || !strings.HasPrefix(fields[1], "auth=Bearer ") {
			return "", "", false
		}
		return strings.TrimPrefix(fields[0], "user="), strings.TrimPrefix(fields[1], "auth=Bearer "), true
	}
	return "", "", false
}

// waitClosed fails t unless every connection ends within a second: the
// client must close its connections, whatever happened.
func (s *smtpd) waitClosed(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		s.mu.Lock()
		conns, ended := s.conns, s.ended
		s.mu.Unlock()
		if conns == ended {
			return
		}
	}
	t.Errorf("the client left connections open")
}

// snapshot returns copies of what was recorded.
func (s *smtpd) snapshot() (conns int, commands []string, authTLS, mailTLS []bool, from, to, data []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns, append([]string(nil), s.commands...), append([]bool(nil), s.authTLS...), append([]bool(nil), s.mailTLS...),
		append([]string(nil), s.from...), append([]string(nil), s.to...), append([]string(nil), s.data...)
}
