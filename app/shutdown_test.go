package main

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestShutdownAnswersInFlight shuts the server down (what SIGTERM does: run's
// context ends) while a WebSocket client keeps up to 100 sends in flight, a
// POST client sends in a loop and an SSE client reads: /readyz turns 503
// before the listener closes, every send frame written is answered exactly
// once (acks, then errors once the connection stops taking sends), the
// WebSocket closes with 1012 after the listener closed, the SSE stream ends,
// and every acknowledged message is stored once. On both modes.
func TestShutdownAnswersInFlight(t *testing.T) {
	s := startServer(t, func(c *Config) {
		c.SendRate, c.SendBurst = 1e6, 1e6
		c.ShutdownDelay = 500 * time.Millisecond
		c.ShutdownTimeout = 10 * time.Second
	})
	cfg := s.cfg
	token := s.login("alice")
	room := uniqueRoom(t)
	st := s.sse(token, room, "", nil)
	c := s.dial(token)
	c.join(room)

	// /readyz, polled over new connections: its answers in order, until the
	// listener refuses.
	type probe struct {
		at     time.Duration
		status int
		body   string
	}
	var probes []probe
	refused := make(chan time.Time, 1)
	var start time.Time
	startPoll := make(chan struct{})
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		<-startPoll
		for {
			status, body := probeReadyz(s.base)
			probes = append(probes, probe{time.Since(start), status, body})
			if status == 0 {
				refused <- time.Now()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()

	// The WebSocket sender: up to 100 sends in flight, paced at about one a
	// millisecond, until the listener has closed.
	var written []string
	tl := newTally()
	writerDone := make(chan struct{})
	stopWriting := make(chan struct{})
	firstAck := make(chan struct{})
	go func() {
		defer close(writerDone)
		inFlight := 0
		answers := 0
		acked := false
		// take counts one frame (frames are read by this goroutine only).
		take := func(f map[string]any) {
			tl.add(f)
			if f["type"] == "ack" || f["type"] == "error" {
				answers++
				if f["type"] == "ack" && !acked {
					acked = true
					close(firstAck)
				}
			}
		}
		for i := 0; ; i++ {
			// Count answers so far.
			for {
				select {
				case f := <-c.frames:
					take(f)
					continue
				default:
				}
				break
			}
			inFlight = len(written) - answers
			select {
			case <-stopWriting:
				return
			default:
			}
			if inFlight >= 100 {
				select {
				case f := <-c.frames:
					take(f)
				case <-stopWriting:
					return
				case <-c.closed:
					return
				}
				continue
			}
			id := fmt.Sprintf("ws-%05d", i)
			if err := c.conn.WriteMessage(1, []byte(`{"type":"send","room":"`+room+`","id":"`+id+`","text":"in flight"}`)); err != nil {
				return
			}
			written = append(written, id)
			time.Sleep(time.Millisecond)
		}
	}()

	// The POST sender, on one keep-alive connection.
	type postResult struct {
		id     string
		status int
		code   string
		took   time.Duration
		err    error
	}
	var posts []postResult
	postsDone := make(chan struct{})
	go func() {
		defer close(postsDone)
		for i := 0; ; i++ {
			id := fmt.Sprintf("post-%05d", i)
			status, code, took, err := postTimed(s, token, room, id)
			posts = append(posts, postResult{id, status, code, took, err})
			if err != nil || status != 202 {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()

	select {
	case <-firstAck:
	case <-time.After(10 * time.Second):
		t.Fatal("no ack within 10s")
	}
	time.Sleep(100 * time.Millisecond) // sends under way on both paths
	start = time.Now()
	s.stop()
	close(startPoll)
	var refusedAt time.Time
	select {
	case refusedAt = <-refused:
	case <-time.After(10 * time.Second):
		t.Fatal("the listener did not close within 10s of shutdown")
	}
	close(stopWriting)
	<-writerDone
	<-pollDone

	// Every frame written is answered before the close, exactly once.
	if err := c.collect(15*time.Second, tl.add, nil); !errors.Is(err, errClosed) {
		t.Fatal("the WebSocket was not closed within 15s of shutdown")
	}
	closeCode, closedAt := c.closeCode, time.Now()
	if closeCode != 1012 {
		t.Errorf("close code %d, want 1012", closeCode)
	}
	if closedAt.Before(refusedAt) {
		t.Errorf("1012 came %v before the listener closed", refusedAt.Sub(closedAt))
	}
	acked := map[string]bool{}
	wsAcked, wsErrs, lastAck, firstErr := 0, 0, -1, -1
	for i, id := range written {
		a, e := tl.acks[id], tl.errs[id]
		switch {
		case a+len(e) == 0:
			t.Errorf("send %s (%d of %d written) never answered", id, i+1, len(written))
		case a+len(e) > 1:
			t.Errorf("send %s answered %d times (%d acks, errors %v)", id, a+len(e), a, e)
		case a == 1:
			acked[id] = true
			wsAcked++
			lastAck = i
		default:
			if e[0] != "unavailable" {
				t.Errorf("send %s answered %s, want ack or unavailable", id, e[0])
			}
			wsErrs++
			if firstErr < 0 {
				firstErr = i
			}
		}
	}
	if firstErr >= 0 && lastAck > firstErr {
		t.Errorf("send %d was acknowledged after send %d was refused: sends of one connection are handled in order", lastAck, firstErr)
	}

	// /readyz: 503 with its reason before the listener closed, never 200
	// once it was 503.
	first503 := -1
	for i, p := range probes {
		switch {
		case p.status == 503 && first503 < 0:
			first503 = i
			if !strings.Contains(p.body, "shutting down") {
				t.Errorf("/readyz while shutting down: %s", p.body)
			}
		case p.status == 200 && first503 >= 0:
			t.Errorf("/readyz 200 at %v, after 503 at %v", p.at, probes[first503].at)
		}
	}
	if first503 < 0 {
		t.Errorf("/readyz never answered 503 before the listener closed: %v", probes)
	} else {
		t.Logf("/readyz 503 from %v after shutdown began to %v (%d probes); listener closed at %v; 1012 at %v",
			probes[first503].at.Round(time.Millisecond), probes[len(probes)-2].at.Round(time.Millisecond), len(probes)-1-first503,
			refusedAt.Sub(start).Round(time.Millisecond), closedAt.Sub(start).Round(time.Millisecond))
	}

	// The SSE stream ends.
	var sseGot []message
	err := st.collect(10*time.Second, func(ev sseEvent, m message, err error) {
		if err != nil {
			t.Fatalf("decode %q: %v", ev.Data, err)
		}
		sseGot = append(sseGot, m)
	}, nil)
	if !errors.Is(err, errStreamEnded) {
		t.Fatal("the SSE stream did not end within 10s of shutdown")
	}

	<-postsDone
	postAcked, postOther := 0, []string{}
	for _, p := range posts {
		switch {
		case p.err == nil && p.status == 202:
			acked[p.id] = true
			postAcked++
		case p.err == nil && p.status == 503 && p.code == "unavailable":
			postOther = append(postOther, "503")
		case p.err != nil:
			// The listener refused the connection (or closed it idle) before
			// the request was read.
			postOther = append(postOther, "transport error")
		default:
			t.Errorf("POST %s while shutting down: %d %s", p.id, p.status, p.code)
		}
		if p.took > cfg.ShutdownTimeout {
			t.Errorf("POST %s took %v, over the shutdown deadline", p.id, p.took)
		}
	}
	s.shutdown() // waits for run to return
	t.Logf("WebSocket: %d sends written, %d acknowledged, %d answered unavailable, close %d; POST: %d acknowledged, then %v",
		len(written), wsAcked, wsErrs, closeCode, postAcked, postOther)

	// Everything acknowledged is stored once: read it through a new
	// instance on the same data.
	cfg.DataDir = s.cfg.DataDir
	s2 := startWith(t, cfg)
	var stored []message
	for wait := time.Now().Add(20 * time.Second); ; {
		stored = fullHistory(t, s2, s2.login("auditor"), room) // alice still holds her name (v2)
		if len(stored) >= len(acked) || time.Now().After(wait) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	checkStored(t, room, stored, acked, nil)
	// The SSE client got a gapless prefix of the history, in order.
	if len(sseGot) > len(stored) {
		t.Errorf("SSE client got %d messages, the store holds %d", len(sseGot), len(stored))
	} else {
		sameAsStored(t, "SSE client", sseGot, stored[:len(sseGot)])
	}
	t.Logf("stored %d messages, once each, gapless; the SSE client had %d of them when its stream ended", len(stored), len(sseGot))

	// Both clients move to the new instance and resume where they were:
	// they get the rest of the room, gapless, nothing twice.
	token2 := token // the same session: it outlives the restart (v2: alice holds her name)
	var lastWS int64
	for _, m := range tl.msgs {
		if m.Room == room {
			lastWS = max(lastWS, m.Seq)
		}
	}
	if n := len(tl.msgs); int64(n) != lastWS {
		t.Errorf("the WebSocket client had %d messages up to seq %d before the 1012", n, lastWS)
	}
	c2 := s2.dial(token2)
	c2.join(room, lastWS)
	if rest := int64(len(stored)) - lastWS; rest > 0 {
		checkSeqs(t, c2.messages(int(rest)), lastWS+1, int64(len(stored)))
	}
	c2.quiet(200 * time.Millisecond)
	lastSSE := int64(len(sseGot))
	st2 := s2.sse(token2, room, "", http.Header{"Last-Event-ID": {strconv.FormatInt(lastSSE, 10)}})
	if rest := int64(len(stored)) - lastSSE; rest > 0 {
		checkSeqs(t, st2.messages(int(rest)), lastSSE+1, int64(len(stored)))
	}
	t.Logf("resumed on a new instance: WebSocket from seq %d, SSE from seq %d, up to %d", lastWS, lastSSE, len(stored))
}
