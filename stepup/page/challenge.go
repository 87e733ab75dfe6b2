package page

import "time"

// Challenge is what the engine tells the page of a live challenge; Data
// makes the page's data of it (StateChallenge).
type Challenge struct {
	// Policy is the policy's name ("payment-methods"); Description what
	// a transaction approves, if anything.
	Policy, Description string
	// To is the masked number, "" when the challenge must not show it.
	To string
	// CodeLength is the number of digits of the code.
	CodeLength int
	// Action and ResendAction are where the code form and the resend
	// form post; CSRF is the forms' token.
	Action, ResendAction, CSRF string
	// AttemptsLeft and SendsLeft are the codes that may still be tried
	// and sent.
	AttemptsLeft, SendsLeft int
	// ExpiresIn is the time the code has left, ExpiresAt when it ends.
	ExpiresIn time.Duration
	ExpiresAt time.Time
	// ResendWait is the resend cooldown left; zero or less when a new
	// code can be asked for now.
	ResendWait time.Duration
	// SendFailed: the last code could not be sent.
	SendFailed bool
	// Channels are the other channels the next code can be asked on.
	Channels []string
	// Delivery is how the code's delivery goes (sending, sent,
	// delivered, not_delivered, failed_over, failed) and
	// DeliveryChannel the channel it went by last ("whatsapp"), if
	// known; StatusURL is where the page's script polls for them, ""
	// for none.
	Delivery, DeliveryChannel, StatusURL string
	// ContinueURL is where the customer was going, "" if unknown.
	ContinueURL string
	// Error and Notice are the engine's English texts for the field and
	// above the form; the page shows them in its language.
	Error, Notice string
	// NoCode: no code went out yet (a passkey was offered first and no
	// code was asked for); the first one is a resend.
	NoCode bool
	// PasskeyOptions are the WebAuthn request options (JSON) when a
	// passkey may answer, "" otherwise; PasskeyFirst: the policy prefers
	// it to the code.
	PasskeyOptions string
	PasskeyFirst   bool
}

// Data returns the page's data of c: a resend while sends are left
// (now, or after the cooldown), and the other channels with it.
func (c *Challenge) Data() *Data {
	d := &Data{
		Policy:         c.Policy,
		PolicyLabel:    policyLabel(c.Policy),
		Description:    c.Description,
		To:             c.To,
		CodeLength:     c.CodeLength,
		Action:         c.Action,
		ResendAction:   c.ResendAction,
		CSRF:           c.CSRF,
		AttemptsLeft:   c.AttemptsLeft,
		ExpiresIn:      humanDuration(c.ExpiresIn),
		ExpiresAt:      c.ExpiresAt.UTC().Format(time.RFC3339),
		ExpiresSeconds: int(max(c.ExpiresIn, 0) / time.Second),
		SendsLeft:      c.SendsLeft,
		SendFailed:     c.SendFailed,
		ContinueURL:    c.ContinueURL,
		Delivery:       c.Delivery,
		StatusURL:      c.StatusURL,
		deliveryCh:     c.DeliveryChannel,
		Error:          c.Error,
		Notice:         c.Notice,
		expires:        c.ExpiresIn,
		timed:          true,
		sentText:       true,
		NoCode:         c.NoCode,
		Passkey:        c.PasskeyOptions != "",
		PasskeyFirst:   c.PasskeyOptions != "" && c.PasskeyFirst,
		passkeyOptions: c.PasskeyOptions,
	}
	if d.SendsLeft > 0 {
		if wait := c.ResendWait; wait > 0 {
			d.ResendIn = humanDuration(wait)
			d.resendWait = wait
			d.ResendSeconds = int((wait + time.Second - 1) / time.Second)
		} else {
			d.CanResend = true
		}
		for _, ch := range c.Channels {
			d.Channels = append(d.Channels, Channel{Name: ch})
		}
	}
	return d
}

// Retry returns the data of a page that says when to try again (the
// locked state): after retry.
func Retry(retry time.Duration) *Data {
	return &Data{RetryIn: humanDuration(retry), retry: retry, retrySet: true}
}

// PasskeyOffer returns the data of the offer to create a passkey after
// a code (StatePasskeyOffer): the form posts the new credential to
// action with the csrf token; options are the WebAuthn creation options
// (JSON); "Not now" goes on to continueURL.
func PasskeyOffer(action, csrf, continueURL, options string) *Data {
	return &Data{EnrolAction: action, CSRF: csrf, ContinueURL: continueURL, createOptions: options}
}

// PasskeyList returns the data of the passkeys page (StatePasskeys):
// items, each with a rename and a remove form posting to action with
// the csrf token, and notice (English, shown translated) after a change.
func PasskeyList(items []PasskeyItem, action, csrf, notice string) *Data {
	return &Data{Passkeys: items, ManageAction: action, CSRF: csrf, Notice: notice}
}
