package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/golang-jwt/jwt/v5"
)

// People and sessions (PROTOCOL.md v2), black-box, in both modes.

// signIn posts body to path and returns status, the answer and its body.
func (s *testServer) signIn(path string, body any) (int, sessionAnswer, []byte) {
	s.t.Helper()
	b, _ := json.Marshal(body)
	status, out := s.do("POST", path, "", string(b))
	var a sessionAnswer
	if status/100 == 2 {
		mustJSON(s.t, out, &a)
	}
	return status, a, out
}

type sessionAnswer struct {
	User    string `json:"user"`
	Token   string `json:"token"`
	Guest   bool   `json:"guest"`
	Expires int64  `json:"expires"`
}

// tokenClaims reads a token's claims without checking it.
func tokenClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	mustJSON(t, b, &c)
	return c
}

func TestAccounts(t *testing.T) {
	s := startServer(t, func(c *Config) { c.PasswordBurst, c.PasswordRate = 4, 0.001 })
	status, a, b := s.signIn("/api/accounts", map[string]string{"name": "alice", "password": "correct horse"})
	if status != 201 || a.User != "alice" || a.Token == "" || a.Guest {
		t.Fatalf("create account: %d %s", status, b)
	}
	if c := tokenClaims(t, a.Token); c["sid"] == "" || c["sid"] == nil || c["guest"] != nil {
		t.Fatalf("account token claims %v: want a sid and no guest claim", c)
	}
	if status, b := s.do("GET", "/api/rooms", a.Token, ""); status != 200 {
		t.Fatalf("account token refused: %d %s", status, b)
	}

	t.Run("bad input", func(t *testing.T) {
		for _, c := range []struct {
			why  string
			body map[string]string
			code int
			err  string
		}{
			{"name taken", map[string]string{"name": "alice", "password": "another password"}, 409, "conflict"},
			{"look-alike, case", map[string]string{"name": "ALICE", "password": "another password"}, 409, "conflict"},
			{"look-alike, Cyrillic а", map[string]string{"name": "аlice", "password": "another password"}, 400, "bad_request"}, // mixed scripts
			{"look-alike, fullwidth", map[string]string{"name": "ａｌｉｃｅ", "password": "another password"}, 409, "conflict"},
			{"password too short", map[string]string{"name": "bob", "password": "123456789"}, 400, "bad_request"},
			{"password too long", map[string]string{"name": "bob", "password": strings.Repeat("p", 201)}, 400, "bad_request"},
			{"reserved name", map[string]string{"name": "admin", "password": "long enough pw"}, 400, "bad_request"},
			{"filler name", map[string]string{"name": "\u3164", "password": "long enough pw"}, 400, "bad_request"},
		} {
			status, _, b := s.signIn("/api/accounts", c.body)
			apiError(t, status, b, c.code, c.err)
		}
		// The longest password is fine.
		if status, _, b := s.signIn("/api/accounts", map[string]string{"name": "bob", "password": strings.Repeat("p", 200)}); status != 201 {
			t.Fatalf("200-character password: %d %s", status, b)
		}
	})

	t.Run("a guest cannot take an account's name", func(t *testing.T) {
		for _, name := range []string{"alice", "Alice", "ａｌｉｃｅ"} {
			status, _, b := s.signIn("/api/session", map[string]string{"name": name})
			apiError(t, status, b, 409, "conflict")
		}
	})

	t.Run("password sign-in", func(t *testing.T) {
		status, a, b := s.signIn("/api/session", map[string]string{"name": "Alice", "password": "correct horse"})
		if status != 200 || a.User != "alice" || a.Guest {
			t.Fatalf("sign in: %d %s (the user is the account's name as created)", status, b)
		}
		_, _, wrong := s.signIn("/api/session", map[string]string{"name": "alice", "password": "wrong horse!"})
		status, _, unknown := s.signIn("/api/session", map[string]string{"name": "nobody", "password": "wrong horse!"})
		apiError(t, status, unknown, 401, "unauthorized")
		if string(wrong) != string(unknown) {
			t.Fatalf("a wrong password (%s) and an unknown name (%s) must be answered alike", wrong, unknown)
		}
		// Guest sessions are no accounts: their names have no password.
		s.login("carol")
		status, _, b = s.signIn("/api/session", map[string]string{"name": "carol", "password": "whatever it is"})
		apiError(t, status, b, 401, "unauthorized")
	})

	t.Run("attempts per name are limited", func(t *testing.T) {
		// A burst of 4 per name (set above); two were used by the subtest
		// before (wrong password, right one). From any IP.
		for range 2 {
			s.signIn("/api/session", map[string]string{"name": "alice", "password": "wrong horse!"})
		}
		status, _, b := s.signIn("/api/session", map[string]string{"name": "alice", "password": "correct horse"})
		apiError(t, status, b, 429, "rate_limited")
		// Another name is not held back.
		if status, _, b := s.signIn("/api/session", map[string]string{"name": "bob", "password": strings.Repeat("p", 200)}); status != 200 {
			t.Fatalf("another name: %d %s", status, b)
		}
	})
}

