package handlers

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"sync"
	"time"

	"github.com/gofiber/contrib/websocket"

	"github.com/parley-chat/parley/app/chat"
)

// A WebSocket connection's way out: its bounded queue, what the hub and the
// reader put in it, and the writer goroutine that drains it: at most one at
// a time, and none while the queue is empty (see queue).

// sendError answers with an error frame.
func (w *wsClient) sendError(err error, id, room string) {
	w.send(newErrorFrame(err, id, room))
}

// send queues a control frame, waiting for room: a client that floods us with
// frames while not reading is slowed to its own pace. It waits even during
// shutdown (an answer must not be lost): the writer's write deadline bounds
// the wait, since a failed write closes the queue.
func (w *wsClient) send(v any) bool {
	b, _ := json.Marshal(v)
	return w.out.pushWait(context.Background(), b) == nil
}

// Joined implements chat.Sink.
func (w *wsClient) Joined(ctx context.Context, room string, lastSeq int64) error {
	return w.enqueue(ctx, joinedFrame(room, lastSeq))
}

// Replay implements chat.Sink.
func (w *wsClient) Replay(ctx context.Context, ev *chat.Event) error {
	return w.enqueue(ctx, ev.Frame(wsMessage))
}

func (w *wsClient) enqueue(ctx context.Context, b []byte) error {
	return w.out.pushWait(ctx, b)
}

// Deliver implements chat.Sink: never blocks; a full queue cuts the client off.
func (w *wsClient) Deliver(ev *chat.Event) bool {
	if w.out.push(ev.Frame(wsMessage)) {
		return true
	}
	if w.kill(closeTryLater, "client too slow to read its messages") {
		w.srv.Metrics.SlowClient()
	}
	return false
}

// Left implements chat.Leaver: the user was removed from room (or banned,
// or left from another connection); nothing more of it comes.
func (w *wsClient) Left(room, reason string) {
	b, _ := json.Marshal(map[string]string{"type": "left", "room": room, "reason": reason})
	w.pushOrCut(b)
}

// Refused implements chat.UserSink: the persist stage refused an item the
// user sent (on this connection or another), after it was acknowledged.
func (w *wsClient) Refused(room, id string, e *chat.Error) {
	b, _ := json.Marshal(newErrorFrame(e, id, room))
	w.pushOrCut(b)
}

// Membership implements chat.UserSink:
// {"type":"membership","room","action","seq"}, so that a client learns its
// room list changed (added to a room, a direct room made with it) without
// being joined to the room.
func (w *wsClient) Membership(room, action string, seq int64) {
	b, _ := json.Marshal(struct {
		Type   string `json:"type"`
		Room   string `json:"room"`
		Action string `json:"action"`
		Seq    int64  `json:"seq"`
	}{"membership", room, action, seq})
	w.pushOrCut(b)
}

// Read implements chat.UserSink: {"type":"read","room","seq"}, the user's
// read position moved (here or on another connection).
func (w *wsClient) Read(room string, seq int64) {
	b, _ := json.Marshal(struct {
		Type string `json:"type"`
		Room string `json:"room"`
		Seq  int64  `json:"seq"`
	}{"read", room, seq})
	w.pushOrCut(b)
}

// Receipt implements chat.Receipter: {"type":"receipt","room","user","seq"}
// to a connection joined to a room that keeps receipts.
func (w *wsClient) Receipt(room, user string, seq int64) {
	b, _ := json.Marshal(receiptFrame{"receipt", room, user, seq})
	w.pushOrCut(b)
}

type receiptFrame struct {
	Type string `json:"type"`
	Room string `json:"room"`
	User string `json:"user"`
	Seq  int64  `json:"seq"`
}

// Notified implements chat.UserSink: {"type":"notification",...} with the
// notification's fields.
func (w *wsClient) Notified(n *chat.Notification) {
	w.pushOrCut(notificationFrame(n))
}

func notificationFrame(n *chat.Notification) []byte {
	b, _ := json.Marshal(struct {
		Type string `json:"type"`
		*chat.Notification
	}{"notification", n})
	return b
}

// pushOrCut queues a frame without blocking, cutting a client off whose
// queue is full, as Deliver does.
func (w *wsClient) pushOrCut(b []byte) {
	if !w.out.push(b) && w.kill(closeTryLater, "client too slow to read its messages") {
		w.srv.Metrics.SlowClient()
	}
}

// kill ends the connection with a close code, which the writer sends. It
// reports whether this call was the one that ended it.
func (w *wsClient) kill(code int, text string) bool {
	first := false
	w.killOnce.Do(func() {
		first = true
		w.closeCode, w.closeText = code, text
		if code != closeRestart {
			// Nothing more is queued; a restart still flushes what is.
			w.out.close()
		}
		close(w.quit)
		// A writer's turn sends the close frame (after what is queued, on
		// a restart); the one under way, if any, sees quit.
		w.out.kick()
	})
	return first
}

