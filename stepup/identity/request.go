package identity

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup/fields"
)

// RequestConfig configures a request source: the identity of a person
// who is not logged in, taken from the form they send. Two flows:
//
//   - sign-up: Phone names the field with the number they typed; the code
//     proves they own it before the form reaches the app.
//   - password reset: User names the field with the account (an email, a
//     user name) and Lookup finds the number on file. An unknown account
//     gets a decoy identity, so that the answer is the same.
//
// The field is read strictly by package fields: a request in which the
// app could find another number or account than the one we read (the
// field twice, a name PHP or Rails reads as the same, the name in both
// query and body, ...) is refused with an error matching
// fields.ErrAmbiguous, and a body over MaxBody with fields.ErrTooLarge.
type RequestConfig struct {
	// Phone is a placeholder naming the typed number: {form.phone},
	// {json.customer.phone} or {query.phone}.
	Phone string
	// User is a placeholder naming the account: {form.email}.
	User string
	// Lookup finds the account's number (for User), by its name.
	Lookup *RedisLookup
	// DefaultRegion parses typed national numbers ("IN").
	DefaultRegion string
	// MaxBody bounds the body read, in bytes: the engine's max_body
	// (0: fields.DefaultMaxBody).
	MaxBody int64
}

// Request is the request identity source.
type Request struct {
	phone, user fields.Ref
	lookup      *RedisLookup
	region      string
	maxBody     int64
}

// NewRequest returns a request source.
func NewRequest(cfg RequestConfig) (*Request, error) {
	s := &Request{lookup: cfg.Lookup, region: cfg.DefaultRegion}
	s.SetMaxBody(cfg.MaxBody)
	var err error
	switch {
	case cfg.User != "" && cfg.Phone != "":
		return nil, errors.New("identity request: give phone (sign-up) or user with phone_lookup (reset), not both")
	case cfg.User != "":
		if cfg.Lookup == nil {
			return nil, errors.New("identity request: user needs phone_lookup redis")
		}
		if s.user, err = fields.ParseRef(cfg.User); err != nil {
			return nil, fmt.Errorf("identity request: user %v", err)
		}
	case cfg.Phone != "":
		if cfg.Lookup != nil {
			return nil, errors.New("identity request: phone_lookup goes with user, not with phone")
		}
		if s.phone, err = fields.ParseRef(cfg.Phone); err != nil {
			return nil, fmt.Errorf("identity request: phone %v", err)
		}
	default:
		return nil, errors.New("identity request: give phone {form.FIELD} (sign-up) or user {form.FIELD} with phone_lookup (reset)")
	}
	return s, nil
}

// SetMaxBody sets the bound of the body read, in bytes (0:
// fields.DefaultMaxBody). Call it before the source is used, with the
// engine's max_body, so that a body the engine would answer with 413 gets
// 413 here too.
func (s *Request) SetMaxBody(n int64) {
	if n <= 0 {
		n = fields.DefaultMaxBody
	}
	s.maxBody = n
}

// Elsewhere refuses (fields.ErrAmbiguous) a request that carries the
// field the source reads in a cookie or a header, where some app reads it
// as a parameter (fields.Reader.Elsewhere): the engine checks it again on
// a replay, whose cookies come from a later request.
func (s *Request) Elsewhere(r *http.Request) error {
	f := s.phone
	if s.user.Source != 0 {
		f = s.user
	}
	return fields.NewReader(r, nil).Elsewhere(f)
}

// IdentityFromRequest implements RequestIdentity.
func (s *Request) IdentityFromRequest() bool { return true }

// Identify implements Source. Besides ErrNoIdentity, its errors
// match fields.ErrTooLarge (the engine answers 413) and
// fields.ErrAmbiguous (400).
func (s *Request) Identify(r *http.Request) (Identity, error) {
	body, err := fields.ReadBody(r, s.maxBody)
	if errors.Is(err, fields.ErrTooLarge) {
		return Identity{}, fmt.Errorf("request: %w", err)
	}
	if err != nil {
		return Identity{}, noIdentity("request: %v", err)
	}
	rd := fields.NewReader(r, body)
	if s.user.Source == 0 {
		v, err := fieldValue(rd, s.phone)
		if err != nil {
			return Identity{}, err
		}
		phone := bounded(v)
		if phone == "" {
			return Identity{}, noIdentity("request: the form has no phone number")
		}
		// One user per number however it is written, so that failures
		// and limits cannot be dodged by spelling it differently.
		if p, err := sender.ParsePhone(phone, s.region); err == nil {
			phone = p.E164
		}
		return Identity{User: userFromPhone(phone), Phone: phone}, nil
	}
	v, err := fieldValue(rd, s.user)
	if err != nil {
		return Identity{}, err
	}
	typed := bounded(v)
	if typed == "" {
		return Identity{}, noIdentity("request: the form names no account")
	}
	// Limits and failures count per account however its name is cased;
	// the lookup uses the name as typed.
	user := strings.ToLower(typed)
	acct, err := s.lookup.Lookup(r.Context(), "", typed)
	switch {
	case errors.Is(err, ErrNoIdentity), err == nil && acct.Phone == "":
		// No such account, or none with a number: the same answer as
		// for a real one, and nothing sent.
		return Identity{User: user, Decoy: true, HideNumber: true}, nil
	case err != nil:
		return Identity{}, fmt.Errorf("request: looking up the account: %w", err)
	}
	return Identity{User: user, Phone: acct.Phone, Email: acct.Email, HideNumber: true}, nil
}

// bounded trims v and refuses values longer than an e-mail address may be.
func bounded(v string) string {
	v = strings.TrimSpace(v)
	if len(v) > 254 {
		return ""
	}
	return v
}

// fieldValue reads one field of the request; an ambiguous one is an
// error, and so is one the request also carries in a cookie or a header
// (PHP's $_REQUEST and ASP.NET's Request[] read cookies, Spring 6.2
// binds headers: the code would go to one number and the app register
// another).
func fieldValue(rd *fields.Reader, f fields.Ref) (string, error) {
	if err := rd.Elsewhere(f); err != nil {
		return "", fmt.Errorf("request: %w", err)
	}
	v, _, err := rd.Value(f)
	if err != nil {
		return "", fmt.Errorf("request: %w", err)
	}
	return v, nil
}
