package sender

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Defaults of a Chain.
const (
	defaultChainTimeout = 10 * time.Second
	defaultPerSender    = 5 * time.Second
)

var (
	// ErrAllFailed is wrapped by the error of Chain.Send when no sender
	// delivered the message.
	ErrAllFailed = errors.New("sender: all senders failed")
	// ErrNoSenders is returned by Chain.Send when the chain is empty.
	ErrNoSenders = errors.New("sender: no senders configured")
)

// ChainOptions configures a Chain.
type ChainOptions struct {
	// Timeout bounds a whole delivery, every sender and retry included;
	// default 10s.
	Timeout time.Duration
	// PerSender bounds the time given to one sender, its own retries
	// included; default 5s. A sender gets the smaller of PerSender and
	// what remains of Timeout.
	PerSender time.Duration
	// Logger receives a warning for each sender that fails and an error,
	// with the stack, for each that panics. Nil discards them.
	Logger *zap.Logger
}

// Chain delivers a message through the first of several senders that
// succeeds (failover). Senders are tried in order; any failure, temporary
// or permanent, moves on to the next.
//
// A sender that panics counts as failed: the panic is recovered and
// logged, and the next sender is tried.
//
// The errors a Chain returns and logs never contain the code or the
// destination: an error from a sender whose text does contain one of them
// is replaced by one that says only that the sender failed.
//
// A Chain is safe for concurrent use if its senders are.
type Chain struct {
	senders   []Sender
	names     []string
	timeout   time.Duration
	perSender time.Duration
	logger    *zap.Logger
}

// NewChain returns a Chain that tries senders in the order given. Nil
// entries are dropped; the slice is copied.
func NewChain(senders []Sender, opts ChainOptions) *Chain {
	c := &Chain{
		timeout:   opts.Timeout,
		perSender: opts.PerSender,
		logger:    opts.Logger,
	}
	for _, s := range senders {
		if s != nil {
			c.senders = append(c.senders, s)
			c.names = append(c.names, s.Name())
		}
	}
	if c.timeout <= 0 {
		c.timeout = defaultChainTimeout
	}
	if c.perSender <= 0 {
		c.perSender = defaultPerSender
	}
	if c.logger == nil {
		c.logger = zap.NewNop()
	}
	return c
}

// Names returns the names of the senders, in the order they are tried.
func (c *Chain) Names() []string { return append([]string(nil), c.names...) }

// Send delivers msg through the first sender that succeeds and returns its
// name.
//
// The delivery is bounded by ctx and by the chain's Timeout, and each
// sender by PerSender. If every sender fails, the error wraps
// ErrAllFailed and each sender's error (see errors.Join); senders left
// untried because time ran out add the context's error. An empty chain
// returns ErrNoSenders.
//
// Cancelling ctx stops the delivery; a caller that must deliver even
// after its own request went away should pass context.WithoutCancel(ctx).
func (c *Chain) Send(ctx context.Context, msg *Message) (sentBy string, err error) {
	if len(c.senders) == 0 {
		return "", ErrNoSenders
	}
	if msg == nil {
		return "", errors.New("sender: no message")
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	errs := []error{ErrAllFailed}
	for i, s := range c.senders {
		if ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("sender: %d of %d senders not tried: %w", len(c.senders)-i, len(c.senders), ctx.Err()))
			break
		}
		name := c.names[i]
		err := c.try(ctx, s, name, msg)
		if err == nil {
			return name, nil
		}
		err = scrub(name, err, msg)
		c.logger.Warn("sender failed",
			zap.String("sender", name),
			zap.Bool("temporary", IsTemporary(err)),
			zap.Error(err),
		)
		errs = append(errs, err)
	}
	return "", errors.Join(errs...)
}

// try runs one sender under the per-sender deadline and turns a panic
// into an error.
func (c *Chain) try(ctx context.Context, s Sender, name string, msg *Message) (err error) {
	ctx, cancel := context.WithTimeout(ctx, c.perSender)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			// The panic value is not logged: it may hold the code.
			c.logger.Error("sender panicked",
				zap.String("sender", name),
				zap.String("panic_type", fmt.Sprintf("%T", r)),
				zap.Stack("stack"),
			)
			err = &Error{Sender: name, Msg: "panicked"}
		}
	}()
	return s.Send(ctx, msg)
}

// scrub returns err as an error that names its sender and contains
// neither the code nor the destination of msg.
func scrub(name string, err error, msg *Message) error {
	text := err.Error()
	for _, secret := range secretsOf(msg) {
		if strings.Contains(text, secret) {
			var status int
			if se, ok := errors.AsType[*Error](err); ok {
				status = se.Status
			}
			return &Error{
				Sender:    name,
				Status:    status,
				Temporary: IsTemporary(err),
				Msg:       "failed (error withheld: its text contained the code or the destination)",
			}
		}
	}
	if _, ok := errors.AsType[*Error](err); !ok {
		return &Error{Sender: name, Temporary: true, Msg: "failed", Err: err}
	}
	return err
}

// secretsOf returns the strings of msg that must not leak: the code, and
// the destination in the forms a provider may quote it.
func secretsOf(msg *Message) []string {
	var s []string
	if msg.Code != "" {
		s = append(s, msg.Code)
	}
	if msg.To != "" {
		s = append(s, msg.To)
		if digits, ok := strings.CutPrefix(msg.To, "+"); ok && digits != "" {
			s = append(s, digits)
			if cc := countryCallingCode(digits); cc != "" && len(digits) > len(cc) {
				s = append(s, digits[len(cc):])
			}
		}
	}
	return s
}
