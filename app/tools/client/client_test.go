package client_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/parley-chat/parley/app/tools/client"
)

// These tests run the client against a fake server (httptest and a
// WebSocket upgrader): a script that answers the client's frames and pushes
// timeline items, and serves the history. The real server's side is tested
// in app/client_test.go.

// fake is one fake server: every WebSocket connection runs serve.
type fake struct {
	t     *testing.T
	srv   *httptest.Server
	serve func(ws *fakeConn)
	// history answers GET /api/rooms/{room}/messages, by query.
	mu      sync.Mutex
	history func(r *http.Request) any
	// down makes /readyz answer 503 and refuses WebSocket upgrades (503),
	// as an instance that is starting or stopping would; dials counts the
	// upgrades asked for, refused or not.
	down  atomic.Bool
	dials atomic.Int32
	// unready makes /readyz alone answer 503.
	unready atomic.Bool
	// refuse, when set, is asked at each upgrade: true refuses it (503).
	refuse func() bool
	// readyHook, when set, runs before /readyz answers.
	readyHook func()
}

type fakeConn struct {
	t  *testing.T
	ws *websocket.Conn
}

func newFake(t *testing.T, serve func(ws *fakeConn)) *fake {
	f := &fake{t: t, serve: serve}
	up := websocket.Upgrader{}
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if f.readyHook != nil {
			f.readyHook()
		}
		if f.down.Load() || f.unready.Load() {
			http.Error(w, `{"status":"unavailable"}`, 503)
			return
		}
		_, _ = w.Write([]byte(`{"status":"ready"}`))
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		f.dials.Add(1)
		if f.down.Load() || f.refuse != nil && f.refuse() {
			http.Error(w, "down", 503)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		defer ws.Close()
		f.serve(&fakeConn{t: t, ws: ws})
	})
	mux.HandleFunc("GET /api/rooms/{room}/messages", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		h := f.history
		f.mu.Unlock()
		if h == nil {
			http.Error(w, "no history", 500)
			return
		}
		_ = json.NewEncoder(w).Encode(h(r))
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// read reads the next frame the client sent (pings skipped); nil once the
// connection is gone (the client stops at the end of each test, and the
// test judges by what the client recorded).
func (c *fakeConn) read() map[string]any {
	for {
		_ = c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			return nil
		}
		var f map[string]any
		if err := json.Unmarshal(b, &f); err != nil {
			c.t.Errorf("client sent %q: %v", b, err)
			return nil
		}
		if f["type"] != "ping" {
			return f
		}
	}
}

func (c *fakeConn) send(v any) {
	b, _ := json.Marshal(v)
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Errorf("fake server write: %v", err)
	}
}

// joined answers the client's join of room with last_seq 0.
func (c *fakeConn) joined(room string) {
	if f := c.read(); f["type"] != "join" || f["room"] != room {
		c.t.Errorf("first frame %v, want a join of %s", f, room)
	}
	c.send(map[string]any{"type": "joined", "room": room, "last_seq": 0})
}

