package caddymodule

import (
	"sync"
	"time"

	"go.uber.org/zap/zapcore"
)

// senderErrors remembers the last error of each sender, for `caddy
// stepup status`. The failover chain (sender.Chain) logs every failed
// send as a "sender failed" warning with the sender's name and its
// error, already scrubbed of the code and the destination; this core,
// teed beside the chain's logger, keeps the last one per sender. It
// keeps nothing else.
type senderErrors struct {
	*lastErrors
	// fields are those a With call added (the chain adds none today).
	fields []zapcore.Field
}

// lastErrors is what the cores made by With share.
type lastErrors struct {
	mu   sync.Mutex
	last map[string]senderError
}

type senderError struct {
	msg string
	at  time.Time
}

// chainFailedMsg is the message sender.Chain logs for a failed send.
const chainFailedMsg = "sender failed"

func newSenderErrors() *senderErrors {
	return &senderErrors{lastErrors: &lastErrors{last: make(map[string]senderError)}}
}

// lastError returns the last error of sender name, if any.
func (s *senderErrors) lastError(name string) (senderError, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.last[name]
	return e, ok
}

// Enabled implements zapcore.Core: warnings and above.
func (s *senderErrors) Enabled(l zapcore.Level) bool { return l >= zapcore.WarnLevel }

// With implements zapcore.Core.
func (s *senderErrors) With(fields []zapcore.Field) zapcore.Core {
	return &senderErrors{lastErrors: s.lastErrors, fields: append(append([]zapcore.Field(nil), s.fields...), fields...)}
}

// Check implements zapcore.Core.
func (s *senderErrors) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if e.Message == chainFailedMsg && s.Enabled(e.Level) {
		return ce.AddCore(e, s)
	}
	return ce
}

// Write implements zapcore.Core.
func (s *senderErrors) Write(e zapcore.Entry, fields []zapcore.Field) error {
	var name, msg string
	for _, f := range append(append([]zapcore.Field(nil), s.fields...), fields...) {
		switch {
		case f.Key == "sender" && f.Type == zapcore.StringType:
			name = f.String
		case f.Key == "error" && f.Type == zapcore.ErrorType:
			if err, ok := f.Interface.(error); ok {
				msg = err.Error()
			}
		}
	}
	if name == "" {
		return nil
	}
	s.mu.Lock()
	s.last[name] = senderError{msg: msg, at: e.Time}
	s.mu.Unlock()
	return nil
}

// Sync implements zapcore.Core.
func (s *senderErrors) Sync() error { return nil }
