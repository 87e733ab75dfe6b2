package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddy-stepup/caddy-stepup/stepup"
)

// PumpingConfig is the SMS-pumping defense that learns from conversion
// (docs/SECURITY.md, "SMS pumping"). Every field left out takes the
// default stepup.Pumping documents.
type PumpingConfig struct {
	// Mode is monitor (log and count only, the default), enforce (refuse
	// sends to a blocked prefix) or off.
	Mode string `json:"mode,omitempty"`
	// Window is how far back sends and verified codes are counted.
	// Default: 1h
	Window caddy.Duration `json:"window,omitempty"`
	// MinSends is how many codes a prefix must be sent in the window
	// before its conversion is judged. Default: 20
	MinSends int `json:"min_sends,omitempty"`
	// MinConversion is the lowest share of a prefix's codes, in percent,
	// that must be verified. Default: 20
	MinConversion int `json:"min_conversion,omitempty"`
	// BlockFor is how long a block lasts. Default: 6h
	BlockFor caddy.Duration `json:"block_for,omitempty"`
	// Safe lists number prefixes ("+44", "+4477009") that are never
	// counted nor blocked.
	Safe []string `json:"safe,omitempty"`
}

// engine converts the configuration (nil: every default).
func (p *PumpingConfig) engine() stepup.Pumping {
	if p == nil {
		return stepup.Pumping{}
	}
	return stepup.Pumping{
		Mode:          stepup.PumpingMode(p.Mode),
		Window:        time.Duration(p.Window),
		MinSends:      p.MinSends,
		MinConversion: p.MinConversion,
		BlockFor:      time.Duration(p.BlockFor),
		Safe:          p.Safe,
	}
}

// parsePumping parses
//
//	pumping {
//		mode           monitor|enforce|off
//		window         <duration>
//		min_sends      <n>
//		min_conversion <percent>%
//		block_for      <duration>
//		safe           <prefix...>
//	}
//
// and checks it with the engine's own check, at the block's line.
func (s *Handler) parsePumping(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	if s.Pumping != nil {
		return d.Err("pumping already set")
	}
	s.Pumping = &PumpingConfig{}
	p := s.Pumping
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "mode":
			p.Mode, err = singleArg(d)
			if err == nil {
				_, err = stepup.ParsePumpingMode(p.Mode)
				err = wrap(d, err)
			}
		case "window":
			p.Window, err = boundedDuration(d, stepup.PumpingWindowBound)
		case "min_sends":
			p.MinSends, err = boundedInt(d, stepup.PumpingMinSendsBound)
		case "min_conversion":
			var v string
			if v, err = singleArg(d); err == nil {
				if p.MinConversion, err = stepup.ParsePercent(v); err != nil {
					err = d.Errf("min_conversion: %v", err)
				} else {
					err = wrap(d, stepup.PumpingMinConversionBound.Check(p.MinConversion))
				}
			}
		case "block_for":
			p.BlockFor, err = boundedDuration(d, stepup.PumpingBlockForBound)
		case "safe":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			p.Safe = append(p.Safe, args...)
		default:
			return d.Errf("unrecognized pumping option '%s'", d.Val())
		}
		if err != nil {
			return err
		}
	}
	_, err := p.engine().WithDefaults()
	return wrap(d, err)
}

// Metrics of the pumping defense, registered with the others
// (registerMetrics). Labels are the country calling code and the mode:
// never a prefix or a number.
var pumpingMetrics = struct {
	blocks   *prometheus.CounterVec
	unblocks *prometheus.CounterVec
}{
	blocks: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "stepup", Name: "prefix_blocks_total",
		Help: "Number prefixes the SMS-pumping defense blocked (mode enforce) or flagged (mode monitor) because their codes were sent but not verified, by country calling code and mode.",
	}, []string{"country", "mode"}),
	unblocks: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "stepup", Name: "prefix_unblocks_total",
		Help: "Number prefixes an operator unblocked, by country calling code.",
	}, []string{"country"}),
}

// observePumping counts a pumping event.
func observePumping(ev *stepup.Event) {
	cc := strings.TrimPrefix(ev.Country, "+")
	switch ev.Kind {
	case stepup.EventPrefixBlocked:
		pumpingMetrics.blocks.WithLabelValues(cc, ev.Mode).Inc()
	case stepup.EventPrefixUnblocked:
		pumpingMetrics.unblocks.WithLabelValues(cc).Inc()
	}
}

// prefixResult is one handler's answer to unblock.
type prefixResult struct {
	Handler string `json:"handler"`
	// PrefixID is the value the handler's events carry for the prefix
	// (prefix_id of prefix_blocked).
	PrefixID string `json:"prefix_id,omitempty"`
	// Unblocked: the prefix was blocked (or flagged) and no longer is.
	Unblocked bool `json:"unblocked"`
	// Note says why nothing was done where nothing failed: the prefix
	// was not blocked, or the handler's pumping defense is off.
	Note  string `json:"note,omitempty"`
	Error string `json:"error,omitempty"`
}

// unblock lifts the block of a prefix on the selected handlers. It
// answers 200 with a result per handler (unblocked or why not), 400 for
// a prefix that is not one, 502 when a store failed.
func (a *adminAPI) unblock(w http.ResponseWriter, r *http.Request, req adminRequest) error {
	if req.User != "" {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New(`unblock takes {"prefix":"+4477009000"}, not a user`)}
	}
	cc, err := stepup.CheckPumpingPrefix(req.Prefix)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf(`"prefix": %v`, err)}
	}
	handlers, err := selectHandlers(req.Handler)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	results := make([]prefixResult, 0, len(handlers))
	failed := 0
	for _, lh := range handlers {
		res := prefixResult{Handler: lh.name, PrefixID: lh.h.engine.PrefixID(req.Prefix)}
		ok, err := lh.h.engine.UnblockPrefix(ctx, req.Prefix)
		switch {
		case errors.Is(err, stepup.ErrPumpingOff):
			res.Note = "pumping defense off"
		case err != nil:
			res.Error = err.Error()
			failed++
		case ok:
			res.Unblocked = true
		default:
			res.Note = "not blocked"
		}
		// The prefix is named by its country and prefix_id only, as in
		// the events.
		a.log.Info("stepup unblock", zap.String("handler", lh.name), zap.String("country", "+"+strconv.Itoa(cc)),
			zap.String("prefix_id", res.PrefixID), zap.Bool("unblocked", res.Unblocked), zap.Bool("ok", res.Error == ""))
		results = append(results, res)
	}
	status := http.StatusOK
	if failed > 0 {
		status = http.StatusBadGateway
	}
	return writeJSON(w, status, map[string]any{"results": results})
}
