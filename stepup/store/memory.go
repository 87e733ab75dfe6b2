package store

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"time"
)

// Memory is a Store kept in this process's memory. It serves a single
// Caddy instance only: another instance cannot see its challenges, and a
// restart forgets them. It exists for development, demos and one-box
// deployments; use Redis for anything else.
//
// Expired records are swept in the background until Close.
type Memory struct {
	mu         sync.Mutex
	challenges map[string]*memChallenge
	pending    map[string]memPointer
	failures   map[string]memCounter
	grants     map[string]memGrant
	slots      map[string]memPointer // stash slots
	rates      map[string]time.Time  // GCRA theoretical arrival times
	revoked    map[string]memRevocation
	pump       memPump                         // the pumping defense's state (pumping.go)
	messages   map[string]memMessage           // message pointers (AddDelivery)
	queues     map[string]map[string]time.Time // failover queues
	passkeys   map[string]memPasskeys          // by user key, never swept
	generation string

	now       func() time.Time
	stop      chan struct{}
	closeOnce sync.Once
}

type memChallenge struct {
	c      *Challenge
	expire time.Time // when the record is dropped
	stash  []byte    // nil once taken or dropped
	taken  bool
}

type memGrant struct {
	expire time.Time
	used   bool
}

type memRevocation struct {
	at, expire time.Time
}

type memPointer struct {
	id     string
	expire time.Time
}

type memCounter struct {
	n      int
	expire time.Time
}

// NewMemory returns an empty memory store that sweeps expired records
// every sweep interval (one minute when sweep is zero).
func NewMemory(sweep time.Duration) *Memory {
	if sweep <= 0 {
		sweep = time.Minute
	}
	m := &Memory{
		challenges: make(map[string]*memChallenge),
		pending:    make(map[string]memPointer),
		failures:   make(map[string]memCounter),
		grants:     make(map[string]memGrant),
		slots:      make(map[string]memPointer),
		rates:      make(map[string]time.Time),
		revoked:    make(map[string]memRevocation),
		messages:   make(map[string]memMessage),
		queues:     make(map[string]map[string]time.Time),
		generation: newGeneration(),
		now:        time.Now,
		stop:       make(chan struct{}),
	}
	go m.sweepLoop(sweep)
	return m
}

func (m *Memory) sweepLoop(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.sweep(m.now())
		}
	}
}

// sweep drops every record whose time is over.
func (m *Memory) sweep(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, v := range m.challenges {
		if !now.Before(v.expire) {
			delete(m.challenges, k)
		}
	}
	for k, v := range m.pending {
		if !now.Before(v.expire) {
			delete(m.pending, k)
		}
	}
	for k, v := range m.failures {
		if !now.Before(v.expire) {
			delete(m.failures, k)
		}
	}
	for k, v := range m.grants {
		if !now.Before(v.expire) {
			delete(m.grants, k)
		}
	}
	for k, v := range m.slots {
		if !now.Before(v.expire) {
			delete(m.slots, k)
		}
	}
	for k, v := range m.rates {
		if !now.Before(v) {
			delete(m.rates, k)
		}
	}
	for k, v := range m.revoked {
		if !now.Before(v.expire) {
			delete(m.revoked, k)
		}
	}
	m.pump.sweep(now)
	for k, v := range m.messages {
		if !now.Before(v.expire) {
			delete(m.messages, k)
		}
	}
	for _, q := range m.queues {
		for id := range q {
			if _, ok := m.challenges[id]; !ok {
				delete(q, id)
			}
		}
	}
}

// Create implements Store.
func (m *Memory) Create(_ context.Context, c *Challenge, pending string, retain time.Duration) error {
	if err := c.validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.challenges[c.ID]; ok && m.now().Before(e.expire) {
		return ErrExists
	}
	d := c.clone()
	d.Sends = 1
	d.LastSend = c.Created
	if c.CodeLater {
		d.Sends, d.LastSend = 0, time.Time{}
	}
	d.Attempts = 0
	d.Used = time.Time{}
	e := &memChallenge{c: d, expire: c.Expires.Add(retain)}
	if len(c.Stash) > 0 {
		e.stash = append([]byte(nil), c.Stash...)
		d.HasStash = true
	}
	m.challenges[c.ID] = e
	if pending != "" {
		m.pending[pending] = memPointer{id: c.ID, expire: c.Expires}
	}
	if c.ExpiryQueue != "" {
		m.scheduleLocked(c.ExpiryQueue, c.ID, c.Expires)
	}
	if c.StashSlot != "" && e.stash != nil {
		old, ok := m.slots[c.StashSlot]
		m.slots[c.StashSlot] = memPointer{id: c.ID, expire: e.expire}
		if ok && old.id != c.ID {
			// The replaced challenge's stash goes at once, unless it
			// was verified (its replay may be under way).
			if o, ok := m.challenges[old.id]; ok && o.c.Used.IsZero() {
				o.stash = nil
			}
		}
	}
	return nil
}

