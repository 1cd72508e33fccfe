package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/app/tools/client"
)

// These tests run the recovering client (app/tools/client) against the real
// server through a rcProxy, a TCP proxy the test can cut, take down, or
// have drop and repeat the server's WebSocket frames: the faults the client
// must mend.

// rcProxy forwards TCP connections to a server. Server-to-client
// WebSocket text frames go through filter, which returns how many copies to
// pass on (0 drops the frame).
type rcProxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]bool
	filter func(frame []byte) int
}

func newRCProxy(t *testing.T, target string) *rcProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &rcProxy{t: t, ln: ln, target: strings.TrimPrefix(target, "http://"), conns: map[net.Conn]bool{}}
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *rcProxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *rcProxy) setFilter(f func([]byte) int) {
	p.mu.Lock()
	p.filter = f
	p.mu.Unlock()
}

// setDown makes the proxy refuse new connections (true) or accept them again.
func (p *rcProxy) setDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
}

// cut closes every open connection.
func (p *rcProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

func (p *rcProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[s] = true, true
		p.mu.Unlock()
		go func() { _, _ = io.Copy(s, c); s.Close() }()
		go func() { p.fromServer(c, s); c.Close() }()
	}
}

// fromServer copies the server's answer to the client: raw for plain HTTP;
// after a 101 upgrade, frame by frame through the filter.
func (p *rcProxy) fromServer(c, s net.Conn) {
	r := bufio.NewReader(s)
	var head bytes.Buffer
	for {
		line, err := r.ReadString('\n')
		head.WriteString(line)
		if err != nil {
			c.Write(head.Bytes())
			return
		}
		if line == "\r\n" {
			break
		}
	}
	if _, err := c.Write(head.Bytes()); err != nil {
		return
	}
	if !strings.HasPrefix(head.String(), "HTTP/1.1 101") {
		_, _ = io.Copy(c, r)
		return
	}
	for {
		frame, text, err := rcReadFrame(r)
		if err != nil {
			return
		}
		copies := 1
		p.mu.Lock()
		if f := p.filter; f != nil && text != nil {
			copies = f(text)
		}
		p.mu.Unlock()
		for range copies {
			if _, err := c.Write(frame); err != nil {
				return
			}
		}
	}
}

// rcReadFrame reads one server frame (never masked) and returns its bytes and,
// for a whole text frame, its payload.
func rcReadFrame(r *bufio.Reader) (frame, text []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, nil, err
	}
	frame = append(frame, h[:]...)
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, nil, err
		}
		frame = append(frame, b[:]...)
		n = int(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, nil, err
		}
		frame = append(frame, b[:]...)
		n = int(binary.BigEndian.Uint64(b[:]))
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, nil, err
	}
	frame = append(frame, payload...)
	if h[0] == 0x81 { // FIN, text
		text = payload
	}
	return frame, text, nil
}

// rcFrameIs reports whether a server frame has the given type and fields.
func rcFrameIs(b []byte, typ string, match func(f map[string]any) bool) bool {
	var f map[string]any
	if json.Unmarshal(b, &f) != nil || f["type"] != typ {
		return false
	}
	return match == nil || match(f)
}

func rcClient(t *testing.T, urls []string, token string, rooms []string, edit func(*client.Config)) *client.Client {
	t.Helper()
	cfg := client.Config{URLs: urls, Token: token, Rooms: rooms, BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond}
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
		t.Fatalf("client not connected: %v", err)
	}
	return c
}

// rcWaitDelivered waits until c has delivered seq n in room.
func rcWaitDelivered(t *testing.T, c *client.Client, room string, n int64) client.RoomRecord {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.Last(room) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: client reached seq %d, want %d", room, c.Last(room), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c.Record().Rooms[room]
}

// rcCheckDelivered checks that rec holds exactly seqs from..to once, in
// order, with the ids the store holds.
func rcCheckDelivered(t *testing.T, rec client.RoomRecord, stored page, from, to int64) {
	t.Helper()
	ids := map[int64]string{}
	for _, m := range stored.Messages {
		ids[m.Seq] = m.ID
	}
	var seqs []int64
	for _, d := range rec.Delivered {
		seqs = append(seqs, d.Seq)
	}
	if int64(len(rec.Delivered)) != to-from+1 {
		t.Fatalf("delivered seqs %v, want %d..%d", seqs, from, to)
	}
	for i, d := range rec.Delivered {
		if d.Seq != from+int64(i) || d.ID != ids[d.Seq] {
			t.Fatalf("delivered %v (seq %d id %q, store has %q), want %d..%d", seqs, d.Seq, d.ID, ids[d.Seq], from, to)
		}
	}
}

