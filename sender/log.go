package sender

import (
	"context"
	"strings"

	"go.uber.org/zap"
)

// Log is a sender for development and demos: it delivers nothing and
// writes the code to the log instead, at INFO level, with the masked
// destination, the channel, the policy, the challenge id and the message
// text as it would have been sent.
//
// It is the only place in the whole plugin where a code may appear in a
// log. Never configure it in production: whoever reads the logs could
// pass any step-up challenge.
type Log struct {
	logger *zap.Logger
}

var _ Sender = (*Log)(nil)

// NewLog returns a Log that writes to logger; a nil logger discards
// everything.
func NewLog(logger *zap.Logger) *Log {
	if logger == nil {
		logger = zap.NewNop()
	}
	return &Log{logger: logger}
}

// Name returns "log".
func (*Log) Name() string { return "log" }

// Send logs msg, code included. It fails only if ctx is already done.
func (l *Log) Send(ctx context.Context, msg *Message) error {
	if msg == nil {
		return &Error{Sender: l.Name(), Msg: "no message"}
	}
	if err := ctx.Err(); err != nil {
		return &Error{Sender: l.Name(), Temporary: true, Msg: "not logged", Err: err}
	}
	l.logger.Info("one-time code (log sender, development only)",
		zap.String("to", MaskDestination(msg.To)),
		zap.String("channel", string(msg.Channel)),
		zap.String("policy", msg.Policy),
		zap.String("challenge", msg.Challenge),
		zap.String("code", msg.Code),
		zap.String("message", msg.Text),
	)
	return nil
}

// MaskDestination masks a phone number (see MaskPhone) or an e-mail
// address, of which it keeps the first character and the domain
// ("u***@example.com"), for display and logs.
func MaskDestination(to string) string {
	local, domain, ok := strings.Cut(to, "@")
	if !ok {
		return MaskPhone(to)
	}
	if local == "" || domain == "" || strings.Contains(domain, "@") {
		return "***@***"
	}
	// Keep the first character whole, even if it is more than one byte.
	first := []rune(local)[0]
	return string(first) + "***@" + domain
}
