package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup"
)

// maxRequestBody bounds what a request source reads of a form.
const maxRequestBody = 64 << 10

// RequestConfig configures a request source: the identity of a person
// who is not logged in, taken from the form they send. Two flows:
//
//   - sign-up: Phone names the field with the number they typed; the code
//     proves they own it before the form reaches the app.
//   - password reset: User names the field with the account (an email, a
//     user name) and Lookup finds the number on file. An unknown account
//     gets a decoy identity, so that the answer is the same.
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
}

// Request is the request identity source.
type Request struct {
	phone, user field
	lookup      *RedisLookup
	region      string
}

// field is one placeholder: source form, json or query, and its name.
type field struct {
	source, name string
}

func parseField(ph string) (field, error) {
	if !strings.HasPrefix(ph, "{") || !strings.HasSuffix(ph, "}") {
		return field{}, fmt.Errorf("%q: want a placeholder such as {form.phone}", ph)
	}
	source, name, ok := strings.Cut(ph[1:len(ph)-1], ".")
	if !ok || name == "" || (source != "form" && source != "json" && source != "query") {
		return field{}, fmt.Errorf("%q: want {form.NAME}, {json.PATH} or {query.NAME}", ph)
	}
	return field{source: source, name: name}, nil
}

// NewRequest returns a request source.
func NewRequest(cfg RequestConfig) (*Request, error) {
	s := &Request{lookup: cfg.Lookup, region: cfg.DefaultRegion}
	var err error
	switch {
	case cfg.User != "" && cfg.Phone != "":
		return nil, errors.New("identity request: give phone (sign-up) or user with phone_lookup (reset), not both")
	case cfg.User != "":
		if cfg.Lookup == nil {
			return nil, errors.New("identity request: user needs phone_lookup redis")
		}
		if s.user, err = parseField(cfg.User); err != nil {
			return nil, fmt.Errorf("identity request: user %v", err)
		}
	case cfg.Phone != "":
		if cfg.Lookup != nil {
			return nil, errors.New("identity request: phone_lookup goes with user, not with phone")
		}
		if s.phone, err = parseField(cfg.Phone); err != nil {
			return nil, fmt.Errorf("identity request: phone %v", err)
		}
	default:
		return nil, errors.New("identity request: give phone {form.FIELD} (sign-up) or user {form.FIELD} with phone_lookup (reset)")
	}
	return s, nil
}

// IdentityFromRequest implements stepup.RequestIdentity.
func (s *Request) IdentityFromRequest() bool { return true }

// Identify implements stepup.Source.
func (s *Request) Identify(r *http.Request) (stepup.Identity, error) {
	body, err := readAndRestore(r)
	if err != nil {
		return stepup.Identity{}, noIdentity("request: %v", err)
	}
	if s.user.source == "" {
		phone := bounded(fieldValue(r, body, s.phone))
		if phone == "" {
			return stepup.Identity{}, noIdentity("request: the form has no phone number")
		}
		// One user per number however it is written, so that failures
		// and limits cannot be dodged by spelling it differently.
		if p, err := sender.ParsePhone(phone, s.region); err == nil {
			phone = p.E164
		}
		return stepup.Identity{User: userFromPhone(phone), Phone: phone}, nil
	}
	typed := bounded(fieldValue(r, body, s.user))
	if typed == "" {
		return stepup.Identity{}, noIdentity("request: the form names no account")
	}
	// Limits and failures count per account however its name is cased;
	// the lookup uses the name as typed.
	user := strings.ToLower(typed)
	acct, err := s.lookup.Lookup(r.Context(), "", typed)
	switch {
	case errors.Is(err, stepup.ErrNoIdentity), err == nil && acct.Phone == "":
		// No such account, or none with a number: the same answer as
		// for a real one, and nothing sent.
		return stepup.Identity{User: user, Decoy: true, HideNumber: true}, nil
	case err != nil:
		return stepup.Identity{}, fmt.Errorf("request: looking up the account: %w", err)
	}
	return stepup.Identity{User: user, Phone: acct.Phone, Email: acct.Email, HideNumber: true}, nil
}

// bounded trims v and refuses values longer than an e-mail address may be.
func bounded(v string) string {
	v = strings.TrimSpace(v)
	if len(v) > 254 {
		return ""
	}
	return v
}

// readAndRestore reads the body (bounded) and puts an identical one back.
func readAndRestore(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > maxRequestBody {
		return nil, errors.New("form too large")
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxRequestBody {
		return nil, errors.New("form too large")
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	return b, nil
}

// fieldValue reads one field of the request.
func fieldValue(r *http.Request, body []byte, f field) string {
	if f.source == "query" {
		return r.URL.Query().Get(f.name)
	}
	ctype, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case f.source == "form" && ctype == "application/x-www-form-urlencoded":
		v, _ := url.ParseQuery(string(body))
		return v.Get(f.name)
	case f.source == "form" && ctype == "multipart/form-data":
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for {
			part, err := mr.NextPart()
			if err != nil {
				return ""
			}
			if part.FileName() == "" && part.FormName() == f.name {
				v, _ := io.ReadAll(io.LimitReader(part, 1024))
				return string(v)
			}
		}
	case f.source == "json" && (ctype == "application/json" || strings.HasSuffix(ctype, "+json")):
		var doc any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if dec.Decode(&doc) != nil {
			return ""
		}
		for _, key := range strings.Split(f.name, ".") {
			switch node := doc.(type) {
			case map[string]any:
				doc = node[key]
			case []any:
				i, err := strconv.Atoi(key)
				if err != nil || i < 0 || i >= len(node) {
					return ""
				}
				doc = node[i]
			default:
				return ""
			}
		}
		switch v := doc.(type) {
		case string:
			return v
		case json.Number:
			return v.String()
		}
	}
	return ""
}
