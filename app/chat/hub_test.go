package chat_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/repository/bolt"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// sink records what a hub hands it.
type sink struct {
	mu      sync.Mutex
	joined  []int64
	seqs    []int64
	refuse  bool // Deliver reports a full queue
	arrived chan struct{}
}

func newSink() *sink { return &sink{arrived: make(chan struct{}, 1<<16)} }

func (s *sink) Joined(_ context.Context, _ string, last int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.seqs) > 0 {
		panic("joined after a message")
	}
	s.joined = append(s.joined, last)
	return nil
}

func (s *sink) Deliver(ev *chat.Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refuse {
		return false
	}
	s.seqs = append(s.seqs, ev.Msg.Seq)
	s.arrived <- struct{}{}
	return true
}

func (s *sink) Replay(_ context.Context, ev *chat.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seqs = append(s.seqs, ev.Msg.Seq)
	s.arrived <- struct{}{}
	return nil
}

// wait waits until the sink holds n messages, then checks they are from..to.
func (s *sink) want(t *testing.T, from, to int64) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		s.mu.Lock()
		n := int64(len(s.seqs))
		s.mu.Unlock()
		if n >= to-from+1 {
			break
		}
		select {
		case <-s.arrived:
		case <-deadline:
			t.Fatalf("got %d messages, want %d", n, to-from+1)
		}
	}
	time.Sleep(30 * time.Millisecond) // anything extra would show now
	s.mu.Lock()
	defer s.mu.Unlock()
	if int64(len(s.seqs)) != to-from+1 {
		t.Fatalf("seqs %v, want %d..%d", s.seqs, from, to)
	}
	for i, q := range s.seqs {
		if q != from+int64(i) {
			t.Fatalf("seqs %v, want %d..%d", s.seqs, from, to)
		}
	}
}

func openBolt(dir string) (chat.Store, error) { return bolt.Open(filepath.Join(dir, "hub.db")) }

func openStore(t *testing.T) chat.Store {
	st, err := openBolt(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// events are msgs as the fan-out hands them to the hub.
func events(msgs []chat.Message) []*chat.Event {
	evs := make([]*chat.Event, len(msgs))
	for i, m := range msgs {
		evs[i] = chat.NewEvent(m)
	}
	return evs
}

// appendN stores n messages in room and returns them stored.
func appendN(t *testing.T, st chat.Store, room string, n int) []chat.Message {
	t.Helper()
	var in []chat.Message
	for i := 0; i < n; i++ {
		in = append(in, chat.Message{Room: room, ID: chat.NewID(), User: "u", Text: "t", TS: chat.Timestamp(time.Now())})
	}
	out, err := st.Append(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestHubJoinWithoutAfterIsLiveOnly(t *testing.T) {
	st := openStore(t)
	hub := chat.NewHub(st, quietLog, nil)
	appendN(t, st, "r", 3)
	s := newSink()
	sub, err := hub.Join(context.Background(), "r", 0, false, s)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	hub.Deliver(events(appendN(t, st, "r", 2)))
	s.want(t, 4, 5)
	if len(s.joined) != 1 || s.joined[0] != 3 {
		t.Fatalf("joined %v", s.joined)
	}
}

func TestHubDropsRepeatsAndFillsGaps(t *testing.T) {
	st := openStore(t)
	hub := chat.NewHub(st, quietLog, nil)
	s := newSink()
	sub, err := hub.Join(context.Background(), "r", 0, true, s)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msgs := appendN(t, st, "r", 10)
	hub.Deliver(events(msgs[:3]))
	hub.Deliver(events(msgs[1:3])) // repeats: a redelivery from the bus
	hub.Deliver(events(msgs[7:]))  // a gap: 4..7 come from the store
	hub.Deliver(events(msgs[5:6]))
	s.want(t, 1, 10)
}

// TestHubSeamUnderConcurrentDelivery joins with after while the stream keeps
// delivering; every joiner sees after+1..N exactly once in order.
func TestHubSeamUnderConcurrentDelivery(t *testing.T) {
	st := openStore(t)
	hub := chat.NewHub(st, quietLog, nil)
	const total = 600
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < total/3; i++ {
			hub.Deliver(events(appendN(t, st, "r", 3)))
		}
	})
	var sinks []*sink
	var afters []int64
	for i := 0; i < 6; i++ {
		time.Sleep(5 * time.Millisecond)
		s := newSink()
		after := int64(i * 7)
		sub, err := hub.Join(context.Background(), "r", after, true, s)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		sinks, afters = append(sinks, s), append(afters, after)
	}
	wg.Wait()
	for i, s := range sinks {
		s.want(t, afters[i]+1, total)
	}
}

func TestHubSlowSinkDoesNotHoldOthers(t *testing.T) {
	st := openStore(t)
	hub := chat.NewHub(st, quietLog, nil)
	slow, fast := newSink(), newSink()
	slow.refuse = true
	for _, s := range []*sink{slow, fast} {
		sub, err := hub.Join(context.Background(), "r", 0, false, s)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
	}
	done := make(chan struct{})
	go func() {
		for i := 0; i < 50; i++ {
			hub.Deliver(events(appendN(t, st, "r", 2)))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Deliver blocked on a refusing sink")
	}
	fast.want(t, 1, 100)
}

func TestHubCloseStopsDelivery(t *testing.T) {
	st := openStore(t)
	hub := chat.NewHub(st, quietLog, nil)
	s := newSink()
	sub, err := hub.Join(context.Background(), "r", 0, true, s)
	if err != nil {
		t.Fatal(err)
	}
	hub.Deliver(events(appendN(t, st, "r", 1)))
	s.want(t, 1, 1)
	sub.Close()
	hub.Deliver(events(appendN(t, st, "r", 1)))
	time.Sleep(50 * time.Millisecond)
	s.want(t, 1, 1)
	if hub.Rooms() != 0 {
		t.Fatalf("hub still tracks %d rooms", hub.Rooms())
	}
}
