package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/caddy-stepup/caddy-stepup/stepup"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// unblockCommand is "caddy stepup unblock --prefix +4477009000".
func unblockCommand() *cobra.Command {
	sub := &cobra.Command{
		Use:   "unblock --prefix <+digits> [--address <addr> | --config <path> [--direct]] [--handler <name>]",
		Short: "Lifts the SMS-pumping block of a number prefix",
		Long: `
Lifts the block (or monitor-mode flag) the SMS-pumping defense put on a number
prefix, and forgets the prefix's counts, on every instance sharing the store.
--prefix is the number in international form without its last four digits
(+4477009001 for +447700900123): the prefix of a customer who reports that
codes do not arrive.

By default it asks the running Caddy through its admin API (--address, or the
admin address in --config, or localhost:2019), which acts on every running
stepup handler, the memory store's included, and emits prefix_unblocked. With
--config FILE --direct it goes straight to the Redis store of each handler in
the config instead (and writes prefix_unblocked to the handler's audit_stream,
if it has one). The output names each handler and the prefix_id its events
carry for the prefix. The exit status is 1 when nothing was unblocked (the
prefix was not blocked anywhere) or any handler could not be asked.
`,
		Args: cobra.NoArgs,
	}
	adminFlags(sub)
	sub.Flags().String("prefix", "", "The number prefix, + and digits (required)")
	sub.Flags().Bool("direct", false, "Go straight to Redis (needs --config) instead of the admin API")
	sub.RunE = func(cmd *cobra.Command, args []string) error {
		return caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
			out := cmd.OutOrStdout()
			prefix := fl.String("prefix")
			if _, err := stepup.CheckPumpingPrefix(prefix); err != nil {
				return caddy.ExitCodeFailedStartup, fmt.Errorf("--prefix: %v", err)
			}
			var results []prefixResult
			var err error
			if fl.Bool("direct") {
				configFile := fl.String("config")
				if configFile == "" {
					return caddy.ExitCodeFailedStartup, errors.New("--direct needs --config")
				}
				cfg, _, _, lerr := caddycmd.LoadConfig(configFile, fl.String("adapter"))
				if lerr != nil {
					return caddy.ExitCodeFailedStartup, lerr
				}
				results, err = unblockDirect(context.Background(), cfg, prefix, fl.String("handler"))
			} else {
				var res struct {
					Results []prefixResult `json:"results"`
				}
				err = adminCall(fl, http.MethodPost, "/stepup/unblock", adminRequest{Prefix: prefix, Handler: fl.String("handler")}, &res)
				results = res.Results
			}
			printPrefixResults(out, results)
			if err != nil {
				return 1, err
			}
			return unblockExit(results)
		})(cmd, args)
	}
	return sub
}

// unblockExit is the exit status of an unblock: 1 unless some handler
// unblocked the prefix and none failed.
func unblockExit(results []prefixResult) (int, error) {
	unblocked := false
	for _, r := range results {
		if r.Error != "" {
			return 1, fmt.Errorf("%s: %s", r.Handler, r.Error)
		}
		unblocked = unblocked || r.Unblocked
	}
	if !unblocked {
		return 1, errors.New("nothing unblocked: the prefix is not blocked on any handler")
	}
	return 0, nil
}

// printPrefixResults prints one line per handler of an unblock.
func printPrefixResults(out io.Writer, results []prefixResult) {
	for _, r := range results {
		what := "unblocked"
		switch {
		case r.Error != "":
			what = "FAILED: " + r.Error
		case !r.Unblocked:
			what = "nothing to do: " + r.Note
		}
		if r.PrefixID != "" {
			what += " (events name this prefix " + r.PrefixID + ")"
		}
		fmt.Fprintf(out, "%s: %s\n", r.Handler, what)
	}
}

// unblockDirect lifts the block of prefix on the Redis store of every
// stepup handler of cfg (JSON) with the pumping defense on. A handler on
// the memory store gets an error result: its state lives in the running
// Caddy.
func unblockDirect(ctx context.Context, cfg []byte, prefix, only string) ([]prefixResult, error) {
	cc, err := stepup.CheckPumpingPrefix(prefix)
	if err != nil {
		return nil, err
	}
	handlers, err := configHandlers(cfg, only)
	if err != nil {
		return nil, err
	}
	repl := caddy.NewReplacer()
	var results []prefixResult
	for _, dh := range handlers {
		h := dh.h
		res := prefixResult{Handler: dh.name}
		if id, err := stepup.PrefixID([]byte(repl.ReplaceKnown(h.Secret, "")), prefix); err == nil {
			res.PrefixID = id
		}
		pc, err := h.Pumping.engine().WithDefaults()
		switch {
		case err != nil:
			res.Error = err.Error()
		case pc.Mode == stepup.PumpingOff:
			res.Note = "pumping defense off"
		case h.Redis == nil:
			res.Error = "memory store, not reachable with --direct (its state lives in the running Caddy): use the admin API"
		default:
			res.Unblocked, err = unblockOnRedis(ctx, &h, repl, cc, prefix, res.PrefixID)
			if err != nil {
				res.Error = err.Error()
			} else if !res.Unblocked {
				res.Note = "not blocked"
			}
		}
		results = append(results, res)
	}
	return results, nil
}

// unblockOnRedis lifts the block on h's Redis store and, when it did and
// h has an audit stream, writes prefix_unblocked there.
func unblockOnRedis(ctx context.Context, h *Handler, repl *caddy.Replacer, cc int, prefix, prefixID string) (bool, error) {
	client, err := newRedisClient(h.Redis.resolved(repl))
	if err != nil {
		return false, fmt.Errorf("redis: %v", err)
	}
	st := store.NewRedis(client, h.Redis.KeyPrefix, true)
	defer st.Close()
	keys, err := stepup.PumpKeys([]byte(repl.ReplaceKnown(h.Secret, "")), prefix)
	if err != nil {
		return false, err
	}
	ok := false
	for _, key := range keys {
		lifted, err := st.UnblockPrefix(ctx, strconv.Itoa(cc), key)
		if err != nil {
			return false, err
		}
		ok = ok || lifted
	}
	if !ok || h.AuditStream == "" {
		return ok, nil
	}
	maxLen := h.AuditMaxLen
	if maxLen == 0 {
		maxLen = defaultAuditMaxLen
	}
	values := []any{"event", string(stepup.EventPrefixUnblocked), "ts", time.Now().UTC().Format(time.RFC3339Nano),
		"country", strconv.Itoa(cc), "outcome", "operator_direct"}
	if prefixID != "" {
		values = append(values, "prefix_id", prefixID)
	}
	if err := client.XAdd(ctx, &redis.XAddArgs{Stream: h.AuditStream, MaxLen: maxLen, Approx: true, Values: values}).Err(); err != nil {
		// The block is lifted; only its record is missing.
		return true, fmt.Errorf("unblocked, but writing prefix_unblocked to the audit stream %s failed: %v", strings.TrimSpace(h.AuditStream), err)
	}
	return true, nil
}
