package sender

import (
	"errors"
	"log/slog"
	"strconv"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// ErrInvalidPhone is returned, wrapped with a short reason, by ParsePhone
// for input that is not a valid phone number. The error never repeats the
// input.
var ErrInvalidPhone = errors.New("sender: invalid phone number")

// maxPhoneLen bounds the input ParsePhone accepts. E.164 numbers have at
// most 15 digits; the rest leaves room for a "+" and separators.
const maxPhoneLen = 32

// NumberType is the kind of line a phone number belongs to, as far as the
// numbering plan tells.
type NumberType int

// The number types. Unknown is the zero value.
const (
	Unknown NumberType = iota
	Mobile
	FixedLine
	// FixedLineOrMobile is a number whose plan does not tell fixed lines
	// from mobiles (the United States, Canada, ...).
	FixedLineOrMobile
	// PremiumRate is a number the caller pays extra to reach. Sending codes
	// to such numbers is refused: it would let an attacker earn money from
	// our SMS bill (toll fraud).
	PremiumRate
	TollFree
	SharedCost
	VoIP
	PersonalNumber
	Pager
	UAN
	Voicemail
)

var numberTypeNames = [...]string{
	Unknown:           "unknown",
	Mobile:            "mobile",
	FixedLine:         "fixed_line",
	FixedLineOrMobile: "fixed_line_or_mobile",
	PremiumRate:       "premium_rate",
	TollFree:          "toll_free",
	SharedCost:        "shared_cost",
	VoIP:              "voip",
	PersonalNumber:    "personal_number",
	Pager:             "pager",
	UAN:               "uan",
	Voicemail:         "voicemail",
}

// String returns the type in snake case ("mobile", "premium_rate"), as
// used in logs and configuration.
func (t NumberType) String() string {
	if t >= 0 && int(t) < len(numberTypeNames) {
		return numberTypeNames[t]
	}
	return "NumberType(" + strconv.Itoa(int(t)) + ")"
}

func numberTypeOf(t phonenumbers.PhoneNumberType) NumberType {
	switch t {
	case phonenumbers.MOBILE:
		return Mobile
	case phonenumbers.FIXED_LINE:
		return FixedLine
	case phonenumbers.FIXED_LINE_OR_MOBILE:
		return FixedLineOrMobile
	case phonenumbers.PREMIUM_RATE:
		return PremiumRate
	case phonenumbers.TOLL_FREE:
		return TollFree
	case phonenumbers.SHARED_COST:
		return SharedCost
	case phonenumbers.VOIP:
		return VoIP
	case phonenumbers.PERSONAL_NUMBER:
		return PersonalNumber
	case phonenumbers.PAGER:
		return Pager
	case phonenumbers.UAN:
		return UAN
	case phonenumbers.VOICEMAIL:
		return Voicemail
	}
	return Unknown
}

// Phone is a valid phone number.
//
// Its String method returns the masked form, so that a Phone logged or
// printed by mistake does not disclose the number; use the E164 field
// where the full number is needed.
type Phone struct {
	// E164 is the number in E.164 form: "+" and up to 15 digits.
	E164 string
	// Region is the ISO 3166-1 alpha-2 region the number belongs to
	// ("US", "IN"), or "001" for non-geographic numbers.
	Region string
	// CountryCode is the country calling code (1, 91, 44, ...).
	CountryCode int
	// Type is the kind of line, from the numbering plan.
	Type NumberType
}

// ParsePhone parses a phone number typed by a person or taken from an
// identity source and checks that it is valid.
//
// Surrounding white space is ignored. Inside the number only ASCII digits,
// spaces and the separators "-", ".", "(" and ")" are allowed, with an
// optional leading "+"; letters, extensions and other characters are
// refused. With defaultRegion "" the number must be in international form
// ("+" and the country calling code); otherwise a number in national form
// is read as belonging to defaultRegion (an ISO 3166-1 alpha-2 code such
// as "IN").
//
// The error wraps ErrInvalidPhone and never contains the input.
func ParsePhone(raw, defaultRegion string) (Phone, error) {
	s := strings.TrimSpace(raw)
	switch {
	case s == "":
		return Phone{}, invalidPhone("empty")
	case len(s) > maxPhoneLen:
		return Phone{}, invalidPhone("too long")
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9', c == ' ', c == '-', c == '.', c == '(', c == ')':
		case c == '+' && i == 0:
		default:
			return Phone{}, invalidPhone("unexpected character")
		}
	}
	region := strings.ToUpper(defaultRegion)
	if region == "" && s[0] != '+' {
		return Phone{}, invalidPhone("not in international form")
	}
	num, err := phonenumbers.Parse(s, region)
	if err != nil {
		return Phone{}, invalidPhone(parseReason(err))
	}
	if num.GetExtension() != "" {
		return Phone{}, invalidPhone("has an extension")
	}
	// IsValidNumber is GetNumberType != UNKNOWN for the number's own
	// region; asking for the type once does both (the library's checks
	// run many regular expressions, and for +1 once per NANP region).
	typ := phonenumbers.GetNumberType(num)
	if typ == phonenumbers.UNKNOWN {
		return Phone{}, invalidPhone("not a valid number")
	}
	p := Phone{
		E164:        phonenumbers.Format(num, phonenumbers.E164),
		Region:      phonenumbers.GetRegionCodeForNumber(num),
		CountryCode: int(num.GetCountryCode()),
		Type:        numberTypeOf(typ),
	}
	// A few plans (Germany's) have numbers longer than the 15 digits
	// E.164 allows; no SMS gateway takes them.
	if len(p.E164) > 1+15 {
		return Phone{}, invalidPhone("too many digits")
	}
	// The E.164 form is what gets stored and sent; make sure it means the
	// same number when read back, so that no later step sees another one.
	// (Input already in that form was just read.)
	if s == p.E164 {
		return p, nil
	}
	again, err := phonenumbers.Parse(p.E164, "")
	if err != nil || phonenumbers.Format(again, phonenumbers.E164) != p.E164 {
		return Phone{}, invalidPhone("no stable E.164 form")
	}
	return p, nil
}

