package chat_test

import (
	"context"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
)

// TestHubJoinAfterExpired: a join whose after lies below the oldest kept
// message (retention deleted the ones after it) replays from the oldest kept
// one, without error, then goes live; the joined last seq is the room's.
func TestHubJoinAfterExpired(t *testing.T) {
	st := openStore(t)
	hub := chat.NewHub(st, quietLog, nil)
	old := appendN(t, st, "r", 5)
	time.Sleep(5 * time.Millisecond)
	cut := time.Now()
	time.Sleep(5 * time.Millisecond)
	kept := appendN(t, st, "r", 3) // seqs 6-8
	n, err := st.(chat.Sweeper).Sweep(context.Background(), cut)
	if err != nil || n != len(old) {
		t.Fatalf("Sweep = %d, %v; want %d", n, err, len(old))
	}

	for _, after := range []int64{0, 2, 5} {
		s := newSink()
		sub, err := hub.Join(context.Background(), "r", after, true, s)
		if err != nil {
			t.Fatalf("Join after %d: %v", after, err)
		}
		s.want(t, kept[0].Seq, kept[len(kept)-1].Seq)
		s.mu.Lock()
		joined := s.joined
		s.mu.Unlock()
		if len(joined) != 1 || joined[0] != kept[len(kept)-1].Seq {
			t.Fatalf("join after %d: joined with last seq %v, want %d", after, joined, kept[len(kept)-1].Seq)
		}
		live := appendN(t, st, "r", 1)
		hub.Deliver(events(live))
		s.want(t, kept[0].Seq, live[0].Seq)
		sub.Close()
		kept = append(kept, live...)
	}
}
