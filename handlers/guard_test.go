package handlers

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
)

// TestEveryRouteIsGuarded walks the router: every route Register installs,
// and any added later, gets the security headers, refuses a compressed
// body, a non-JSON body (POST, PUT, PATCH) and a cross-site use of the
// session cookie before its handler runs.
func TestEveryRouteIsGuarded(t *testing.T) {
	app, tok, _ := fuzzServer(t)
	routes := app.GetRoutes(true)
	if len(routes) < 8 {
		t.Fatalf("only %d routes registered", len(routes))
	}
	for _, r := range routes {
		if r.Method == fiber.MethodConnect || r.Method == fiber.MethodTrace {
			continue
		}
		path := strings.NewReplacer(":room", "guarded", "*", "x").Replace(r.Path)
		t.Run(r.Method+" "+r.Path, func(t *testing.T) {
			do := func(edit func(*http.Request)) (int, http.Header, string) {
				req := httptest.NewRequest(r.Method, "http://parley.test"+path, strings.NewReader(`{"name":"x","text":"x"}`))
				req.AddCookie(&http.Cookie{Name: CookieName, Value: tok})
				req.Header.Set("Content-Type", "application/json")
				edit(req)
				resp, err := app.Test(req, 5000)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, resp.Header, string(b)
			}
			stream := strings.HasSuffix(r.Path, "/events")
			edit := func(*http.Request) {}
			if stream {
				// The stream would not end: take the headers of a refusal.
				edit = func(req *http.Request) { req.Header.Set("Last-Event-ID", "x") }
			}
			status, h, _ := do(edit)
			for _, name := range []string{"Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options"} {
				if h.Get(name) == "" {
					t.Errorf("%d answer without %s", status, name)
				}
			}
			if status, _, body := do(func(req *http.Request) { req.Header.Set("Content-Encoding", "gzip") }); status != 415 {
				t.Errorf("gzip body: %d %s, want 415", status, body)
			}
			changes := r.Method != fiber.MethodGet && r.Method != fiber.MethodHead && r.Method != fiber.MethodOptions
			if r.Method == fiber.MethodPost || r.Method == fiber.MethodPut || r.Method == fiber.MethodPatch {
				if status, _, body := do(func(req *http.Request) { req.Header.Set("Content-Type", "text/plain") }); status != 415 {
					t.Errorf("text/plain body: %d %s, want 415", status, body)
				}
			}
			if changes || stream {
				status, _, body := do(func(req *http.Request) { req.Header.Set("Origin", "http://evil.test") })
				if status != 403 {
					t.Errorf("cookie from a foreign origin: %d %s, want 403", status, body)
				}
				status, _, body = do(func(req *http.Request) {
					req.Header.Set("Origin", "http://parley.test")
					if stream {
						req.Header.Set("Last-Event-ID", "x")
					}
				})
				if status == 403 {
					t.Errorf("cookie from the server's own origin: %d %s", status, body)
				}
			}
		})
	}
}

func TestNormalizeOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://Chat.Example.com":      "https://chat.example.com",
		"https://chat.example.com:443/": "https://chat.example.com",
		"http://127.0.0.1:8080":         "http://127.0.0.1:8080",
		"http://[::1]:80":               "http://[::1]",
		"null":                          "",
		"ftp://x":                       "",
		"https://user@x":                "",
	} {
		got, ok := NormalizeOrigin(in)
		if got != want || ok != (want != "") {
			t.Errorf("NormalizeOrigin(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestKeyedLimiterIsBounded(t *testing.T) {
	k := newKeyedLimiter(1, 1)
	for i := range maxLimiterKeys + 500 {
		k.allow(fmt.Sprint("ip-", i))
	}
	if n := k.len(); n != maxLimiterKeys {
		t.Fatalf("%d buckets held, want at most %d", n, maxLimiterKeys)
	}
	if !k.allow("fresh") || k.allow("fresh") {
		t.Fatal("a bucket of burst 1 must allow once, then refuse")
	}
}

func TestConnLimiter(t *testing.T) {
	l := newConnLimiter(2, 3)
	r1, _, err1 := l.acquire("a", "ip1")
	_, _, err2 := l.acquire("a", "ip1")
	_, reason, err3 := l.acquire("a", "ip2")
	if err1 != nil || err2 != nil || err3 == nil || reason != limitUserConns {
		t.Fatalf("per user: %v %v %v %s", err1, err2, err3, reason)
	}
	_, _, err4 := l.acquire("b", "ip1")
	_, reason, err5 := l.acquire("c", "ip1")
	if err4 != nil || err5 == nil || reason != limitIPConns {
		t.Fatalf("per ip: %v %v %s", err4, err5, reason)
	}
	r1()
	r1() // twice is once
	if _, _, err := l.acquire("c", "ip1"); err != nil {
		t.Fatalf("a released slot is free again: %v", err)
	}
	if l.users["a"] != 1 {
		t.Fatalf("user a holds %d, want 1", l.users["a"])
	}
}
