package sender

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"
)

// Defaults of a Chain.
const (
	defaultChainTimeout    = 10 * time.Second
	defaultPerSender       = 5 * time.Second
	defaultBreakerFailures = 3
	defaultBreakerCooldown = 30 * time.Second
)

var (
	// ErrAllFailed is wrapped by the error of Chain.Send when no sender
	// delivered the message.
	ErrAllFailed = errors.New("sender: all senders failed")
	// ErrNoSenders is returned by Chain.Send when the chain is empty.
	ErrNoSenders = errors.New("sender: no senders configured")
	// ErrNoRoute is wrapped, with ErrAllFailed, by the error of
	// Chain.Send when no sender serves the destination: its country or
	// its kind (phone number or e-mail address). See Regional and
	// Channeler.
	ErrNoRoute = errors.New("sender: no sender serves this destination")
	// ErrCircuitOpen is wrapped by the error recorded for a sender that
	// the Chain skipped because its circuit breaker is open.
	ErrCircuitOpen = errors.New("sender: circuit open")
)

// ChainOptions configures a Chain.
type ChainOptions struct {
	// Timeout bounds a whole delivery, every sender and retry included;
	// default 10s.
	Timeout time.Duration
	// PerSender bounds the time given to one sender, its own retries
	// included; default 5s. A sender that implements Timeouter gets its
	// own budget instead. Either way a sender gets no more than what
	// remains of Timeout.
	PerSender time.Duration
	// BreakerFailures is how many consecutive failures of a sender open
	// its circuit: the sender is then skipped for BreakerCooldown, after
	// which one message is let through as a probe; its success closes the
	// circuit, its failure opens it again. Default 3; a negative value
	// disables the breakers.
	BreakerFailures int
	// BreakerCooldown is how long an open circuit skips its sender;
	// default 30s.
	BreakerCooldown time.Duration
	// Logger receives a warning for each sender that fails (an error
	// when the failure is the configuration's, Error.Config), one for each
	// circuit that opens or closes, and an error, with the stack, for
	// each sender that panics. Nil discards them.
	Logger *zap.Logger
	// ReceiptURL, when set, returns the URL where the sender of the given
	// name takes delivery receipts ({public_url}{path_prefix}/receipts/{name}),
	// or "" for none. A sender that takes receipts (Receipter) gets it as
	// Message.ReceiptURL with each message; the others never see it.
	ReceiptURL func(senderName string) string
}

// Chain delivers a message through the first of several senders that
// succeeds (failover). Senders are tried in order; any failure, temporary
// or permanent, moves on to the next.
//
// Routing: a sender that implements Regional is offered only the numbers
// of its countries, and one that implements Channeler only the
// destinations of its kind (see Channeler); the others are skipped
// without counting as a failure. This is how Indian numbers go to a
// provider registered on the DLT platform while the rest of the world
// goes to another.
//
// Circuit breakers: each sender has one (sony/gobreaker). After
// BreakerFailures consecutive failures the sender is skipped for
// BreakerCooldown, so that a provider that is down costs no time; then a
// single probe message goes through it and decides whether it is back.
// Failures due to the destination (Error.Recipient), to the caller
// cancelling the delivery, or to a sender being given less than its full
// budget because earlier senders used the rest do not count. Breakers
// live as long as the Chain: a new Chain (a config reload) starts with
// every circuit closed.
//
// Each failure is logged ("sender failed") with its kind (Error.Kind);
// a configuration error (Error.Config: an operator must act) at error
// level, the others as warnings.
//
// Receipts: with ChainOptions.ReceiptURL, each sender that takes
// delivery receipts (Receipter) is given its own receipt URL with the
// message, and Deliver reports the provider's message id (IDSender) that
// the receipts will name.
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
	receipts  []string // the receipt URL of each sender, "" for none
	routes    []route
	regional  bool                                  // some route serves some countries only
	breakers  []*gobreaker.CircuitBreaker[struct{}] // nil entries: disabled
	timeout   time.Duration
	perSender time.Duration
	logger    *zap.Logger
}

// route is what a sender accepts, from its optional interfaces.
type route struct {
	channel   Channel  // "" when the sender does not say
	countries []string // upper case; nil: all
	timeout   time.Duration
}