// live returns the record of id if it is still retained.
func (m *Memory) live(id string) *Challenge {
	e, ok := m.challenges[id]
	if !ok || !m.now().Before(e.expire) {
		return nil
	}
	return e.c
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, id string) (*Challenge, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.live(id)
	if c == nil {
		return nil, ErrNotFound
	}
	return c.clone(), nil
}

// Pending implements Store.
func (m *Memory) Pending(_ context.Context, pending string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.pending[pending]
	if !ok || !m.now().Before(p.expire) {
		return "", ErrNotFound
	}
	return p.id, nil
}

// usable reports why c cannot take an attempt or a resend at now.
func usable(c *Challenge, now time.Time) error {
	switch {
	case c == nil:
		return ErrNotFound
	case !c.Used.IsZero():
		return ErrUsed
	case !now.Before(c.Expires):
		return ErrExpired
	case c.Attempts >= c.MaxAttempts:
		return ErrExhausted
	}
	return nil
}

// BeginAttempt implements Store.
func (m *Memory) BeginAttempt(_ context.Context, id string, now time.Time) ([]byte, int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.live(id)
	if err := usable(c, now); err != nil {
		return nil, 0, err
	}
	c.Attempts++
	return append([]byte(nil), c.CodeMAC...), c.Attempts, nil
}

// Consume implements Store.
func (m *Memory) Consume(_ context.Context, id string, mac []byte, now time.Time, method string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.live(id)
	switch {
	case c == nil:
		return ErrNotFound
	case !c.Used.IsZero():
		return ErrUsed
	case !now.Before(c.Expires):
		return ErrExpired
	case !bytes.Equal(c.CodeMAC, mac):
		return ErrCodeChanged
	}
	c.Used = now
	c.CodeMAC = nil
	c.Method = method
	return nil
}

// Resend implements Store.
func (m *Memory) Resend(_ context.Context, id string, mac []byte, now time.Time, cooldown time.Duration, maxSends int) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.live(id)
	if err := usable(c, now); err != nil {
		return 0, err
	}
	if c.Sends >= maxSends {
		return c.Sends, ErrSendLimit
	}
	if !c.LastSend.IsZero() {
		if wait := cooldown - now.Sub(c.LastSend); wait > 0 {
			return c.Sends, &CooldownError{RetryAfter: wait}
		}
	}
	c.CodeMAC = append([]byte(nil), mac...)
	c.Sends++
	c.LastSend = now
	c.SentBy = ""
	c.SendFailed = false
	return c.Sends, nil
}

// TakeStash implements Store.
func (m *Memory) TakeStash(_ context.Context, id string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.challenges[id]
	if !ok || !m.now().Before(e.expire) || !e.c.HasStash {
		return nil, ErrNotFound
	}
	if e.c.Used.IsZero() {
		return nil, ErrPending
	}
	if e.taken {
		return nil, ErrReplayed
	}
	if e.stash == nil {
		return nil, ErrNotFound // dropped by a newer challenge
	}
	s := e.stash
	e.stash, e.taken = nil, true
	return s, nil
}

// IssueGrant implements Store.
func (m *Memory) IssueGrant(_ context.Context, grantID string, expires time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if g, ok := m.grants[grantID]; ok && m.now().Before(g.expire) {
		if g.used {
			return ErrGrantUsed
		}
		return nil
	}
	m.grants[grantID] = memGrant{expire: expires}
	return nil
}

// UseGrant implements Store.
func (m *Memory) UseGrant(_ context.Context, grantID string, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.grants[grantID]
	switch {
	case !ok || !m.now().Before(g.expire):
		return ErrGrantUnknown
	case g.used:
		return ErrGrantUsed
	}
	g.used = true
	m.grants[grantID] = g
	return nil
}

// RecordSend implements Store.
func (m *Memory) RecordSend(_ context.Context, id string, sentBy string, failed bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.live(id)
	if c == nil {
		return ErrNotFound
	}
	if !c.Used.IsZero() {
		return nil
	}
	c.SentBy = sentBy
	c.SendFailed = failed
	if failed {
		c.LastSend = time.Time{}
	}
	return nil
}

