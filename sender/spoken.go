package sender

import (
	"fmt"
	"strings"
)

// What a voice call says. The code page's catalog (stepup/page) has the
// texts of every locale, but package sender never imports the engine:
// the one sentence a call speaks is kept here, in each locale the page
// ships (en, hi, es, de, pt-BR, ar), with the page's register (Spanish
// "tú", German "Sie"). A new page locale needs its line here too; the
// caddymodule tests check that every page locale has one.

// spoken is how one locale reads a code: the words before the digits,
// what separates two digits (a pause when read aloud), and the full stop.
type spoken struct {
	tag, lead, sep, end string
}

// spokenLocales are the locales a call can speak, DefaultVoiceLocale
// first.
var spokenLocales = []spoken{
	{"en", "Your code is ", ", ", "."},
	{"ar", "رمزك هو ", "، ", "."},
	{"de", "Ihr Code lautet ", ", ", "."},
	{"es", "Tu código es ", ", ", "."},
	{"hi", "आपका कोड है: ", ", ", "।"},
	{"pt-BR", "Seu código é ", ", ", "."},
}

// DefaultVoiceLocale is the locale a call speaks when the message's
// locale has no words of its own.
const DefaultVoiceLocale = "en"

// VoiceLocales returns the locales a voice call can speak, as BCP 47
// tags, DefaultVoiceLocale first.
func VoiceLocales() []string {
	tags := make([]string, len(spokenLocales))
	for i, s := range spokenLocales {
		tags[i] = s.tag
	}
	return tags
}

// VoiceLocale returns the locale of VoiceLocales a call to a customer of
// the given locale (Message.Locale) speaks: the same tag, case aside;
// else the first of the same language ("pt-PT" gets "pt-BR", "de-AT"
// gets "de"); else DefaultVoiceLocale. It matches as the code page
// matches a browser's language, so the call speaks the page's language.
func VoiceLocale(tag string) string {
	return spokenFor(tag).tag
}

func spokenFor(tag string) *spoken {
	tag = strings.TrimSpace(tag)
	for i := range spokenLocales {
		if strings.EqualFold(spokenLocales[i].tag, tag) {
			return &spokenLocales[i]
		}
	}
	base, _, _ := strings.Cut(strings.ReplaceAll(tag, "_", "-"), "-")
	for i := range spokenLocales {
		b, _, _ := strings.Cut(spokenLocales[i].tag, "-")
		if base != "" && strings.EqualFold(b, base) {
			return &spokenLocales[i]
		}
	}
	return &spokenLocales[0]
}

// SpokenCode returns the sentence that reads code aloud in the locale
// VoiceLocale picks for locale, with its digits one by one and a pause
// (a comma) between two: "Your code is 4, 9, 3, 8, 1, 7." Characters of
// code that are not digits are left out.
func SpokenCode(locale, code string) string {
	s := spokenFor(locale)
	var b strings.Builder
	b.WriteString(s.lead)
	first := true
	for _, c := range code {
		if c < '0' || c > '9' {
			continue
		}
		if !first {
			b.WriteString(s.sep)
		}
		b.WriteRune(c)
		first = false
	}
	b.WriteString(s.end)
	return b.String()
}

// How many times a voice call reads the code: DefaultVoiceRepeat when
// the sender's configuration says nothing (0), at most MaxVoiceRepeat.
const (
	DefaultVoiceRepeat = 2
	MaxVoiceRepeat     = 3
)

// VoiceRepeat checks a voice sender's configured repeat count n, 0 for
// the default, and returns the count its calls use. name is the sender
// kind for the error ("twilio_voice").
func VoiceRepeat(name string, n int) (int, error) {
	if n == 0 {
		return DefaultVoiceRepeat, nil
	}
	if n < 1 || n > MaxVoiceRepeat {
		return 0, fmt.Errorf("%s sender: repeat %d out of range (1 to %d)", name, n, MaxVoiceRepeat)
	}
	return n, nil
}
