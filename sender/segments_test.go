package sender

import (
	"strings"
	"testing"
	"unicode/utf16"
)

func TestSegments(t *testing.T) {
	tests := []struct {
		name     string
		text     string
		encoding string
		chars    int
		segments int
	}{
		{"empty", "", GSM7, 0, 0},
		{"ascii", "Your code is 123456", GSM7, 19, 1},
		{"default message", "123456 is your code for Demo Shop. It expires in 5 minutes.\n\n@shop.example #123456", GSM7, 82, 1},
		{"160 septets", strings.Repeat("a", 160), GSM7, 160, 1},
		{"161 septets", strings.Repeat("a", 161), GSM7, 161, 2},
		{"306 septets", strings.Repeat("a", 306), GSM7, 306, 2},
		{"307 septets", strings.Repeat("a", 307), GSM7, 307, 3},
		{"basic table accents and Greek", "Ça coûte? Nein: Äöü ñ ΔΦΓΛΩΠΨΣΘΞ @£$¥ èéùìò ¡¿ §", UCS2, 48, 1}, // û is not GSM-7
		{"basic table only", "Ça va? Äöü ñ ΔΦΓΛΩΠΨΣΘΞ @£$¥ èéùìò ¡¿ §", GSM7, 39, 1},
		{"extension chars cost two", "€{}[]~\\|^", GSM7, 18, 1},
		{"form feed is an extension", "a\fb", GSM7, 4, 1},
		{"80 euros fit", strings.Repeat("€", 80), GSM7, 160, 1},
		{"81 euros: 76 per part", strings.Repeat("€", 81), GSM7, 162, 2},
		{"153 euros: never split", strings.Repeat("€", 153), GSM7, 306, 3},
		{"escape at a part's end moves on", strings.Repeat("a", 152) + "€" + strings.Repeat("b", 10), GSM7, 164, 2},
		{"an escape never splits: one more part", strings.Repeat("a", 152) + "€" + strings.Repeat("b", 152), GSM7, 306, 3},
		{"a surrogate pair never splits", strings.Repeat("ç", 66) + "😀" + strings.Repeat("ç", 66), UCS2, 134, 3},
		{"one accent outside GSM-7", "Your code is 123456 ç", UCS2, 21, 1},
		{"lower-case c cedilla", "ç", UCS2, 1, 1},
		{"backtick", "`", UCS2, 1, 1},
		{"70 units", strings.Repeat("ç", 70), UCS2, 70, 1},
		{"71 units", strings.Repeat("ç", 71), UCS2, 71, 2},
		{"134 units", strings.Repeat("ç", 134), UCS2, 134, 2},
		{"135 units", strings.Repeat("ç", 135), UCS2, 135, 3},
		{"Hindi", "आपका कोड 123456 है", UCS2, 18, 1},
		{"Hindi OTP with WebOTP line", "आपका सत्यापन कोड 123456 है। यह 5 मिनट तक मान्य है।\n\n@shop.example #123456", UCS2, 73, 2},
		{"emoji counts two", "😀", UCS2, 2, 1},
		{"35 emoji fit", strings.Repeat("😀", 35), UCS2, 70, 1},
		{"36 emoji: 33 per part", strings.Repeat("😀", 36), UCS2, 72, 2},
		{"67 emoji", strings.Repeat("😀", 67), UCS2, 134, 3},
		{"invalid UTF-8 is UCS-2", "\xff", UCS2, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, chars, segs := Segments(tt.text)
			if enc != tt.encoding || chars != tt.chars || segs != tt.segments {
				t.Errorf("Segments(%q) = %s, %d, %d; want %s, %d, %d", tt.text, enc, chars, segs, tt.encoding, tt.chars, tt.segments)
			}
			if IsGSM7(tt.text) != (tt.encoding == GSM7) {
				t.Errorf("IsGSM7(%q) = %v", tt.text, IsGSM7(tt.text))
			}
		})
	}
}

// The GSM 03.38 basic table has 128 positions, one of them the escape to
// the extension table: 127 characters.
func TestGSM7Tables(t *testing.T) {
	if len(gsm7Basic) != 127 {
		t.Errorf("basic table has %d characters, want 127", len(gsm7Basic))
	}
	if len(gsm7Extension) != 10 {
		t.Errorf("extension table has %d characters, want 10", len(gsm7Extension))
	}
	for r := range gsm7Extension {
		if gsm7Basic[r] {
			t.Errorf("%q is in both tables", r)
		}
	}
}

func FuzzSegments(f *testing.F) {
	for _, s := range []string{"", "Your code is 123456", strings.Repeat("€", 81), "आपका कोड 123456 है", strings.Repeat("😀", 36), "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		enc, chars, segs := Segments(text)
		if (enc == GSM7) != IsGSM7(text) {
			t.Fatalf("encoding %s, IsGSM7 %v", enc, IsGSM7(text))
		}
		single, part := gsm7Single, gsm7Part
		if enc == UCS2 {
			single, part = ucs2Single, ucs2Part
			if want := len(utf16.Encode([]rune(text))); chars != want {
				t.Fatalf("chars %d, want %d UTF-16 units", chars, want)
			}
		}
		switch {
		case chars == 0:
			if segs != 0 || text != "" {
				t.Fatalf("text %q: %d chars, %d segments", text, chars, segs)
			}
		case chars <= single:
			if segs != 1 {
				t.Fatalf("%d chars in %d segments", chars, segs)
			}
		default:
			// Each part holds at least part-1 units (a two-unit character
			// may not fit at its end) and at most part.
			lo, hi := (chars+part-1)/part, (chars+part-2)/(part-1)
			if segs < lo || segs > hi {
				t.Fatalf("%d chars in %d segments, want %d to %d", chars, segs, lo, hi)
			}
		}
	})
}
