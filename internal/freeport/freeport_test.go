package freeport

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"
)

// A held port refuses connections, and no server can bind it, not even
// one that sets SO_REUSEADDR as Go's net package does.
func TestHoldKeepsThePort(t *testing.T) {
	t.Parallel()
	p := Refused(t)
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("a held port accepted a connection")
	}
	if l, err := net.Listen("tcp", p.Addr()); err == nil {
		l.Close()
		t.Fatal("another listener bound a held port")
	} else if !InUse(err.Error()) {
		t.Fatalf("binding a held port: %v, want address already in use", err)
	}
}

// Listen hands the held socket over: the same port, now accepting.
func TestListenHandsOver(t *testing.T) {
	t.Parallel()
	p, err := Hold()
	if err != nil {
		t.Fatal(err)
	}
	l, err := p.Listen()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := l.Addr().(*net.TCPAddr).Port; got != p.Num {
		t.Fatalf("listener on port %d, want %d", got, p.Num)
	}
	c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := p.Listen(); err == nil {
		t.Fatal("a port was handed over twice")
	}
	p.Release() // a no-op now
}

// Retry starts again on new ports when a port was taken, and gives any
// other error back at once.
func TestRetry(t *testing.T) {
	t.Parallel()
	var seen [][]int
	err := Retry(2, func(ports []int) error {
		seen = append(seen, ports)
		if ports[0] == ports[1] {
			t.Errorf("the same port twice: %v", ports)
		}
		if len(seen) < 3 {
			return fmt.Errorf("listen tcp 127.0.0.1:%d: bind: address already in use", ports[0])
		}
		return nil
	})
	if err != nil || len(seen) != 3 {
		t.Fatalf("Retry = %v after %d tries, want success on the third", err, len(seen))
	}
	other := errors.New("config error")
	tries := 0
	if err := Retry(1, func([]int) error { tries++; return other }); !errors.Is(err, other) || tries != 1 {
		t.Fatalf("Retry = %v after %d tries, want the error after one", err, tries)
	}
}

// A stopped server's port can be held again although its connections
// linger in TIME_WAIT, and handed over again.
func TestHoldAfterServerStopped(t *testing.T) {
	t.Parallel()
	l := Listener(t)
	n := l.Addr().(*net.TCPAddr).Port
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if s := <-accepted; s != nil {
		s.Close() // the server closes first: TIME_WAIT on its port
	}
	c.Close()
	l.Close()
	p, err := HoldPort(n)
	if err != nil {
		t.Fatalf("holding the stopped server's port: %v", err)
	}
	defer p.Release()
	l2, err := p.Listen()
	if err != nil {
		t.Fatal(err)
	}
	l2.Close()
}
