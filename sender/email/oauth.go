package email

// Where an XOAUTH2 access token comes from.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// maxTokenFile bounds the size of a token file; access tokens are a few
// KiB at most (Microsoft's JWTs are the longest).
const maxTokenFile = 64 << 10

var (
	envRE  = regexp.MustCompile(`^\{env\.([A-Za-z_][A-Za-z0-9_]*)\}$`)
	fileRE = regexp.MustCompile(`^\{file\.(.+)\}$`)
)

// tokenSource reads an OAuth access token: from an environment variable,
// a file, or as written.
type tokenSource struct {
	env, file, literal string
}

// parseTokenSource reads an oauth_token option: "{env.NAME}",
// "{file.PATH}" or the token itself.
func parseTokenSource(s string) tokenSource {
	s = strings.TrimSpace(s)
	if m := envRE.FindStringSubmatch(s); m != nil {
		return tokenSource{env: m[1]}
	}
	if m := fileRE.FindStringSubmatch(s); m != nil {
		return tokenSource{file: m[1]}
	}
	return tokenSource{literal: s}
}

// read returns the token as it is now, without surrounding white space.
// The error names the variable or the file, never the token.
func (ts tokenSource) read() (string, error) {
	var token string
	switch {
	case ts.env != "":
		token = os.Getenv(ts.env)
		if strings.TrimSpace(token) == "" {
			return "", fmt.Errorf("environment variable %s is unset or empty", ts.env)
		}
	case ts.file != "":
		f, err := os.Open(ts.file)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return "", fmt.Errorf("reading %s: %v", ts.file, err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
		switch {
		case err != nil:
			return "", fmt.Errorf("reading %s failed", ts.file)
		case len(b) > maxTokenFile:
			return "", fmt.Errorf("%s is over %d bytes: not an access token", ts.file, maxTokenFile)
		}
		token = string(b)
	default:
		token = ts.literal
	}
	token = strings.TrimSpace(token)
	switch {
	case token == "":
		return "", errors.New("the token is empty")
	case strings.ContainsAny(token, "\x00\x01\r\n "):
		return "", errors.New("the token holds white space or control characters")
	}
	return token, nil
}
