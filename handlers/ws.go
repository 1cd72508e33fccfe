package handlers

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/app/chat"
)

// WebSocket timing.
const (
	wsWriteWait  = 10 * time.Second
	wsPingPeriod = 30 * time.Second
	// wsReadWait must exceed wsPingPeriod: a peer that answers no ping and
	// sends nothing for this long is gone.
	wsReadWait = 75 * time.Second
	// On shutdown a connection goes on reading what the client already sent
	// until it has been quiet for wsDrainQuiet (wsDrainMax at most), so that
	// every send frame in flight is answered before the 1012.
	wsDrainQuiet = 100 * time.Millisecond
	wsDrainMax   = time.Second
)

// Close codes of the contract.
// (1009 for an oversized frame is sent by the WebSocket library itself.)
const (
	closeNormal   = 1000
	closeAbnormal = 1006 // never sent: marks a connection whose socket failed
	closeRestart  = 1012
	closeTryLater = 1013
)

// upgrade checks what must be checked before the handshake: that it is one,
// and the user's and the client IP's live connections. The slot taken here
// is released by the connection's handler; when the handshake fails, or
// its answer cannot be written (fasthttp then never runs the handler), it
// is released here.
func (s *Server) upgrade(c *fiber.Ctx) error {
	if !websocket.IsWebSocketUpgrade(c) {
		return &statusError{status: fiber.StatusUpgradeRequired, code: chat.EBadRequest, msg: "this endpoint speaks WebSocket only"}
	}
	release, err := s.connSlot(c)
	if err != nil {
		return err
	}
	slot := &wsSlot{release: release}
	c.Locals(localSlot, slot)
	if err := c.Next(); err != nil {
		slot.abandon()
		return err
	}
	slot.watch(wsHandshakeWait)
	return nil
}

const localSlot = "wsSlot"

// wsHandshakeWait is how long after a successful upgrade the handler may
// take to start before its slot is given up as never used.
const wsHandshakeWait = 10 * time.Second

// wsSlot is a connection slot handed from upgrade to the handler.
type wsSlot struct {
	release func()
	mu      sync.Mutex
	started bool
	timer   *time.Timer
}

// start marks the slot taken by the handler, which releases it.
func (sl *wsSlot) start() {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	sl.started = true
	if sl.timer != nil {
		sl.timer.Stop()
	}
}

func (sl *wsSlot) abandon() {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if !sl.started {
		sl.release()
	}
}

func (sl *wsSlot) watch(d time.Duration) {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if !sl.started {
		sl.timer = time.AfterFunc(d, sl.abandon)
	}
}

func (s *Server) websocket() fiber.Handler {
	return websocket.New(func(conn *websocket.Conn) {
		user, _ := conn.Locals(localUser).(string)
		if slot, ok := conn.Locals(localSlot).(*wsSlot); ok {
			slot.start()
			defer slot.release()
		}
		wc := &wsClient{
			srv:  s,
			conn: conn,
			user: user,
			out:  newQueue(s.QueueBytes),
			quit: make(chan struct{}),
			subs: make(map[string]*chat.Subscription),
		}
		s.sockets.add()
		defer s.sockets.done()
		s.Metrics.Conn("websocket", 1)
		defer s.Metrics.Conn("websocket", -1)
		wc.serve()
	}, websocket.Config{
		// Memory per idle connection: the reader sits on the HTTP server's
		// own 4 KiB buffer, kept by the hijacked connection, so a small one
		// of its own is enough; and write buffers are lent from a pool only
		// while the library writes (our writer lays out its frames itself).
		ReadBufferSize:  256,
		WriteBufferSize: 4096,
		WriteBufferPool: &sync.Pool{},
	})
}

// wsClient is one WebSocket connection: the handler's goroutine reads and
// dispatches frames, one writer goroutine drains the bounded queue.
type wsClient struct {
	srv  *Server
	conn *websocket.Conn
	user string
	out  *queue
	quit chan struct{}                 // closed by kill: the writer sends the close frame and ends
	subs map[string]*chat.Subscription // used by the reader goroutine only

	killOnce  sync.Once
	closeCode int
	closeText string

	// readMu orders the read-deadline changes of the reader and of
	// shutdown, so the reader never pushes back a shutdown's deadline.
	readMu     sync.Mutex
	restarting bool      // the server is shutting down; guarded by readMu
	drainUntil time.Time // the latest read deadline once restarting
	// ended is set as the handler returns; guarded by readMu. The
	// connection is the HTTP server's again afterwards (it pools the
	// object), so a late startRestart must not touch it.
	ended bool
}

