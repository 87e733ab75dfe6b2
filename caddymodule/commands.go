package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-stepup/caddy-stepup/stepup"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "stepup",
		Usage: "send-test|unlock|revoke --config <path> [--adapter <name>] ...",
		Short: "Operator tools for the stepup handler",
		Long: `
Operator tools for the stepup handler. Each reads the server's config
(adapting it, for instance from a Caddyfile; run them with the server's
environment so that placeholders such as {env.STEPUP_SECRET} resolve):

  send-test   sends one test message through the configured senders
  unlock      clears a user's failed-code count, ending a lockout
  revoke      ends every grant of a user, on every instance, within a second
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(sendTestCommand(), userCommand("unlock",
				"Clears a user's failed-code count (ends a lockout)", unlockUser))
			cmd.AddCommand(userCommand("revoke",
				"Ends every grant of a user on every instance sharing the store", revokeUser))
		},
	})
}

// userCommand is a "caddy stepup <name> --config <path> --user <id>"
// subcommand acting on the Redis store of every stepup handler.
func userCommand(name, short string, run func(ctx context.Context, cfg []byte, user string, out io.Writer) (int, error)) *cobra.Command {
	sub := &cobra.Command{
		Use:   name + " --config <path> [--adapter <name>] --user <id>",
		Short: short,
		Long: "\n" + short + ", in the Redis store of every stepup handler in the config.\n" +
			"Handlers on the memory store keep their state inside the running Caddy and are\n" +
			"reported and skipped. --user is the user id as the identity source gives it\n" +
			"(the value upstreams see in Stepup-User).\n",
		Args: cobra.NoArgs,
	}
	sub.Flags().StringP("config", "c", "", "Configuration file (required)")
	sub.Flags().StringP("adapter", "a", "", "Name of config adapter to apply")
	sub.Flags().String("user", "", "The user id (required)")
	sub.RunE = func(cmd *cobra.Command, args []string) error {
		return caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
			configFile := fl.String("config")
			if configFile == "" {
				return caddy.ExitCodeFailedStartup, errors.New("--config is required")
			}
			cfg, _, _, err := caddycmd.LoadConfig(configFile, fl.String("adapter"))
			if err != nil {
				return caddy.ExitCodeFailedStartup, err
			}
			if _, err := run(context.Background(), cfg, fl.String("user"), cmd.OutOrStdout()); err != nil {
				return 1, err
			}
			return 0, nil
		})(cmd, args)
	}
	return sub
}

// eachRedisStore calls fn with the store and the user keys (one per
// secret, current first) of every stepup handler on Redis in cfg.
func eachRedisStore(ctx context.Context, cfg []byte, user string, out io.Writer,
	fn func(path string, st store.Store, keys []string) error) (int, error) {
	if user == "" {
		return 0, errors.New("--user is required")
	}
	handlers, err := findHandlers(cfg)
	if err != nil {
		return 0, err
	}
	if len(handlers) == 0 {
		return 0, errors.New("the config has no stepup handler")
	}
	repl := caddy.NewReplacer()
	done := 0
	for _, found := range handlers {
		var h Handler
		if err := json.Unmarshal(found.raw, &h); err != nil {
			return done, fmt.Errorf("%s: %v", found.path, err)
		}
		if h.Redis == nil {
			fmt.Fprintf(out, "%s: memory store, nothing to change from here (its state lives in the running Caddy)\n", found.path)
			continue
		}
		var keys []string
		for i, s := range append([]string{h.Secret}, h.PreviousSecrets...) {
			key, err := stepup.UserKey([]byte(repl.ReplaceKnown(s, "")), user)
			if err != nil {
				// A previous secret counts too: instances still on it
				// during a rotation look users up under its keys, and a
				// revocation or unlock that skipped it would not reach
				// them.
				what := "secret"
				if i > 0 {
					what = fmt.Sprintf("previous_secrets[%d]", i-1)
				}
				return done, fmt.Errorf("%s: %s: %v (run with the server's environment)", found.path, what, err)
			}
			keys = append(keys, key)
		}
		client, err := newRedisClient(h.Redis.resolved(repl))
		if err != nil {
			return done, fmt.Errorf("%s: redis: %v", found.path, err)
		}
		st := store.NewRedis(client, h.Redis.KeyPrefix, true)
		err = fn(found.path, st, keys)
		_ = st.Close()
		if err != nil {
			return done, fmt.Errorf("%s: %v", found.path, err)
		}
		done++
	}
	return done, nil
}

// unlockUser clears the failed-code count (and so the lockout) of user.
func unlockUser(ctx context.Context, cfg []byte, user string, out io.Writer) (int, error) {
	return eachRedisStore(ctx, cfg, user, out, func(path string, st store.Store, keys []string) error {
		total := 0
		for _, key := range keys {
			n, _, err := st.Failures(ctx, key)
			if err != nil {
				return err
			}
			if err := st.ClearFailures(ctx, key); err != nil {
				return err
			}
			total += n
		}
		fmt.Fprintf(out, "%s: cleared %d failed attempts\n", path, total)
		return nil
	})
}

// revokeUser ends every grant of user issued until now.
func revokeUser(ctx context.Context, cfg []byte, user string, out io.Writer) (int, error) {
	now := time.Now()
	return eachRedisStore(ctx, cfg, user, out, func(path string, st store.Store, keys []string) error {
		for _, key := range keys {
			if err := st.Revoke(ctx, key, now, stepup.MaxGrantTTL); err != nil {
				return err
			}
		}
		fmt.Fprintf(out, "%s: revoked every grant issued until %s\n", path, now.UTC().Format(time.RFC3339))
		return nil
	})
}
