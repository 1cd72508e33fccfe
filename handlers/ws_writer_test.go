package handlers

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/parley-chat/parley/app/chat"
)

// event is a message event of room r with seq n.
func event(n int64) *chat.Event {
	return chat.NewEvent(chat.Message{Room: "r", Seq: n, ID: fmt.Sprint("id-", n), User: "u", Text: "hello", TS: "2026-12-03T00:00:00Z"})
}

// readSeqs reads n message frames and returns their seqs.
func readSeqs(t *testing.T, conn *websocket.Conn, n int) []int64 {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	seqs := make([]int64, 0, n)
	for len(seqs) < n {
		_, b, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("after %d of %d frames: %v", len(seqs), n, err)
		}
		var f struct {
			Type string `json:"type"`
			Seq  int64  `json:"seq"`
		}
		if err := json.Unmarshal(b, &f); err != nil || f.Type != "message" {
			t.Fatalf("frame %d: %s (%v)", len(seqs), b, err)
		}
		seqs = append(seqs, f.Seq)
	}
	return seqs
}

// TestWSWriterBurstsAfterIdle queues bursts of frames, each after the
// writer has ended its turn (no writer runs while the queue is empty):
// every frame arrives, in the order queued, and each burst starts a new
// writer that ends once the burst is written.
func TestWSWriterBurstsAfterIdle(t *testing.T) {
	h := newWSHarness(t, 1<<20)
	conn, wc := h.dial(t)
	var seq int64
	for burst := range 6 {
		waitIdle(t, wc)
		time.Sleep(time.Duration(burst) * 5 * time.Millisecond)
		n := 1 + burst*97 // 1 to 486 frames
		first := seq + 1
		for range n {
			seq++
			if !wc.Deliver(event(seq)) {
				t.Fatalf("burst %d: Deliver refused seq %d", burst, seq)
			}
		}
		got := readSeqs(t, conn, n)
		for i, s := range got {
			if s != first+int64(i) {
				t.Fatalf("burst %d: frame %d has seq %d, want %d", burst, i, s, first+int64(i))
			}
		}
	}
	waitIdle(t, wc)
	// Pushes from many goroutines at once, into an idle queue: one writer
	// at a time (the WebSocket library would panic on concurrent writes
	// of its own, and frames would interleave on ours), nothing lost.
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				wc.send(map[string]any{"type": "message", "seq": 100000 + g*1000 + i})
			}
		}()
	}
	wg.Wait()
	got := readSeqs(t, conn, 400)
	last := map[int64]int64{}
	for _, s := range got {
		g := (s - 100000) / 1000
		if prev, ok := last[g]; ok && s <= prev {
			t.Fatalf("goroutine %d's frames out of order: %d after %d", g, s, prev)
		}
		last[g] = s
	}
	if len(last) != 8 {
		t.Fatalf("frames of %d goroutines, want 8", len(last))
	}
}

// TestWSCloseFollowsQueued: on a restart the close frame (1012) follows
// every frame queued before the kill; a kill of an idle connection still
// sends its close frame (a writer is started for it).
func TestWSCloseFollowsQueued(t *testing.T) {
	h := newWSHarness(t, 4<<20)
	conn, wc := h.dial(t)
	const n = 3000
	for i := range int64(n) {
		if !wc.Deliver(event(i + 1)) {
			t.Fatalf("Deliver refused seq %d", i+1)
		}
	}
	wc.kill(closeRestart, "server restarting")
	got := readSeqs(t, conn, n)
	for i, s := range got {
		if s != int64(i+1) {
			t.Fatalf("frame %d has seq %d", i, s)
		}
	}
	if _, _, err := conn.ReadMessage(); !isCloseCode(err, closeRestart) {
		t.Fatalf("after the queued frames: %v, want close 1012", err)
	}
	select {
	case <-wc.writerDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the last writer did not end")
	}

	conn2, wc2 := h.dial(t)
	waitIdle(t, wc2)
	wc2.kill(closePolicy, "session ended")
	_ = conn2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := conn2.ReadMessage(); !isCloseCode(err, closePolicy) {
		t.Fatalf("idle connection killed: %v, want close 1008", err)
	}
	// No writer starts after the last one: pushes and kicks are refused or
	// find it marked as running.
	if wc2.out.push([]byte(`{}`)) {
		t.Fatal("push into a killed connection's queue was taken")
	}
	wc2.out.kick()
	if !wc2.out.writerRuns() {
		t.Fatal("a killed connection's queue may start a writer again")
	}
}

// TestWSIdleConnectionsHoldNoWriter holds N idle connections, each sent a
// frame first (which starts its writer): once written, the writers are
// gone, and the goroutines per connection are the reader's alone (the
// client side in this process adds none).
func TestWSIdleConnectionsHoldNoWriter(t *testing.T) {
	h := newWSHarness(t, 1<<20)
	const n = 200
	runtime.GC()
	before := runtime.NumGoroutine()
	conns := make([]*websocket.Conn, n)
	wcs := make([]*wsClient, n)
	for i := range n {
		conns[i], wcs[i] = h.dial(t)
	}
	for i, wc := range wcs {
		if !wc.Deliver(event(int64(i + 1))) {
			t.Fatal("Deliver refused")
		}
	}
	for i, conn := range conns {
		if got := readSeqs(t, conn, 1); got[0] != int64(i+1) {
			t.Fatalf("conn %d got seq %d", i, got[0])
		}
	}
	for _, wc := range wcs {
		waitIdle(t, wc)
	}
	var per float64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		per = float64(runtime.NumGoroutine()-before) / n
		if per <= 1.1 || time.Now().After(deadline) {
			break
		}
	}
	// One writer per connection would make it 2.
	if per > 1.1 {
		t.Fatalf("%.2f goroutines per idle connection, want the reader's 1 (+10%% slack)", per)
	}
	t.Logf("%.2f goroutines per idle connection", per)
}

