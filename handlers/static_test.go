package handlers

import (
	"bytes"
	"io"
	"io/fs"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/parley-chat/parley/static"
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

// The service worker is served at the root (its scope is the folder it comes
// from), as JavaScript, checked again by the browser on every update
// (no-cache), with the security headers of every response.
func TestServiceWorker(t *testing.T) {
	app, _, _ := fuzzServer(t)
	resp, err := app.Test(httptest.NewRequest("GET", "http://parley.test/sw.js", nil), 5000)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	want, err := fs.ReadFile(static.FS, "sw.js")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body, want) || !bytes.Contains(body, []byte("showNotification")) {
		t.Errorf("body is not static/sw.js (%d bytes)", len(body))
	}
	for header, want := range map[string]string{
		"Content-Type":            "text/javascript; charset=utf-8",
		"Cache-Control":           "no-cache",
		"Content-Security-Policy": contentSecurityPolicy,
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
	} {
		if got := resp.Header.Get(header); got != want {
			t.Errorf("%s: %q, want %q", header, got, want)
		}
	}
	// Only GET (and HEAD) serve it.
	resp, err = app.Test(httptest.NewRequest("POST", "http://parley.test/sw.js", nil), 5000)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 200 {
		t.Errorf("POST /sw.js: status 200")
	}
}
