package stepup

import (
	"crypto/rand"
	"strings"
)

// Bounds of the code length, in digits.
const (
	MinCodeLength = 6
	MaxCodeLength = 10
)

// newCode returns n decimal digits drawn uniformly from crypto/rand.
func newCode(n int) string {
	out := make([]byte, n)
	var buf [32]byte
	i := 0
	for i < n {
		_, _ = rand.Read(buf[:]) // never fails (Go 1.24+)
		for _, b := range buf {
			// 250 is the largest multiple of 10 below 256: rejecting
			// bytes at or above it keeps every digit equally likely.
			if b >= 250 {
				continue
			}
			out[i] = '0' + b%10
			i++
			if i == n {
				break
			}
		}
	}
	return string(out)
}

// normalizeCode strips the separators people type or paste (spaces,
// dashes, dots) and reports whether what remains is exactly n digits.
func normalizeCode(s string, n int) (string, bool) {
	if len(s) > 64 {
		return "", false
	}
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '.', '\t', '\u00a0':
			return -1
		}
		return r
	}, s)
	if len(s) != n {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", false
		}
	}
	return s, true
}
