package main

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// What you missed, black-box: read positions, unread and mention counts in
// the room objects, the read frame echoed to the user's other connections,
// receipts, and the bad input the issue names. Run in both modes like every
// test here.

// counts is what a room object says the caller missed.
type counts struct {
	ReadSeq  int64 `json:"read_seq"`
	Unread   int64 `json:"unread"`
	Mentions int64 `json:"mentions"`
}

// roomCounts reads the caller's counts of room from GET /api/rooms/{room}.
func (s *testServer) roomCounts(token, room string) counts {
	s.t.Helper()
	var c counts
	mustJSON(s.t, s.call("GET", "/api/rooms/"+room, token, "", 200), &c)
	return c
}

// waitCounts polls until the caller's counts of room are want, in the room
// object and in the room list alike (they follow the log within a batch).
func (s *testServer) waitCounts(token, room string, want counts) {
	s.t.Helper()
	var got, listed counts
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		got = s.roomCounts(token, room)
		var r struct {
			Rooms []struct {
				Room string `json:"room"`
				counts
			} `json:"rooms"`
		}
		mustJSON(s.t, s.call("GET", "/api/rooms?limit=200", token, "", 200), &r)
		listed = counts{}
		for _, o := range r.Rooms {
			if o.Room == room {
				listed = o.counts
			}
		}
		if got == want && listed == want {
			return
		}
	}
	s.t.Fatalf("counts of %s: room object %+v, room list %+v, want %+v", room, got, listed, want)
}

// nextMissed returns the next read, receipt or notification frame.
func (c *wsClient) nextMissed(timeout time.Duration) map[string]any {
	c.t.Helper()
	select {
	case f := <-c.missed:
		return f
	case <-time.After(timeout):
		c.t.Fatalf("no read, receipt or notification frame within %v", timeout)
		return nil
	}
}

// quietMissed asserts that no read, receipt or notification frame comes
// for d.
func (c *wsClient) quietMissed(d time.Duration) {
	c.t.Helper()
	select {
	case f := <-c.missed:
		c.t.Fatalf("unexpected frame %v", f)
	case <-time.After(d):
	}
}

