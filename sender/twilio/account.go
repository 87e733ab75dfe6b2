package twilio

import (
	"errors"
	"net/url"
	"strings"
)

// Account is how the voice and RCS senders reach a Twilio account: its
// SID, which is in every URL path, and one kind of credentials. Its
// fields are options of those senders' JSON (the SMS sender's Config
// has the same ones).
type Account struct {
	// AccountSID is the account ("AC...").
	AccountSID string `json:"account_sid,omitempty" placeholder:"required"`
	// AuthToken authenticates as the account. Set it, or APIKey and
	// APISecret.
	AuthToken string `json:"auth_token,omitempty" placeholder:"optional"`
	// APIKey ("SK...") authenticates, with APISecret, as an API key of
	// the account, which can be revoked on its own: the better choice.
	APIKey string `json:"api_key,omitempty" placeholder:"optional"`
	// APISecret is the API key's secret.
	APISecret string `json:"api_secret,omitempty" placeholder:"optional"`
}

// validate checks the account as written: a SID and one kind of
// credentials. kind starts the errors ("twilio_voice").
func (a *Account) validate(kind string) error {
	switch {
	case a.AccountSID == "":
		return errors.New(kind + " sender: needs account_sid")
	case a.AuthToken != "" && (a.APIKey != "" || a.APISecret != ""):
		return errors.New(kind + " sender: set auth_token, or api_key and api_secret, not both")
	case a.AuthToken == "" && (a.APIKey == "" || a.APISecret == ""):
		return errors.New(kind + " sender: credentials missing: needs auth_token, or api_key and api_secret")
	}
	return nil
}

// check checks the forms of the resolved values.
func (a *Account) check(kind string) error {
	switch {
	case !strings.HasPrefix(a.AccountSID, "AC"):
		return errors.New(kind + ` sender: account_sid must be an account SID ("AC...")`)
	case a.APIKey != "" && !strings.HasPrefix(a.APIKey, "SK"):
		return errors.New(kind + ` sender: api_key must be an API key SID ("SK...")`)
	}
	return nil
}

// url returns the URL of one of the account's resources ("Calls.json").
func (a *Account) url(base, resource string) string {
	return base + "/2010-04-01/Accounts/" + url.PathEscape(a.AccountSID) + "/" + resource
}

// authorization returns the Authorization header value.
func (a *Account) authorization() string {
	if a.APIKey != "" {
		return basicAuth(a.APIKey, a.APISecret)
	}
	return basicAuth(a.AccountSID, a.AuthToken)
}
