package caddymodule

import (
	"fmt"
	"strings"

	"github.com/caddy-stepup/caddy-stepup/sender"
)

// regionMistakes are codes people write for a region whose ISO 3166-1
// alpha-2 code is another.
var regionMistakes = map[string]string{
	"UK": "GB (the United Kingdom)",
	"EL": "GR (Greece)",
	"EN": "GB (England is part of the United Kingdom)",
	"KO": "KR (South Korea)",
	"JA": "JP (Japan)",
}

// checkRegion checks one region code of option ("allow_countries"),
// in words for an operator: the option, the value, and a suggestion.
// nonGeographic allows "001".
func checkRegion(option, v string, nonGeographic bool) error {
	code := strings.ToUpper(strings.TrimSpace(v))
	if code == sender.NonGeographic {
		if nonGeographic {
			return nil
		}
		return fmt.Errorf("%s: %q holds the non-geographic numbers, which are always written in international form; give a region code such as GB, IN or US", option, v)
	}
	if sender.CheckRegion(strings.TrimSpace(v)) == nil {
		return nil
	}
	if s, ok := regionMistakes[code]; ok {
		return fmt.Errorf("%s: %q is not an ISO 3166-1 alpha-2 region code: did you mean %s?", option, v, s)
	}
	return fmt.Errorf("%s: %q is not an ISO 3166-1 alpha-2 region code with phone numbers (such as GB, IN, US)", option, v)
}

// checkRegions checks every region code of option.
func checkRegions(option string, vs []string) error {
	for _, v := range vs {
		if err := checkRegion(option, v, true); err != nil {
			return err
		}
	}
	return nil
}

// checkWords checks, from JSON as from a Caddyfile, the options whose
// mistakes deserve a suggestion before the engine's own check.
func (h *Handler) checkWords() error {
	if err := checkRegions("allow_countries", h.AllowCountries); err != nil {
		return err
	}
	if err := checkRegions("deny_countries", h.DenyCountries); err != nil {
		return err
	}
	if h.DefaultRegion != "" {
		if err := checkRegion("default_region", h.DefaultRegion, false); err != nil {
			return err
		}
	}
	return nil
}