func TestAccountsCanBeTurnedOff(t *testing.T) {
	s := startServer(t, func(c *Config) { c.NoAccounts = true })
	status, _, b := s.signIn("/api/accounts", map[string]string{"name": "alice", "password": "correct horse"})
	apiError(t, status, b, 403, "forbidden")
}

func TestGuestsHoldTheirNames(t *testing.T) {
	s := startServer(t, nil)
	status, a, b := s.signIn("/api/session", map[string]string{"name": "dana"})
	if status != 200 || !a.Guest || tokenClaims(t, a.Token)["guest"] != true {
		t.Fatalf("guest sign-in: %d %s, want guest true and the guest claim", status, b)
	}
	for _, name := range []string{"dana", "Dana", "DANA", "ｄａｎａ"} {
		status, _, b := s.signIn("/api/session", map[string]string{"name": name})
		apiError(t, status, b, 409, "conflict")
	}
	status, _, b = s.signIn("/api/accounts", map[string]string{"name": "dana", "password": "correct horse"})
	apiError(t, status, b, 409, "conflict")

	// A guest's messages carry guest, an account's do not.
	c := s.dial(a.Token)
	c.join("guests")
	c.sendAcked("guests", "g1", "from a guest")
	c.ack("g1")
	_, acct, _ := s.signIn("/api/accounts", map[string]string{"name": "erin", "password": "correct horse"})
	if status, b := s.do("POST", "/api/rooms/guests/messages", acct.Token, `{"id":"a1","text":"from an account"}`); status != 202 {
		t.Fatalf("post: %d %s", status, b)
	}
	var live []map[string]any
	for len(live) < 2 {
		if f := c.next(5 * time.Second); f["type"] == "message" {
			live = append(live, f)
		}
	}
	if live[0]["guest"] != true || live[1]["guest"] != nil {
		t.Fatalf("live frames %v: want guest true on the guest's message only", live)
	}
	_, hist := s.do("GET", "/api/rooms/guests/messages", acct.Token, "")
	var p struct{ Messages []map[string]any }
	mustJSON(t, hist, &p)
	if len(p.Messages) != 2 || p.Messages[0]["guest"] != true || p.Messages[1]["guest"] != nil {
		t.Fatalf("history %s: want guest true on the guest's message only", hist)
	}

	// Signing out frees the name.
	if status, b := s.do("DELETE", "/api/session", a.Token, ""); status != 204 {
		t.Fatalf("sign out: %d %s", status, b)
	}
	if status, _, b := s.signIn("/api/session", map[string]string{"name": "Dana"}); status != 200 {
		t.Fatalf("the name after sign-out: %d %s", status, b)
	}
}

