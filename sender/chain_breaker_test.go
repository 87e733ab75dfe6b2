package sender

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// routed is a fake sender that declares a channel, countries and a
// budget.
type routed struct {
	*fake
	channel   Channel
	countries []string
	budget    time.Duration
}

func (r *routed) Channel() Channel       { return r.channel }
func (r *routed) Countries() []string    { return r.countries }
func (r *routed) Timeout() time.Duration { return r.budget }

func TestChainBreakerAllOpen(t *testing.T) {
	a := fail("a", &Error{Sender: "a", Status: 500, Temporary: true, Msg: "down"})
	c := NewChain([]Sender{a}, ChainOptions{BreakerFailures: 1, BreakerCooldown: time.Minute})
	if _, err := chainSend(t, c); errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("first failure reported as circuit open: %v", err)
	}
	_, err := chainSend(t, c)
	if !errors.Is(err, ErrAllFailed) || !errors.Is(err, ErrCircuitOpen) || a.calls.Load() != 1 {
		t.Fatalf("Send = %v after %d calls; want ErrAllFailed and ErrCircuitOpen, one call", err, a.calls.Load())
	}
	var se *Error
	if !errors.As(err, &se) || se.Sender != "a" || !se.Temporary {
		t.Errorf("error %v: want a temporary *Error of sender a", err)
	}
}

// Failures that say nothing about the sender's health do not open its
// circuit.
func TestChainBreakerIgnores(t *testing.T) {
	t.Run("recipient errors", func(t *testing.T) {
		a := fail("a", &Error{Sender: "a", Status: 400, Recipient: true, Msg: "not a mobile number"})
		c := NewChain([]Sender{a}, ChainOptions{BreakerFailures: 1})
		for range 5 {
			chainSend(t, c)
		}
		if a.calls.Load() != 5 {
			t.Errorf("%d calls, want 5: recipient errors must not open the circuit", a.calls.Load())
		}
	})
	t.Run("cancelled by the caller", func(t *testing.T) {
		var cancel context.CancelFunc
		a := &fake{name: "a", send: func(ctx context.Context, _ *Message) error {
			cancel() // the caller goes away while the sender works
			<-ctx.Done()
			return ctx.Err()
		}}
		c := NewChain([]Sender{a}, ChainOptions{BreakerFailures: 1})
		for range 3 {
			ctx, stop := context.WithCancel(t.Context())
			cancel = stop
			msg := testMessage
			if _, err := c.Send(ctx, &msg); !errors.Is(err, context.Canceled) {
				t.Errorf("Send = %v, want context.Canceled", err)
			}
			stop()
		}
		if a.calls.Load() != 3 {
			t.Errorf("%d calls, want 3", a.calls.Load())
		}
	})
	t.Run("given less than its budget", func(t *testing.T) {
		var given time.Duration
		a := block("a", &given)
		c := NewChain([]Sender{a}, ChainOptions{Timeout: 50 * time.Millisecond, PerSender: time.Second, BreakerFailures: 1})
		for range 3 {
			chainSend(t, c)
		}
		if a.calls.Load() != 3 {
			t.Errorf("%d calls, want 3: a timeout on a cut budget must not count", a.calls.Load())
		}
	})
	t.Run("but its own timeouts count", func(t *testing.T) {
		var given time.Duration
		a := block("a", &given)
		c := NewChain([]Sender{a}, ChainOptions{Timeout: 5 * time.Second, PerSender: 30 * time.Millisecond, BreakerFailures: 2})
		for range 4 {
			chainSend(t, c)
		}
		if a.calls.Load() != 2 {
			t.Errorf("%d calls, want 2: the circuit should open after two timeouts", a.calls.Load())
		}
	})
	t.Run("breakers disabled", func(t *testing.T) {
		a := fail("a", &Error{Sender: "a", Status: 500, Temporary: true, Msg: "down"})
		c := NewChain([]Sender{a}, ChainOptions{BreakerFailures: -1})
		for range 6 {
			chainSend(t, c)
		}
		if a.calls.Load() != 6 {
			t.Errorf("%d calls, want 6", a.calls.Load())
		}
	})
	t.Run("panics count", func(t *testing.T) {
		a := &fake{name: "a", send: func(context.Context, *Message) error { panic("boom") }}
		c := NewChain([]Sender{a, succeed("b")}, ChainOptions{BreakerFailures: 2})
		for range 4 {
			if by, err := chainSend(t, c); by != "b" {
				t.Fatalf("Send = %q, %v", by, err)
			}
		}
		if a.calls.Load() != 2 {
			t.Errorf("%d calls, want 2", a.calls.Load())
		}
	})
}

