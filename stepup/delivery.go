package stepup

// What became of each code: every message that carried one is recorded
// on its challenge (store.Delivery), receipts move its status forward,
// and a code that is not delivered goes out again through the next
// sender of the chain (failover).
//
// The failover timer: each message sent through a sender that takes
// receipts puts its challenge in a failover queue of the store, due
// FailoverAfter later (a Redis sorted set shared by every instance;
// each instance polls it every second and claims what is due with a
// lease, so that an instance that dies while holding one passes it on
// when the lease ends, and a restart loses nothing that Redis keeps).
// What goes out is decided on the challenge itself, atomically
// (store.ClaimFailover): once per message, only for the latest message
// of the current code, only while the challenge is pending. A receipt
// that says failed or undelivered does the same at once.

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup/page"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// DeliveryReporter is implemented by Deliverers that report the
// provider's message id of what they send (sender.Chain does), which
// delivery receipts name.
type DeliveryReporter interface {
	Deliver(ctx context.Context, msg *sender.Message) (sender.Delivery, error)
}

// Failoverer is implemented by Deliverers that can send a message
// through the senders it has not been through yet (sender.Chain does):
// the failover on non-delivery needs it.
type Failoverer interface {
	DeliveryReporter
	// DeliverSkipping is Deliver without the senders named in skip.
	DeliverSkipping(ctx context.Context, msg *sender.Message, skip []string) (sender.Delivery, error)
	// Serving names the senders that would be offered msg, skip left
	// out.
	Serving(msg *sender.Message, skip []string) []string
	// TakesReceipts reports whether the sender named name is given a
	// receipt URL with its messages.
	TakesReceipts(name string) bool
}

// failoverLease is how long a claimed failover of the queue stays with
// the instance that claimed it before another may take it over.
const failoverLease = 30 * time.Second

// failoverTick is how often an instance looks for due failovers.
const failoverTick = time.Second

// sealedCode is what a failover needs to send a code again: the code
// and its message as the customer got it (text, language, channel, the
// e-mail fallback). It is kept sealed (AES-GCM under the engine's
// secret, bound to the challenge id) in the challenge's record.
type sealedCode struct {
	Code    string         `json:"c"`
	Text    string         `json:"t"`
	Locale  string         `json:"l,omitempty"`
	Email   string         `json:"e,omitempty"`
	Channel sender.Channel `json:"ch,omitempty"`
	Only    bool           `json:"o,omitempty"`
}

// codeAD is what a sealed code is bound to, apart from a stash.
func codeAD(id string) string { return "code\x00" + id }

func (e *Engine) sealCode(id string, msg *sender.Message) []byte {
	b, _ := json.Marshal(sealedCode{Code: msg.Code, Text: msg.Text, Locale: msg.Locale, Email: msg.Email,
		Channel: msg.Channel, Only: msg.ChannelOnly})
	return e.keys.seal(codeAD(id), b)
}

// openCode opens c's sealed code and checks that it is still the
// challenge's current one (a resend replaces it), under the current
// secret or a previous one.
func (e *Engine) openCode(c *store.Challenge) (sealedCode, bool) {
	var sc sealedCode
	if len(c.SealedCode) == 0 {
		return sc, false
	}
	for _, k := range e.all {
		plain, err := k.open(codeAD(c.ID), c.SealedCode)
		if err != nil {
			continue
		}
		if json.Unmarshal(plain, &sc) != nil {
			return sc, false
		}
		for _, kk := range e.all {
			if hmac.Equal(c.CodeMAC, kk.codeMAC(c.ID, sc.Code)) {
				return sc, true
			}
		}
		return sc, false
	}
	return sc, false
}

// channelOf is the channel of the sender named name, when known.
func (e *Engine) channelOf(name string) sender.Channel {
	if cc, ok := e.sender.(ChannelChooser); ok && name != "" {
		return cc.ChannelOf(name)
	}
	return ""
}

// watching reports whether a message the sender named name accepted,
// with the provider's id id, can fail over: receipts are on and the
// sender takes them.
func (e *Engine) watching(name, id string) (Failoverer, bool) {
	fo, ok := e.sender.(Failoverer)
	if !ok || e.cfg.Receipts.PublicURL == "" || id == "" || !fo.TakesReceipts(name) {
		return nil, false
	}
	return fo, true
}

