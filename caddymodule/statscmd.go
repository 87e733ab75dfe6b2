package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// maxStatsSince is the longest --since: the tallies are kept
// store.TallyRetention.
const maxStatsSince = 7 * 24 * time.Hour

// statsCommand is `caddy stepup stats`: the delivery figures of the
// metrics, from the hourly tallies in Redis.
func statsCommand() *cobra.Command {
	sub := &cobra.Command{
		Use:   "stats --config <path> [--adapter <name>] [--since <duration>] [--handler <name>]",
		Short: "Prints how codes were delivered and verified, from Redis",
		Long: `
Prints what became of the codes each stepup handler of the config sent:
how many were sent, verified (conversion), abandoned (expired unverified),
delivered or not according to the providers' receipts, and failed over to
the next sender, by sender and channel, by country calling code and by
policy, for the last --since (default 24h, at most 7d, in whole hours).
It reads the hourly tallies the running handlers keep in their Redis, so
it needs no Prometheus; handlers on the memory store keep none. Run it with
the server's environment, so that placeholders in the redis options resolve.
`,
		Args: cobra.NoArgs,
	}
	sub.Flags().StringP("config", "c", "", "Configuration file (required)")
	sub.Flags().StringP("adapter", "a", "", "Name of config adapter to apply")
	sub.Flags().String("since", "24h", "How far back to count (1h to 7d)")
	sub.Flags().String("handler", "", "Only the handler of this name")
	sub.RunE = caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
		configFile := fl.String("config")
		if configFile == "" {
			return caddy.ExitCodeFailedStartup, errors.New("--config is required")
		}
		since, err := caddy.ParseDuration(fl.String("since"))
		if err != nil || since < time.Hour || since > maxStatsSince {
			return caddy.ExitCodeFailedStartup, fmt.Errorf("--since %q: want a duration from 1h to 7d", fl.String("since"))
		}
		cfg, _, _, err := caddycmd.LoadConfig(configFile, fl.String("adapter"))
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		if err := printStats(context.Background(), sub.OutOrStdout(), cfg, fl.String("handler"), time.Now(), since); err != nil {
			return 1, err
		}
		return 0, nil
	})
	return sub
}

// printStats prints the tallies of every Redis handler of cfg for the
// hours from now-since to now.
func printStats(ctx context.Context, out io.Writer, cfg []byte, only string, now time.Time, since time.Duration) error {
	handlers, err := configHandlers(cfg, only)
	if err != nil {
		return err
	}
	repl := caddy.NewReplacer()
	var errs []error
	for _, dh := range handlers {
		if dh.h.Redis == nil {
			fmt.Fprintf(out, "%s: memory store, no tallies (see the metrics)\n", dh.name)
			continue
		}
		client, err := newRedisClient(dh.h.Redis.resolved(repl))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: redis: %v", dh.name, err))
			continue
		}
		st := store.NewRedis(client, dh.h.Redis.KeyPrefix, true)
		counts, err := st.Tallies(ctx, now.Add(-since+time.Hour), now)
		_ = st.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", dh.name, err))
			continue
		}
		fmt.Fprintf(out, "%s, last %s:\n", dh.name, shortSince(since))
		writeStats(out, counts)
	}
	return errors.Join(errs...)
}

func shortSince(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return fmt.Sprintf("%dh", d/time.Hour)
}

// figures are the counts of one row.
type figures struct {
	sent, verified, abandoned, delivered, undelivered, failover, deliveredMS int64
}

func (f *figures) add(kind string, n int64) {
	switch kind {
	case "sent":
		f.sent += n
	case "verified":
		f.verified += n
	case "abandoned":
		f.abandoned += n
	case "delivered":
		f.delivered += n
	case "undelivered":
		f.undelivered += n
	case "failover":
		f.failover += n
	case "delivered_ms":
		f.deliveredMS += n
	}
}

// writeStats prints counts (store.Tallies) as three tables: by sender
// and channel, by country calling code, by policy.
func writeStats(out io.Writer, counts map[string]int64) {
	var total figures
	by := map[string]map[string]*figures{"sender": {}, "country": {}, "policy": {}}
	row := func(table, name string) *figures {
		f := by[table][name]
		if f == nil {
			f = &figures{}
			by[table][name] = f
		}
		return f
	}
	for k, n := range counts {
		kind, policy, sender, channel, country, ok := store.ParseTallyKey(k)
		if !ok {
			continue
		}
		total.add(kind, n)
		name := sender
		if name == "" {
			name = "(none)"
		}
		if channel != "" {
			name += " (" + channel + ")"
		}
		row("sender", name).add(kind, n)
		if country != "" {
			country = "+" + country
		} else {
			country = "(unknown)"
		}
		row("country", country).add(kind, n)
		row("policy", policy).add(kind, n)
	}
	if total.sent == 0 && total.verified == 0 && total.abandoned == 0 && total.failover == 0 {
		fmt.Fprintln(out, "  no codes sent")
		return
	}
	fmt.Fprintf(out, "  codes sent %d, verified %d (%s), abandoned %d (%s); delivered %d, not delivered %d, failed over %d\n",
		total.sent, total.verified, pct(total.verified, total.sent), total.abandoned, pct(total.abandoned, total.sent),
		total.delivered, total.undelivered, total.failover)
	for _, table := range []string{"sender", "country", "policy"} {
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  by %s\tsent\tverified\tconversion\tabandoned\tdelivered\tnot delivered\tfailovers\tavg to deliver\t\n", table)
		names := make([]string, 0, len(by[table]))
		for name := range by[table] {
			names = append(names, name)
		}
		sort.Slice(names, func(i, j int) bool {
			a, b := by[table][names[i]], by[table][names[j]]
			if a.sent != b.sent {
				return a.sent > b.sent
			}
			return names[i] < names[j]
		})
		for _, name := range names {
			f := by[table][name]
			avg := "-"
			if f.delivered > 0 {
				avg = (time.Duration(f.deliveredMS/f.delivered) * time.Millisecond).Round(100 * time.Millisecond).String()
			}
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%s\t\n", strings.ReplaceAll(name, "\t", " "),
				f.sent, f.verified, pct(f.verified, f.sent), f.abandoned, f.delivered, f.undelivered, f.failover, avg)
		}
		_ = tw.Flush()
	}
}

// pct is n of total as a percentage, "-" when total is 0.
func pct(n, total int64) string {
	if total == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(total))
}
