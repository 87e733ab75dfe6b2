package caddymodule

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/caddy-stepup/caddy-stepup/stepup"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// Metrics, namespace caddy, subsystem stepup. Created once per process
// and registered into the registry of every config that provisions a
// stepup handler, so they keep counting across reloads. Labels are
// policy and sender names (set by the operator), outcomes and limit
// names: never users, numbers or addresses.
var metrics = struct {
	challenges    *prometheus.CounterVec
	codesSent     *prometheus.CounterVec
	sendDuration  *prometheus.HistogramVec
	verifications *prometheus.CounterVec
	byMethod      *prometheus.CounterVec
	grantsUsed    *prometheus.CounterVec
	requests      *prometheus.CounterVec
	monitor       *prometheus.CounterVec
	rateLimited   *prometheus.CounterVec
	storeErrors   *prometheus.CounterVec
	refused       *prometheus.CounterVec
	auditDropped  prometheus.Counter
	// Delivery performance (receipts).
	deliverySeconds *prometheus.HistogramVec
	verifySeconds   *prometheus.HistogramVec
	receipts        *prometheus.CounterVec
	codes           *prometheus.CounterVec
	failovers       *prometheus.CounterVec
}{
	challenges: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "stepup", Name: "challenges_created_total",
		Help: "Challenges created, by policy and mode.",
	}, []string{"policy", "mode"}),
	codesSent: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "stepup", Name: "codes_sent_total",
		Help: "Codes sent, by the sender that delivered them (or the last one tried) and outcome (ok, failed).",
	}, []string{"sender", "outcome"}),
	sendDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "stepup", Name: "send_duration_seconds",
		Help:    "Time to deliver one code, failover included, by sender.",
		Buckets: []float64{.025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"sender"}),
	verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "stepup", Name: "verifications_total",
		Help: "Code verifications, by policy and outcome (ok, wrong, expired, attempts_exhausted, already_used, locked, malformed, replaced, not_found, csrf, cross_site, foreign_challenge).",
	}, []string{"policy", "outcome"}),
	byMethod: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "stepup", Name: "verifications_by_method_total",
		Help: "Verifications and failed attempts by policy, method (sms, passkey) and outcome (ok, wrong, malformed, locked, ...): conversion by method.",
	}, []string{"policy", "method", "outcome"}),
	grantsUsed: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "stepup", Name: "grants_used_total",
		Help: "Requests let through on a grant, by policy and mode.",
	}, []string{"policy", "mode"}),
	requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "stepup", Name: "policy_match_total",
		Help: "Requests a policy matched, by policy, mode and outcome (passed, challenged, monitored, refused); in monitor mode this is the hit rate before enforcing.",
	}, []string{"policy", "mode", "outcome"}),
	monitor: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "stepup", Name: "monitor_would_challenge_total",
		Help: "Requests a monitor-mode policy would have challenged, by policy.",
	}, []string{"policy"}),
	rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "stepup", Name: "rate_limited_total",
		Help: "Requests refused by a rate limit, by limit (per_ip, per_user, per_number, per_country, global).",
	}, []string{"limit"}),
	storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "stepup", Name: "store_errors_total",
		Help: "Store (Redis) errors that failed a request closed, by operation.",
	}, []string{"op"}),
	refused: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "stepup", Name: "requests_refused_total",
		Help: "Protected requests refused before a challenge because stepup cannot read them as the app would, by policy and reason (too_large, ambiguous_fields, ambiguous_headers, trailers, cross_site, body_timeout, unreadable_body).",
	}, []string{"policy", "reason"}),
	auditDropped: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "stepup", Name: "audit_dropped_total",
		Help: "Audit events not written to the Redis stream because its queue was full.",
	}),
	deliverySeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "stepup", Name: "delivery_seconds",
		Help:    "Time from a code's send to the provider's receipt that it was delivered, by sender and channel.",
		Buckets: []float64{1, 2, 3, 5, 8, 13, 20, 30, 60, 120, 300},
	}, []string{"sender", "channel"}),
	verifySeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "stepup", Name: "verify_seconds",
		Help:    "Time from a code's send to its verification, by policy, sender and channel.",
		Buckets: []float64{5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600},
	}, []string{"policy", "sender", "channel"}),
	receipts: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "stepup", Name: "receipts_total",
		Help: "Delivery receipts taken, by sender and status (queued, sent, delivered, read, undelivered, failed, unknown).",
	}, []string{"sender", "status"}),
	codes: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "stepup", Name: "codes_total",
		Help: "Codes by outcome (sent, verified, abandoned: expired unverified), policy, sender, channel and country calling code; conversion is verified over sent.",
	}, []string{"outcome", "policy", "sender", "channel", "country"}),
	failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "stepup", Name: "failovers_total",
		Help: "Codes sent again through the next sender because they were not delivered, by the sender that took them (none when none did), channel and reason (failed, timeout).",
	}, []string{"sender", "channel", "reason"}),
}

