// Package caddystepup is caddy-stepup's import path for Caddy builds: it
// registers every caddy-stepup module with Caddy.
//
//	xcaddy build --with github.com/caddy-stepup/caddy-stepup
//
// The handler and its Caddyfile directive live in package caddymodule,
// the engine in package stepup, code delivery in package sender.
package caddystepup

import (
	// Register the Caddy modules.
	_ "github.com/caddy-stepup/caddy-stepup/caddymodule"
)
