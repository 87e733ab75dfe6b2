package webhook

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-stepup/caddy-stepup/sender"
)

// delivered is a sender that takes every message.
type delivered string

func (d delivered) Name() string                              { return string(d) }
func (delivered) Send(context.Context, *sender.Message) error { return nil }

// A provider behind a real webhook fails, recovers and fails again; its
// breaker opens, lets a probe through after the cool-down, closes, and
// opens again.
func TestChainBreakerFailsRecoversFailsAgain(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusServiceUnavailable)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	primary, err := New(Config{URL: srv.URL, Options: sender.Options{Name: "primary", MaxAttempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	backup := delivered("backup")
	core, logs := observer.New(zapcore.DebugLevel)
	const cooldown = 200 * time.Millisecond
	c := sender.NewChain([]sender.Sender{primary, backup}, sender.ChainOptions{BreakerFailures: 2, BreakerCooldown: cooldown, Logger: zap.New(core)})

	step := func(name, wantBy string, wantHits int32) {
		t.Helper()
		before := hits.Load()
		msg := testMessage
		by, err := c.Send(t.Context(), &msg)
		if err != nil || by != wantBy {
			t.Fatalf("%s: Send = %q, %v; want %q", name, by, err, wantBy)
		}
		if got := hits.Load() - before; got != wantHits {
			t.Fatalf("%s: primary got %d requests, want %d", name, got, wantHits)
		}
	}
	step("first failure", "backup", 1)
	step("second failure opens the circuit", "backup", 1)
	if logs.FilterMessage("sender circuit opened: skipping the sender").FilterField(zap.String("sender", "primary")).Len() != 1 {
		t.Error("the opening was not logged")
	}
	step("open: skipped", "backup", 0)
	status.Store(http.StatusOK) // the provider is back, but the circuit is still open
	step("still cooling down", "backup", 0)
	time.Sleep(cooldown + 50*time.Millisecond)
	step("probe succeeds and closes", "primary", 1)
	if logs.FilterMessage("sender circuit closed: the sender is back").Len() != 1 {
		t.Error("the closing was not logged")
	}
	step("closed", "primary", 1)
	status.Store(http.StatusInternalServerError) // down again
	step("fails again", "backup", 1)
	step("opens again", "backup", 1)
	step("open again: skipped", "backup", 0)
	time.Sleep(cooldown + 50*time.Millisecond)
	step("failed probe", "backup", 1)
	step("reopened at once", "backup", 0)
	if n := logs.FilterMessage("sender circuit opened: skipping the sender").Len(); n != 3 {
		t.Errorf("circuit opened %d times, want 3", n)
	}
}
