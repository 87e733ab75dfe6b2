package vonage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/internal/httpsend"
)

// Speaker is the text-to-speech language and style a call speaks in, for
// the customers of one locale.
type Speaker struct {
	// Locale is one of sender.VoiceLocales ("hi").
	Locale string `json:"locale"`
	// Language is the talk action's language, a Vonage text-to-speech
	// language code ("hi-IN", "ar").
	Language string `json:"language"`
	// Style is the talk action's style, a voice of that language; 0, the
	// default, is Vonage's first.
	Style int `json:"style,omitempty"`
}

// DefaultSpeakers are the language of each locale unless
// VoiceConfig.Voices says otherwise, in style 0: Vonage's text-to-speech
// languages for each of sender.VoiceLocales.
var DefaultSpeakers = []Speaker{
	{Locale: "en", Language: "en-US"},
	{Locale: "ar", Language: "ar"},
	{Locale: "de", Language: "de-DE"},
	{Locale: "es", Language: "es-ES"},
	{Locale: "hi", Language: "hi-IN"},
	{Locale: "pt-BR", Language: "pt-BR"},
}

// Bounds of VoiceConfig.Repeat: those of every voice sender.
const (
	DefaultRepeat = sender.DefaultVoiceRepeat
	MaxRepeat     = sender.MaxVoiceRepeat
)

// maxStyle bounds Speaker.Style; Vonage has a handful per language.
const maxStyle = 99

var languageRE = regexp.MustCompile(`^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$`)

// VoiceConfig configures a VoiceSender. Its JSON is the vonage_voice
// sender's in a Caddy config; see sender.Options for the fields every
// sender has, and for the placeholder tags.
type VoiceConfig struct {
	// Endpoint is the API base URL; default DefaultAPIEndpoint.
	Endpoint string `json:"endpoint,omitempty" placeholder:"optional"`
	Application
	// From is the calling number, a Vonage number linked to the
	// application, in international form with or without "+".
	From string `json:"from,omitempty" placeholder:"required"`
	// Voices replace the DefaultSpeakers of some locales.
	Voices []Speaker `json:"voices,omitempty"`
	// Repeat is how many times the call reads the code, from 1 to
	// MaxRepeat; default DefaultRepeat.
	Repeat int `json:"repeat,omitempty"`
	sender.Options
}

// Validate checks the configuration as written, placeholders
// unresolved: an application and its key, a caller, voices for known
// locales, a repeat count within bounds. NewVoice checks the forms of
// the values and reads the key.
func (c *VoiceConfig) Validate() error {
	if err := c.Options.Validate("vonage_voice"); err != nil {
		return err
	}
	if err := c.validate("vonage_voice"); err != nil {
		return err
	}
	if c.From == "" {
		return errors.New("vonage_voice sender: needs from (the calling number)")
	}
	if _, err := sender.VoiceRepeat("vonage_voice", c.Repeat); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, v := range c.Voices {
		switch {
		case !slices.Contains(sender.VoiceLocales(), v.Locale):
			return fmt.Errorf("vonage_voice sender: voice for locale %q: a call speaks %s only", v.Locale, strings.Join(sender.VoiceLocales(), ", "))
		case seen[v.Locale]:
			return fmt.Errorf("vonage_voice sender: two voices for locale %q", v.Locale)
		case !languageRE.MatchString(v.Language):
			return fmt.Errorf("vonage_voice sender: voice for locale %q: language %q is not a language code such as \"en-GB\"", v.Locale, v.Language)
		case v.Style < 0 || v.Style > maxStyle:
			return fmt.Errorf("vonage_voice sender: voice for locale %q: style %d out of range (0 to %d)", v.Locale, v.Style, maxStyle)
		}
		seen[v.Locale] = true
	}
	return nil
}

