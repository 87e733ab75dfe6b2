package logscan

import (
	"strings"
	"testing"
)

func TestStringsAndContainsToken(t *testing.T) {
	logs := `{"level":"info","ts":1795307252.123456,"msg":"code_sent","to":"+1******0100","request_id":"a123456b-x"}` + "\n" +
		`plain line with 654321 in it`
	s := Strings(logs)
	if strings.Contains(s, "1795307252") {
		t.Fatal("numbers (timestamps) must be left out")
	}
	if !strings.Contains(s, "code_sent") || !strings.Contains(s, "request_id") {
		t.Fatalf("keys and string values missing:\n%s", s)
	}
	if ContainsToken(s, "123456") {
		t.Fatal("a code glued inside an id is not a leak")
	}
	if !ContainsToken(s, "654321") {
		t.Fatal("a code between spaces is a leak")
	}
	if !ContainsToken("654321", "654321") || ContainsToken("x654321", "654321") {
		t.Fatal("edges")
	}
}
