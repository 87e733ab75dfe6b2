package sender

import (
	"errors"
	"strings"
	"testing"
)

func TestPhoneRulesCheck(t *testing.T) {
	tests := []struct {
		name   string
		rules  PhoneRules
		number string
		want   string // "" = accepted; otherwise a part of the reason
	}{
		{"Indian mobile, defaults", PhoneRules{}, "+919876543210", ""},
		{"US number, defaults", PhoneRules{}, "+14155550100", ""},
		{"UK mobile, defaults", PhoneRules{}, "+447400123456", ""},
		{"UK premium rate", PhoneRules{}, "+449012345678", "premium_rate numbers"},
		{"US premium rate", PhoneRules{}, "+19002345678", "premium_rate numbers"},
		{"German premium rate", PhoneRules{}, "+499001234567", "premium_rate numbers"},
		{"UK 0845 service charge", PhoneRules{}, "+448454640000", "premium_rate numbers"},
		{"German shared cost", PhoneRules{}, "+4918012345", "shared_cost numbers"},
		{"UK toll free", PhoneRules{}, "+448001234567", "toll_free numbers"},
		{"UK fixed line", PhoneRules{}, "+441212345678", "fixed_line numbers"},
		{"UK VoIP", PhoneRules{}, "+445612345678", "voip numbers"},
		{"UK personal number", PhoneRules{}, "+447012345678", "personal_number numbers"},
		{"UK pager", PhoneRules{}, "+447640123456", "pager numbers"},
		{"German voicemail", PhoneRules{}, "+49 177 99 1234567", "voicemail numbers"},
		{"international toll free", PhoneRules{}, "+80012345678", "non-geographic numbers (+800"},
		{"international toll free, non-geographic allowed", PhoneRules{AllowNonGeographic: true}, "+80012345678", "toll_free numbers"},
		{"fixed lines allowed", PhoneRules{AllowTypes: []NumberType{Mobile, FixedLine}}, "+441212345678", ""},
		{"premium never in the list", PhoneRules{AllowTypes: []NumberType{Mobile}}, "+449012345678", "premium_rate"},
		{"allow list hit", PhoneRules{Allow: []string{"IN", "GB"}}, "+919876543210", ""},
		{"allow list case", PhoneRules{Allow: []string{"in"}}, "+919876543210", ""},
		{"allow list miss", PhoneRules{Allow: []string{"IN", "GB"}}, "+14155550100", "region US"},
		{"deny list hit", PhoneRules{Deny: []string{"US"}}, "+14155550100", "region US"},
		{"deny list miss", PhoneRules{Deny: []string{"US"}}, "+919876543210", ""},
		{"deny beats allow", PhoneRules{Allow: []string{"IN"}, Deny: []string{"in"}}, "+919876543210", "region IN"},
		{"region checked before type", PhoneRules{Deny: []string{"GB"}}, "+449012345678", "region GB"},
		{"non-geographic allowed as 001", PhoneRules{Allow: []string{"001"}, AllowTypes: []NumberType{TollFree}}, "+80012345678", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePhone(tt.number, "")
			if err != nil {
				t.Fatalf("ParsePhone(%s): %v", tt.number, err)
			}
			err = tt.rules.Check(p)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Check(%s) = %v, want accepted", p.Type, err)
				}
				return
			}
			if !errors.Is(err, ErrPhoneRefused) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check = %v, want ErrPhoneRefused with %q", err, tt.want)
			}
			digits := strings.TrimPrefix(p.E164, "+")
			if strings.Contains(err.Error(), digits[len(digits)-6:]) {
				t.Errorf("error %q contains the number", err)
			}
		})
	}
}