// recordDelivery records the message d of challenge c's current code
// (c.Sends) on the challenge, with its sender as the code's (what
// RecordSend does), and when it can fail over, what a failover needs
// and when it is due.
func (e *Engine) recordDelivery(ctx context.Context, r *http.Request, c *store.Challenge, msg *sender.Message, d sender.Delivery, failover bool) {
	now := e.now()
	del := store.Delivery{Sender: d.Sender, Channel: string(e.channelOf(d.Sender)), MessageID: d.MessageID,
		Sent: now, Code: max(c.Sends, 1), Failover: failover}
	var sealed []byte
	_, watch := e.watching(d.Sender, d.MessageID)
	if watch {
		sealed = e.sealCode(c.ID, msg)
	}
	if _, err := e.store.AddDelivery(ctx, c.ID, del, sealed, c.Expires); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			e.emit(r, &Event{Kind: EventStoreError, Policy: c.Policy, Outcome: "record_delivery", Err: err})
		}
		return
	}
	if watch {
		if err := e.store.ScheduleFailover(ctx, e.failoverQueue, c.ID, now.Add(e.cfg.Receipts.FailoverAfter)); err != nil {
			e.emit(r, &Event{Kind: EventStoreError, Policy: c.Policy, Outcome: "schedule_failover", Err: err})
		}
	}
}

// takeReceipt applies one receipt of the sender named name: the
// message's status moves forward, the change is told (code_delivered,
// code_undelivered), and a message that will not arrive fails over. A
// receipt for a message this handler does not know is ignored.
func (e *Engine) takeReceipt(r *http.Request, name string, rc sender.Receipt) error {
	ctx := r.Context()
	res, err := e.store.TakeReceipt(ctx, name, rc.MessageID, string(rc.Status), e.now())
	if errors.Is(err, store.ErrNotFound) {
		e.log.Debug("receipt for a message not known here, ignored", zap.String("sender", name), zap.String("status", string(rc.Status)))
		return nil
	}
	if err != nil {
		return err
	}
	e.emit(r, &Event{Kind: EventReceipt, Sender: name, Outcome: string(rc.Status)})
	if !res.Changed {
		return nil
	}
	prev := sender.DeliveryStatus(res.Previous)
	reached := rc.Status.Reached() && !prev.Reached()
	failed := rc.Status.Failed() && !prev.Failed()
	if !reached && !failed {
		return nil
	}
	c, err := e.store.Get(ctx, res.Challenge)
	if errors.Is(err, store.ErrNotFound) || (err == nil && res.Index > len(c.Deliveries)) {
		return nil
	}
	if err != nil {
		return err
	}
	d := c.Deliveries[res.Index-1]
	ev := &Event{Kind: EventCodeDelivered, Policy: c.Policy, To: sender.MaskPhone(c.Phone), Sender: name, Country: countryOf(c.Phone),
		Channel: d.Channel, MessageID: d.MessageID, Duration: d.Updated.Sub(d.Sent), Outcome: string(rc.Status)}
	if failed {
		ev.Kind = EventCodeUndelivered
		if rc.ErrorCode != "" {
			ev.Outcome += ":" + rc.ErrorCode
		}
	}
	e.emit(r, ev)
	if failed {
		// The provider is waiting for its answer: the next sender is
		// tried after it.
		dr := r.Clone(context.WithoutCancel(ctx))
		e.background(func() { e.failover(dr.Context(), dr, res.Challenge, res.Index, "failed") })
	}
	return nil
}

// Wait waits until the sends and failovers that run after their
// request (a browser's code goes out after the answer) are done.
func (e *Engine) Wait() { e.bg.Wait() }

// background runs fn on its own goroutine, counted so that tests (and
// a shutdown) can wait for it.
func (e *Engine) background(fn func()) {
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		fn()
	}()
}