// VoiceSender reads codes aloud in a phone call through the Vonage
// Voice API (POST /v1/calls with an NCCO), authenticated with the
// application's JWT. It is safe for concurrent use.
//
// The call says the sentence of sender.SpokenCode, in the message's
// locale, with the digits one by one, Repeat times; the message text is
// not used. A 201 answer means Vonage placed the call, not that anyone
// answered. 408, 429 and 5xx are retried with backoff and jitter while
// the deadline allows (see httpsend's retry policy); other answers fail
// at once, with the fragment of the error's type as its code
// ("unauthorized", "low-balance").
type VoiceSender struct {
	httpsend.Base
	tokens   *tokenSigner
	url      string
	from     string
	speakers map[string]Speaker
	repeat   int
}

var _ httpsend.Provider = (*VoiceSender)(nil)

// NewVoice returns a VoiceSender for cfg, or an error saying what is
// missing or malformed. It reads the private key; errors never contain
// a credential.
func NewVoice(cfg VoiceConfig) (*VoiceSender, error) {
	base, err := httpsend.Prepare("vonage_voice", &cfg, cfg.Endpoint, DefaultAPIEndpoint)
	if err != nil {
		return nil, err
	}
	from, ok := httpsend.E164Digits("+" + strings.TrimPrefix(cfg.From, "+"))
	if !ok {
		return nil, errors.New("vonage_voice sender: from must be a phone number in international form (447700900001)")
	}
	tokens, err := cfg.tokens("vonage_voice")
	if err != nil {
		return nil, err
	}
	s := &VoiceSender{
		Base:     httpsend.NewBase(cfg.Options, "vonage_voice", httpsend.Retrier{}),
		tokens:   tokens,
		url:      base + "/v1/calls",
		from:     from,
		speakers: map[string]Speaker{},
	}
	if s.repeat, err = sender.VoiceRepeat("vonage_voice", cfg.Repeat); err != nil {
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

// The request body; the field order is the documented one.
type (
	callRequest struct {
		To   []endpoint `json:"to"`
		From endpoint   `json:"from"`
		NCCO []talk     `json:"ncco"`
	}
	endpoint struct {
		Type   string `json:"type"`
		Number string `json:"number"`
	}
	talk struct {
		Action   string `json:"action"`
		Text     string `json:"text"`
		Language string `json:"language"`
		Style    int    `json:"style,omitempty"`
	}
)

// Send asks Vonage to call msg.To and read msg.Code. The error is a
// *sender.Error; it never holds the code, the number or Vonage's answer
// as such.
func (s *VoiceSender) Send(ctx context.Context, msg *sender.Message) error {
	if msg == nil {
		return &sender.Error{Sender: s.Name(), Msg: "no message"}
	}
	to, ok := httpsend.E164Digits(msg.To)
	if !ok {
		return httpsend.NotE164(s.Name())
	}
	if !digitsOnly(msg.Code) {
		return &sender.Error{Sender: s.Name(), Msg: "a call reads a code of digits, and the message has none"}
	}
	tag := sender.VoiceLocale(msg.Locale)
	v := s.speakers[tag]
	sentence := sender.SpokenCode(tag, msg.Code)
	body, err := json.Marshal(callRequest{
		To:   []endpoint{{Type: "phone", Number: to}},
		From: endpoint{Type: "phone", Number: s.from},
		NCCO: []talk{{
			Action:   "talk",
			Text:     strings.Repeat(sentence+" ", s.repeat-1) + sentence,
			Language: v.Language,
			Style:    v.Style,
		}},
	})
	if err != nil {
		return &sender.Error{Sender: s.Name(), Msg: "encoding the call failed", Err: err}
	}
	header, serr := s.tokens.bearer(s.Name())
	if serr != nil {
		return serr
	}
	return httpsend.Send(ctx, &s.Base, httpsend.Request{
		URL:         s.url,
		ContentType: "application/json",
		Body:        body,
		Header:      header,
	}, parseCallResponse)
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

// parseCallResponse turns the Voice API's answer into an outcome.
func parseCallResponse(name string, resp *httpsend.Response) httpsend.Outcome {
	return parseProblem(name, "the call", resp, nil, nil)
}
