package stepup

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup/identity"
	"github.com/caddy-stepup/caddy-stepup/stepup/page"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// WithDefaults fills every default once; applying it again changes
// nothing (a limit switched off stays off).
func TestConfigWithDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := Config{Secret: testSecret, Limits: Limits{PerIP: store.Limit{Rate: -1},
		PerCountry: map[int]store.Limit{91: {Rate: 5, Period: time.Hour}}}}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"PathPrefix": DefaultPathPrefix, "CodeLength": DefaultCodeLength, "CodeTTL": DefaultCodeTTL,
		"MaxAttempts": DefaultMaxAttempts, "ResendAfter": DefaultResendAfter, "MaxSends": DefaultMaxSends,
		"MaxFailures": DefaultMaxFailures, "FailureWindow": DefaultFailureWindow, "Retain": DefaultRetain,
		"SendTimeout": DefaultSendTimeout, "MaxBody": DefaultMaxBody, "Message": page.DefaultMessage,
	}
	v := reflect.ValueOf(cfg)
	for field, w := range want {
		if got := v.FieldByName(field).Interface(); got != w {
			t.Errorf("%s = %v, want %v", field, got, w)
		}
	}
	if !cfg.Limits.PerIP.Off() || cfg.Limits.PerUser != DefaultPerUser || cfg.Limits.PerCountry[91].Burst != 5 {
		t.Errorf("limits = %+v", cfg.Limits)
	}
	again, err := cfg.WithDefaults()
	if err != nil || !reflect.DeepEqual(again, cfg) {
		t.Errorf("WithDefaults twice changed the config: %v\n%+v\n%+v", err, cfg, again)
	}
}

// The bounds the JSON configuration used to skip, held by the engine for
// every caller, each error naming the option and its range.
func TestConfigBoundsNameOptionAndRange(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		mutate func(*Config)
		want   string
	}{
		"failure_window 1ns":  {func(c *Config) { c.FailureWindow = 1 }, "failure_window 1ns out of range (1m to 30d)"},
		"failure_window long": {func(c *Config) { c.FailureWindow = 31 * 24 * time.Hour }, "failure_window 744h0m0s out of range (1m to 30d)"},
		"send_timeout 1ns":    {func(c *Config) { c.SendTimeout = 1 }, "send_timeout 1ns out of range (1s to 2m)"},
		"send_timeout long":   {func(c *Config) { c.SendTimeout = time.Hour }, "send_timeout 1h0m0s out of range (1s to 2m)"},
		"negative ttl":        {func(c *Config) { c.CodeTTL = -time.Minute }, "code_ttl -1m0s out of range (30s to 10m)"},
		"retain":              {func(c *Config) { c.Retain = time.Second }, "retain 1s out of range (1m to 24h)"},
		"max_sends":           {func(c *Config) { c.MaxSends = 11 }, "max_sends 11 out of range (1 to 10)"},
		"max_body":            {func(c *Config) { c.MaxBody = 33 << 20 }, "max_body 33 MiB out of range (1 byte to 32 MiB)"},
		"max_body negative":   {func(c *Config) { c.MaxBody = -5 }, "max_body -5 bytes out of range (1 byte to 32 MiB)"},
		"resend vs ttl":       {func(c *Config) { c.CodeTTL = time.Minute; c.ResendAfter = time.Minute }, "resend_after 1m0s must be shorter than code_ttl 1m0s"},
		"default_region UK":   {func(c *Config) { c.DefaultRegion = "UK" }, `default_region: sender: "UK" is not an ISO 3166-1 alpha-2 region with phone numbers (the United Kingdom is GB)`},
		"default_region 001":  {func(c *Config) { c.DefaultRegion = "001" }, `default_region: sender: "001" is not`},
		"limit rate":          {func(c *Config) { c.Limits.PerUser = store.Limit{Rate: 2_000_000, Period: time.Hour} }, "limits per_user: count 2000000 out of range (1 to 1000000)"},
		"limit no period":     {func(c *Config) { c.Limits.Global = store.Limit{Rate: 10} }, "limits global: period 0s out of range (1s to 31d)"},
		"limit long period":   {func(c *Config) { c.Limits.PerNumber = store.Limit{Rate: 1, Period: 40 * 24 * time.Hour} }, "limits per_number: period 960h0m0s out of range (1s to 31d)"},
		"country code":        {func(c *Config) { c.Limits.PerCountry = map[int]store.Limit{999: {Rate: 1, Period: time.Hour}} }, "limits per_country: +999 is not a country calling code"},
		"country limit":       {func(c *Config) { c.Limits.PerCountry = map[int]store.Limit{91: {Rate: 1, Period: time.Millisecond}} }, "limits per_country +91: period 1ms out of range (1s to 31d)"},
		"phone rules":         {func(c *Config) { c.PhoneRules = sender.PhoneRules{Deny: []string{"UK"}} }, `deny_countries: sender: "UK" is not`},
	} {
		c := Config{Secret: testSecret}
		tc.mutate(&c)
		_, err := c.WithDefaults()
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
		if _, err := New(c, nil, Options{Store: store.NewMemory(0), Identity: &identity.Header{}, Sender: &outbox{}}); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
	// Lower-case regions are fine and come out upper-case.
	if c, err := (Config{DefaultRegion: "gb"}).WithDefaults(); err != nil || c.DefaultRegion != "GB" {
		t.Errorf("default_region gb: %v, %q", err, c.DefaultRegion)
	}
}

func TestBoundCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want string
	}{
		{Bound[int]{"n", 1, 5}.Check(3), ""},
		{Bound[int]{"n", 1, 5}.Check(1), ""},
		{Bound[int]{"n", 1, 5}.Check(5), ""},
		{Bound[int]{"n", 1, 5}.Check(6), "n 6 out of range (1 to 5)"},
		{Bound[time.Duration]{"d", 10 * time.Millisecond, 90 * time.Second}.Check(time.Hour), "d 1h0m0s out of range (10ms to 90s)"},
		{Bound[time.Duration]{"d", time.Minute, 7 * 24 * time.Hour}.Check(0), "d 0s out of range (1m to 7d)"},
		{Bound[time.Duration]{"d", 1500 * time.Millisecond, 24 * time.Hour}.Check(0), "d 0s out of range (1500ms to 24h)"},
		{Bound[int64]{"max_body", 1 << 10, 1536}.Check(1), "max_body 1 byte out of range (1 KiB to 1536 bytes)"},
		{Bound[int64]{"other", 1, 1 << 20}.Check(0), "other 0 out of range (1 to 1048576)"},
	} {
		got := ""
		if tc.err != nil {
			got = tc.err.Error()
		}
		if got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestAssertionTTLBound(t *testing.T) {
	t.Parallel()
	key := []byte(strings.Repeat("k", 32))
	for _, ttl := range []time.Duration{-time.Second, time.Millisecond, 2 * time.Hour} {
		if _, err := NewHS256Assertion(Assertion{TTL: ttl}, key); err == nil || !strings.Contains(err.Error(), "assertion ttl") {
			t.Errorf("TTL %s: %v", ttl, err)
		}
	}
	a, err := NewHS256Assertion(Assertion{}, key)
	if err != nil || a.TTL != time.Minute {
		t.Errorf("default TTL: %v, %v", err, a)
	}
}
