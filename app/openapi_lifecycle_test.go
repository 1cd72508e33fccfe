package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/parley-chat/parley/app/chat"
)

// A message's life (PROTOCOL.md v2 "Message lifecycle") against the API
// documents: the answers of its routes against handlers/openapi.json
// (TestOpenAPILifecycleValidate), its frames and events against
// handlers/asyncapi.yaml (TestAsyncAPILifecycleFrames), and history as it
// stands, folded by the store, against both (TestOpenAPILifecycleFolded).

// lifeSendBurst is the send burst of TestOpenAPILifecycleValidate: enough
// for what its users send, and small enough that one runs out.
const lifeSendBurst = 40

// TestOpenAPILifecycleValidate runs the routes of a message's life, each
// with its successes and refusals (every status they give but 503, which
// needs a store that fails), and validates each request and answer against
// handlers/openapi.json: replies, edits, reactions, a message's edits,
// history with lifecycle items among the messages, deletes and what a
// deleted message refuses, and the send rate they count against.
func TestOpenAPILifecycleValidate(t *testing.T) {
	s := startServer(t, func(cfg *Config) { cfg.SendRate, cfg.SendBurst = 0.001, lifeSendBurst })
	a := newAPICheck(t, s)
	tag := uniqueRoom(t)[2:10]
	alice, bob, carol := s.login("la"+tag), s.login("lb"+tag), s.login("lc"+tag)
	as := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	room, priv := "l-"+tag, "l-"+tag+"-p"
	s.createRoom(alice, room, "public", "")                                                  // 1
	s.call("POST", "/api/rooms/"+room+"/messages", alice, `{"id":"m1","text":"hello"}`, 202) // 2
	s.call("POST", "/api/rooms/"+room+"/messages", bob, `{"id":"b1","text":"hi"}`, 202)      // 3
	s.createRoom(alice, priv, "private", "")
	s.call("POST", "/api/rooms/"+priv+"/messages", alice, `{"id":"p1","text":"inside"}`, 202) // 2 of priv
	s.waitHistory(alice, room, 3)
	s.waitHistory(alice, priv, 2)
	msgs := "/api/rooms/" + room + "/messages"
	m1, b1 := msgs+"/2", msgs+"/3"

	// Replies.
	a.do(call{name: "reply", method: "POST", path: msgs, header: as(bob), body: `{"id":"b2","text":"hello to you","reply_to":2}`, status: 202})
	a.do(call{name: "reply, null", method: "POST", path: msgs, header: as(bob), body: `{"id":"b3","text":"to no one","reply_to":null}`, status: 202})
	a.do(call{name: "reply, beyond the last seq", method: "POST", path: msgs, header: as(bob), body: `{"text":"x","reply_to":999}`, status: 400})
	a.do(call{name: "reply, 0", method: "POST", path: msgs, header: as(bob), body: `{"text":"x","reply_to":0}`, status: 400, badRequest: true})
	a.do(call{name: "reply, a string", method: "POST", path: msgs, header: as(bob), body: `{"text":"x","reply_to":"2"}`, status: 400, badRequest: true})

	// Edits.
	a.do(call{name: "edit", method: "PATCH", path: m1, header: as(alice), body: `{"id":"e1","text":"hello, all"}`, status: 200})
	a.do(call{name: "edit, the same id again", method: "PATCH", path: m1, header: as(alice), body: `{"id":"e1","text":"hello, all"}`, status: 200})
	a.do(call{name: "edit, no id", method: "PATCH", path: m1, header: as(alice), body: `{"text":"hello, everyone"}`, status: 200})
	a.do(call{name: "edit, another's", method: "PATCH", path: b1, header: as(alice), body: `{"text":"mine now"}`, status: 403})
	a.do(call{name: "edit, empty text", method: "PATCH", path: m1, header: as(alice), body: `{"text":""}`, status: 400, badRequest: true})
	a.do(call{name: "edit, blank text", method: "PATCH", path: m1, header: as(alice), body: `{"text":"   "}`, status: 400})
	a.do(call{name: "edit, no text", method: "PATCH", path: m1, header: as(alice), body: `{}`, status: 400, badRequest: true})
	a.do(call{name: "edit, seq 0", method: "PATCH", path: msgs + "/0", header: as(alice), body: `{"text":"x"}`, status: 400, badRequest: true})
	a.do(call{name: "edit, seq not a number", method: "PATCH", path: msgs + "/x", header: as(alice), body: `{"text":"x"}`, status: 400, badRequest: true})
	a.do(call{name: "edit, no message there", method: "PATCH", path: msgs + "/999", header: as(alice), body: `{"text":"x"}`, status: 404})
	a.do(call{name: "edit, an item", method: "PATCH", path: msgs + "/1", header: as(alice), body: `{"text":"x"}`, status: 404})
	a.do(call{name: "edit, private to a non-member", method: "PATCH", path: "/api/rooms/" + priv + "/messages/2", header: as(bob), body: `{"text":"x"}`, status: 404})
	a.do(call{name: "edit, bad room", method: "PATCH", path: "/api/rooms/Bad_Room/messages/2", header: as(alice), body: `{"text":"x"}`, status: 400, badRequest: true})
	a.do(call{name: "edit, no token", method: "PATCH", path: m1, body: `{"text":"x"}`, status: 401, badRequest: true})
	a.do(call{name: "edit, not JSON", method: "PATCH", path: m1, header: map[string]string{"Authorization": "Bearer " + alice, "Content-Type": "text/plain"},
		body: `{"text":"x"}`, status: 415, badRequest: true})
	a.do(call{name: "edit, foreign origin", method: "PATCH", path: m1, header: map[string]string{"Cookie": "parley_session=" + alice, "Origin": "http://evil.test"},
		body: `{"text":"x"}`, status: 403})
	a.do(call{name: "edit, over 64 KiB", method: "PATCH", path: m1, header: as(alice), body: `{"text":"` + strings.Repeat("x", 64<<10) + `"}`, status: 413, badRequest: true})

	// Reactions.
	react := m1 + "/reactions"
	a.do(call{name: "react", method: "POST", path: react, header: as(bob), body: `{"id":"r1","emoji":"👍"}`, status: 200})
	a.do(call{name: "react, on", method: "POST", path: react, header: as(carol), body: `{"emoji":"🇰🇷","on":true}`, status: 200})
	a.do(call{name: "react, off", method: "POST", path: react, header: as(carol), body: `{"emoji":"🇰🇷","on":false}`, status: 200})
	a.do(call{name: "react, not an emoji", method: "POST", path: react, header: as(bob), body: `{"emoji":"a"}`, status: 400})
	a.do(call{name: "react, two emoji", method: "POST", path: react, header: as(bob), body: `{"emoji":"👍👍"}`, status: 400})
	a.do(call{name: "react, no emoji", method: "POST", path: react, header: as(bob), body: `{"on":true}`, status: 400, badRequest: true})
	a.do(call{name: "react, on a string", method: "POST", path: react, header: as(bob), body: `{"emoji":"👍","on":"yes"}`, status: 400, badRequest: true})
	a.do(call{name: "react, private to a non-member", method: "POST", path: "/api/rooms/" + priv + "/messages/2/reactions", header: as(bob), body: `{"emoji":"👍"}`, status: 404})
	a.do(call{name: "react, no token", method: "POST", path: react, body: `{"emoji":"👍"}`, status: 401, badRequest: true})
	a.do(call{name: "react, foreign origin", method: "POST", path: react, header: map[string]string{"Cookie": "parley_session=" + bob, "Origin": "http://evil.test"},
		body: `{"emoji":"👍"}`, status: 403})

	// A message's edits, and history with the lifecycle items.
	// (What the edits and history say, folded, is
	// TestOpenAPILifecycleFolded's: it needs the stores' chat.Lifecycles.)
	edits := m1 + "/edits"
	a.do(call{name: "edits", method: "GET", path: edits, header: as(alice), status: 200})
	a.do(call{name: "edits, not the author", method: "GET", path: edits, header: as(bob), status: 403})
	a.do(call{name: "edits, no message there", method: "GET", path: msgs + "/999/edits", header: as(alice), status: 404})
	a.do(call{name: "edits, seq not a number", method: "GET", path: msgs + "/x/edits", header: as(alice), status: 400, badRequest: true})
	a.do(call{name: "edits, private to a non-member", method: "GET", path: "/api/rooms/" + priv + "/messages/2/edits", header: as(bob), status: 404})
	a.do(call{name: "edits, no token", method: "GET", path: edits, status: 401, badRequest: true})
	var h struct {
		Messages []struct{ Kind string } `json:"messages"`
	}
	mustJSON(t, a.do(call{name: "history with lifecycle items", method: "GET", path: msgs + "?limit=200", header: as(alice), status: 200}), &h)
	kinds := map[string]int{}
	for _, m := range h.Messages {
		kinds[m.Kind]++
	}
	if kinds["edit"] != 2 || kinds["reaction"] != 3 {
		t.Errorf("history of %s: %v items by kind, want 2 edits and 3 reactions", room, kinds)
	}

	// Deletes, and what a deleted message refuses.
	a.do(call{name: "delete, another's", method: "DELETE", path: m1, header: as(bob), status: 403})
	a.do(call{name: "delete, bad id", method: "DELETE", path: m1 + "?id=bad%20id", header: as(alice), status: 400, badRequest: true})
	a.do(call{name: "delete, foreign origin", method: "DELETE", path: m1, header: map[string]string{"Cookie": "parley_session=" + alice, "Origin": "http://evil.test"}, status: 403})
	a.do(call{name: "delete, no token", method: "DELETE", path: m1, status: 401, badRequest: true})
	a.do(call{name: "delete, no message there", method: "DELETE", path: msgs + "/999", header: as(alice), status: 404})
	a.do(call{name: "delete", method: "DELETE", path: m1 + "?id=d1", header: as(alice), status: 200})
	a.do(call{name: "delete, again", method: "DELETE", path: m1, header: as(alice), status: 409})
	a.do(call{name: "edit, deleted", method: "PATCH", path: m1, header: as(alice), body: `{"text":"back"}`, status: 409})
	a.do(call{name: "react, deleted", method: "POST", path: react, header: as(bob), body: `{"emoji":"👍"}`, status: 409})
	a.do(call{name: "edits, deleted", method: "GET", path: edits, header: as(alice), status: 200})
	a.do(call{name: "history with a deleted message", method: "GET", path: msgs + "?limit=200", header: as(alice), status: 200})

	// The send rate: carol's changes count against it, the refused ones
	// included.
	s.call("POST", msgs, carol, `{"id":"c1","text":"mine"}`, 202)
	var c1 string
	waitFor(t, "carol's message", func() bool {
		// chat.Message: the test's message type reads no seq as target.
		var p struct{ Messages []chat.Message }
		mustJSON(t, s.call("GET", msgs+"?limit=200", carol, "", 200), &p)
		for _, m := range p.Messages {
			if m.ID == "c1" {
				c1 = fmt.Sprintf("%s/%d", msgs, m.Seq)
			}
		}
		return c1 != ""
	})
	limited := false
	for range lifeSendBurst + 1 {
		status, body := s.do("POST", c1+"/reactions", carol, `{"emoji":"👍"}`)
		if status == 429 {
			limited = true
			break
		}
		if status != 200 {
			t.Fatalf("carol's reaction: %d %s", status, body)
		}
	}
	if !limited {
		t.Fatalf("no 429 within carol's burst of %d", lifeSendBurst)
	}
	a.do(call{name: "edit, over the send rate", method: "PATCH", path: c1, header: as(carol), body: `{"text":"v2"}`, status: 429})
	a.do(call{name: "react, over the send rate", method: "POST", path: c1 + "/reactions", header: as(carol), body: `{"emoji":"👍"}`, status: 429})
	a.do(call{name: "delete, over the send rate", method: "DELETE", path: c1, header: as(carol), status: 429})
}

