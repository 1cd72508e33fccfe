package chat_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/kafka/membus"
)

// gateStore holds every Append until open is closed.
type gateStore struct {
	chat.Store
	entered chan struct{}
	once    sync.Once
	open    chan struct{}
}

func (s *gateStore) Append(ctx context.Context, m []chat.Message) ([]chat.Message, error) {
	s.once.Do(func() { close(s.entered) })
	select {
	case <-s.open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Store.Append(ctx, m)
}

// Finish without Drain (shutdown on a durable bus) lets the batch in hand be stored,
// republished and committed, then Run returns without waiting for the topic
// to go quiet.
func TestPersisterStopFinishesTheBatchInHand(t *testing.T) {
	bus := membus.New(membus.Options{})
	defer bus.Close()
	st := &gateStore{Store: openStore(t), entered: make(chan struct{}), open: make(chan struct{})}
	stop := make(chan struct{})
	p := &chat.Persister{Bus: bus, Store: st, TopicSend: chat.DefaultTopicSend, TopicReceive: chat.DefaultTopicReceive, Log: quietLog, Finish: stop}
	done := make(chan struct{})
	go func() { _ = p.Run(context.Background()); close(done) }()
	publish(t, bus, "s", 10)
	select {
	case <-st.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("no Append within 5s")
	}
	close(stop)
	close(st.open)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of Finish")
	}
	last, err := st.LastSeq(context.Background(), "s")
	if err != nil || last == 0 {
		t.Fatalf("the batch in hand was not stored: last seq %d, %v", last, err)
	}
	got := received(t, bus, int(last))
	if got[len(got)-1].Seq != last {
		t.Fatalf("the batch in hand was not republished: %+v", got)
	}
	// Committed: a new member of the group gets only what the stopped one
	// had not taken.
	c, err := bus.Consume(context.Background(), chat.ConsumerConfig{Topic: chat.DefaultTopicSend, Group: chat.GroupPersist})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rest := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		recs, err := c.Fetch(ctx, 100)
		cancel()
		if err != nil {
			break
		}
		rest += len(recs)
	}
	if int64(rest)+last != 10 {
		t.Fatalf("stored %d, and %d left uncommitted, of 10", last, rest)
	}
	t.Logf("stopped after storing and committing %d of 10; %d left for the group", last, rest)
}
