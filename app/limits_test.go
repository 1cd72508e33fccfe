package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// expectError reads the next frame, which must be an error with code (and,
// when given, the id and room it concerns).
func (c *wsClient) expectError(code, id, room string) {
	c.t.Helper()
	f := c.expect("error")
	if f["code"] != code || f["message"] == "" {
		c.t.Fatalf("error frame %v, want code %s", f, code)
	}
	if id != "" && f["id"] != id {
		c.t.Fatalf("error frame %v, want id %s", f, id)
	}
	if room != "" && f["room"] != room {
		c.t.Fatalf("error frame %v, want room %s", f, room)
	}
}

// stillOpen proves the connection survived: ping gets pong.
func (c *wsClient) stillOpen() {
	c.t.Helper()
	c.write(`{"type":"ping"}`)
	c.expect("pong")
}

func TestBadFramesGetErrorsAndKeepTheConnection(t *testing.T) {
	s := startServer(t, nil)
	tok := s.login("alice")
	c := s.dial(tok)
	c.join("limits")
	cases := []struct {
		name, frame, id, room string
	}{
		{"invalid JSON", `{"type":"send",`, "", ""},
		{"not an object", `[1,2]`, "", ""},
		{"no type", `{"room":"limits"}`, "", ""},
		{"unknown type", `{"type":"shout","room":"limits"}`, "", ""},
		{"bad room on join", `{"type":"join","room":"Not Valid"}`, "", "Not Valid"},
		{"room too long", `{"type":"join","room":"` + strings.Repeat("a", 65) + `"}`, "", ""},
		{"negative after", `{"type":"join","room":"limits","after":-1}`, "", "limits"},
		{"fractional after", `{"type":"join","room":"limits","after":1.5}`, "", "limits"},
		{"string after", `{"type":"join","room":"limits","after":"3"}`, "", "limits"},
		{"bad room on send", `{"type":"send","room":"-x","id":"b1","text":"hi"}`, "b1", "-x"},
		{"empty text", `{"type":"send","room":"limits","id":"b2","text":""}`, "b2", "limits"},
		{"missing text", `{"type":"send","room":"limits","id":"b3"}`, "b3", "limits"},
		{"blank text", `{"type":"send","room":"limits","id":"b4","text":" \t\n\u00a0\u3000 "}`, "b4", "limits"},
		{"4001 code points", `{"type":"send","room":"limits","id":"b5","text":"` + strings.Repeat("é", 4001) + `"}`, "b5", "limits"},
		{"empty id", `{"type":"send","room":"limits","id":"","text":"hi"}`, "", "limits"},
		{"id with bad characters", `{"type":"send","room":"limits","id":"a b","text":"hi"}`, "a b", "limits"},
		{"id too long", `{"type":"send","room":"limits","id":"` + strings.Repeat("i", 65) + `","text":"hi"}`, "", "limits"},
		{"text not a string", `{"type":"send","room":"limits","id":"b6","text":42}`, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			c.write(tc.frame)
			c.expectError("bad_request", tc.id, tc.room)
			c.stillOpen()
		})
	}
	c.t = t
	t.Run("invalid UTF-8", func(t *testing.T) {
		c.t = t
		c.write([]byte("{\"type\":\"send\",\"room\":\"limits\",\"id\":\"u1\",\"text\":\"bad \xff\xfe\"}"))
		c.expectError("bad_request", "", "")
		c.stillOpen()
	})
	t.Run("binary frame", func(t *testing.T) {
		c.t = t
		if err := c.conn.WriteMessage(websocket.BinaryMessage, []byte(`{"type":"ping"}`)); err != nil {
			t.Fatal(err)
		}
		c.expectError("bad_request", "", "")
		c.stillOpen()
	})
	c.t = t
	// Exactly 4000 code points (of 2 bytes each) is fine.
	c.write(`{"type":"send","room":"limits","id":"ok4000","text":"` + strings.Repeat("é", 4000) + `"}`)
	c.ack("ok4000")
	if m := c.messages(1)[0]; m.ID != "ok4000" || m.Seq != 1 {
		t.Fatalf("got %+v", m)
	}
	// Nothing refused was stored: the accepted message is the room's only one.
	c.quiet(200 * time.Millisecond)
	if p := s.history(tok, "limits", ""); len(p.Messages) != 1 {
		t.Fatalf("history has %d messages, want 1", len(p.Messages))
	}
}

func TestOversizedFrameCloses1009(t *testing.T) {
	s := startServer(t, nil)
	tok := s.login("alice")
	c := s.dial(tok)
	c.join("big")
	big := `{"type":"send","room":"big","id":"x","text":"` + strings.Repeat("a", 64<<10) + `"}`
	_ = c.conn.WriteMessage(websocket.TextMessage, []byte(big))
	if code := c.waitClose(5 * time.Second); code != 1009 {
		t.Fatalf("close code %d, want 1009", code)
	}
	if p := s.history(tok, "big", ""); len(p.Messages) != 0 {
		t.Fatalf("stored %d messages", len(p.Messages))
	}
}

