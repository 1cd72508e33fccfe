package chat_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/kafka/membus"
)

// flakyStore fails its first failures Appends.
type flakyStore struct {
	chat.Store
	failures atomic.Int32
}

func (s *flakyStore) Append(ctx context.Context, m []chat.Message) ([]chat.Message, error) {
	if s.failures.Add(-1) >= 0 {
		return nil, errors.New("store down")
	}
	return s.Store.Append(ctx, m)
}

// lostBus hands out consumers whose commits always report the partitions
// moved away, as they do for good after a rebalance.
type lostBus struct {
	chat.Bus
}

func (b *lostBus) Consume(ctx context.Context, cfg chat.ConsumerConfig) (chat.Consumer, error) {
	c, err := b.Bus.Consume(ctx, cfg)
	return &lostConsumer{Consumer: c}, err
}

type lostConsumer struct {
	chat.Consumer
}

func (c *lostConsumer) Commit(ctx context.Context, recs []chat.Record) error {
	return fmt.Errorf("commit: %w", chat.ErrNotAssigned)
}

func publish(t *testing.T, bus chat.Bus, room string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		m := chat.Message{Room: room, ID: fmt.Sprintf("m%d", i), User: "u", Text: "t", TS: chat.Timestamp(time.Now())}
		v, _ := json.Marshal(m)
		if err := bus.Publish(context.Background(), chat.DefaultTopicSend, chat.Record{Key: []byte(room), Value: v}); err != nil {
			t.Fatal(err)
		}
	}
}

// received reads n records from the receive topic in a fresh group.
func received(t *testing.T, bus chat.Bus, n int) []chat.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := bus.Consume(ctx, chat.ConsumerConfig{Topic: chat.DefaultTopicReceive, Group: "check-" + chat.NewID()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out []chat.Message
	for len(out) < n {
		recs, err := c.Fetch(ctx, 100)
		if err != nil {
			t.Fatalf("got %d of %d received: %v", len(out), n, err)
		}
		for _, r := range recs {
			var m chat.Message
			if err := json.Unmarshal(r.Value, &m); err != nil {
				t.Fatal(err)
			}
			out = append(out, m)
		}
	}
	return out
}

func runPersister(t *testing.T, bus chat.Bus, st chat.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	p := &chat.Persister{Bus: bus, Store: st, TopicSend: chat.DefaultTopicSend, TopicReceive: chat.DefaultTopicReceive, Log: quietLog}
	go func() { p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestPersisterStoresAndRepublishes(t *testing.T) {
	bus, st := membus.New(membus.Options{}), openStore(t)
	defer bus.Close()
	runPersister(t, bus, st)
	publish(t, bus, "a", 20)
	publish(t, bus, "a", 5) // the same ids again: stored once
	got := received(t, bus, 25)
	seen := map[int64]bool{}
	for _, m := range got {
		seen[m.Seq] = true
	}
	if len(seen) != 20 || !seen[1] || !seen[20] {
		t.Fatalf("receive topic seqs %v", seen)
	}
	if last, _ := st.LastSeq(context.Background(), "a"); last != 20 {
		t.Fatalf("last seq %d", last)
	}
}

func TestPersisterWaitsOutAStoreOutage(t *testing.T) {
	bus := membus.New(membus.Options{})
	defer bus.Close()
	st := &flakyStore{Store: openStore(t)}
	st.failures.Store(3)
	runPersister(t, bus, st)
	publish(t, bus, "b", 10)
	got := received(t, bus, 10)
	if got[len(got)-1].Seq != 10 {
		t.Fatalf("last received %+v", got[len(got)-1])
	}
}

func TestPersisterGoesOnWhenPartitionsMoved(t *testing.T) {
	inner := membus.New(membus.Options{})
	defer inner.Close()
	bus := &lostBus{Bus: inner}
	runPersister(t, bus, openStore(t))
	publish(t, bus, "c", 5)
	received(t, inner, 5)
	// Were the persister stuck retrying the refused commit, nothing of a
	// later publish would come through.
	publish(t, bus, "d", 5)
	got := received(t, inner, 10)
	rooms := map[string]int{}
	for _, m := range got {
		rooms[m.Room]++
	}
	if rooms["d"] == 0 {
		t.Fatalf("persister stuck after ErrNotAssigned: %v", rooms)
	}
}
