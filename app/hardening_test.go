package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/fasthttp/websocket"
)

// The Hardening issue's findings, each tried as an attacker would, from
// outside: every test here failed on the code before it.

// req makes a request with the given headers and body and returns status,
// headers and body.
func (s *testServer) req(method, path string, header map[string]string, body []byte) (int, http.Header, []byte) {
	s.t.Helper()
	r, err := http.NewRequest(method, s.base+path, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func br(b []byte) []byte {
	var buf bytes.Buffer
	w := brotli.NewWriterLevel(&buf, brotli.BestCompression)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// TestDecompressionBombRefused: a body that inflates to 48-96 MiB, in gzip,
// brotli and stacked gzip, is refused with 415 before anything is decoded,
// and the server allocates next to nothing for it.
func TestDecompressionBombRefused(t *testing.T) {
	s := startServer(t, nil)
	tok := s.login("alice")
	inflated := bytes.Repeat([]byte(" "), 48<<20)
	bombs := map[string][]byte{"gzip": gz(inflated), "br": br(inflated)}
	bombs["gzip, gzip"] = gz(gz(append(inflated, inflated...)))
	bombs["deflate"] = bombs["gzip, gzip"] // refused by name, whatever the bytes
	inflated = nil
	for enc, body := range bombs {
		if len(body) > 64<<10 {
			t.Fatalf("%s bomb is %d bytes: over the body limit, it would not test the decoder", enc, len(body))
		}
		for _, path := range []string{"/api/session", "/api/rooms/bomb/messages"} {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			status, _, b := s.req("POST", path, map[string]string{
				"Content-Type": "application/json", "Content-Encoding": enc, "Authorization": "Bearer " + tok,
			}, body)
			runtime.ReadMemStats(&after)
			if status != 415 || !strings.Contains(string(b), `"code":"bad_request"`) {
				t.Errorf("%s bomb (%d bytes) on %s: %d %s, want 415 bad_request", enc, len(body), path, status, b)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
				t.Errorf("%s bomb on %s: the process allocated %d MiB answering it", enc, path, grew>>20)
			}
		}
	}
	// identity is no encoding, and allowed.
	status, _, b := s.req("POST", "/api/session", map[string]string{"Content-Type": "application/json", "Content-Encoding": "identity"}, []byte(`{"name":"bob"}`))
	if status != 200 {
		t.Fatalf("identity body: %d %s", status, b)
	}
}

// TestNonJSONBodiesRefused: text/plain and form bodies (what a cross-site
// form or a no-CORS fetch can send) get 415.
func TestNonJSONBodiesRefused(t *testing.T) {
	s := startServer(t, nil)
	tok := s.login("alice")
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""} {
		for _, path := range []string{"/api/session", "/api/rooms/ct/messages"} {
			h := map[string]string{"Cookie": "parley_session=" + tok}
			if ct != "" {
				h["Content-Type"] = ct
			}
			status, _, b := s.req("POST", path, h, []byte(`{"name":"mallory","text":"csrf"}`))
			apiError(t, status, b, 415, "bad_request")
		}
	}
	status, _, b := s.req("POST", "/api/rooms/ct/messages", map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json; charset=utf-8"}, []byte(`{"text":"ok"}`))
	if status != 202 {
		t.Fatalf("JSON with charset: %d %s", status, b)
	}
}

// TestCrossOriginSessionUseRefused: a page on another origin (another port
// of the same host, in the finding) can neither open a WebSocket or SSE
// stream with the victim's cookie nor post, sign in or sign out; a program
// with a bearer token and no cookie may, from anywhere; the server's own
// origin, PARLEY_PUBLIC_URL's and PARLEY_ALLOWED_ORIGINS may.
func TestCrossOriginSessionUseRefused(t *testing.T) {
	s := startServer(t, func(c *Config) {
		c.PublicURL = "https://chat.example.com/"
		c.AllowedOrigins = []string{"https://app.example.org"}
	})
	tok := s.login("alice")
	u, _ := url.Parse(s.base)
	_, port, _ := net.SplitHostPort(u.Host)
	evil := "http://127.0.0.1:1" + port // another port of the same host
	cookie := "parley_session=" + tok
	wsURL := "ws" + strings.TrimPrefix(s.base, "http") + "/ws"

	dial := func(h http.Header) int {
		conn, resp, err := websocket.DefaultDialer.Dial(wsURL, h)
		if err == nil {
			conn.Close()
			return 101
		}
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		return resp.StatusCode
	}
	if got := dial(http.Header{"Origin": {evil}, "Cookie": {cookie}}); got != 403 {
		t.Errorf("WebSocket with the cookie from %s: %d, want 403", evil, got)
	}
	if got := dial(http.Header{"Origin": {"null"}, "Cookie": {cookie}}); got != 403 {
		t.Errorf("WebSocket with the cookie from Origin null: %d, want 403", got)
	}
	for _, ok := range []string{s.base, "https://chat.example.com", "https://app.example.org"} {
		if got := dial(http.Header{"Origin": {ok}, "Cookie": {cookie}}); got != 101 {
			t.Errorf("WebSocket with the cookie from %s: %d, want 101", ok, got)
		}
	}
	if got := dial(http.Header{"Origin": {evil}, "Authorization": {"Bearer " + tok}}); got != 101 {
		t.Errorf("WebSocket with a bearer token (no cookie) from %s: %d, want 101", evil, got)
	}
	if got := dial(http.Header{"Origin": {evil}, "Authorization": {"Bearer " + tok}, "Cookie": {cookie}}); got != 403 {
		t.Errorf("WebSocket with a bearer token and the cookie from %s: %d, want 403", evil, got)
	}

	json := map[string]string{"Content-Type": "application/json"}
	with := func(extra map[string]string) map[string]string {
		h := map[string]string{}
		for k, v := range json {
			h[k] = v
		}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	cases := []struct {
		name, method, path string
		header             map[string]string
		body               string
		want               int
	}{
		{"post as the victim", "POST", "/api/rooms/xo/messages", with(map[string]string{"Origin": evil, "Cookie": cookie}), `{"text":"csrf"}`, 403},
		{"login CSRF", "POST", "/api/session", with(map[string]string{"Origin": evil}), `{"name":"mallory"}`, 403},
		{"logout CSRF", "DELETE", "/api/session", map[string]string{"Origin": evil, "Cookie": cookie}, "", 403},
		{"SSE as the victim", "GET", "/api/rooms/xo/events?after=0", map[string]string{"Origin": evil, "Cookie": cookie}, "", 403},
		{"bearer from anywhere", "POST", "/api/rooms/xo/messages", with(map[string]string{"Origin": evil, "Authorization": "Bearer " + tok}), `{"text":"api"}`, 202},
		{"own origin", "POST", "/api/rooms/xo/messages", with(map[string]string{"Origin": s.base, "Cookie": cookie}), `{"text":"ui"}`, 202},
		{"public URL behind a proxy", "POST", "/api/rooms/xo/messages", with(map[string]string{"Origin": "https://chat.example.com", "Cookie": cookie}), `{"text":"ui"}`, 202},
		{"no Origin (not a browser)", "POST", "/api/rooms/xo/messages", with(map[string]string{"Cookie": cookie}), `{"text":"curl"}`, 202},
	}
	for _, tc := range cases {
		status, _, b := s.req(tc.method, tc.path, tc.header, []byte(tc.body))
		if status != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, status, b, tc.want)
		}
		if tc.want == 403 && !strings.Contains(string(b), `"code":"forbidden"`) {
			t.Errorf("%s: body %s, want code forbidden", tc.name, b)
		}
	}
}

// TestSlowAndIdleConnectionsClosed: slowloris connections that trickle a
// header byte at a time, and connections that send nothing, are closed
// within the read and idle timeouts; a WebSocket and an SSE stream outlive
// both.
func TestSlowAndIdleConnectionsClosed(t *testing.T) {
	const readTimeout, idleTimeout = 2 * time.Second, 3 * time.Second
	s := startServer(t, func(c *Config) { c.ReadTimeout, c.IdleTimeout = readTimeout, idleTimeout })
	tok := s.login("alice")
	c := s.dial(tok)
	st := s.sse(tok, "slow", "?after=0", nil)
	addr := strings.TrimPrefix(s.base, "http://")

	const n = 50
	start := time.Now()
	var closedIn sync.Map
	var wg sync.WaitGroup
	for i := range 2 * n {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		wg.Go(func() {
			slow := i < n
			req := "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 200)
			buf := make([]byte, 1)
			for k := 0; ; k++ {
				if slow && k < len(req) {
					if _, err := conn.Write([]byte{req[k]}); err != nil {
						break
					}
				}
				conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				if _, err := conn.Read(buf); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						if time.Since(start) > 20*time.Second {
							return // never closed
						}
						continue
					}
					break // closed by the server (or answered)
				}
				// Any byte is the server's answer (a 408 is fine): read on to EOF.
			}
			closedIn.Store(i, time.Since(start))
		})
	}
	wg.Wait()
	for i := range 2 * n {
		v, ok := closedIn.Load(i)
		kind, limit := "slowloris", readTimeout
		if i >= n {
			kind, limit = "silent", idleTimeout
		}
		if !ok {
			t.Fatalf("%s connection %d still open after 20 s", kind, i)
		}
		if d := v.(time.Duration); d > limit+2*time.Second {
			t.Errorf("%s connection %d closed after %v, want within %v", kind, i, d, limit)
		}
	}
	// The WebSocket and the stream keep their own deadlines.
	c.stillOpen()
	status, _, b := s.req("POST", "/api/rooms/slow/messages", map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json"}, []byte(`{"id":"alive","text":"still here"}`))
	if status != 202 {
		t.Fatalf("post: %d %s", status, b)
	}
	if got := st.messages(1); got[0].ID != "alive" {
		t.Fatalf("SSE stream after the timeouts: %+v", got)
	}
}

// TestConnectionLimits: the 21st live connection of one user and the 201st
// of one client IP are refused with 429 rate_limited before the upgrade; a
// closed connection gives its slot back.
func TestConnectionLimits(t *testing.T) {
	s := startServer(t, func(c *Config) { c.MaxConnsPerUser, c.MaxConnsPerIP = 20, 200 })
	alice := s.login("alice")
	var conns []*wsClient
	for i := range 20 {
		if i%4 == 3 {
			s.sse(alice, "lim", "", nil)
			continue
		}
		conns = append(conns, s.dial(alice))
	}
	_, resp, err := s.dialRaw(alice, nil)
	if err == nil || resp == nil || resp.StatusCode != 429 {
		t.Fatalf("21st connection of alice: %v %v, want 429", err, resp)
	}
	b, _ := io.ReadAll(resp.Body)
	apiError(t, resp.StatusCode, b, 429, "rate_limited")
	status, _, b := s.req("GET", "/api/rooms/lim/events", map[string]string{"Authorization": "Bearer " + alice}, nil)
	apiError(t, status, b, 429, "rate_limited")

	conns[0].conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, _, err := s.dialRaw(alice, nil)
		if err == nil {
			c.conn.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a closed connection's slot was not given back within 5 s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Per IP: other users, same address, up to 200 in all.
	time.Sleep(200 * time.Millisecond)
	open := 0
	var refused *http.Response
	for u := 0; refused == nil && u < 20; u++ {
		tok := s.login(fmt.Sprintf("user%d", u))
		for range 19 {
			_, resp, err := s.dialRaw(tok, nil)
			if err != nil {
				refused = resp
				break
			}
			open++
		}
	}
	if refused == nil || refused.StatusCode != 429 {
		t.Fatalf("no refusal from one IP after %d more connections", open)
	}
	// alice holds 19 (one of her 20 was closed above).
	if total := open + 19; total != 200 {
		t.Fatalf("refused at connection %d of the IP, want the 201st", total+1)
	}
	if v := s.metric(`parley_refused_total{reason="ip_connections"}`); v < 1 {
		t.Fatalf("parley_refused_total{reason=ip_connections} = %v", v)
	}
}

// TestSendBucketIsPerUser: 20 sockets of one user share one send bucket;
// another user has their own.
func TestSendBucketIsPerUser(t *testing.T) {
	s := startServer(t, func(c *Config) { c.SendRate, c.SendBurst = 20, 40 })
	tok := s.login("alice")
	var socks []*wsClient
	for range 20 {
		socks = append(socks, s.dial(tok))
	}
	start := time.Now()
	for i, c := range socks {
		for k := range 10 {
			c.write(map[string]any{"type": "send", "room": "bucket", "id": fmt.Sprintf("s%d-%d", i, k), "text": "flood"})
		}
	}
	acks, limited := 0, 0
	for _, c := range socks {
		for range 10 {
			f := c.next(10 * time.Second)
			for f["type"] == "message" {
				f = c.next(10 * time.Second)
			}
			switch {
			case f["type"] == "ack":
				acks++
			case f["type"] == "error" && f["code"] == "rate_limited":
				limited++
			default:
				t.Fatalf("frame %v", f)
			}
		}
	}
	elapsed := time.Since(start)
	if most := 40 + int(20*elapsed.Seconds()) + 1; acks > most || acks < 40 {
		t.Fatalf("20 sockets of one user got %d of 200 sends acked in %v: want 40 to %d", acks, elapsed, most)
	}
	if acks+limited != 200 {
		t.Fatalf("acks %d + rate_limited %d != 200", acks, limited)
	}
	// Bob's bucket is his own.
	bob := s.dial(s.login("bob"))
	bob.write(`{"type":"send","room":"bucket","id":"b1","text":"hi"}`)
	bob.ack("b1")
}

// TestIDSquattingStoresBoth: another user who sends an id first no longer
// swallows the victim's message: the key is (room, user, id).
func TestIDSquattingStoresBoth(t *testing.T) {
	s := startServer(t, nil)
	alice, mallory := s.login("alice"), s.login("mallory")
	for _, tok := range []string{mallory, alice, alice} {
		status, b := s.do("POST", "/api/rooms/squat/messages", tok, `{"id":"the-id","text":"hello from me"}`)
		if status != 202 {
			t.Fatalf("post: %d %s", status, b)
		}
	}
	p := s.waitHistory(alice, "squat", 2)
	time.Sleep(300 * time.Millisecond)
	p = s.history(alice, "squat", "")
	if len(p.Messages) != 2 || p.Messages[0].User != "mallory" || p.Messages[1].User != "alice" || p.Messages[1].Seq != 2 {
		t.Fatalf("history %+v: want mallory's and alice's messages, once each", p.Messages)
	}
}

// TestSecurityHeaders: the page, the API, static files, errors and
// operations all carry the headers.
func TestSecurityHeaders(t *testing.T) {
	s := startServer(t, nil)
	tok := s.login("alice")
	for _, path := range []string{"/", "/api/rooms", "/api/nope", "/static/app.js", "/static/missing.js", "/healthz", "/nope", "/ws"} {
		status, h, _ := s.req("GET", path, map[string]string{"Authorization": "Bearer " + tok}, nil)
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s (%d): CSP %q lacks %s", path, status, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: CSP %q allows inline code", path, csp)
		}
		for name, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"} {
			if got := h.Get(name); got != want {
				t.Errorf("%s (%d): %s = %q, want %q", path, status, name, got, want)
			}
		}
	}
}

