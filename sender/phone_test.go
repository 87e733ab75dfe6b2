package sender

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
)

func TestParsePhoneValid(t *testing.T) {
	tests := []struct {
		raw, region string
		want        Phone
	}{
		{"+14155550100", "", Phone{"+14155550100", "US", 1, FixedLineOrMobile}},
		{"  +1 (415) 555-0100 ", "", Phone{"+14155550100", "US", 1, FixedLineOrMobile}},
		{"(415) 555-0100", "US", Phone{"+14155550100", "US", 1, FixedLineOrMobile}},
		{"+919876543210", "", Phone{"+919876543210", "IN", 91, Mobile}},
		{"098765 43210", "in", Phone{"+919876543210", "IN", 91, Mobile}},
		{"+91 98765 43210", "DE", Phone{"+919876543210", "IN", 91, Mobile}},
		{"+49 1512 3456789", "", Phone{"+4915123456789", "DE", 49, Mobile}},
		{"030 123456", "DE", Phone{"+4930123456", "DE", 49, FixedLine}},
		{"0049 30 123456", "DE", Phone{"+4930123456", "DE", 49, FixedLine}},
		{"+44 7400 123456", "", Phone{"+447400123456", "GB", 44, Mobile}},
		{"020 7183 8750", "GB", Phone{"+442071838750", "GB", 44, FixedLine}},
		{"+55 11 96123-4567", "", Phone{"+5511961234567", "BR", 55, Mobile}},
		{"+55.11.2345.6789", "", Phone{"+551123456789", "BR", 55, FixedLine}},
		{"+39 02 1234 5678", "", Phone{"+390212345678", "IT", 39, FixedLine}},
		{"+800 1234 5678", "", Phone{"+80012345678", "001", 800, TollFree}},
	}
	for _, tt := range tests {
		t.Run(tt.raw+"/"+tt.region, func(t *testing.T) {
			got, err := ParsePhone(tt.raw, tt.region)
			if err != nil {
				t.Fatalf("ParsePhone: %v", err)
			}
			if got != tt.want {
				t.Errorf("ParsePhone = %#v, want E164 %s region %s cc %d type %v",
					got, tt.want.E164, tt.want.Region, tt.want.CountryCode, tt.want.Type)
			}
		})
	}
}

func TestParsePhoneTypes(t *testing.T) {
	tests := []struct {
		raw  string
		want NumberType
	}{
		{"+44 901 234 5678", PremiumRate},    // UK 09: premium rate
		{"+44 909 876 5432", PremiumRate},    // UK 09 again
		{"+1 900 234 5678", PremiumRate},     // North America 900
		{"+49 900 1 234567", PremiumRate},    // Germany 0900
		{"+33 891 12 34 56", PremiumRate},    // France 089
		{"+39 899 123 456", PremiumRate},     // Italy 899
		{"+44 800 123 4567", TollFree},       // UK 0800
		{"+1 800 234 5678", TollFree},        // North America 800
		{"+91 1800 12 3456", TollFree},       // India 1800
		{"+44 7400 123456", Mobile},          // UK 07
		{"+44 121 234 5678", FixedLine},      // Birmingham
		{"+44 845 464 0000", PremiumRate},    // UK 0845 "service charge": premium too
		{"+49 180 1 2345", SharedCost},       // Germany 0180
		{"+49 177 99 1234567", Voicemail},    // Germany mobile voicemail
		{"+44 56 1234 5678", VoIP},           // UK 056
		{"+44 70 1234 5678", PersonalNumber}, // UK 070
		{"+44 76 4012 3456", Pager},          // UK 076
		{"+44 55 1234 5678", UAN},            // UK 055
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := ParsePhone(tt.raw, "")
			if err != nil {
				t.Fatalf("ParsePhone: %v", err)
			}
			if got.Type != tt.want {
				t.Errorf("type = %v, want %v", got.Type, tt.want)
			}
		})
	}
}

