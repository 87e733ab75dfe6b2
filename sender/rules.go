package sender

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// ErrPhoneRefused is wrapped, with a short reason, by the error of
// PhoneRules.Check. The error never contains the number.
var ErrPhoneRefused = errors.New("sender: phone number refused")

// DefaultAllowedTypes returns the number types PhoneRules accepts when
// its AllowTypes is empty: mobile numbers, and the numbers of plans that
// do not tell mobiles from fixed lines (the United States, Canada, ...).
// Premium-rate, shared-cost, toll-free, VoIP, pager, personal and plain
// fixed-line numbers are refused: codes sent to them are either lost or,
// for premium-rate numbers, the way SMS pumping (toll fraud) makes money
// from the operator's bill.
func DefaultAllowedTypes() []NumberType {
	return []NumberType{Mobile, FixedLineOrMobile}
}

// PhoneRules decides which phone numbers codes may be sent to. The zero
// value accepts the numbers of every region whose type is in
// DefaultAllowedTypes.
type PhoneRules struct {
	// Allow, when not empty, lists the only ISO 3166-1 alpha-2 regions
	// ("IN", "GB") whose numbers are accepted. "001" stands for the
	// non-geographic numbering plans.
	Allow []string
	// Deny lists regions whose numbers are refused, whatever Allow says.
	Deny []string
	// AllowTypes lists the number types accepted; empty means
	// DefaultAllowedTypes.
	AllowTypes []NumberType
}

// Validate checks that every region is one the numbering plans know and
// every type is a real one. Regions are compared without regard to case.
func (r PhoneRules) Validate() error {
	if _, err := ParseRegions(r.Allow); err != nil {
		return fmt.Errorf("allowed countries: %w", err)
	}
	if _, err := ParseRegions(r.Deny); err != nil {
		return fmt.Errorf("denied countries: %w", err)
	}
	for _, t := range r.AllowTypes {
		if t < Unknown || int(t) >= len(numberTypeNames) {
			return fmt.Errorf("sender: unknown number type %d", int(t))
		}
	}
	return nil
}

// Check returns nil if a code may be sent to p, or an error wrapping
// ErrPhoneRefused that says why: the region is denied or not allowed, or
// the number type is not accepted. The error names the region or the
// type, never the number.
func (r PhoneRules) Check(p Phone) error {
	region := strings.ToUpper(p.Region)
	if containsFold(r.Deny, region) {
		return refused("numbers of region %s are not accepted", region)
	}
	if len(r.Allow) > 0 && !containsFold(r.Allow, region) {
		return refused("numbers of region %s are not accepted", region)
	}
	types := r.AllowTypes
	if len(types) == 0 {
		types = DefaultAllowedTypes()
	}
	if !slices.Contains(types, p.Type) {
		return refused("%s numbers are not accepted", p.Type)
	}
	return nil
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(strings.TrimSpace(v), s) {
			return true
		}
	}
	return false
}

func refused(format string, args ...any) error {
	return &refusedError{reason: fmt.Sprintf(format, args...)}
}

// refusedError is an ErrPhoneRefused with a reason.
type refusedError struct{ reason string }

func (e *refusedError) Error() string { return ErrPhoneRefused.Error() + ": " + e.reason }

func (e *refusedError) Unwrap() error { return ErrPhoneRefused }

// ParseRegions checks a list of ISO 3166-1 alpha-2 region codes against
// the regions the numbering plans know, and returns them in upper case,
// without duplicates, in the order given. "001" (non-geographic numbers)
// is accepted.
func ParseRegions(regions []string) ([]string, error) {
	supported := phonenumbers.GetSupportedRegions()
	var out []string
	for _, r := range regions {
		code := strings.ToUpper(strings.TrimSpace(r))
		if code != phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY && !supported[code] {
			return nil, fmt.Errorf("sender: %q is not an ISO 3166-1 alpha-2 region with phone numbers (such as IN, US, GB)", r)
		}
		if !slices.Contains(out, code) {
			out = append(out, code)
		}
	}
	return out, nil
}

// ParseNumberType returns the NumberType named s, as NumberType.String
// spells it ("mobile", "fixed_line_or_mobile", "voip"); case is ignored.
func ParseNumberType(s string) (NumberType, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	for t, n := range numberTypeNames {
		if n == name {
			return NumberType(t), nil
		}
	}
	return Unknown, fmt.Errorf("sender: unknown number type %q (want one of %s)", s, strings.Join(numberTypeNames[:], ", "))
}
