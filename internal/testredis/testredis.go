// Package testredis starts real redis-server processes on free loopback
// ports for tests. It never skips: when redis-server is missing, the test
// fails and says how to get it (./xcaddy.sh test installs it).
//
// Ports come from freeport: redis-server binds its port itself, so a
// server whose port was taken before it bound it is started again on
// another.
package testredis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/internal/freeport"
)

// Server is one redis-server process listening on 127.0.0.1.
type Server struct {
	// Port is the TCP port on 127.0.0.1.
	Port int
	// Dir is the server's working directory.
	Dir string

	extra []string
	// confFirst is a config file given before the other arguments
	// (Sentinel mode needs one).
	confFirst string
	mu        sync.Mutex
	cmd       *exec.Cmd
	done      chan struct{}
	// hold keeps the port of a stopped server bound but not listening,
	// so that no other test's server takes it while this one is down
	// (tests in parallel packages start servers on free ports): clients
	// get "connection refused", as from a dead server. nil: none.
	hold *freeport.Port
}

// Addr returns "127.0.0.1:PORT".
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// URL returns "redis://127.0.0.1:PORT/0".
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Binary returns the path of redis-server, or an error that tells how to
// install it.
func Binary() (string, error) {
	if p := os.Getenv("STEPUP_REDIS_SERVER"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", errors.New("redis-server not found in PATH: install Debian's redis-server package " +
			"(./xcaddy.sh test does this when run as root) or set STEPUP_REDIS_SERVER")
	}
	return p, nil
}

// New starts a redis-server in dir (a temporary directory when empty),
// with extra arguments appended to its command line. Stop it with Stop.
func New(dir string, extra ...string) (*Server, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "stepup-redis-")
		if err != nil {
			return nil, err
		}
		dir = d
	}
	var s *Server
	err := freeport.Retry(1, func(ports []int) error {
		s = &Server{Port: ports[0], Dir: dir, extra: extra}
		return s.start()
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// holdPort binds the port without listening.
func (s *Server) holdPort() {
	if p, err := freeport.HoldPort(s.Port); err == nil {
		s.hold = p
	}
}

// releasePort gives the held port back.
func (s *Server) releasePort() {
	if s.hold != nil {
		s.hold.Release()
		s.hold = nil
	}
}

// Start starts (or restarts) the server on its port. The port is held
// while the server is stopped; should another process take it in the
// moment between the release and redis-server's bind, the start is
// tried again for a few seconds.
func (s *Server) Start() error {
	var err error
	for try := 0; try < 20; try++ {
		if err = s.start(); err == nil || !freeport.InUse(err.Error()) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

// start starts the server once.
func (s *Server) start() error {
	s.mu.Lock()
	s.releasePort()
	s.mu.Unlock()
	bin, err := Binary()
	if err != nil {
		return err
	}
	var args []string
	if s.confFirst != "" {
		args = append(args, s.confFirst)
	}
	args = append(args,
		"--port", strconv.Itoa(s.Port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--protected-mode", "yes",
		"--dir", s.Dir,
		"--logfile", filepath.Join(s.Dir, "redis-"+strconv.Itoa(s.Port)+".log"),
	)
	args = append(args, s.extra...)
	cmd := exec.Command(bin, args...)
	cmd.Dir = s.Dir
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited at start; log: %s", s.Port, s.logTail())
		default:
		}
		if s.ping() == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Stop()
	s.Release()
	return fmt.Errorf("redis-server on port %d did not answer PING within 10s", s.Port)
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "redis-"+strconv.Itoa(s.Port)+".log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

// ping sends a PING in the inline protocol and waits for +PONG.
func (s *Server) ping() error {
	conn, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("unexpected answer to PING: %q", line)
	}
	return nil
}

// Raw runs a command with redis-cli and returns its output.
func (s *Server) Raw(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "redis-cli", append([]string{"-p", strconv.Itoa(s.Port)}, args...)...).CombinedOutput()
	return string(out), err
}

// Info returns the INFO section of the server.
func (s *Server) Info(ctx context.Context, section string) (string, error) {
	return s.Raw(ctx, "INFO", section)
}

// Command runs redis-cli-free commands: it sends one command in RESP and
// returns the raw first line of the answer (enough for FLUSHALL, CONFIG).
func (s *Server) Command(ctx context.Context, args ...string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.Addr())
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	return bufio.NewReader(conn).ReadString('\n')
}

// Stop kills the server and waits for it to exit. The port stays
// reserved in s so that Start brings it back at the same address.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
	s.mu.Lock()
	s.holdPort()
	s.mu.Unlock()
}

// Release frees a stopped server's port for good.
func (s *Server) Release() {
	s.mu.Lock()
	s.releasePort()
	s.mu.Unlock()
}

// Run starts a server for the test and stops it when the test ends.
func Run(tb testing.TB, extra ...string) *Server {
	tb.Helper()
	s, err := New(tb.TempDir(), extra...)
	if err != nil {
		tb.Fatalf("test redis: %v", err)
	}
	tb.Cleanup(func() { s.Stop(); s.Release() })
	return s
}

// Pause stops the server's process (SIGSTOP) without closing its
// connections: peers see a server that has hung, as a replica that
// stopped acknowledging. Resume continues it.
func (s *Server) Pause() error { return s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		return errors.New("server not running")
	}
	return cmd.Process.Signal(sig)
}