var _ chat.Sink = (*wsClient)(nil)

func (w *wsClient) serve() {
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		w.writeLoop()
	}()
	defer func() {
		w.readMu.Lock()
		w.ended = true
		w.readMu.Unlock()
		for _, sub := range w.subs {
			sub.Close()
		}
		if w.isRestarting() {
			// Every frame read is answered and queued by now; the writer
			// sends what is queued, then 1012.
			w.kill(closeRestart, "server restarting; reconnect and resume")
		}
		w.kill(closeNormal, "")
		<-writerDone
	}()
	// Shutdown of the server moves every client elsewhere: the reader stops
	// once the client has gone quiet, and the 1012 follows the answers to
	// everything it read.
	stop := context.AfterFunc(w.srv.ctx(), w.startRestart)
	defer stop()

	w.conn.SetReadLimit(chat.MaxFrameBytes)
	w.extendRead()
	w.conn.SetPongHandler(func(string) error {
		w.extendRead()
		return nil
	})
	for {
		mt, data, err := w.conn.ReadMessage()
		if err != nil {
			// Over the size limit, the library has already sent 1009. On
			// shutdown, the drain deadline passed.
			return
		}
		w.extendRead()
		if mt != websocket.TextMessage {
			w.sendError(chat.Errorf(chat.EBadRequest, "frames must be JSON text frames"), "", "")
			continue
		}
		if !w.handle(data) {
			return
		}
	}
}

// extendRead moves the read deadline after the client showed life: 75 s
// ahead, or while shutting down, wsDrainQuiet (until drainUntil at most).
func (w *wsClient) extendRead() {
	w.readMu.Lock()
	defer w.readMu.Unlock()
	if w.restarting {
		d := time.Now().Add(wsDrainQuiet)
		if d.After(w.drainUntil) {
			d = w.drainUntil
		}
		_ = w.conn.SetReadDeadline(d)
		return
	}
	_ = w.conn.SetReadDeadline(time.Now().Add(wsReadWait))
}

// startRestart runs when the server shuts down: the reader reads on only
// while the client has frames in flight.
func (w *wsClient) startRestart() {
	w.readMu.Lock()
	defer w.readMu.Unlock()
	if w.ended {
		return
	}
	now := time.Now()
	w.restarting, w.drainUntil = true, now.Add(wsDrainMax)
	_ = w.conn.SetReadDeadline(now.Add(wsDrainQuiet))
}

// isRestarting reports whether the server is shutting down. The server's
// context is asked too: startRestart runs in a goroutine of its own, and a
// connection whose handler starts as shutdown ends must take no send.
func (w *wsClient) isRestarting() bool {
	if w.srv.ctx().Err() != nil {
		return true
	}
	w.readMu.Lock()
	defer w.readMu.Unlock()
	return w.restarting
}

// frame is any client frame; unknown fields (such as "user") are ignored.
type frame struct {
	Type  string           `json:"type"`
	Room  string           `json:"room"`
	After *json.RawMessage `json:"after"`
	ID    *string          `json:"id"`
	Text  *string          `json:"text"`
}

// decodeFrame decodes a client frame, refusing invalid UTF-8 (which
// encoding/json would silently replace) and anything but a JSON object.
func decodeFrame(data []byte) (frame, error) {
	var f frame
	if !utf8.Valid(data) {
		return f, chat.Errorf(chat.EBadRequest, "frame must be valid UTF-8")
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return f, chat.Errorf(chat.EBadRequest, "frame must be a JSON object: %s", jsonProblem(err))
	}
	return f, nil
}

// handle answers one frame. It reports false when the connection must end.
func (w *wsClient) handle(data []byte) bool {
	f, err := decodeFrame(data)
	if err != nil {
		w.sendError(err, "", "")
		return true
	}
	if (f.Type == "send" || f.Type == "join") && w.isRestarting() {
		// Read during shutdown: not taken, but answered, so the client
		// knows to resend it (same id) after reconnecting.
		id := ""
		if f.Type == "send" && f.ID != nil {
			id = *f.ID
		}
		w.sendError(chat.Errorf(chat.EUnavailable, "the server is restarting; reconnect and retry"), id, f.Room)
		return true
	}
	switch f.Type {
	case "ping":
		return w.send(map[string]string{"type": "pong"})
	case "join":
		w.join(f)
	case "leave":
		if err := chat.ValidateRoom(f.Room); err != nil {
			w.sendError(err, "", f.Room)
			return true
		}
		if sub := w.subs[f.Room]; sub != nil {
			sub.Close()
			delete(w.subs, f.Room)
		}
		return w.send(map[string]string{"type": "left", "room": f.Room})
	case "send":
		w.sendMessage(f)
	case "":
		w.sendError(chat.Errorf(chat.EBadRequest, `frame needs a "type"`), "", "")
	default:
		w.sendError(chat.Errorf(chat.EBadRequest, "unknown frame type %q", f.Type), "", "")
	}
	return true
}

