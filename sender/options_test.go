package sender

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestOptionsValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		o    Options
		want string
	}{
		{"empty", Options{}, ""},
		{"every option", Options{Name: "sms-in", CountryCodes: []string{"in", "001"}, SendTimeout: Duration(MaxTimeout), MaxAttempts: 5}, ""},
		{"shortest timeout", Options{SendTimeout: Duration(MinTimeout)}, ""},
		{"bad region", Options{CountryCodes: []string{"India"}}, "twilio sender: countries: "},
		{"timeout too short", Options{SendTimeout: Duration(MinTimeout - 1)}, "twilio sender: timeout 99.999999ms out of range (100ms to 2m0s)"},
		{"timeout too long", Options{SendTimeout: Duration(MaxTimeout + 1)}, "out of range"},
		{"negative timeout", Options{SendTimeout: -1}, "out of range"},
		{"negative attempts", Options{MaxAttempts: -1}, "attempts"},
	} {
		err := tt.o.Validate("twilio")
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
}

// Options read the JSON the Caddy modules always had: a timeout as
// nanoseconds or as a duration string, written back as nanoseconds.
func TestOptionsJSON(t *testing.T) {
	for in, want := range map[string]time.Duration{
		`{"timeout":4000000000}`: 4 * time.Second,
		`{"timeout":"4s"}`:       4 * time.Second,
		`{"timeout":"1m30s"}`:    90 * time.Second,
		`{"timeout": 5e8 }`:      0, // not an integer: an error
		`{"timeout":"soon"}`:     0,
		`{"timeout":true}`:       0,
	} {
		var o Options
		err := json.Unmarshal([]byte(in), &o)
		if want == 0 {
			if err == nil {
				t.Errorf("%s: read as %v, want an error", in, time.Duration(o.SendTimeout))
			}
			continue
		}
		if err != nil || o.Timeout() != want {
			t.Errorf("%s: %v, %v; want %v", in, o.Timeout(), err, want)
		}
	}
	o := Options{Name: "a", CountryCodes: []string{"IN"}, SendTimeout: Duration(4 * time.Second), MaxAttempts: 2}
	b, err := json.Marshal(o)
	if want := `{"name":"a","countries":["IN"],"timeout":4000000000}`; err != nil || string(b) != want {
		t.Errorf("Marshal = %s, %v; want %s", b, err, want)
	}
	if got := o.Countries(); len(got) != 1 || got[0] != "IN" {
		t.Errorf("Countries = %v", got)
	}
}
