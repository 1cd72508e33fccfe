package main

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
)

// A message's life, black-box, both modes: replies, edits (author only),
// deletes (author, moderator, owner; the text erased), reactions, history
// as it stands, the lifecycle items in the timeline so that a resume folds
// to the same, and every bad input the issue names.

// item is a timeline item as chat reads it (lifecycle data included).
func (s *testServer) item(method, path, token, body string, want int) chat.Message {
	s.t.Helper()
	var m chat.Message
	if err := json.Unmarshal(s.call(method, path, token, body, want), &m); err != nil {
		s.t.Fatal(err)
	}
	return m
}

// foldedHistory is the whole room's history as the server folds it, the
// lifecycle items left out.
func (s *testServer) foldedHistory(token, room string) map[int64]chat.Message {
	s.t.Helper()
	var p struct {
		Messages []chat.Message `json:"messages"`
	}
	mustJSON(s.t, s.call("GET", "/api/rooms/"+room+"/messages?limit=200", token, "", 200), &p)
	out := map[int64]chat.Message{}
	for _, m := range p.Messages {
		if m.Kind == "" {
			out[m.Seq] = m
		}
	}
	return out
}

// waitFolded polls the folded history until the message at seq is as check
// says (the store folds what the persist stage stored a moment ago).
func (s *testServer) waitFolded(token, room string, seq int64, check func(chat.Message) bool) chat.Message {
	s.t.Helper()
	var m chat.Message
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m = s.foldedHistory(token, room)[seq]; check(m) {
			return m
		}
	}
	s.t.Fatalf("message %d of %s stands as %+v", seq, room, m)
	return m
}

