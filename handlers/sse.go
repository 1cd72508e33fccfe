package handlers

import (
	"bufio"
	"context"
	"encoding/json"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/app/chat"
)

// events is GET /api/rooms/{room}/events: the room as Server-Sent Events.
func (s *Server) events(c *fiber.Ctx) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	// Last-Event-ID wins over ?after: EventSource reconnects to its original
	// URL, so the header carries the newer resume point.
	var after int64
	hasAfter := false
	if v := c.Get("Last-Event-ID"); v != "" {
		if after, err = parseSeq("Last-Event-ID", v); err != nil {
			return err
		}
		hasAfter = true
	} else if c.Context().QueryArgs().Has("after") {
		if after, err = parseSeq("after", c.Query("after")); err != nil {
			return err
		}
		hasAfter = true
	}

	user := userOf(c)
	from, decided, err := s.joinable(c.UserContext(), user, room)
	if err != nil {
		return err
	}
	release, err := s.connSlot(c)
	if err != nil {
		return err
	}
	sc := &sseClient{srv: s, room: room, out: newQueue(s.QueueBytes)}
	// Join before the stream starts, so a store failure is still a 503.
	ctx, cancel := context.WithTimeout(s.ctx(), 10*time.Second)
	defer cancel()
	sub, err := s.Hub.JoinAs(ctx, chat.JoinRequest{Room: room, User: user, From: from, Decided: decided, After: after, HasAfter: hasAfter}, sc)
	if err != nil {
		release()
		return unavailable(err)
	}

	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set("X-Accel-Buffering", "no")
	c.Set(fiber.HeaderConnection, "keep-alive")
	s.Metrics.Conn("sse", 1)
	// fasthttp runs the stream writer at once, in a goroutine of its own,
	// and ends it when the connection goes: the slot is released there.
	sess := sessionOf(c)
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer release()
		// Revocation and expiry end the stream.
		defer s.live.add(sess, func() { sc.out.close() })()
		defer s.Hub.Connect(sess.User, sc)()
		defer s.Metrics.Conn("sse", -1)
		defer sub.Close()
		defer sc.out.close()
		sc.stream(w)
	})
	return nil
}

// sseClient is one event stream. Its writer is the stream's own goroutine; a
// failed write or flush is how it learns the client left, and the periodic
// ": ping" makes that happen on an idle stream too.
type sseClient struct {
	srv  *Server
	room string
	out  *queue
	// ending is set once the user left the room: the stream sends what is
	// queued (the left event last) and ends.
	ending atomic.Bool
}

var _ chat.Sink = (*sseClient)(nil)

func (sc *sseClient) stream(w *bufio.Writer) {
	ping := time.NewTicker(sc.srv.SSEHeartbeat)
	defer ping.Stop()
	if _, err := w.WriteString("retry: 2000\n\n"); err != nil || w.Flush() != nil {
		return
	}
	var batch [][]byte
	for {
		select {
		case <-sc.out.done:
			// Cut off as too slow.
			return
		case <-sc.srv.ctx().Done():
			// Shutdown: send what is queued, then end the stream so the
			// client reconnects (possibly elsewhere) with Last-Event-ID.
			sc.out.close()
			_ = writeAll(w, sc.out.take(batch))
			return
		case <-sc.out.ready:
			ending := sc.ending.Load()
			batch = sc.out.take(batch)
			if writeAll(w, batch) != nil || ending {
				return
			}
		case <-ping.C:
			if _, err := w.WriteString(": ping\n\n"); err != nil || w.Flush() != nil {
				return
			}
		}
	}
}

// writeAll writes frames and flushes them in one go.
func writeAll(w *bufio.Writer, frames [][]byte) error {
	for _, b := range frames {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return w.Flush()
}

// Joined implements chat.Sink: SSE has no joined event.
func (sc *sseClient) Joined(context.Context, string, int64) error { return nil }

// Replay implements chat.Sink.
func (sc *sseClient) Replay(ctx context.Context, ev *chat.Event) error {
	return sc.out.pushWait(ctx, ev.Frame(sseMessage))
}

// Left implements chat.Leaver: the stream tells it and ends.
func (sc *sseClient) Left(room, reason string) {
	b, _ := json.Marshal(map[string]string{"room": room, "reason": reason})
	sc.pushOrEnd(sseFrame("left", b))
	sc.ending.Store(true)
	signal(sc.out.ready)
}

// Refused implements chat.UserSink: an item of the user's in this stream's
// room was refused after its POST was answered.
func (sc *sseClient) Refused(room, id string, e *chat.Error) {
	if room != sc.room {
		return
	}
	b, _ := json.Marshal(newErrorFrame(e, id, room))
	sc.pushOrEnd(sseFrame("error", b))
}

// Membership implements chat.UserSink: a stream is one room's, and learns
// of its user's removal by its own items.
func (sc *sseClient) Membership(string, string, int64) {}

// Read implements chat.UserSink: "event: read" for this stream's room.
func (sc *sseClient) Read(room string, seq int64) {
	if room != sc.room {
		return
	}
	b, _ := json.Marshal(map[string]any{"room": room, "seq": seq})
	sc.pushOrEnd(sseFrame("read", b))
}

// Receipt implements chat.Receipter: "event: receipt".
func (sc *sseClient) Receipt(room, user string, seq int64) {
	b, _ := json.Marshal(receiptFrame{"receipt", room, user, seq})
	sc.pushOrEnd(sseFrame("receipt", b))
}

// Notified implements chat.UserSink: "event: notification" on every stream
// of the target's (a client with several streams open knows it by id).
func (sc *sseClient) Notified(n *chat.Notification) {
	sc.pushOrEnd(sseFrame("notification", notificationFrame(n)))
}

func (sc *sseClient) pushOrEnd(b []byte) {
	if !sc.out.push(b) && sc.out.close() {
		sc.srv.Metrics.SlowClient()
	}
}

// sseFrame is an event without an id: it is no resume point.
func sseFrame(event string, data []byte) []byte {
	return append(append(append([]byte("event: "+event+"\ndata: "), data...), '\n'), '\n')
}

// Deliver implements chat.Sink: never blocks; a full queue ends the stream.
func (sc *sseClient) Deliver(ev *chat.Event) bool {
	if sc.out.push(ev.Frame(sseMessage)) {
		return true
	}
	if sc.out.close() {
		sc.srv.Metrics.SlowClient()
	}
	return false
}
