package chat

import (
	"context"
	"encoding/json"
	"log/slog"
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
	Metrics *Metrics
	// Timeout bounds one publish, so a bus that does not answer turns into an
	// "unavailable" answer instead of a hung client. Zero means 5 s.
	Timeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Send accepts text from user for room under the client's id. The returned
// message has no seq yet. Errors are *Error: bad_request for invalid input,
// unavailable when the bus did not take the message (safe to retry with the
// same id).
func (s *Sender) Send(ctx context.Context, user, room, id, text string) (Message, error) {
	s.Metrics.received()
	if err := ValidateRoom(room); err != nil {
		return Message{}, err
	}
	if err := ValidateID(id); err != nil {
		return Message{}, err
	}
	if err := ValidateText(text); err != nil {
		return Message{}, err
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	m := Message{Room: room, ID: id, User: user, Text: text, TS: Timestamp(now())}
	v, err := json.Marshal(m)
	if err != nil {
		return Message{}, err
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	if err := s.Bus.Publish(ctx, s.Topic, Record{Key: []byte(room), Value: v}); err != nil {
		s.Log.Warn("send: publish failed", "room", room, "id", id, "err", err)
		return Message{}, Errorf(EUnavailable, "the message could not be accepted now; retry with the same id")
	}
	s.Metrics.acked(time.Since(start))
	return m, nil
}