func invalidPhone(reason string) error {
	return &phoneError{reason: reason}
}

// phoneError is an ErrInvalidPhone with a reason.
type phoneError struct{ reason string }

func (e *phoneError) Error() string { return ErrInvalidPhone.Error() + ": " + e.reason }

func (e *phoneError) Unwrap() error { return ErrInvalidPhone }

// parseReason turns a phonenumbers error into a short reason. The
// library's errors do not quote the input, but they are mapped anyway so
// that the message stays ours.
func parseReason(err error) string {
	switch {
	case errors.Is(err, phonenumbers.ErrInvalidCountryCode):
		return "unknown country calling code or region"
	case errors.Is(err, phonenumbers.ErrTooShortNSN),
		errors.Is(err, phonenumbers.ErrTooShortAfterIDD):
		return "too short"
	case errors.Is(err, phonenumbers.ErrNumTooLong):
		return "too long"
	}
	return "not a number"
}

// Masked returns the number with all but its country calling code and the
// last digits hidden, as MaskPhone does.
func (p Phone) Masked() string { return MaskPhone(p.E164) }

// String returns the masked number (see Masked), never the full one.
func (p Phone) String() string { return p.Masked() }

// GoString returns a Go-syntax representation with the number masked, so
// that %#v does not disclose it either.
func (p Phone) GoString() string {
	return "sender.Phone{E164:" + strconv.Quote(p.Masked()) +
		", Region:" + strconv.Quote(p.Region) +
		", CountryCode:" + strconv.Itoa(p.CountryCode) +
		", Type:" + strconv.Quote(p.Type.String()) + "}"
}

// LogValue makes log/slog record the masked number.
func (p Phone) LogValue() slog.Value { return slog.StringValue(p.Masked()) }

// MaskPhone hides a phone number given in E.164 form for display and
// logs: it keeps the "+", the country calling code and the last four
// digits of the national number and puts a star in place of every other
// digit, so "+919876543210" becomes "+91******3210". At least four digits
// are always hidden: a national number shorter than eight digits shows
// fewer than four.
//
// Anything that is not a number in E.164 form ("+" and 15 digits at most,
// under a known country calling code) is masked entirely as "+***": the
// input is never returned.
func MaskPhone(e164 string) string {
	const opaque = "+***"
	if len(e164) < 3 || len(e164) > 16 || e164[0] != '+' {
		return opaque
	}
	digits := e164[1:]
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return opaque
		}
	}
	cc := countryCallingCode(digits)
	if cc == "" {
		return opaque
	}
	national := digits[len(cc):]
	keep := min(4, max(0, len(national)-4))
	return "+" + cc + strings.Repeat("*", len(national)-keep) + national[len(national)-keep:]
}

// countryCallingCode returns the country calling code digits starts with,
// or "" if it starts with none. Calling codes are prefix-free, so at most
// one of the one-, two- and three-digit prefixes is assigned.
// CallingCode returns the country calling code of a number in E.164
// form ("+919876543210" gives "91"), or "" when it has none: a cheap
// look at its first digits, for labels that may name a country and
// nothing more of the number.
func CallingCode(e164 string) string {
	digits, ok := strings.CutPrefix(e164, "+")
	if !ok {
		return ""
	}
	return countryCallingCode(digits)
}

func countryCallingCode(digits string) string {
	for n := 1; n <= 3 && n < len(digits); n++ {
		cc, err := strconv.Atoi(digits[:n])
		if err != nil || cc == 0 {
			return ""
		}
		if phonenumbers.GetRegionCodeForCountryCode(cc) != phonenumbers.UNKNOWN_REGION {
			return digits[:n]
		}
	}
	return ""
}