func TestMessageLifecycle(t *testing.T) {
	s := startServer(t, nil)
	alice, bob, carol := s.login("alice"), s.login("bob"), s.login("carol")
	s.createRoom(alice, "lc", "public", "")
	s.call("POST", "/api/rooms/lc/messages", bob, `{"id":"b0","text":"hi"}`, 202)
	s.call("POST", "/api/rooms/lc/messages", carol, `{"id":"c0","text":"hi"}`, 202)
	s.waitHistory(alice, "lc", 3)
	s.call("PUT", "/api/rooms/lc/members/carol", alice, `{"role":"moderator"}`, 200)

	aws, bws := s.dial(alice), s.dial(bob)
	bws.join("lc")
	aws.sendAcked("lc", "a1", "hello")
	aws.ack("a1")
	h := s.waitHistory(alice, "lc", 5)
	m1 := h.Messages[4].Seq
	// A reply, over POST.
	s.call("POST", "/api/rooms/lc/messages", bob, fmt.Sprintf(`{"id":"b1","text":"hello to you","reply_to":%d}`, m1), 202)

	// An edit over WebSocket: acked like a send; everyone joined gets the
	// item.
	aws.write(map[string]any{"type": "edit", "room": "lc", "id": "e1", "target": m1, "text": "hello, all"})
	aws.ack("e1")
	var edit message
	for edit.Kind != "edit" {
		edit = bws.messages(1)[0]
	}
	if edit.Text != "hello, all" || edit.User != "alice" {
		t.Fatalf("edit item %+v", edit)
	}
	// Over REST: the stored item.
	e2 := s.item("PATCH", fmt.Sprintf("/api/rooms/lc/messages/%d", m1), alice, `{"id":"e2","text":"hello, everyone"}`, 200)
	if e2.Kind != "edit" || e2.Data == nil || e2.Data.TargetSeq != m1 || e2.Seq <= m1 {
		t.Fatalf("edit answer %+v", e2)
	}
	// Someone else's message: forbidden, for bob and for a moderator.
	s.refused("PATCH", fmt.Sprintf("/api/rooms/lc/messages/%d", m1), bob, `{"text":"mine now"}`, 403, "forbidden")
	s.refused("PATCH", fmt.Sprintf("/api/rooms/lc/messages/%d", m1), carol, `{"text":"moderated"}`, 403, "forbidden")
	bws.write(map[string]any{"type": "edit", "room": "lc", "id": "bx", "target": m1, "text": "mine now"})
	if f := bws.errorFor("bx"); f["code"] != "forbidden" {
		t.Fatalf("bob's edit frame: %v", f)
	}

	// Reactions: on and off, twice is once.
	s.item("POST", fmt.Sprintf("/api/rooms/lc/messages/%d/reactions", m1), bob, `{"emoji":"👍"}`, 200)
	s.item("POST", fmt.Sprintf("/api/rooms/lc/messages/%d/reactions", m1), bob, `{"emoji":"👍","on":true}`, 200)
	aws.write(map[string]any{"type": "react", "room": "lc", "id": "r1", "target": m1, "emoji": "👍", "on": true})
	aws.ack("r1")
	s.item("POST", fmt.Sprintf("/api/rooms/lc/messages/%d/reactions", m1), carol, `{"emoji":"🎉"}`, 200)
	s.item("POST", fmt.Sprintf("/api/rooms/lc/messages/%d/reactions", m1), carol, `{"emoji":"🎉","on":false}`, 200)
	got := s.waitFolded(alice, "lc", m1, func(m chat.Message) bool { return len(m.Reactions["👍"]) == 2 })
	if got.Text != "hello, everyone" || got.EditedTS != e2.TS || !reflect.DeepEqual(got.Reactions, map[string][]string{"👍": {"bob", "alice"}}) {
		t.Fatalf("m1 as it stands: %+v", got)
	}
	reply := s.foldedHistory(alice, "lc")
	var found bool
	for _, m := range reply {
		if m.ID == "b1" {
			found = m.ReplyTo == m1
		}
	}
	if !found {
		t.Fatalf("the reply has no reply_to %d: %+v", m1, reply)
	}

	// The edits, for the author and moderators only.
	var ed struct {
		Original struct{ Text string }   `json:"original"`
		Edits    []struct{ Text string } `json:"edits"`
	}
	mustJSON(t, s.call("GET", fmt.Sprintf("/api/rooms/lc/messages/%d/edits", m1), carol, "", 200), &ed)
	if ed.Original.Text != "hello" || len(ed.Edits) != 2 || ed.Edits[1].Text != "hello, everyone" {
		t.Fatalf("edits %+v", ed)
	}
	s.refused("GET", fmt.Sprintf("/api/rooms/lc/messages/%d/edits", m1), bob, "", 403, "forbidden")

	// A moderator deletes: the text is gone, from history and the store;
	// nothing more takes.
	s.item("DELETE", fmt.Sprintf("/api/rooms/lc/messages/%d?id=d1", m1), carol, "", 200)
	got = s.waitFolded(alice, "lc", m1, func(m chat.Message) bool { return m.Deleted })
	if got.Text != "" || got.Reactions != nil || got.EditedTS != "" {
		t.Fatalf("deleted m1 stands as %+v", got)
	}
	mustJSON(t, s.call("GET", fmt.Sprintf("/api/rooms/lc/messages/%d/edits", m1), alice, "", 200), &ed)
	if ed.Original.Text != "" || len(ed.Edits) != 2 || ed.Edits[0].Text != "" || ed.Edits[1].Text != "" {
		t.Fatalf("a deleted message's edits still say %+v", ed)
	}
	s.refused("PATCH", fmt.Sprintf("/api/rooms/lc/messages/%d", m1), alice, `{"text":"back"}`, 409, "conflict")
	s.refused("POST", fmt.Sprintf("/api/rooms/lc/messages/%d/reactions", m1), bob, `{"emoji":"👍"}`, 409, "conflict")
	s.refused("DELETE", fmt.Sprintf("/api/rooms/lc/messages/%d", m1), alice, "", 409, "conflict")
	// bob may delete his own, not others'.
	s.refused("DELETE", "/api/rooms/lc/messages/3", bob, "", 403, "forbidden") // carol's hi
	h = s.history(alice, "lc", "?limit=200")
	var b1 int64
	for _, m := range h.Messages {
		if m.ID == "b1" {
			b1 = m.Seq
		}
	}
	s.item("DELETE", fmt.Sprintf("/api/rooms/lc/messages/%d", b1), bob, "", 200)

	// Resume: a client that joins from 0 and folds the items in order
	// lands where history stands.
	cws := s.dial(carol)
	last := cws.join("lc", 0)
	var all []chat.Message
	for int64(len(all)) < last {
		f := cws.next(5 * time.Second)
		if f["type"] != "message" {
			continue
		}
		b, _ := json.Marshal(f)
		var m chat.Message
		mustJSON(t, b, &m)
		all = append(all, m)
	}
	folded := map[int64]chat.Message{}
	for _, m := range all {
		if m.Kind == "" {
			m.Text = strings.Clone(m.Text)
			folded[m.Seq] = m
		}
	}
	for i := range all {
		if t := all[i].Target(); t > 0 {
			m := folded[t]
			m.Fold(&all[i])
			folded[t] = m
		}
	}
	stands := s.foldedHistory(carol, "lc")
	for seq, m := range stands {
		f := folded[seq]
		f.Mentions, m.Mentions = nil, nil
		if !reflect.DeepEqual(f, m) {
			t.Fatalf("message %d: resumed and folded %+v, history %+v", seq, f, m)
		}
	}
}

