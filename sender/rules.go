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
// DefaultAllowedTypes, and refuses non-geographic numbers.
type PhoneRules struct {
	// Allow, when not empty, lists the only ISO 3166-1 alpha-2 regions
	// ("IN", "GB") whose numbers are accepted. "001" stands for the
	// non-geographic numbering plans, and listing it allows them as
	// AllowNonGeographic does.
	Allow []string
	// Deny lists regions whose numbers are refused, whatever Allow says.
	Deny []string
	// AllowTypes lists the number types accepted; empty means
	// DefaultAllowedTypes.
	AllowTypes []NumberType
	// AllowNonGeographic accepts numbers of the non-geographic numbering
	// plans (region "001"): satellite phones (+870 Inmarsat, +881
	// Iridium and Globalstar, +882 16 Thuraya), international networks
	// (+882, +883), and the global services +800 (freephone), +808
	// (shared cost) and +979 (premium rate). They are refused by default: few
	// customers have one, they are among the dearest SMS destinations,
	// and their ranges are a classic target of SMS pumping. The number
	// type rules still apply to them.
	AllowNonGeographic bool
}

// NonGeographic is the region of the numbers of non-geographic numbering
// plans (satellite, international networks, global services).
const NonGeographic = "001"

// Validate checks that every region is one the numbering plans know and
// every type is a real one. Regions are compared without regard to case.
// The errors name the options as the configuration spells them
// (allow_countries, deny_countries, allow_number_types).
func (r PhoneRules) Validate() error {
	if _, err := ParseRegions(r.Allow); err != nil {
		return fmt.Errorf("allow_countries: %w", err)
	}
	if _, err := ParseRegions(r.Deny); err != nil {
		return fmt.Errorf("deny_countries: %w", err)
	}
	for _, t := range r.AllowTypes {
		if t < Unknown || int(t) >= len(numberTypeNames) {
			return fmt.Errorf("allow_number_types: sender: unknown number type %d", int(t))
		}
	}
	return nil
}

// Check returns nil if a code may be sent to p, or an error wrapping
// ErrPhoneRefused that says why: the region is denied or not allowed, the
// number is non-geographic and those are not allowed, or the number type
// is not accepted. The error names the region, the calling code or the
// type, never the number.
func (r PhoneRules) Check(p Phone) error {
	region := strings.ToUpper(p.Region)
	if containsFold(r.Deny, region) {
		return refused("numbers of region %s are not accepted", region)
	}
	if region == NonGeographic && !r.AllowNonGeographic && !containsFold(r.Allow, region) {
		return refused("non-geographic numbers (+%d: satellite, international networks, global services) are not accepted", p.CountryCode)
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
	var out []string
	for _, r := range regions {
		code := strings.ToUpper(strings.TrimSpace(r))
		if code != NonGeographic {
			if err := CheckRegion(strings.TrimSpace(r)); err != nil {
				return nil, err
			}
		}
		if !slices.Contains(out, code) {
			out = append(out, code)
		}
	}
	return out, nil
}

// CheckRegion returns nil if region is an ISO 3166-1 alpha-2 region the
// numbering plans know ("IN", "GB"; case is ignored), such as ParsePhone
// takes for its default region. "001" is not one: non-geographic numbers
// are always written in international form.
func CheckRegion(region string) error {
	code := strings.ToUpper(region)
	if phonenumbers.GetSupportedRegions()[code] {
		return nil
	}
	hint := "such as IN, US, GB"
	switch code {
	case "UK":
		hint = "the United Kingdom is GB"
	case NonGeographic:
		hint = "001 holds non-geographic numbers, which are always international"
	}
	return fmt.Errorf("sender: %q is not an ISO 3166-1 alpha-2 region with phone numbers (%s)", region, hint)
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
