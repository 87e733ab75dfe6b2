package caddymodule

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// baseJSON is the JSON equivalent of minimal.
const baseJSON = `{"secret":"0123456789abcdef0123456789abcdef",` +
	`"identity":{"source":"header","user":"X-Remote-User","phone":"X-Remote-Phone"},"senders":[{"sender":"log"}]}`

// provisionOver provisions a handler from the JSON of baseJSON with the
// fields of extra set over it, and returns Provision's error.
func provisionOver(t *testing.T, extra string) error {
	t.Helper()
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(baseJSON), &fields); err != nil {
		t.Fatal(err)
	}
	if extra != "" {
		var more map[string]json.RawMessage
		if err := json.Unmarshal([]byte("{"+extra+"}"), &more); err != nil {
			t.Fatalf("bad test JSON %q: %v", extra, err)
		}
		for k, v := range more {
			if string(v) == "null" {
				delete(fields, k)
				continue
			}
			fields[k] = v
		}
	}
	raw, _ := json.Marshal(fields)
	return provisionRaw(t, raw)
}

func provisionRaw(t *testing.T, raw []byte) error {
	t.Helper()
	var h Handler
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatalf("unmarshal %s: %v", raw, err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err := h.Provision(ctx)
	_ = h.Cleanup()
	return err
}

// Every bound holds for JSON and Caddyfile users alike, with the same
// words: each bad value goes through the Caddyfile parser (which either
// refuses it at its line, with the same text, or hands the value on and
// the JSON it adapts to is refused by Provision) and through the
// equivalent JSON provisioned directly.
func TestBoundsSameForJSONAndCaddyfile(t *testing.T) {
	redisURL := `"redis":{"url":"redis://127.0.0.1:1/0"`
	for _, tc := range []struct {
		name      string
		caddyfile string // lines in the minimal stepup block, or a whole stepup block
		json      string // fields over baseJSON (null removes one)
		want      string
	}{
		{"failure_window too short", "\tfailure_window 1ns", `"failure_window":"1ns"`, "failure_window 1ns out of range (1m to 30d)"},
		{"failure_window too long", "\tfailure_window 31d", `"failure_window":"31d"`, "failure_window 744h0m0s out of range (1m to 30d)"},
		{"send_timeout too short", "\tsend_timeout 1ns", `"send_timeout":1`, "send_timeout 1ns out of range (1s to 2m)"},
		{"send_timeout too long", "\tsend_timeout 5m", `"send_timeout":"5m"`, "send_timeout 5m0s out of range (1s to 2m)"},
		{"default_region UK", "\tdefault_region UK", `"default_region":"UK"`,
			`default_region: "UK" is not an ISO 3166-1 alpha-2 region code: did you mean GB (the United Kingdom)?`},
		{"default_region 001", "\tdefault_region 001", `"default_region":"001"`,
			`default_region: "001" holds the non-geographic numbers, which are always written in international form; give a region code such as GB, IN or US`},
		{"code_length", "\tcode_length 5", `"code_length":5`, "code_length 5 out of range (6 to 10)"},
		{"code_ttl", "\tcode_ttl 11m", `"code_ttl":"11m"`, "code_ttl 11m0s out of range (30s to 10m)"},
		{"max_attempts", "\tmax_attempts 11", `"max_attempts":11`, "max_attempts 11 out of range (1 to 10)"},
		{"max_sends over", "\tmax_sends 11", `"max_sends":11`, "max_sends 11 out of range (1 to 10)"},
		{"max_sends negative", "\tmax_sends -1", `"max_sends":-1`, "max_sends -1 out of range (1 to 10)"},
		{"max_failures", "\tmax_failures 101", `"max_failures":101`, "max_failures 101 out of range (1 to 100)"},
		{"passkeys max_per_user", "\tpasskeys {\n\t\trp_id shop.example\n\t\tmax_per_user 51\n\t}", `"passkeys":{"rp_id":"shop.example","max_per_user":51}`,
			"passkeys max_per_user 51 out of range (1 to 50)"},
		{"passkeys manage_window", "\tpasskeys {\n\t\trp_id shop.example\n\t\tmanage_window 2h\n\t}", `"passkeys":{"rp_id":"shop.example","manage_window":"2h"}`,
			"passkeys manage_window 2h0m0s out of range (1m to 1h)"},
		{"passkeys foreign origin", "\tpasskeys {\n\t\trp_id shop.example\n\t\torigins https://evil.example\n\t}", `"passkeys":{"rp_id":"shop.example","origins":["https://evil.example"]}`,
			`passkeys origin "https://evil.example": want https://HOST[:PORT] where HOST is shop.example or a subdomain of it (http only for localhost)`},
		{"resend_after bound", "\tresend_after 20m", `"resend_after":"20m"`, "resend_after 20m0s out of range (1s to 10m)"},
		{"resend_after not under code_ttl", "\tcode_ttl 1m\n\tresend_after 1m", `"code_ttl":"1m","resend_after":"1m"`,
			"resend_after 1m0s must be shorter than code_ttl 1m0s: a resend would come after the code expired"},
		{"max_body", "\tmax_body 64MiB", `"max_body":67108864`, "max_body 64 MiB out of range (1 byte to 32 MiB)"},
		{"path_prefix", "\tpath_prefix stepup", `"path_prefix":"stepup"`, `path_prefix "stepup" must start with '/' and not end with '/'`},
		{"message", "\tmessage hello", `"message":"hello"`, "message must contain {code}"},
		{"limit format", "\tlimits {\n\t\tper_ip lots\n\t}", `"limits":{"per_ip":"lots"}`,
			`limits per_ip: limit "lots": want COUNT/PERIOD such as 10/1h, or off`},
		{"limit period", "\tlimits {\n\t\tper_user 10/40d\n\t}", `"limits":{"per_user":"10/40d"}`,
			`limits per_user: limit "10/40d": period 960h0m0s out of range (1s to 31d)`},
		{"limit count", "\tlimits {\n\t\tglobal 0/h\n\t}", `"limits":{"global":"0/h"}`,
			`limits global: limit "0/h": count 0 out of range (1 to 1000000)`},
		{"limit country", "\tlimits {\n\t\tper_country Atlantis 1/h\n\t}", `"limits":{"per_country":{"Atlantis":"1/h"}}`,
			`limits per_country: "Atlantis" is not an ISO 3166-1 alpha-2 region code with phone numbers (such as GB, IN, US)`},
		{"limit country twice", "\tlimits {\n\t\tper_country IN 5/h\n\t\tper_country 91 6/h\n\t}", `"limits":{"per_country":{"IN":"5/h","91":"6/h"}}`,
			"limits per_country: 91 and IN are the same calling code (+91)"},
		{"pumping mode", "\tpumping {\n\t\tmode block\n\t}", `"pumping":{"mode":"block"}`, `pumping mode "block": want monitor, enforce or off`},
		{"pumping window", "\tpumping {\n\t\twindow 1m\n\t}", `"pumping":{"window":"1m"}`, "pumping window 1m0s out of range (10m to 7d)"},
		{"pumping min_sends", "\tpumping {\n\t\tmin_sends 2\n\t}", `"pumping":{"min_sends":2}`, "pumping min_sends 2 out of range (3 to 100000)"},
		{"pumping min_conversion", "\tpumping {\n\t\tmin_conversion 100%\n\t}", `"pumping":{"min_conversion":100}`,
			"pumping min_conversion 100 out of range (1 to 99)"},
		{"pumping block_for", "\tpumping {\n\t\tblock_for 31d\n\t}", `"pumping":{"block_for":"31d"}`, "pumping block_for 744h0m0s out of range (1m to 30d)"},
		{"pumping safe", "\tpumping {\n\t\tsafe 4477009\n\t}", `"pumping":{"safe":["4477009"]}`,
			`pumping safe: prefix "4477009": want + and digits, such as +44 or +4477009000`},
		{"allow_countries", "\tallow_countries IN Atlantis", `"allow_countries":["IN","Atlantis"]`,
			`allow_countries: "Atlantis" is not an ISO 3166-1 alpha-2 region code with phone numbers (such as GB, IN, US)`},
		{"deny_countries", "\tdeny_countries UK", `"deny_countries":["UK"]`,
			`deny_countries: "UK" is not an ISO 3166-1 alpha-2 region code: did you mean GB (the United Kingdom)?`},
		{"allow_number_types", "\tallow_number_types mobile satellite", `"allow_number_types":["mobile","satellite"]`,
			`allow_number_types: sender: unknown number type "satellite"`},
		{"secret", "\tsecret tooshort", `"secret":"tooshort"`,
			"secret is 8 bytes, need at least 32 (use a placeholder such as {env.STEPUP_SECRET})"},
		{"previous_secrets", "\tprevious_secrets abcdefghijklmnopqrstuvwxyz0123456789 short", `"previous_secrets":["abcdefghijklmnopqrstuvwxyz0123456789","short"]`,
			"previous_secrets 2 is 5 bytes, need at least 32 (use a placeholder such as {env.STEPUP_SECRET})"},
		{"redis pool_size", "\tredis redis://127.0.0.1:1/0 {\n\t\tpool_size 20000\n\t}", redisURL + `,"pool_size":20000}`,
			"redis pool_size 20000 out of range (1 to 10000)"},
		{"redis dial_timeout", "\tredis redis://127.0.0.1:1/0 {\n\t\tdial_timeout 1ns\n\t}", redisURL + `,"dial_timeout":"1ns"}`,
			"redis dial_timeout 1ns out of range (10ms to 1m)"},
		{"redis read_timeout", "\tredis redis://127.0.0.1:1/0 {\n\t\tread_timeout 2m\n\t}", redisURL + `,"read_timeout":"2m"}`,
			"redis read_timeout 2m0s out of range (10ms to 1m)"},
		{"redis write_timeout", "\tredis redis://127.0.0.1:1/0 {\n\t\twrite_timeout 1ns\n\t}", redisURL + `,"write_timeout":1}`,
			"redis write_timeout 1ns out of range (10ms to 1m)"},
		{"redis db", "\tredis redis://127.0.0.1:1/0 {\n\t\tdb 70000\n\t}", redisURL + `,"db":70000}`,
			"redis db 70000 out of range (0 to 65535)"},
		{"redis key_prefix", "\tredis redis://127.0.0.1:1/0 {\n\t\tkey_prefix shop{1}:\n\t}", redisURL + `,"key_prefix":"shop{1}:"}`,
			`redis key_prefix "shop{1}:": use 1 to 64 letters, digits and ':' '_' '-' '.' '/' (no braces: keys carry Redis Cluster hash tags)`},
		{"redis scheme", "\tredis http://127.0.0.1:6379", `"redis":{"url":"http://127.0.0.1:6379"}`,
			`redis URL "http://127.0.0.1:6379": want redis://, rediss:// or unix://`},
		{"redis nothing", "\tredis {\n\t\tpool_size 3\n\t}", `"redis":{"pool_size":3}`,
			"redis needs a URL (redis://127.0.0.1:6379/0), a sentinel block or a cluster block"},
		{"audit maxlen", "\tredis redis://127.0.0.1:1/0\n\taudit_stream a maxlen 5", redisURL + `},"audit_stream":"a","audit_max_len":5`,
			"audit_max_len 5 out of range (100 to 10000000)"},
		{"assertion ttl", "\tassertion {\n\t\tkey " + strings.Repeat("k", 32) + "\n\t\tttl 2h\n\t}", `"assertion":{"key":"` + strings.Repeat("k", 32) + `","ttl":"2h"}`,
			"assertion ttl 2h0m0s out of range (1s to 1h)"},
		{"assertion alg", "\tassertion {\n\t\tkey x\n\t\talg RS256\n\t}", `"assertion":{"key":"x","alg":"RS256"}`,
			`assertion alg "RS256": want HS256 or EdDSA`},
		{"assertion key", "\tassertion {\n\t\tttl 1m\n\t}", `"assertion":{"ttl":"1m"}`,
			"assertion needs a key (HS256 secret or EdDSA seed) or a key_file (Ed25519 PEM)"},
		{"grant_ttl", "\tprotect a {\n\t\tgrant_ttl 48h\n\t}", `"policies":[{"name":"a","grant_ttl":"48h"}]`,
			"policy a: grant_ttl 48h0m0s out of range (1s to 24h)"},
		{"policy mode", "\tprotect a {\n\t\tmode strict\n\t}", `"policies":[{"name":"a","mode":"strict"}]`,
			`policy a: unknown mode "strict" (want session, transaction or monitor)`},
		{"policy name", "\tprotect \"a b\"", `"policies":[{"name":"a b"}]`,
			`policy name "a b": use 1 to 48 letters, digits, '-' or '_', starting with a letter or digit`},
		{"policy twice", "\tprotect a\n\tprotect a", `"policies":[{"name":"a"},{"name":"a"}]`, `policy "a" defined twice`},
		{"failover_after", "\treceipts {\n\t\tpublic_url https://shop.example\n\t\tfailover_after 1s\n\t}",
			`"receipts":{"public_url":"https://shop.example","failover_after":"1s"}`, "failover_after 1s out of range (5s to 10m)"},
		{"failover_after not under code_ttl", "\tcode_ttl 1m\n\treceipts {\n\t\tpublic_url https://shop.example\n\t\tfailover_after 1m\n\t}",
			`"code_ttl":"1m","receipts":{"public_url":"https://shop.example","failover_after":"1m"}`,
			"failover_after 1m0s must be shorter than code_ttl 1m0s: the failover would come after the code expired"},
		{"failover_after without public_url", "\treceipts {\n\t\tfailover_after 20s\n\t}", `"receipts":{"failover_after":"20s"}`,
			"failover_after needs receipts public_url: without receipts no code is known to be undelivered"},
		{"public_url", "\treceipts {\n\t\tpublic_url shop.example\n\t}", `"receipts":{"public_url":"shop.example"}`,
			`receipts public_url "shop.example": want the scheme and host providers call, such as https://shop.example.com, without a query`},
		{"page locale", "\tpage {\n\t\tlocale xx\n\t}", `"page":{"locale":"xx"}`, `page locale "xx": not shipped`},
		{"no identity", "stepup {\n\tsecret 0123456789abcdef0123456789abcdef\n\tsender log\n}", `"identity":null`,
			"stepup needs an identity source (identity header|oidc|cookie|request {...})"},
		{"no sender", "stepup {\n\tidentity header {\n\t\tuser U\n\t\tphone P\n\t}\n}", `"senders":null`,
			"stepup needs at least one sender (sender webhook <url>, or sender log for development)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jerr := provisionOver(t, tc.json)
			if jerr == nil || !strings.HasPrefix(jerr.Error(), tc.want) {
				t.Fatalf("JSON: %v, want %q", jerr, tc.want)
			}

			input := tc.caddyfile
			if !strings.HasPrefix(input, "stepup") {
				input = fmtMinimal(input)
			}
			h, cerr := parse(t, input)
			if cerr != nil {
				// Refused at its line, in the same words.
				text, at, ok := strings.Cut(cerr.Error(), ", at Testfile:")
				if !ok || at == "" || text != jerr.Error() {
					t.Fatalf("Caddyfile: %q\nJSON:      %q", cerr, jerr)
				}
				return
			}
			// The parser handed the value on: the JSON it adapts to is
			// refused by Provision in the same words.
			raw, err := json.Marshal(h)
			if err != nil {
				t.Fatal(err)
			}
			if cerr = provisionRaw(t, raw); cerr == nil || cerr.Error() != jerr.Error() {
				t.Fatalf("Caddyfile adapted: %v\nJSON:              %q", cerr, jerr)
			}
		})
	}
}