// TestAsyncAPILifecycleFrames speaks to the real server and validates a
// message's life as it crosses the wire against handlers/asyncapi.yaml:
// send with reply_to and the reply's message frame; the edit, react and
// delete client frames, their acks, and the items they make as message
// frames on another connection and as events on a stream; a refusal after
// the ack (an edit of another's message) and a bad frame as error frames;
// and a join's replay of it all, items as stored.
func TestAsyncAPILifecycleFrames(t *testing.T) {
	s := startServer(t, nil)
	a := loadAsyncAPI(t)
	tag := uniqueRoom(t)[2:10]
	alice, bob, carol := s.login("fa"+tag), s.login("fb"+tag), s.login("fc"+tag)
	room := "f-" + tag
	ca, cb := a.dial(s, alice), a.dial(s, bob)
	a.send(ca, "Join", `{"type":"join","room":"`+room+`"}`)
	a.read(ca, "joined")
	a.send(cb, "Join", `{"type":"join","room":"`+room+`"}`)
	a.read(cb, "joined")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.base+"/api/rooms/"+room+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+bob)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("events: %v %v", resp, err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)

	// item reads bob's frames up to the next message frame, and the event
	// of it on his stream, and checks that they agree.
	item := func() map[string]any {
		t.Helper()
		f := decodeFrame(t, a.read(cb, "message"))
		ev := decodeFrame(t, a.sseUntil(r, "message"))
		delete(f, "type")
		if !reflect.DeepEqual(f, ev) {
			t.Errorf("message frame %v, event %v", f, ev)
		}
		return f
	}

	a.send(ca, "Send", `{"type":"send","room":"`+room+`","id":"f1","text":"hello"}`)
	a.read(ca, "ack")
	m := item()
	seq := int64(m["seq"].(float64))
	a.send(cb, "Send", fmt.Sprintf(`{"type":"send","room":%q,"id":"f2","text":"hello to you","reply_to":%d}`, room, seq))
	a.read(cb, "ack")
	if f := item(); f["reply_to"] != m["seq"] {
		t.Errorf("the reply %v, want reply_to %v", f, m["seq"])
	}

	// lifecycle sends a client frame of schema, reads its ack on conn and
	// returns the item bob gets.
	lifecycle := func(conn string, schema, frame string) map[string]any {
		t.Helper()
		c := map[string]*websocket.Conn{"alice": ca, "bob": cb}[conn]
		a.send(c, schema, frame)
		if ack := decodeFrame(t, a.read(c, "ack")); ack["room"] != room {
			t.Errorf("%s: ack %v", frame, ack)
		}
		return item()
	}
	target := func(f map[string]any) any { return mapOf(f["data"])["target"] }
	if f := lifecycle("alice", "Edit", fmt.Sprintf(`{"type":"edit","room":%q,"id":"e1","target":%d,"text":"hello, all"}`, room, seq)); f["kind"] != "edit" || f["text"] != "hello, all" || target(f) != m["seq"] {
		t.Errorf("edit item %v", f)
	}
	if f := lifecycle("bob", "React", fmt.Sprintf(`{"type":"react","room":%q,"id":"r1","target":%d,"emoji":"👍"}`, room, seq)); f["kind"] != "reaction" || mapOf(f["data"])["emoji"] != "👍" || mapOf(f["data"])["on"] != true {
		t.Errorf("reaction item %v", f)
	}
	if f := lifecycle("bob", "React", fmt.Sprintf(`{"type":"react","room":%q,"id":"r2","target":%d,"emoji":"👍","on":false}`, room, seq)); f["kind"] != "reaction" || mapOf(f["data"])["on"] != false {
		t.Errorf("reaction off item %v", f)
	}
	// bob's edit of alice's message: acked, then refused by the persist
	// stage.
	a.send(cb, "Edit", fmt.Sprintf(`{"type":"edit","room":%q,"id":"bx","target":%d,"text":"mine now"}`, room, seq))
	a.read(cb, "ack")
	if e := decodeFrame(t, a.read(cb, "error")); e["code"] != "forbidden" || e["id"] != "bx" || e["room"] != room {
		t.Errorf("the refusal of bob's edit: %v", e)
	}
	// A frame the document refuses, and the server too.
	a.send(ca, "", fmt.Sprintf(`{"type":"delete","room":%q,"id":"dx","target":"%d"}`, room, seq))
	if e := decodeFrame(t, a.read(ca, "error")); e["code"] != "bad_request" || e["id"] != "dx" {
		t.Errorf("a delete with a string target: %v", e)
	}
	if f := lifecycle("alice", "Delete", fmt.Sprintf(`{"type":"delete","room":%q,"id":"d1","target":%d}`, room, seq)); f["kind"] != "delete" || target(f) != m["seq"] {
		t.Errorf("delete item %v", f)
	}

	// A join's replay: every item as the store gives it, valid (a deleted
	// message with its text erased, once the store erases it).
	cc := a.dial(s, carol)
	a.send(cc, "Join", `{"type":"join","room":"`+room+`","after":0}`)
	last := int64(decodeFrame(t, a.read(cc, "joined"))["last_seq"].(float64))
	kinds := map[string]int{}
	for n := int64(0); n < last; n++ {
		kinds[fmt.Sprint(decodeFrame(t, a.read(cc, "message"))["kind"])]++
	}
	if kinds["edit"] != 1 || kinds["reaction"] != 2 || kinds["delete"] != 1 {
		t.Errorf("the replay's items by kind: %v", kinds)
	}
}

