package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// The one collector per transport: every test that reads frames or events
// until it has enough, or until a deadline, goes through wsClient.collect or
// sseStream.collect and keeps only its own assertions.

var (
	// errClosed: the WebSocket closed, and every frame it had sent was taken.
	errClosed = errors.New("connection closed")
	// errStreamEnded: the SSE stream ended.
	errStreamEnded = errors.New("SSE stream ended")
)

// timeout is a collector's deadline passing before it was done.
type timeout struct{ within time.Duration }

func (e timeout) Error() string { return fmt.Sprintf("not done within %v", e.within) }

// collect hands c's frames to take, first those ack set aside, until done
// holds (asked before every frame; nil means never), the connection has
// closed and every frame it sent was taken (errClosed), or within has
// passed (a timeout).
func (c *wsClient) collect(within time.Duration, take func(map[string]any), done func() bool) error {
	timer := time.NewTimer(within)
	defer timer.Stop()
	for done == nil || !done() {
		if len(c.held) > 0 {
			f := c.held[0]
			c.held = c.held[1:]
			take(f)
			continue
		}
		select {
		case f := <-c.frames:
			take(f)
		case <-c.closed:
			// The read loop queues every frame before it closes closed.
			select {
			case f := <-c.frames:
				take(f)
			default:
				return errClosed
			}
		case <-timer.C:
			return timeout{within}
		}
	}
	return nil
}

// collect hands st's message events to take, decoded (err when the data is
// not a message), until done holds (asked before every event; nil means
// never), the stream ends (errStreamEnded) or within has passed (a
// timeout). Other events (retry, comments) are skipped.
func (st *sseStream) collect(within time.Duration, take func(ev sseEvent, m message, err error), done func() bool) error {
	timer := time.NewTimer(within)
	defer timer.Stop()
	for done == nil || !done() {
		select {
		case ev, ok := <-st.events:
			if !ok {
				return errStreamEnded
			}
			if ev.Event != "message" {
				continue
			}
			var m message
			err := json.Unmarshal([]byte(ev.Data), &m)
			take(ev, m, err)
		case <-timer.C:
			return timeout{within}
		}
	}
	return nil
}

// missing counts the ids of ids that no message of got has.
func missing(got []message, ids map[string]bool) int {
	have := make(map[string]bool, len(got))
	for _, m := range got {
		have[m.ID] = true
	}
	n := 0
	for id := range ids {
		if !have[id] {
			n++
		}
	}
	return n
}

// tally is what one WebSocket connection was answered, by message id.
type tally struct {
	acks   map[string]int
	errs   map[string][]string // id -> codes
	msgs   []message
	others []map[string]any
}

func newTally() *tally {
	return &tally{acks: map[string]int{}, errs: map[string][]string{}}
}

func (tl *tally) add(f map[string]any) {
	id, _ := f["id"].(string)
	switch f["type"] {
	case "ack":
		tl.acks[id]++
	case "error":
		code, _ := f["code"].(string)
		tl.errs[id] = append(tl.errs[id], code)
	case "message":
		tl.msgs = append(tl.msgs, toMessage(f))
	default:
		tl.others = append(tl.others, f)
	}
}

// answered reports whether id got an ack or an error.
func (tl *tally) answered(id string) bool { return tl.acks[id] > 0 || len(tl.errs[id]) > 0 }
