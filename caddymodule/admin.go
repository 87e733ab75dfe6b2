package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-stepup/caddy-stepup/stepup"
	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI is the admin.api.stepup module: operator endpoints on Caddy's
// admin API that act on the stepup handlers of the running config, so
// that they work with the memory store too.
//
//	POST /stepup/unlock  {"user":"alice"[,"handler":NAME]}  clear a lockout
//	POST /stepup/revoke  {"user":"alice"[,"handler":NAME]}  end every grant
//	POST /stepup/remove-passkeys {"user":"alice"[,"handler":NAME]}  remove every passkey
//	POST /stepup/unblock {"prefix":"+4477009000"[,"handler":NAME]}  lift a pumping block
//	GET  /stepup/status[?handler=NAME]                      store, senders, counts
//
// Handlers are named as handlerName says. Answers are JSON; they never
// hold a user id, a number or a code (the user appears as the value
// audit events carry for it).
type adminAPI struct {
	log *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.stepup",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Provision sets up the module.
func (a *adminAPI) Provision(ctx caddy.Context) error {
	a.log = ctx.Logger(a)
	return nil
}

// Routes returns the admin routes.
func (a *adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/stepup/", Handler: caddy.AdminHandlerFunc(a.serve)}}
}

// adminRequest is the body of POST /stepup/unlock and /stepup/revoke.
type adminRequest struct {
	User    string `json:"user"`
	Handler string `json:"handler,omitempty"`
	Prefix  string `json:"prefix,omitempty"`
}

// userResult is one handler's answer to unlock or revoke.
type userResult struct {
	Handler string `json:"handler"`
	// AuditUser is the value the handler's audit events carry for the
	// user (per audit_user; empty with none).
	AuditUser string `json:"audit_user,omitempty"`
	// Cleared is how many failed codes unlock cleared.
	Cleared *int `json:"cleared,omitempty"`
	// RevokedUntil is the time revoke voided grants up to.
	RevokedUntil string `json:"revoked_until,omitempty"`
	// PasskeysRemoved is how many passkeys remove-passkeys removed.
	PasskeysRemoved *int   `json:"passkeys_removed,omitempty"`
	Error           string `json:"error,omitempty"`
}

// adminTimeout bounds one admin action (a store round trip per handler).
const adminTimeout = 10 * time.Second

func (a *adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	action := strings.TrimPrefix(r.URL.Path, "/stepup/")
	switch action {
	case "status":
		if r.Method != http.MethodGet {
			return methodNotAllowed(r, http.MethodGet)
		}
		return a.status(w, r)
	case "unlock", "revoke", "unblock", "remove-passkeys":
		if r.Method != http.MethodPost {
			return methodNotAllowed(r, http.MethodPost)
		}
	default:
		return caddy.APIError{HTTPStatus: http.StatusNotFound,
			Err: fmt.Errorf("no such stepup endpoint %q: use POST /stepup/unlock, /stepup/revoke, /stepup/unblock or GET /stepup/status", r.URL.Path)}
	}
	req, err := readAdminRequest(r)
	if err != nil {
		return err
	}
	if action == "unblock" {
		return a.unblock(w, r, req)
	}
	if err := (identity.Identity{User: req.User}).Validate(); err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest,
			Err: fmt.Errorf(`"user" must be the user id as the identity source gives it: %v`, err)}
	}
	handlers, err := selectHandlers(req.Handler)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	results := make([]userResult, 0, len(handlers))
	failed := 0
	for _, lh := range handlers {
		res := userResult{Handler: lh.name, AuditUser: lh.h.engine.AuditUserOf(req.User)}
		switch action {
		case "unlock":
			n, err := lh.h.engine.UnlockUser(ctx, req.User)
			if err != nil {
				res.Error = err.Error()
			} else {
				res.Cleared = &n
			}
		case "remove-passkeys":
			n, err := lh.h.engine.RemoveUserPasskeys(ctx, req.User)
			if err != nil {
				res.Error = err.Error()
			} else {
				res.PasskeysRemoved = &n
			}
		case "revoke":
			at, err := lh.h.engine.RevokeUserEverywhere(ctx, req.User)
			if err != nil {
				res.Error = err.Error()
			} else {
				res.RevokedUntil = at.UTC().Format(time.RFC3339)
			}
		}
		if res.Error != "" {
			failed++
		}
		a.log.Info("stepup "+action, zap.String("handler", lh.name), zap.String("user", res.AuditUser),
			zap.Bool("ok", res.Error == ""))
		results = append(results, res)
	}
	status := http.StatusOK
	if failed > 0 {
		// Some handler's store did not take it: the caller must know.
		status = http.StatusBadGateway
	}
	return writeJSON(w, status, map[string]any{"results": results})
}

// readAdminRequest reads a small JSON body, refusing unknown fields.
func readAdminRequest(r *http.Request) (adminRequest, error) {
	var req adminRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("reading the request body (JSON such as {\"user\":\"alice\"}): %v", err)}
	}
	return req, nil
}

// selectHandlers returns the handlers of the running config, or the one
// named name.
func selectHandlers(name string) ([]*liveHandler, error) {
	all := currentHandlers()
	if len(all) == 0 {
		return nil, caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("no stepup handler is running in this Caddy")}
	}
	if name == "" {
		return all, nil
	}
	var names []string
	for _, lh := range all {
		if lh.name == name {
			return []*liveHandler{lh}, nil
		}
		names = append(names, lh.name)
	}
	return nil, caddy.APIError{HTTPStatus: http.StatusNotFound,
		Err: fmt.Errorf("no stepup handler named %q; running: %s", name, strings.Join(names, ", "))}
}

