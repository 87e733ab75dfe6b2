package sender

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// fake is a Sender whose Send runs a function and counts its calls.
type fake struct {
	name  string
	send  func(ctx context.Context, msg *Message) error
	calls atomic.Int32
}

func (f *fake) Name() string { return f.name }

func (f *fake) Send(ctx context.Context, msg *Message) error {
	f.calls.Add(1)
	return f.send(ctx, msg)
}

func succeed(name string) *fake {
	return &fake{name: name, send: func(context.Context, *Message) error { return nil }}
}

func fail(name string, err error) *fake {
	return &fake{name: name, send: func(context.Context, *Message) error { return err }}
}

// block waits for the context to end and reports how long it was given.
func block(name string, given *time.Duration) *fake {
	return &fake{name: name, send: func(ctx context.Context, _ *Message) error {
		if d, ok := ctx.Deadline(); ok {
			*given = time.Until(d)
		}
		<-ctx.Done()
		return &Error{Sender: name, Temporary: true, Msg: "timed out", Err: ctx.Err()}
	}}
}

func calls(fs ...*fake) []int32 {
	n := make([]int32, len(fs))
	for i, f := range fs {
		n[i] = f.calls.Load()
	}
	return n
}

// testMessage is the message the chain tests send. Its text holds
// characters that JSON must escape and a WebOTP line.
var testMessage = Message{
	To:        "+14155550100",
	Code:      "493817",
	Text:      "Your code is 493817 to pay \"ACME\" <shop> & co.\n\n@shop.example #493817",
	Channel:   SMS,
	Policy:    "checkout",
	Challenge: "ch_7Qx",
	TTL:       5 * time.Minute,
}

// assertClean fails if err's text holds the code or the number.
func assertClean(t *testing.T, err error) {
	t.Helper()
	text := err.Error()
	for _, s := range []string{testMessage.Code, "4155550100"} {
		if strings.Contains(text, s) {
			t.Errorf("error %q contains %q", text, s)
		}
	}
}

func chainSend(t *testing.T, c *Chain) (string, error) {
	t.Helper()
	msg := testMessage
	return c.Send(t.Context(), &msg)
}

func TestChainFailover(t *testing.T) {
	temporary := &Error{Sender: "a", Status: 503, Temporary: true, Msg: "unavailable"}
	permanent := &Error{Sender: "a", Status: 400, Msg: "refused"}
	tests := []struct {
		name  string
		first *fake
	}{
		{"first succeeds", succeed("a")},
		{"temporary failure", fail("a", temporary)},
		{"permanent failure", fail("a", permanent)},
		{"plain error", fail("a", errors.New("boom"))},
		{"panic", &fake{name: "a", send: func(context.Context, *Message) error { panic("code " + testMessage.Code) }}},
		{"runtime error panic", &fake{name: "a", send: func(_ context.Context, msg *Message) error {
			var none []error
			return none[len(msg.Code)]
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			second := succeed("b")
			core, logs := observer.New(zapcore.DebugLevel)
			c := NewChain([]Sender{tt.first, second}, ChainOptions{Logger: zap.New(core)})
			sentBy, err := chainSend(t, c)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			want, wantCalls := "b", []int32{1, 1}
			if tt.name == "first succeeds" {
				want, wantCalls = "a", []int32{1, 0}
			}
			if sentBy != want {
				t.Errorf("sent by %q, want %q", sentBy, want)
			}
			if got := calls(tt.first, second); fmt.Sprint(got) != fmt.Sprint(wantCalls) {
				t.Errorf("calls = %v, want %v", got, wantCalls)
			}
			for _, e := range logs.All() {
				if text := fmt.Sprint(e.Message, e.ContextMap()); strings.Contains(text, testMessage.Code) {
					t.Errorf("log %q contains the code", text)
				}
			}
			if sentBy == "b" && logs.FilterField(zap.String("sender", "a")).Len() == 0 {
				t.Error("the failure of sender a was not logged")
			}
		})
	}
}

func TestChainAllFail(t *testing.T) {
	errA := &Error{Sender: "a", Status: 500, Temporary: true, Msg: "receiver did not take the message"}
	errB := &Error{Sender: "b", Status: 400, Msg: "receiver refused the message"}
	a, b := fail("a", errA), fail("b", errB)
	sentBy, err := chainSend(t, NewChain([]Sender{a, b}, ChainOptions{}))
	if err == nil || sentBy != "" {
		t.Fatalf("Send = %q, %v; want an error", sentBy, err)
	}
	for _, target := range []error{ErrAllFailed, errA, errB} {
		if !errors.Is(err, target) {
			t.Errorf("error %q does not wrap %q", err, target)
		}
	}
	if got := calls(a, b); got[0] != 1 || got[1] != 1 {
		t.Errorf("calls = %v, want each sender tried once", got)
	}
	assertClean(t, err)
}

func TestChainScrubsErrors(t *testing.T) {
	tests := []struct {
		name          string
		err           error
		wantTemporary bool
		wantStatus    int
	}{
		{"code", fmt.Errorf("provider rejected code %s", testMessage.Code), true, 0},
		{"E.164", fmt.Errorf("bad number %s", testMessage.To), true, 0},
		{"digits", errors.New("bad number 14155550100"), true, 0},
		{"national", errors.New("bad number 4155550100"), true, 0},
		{"inside *Error", &Error{Sender: "a", Status: 400, Msg: "refused", Err: errors.New("text: " + testMessage.Text)}, false, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := chainSend(t, NewChain([]Sender{fail("a", tt.err)}, ChainOptions{}))
			if !errors.Is(err, ErrAllFailed) {
				t.Fatalf("error %q does not wrap ErrAllFailed", err)
			}
			assertClean(t, err)
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("error %q holds no *Error", err)
			}
			if se.Sender != "a" || se.Temporary != tt.wantTemporary || se.Status != tt.wantStatus || se.Err != nil {
				t.Errorf("error = %+v, want sender a, temporary %v, status %d, no cause", *se, tt.wantTemporary, tt.wantStatus)
			}
		})
	}

	// An error with nothing to hide is kept, and named after its sender
	// if it is not an *Error.
	plain := errors.New("connection refused")
	_, err := chainSend(t, NewChain([]Sender{fail("a", plain)}, ChainOptions{}))
	var se *Error
	if !errors.Is(err, plain) || !errors.As(err, &se) || se.Sender != "a" || !se.Temporary {
		t.Errorf("error %q: want the plain error wrapped in a temporary *Error of sender a", err)
	}
}

