package fields

import (
	"errors"
	"regexp"
	"slices"
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
		"a[b][c][d][e][f][g][h]": "a b c d e f [g][h]", "a[01]": "a 01",
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

// rackModel is Rack 2.2's normalize_params transcribed with its regular
// expressions (for the fuzz test): the unfolded path of a name.
func rackModel(name string, depth int) []string {
	m := rackKeyRE.FindStringSubmatchIndex(name)
	if m == nil || depth == 100 {
		return nil // k is empty: Rack drops the name
	}
	k, after := name[m[2]:m[3]], name[m[1]:]
	switch {
	case after == "":
		return []string{k}
	case after == "[":
		return []string{name}
	case after == "[]":
		return []string{k, wildcard}
	}
	if c := rackArrayHashRE.FindStringSubmatch(after); c != nil {
		return append([]string{k, wildcard}, rackModel(c[1], depth+1)...)
	}
	if c := rackArrayRestRE.FindStringSubmatch(after); c != nil {
		return append([]string{k, wildcard}, rackModel(c[1], depth+1)...)
	}
	return append([]string{k}, rackModel(after, depth+1)...)
}

var (
	rackKeyRE       = regexp.MustCompile(`^[\[\]]*([^\[\]]+)\]*`)
	rackArrayHashRE = regexp.MustCompile(`^\[\]\[([^\[\]]+)\]$`)
	rackArrayRestRE = regexp.MustCompile(`^\[\](.+)$`)
	qsBracketsRE    = regexp.MustCompile(`(\[[^[\]]*])`)
)

// qsModel is qs's parseKeys and parseObject (depth 5) transcribed with
// its regular expression: the unfolded path of a name.
func qsModel(key string) []string {
	parent := key
	if loc := qsBracketsRE.FindStringIndex(key); loc != nil {
		parent = key[:loc[0]]
	}
	var keys []string
	if parent != "" {
		keys = append(keys, parent)
	}
	i := 0
	for _, g := range qsBracketsRE.FindAllStringIndex(key, -1) {
		if i == qsDepth {
			keys = append(keys, "["+key[g[0]:]+"]")
			break
		}
		i++
		keys = append(keys, key[g[0]:g[1]])
	}
	var out []string
	for j, root := range keys {
		if root == "[]" {
			if j == 0 {
				out = append(out, "0") // a top-level array, merged as index 0
			} else {
				out = append(out, wildcard)
			}
			continue
		}
		if len(root) >= 2 && root[0] == '[' && root[len(root)-1] == ']' {
			root = root[1 : len(root)-1]
		}
		out = append(out, root)
	}
	return out
}

// FuzzNames: the Rack 2 and qs readings are those parsers' own
// algorithms (transcribed from their regular expressions), TopNames is
// each reading's first step, and clash is symmetric.
func FuzzNames(f *testing.F) {
	for _, s := range bracketSpellings {
		f.Add(s, "amount")
	}
	for _, s := range []string{"[_method]", "_method]", "]_method", "[[_method]]", "a]b", "a[b]c", "a[][b]", "a[]b", "a[b[", "amount[",
		"a[b]x[c]", "a[b][c][d][e][f][g][h]", "[]", "]]", "[ ]", "a[01]", "user[phone]", "[user][phone]", "a.b[c]", " .method[x]"} {
		f.Add(s, "_method")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, name := range []string{a, b} {
			if got, want := rackPath(name), foldAll(rackModel(name, 0)); !slices.Equal(got, want) {
				t.Fatalf("rackPath(%q) = %q, Rack 2 reads %q", name, got, want)
			}
			if name != "" {
				if got, want := qsPath(name), foldAll(qsModel(name)); !slices.Equal(got, want) {
					t.Fatalf("qsPath(%q) = %q, qs reads %q", name, got, want)
				}
			}
			top, p := TopNames(name), readName(name)
			for i, r := range []int{plainReading, bracketReading, rackReading, qsReading} {
				var want string
				if len(p[r]) > 0 {
					want = p[r][0]
				}
				if fold(top[i]) != want {
					t.Fatalf("TopNames(%q)[%d] = %q, the reading starts %q", name, i, top[i], want)
				}
			}
		}
		pa, pb := readName(a), readName(b)
		if clash(&pa, &pb) != clash(&pb, &pa) {
			t.Fatalf("clash(%q, %q) is not symmetric", a, b)
		}
	})
}

func foldAll(segs []string) []string {
	var out []string
	for _, s := range segs {
		if s != wildcard {
			s = fold(s)
		}
		out = append(out, s)
	}
	return out
}

// Spring's data binder reads "!amount" as amount's default (R3-4):
// "merchant=ACME&!amount=9999" binds 9999, so it is amount's field,
// refused beside amount and alone (never shown as "?"), in any case of
// its first letter. "_amount" (Spring's field marker) only empties an
// absent amount, and is not read as it.
func TestSpringFieldDefaultRefused(t *testing.T) {
	for _, s := range []string{"!amount", "!Amount", "%21amount", "!AMOUNT", "!amount[0]"} {
		for name, q := range map[string]req{
			"form alone":  {ctype: form, body: "merchant=ACME&" + s + "=9999"},
			"form beside": {ctype: form, body: "amount=1&merchant=ACME&" + s + "=9999"},
			"multipart":   {ctype: mpct, body: mp(field("merchant", "ACME"), field(strings.ReplaceAll(s, "%21", "!"), "9999"))},
			"query":       {query: "merchant=ACME&" + s + "=9999"},
		} {
			ref := "{form.amount}"
			if name == "query" {
				ref = "{query.amount}"
			}
			r, body := q.build(t)
			if v, ok, err := NewReader(r, body).Value(mustRef(t, ref)); !errors.Is(err, ErrAmbiguous) {
				t.Errorf("%s %q: Value = %q, %v, %v; want ErrAmbiguous", name, s, v, ok, err)
			}
		}
	}
	r, body := req{ctype: form, body: "amount=1&!merchant=EVIL+Corp"}.build(t)
	if v, ok, err := NewReader(r, body).Value(mustRef(t, "{form.merchant}")); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("!merchant: Value = %q, %v, %v; want ErrAmbiguous", v, ok, err)
	}
	for _, body := range []string{"amount=1&_amount=on", "amount=1&!!amount=9", "amount=1&x!amount=9", "amount=1&!amounts=9"} {
		r, b := req{ctype: form, body: body}.build(t)
		if v, ok, err := NewReader(r, b).Value(mustRef(t, "{form.amount}")); err != nil || !ok || v != "1" {
			t.Errorf("%q: Value = %q, %v, %v; want 1", body, v, ok, err)
		}
	}
}

// TopKeys gives every top-level key an app files a name under, for the
// query matchers (R3-2).
func TestTopKeys(t *testing.T) {
	for _, name := range []string{"action", "action\x00x", " action", "[action]", "action]", "]action", "[[action]]",
		"action[]", "action[x]", "!action", "!Action", "action.x", "ACTION", "Action"} {
		if keys := TopKeys(name); !slices.Contains(keys, "action") {
			t.Errorf("TopKeys(%q) = %q, want action among them", name, keys)
		}
	}
	for _, name := range []string{"xaction", "action_x", "x[action]", "!!action", "action\x01", "actions"} {
		if keys := TopKeys(name); slices.Contains(keys, "action") {
			t.Errorf("TopKeys(%q) = %q, want no action", name, keys)
		}
	}
	if keys := TopKeys("[]"); slices.Contains(keys, "") {
		t.Errorf("TopKeys([]) = %q", keys)
	}
}