// frameIs reports whether f has the type and the fields given.
func frameIs(f map[string]any, typ string, fields map[string]any) bool {
	if f["type"] != typ {
		return false
	}
	for k, v := range fields {
		if fmt.Sprint(f[k]) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}

func TestUnreadMentionsAndReads(t *testing.T) {
	s := startServer(t, nil)
	alice, bob, carol, dave := s.login("alice"), s.login("bob"), s.login("carol"), s.login("dave")
	s.createRoom(alice, "crew", "private", "")                                // 1
	s.call("POST", "/api/rooms/crew/members", alice, `{"user":"bob"}`, 200)   // 2
	s.call("POST", "/api/rooms/crew/members", alice, `{"user":"carol"}`, 200) // 3
	s.call("POST", "/api/rooms/crew/messages", bob, `{"id":"b1","text":"hi all"}`, 202)
	s.waitHistory(alice, "crew", 4)

	// Timeline events are not counted, nor your own messages: alice's
	// add of carol read the room up to it, bob's message up to his; carol
	// is a member from her add on, which is where her reading starts.
	s.waitCounts(alice, "crew", counts{ReadSeq: 3, Unread: 1})
	s.waitCounts(bob, "crew", counts{ReadSeq: 4})
	s.waitCounts(carol, "crew", counts{ReadSeq: 3, Unread: 1})

	// A mention: matched canonically, the author left out, each once.
	s.call("POST", "/api/rooms/crew/messages", alice, `{"id":"a1","text":"@carol and @Bob, thanks @bob. @alice @nobody mail@carol"}`, 202)
	h := s.waitHistory(alice, "crew", 5)
	if got := h.Messages[4].Mentions; !reflect.DeepEqual(got, []string{"carol", "bob"}) {
		t.Fatalf("mentions of %q: %v", h.Messages[4].Text, got)
	}
	if got := h.Messages[3].Mentions; got != nil {
		t.Fatalf("a message that names nobody has mentions %v", got)
	}
	s.waitCounts(carol, "crew", counts{ReadSeq: 3, Unread: 2, Mentions: 1})
	s.waitCounts(bob, "crew", counts{ReadSeq: 4, Unread: 1, Mentions: 1})
	s.waitCounts(alice, "crew", counts{ReadSeq: 5})

	// carol reads on one connection, past the end: capped at last_seq,
	// and her other connection is told.
	c1, c2 := s.dial(carol), s.dial(carol)
	c2.join("crew")
	time.Sleep(100 * time.Millisecond) // both registered
	c1.write(map[string]any{"type": "read", "room": "crew", "seq": 1000})
	for _, c := range []*wsClient{c1, c2} {
		if f := c.nextMissed(5 * time.Second); !frameIs(f, "read", map[string]any{"room": "crew", "seq": 5}) {
			t.Fatalf("read frame %v", f)
		}
	}
	// A receipt to the joined connection (the room has 3 members).
	if f := c2.nextMissed(5 * time.Second); !frameIs(f, "receipt", map[string]any{"room": "crew", "user": "carol", "seq": 5}) {
		t.Fatalf("receipt frame %v", f)
	}
	s.waitCounts(carol, "crew", counts{ReadSeq: 5})

	// Backwards is ignored: no frame, nothing moves.
	s.call("PUT", "/api/rooms/crew/read", carol, `{"seq":2}`, 204)
	c1.quietMissed(500 * time.Millisecond)
	s.waitCounts(carol, "crew", counts{ReadSeq: 5})

	// bob reads by REST: his other connections hear of it; the receipt
	// reaches carol's joined connection.
	bws := s.dial(bob)
	time.Sleep(100 * time.Millisecond)
	s.call("PUT", "/api/rooms/crew/read", bob, `{"seq":5}`, 204)
	if f := bws.nextMissed(5 * time.Second); !frameIs(f, "read", map[string]any{"room": "crew", "seq": 5}) {
		t.Fatalf("bob's read frame %v", f)
	}
	if f := c2.nextMissed(5 * time.Second); !frameIs(f, "receipt", map[string]any{"user": "bob", "seq": 5}) {
		t.Fatalf("receipt of bob's read %v", f)
	}
	s.waitCounts(bob, "crew", counts{ReadSeq: 5})
	var rc struct {
		Receipts []struct {
			User string `json:"user"`
			Seq  int64  `json:"seq"`
		} `json:"receipts"`
	}
	mustJSON(t, s.call("GET", "/api/rooms/crew/receipts", alice, "", 200), &rc)
	if got := fmt.Sprint(rc.Receipts); got != "[{alice 5} {bob 5} {carol 5}]" {
		t.Fatalf("receipts %s", got)
	}

	// Added now, dave has missed nothing of what came before his add.
	s.call("POST", "/api/rooms/crew/members", alice, `{"user":"dave"}`, 200) // 6
	s.waitCounts(dave, "crew", counts{ReadSeq: 6})
	s.call("DELETE", "/api/rooms/crew/members/dave", alice, "", 200)

	// A room you may not read: not_found, on every way in.
	s.refused("PUT", "/api/rooms/crew/read", dave, `{"seq":1}`, 404, "not_found")
	s.refused("GET", "/api/rooms/crew/receipts", dave, "", 404, "not_found")
	dws := s.dial(dave)
	dws.write(map[string]any{"type": "read", "room": "crew", "seq": 1})
	if f := dws.expect("error"); f["code"] != "not_found" || f["room"] != "crew" {
		t.Fatalf("dave's read frame: %v", f)
	}
	// A public room nobody created yet: not_found too.
	s.refused("PUT", "/api/rooms/nowhere/read", dave, `{"seq":1}`, 404, "not_found")
}

func TestReadBadInput(t *testing.T) {
	s := startServer(t, nil)
	alice := s.login("alice")
	s.call("POST", "/api/rooms/lobby/messages", alice, `{"id":"a1","text":"hello"}`, 202)
	s.waitHistory(alice, "lobby", 1)
	for _, body := range []string{`{}`, `{"seq":-1}`, `{"seq":"3"}`, `{"seq":1.5}`, `{"seq":null}`, `[1]`, `{"seq":99999999999999999999}`} {
		s.refused("PUT", "/api/rooms/lobby/read", alice, body, 400, "bad_request")
	}
	s.refused("PUT", "/api/rooms/Bad%20Room/read", alice, `{"seq":1}`, 400, "bad_request")
	status, _, b := s.req("PUT", "/api/rooms/lobby/read", map[string]string{"Authorization": "Bearer " + alice, "Content-Type": "text/plain"}, []byte(`{"seq":1}`))
	apiError(t, status, b, 415, "bad_request")
	// With the session cookie from another origin: refused.
	status, _, b = s.req("PUT", "/api/rooms/lobby/read", map[string]string{"Cookie": "parley_session=" + alice, "Origin": "http://evil.example", "Content-Type": "application/json"}, []byte(`{"seq":1}`))
	apiError(t, status, b, 403, "forbidden")
	ws := s.dial(alice)
	for _, f := range []string{`{"type":"read","room":"lobby"}`, `{"type":"read","room":"lobby","seq":-2}`, `{"type":"read","room":"lobby","seq":"x"}`, `{"type":"read","room":"NO","seq":1}`} {
		ws.write(f)
		if e := ws.expect("error"); e["code"] != "bad_request" {
			t.Fatalf("%s: %v", f, e)
		}
	}
	// Not counted against sends, but limited on its own.
	s2 := startServer(t, func(c *Config) { c.ReadRate, c.ReadBurst = 0.001, 2 })
	tok := s2.login("alice")
	s2.call("POST", "/api/rooms/lobby/messages", tok, `{"id":"a1","text":"hello"}`, 202)
	s2.waitHistory(tok, "lobby", 1)
	s2.call("PUT", "/api/rooms/lobby/read", tok, `{"seq":1}`, 204)
	s2.call("PUT", "/api/rooms/lobby/read", tok, `{"seq":1}`, 204)
	b = s2.refused("PUT", "/api/rooms/lobby/read", tok, `{"seq":1}`, 429, "rate_limited")
	if !strings.Contains(string(b), "read positions") {
		t.Fatalf("rate limit message %s", b)
	}
	s2.call("POST", "/api/rooms/lobby/messages", tok, `{"id":"a2","text":"sends still go"}`, 202)
}

// TestReceiptsOnlyInSmallRooms: past 100 members a room keeps no receipts.
func TestReceiptsOnlyInSmallRooms(t *testing.T) {
	s := startServer(t, nil)
	owner := s.login("owner")
	s.createRoom(owner, "big", "public", "")
	for i := range 101 {
		tok := s.login(fmt.Sprintf("u%03d", i))
		s.call("POST", "/api/rooms/big/messages", tok, fmt.Sprintf(`{"id":"m%d","text":"here"}`, i), 202)
	}
	s.waitHistory(owner, "big", 102)
	var members struct {
		Members []any `json:"members"`
	}
	for deadline := time.Now().Add(10 * time.Second); len(members.Members) < 102 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		mustJSON(t, s.call("GET", "/api/rooms/big/members", owner, "", 200), &members)
	}
	s.refused("GET", "/api/rooms/big/receipts", owner, "", 409, "conflict")
	ws := s.dial(owner)
	ws.join("big")
	s.call("PUT", "/api/rooms/big/read", owner, `{"seq":102}`, 204)
	if f := ws.nextMissed(5 * time.Second); f["type"] != "read" {
		t.Fatalf("want the read frame, got %v", f)
	}
	ws.quietMissed(300 * time.Millisecond) // and no receipt
}

