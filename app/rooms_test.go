package main

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// Rooms with members, black-box: private rooms hidden from non-members,
// membership and moderation taking effect at their seq, the room lists, and
// every bad input the issue names. Run in both modes like every test here.

// roomObj is a room object as the API answers it.
type roomObj struct {
	Room      string  `json:"room"`
	Kind      string  `json:"kind"`
	Title     string  `json:"title"`
	Topic     string  `json:"topic"`
	SlowModeS int     `json:"slow_mode_s"`
	LastSeq   int64   `json:"last_seq"`
	Role      *string `json:"role"`
	With      string  `json:"with"`
}

// call makes a request that must answer want, and returns the body.
func (s *testServer) call(method, path, token, body string, want int) []byte {
	s.t.Helper()
	status, b := s.do(method, path, token, body)
	if status != want {
		s.t.Fatalf("%s %s: %d %s, want %d", method, path, status, b, want)
	}
	return b
}

// refused makes a request that must fail with status and code.
func (s *testServer) refused(method, path, token, body string, status int, code string) []byte {
	s.t.Helper()
	got, b := s.do(method, path, token, body)
	apiError(s.t, got, b, status, code)
	return b
}

func (s *testServer) createRoom(token, room, kind, extra string) roomObj {
	s.t.Helper()
	body := `{"room":"` + room + `","kind":"` + kind + `"` + extra + `}`
	status, b := s.do("POST", "/api/rooms", token, body)
	// A store read that timed out before anything was published (FerretDB
	// under the distributed pass's load) is answered 503 "storage is
	// unavailable; try again", and trying again is what a client does.
	for try := 1; try < 3 && status == 503 && strings.Contains(string(b), "storage is unavailable"); try++ {
		time.Sleep(time.Second)
		status, b = s.do("POST", "/api/rooms", token, body)
	}
	if status != 201 {
		s.t.Fatalf("POST /api/rooms: %d %s, want 201", status, b)
	}
	var r roomObj
	mustJSON(s.t, b, &r)
	if r.Room != room || r.Kind != kind || r.Role == nil || *r.Role != "owner" || r.LastSeq < 1 {
		s.t.Fatalf("created %s", b)
	}
	return r
}

func (s *testServer) roomList(token, query string) (rooms []roomObj, next *string) {
	s.t.Helper()
	var r struct {
		Rooms []roomObj `json:"rooms"`
		Next  *string   `json:"next_cursor"`
	}
	mustJSON(s.t, s.call("GET", "/api/rooms"+query, token, "", 200), &r)
	return r.Rooms, r.Next
}