func TestHTTPBadInput(t *testing.T) {
	s := startServer(t, nil)
	tok := s.login("alice")
	post := func(body string) (int, []byte) { return s.do("POST", "/api/rooms/http/messages", tok, body) }
	for name, body := range map[string]string{
		"invalid JSON":   `{"text":`,
		"two objects":    `{"text":"a"} {"text":"b"}`,
		"empty text":     `{"id":"h1","text":""}`,
		"no text":        `{"id":"h1"}`,
		"blank text":     `{"id":"h1","text":"   "}`,
		"4001 runes":     `{"id":"h1","text":"` + strings.Repeat("x", 4001) + `"}`,
		"empty id":       `{"id":"","text":"hi"}`,
		"bad id":         `{"id":"no/slash","text":"hi"}`,
		"invalid UTF-8":  "{\"id\":\"h1\",\"text\":\"\xc3\x28\"}",
		"text is number": `{"id":"h1","text":5}`,
	} {
		status, b := post(body)
		t.Run(name, func(t *testing.T) { apiError(t, status, b, 400, "bad_request") })
	}
	status, b := s.do("POST", "/api/rooms/Bad_Room/messages", tok, `{"text":"hi"}`)
	apiError(t, status, b, 400, "bad_request")
	status, b = post(`{"id":"h1","text":"` + strings.Repeat("a", 64<<10) + `"}`)
	apiError(t, status, b, 413, "too_large")
	status, b = s.do("GET", "/api/rooms/http/events?after=x", tok, "")
	apiError(t, status, b, 400, "bad_request")
	status, b = s.do("GET", "/api/rooms/Nope/events", tok, "")
	apiError(t, status, b, 400, "bad_request")
	status, b = s.do("GET", "/api/nothing-here", tok, "")
	apiError(t, status, b, 404, "not_found")
	if p := s.history(tok, "http", ""); len(p.Messages) != 0 {
		t.Fatalf("stored %d messages", len(p.Messages))
	}
}

