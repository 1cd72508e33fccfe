package chat

import (
	"encoding/json"
	"sync"
	"sync/atomic"
)

// The codec: a Message has one encoding, the JSON object of its fields, used
// as the value of its bus records and as the body of every frame that
// carries it to a client. A new field or a new timeline item kind is a change
// to Message alone; everything that moves a message goes through Encode,
// Decode and Event.
//
// Each instance encodes a message once at each step that changes it: the
// sender (without seq), the persist stage (with the seq it was stored at).
// The fan-out does not encode at all: the receive record's bytes are the
// event's bytes, shared by every local receiver.

// Encode is m's encoding.
func Encode(m Message) []byte {
	b, _ := json.Marshal(m) // a Message's fields always encode
	return b
}

// Decode reads an encoded message.
func Decode(b []byte) (Message, error) {
	var m Message
	err := json.Unmarshal(b, &m)
	return m, err
}

// Event is one stored message on its way to local connections, with its
// encoding and the frames transports build from it: each at most once per
// event, shared by every receiver.
type Event struct {
	Msg    Message
	json   []byte
	frames [maxFramings]struct {
		once sync.Once
		b    []byte
	}
}

// NewEvent encodes m for delivery (a message read from the store).
func NewEvent(m Message) *Event { return &Event{Msg: m, json: Encode(m)} }

// DecodeEvent makes the event of a receive record's value without encoding
// it again: b must be what Encode wrote, and is kept.
func DecodeEvent(b []byte) (*Event, error) {
	m, err := Decode(b)
	if err != nil {
		return nil, err
	}
	if len(b) < 2 || b[0] != '{' {
		// Valid JSON with leading space: transports splice the object, so
		// give them the canonical form.
		b = Encode(m)
	}
	return &Event{Msg: m, json: b}, nil
}

// JSON is the event's message encoding, a JSON object. It is shared: never
// modify it.
func (e *Event) JSON() []byte { return e.json }

// Framing is one transport's way of framing an event (a WebSocket text
// frame's payload, a Server-Sent Event). The domain knows no transport: it
// keeps one slot per framing in each event so that a frame is built once,
// however many connections it goes to.
type Framing struct {
	slot  int
	build func(*Event) []byte
}

// maxFramings is how many framings a process may declare: one per
// transport (WebSocket and SSE today). Each is a slot in every event.
const maxFramings = 2

var framings atomic.Int32

// NewFraming declares a framing; call it once per transport, at package
// initialisation. It panics past maxFramings.
func NewFraming(build func(*Event) []byte) *Framing {
	n := int(framings.Add(1)) - 1
	if n >= maxFramings {
		panic("chat: more than maxFramings framings")
	}
	return &Framing{slot: n, build: build}
}

// Frame is e framed by f, built on first use and shared afterwards: never
// modify it.
func (e *Event) Frame(f *Framing) []byte {
	s := &e.frames[f.slot]
	s.once.Do(func() { s.b = f.build(e) })
	return s.b
}
