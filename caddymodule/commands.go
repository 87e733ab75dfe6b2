package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
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
		Usage: "status|unlock|revoke|remove-passkeys|unblock|send-test|stats|preview|version ...",
		Short: "Operator tools for the stepup handler",
		Long: `
Operator tools for the stepup handler.

  status      store reachability and latency, senders and their circuit
              breakers, pending challenges and locked users, per handler
  unlock      clears a user's failed-code count, ending a lockout
  revoke      ends every grant of a user, on every instance, within a second
  remove-passkeys  removes every passkey of a user (a lost device)
  unblock     lifts the SMS-pumping block of a number prefix
  send-test   sends one test message through the configured senders
  stats       codes sent, delivered, verified and failed over, from Redis
  preview     writes every page state in every locale as HTML files
  version     the plugin's, Caddy's and the store format's versions

status, unlock, revoke and unblock ask the running Caddy through its admin
API (--address, or the admin address of --config, or localhost:2019), so
they act on every handler, the memory store's included. unlock, revoke and
unblock can instead go straight to Redis with --config FILE --direct (run
them with the server's environment so that placeholders such as
{env.STEPUP_SECRET} resolve). Handlers are named "<domain or listen address><path_prefix>:<policies>".
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(statusCommand(), userCommand("unlock",
				"Clears a user's failed-code count (ends a lockout)", unlockUser))
			cmd.AddCommand(userCommand("revoke",
				"Ends every grant of a user on every instance sharing the store", revokeUser))
			cmd.AddCommand(userCommand("remove-passkeys",
				"Removes every passkey of a user (a lost device): SMS from then on", removePasskeysDirect))
			cmd.AddCommand(unblockCommand(), sendTestCommand(), statsCommand(), previewCommand(), versionCommand())
		},
	})
}

// adminFlags adds the flags that pick the admin API.
func adminFlags(c *cobra.Command) {
	c.Flags().String("address", "", "The address of the admin API (default: the config's, else localhost:2019)")
	c.Flags().StringP("config", "c", "", "Configuration file (to find the admin address; with --direct, the stores)")
	c.Flags().StringP("adapter", "a", "", "Name of config adapter to apply")
	c.Flags().String("handler", "", "Only the handler of this name (see caddy stepup status)")
}

// adminCall sends one request to the admin API at the address the flags
// pick and decodes its JSON answer into out. An answer of 400 or more is
// an error carrying the API's message; the body is still decoded into out
// when it is JSON of that shape (partial results).
func adminCall(fl caddycmd.Flags, method, uri string, body any, out any) error {
	addr, err := caddycmd.DetermineAdminAPIAddress(fl.String("address"), nil, fl.String("config"), fl.String("adapter"))
	if err != nil {
		return fmt.Errorf("finding the admin API address: %v", err)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	resp, err := caddycmd.AdminAPIRequest(addr, method, uri, nil, rd)
	if err != nil {
		msg := err.Error()
		if i := strings.IndexByte(msg, '{'); i >= 0 {
			var apiErr struct {
				Error string `json:"error"`
			}
			raw := []byte(msg[i:])
			if json.Unmarshal(raw, &apiErr) == nil && apiErr.Error != "" {
				return fmt.Errorf("admin API at %s: %s", addr, apiErr.Error)
			}
			if out != nil && json.Unmarshal(raw, out) == nil {
				return fmt.Errorf("admin API at %s: %s", addr, msg[:i])
			}
		}
		if strings.Contains(msg, "performing request") {
			return fmt.Errorf("admin API at %s: %v (is Caddy running with its admin API there? use --address, or --config FILE --direct for Redis)", addr, err)
		}
		return fmt.Errorf("admin API at %s: %v", addr, err)
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("admin API at %s: reading the answer: %v", addr, err)
	}
	return nil
}

// userCommand is "caddy stepup unlock|revoke --user <id>": through the
// admin API, or with --config FILE --direct straight on the Redis store
// of every stepup handler in the config.
func userCommand(name, short string, direct func(ctx context.Context, cfg []byte, user, only string, out io.Writer) (int, error)) *cobra.Command {
	sub := &cobra.Command{
		Use:   name + " --user <id> [--address <addr> | --config <path> [--direct]] [--handler <name>]",
		Short: short,
		Long: "\n" + short + ".\n\n" +
			"By default it asks the running Caddy through its admin API (--address, or the\n" +
			"admin address in --config, or localhost:2019), which acts on every running\n" +
			"stepup handler, whatever its store. With --config FILE --direct it goes straight\n" +
			"to the Redis store of each handler in the config instead (handlers on the memory\n" +
			"store cannot be reached that way: the command then fails for them). --user is the\n" +
			"user id as the identity source gives it (the value upstreams see in Stepup-User).\n" +
			"The output names each handler and the value its audit events carry for the user.\n" +
			"The exit status is 1 when any handler could not do it.\n",
		Args: cobra.NoArgs,
	}
	adminFlags(sub)
	sub.Flags().String("user", "", "The user id (required)")
	sub.Flags().Bool("direct", false, "Go straight to Redis (needs --config) instead of the admin API")
	sub.RunE = func(cmd *cobra.Command, args []string) error {
		return caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
			out := cmd.OutOrStdout()
			user := fl.String("user")
			if user == "" {
				return caddy.ExitCodeFailedStartup, errors.New("--user is required")
			}
			if fl.Bool("direct") {
				configFile := fl.String("config")
				if configFile == "" {
					return caddy.ExitCodeFailedStartup, errors.New("--direct needs --config")
				}
				cfg, _, _, err := caddycmd.LoadConfig(configFile, fl.String("adapter"))
				if err != nil {
					return caddy.ExitCodeFailedStartup, err
				}
				if _, err := direct(context.Background(), cfg, user, fl.String("handler"), out); err != nil {
					return 1, err
				}
				return 0, nil
			}
			var res struct {
				Results []userResult `json:"results"`
			}
			err := adminCall(fl, http.MethodPost, "/stepup/"+name, adminRequest{User: user, Handler: fl.String("handler")}, &res)
			printUserResults(out, name, res.Results)
			if err != nil {
				return 1, err
			}
			return 0, nil
		})(cmd, args)
	}
	return sub
}

// printUserResults prints one line per handler of an unlock or revoke.
func printUserResults(out io.Writer, action string, results []userResult) {
	for _, r := range results {
		var what string
		switch {
		case r.Error != "":
			what = "FAILED: " + r.Error
		case action == "unlock" && r.Cleared != nil:
			what = fmt.Sprintf("cleared %d failed attempts", *r.Cleared)
		case action == "revoke":
			what = "revoked every grant issued until " + r.RevokedUntil
		case action == "remove-passkeys" && r.PasskeysRemoved != nil:
			what = fmt.Sprintf("removed %d passkeys", *r.PasskeysRemoved)
		}
		if r.AuditUser != "" {
			what += fmt.Sprintf(" (audit events name this user %s)", r.AuditUser)
		}
		fmt.Fprintf(out, "%s: %s\n", r.Handler, what)
	}
}

// directHandler is a handler of a config file, for --direct.
type directHandler struct {
	name string
	path string // in the JSON config
	h    Handler
}

// configHandlers returns the stepup handlers of cfg (JSON), named as the
// running Caddy names them, only the one named only when it is set.
func configHandlers(cfg []byte, only string) ([]directHandler, error) {
	found, err := findHandlers(cfg)
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return nil, errors.New("the config has no stepup handler")
	}
	var root struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Listen []string `json:"listen"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	_ = json.Unmarshal(cfg, &root)
	seen := map[string]int{}
	var out, all []directHandler
	for _, f := range found {
		var h Handler
		if err := json.Unmarshal(f.raw, &h); err != nil {
			return nil, fmt.Errorf("%s: %v", f.path, err)
		}
		var listen []string
		if rest, ok := strings.CutPrefix(f.path, "apps.http.servers."); ok {
			srv, _, _ := strings.Cut(rest, ".")
			listen = root.Apps.HTTP.Servers[srv].Listen
		}
		name := handlerName(&h, listen)
		seen[name]++
		if n := seen[name]; n > 1 {
			name = fmt.Sprintf("%s#%d", name, n)
		}
		dh := directHandler{name: name, path: f.path, h: h}
		all = append(all, dh)
		if only == "" || only == name {
			out = append(out, dh)
		}
	}
	if len(out) == 0 {
		var names []string
		for _, dh := range all {
			names = append(names, dh.name)
		}
		return nil, fmt.Errorf("no stepup handler named %q in the config; it has: %s", only, strings.Join(names, ", "))
	}
	return out, nil
}

