package sender

// SenderStatus is what an operator sees of one sender of a Chain.
type SenderStatus struct {
	// Name is the sender's name; Channel the channel it declares ("" for
	// senders that carry any).
	Name    string
	Channel Channel
	// Breaker is the state of its circuit breaker: "closed" (in use),
	// "open" (skipped for the cool-down), "half-open" (the next message
	// probes it) or "disabled".
	Breaker string
	// ConsecutiveFailures are the failures counted in a row by the
	// breaker since its state last changed.
	ConsecutiveFailures uint32
}

// Status returns the state of each sender, in the order they are tried.
// It reads the breakers as the next message would find them: an open
// breaker whose cool-down is over reads (and turns) half-open, which the
// next message would have made it anyway; nothing else changes.
func (c *Chain) Status() []SenderStatus {
	out := make([]SenderStatus, len(c.senders))
	for i := range c.senders {
		s := SenderStatus{Name: c.names[i], Channel: c.routes[i].channel, Breaker: "disabled"}
		if cb := c.breakers[i]; cb != nil {
			s.Breaker = cb.State().String()
			s.ConsecutiveFailures = cb.Counts().ConsecutiveFailures
		}
		out[i] = s
	}
	return out
}
