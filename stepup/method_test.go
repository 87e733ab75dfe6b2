package stepup

import (
	"errors"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func TestRequestMethods(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		method, target string
		headers        map[string][]string
		sent           string
		overrides      []string
		key, effective string
		ambiguous      bool
	}{
		{"GET", "/x", nil, "GET", nil, "GET", "GET", false},
		{"post", "/x", nil, "POST", nil, "POST", "POST", false},
		{"HEAD", "/x", nil, "HEAD", nil, "GET", "GET", false},
		{"POST", "/x", map[string][]string{"X-Http-Method-Override": {"delete"}}, "POST", []string{"DELETE"}, "POST DELETE", "DELETE", false},
		{"POST", "/x", map[string][]string{"X-Http-Method": {" PUT "}}, "POST", []string{"PUT"}, "POST PUT", "PUT", false},
		{"POST", "/x", map[string][]string{"X-Method-Override": {"PATCH"}}, "POST", []string{"PATCH"}, "POST PATCH", "PATCH", false},
		{"GET", "/x", map[string][]string{"X-Http-Method-Override": {"HEAD"}}, "GET", []string{"HEAD"}, "GET GET", "GET", false},
		{"POST", "/x", map[string][]string{"X-Http-Method-Override": {"DELETE"}, "X-Http-Method": {"delete"}, "X-Method-Override": {"Delete"}},
			"POST", []string{"DELETE"}, "POST DELETE", "DELETE", false},
		{"POST", "/x", map[string][]string{"X-Http-Method-Override": {""}}, "POST", nil, "POST", "POST", false},
		{"POST", "/x", map[string][]string{"X-Http-Method-Override": {"DELETE"}, "X-Http-Method": {"PUT"}}, "POST", []string{"DELETE", "PUT"}, "POST DELETE PUT", "DELETE", true},
		{"POST", "/x", map[string][]string{"X-Http-Method-Override": {"DELETE", "PUT"}}, "POST", []string{"DELETE", "PUT"}, "POST DELETE PUT", "DELETE", true},
		{"POST", "/x", map[string][]string{"X-Http-Method-Override": {"DELETE, PUT"}}, "POST", []string{"DELETE", "PUT"}, "POST DELETE PUT", "DELETE", true},
		{"POST", "/x?_method=DELETE", nil, "POST", []string{"DELETE"}, "POST DELETE", "DELETE", false},
		{"POST", "/x?a=1&%5Fmethod=delete", nil, "POST", []string{"DELETE"}, "POST DELETE", "DELETE", false},
		{"POST", "/x?.method=DELETE", nil, "POST", []string{"DELETE"}, "POST DELETE", "DELETE", false},
		{"POST", "/x?a=1;_method[]=PUT", nil, "POST", []string{"PUT"}, "POST PUT", "PUT", false},
		{"POST", "/x?%5B_method%5D=delete", nil, "POST", []string{"DELETE"}, "POST DELETE", "DELETE", false},
		{"POST", "/x?_method]=PUT&]]_method]]=put", nil, "POST", []string{"PUT"}, "POST PUT", "PUT", false},
		{"POST", "/x?_method]=PUT&[_method]=DELETE", nil, "POST", []string{"PUT", "DELETE"}, "POST PUT DELETE", "PUT", true},
		{"POST", "/x?_methods=PUT&my_method=PUT&q=%25", nil, "POST", nil, "POST", "POST", false},
		{"POST", "/x?_method=PUT", map[string][]string{"X-Http-Method-Override": {"DELETE"}}, "POST", []string{"DELETE", "PUT"}, "POST DELETE PUT", "DELETE", true},
	} {
		r := httptest.NewRequest("GET", "http://shop.example"+tc.target, nil)
		r.Method = tc.method
		for k, v := range tc.headers {
			r.Header[k] = v
		}
		m, err := RequestMethods(r)
		name := tc.method + " " + tc.target
		if m.Sent != tc.sent || !reflect.DeepEqual(m.Overrides, tc.overrides) || m.Key() != tc.key || m.Effective() != tc.effective {
			t.Errorf("%s %v: %+v key %q effective %q", name, tc.headers, m, m.Key(), m.Effective())
		}
		if errors.Is(err, ErrAmbiguousMethod) != tc.ambiguous {
			t.Errorf("%s %v: error %v, ambiguous %v", name, tc.headers, err, tc.ambiguous)
		}
	}
}

// The reading of a request without overrides allocates nothing: it runs
// for every request a policy without a path prefix might match.
func TestRequestMethodsAllocatesNothing(t *testing.T) {
	// Not parallel: it AllocsPerRun counts the allocations of every running test.
	r := httptest.NewRequest("GET", "http://shop.example/catalog?page=2&q=caf%C3%A9", nil)
	r.Header.Set("Accept", "text/html")
	if n := testing.AllocsPerRun(100, func() { _, _ = RequestMethods(r) }); n != 0 {
		t.Fatalf("RequestMethods allocates %v times", n)
	}
}

func TestIsMethodParam(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"_method": true, ".method": true, " method": false, "  _method": true, " .method": true, "_method[]": true, "_method[x]": true,
		"_METHOD": false, "method": false, "_methods": false, "x_method": false, "": false,
		"_method\x00": true, "_method\x00x": true, "_method\x01": false, "_method[": false,
		// Rack 2 (Rack::MethodOverride under Rails <= 7.0, Sinatra) and
		// qs (Express's method-override on req.body._method).
		"[_method]": true, "_method]": true, "]_method": true, "[[_method]]": true, "[]_method": true, "]]_method]]": true, "[_method": true,
		"[_METHOD]": false, "x[_method]": false, "[x]_method": false, "[]": false,
	} {
		if got := IsMethodParam(name); got != want {
			t.Errorf("IsMethodParam(%q) = %v", name, got)
		}
	}
	var got []string
	QueryMethodOverrides("a=1&_method=put&b=%ZZ&%5fmethod=DELETE;.method=patch&_method%00x=get&_method%01=head", func(v string) { got = append(got, v) })
	if strings.Join(got, ",") != "put,DELETE,patch,get" {
		t.Errorf("QueryMethodOverrides = %v", got)
	}
}
