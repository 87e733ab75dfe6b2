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
		{"international toll free", PhoneRules{}, "+80012345678", "toll_free numbers"},
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
		{PhoneRules{Allow: []string{"XX"}}, "allowed countries"},
		{PhoneRules{Deny: []string{"India"}}, "denied countries"},
		{PhoneRules{Allow: []string{""}}, "allowed countries"},
		{PhoneRules{AllowTypes: []NumberType{NumberType(99)}}, "unknown number type"},
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