func rcPostN(t *testing.T, s *testServer, token, room, prefix string, n int) {
	t.Helper()
	for i := range n {
		if err := post(s, token, room, fmt.Sprintf("%s-%d", prefix, i), prefix); err != nil {
			t.Fatal(err)
		}
	}
}

// TestClientReconnectResumes: the client's connection is cut and the
// instance is unreachable while messages go by; once it is back the client
// reconnects, rejoins with after and has every message once, in order.
func TestClientReconnectResumes(t *testing.T) {
	s := startServer(t, nil)
	room := uniqueRoom(t)
	token := s.login("alice")
	p := newRCProxy(t, s.base)
	c := rcClient(t, []string{p.url()}, token, []string{room}, nil)

	rcPostN(t, s, token, room, "before", 5)
	rcWaitDelivered(t, c, room, 5)

	p.setDown(true)
	p.cut()
	rcPostN(t, s, token, room, "down", 5)
	time.Sleep(300 * time.Millisecond) // a few failed reconnects
	if c.Connected() {
		t.Fatal("client still connected through a proxy that is down")
	}
	p.setDown(false)
	rcPostN(t, s, token, room, "after", 5)
	rec := rcWaitDelivered(t, c, room, 15)
	time.Sleep(200 * time.Millisecond) // room for a late duplicate
	rec = c.Record().Rooms[room]
	rcCheckDelivered(t, rec, s.waitHistory(token, room, 15), 1, 15)
	r := c.Record()
	if len(r.Outages) != 1 || r.Outages[0].Recovered == 0 || r.Connects != 2 {
		t.Fatalf("outages %+v, connects %d: want one recovered outage and two connections", r.Outages, r.Connects)
	}
	for _, d := range rec.Delivered {
		if d.Via != client.Live {
			t.Fatalf("seq %d came from %s, want the server's replay on join", d.Seq, d.Via)
		}
	}
	t.Logf("recovered in %v after %d attempts", r.Outages[0].Recovered, r.Outages[0].Attempts)
}

// TestClientFillsGapFromHistory: a message frame lost on a live connection
// (dropped by the proxy) is fetched from the history when the next one
// shows the jump.
func TestClientFillsGapFromHistory(t *testing.T) {
	s := startServer(t, nil)
	room := uniqueRoom(t)
	token := s.login("alice")
	p := newRCProxy(t, s.base)
	p.setFilter(func(b []byte) int {
		if rcFrameIs(b, "message", func(f map[string]any) bool { s := f["seq"].(float64); return s == 3 || s == 4 }) {
			return 0
		}
		return 1
	})
	c := rcClient(t, []string{p.url()}, token, []string{room}, nil)
	rcPostN(t, s, token, room, "m", 6)
	rec := rcWaitDelivered(t, c, room, 6)
	rcCheckDelivered(t, rec, s.waitHistory(token, room, 6), 1, 6)
	if rec.Gaps != 1 || rec.GapsFilled != 1 || rec.Delivered[2].Via != client.History || rec.Delivered[3].Via != client.History || rec.Delivered[4].Via != client.Live {
		t.Fatalf("gaps %d filled %d, delivered %+v: want seqs 3 and 4 from the history", rec.Gaps, rec.GapsFilled, rec.Delivered)
	}
	if r := c.Record(); r.Connects != 1 {
		t.Fatalf("%d connections: the gap should be filled without reconnecting", r.Connects)
	}
}

// TestClientDropsDuplicates: every message frame arrives twice; the client
// delivers each once.
func TestClientDropsDuplicates(t *testing.T) {
	s := startServer(t, nil)
	room := uniqueRoom(t)
	token := s.login("alice")
	p := newRCProxy(t, s.base)
	p.setFilter(func(b []byte) int {
		if rcFrameIs(b, "message", nil) {
			return 2
		}
		return 1
	})
	c := rcClient(t, []string{p.url()}, token, []string{room}, nil)
	rcPostN(t, s, token, room, "m", 5)
	rcWaitDelivered(t, c, room, 5)
	time.Sleep(200 * time.Millisecond)
	rec := c.Record().Rooms[room]
	rcCheckDelivered(t, rec, s.waitHistory(token, room, 5), 1, 5)
	if rec.Duplicates != 5 {
		t.Fatalf("%d duplicates dropped, want 5", rec.Duplicates)
	}
}

