package twilio

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/internal/httpsend"
)

// Speaker is the language and the voice a call speaks in, for the
// customers of one locale.
type Speaker struct {
	// Locale is one of sender.VoiceLocales ("hi").
	Locale string `json:"locale"`
	// Language is <Say>'s language attribute ("hi-IN"); it must be one
	// that Voice speaks.
	Language string `json:"language"`
	// Voice is <Say>'s voice attribute ("Google.hi-IN-Standard-A",
	// "Polly.Aditi"). Empty leaves it out: the account's default voice
	// (Twilio Console, Text-to-Speech) speaks, if it speaks Language.
	Voice string `json:"voice,omitempty"`
}

// DefaultSpeakers are the language and the voice of each locale unless
// VoiceConfig.Voices says otherwise: Google standard voices from
// Twilio's list of text-to-speech voices, one for each of
// sender.VoiceLocales. A voice is named because Twilio's basic voices
// (man, woman), an account's default, speak neither Hindi nor Arabic.
var DefaultSpeakers = []Speaker{
	{Locale: "en", Language: "en-US", Voice: "Google.en-US-Standard-C"},
	{Locale: "ar", Language: "ar-XA", Voice: "Google.ar-XA-Standard-A"},
	{Locale: "de", Language: "de-DE", Voice: "Google.de-DE-Standard-A"},
	{Locale: "es", Language: "es-ES", Voice: "Google.es-ES-Standard-C"},
	{Locale: "hi", Language: "hi-IN", Voice: "Google.hi-IN-Standard-A"},
	{Locale: "pt-BR", Language: "pt-BR", Voice: "Google.pt-BR-Standard-C"},
}

// Bounds of VoiceConfig.Repeat: those of every voice sender.
const (
	DefaultRepeat = sender.DefaultVoiceRepeat
	MaxRepeat     = sender.MaxVoiceRepeat
)

// maxTwiml is the longest Twiml parameter Twilio takes, in characters.
const maxTwiml = 4000

