package main

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestTwoWebSocketClientsChat(t *testing.T) {
	s := startServer(t, nil)
	alice, bob := s.dial(s.login("alice")), s.dial(s.login("bob"))
	alice.join("general")
	bob.join("general")

	alice.sendAcked("general", "a1", "hi bob")
	if ack := alice.ack("a1"); ack["id"] != "a1" || ack["room"] != "general" {
		t.Fatalf("ack %v", ack)
	}
	am, bm := alice.messages(1)[0], bob.messages(1)[0]
	if !reflect.DeepEqual(am, bm) || am.Seq != 1 || am.User != "alice" || am.Text != "hi bob" || am.ID != "a1" {
		t.Fatalf("alice got %+v, bob got %+v", am, bm)
	}
	if _, err := time.Parse("2006-01-02T15:04:05.000Z", am.TS); err != nil {
		t.Fatalf("ts %q is not RFC 3339 UTC with milliseconds", am.TS)
	}
	// The author is the authenticated user, whatever the frame says.
	bob.write(`{"type":"send","room":"general","id":"b1","text":"hello alice","user":"mallory"}`)
	bob.ack("b1")
	if m := alice.messages(1)[0]; m.User != "bob" || m.Seq != 2 {
		t.Fatalf("got %+v", m)
	}
	bob.messages(1)
	alice.write(`{"type":"ping"}`)
	alice.expect("pong")
	alice.write(`{"type":"leave","room":"general"}`)
	alice.expect("left")
	bob.sendAcked("general", "b2", "anyone?")
	bob.ack("b2")
	bob.messages(1)
	alice.quiet(200 * time.Millisecond)
}

func TestSendWithoutIDGetsServerID(t *testing.T) {
	s := startServer(t, nil)
	c := s.dial(s.login("alice"))
	c.join("general")
	c.write(`{"type":"send","room":"general","text":"no id"}`)
	var id string
	var passed []map[string]any
	for id == "" {
		f := c.next(5 * time.Second)
		switch f["type"] {
		case "ack":
			id, _ = f["id"].(string)
			if id == "" {
				t.Fatalf("ack without id: %v", f)
			}
		case "message":
			passed = append(passed, f)
		default:
			t.Fatalf("frame %v", f)
		}
	}
	c.held = append(passed, c.held...)
	if m := c.messages(1)[0]; m.ID != id {
		t.Fatalf("message id %q, ack id %q", m.ID, id)
	}
}

func TestSSEAndWebSocketSeeEachOther(t *testing.T) {
	s := startServer(t, nil)
	wsTok, sseTok := s.login("alice"), s.login("bob")
	ws := s.dial(wsTok)
	ws.join("mixed")
	st := s.sse(sseTok, "mixed", "", nil)
	if ct := st.resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("content type %q", ct)
	}
	if st.resp.Header.Get("Cache-Control") != "no-cache" || st.resp.Header.Get("X-Accel-Buffering") != "no" {
		t.Fatalf("headers %v", st.resp.Header)
	}
	time.Sleep(100 * time.Millisecond) // the stream's join happens as it opens

	ws.sendAcked("mixed", "w1", "from websocket")
	ws.ack("w1")
	if m := st.messages(1)[0]; m.Text != "from websocket" || m.Seq != 1 || m.User != "alice" {
		t.Fatalf("sse got %+v", m)
	}
	status, body := s.do("POST", "/api/rooms/mixed/messages", sseTok, `{"id":"s1","text":"from sse"}`)
	if status != 202 || string(body) != `{"id":"s1","room":"mixed"}` && string(body) != `{"room":"mixed","id":"s1"}` {
		t.Fatalf("post: %d %s", status, body)
	}
	ws.messages(1) // its own
	if m := ws.messages(1)[0]; m.Text != "from sse" || m.Seq != 2 || m.User != "bob" {
		t.Fatalf("ws got %+v", m)
	}
	if m := st.messages(1)[0]; m.Seq != 2 {
		t.Fatalf("sse got %+v", m)
	}
}

