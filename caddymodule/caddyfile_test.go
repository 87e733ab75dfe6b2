package caddymodule

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

const minimal = `stepup {
	secret 0123456789abcdef0123456789abcdef
	identity header {
		user X-Remote-User
		phone X-Remote-Phone
	}
	sender log
%s
}`

func parse(t *testing.T, input string) (*Handler, error) {
	t.Helper()
	d := caddyfile.NewTestDispenser(input)
	var h Handler
	err := h.UnmarshalCaddyfile(d)
	return &h, err
}

func TestUnmarshalCaddyfileFull(t *testing.T) {
	h, err := parse(t, `stepup {
		redis redis://127.0.0.1:6379/0 {
			key_prefix shop:
		}
		secret {env.STEPUP_SECRET}
		path_prefix /.verify
		identity header {
			user X-Remote-User
			phone X-Remote-Phone
			email X-Remote-Email
		}
		sender webhook http://127.0.0.1:9999/sms {
			signing_secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
		}
		sender log
		code_length 8
		code_ttl 3m
		max_attempts 4
		resend_after 45s
		max_sends 2
		max_failures 10
		failure_window 12h
		default_region in
		allow_countries IN us
		deny_countries GB
		allow_number_types mobile fixed_line_or_mobile voip
		site_name "Demo Shop"
		message "{code} is your code"
		send_timeout 8s
		headers {
			policy X-Verified-Policy
		}
		previous_secrets {env.OLD_SECRET} abcdefghijklmnopqrstuvwxyz0123456789
		limits {
			per_user 5/1h
			per_ip off
			per_number 3/10m
			per_country IN 500/1h
			per_country 44 100/d
			per_country * 1000/1h
			global 10000/1d
		}
		protect payment-methods {
			match {
				path /account/payment-methods*
			}
			mode session
			grant_ttl 15m
		}
		protect checkout {
			match {
				method POST
				path /checkout
			}
			mode transaction
			describe "Pay {form.amount} to {form.merchant}"
		}
		protect admin {
			match {
				path /admin/*
				remote_ip 10.0.0.0/8
			}
			mode monitor
		}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(h)
	for _, want := range []string{
		`"redis":{"url":"redis://127.0.0.1:6379/0","key_prefix":"shop:"}`,
		`"secret":"{env.STEPUP_SECRET}"`,
		`"path_prefix":"/.verify"`,
		`"identity":{"email":"X-Remote-Email","phone":"X-Remote-Phone","source":"header","user":"X-Remote-User"}`,
		`"senders":[{"sender":"webhook","signing_secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw","url":"http://127.0.0.1:9999/sms"},{"sender":"log"}]`,
		`"code_length":8`, `"code_ttl":180000000000`, `"max_attempts":4`, `"resend_after":45000000000`,
		`"max_sends":2`, `"max_failures":10`, `"failure_window":43200000000000`, `"default_region":"IN"`,
		`"allow_countries":["IN","US"]`, `"deny_countries":["GB"]`,
		`"allow_number_types":["mobile","fixed_line_or_mobile","voip"]`,
		`"site_name":"Demo Shop"`, `"message":"{code} is your code"`, `"send_timeout":8000000000`,
		`"headers":{"policy":"X-Verified-Policy"}`,
		`"previous_secrets":["{env.OLD_SECRET}","abcdefghijklmnopqrstuvwxyz0123456789"]`,
		`"limits":{"per_user":"5/1h","per_ip":"off","per_number":"3/10m","per_country":{"*":"1000/1h","44":"100/d","IN":"500/1h"},"global":"10000/1d"}`,
		`{"name":"payment-methods","match":[{"path":["/account/payment-methods*"]}],"mode":"session","grant_ttl":900000000000}`,
		`{"name":"checkout","match":[{"method":["POST"],"path":["/checkout"]}],"mode":"transaction","describe":"Pay {form.amount} to {form.merchant}"}`,
		`{"name":"admin","match":[{"path":["/admin/*"],"remote_ip":{"ranges":["10.0.0.0/8"]}}],"mode":"monitor"}`,
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("JSON lacks %s\n%s", want, got)
		}
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		input string
		want  string
	}{
		"unknown subdirective": {fmtMinimal("\tfrobnicate yes"), "unrecognized subdirective 'frobnicate'"},
		"code_ttl over 10m":    {fmtMinimal("\tcode_ttl 11m"), "code_ttl 11m0s out of range"},
		"code_length under 6":  {fmtMinimal("\tcode_length 5"), "code_length 5 out of range (6 to 10)"},
		"code_length over 10":  {fmtMinimal("\tcode_length 12"), "code_length 12 out of range"},
		"code_length word":     {fmtMinimal("\tcode_length six"), `code_length: "six" is not a number`},
		"max_attempts over":    {fmtMinimal("\tmax_attempts 11"), "max_attempts 11 out of range (1 to 10)"},
		"max_failures over":    {fmtMinimal("\tmax_failures 101"), "max_failures 101 out of range"},
		"bad duration":         {fmtMinimal("\tresend_after soon"), "resend_after:"},
		"short secret": {`stepup {
	secret tooshort
}`, "secret is 8 bytes, need at least 32"},
		"secret without value":     {fmtMinimal("\tsecret"), "wrong argument count"},
		"no identity":              {"stepup {\n\tsender log\n}", "needs an identity source"},
		"no sender":                {"stepup {\n\tidentity header {\n\t\tuser U\n\t\tphone P\n\t}\n}", "needs at least one sender"},
		"identity twice":           {fmtMinimal("\tidentity header {\n\t\tuser A\n\t\tphone B\n\t}"), "identity already set"},
		"identity header no phone": {"stepup {\n\tidentity header {\n\t\tuser U\n\t}\n\tsender log\n}", "needs both 'user' and 'phone'"},
		"identity header unknown":  {"stepup {\n\tidentity header {\n\t\tuser U\n\t\tphone P\n\t\tcolor red\n\t}\n\tsender log\n}", "unrecognized identity header option 'color'"},
		"unknown sender":           {fmtMinimal("\tsender pigeon"), "unknown sender 'pigeon' (known: email, log, msg91, sns, twilio, twilio_rcs, twilio_voice, vonage, vonage_rcs, vonage_voice, webhook, whatsapp)"},
		"webhook no url":           {fmtMinimal("\tsender webhook"), "sender webhook needs a URL"},
		"webhook unknown option":   {fmtMinimal("\tsender webhook http://127.0.0.1/ {\n\t\tretries 3\n\t}"), "unrecognized webhook option 'retries'"},
		"log with args":            {fmtMinimal("\tsender log loud"), "wrong argument count"},
		"protect without name":     {fmtMinimal("\tprotect {\n\t}"), "protect needs a policy name"},
		"protect bad name":         {fmtMinimal("\tprotect \"a b\""), "policy name"},
		"protect twice":            {fmtMinimal("\tprotect a\n\tprotect a"), `policy "a" defined twice`},
		"protect unknown option":   {fmtMinimal("\tprotect a {\n\t\tcolor red\n\t}"), "unrecognized protect option 'color'"},
		"protect bad mode":         {fmtMinimal("\tprotect a {\n\t\tmode strict\n\t}"), `unknown mode "strict"`},
		"protect grant too long":   {fmtMinimal("\tprotect a {\n\t\tgrant_ttl 48h\n\t}"), "grant_ttl 48h0m0s out of range"},
		"protect bad matcher":      {fmtMinimal("\tprotect a {\n\t\tmatch {\n\t\t\tnosuchmatcher x\n\t\t}\n\t}"), "nosuchmatcher"},
		"redis bad scheme":         {fmtMinimal("\tredis http://127.0.0.1:6379"), "want redis://"},
		"redis no url":             {fmtMinimal("\tredis"), "redis needs a URL"},
		"redis twice":              {fmtMinimal("\tredis redis://a\n\tredis redis://b"), "redis already set"},
		"path_prefix":              {fmtMinimal("\tpath_prefix stepup"), "must start with '/'"},
		"default_region":           {fmtMinimal("\tdefault_region India"), `default_region: "India" is not an ISO 3166-1 alpha-2 region code`},
		"message without code":     {fmtMinimal("\tmessage hello"), "message must contain {code}"},
		"headers unknown":          {fmtMinimal("\theaders {\n\t\tcolor X\n\t}"), "unrecognized headers option 'color'"},
		"argument on directive":    {"stepup extra {\n}", "wrong argument count"},
		"limit bad rate":           {fmtMinimal("\tlimits {\n\t\tper_ip lots\n\t}"), `limit "lots": want COUNT/PERIOD`},
		"limit unknown":            {fmtMinimal("\tlimits {\n\t\tper_planet 1/h\n\t}"), "unrecognized limits option 'per_planet'"},
		"limit bad country":        {fmtMinimal("\tlimits {\n\t\tper_country Atlantis 1/h\n\t}"), `per_country: "Atlantis" is not`},
		"limit country no rate":    {fmtMinimal("\tlimits {\n\t\tper_country IN\n\t}"), "wrong argument count"},
		"short previous secret":    {fmtMinimal("\tprevious_secrets short"), "previous_secrets 1 is 5 bytes"},
		"bad allow country":        {fmtMinimal("\tallow_countries Atlantis"), "allow_countries:"},
		"no deny country":          {fmtMinimal("\tdeny_countries"), "wrong argument count"},
		"bad number type":          {fmtMinimal("\tallow_number_types satellite"), "allow_number_types:"},
	} {
		_, err := parse(t, tc.input)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not say %q", name, err, tc.want)
		}
		// Every error names the file and line (the test dispenser calls
		// the file "Testfile").
		if !strings.Contains(err.Error(), "Testfile:") {
			t.Errorf("%s: error %q does not name file and line", name, err)
		}
	}
}

func fmtMinimal(extra string) string {
	return strings.Replace(minimal, "%s", extra, 1)
}

// The example Caddyfile adapts to the committed JSON (update it with
// STEPUP_UPDATE_GOLDEN=1), and the JSON loads back into the same handler.
func TestAdaptExample(t *testing.T) {
	src, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	out, warnings, err := adapter.Adapt(src, map[string]any{"filename": "Caddyfile.example"})
	if err != nil {
		t.Fatalf("adapting Caddyfile.example: %v", err)
	}
	for _, w := range warnings {
		t.Errorf("warning: %s:%d: %s", w.File, w.Line, w.Message)
	}
	var pretty map[string]any
	if err := json.Unmarshal(out, &pretty); err != nil {
		t.Fatal(err)
	}
	got, _ := json.MarshalIndent(pretty, "", "\t")
	got = append(got, '\n')
	golden := "testdata/Caddyfile.example.json"
	if os.Getenv("STEPUP_UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("adapted Caddyfile.example differs from %s (run with STEPUP_UPDATE_GOLDEN=1 after checking):\n%s", golden, got)
	}
	// Round trip: the stepup handler's JSON unmarshals and marshals back
	// to the same JSON.
	raw := findHandler(t, pretty)
	var h Handler
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	again, _ := json.Marshal(&h)
	var a, b map[string]any
	_ = json.Unmarshal(raw, &a)
	_ = json.Unmarshal(again, &b)
	b["handler"] = "stepup"
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Fatalf("JSON round trip changed the handler:\n%s\n%s", ja, jb)
	}
}

// findHandler digs the stepup handler out of an adapted config.
func findHandler(t *testing.T, v any) json.RawMessage {
	var found json.RawMessage
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if x["handler"] == "stepup" && found == nil {
				found, _ = json.Marshal(x)
				return
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(v)
	if found == nil {
		t.Fatal("no stepup handler in the adapted config")
	}
	return found
}

// Provisioning (what `caddy validate` does) accepts the example and
// refuses bad secrets and missing pieces with clear errors, without
// contacting Redis.
func TestValidate(t *testing.T) {
	t.Setenv("STEPUP_SECRET", strings.Repeat("s", 32))
	t.Setenv("STEPUP_SHORT", "short")
	t.Setenv("STEPUP_REDIS_BAD_PORT", "99999")
	site := func(body string) string {
		return "{\n\tadmin off\n\tauto_https off\n}\nhttp://127.0.0.1:1 {\n\tstepup {\n" + body + "\n\t}\n\trespond ok\n}\n"
	}
	ident := "\t\tidentity header {\n\t\t\tuser U\n\t\t\tphone P\n\t\t}\n\t\tsender log\n"
	for name, tc := range map[string]struct {
		body string
		want string
	}{
		"example":                    {"", ""},
		"env secret with redis down": {"\t\tredis redis://127.0.0.1:1/0\n\t\tsecret {env.STEPUP_SECRET}\n" + ident, ""},
		"short env secret":           {"\t\tsecret {env.STEPUP_SHORT}\n" + ident, "secret is 5 bytes, need at least 32"},
		"unset env secret":           {"\t\tsecret {env.STEPUP_NOT_SET}\n" + ident, "secret is empty after placeholder replacement"},
		"redis without secret":       {"\t\tredis redis://127.0.0.1:1/0\n" + ident, "secret is required with redis"},
		"bad redis url":              {"\t\tredis redis://127.0.0.1:{env.STEPUP_REDIS_BAD_PORT}/0\n\t\tsecret {env.STEPUP_SECRET}\n" + ident, "configuring redis: redis URL: port \"99999\""},
		"bad webhook secret":         {"\t\tidentity header {\n\t\t\tuser U\n\t\t\tphone P\n\t\t}\n\t\tsender webhook http://127.0.0.1:1/ {\n\t\t\tsigning_secret nope\n\t\t}\n", "webhook sender"},
		"transaction parses":         {ident + "\t\tprotect c {\n\t\t\tmode transaction\n\t\t}\n", ""},
	} {
		var input []byte
		if name == "example" {
			var err error
			if input, err = os.ReadFile("../Caddyfile.example"); err != nil {
				t.Fatal(err)
			}
		} else {
			input = []byte(site(tc.body))
		}
		cfgJSON, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(input, map[string]any{"filename": name})
		if err != nil {
			t.Fatalf("%s: adapt: %v", name, err)
		}
		var cfg caddy.Config
		if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
			t.Fatal(err)
		}
		err = caddy.Validate(&cfg)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.want != "" && err == nil:
			t.Errorf("%s: validated, want error %q", name, tc.want)
		case tc.want != "" && !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s: error %q does not say %q", name, err, tc.want)
		}
	}
}

// FuzzUnmarshalCaddyfile feeds arbitrary text into the stepup block: the
// parser returns an error or a handler, and never panics.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	f.Add("\tsecret 0123456789abcdef0123456789abcdef\n\tidentity header {\n\t\tuser U\n\t\tphone P\n\t}\n\tsender log")
	f.Add("\tprotect a {\n\t\tmatch {\n\t\t\tpath /x*\n\t\t}\n\t\tmode transaction\n\t\tdescribe \"Pay {form.a}\"\n\t}")
	f.Add("\tlimits {\n\t\tper_country IN 5/1h\n\t}\n\tmax_body 1MiB\n\tcode_ttl 5m")
	f.Add("\tredis redis://127.0.0.1:6379/0 {\n\t\tkey_prefix x:\n\t}\n\theaders {\n\t\tuser U\n\t}")
	f.Add("\tsender webhook http://127.0.0.1/ {\n\t\tsigning_secret whsec_x\n\t}\n\tcode_length 8")
	f.Fuzz(func(t *testing.T, body string) {
		tokens, err := caddyfile.Tokenize([]byte("stepup {\n"+body+"\n}\n"), "Fuzzfile")
		if err != nil {
			return
		}
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
			return
		}
		// What parses marshals to JSON that loads back.
		raw, err := json.Marshal(&h)
		if err != nil {
			t.Fatalf("parsed handler does not marshal: %v", err)
		}
		var again Handler
		if err := json.Unmarshal(raw, &again); err != nil {
			t.Fatalf("marshalled handler does not unmarshal: %v\n%s", err, raw)
		}
	})
}

func TestUnmarshalCaddyfilePasskeys(t *testing.T) {
	h, err := parse(t, `stepup {
		secret 0123456789abcdef0123456789abcdef
		identity header {
			user X-Remote-User
			phone X-Remote-Phone
		}
		sender log
		headers {
			method X-Step-Method
		}
		passkeys {
			rp_id shop.example.com
			rp_name "Demo Shop"
			origins https://shop.example.com https://www.shop.example.com
			attestation none
			max_per_user 5
			manage_window 10m
		}
		protect checkout {
			match {
				method POST
				path /checkout
			}
			mode transaction
			methods passkey sms
		}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(h)
	for _, want := range []string{
		`"headers":{"method":"X-Step-Method"}`,
		`"passkeys":{"rp_id":"shop.example.com","rp_name":"Demo Shop","origins":["https://shop.example.com","https://www.shop.example.com"],"attestation":"none","max_per_user":5,"manage_window":600000000000}`,
		`"mode":"transaction","methods":["passkey","sms"]`,
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("JSON lacks %s\n%s", want, got)
		}
	}
	for input, want := range map[string]string{
		"\tpasskeys {\n\t\trp_id shop.example\n\t\tcolour blue\n\t}":                           "unrecognized passkeys option 'colour'",
		"\tprotect p {\n\t\tmethods passkey\n\t}":                                              "methods must include sms",
		"\tprotect p {\n\t\tmethods sms totp\n\t}":                                             `unknown method "totp"`,
		"\tpasskeys {\n\t\trp_id shop.example\n\t\tattestation enterprise\n\t}":                "attestation",
		"\tpasskeys {\n\t\trp_id shop.example\n\t}\n\tpasskeys {\n\t\trp_id shop.example\n\t}": "passkeys already set",
	} {
		if _, err := parse(t, strings.Replace(minimal, "%s", input, 1)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want %q", input, err, want)
		}
	}
	// A policy that offers passkeys without a passkeys block: refused at
	// provision, with the same words for JSON.
	err = provisionOver(t, `"policies":[{"name":"p","methods":["passkey","sms"]}]`)
	if err == nil || !strings.Contains(err.Error(), "configure passkeys") {
		t.Fatalf("passkey without passkeys: %v", err)
	}
	if err := provisionOver(t, `"passkeys":{"rp_id":"shop.example"},"policies":[{"name":"p","methods":["passkey","sms"]}]`); err != nil {
		t.Fatalf("passkeys provision: %v", err)
	}
}
