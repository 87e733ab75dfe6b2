package fields

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
)

func TestSpringHeaderName(t *testing.T) {
	for in, want := range map[string]string{
		"Amount": "amount", "Pay-To": "payTo", "X-Remote-User": "xRemoteUser", "amount": "amount",
		"!Amount": "!Amount", "_method": "_method", "": "", "-A-": "a",
	} {
		if got := SpringHeaderName(in); got != want {
			t.Errorf("SpringHeaderName(%q) = %q, want %q", in, got, want)
		}
	}
}

// The names Params.Elsewhere finds in cookies and headers, and those it
// leaves alone (R4-7, R4-8).
func TestParamsElsewhere(t *testing.T) {
	plain := NewParams("amount", "pay_to", "user[phone]")
	remembering := NewParams("amount", "pay_to", "user[phone]").Remembering()
	// The remembering set answers as the plain one, the first time and
	// from its memory (each case runs twice).
	for _, ps := range []*Params{plain, remembering, remembering} {
		testParamsElsewhere(t, ps)
	}
}

func testParamsElsewhere(t *testing.T, ps *Params) {
	for _, tc := range []struct {
		cookie string
		header map[string]string
		want   int
		where  string
	}{
		{cookie: "amount=9999", want: 0, where: InCookie},
		{cookie: "session=1; AMOUNT=9999", want: 0, where: InCookie},
		{cookie: "a=1,amount=9999", want: 0, where: InCookie},
		{cookie: " amount[]=1", want: 0, where: InCookie},
		{cookie: "%61mount=1", want: 0, where: InCookie},
		{cookie: "pay.to=EVIL", want: 1, where: InCookie},
		{cookie: "pay to=EVIL", want: 1, where: InCookie},
		{cookie: "user[email]=x", want: 2, where: InCookie},
		{cookie: "amountx=1; xamount=2; amount_=3; session=amount", want: -1},
		{header: map[string]string{"Amount": "9999"}, want: 0, where: InHeader},
		{header: map[string]string{"Pay_to": "EVIL"}, want: 1, where: InHeader},
		{header: map[string]string{"User": "x"}, want: 2, where: InHeader},
		{header: map[string]string{"!amount": "9999"}, want: 0, where: InHeader},
		{header: map[string]string{"X-Amount": "9999", "Amount-X": "1", "Payto": "1"}, want: -1},
		// Headers stepup reads, or that carry the transport: never.
		{header: map[string]string{"Cookie": "x=1", "Authorization": "amount", "Content-Type": "text/plain",
			"X-Forwarded-For": "1", "Connection": "close", "Stepup-Grant": "x", "Origin": "o", "Sec-Fetch-Site": "same-origin"}, want: -1},
	} {
		r, _ := http.NewRequest("POST", "/", nil)
		if tc.cookie != "" {
			r.Header.Set("Cookie", tc.cookie)
		}
		for k, v := range tc.header {
			r.Header[k] = []string{v}
		}
		i, where := ps.Elsewhere(r)
		if i != tc.want || where != tc.where {
			t.Errorf("cookie %q, headers %v: Elsewhere = %d %q, want %d %q", tc.cookie, tc.header, i, where, tc.want, tc.where)
		}
	}
}

// A template refuses a described field (a JSON path's first step) found
// in a cookie or header, naming the reference and never the value.
func TestTemplateElsewhere(t *testing.T) {
	tp, err := ParseTemplate("Pay {json.order.amount} to {form.merchant}")
	if err != nil {
		t.Fatal(err)
	}
	r, _ := http.NewRequest("POST", "/", strings.NewReader(`{"order":{"amount":"1"}}`))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Cookie", "Order=9999")
	_, err = tp.Render(r, []byte(`{"order":{"amount":"1"}}`))
	if err == nil || !strings.Contains(err.Error(), "{json.order.amount}") || !strings.Contains(err.Error(), "cookie") || strings.Contains(err.Error(), "9999") {
		t.Fatalf("Render = %v", err)
	}
	r.Header.Del("Cookie")
	r.Header.Set("Merchant", "EVIL")
	if err := tp.Elsewhere(r); err == nil || !strings.Contains(err.Error(), "{form.merchant}") || !strings.Contains(err.Error(), "header") {
		t.Fatalf("Elsewhere = %v", err)
	}
}

// FuzzParamsElsewhere: any cookie Go's parser finds, and any header, whose
// name is the described field's in any case is found.
func FuzzParamsElsewhere(f *testing.F) {
	for _, s := range []string{"amount=9999", "a=1; Amount=2", "a=1,amount=2", "amount", `amount="9999"`, "%61mount=1",
		" amount =1", "a=1;;amount=2", "am%00ount=1", "x=amount=1"} {
		f.Add(s, "Amount")
	}
	f.Add("session=1", "Pay-To")
	f.Add("", "AMOUNT")
	ps := NewParams("amount")
	remembering := NewParams("amount", "_method").Remembering()
	plain := NewParams("amount", "_method")
	f.Fuzz(func(t *testing.T, cookie, header string) {
		r, _ := http.NewRequest("POST", "/", nil)
		r.Header["Cookie"] = []string{cookie}
		r.Header[header] = []string{"1"}
		// Remembering changes nothing of the answer.
		for range 2 {
			i, where := remembering.Elsewhere(r)
			if j, w := plain.Elsewhere(r); i != j || where != w {
				t.Fatalf("cookie %q, header %q: remembering %d %q, plain %d %q", cookie, header, i, where, j, w)
			}
		}
		delete(r.Header, header)
		for _, c := range r.Cookies() {
			if strings.EqualFold(c.Name, "amount") {
				if i, _ := ps.Elsewhere(r); i != 0 {
					t.Fatalf("cookie %q: amount not found", cookie)
				}
			}
		}
		r.Header = http.Header{header: {"9999"}}
		if strings.EqualFold(strings.ReplaceAll(header, "-", ""), "amount") {
			if i, where := ps.Elsewhere(r); i != 0 || where != InHeader {
				t.Fatalf("header %q: amount not found", header)
			}
		}
	})
}

// A remembering set keeps at most nameMemoMax names, whatever names the
// clients send, and still answers right past the bound.
func TestParamsRememberingBounded(t *testing.T) {
	ps := NewParams("_method").Remembering()
	r, _ := http.NewRequest("GET", "/", nil)
	for i := range 3 * nameMemoMax {
		r.Header = http.Header{"Cookie": {"c" + strconv.Itoa(i) + "=1"}, "X-H" + strconv.Itoa(i): {"1"}}
		if j, _ := ps.Elsewhere(r); j != -1 {
			t.Fatalf("request %d: found %d", i, j)
		}
		if n := len(ps.memo.cookies) + len(ps.memo.headers); n > nameMemoMax {
			t.Fatalf("remembers %d names, bound %d", n, nameMemoMax)
		}
	}
	r.Header = http.Header{"Cookie": {"%5Fmethod=PUT"}}
	if j, where := ps.Elsewhere(r); j != 0 || where != InCookie {
		t.Fatalf("past the bound: %d %q", j, where)
	}
	r.Header = http.Header{"_method": {"PUT"}}
	if j, where := ps.Elsewhere(r); j != 0 || where != InHeader {
		t.Fatalf("past the bound: %d %q", j, where)
	}
}
