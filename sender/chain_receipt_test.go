package sender

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// receipter is a fake sender with a provider message id and receipts.
type receipter struct {
	*fake
	id       string
	receipts bool
	got      []string // the ReceiptURL of each message it was given
}

func (r *receipter) SendWithID(ctx context.Context, msg *Message) (string, error) {
	r.got = append(r.got, msg.ReceiptURL)
	if err := r.Send(ctx, msg); err != nil {
		return "", err
	}
	return r.id, nil
}

func (r *receipter) Receipts() bool { return r.receipts }

func (r *receipter) ParseReceipt(*http.Request, string) ([]Receipt, error) { return nil, nil }

func TestChainDeliverIDAndReceiptURL(t *testing.T) {
	url := func(name string) string { return "https://shop.example/.stepup/receipts/" + name }
	down := &receipter{fake: fail("down", &Error{Sender: "down", Temporary: true, Msg: "down"}), id: "x", receipts: true}
	off := &receipter{fake: fail("off", &Error{Sender: "off", Temporary: true, Msg: "down"}), id: "y", receipts: false}
	twilio := &receipter{fake: succeed("twilio"), id: "SM123", receipts: true}
	c := NewChain([]Sender{down, off, twilio}, ChainOptions{ReceiptURL: url})
	msg := testMessage
	d, err := c.Deliver(t.Context(), &msg)
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	want := Delivery{Sender: "twilio", MessageID: "SM123", ReceiptURL: url("twilio")}
	if d != want {
		t.Errorf("Deliver = %+v, want %+v", d, want)
	}
	// Each sender got its own URL; one that takes no receipts none.
	if down.got[0] != url("down") || off.got[0] != "" || twilio.got[0] != url("twilio") {
		t.Errorf("receipt URLs given: %q %q %q", down.got, off.got, twilio.got)
	}
	if msg.ReceiptURL != "" {
		t.Errorf("the caller's message was changed: ReceiptURL %q", msg.ReceiptURL)
	}

	// A sender without ids or receipts: no id, no URL; Send still works.
	c = NewChain([]Sender{succeed("log")}, ChainOptions{ReceiptURL: url})
	if d, err := c.Deliver(t.Context(), &msg); err != nil || d != (Delivery{Sender: "log"}) {
		t.Errorf("Deliver = %+v, %v", d, err)
	}
	if by, err := c.Send(t.Context(), &msg); by != "log" || err != nil {
		t.Errorf("Send = %q, %v", by, err)
	}
	// No ReceiptURL option: no URL, the id still comes back.
	twilio.got = nil
	c = NewChain([]Sender{twilio}, ChainOptions{})
	if d, err := c.Deliver(t.Context(), &msg); err != nil || d != (Delivery{Sender: "twilio", MessageID: "SM123"}) || twilio.got[0] != "" {
		t.Errorf("Deliver = %+v, %v; URL given %q", d, err, twilio.got)
	}
}

func TestChainConfigurationErrors(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	region := &Error{Sender: "twilio", Status: 400, Code: "21408", Config: true, Recipient: true, Msg: "region not enabled"}
	auth := &Error{Sender: "vonage", Status: 401, Code: "4", Config: true, Msg: "bad credentials"}
	a := fail("twilio", region)
	b := fail("vonage", auth)
	c := NewChain([]Sender{a, b}, ChainOptions{BreakerFailures: 2, Logger: zap.New(core)})
	for range 4 {
		chainSend(t, c)
	}
	// A region the account may not send to concerns that region only: the
	// breaker does not count it. Refused credentials concern everything.
	if a.calls.Load() != 4 || b.calls.Load() != 2 {
		t.Errorf("calls %d, %d; want 4 (region errors open no circuit) and 2", a.calls.Load(), b.calls.Load())
	}
	failed := logs.FilterMessage("sender failed").All()
	if len(failed) != 6 {
		t.Fatalf("%d 'sender failed' entries, want 6", len(failed))
	}
	for _, e := range failed {
		if e.Level != zapcore.ErrorLevel || e.ContextMap()["kind"] != "configuration" {
			t.Errorf("entry %v %v, want an error of kind configuration", e.Level, e.ContextMap())
		}
	}
	if got := region.Error(); got != "twilio: region not enabled (status 400) (code 21408) (configuration)" {
		t.Errorf("Error() = %q", got)
	}
	for err, want := range map[*Error]string{
		region: "configuration", auth: "configuration",
		{Recipient: true}: "recipient", {Temporary: true}: "temporary", {}: "permanent",
	} {
		if got := err.Kind(); got != want {
			t.Errorf("%+v: Kind() = %q, want %q", *err, got, want)
		}
	}
}