// waitRooms polls the caller's room list until it holds n rooms: the list
// comes from the rooms' saved states, written a moment after the items
// (history can show them first).
func (s *testServer) waitRooms(token string, n int) {
	s.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		rooms, _ := s.roomList(token, "?limit=200")
		if len(rooms) >= n {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%d rooms listed, want %d", len(rooms), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func names(rooms []roomObj) string {
	var out []string
	for _, r := range rooms {
		out = append(out, r.Room)
	}
	return strings.Join(out, ",")
}

// items returns the history's membership items as "action target".
func items(p page) []string {
	var out []string
	for _, m := range p.Messages {
		if m.Kind == "member" {
			out = append(out, m.Data.Action+" "+m.Data.Target)
		}
	}
	return out
}

// errorFor waits for the error frame about id. Error frames about other ids
// are passed over: a refusal of the user's REST change reaches their
// connections too.
func (c *wsClient) errorFor(id string) map[string]any {
	c.t.Helper()
	for {
		f := c.next(5 * time.Second)
		if f["type"] == "error" && f["id"] == id {
			return f
		}
		if f["type"] != "message" && f["type"] != "ack" && (f["type"] != "error" || f["id"] == nil) {
			c.t.Fatalf("got %v while waiting for the error of %s", f, id)
		}
	}
}

func TestPrivateRoomHiddenFromNonMembers(t *testing.T) {
	s := startServer(t, nil)
	alice, bob := s.login("alice"), s.login("bob")
	s.createRoom(alice, "secret", "private", `,"title":"Plans","topic":"the surprise party"`)

	// Every read and write of a non-member: 404, nothing of the room.
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/api/rooms/secret", ""},
		{"GET", "/api/rooms/secret/messages", ""},
		{"GET", "/api/rooms/secret/members", ""},
		{"POST", "/api/rooms/secret/messages", `{"text":"let me in"}`},
		{"POST", "/api/rooms/secret/members", `{"user":"bob"}`},
		{"PATCH", "/api/rooms/secret", `{"topic":"mine now"}`},
		{"GET", "/api/rooms/secret/events", ""},
	} {
		b := s.refused(r.method, r.path, bob, r.body, 404, "not_found")
		if strings.Contains(string(b), "Plans") || strings.Contains(string(b), "surprise") || strings.Contains(string(b), "alice") {
			t.Fatalf("%s %s shows the room: %s", r.method, r.path, b)
		}
	}
	ws := s.dial(bob)
	ws.write(map[string]any{"type": "join", "room": "secret", "after": 0})
	if f := ws.expect("error"); f["code"] != "not_found" || f["room"] != "secret" {
		t.Fatalf("join: %v", f)
	}
	ws.write(map[string]any{"type": "send", "room": "secret", "id": "b1", "text": "hi"})
	if f := ws.errorFor("b1"); f["code"] != "not_found" {
		t.Fatalf("send: %v", f)
	}
	// Its name alone is known to be taken.
	s.refused("POST", "/api/rooms", bob, `{"room":"secret","kind":"public"}`, 409, "conflict")
	if rooms, _ := s.roomList(bob, "?directory=1"); strings.Contains(names(rooms), "secret") {
		t.Fatalf("directory lists a private room: %v", names(rooms))
	}
	if rooms, _ := s.roomList(bob, ""); len(rooms) != 0 {
		t.Fatalf("bob's rooms: %v", names(rooms))
	}
	if h := s.history(alice, "secret", ""); len(h.Messages) != 1 || h.Messages[0].Kind != "member" || h.Messages[0].Data.Action != "create" {
		t.Fatalf("the owner's history: %+v", h.Messages)
	}
}