// AddFailure implements Store.
func (m *Memory) AddFailure(_ context.Context, key string, window time.Duration) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.failureCount(key, window, m.now())
	f.n++
	m.failures[key] = f
	return f.n, nil
}

// failureCount returns key's failure count at now, a new one for window
// when there is none or it expired. The caller holds m.mu.
func (m *Memory) failureCount(key string, window time.Duration, now time.Time) memCounter {
	f, ok := m.failures[key]
	if !ok || !now.Before(f.expire) {
		f = memCounter{expire: now.Add(window)}
	}
	return f
}

// ReserveFailure implements Store.
func (m *Memory) ReserveFailure(_ context.Context, key string, max int, window time.Duration) (int, time.Duration, bool, error) {
	if window <= 0 {
		return 0, 0, false, errors.New("failure window must be positive")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	f := m.failureCount(key, window, now)
	if f.n >= max {
		if f.n == 0 {
			return 0, 0, false, nil
		}
		return f.n, f.expire.Sub(now), false, nil
	}
	f.n++
	m.failures[key] = f
	return f.n, f.expire.Sub(now), true, nil
}

// RefundFailure implements Store.
func (m *Memory) RefundFailure(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.failures[key]
	switch {
	case !ok:
	case f.n <= 1 || !m.now().Before(f.expire):
		delete(m.failures, key)
	default:
		f.n--
		m.failures[key] = f
	}
	return nil
}

// Failures implements Store.
func (m *Memory) Failures(_ context.Context, key string) (int, time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	f, ok := m.failures[key]
	if !ok || !now.Before(f.expire) {
		return 0, 0, nil
	}
	return f.n, f.expire.Sub(now), nil
}

// GetWithFailures implements Store.
func (m *Memory) GetWithFailures(ctx context.Context, id, failureKey string) (*Challenge, FailureCount, error) {
	var f FailureCount
	var err error
	if f.N, f.TTL, err = m.Failures(ctx, failureKey); err != nil {
		return nil, f, err
	}
	c, err := m.Get(ctx, id)
	return c, f, err
}

// PendingWithFailures implements Store.
func (m *Memory) PendingWithFailures(ctx context.Context, pending, failureKey string) (string, FailureCount, error) {
	var f FailureCount
	var err error
	if f.N, f.TTL, err = m.Failures(ctx, failureKey); err != nil {
		return "", f, err
	}
	id, err := m.Pending(ctx, pending)
	if errors.Is(err, ErrNotFound) {
		return "", f, nil
	}
	return id, f, err
}

// ClearFailures implements Store.
func (m *Memory) ClearFailures(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.failures, key)
	return nil
}

// Allow implements Store with the GCRA arithmetic of the Redis store
// (github.com/go-redis/redis_rate), so both stores limit alike.
func (m *Memory) Allow(_ context.Context, key string, l Limit) (bool, time.Duration, error) {
	if l.Off() {
		return true, 0, nil
	}
	burst := l.Burst
	if burst < 1 {
		burst = 1
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	interval := l.Period / time.Duration(l.Rate)
	tat := m.rates[key]
	if tat.Before(now) {
		tat = now
	}
	newTAT := tat.Add(interval)
	allowAt := newTAT.Add(-interval * time.Duration(burst))
	if diff := now.Sub(allowAt); diff < 0 {
		return false, -diff, nil
	}
	m.rates[key] = newTAT
	return true, 0, nil
}

// Revoke implements Store.
func (m *Memory) Revoke(_ context.Context, key string, at time.Time, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	expire := m.now().Add(ttl)
	for _, k := range []string{AnyKey, key} {
		v := memRevocation{at: at, expire: expire}
		if old, ok := m.revoked[k]; ok && m.now().Before(old.expire) {
			if old.at.After(at) {
				v.at = old.at
			}
			if old.expire.After(expire) {
				v.expire = old.expire
			}
		}
		m.revoked[k] = v
	}
	return nil
}

// RevokedAt implements Store.
func (m *Memory) RevokedAt(_ context.Context, key string) (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.revoked[key]
	if !ok || !m.now().Before(v.expire) {
		return time.Time{}, nil
	}
	return v.at, nil
}

// Generation implements Store: a random marker made at construction, as
// the memory store loses everything with its process.
func (m *Memory) Generation(context.Context) (string, error) { return m.generation, nil }

// Ping implements Store; memory is always reachable.
func (m *Memory) Ping(context.Context) error { return nil }

// Close stops the background sweep. The records stay readable.
func (m *Memory) Close() error {
	m.closeOnce.Do(func() { close(m.stop) })
	return nil
}

var _ Store = (*Memory)(nil)