// TestSignOutEndsTheSession: DELETE /api/session ends the session's
// WebSocket (1008 "session ended"), SSE stream and REST access, while
// another session of the same account goes on.
func TestSignOutEndsTheSession(t *testing.T) {
	s := startServer(t, nil)
	_, a, _ := s.signIn("/api/accounts", map[string]string{"name": "frank", "password": "correct horse"})
	_, other, _ := s.signIn("/api/session", map[string]string{"name": "frank", "password": "correct horse"})
	ws := dialSession(t, s, a.Token)
	otherWS := dialSession(t, s, other.Token)
	st := s.sse(a.Token, "lobby", "", nil)
	if status, b := s.do("DELETE", "/api/session", a.Token, ""); status != 204 {
		t.Fatalf("sign out: %d %s", status, b)
	}
	sessionEnded(t, ws, st, 5*time.Second)
	refusedEverywhere(t, s, a.Token)
	// The other session of the same account is untouched.
	if status, b := s.do("GET", "/api/rooms", other.Token, ""); status != 200 {
		t.Fatalf("the other session: %d %s", status, b)
	}
	if err := otherWS.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	_ = otherWS.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, msg, err := otherWS.ReadMessage(); err != nil || !strings.Contains(string(msg), "pong") {
		t.Fatalf("the other session's WebSocket: %q %v", msg, err)
	}
}

func TestExpiryEndsConnections(t *testing.T) {
	s := startServer(t, func(c *Config) { c.TokenTTL = 2 * time.Second })
	_, a, _ := s.signIn("/api/session", map[string]string{"name": "gina"})
	ws := dialSession(t, s, a.Token)
	st := s.sse(a.Token, "lobby", "", nil)
	start := time.Now()
	sessionEnded(t, ws, st, 10*time.Second)
	if time.Unix(a.Expires, 0).After(time.Now()) {
		t.Fatalf("closed %v after connecting, before the token's expiry", time.Since(start))
	}
	refusedEverywhere(t, s, a.Token)
	// The guest's hold ended with the token: the name is free.
	if status, _, b := s.signIn("/api/session", map[string]string{"name": "gina"}); status != 200 {
		t.Fatalf("the name after expiry: %d %s", status, b)
	}
}

func TestRefresh(t *testing.T) {
	s := startServer(t, func(c *Config) { c.TokenTTL = time.Hour })
	_, a, _ := s.signIn("/api/session", map[string]string{"name": "hugo"})
	time.Sleep(1100 * time.Millisecond) // a later exp, in whole seconds
	status, b := s.do("POST", "/api/session/refresh", a.Token, "")
	if status != 200 {
		t.Fatalf("refresh: %d %s", status, b)
	}
	var r sessionAnswer
	mustJSON(t, b, &r)
	old, fresh := tokenClaims(t, a.Token), tokenClaims(t, r.Token)
	if r.User != "hugo" || !r.Guest || fresh["sid"] != old["sid"] || fresh["exp"].(float64) <= old["exp"].(float64) {
		t.Fatalf("refreshed %v from %v: want the same sid and user, a later exp", fresh, old)
	}
	if status, b := s.do("GET", "/api/rooms", r.Token, ""); status != 200 {
		t.Fatalf("refreshed token: %d %s", status, b)
	}
	// The session is one: signing out with the new token ends the old one.
	if status, _ := s.do("DELETE", "/api/session", r.Token, ""); status != 204 {
		t.Fatal("sign out")
	}
	status, b = s.do("GET", "/api/rooms", a.Token, "")
	apiError(t, status, b, 401, "unauthorized")
	status, b = s.do("POST", "/api/session/refresh", "", "")
	apiError(t, status, b, 401, "unauthorized")
}