// TestForwardedHeadersOnlyFromTrustedProxies: a client's own
// X-Forwarded-Proto does not make the cookie Secure, nor its
// X-Forwarded-For its address; a trusted proxy's do.
func TestForwardedHeadersOnlyFromTrustedProxies(t *testing.T) {
	secure := func(s *testServer, name string) bool {
		status, h, b := s.req("POST", "/api/session", map[string]string{"Content-Type": "application/json", "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}, []byte(`{"name":"`+name+`"}`))
		if status != 200 {
			t.Fatalf("sign in: %d %s", status, b)
		}
		return strings.Contains(strings.ToLower(h.Get("Set-Cookie")), "secure")
	}
	plain := startServer(t, func(c *Config) { c.SignInRate, c.SignInBurst = 0.001, 2 })
	if secure(plain, "a1") {
		t.Error("an untrusted client's X-Forwarded-Proto made the cookie Secure")
	}
	// Its X-Forwarded-For is not its address: spoofing a new one each time
	// does not escape the per-IP sign-in limit.
	secure(plain, "a2")
	status, _, b := plain.req("POST", "/api/session", map[string]string{"Content-Type": "application/json", "X-Forwarded-For": "198.51.100.9"}, []byte(`{"name":"a3"}`))
	apiError(t, status, b, 429, "rate_limited")

	proxied := startServer(t, func(c *Config) { c.TrustedProxies = []string{"127.0.0.0/8"}; c.SignInRate, c.SignInBurst = 0.001, 2 })
	if !secure(proxied, "b1") {
		t.Error("a trusted proxy's X-Forwarded-Proto: https did not make the cookie Secure")
	}
	secure(proxied, "b2")
	// Behind the proxy, limits count the forwarded client address.
	status, _, b = proxied.req("POST", "/api/session", map[string]string{"Content-Type": "application/json", "X-Forwarded-For": "198.51.100.9"}, []byte(`{"name":"b3"}`))
	if status != 200 {
		t.Fatalf("another client behind the trusted proxy: %d %s", status, b)
	}
}

// TestMetricsAccess: /metrics on the chat listener answers loopback (not
// through a proxy) and the token, or moves to its own address.
func TestMetricsAccess(t *testing.T) {
	s := startServer(t, func(c *Config) { c.MetricsToken = "metrics-token-1234" })
	if status, _, _ := s.req("GET", "/metrics", nil, nil); status != 200 {
		t.Errorf("loopback /metrics: %d", status)
	}
	status, _, b := s.req("GET", "/metrics", map[string]string{"X-Forwarded-For": "203.0.113.7"}, nil)
	apiError(t, status, b, 403, "forbidden")
	if status, _, _ := s.req("GET", "/metrics", map[string]string{"X-Forwarded-For": "203.0.113.7", "Authorization": "Bearer metrics-token-1234"}, nil); status != 200 {
		t.Errorf("/metrics with the token: %d", status)
	}
	status, _, b = s.req("GET", "/metrics", map[string]string{"X-Forwarded-For": "203.0.113.7", "Authorization": "Bearer wrong"}, nil)
	apiError(t, status, b, 403, "forbidden")

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	maddr := l.Addr().String()
	l.Close()
	own := startServer(t, func(c *Config) { c.MetricsAddr = maddr })
	status, _, b = own.req("GET", "/metrics", nil, nil)
	apiError(t, status, b, 404, "not_found")
	resp, err := http.Get("http://" + maddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(mb), "go_goroutines") {
		t.Fatalf("PARLEY_METRICS_ADDR /metrics: %d %.200s", resp.StatusCode, mb)
	}
}

// TestMalformedRequestsEchoNothing: what the HTTP layer refuses itself (a
// malformed Content-Length, oversized headers) is answered on the one error
// path, with no request header in the answer.
func TestMalformedRequestsEchoNothing(t *testing.T) {
	s := startServer(t, nil)
	addr := strings.TrimPrefix(s.base, "http://")
	for name, raw := range map[string]string{
		"malformed Content-Length": "POST /api/session HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer SECRET-TOKEN-xyz\r\nContent-Length: 12abc\r\n\r\n{}",
		"negative Content-Length":  "POST /api/session HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer SECRET-TOKEN-xyz\r\nContent-Length: -5\r\n\r\n{}",
		"huge header":              "GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer SECRET-TOKEN-xyz\r\nX-Big: " + strings.Repeat("b", 10000) + "\r\n\r\n",
		"broken request line":      "GET /\x00 SECRET-TOKEN-xyz HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		conn.Write([]byte(raw))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			conn.Close()
			t.Errorf("%s: no HTTP answer: %v", name, err)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		conn.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("%s: status %d", name, resp.StatusCode)
		}
		if strings.Contains(string(b), "SECRET-TOKEN") || strings.Contains(string(b), "Authorization") || strings.Contains(string(b), "bbbb") {
			t.Errorf("%s: answer echoes the request: %s", name, b)
		}
		if !strings.HasPrefix(string(b), `{"error":{"code":`) || resp.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("%s: answer %d %s is not the one error path's", name, resp.StatusCode, b)
		}
	}
}

