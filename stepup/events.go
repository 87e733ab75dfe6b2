package stepup

import (
	"net/http"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// EventKind names a step-up event.
type EventKind string

// The step-up events. Each is logged once, as one structured line whose
// message is the kind, and handed to the Observer (metrics, audit stream,
// Caddy events).
const (
	EventChallengeCreated EventKind = "challenge_created"
	EventCodeSent         EventKind = "code_sent"
	EventCodeSendFailed   EventKind = "code_send_failed"
	// EventCodeDelivered: a provider's receipt says a code reached the
	// handset (Duration: from the send).
	EventCodeDelivered EventKind = "code_delivered"
	// EventCodeUndelivered: a provider's receipt says a code will not
	// arrive (Outcome: undelivered or failed, with the provider's error
	// code after a colon when it gave one).
	EventCodeUndelivered EventKind = "code_undelivered"
	// EventFailover: a code that was not delivered (Outcome: failed, or
	// timeout when no receipt said delivered in time) went out again
	// through the next sender (Sender); the Outcome ends in
	// _none_delivered when every sender left failed.
	EventFailover EventKind = "failover"
	// EventReceipt: a provider's receipt was taken (Sender, Outcome: its
	// status). Like EventRequest it is for metrics, logged at debug.
	EventReceipt EventKind = "receipt"
	// EventAbandoned: a challenge's code expired and was never verified
	// (Sender and Channel of its last code, Country).
	EventAbandoned       EventKind = "challenge_abandoned"
	EventVerifyFailed    EventKind = "verify_failed"
	EventVerified        EventKind = "verified"
	EventGrantUsed       EventKind = "grant_used"
	EventGrantRefused    EventKind = "grant_refused"
	EventLocked          EventKind = "locked"
	EventRateLimited     EventKind = "rate_limited"
	EventMonitor         EventKind = "monitor_would_challenge"
	EventReplayed        EventKind = "replayed"
	EventReplayRefused   EventKind = "replay_refused"
	EventIdentityRefused EventKind = "identity_refused"
	// EventPasskeyAdded: a passkey was enrolled; EventPasskeyChanged: one
	// was renamed or removed (Outcome); EventPasskeyRefused: an
	// enrolment or a change was refused (Outcome: csrf, malformed,
	// invalid, offer_used, not_added, not_fresh).
	EventPasskeyAdded   EventKind = "passkey_added"
	EventPasskeyChanged EventKind = "passkey_changed"
	EventPasskeyRefused EventKind = "passkey_refused"
	// EventRequestRefused: a protected request refused before anything
	// was created or sent, because stepup cannot read it the way the app
	// will (Outcome: too_large, ambiguous_fields, ambiguous_headers,
	// trailers, cross_site, body_timeout, bad_identity).
	EventRequestRefused EventKind = "request_refused"
	EventStoreError     EventKind = "store_error"
	// EventPrefixBlocked: the pumping defense blocked a number prefix
	// (Mode enforce) or flagged it (Mode monitor), as its codes are sent
	// but not verified; EventPrefixUnblocked: an operator lifted it.
	// Both name the prefix by Country and Prefix, never by its digits.
	EventPrefixBlocked   EventKind = "prefix_blocked"
	EventPrefixUnblocked EventKind = "prefix_unblocked"
	// EventRequest is emitted for every request a policy matched, with
	// Outcome passed, challenged, monitored or refused; it is logged at
	// debug level only (it is for metrics).
	EventRequest EventKind = "policy_request"
)

// Event is one step-up event. It never carries a code, a token, a cookie
// or a full phone number: To is masked.
type Event struct {
	Kind   EventKind
	Policy string
	// Mode is the policy's mode (session, transaction, monitor); every
	// EventRequest and EventGrantUsed carries it.
	Mode     string
	To       string // masked destination
	ClientIP string
	// Sender delivered (or failed to deliver) a code.
	Sender string
	// Channel is the sender's channel (sms, whatsapp, voice, ...), when
	// it declares one.
	Channel string
	// MessageID is the provider's id of a message (not secret: it names
	// neither the number nor the code).
	MessageID string
	// Country is the destination's country calling code ("91"), never
	// more of the number.
	Country string
	// Outcome refines the kind: the verification outcome (wrong,
	// expired, exhausted, used, locked), the request outcome (passed,
	// challenged, monitored, refused), a refusal reason.
	Outcome string
	// Limit is the limit that refused a request (per_ip, per_user, ...).
	Limit string
	// Duration is how long a send took, or a lockout's remaining time.
	Duration time.Duration
	// Attempts and Failures count code entries in the challenge and the
	// user's failure window.
	Attempts, Failures int
	// Resend marks a code sent by a resend.
	Resend bool
	// Method is how a verification was made, or tried (sms, passkey).
	Method string
	// Prefix is the keyed hash of the number prefix (Engine.PrefixID) of
	// a pumping event; Sends and Verified are the prefix's counts in the
	// window.
	Prefix          string
	Sends, Verified int
	// Err is what failed (store errors, send errors; never secrets).
	Err error
	// User is the user the event concerns, as the handler's audit_user
	// option shows it: by default a keyed hash of the user id (see
	// AuditUserHMAC), the id itself, or empty. An event made with the
	// user id here gets it replaced by what the option shows; one made
	// without it gets the user identified on its request, if any.
	User string
	// userShown: User already holds what audit_user shows.
	userShown bool
}

// Observer receives every step-up event with the request it happened
// on. Implementations must be fast and safe for concurrent use; they run
// on the request's goroutine. Events that happen on every request
// (PerRequest) carry no ClientIP unless they were also logged.
type Observer interface {
	Observe(r *http.Request, ev *Event)
}

// PerRequest reports whether ev is one that every protected request
// makes (a policy match, a session grant used): worth counting, not
// auditing one by one.
func (ev *Event) PerRequest() bool {
	return ev.Kind == EventRequest || ev.Kind == EventReceipt || (ev.Kind == EventGrantUsed && ev.Mode == "session")
}

// level is the log level of an event.
func (ev *Event) level() zapcore.Level {
	switch ev.Kind {
	case EventRequest, EventReceipt:
		return zapcore.DebugLevel
	case EventGrantUsed:
		return zapcore.DebugLevel
	case EventLocked, EventGrantRefused, EventReplayRefused, EventPrefixBlocked, EventCodeUndelivered, EventPasskeyRefused:
		return zapcore.WarnLevel
	case EventCodeSendFailed, EventStoreError:
		return zapcore.ErrorLevel
	}
	return zapcore.InfoLevel
}

// emit logs ev and hands it to the observer.
func (e *Engine) emit(r *http.Request, ev *Event) {
	ce := e.log.Check(ev.level(), string(ev.Kind))
	if ce != nil || !ev.PerRequest() {
		e.fillUser(r, ev)
	}
	if ev.ClientIP == "" && r != nil && (ce != nil || !ev.PerRequest()) {
		ev.ClientIP = e.clientIP(r)
	}
	if ce != nil {
		fields := make([]zap.Field, 0, 14)
		add := func(f zap.Field, ok bool) {
			if ok {
				fields = append(fields, f)
			}
		}
		add(zap.String("policy", ev.Policy), ev.Policy != "")
		add(zap.String("user", ev.User), ev.User != "")
		add(zap.String("mode", ev.Mode), ev.Mode != "")
		add(zap.String("to", ev.To), ev.To != "")
		add(zap.String("client_ip", ev.ClientIP), ev.ClientIP != "")
		add(zap.String("sender", ev.Sender), ev.Sender != "")
		add(zap.String("channel", ev.Channel), ev.Channel != "")
		add(zap.String("message_id", ev.MessageID), ev.MessageID != "")
		add(zap.String("country", ev.Country), ev.Country != "")
		add(zap.String("outcome", ev.Outcome), ev.Outcome != "")
		add(zap.String("method", ev.Method), ev.Method != "")
		add(zap.String("limit", ev.Limit), ev.Limit != "")
		add(zap.Duration("duration", ev.Duration), ev.Duration != 0)
		add(zap.Int("attempts", ev.Attempts), ev.Attempts != 0)
		add(zap.Int("failures", ev.Failures), ev.Failures != 0)
		add(zap.Bool("resend", true), ev.Resend)
		add(zap.String("prefix_id", ev.Prefix), ev.Prefix != "")
		add(zap.Int("sends", ev.Sends), ev.Sends != 0)
		add(zap.Int("verified", ev.Verified), ev.Kind == EventPrefixBlocked)
		add(zap.Error(ev.Err), ev.Err != nil)
		if r != nil && e.requestID != nil {
			if id := e.requestID(r); id != "" {
				fields = append(fields, zap.String("request_id", id))
			}
		}
		ce.Write(fields...)
	}
	if e.observer != nil {
		e.observer.Observe(r, ev)
	}
}