func TestChainRouting(t *testing.T) {
	dlt := &routed{fake: succeed("msg91"), channel: SMS, countries: []string{"in"}}
	intl := &routed{fake: succeed("twilio"), channel: SMS}
	wa := &routed{fake: fail("whatsapp", &Error{Sender: "whatsapp", Temporary: true, Msg: "down"}), channel: WhatsApp}
	mail := &routed{fake: succeed("email"), channel: Email}
	hook := succeed("webhook")

	tests := []struct {
		name    string
		senders []Sender
		to      string
		email   string
		wantBy  string
		wantErr error
		calls   map[*fake]int32
	}{
		{"Indian number to the DLT provider", []Sender{dlt, intl}, "+919876543210", "", "msg91", nil,
			map[*fake]int32{dlt.fake: 1, intl.fake: 0}},
		{"other numbers skip it", []Sender{dlt, intl}, "+14155550100", "", "twilio", nil,
			map[*fake]int32{dlt.fake: 0, intl.fake: 1}},
		{"no sender for the country", []Sender{dlt}, "+14155550100", "", "", ErrNoRoute,
			map[*fake]int32{dlt.fake: 0}},
		{"email senders skip phone numbers", []Sender{wa, mail}, "+14155550100", "", "", ErrAllFailed,
			map[*fake]int32{wa.fake: 1, mail.fake: 0}},
		{"email as fallback when an address is known", []Sender{wa, mail}, "+14155550100", "user@example.com", "email", nil,
			map[*fake]int32{wa.fake: 1, mail.fake: 1}},
		{"phone senders skip addresses", []Sender{dlt, intl, wa, mail}, "user@example.com", "", "email", nil,
			map[*fake]int32{dlt.fake: 0, intl.fake: 0, wa.fake: 0, mail.fake: 1}},
		{"senders without a channel take everything", []Sender{dlt, hook}, "user@example.com", "", "webhook", nil,
			map[*fake]int32{dlt.fake: 0, hook: 1}},
		{"unparsable number: only unrestricted senders", []Sender{dlt, intl}, "+999", "", "twilio", nil,
			map[*fake]int32{dlt.fake: 0, intl.fake: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for f := range tt.calls {
				f.calls.Store(0)
			}
			c := NewChain(tt.senders, ChainOptions{BreakerFailures: -1})
			msg := testMessage
			msg.To, msg.Email = tt.to, tt.email
			by, err := c.Send(t.Context(), &msg)
			if by != tt.wantBy || (tt.wantErr == nil) != (err == nil) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("Send = %q, %v; want %q, %v", by, err, tt.wantBy, tt.wantErr)
			}
			if errors.Is(tt.wantErr, ErrNoRoute) && !errors.Is(err, ErrAllFailed) {
				t.Errorf("error %v does not wrap ErrAllFailed", err)
			}
			for f, want := range tt.calls {
				if got := f.calls.Load(); got != want {
					t.Errorf("%s called %d times, want %d", f.name, got, want)
				}
			}
			if err != nil {
				for _, s := range []string{"9876543210", "4155550100", "user@example.com", testMessage.Code} {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error %q contains %q", err, s)
					}
				}
			}
		})
	}
}