// TestTextRulesRefused: bidi controls, zalgo, control characters and
// invisible text are bad_request on WebSocket and POST alike.
func TestTextRulesRefused(t *testing.T) {
	s := startServer(t, nil)
	tok := s.login("alice")
	c := s.dial(tok)
	for name, text := range map[string]string{
		"RLO (.exe shown as .jpg)": "invoice\u202egpj.exe",
		"isolate":                  "a\u2067b\u2069",
		"zalgo":                    "Z" + strings.Repeat("\u0336", 30),
		"NUL":                      "a\x00b",
		"ANSI escape":              "\x1b[2J\x1b[31mred",
		"only Hangul fillers":      "\u3164\u3164\u3164",
		"only zero-width":          "\u200b\u200d",
	} {
		id := fmt.Sprintf("t%d", len(name))
		c.write(map[string]any{"type": "send", "room": "text", "id": id, "text": text})
		c.expectError("bad_request", id, "text")
		body := fmt.Sprintf(`{"text":%q}`, text)
		body = strings.ReplaceAll(body, `\x00`, `\u0000`)
		body = strings.ReplaceAll(body, `\x1b`, `\u001b`)
		status, b := s.do("POST", "/api/rooms/text/messages", tok, body)
		if status != 400 {
			t.Errorf("POST %s: %d %s, want 400", name, status, b)
		}
	}
	c.write(`{"type":"send","room":"text","id":"ok","text":"שלום, مرحبا, 안녕 👍🏽 and e\u0301"}`)
	c.ack("ok")
}

