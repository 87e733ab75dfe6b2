module github.com/caddy-stepup/caddy-stepup/bench

go 1.26.0

require (
	github.com/caddy-stepup/caddy-stepup v0.0.0-00010101000000-000000000000
	github.com/redis/go-redis/v9 v9.23.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/nyaruka/phonenumbers v1.8.1 // indirect
	github.com/sony/gobreaker/v2 v2.4.0 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	go.uber.org/multierr v1.11.0 // indirect
	go.uber.org/zap v1.28.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

// The benchmark suite measures this checkout of the plugin.
replace github.com/caddy-stepup/caddy-stepup => ../