// pingTick runs every pingEvery on the timer's own goroutine: the ping is
// the writer's to send, like every frame of ours. It stops once the
// connection ends.
func (w *wsClient) pingTick() {
	w.pingMu.Lock()
	defer w.pingMu.Unlock()
	select {
	case <-w.quit:
		return
	default:
	}
	w.pingDue.Store(true)
	w.out.kick()
	w.pinger.Reset(w.pingEvery)
}

// writeTurn is the connection's only writer while it runs: the queue
// starts it when there is something to send and none runs, and it returns
// once the queue has stayed empty for writerLinger, so an idle connection
// holds no goroutine, stack or batch. The turn that sees the connection end (kill, or a failed
// write) is the last one: it sends the close frame, ends the reader and
// closes writerDone, and the queue never starts another.
func (w *wsClient) writeTurn() {
	bp := batches.Get().(*[][]byte)
	batch, used := *bp, 0
	var linger *time.Timer // the queue's wait for more, made at the first
	defer func() {
		if linger != nil {
			linger.Stop()
		}
		// The pooled batch must not keep frames alive.
		clear(batch[:used])
		if cap(batch) <= maxPooledBatch {
			*bp = batch[:0]
			batches.Put(bp)
		}
	}()
	for {
		var more bool
		if batch, more = w.out.next(batch, &linger); !more {
			return
		}
		used = max(used, len(batch))
		select {
		case <-w.quit:
			w.writeClose(batch)
			w.endWriter()
			return
		default:
		}
		if w.pingDue.Swap(false) {
			if err := w.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(wsWriteWait)); err != nil {
				w.kill(closeAbnormal, "")
				w.endWriter()
				return
			}
		}
		if len(batch) > 0 && !w.write(batch) {
			w.endWriter()
			return
		}
	}
}

// batches holds the writers' batch slices, shared by all connections: a
// turn takes one, and an idle connection holds none (nor allocates one per
// turn).
var batches = sync.Pool{New: func() any { return new([][]byte) }}

const maxPooledBatch = 1024

// endWriter ends the last writer's turn.
func (w *wsClient) endWriter() {
	w.pingMu.Lock()
	w.pinger.Stop()
	w.pingMu.Unlock()
	// The hijacked connection is closed only when the handler returns (its
	// Close is a no-op), so end the reader, and with it the handler.
	_ = w.conn.SetReadDeadline(time.Now())
	close(w.writerDone)
}

// write sends frames with as few syscalls as it can: it lays out the
// WebSocket frames itself (a server's frames are unmasked, and compression is
// off) and gives the socket everything queued in one Write of up to
// writeChunk bytes, instead of one write per frame. The library still writes
// control frames (pong, close) from the reader goroutine; a net.Conn Write is
// atomic (the poll descriptor holds its write lock for the whole call), so
// whole frames from the two never interleave. A pending kill wins over the
// rest of the frames.
func (w *wsClient) write(frames [][]byte) bool {
	nc := w.conn.NetConn()
	_ = nc.SetWriteDeadline(time.Now().Add(wsWriteWait))
	bp := writeBufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 4*writeChunk {
			writeBufs.Put(bp)
		}
	}()
	for len(frames) > 0 {
		select {
		case <-w.quit:
			if w.closeCode != closeRestart {
				return true
			}
		default:
		}
		buf := (*bp)[:0]
		for len(frames) > 0 && (len(buf) == 0 || len(buf)+len(frames[0]) <= writeChunk) {
			buf = appendTextFrame(buf, frames[0])
			frames = frames[1:]
		}
		*bp = buf
		if _, err := nc.Write(buf); err != nil {
			w.kill(closeAbnormal, "")
			return false
		}
	}
	return true
}

// writeChunk bounds one Write; writeBufs holds the buffers writers lay
// frames out in, shared by all connections so that an idle one holds none.
const writeChunk = 64 << 10

var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, writeChunk); return &b }}

// appendTextFrame appends payload as one final, unmasked text frame (RFC
// 6455 section 5.2).
func appendTextFrame(dst, payload []byte) []byte {
	const finText = 0x81
	switch n := len(payload); {
	case n < 126:
		dst = append(dst, finText, byte(n))
	case n <= 0xFFFF:
		dst = binary.BigEndian.AppendUint16(append(dst, finText, 126), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint64(append(dst, finText, 127), uint64(n))
	}
	return append(dst, payload...)
}

// writeClose sends the close frame; taken is what the turn took from the
// queue as it saw the kill, which a restart sends first.
func (w *wsClient) writeClose(taken [][]byte) {
	if w.closeCode == closeAbnormal {
		return
	}
	if w.closeCode == closeRestart {
		// Graceful shutdown: what is already queued still goes out.
		w.out.close()
		_ = w.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
		for _, b := range append(taken, w.out.take(nil)...) {
			if w.conn.WriteMessage(websocket.TextMessage, b) != nil {
				return
			}
		}
	}
	msg := websocket.FormatCloseMessage(w.closeCode, w.closeText)
	// A reader cut off as too slow may have a full socket: the close frame
	// gets a few seconds, then the connection goes without it.
	_ = w.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(5*time.Second))
	if w.closeCode != closeNormal {
		// Give the peer a moment to read the close frame before the socket goes.
		time.Sleep(50 * time.Millisecond)
	}
}