// breakerStates reports each sender's circuit breaker, of every running
// stepup handler, when scraped: caddy_stepup_sender_breaker_state (0
// closed, 1 half-open, 2 open) and caddy_stepup_sender_consecutive_failures,
// by handler and sender. Senders whose breaker is disabled are left out.
type breakerStates struct{}

var (
	breakerStateDesc = prometheus.NewDesc("caddy_stepup_sender_breaker_state",
		"State of each sender's circuit breaker: 0 closed (in use), 1 half-open (the next message probes it), 2 open (skipped).",
		[]string{"handler", "sender"}, nil)
	breakerFailuresDesc = prometheus.NewDesc("caddy_stepup_sender_consecutive_failures",
		"Failures of each sender in a row, as its circuit breaker counts them.",
		[]string{"handler", "sender"}, nil)
)

// Describe implements prometheus.Collector.
func (breakerStates) Describe(ch chan<- *prometheus.Desc) {
	ch <- breakerStateDesc
	ch <- breakerFailuresDesc
}

// Collect implements prometheus.Collector.
func (breakerStates) Collect(ch chan<- prometheus.Metric) {
	for _, lh := range currentHandlers() {
		if lh.h.chain == nil {
			continue
		}
		for _, s := range lh.h.chain.Status() {
			var v float64
			switch s.Breaker {
			case "closed":
			case "half-open":
				v = 1
			case "open":
				v = 2
			default:
				continue
			}
			ch <- prometheus.MustNewConstMetric(breakerStateDesc, prometheus.GaugeValue, v, lh.name, s.Name)
			ch <- prometheus.MustNewConstMetric(breakerFailuresDesc, prometheus.GaugeValue, float64(s.ConsecutiveFailures), lh.name, s.Name)
		}
	}
}