// NewChain returns a Chain that tries senders in the order given. Nil
// entries are dropped; the slice is copied.
func NewChain(senders []Sender, opts ChainOptions) *Chain {
	c := &Chain{
		timeout:   opts.Timeout,
		perSender: opts.PerSender,
		logger:    opts.Logger,
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
	failures := opts.BreakerFailures
	if failures == 0 {
		failures = defaultBreakerFailures
	}
	cooldown := opts.BreakerCooldown
	if cooldown <= 0 {
		cooldown = defaultBreakerCooldown
	}
	for _, s := range senders {
		if s == nil {
			continue
		}
		name := s.Name()
		c.senders = append(c.senders, s)
		c.names = append(c.names, name)
		c.receipts = append(c.receipts, receiptURL(s, name, opts.ReceiptURL))
		c.routes = append(c.routes, routeOf(s))
		c.regional = c.regional || len(c.routes[len(c.routes)-1].countries) > 0
		var cb *gobreaker.CircuitBreaker[struct{}]
		if failures > 0 {
			cb = c.newBreaker(name, uint32(failures), cooldown)
		}
		c.breakers = append(c.breakers, cb)
	}
	return c
}

// receiptURL is the URL s is given for its receipts: none unless it
// takes them.
func receiptURL(s Sender, name string, of func(string) string) string {
	if r, ok := s.(Receipter); !ok || of == nil || !r.Receipts() {
		return ""
	}
	return of(name)
}

func routeOf(s Sender) route {
	var r route
	if ch, ok := s.(Channeler); ok {
		r.channel = ch.Channel()
	}
	if rg, ok := s.(Regional); ok {
		for _, code := range rg.Countries() {
			r.countries = append(r.countries, strings.ToUpper(strings.TrimSpace(code)))
		}
	}
	if t, ok := s.(Timeouter); ok {
		r.timeout = t.Timeout()
	}
	return r
}

func (c *Chain) newBreaker(name string, failures uint32, cooldown time.Duration) *gobreaker.CircuitBreaker[struct{}] {
	return gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        name,
		MaxRequests: 1,
		Timeout:     cooldown,
		ReadyToTrip: func(counts gobreaker.Counts) bool {
			return counts.ConsecutiveFailures >= failures
		},
		IsExcluded: func(err error) bool {
			_, ok := err.(exempt)
			return ok
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			// Runs under the breaker's lock: log, nothing else.
			switch to {
			case gobreaker.StateOpen:
				c.logger.Warn("sender circuit opened: skipping the sender",
					zap.String("sender", name), zap.String("from", from.String()), zap.Duration("cooldown", cooldown))
			case gobreaker.StateHalfOpen:
				c.logger.Info("sender circuit half-open: the next message probes the sender", zap.String("sender", name))
			case gobreaker.StateClosed:
				c.logger.Info("sender circuit closed: the sender is back", zap.String("sender", name))
			}
		},
	})
}

// exempt wraps a failure that the breaker must not count.
type exempt struct{ err error }

func (e exempt) Error() string { return e.err.Error() }

// Names returns the names of the senders, in the order they are tried.
func (c *Chain) Names() []string { return append([]string(nil), c.names...) }

// Channels returns the channels that senders of the chain declare and
// that can reach msg's destination (a phone number, and its e-mail
// address if any), each once, in the chain's order. Senders that
// declare no channel (webhook, log) are not counted: they carry
// whatever channel they are asked for, and the page can offer only
// channels it knows exist. A customer can be offered "use another
// channel" when there are two or more.
func (c *Chain) Channels(msg *Message) []Channel {
	d := destinationOf(msg, c.regional)
	d.only = ""
	var out []Channel
	for _, r := range c.routes {
		if r.channel != "" && r.serves(d) && !slices.Contains(out, r.channel) {
			out = append(out, r.channel)
		}
	}
	return out
}

// ChannelOf returns the channel the sender named name declares, or "".
func (c *Chain) ChannelOf(name string) Channel {
	for i, n := range c.names {
		if n == name {
			return c.routes[i].channel
		}
	}
	return ""
}

// Delivery says who delivered a message.
type Delivery struct {
	// Sender is the name of the sender that delivered it.
	Sender string
	// MessageID is the provider's id of the message (IDSender), which its
	// receipts will name; "" when the sender reports none.
	MessageID string
	// ReceiptURL is the URL the provider was asked to report delivery
	// to, "" when no receipt is expected: the sender takes none, or the
	// chain has no ReceiptURL.
	ReceiptURL string
}

// Send delivers msg through the first sender that succeeds and returns its
// name. It is Deliver without the message id.
func (c *Chain) Send(ctx context.Context, msg *Message) (sentBy string, err error) {
	d, err := c.Deliver(ctx, msg)
	return d.Sender, err
}