// TestClusterReads: a read on one instance clears the badge on the other,
// whose connections get the read frame; counts read through either agree.
func TestClusterReads(t *testing.T) {
	cfg, _ := clusterConfig(t)
	a, b := startInstance(t, cfg, "reads-a"), startInstance(t, cfg, "reads-b")
	alice, bob := a.login("alice"), a.login("bob")
	var dm roomObj
	mustJSON(t, a.call("POST", "/api/dms", alice, `{"user":"bob"}`, 200), &dm)
	for i := range 3 {
		a.call("POST", "/api/rooms/"+dm.Room+"/messages", alice, fmt.Sprintf(`{"id":"a%d","text":"ping %d"}`, i, i), 202)
	}
	a.waitHistory(alice, dm.Room, 4)
	// The direct room's creation made bob a member: his reading starts there.
	b.waitCounts(bob, dm.Room, counts{ReadSeq: 1, Unread: 3})
	bws := b.dial(bob)
	bws.join(dm.Room)
	aws := a.dial(alice)
	aws.join(dm.Room)
	time.Sleep(200 * time.Millisecond)
	a.call("PUT", "/api/rooms/"+dm.Room+"/read", bob, `{"seq":4}`, 204)
	if f := bws.nextMissed(10 * time.Second); !frameIs(f, "read", map[string]any{"room": dm.Room, "seq": 4}) {
		t.Fatalf("bob's read frame on the other instance %v", f)
	}
	// A receipt in a direct room, to alice's connection too.
	if f := aws.nextMissed(10 * time.Second); !frameIs(f, "receipt", map[string]any{"user": "bob", "seq": 4}) {
		t.Fatalf("alice's receipt %v", f)
	}
	b.waitCounts(bob, dm.Room, counts{ReadSeq: 4})
	a.waitCounts(bob, dm.Room, counts{ReadSeq: 4})
}