// failover sends challenge id's current code through the next sender of
// the chain, after delivery index (0: the latest), if that message is
// still the latest of the current code, was not delivered and did not
// fail over yet, and the challenge is pending; why is "failed" (a
// receipt said so) or "timeout" (none said delivered in time). The
// send is spent against the per-number and global send budgets (for a
// challenge that hides its number, the per-country budget), after the
// failover is claimed, and not against the customer's resends.
func (e *Engine) failover(ctx context.Context, r *http.Request, id string, index int, why string) {
	fo, ok := e.sender.(Failoverer)
	if !ok {
		return
	}
	c, err := e.store.Get(ctx, id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			e.emit(r, &Event{Kind: EventStoreError, Outcome: "failover", Err: err})
		}
		return
	}
	n := len(c.Deliveries)
	if n == 0 || (index != 0 && index != n) {
		return
	}
	last := c.Deliveries[n-1]
	now := e.now()
	if last.FailedOver || last.Code != c.Sends || sender.DeliveryStatus(last.Status).Reached() || !c.Used.IsZero() || !now.Before(c.Expires) {
		return
	}
	if sender.DeliveryStatus(last.Status).Failed() {
		why = "failed"
	}
	sc, ok := e.openCode(c)
	if !ok {
		return
	}
	var skip []string
	for _, d := range c.Deliveries {
		if d.Code == c.Sends {
			skip = append(skip, d.Sender)
		}
	}
	msg := &sender.Message{To: c.Phone, Code: sc.Code, Text: sc.Text, Channel: sc.Channel, ChannelOnly: sc.Only,
		Policy: c.Policy, Challenge: c.ID, TTL: c.Expires.Sub(now), Locale: sc.Locale, Email: sc.Email}
	if msg.Channel == "" {
		msg.Channel = sender.SMS
	}
	ev := &Event{Kind: EventFailover, Policy: c.Policy, To: sender.MaskPhone(c.Phone), Country: countryOf(c.Phone), Outcome: why}
	if len(fo.Serving(msg, skip)) == 0 {
		return // no sender left: nothing to claim
	}
	if ok, err := e.store.ClaimFailover(ctx, c.ID, n, now); err != nil {
		e.emit(r, &Event{Kind: EventStoreError, Policy: c.Policy, Outcome: "claim_failover", Err: err})
		return
	} else if !ok {
		return // another instance (or the other path) has it
	}
	// A code that will not arrive and that no other sender took: the
	// page says it could not be sent, and offers a new one at once.
	undelivered := func() {
		if !sender.DeliveryStatus(last.Status).Failed() {
			return // it may still arrive
		}
		if err := e.store.RecordSend(ctx, c.ID, "", !c.Hidden); err != nil && !errors.Is(err, store.ErrNotFound) {
			e.emit(r, &Event{Kind: EventStoreError, Policy: c.Policy, Outcome: "record_send", Err: err})
		}
	}
	if lim, err := e.failoverBudget(ctx, c); err != nil {
		e.emit(r, &Event{Kind: EventStoreError, Policy: c.Policy, Outcome: "rate_limit", Err: err})
		return
	} else if lim != nil {
		e.emit(r, &Event{Kind: EventRateLimited, Policy: c.Policy, Limit: lim.name, Duration: lim.retry, Outcome: "failover"})
		undelivered()
		return
	}
	sctx, cancel := context.WithTimeout(ctx, e.cfg.SendTimeout)
	defer cancel()
	start := time.Now()
	d, err := fo.DeliverSkipping(sctx, msg, skip)
	ev.Duration = time.Since(start)
	if err != nil {
		ev.Outcome, ev.Err = why+"_none_delivered", err
		e.emit(r, ev)
		undelivered()
		return
	}
	ev.Sender, ev.Channel, ev.MessageID = d.Sender, string(e.channelOf(d.Sender)), d.MessageID
	e.emit(r, ev)
	e.recordDelivery(ctx, r, c, msg, d, true)
}

// failoverBudget spends one send of c's destination: the per-number
// and global budgets, or for a challenge that hides its number the
// per-country one (as its first send did).
func (e *Engine) failoverBudget(ctx context.Context, c *store.Challenge) (*limited, error) {
	phone, err := sender.ParsePhone(c.Phone, "")
	if err != nil {
		return &limited{name: "invalid_number"}, nil
	}
	if c.Hidden {
		return e.allowCountry(ctx, phone)
	}
	return e.allowSend(ctx, phone)
}

// Run does the engine's work that no request triggers, until ctx ends:
// every second it sends the codes that were not delivered in time
// through the next sender (with receipts on), and tells the challenges
// whose code expired unverified (EventAbandoned). Each comes from a
// queue in the store that every instance claims from, so that each
// happens once.
func (e *Engine) Run(ctx context.Context) {
	t := time.NewTicker(failoverTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.dueFailovers(ctx)
			e.dueExpiries(ctx)
		}
	}
}

// dueExpiries tells the challenges whose code expired unverified.
func (e *Engine) dueExpiries(ctx context.Context) {
	now := e.now()
	ids, err := e.store.DueFailovers(ctx, e.expiryQueue, now, failoverLease, 100)
	if err != nil {
		return
	}
	for _, id := range ids {
		if c, err := e.store.Get(ctx, id); err == nil && c.Used.IsZero() && c.Phone != "" {
			e.emit(nil, &Event{Kind: EventAbandoned, Policy: c.Policy, Sender: c.SentBy,
				Channel: string(e.channelOf(c.SentBy)), Country: countryOf(c.Phone), Attempts: c.Attempts})
		}
		_ = e.store.DoneFailover(ctx, e.expiryQueue, id, now.Add(failoverLease))
	}
}