// TestClientRetriesSendSameID: the first ack of a send is lost, and a
// second send goes out while the instance is unreachable; the client sends
// each again under the same id until acknowledged, and the store holds each
// once.
func TestClientRetriesSendSameID(t *testing.T) {
	s := startServer(t, nil)
	room := uniqueRoom(t)
	token := s.login("alice")
	p := newRCProxy(t, s.base)
	var mu sync.Mutex
	dropped := 0
	p.setFilter(func(b []byte) int {
		mu.Lock()
		defer mu.Unlock()
		if dropped == 0 && rcFrameIs(b, "ack", func(f map[string]any) bool { return f["id"] == "lost-ack" }) {
			dropped++
			return 0
		}
		return 1
	})
	c := rcClient(t, []string{p.url()}, token, []string{room}, func(cfg *client.Config) {
		cfg.AckTimeout = 500 * time.Millisecond
		cfg.SendBudget = 20 * time.Second
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Send(ctx, room, "lost-ack", "hello"); err != nil {
		t.Fatal(err)
	}

	// The instance is unreachable when the next send starts.
	p.setDown(true)
	p.cut()
	sent := make(chan error, 1)
	go func() { sent <- c.Send(ctx, room, "while-down", "hello again") }()
	time.Sleep(700 * time.Millisecond)
	p.setDown(false)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}

	rec := rcWaitDelivered(t, c, room, 2)
	stored := s.waitHistory(token, room, 2)
	time.Sleep(300 * time.Millisecond) // a repeat would be stored by now
	stored = s.history(token, room, "?limit=200")
	if len(stored.Messages) != 2 || stored.Messages[0].ID != "lost-ack" || stored.Messages[1].ID != "while-down" {
		t.Fatalf("store holds %+v, want lost-ack and while-down once each", stored.Messages)
	}
	rcCheckDelivered(t, rec, stored, 1, 2)
	sends := c.Record().Sent
	if len(sends) != 2 || !sends[0].Acked || !sends[1].Acked || sends[0].Attempts < 2 {
		t.Fatalf("sends %+v: want both acked, the first after at least two attempts", sends)
	}
	t.Logf("attempts: lost-ack %d, while-down %d", sends[0].Attempts, sends[1].Attempts)
}

// TestClientGivesUpAfterBudget: with the instance unreachable for good, a
// send ends with ErrNotAcked once its budget is spent, recorded as unacked.
func TestClientGivesUpAfterBudget(t *testing.T) {
	s := startServer(t, nil)
	room := uniqueRoom(t)
	token := s.login("alice")
	p := newRCProxy(t, s.base)
	c := rcClient(t, []string{p.url()}, token, []string{room}, func(cfg *client.Config) {
		cfg.SendBudget = 500 * time.Millisecond
	})
	p.setDown(true)
	p.cut()
	start := time.Now()
	err := c.Send(context.Background(), room, "never", "hello")
	if err != client.ErrNotAcked || time.Since(start) > 3*time.Second {
		t.Fatalf("Send: %v after %v, want ErrNotAcked after about 500ms", err, time.Since(start))
	}
	if sends := c.Record().Sent; len(sends) != 1 || sends[0].Acked || sends[0].Err == "" {
		t.Fatalf("sends %+v", sends)
	}
}

// rcChange makes a membership change as token and returns the stored
// item's seq.
func rcChange(t *testing.T, s *testServer, method, path, token, body string) int64 {
	t.Helper()
	status, b := s.do(method, path, token, body)
	if status/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, status, b)
	}
	// An item, or a room object (whose "mentions" is a count, not a list).
	var m struct {
		Seq int64 `json:"seq"`
	}
	mustJSON(t, b, &m)
	return m.Seq
}

func rcSeqs(rec client.RoomRecord) []int64 {
	var seqs []int64
	for _, d := range rec.Delivered {
		seqs = append(seqs, d.Seq)
	}
	return seqs
}

