package chat_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/kafka/membus"
)

// hungBus, while down, takes publishes that never complete (a broker that
// does not answer) and fails pings at once (a connection refused).
type hungBus struct {
	chat.Bus
	down       atomic.Bool
	pings      atomic.Int32
	publishing atomic.Int32
}

func (b *hungBus) Publish(ctx context.Context, topic string, recs ...chat.Record) error {
	if b.down.Load() {
		b.publishing.Add(1)
		<-ctx.Done()
		return ctx.Err()
	}
	return b.Bus.Publish(ctx, topic, recs...)
}

func (b *hungBus) Ping(ctx context.Context) error {
	b.pings.Add(1)
	if b.down.Load() {
		return errors.New("connection refused")
	}
	return b.Bus.Ping(ctx)
}

func TestSenderFailsFastWhileTheBusIsDown(t *testing.T) {
	inner := membus.New(membus.Options{})
	defer inner.Close()
	bus := &hungBus{Bus: inner}
	s := &chat.Sender{Bus: bus, Topic: chat.DefaultTopicSend, Log: quietLog, Timeout: 300 * time.Millisecond}
	send := func(id string) (time.Duration, error) {
		start := time.Now()
		_, err := s.Send(context.Background(), chat.Author{Name: "alice"}, "general", id, "hello")
		return time.Since(start), err
	}
	if _, err := send("up"); err != nil {
		t.Fatal(err)
	}

	bus.down.Store(true)
	// The first send of the outage learns it: it waits the whole timeout.
	d, err := send("first")
	if chat.ErrorCode(err) != chat.EUnavailable || d < 250*time.Millisecond {
		t.Fatalf("first send with the bus down: %v after %v, want unavailable after the 300ms timeout", err, d)
	}
	// The next ones, one after another as a WebSocket's are, are answered
	// at once, and concurrent ones share a ping.
	for i := range 10 {
		if d, err := send("seq"); chat.ErrorCode(err) != chat.EUnavailable || d > 100*time.Millisecond {
			t.Fatalf("send %d with the bus known down: %v after %v, want unavailable at once", i, err, d)
		}
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if d, err := send("par"); chat.ErrorCode(err) != chat.EUnavailable || d > 100*time.Millisecond {
				t.Errorf("concurrent send with the bus known down: %v after %v", err, d)
			}
		})
	}
	wg.Wait()
	if p := bus.pings.Load(); p > 3 {
		t.Errorf("%d pings for 60 sends within a second", p)
	}
	if n := bus.publishing.Load(); n != 1 {
		t.Errorf("%d publishes tried against the bus known down, want only the first", n)
	}

	// Back up: sends are acknowledged again within a ping period.
	bus.down.Store(false)
	start := time.Now()
	for {
		_, err := send("back")
		if err == nil {
			break
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("sends still refused %v after the bus came back: %v", time.Since(start), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("acknowledged again %v after the bus came back", time.Since(start).Round(time.Millisecond))
	if d, err := send("fast"); err != nil || d > 100*time.Millisecond {
		t.Fatalf("send after recovery: %v after %v", err, d)
	}
}

// A caller that goes away says nothing about the bus.
func TestSenderIgnoresCallersThatLeave(t *testing.T) {
	inner := membus.New(membus.Options{})
	defer inner.Close()
	bus := &hungBus{Bus: inner}
	s := &chat.Sender{Bus: bus, Topic: chat.DefaultTopicSend, Log: quietLog, Timeout: time.Second}
	bus.down.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := s.Send(ctx, chat.Author{Name: "alice"}, "general", "left", "hello"); chat.ErrorCode(err) != chat.EUnavailable {
		t.Fatalf("send whose caller left: %v", err)
	}
	bus.down.Store(false)
	if _, err := s.Send(context.Background(), chat.Author{Name: "alice"}, "general", "next", "hello"); err != nil {
		t.Fatalf("send after a caller left: %v", err)
	}
	if p := bus.pings.Load(); p != 0 {
		t.Fatalf("%d pings: the sender took a caller leaving for a bus failure", p)
	}
}