func (w *wsClient) join(f frame) {
	if err := chat.ValidateRoom(f.Room); err != nil {
		w.sendError(err, "", f.Room)
		return
	}
	var after int64
	hasAfter := f.After != nil && string(*f.After) != "null"
	if hasAfter {
		var err error
		if after, err = parseSeq("after", string(*f.After)); err != nil {
			w.sendError(err, "", f.Room)
			return
		}
	}
	// A repeated join restarts the subscription from the new resume point.
	if old := w.subs[f.Room]; old != nil {
		old.Close()
		delete(w.subs, f.Room)
	}
	if len(w.subs) >= w.srv.MaxRooms {
		w.sendError(chat.Errorf(chat.EBadRequest, "a connection may join at most %d rooms", w.srv.MaxRooms), "", f.Room)
		return
	}
	ctx, cancel := context.WithTimeout(w.srv.ctx(), 10*time.Second)
	defer cancel()
	sub, err := w.srv.Hub.Join(ctx, f.Room, after, hasAfter, w)
	if err != nil {
		w.srv.Log.Warn("join failed", "room", f.Room, "err", err)
		w.sendError(unavailable(err), "", f.Room)
		return
	}
	w.subs[f.Room] = sub
}

func (w *wsClient) sendMessage(f frame) {
	id := chat.NewID()
	if f.ID != nil {
		id = *f.ID
	}
	if err := w.srv.allowSend(context.Background(), w.user, f.Room); err != nil {
		w.sendError(err, id, f.Room)
		return
	}
	text := ""
	if f.Text != nil {
		text = *f.Text
	}
	// Sends are handled in order on this goroutine, so one connection's
	// messages keep their order.
	// Not the server's context: a send under way during shutdown finishes
	// and is answered.
	if _, err := w.srv.Sender.Send(context.Background(), w.user, f.Room, id, text); err != nil {
		w.sendError(err, id, f.Room)
		return
	}
	w.send(map[string]string{"type": "ack", "room": f.Room, "id": id})
}

type errorFrame struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	ID      string `json:"id,omitempty"`
	Room    string `json:"room,omitempty"`
}

func (w *wsClient) sendError(err error, id, room string) {
	w.send(errorFrame{Type: "error", Code: chat.ErrorCode(err), Message: chat.ErrorMessage(err), ID: id, Room: room})
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
	b, _ := json.Marshal(struct {
		Type    string `json:"type"`
		Room    string `json:"room"`
		LastSeq int64  `json:"last_seq"`
	}{"joined", room, lastSeq})
	return w.enqueue(ctx, b)
}

// Replay implements chat.Sink.
func (w *wsClient) Replay(ctx context.Context, ev *chat.Event) error {
	return w.enqueue(ctx, ev.WSFrame())
}

func (w *wsClient) enqueue(ctx context.Context, b []byte) error {
	return w.out.pushWait(ctx, b)
}

// Deliver implements chat.Sink: never blocks; a full queue cuts the client off.
func (w *wsClient) Deliver(ev *chat.Event) bool {
	if w.out.push(ev.WSFrame()) {
		return true
	}
	if w.kill(closeTryLater, "client too slow to read its messages") {
		w.srv.Metrics.SlowClient()
	}
	return false
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
	})
	return first
}

// writeLoop is the connection's only writer.
func (w *wsClient) writeLoop() {
	ping := time.NewTicker(wsPingPeriod)
	defer ping.Stop()
	// The hijacked connection is closed only when the handler returns (its
	// Close is a no-op), so end the reader, and with it the handler.
	defer w.conn.SetReadDeadline(time.Now())
	var batch [][]byte
	for {
		select {
		case <-w.quit:
			w.writeClose()
			return
		case <-w.out.ready:
			batch = w.out.take(batch)
			if !w.write(batch) {
				return
			}
		case <-ping.C:
			if err := w.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(wsWriteWait)); err != nil {
				w.kill(closeAbnormal, "")
				return
			}
		}
	}
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

func (w *wsClient) writeClose() {
	if w.closeCode == closeAbnormal {
		return
	}
	if w.closeCode == closeRestart {
		// Graceful shutdown: what is already queued still goes out.
		w.out.close()
		_ = w.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
		for _, b := range w.out.take(nil) {
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