func TestChainSenderBudget(t *testing.T) {
	var given time.Duration
	a := &routed{fake: block("a", &given), budget: 80 * time.Millisecond}
	c := NewChain([]Sender{a, succeed("b")}, ChainOptions{PerSender: 5 * time.Second})
	start := time.Now()
	if by, err := chainSend(t, c); by != "b" || err != nil {
		t.Fatalf("Send = %q, %v", by, err)
	}
	if given <= 0 || given > 80*time.Millisecond || time.Since(start) > time.Second {
		t.Errorf("sender a was given %v, want its own 80ms", given)
	}

	// The chain's deadline still bounds it.
	a = &routed{fake: block("a", &given), budget: 5 * time.Second}
	c = NewChain([]Sender{a}, ChainOptions{Timeout: 60 * time.Millisecond})
	start = time.Now()
	chainSend(t, c)
	if given > 60*time.Millisecond || time.Since(start) > time.Second {
		t.Errorf("sender a was given %v, want at most the chain's 60ms", given)
	}
}

func TestChainScrubsEmail(t *testing.T) {
	a := &routed{fake: fail("email", errors.New("550 <user@example.com> unknown")), channel: Email}
	c := NewChain([]Sender{a}, ChainOptions{})
	msg := testMessage
	msg.Email = "user@example.com"
	_, err := c.Send(t.Context(), &msg)
	if err == nil || strings.Contains(err.Error(), "user@example.com") {
		t.Errorf("error %v: want one without the address", err)
	}
}

// Channels lists the declared channels that reach the destination, once
// each, in order; a message with ChannelOnly goes only to senders of its
// channel (and to senders that declare none), never failing over to
// another channel.
func TestChainChannelsAndChannelOnly(t *testing.T) {
	sms := &routed{fake: succeed("twilio"), channel: SMS}
	sms2 := &routed{fake: succeed("vonage"), channel: SMS}
	wa := &routed{fake: succeed("whatsapp"), channel: WhatsApp}
	mail := &routed{fake: succeed("email"), channel: Email}
	c := NewChain([]Sender{sms, sms2, wa, mail}, ChainOptions{})
	msg := &Message{To: "+14155550100", Code: "123456", Text: "123456"}
	if got := c.Channels(msg); strings.Join(chans(got), ",") != "sms,whatsapp" {
		t.Fatalf("Channels without an e-mail address = %v", got)
	}
	msg.Email = "alice@example.com"
	if got := c.Channels(msg); strings.Join(chans(got), ",") != "sms,whatsapp,email" {
		t.Fatalf("Channels with an e-mail address = %v", got)
	}
	if ch := c.ChannelOf("whatsapp"); ch != WhatsApp {
		t.Fatalf("ChannelOf(whatsapp) = %q", ch)
	}
	if ch := c.ChannelOf("nope"); ch != "" {
		t.Fatalf("ChannelOf(nope) = %q", ch)
	}

	msg.Channel, msg.ChannelOnly = WhatsApp, true
	if by, err := c.Send(context.Background(), msg); err != nil || by != "whatsapp" {
		t.Fatalf("Send on WhatsApp only = %q, %v", by, err)
	}
	if sms.calls.Load() != 0 || sms2.calls.Load() != 0 {
		t.Fatal("an SMS sender was tried for a WhatsApp-only message")
	}
	// The chosen channel failing is an error, not a silent SMS.
	waDown := &routed{fake: fail("whatsapp", &Error{Sender: "whatsapp", Msg: "down"}), channel: WhatsApp}
	hook := succeed("hook") // declares no channel: carries any
	c = NewChain([]Sender{sms, waDown}, ChainOptions{})
	if by, err := c.Send(context.Background(), msg); err == nil {
		t.Fatalf("Send on WhatsApp only with WhatsApp down went through %q", by)
	}
	c = NewChain([]Sender{sms, waDown, hook}, ChainOptions{})
	if by, err := c.Send(context.Background(), msg); err != nil || by != "hook" {
		t.Fatalf("Send on WhatsApp only with a generic webhook after it = %q, %v", by, err)
	}
	if sms.calls.Load() != 0 {
		t.Fatal("an SMS sender was tried for a WhatsApp-only message")
	}
	if got := c.Channels(msg); strings.Join(chans(got), ",") != "sms,whatsapp" {
		t.Fatalf("Channels ignore ChannelOnly and generic senders: got %v", got)
	}
}

func chans(cs []Channel) []string {
	var out []string
	for _, c := range cs {
		out = append(out, string(c))
	}
	return out
}
