package chat_test

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/repository/bolt"
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
	if joined := second.joinedSeqs(); len(joined) != 1 || joined[0] != 6 {
		t.Fatalf("second join answered last_seq %v, want 6 (read after it subscribed)", joined)
	}
	second.want(t, 6, 6)
}

// joinedSeqs is the last seqs the sink was told it joined at.
func (s *sink) joinedSeqs() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.joined)
}

// countingRooms counts the saved-state reads a hub's room loader makes.
type countingRooms struct {
	load  func(ctx context.Context, room string) (chat.RoomState, error)
	reads atomic.Int32
}

func (c *countingRooms) RoomState(ctx context.Context, room string) (chat.RoomState, error) {
	c.reads.Add(1)
	return c.load(ctx, room)
}

// TestHubJoinFromView: once an instance follows a room (its view loaded,
// kept up by the fan-out), a join's access check and last seq come from
// memory: a crowd rejoining after their instance died makes no store read
// before "joined", in a private room too. The view refuses what it does not
// know yet (the caller then asks the saved state), and a gap in the
// delivered seqs drops it: the next join loads it again.
func TestHubJoinFromView(t *testing.T) {
	bs, err := bolt.Open(filepath.Join(t.TempDir(), "hub.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bs.Close() })
	st := &slowStore{Store: bs}
	rooms := &countingRooms{load: bs.RoomState}
	hub := chat.NewHub(st, quietLog, nil)
	hub.SetRoomLoader(rooms.RoomState)
	ctx := context.Background()
	now := time.Now()

	// A private room of alice and bob, its state saved as the persist
	// stage saves it, then three messages.
	items, err := bs.Append(ctx, []chat.Message{
		chat.NewItem(chat.Author{Name: "alice"}, "club", "c", chat.ItemData{Action: chat.ActCreate, RoomKind: chat.RoomPrivate}, now),
		chat.NewItem(chat.Author{Name: "alice"}, "club", "a", chat.ItemData{Action: chat.ActAdd, Target: "bob"}, now),
	})
	if err != nil {
		t.Fatal(err)
	}
	state := chat.NewRoomState("club")
	for i := range items {
		state.Apply(&items[i])
	}
	if err := bs.SaveRoomState(ctx, state); err != nil {
		t.Fatal(err)
	}
	hub.Deliver(events(appendN(t, bs, "club", 3))) // seq 3..5, before anyone followed the room

	// The first check loads the view: one saved-state read, one LastSeq.
	if from, _, ok := hub.ReadableFrom(ctx, "bob", "club"); !ok || from != 2 {
		t.Fatalf("bob: from %d, ok %v; want 2 (his add), true", from, ok)
	}
	if _, _, ok := hub.ReadableFrom(ctx, "mallory", "club"); ok {
		t.Fatal("mallory, no member, let in by the view")
	}
	if r, l := rooms.reads.Load(), st.lastSeqs.Load(); r != 1 || l != 1 {
		t.Fatalf("loading the view: %d state reads, %d LastSeq; want 1, 1", r, l)
	}
	hub.Deliver(events(appendN(t, bs, "club", 2))) // seq 6, 7: live, through the view

	// A crowd rejoins from seq 5: no store read before joined, which says 7.
	const n = 50
	sinks := make([]*sink, n)
	var wg sync.WaitGroup
	for i := range n {
		sinks[i] = newSink()
		wg.Go(func() {
			from, _, ok := hub.ReadableFrom(ctx, "bob", "club")
			if !ok {
				t.Error("bob refused by the view")
				return
			}
			sub, err := hub.JoinAs(ctx, chat.JoinRequest{Room: "club", User: "bob", From: from, After: 5, HasAfter: true}, sinks[i])
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(sub.Close)
		})
	}
	wg.Wait()
	if r, l := rooms.reads.Load(), st.lastSeqs.Load(); r != 1 || l != 1 {
		t.Errorf("%d joins from the view: %d state reads, %d LastSeq in all; want still 1, 1", n, r, l)
	}

	for _, s := range sinks {
		if joined := s.joinedSeqs(); len(joined) != 1 || joined[0] != 7 {
			t.Fatalf("joined last_seq %v, want 7 (the view's last)", joined)
		}
		s.want(t, 6, 7)
	}
	// What they missed (6, 7) was delivered here since the view loaded: it
	// was replayed from memory, no history page read.
	if p := st.pages.Load(); p != 0 {
		t.Errorf("%d joins replaying seqs held by the view read %d history pages, want 0", n, p)
	}

	// Mallory's add reaches the view: she is let in from its seq.
	add, err := bs.Append(ctx, []chat.Message{chat.NewItem(chat.Author{Name: "alice"}, "club", "a2", chat.ItemData{Action: chat.ActAdd, Target: "mallory"}, now)})
	if err != nil {
		t.Fatal(err)
	}
	hub.Deliver(events(add))
	if from, _, ok := hub.ReadableFrom(ctx, "mallory", "club"); !ok || from != 8 {
		t.Fatalf("mallory after her add: from %d, ok %v; want 8, true", from, ok)
	}

	// A gap (seq 10 after 8): the view is dropped, the next check loads
	// it again from the store.
	gap := appendN(t, bs, "club", 2)
	hub.Deliver(events(gap[1:]))
	if _, _, ok := hub.ReadableFrom(ctx, "bob", "club"); !ok {
		t.Fatal("bob refused after the view's reload")
	}
	if r, l := rooms.reads.Load(), st.lastSeqs.Load(); r != 2 || l != 2 {
		t.Errorf("after a gap: %d state reads, %d LastSeq; want the view loaded again (2, 2)", r, l)
	}
	late := newSink()
	sub, err := hub.JoinAs(ctx, chat.JoinRequest{Room: "club", User: "bob", From: 2}, late)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if joined := late.joinedSeqs(); len(joined) != 1 || joined[0] != 10 {
		t.Fatalf("joined after the reload: %v, want 10 (the store's last)", joined)
	}
}

// TestHubViewsSwept: a room's view not asked for within ViewIdle is
// dropped unless a local connection follows the room, and the next use
// loads it again; a view in use stays. Views were kept for every room ever
// touched, growing an instance's memory with every room used.
func TestHubViewsSwept(t *testing.T) {
	bs, err := bolt.Open(filepath.Join(t.TempDir(), "hub.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bs.Close() })
	rooms := &countingRooms{load: bs.RoomState}
	hub := chat.NewHub(bs, quietLog, nil)
	hub.SetRoomLoader(rooms.RoomState)
	ctx := context.Background()
	for _, room := range []string{"quiet", "followed"} {
		if err := hub.CheckSend(ctx, "alice", room); err != nil {
			t.Fatalf("%s: %v", room, err)
		}
	}
	if r := rooms.reads.Load(); r != 2 {
		t.Fatalf("%d state reads for two views, want 2", r)
	}
	s := newSink()
	sub, err := hub.JoinAs(ctx, chat.JoinRequest{Room: "followed", User: "bob"}, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)

	if n := hub.SweepViews(time.Now().Add(chat.ViewIdle - time.Minute)); n != 0 {
		t.Fatalf("a sweep within the idle time dropped %d views, want 0", n)
	}
	if n := hub.SweepViews(time.Now().Add(chat.ViewIdle + time.Second)); n != 1 {
		t.Fatalf("the sweep dropped %d views, want 1 (quiet: neither asked for nor followed)", n)
	}
	for _, room := range []string{"quiet", "followed"} {
		_ = hub.CheckSend(ctx, "alice", room)
	}
	if r := rooms.reads.Load(); r != 3 {
		t.Fatalf("%d state reads after the sweep, want 3 (quiet loaded again, followed kept)", r)
	}
}
