package handlers

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// The client's modules are served as app.js is, from their plain path and
// from the versioned one app.js imports them through: as JavaScript (a
// module script of another type does not run), with the same caching and
// the security headers.
func TestStaticModules(t *testing.T) {
	app, _, _ := fuzzServer(t)
	get := func(path string) (int, string, string, string) {
		resp, err := app.Test(httptest.NewRequest("GET", "http://parley.test"+path, nil), 5000)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"), resp.Header.Get("Content-Security-Policy")
	}
	_, _, appCache, _ := get("/static/app.js")
	for _, path := range []string{"/static/app.js", "/static/js/main.js", "/static/js@0123abcd/main.js", "/static/js@0123abcd/transport.js"} {
		status, ctype, cache, csp := get(path)
		if status != 200 {
			t.Errorf("%s: status %d, want 200", path, status)
		}
		if !strings.HasPrefix(ctype, "text/javascript") {
			t.Errorf("%s: Content-Type %q, want text/javascript", path, ctype)
		}
		if cache != appCache || cache == "" {
			t.Errorf("%s: Cache-Control %q, want app.js's %q", path, cache, appCache)
		}
		if csp != contentSecurityPolicy {
			t.Errorf("%s: CSP %q", path, csp)
		}
	}
	for _, path := range []string{"/static/js@0123abcd/nope.js", "/static/js@0123abcd/../embed.go", "/static/embed.go"} {
		if status, _, _, _ := get(path); status != 404 {
			t.Errorf("%s: status %d, want 404", path, status)
		}
	}
}
