package caddymodule

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

func TestRedisBlockCaddyfile(t *testing.T) {
	h, err := parse(t, fmtMinimal(`	redis {
		sentinel {
			master mymaster
			addrs 10.0.0.1:26379 10.0.0.2:26379
			password {env.SENTINEL_PASSWORD}
		}
		username stepup
		password {env.REDIS_PASSWORD}
		db 2
		tls {
			ca /etc/redis/ca.pem
			cert /etc/redis/client.pem
			key /etc/redis/client.key
			server_name redis.internal
		}
		pool_size 50
		dial_timeout 1s
		read_timeout 500ms
		write_timeout 500ms
		key_prefix shop:
	}
	audit_stream stepup:audit maxlen 5000`))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(h.Redis)
	want := `{"sentinel":{"master":"mymaster","addrs":["10.0.0.1:26379","10.0.0.2:26379"],"password":"{env.SENTINEL_PASSWORD}"},` +
		`"username":"stepup","password":"{env.REDIS_PASSWORD}","db":2,"tls":{"ca":"/etc/redis/ca.pem","cert":"/etc/redis/client.pem",` +
		`"key":"/etc/redis/client.key","server_name":"redis.internal"},"pool_size":50,"dial_timeout":1000000000,` +
		`"read_timeout":500000000,"write_timeout":500000000,"key_prefix":"shop:"}`
	if string(got) != want {
		t.Fatalf("redis =\n%s\nwant\n%s", got, want)
	}
	if h.AuditStream != "stepup:audit" || h.AuditMaxLen != 5000 {
		t.Fatalf("audit_stream = %q %d", h.AuditStream, h.AuditMaxLen)
	}
	h, err = parse(t, fmtMinimal("\tredis {\n\t\tcluster {\n\t\t\taddrs 10.0.0.1:7000 10.0.0.2:7000\n\t\t\taddrs 10.0.0.3:7000\n\t\t}\n\t}"))
	if err != nil || len(h.Redis.Cluster.Addrs) != 3 {
		t.Fatalf("cluster: %v %+v", err, h.Redis)
	}
	for name, tc := range map[string]struct{ body, want string }{
		"two modes":        {"\tredis redis://a:1 {\n\t\tcluster {\n\t\t\taddrs b:1\n\t\t}\n\t}", "one of a URL, a sentinel block and a cluster block"},
		"nothing":          {"\tredis {\n\t\tpool_size 3\n\t}", "redis needs a URL"},
		"sentinel master":  {"\tredis {\n\t\tsentinel {\n\t\t\taddrs a:1\n\t\t}\n\t}", "sentinel needs master and addrs"},
		"cluster db":       {"\tredis {\n\t\tcluster {\n\t\t\taddrs a:1\n\t\t}\n\t\tdb 3\n\t}", "cluster has no databases"},
		"tls half":         {"\tredis redis://a:1 {\n\t\ttls {\n\t\t\tcert /c\n\t\t}\n\t}", "cert and key go together"},
		"tls unknown":      {"\tredis redis://a:1 {\n\t\ttls {\n\t\t\tpin x\n\t\t}\n\t}", "unrecognized tls option 'pin'"},
		"sentinel unknown": {"\tredis {\n\t\tsentinel {\n\t\t\tquorum 2\n\t\t}\n\t}", "unrecognized sentinel option 'quorum'"},
		"bad pool":         {"\tredis redis://a:1 {\n\t\tpool_size 0\n\t}", "pool_size 0 out of range"},
		"audit args":       {"\taudit_stream a b", "audit_stream <key> [maxlen <n>]"},
		"audit maxlen":     {"\taudit_stream a maxlen 5", "audit_max_len 5 out of range (100 to 10000000)"},
		"assertion alg":    {"\tassertion {\n\t\talg RS256\n\t\tkey x\n\t}", `assertion alg "RS256"`},
		"assertion key":    {"\tassertion {\n\t\tttl 1m\n\t}", "assertion needs a key"},
		"assertion opt":    {"\tassertion {\n\t\tkid 1\n\t}", "unrecognized assertion option 'kid'"},
	} {
		_, err := parse(t, fmtMinimal(tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
}

func TestAssertionConfig(t *testing.T) {
	repl := caddy.NewReplacer()
	t.Setenv("ASSERT_KEY", strings.Repeat("a", 32))
	if a, err := (&AssertionConfig{Key: "{env.ASSERT_KEY}"}).build(repl); err != nil || a.Header != "Stepup-Assertion" || a.JWKS() != nil {
		t.Fatalf("HS256 from env: %v", err)
	}
	seed := make([]byte, 32)
	_, _ = rand.Read(seed)
	if a, err := (&AssertionConfig{Alg: "EdDSA", Key: base64.StdEncoding.EncodeToString(seed)}).build(repl); err != nil || a.JWKS() == nil {
		t.Fatalf("EdDSA from seed: %v", err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	file := filepath.Join(t.TempDir(), "ed25519.pem")
	_ = os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	if a, err := (&AssertionConfig{KeyFile: file}).build(repl); err != nil || a.JWKS() == nil {
		t.Fatalf("EdDSA from PEM: %v", err)
	}
	for name, c := range map[string]*AssertionConfig{
		"short HS256":     {Key: "short"},
		"bad seed":        {Alg: "EdDSA", Key: "bm90IGEgc2VlZA=="},
		"missing file":    {KeyFile: "/nonexistent.pem"},
		"both":            {Alg: "EdDSA", Key: "x", KeyFile: file},
		"file with HS256": {Alg: "HS256", KeyFile: file},
		"unknown alg":     {Alg: "none", Key: "x"},
	} {
		if _, err := c.build(repl); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
