package sender

import (
	"slices"
	"testing"
)

func TestVoiceLocale(t *testing.T) {
	for in, want := range map[string]string{
		"":        "en",
		"en":      "en",
		"en-GB":   "en",
		"hi":      "hi",
		"hi-IN":   "hi",
		"HI":      "hi",
		"pt-BR":   "pt-BR",
		"pt-br":   "pt-BR",
		"pt":      "pt-BR",
		"pt-PT":   "pt-BR",
		"pt_BR":   "pt-BR",
		"de-AT":   "de",
		"es-MX":   "es",
		"ar-EG":   "ar",
		"fr":      "en",
		" de ":    "de",
		"-":       "en",
		"english": "en",
	} {
		if got := VoiceLocale(in); got != want {
			t.Errorf("VoiceLocale(%q) = %q, want %q", in, got, want)
		}
	}
	if got := VoiceLocales(); got[0] != DefaultVoiceLocale || len(got) != 6 ||
		!slices.Contains(got, "pt-BR") || !slices.Contains(got, "hi") {
		t.Errorf("VoiceLocales() = %v", got)
	}
}

func TestSpokenCode(t *testing.T) {
	for _, tt := range []struct{ locale, code, want string }{
		{"en", "493817", "Your code is 4, 9, 3, 8, 1, 7."},
		{"", "0012", "Your code is 0, 0, 1, 2."},
		{"de", "493817", "Ihr Code lautet 4, 9, 3, 8, 1, 7."},
		{"es", "12", "Tu código es 1, 2."},
		{"pt-BR", "12", "Seu código é 1, 2."},
		{"hi", "12", "आपका कोड है: 1, 2।"},
		{"ar", "12", "رمزك هو 1، 2."},
		{"fr", "12", "Your code is 1, 2."},
		{"en", "1 2-3", "Your code is 1, 2, 3."},
	} {
		if got := SpokenCode(tt.locale, tt.code); got != tt.want {
			t.Errorf("SpokenCode(%q, %q) = %q, want %q", tt.locale, tt.code, got, tt.want)
		}
	}
}

// Every voice sender holds its repeat count to the same bounds.
func TestVoiceRepeat(t *testing.T) {
	for _, tc := range []struct {
		n, want int
		err     string
	}{
		{0, DefaultVoiceRepeat, ""},
		{1, 1, ""},
		{MaxVoiceRepeat, MaxVoiceRepeat, ""},
		{MaxVoiceRepeat + 1, 0, "twilio_voice sender: repeat 4 out of range (1 to 3)"},
		{-1, 0, "twilio_voice sender: repeat -1 out of range (1 to 3)"},
	} {
		got, err := VoiceRepeat("twilio_voice", tc.n)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && err.Error() != tc.err) {
			t.Errorf("VoiceRepeat(%d) = %d, %v; want %d, %q", tc.n, got, err, tc.want, tc.err)
		}
	}
}
