package caddymodule

import "github.com/caddyserver/caddy/v2"

// ReceiptsConfig turns on delivery receipts: each sender that takes them
// is given {public_url}{path_prefix}/receipts/{sender name} with its
// messages, and a code that is not delivered goes out through the next
// sender (docs/SENDERS.md, "Delivery receipts"). Defaults and bounds are
// the engine's (stepup.Receipts).
type ReceiptsConfig struct {
	// PublicURL is the scheme and host providers call back
	// ("https://shop.example.com"), with the path a proxy in front
	// strips, if any.
	PublicURL string `json:"public_url,omitempty"`
	// FailoverAfter is how long a code may go without a "delivered"
	// receipt before it is sent through the next sender (5s to 10m,
	// shorter than code_ttl). Default: 30s
	FailoverAfter caddy.Duration `json:"failover_after,omitempty"`
}