func TestResumeAfterReconnect(t *testing.T) {
	s := startServer(t, nil)
	tok := s.login("alice")
	sender := s.dial(s.login("bob"))
	c := s.dial(tok)
	c.join("resume")
	for i := 1; i <= 3; i++ {
		sender.sendAcked("resume", fmt.Sprint("m", i), fmt.Sprint("text ", i))
		sender.ack(fmt.Sprint("m", i))
	}
	checkSeqs(t, c.messages(3), 1, 3)
	c.conn.Close()
	for i := 4; i <= 6; i++ {
		sender.sendAcked("resume", fmt.Sprint("m", i), fmt.Sprint("text ", i))
		sender.ack(fmt.Sprint("m", i))
	}
	s.waitHistory(tok, "resume", 6)

	c2 := s.dial(tok)
	if last := c2.join("resume", 3); last != 6 {
		t.Fatalf("last_seq %d, want 6", last)
	}
	checkSeqs(t, c2.messages(3), 4, 6)
	sender.sendAcked("resume", "m7", "live")
	sender.ack("m7")
	checkSeqs(t, c2.messages(1), 7, 7)
	c2.quiet(200 * time.Millisecond)

	// SSE resumes the same way; Last-Event-ID wins over ?after.
	st := s.sse(tok, "resume", "?after=1", http.Header{"Last-Event-ID": {"5"}})
	checkSeqs(t, st.messages(2), 6, 7)
	st2 := s.sse(tok, "resume", "?after=4", nil)
	checkSeqs(t, st2.messages(3), 5, 7)
}

// TestJoinSeamUnderLoad joins with after while messages keep arriving: the
// replayed and the live messages must meet with no gap and no duplicate.
func TestJoinSeamUnderLoad(t *testing.T) {
	s := startServer(t, nil)
	tok := s.login("alice")
	sender := s.dial(s.login("bob"))
	const total = 400
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 1; i <= total; i++ {
			sender.sendAcked("seam", fmt.Sprint("s", i), fmt.Sprint(i))
		}
	})
	s.waitHistory(tok, "seam", 50)
	var joiners []*wsClient
	for _, after := range []int64{0, 10, 25} {
		c := s.dial(tok)
		c.join("seam", after)
		joiners = append(joiners, c)
	}
	st := s.sse(tok, "seam", "?after=5", nil)
	wg.Wait()
	for i, c := range joiners {
		after := []int64{0, 10, 25}[i]
		checkSeqs(t, c.messages(int(total-after)), after+1, total)
		c.quiet(100 * time.Millisecond)
	}
	checkSeqs(t, st.messages(total-5), 6, total)
}

func TestIdempotentResend(t *testing.T) {
	s := startServer(t, nil)
	tok := s.login("alice")
	c := s.dial(tok)
	c.join("idem")
	c.sendAcked("idem", "same-id", "first")
	c.ack("same-id")
	c.messages(1)
	c.sendAcked("idem", "same-id", "second")
	if ack := c.ack("same-id"); ack["id"] != "same-id" {
		t.Fatalf("ack %v", ack)
	}
	status, _ := s.do("POST", "/api/rooms/idem/messages", tok, `{"id":"same-id","text":"third"}`)
	if status != 202 {
		t.Fatalf("post resend: %d", status)
	}
	c.quiet(300 * time.Millisecond)
	p := s.history(tok, "idem", "")
	if len(p.Messages) != 1 || p.Messages[0].Text != "first" || p.Messages[0].Seq != 1 {
		t.Fatalf("history %+v", p)
	}
	// The same id in another room is another message.
	c.sendAcked("other", "same-id", "elsewhere")
	c.ack("same-id")
	if p := s.waitHistory(tok, "other", 1); len(p.Messages) != 1 {
		t.Fatalf("other room %+v", p)
	}
}

func TestHistoryPaging(t *testing.T) {
	s := startServer(t, nil)
	tok := s.login("alice")
	c := s.dial(tok)
	for i := 1; i <= 120; i++ {
		c.sendAcked("paging", fmt.Sprint("p", i), fmt.Sprint(i))
		c.ack(fmt.Sprint("p", i))
	}
	s.waitHistory(tok, "paging", 120)
	p := s.history(tok, "paging", "")
	checkSeqs(t, p.Messages, 71, 120)
	if !p.HasMore {
		t.Fatal("latest page: has_more false")
	}
	p = s.history(tok, "paging", "?limit=30&before=71")
	checkSeqs(t, p.Messages, 41, 70)
	if !p.HasMore {
		t.Fatal("before page: has_more false")
	}
	p = s.history(tok, "paging", "?limit=200&before=41")
	checkSeqs(t, p.Messages, 1, 40)
	if p.HasMore {
		t.Fatal("oldest page: has_more true")
	}
	p = s.history(tok, "paging", "?after=100&limit=10")
	checkSeqs(t, p.Messages, 101, 110)
	if !p.HasMore {
		t.Fatal("after page: has_more false")
	}
	p = s.history(tok, "paging", "?after=110&limit=10")
	checkSeqs(t, p.Messages, 111, 120)
	if p.HasMore {
		t.Fatal("newest after page: has_more true")
	}
	if p := s.history(tok, "never-used", ""); len(p.Messages) != 0 || p.HasMore || p.Messages == nil {
		t.Fatalf("unused room %+v", p)
	}
	// The sender's rooms: sending to a public room made them a member.
	if rooms, _ := s.roomList(tok, ""); len(rooms) != 1 || rooms[0].Room != "paging" || rooms[0].LastSeq != 120 {
		t.Fatalf("rooms: %+v", rooms)
	}
	for _, q := range []string{"?limit=0", "?limit=201", "?limit=-1", "?limit=abc", "?limit=", "?before=1&after=1",
		"?before=-3", "?after=1.5", "?after=%2B5", "?before=x", "?after="} {
		status, body := s.do("GET", "/api/rooms/paging/messages"+q, tok, "")
		apiError(t, status, body, 400, "bad_request")
	}
}