// registerMetrics registers the collectors into the config's registry; a
// second stepup handler in the same config finds them there already.
func registerMetrics(reg *prometheus.Registry) error {
	for _, c := range []prometheus.Collector{
		breakerStates{},
		metrics.challenges, metrics.codesSent, metrics.sendDuration, metrics.verifications, metrics.byMethod,
		metrics.grantsUsed, metrics.requests, metrics.monitor, metrics.rateLimited,
		metrics.storeErrors, metrics.refused, metrics.auditDropped,
		pumpingMetrics.blocks, pumpingMetrics.unblocks,
		metrics.deliverySeconds, metrics.verifySeconds, metrics.receipts, metrics.codes, metrics.failovers,
	} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// observer turns step-up events into metrics, Caddy events and (when
// configured) entries of a Redis stream for security teams.
type observer struct {
	ctx    caddy.Context
	events *caddyevents.App
	audit  chan map[string]any // nil without audit_stream
	tally  chan tallyCount     // for the Redis tallies; nil without Redis
}

// tallyCount is n to add to the tally key (a store.TallyKey).
type tallyCount struct {
	key string
	n   int64
}

// count queues n for the tally key (caddy stepup stats); a full queue
// drops it (the metrics still count).
func (o *observer) count(key string, n int64) {
	select {
	case o.tally <- tallyCount{key, n}:
	default:
	}
}

// tallies counts ev for the Redis tallies, and for code_delivered the
// time it took, in milliseconds.
func (o *observer) tallies(ev *stepup.Event) {
	if o.tally == nil {
		return
	}
	var kind string
	switch ev.Kind {
	case stepup.EventCodeSent:
		kind = "sent"
	case stepup.EventVerified:
		kind = "verified"
	case stepup.EventAbandoned:
		kind = "abandoned"
	case stepup.EventCodeDelivered:
		kind = "delivered"
	case stepup.EventCodeUndelivered:
		kind = "undelivered"
	case stepup.EventFailover:
		kind = "failover"
	default:
		return
	}
	if ev.Kind == stepup.EventVerified && ev.Sender == "" {
		return
	}
	o.count(store.TallyKey(kind, ev.Policy, ev.Sender, ev.Channel, ev.Country), 1)
	if ev.Kind == stepup.EventCodeDelivered {
		// The times to deliver, summed in milliseconds.
		o.count(store.TallyKey("delivered_ms", ev.Policy, ev.Sender, ev.Channel, ev.Country), ev.Duration.Milliseconds())
	}
}

// tallyWriter adds the queued counts to the Redis tallies, once a
// second, until ctx ends.
func tallyWriter(ctx context.Context, st *store.Redis, queue <-chan tallyCount, log *zap.Logger) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	counts := map[string]int64{}
	var failing bool
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-queue:
			counts[c.key] += c.n
		case <-t.C:
			if len(counts) == 0 {
				continue
			}
			err := st.AddTallies(ctx, time.Now(), counts)
			switch {
			case err != nil && !failing && ctx.Err() == nil:
				failing = true
				log.Warn("writing delivery tallies to redis", zap.Error(err))
			case err == nil:
				failing = false
			}
			counts = map[string]int64{}
		}
	}
}

// Observe implements stepup.Observer.
func (o *observer) Observe(r *http.Request, ev *stepup.Event) {
	o.tallies(ev)
	switch ev.Kind {
	case stepup.EventRequest:
		metrics.requests.WithLabelValues(ev.Policy, ev.Mode, ev.Outcome).Inc()
		return // per request: metrics only
	case stepup.EventGrantUsed:
		metrics.grantsUsed.WithLabelValues(ev.Policy, ev.Mode).Inc()
		metrics.requests.WithLabelValues(ev.Policy, ev.Mode, "passed").Inc()
		if ev.PerRequest() {
			return // a session grant: not an audit event of its own
		}
	case stepup.EventChallengeCreated:
		metrics.challenges.WithLabelValues(ev.Policy, ev.Mode).Inc()
	case stepup.EventCodeSent, stepup.EventCodeSendFailed:
		metrics.codesSent.WithLabelValues(ev.Sender, ev.Outcome).Inc()
		metrics.sendDuration.WithLabelValues(ev.Sender).Observe(ev.Duration.Seconds())
		if ev.Kind == stepup.EventCodeSent {
			metrics.codes.WithLabelValues("sent", ev.Policy, ev.Sender, ev.Channel, ev.Country).Inc()
		}
	case stepup.EventVerified, stepup.EventVerifyFailed, stepup.EventLocked:
		metrics.verifications.WithLabelValues(ev.Policy, ev.Outcome).Inc()
		if ev.Method != "" {
			metrics.byMethod.WithLabelValues(ev.Policy, ev.Method, ev.Outcome).Inc()
		}
		if ev.Kind == stepup.EventVerified && ev.Sender != "" {
			metrics.codes.WithLabelValues("verified", ev.Policy, ev.Sender, ev.Channel, ev.Country).Inc()
			metrics.verifySeconds.WithLabelValues(ev.Policy, ev.Sender, ev.Channel).Observe(ev.Duration.Seconds())
		}
	case stepup.EventAbandoned:
		metrics.codes.WithLabelValues("abandoned", ev.Policy, ev.Sender, ev.Channel, ev.Country).Inc()
	case stepup.EventReceipt:
		metrics.receipts.WithLabelValues(ev.Sender, ev.Outcome).Inc()
		return // per receipt: metrics only
	case stepup.EventCodeDelivered:
		metrics.deliverySeconds.WithLabelValues(ev.Sender, ev.Channel).Observe(ev.Duration.Seconds())
	case stepup.EventFailover:
		reason, _, _ := strings.Cut(ev.Outcome, "_none")
		to := ev.Sender
		if to == "" {
			to = "none"
		}
		metrics.failovers.WithLabelValues(to, ev.Channel, reason).Inc()
	case stepup.EventMonitor:
		metrics.monitor.WithLabelValues(ev.Policy).Inc()
	case stepup.EventRateLimited:
		metrics.rateLimited.WithLabelValues(ev.Limit).Inc()
	case stepup.EventStoreError:
		metrics.storeErrors.WithLabelValues(ev.Outcome).Inc()
	case stepup.EventRequestRefused:
		metrics.refused.WithLabelValues(ev.Policy, ev.Outcome).Inc()
	case stepup.EventPrefixBlocked, stepup.EventPrefixUnblocked:
		observePumping(ev)
	}
	name := "stepup." + string(ev.Kind)
	emit := o.events != nil && o.events.ShouldEmit(name)
	if !emit && o.audit == nil {
		return
	}
	data := eventData(r, ev)
	if emit {
		o.events.Emit(o.ctx, name, data)
	}
	if o.audit != nil {
		select {
		case o.audit <- data:
		default:
			metrics.auditDropped.Inc()
		}
	}
}