var (
	languageRE = regexp.MustCompile(`^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$`)
	voiceRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// VoiceConfig configures a VoiceSender. Its JSON is the twilio_voice
// sender's in a Caddy config; see sender.Options for the fields every
// sender has, and for the placeholder tags.
type VoiceConfig struct {
	// Endpoint is the API base URL; default DefaultEndpoint.
	Endpoint string `json:"endpoint,omitempty" placeholder:"optional"`
	Account
	// From is the calling number (E.164), a Twilio number of the
	// account or a verified caller ID.
	From string `json:"from,omitempty" placeholder:"required"`
	// Voices replace the DefaultSpeakers of some locales.
	Voices []Speaker `json:"voices,omitempty"`
	// Repeat is how many times the call reads the code, from 1 to
	// MaxRepeat; default DefaultRepeat.
	Repeat int `json:"repeat,omitempty"`
	sender.Options
}

// Validate checks the configuration as written, placeholders
// unresolved: an account and its credentials, a caller, voices for
// known locales, a repeat count within bounds. NewVoice checks the
// forms of the values.
func (c *VoiceConfig) Validate() error {
	if err := c.Options.Validate("twilio_voice"); err != nil {
		return err
	}
	if err := c.validate("twilio_voice"); err != nil {
		return err
	}
	if c.From == "" {
		return errors.New("twilio_voice sender: needs from (the calling number)")
	}
	if _, err := sender.VoiceRepeat("twilio_voice", c.Repeat); err != nil {
		return err
	}
	return checkSpeakers(c.Voices)
}

// checkSpeakers checks voice overrides: a known locale each, once, and
// a language and voice of the right form.
func checkSpeakers(voices []Speaker) error {
	seen := map[string]bool{}
	for _, v := range voices {
		switch {
		case !slices.Contains(sender.VoiceLocales(), v.Locale):
			return fmt.Errorf("twilio_voice sender: voice for locale %q: a call speaks %s only", v.Locale, strings.Join(sender.VoiceLocales(), ", "))
		case seen[v.Locale]:
			return fmt.Errorf("twilio_voice sender: two voices for locale %q", v.Locale)
		case !languageRE.MatchString(v.Language):
			return fmt.Errorf("twilio_voice sender: voice for locale %q: language %q is not a language tag such as \"en-GB\"", v.Locale, v.Language)
		case v.Voice != "" && !voiceRE.MatchString(v.Voice):
			return fmt.Errorf("twilio_voice sender: voice for locale %q: %q is not a Twilio voice name such as \"Polly.Amy\"", v.Locale, v.Voice)
		}
		seen[v.Locale] = true
	}
	return nil
}

// VoiceSender reads codes aloud in a phone call through Twilio
// Programmable Voice (POST /2010-04-01/Accounts/{AccountSid}/Calls.json
// with inline TwiML). It is safe for concurrent use.
//
// The call says the sentence of sender.SpokenCode, in the message's
// locale, with the digits one by one, Repeat times with a pause between;
// the message text is not used. A 201 answer means Twilio placed the
// call, not that anyone answered. Errors and retries are those of the
// SMS Sender; numbers Twilio may not call (geographic permissions,
// blocked destinations) are reported as sender.Error.Recipient.
type VoiceSender struct {
	httpsend.Base
	account  Account
	url      string
	from     string
	speakers map[string]Speaker
	repeat   int
}

var _ httpsend.Provider = (*VoiceSender)(nil)

// NewVoice returns a VoiceSender for cfg, or an error saying what is
// missing or malformed. Errors never contain a credential.
func NewVoice(cfg VoiceConfig) (*VoiceSender, error) {
	base, err := httpsend.Prepare("twilio_voice", &cfg, cfg.Endpoint, DefaultEndpoint)
	if err != nil {
		return nil, err
	}
	if err := cfg.check("twilio_voice"); err != nil {
		return nil, err
	}
	if _, ok := httpsend.E164Digits(cfg.From); !ok {
		return nil, errors.New("twilio_voice sender: from must be a phone number in E.164 form (+14155550100)")
	}
	s := &VoiceSender{
		Base:     httpsend.NewBase(cfg.Options, "twilio_voice", httpsend.Retrier{}),
		account:  cfg.Account,
		url:      cfg.url(base, "Calls.json"),
		from:     cfg.From,
		speakers: map[string]Speaker{},
	}
	if s.repeat, err = sender.VoiceRepeat("twilio_voice", cfg.Repeat); err != nil {
		return nil, err
	}
	for _, v := range DefaultSpeakers {
		s.speakers[v.Locale] = v
	}
	for _, v := range cfg.Voices {
		s.speakers[v.Locale] = v
	}
	return s, nil
}

// Channel returns sender.Voice.
func (*VoiceSender) Channel() sender.Channel { return sender.Voice }

// Send asks Twilio to call msg.To and read msg.Code. The error is a
// *sender.Error; it never holds the code, the number or Twilio's answer
// as such.
func (s *VoiceSender) Send(ctx context.Context, msg *sender.Message) error {
	if msg == nil {
		return &sender.Error{Sender: s.Name(), Msg: "no message"}
	}
	if _, ok := httpsend.E164Digits(msg.To); !ok {
		return httpsend.NotE164(s.Name())
	}
	if !digitsOnly(msg.Code) {
		return &sender.Error{Sender: s.Name(), Msg: "a call reads a code of digits, and the message has none"}
	}
	twiml := s.twiml(msg.Locale, msg.Code)
	if n := len([]rune(twiml)); n > maxTwiml {
		return &sender.Error{Sender: s.Name(), Msg: "the call's TwiML is " + strconv.Itoa(n) + " characters, Twilio takes at most 4000"}
	}
	form := url.Values{}
	form.Set("To", msg.To)
	form.Set("From", s.from)
	form.Set("Twiml", twiml)
	return httpsend.Send(ctx, &s.Base, httpsend.Request{
		URL:         s.url,
		ContentType: "application/x-www-form-urlencoded",
		Body:        []byte(form.Encode()),
		Header:      func(h http.Header) { h.Set("Authorization", s.account.authorization()) },
	}, parseCallResponse)
}

// twiml returns the call's instructions: a second of silence, so that
// the first words are not lost while the phone is put to the ear, then
// the sentence Repeat times, a pause before each repetition.
func (s *VoiceSender) twiml(locale, code string) string {
	tag := sender.VoiceLocale(locale)
	v := s.speakers[tag]
	var say strings.Builder
	say.WriteString(`<Say language="`)
	xml.EscapeText(&say, []byte(v.Language))
	say.WriteString(`"`)
	if v.Voice != "" {
		say.WriteString(` voice="`)
		xml.EscapeText(&say, []byte(v.Voice))
		say.WriteString(`"`)
	}
	say.WriteString(`>`)
	xml.EscapeText(&say, []byte(sender.SpokenCode(tag, code)))
	say.WriteString(`</Say>`)

	var b strings.Builder
	b.WriteString(`<Response>`)
	for range s.repeat {
		b.WriteString(`<Pause length="1"/>`)
		b.WriteString(say.String())
	}
	b.WriteString(`</Response>`)
	return b.String()
}

// digitsOnly reports whether code is a non-empty run of ASCII digits.
func digitsOnly(code string) bool {
	for _, c := range code {
		if c < '0' || c > '9' {
			return false
		}
	}
	return code != ""
}

// callRecipientCodes are Twilio errors of a call about its destination,
// beside those of a message (recipientCodes).
var callRecipientCodes = map[string]bool{
	"13224": true, // invalid phone number
	"21215": true, // geographic permissions do not allow calls to the number
	"21216": true, // the number is blocked (high-risk or premium destination)
}

// parseCallResponse is parseResponse, with the errors of calls about
// their destination.
func parseCallResponse(name string, resp *httpsend.Response) httpsend.Outcome {
	o := parseResponse(name, resp)
	if o.Err == nil {
		return o
	}
	o.Err.Msg = strings.Replace(o.Err.Msg, "refused the message", "refused the call", 1)
	if callRecipientCodes[o.Err.Code] {
		o.Err.Recipient = true
	}
	return o
}