func TestChainRecipientLimitOpensNoCircuit(t *testing.T) {
	// WhatsApp 131056: too many messages to this one user for now. The
	// sender works for everyone else.
	pair := &Error{Sender: "whatsapp", Status: 400, Code: "131056", Temporary: true, Recipient: true, Msg: "pair rate limit"}
	a := fail("whatsapp", pair)
	c := NewChain([]Sender{a, succeed("sms")}, ChainOptions{BreakerFailures: 1})
	for range 3 {
		if by, _ := chainSend(t, c); by != "sms" {
			t.Fatalf("delivered by %q", by)
		}
	}
	if a.calls.Load() != 3 {
		t.Errorf("%d calls, want 3", a.calls.Load())
	}
}

func TestReceiptHTTPStatus(t *testing.T) {
	for err, want := range map[error]int{
		nil:                             200,
		&Handshake{Body: []byte("1")}:   200,
		ErrReceiptUnsigned:              401,
		ErrReceiptForged:                403,
		ErrReceiptMalformed:             400,
		ErrReceiptsOff:                  404,
		errors.New("store unreachable"): 500,
	} {
		if got := ReceiptHTTPStatus(err); got != want {
			t.Errorf("ReceiptHTTPStatus(%v) = %d, want %d", err, got, want)
		}
	}
	wrapped := errors.Join(errors.New("x"), ErrReceiptForged)
	if ReceiptHTTPStatus(wrapped) != 403 {
		t.Errorf("a wrapped error is not read")
	}
	for s, want := range map[DeliveryStatus][3]bool{ // final, reached, failed
		StatusQueued: {}, StatusSent: {}, StatusUnknown: {},
		StatusDelivered: {true, true, false}, StatusRead: {true, true, false},
		StatusUndelivered: {true, false, true}, StatusFailed: {true, false, true},
	} {
		if got := [3]bool{s.Final(), s.Reached(), s.Failed()}; got != want {
			t.Errorf("%s: final, reached, failed = %v, want %v", s, got, want)
		}
	}
}

func TestChainDeliverSkipping(t *testing.T) {
	url := func(name string) string { return "https://shop.example/.stepup/receipts/" + name }
	first := &receipter{fake: succeed("first"), id: "F1", receipts: true}
	second := &receipter{fake: succeed("second"), id: "S1", receipts: true}
	third := succeed("third")
	c := NewChain([]Sender{first, second, third}, ChainOptions{ReceiptURL: url})
	msg := testMessage
	d, err := c.DeliverSkipping(t.Context(), &msg, []string{"first"})
	if err != nil || d != (Delivery{Sender: "second", MessageID: "S1", ReceiptURL: url("second")}) {
		t.Fatalf("DeliverSkipping(first) = %+v, %v", d, err)
	}
	if first.calls.Load() != 0 {
		t.Errorf("a skipped sender was tried %d times", first.calls.Load())
	}
	d, err = c.DeliverSkipping(t.Context(), &msg, []string{"first", "second"})
	if err != nil || d.Sender != "third" {
		t.Fatalf("DeliverSkipping(first, second) = %+v, %v", d, err)
	}
	if got := c.Serving(&msg, []string{"second"}); len(got) != 2 || got[0] != "first" || got[1] != "third" {
		t.Errorf("Serving without second = %v", got)
	}
	// Every sender skipped: no route, and nothing counted as a failure.
	_, err = c.DeliverSkipping(t.Context(), &msg, []string{"first", "second", "third"})
	if !errors.Is(err, ErrAllFailed) || !errors.Is(err, ErrNoRoute) {
		t.Errorf("all skipped: %v, want ErrAllFailed and ErrNoRoute", err)
	}
	if first.calls.Load() != 0 || second.calls.Load() != 1 || third.calls.Load() != 1 {
		t.Errorf("calls: first %d, second %d, third %d", first.calls.Load(), second.calls.Load(), third.calls.Load())
	}
}

func TestChainReceipter(t *testing.T) {
	url := func(name string) string { return "https://shop.example/.stepup/receipts/" + name }
	on := &receipter{fake: succeed("on"), receipts: true}
	off := &receipter{fake: succeed("off"), receipts: false}
	c := NewChain([]Sender{on, off, succeed("log")}, ChainOptions{ReceiptURL: url})
	if r, ok := c.Receipter("on"); !ok || r != Receipter(on) {
		t.Errorf("Receipter(on) = %v, %v", r, ok)
	}
	for _, name := range []string{"off", "log", "nobody"} {
		if _, ok := c.Receipter(name); ok {
			t.Errorf("Receipter(%s) found one", name)
		}
	}
	if !c.TakesReceipts("on") || c.TakesReceipts("off") || c.TakesReceipts("log") || c.TakesReceipts("nobody") {
		t.Error("TakesReceipts wrong")
	}
	// Without a ReceiptURL option nobody is given a URL.
	if NewChain([]Sender{on}, ChainOptions{}).TakesReceipts("on") {
		t.Error("TakesReceipts without ReceiptURL")
	}
}