func TestSessionAndTokens(t *testing.T) {
	s := startServer(t, nil)
	for _, name := range []string{"", strings.Repeat("n", 33), "a b", "<script>", "semi;colon"} {
		status, b := s.do("POST", "/api/session", "", jsonBody(map[string]string{"name": name}))
		apiError(t, status, b, 400, "bad_request")
	}
	for _, name := range []string{"Zoë", "李雷", "a.b-c_d", strings.Repeat("n", 32), "7"} {
		if status, b := s.do("POST", "/api/session", "", jsonBody(map[string]string{"name": name})); status != 200 {
			t.Fatalf("name %q refused: %d %s", name, status, b)
		}
	}
	resp, err := http.Post(s.base+"/api/session", "application/json", strings.NewReader(`{"name":"carol"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookie := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"parley_session=", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(cookie, want) {
			t.Fatalf("cookie %q lacks %s", cookie, want)
		}
	}
	tok := s.login("dave") // carol is held by the session above (v2)

	get := func(h http.Header, query string) int {
		req, _ := http.NewRequest("GET", s.base+"/api/rooms"+query, nil)
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	good := "parley_session=" + tok
	checks := []struct {
		name   string
		header http.Header
		query  string
		want   int
	}{
		{"bearer", http.Header{"Authorization": {"Bearer " + tok}}, "", 200},
		{"cookie", http.Header{"Cookie": {good}}, "", 200},
		{"query", nil, "?token=" + tok, 200},
		{"missing", nil, "", 401},
		{"garbage", http.Header{"Authorization": {"Bearer nope"}}, "", 401},
		{"not bearer", http.Header{"Authorization": {"Basic " + tok}}, "", 401},
		// The first credential present is the one checked.
		{"bad bearer beats good cookie", http.Header{"Authorization": {"Bearer x"}, "Cookie": {good}}, "", 401},
		{"bad cookie beats good query", http.Header{"Cookie": {"parley_session=x"}}, "?token=" + tok, 401},
		{"forged signature", http.Header{"Authorization": {"Bearer " + tok[:len(tok)-2] + "xx"}}, "", 401},
	}
	for _, c := range checks {
		if got := get(c.header, c.query); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	// 401 comes before any upgrade or stream.
	_, resp, err = s.dialRaw("", nil)
	if err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("ws without token: %v %v", err, resp)
	}
	_, resp, err = s.dialRaw("bad-token", nil)
	if err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("ws with bad token: %v %v", err, resp)
	}
	status, b := s.do("GET", "/api/rooms/x/events", "", "")
	apiError(t, status, b, 401, "unauthorized")
	status, b = s.do("DELETE", "/api/session", "", "")
	if status != 204 {
		t.Fatalf("sign out: %d %s", status, b)
	}
}

func TestGuestSignInCanBeTurnedOff(t *testing.T) {
	s := startServer(t, func(c *Config) { c.NoGuests = true; c.Secret = testSecret("shared") })
	status, b := s.do("POST", "/api/session", "", `{"name":"alice"}`)
	apiError(t, status, b, 403, "forbidden")
	// A token minted elsewhere with the shared secret still works.
	tok, err := (&authForTest{secret: testSecret("shared")}).issue("frontdoor")
	if err != nil {
		t.Fatal(err)
	}
	if status, b := s.do("GET", "/api/rooms", tok, ""); status != 200 {
		t.Fatalf("minted token refused: %d %s", status, b)
	}
}

func TestRateLimit(t *testing.T) {
	s := startServer(t, func(c *Config) { c.SendRate, c.SendBurst = 5, 5 })
	tok := s.login("alice")
	c := s.dial(tok)
	for i := 0; i < 10; i++ {
		c.sendAcked("rl", fmt.Sprint("r", i), "spam")
	}
	acks, limited := 0, 0
	for i := 0; i < 10; i++ {
		f := c.next(5 * time.Second)
		switch {
		case f["type"] == "ack":
			acks++
		case f["type"] == "error" && f["code"] == "rate_limited" && f["room"] == "rl" && f["id"] != nil:
			limited++
		default:
			t.Fatalf("frame %v", f)
		}
	}
	if limited == 0 || acks < 5 {
		t.Fatalf("acks %d, rate_limited %d", acks, limited)
	}
	c.stillOpen()
	// POST is limited per user too (bob: alice's bucket is empty, and it
	// is the same bucket, see TestSendBucketIsPerUser).
	bob := s.login("bob")
	codes := map[int]int{}
	for i := 0; i < 12; i++ {
		status, _ := s.do("POST", "/api/rooms/rl/messages", bob, fmt.Sprintf(`{"id":"p%d","text":"x"}`, i))
		codes[status]++
	}
	if codes[429] == 0 || codes[202] == 0 {
		t.Fatalf("POST statuses %v", codes)
	}
	status, b := s.do("POST", "/api/rooms/rl/messages", bob, `{"id":"late","text":"x"}`)
	apiError(t, status, b, 429, "rate_limited")
}

// TestSlowReaderIsCutOff: a client that stops reading is disconnected with
// 1013 while another client of the room keeps getting every message.
func TestSlowReaderIsCutOff(t *testing.T) {
	s := startServer(t, func(c *Config) { c.SendRate, c.SendBurst = 5000, 5000 })
	tok := s.login("alice")
	fast := s.dial(tok)
	fast.join("slow")

	// The slow client joins, then stops reading from its socket.
	u := "ws" + strings.TrimPrefix(s.base, "http") + "/ws?token=" + tok
	slow, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	_ = slow.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"slow"}`))

	sender := s.dial(s.login("bob"))
	text := strings.Repeat("z", 2000)
	const n = 5000 // 10 MB: more than the socket buffers and the default 2 MiB queue hold
	go func() {
		// Paced, so that persist batches stay small: the point is a reader
		// that stops, not a burst.
		for i := 0; i < n; i++ {
			sender.sendAcked("slow", fmt.Sprint("z", i), text)
			time.Sleep(time.Millisecond)
		}
	}()
	// Once the server has cut the slow client off, read its socket: after
	// what was buffered comes close 1013. (Read soon after the cut-off: a
	// writer blocked on a full socket for the whole write deadline gives up
	// on the connection without a close frame.)
	for deadline := time.Now().Add(60 * time.Second); s.metric("parley_slow_clients_total") < 1; {
		if time.Now().After(deadline) {
			t.Fatal("the slow client was not cut off within 60 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	read := 0
	for {
		_, _, err := slow.ReadMessage()
		if err != nil {
			ce, ok := err.(*websocket.CloseError)
			if !ok || ce.Code != 1013 {
				t.Fatalf("slow client ended with %v after %d frames, want close 1013", err, read)
			}
			break
		}
		read++
	}
	if read >= n {
		t.Fatalf("slow client read all %d messages: it was never cut off", read)
	}
	t.Logf("slow client got %d of %d frames before 1013", read, n)

	// Nobody else was held up: the fast client gets every message.
	var got []message
	for len(got) < n {
		got = append(got, fast.messages(1)...)
	}
	checkSeqs(t, got, 1, n)
}

func TestTooManyRoomsPerConnection(t *testing.T) {
	s := startServer(t, nil)
	c := s.dial(s.login("alice"))
	for i := 0; i < 100; i++ {
		c.join(fmt.Sprint("many-", i))
	}
	c.write(`{"type":"join","room":"one-too-many"}`)
	c.expectError("bad_request", "", "one-too-many")
	// Re-joining a joined room is not a new room.
	c.join("many-7", 0)
	c.stillOpen()
}
