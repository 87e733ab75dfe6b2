package store

import (
	"context"
	"strconv"
	"time"
)

// Delivery is one attempt to deliver a challenge's code: the sender that
// accepted it, the provider's message id its receipts name, and the most
// advanced status they reported.
type Delivery struct {
	// Sender is the name of the sender that accepted the message.
	Sender string
	// Channel is the sender's channel ("sms", "whatsapp", ...), or ""
	// when the sender declares none.
	Channel string
	// MessageID is the provider's id of the message, "" when it gave
	// none (no receipt can name it then).
	MessageID string
	// Status is the most advanced status reported: StatusAccepted until
	// a receipt says more, then a receipt's status ("queued", "sent",
	// "delivered", "read", "undelivered", "failed"). See StatusRank.
	Status string
	// Sent is when the sender accepted the message; Updated when Status
	// last changed.
	Sent, Updated time.Time
	// Code is which code of the challenge the message carried: the
	// challenge's Sends when it went out (1 for the first code).
	Code int
	// Failover marks a message sent because an earlier one of the same
	// code was not delivered.
	Failover bool
	// FailedOver is set (by ClaimFailover) once the code went on to the
	// next sender after this message: at most once per message.
	FailedOver bool
}

// StatusAccepted is the status of a delivery no receipt spoke of yet:
// the sender accepted the message.
const StatusAccepted = "accepted"

// StatusRank orders delivery statuses by how far they go, so that
// receipts, which come at least once and in any order, only ever move a
// delivery forward: accepted < queued < sent < undelivered = failed <
// delivered < read. A message that reached the handset stays delivered
// whatever a late receipt says. Unknown statuses rank 0 and change
// nothing.
func StatusRank(status string) int {
	switch status {
	case StatusAccepted:
		return 1
	case "queued":
		return 2
	case "sent":
		return 3
	case "undelivered", "failed":
		return 4
	case "delivered":
		return 5
	case "read":
		return 6
	}
	return 0
}

// Receipt is what TakeReceipt found: the challenge and delivery a
// receipt was about, as they are after it.
type Receipt struct {
	// Challenge is the challenge's id, Index its delivery's (1-based,
	// in Challenge.Deliveries order).
	Challenge string
	Index     int
	// Changed reports that the receipt moved the delivery's status
	// forward (a repeated or older receipt changes nothing).
	Changed bool
	// Previous is the status before the receipt.
	Previous string
}

// DeliveryStore is the part of Store that records deliveries, takes
// receipts and schedules failovers.
type DeliveryStore interface {
	// AddDelivery appends d to challenge id's deliveries and returns its
	// index (1-based). sealed, when not nil, replaces what the engine
	// keeps to send the current code again (sealed, see
	// Challenge.SealedCode). When d has a MessageID, the message is
	// found by TakeReceipt until expires (the code's end of life).
	// A delivery is a send a sender accepted: on a pending challenge it
	// also does what RecordSend(id, d.Sender, false) does, in the same
	// step. The challenge may be used already (a late send is recorded
	// all the same); a challenge gone gets ErrNotFound.
	AddDelivery(ctx context.Context, id string, d Delivery, sealed []byte, expires time.Time) (int, error)
	// TakeReceipt applies a receipt of sender for messageID: the
	// delivery's status moves to status at at, if StatusRank says it is
	// further on. A message it does not know (never recorded, or gone
	// past its code's lifetime) gets ErrNotFound.
	TakeReceipt(ctx context.Context, sender, messageID, status string, at time.Time) (Receipt, error)
	// ClaimFailover marks delivery index of challenge id failed over, if
	// it is the challenge's latest, was not failed over yet, and the
	// challenge is still pending at now. Of concurrent callers at most
	// one gets true.
	ClaimFailover(ctx context.Context, id string, index int, now time.Time) (bool, error)
	// ScheduleFailover asks, in queue, that challenge id be looked at
	// at at (replacing an earlier time for it).
	ScheduleFailover(ctx context.Context, queue, id string, at time.Time) error
	// DueFailovers claims up to limit challenges of queue whose time
	// came by now: each is put back lease later, so that another
	// instance takes it over if this one dies before DoneFailover.
	DueFailovers(ctx context.Context, queue string, now time.Time, lease time.Duration, limit int) ([]string, error)
	// DoneFailover removes challenge id from queue, unless it was
	// scheduled again since DueFailovers leased it until leased.
	DoneFailover(ctx context.Context, queue, id string, leased time.Time) error
}

