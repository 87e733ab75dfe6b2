// Command caddybin is Caddy with the standard modules and caddy-stepup,
// built from this module's own go.mod. The end-to-end tests build it with
// `go build` when no xcaddy-built binary is given (STEPUP_CADDY_BIN);
// users build theirs with xcaddy (see xcaddy.sh).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-stepup/caddy-stepup/caddymodule"
)

func main() {
	caddycmd.Main()
}