// TestClientLeftAndRejoin: a member removed while connected gets its
// removal, then "left", and nothing more of the room; its send is refused;
// re-added and told to Rejoin, it resumes at its add.
func TestClientLeftAndRejoin(t *testing.T) {
	s := startServer(t, nil)
	room := uniqueRoom(t)
	alice, bob := s.login("alice"), s.login("bob")
	rcChange(t, s, "POST", "/api/rooms", alice, jsonBody(map[string]string{"room": room, "kind": "private"}))
	rcChange(t, s, "POST", "/api/rooms/"+room+"/members", alice, `{"user":"bob"}`)
	c := rcClient(t, []string{s.base}, bob, []string{room}, func(cfg *client.Config) { cfg.Name = "bob" })
	rcPostN(t, s, alice, room, "in", 2)
	rcWaitDelivered(t, c, room, 4)

	removed := rcChange(t, s, "DELETE", "/api/rooms/"+room+"/members/bob", alice, "")
	for deadline := time.Now().Add(5 * time.Second); !c.Left(room); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no left after the removal at seq %d; delivered %v", removed, rcSeqs(c.Record().Rooms[room]))
		}
	}
	rcPostN(t, s, alice, room, "out", 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.Send(ctx, room, "while-out", "hello?")
	added := rcChange(t, s, "POST", "/api/rooms/"+room+"/members", alice, `{"user":"bob"}`)
	c.Rejoin(room)
	for deadline := time.Now().Add(5 * time.Second); !c.Joined(room); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not joined again after Rejoin")
		}
	}
	rcPostN(t, s, alice, room, "back", 1)
	rcWaitDelivered(t, c, room, added+1)
	time.Sleep(200 * time.Millisecond) // room for a late frame

	r := c.Record()
	rec := r.Rooms[room]
	want := []int64{3, 4, removed, added, added + 1}
	if fmt.Sprint(rcSeqs(rec)) != fmt.Sprint(want) || rec.AfterLeft != 0 || rec.Resumes != 1 {
		t.Fatalf("delivered %v (after left %d, resumes %d), want %v", rcSeqs(rec), rec.AfterLeft, rec.Resumes, want)
	}
	if len(rec.Exits) != 1 || !rec.Exits[0].Frame || rec.Exits[0].Reason != "removed" || rec.Exits[0].Seq != removed {
		t.Fatalf("exits %+v, want one left frame at seq %d", rec.Exits, removed)
	}
	sent := r.Sent[len(r.Sent)-1]
	if sent.Refused != "not_found" || sent.Confirmed() {
		t.Fatalf("send while out: err %v, record %+v: want refused not_found", err, sent)
	}
	if h := s.waitHistory(alice, room, int(added+1)); len(h.Messages) != int(added+1) {
		t.Fatalf("store holds %d items, want %d (the refused send is not stored)", len(h.Messages), added+1)
	}
}

// TestClientResumesAtOwnAdd: a member away while it is removed and added
// back reconnects with after and is replayed from its add: the jump is
// taken as a new membership, not a gap (the history would not close it).
func TestClientResumesAtOwnAdd(t *testing.T) {
	s := startServer(t, nil)
	room := uniqueRoom(t)
	alice, bob := s.login("alice"), s.login("bob")
	rcChange(t, s, "POST", "/api/rooms", alice, jsonBody(map[string]string{"room": room, "kind": "private"}))
	rcChange(t, s, "POST", "/api/rooms/"+room+"/members", alice, `{"user":"bob"}`)
	p := newRCProxy(t, s.base)
	c := rcClient(t, []string{p.url()}, bob, []string{room}, func(cfg *client.Config) { cfg.Name = "bob" })
	rcPostN(t, s, alice, room, "in", 2)
	rcWaitDelivered(t, c, room, 4)

	p.setDown(true)
	p.cut()
	rcChange(t, s, "DELETE", "/api/rooms/"+room+"/members/bob", alice, "")
	rcPostN(t, s, alice, room, "out", 2)
	added := rcChange(t, s, "POST", "/api/rooms/"+room+"/members", alice, `{"user":"bob"}`)
	rcPostN(t, s, alice, room, "back", 1)
	p.setDown(false)
	rcWaitDelivered(t, c, room, added+1)
	time.Sleep(200 * time.Millisecond)

	rec := c.Record().Rooms[room]
	want := []int64{3, 4, added, added + 1}
	if fmt.Sprint(rcSeqs(rec)) != fmt.Sprint(want) || rec.Resumes != 1 || len(rec.Exits) != 0 || rec.GapsFilled != 0 {
		t.Fatalf("delivered %v (resumes %d, exits %+v, gaps filled %d), want %v", rcSeqs(rec), rec.Resumes, rec.Exits, rec.GapsFilled, want)
	}
}