// eachRedisStore calls fn with the store and the user keys (one per
// secret, current first) of every stepup handler on Redis in cfg. A
// handler on the memory store is reported and makes the result an
// error: its state lives inside the running Caddy.
func eachRedisStore(ctx context.Context, cfg []byte, user, only string, out io.Writer,
	fn func(name string, st store.Store, keys []string) error) (int, error) {
	if user == "" {
		return 0, errors.New("--user is required")
	}
	handlers, err := configHandlers(cfg, only)
	if err != nil {
		return 0, err
	}
	repl := caddy.NewReplacer()
	done := 0
	var memory []string
	for _, dh := range handlers {
		h := dh.h
		if h.Redis == nil {
			fmt.Fprintf(out, "%s: memory store, not reachable with --direct (its state lives in the running Caddy): use the admin API\n", dh.name)
			memory = append(memory, dh.name)
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
				return done, fmt.Errorf("%s: %s: %v (run with the server's environment)", dh.name, what, err)
			}
			keys = append(keys, key)
		}
		client, err := newRedisClient(h.Redis.resolved(repl))
		if err != nil {
			return done, fmt.Errorf("%s: redis: %v", dh.name, err)
		}
		st := store.NewRedis(client, h.Redis.KeyPrefix, true)
		err = fn(dh.name, st, keys)
		_ = st.Close()
		if err != nil {
			return done, fmt.Errorf("%s: %v", dh.name, err)
		}
		done++
	}
	if len(memory) > 0 {
		return done, fmt.Errorf("%d handler(s) on the memory store not changed (%s): run the command without --direct, against the admin API of the Caddy that serves them",
			len(memory), strings.Join(memory, ", "))
	}
	return done, nil
}

