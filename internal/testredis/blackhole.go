package testredis

import (
	"errors"
	"net"
	"strconv"
	"syscall"
	"time"
)

// BlackHole is a TCP port on 127.0.0.1 that accepts no connection: a
// socket listening with the smallest backlog, whose accept queue is
// filled by connections that are never accepted. Linux then drops every
// further SYN, so a dial hangs until its timeout, as it does against a
// firewalled or vanished host. It needs no privileges.
type BlackHole struct {
	// Port is the TCP port on 127.0.0.1.
	Port  int
	fd    int
	conns []net.Conn
}

// Addr returns "127.0.0.1:PORT".
func (b *BlackHole) Addr() string { return "127.0.0.1:" + strconv.Itoa(b.Port) }

// URL returns "redis://127.0.0.1:PORT/0".
func (b *BlackHole) URL() string { return "redis://" + b.Addr() + "/0" }

// NewBlackHole opens a black hole and checks that a dial to it times
// out.
func NewBlackHole() (*BlackHole, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return nil, err
	}
	b := &BlackHole{fd: fd}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		b.Close()
		return nil, err
	}
	if err := syscall.Listen(fd, 0); err != nil {
		b.Close()
		return nil, err
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		b.Close()
		return nil, err
	}
	b.Port = sa.(*syscall.SockaddrInet4).Port
	// Fill the accept queue: with backlog 0 it holds one or two
	// connections; the first dial that times out proves it full.
	for range 16 {
		c, err := net.DialTimeout("tcp", b.Addr(), 200*time.Millisecond)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return b, nil
			}
			b.Close()
			return nil, err
		}
		b.conns = append(b.conns, c)
	}
	b.Close()
	return nil, errors.New("black hole: every dial was accepted; the kernel does not drop SYNs on a full accept queue")
}

// Close closes the black hole and the connections that filled it.
func (b *BlackHole) Close() {
	for _, c := range b.conns {
		_ = c.Close()
	}
	b.conns = nil
	if b.fd >= 0 {
		_ = syscall.Close(b.fd)
		b.fd = -1
	}
}
