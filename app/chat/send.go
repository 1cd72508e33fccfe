package chat

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Sender accepts messages from clients: it validates them, stamps author and
// time, and publishes them to the send topic. Storage happens later, in the
// persist stage; the client is acknowledged as soon as the bus holds the
// message, so nothing slow sits on this path.
type Sender struct {
	Bus     Bus
	Topic   string
	Log     *slog.Logger
	Metrics Metrics
	// Timeout bounds one publish, so a bus that does not answer turns into an
	// "unavailable" answer instead of a hung client. Zero means 5 s.
	Timeout time.Duration
	// ProbeTimeout bounds the bus ping that stands in for a publish while
	// the bus is down (see Send). Zero means 1 s.
	ProbeTimeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	health busHealth
}

// probeEvery is how long one bus ping's verdict is reused while the bus is
// down: a burst of sends costs one ping, not one each.
const probeEvery = 500 * time.Millisecond

// busHealth remembers whether the last publish failed and, while it did, the
// latest bus ping. Without it every send during an outage would wait the
// whole publish timeout (kafka-go retries a dead broker for ~3.7 s), and a
// WebSocket client's sends, handled one after another, would be answered
// seconds apart.
type busHealth struct {
	mu      sync.Mutex
	down    bool          // the last publish failed
	checked time.Time     // when the last ping ended
	pingErr error         // its verdict
	probing chan struct{} // not nil while a ping runs; closed when it ends
}

// Send accepts text from an author for room under the client's id. The returned
// message has no seq yet. Errors are *Error: bad_request for invalid input,
// unavailable when the bus did not take the message (safe to retry with the
// same id).
func (s *Sender) Send(ctx context.Context, from Author, room, id, text string) (Message, error) {
	return s.SendReply(ctx, from, room, id, text, 0)
}

// SendReply is Send of a message that answers the item at seq replyTo of
// the room (0: none).
func (s *Sender) SendReply(ctx context.Context, from Author, room, id, text string, replyTo int64) (Message, error) {
	orNop(s.Metrics).Received()
	if err := ValidateRoom(room); err != nil {
		return Message{}, err
	}
	if err := ValidateID(id); err != nil {
		return Message{}, err
	}
	if err := ValidateText(text); err != nil {
		return Message{}, err
	}
	m := Message{Room: room, ID: id, User: from.Name, Guest: from.Guest, Text: text, TS: Timestamp(s.now()), ReplyTo: replyTo}
	if err := s.Publish(ctx, m); err != nil {
		return Message{}, err
	}
	return m, nil
}

// Now is the Sender's clock.
func (s *Sender) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Publish hands an item made and checked by the caller (a message, or a
// membership item made with NewItem) to the send topic, as Send does.
func (s *Sender) Publish(ctx context.Context, m Message) error {
	room, id := m.Room, m.ID
	v := Encode(m)
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := s.probe(ctx); err != nil {
		s.Log.Debug("send: bus down; not publishing", "room", room, "id", id, "err", err)
		return errUnavailable
	}
	start := time.Now()
	err := s.Bus.Publish(ctx, s.Topic, Record{Key: []byte(room), Value: v})
	if !errors.Is(parent.Err(), context.Canceled) {
		s.report(err)
	}
	if err != nil {
		s.Log.Warn("send: publish failed", "room", room, "id", id, "err", err)
		return errUnavailable
	}
	orNop(s.Metrics).Acked(time.Since(start))
	return nil
}

var errUnavailable = Errorf(EUnavailable, "the message could not be accepted now; retry with the same id")

// probe returns nil when a publish is worth trying: the last one succeeded,
// or a bus ping at most probeEvery old answered. (The ping is /readyz's own
// bus check, so sends are refused exactly while /readyz calls the bus down;
// kafka.Bus asks every bootstrap broker, and one that hangs does not fail it.) While the bus is down this
// answers in the time of a ping (refused at once by a stopped broker,
// ProbeTimeout at most), shared by concurrent sends, instead of the whole
// publish timeout for each.
func (s *Sender) probe(ctx context.Context) error {
	h := &s.health
	for {
		h.mu.Lock()
		if !h.down {
			h.mu.Unlock()
			return nil
		}
		if time.Since(h.checked) < probeEvery {
			err := h.pingErr
			h.mu.Unlock()
			return err
		}
		if wait := h.probing; wait != nil {
			h.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		done := make(chan struct{})
		h.probing = done
		h.mu.Unlock()

		pt := s.ProbeTimeout
		if pt <= 0 {
			pt = time.Second
		}
		// Not ctx: the verdict serves every send waiting on it.
		pctx, cancel := context.WithTimeout(context.Background(), pt)
		err := s.Bus.Ping(pctx)
		cancel()
		h.mu.Lock()
		h.checked, h.pingErr, h.probing = time.Now(), err, nil
		h.mu.Unlock()
		close(done)
		return err
	}
}

// report records a publish's outcome. (Send does not report a publish
// abandoned because its caller went away: that says nothing about the bus.)
func (s *Sender) report(err error) {
	h := &s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case err == nil:
		if h.down {
			s.Log.Info("send: bus is back; publishing again")
		}
		h.down = false
	case !h.down:
		s.Log.Warn("send: the bus failed a publish; until one succeeds, sends are answered unavailable as soon as a bus ping fails", "err", err)
		h.down = true
		h.checked = time.Time{}
	}
}
