package fields

import "testing"

// BodyKindOf is the one rule for how apps may read a body, told from its
// Content-Type text (R3-1: Laravel's isJson() looks at the whole header).
func TestBodyKindOf(t *testing.T) {
	for _, tc := range []struct {
		ct   []string
		want BodyKind
	}{
		{nil, BodyUntyped},
		{[]string{""}, BodyUntyped},
		{[]string{"  "}, BodyUntyped},
		{[]string{"text/plain"}, BodyNone},
		{[]string{"application/octet-stream; x=y"}, BodyNone},
		{[]string{"application/x-www-form-urlencodedx"}, BodyNone},
		{[]string{"application/x-www-form-urlencoded"}, BodyForm},
		{[]string{"Application/X-WWW-Form-Urlencoded ; charset=utf-8"}, BodyForm},
		{[]string{"multipart/form-data; boundary=XX"}, BodyMultipart},
		{[]string{"multipart/mixed; boundary=XX"}, BodyMultipart},
		{[]string{"application/json"}, BodyJSON},
		{[]string{"text/json"}, BodyJSON},
		{[]string{"text/x-json"}, BodyJSON},
		{[]string{"application/vnd.api+JSON"}, BodyJSON},
		{[]string{"text/plain; v=+json"}, BodyJSON},
		{[]string{"application/octet-stream; x=\"a/json\""}, BodyJSON},
		{[]string{"application/x-www-form-urlencoded;charset=utf-8;v=+json"}, BodyAmbiguous},
		{[]string{"application/x-www-form-urlencoded; charset=\"/json\""}, BodyAmbiguous},
		{[]string{"application/x-www-form-urlencoded; v=JSON"}, BodyAmbiguous},
		{[]string{"multipart/form-data; boundary=json"}, BodyAmbiguous},
		{[]string{"multipart/related; boundary=XX; type=\"application/json\""}, BodyAmbiguous},
		{[]string{"text/plain", "text/plain"}, BodyAmbiguous},
		{[]string{"form"}, BodyAmbiguous},
		{[]string{";"}, BodyAmbiguous},
		{[]string{"application/x-www-form-urlencoded,text/plain"}, BodyAmbiguous},
		{[]string{"application/x-www-form-urlencoded text/plain"}, BodyAmbiguous},
	} {
		got, why := BodyKindOf(tc.ct)
		if got != tc.want || (got == BodyAmbiguous) != (why != "") {
			t.Errorf("BodyKindOf(%q) = %v, %q; want %v", tc.ct, got, why, tc.want)
		}
	}
	ct := []string{"application/x-www-form-urlencoded; charset=utf-8"}
	if n := testing.AllocsPerRun(100, func() { _, _ = BodyKindOf(ct) }); n != 0 {
		t.Errorf("BodyKindOf allocates %v times", n)
	}
}