// A join no longer creates a room (v2, tightened): join+leave of many names
// must not grow the room list; the first message does create it.
func TestJoinDoesNotCreateRoom(t *testing.T) {
	s := startServer(t, nil)
	tok := s.login("alice")
	c := s.dial(tok)
	for i := range 20 {
		room := fmt.Sprintf("fresh-room-%d", i)
		if last := c.join(room); last != 0 {
			t.Fatalf("last_seq %d", last)
		}
		c.write(`{"type":"leave","room":"` + room + `"}`)
		c.expect("left")
	}
	for _, list := range []string{"", "?directory=1"} {
		if rooms, _ := s.roomList(tok, list); len(rooms) != 0 {
			t.Fatalf("rooms%s after joins alone: %+v", list, rooms)
		}
	}
	if status, body := s.do("GET", "/api/rooms/fresh-room-3/messages", tok, ""); status != 200 || !strings.Contains(string(body), `"messages":[]`) {
		t.Fatalf("history of a never-used room: %d %s", status, body)
	}
	c.join("fresh-room-3")
	c.write(`{"type":"send","room":"fresh-room-3","id":"m1","text":"first"}`)
	c.expect("ack")
	s.waitHistory(tok, "fresh-room-3", 1)
	// The lists come from the room's saved state, written a moment after
	// the message (history can show it first).
	for _, list := range []string{"", "?directory=1"} {
		deadline := time.Now().Add(15 * time.Second)
		for {
			rooms, _ := s.roomList(tok, list)
			if len(rooms) == 1 && rooms[0].Room == "fresh-room-3" && rooms[0].LastSeq == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rooms%s after the first message: %+v", list, rooms)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func TestHistorySurvivesRestart(t *testing.T) {
	s := startServer(t, nil)
	tok := s.login("alice")
	c := s.dial(tok)
	c.join("durable")
	for i := 1; i <= 5; i++ {
		c.sendAcked("durable", fmt.Sprint("d", i), "x")
		c.ack(fmt.Sprint("d", i))
	}
	// Stop right after the acks: graceful shutdown drains the in-process bus
	// into the store.
	s.shutdown()
	s2 := startWith(t, s.cfg)
	// The generated secret is kept too: the old token still works.
	p := s2.history(tok, "durable", "")
	checkSeqs(t, p.Messages, 1, 5)
	c2 := s2.dial(tok)
	c2.join("durable", 5)
	c2.sendAcked("durable", "d6", "after restart")
	c2.ack("d6")
	checkSeqs(t, c2.messages(1), 6, 6)
}

func TestOperationsEndpoints(t *testing.T) {
	s := startServer(t, nil)
	for _, path := range []string{"/healthz", "/readyz"} {
		if status, body := s.do("GET", path, "", ""); status != 200 {
			t.Fatalf("%s: %d %s", path, status, body)
		}
	}
	tok := s.login("alice")
	c := s.dial(tok)
	c.join("metrics")
	c.sendAcked("metrics", "m1", "count me")
	c.ack("m1")
	c.messages(1)
	// The persist stage counts a batch after its commit, a moment after
	// delivery: poll.
	var body []byte
	for deadline := time.Now().Add(5 * time.Second); ; {
		var status int
		status, body = s.do("GET", "/metrics", "", "")
		if status != 200 {
			t.Fatalf("metrics: %d", status)
		}
		if strings.Contains(string(body), "parley_messages_persisted_total 1") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{
		`parley_connections{transport="websocket"} 1`,
		"parley_messages_received_total 1",
		"parley_messages_acked_total 1",
		"parley_messages_persisted_total 1",
		"parley_messages_delivered_total 1",
		"parley_end_to_end_seconds_count 1",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestGracefulShutdownClosesWith1012(t *testing.T) {
	s := startServer(t, nil)
	tok := s.login("alice")
	c := s.dial(tok)
	c.join("bye")
	st := s.sse(tok, "bye", "", nil)
	s.shutdown()
	if code := c.waitClose(5 * time.Second); code != 1012 {
		t.Fatalf("close code %d, want 1012", code)
	}
	if err := st.collect(5*time.Second, func(sseEvent, message, error) {}, nil); !errors.Is(err, errStreamEnded) {
		t.Fatal("SSE stream did not end on shutdown")
	}
}
