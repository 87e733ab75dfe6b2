package sender

import (
	"encoding/base64"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The example of the Standard Webhooks specification and its reference
// libraries: secret, message id, timestamp, body and signature.
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specBody      = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSpecVector(t *testing.T) {
	key, err := ParseWebhookSecret(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := SignWebhook(key, specID, time.Unix(specTimestamp, 0), []byte(specBody)); got != specSignature {
		t.Errorf("SignWebhook = %q, want %q", got, specSignature)
	}
	ts := strconv.Itoa(specTimestamp)
	now := time.Unix(specTimestamp+60, 0)
	if err := VerifyWebhook(key, specID, ts, specSignature, []byte(specBody), now, 0); err != nil {
		t.Errorf("VerifyWebhook of the specification's example: %v", err)
	}
}

func TestParseWebhookSecret(t *testing.T) {
	key24 := []byte("0123456789abcdefghijklmn")
	tests := []struct {
		in      string
		want    []byte
		wantErr bool
	}{
		{"whsec_" + base64.StdEncoding.EncodeToString(key24), key24, false},
		{" whsec_" + base64.StdEncoding.EncodeToString(key24) + "\n", key24, false},
		{"whsec_" + base64.RawStdEncoding.EncodeToString(key24[:23]), nil, true},
		{"whsec_" + base64.RawStdEncoding.EncodeToString(append(key24, 'o')), append(key24, 'o'), false},
		{"whsec_" + base64.URLEncoding.EncodeToString([]byte("\xfb\xff\xfe0123456789abcdefghijklmn")), nil, true},
		{"whsec_", nil, true},
		{"WHSEC_" + base64.StdEncoding.EncodeToString(key24), nil, true},
		{base64.StdEncoding.EncodeToString(key24), nil, true},
		{"", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseWebhookSecret(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseWebhookSecret(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if string(got) != string(tt.want) {
			t.Errorf("ParseWebhookSecret(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestVerifyWebhook(t *testing.T) {
	key, err := ParseWebhookSecret(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(specTimestamp, 0)
	ts := strconv.Itoa(specTimestamp)
	other := SignWebhook([]byte("another key of twenty-four bytes"), specID, now, []byte(specBody))
	tests := []struct {
		name      string
		key       []byte
		id, ts    string
		sig, body string
		now       time.Time
		tolerance time.Duration
		want      error
	}{
		{"valid", key, specID, ts, specSignature, specBody, now, 0, nil},
		{"one of several", key, specID, ts, other + " v1a,xyz " + specSignature, specBody, now, 0, nil},
		{"4m59s late", key, specID, ts, specSignature, specBody, now.Add(299 * time.Second), 0, nil},
		{"5m early", key, specID, ts, specSignature, specBody, now.Add(-300 * time.Second), 0, nil},
		{"5m01s late", key, specID, ts, specSignature, specBody, now.Add(301 * time.Second), 0, ErrWebhookTimestamp},
		{"5m01s early", key, specID, ts, specSignature, specBody, now.Add(-301 * time.Second), 0, ErrWebhookTimestamp},
		{"narrow tolerance", key, specID, ts, specSignature, specBody, now.Add(11 * time.Second), 10 * time.Second, ErrWebhookTimestamp},
		{"wide tolerance", key, specID, ts, specSignature, specBody, now.Add(time.Hour), 2 * time.Hour, nil},
		{"timestamp not a number", key, specID, "1614265330.0", specSignature, specBody, now, 0, ErrWebhookTimestamp},
		{"timestamp empty", key, specID, "", specSignature, specBody, now, 0, ErrWebhookTimestamp},
		{"timestamp in the distant past", key, specID, "-9223372036854775808", specSignature, specBody, now, 0, ErrWebhookTimestamp},
		{"wrong key", []byte("another key of twenty-four bytes"), specID, ts, specSignature, specBody, now, 0, ErrWebhookSignature},
		{"no key", nil, specID, ts, specSignature, specBody, now, 0, ErrWebhookSignature},
		{"other id", key, "msg_other", ts, specSignature, specBody, now, 0, ErrWebhookSignature},
		{"other body", key, specID, ts, specSignature, `{"test": 2432232315}`, now, 0, ErrWebhookSignature},
		{"other version", key, specID, ts, "v2," + strings.TrimPrefix(specSignature, "v1,"), specBody, now, 0, ErrWebhookSignature},
		{"no version", key, specID, ts, strings.TrimPrefix(specSignature, "v1,"), specBody, now, 0, ErrWebhookSignature},
		{"truncated", key, specID, ts, specSignature[:len(specSignature)-2], specBody, now, 0, ErrWebhookSignature},
		{"url base64", key, specID, ts, strings.NewReplacer("+", "-", "/", "_").Replace(specSignature), specBody, now, 0, ErrWebhookSignature},
		{"empty header", key, specID, ts, "", specBody, now, 0, ErrWebhookSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyWebhook(tt.key, tt.id, tt.ts, tt.sig, []byte(tt.body), tt.now, tt.tolerance)
			if !errors.Is(err, tt.want) {
				t.Errorf("VerifyWebhook = %v, want %v", err, tt.want)
			}
		})
	}
}

func FuzzVerifyWebhook(f *testing.F) {
	f.Add([]byte("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), specID, int64(specTimestamp), []byte(specBody), specSignature, "1614265330", int64(0))
	f.Add([]byte{0}, "", int64(0), []byte{}, "", "", int64(-1))
	f.Add([]byte("k"), "msg_a.b", int64(-62135596800), []byte("\x00\xff"), "v1,AAAA v1,", "+1", int64(math.MaxInt64))
	f.Add([]byte("key"), "id", int64(math.MinInt64), []byte("body"), "v1,====", "-9223372036854775808", int64(300e9))
	f.Fuzz(func(t *testing.T, key []byte, id string, sec int64, body []byte, header, timestamp string, tolerance int64) {
		now := time.Unix(sec, 0)
		// Arbitrary input never panics.
		_ = VerifyWebhook(key, id, timestamp, header, body, now, time.Duration(tolerance))
		if len(key) == 0 {
			return
		}
		// What SignWebhook signs verifies, alone or among other signatures.
		sig := SignWebhook(key, id, now, body)
		ts := strconv.FormatInt(sec, 10)
		for _, h := range []string{sig, header + " " + sig, sig + " " + header} {
			if err := VerifyWebhook(key, id, ts, h, body, now, time.Duration(tolerance)); err != nil {
				t.Fatalf("VerifyWebhook of a SignWebhook signature in %q: %v", h, err)
			}
		}
		// And nothing else: not another body.
		if err := VerifyWebhook(key, id, ts, sig, append(body, 0), now, 0); !errors.Is(err, ErrWebhookSignature) {
			t.Fatalf("signature verifies a longer body: %v", err)
		}
	})
}
