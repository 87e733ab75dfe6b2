package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-stepup/caddy-stepup/stepup"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// unlockUser clears the failed-code count (and so the lockout) of user in
// the Redis store of every stepup handler in cfg (JSON). Handlers on the
// memory store are reported and skipped: their state lives inside the
// running Caddy. It returns how many stores were cleared.
func unlockUser(ctx context.Context, cfg []byte, user string, out io.Writer) (int, error) {
	if user == "" {
		return 0, fmt.Errorf("--user is required")
	}
	handlers, err := findHandlers(cfg)
	if err != nil {
		return 0, err
	}
	if len(handlers) == 0 {
		return 0, fmt.Errorf("the config has no stepup handler")
	}
	repl := caddy.NewReplacer()
	cleared := 0
	for _, found := range handlers {
		var h Handler
		if err := json.Unmarshal(found.raw, &h); err != nil {
			return cleared, fmt.Errorf("%s: %v", found.path, err)
		}
		if h.Redis == nil {
			fmt.Fprintf(out, "%s: memory store, nothing to clear from here (the lockout ends with its window or a restart)\n", found.path)
			continue
		}
		secrets := []string{h.Secret}
		secrets = append(secrets, h.PreviousSecrets...)
		client, err := newRedisClient(h.Redis.resolved(repl))
		if err != nil {
			return cleared, fmt.Errorf("%s: redis: %v", found.path, err)
		}
		st := store.NewRedis(client, h.Redis.KeyPrefix, true)
		for i, s := range secrets {
			key, err := stepup.UserKey([]byte(repl.ReplaceKnown(s, "")), user)
			if err != nil {
				if i == 0 {
					_ = st.Close()
					return cleared, fmt.Errorf("%s: secret: %v (run with the server's environment)", found.path, err)
				}
				continue
			}
			n, _, err := st.Failures(ctx, key)
			if err != nil {
				_ = st.Close()
				return cleared, fmt.Errorf("%s: %v", found.path, err)
			}
			if err := st.ClearFailures(ctx, key); err != nil {
				_ = st.Close()
				return cleared, fmt.Errorf("%s: %v", found.path, err)
			}
			if i == 0 || n > 0 {
				fmt.Fprintf(out, "%s: cleared %d failed attempts\n", found.path, n)
			}
		}
		_ = st.Close()
		cleared++
	}
	return cleared, nil
}