// TestClientFoldedView: the client's folded view of a room (edits, a
// delete, reactions given, taken back and given again, a reply) is the
// server's history as it stands, for a client that got every item live and
// for one that got the first ones from the history (its proxy dropped their
// frames): the history's message comes folded with items the client then
// folds again, and the reactions' order must still come out the server's.
// A reaction to the deleted message is acknowledged, then refused.
func TestClientFoldedView(t *testing.T) {
	s := startServer(t, nil)
	room := uniqueRoom(t)
	aliceTok, bobTok := s.login("alice"), s.login("bob")
	p := newRCProxy(t, s.base)
	p.setFilter(func(b []byte) int {
		if rcFrameIs(b, "message", func(f map[string]any) bool { return f["seq"].(float64) <= 5 }) {
			return 0
		}
		return 1
	})
	alice := rcClient(t, []string{s.base}, aliceTok, []string{room}, nil)
	bob := rcClient(t, []string{p.url()}, bobTok, []string{room}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(alice.Send(ctx, room, "a1", "one"))
	must(alice.Send(ctx, room, "a2", "two"))
	rcWaitDelivered(t, alice, room, 2)
	must(alice.React(ctx, room, "r1", 1, "👍", true))
	must(alice.React(ctx, room, "r2", 1, "👍", false))
	must(alice.React(ctx, room, "r3", 1, "👍", true))
	rcWaitDelivered(t, alice, room, 5)
	must(bob.React(ctx, room, "r4", 1, "👍", true))
	rcWaitDelivered(t, bob, room, 6)
	must(alice.Edit(ctx, room, "e1", 1, "one, edited"))
	must(bob.SendReply(ctx, room, "b1", "a reply", 1))
	must(alice.Delete(ctx, room, "d1", 2))
	rcWaitDelivered(t, alice, room, 9)
	// A reaction to the message alice deleted: refused by the persist
	// stage, whose refusal travels the pipeline while the ack does not, so
	// it may come before the ack (React then reports it) or after.
	if err := bob.React(ctx, room, "r5", 2, "🎉", true); err != nil && !strings.Contains(err.Error(), "conflict") {
		t.Fatal(err)
	}
	rcWaitDelivered(t, bob, room, 9)

	want := s.waitFolded(aliceTok, room, 1, func(m chat.Message) bool { return m.EditedTS != "" })
	if !reflect.DeepEqual(want.Reactions, map[string][]string{"👍": {"alice", "bob"}}) {
		t.Fatalf("the server's history: message 1 stands as %+v", want)
	}
	s.waitFolded(aliceTok, room, 2, func(m chat.Message) bool { return m.Deleted })
	history := s.foldedHistory(aliceTok, room)
	for name, c := range map[string]*client.Client{"alice": alice, "bob": bob} {
		view := c.Messages(room)
		if len(view) != len(history) {
			t.Fatalf("%s: %d messages in its view, %d in the history", name, len(view), len(history))
		}
		for _, v := range view {
			h := history[v.Seq]
			if v.Text != h.Text || v.EditedTS != h.EditedTS || v.Deleted != h.Deleted || v.ReplyTo != h.ReplyTo ||
				!reflect.DeepEqual(v.Reactions, h.Reactions) {
				t.Errorf("%s: seq %d folded %+v, the history has %+v", name, v.Seq, v, h)
			}
		}
	}
	if rec := bob.Record().Rooms[room]; rec.GapsFilled != 1 || rec.Delivered[0].Via != client.History {
		t.Fatalf("bob: gaps filled %d, delivered %+v: want 1..5 from the history", rec.GapsFilled, rec.Delivered)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		sent := bob.Record().Sent
		if r5 := sent[len(sent)-1]; r5.ID == "r5" && r5.Refused == "conflict" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("r5, a reaction to a deleted message: %+v", r5)
		}
	}
}