func methodNotAllowed(r *http.Request, want string) error {
	return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed: use %s", r.Method, want)}
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Status is the answer of GET /stepup/status.
type Status struct {
	Version  VersionInfo     `json:"version"`
	Handlers []HandlerStatus `json:"handlers"`
}

// HandlerStatus is what an operator sees of one running handler. It
// holds counts only: no user, number, code or key.
type HandlerStatus struct {
	Name       string         `json:"name"`
	Domain     string         `json:"domain,omitempty"`
	Listen     []string       `json:"listen,omitempty"`
	PathPrefix string         `json:"path_prefix"`
	Scope      string         `json:"scope,omitempty"`
	Policies   []PolicyStatus `json:"policies"`
	Store      StoreStatus    `json:"store"`
	Senders    []SenderStatus `json:"senders"`
	// Pumping is the pumping defense's mode (monitor, enforce, off).
	// BlockedPrefixes counts the number prefixes it blocks (enforce),
	// FlaggedPrefixes those it flagged in monitor mode; both count the
	// whole store, by a bounded SCAN on Redis (PumpingError when the
	// count failed).
	Pumping         string `json:"pumping"`
	BlockedPrefixes int    `json:"blocked_prefixes"`
	FlaggedPrefixes int    `json:"flagged_prefixes,omitempty"`
	PumpingError    string `json:"pumping_error,omitempty"`
}

// PolicyStatus names a policy and its mode.
type PolicyStatus struct {
	Name string `json:"name"`
	Mode string `json:"mode"`
}

// StoreStatus is a handler's store: reachable, how fast, and its counts.
type StoreStatus struct {
	Kind      string  `json:"kind"`
	Reachable bool    `json:"reachable"`
	LatencyMS float64 `json:"latency_ms,omitempty"`
	Error     string  `json:"error,omitempty"`
	// PendingChallenges are challenges waiting for their code;
	// LockedUsers the users at max_failures (one per secret during a
	// rotation). Counted by a bounded SCAN on Redis, exactly in memory;
	// both count the whole store (every handler sharing it). Truncated:
	// the scan stopped at its bound, so they are lower bounds.
	PendingChallenges *int   `json:"pending_challenges,omitempty"`
	LockedUsers       *int   `json:"locked_users,omitempty"`
	Counted           string `json:"counted,omitempty"`
	Truncated         bool   `json:"truncated,omitempty"`
	CountError        string `json:"count_error,omitempty"`
}

// SenderStatus is one sender: its circuit breaker and last error.
type SenderStatus struct {
	Name                string `json:"name"`
	Channel             string `json:"channel,omitempty"`
	Breaker             string `json:"breaker"`
	ConsecutiveFailures uint32 `json:"consecutive_failures,omitempty"`
	LastError           string `json:"last_error,omitempty"`
	LastErrorAt         string `json:"last_error_at,omitempty"`
}

// statusScanLimit bounds the keys a status scans, per kind.
const statusScanLimit = 10000

func (a *adminAPI) status(w http.ResponseWriter, r *http.Request) error {
	handlers, err := selectHandlers(r.URL.Query().Get("handler"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	st := Status{Version: buildVersion()}
	for _, lh := range handlers {
		st.Handlers = append(st.Handlers, lh.status(ctx))
	}
	return writeJSON(w, http.StatusOK, st)
}

// status reads the handler's state.
func (lh *liveHandler) status(ctx context.Context) HandlerStatus {
	h := lh.h
	cfg := h.engine.Config()
	hs := HandlerStatus{Name: lh.name, Domain: h.Domain, Listen: lh.listen, PathPrefix: cfg.PathPrefix, Scope: h.Scope,
		Policies: []PolicyStatus{}, Senders: []SenderStatus{}}
	for _, p := range h.Policies {
		hs.Policies = append(hs.Policies, PolicyStatus{Name: p.Name, Mode: p.policy.Mode.String()})
	}
	ss := h.engine.StoreStatus(ctx, statusScanLimit)
	hs.Store = StoreStatus{Kind: ss.Kind, Reachable: ss.Reachable, Error: ss.Error, CountError: ss.StatsError}
	if ss.Reachable {
		hs.Store.LatencyMS = float64(ss.Latency.Microseconds()) / 1000
	}
	if ss.Stats != nil {
		hs.Store.PendingChallenges, hs.Store.LockedUsers = &ss.Stats.Pending, &ss.Stats.Locked
		hs.Store.Truncated = ss.Stats.Truncated
		hs.Store.Counted = "exact"
		if ss.Kind == "redis" {
			hs.Store.Counted = "scan"
		}
	}
	hs.Pumping = string(cfg.Pumping.Mode)
	if pb, err := h.engine.PrefixBlocks(ctx, statusScanLimit); err == nil {
		hs.BlockedPrefixes, hs.FlaggedPrefixes = pb.Blocked, pb.Flagged
	} else if cfg.Pumping.Mode != stepup.PumpingOff {
		hs.PumpingError = err.Error()
	}
	if h.chain != nil {
		for _, s := range h.chain.Status() {
			out := SenderStatus{Name: s.Name, Channel: string(s.Channel), Breaker: s.Breaker, ConsecutiveFailures: s.ConsecutiveFailures}
			if e, ok := h.senderErrs.lastError(s.Name); ok {
				out.LastError, out.LastErrorAt = e.msg, e.at.UTC().Format(time.RFC3339)
			}
			hs.Senders = append(hs.Senders, out)
		}
	}
	return hs
}

// Interface guards
var (
	_ caddy.Provisioner = (*adminAPI)(nil)
	_ caddy.AdminRouter = (*adminAPI)(nil)
)
