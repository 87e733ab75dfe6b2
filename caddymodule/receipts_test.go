package caddymodule

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func TestReceiptsCaddyfile(t *testing.T) {
	h, err := parse(t, fmtMinimal("\treceipts {\n\t\tpublic_url https://shop.example.com\n\t\tfailover_after 20s\n\t}"))
	if err != nil {
		t.Fatal(err)
	}
	if h.Receipts == nil || h.Receipts.PublicURL != "https://shop.example.com" || time.Duration(h.Receipts.FailoverAfter) != 20*time.Second {
		t.Fatalf("receipts = %+v", h.Receipts)
	}
	for input, want := range map[string]string{
		"\treceipts {\n\t}": "receipts needs public_url",
		"\treceipts x {\n\t\tpublic_url https://a.b\n\t}":            "wrong argument count",
		"\treceipts {\n\t\tpublic_url https://a.b\n\t\tretry 3\n\t}": `unknown receipts option "retry"`,
	} {
		if _, err := parse(t, fmtMinimal(input)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", input, err, want)
		}
	}

	// Provisioned: the engine has the options, with the default
	// failover_after when none is given.
	h, err = parse(t, fmtMinimal("\treceipts {\n\t\tpublic_url https://shop.example.com/\n\t}"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	cfg := h.engine.Config()
	if cfg.Receipts.FailoverAfter != 30*time.Second || cfg.ReceiptURL("twilio") != "https://shop.example.com/.stepup/receipts/twilio" {
		t.Errorf("engine receipts %+v, URL %q", cfg.Receipts, cfg.ReceiptURL("twilio"))
	}
}
