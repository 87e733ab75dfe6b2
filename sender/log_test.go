package sender

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestLog(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	l := NewLog(zap.New(core))
	if l.Name() != "log" {
		t.Errorf("Name = %q, want log", l.Name())
	}
	msg := testMessage
	if err := l.Send(t.Context(), &msg); err != nil {
		t.Fatalf("Send: %v", err)
	}
	entries := logs.All()
	if len(entries) != 1 {
		t.Fatalf("%d log entries, want 1", len(entries))
	}
	e := entries[0]
	if e.Level != zapcore.InfoLevel {
		t.Errorf("level %v, want info", e.Level)
	}
	fields := e.ContextMap()
	for key, want := range map[string]string{
		"to":        "+1******0100",
		"code":      testMessage.Code,
		"policy":    "checkout",
		"challenge": "ch_7Qx",
		"channel":   "sms",
		"message":   testMessage.Text,
	} {
		if got := fields[key]; got != want {
			t.Errorf("field %s = %q, want %q", key, got, want)
		}
	}
}

func TestLogEdges(t *testing.T) {
	l := NewLog(nil) // discards, never panics
	msg := testMessage
	if err := l.Send(t.Context(), &msg); err != nil {
		t.Errorf("Send with a nil logger: %v", err)
	}
	if err := l.Send(t.Context(), nil); err == nil {
		t.Error("Send(nil) succeeded")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := l.Send(ctx, &msg); !errors.Is(err, context.Canceled) {
		t.Errorf("Send with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestMaskDestination(t *testing.T) {
	tests := []struct{ in, want string }{
		{"+919876543210", "+91******3210"},
		{"alice@example.com", "a***@example.com"},
		{"émile@example.fr", "é***@example.fr"},
		{"@example.com", "***@***"},
		{"alice@", "***@***"},
		{"a@b@c", "***@***"},
		{"9876543210", "+***"},
		{"", "+***"},
	}
	for _, tt := range tests {
		if got := MaskDestination(tt.in); got != tt.want {
			t.Errorf("MaskDestination(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