// queueTTL is how long a failover queue lives after its last schedule:
// longer than any code (MaxCodeTTL is 10 minutes).
const queueTTL = 30 * time.Minute

// messageKey is the key of a message pointer: sender and message id,
// length-prefixed so that no two pairs share one.
func messageKey(sender, messageID string) string {
	return strconv.Itoa(len(sender)) + ":" + sender + ":" + messageID
}

// AddDelivery implements DeliveryStore.
func (m *Memory) AddDelivery(_ context.Context, id string, d Delivery, sealed []byte, expires time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.live(id)
	if c == nil {
		return 0, ErrNotFound
	}
	if d.Status == "" {
		d.Status = StatusAccepted
	}
	d.Updated, d.FailedOver = d.Sent, false
	c.Deliveries = append(c.Deliveries, d)
	if sealed != nil {
		c.SealedCode = append([]byte(nil), sealed...)
	}
	if c.Used.IsZero() {
		c.SentBy, c.SendFailed = d.Sender, false
	}
	n := len(c.Deliveries)
	if d.MessageID != "" && m.now().Before(expires) {
		m.messages[messageKey(d.Sender, d.MessageID)] = memMessage{id: id, index: n, expire: expires}
	}
	return n, nil
}

// TakeReceipt implements DeliveryStore.
func (m *Memory) TakeReceipt(_ context.Context, sender, messageID, status string, at time.Time) (Receipt, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.messages[messageKey(sender, messageID)]
	if !ok || !m.now().Before(p.expire) {
		return Receipt{}, ErrNotFound
	}
	c := m.live(p.id)
	if c == nil || p.index > len(c.Deliveries) {
		return Receipt{}, ErrNotFound
	}
	d := &c.Deliveries[p.index-1]
	rc := Receipt{Challenge: p.id, Index: p.index, Previous: d.Status}
	if StatusRank(status) > StatusRank(d.Status) {
		d.Status, d.Updated, rc.Changed = status, at, true
	}
	return rc, nil
}

// ClaimFailover implements DeliveryStore.
func (m *Memory) ClaimFailover(_ context.Context, id string, index int, now time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.live(id)
	if c == nil || !c.Used.IsZero() || !now.Before(c.Expires) || index != len(c.Deliveries) || c.Deliveries[index-1].FailedOver {
		return false, nil
	}
	c.Deliveries[index-1].FailedOver = true
	return true, nil
}

// ScheduleFailover implements DeliveryStore.
func (m *Memory) ScheduleFailover(_ context.Context, queue, id string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.scheduleLocked(queue, id, at)
	return nil
}

// scheduleLocked puts id on queue, due at at; m.mu is held.
func (m *Memory) scheduleLocked(queue, id string, at time.Time) {
	q := m.queues[queue]
	if q == nil {
		q = map[string]time.Time{}
		m.queues[queue] = q
	}
	q[id] = at
}

// DueFailovers implements DeliveryStore.
func (m *Memory) DueFailovers(_ context.Context, queue string, now time.Time, lease time.Duration, limit int) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for id, at := range m.queues[queue] {
		if len(out) >= limit {
			break
		}
		if !at.After(now) {
			out = append(out, id)
			m.queues[queue][id] = time.UnixMilli(now.Add(lease).UnixMilli())
		}
	}
	return out, nil
}

// DoneFailover implements DeliveryStore.
func (m *Memory) DoneFailover(_ context.Context, queue, id string, leased time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if at, ok := m.queues[queue][id]; ok && at.UnixMilli() == leased.UnixMilli() {
		delete(m.queues[queue], id)
	}
	return nil
}

type memMessage struct {
	id     string
	index  int
	expire time.Time
}