// TestJWTRules: exp must be a number, and iss/aud are required when
// configured.
func TestJWTRules(t *testing.T) {
	s := startServer(t, func(c *Config) {
		c.Secret = testSecret("jwt")
		c.JWTIssuer, c.JWTAudience = "https://login.example", "parley"
	})
	mint := func(claims jwt.MapClaims) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(testSecret("jwt")))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	exp := time.Now().Add(time.Hour).Unix()
	for _, c := range []struct {
		why    string
		claims jwt.MapClaims
		want   int
	}{
		{"all good", jwt.MapClaims{"sub": "ivan", "exp": exp, "iss": "https://login.example", "aud": "parley"}, 200},
		{"aud as a list", jwt.MapClaims{"sub": "ivan", "exp": exp, "iss": "https://login.example", "aud": []string{"other", "parley"}}, 200},
		{"exp a string", jwt.MapClaims{"sub": "ivan", "exp": "9999999999", "iss": "https://login.example", "aud": "parley"}, 401},
		{"no exp", jwt.MapClaims{"sub": "ivan", "iss": "https://login.example", "aud": "parley"}, 401},
		{"expired", jwt.MapClaims{"sub": "ivan", "exp": time.Now().Add(-time.Minute).Unix(), "iss": "https://login.example", "aud": "parley"}, 401},
		{"no iss", jwt.MapClaims{"sub": "ivan", "exp": exp, "aud": "parley"}, 401},
		{"wrong iss", jwt.MapClaims{"sub": "ivan", "exp": exp, "iss": "https://evil.example", "aud": "parley"}, 401},
		{"no aud", jwt.MapClaims{"sub": "ivan", "exp": exp, "iss": "https://login.example"}, 401},
		{"wrong aud", jwt.MapClaims{"sub": "ivan", "exp": exp, "iss": "https://login.example", "aud": "other"}, 401},
	} {
		if status, b := s.do("GET", "/api/rooms", mint(c.claims), ""); status != c.want {
			t.Errorf("%s: %d %s, want %d", c.why, status, b, c.want)
		}
	}
	// Parley's own tokens carry the configured iss and aud.
	_, a, _ := s.signIn("/api/session", map[string]string{"name": "judy"})
	if c := tokenClaims(t, a.Token); c["iss"] != "https://login.example" || c["aud"] == nil {
		t.Fatalf("issued claims %v: want iss and aud", c)
	}
}

// TestRevocationReachesEveryInstance: a session signed out on instance A
// ends its WebSocket on instance B within 5 s (the contract's bound), in
// the distributed mode (two instances, one Kafka and one MongoDB).
func TestRevocationReachesEveryInstance(t *testing.T) {
	cfg, _ := clusterConfig(t)
	a := startInstance(t, cfg, "rev-a")
	b := startInstance(t, cfg, "rev-b")
	_, sess, body := a.signIn("/api/session", map[string]string{"name": "kim"})
	if sess.Token == "" {
		t.Fatalf("sign in on a: %s", body)
	}
	// The name is held on every instance.
	status, _, out := b.signIn("/api/session", map[string]string{"name": "Kim"})
	apiError(t, status, out, 409, "conflict")
	ws := dialSession(t, b, sess.Token)
	st := b.sse(sess.Token, "lobby", "", nil)
	start := time.Now()
	if status, out := a.do("DELETE", "/api/session", sess.Token, ""); status != 204 {
		t.Fatalf("sign out on a: %d %s", status, out)
	}
	sessionEnded(t, ws, st, 5*time.Second)
	t.Logf("instance b ended the session %v after a revoked it", time.Since(start).Round(time.Millisecond))
	status, out = b.do("GET", "/api/rooms", sess.Token, "")
	apiError(t, status, out, 401, "unauthorized")
	// And the name is free on both.
	if status, _, out := b.signIn("/api/session", map[string]string{"name": "kim"}); status != 200 {
		t.Fatalf("the name on b after sign-out: %d %s", status, out)
	}
}

// refusedEverywhere checks that every authenticated route answers token
// 401, the WebSocket before its upgrade.
func refusedEverywhere(t *testing.T, s *testServer, token string) {
	t.Helper()
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/api/rooms", ""},
		{"GET", "/api/rooms/lobby/messages", ""},
		{"POST", "/api/rooms/lobby/messages", `{"id":"late","text":"after the end"}`},
		{"GET", "/api/rooms/lobby/events", ""},
		{"POST", "/api/session/refresh", ""},
	} {
		status, b := s.do(r.method, r.path, token, r.body)
		if status != 401 || !strings.Contains(string(b), `"code":"unauthorized"`) {
			t.Errorf("%s %s with an ended session's token: %d %s, want 401 unauthorized", r.method, r.path, status, b)
		}
	}
	if _, resp, err := s.dialRaw(token, nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Errorf("WebSocket with an ended session's token: %v %v, want 401", err, resp)
	}
}

