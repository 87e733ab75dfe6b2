package stepup

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
)

// The worked example of docs/PRODUCTION.md ("The tx claim"), computed
// from the specification there with nothing of the engine's code: an
// upstream that follows the docs gets the engine's hash.
func TestTxHashWorkedExample(t *testing.T) {
	t.Parallel()
	const (
		policy = "checkout"
		method = "POST"
		uri    = "/checkout?step=pay"
		ctype  = "application/x-www-form-urlencoded"
		body   = "amount=24.90&merchant=Demo+Shop"
		user   = "demo-customer"
	)
	var spec bytes.Buffer
	part := func(s string) {
		_ = binary.Write(&spec, binary.BigEndian, uint32(len(s)))
		spec.WriteString(s)
	}
	count := func(n int) { _ = binary.Write(&spec, binary.BigEndian, uint32(n)) }
	part("stepup-tx-v2")
	part(policy)
	part(method)
	part(uri)
	part("Content-Type")
	count(1)
	part(ctype)
	for _, h := range []string{"Content-Encoding", "X-Http-Method-Override", "X-Http-Method", "X-Method-Override"} {
		part(h)
		count(0)
	}
	part(body)
	part(user)
	want := sha256.Sum256(spec.Bytes())

	got := txHash(policy, method, uri, http.Header{"Content-Type": {ctype}}, []byte(body), user)
	if !bytes.Equal(got, want[:]) {
		t.Fatalf("txHash = %x, the documented encoding gives %x", got, want)
	}
	// The docs quote the result; keep them true.
	doc, err := os.ReadFile("../docs/PRODUCTION.md")
	if err != nil {
		t.Fatal(err)
	}
	quoted := regexp.MustCompile(`tx = ([0-9a-f]{64})`).FindSubmatch(doc)
	if quoted == nil || string(quoted[1]) != hex.EncodeToString(want[:]) {
		t.Fatalf("docs/PRODUCTION.md must quote the worked example as tx = %x", want)
	}
}

// Every reading of a request that the app may act on changes the hash:
// a grant for one never opens another (finding 1: a multipart boundary
// swap made the same bytes read as another payment).
func TestTxHashCoversTheAppsReading(t *testing.T) {
	t.Parallel()
	base := func() (string, string, http.Header, []byte) {
		return "POST", "/pay", http.Header{"Content-Type": {"multipart/form-data; boundary=AAA"}}, []byte("--AAA\r\n...")
	}
	m, u, h, b := base()
	ref := txHash("pay", m, u, h, b, "alice")
	variants := map[string]func(m, u *string, h http.Header, b *[]byte){
		"boundary": func(_, _ *string, h http.Header, _ *[]byte) {
			h.Set("Content-Type", "multipart/form-data; boundary=BBB")
		},
		"media type": func(_, _ *string, h http.Header, _ *[]byte) { h.Set("Content-Type", "application/json") },
		"charset": func(_, _ *string, h http.Header, _ *[]byte) {
			h.Set("Content-Type", "multipart/form-data; boundary=AAA; charset=utf-16")
		},
		"no content type":  func(_, _ *string, h http.Header, _ *[]byte) { h.Del("Content-Type") },
		"content encoding": func(_, _ *string, h http.Header, _ *[]byte) { h.Set("Content-Encoding", "gzip") },
		"method override":  func(_, _ *string, h http.Header, _ *[]byte) { h.Set("X-HTTP-Method-Override", "DELETE") },
		"x-http-method":    func(_, _ *string, h http.Header, _ *[]byte) { h.Set("X-HTTP-Method", "PUT") },
		"x-method-override": func(_, _ *string, h http.Header, _ *[]byte) {
			h.Set("X-Method-Override", "PATCH")
		},
		"method":  func(m, _ *string, _ http.Header, _ *[]byte) { *m = "PUT" },
		"uri":     func(_, u *string, _ http.Header, _ *[]byte) { *u = "/pay?x=1" },
		"escaped": func(_, u *string, _ http.Header, _ *[]byte) { *u = "/p%61y" },
		"body":    func(_, _ *string, _ http.Header, b *[]byte) { *b = append(*b, ' ') },
	}
	for name, change := range variants {
		m, u, h, b := base()
		change(&m, &u, h, &b)
		if bytes.Equal(txHash("pay", m, u, h, b, "alice"), ref) {
			t.Errorf("%s: same hash", name)
		}
	}
	// The method as the app reads it: case does not matter, HEAD is GET.
	if !bytes.Equal(txHash("p", "post", "/", nil, nil, "a"), txHash("p", "POST", "/", nil, nil, "a")) {
		t.Error("the method's case changed the hash")
	}
	if !bytes.Equal(txHash("p", "HEAD", "/", nil, nil, "a"), txHash("p", "GET", "/", nil, nil, "a")) {
		t.Error("HEAD and GET hash differently")
	}
	// Header parts are length-prefixed and counted: values cannot be
	// shifted between headers or split differently.
	a := txHash("p", "POST", "/", http.Header{"Content-Type": {"a", "b"}}, nil, "u")
	c := txHash("p", "POST", "/", http.Header{"Content-Type": {"a"}, "Content-Encoding": {"b"}}, nil, "u")
	if bytes.Equal(a, c) {
		t.Error("values moved between headers hash the same")
	}
}

func TestAmbiguousRequest(t *testing.T) {
	t.Parallel()
	r, _ := http.NewRequest("POST", "/pay", strings.NewReader("x"))
	if why := ambiguousRequest(r); why != "" {
		t.Fatalf("plain request refused: %s", why)
	}
	r.Header["Content-Type"] = []string{"application/json", "application/x-www-form-urlencoded"}
	if ambiguousRequest(r) == "" {
		t.Error("two Content-Type fields accepted")
	}
	r.Header.Del("Content-Type")
	r.Trailer = http.Header{"X-Amount": {"9999"}}
	if ambiguousRequest(r) == "" {
		t.Error("trailers accepted")
	}
	r.Trailer = http.Header{"X-Declared": nil}
	if why := ambiguousRequest(r); why != "" {
		t.Errorf("a declared trailer that never came was refused: %s", why)
	}
}