// TestPerUserAndPerIPRateLimits: sign-ins per IP, history reads per user,
// rooms created per user.
func TestPerUserAndPerIPRateLimits(t *testing.T) {
	s := startServer(t, func(c *Config) {
		c.SignInRate, c.SignInBurst = 0.001, 3
		c.HistoryRate, c.HistoryBurst = 0.001, 3
		c.RoomRate, c.RoomBurst = 0.001, 2
	})
	var toks []string
	for i := range 3 {
		toks = append(toks, s.login(fmt.Sprintf("u%d", i)))
	}
	status, b := s.do("POST", "/api/session", "", `{"name":"u3"}`)
	apiError(t, status, b, 429, "rate_limited")

	for range 3 {
		if status, b := s.do("GET", "/api/rooms/r/messages", toks[0], ""); status != 200 {
			t.Fatalf("history: %d %s", status, b)
		}
	}
	status, b = s.do("GET", "/api/rooms/r/messages", toks[0], "")
	apiError(t, status, b, 429, "rate_limited")
	if status, _ := s.do("GET", "/api/rooms/r/messages", toks[1], ""); status != 200 {
		t.Fatalf("another user's history read: %d", status)
	}

	c := s.dial(toks[2])
	c.write(`{"type":"send","room":"new-a","id":"a","text":"first"}`)
	c.ack("a")
	status, b = s.do("POST", "/api/rooms/new-b/messages", toks[2], `{"id":"b","text":"first"}`)
	if status != 202 {
		t.Fatalf("second new room: %d %s", status, b)
	}
	c.write(`{"type":"send","room":"new-c","id":"c","text":"first"}`)
	c.expectError("rate_limited", "c", "new-c")
	status, b = s.do("POST", "/api/rooms/new-d/messages", toks[2], `{"id":"d","text":"first"}`)
	apiError(t, status, b, 429, "rate_limited")
	// Rooms that exist take messages as before.
	s.waitHistory(toks[1], "new-a", 1)
	c.write(`{"type":"send","room":"new-a","id":"a2","text":"again"}`)
	c.ack("a2")
	if v := s.metric(`parley_refused_total{reason="room_rate"}`); v != 2 {
		t.Fatalf("parley_refused_total{reason=room_rate} = %v, want 2", v)
	}
}