// eventData is an event as a flat map (Caddy event data and stream
// fields). It holds nothing secret: the number is masked.
func eventData(r *http.Request, ev *stepup.Event) map[string]any {
	d := map[string]any{
		"event": string(ev.Kind),
		"ts":    time.Now().UTC().Format(time.RFC3339Nano),
	}
	for k, v := range map[string]string{
		"policy": ev.Policy, "mode": ev.Mode, "user": ev.User, "to": ev.To, "client_ip": ev.ClientIP,
		"sender": ev.Sender, "channel": ev.Channel, "message_id": ev.MessageID, "outcome": ev.Outcome, "limit": ev.Limit,
		"country": ev.Country, "prefix_id": ev.Prefix, "method": ev.Method,
	} {
		if v != "" {
			d[k] = v
		}
	}
	if ev.Attempts != 0 {
		d["attempts"] = ev.Attempts
	}
	if ev.Failures != 0 {
		d["failures"] = ev.Failures
	}
	if ev.Kind == stepup.EventPrefixBlocked {
		d["sends"], d["verified"] = ev.Sends, ev.Verified
	}
	if ev.Duration != 0 {
		d["duration_ms"] = ev.Duration.Milliseconds()
	}
	if r != nil {
		if id := requestID(r); id != "" {
			d["request_id"] = id
		}
	}
	return d
}

// requestID is Caddy's id of the request ({http.request.uuid}).
func requestID(r *http.Request) string {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return ""
	}
	v, _ := repl.GetString("http.request.uuid")
	return v
}

// auditWriter appends queued events to a capped Redis stream until ctx
// ends. Writing happens off the request path; a full queue drops events
// (counted in caddy_stepup_audit_dropped_total, while the log line of
// every event is still written).
func auditWriter(ctx context.Context, client redis.UniversalClient, stream string, maxLen int64, queue <-chan map[string]any, log *zap.Logger) {
	var failing bool
	for {
		select {
		case <-ctx.Done():
			return
		case first := <-queue:
			batch := []map[string]any{first}
		drain:
			for len(batch) < 256 {
				select {
				case d := <-queue:
					batch = append(batch, d)
				default:
					break drain
				}
			}
			pipe := client.Pipeline()
			for _, d := range batch {
				values := make([]any, 0, 2*len(d))
				for k, v := range d {
					values = append(values, k, fieldString(v))
				}
				pipe.XAdd(ctx, &redis.XAddArgs{Stream: stream, MaxLen: maxLen, Approx: true, Values: values})
			}
			_, err := pipe.Exec(ctx)
			switch {
			case err != nil && !failing:
				failing = true
				log.Error("writing audit events to the redis stream", zap.String("stream", stream), zap.Error(err))
			case err == nil && failing:
				failing = false
				log.Info("audit stream writes recovered", zap.String("stream", stream))
			}
		}
	}
}

func fieldString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	}
	return ""
}
