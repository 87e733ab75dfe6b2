// Package freeport hands tests TCP ports on 127.0.0.1 that nothing else
// takes in the meantime. It is the one free-port helper of the
// repository: the unit tests, the end-to-end tests (module e2e) and the
// benchmark runner (module bench) use it.
//
// A port chosen by opening a listener on port 0 and closing it can be
// taken by another process (a test in a parallel package, another
// developer's test run) before it is used. Here a port is held by a
// socket bound to it that does not listen: connections to it are
// refused, and no other socket can bind it. Listen turns the held
// socket into a listener with no gap, for servers in the test process.
// A child process that binds the port itself (redis-server, Caddy)
// is given the number once the hold is released; the short gap that
// leaves is closed by starting the process again on new ports when it
// found one taken: Retry does that, InUse recognises the failure.
package freeport

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Port is a TCP port on 127.0.0.1, held until Listen or Release.
type Port struct {
	// Num is the port number.
	Num int

	mu sync.Mutex
	fd int // the bound socket; -1 once released or listening
}

// Hold binds a port the kernel chooses.
func Hold() (*Port, error) { return HoldPort(0) }

// HoldPort binds port n of 127.0.0.1 (0: a free one the kernel
// chooses), for instance to keep a stopped server's port until it
// starts again.
func HoldPort(n int) (*Port, error) {
	fd, err := bind(n, false)
	if errors.Is(err, syscall.EADDRINUSE) && n != 0 {
		// The connections of a server that just stopped linger in
		// TIME_WAIT on its port, which only a socket with SO_REUSEADDR
		// may bind. Such a hold still keeps the port from every socket
		// bound to port 0 and from outgoing connections, though not
		// from another SO_REUSEADDR socket bound to the number itself.
		fd, err = bind(n, true)
	}
	if err != nil {
		return nil, err
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		return nil, os.NewSyscallError("getsockname", err)
	}
	return &Port{Num: sa.(*syscall.SockaddrInet4).Port, fd: fd}, nil
}

// bind returns a TCP socket bound to port n of 127.0.0.1.
//
// Without SO_REUSEADDR (reuse false) the hold is complete: Linux lets
// two sockets that both set it bind one port while neither listens, and
// servers set it (Go's net package, redis-server, Caddy), but their bind
// fails against a socket that did not.
func bind(n int, reuse bool) (int, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	if reuse {
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
			syscall.Close(fd)
			return -1, os.NewSyscallError("setsockopt", err)
		}
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: n, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		return -1, fmt.Errorf("binding 127.0.0.1:%d: %w", n, err)
	}
	return fd, nil
}

// Addr returns "127.0.0.1:PORT".
func (p *Port) Addr() string { return fmt.Sprintf("127.0.0.1:%d", p.Num) }

// Listen makes the held socket listen and returns it as a listener: the
// port passes from the hold to the server without a moment free.
func (p *Port) Listen() (net.Listener, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fd < 0 {
		return nil, fmt.Errorf("freeport: port %d is no longer held", p.Num)
	}
	fd := p.fd
	p.fd = -1
	// A listening socket keeps its port by itself. SO_REUSEADDR, set as
	// servers set it, lets the port be bound again (HoldPort, a
	// restart) while the connections it closed linger in TIME_WAIT.
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		syscall.Close(fd)
		return nil, os.NewSyscallError("setsockopt", err)
	}
	if err := syscall.Listen(fd, syscall.SOMAXCONN); err != nil {
		syscall.Close(fd)
		return nil, os.NewSyscallError("listen", err)
	}
	f := os.NewFile(uintptr(fd), p.Addr())
	defer f.Close() // FileListener works on a duplicate
	return net.FileListener(f)
}

// Release gives the port up, for a child process to bind it: start that
// process through Retry, or retry it yourself when InUse says the port
// was taken in between.
func (p *Port) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fd >= 0 {
		syscall.Close(p.fd)
		p.fd = -1
	}
}

// Listener returns a listener on a free port for a server in the test
// process; it is closed when the test ends (closing it earlier is fine).
func Listener(tb testing.TB) net.Listener {
	tb.Helper()
	p, err := Hold()
	if err != nil {
		tb.Fatal(err)
	}
	l, err := p.Listen()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

// Refused returns a port held for the whole test: connections to it are
// refused, as by a server that is down, and no server can start on it.
func Refused(tb testing.TB) *Port {
	tb.Helper()
	p, err := Hold()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Release)
	return p
}

// Retry calls start with n distinct ports that were held until the
// call, and again with new ones as long as start fails because a port
// was taken before the process bound it (InUse), at most 10 times.
// start must leave nothing behind when it fails.
func Retry(n int, start func(ports []int) error) error {
	var err error
	for try := 0; try < 10; try++ {
		held := make([]*Port, 0, n)
		for len(held) < n {
			p, herr := Hold()
			if herr != nil {
				for _, h := range held {
					h.Release()
				}
				return herr
			}
			held = append(held, p)
		}
		ports := make([]int, n)
		for i, p := range held {
			ports[i] = p.Num
			p.Release()
		}
		if err = start(ports); err == nil || !InUse(err.Error()) {
			return err
		}
	}
	return fmt.Errorf("freeport: ports taken by others 10 times in a row: %w", err)
}

// InUse reports whether an error or a process's log says that an
// address was already in use.
func InUse(s string) bool {
	return strings.Contains(strings.ToLower(s), "address already in use")
}