// dialSession opens a raw WebSocket with token (the test's wsClient keeps
// only the close code; these tests check the reason too).
func dialSession(t *testing.T, s *testServer, token string) *websocket.Conn {
	t.Helper()
	u := "ws" + strings.TrimPrefix(s.base, "http") + "/ws?token=" + url.QueryEscape(token)
	conn, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// waitClosed reads conn until the server closes it and returns the close
// frame's code and text.
func waitClosed(t *testing.T, conn *websocket.Conn, within time.Duration) (int, string) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(within))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Text
		}
		t.Fatalf("WebSocket not closed by the server within %v: %v", within, err)
	}
}

// sessionEnded checks that the server ends a session's WebSocket with
// 1008 "session ended" and its SSE stream, within.
func sessionEnded(t *testing.T, ws *websocket.Conn, st *sseStream, within time.Duration) {
	t.Helper()
	if code, text := waitClosed(t, ws, within); code != 1008 || text != "session ended" {
		t.Fatalf("WebSocket closed with %d %q, want 1008 \"session ended\"", code, text)
	}
	waitSSEEnd(t, st, within)
}

// waitSSEEnd waits for the server to end the stream.
func waitSSEEnd(t *testing.T, st *sseStream, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case _, ok := <-st.events:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("SSE stream not ended within %v", within)
		}
	}
}

// TestSessionRoutesAreHardened: the v2 session routes get the origin check
// and the JSON-only body rule like every route.
func TestSessionRoutesAreHardened(t *testing.T) {
	s := startServer(t, nil)
	_, a, _ := s.signIn("/api/session", map[string]string{"name": "lena"})
	cookie := "parley_session=" + a.Token
	evil := "https://evil.example"
	json := map[string]string{"Content-Type": "application/json"}
	with := func(extra map[string]string) map[string]string {
		h := map[string]string{"Content-Type": "application/json"}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	for _, c := range []struct {
		why, method, path string
		header            map[string]string
		body              string
		want              int
		code              string
	}{
		{"account creation from another origin", "POST", "/api/accounts", with(map[string]string{"Origin": evil}), `{"name":"mallory","password":"long enough pw"}`, 403, "forbidden"},
		{"refresh as the victim", "POST", "/api/session/refresh", map[string]string{"Origin": evil, "Cookie": cookie}, "", 403, "forbidden"},
		{"password sign-in from another origin", "POST", "/api/session", with(map[string]string{"Origin": evil}), `{"name":"lena","password":"long enough pw"}`, 403, "forbidden"},
		{"account as a form", "POST", "/api/accounts", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, `name=x&password=long+enough+pw`, 415, "bad_request"},
		{"account not JSON", "POST", "/api/accounts", json, `{"name":`, 400, "bad_request"},
		{"account with unknown field types", "POST", "/api/accounts", json, `{"name":1,"password":2}`, 400, "bad_request"},
		{"password not a string", "POST", "/api/session", json, `{"name":"lena","password":12345678901}`, 400, "bad_request"},
		{"refresh without a token", "POST", "/api/session/refresh", nil, "", 401, "unauthorized"},
		{"refresh with a body of another type", "POST", "/api/session/refresh", map[string]string{"Content-Type": "text/plain", "Cookie": cookie}, "hello", 415, "bad_request"},
	} {
		status, _, b := s.req(c.method, c.path, c.header, []byte(c.body))
		if status != c.want || !strings.Contains(string(b), `"code":"`+c.code+`"`) {
			t.Errorf("%s: %d %s, want %d %s", c.why, status, b, c.want, c.code)
		}
	}
}

// TestRefreshIsLimited: refreshes count against the client IP's sign-in
// limit.
func TestRefreshIsLimited(t *testing.T) {
	s := startServer(t, func(c *Config) { c.SignInRate, c.SignInBurst = 0.001, 3 })
	_, a, _ := s.signIn("/api/session", map[string]string{"name": "mona"}) // 1 of 3
	for range 2 {
		if status, b := s.do("POST", "/api/session/refresh", a.Token, ""); status != 200 {
			t.Fatalf("refresh: %d %s", status, b)
		}
	}
	status, b := s.do("POST", "/api/session/refresh", a.Token, "")
	apiError(t, status, b, 429, "rate_limited")
}