func TestMembershipTakesEffectAtItsSeq(t *testing.T) {
	s := startServer(t, nil)
	alice, bob := s.login("alice"), s.login("bob")
	s.createRoom(alice, "team", "private", "")
	s.call("POST", "/api/rooms/team/members", alice, `{"user":"BOB"}`, 200) // names are found canonically

	if rooms, _ := s.roomList(bob, ""); names(rooms) != "team" || *rooms[0].Role != "member" {
		t.Fatalf("bob's rooms after the add: %+v", rooms)
	}
	bws, aws := s.dial(bob), s.dial(alice)
	bws.join("team", 0)
	aws.join("team", 0)
	// bob sees the room from his add on: the add, not the create.
	if got := bws.messages(1); got[0].Kind != "member" || got[0].Data.Action != "add" || got[0].Data.Target != "bob" {
		t.Fatalf("bob's replay: %+v", got)
	}
	aws.messages(2)
	aws.sendAcked("team", "a1", "hello bob")
	aws.ack("a1")
	if got := bws.messages(1); got[0].Text != "hello bob" {
		t.Fatalf("bob got %+v", got)
	}
	bws.sendAcked("team", "b1", "hi alice")
	bws.ack("b1")
	bws.messages(1)

	// The removal: bob gets the item, then left, then nothing of the room.
	s.call("DELETE", "/api/rooms/team/members/bob", alice, "", 200)
	rm := bws.messages(1)[0]
	if rm.Data.Action != "remove" || rm.Data.Target != "bob" || rm.Text != "alice removed bob" {
		t.Fatalf("removal item %+v", rm)
	}
	if f := bws.expect("left"); f["room"] != "team" || f["reason"] != "removed" {
		t.Fatalf("left frame %v", f)
	}
	aws.messages(3) // a1 seen before; here: b1, the removal... drain what alice has
	aws.sendAcked("team", "a2", "bob is gone")
	aws.ack("a2")
	bws.write(map[string]any{"type": "send", "room": "team", "id": "b2", "text": "still here?"})
	if f := bws.errorFor("b2"); f["code"] != "not_found" {
		t.Fatalf("a removed member's send: %v", f)
	}
	bws.quiet(300 * time.Millisecond)
	s.refused("GET", "/api/rooms/team/messages", bob, "", 404, "not_found")
	if rooms, _ := s.roomList(bob, ""); len(rooms) != 0 {
		t.Fatalf("bob's rooms after the removal: %v", names(rooms))
	}

	// Added again at N: he sees from N on, not what came while he was out.
	s.call("POST", "/api/rooms/team/members", alice, `{"user":"bob"}`, 200)
	// His connection, not joined to the room any more, learns of both.
	for _, want := range []string{"remove", "add"} {
		select {
		case f := <-bws.memberships:
			if f["action"] != want || f["room"] != "team" {
				t.Fatalf("membership frame %v, want %s", f, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no membership frame %s", want)
		}
	}
	h := s.history(bob, "team", "")
	if len(h.Messages) != 1 || h.Messages[0].Data.Action != "add" || h.HasMore {
		t.Fatalf("bob's history after the second add: %+v", h)
	}
	if got := items(s.history(alice, "team", "")); strings.Join(got, ",") != "create ,add bob,remove bob,add bob" {
		t.Fatalf("the timeline's items: %v", got)
	}
}

func TestModerationRules(t *testing.T) {
	s := startServer(t, nil)
	alice, bob, carol := s.login("alice"), s.login("bob"), s.login("carol")
	s.createRoom(alice, "town", "public", "")
	s.call("POST", "/api/rooms/town/members", bob, `{}`, 200) // joining a public room: yourself
	s.call("POST", "/api/rooms/town/members", carol, `{"user":"carol"}`, 200)

	// A member removing an owner, or anyone: 403; a bad role: 400; roles are the owner's.
	s.refused("DELETE", "/api/rooms/town/members/alice", bob, "", 403, "forbidden")
	s.refused("PUT", "/api/rooms/town/members/bob", alice, `{"role":"king"}`, 400, "bad_request")
	s.refused("PUT", "/api/rooms/town/members/carol", bob, `{"role":"moderator"}`, 403, "forbidden")
	s.call("PUT", "/api/rooms/town/members/bob", alice, `{"role":"moderator"}`, 200)
	s.refused("DELETE", "/api/rooms/town/members/alice", bob, "", 403, "forbidden") // a moderator on the owner

	// Muted: may read, sends get forbidden.
	until := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	s.call("POST", "/api/rooms/town/mutes", bob, `{"user":"carol","until":"`+until+`"}`, 200)
	cws := s.dial(carol)
	cws.join("town")
	cws.write(map[string]any{"type": "send", "room": "town", "id": "c1", "text": "can I speak?"})
	if f := cws.errorFor("c1"); f["code"] != "forbidden" {
		t.Fatalf("a muted member's send: %v", f)
	}
	s.refused("POST", "/api/rooms/town/messages", carol, `{"text":"and now?"}`, 403, "forbidden")
	s.history(carol, "town", "")
	s.call("DELETE", "/api/rooms/town/mutes/carol", bob, "", 200)
	cws.sendAcked("town", "c2", "thanks")
	cws.ack("c2")

	// Slow mode: the next message within it is rate_limited; moderators are exempt.
	var r roomObj
	mustJSON(t, s.call("PATCH", "/api/rooms/town", bob, `{"slow_mode_s":60,"topic":"slow down"}`, 200), &r)
	if r.SlowModeS != 60 || r.Topic != "slow down" {
		t.Fatalf("patched room %+v", r)
	}
	cws.sendAcked("town", "c3", "one")
	cws.ack("c3")
	cws.write(map[string]any{"type": "send", "room": "town", "id": "c4", "text": "two"})
	if f := cws.errorFor("c4"); f["code"] != "rate_limited" {
		t.Fatalf("slow mode: %v", f)
	}
	bws := s.dial(bob)
	for _, id := range []string{"b1", "b2"} {
		bws.sendAcked("town", id, "moderating")
		bws.ack(id)
	}
	s.refused("PATCH", "/api/rooms/town", carol, `{"slow_mode_s":0}`, 403, "forbidden")
	s.refused("PATCH", "/api/rooms/town", bob, `{"slow_mode_s":99999}`, 400, "bad_request")
	s.call("PATCH", "/api/rooms/town", bob, `{"slow_mode_s":0}`, 200)

	// A ban ends carol's subscription, keeps her out, and expires.
	banUntil := time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339Nano)
	s.call("POST", "/api/rooms/town/bans", bob, `{"user":"carol","until":"`+banUntil+`","reason":"spam"}`, 200)
	for {
		f := cws.next(5 * time.Second)
		if f["type"] == "left" {
			if f["reason"] != "banned" {
				t.Fatalf("left %v", f)
			}
			break
		}
	}
	s.refused("GET", "/api/rooms/town/messages", carol, "", 403, "forbidden")
	s.refused("POST", "/api/rooms/town/messages", carol, `{"text":"hello?"}`, 403, "forbidden")
	var bans struct {
		Bans []struct{ User, Until, Reason string } `json:"bans"`
	}
	mustJSON(t, s.call("GET", "/api/rooms/town/bans", bob, "", 200), &bans)
	if len(bans.Bans) != 1 || bans.Bans[0].User != "carol" || bans.Bans[0].Reason != "spam" {
		t.Fatalf("bans %+v", bans)
	}
	s.refused("GET", "/api/rooms/town/bans", carol, "", 403, "forbidden")
	time.Sleep(time.Until(mustTime(t, banUntil)) + 100*time.Millisecond)
	s.history(carol, "town", "") // the ban has expired: allowed again
	s.call("POST", "/api/rooms/town/messages", carol, `{"id":"c5","text":"back"}`, 202)
	s.call("POST", "/api/rooms/town/bans", alice, `{"user":"bob"}`, 200) // the owner bans a moderator
	s.refused("POST", "/api/rooms/town/bans", alice, `{"user":"carol","until":"yesterday"}`, 400, "bad_request")
	s.refused("POST", "/api/rooms/town/mutes", alice, `{"user":"carol"}`, 400, "bad_request")
}

func mustTime(t *testing.T, v string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func TestDirectRooms(t *testing.T) {
	s := startServer(t, nil)
	alice, bob, carol := s.login("alice"), s.login("bob"), s.login("carol")
	var a, b roomObj
	mustJSON(t, s.call("POST", "/api/dms", alice, `{"user":"Bob"}`, 200), &a)
	mustJSON(t, s.call("POST", "/api/dms", bob, `{"user":"alice"}`, 200), &b)
	if a.Room != b.Room || a.Kind != "direct" || a.With != "bob" || b.With != "alice" {
		t.Fatalf("the direct room: %+v and %+v", a, b)
	}
	if rooms, _ := s.roomList(bob, ""); names(rooms) != a.Room || rooms[0].With != "alice" {
		t.Fatalf("bob's rooms: %+v", rooms)
	}
	s.call("POST", "/api/rooms/"+a.Room+"/messages", bob, `{"text":"hi alice"}`, 202)
	s.refused("GET", "/api/rooms/"+a.Room+"/messages", carol, "", 404, "not_found")
	s.refused("POST", "/api/dms", alice, `{"user":"alice"}`, 400, "bad_request")
	s.refused("POST", "/api/dms", alice, `{"user":"nobody-here"}`, 404, "not_found")
	s.refused("POST", "/api/dms", alice, `{}`, 400, "bad_request")
	s.refused("POST", "/api/rooms/"+a.Room+"/members", alice, `{"user":"carol"}`, 403, "forbidden")
	s.refused("POST", "/api/rooms", alice, `{"room":"dm-mine","kind":"public"}`, 400, "bad_request")
	s.refused("POST", "/api/rooms", alice, `{"room":"x","kind":"direct"}`, 400, "bad_request")
}

func TestRoomListsAndPaging(t *testing.T) {
	s := startServer(t, nil)
	alice, bob := s.login("alice"), s.login("bob")
	for _, r := range []string{"a1", "a2", "a3"} {
		s.createRoom(alice, r, "public", "")
	}
	s.createRoom(alice, "p1", "private", "")
	s.createRoom(bob, "b1", "public", "")
	s.call("POST", "/api/rooms/b1/messages", alice, `{"text":"sending makes you a member"}`, 202)
	for deadline := time.Now().Add(5 * time.Second); ; {
		if rooms, _ := s.roomList(alice, ""); strings.Contains(names(rooms), "b1") || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Alice's rooms, one per page.
	var got []string
	query := "?limit=1"
	for pages := 0; ; pages++ {
		rooms, next := s.roomList(alice, query)
		if len(rooms) != 1 || pages > 10 {
			t.Fatalf("page %d: %+v", pages, rooms)
		}
		got = append(got, rooms[0].Room+":"+*rooms[0].Role)
		if next == nil {
			break
		}
		query = "?limit=1&cursor=" + url.QueryEscape(*next)
	}
	if strings.Join(got, ",") != "a1:owner,a2:owner,a3:owner,b1:member,p1:owner" {
		t.Fatalf("alice's rooms: %v", got)
	}
	dir, next := s.roomList(bob, "?directory=1&limit=2")
	if names(dir) != "a1,a2" || next == nil || dir[0].Role != nil {
		t.Fatalf("directory page: %+v", dir)
	}
	dir, _ = s.roomList(bob, "?directory=1&cursor="+url.QueryEscape(*next))
	if names(dir) != "a3,b1" || *dir[1].Role != "owner" {
		t.Fatalf("directory page 2: %+v", dir)
	}
	// Cursors: malformed, or from the other list.
	s.refused("GET", "/api/rooms?cursor=%25%25", alice, "", 400, "bad_request")
	s.refused("GET", "/api/rooms?cursor="+url.QueryEscape(*next), alice, "", 400, "bad_request")
	s.refused("GET", "/api/rooms?directory=1&limit=0", alice, "", 400, "bad_request")
	s.refused("GET", "/api/rooms?directory=maybe", alice, "", 400, "bad_request")
	var one roomObj
	mustJSON(t, s.call("GET", "/api/rooms/b1", alice, "", 200), &one)
	if one.Kind != "public" || *one.Role != "member" || one.LastSeq != 2 {
		t.Fatalf("room object %+v", one)
	}
	s.refused("GET", "/api/rooms/never-used", alice, "", 404, "not_found")
}

func TestRoomBadInput(t *testing.T) {
	s := startServer(t, nil)
	alice := s.login("alice")
	s.createRoom(alice, "taken", "public", "")
	for _, c := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "/api/rooms", `{"room":"taken","kind":"private"}`, 409, "conflict"},
		{"POST", "/api/rooms", `{"room":"Not A Name","kind":"public"}`, 400, "bad_request"},
		{"POST", "/api/rooms", `{"kind":"public"}`, 400, "bad_request"},
		{"POST", "/api/rooms", `{"room":"x","kind":"secret"}`, 400, "bad_request"},
		{"POST", "/api/rooms", `{"room":"x","title":"` + strings.Repeat("t", 101) + `"}`, 400, "bad_request"},
		{"POST", "/api/rooms", `{"room":"x","topic":"a\u202eb"}`, 400, "bad_request"},
		{"POST", "/api/rooms", `{"room":["x"]}`, 400, "bad_request"},
		{"POST", "/api/rooms/taken/members", `{"user":"nobody"}`, 404, "not_found"},
		{"POST", "/api/rooms/taken/members", `{"user":""}`, 400, "bad_request"},
		{"DELETE", "/api/rooms/taken/members/nobody", "", 404, "not_found"},
		{"PUT", "/api/rooms/taken/members/alice", `{}`, 400, "bad_request"},
		{"PATCH", "/api/rooms/taken", `{}`, 400, "bad_request"},
		{"PATCH", "/api/rooms/taken", `{"slow_mode_s":-1}`, 400, "bad_request"},
		{"DELETE", "/api/rooms/taken/bans/nobody", "", 404, "not_found"},
		{"POST", "/api/rooms/taken/bans", `{"user":"alice"}`, 400, "bad_request"},
		{"POST", "/api/rooms/nowhere/members", `{"user":"alice"}`, 404, "not_found"},
	} {
		t.Run(c.method+" "+c.path+" "+c.body, func(t *testing.T) {
			s.t = t
			s.refused(c.method, c.path, alice, c.body, c.status, c.code)
		})
	}
	s.t = t
	// 415 for a body that is not JSON, on the new routes too.
	req := map[string]string{"POST /api/rooms": `{"room":"y"}`, "POST /api/dms": `{"user":"bob"}`}
	for route, body := range req {
		method, path, _ := strings.Cut(route, " ")
		status, _, b := s.req(method, path, map[string]string{"Authorization": "Bearer " + alice, "Content-Type": "text/plain"}, []byte(body))
		if status != 415 {
			t.Fatalf("%s as text/plain: %d %s", route, status, b)
		}
	}
	s.refused("GET", "/api/rooms/taken/members/x", alice, "", 404, "not_found")
}

// TestSSEEndsOnRemoval: an SSE reader removed from a private room gets the
// removal, then a left event, then the stream ends; a send of theirs the
// persist stage refuses reaches the stream as an error event.
func TestSSEEndsOnRemoval(t *testing.T) {
	s := startServer(t, nil)
	alice, bob := s.login("alice"), s.login("bob")
	s.createRoom(alice, "team", "private", "")
	s.call("POST", "/api/rooms/team/members", alice, `{"user":"bob"}`, 200)
	st := s.sse(bob, "team", "?after=0", nil)
	if got := st.messages(1); got[0].Data.Action != "add" {
		t.Fatalf("bob's stream starts at his add: %+v", got)
	}
	s.call("DELETE", "/api/rooms/team/members/bob", alice, "", 200)
	var kinds []string
	for ev := range st.events {
		if ev.Comment || ev.Event == "" {
			continue
		}
		kinds = append(kinds, ev.Event+":"+ev.Data)
	}
	if len(kinds) != 2 || !strings.Contains(kinds[0], `"action":"remove"`) || kinds[1] != `left:{"reason":"removed","room":"team"}` {
		t.Fatalf("bob's stream after the removal: %v", kinds)
	}
	s.refused("GET", "/api/rooms/team/events", bob, "", 404, "not_found")
}

// TestClusterMembership: a removal made through one instance takes effect
// at its seq on another: the removed member's connection there gets the
// item, then left, and nothing more; their sends through it, accepted or
// not, are never stored; a member who stays gets everything.
func TestClusterMembership(t *testing.T) {
	cfg, _ := clusterConfig(t)
	a, b := startInstance(t, cfg, "rooms-a"), startInstance(t, cfg, "rooms-b")
	alice, bob, carol := a.login("alice"), a.login("bob"), a.login("carol")
	a.createRoom(alice, "crew", "private", "")
	a.call("POST", "/api/rooms/crew/members", alice, `{"user":"bob"}`, 200)
	a.call("POST", "/api/rooms/crew/members", alice, `{"user":"carol"}`, 200)
	bws, cws := b.dial(bob), b.dial(carol)
	bws.join("crew", 0)
	cws.join("crew", 0)
	bws.messages(2) // his add, carol's
	cws.messages(1) // hers

	a.call("DELETE", "/api/rooms/crew/members/bob", alice, "", 200)
	// At once, through the other instance, whose copy of the room may not
	// know yet: refused at once there, or after its ack by the persist stage.
	bws.write(map[string]any{"type": "send", "room": "crew", "id": "b1", "text": "racing the removal"})
	// The instance may refuse it before its connection has been handed the
	// removal (its copy of the room learns first): then the removal and
	// left follow the refusal. Read until both the refusal and left came.
	var frames []string
	refused, left := false, false
	for !refused || !left {
		f := bws.next(10 * time.Second)
		switch f["type"] {
		case "message":
			frames = append(frames, "message:"+toMessage(f).Data.Action)
		case "error":
			refused = refused || f["id"] == "b1"
			frames = append(frames, "error:"+f["code"].(string))
		case "left":
			left = true
			frames = append(frames, "left")
		default:
			frames = append(frames, f["type"].(string))
		}
	}
	got := strings.Join(frames, ",")
	if !strings.Contains(got, "message:remove,left") || strings.Count(got, "message:") != 1 {
		t.Fatalf("bob's frames after the removal: %s", got)
	}
	a.call("POST", "/api/rooms/crew/messages", alice, `{"id":"a1","text":"after bob"}`, 202)
	for got := cws.messages(2); got[0].Data.Action != "remove" || got[1].ID != "a1"; {
		t.Fatalf("carol got %+v", got)
	}
	bws.quiet(300 * time.Millisecond)
	// The item about bob reached his connection on the other instance as a
	// membership frame too.
	for _, want := range []string{"remove"} {
		select {
		case f := <-bws.memberships:
			if f["action"] != want || f["room"] != "crew" {
				t.Fatalf("membership frame %v, want %s", f, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no membership frame %s", want)
		}
	}
	for _, m := range a.waitHistory(alice, "crew", 5).Messages {
		if m.User == "bob" {
			t.Fatalf("bob's send was stored: %+v", m)
		}
	}
}