// countryOf is the country calling code of an E.164 number ("91"), or
// "".
func countryOf(e164 string) string { return sender.CallingCode(e164) }

// dueFailovers handles the failovers due now.
func (e *Engine) dueFailovers(ctx context.Context) {
	if e.cfg.Receipts.PublicURL == "" {
		return
	}
	if _, ok := e.sender.(Failoverer); !ok {
		return
	}
	now := e.now()
	ids, err := e.store.DueFailovers(ctx, e.failoverQueue, now, failoverLease, 50)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("reading due failovers", zap.Error(err))
		}
		return
	}
	for _, id := range ids {
		e.failover(ctx, nil, id, 0, "timeout")
		if err := e.store.DoneFailover(ctx, e.failoverQueue, id, now.Add(failoverLease)); err != nil && ctx.Err() == nil {
			e.log.Warn("removing a failover", zap.Error(err))
		}
	}
}

// failoverQueueName names the store's failover queue of an engine: the
// same for every instance of one configuration (secret, path prefix,
// senders), apart from other handlers sharing the store.
func failoverQueueName(k *keys, prefix string, d Deliverer) string {
	parts := []string{prefix}
	if n, ok := d.(interface{ Names() []string }); ok {
		parts = append(parts, strings.Join(n.Names(), "\x00"))
	}
	return k.short("failover", parts...)
}

// The delivery states the page shows (deliveryState).
const (
	// DeliverySending: the code is on its way to the provider.
	DeliverySending = "sending"
	// DeliverySent: a provider accepted it; no receipt said more yet.
	DeliverySent = "sent"
	// DeliveryDelivered: a receipt says it reached the handset.
	DeliveryDelivered = "delivered"
	// DeliveryNotDelivered: a receipt says it will not arrive, and no
	// other sender is left to try.
	DeliveryNotDelivered = "not_delivered"
	// DeliveryFailedOver: it was not delivered and went out again
	// through another sender (the channel says which way).
	DeliveryFailedOver = "failed_over"
	// DeliveryFailed: no sender accepted it (the page offers a resend).
	DeliveryFailed = "failed"
)

// deliveryState says how the delivery of c's current code goes, and
// on which channel it went last. A challenge that hides its number (a
// reset flow, its decoys included) always says "sent" and no channel:
// what happened to a code must not tell whether the account exists.
func deliveryState(c *store.Challenge) (state, channel string) {
	if c.Hidden {
		return DeliverySent, ""
	}
	if c.SendFailed {
		return DeliveryFailed, ""
	}
	var last *store.Delivery
	for i := range c.Deliveries {
		if c.Deliveries[i].Code == c.Sends {
			last = &c.Deliveries[i]
		}
	}
	if last == nil {
		if c.SentBy != "" {
			return DeliverySent, ""
		}
		return DeliverySending, ""
	}
	st := sender.DeliveryStatus(last.Status)
	switch {
	case st.Failed() && last.FailedOver:
		return DeliverySending, last.Channel // the next one is on its way
	case st.Failed():
		return DeliveryNotDelivered, last.Channel
	case last.Failover:
		return DeliveryFailedOver, last.Channel
	case st.Reached():
		return DeliveryDelivered, last.Channel
	}
	return DeliverySent, last.Channel
}

// showDelivery answers the page's poll, GET {path_prefix}/status?challenge=ID,
// with {"state": ..., "channel": ...} (deliveryState) for the identity
// and browser session the challenge belongs to; anyone else gets the 404
// of a challenge that does not exist.
func (e *Engine) showDelivery(w http.ResponseWriter, r *http.Request) error {
	id := r.URL.Query().Get("challenge")
	if !validID(id) {
		page.WriteError(w, http.StatusNotFound, "not_found", "no such challenge", nil)
		return nil
	}
	b, ok, err := e.load(w, r, id, false)
	if !ok {
		return err
	}
	state, channel := deliveryState(b.c)
	if st := challengeState(b.c, e.now()); st != page.StateChallenge {
		// Over: the page reloads into its final state.
		state = string(st)
	}
	page.WriteJSON(w, http.StatusOK, map[string]string{"state": state, "channel": channel})
	return nil
}
