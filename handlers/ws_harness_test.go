package handlers

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	fws "github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
)

// wsHarness serves /ws with bare wsClients (no hub, no session checks) on
// loopback, handing each to the test, which queues frames into it directly:
// the writer's lifecycle without the rest of the server.
type wsHarness struct {
	srv     *Server
	url     string
	clients chan *wsClient
}

func newWSHarness(tb testing.TB, queueBytes int) *wsHarness {
	tb.Helper()
	h := &wsHarness{srv: &Server{Limits: Limits{QueueBytes: queueBytes}, Metrics: nopMetrics{}}, clients: make(chan *wsClient, 1024)}
	h.srv.base, h.srv.stop = context.WithCancel(context.Background())
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/ws", h.srv.upgradeBare, fws.New(func(conn *fws.Conn) {
		if slot, ok := conn.Locals(localSlot).(*wsSlot); ok {
			slot.dropHandshake()
		}
		wc := newBenchClient(h.srv, conn)
		h.clients <- wc
		wc.serve()
	}, fws.Config{ReadBufferSize: 256, WriteBufferSize: 4096}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	tb.Cleanup(func() {
		h.srv.stop()
		_ = app.ShutdownWithTimeout(5 * time.Second)
	})
	h.url = "ws://" + ln.Addr().String() + "/ws"
	return h
}

// upgradeBare hands the handler the handshake's RequestCtx, as upgrade does.
func (s *Server) upgradeBare(c *fiber.Ctx) error {
	c.Locals(localSlot, &wsSlot{release: func() {}, rc: c.Context()})
	return c.Next()
}

// dial opens a connection and returns it with its server side.
func (h *wsHarness) dial(tb testing.TB) (*websocket.Conn, *wsClient) {
	tb.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(h.url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	select {
	case wc := <-h.clients:
		return conn, wc
	case <-time.After(10 * time.Second):
		tb.Fatal("handler did not start")
		return nil, nil
	}
}

// writerRuns reports whether a writer's turn is under way (or the last one
// ended the connection).
func (q *queue) writerRuns() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.running
}

// waitIdle waits until wc has no writer.
func waitIdle(tb testing.TB, wc *wsClient) {
	tb.Helper()
	for deadline := time.Now().Add(5 * time.Second); wc.out.writerRuns(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatal("the writer did not end its turn with the queue empty")
		}
	}
}

func isCloseCode(err error, code int) bool {
	var ce *websocket.CloseError
	return errors.As(err, &ce) && ce.Code == code
}

// newBenchClient is the handler's wsClient for the harness.
func newBenchClient(s *Server, conn *fws.Conn) *wsClient {
	return newWSClient(s, conn, Session{User: "u"})
}