// TestOpenAPILifecycleFolded: history as it stands, folded by the store
// (chat.Lifecycles), validates against both documents and is what the
// lifecycle items say: an edited message's text and edited_ts, its
// reactions, then deleted with its text erased, in history, in a message's
// edits, and in a join's replay. It needs the stores' folding and erasing.
func TestOpenAPILifecycleFolded(t *testing.T) {
	s := startServer(t, nil)
	a := newAPICheck(t, s)
	as := loadAsyncAPI(t)
	tag := uniqueRoom(t)[2:10]
	alice, bob := s.login("ga"+tag), s.login("gb"+tag)
	room := "g-" + tag
	msgs := "/api/rooms/" + room + "/messages"
	s.call("POST", msgs, alice, `{"id":"m1","text":"hello"}`, 202)
	s.waitHistory(alice, room, 1)
	m1 := msgs + "/1"
	edit := s.item("PATCH", m1, alice, `{"text":"hello, all"}`, 200)
	s.item("POST", m1+"/reactions", bob, `{"emoji":"👍"}`, 200)
	s.item("POST", m1+"/reactions", alice, `{"emoji":"👍"}`, 200)
	got := s.waitFolded(alice, room, 1, func(m chat.Message) bool { return len(m.Reactions["👍"]) == 2 })
	if got.Text != "hello, all" || got.EditedTS != edit.TS || !reflect.DeepEqual(got.Reactions["👍"], []string{"gb" + tag, "ga" + tag}) {
		t.Errorf("m1 as it stands: %+v", got)
	}
	a.do(call{name: "history, folded", method: "GET", path: msgs, header: map[string]string{"Authorization": "Bearer " + alice}, status: 200})

	s.item("DELETE", m1, alice, "", 200)
	got = s.waitFolded(alice, room, 1, func(m chat.Message) bool { return m.Deleted })
	if got.Text != "" || got.EditedTS != "" || got.Reactions != nil {
		t.Errorf("deleted m1 stands as %+v", got)
	}
	a.do(call{name: "history, deleted", method: "GET", path: msgs, header: map[string]string{"Authorization": "Bearer " + alice}, status: 200})
	var ed struct {
		Deleted  bool `json:"deleted"`
		Original struct {
			Text string `json:"text"`
		} `json:"original"`
		Edits []struct {
			Text string `json:"text"`
		} `json:"edits"`
	}
	mustJSON(t, a.do(call{name: "edits, deleted", method: "GET", path: m1 + "/edits", header: map[string]string{"Authorization": "Bearer " + alice}, status: 200}), &ed)
	if !ed.Deleted || ed.Original.Text != "" || len(ed.Edits) != 1 || ed.Edits[0].Text != "" {
		t.Errorf("a deleted message's edits: %+v", ed)
	}
	// The replay: the deleted message, its edit erased, as stored.
	c := as.dial(s, bob)
	as.send(c, "Join", `{"type":"join","room":"`+room+`","after":0}`)
	as.read(c, "joined")
	var first, second map[string]any
	for first == nil || second == nil {
		f := decodeFrame(t, as.read(c, "message"))
		switch f["seq"] {
		case 1.0:
			first = f
		case 2.0:
			second = f
		}
	}
	if first["deleted"] != true || first["text"] != "" || second["kind"] != "edit" || second["text"] != "" {
		t.Errorf("the replay: %v then %v, want m1 deleted and its edit erased", first, second)
	}
	raw, _ := json.Marshal(first)
	as.validate("MessageFrame", raw)
}