func startClient(t *testing.T, f *fake, edit func(*client.Config)) *client.Client {
	cfg := client.Config{URLs: []string{f.srv.URL}, Token: "tok", Name: "alice", Rooms: []string{"r"}, SkipReadyCheck: true}
	if edit != nil {
		edit(&cfg)
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := c.WaitConnected(wctx); err != nil {
		t.Fatal(err)
	}
	return c
}

func item(seq int64, user, kind, text string, data map[string]any) map[string]any {
	m := map[string]any{"type": "message", "room": "r", "seq": seq, "id": "i" + string(rune('a'+seq)), "user": user,
		"ts": time.Date(2026, 12, 3, 10, 0, int(seq), 0, time.UTC).Format("2006-01-02T15:04:05.000Z"), "text": text}
	if kind != "" {
		m["kind"] = kind
	}
	if data != nil {
		m["data"] = data
	}
	return m
}

func react(seq int64, user string, target int64, emoji string, on bool) map[string]any {
	return item(seq, user, "reaction", user+" reacted "+emoji, map[string]any{"target": target, "emoji": emoji, "on": on})
}

func waitLast(t *testing.T, c *client.Client, seq int64) {
	t.Helper()
	for t0 := time.Now(); c.Last("r") < seq; {
		if time.Since(t0) > 10*time.Second {
			t.Fatalf("delivered up to %d, want %d", c.Last("r"), seq)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The folded view: lifecycle items folded in seq order into their targets,
// with chat.Message.Fold's rule; a member item (whose "target" is a user
// name) is no message of the view.
func TestFoldedView(t *testing.T) {
	f := newFake(t, func(c *fakeConn) {
		c.joined("r")
		for _, m := range []map[string]any{
			item(1, "alice", "", "hello", nil),
			item(2, "bob", "", "hi", nil),
			item(3, "alice", "edit", "hello, all", map[string]any{"target": 1}),
			react(4, "bob", 2, "👍", true),
			react(5, "alice", 2, "👍", true),
			react(6, "bob", 2, "👍", false),
			react(7, "bob", 2, "🎉", true),
			item(8, "mod", "member", "mod added carol", map[string]any{"action": "add", "target": "carol"}),
			react(9, "bob", 1, "👍", true),
			item(10, "alice", "delete", "alice deleted a message", map[string]any{"target": 1}),
			item(11, "alice", "edit", "too late", map[string]any{"target": 1}),
			func() map[string]any { m := item(12, "bob", "", "re", nil); m["reply_to"] = 2; return m }(),
			item(13, "bob", "edit", "about nothing", map[string]any{"target": 99}),
		} {
			c.send(m)
		}
		c.read() // until the client goes
	})
	c := startClient(t, f, nil)
	waitLast(t, c, 13)
	got := c.Messages("r")
	ts := func(s int) string {
		return time.Date(2026, 12, 3, 10, 0, s, 0, time.UTC).Format("2006-01-02T15:04:05.000Z")
	}
	want := []client.Message{
		{Room: "r", Seq: 1, ID: "ib", User: "alice", Text: "", TS: ts(1), Deleted: true},
		{Room: "r", Seq: 2, ID: "ic", User: "bob", Text: "hi", TS: ts(2), Reactions: map[string][]string{"👍": {"alice"}, "🎉": {"bob"}}},
		{Room: "r", Seq: 12, ID: "im", User: "bob", Text: "re", TS: ts(12), ReplyTo: 2},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("folded view\n got %+v\nwant %+v", got, want)
	}
	if rec := c.Record().Rooms["r"]; !reflect.DeepEqual(rec.Messages, want) || len(rec.Delivered) != 13 {
		t.Fatalf("record: %d delivered, messages %+v", len(rec.Delivered), rec.Messages)
	}
}

// An edit of a message not yet folded away, then the text: the edit's text
// and edited_ts stand.
func TestFoldedViewEdit(t *testing.T) {
	f := newFake(t, func(c *fakeConn) {
		c.joined("r")
		c.send(item(1, "alice", "", "helo", nil))
		c.send(item(2, "alice", "edit", "hello", map[string]any{"target": 1}))
		c.read()
	})
	c := startClient(t, f, nil)
	waitLast(t, c, 2)
	got := c.Messages("r")
	if len(got) != 1 || got[0].Text != "hello" || got[0].EditedTS != item(2, "", "", "", nil)["ts"] || got[0].Deleted {
		t.Fatalf("view %+v", got)
	}
}

// A gap filled from the history: the history's message comes folded as it
// stands at the read (here with bob's reaction of seq 6, which the client
// gets after), the lifecycle items as items. Folding the fetched items on
// top of the history's reactions would move alice behind bob (her
// reaction taken back and given again); the client folds the reactions anew
// and gets the server's order.
func TestFoldedViewHistoryGap(t *testing.T) {
	hist := []map[string]any{
		item(1, "carol", "", "post", nil),
		react(2, "alice", 1, "👍", true),
		react(3, "alice", 1, "👍", false),
		react(4, "alice", 1, "👍", true),
		item(5, "carol", "", "more", nil),
	}
	hist[0]["reactions"] = map[string][]string{"👍": {"alice", "bob"}} // folded up to seq 6
	for _, h := range hist {
		delete(h, "type")
	}
	f := newFake(t, func(c *fakeConn) {
		c.joined("r")
		c.send(react(6, "bob", 1, "👍", true)) // a jump: 1..5 come from the history
		c.read()
	})
	f.history = func(r *http.Request) any {
		if r.URL.Query().Get("after") != "0" {
			t.Errorf("history asked %s", r.URL.RawQuery)
		}
		return map[string]any{"messages": hist}
	}
	c := startClient(t, f, nil)
	waitLast(t, c, 6)
	got := c.Messages("r")
	if len(got) != 2 || !reflect.DeepEqual(got[0].Reactions, map[string][]string{"👍": {"alice", "bob"}}) {
		t.Fatalf("view %+v", got)
	}
	if rec := c.Record().Rooms["r"]; rec.GapsFilled != 1 {
		t.Fatalf("gaps filled %d", rec.GapsFilled)
	}
}

// The lifecycle frames and reply_to on the wire, each acknowledged like a
// send; an unavailable answer is retried under the same id, and a refusal
// after the ack (a target deleted meanwhile: conflict) is recorded.
func TestLifecycleFrames(t *testing.T) {
	frames := make(chan map[string]any, 16)
	f := newFake(t, func(c *fakeConn) {
		c.joined("r")
		tries := map[any]int{}
		for {
			m := c.read()
			if m == nil {
				return
			}
			frames <- m
			tries[m["id"]]++
			ack := map[string]any{"type": "ack", "room": m["room"], "id": m["id"]}
			switch {
			case m["id"] == "e1" && tries["e1"] == 1:
				c.send(map[string]any{"type": "error", "room": "r", "id": "e1", "code": "unavailable", "message": "try again"})
			case m["id"] == "x1":
				c.send(ack)
				c.send(map[string]any{"type": "error", "room": "r", "id": "x1", "code": "conflict", "message": "the message was deleted"})
			default:
				c.send(ack)
			}
		}
	})
	c := startClient(t, f, func(cfg *client.Config) { cfg.BackoffMin, cfg.BackoffMax = 10*time.Millisecond, 20*time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.SendReply(ctx, "r", "s1", "yes", 7); err != nil {
		t.Fatal(err)
	}
	if err := c.Edit(ctx, "r", "e1", 7, "new text"); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "r", "d1", 7); err != nil {
		t.Fatal(err)
	}
	if err := c.React(ctx, "r", "x1", 8, "👍", false); err != nil {
		t.Fatal(err)
	}
	want := []map[string]any{
		{"type": "send", "room": "r", "id": "s1", "text": "yes", "reply_to": 7.0},
		{"type": "edit", "room": "r", "id": "e1", "target": 7.0, "text": "new text"},
		{"type": "edit", "room": "r", "id": "e1", "target": 7.0, "text": "new text"}, // after "unavailable"
		{"type": "delete", "room": "r", "id": "d1", "target": 7.0},
		{"type": "react", "room": "r", "id": "x1", "target": 8.0, "emoji": "👍", "on": false},
	}
	for k, w := range want {
		select {
		case got := <-frames:
			if !reflect.DeepEqual(got, w) {
				t.Errorf("frame %d: got %v, want %v", k, got, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("frame %d not sent", k)
		}
	}
	// The refusal of x1 after its ack.
	for t0 := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		var x1 client.Sent
		sent := c.Record().Sent
		for _, s := range sent {
			if s.ID == "x1" {
				x1 = s
			}
		}
		if x1.Refused == "conflict" && x1.RefusedAfterAck && x1.Kind == client.KindReaction && x1.Target == 8 && !x1.Confirmed() {
			if len(sent) != 4 || sent[1].Attempts != 2 || sent[1].Kind != client.KindEdit || !sent[2].Confirmed() || sent[2].Kind != client.KindDelete {
				t.Fatalf("sent %+v", sent)
			}
			break
		}
		if time.Since(t0) > 5*time.Second {
			t.Fatalf("x1 recorded %+v", x1)
		}
	}
}
