package chat_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
)

// slowStore makes LastSeq slow and counts the store calls a join makes.
type slowStore struct {
	chat.Store
	lastSeqs, ensures, pages atomic.Int32
	delay                    time.Duration
}

func (s *slowStore) Messages(ctx context.Context, room string, q chat.Query) (chat.Page, error) {
	s.pages.Add(1)
	time.Sleep(s.delay)
	return s.Store.Messages(ctx, room, q)
}

func (s *slowStore) LastSeq(ctx context.Context, room string) (int64, error) {
	s.lastSeqs.Add(1)
	time.Sleep(s.delay)
	return s.Store.LastSeq(ctx, room)
}

func (s *slowStore) EnsureRoom(ctx context.Context, room string) error {
	s.ensures.Add(1)
	return s.Store.EnsureRoom(ctx, room)
}

// TestHubJoinsShareStoreReads: a crowd joining one room at once from one
// seq (clients whose instance died) costs a couple of store reads, not one
// each — for the last seq and for the catch-up — and every join still reads
// a last seq taken after it subscribed.
func TestHubJoinsShareStoreReads(t *testing.T) {
	st := &slowStore{Store: openStore(t), delay: 50 * time.Millisecond}
	hub := chat.NewHub(st, quietLog, nil)
	appendN(t, st, "r", 5)

	const n = 100
	var wg sync.WaitGroup
	sinks := make([]*sink, n)
	for i := range n {
		sinks[i] = newSink()
		wg.Go(func() {
			sub, err := hub.Join(context.Background(), "r", 0, true, sinks[i])
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(sub.Close)
		})
	}
	wg.Wait()
	if got := st.lastSeqs.Load(); got > 3 {
		t.Errorf("%d joins made %d LastSeq reads, want at most 3", n, got)
	}
	if got := st.ensures.Load(); got > n/2 {
		t.Errorf("%d joins made %d EnsureRoom calls", n, got)
	}
	for _, s := range sinks {
		s.want(t, 1, 5)
	}
	// Each catch-up reads the page after 0, then finds nothing after 5.
	if got := st.pages.Load(); got > 8 {
		t.Errorf("%d catch-ups from seq 0 made %d page reads, want a few", n, got)
	}

	// A join that subscribes while a read is in flight waits for the next
	// read, which sees what was stored meanwhile.
	first := newSink()
	done := make(chan struct{})
	go func() {
		sub, err := hub.Join(context.Background(), "r", 5, true, first)
		if err != nil {
			t.Error(err)
		} else {
			t.Cleanup(sub.Close)
		}
		close(done)
	}()
	time.Sleep(10 * time.Millisecond) // the first join's read is in flight
	appendN(t, st, "r", 1)            // seq 6, stored before the second join subscribes
	second := newSink()
	sub, err := hub.Join(context.Background(), "r", 5, true, second)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	<-done
	second.mu.Lock()
	joined := second.joined
	second.mu.Unlock()
	if len(joined) != 1 || joined[0] != 6 {
		t.Fatalf("second join answered last_seq %v, want 6 (read after it subscribed)", joined)
	}
	second.want(t, 6, 6)
}
