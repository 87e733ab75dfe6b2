package fields

import (
	"errors"
	"strings"
	"testing"
)

// bracketSpellings are names that Rack 2 (normalize_params, Rails <= 7.0,
// Sinatra 2 and 3) or qs (Express) reads as "amount".
var bracketSpellings = []string{"[amount]", "]amount", "[[amount]]", "amount]", "[amount", "[]amount", "]]amount]]", "[amount]]", "]amount]"}

func TestRackPath(t *testing.T) {
	for name, want := range map[string]string{
		"amount": "amount", "[amount]": "amount", "]amount": "amount", "[[amount]]": "amount", "amount]": "amount",
		"[amount": "amount", "[]amount": "amount", "]]amount]]": "amount", "Amount": "amount",
		"user[phone]": "user phone", "[user][phone]": "user phone", "user]phone": "user phone", "a[b]c": "a b c",
		"a[]": "a \x00", "a[][b]": "a \x00 b", "a[]b": "a \x00 b", "amount[": "amount[", "a[b[": "a [b[",
		"[]": "", "]]": "", "": "",
	} {
		if got := strings.Join(rackPath(name), " "); got != fold(want) {
			t.Errorf("rackPath(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestQSPath(t *testing.T) {
	for name, want := range map[string]string{
		"amount": "amount", "[amount]": "amount", "[amount]]": "amount", "[[amount]]": "[ amount", "amount]": "amount]",
		"[amount": "[amount", "]amount": "]amount", "a[b][c]": "a b c", "a[b]x[c]": "a b c", "a[]": "a \x00", "[]": "0",
		"a[b][c][d][e][f][g][h]": "a b c d e f [g][h]", "a[01]": "a 1",
	} {
		if got := strings.Join(qsPath(name), " "); got != fold(want) {
			t.Errorf("qsPath(%q) = %q, want %q", name, got, want)
		}
	}
}

// TopNames is each reading's first segment, unfolded: the method
// override and the references read one name alike.
func TestTopNames(t *testing.T) {
	for _, name := range []string{"_method", "[_method]", "_method]", "]_method", "[[_method]]", "[]_method", "_method[x]",
		" .method", "_method\x00x", "[x]_method", "x[_method]", "_method[", "a]b", "[]", "]]", "a[b]x[c]"} {
		top := TopNames(name)
		p := readName(name)
		for i, r := range []int{plainReading, bracketReading, rackReading, qsReading} {
			var want string
			if len(p[r]) > 0 {
				want = p[r][0]
			}
			if fold(top[i]) != want {
				t.Errorf("TopNames(%q)[%d] = %q, readName's path starts %q", name, i, top[i], want)
			}
		}
	}
	for name, want := range map[string]bool{
		"_method": true, "[_method]": true, "_method]": true, "]_method": true, "[[_method]]": true, "[]_method": true, "]]_method]]": true,
		"[_method": true, ".method": true, "_method[x]": true,
		"_METHOD": false, "[x]_method": false, "x[_method]": false, "_method[": false, "[]": false, "": false,
	} {
		if got := HasTopName(name, "_method"); got != want {
			t.Errorf("HasTopName(%q, _method) = %v", name, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = HasTopName("[_method]", "_method") }); n != 0 {
		t.Errorf("HasTopName allocates %v times", n)
	}
}

// Every spelling Rack 2 or qs reads as amount is refused beside amount,
// and alone, in every source that reads names: an urlencoded body, a
// multipart body, the query (as the field and beside a body field), and
// as a JSON key.
func TestBracketSpellingsRefused(t *testing.T) {
	for _, s := range bracketSpellings {
		enc := strings.NewReplacer("[", "%5B", "]", "%5D").Replace(s)
		for name, c := range map[string]struct {
			q   req
			ref string
		}{
			"form beside":       {req{ctype: form, body: "amount=1&merchant=ACME&" + s + "=9999"}, "{form.amount}"},
			"form before":       {req{ctype: form, body: s + "=9999&amount=1"}, "{form.amount}"},
			"form alone":        {req{ctype: form, body: s + "=9999&merchant=ACME"}, "{form.amount}"},
			"form escaped":      {req{ctype: form, body: "amount=1&" + enc + "=9999"}, "{form.amount}"},
			"multipart beside":  {req{ctype: mpct, body: mp(field("amount", "1"), field(s, "9999"))}, "{form.amount}"},
			"multipart alone":   {req{ctype: mpct, body: mp(field(s, "9999"), field("merchant", "ACME"))}, "{form.amount}"},
			"query beside":      {req{query: "amount=1&" + enc + "=9999"}, "{query.amount}"},
			"query alone":       {req{query: s + "=9999"}, "{query.amount}"},
			"query, form ref":   {req{ctype: form, query: enc + "=9999", body: "amount=1"}, "{form.amount}"},
			"body, query ref":   {req{ctype: form, query: "amount=1", body: enc + "=9999"}, "{query.amount}"},
			"json key beside":   {req{ctype: js, body: `{"amount":"1","` + s + `":"9999"}`}, "{json.amount}"},
			"json key alone":    {req{ctype: js, body: `{"` + s + `":"9999"}`}, "{json.amount}"},
			"json key, nested":  {req{ctype: js, body: `{"order":{"amount":"1","` + s + `":"9999"}}`}, "{json.order.amount}"},
			"json ref, query":   {req{ctype: js, query: enc + "=9999", body: `{"amount":"1"}`}, "{json.amount}"},
			"identity, phone":   {req{ctype: form, body: "phone=%2B14155550177&name=newuser&" + strings.ReplaceAll(enc, "amount", "phone") + "=%2B14155550999"}, "{form.phone}"},
			"nested form field": {req{ctype: form, body: "user[amount]=1&user" + strings.NewReplacer("amount", "[amount]").Replace(s) + "=9999"}, "{form.user[amount]}"},
		} {
			if name == "nested form field" && !strings.HasPrefix(s, "[") {
				continue // "user" + "]amount" is not a nested spelling
			}
			r, body := c.q.build(t)
			v, ok, err := NewReader(r, body).Value(mustRef(t, c.ref))
			if !errors.Is(err, ErrAmbiguous) {
				t.Errorf("%s %q: Value = %q, %v, %v; want ErrAmbiguous", name, s, v, ok, err)
			}
		}
	}
}