// auditNote is what an audit event of a handler with audit_user hmac
// (the default) carries for the user: keys[0] is that value.
func auditNote(keys []string) string {
	return fmt.Sprintf(" (with audit_user hmac, audit events name this user %s)", keys[0])
}

// unlockUser clears the failed-code count (and so the lockout) of user,
// straight on Redis.
func unlockUser(ctx context.Context, cfg []byte, user, only string, out io.Writer) (int, error) {
	return eachRedisStore(ctx, cfg, user, only, out, func(name string, st store.Store, keys []string) error {
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
		fmt.Fprintf(out, "%s: cleared %d failed attempts%s\n", name, total, auditNote(keys))
		return nil
	})
}

// removePasskeysDirect: remove-passkeys works through the admin API
// only (the running engine knows where passkeys are kept).
func removePasskeysDirect(context.Context, []byte, string, string, io.Writer) (int, error) {
	return 0, errors.New("remove-passkeys works through the admin API of the running Caddy; drop --direct")
}

// revokeUser ends every grant of user issued until now, straight on
// Redis.
func revokeUser(ctx context.Context, cfg []byte, user, only string, out io.Writer) (int, error) {
	now := time.Now()
	return eachRedisStore(ctx, cfg, user, only, out, func(name string, st store.Store, keys []string) error {
		for _, key := range keys {
			if err := st.Revoke(ctx, key, now, stepup.MaxGrantTTL); err != nil {
				return err
			}
		}
		fmt.Fprintf(out, "%s: revoked every grant issued until %s%s\n", name, now.UTC().Format(time.RFC3339), auditNote(keys))
		return nil
	})
}

// statusCommand is "caddy stepup status".
func statusCommand() *cobra.Command {
	sub := &cobra.Command{
		Use:   "status [--address <addr> | --config <path>] [--handler <name>] [--json]",
		Short: "Shows the state of every running stepup handler",
		Long: `
Asks the running Caddy (admin API: --address, or the admin address in
--config, or localhost:2019) for the state of each stepup handler: whether
its store answers and how fast (a ping), its senders with their circuit
breaker and last error, how many challenges are pending and how many users
are locked out (counted over the whole store: exactly in memory, by a
SCAN of at most 10000 keys of each kind on Redis), and the number
prefixes the SMS-pumping defense blocks (enforce) or flagged (monitor).
It never prints a user id, a number or a code. The exit status is 1 when
a store is unreachable or the admin API cannot be asked.
`,
		Args: cobra.NoArgs,
	}
	adminFlags(sub)
	sub.Flags().Bool("json", false, "Print the admin API's JSON answer")
	sub.RunE = func(cmd *cobra.Command, args []string) error {
		return caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
			uri := "/stepup/status"
			if h := fl.String("handler"); h != "" {
				uri += "?handler=" + url.QueryEscape(h)
			}
			var st Status
			if err := adminCall(fl, http.MethodGet, uri, nil, &st); err != nil {
				return 1, err
			}
			out := cmd.OutOrStdout()
			if fl.Bool("json") {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				_ = enc.Encode(st)
			} else {
				printStatus(out, st)
			}
			for _, h := range st.Handlers {
				if !h.Store.Reachable {
					return 1, fmt.Errorf("%s: store unreachable", h.Name)
				}
			}
			return 0, nil
		})(cmd, args)
	}
	return sub
}

