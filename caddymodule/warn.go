package caddymodule

import (
	"encoding/json"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-stepup/caddy-stepup/stepup"
)

// noEffect is a setting that is accepted but does nothing.
type noEffect struct {
	policy string // "" for handler-wide settings
	msg    string
}

// warnNoEffect warns at start about each setting that is accepted but
// does nothing, naming the policy, so that a config says what it does.
func (h *Handler) warnNoEffect() {
	for _, w := range h.noEffects() {
		if w.policy != "" {
			h.logger.Warn(w.msg, zap.String("policy", w.policy))
		} else {
			h.logger.Warn(w.msg)
		}
	}
}

// noEffects lists the settings of a provisioned handler that have no
// effect.
func (h *Handler) noEffects() []noEffect {
	var out []noEffect
	var catchAll string
	enforcing := false
	for _, p := range h.Policies {
		mode := p.policy.Mode
		if catchAll != "" {
			out = append(out, noEffect{p.Name, fmt.Sprintf("policy %s never applies: policy %s before it has no matchers and covers every request, and the first policy that matches applies", p.Name, catchAll)})
		}
		if mode != stepup.Monitor {
			enforcing = true
		}
		// Provision loaded the matchers (and Caddy dropped the raw JSON).
		for _, set := range p.matchers {
			if len(set) == 0 {
				out = append(out, noEffect{p.Name, fmt.Sprintf("policy %s: match {} is empty, so the policy covers every request; name the paths it protects (or leave match out to say that it covers everything)", p.Name)})
			}
		}
		if len(p.matchers) == 0 && catchAll == "" {
			catchAll = p.Name
		}
		if p.Describe != "" && mode != stepup.Transaction {
			out = append(out, noEffect{p.Name, fmt.Sprintf("policy %s: describe has no effect in mode %s: only a transaction's code message and page show what is approved", p.Name, mode)})
		}
		if p.GrantTTL != 0 && mode != stepup.Session {
			out = append(out, noEffect{p.Name, fmt.Sprintf("policy %s: grant_ttl has no effect in mode %s: only session grants last; a transaction grant opens one request", p.Name, mode)})
		}
	}
	if len(h.Policies) == 0 {
		out = append(out, noEffect{"", "stepup has no protect policy: it protects nothing and every request passes"})
	} else if !enforcing {
		for _, what := range h.enforcingOnly() {
			out = append(out, noEffect{"", what + " has no effect: every policy is in monitor mode, so no request is verified"})
		}
	}
	if h.RequestFailureWindow != 0 && !h.identityFromRequest() {
		out = append(out, noEffect{"", "request_failure_window has no effect: it applies to identity request (sign-up, reset) only"})
	}
	if h.MaxSends == 1 && h.ResendAfter != 0 {
		out = append(out, noEffect{"", "resend_after has no effect with max_sends 1: no code is ever resent"})
	}
	if h.AuditMaxLen != 0 && h.AuditStream == "" {
		out = append(out, noEffect{"", "audit_max_len has no effect without audit_stream"})
	}
	for i, ps := range h.PreviousSecrets {
		if ps == h.Secret {
			out = append(out, noEffect{"", fmt.Sprintf("previous_secrets %d is the secret itself: remove it", i+1)})
		}
	}
	return out
}

// enforcingOnly names the set options that matter only when some
// request is verified.
func (h *Handler) enforcingOnly() []string {
	var out []string
	if h.Headers != nil {
		out = append(out, "headers")
	}
	if h.Assertion != nil {
		out = append(out, "assertion")
	}
	if h.APIGrantHeader {
		out = append(out, "api_grant_header")
	}
	if h.CodeTTL != 0 && time.Duration(h.CodeTTL) > 0 {
		out = append(out, "code_ttl")
	}
	return out
}

// identityFromRequest reports whether the identity source is identity
// request.
func (h *Handler) identityFromRequest() bool {
	var id struct {
		Source string `json:"source"`
	}
	_ = json.Unmarshal(h.IdentityRaw, &id)
	return id.Source == "request"
}