// TestWSSlowClientCutOff: a client that stops reading is cut off when its
// queue fills (Deliver reports false) and its connection ends, as with a
// writer that never stopped.
func TestWSSlowClientCutOff(t *testing.T) {
	h := newWSHarness(t, 64<<10)
	_, wc := h.dial(t)
	big := chat.NewEvent(chat.Message{Room: "r", Seq: 1, ID: "x", User: "u", Text: strings.Repeat("x", 8000), TS: "2026-12-03T00:00:00Z"})
	cut := -1
	for i := range 1 << 16 {
		if !wc.Deliver(big) {
			cut = i
			break
		}
		if i%4 == 0 {
			// Let the writer fill the socket.
			time.Sleep(time.Millisecond)
		}
	}
	if cut < 0 {
		t.Fatal("a client that reads nothing was never cut off")
	}
	select {
	case <-wc.quit:
	default:
		t.Fatal("Deliver refused without ending the connection")
	}
	if wc.closeCode != closeTryLater {
		t.Fatalf("close code %d, want 1013", wc.closeCode)
	}
	select {
	case <-wc.writerDone:
	case <-time.After(20 * time.Second):
		t.Fatal("the slow connection's writer never ended")
	}
	t.Logf("cut off after %d frames of 8 KB", cut)
}

// TestWSPingWhileIdle: the ping timer starts a writer's turn for the ping
// alone, which ends again; the client sees pings while nothing else is
// sent.
func TestWSPingWhileIdle(t *testing.T) {
	old := wsPingPeriod
	wsPingPeriod = 4 * writerLinger // idle between pings: no writer then
	t.Cleanup(func() { wsPingPeriod = old })
	h := newWSHarness(t, 1<<20)
	conn, wc := h.dial(t)
	pings := make(chan struct{}, 16)
	conn.SetPingHandler(func(string) error {
		select {
		case pings <- struct{}{}:
		default:
		}
		return nil
	})
	go func() {
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	for i := range 3 {
		select {
		case <-pings:
		case <-time.After(5 * time.Second):
			t.Fatalf("ping %d never came", i+1)
		}
	}
	waitIdle(t, wc)
}

// TestWSHandlerPanicStaysInConnection: a panic while handling a frame
// (handled on a goroutine of its own, see handleOff) reaches the reader,
// whose handler recovers it (the library's recover handler prints it):
// that connection ends with 1000, the process and the others live on. The
// harness's server has no store, so a join panics.
func TestWSHandlerPanicStaysInConnection(t *testing.T) {
	h := newWSHarness(t, 1<<20)
	h.srv.MaxRooms = 10
	conn, wc := h.dial(t)
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"general"}`)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, b, err := conn.ReadMessage(); !isCloseCode(err, closeNormal) {
		t.Fatalf("after the panic: %s, %v; want close 1000", b, err)
	}
	select {
	case <-wc.writerDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection did not end after the panic")
	}
	// The process and other connections live on.
	conn2, wc2 := h.dial(t)
	wc2.Deliver(event(7))
	if got := readSeqs(t, conn2, 1); got[0] != 7 {
		t.Fatalf("got seq %d", got[0])
	}
}

// TestWriterLingers: a busy connection's writer whose queue ran empty stays
// for writerLinger, so frames coming closer than that (a busy room's) are
// written by the one writer, not by one started for each; past it the turn
// ends. A lone frame (a small room's, seconds apart) ends its turn at once,
// with no timer made: the linger would cost it a timer and a wake-up.
func TestWriterLingers(t *testing.T) {
	var starts atomic.Int32
	taken := make(chan int, 16)
	lingered := make(chan bool, 16) // a turn ended: whether it waited
	var q *queue
	q = newWriterQueue(1<<20, func() {
		starts.Add(1)
		go func() {
			var linger *time.Timer
			var batch [][]byte
			for {
				var more bool
				if batch, more = q.next(batch, &linger); !more {
					lingered <- linger != nil
					return
				}
				taken <- len(batch)
			}
		}()
	})
	push := func(i int) {
		t.Helper()
		if !q.push([]byte("frame")) {
			t.Fatalf("frame %d: push refused", i)
		}
		<-taken
	}
	push(0)
	if <-lingered {
		t.Fatal("a lone frame's writer lingered")
	}
	for i := 1; i <= 5; i++ {
		push(i)
		if n := starts.Load(); n != 2 {
			t.Fatalf("frame %d: %d writers started, want 2 (the second lingering)", i, n)
		}
		time.Sleep(writerLinger / 10)
	}
	if !<-lingered {
		t.Fatal("the busy connection's writer did not linger")
	}
	push(6)
	if n := starts.Load(); n != 3 {
		t.Fatalf("%d writers started after an idle spell, want 3", n)
	}
	if <-lingered {
		t.Fatal("the first frame after an idle spell lingered")
	}
}
