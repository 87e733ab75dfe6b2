package httpsend

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxRedacted bounds the length of a redacted text, in bytes.
const maxRedacted = 200

// emailLike matches anything that looks like an e-mail address.
var emailLike = regexp.MustCompile(`[^\s<>"'(),;:\[\]]*@[^\s<>"'(),;:\[\]]+`)

// Redact makes a provider's error text fit for logs: every e-mail
// address becomes "***@***"; every number that has four digits in a row,
// or seven digits or more in all when spaces, '-', '.', '(' or ')' split
// it (a formatted phone number, with its leading '+'), becomes "***";
// control characters become spaces; and the result is cut to 200 bytes.
// Short numbers such as "550 5.1.1" or "v21.0" stay. Providers quote the number, sometimes the text and
// so the code, in their error messages; what remains after Redact is the
// explanation.
func Redact(s string) string {
	s = emailLike.ReplaceAllString(s, "***@***")
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if isDigit(r) || (r == '+' && i+1 < len(s) && isDigit(rune(s[i+1]))) {
			end, digits, longest := digitRun(s, i)
			if longest >= 4 || digits >= 7 {
				b.WriteString("***")
			} else {
				b.WriteString(s[i:end])
			}
			i = end
			continue
		}
		if unicode.IsControl(r) || r == utf8.RuneError {
			r = ' '
		}
		b.WriteRune(r)
		i += size
	}
	out := strings.TrimSpace(b.String())
	if len(out) > maxRedacted {
		cut := maxRedacted
		for cut > 0 && !utf8.RuneStart(out[cut]) {
			cut--
		}
		out = out[:cut] + "…"
	}
	return out
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

// digitRun returns the end of the number starting at i, how many digits
// it holds, and the length of its longest group of digits in a row.
// One or two separators join groups ("(415) 555"); they are part of the
// number only between digits.
func digitRun(s string, i int) (end, digits, longest int) {
	end = i
	if s[i] == '+' {
		i++
	}
	group, seps := 0, 0
	for j := i; j < len(s); j++ {
		switch c := s[j]; {
		case c >= '0' && c <= '9':
			digits++
			group++
			longest = max(longest, group)
			seps = 0
			end = j + 1
		case (c == ' ' || c == '-' || c == '.' || c == '(' || c == ')') && seps < 2:
			group = 0
			seps++
		default:
			return end, digits, longest
		}
	}
	return end, digits, longest
}
