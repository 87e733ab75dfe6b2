package sender

import "unicode/utf16"

// The encodings Segments reports.
const (
	// GSM7 is the GSM 03.38 default alphabet, 7 bits per character: 160
	// characters in a single SMS, 153 per part of a longer one.
	GSM7 = "GSM-7"
	// UCS2 is the 16-bit encoding used as soon as one character is
	// outside GSM-7: 70 UTF-16 units in a single SMS, 67 per part.
	UCS2 = "UCS-2"
)

// Capacities of one SMS, in septets (GSM-7) or UTF-16 units (UCS-2). A
// message that does not fit in one is split into parts that each lose
// room to the concatenation header.
const (
	gsm7Single = 160
	gsm7Part   = 153
	ucs2Single = 70
	ucs2Part   = 67
)

// gsm7Basic is the GSM 03.38 default alphabet.
var gsm7Basic = func() map[rune]bool {
	const basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	m := make(map[rune]bool, 128)
	for _, r := range basic {
		m[r] = true
	}
	return m
}()

// gsm7Extension holds the characters of the GSM 03.38 extension table:
// each is sent as an escape and a second septet, so it costs two.
var gsm7Extension = map[rune]bool{
	'\f': true, '^': true, '{': true, '}': true, '\\': true,
	'[': true, '~': true, ']': true, '|': true, '€': true,
}

// IsGSM7 reports whether every character of text is in the GSM-7
// alphabet, its extension table included.
func IsGSM7(text string) bool {
	for _, r := range text {
		if !gsm7Basic[r] && !gsm7Extension[r] {
			return false
		}
	}
	return true
}

// Segments tells how text travels as SMS: its encoding (GSM7 or UCS2),
// its length in that encoding's units (septets for GSM-7, where an
// extension character such as '€' or '{' counts two; UTF-16 code units
// for UCS-2, where a character outside the Basic Multilingual Plane such
// as an emoji counts two), and the number of SMS it is billed as.
//
// A GSM-7 text of up to 160 septets is one SMS; a longer one is split
// into parts of at most 153. A UCS-2 text of up to 70 units is one SMS;
// a longer one is split into parts of at most 67. Parts never split an
// extension character from its escape or a surrogate pair, as handsets
// and gateways do, so a part may hold one unit less. Hindi, and any text
// with a single character outside GSM-7, is UCS-2. An empty text is 0
// segments.
func Segments(text string) (encoding string, chars, segments int) {
	encoding = GSM7
	if !IsGSM7(text) {
		encoding = UCS2
	}
	single, part := gsm7Single, gsm7Part
	if encoding == UCS2 {
		single, part = ucs2Single, ucs2Part
	}
	cost := func(r rune) int {
		if encoding == UCS2 {
			return max(utf16.RuneLen(r), 1)
		}
		if gsm7Extension[r] {
			return 2
		}
		return 1
	}
	for _, r := range text {
		chars += cost(r)
	}
	switch {
	case chars == 0:
		return encoding, 0, 0
	case chars <= single:
		return encoding, chars, 1
	}
	used := 0
	segments = 1
	for _, r := range text {
		c := cost(r)
		if used+c > part {
			segments++
			used = 0
		}
		used += c
	}
	return encoding, chars, segments
}