// Deliver delivers msg through the first sender that succeeds and says
// which one, with the provider's message id.
//
// Senders that do not serve the destination (see Chain) and senders whose
// circuit is open are skipped. The delivery is bounded by ctx and by the
// chain's Timeout, and each sender by its own budget (PerSender or
// Timeouter). If every sender fails, the error wraps ErrAllFailed and
// each tried sender's error (see errors.Join), ErrCircuitOpen for the
// senders skipped because of their breaker, ErrNoRoute if no sender
// serves the destination at all; senders left untried because time ran
// out add the context's error. An empty chain returns ErrNoSenders.
//
// Each sender is given its own copy of msg, with the ReceiptURL the
// chain has for it (see ChainOptions.ReceiptURL).
//
// Cancelling ctx stops the delivery; a caller that must deliver even
// after its own request went away should pass context.WithoutCancel(ctx).
func (c *Chain) Deliver(ctx context.Context, msg *Message) (Delivery, error) {
	return c.deliver(ctx, msg, nil)
}

// DeliverSkipping is Deliver without the senders named in skip: the
// failover of a message that one sender accepted and did not deliver
// (a delivery receipt said failed, or none said delivered in time) goes
// to the senders the message has not been through yet. Skipped senders
// count neither as tried nor as failed; when every sender that serves
// the destination is skipped, the error wraps ErrAllFailed and
// ErrNoRoute.
func (c *Chain) DeliverSkipping(ctx context.Context, msg *Message, skip []string) (Delivery, error) {
	return c.deliver(ctx, msg, skip)
}

// Receipter returns the sender named name when it takes delivery
// receipts as configured (Receipter and Receipts), for the endpoint its
// providers call. ok is false for an unknown name, or a sender that takes
// no receipts (the caller answers as ErrReceiptsOff says).
func (c *Chain) Receipter(name string) (r Receipter, ok bool) {
	for i, n := range c.names {
		if n == name {
			r, ok = c.senders[i].(Receipter)
			if !ok || !r.Receipts() {
				return nil, false
			}
			return r, true
		}
	}
	return nil, false
}

// Serving returns the names of the senders, in order, that Deliver
// would offer msg to (their channel and countries serve it), leaving out
// those named in skip. Open circuits are not considered: a sender named
// here may still be skipped for its breaker.
func (c *Chain) Serving(msg *Message, skip []string) []string {
	dest := destinationOf(msg, c.regional)
	var out []string
	for i, name := range c.names {
		if c.routes[i].serves(dest) && !slices.Contains(skip, name) {
			out = append(out, name)
		}
	}
	return out
}

// TakesReceipts reports whether the sender named name is given a
// receipt URL with its messages: it takes receipts, and the chain has
// ChainOptions.ReceiptURL.
func (c *Chain) TakesReceipts(name string) bool {
	for i, n := range c.names {
		if n == name {
			return c.receipts[i] != ""
		}
	}
	return false
}