func TestChainPanicAlone(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	p := &fake{name: "p", send: func(context.Context, *Message) error { panic(testMessage.To) }}
	_, err := chainSend(t, NewChain([]Sender{p}, ChainOptions{Logger: zap.New(core)}))
	if !errors.Is(err, ErrAllFailed) || !strings.Contains(err.Error(), "p: panicked") {
		t.Fatalf("error %q, want ErrAllFailed with p: panicked", err)
	}
	assertClean(t, err)
	panics := logs.FilterMessage("sender panicked").All()
	if len(panics) != 1 {
		t.Fatalf("%d panic log entries, want 1", len(panics))
	}
	e := panics[0]
	if e.Level != zapcore.ErrorLevel || e.ContextMap()["panic_type"] != "string" {
		t.Errorf("panic logged as %v %v", e.Level, e.ContextMap())
	}
	if stack, _ := e.ContextMap()["stack"].(string); !strings.Contains(stack, "chain_test.go") {
		t.Errorf("panic log has no stack of the panicking sender: %q", stack)
	}
	if strings.Contains(fmt.Sprint(e.ContextMap()), "4155550100") {
		t.Error("panic log contains the number")
	}
}

func TestChainDeadlines(t *testing.T) {
	t.Run("per sender", func(t *testing.T) {
		var given time.Duration
		a, b := block("a", &given), succeed("b")
		c := NewChain([]Sender{a, b}, ChainOptions{Timeout: 5 * time.Second, PerSender: 100 * time.Millisecond})
		start := time.Now()
		sentBy, err := chainSend(t, c)
		took := time.Since(start)
		if err != nil || sentBy != "b" {
			t.Fatalf("Send = %q, %v; want b", sentBy, err)
		}
		if given <= 0 || given > 100*time.Millisecond {
			t.Errorf("sender a was given %v, want at most 100ms", given)
		}
		if took < 100*time.Millisecond || took > time.Second {
			t.Errorf("Send took %v, want about 100ms", took)
		}
	})
	t.Run("whole delivery", func(t *testing.T) {
		var given time.Duration
		a, b := block("a", &given), succeed("b")
		c := NewChain([]Sender{a, b}, ChainOptions{Timeout: 150 * time.Millisecond, PerSender: 5 * time.Second})
		start := time.Now()
		_, err := chainSend(t, c)
		took := time.Since(start)
		if !errors.Is(err, ErrAllFailed) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %q, want ErrAllFailed and DeadlineExceeded", err)
		}
		if !strings.Contains(err.Error(), "1 of 2 senders for this destination not tried") {
			t.Errorf("error %q does not say that b was not tried", err)
		}
		if given <= 0 || given > 150*time.Millisecond {
			t.Errorf("sender a was given %v, want what remains of 150ms", given)
		}
		if got := calls(a, b); got[0] != 1 || got[1] != 0 {
			t.Errorf("calls = %v, want a tried and b not", got)
		}
		if took > time.Second {
			t.Errorf("Send took %v, want about 150ms", took)
		}
	})
	t.Run("defaults", func(t *testing.T) {
		var given time.Duration
		c := NewChain([]Sender{&fake{name: "a", send: func(ctx context.Context, _ *Message) error {
			d, _ := ctx.Deadline()
			given = time.Until(d)
			return nil
		}}}, ChainOptions{})
		if _, err := chainSend(t, c); err != nil {
			t.Fatal(err)
		}
		if given <= 4*time.Second || given > 5*time.Second {
			t.Errorf("sender was given %v, want the default 5s", given)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		a := succeed("a")
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		msg := testMessage
		_, err := NewChain([]Sender{a}, ChainOptions{}).Send(ctx, &msg)
		if !errors.Is(err, context.Canceled) || a.calls.Load() != 0 {
			t.Errorf("Send = %v after %d calls, want context.Canceled and no call", err, a.calls.Load())
		}
	})
}

func TestChainEmpty(t *testing.T) {
	for _, senders := range [][]Sender{nil, {}, {nil}, {(Sender)(nil), nil}} {
		c := NewChain(senders, ChainOptions{})
		if _, err := chainSend(t, c); !errors.Is(err, ErrNoSenders) {
			t.Errorf("NewChain(%v).Send = %v, want ErrNoSenders", senders, err)
		}
		if len(c.Names()) != 0 {
			t.Errorf("Names = %v, want none", c.Names())
		}
	}
	c := NewChain([]Sender{nil, succeed("a"), nil, succeed("b")}, ChainOptions{})
	if got := strings.Join(c.Names(), ","); got != "a,b" {
		t.Errorf("Names = %q, want a,b", got)
	}
	if _, err := c.Send(t.Context(), nil); err == nil {
		t.Error("Send(nil) succeeded")
	}
}