func TestParsePhoneInvalid(t *testing.T) {
	tests := []struct {
		name, raw, region, reason string
	}{
		{"empty", "", "", "empty"},
		{"blank", "   ", "US", "empty"},
		{"missing plus", "14155550100", "", "not in international form"},
		{"missing plus national", "9876543210", "", "not in international form"},
		{"letters", "+1 800 FLOWERS", "", "unexpected character"},
		{"letters national", "1-800-FLOWERS", "US", "unexpected character"},
		{"extension", "+1 415 555 0100 ext 12", "", "unexpected character"},
		{"tel uri", "tel:+14155550100", "", "unexpected character"},
		{"plus inside", "+1 415+555 0100", "", "unexpected character"},
		{"two plus", "++14155550100", "", "unexpected character"},
		{"full-width digits", "+１４１５５５５０１", "", "unexpected character"},
		{"full-width digits, long", "+１４１５５５５０１００", "", "too long"},
		{"arabic-indic digits", "+٩١٩٨٧٦٥٤٣٢١", "", "unexpected character"},
		{"too long", "+1 415 555 0100 0000 0000 0000 000", "", "too long"},
		{"too long digits", "+" + strings.Repeat("9", 40), "", "too long"},
		{"unknown country code", "+999 1234 5678", "", "unknown country calling code or region"},
		{"unknown region", "415 555 0100", "XX", "unknown country calling code or region"},
		{"too short", "+44 12", "", "not a valid number"},
		{"invalid US", "+1 123 456 7890", "", "not a valid number"},
		{"invalid IN", "+91 12345", "", "not a valid number"},
		{"invalid DE", "+49 1", "", "too short"},
		{"16 digits", "020100000000000", "DE", "too many digits"},
		{"only plus", "+", "", "not a number"},
		{"separators only", "+ - ( )", "", "not a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePhone(tt.raw, tt.region)
			if err == nil {
				t.Fatalf("ParsePhone = %v, want an error", p)
			}
			if !errors.Is(err, ErrInvalidPhone) {
				t.Errorf("error %q does not wrap ErrInvalidPhone", err)
			}
			if want := "sender: invalid phone number: " + tt.reason; err.Error() != want {
				t.Errorf("error = %q, want %q", err, want)
			}
			if p != (Phone{}) {
				t.Errorf("ParsePhone returned %#v with its error", p)
			}
			if strings.ContainsAny(err.Error(), "0123456789") {
				t.Errorf("error %q has digits: it may repeat the input", err)
			}
		})
	}
}