func (c *Chain) deliver(ctx context.Context, msg *Message, skip []string) (Delivery, error) {
	if len(c.senders) == 0 {
		return Delivery{}, ErrNoSenders
	}
	if msg == nil {
		return Delivery{}, errors.New("sender: no message")
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	dest := destinationOf(msg, c.regional)
	errs := []error{ErrAllFailed}
	served := 0
	for i, s := range c.senders {
		if !c.routes[i].serves(dest) || slices.Contains(skip, c.names[i]) {
			continue
		}
		served++
		if ctx.Err() != nil {
			left, serving := 0, served-1
			for j := i; j < len(c.senders); j++ {
				if c.routes[j].serves(dest) && !slices.Contains(skip, c.names[j]) {
					left++
				}
			}
			serving += left
			errs = append(errs, fmt.Errorf("sender: %d of %d senders for this destination not tried: %w", left, serving, ctx.Err()))
			break
		}
		name := c.names[i]
		m := *msg
		m.ReceiptURL = c.receipts[i]
		id, err := c.try(ctx, i, s, &m)
		if err == nil {
			return Delivery{Sender: name, MessageID: id, ReceiptURL: m.ReceiptURL}, nil
		}
		if errors.Is(err, ErrCircuitOpen) {
			c.logger.Debug("sender skipped: circuit open", zap.String("sender", name))
			errs = append(errs, err)
			continue
		}
		err = scrub(name, err, msg)
		kind := "temporary"
		level := zap.WarnLevel
		if se, ok := errors.AsType[*Error](err); ok {
			kind = se.Kind()
			if se.Config {
				// An operator must act: the account or the configuration.
				level = zap.ErrorLevel
			}
		}
		if ce := c.logger.Check(level, "sender failed"); ce != nil {
			ce.Write(
				zap.String("sender", name),
				zap.Bool("temporary", IsTemporary(err)),
				zap.String("kind", kind),
				zap.Error(err),
			)
		}
		errs = append(errs, err)
	}
	if served == 0 {
		errs = append(errs, ErrNoRoute)
	}
	return Delivery{}, errors.Join(errs...)
}

// destination is what routing looks at.
type destination struct {
	phone  bool    // To is a phone number
	email  bool    // an e-mail address is available (To or Email)
	region string  // the phone's region, "" if unknown
	only   Channel // the channel required (Message.ChannelOnly), or ""
}

// destinationOf says where msg goes. The phone's region is worked out
// only when some route depends on it (region), as parsing costs.
func destinationOf(msg *Message, region bool) destination {
	var d destination
	if msg.ChannelOnly {
		d.only = msg.Channel
	}
	if strings.Contains(msg.To, "@") {
		d.email = true
		return d
	}
	d.phone = true
	d.email = strings.Contains(msg.Email, "@")
	if !region {
		return d
	}
	if p, err := ParsePhone(msg.To, ""); err == nil {
		d.region = p.Region
	}
	return d
}

// Serves reports whether a Chain would offer msg to s, from what s
// declares (Channeler, Regional). When it would not, reason says why, in
// words fit for an operator ("serves IN only").
func Serves(s Sender, msg *Message) (ok bool, reason string) {
	r := routeOf(s)
	d := destinationOf(msg, len(r.countries) > 0)
	if r.serves(d) {
		return true, ""
	}
	switch {
	case r.channel == Email && d.phone:
		return false, "an email sender, and no e-mail address is known"
	case r.channel != "" && r.channel != Email && !d.phone:
		return false, "a " + string(r.channel) + " sender, and the destination is an e-mail address"
	case !d.phone:
		return false, "serves phone numbers of " + strings.Join(r.countries, ", ") + " only"
	}
	return false, "serves " + strings.Join(r.countries, ", ") + " only"
}

func (r route) serves(d destination) bool {
	if d.only != "" && r.channel != "" && r.channel != d.only {
		return false
	}
	switch r.channel {
	case "":
		// A webhook or the log: everything, as far as the channel goes.
	case Email:
		if !d.email {
			return false
		}
	default:
		if !d.phone {
			return false
		}
	}
	if len(r.countries) > 0 {
		return d.phone && slices.Contains(r.countries, d.region)
	}
	return true
}

// try runs one sender through its breaker under its deadline, and turns
// a panic into an error. It returns the provider's message id.
func (c *Chain) try(ctx context.Context, i int, s Sender, msg *Message) (id string, err error) {
	budget := c.perSender
	if t := c.routes[i].timeout; t > 0 {
		budget = t
	}
	// When earlier senders used most of the time, this one gets less than
	// its budget; a timeout is then not its fault.
	short := false
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < budget {
		short = true
	}
	sctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()

	run := func() (struct{}, error) {
		var err error
		id, err = c.call(sctx, c.names[i], s, msg)
		if err == nil {
			return struct{}{}, nil
		}
		var se *Error
		switch {
		case errors.As(err, &se) && se.Recipient,
			ctx.Err() != nil && !errors.Is(context.Cause(ctx), context.DeadlineExceeded),
			short && sctx.Err() != nil:
			return struct{}{}, exempt{err}
		}
		return struct{}{}, err
	}
	cb := c.breakers[i]
	if cb == nil {
		_, err = run()
		return id, unexempt(err)
	}
	_, err = cb.Execute(run)
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return "", &Error{Sender: c.names[i], Temporary: true, Msg: "skipped: circuit open after repeated failures", Err: ErrCircuitOpen}
	}
	return id, unexempt(err)
}

func unexempt(err error) error {
	if e, ok := err.(exempt); ok {
		return e.err
	}
	return err
}

// call runs s.Send (SendWithID when s has it) and turns a panic into an
// error.
func (c *Chain) call(ctx context.Context, name string, s Sender, msg *Message) (id string, err error) {
	defer func() {
		if r := recover(); r != nil {
			// The panic value is not logged: it may hold the code.
			c.logger.Error("sender panicked",
				zap.String("sender", name),
				zap.String("panic_type", fmt.Sprintf("%T", r)),
				zap.Stack("stack"),
			)
			id, err = "", &Error{Sender: name, Msg: "panicked"}
		}
	}()
	return SendWithID(ctx, s, msg)
}

// scrub returns err as an error that names its sender and contains
// neither the code nor the destination of msg.
func scrub(name string, err error, msg *Message) error {
	text := err.Error()
	for _, secret := range secretsOf(msg) {
		if strings.Contains(text, secret) {
			out := &Error{
				Sender:    name,
				Temporary: IsTemporary(err),
				Msg:       "failed (error withheld: its text contained the code or the destination)",
			}
			if se, ok := errors.AsType[*Error](err); ok {
				out.Status, out.Recipient, out.Config = se.Status, se.Recipient, se.Config
			}
			return out
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
	if msg.Email != "" {
		s = append(s, msg.Email)
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
