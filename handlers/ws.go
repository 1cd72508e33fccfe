package handlers

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/parley-chat/parley/app/chat"
)

// wsPingPeriod is how often a connection is pinged (a variable for the
// tests); wsReadWait must exceed it.
var wsPingPeriod = 30 * time.Second

// WebSocket timing.
const (
	wsWriteWait = 10 * time.Second
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
	closePolicy   = 1008 // the session ended: revoked or expired
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
	slot := &wsSlot{release: release, rc: c.Context()}
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
	rc      *fasthttp.RequestCtx // the handshake's; see dropHandshake
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
		sl.timer = nil
	}
}

// dropHandshake lets go of the handshake's request and response headers.
// fasthttp keeps the upgraded request's RequestCtx until the handler
// returns, and with it their parsed headers, cookies and the 101's bytes:
// about 4.4 KiB of an idle connection's 17 (heap profile of 15,000 idle
// connections), never read again once the handler runs (the WebSocket
// library copied what it keeps). Zero headers are those of a new
// RequestCtx, and fasthttp sets their per-request options again before it
// reads the next request into this one from its pool. The handler runs
// only after fasthttp's handler chain has returned, so nothing else uses
// the RequestCtx meanwhile.
func (sl *wsSlot) dropHandshake() {
	if sl.rc == nil {
		return
	}
	sl.rc.Request.Header = fasthttp.RequestHeader{}
	sl.rc.Response.Header = fasthttp.ResponseHeader{}
	// And the parsed URI with its query arguments (the next request
	// parses its own: Reset marks it unparsed).
	*sl.rc.Request.URI() = fasthttp.URI{}
	sl.rc = nil
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
		// This frame stays under the reader's for the connection's life:
		// kept small (the setup is openWS's, its defers one call), the idle
		// reader uses under a quarter of an 8 KiB stack, which the
		// collector then halves to 4 KiB.
		wc, closeWS := s.openWS(conn)
		defer closeWS()
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

// openWS sets up a connection's handler: its slot, its client, its
// registrations. closeWS undoes them, last first.
//
//go:noinline
func (s *Server) openWS(conn *websocket.Conn) (wc *wsClient, closeWS func()) {
	sess, _ := conn.Locals(localSession).(Session)
	release := func() {}
	if slot, ok := conn.Locals(localSlot).(*wsSlot); ok {
		slot.start()
		slot.dropHandshake()
		release = slot.release
	}
	wc = newWSClient(s, conn, sess)
	s.sockets.add()
	// Revocation and expiry end the connection with 1008.
	endLive := s.live.add(sess, func() { wc.kill(closePolicy, "session ended") })
	// The persist stage's refusals of this user's items reach it.
	disconnect := s.Hub.Connect(sess.User, wc)
	s.Metrics.Conn("websocket", 1)
	return wc, func() {
		s.Metrics.Conn("websocket", -1)
		disconnect()
		endLive()
		s.sockets.done()
		release()
	}
}

// wsClient is one WebSocket connection: the handler's goroutine reads and
// dispatches frames; a writer goroutine drains the bounded queue, started
// by the queue when there is something to send (at most one at a time) and
// gone while the connection is idle.
type wsClient struct {
	srv  *Server
	conn *websocket.Conn
	user string
	sess Session
	out  *queue
	quit chan struct{}                 // closed by kill: the writer sends the close frame and ends
	subs map[string]*chat.Subscription // used by the reader goroutine only; made at the first join

	writerDone chan struct{} // closed by the last writer's turn
	pingDue    atomic.Bool   // set by pingTick, for the writer
	// pingMu guards pinger, which every pingEvery has the writer send a
	// ping, and orders the timer's goroutine after newWSClient (a timer's
	// start gives the race detector no happens-before).
	pingMu    sync.Mutex
	pinger    *time.Timer
	pingEvery time.Duration

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

func newWSClient(s *Server, conn *websocket.Conn, sess Session) *wsClient {
	w := &wsClient{
		srv:        s,
		conn:       conn,
		user:       sess.User,
		sess:       sess,
		quit:       make(chan struct{}),
		writerDone: make(chan struct{}),
		pingEvery:  wsPingPeriod,
	}
	w.out = newWriterQueue(s.QueueBytes, func() { go w.writeTurn() })
	w.pingMu.Lock()
	w.pinger = time.AfterFunc(w.pingEvery, w.pingTick)
	w.pingMu.Unlock()
	return w
}

func (w *wsClient) serve() {
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
		<-w.writerDone
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
		if !w.handleOff(data) {
			return
		}
	}
}

// handleOff runs handle on a goroutine of its own while the reader waits,
// so frames are still handled one at a time, in order. A frame's handling
// (the store, the bus, JSON) grows a stack past 4 KiB, and a grown stack
// stays: the collector halves a stack only when under a quarter of it is
// in use, and the idle reader's chain (fasthttp, the WebSocket library,
// the poller) uses about 2.7 KiB. Handled here, the reader stays at the
// 4 KiB the bare library's reader has (app/tools/wsidle), and the
// handler's stack goes back to the runtime's pool: an idle connection's
// stack costs half (8.1 KiB before). A panic goes on in the reader, whose
// handler recovers it, as before.
func (w *wsClient) handleOff(data []byte) bool {
	var (
		ok       bool
		panicked any
		done     = make(chan struct{})
	)
	go func() {
		defer close(done)
		defer func() { panicked = recover() }()
		ok = w.handle(data)
	}()
	<-done
	if panicked != nil {
		panic(panicked)
	}
	return ok
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
	case "read":
		w.read(f)
	case "edit":
		w.lifecycle(chat.KindEdit, f)
	case "delete":
		w.lifecycle(chat.KindDelete, f)
	case "react":
		w.lifecycle(chat.KindReaction, f)
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
	for room, sub := range w.subs {
		if sub.Ended() {
			// Ended by the user's removal: it holds no place.
			delete(w.subs, room)
		}
	}
	if len(w.subs) >= w.srv.MaxRooms {
		w.sendError(chat.Errorf(chat.EBadRequest, "a connection may join at most %d rooms", w.srv.MaxRooms), "", f.Room)
		return
	}
	ctx, cancel := context.WithTimeout(w.srv.ctx(), 10*time.Second)
	defer cancel()
	from, decided, err := w.srv.joinable(ctx, w.user, f.Room)
	if err != nil {
		w.sendError(err, "", f.Room)
		return
	}
	sub, err := w.srv.Hub.JoinAs(ctx, chat.JoinRequest{Room: f.Room, User: w.user, From: from, Decided: decided, After: after, HasAfter: hasAfter}, w)
	if err != nil {
		w.srv.Log.Warn("join failed", "room", f.Room, "err", err)
		w.sendError(unavailable(err), "", f.Room)
		return
	}
	if w.subs == nil {
		// Made at the first join: a connection that joins nothing holds none.
		w.subs = make(map[string]*chat.Subscription)
	}
	w.subs[f.Room] = sub
}

// read takes a read frame {"type":"read","room","seq"}. It has no answer
// but an error: the read frame echoed to the user's connections says when
// it took effect (none when it did not move the position).
func (w *wsClient) read(f frame) {
	if f.Seq == nil {
		w.sendError(chat.Errorf(chat.EBadRequest, `a read frame needs "seq"`), "", f.Room)
		return
	}
	seq, err := parseSeq("seq", string(*f.Seq))
	if err == nil {
		ctx, cancel := context.WithTimeout(w.srv.ctx(), 10*time.Second)
		err = w.srv.markRead(ctx, w.sess, f.Room, seq)
		cancel()
	}
	if err != nil {
		w.sendError(err, "", f.Room)
	}
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
	if chat.ValidateRoom(f.Room) == nil {
		if err := w.srv.checkSend(context.Background(), w.user, f.Room); err != nil {
			w.sendError(err, id, f.Room)
			return
		}
	}
	text := ""
	if f.Text != nil {
		text = *f.Text
	}
	reply, err := replyTo(f.ReplyTo)
	if err == nil {
		err = w.srv.checkReply(context.Background(), f.Room, reply)
	}
	if err != nil {
		w.sendError(err, id, f.Room)
		return
	}
	// Sends are handled in order on this goroutine, so one connection's
	// messages keep their order.
	// Not the server's context: a send under way during shutdown finishes
	// and is answered.
	if _, err := w.srv.Sender.SendReply(context.Background(), w.sess.author(), f.Room, id, text, reply); err != nil {
		w.sendError(err, id, f.Room)
		return
	}
	w.send(map[string]string{"type": "ack", "room": f.Room, "id": id})
}