func TestMaskPhone(t *testing.T) {
	tests := []struct{ in, want string }{
		{"+919876543210", "+91******3210"},
		{"+14155550100", "+1******0100"},
		{"+4915123456789", "+49*******6789"},
		{"+447400123456", "+44******3456"},
		{"+5511961234567", "+55*******4567"},
		{"+80012345678", "+800****5678"},
		{"+4930123456", "+49****3456"}, // 8-digit national number: last 4 shown
		{"+29051234", "+290****4"},     // Saint Helena, 5 digits: 4 hidden
		{"+6907290", "+690****"},       // Tokelau, 4 digits: all hidden
		{"+99912345678", "+***"},       // unassigned country calling code
		{"+1", "+***"},                 // nothing after the code
		{"14155550100", "+***"},        // no plus
		{"+1 415 555 0100", "+***"},    // not E.164
		{"+1415555010012345", "+***"},  // more than 15 digits
		{"+0123456789", "+***"},        // no country code 0
		{"tel:+14155550100", "+***"},   // a URI
		{"user@example.com", "+***"},   // not a number at all
		{"", "+***"},
		{"+", "+***"},
	}
	for _, tt := range tests {
		if got := MaskPhone(tt.in); got != tt.want {
			t.Errorf("MaskPhone(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPhoneFormatsMasked(t *testing.T) {
	p, err := ParsePhone("+919876543210", "")
	if err != nil {
		t.Fatal(err)
	}
	const masked = "+91******3210"
	if p.String() != masked || p.Masked() != masked {
		t.Fatalf("String = %q, Masked = %q, want %q", p.String(), p.Masked(), masked)
	}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "phone", p)
	for _, s := range []string{
		fmt.Sprint(p),
		fmt.Sprintf("%v", p),
		fmt.Sprintf("%+v", p),
		fmt.Sprintf("%#v", p),
		fmt.Sprintf("%s", p), //lint:ignore S1025 the %s verb itself is under test
		fmt.Sprint(&p),
		logged.String(),
	} {
		if strings.Contains(s, "9876543210") {
			t.Errorf("formatted Phone %q contains the number", s)
		}
		if !strings.Contains(s, masked) {
			t.Errorf("formatted Phone %q lacks the masked number", s)
		}
	}
}

func TestNumberTypeString(t *testing.T) {
	tests := []struct {
		t    NumberType
		want string
	}{
		{Unknown, "unknown"},
		{Mobile, "mobile"},
		{FixedLineOrMobile, "fixed_line_or_mobile"},
		{PremiumRate, "premium_rate"},
		{Voicemail, "voicemail"},
		{NumberType(99), "NumberType(99)"},
		{NumberType(-1), "NumberType(-1)"},
	}
	for _, tt := range tests {
		if got := tt.t.String(); got != tt.want {
			t.Errorf("NumberType(%d).String() = %q, want %q", int(tt.t), got, tt.want)
		}
	}
	var zero Phone
	if zero.Type != Unknown {
		t.Errorf("zero Phone has type %v, want unknown", zero.Type)
	}
}

func FuzzParsePhone(f *testing.F) {
	for _, seed := range []struct{ raw, region string }{
		{"+14155550100", ""},
		{"(415) 555-0100", "US"},
		{"+91 98765 43210", ""},
		{"098765 43210", "IN"},
		{"0049 30 123456", "DE"},
		{"+44 901 234 5678", ""},
		{"+55 11 96123-4567", "BR"},
		{"+6907290", ""},
		{"+39 02 1234 5678", "IT"},
		{"1-800-FLOWERS", "US"},
		{"+", ""},
		{"", "ZZ"},
	} {
		f.Add(seed.raw, seed.region)
	}
	f.Fuzz(func(t *testing.T, raw, region string) {
		p, err := ParsePhone(raw, region)
		if err != nil {
			if !errors.Is(err, ErrInvalidPhone) {
				t.Fatalf("error %q does not wrap ErrInvalidPhone", err)
			}
			if strings.ContainsAny(err.Error(), "0123456789") {
				t.Fatalf("error %q has digits: it may repeat the input", err)
			}
			return
		}
		again, err := ParsePhone(p.E164, "")
		if err != nil {
			t.Fatalf("E.164 %q does not parse again: %v", p.E164, err)
		}
		if again != p {
			t.Fatalf("E.164 %q parses to %#v, first parse gave type %v region %s", p.E164, again, p.Type, p.Region)
		}
		cc := strconv.Itoa(p.CountryCode)
		national, ok := strings.CutPrefix(p.E164, "+"+cc)
		if !ok || national == "" {
			t.Fatalf("E.164 %q does not start with +%s", p.E164, cc)
		}
		masked := p.Masked()
		if strings.Contains(masked, national) {
			t.Fatalf("masked %q contains the national number of %q", masked, p.E164)
		}
		if !strings.HasPrefix(masked, "+"+cc) || strings.Count(masked, "*") < 4 {
			t.Fatalf("masked %q: want +%s and at least four stars", masked, cc)
		}
	})
}

func TestCallingCode(t *testing.T) {
	for in, want := range map[string]string{
		"+919876543210": "91", "+14155550100": "1", "+447700900123": "44", "+35312345678": "353",
		"919876543210": "", "": "", "+": "", "+0123": "",
	} {
		if got := CallingCode(in); got != want {
			t.Errorf("CallingCode(%q) = %q, want %q", in, got, want)
		}
	}
}