// printStatus prints a status for people.
func printStatus(out io.Writer, st Status) {
	fmt.Fprintf(out, "caddy-stepup %s, Caddy %s, store format %d\n", st.Version.Stepup, st.Version.Caddy, st.Version.StoreFormat)
	for _, h := range st.Handlers {
		fmt.Fprintf(out, "\n%s\n", h.Name)
		var pols []string
		for _, p := range h.Policies {
			pols = append(pols, p.Name+" ("+p.Mode+")")
		}
		fmt.Fprintf(out, "  policies:  %s\n", strings.Join(pols, ", "))
		s := h.Store
		switch {
		case s.Reachable:
			fmt.Fprintf(out, "  store:     %s, reachable, ping %.2f ms\n", s.Kind, s.LatencyMS)
		default:
			fmt.Fprintf(out, "  store:     %s, UNREACHABLE: %s\n", s.Kind, s.Error)
		}
		if s.PendingChallenges != nil {
			more := ""
			if s.Truncated {
				more = " (at least: the scan stopped at its bound)"
			}
			fmt.Fprintf(out, "  pending challenges: %d, locked users: %d (%s count of the whole store)%s\n",
				*s.PendingChallenges, *s.LockedUsers, s.Counted, more)
		} else if s.CountError != "" {
			fmt.Fprintf(out, "  counts:    not available: %s\n", s.CountError)
		}
		switch {
		case h.PumpingError != "":
			fmt.Fprintf(out, "  pumping:   %s, blocked prefixes not counted: %s\n", h.Pumping, h.PumpingError)
		default:
			fmt.Fprintf(out, "  pumping:   %s, blocked prefixes: %d, flagged: %d\n", h.Pumping, h.BlockedPrefixes, h.FlaggedPrefixes)
		}
		for _, sd := range h.Senders {
			line := fmt.Sprintf("  sender %s: breaker %s", sd.Name, sd.Breaker)
			if sd.ConsecutiveFailures > 0 {
				line += fmt.Sprintf(", %d failures in a row", sd.ConsecutiveFailures)
			}
			if sd.LastError != "" {
				line += fmt.Sprintf(", last error at %s: %s", sd.LastErrorAt, sd.LastError)
			}
			fmt.Fprintln(out, line)
		}
	}
}

// versionCommand is "caddy stepup version".
func versionCommand() *cobra.Command {
	sub := &cobra.Command{
		Use:   "version [--json]",
		Short: "Prints the plugin's, Caddy's and the store format's versions",
		Long: `
Prints the version of caddy-stepup built into this binary (from its Go build
information), Caddy's version, and the store format version: instances that
share one Redis must run releases of the same store format (see
docs/PRODUCTION.md, "Versions and upgrades").
`,
		Args: cobra.NoArgs,
	}
	sub.Flags().Bool("json", false, "Print JSON")
	sub.RunE = func(cmd *cobra.Command, args []string) error {
		v := buildVersion()
		out := cmd.OutOrStdout()
		if on, _ := cmd.Flags().GetBool("json"); on {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(v)
		}
		fmt.Fprintf(out, "caddy-stepup %s\n", v.Stepup)
		if v.Revision != "" {
			fmt.Fprintf(out, "revision     %s\n", v.Revision)
		}
		fmt.Fprintf(out, "caddy        %s\n", v.Caddy)
		fmt.Fprintf(out, "store format %d\n", v.StoreFormat)
		if v.Go != "" {
			fmt.Fprintf(out, "go           %s\n", v.Go)
		}
		return nil
	}
	return sub
}
