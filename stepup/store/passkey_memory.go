package store

import (
	"bytes"
	"context"
	"sort"
	"time"
)

// memPasskeys are one user's passkeys, by credential id.
type memPasskeys map[string]*Passkey

func (m *Memory) userPasskeys(user string, create bool) memPasskeys {
	if m.passkeys == nil {
		if !create {
			return nil
		}
		m.passkeys = make(map[string]memPasskeys)
	}
	ps := m.passkeys[user]
	if ps == nil && create {
		ps = make(memPasskeys)
		m.passkeys[user] = ps
	}
	return ps
}

// AddPasskey implements PasskeyStore.
func (m *Memory) AddPasskey(_ context.Context, user string, p Passkey, max int) error {
	if err := checkPasskeyName(p.Name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := m.userPasskeys(user, true)
	if _, ok := ps[string(p.ID)]; ok {
		return ErrPasskeyExists
	}
	if len(ps) >= max {
		return ErrPasskeyLimit
	}
	c := clonePasskey(p)
	ps[string(p.ID)] = &c
	return nil
}

func clonePasskey(p Passkey) Passkey {
	p.ID = bytes.Clone(p.ID)
	p.PublicKey = bytes.Clone(p.PublicKey)
	p.UserHandle = bytes.Clone(p.UserHandle)
	p.AAGUID = bytes.Clone(p.AAGUID)
	p.Transports = append([]string(nil), p.Transports...)
	return p
}

// Passkeys implements PasskeyStore.
func (m *Memory) Passkeys(_ context.Context, user string) ([]Passkey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := m.userPasskeys(user, false)
	out := make([]Passkey, 0, len(ps))
	for _, p := range ps {
		out = append(out, clonePasskey(*p))
	}
	sortPasskeys(out)
	return out, nil
}

// sortPasskeys orders passkeys oldest first (then by id, for a stable
// order).
func sortPasskeys(ps []Passkey) {
	sort.Slice(ps, func(i, j int) bool {
		if !ps[i].Created.Equal(ps[j].Created) {
			return ps[i].Created.Before(ps[j].Created)
		}
		return bytes.Compare(ps[i].ID, ps[j].ID) < 0
	})
}

// UsePasskey implements PasskeyStore.
func (m *Memory) UsePasskey(_ context.Context, user string, id []byte, counter uint32, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.userPasskeys(user, false)[string(id)]
	if p == nil {
		return ErrPasskeyNotFound
	}
	if !counterOK(p.SignCount, counter) {
		return ErrSignCount
	}
	p.SignCount, p.LastUsed = counter, now
	return nil
}

// RenamePasskey implements PasskeyStore.
func (m *Memory) RenamePasskey(_ context.Context, user string, id []byte, name string) error {
	if err := checkPasskeyName(name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.userPasskeys(user, false)[string(id)]
	if p == nil {
		return ErrPasskeyNotFound
	}
	p.Name = name
	return nil
}

// RemovePasskey implements PasskeyStore.
func (m *Memory) RemovePasskey(_ context.Context, user string, id []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := m.userPasskeys(user, false)
	if ps[string(id)] == nil {
		return ErrPasskeyNotFound
	}
	delete(ps, string(id))
	if len(ps) == 0 {
		delete(m.passkeys, user)
	}
	return nil
}