func TestLifecycleBadInput(t *testing.T) {
	s := startServer(t, nil)
	alice, bob := s.login("alice"), s.login("bob")
	s.createRoom(alice, "lcb", "private", "")
	s.call("POST", "/api/rooms/lcb/messages", alice, `{"id":"a1","text":"first"}`, 202)
	s.waitHistory(alice, "lcb", 2)
	p := "/api/rooms/lcb/messages/"
	// A timeline event, a seq that does not exist, not a member.
	s.refused("PATCH", p+"1", alice, `{"text":"x"}`, 404, "not_found")
	s.refused("PATCH", p+"999", alice, `{"text":"x"}`, 404, "not_found")
	s.refused("DELETE", p+"1", alice, "", 404, "not_found")
	s.refused("POST", p+"2/reactions", bob, `{"emoji":"👍"}`, 404, "not_found")
	s.refused("PATCH", p+"2", bob, `{"text":"x"}`, 404, "not_found")
	// Text rules as for a send; one emoji grapheme.
	for _, body := range []string{`{"text":""}`, `{}`, `{"text":"` + strings.Repeat("x", 4001) + `"}`, `{"text":"a\u202eb"}`, `{"text":5}`, `{"id":"bad id","text":"x"}`} {
		s.refused("PATCH", p+"2", alice, body, 400, "bad_request")
	}
	for _, e := range []string{"", "a", "👍👍", "ab", "\u200d", "👍 ", "🇺", strings.Repeat("👍", 40)} {
		s.refused("POST", p+"2/reactions", alice, mustMarshal(map[string]string{"emoji": e}), 400, "bad_request")
	}
	for _, e := range []string{"👍", "👍🏽", "🇰🇷", "👨‍👩‍👧", "❤️", "1️⃣", "☕"} {
		s.item("POST", p+"2/reactions", alice, mustMarshal(map[string]string{"emoji": e}), 200)
	}
	for _, q := range []string{"x", "-1", "0"} {
		s.refused("PATCH", p+q, alice, `{"text":"x"}`, 400, "bad_request")
	}
	// reply_to: a whole number, not ahead of the room's last seq.
	for _, body := range []string{`{"text":"x","reply_to":999}`, `{"text":"x","reply_to":-1}`, `{"text":"x","reply_to":"2"}`, `{"text":"x","reply_to":0}`} {
		s.refused("POST", "/api/rooms/lcb/messages", alice, body, 400, "bad_request")
	}
	status, _, b := s.req("PATCH", p+"2", map[string]string{"Authorization": "Bearer " + alice, "Content-Type": "text/plain"}, []byte(`{"text":"x"}`))
	apiError(t, status, b, 415, "bad_request")
	status, _, b = s.req("DELETE", p+"2", map[string]string{"Cookie": "parley_session=" + alice, "Origin": "http://evil.example"}, nil)
	apiError(t, status, b, 403, "forbidden")
	ws := s.dial(alice)
	for _, f := range []string{
		`{"type":"edit","room":"lcb","id":"x1","text":"no target"}`,
		`{"type":"edit","room":"lcb","id":"x2","target":"2","text":"x"}`,
		`{"type":"react","room":"lcb","id":"x3","target":2}`,
		`{"type":"delete","room":"lcb","id":"x4","target":0}`,
		`{"type":"send","room":"lcb","id":"x5","text":"x","reply_to":999}`,
	} {
		ws.write(f)
		if e := ws.expect("error"); e["code"] != "bad_request" {
			t.Fatalf("%s: %v", f, e)
		}
	}
}

// TestClusterLifecycle: an edit accepted by one instance reaches a client
// on the other, and both instances' history folds alike.
func TestClusterLifecycle(t *testing.T) {
	cfg, _ := clusterConfig(t)
	a, b := startInstance(t, cfg, "life-a"), startInstance(t, cfg, "life-b")
	alice, bob := a.login("alice"), a.login("bob")
	a.call("POST", "/api/rooms/both/messages", alice, `{"id":"a1","text":"v1"}`, 202)
	a.waitHistory(alice, "both", 1)
	bws := b.dial(bob)
	bws.join("both")
	a.item("PATCH", "/api/rooms/both/messages/1", alice, `{"id":"e1","text":"v2"}`, 200)
	if m := bws.messages(1)[0]; m.Kind != "edit" || m.Text != "v2" {
		t.Fatalf("bob got %+v", m)
	}
	b.item("POST", "/api/rooms/both/messages/1/reactions", bob, `{"emoji":"👀"}`, 200)
	for _, s := range []*testServer{a, b} {
		m := s.waitFolded(bob, "both", 1, func(m chat.Message) bool { return len(m.Reactions) == 1 })
		if m.Text != "v2" || m.EditedTS == "" || !reflect.DeepEqual(m.Reactions["👀"], []string{"bob"}) {
			t.Fatalf("%s folds %+v", s.base, m)
		}
	}
}
