package caddymodule

import (
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// The registry of running handlers, for the admin API
// (admin.api.stepup) to act on: handlers enter it at the end of
// Provision and leave it in Cleanup. Across a reload the new config's
// handlers provision before the old config's are cleaned up, so for a
// moment both are in it; entries remember their config, and the admin
// API acts on the handlers of the newest config that is still there (if
// the new config fails to start, its handlers leave and the old ones
// serve again, as Caddy does).
var registry struct {
	mu      sync.Mutex
	seq     uint64
	entries []*liveHandler
}

// liveHandler is one running handler.
type liveHandler struct {
	h *Handler
	// name is the handler's name (see handlerName), unique in its config.
	name string
	// config identifies the config the handler belongs to: its metrics
	// registry, made anew for every config Caddy loads.
	config any
	// seq orders registrations: a newer config's handlers have higher.
	seq uint64
	// listen are the addresses of the HTTP server the handler is in.
	listen []string
}

// register adds h, provisioned in ctx, to the registry.
func register(ctx caddy.Context, h *Handler) {
	var listen []string
	if srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok && srv != nil {
		listen = slices.Clone(srv.Listen)
	}
	config := any(ctx.GetMetricsRegistry())
	base := handlerName(h, listen)
	registry.mu.Lock()
	defer registry.mu.Unlock()
	registry.seq++
	name := base
	for n := 2; ; n++ {
		taken := false
		for _, e := range registry.entries {
			if e.config == config && e.name == name {
				taken = true
				break
			}
		}
		if !taken {
			break
		}
		name = base + "#" + strconv.Itoa(n)
	}
	registry.entries = append(registry.entries, &liveHandler{h: h, name: name, config: config, seq: registry.seq, listen: listen})
}

// unregister removes h; it is a no-op for a handler that never
// registered (a failed Provision).
func unregister(h *Handler) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	registry.entries = slices.DeleteFunc(registry.entries, func(e *liveHandler) bool { return e.h == h })
}

// currentHandlers returns the handlers of the newest config still
// registered, in the order they were provisioned.
func currentHandlers() []*liveHandler {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if len(registry.entries) == 0 {
		return nil
	}
	newest := registry.entries[0]
	for _, e := range registry.entries {
		if e.seq > newest.seq {
			newest = e
		}
	}
	var out []*liveHandler
	for _, e := range registry.entries {
		if e.config == newest.config {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *liveHandler) int { return int(a.seq) - int(b.seq) })
	return out
}

// handlerName names a handler by what it has, since a handler does not
// know its site: "<where><path_prefix>:<policies>", where <where> is its
// domain option if set, else the addresses its server listens on (joined
// by '+'), else its scope option as "scope=<scope>"; <path_prefix> is
// its path_prefix (default /.stepup) and <policies> its policies' names,
// in order, joined by ',' ("-" for none). Example:
// "localhost/.stepup:payment-methods,checkout,admin". A second handler
// of the same name in one config gets "#2" after it, and so on.
func handlerName(h *Handler, listen []string) string {
	repl := caddy.NewReplacer()
	where := repl.ReplaceKnown(h.Domain, "")
	if where == "" {
		where = strings.Join(listen, "+")
	}
	if where == "" && h.Scope != "" {
		where = "scope=" + repl.ReplaceKnown(h.Scope, "")
	}
	prefix := h.PathPrefix
	if prefix == "" {
		prefix = "/.stepup"
	}
	names := make([]string, 0, len(h.Policies))
	for _, p := range h.Policies {
		names = append(names, p.Name)
	}
	pols := strings.Join(names, ",")
	if pols == "" {
		pols = "-"
	}
	return where + prefix + ":" + pols
}