func TestPhoneRulesValidate(t *testing.T) {
	tests := []struct {
		rules PhoneRules
		want  string
	}{
		{PhoneRules{}, ""},
		{PhoneRules{Allow: []string{"IN", "us", " gb "}, Deny: []string{"001"}, AllowTypes: []NumberType{Mobile, VoIP}}, ""},
		{PhoneRules{Allow: []string{"XX"}}, "allow_countries: "},
		{PhoneRules{Deny: []string{"India"}}, "deny_countries: "},
		{PhoneRules{Allow: []string{""}}, "allow_countries: "},
		{PhoneRules{Allow: []string{"UK"}}, "the United Kingdom is GB"},
		{PhoneRules{AllowTypes: []NumberType{NumberType(99)}}, "allow_number_types: sender: unknown number type"},
		{PhoneRules{AllowTypes: []NumberType{-1}}, "unknown number type"},
	}
	for _, tt := range tests {
		err := tt.rules.Validate()
		if tt.want == "" {
			if err != nil {
				t.Errorf("Validate(%+v) = %v", tt.rules, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.rules, err, tt.want)
		}
	}
}

// Non-geographic numbers (region 001: satellite phones, international
// networks, global services) are refused by default, whatever their type,
// and accepted with AllowNonGeographic or "001" in Allow, where the type
// rules still apply. The numbers are valid ones of each range.
func TestPhoneRulesNonGeographic(t *testing.T) {
	numbers := []struct {
		name, number string
		typ          NumberType
	}{
		{"Inmarsat +870", "+870 773 111 632", Mobile},
		{"Iridium +881 6", "+881 6 3123 4567", Mobile},
		{"Globalstar +881 8", "+881 8 1001 2345", Mobile},
		{"international networks +882", "+882 3421 234", Mobile},
		{"Thuraya +882 16", "+882 16 1234 5678", VoIP},
		{"international networks +883", "+883 5100 12345", VoIP},
		{"premium rate +979", "+979 1 2345 6789", PremiumRate},
		{"freephone +800", "+800 1234 5678", TollFree},
		{"shared cost +808", "+808 1234 5678", SharedCost},
	}
	anyType := []NumberType{Mobile, FixedLineOrMobile, VoIP, TollFree, SharedCost}
	for _, n := range numbers {
		t.Run(n.name, func(t *testing.T) {
			p, err := ParsePhone(n.number, "")
			if err != nil {
				t.Fatalf("ParsePhone: %v", err)
			}
			if p.Region != NonGeographic || p.Type != n.typ {
				t.Fatalf("region %s, type %s; want %s, %s", p.Region, p.Type, NonGeographic, n.typ)
			}
			cc := "+" + strings.TrimPrefix(n.number, "+")[:3]
			for _, rules := range []PhoneRules{{}, {AllowTypes: anyType}, {Allow: []string{"IN", "US"}, AllowTypes: anyType}} {
				err := rules.Check(p)
				if !errors.Is(err, ErrPhoneRefused) || !strings.Contains(err.Error(), "non-geographic numbers ("+cc) {
					t.Errorf("%+v: Check = %v, want refused as non-geographic %s", rules, err, cc)
				}
				if strings.Contains(err.Error(), p.E164[4:]) {
					t.Errorf("error %q contains the number", err)
				}
			}
			for _, rules := range []PhoneRules{{AllowNonGeographic: true}, {Allow: []string{"001"}}} {
				err := rules.Check(p)
				switch {
				case n.typ == Mobile && err != nil:
					t.Errorf("%+v: Check = %v, want accepted", rules, err)
				case n.typ != Mobile && (err == nil || !strings.Contains(err.Error(), n.typ.String()+" numbers")):
					t.Errorf("%+v: Check = %v, want refused as %s", rules, err, n.typ)
				}
			}
			// Deny beats every allowance.
			if err := (PhoneRules{AllowNonGeographic: true, Deny: []string{"001"}}).Check(p); err == nil {
				t.Error("deny 001 with allow_non_geographic: accepted")
			}
			// Geographic numbers are not affected.
			for _, geo := range []string{"+919876543210", "+14155550100", "+447400123456"} {
				g, _ := ParsePhone(geo, "")
				if err := (PhoneRules{}).Check(g); err != nil {
					t.Errorf("%s: %v", g, err)
				}
			}
		})
	}
}

func TestCheckRegion(t *testing.T) {
	for _, ok := range []string{"IN", "GB", "US", "DE", "BR", "in", "Gb"} {
		if err := CheckRegion(ok); err != nil {
			t.Errorf("CheckRegion(%q) = %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"UK": "the United Kingdom is GB", "uk": `"uk" is not`, "001": "always international", " IN": "such as IN", "": "such as IN", "XX": "such as IN",
	} {
		if err := CheckRegion(bad); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckRegion(%q) = %v, want %q", bad, err, want)
		}
	}
}

func TestParseRegions(t *testing.T) {
	got, err := ParseRegions([]string{"in", "IN", " us", "001"})
	if err != nil || strings.Join(got, ",") != "IN,US,001" {
		t.Errorf("ParseRegions = %v, %v; want IN,US,001", got, err)
	}
	for _, bad := range []string{"", "IND", "XK1", "ZZ", "+91", "91"} {
		if _, err := ParseRegions([]string{bad}); err == nil {
			t.Errorf("ParseRegions(%q) succeeded", bad)
		}
	}
	if got, err := ParseRegions(nil); err != nil || got != nil {
		t.Errorf("ParseRegions(nil) = %v, %v", got, err)
	}
}

func TestParseNumberType(t *testing.T) {
	for i := range numberTypeNames {
		want := NumberType(i)
		for _, s := range []string{want.String(), strings.ToUpper(want.String()), " " + want.String() + " "} {
			got, err := ParseNumberType(s)
			if err != nil || got != want {
				t.Errorf("ParseNumberType(%q) = %v, %v; want %v", s, got, err, want)
			}
		}
	}
	for _, bad := range []string{"", "cell", "premium", "NumberType(3)"} {
		if _, err := ParseNumberType(bad); err == nil {
			t.Errorf("ParseNumberType(%q) succeeded", bad)
		}
	}
}

func TestDefaultAllowedTypes(t *testing.T) {
	d := DefaultAllowedTypes()
	if len(d) != 2 || d[0] != Mobile || d[1] != FixedLineOrMobile {
		t.Fatalf("DefaultAllowedTypes = %v", d)
	}
	d[0] = PremiumRate // a copy: changing it changes nothing
	if DefaultAllowedTypes()[0] != Mobile {
		t.Error("DefaultAllowedTypes returned shared state")
	}
}

func FuzzParseRegions(f *testing.F) {
	for _, s := range []string{"IN", "in", " us ", "001", "XX", "", "India", "ß"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseRegions([]string{s, s})
		if err != nil {
			if got != nil {
				t.Fatalf("ParseRegions(%q) = %v with error %v", s, got, err)
			}
			return
		}
		if len(got) != 1 || got[0] != strings.ToUpper(got[0]) {
			t.Fatalf("ParseRegions(%q) = %v, want one upper-case region", s, got)
		}
		// A region that parses is one whose numbers can be checked.
		if err := (PhoneRules{Allow: got}).Validate(); err != nil {
			t.Fatalf("Validate(%v) = %v", got, err)
		}
	})
}
