// Package logscan helps tests prove that no secret reached a log: it
// flattens JSON log lines into their strings and finds a value standing
// on its own.
package logscan

import (
	"encoding/json"
	"strings"
)

// Strings returns the keys and string values of every JSON log line, one
// a line, and every line that is not JSON as it is. Numbers (timestamps)
// are left out: a 6-digit code could match inside one by chance.
func Strings(logs string) string {
	var b strings.Builder
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			b.WriteString(v)
			b.WriteByte('\n')
		case map[string]any:
			for k, x := range v {
				b.WriteString(k)
				b.WriteByte('\n')
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	for _, line := range strings.Split(logs, "\n") {
		var v any
		if json.Unmarshal([]byte(line), &v) == nil {
			walk(v)
		} else {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// ContainsToken reports whether s occurs in text not glued to other
// letters or digits: a code inside a request id (a UUID) is chance, a
// code in a field value or between spaces is a leak.
func ContainsToken(text, s string) bool {
	alnum := func(b byte) bool {
		return b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
	}
	for i := 0; ; {
		j := strings.Index(text[i:], s)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(s)
		if (start == 0 || !alnum(text[start-1])) && (end == len(text) || !alnum(text[end])) {
			return true
		}
		i = start + 1
	}
}