// TestRoomListPages: GET /api/rooms pages by name with limit and cursor.
func TestRoomListPages(t *testing.T) {
	s := startServer(t, nil)
	tok := s.login("alice")
	want := []string{"page-a", "page-b", "page-c", "page-d", "page-e"}
	for _, r := range want {
		if status, b := s.do("POST", "/api/rooms/"+r+"/messages", tok, `{"text":"hi"}`); status != 202 {
			t.Fatalf("post: %d %s", status, b)
		}
	}
	s.waitRooms(tok, len(want))
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		q := "/api/rooms?limit=2"
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		status, b := s.do("GET", q, tok, "")
		if status != 200 {
			t.Fatalf("%s: %d %s", q, status, b)
		}
		var p struct {
			Rooms []struct {
				Room    string `json:"room"`
				LastSeq int64  `json:"last_seq"`
			} `json:"rooms"`
			Next *string `json:"next_cursor"`
		}
		mustJSON(t, b, &p)
		if len(p.Rooms) > 2 || pages > 5 {
			t.Fatalf("page %s", b)
		}
		for _, r := range p.Rooms {
			got = append(got, r.Room)
		}
		if p.Next == nil {
			if !strings.Contains(string(b), `"next_cursor":null`) {
				t.Fatalf("last page %s: want next_cursor null", b)
			}
			break
		}
		cursor = *p.Next
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("paged rooms %v, want %v", got, want)
	}
	for _, q := range []string{"?limit=0", "?limit=201", "?limit=x", "?cursor=!!", "?cursor=" + url.QueryEscape("Tm90IGEgcm9vbQ")} {
		status, b := s.do("GET", "/api/rooms"+q, tok, "")
		apiError(t, status, b, 400, "bad_request")
	}
}

// TestShortSecretRefused: a PARLEY_SECRET under 32 bytes is refused at start.
func TestShortSecretRefused(t *testing.T) {
	for _, secret := range []string{"x", strings.Repeat("s", 31)} {
		_, err := LoadConfig(func(k string) string {
			if k == "PARLEY_SECRET" {
				return secret
			}
			return ""
		}, nil)
		if err == nil || !strings.Contains(err.Error(), "at least 32 bytes") {
			t.Errorf("secret of %d bytes: %v", len(secret), err)
		}
	}
	if _, err := LoadConfig(func(k string) string {
		if k == "PARLEY_SECRET" {
			return strings.Repeat("s", 32)
		}
		return ""
	}, nil); err != nil {
		t.Fatalf("32-byte secret: %v", err)
	}
}
