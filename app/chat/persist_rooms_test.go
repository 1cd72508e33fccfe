package chat_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/kafka/membus"
	"github.com/parley-chat/parley/repository/bolt"
)

// roomStore is a store that keeps room states too (both real ones do).
type roomStore interface {
	chat.Store
	chat.RoomStates
}

func runRoomPersister(t *testing.T, bus chat.Bus, st roomStore) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	p := &chat.Persister{Bus: bus, Store: st, Rooms: st, TopicSend: chat.DefaultTopicSend, TopicReceive: chat.DefaultTopicReceive, Log: quietLog}
	go func() { p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func publishItems(t *testing.T, bus chat.Bus, ms ...chat.Message) {
	t.Helper()
	for _, m := range ms {
		if err := bus.Publish(context.Background(), chat.DefaultTopicSend, chat.Record{Key: []byte(m.Room), Value: chat.Encode(m)}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPersisterDecidesAtTheLog: a message accepted by an instance that did
// not yet know of its author's ban is refused by the persist stage — not
// stored, no seq — and its sender is told with a refusal record; the items
// around it are stored in order. A redelivered item is not decided again.
func TestPersisterDecidesAtTheLog(t *testing.T) {
	bus := membus.New(membus.Options{})
	defer bus.Close()
	st := openStore(t).(roomStore)
	runRoomPersister(t, bus, st)
	now := time.Now()
	alice, bob := chat.Author{Name: "alice"}, chat.Author{Name: "bob"}
	ban := chat.NewItem(alice, "p", "i3", chat.ItemData{Action: chat.ActBan, Target: "bob"}, now)
	publishItems(t, bus,
		chat.NewItem(alice, "p", "i1", chat.ItemData{Action: chat.ActCreate, RoomKind: chat.RoomPrivate}, now),
		chat.NewItem(alice, "p", "i2", chat.ItemData{Action: chat.ActAdd, Target: "bob"}, now),
		chat.Message{Room: "p", ID: "b1", User: "bob", Text: "before the ban", TS: chat.Timestamp(now)},
		ban,
		chat.Message{Room: "p", ID: "b2", User: "bob", Text: "after the ban", TS: chat.Timestamp(now)},
		chat.Message{Room: "p", ID: "a1", User: "alice", Text: "bye bob", TS: chat.Timestamp(now)},
		chat.Message{Room: "p", ID: "c1", User: "carol", Text: "never a member", TS: chat.Timestamp(now)},
		ban, // redelivered: the stored item again, not a refusal
	)
	got := received(t, bus, 8)
	want := []struct {
		id   string
		seq  int64
		kind string
	}{{"i1", 1, "member"}, {"i2", 2, "member"}, {"b1", 3, ""}, {"i3", 4, "member"}, {"b2", 0, "refusal"}, {"a1", 5, ""}, {"c1", 0, "refusal"}, {"i3", 4, "member"}}
	for i, w := range want {
		m := got[i]
		if m.ID != w.id || m.Seq != w.seq || m.Kind != w.kind {
			t.Fatalf("receive record %d: %+v, want %+v", i, m, w)
		}
	}
	if code := got[4].Data.Code; code != chat.ENotFound {
		t.Fatalf("a removed member's message is refused as for a non-member: %q", code)
	}
	_ = bob
	page, err := st.Messages(context.Background(), "p", chat.Query{Kind: chat.After, Limit: 50})
	if err != nil || len(page.Messages) != 5 {
		t.Fatalf("stored %+v %v", page.Messages, err)
	}
	saved, err := st.RoomState(context.Background(), "p")
	if err != nil || saved.Seq < 4 || saved.IsMember("bob") || !saved.Banned("bob", now) {
		t.Fatalf("saved state %+v %v", saved, err)
	}
}

// TestHubEndsTheRemovedMembersSubscription: live and in replay, the item
// that removes a subscription's user is its last, followed by Left.
func TestHubEndsTheRemovedMembersSubscription(t *testing.T) {
	st := openStore(t)
	now := time.Now()
	alice := chat.Author{Name: "alice"}
	items := []chat.Message{
		chat.NewItem(alice, "p", "i1", chat.ItemData{Action: chat.ActCreate, RoomKind: chat.RoomPrivate}, now),
		chat.NewItem(alice, "p", "i2", chat.ItemData{Action: chat.ActAdd, Target: "bob"}, now),
		{Room: "p", ID: "a1", User: "alice", Text: "one", TS: chat.Timestamp(now)},
		chat.NewItem(alice, "p", "i3", chat.ItemData{Action: chat.ActRemove, Target: "bob"}, now),
		{Room: "p", ID: "a2", User: "alice", Text: "bob is gone", TS: chat.Timestamp(now)},
	}
	stored, err := st.Append(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	hub := chat.NewHub(st, quietLog, nil)

	// Replay: bob resumes from before his removal.
	replay := newLeaveSink()
	sub, err := hub.JoinAs(context.Background(), chat.JoinRequest{Room: "p", User: "bob", From: 2, HasAfter: true}, replay)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if got := replay.wait(t); got != "i2,a1,i3,left:removed" {
		t.Fatalf("replay got %s", got)
	}

	// Live: alice's subscription goes on; bob's ends at the removal.
	hub2 := chat.NewHub(st, quietLog, nil)
	live := newLeaveSink()
	lsub, err := hub2.JoinAs(context.Background(), chat.JoinRequest{Room: "p", User: "bob", From: 2, After: 3, HasAfter: true}, live)
	if err != nil {
		t.Fatal(err)
	}
	defer lsub.Close()
	alices := newLeaveSink()
	asub, _ := hub2.JoinAs(context.Background(), chat.JoinRequest{Room: "p", User: "alice", After: 3, HasAfter: true}, alices)
	defer asub.Close()
	hub2.Deliver(events(stored[3:]))
	if got := live.wait(t); got != "i3,left:removed" {
		t.Fatalf("live got %s", got)
	}
	if got := alices.waitN(t, 2); got != "i3,a2" {
		t.Fatalf("alice got %s", got)
	}
	if !lsub.Ended() || asub.Ended() {
		t.Fatal("Ended")
	}
}

// TestHubOldRemovalDoesNotEndReAdded: bob was removed and added again, and
// let in by a state that holds his re-add (Decided). His removal, delivered
// again (a persist stage republishing what it had stored before a crash) or
// replayed from before his return (a ban and unban in a public room), must
// not end his subscription: it did end it before this rule, and the chaos
// test's client, told "left", stopped expecting a room it was a member of.
// A removal after the deciding state still ends it.
func TestHubOldRemovalDoesNotEndReAdded(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	now := time.Now()
	alice := chat.Author{Name: "alice"}
	stored, err := st.Append(ctx, []chat.Message{
		chat.NewItem(alice, "p", "i1", chat.ItemData{Action: chat.ActCreate, RoomKind: chat.RoomPrivate}, now),
		chat.NewItem(alice, "p", "i2", chat.ItemData{Action: chat.ActAdd, Target: "bob"}, now),
		chat.NewItem(alice, "p", "i3", chat.ItemData{Action: chat.ActRemove, Target: "bob"}, now),
		chat.NewItem(alice, "p", "i4", chat.ItemData{Action: chat.ActAdd, Target: "bob"}, now),
		{Room: "p", ID: "a1", User: "alice", Text: "welcome back", TS: chat.Timestamp(now)},
	})
	if err != nil {
		t.Fatal(err)
	}
	hub := chat.NewHub(st, quietLog, nil)
	live := newLeaveSink()
	sub, err := hub.JoinAs(ctx, chat.JoinRequest{Room: "p", User: "bob", From: 4, Decided: 4, After: 5, HasAfter: true}, live)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	hub.Deliver(events(stored[2:3])) // the removal at seq 3, again
	more, err := st.Append(ctx, []chat.Message{{Room: "p", ID: "a2", User: "alice", Text: "still here?", TS: chat.Timestamp(now)}})
	if err != nil {
		t.Fatal(err)
	}
	hub.Deliver(events(more))
	if got := live.waitN(t, 1); got != "a2" || sub.Ended() {
		t.Fatalf("after his old removal came again: got %s, ended %v; want a2, not ended", got, sub.Ended())
	}
	gone, err := st.Append(ctx, []chat.Message{chat.NewItem(alice, "p", "i5", chat.ItemData{Action: chat.ActRemove, Target: "bob"}, now)})
	if err != nil {
		t.Fatal(err)
	}
	hub.Deliver(events(gone))
	if got := live.wait(t); got != "a2,i5,left:removed" || !sub.Ended() {
		t.Fatalf("a new removal: got %s, ended %v", got, sub.Ended())
	}

	// Replay: carol was banned and unbanned in a public room; resuming from
	// before the ban, she is let in by the state after the unban.
	pub, err := st.Append(ctx, []chat.Message{
		chat.NewItem(alice, "q", "j1", chat.ItemData{Action: chat.ActCreate, RoomKind: chat.RoomPublic}, now),
		{Room: "q", ID: "c1", User: "carol", Text: "hi", TS: chat.Timestamp(now)},
		chat.NewItem(alice, "q", "j2", chat.ItemData{Action: chat.ActBan, Target: "carol"}, now),
		chat.NewItem(alice, "q", "j3", chat.ItemData{Action: chat.ActUnban, Target: "carol"}, now),
		{Room: "q", ID: "a3", User: "alice", Text: "carol is back", TS: chat.Timestamp(now)},
	})
	if err != nil {
		t.Fatal(err)
	}
	replay := newLeaveSink()
	rsub, err := hub.JoinAs(ctx, chat.JoinRequest{Room: "q", User: "carol", From: 1, Decided: pub[3].Seq, After: 2, HasAfter: true}, replay)
	if err != nil {
		t.Fatal(err)
	}
	defer rsub.Close()
	if got := replay.waitN(t, 3); got != "j2,j3,a3" || rsub.Ended() {
		t.Fatalf("replay across her ban and unban: got %s, ended %v", got, rsub.Ended())
	}
}

// leaveSink records the ids it is handed and "left:<reason>".
type leaveSink struct {
	mu  sync.Mutex
	got []string
}

func newLeaveSink() *leaveSink { return &leaveSink{} }

func (s *leaveSink) add(v string) {
	s.mu.Lock()
	s.got = append(s.got, v)
	s.mu.Unlock()
}

func (s *leaveSink) Joined(context.Context, string, int64) error { return nil }
func (s *leaveSink) Deliver(ev *chat.Event) bool                 { s.add(ev.Msg.ID); return true }
func (s *leaveSink) Replay(_ context.Context, ev *chat.Event) error {
	s.add(ev.Msg.ID)
	return nil
}
func (s *leaveSink) Left(_, reason string) { s.add("left:" + reason) }

// wait waits for a left, then a moment more (anything after it would show).
func (s *leaveSink) wait(t *testing.T) string {
	t.Helper()
	return s.until(t, func(got []string) bool { return len(got) > 0 && strings.HasPrefix(got[len(got)-1], "left:") })
}

func (s *leaveSink) waitN(t *testing.T, n int) string {
	t.Helper()
	return s.until(t, func(got []string) bool { return len(got) >= n })
}

func (s *leaveSink) until(t *testing.T, done func([]string) bool) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		ok := done(s.got)
		s.mu.Unlock()
		if ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.got, ",")
}

// refusalSink records the refusals a hub hands a user's connection.
type refusalSink struct{ got chan string }

func (s refusalSink) Refused(room, id string, e *chat.Error) {
	s.got <- room + "/" + id + ":" + e.Code + ":" + e.Key + ":" + strings.Join(e.Params, "|")
}
func (s refusalSink) Membership(room, action string, seq int64) {
	s.got <- fmt.Sprintf("%s/%s@%d", room, action, seq)
}
func (s refusalSink) Read(room string, seq int64) { s.got <- fmt.Sprintf("%s/read@%d", room, seq) }
func (s refusalSink) Notified(n *chat.Notification) {
	s.got <- fmt.Sprintf("%s/notified@%d:%s", n.Room, n.Seq, n.User)
}

// TestRefusalReachesTheSender: the persist stage's refusal travels the
// receive topic like an item, and every instance's fan-out hands it to the
// sender's connections there (and to a request waiting for it), in order
// with the items around it.
func TestRefusalReachesTheSender(t *testing.T) {
	bus := membus.New(membus.Options{})
	defer bus.Close()
	st := openStore(t).(roomStore)
	runRoomPersister(t, bus, st)
	hub := chat.NewHub(st, quietLog, nil)
	hub.SetRoomLoader(st.RoomState)
	f := &chat.Fanout{Bus: bus, Topic: chat.DefaultTopicReceive, Group: chat.GroupFanoutPrefix + "t", Hub: hub, Log: quietLog}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for !f.Ready() {
		time.Sleep(5 * time.Millisecond)
	}
	bobs := refusalSink{got: make(chan string, 4)}
	defer hub.Connect("bob", bobs)()
	wait, stop := hub.Await("p", "bob", "b1")
	defer stop()
	// The accepting instance's copy of the room, loaded before it exists.
	if err := hub.CheckSend(context.Background(), "bob", "p"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	alice := chat.Author{Name: "alice"}
	publishItems(t, bus,
		chat.NewItem(alice, "p", "i1", chat.ItemData{Action: chat.ActCreate, RoomKind: chat.RoomPublic}, now),
		chat.NewItem(alice, "p", "i2", chat.ItemData{Action: chat.ActMute, Target: "bob", Until: chat.Timestamp(now.Add(time.Hour))}, now),
		chat.Message{Room: "p", ID: "b1", User: "bob", Text: "muted?", TS: chat.Timestamp(now)},
	)
	// The refusal keeps its key and parameters across the bus, for the
	// sender's translation.
	muted := "p/b1:forbidden:you are muted in this room until %s:" + chat.Timestamp(now.Add(time.Hour))
	for _, want := range []string{"p/mute@2", muted} {
		select {
		case got := <-bobs.got:
			if got != want {
				t.Fatalf("bob's connection got %s, want %s", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s did not reach bob", want)
		}
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	if _, err := wait(wctx); chat.ErrorCode(err) != chat.EForbidden {
		t.Fatalf("the waiter got %v", err)
	} else if key, params := chat.ErrorKey(err); key != "you are muted in this room until %s" || len(params) != 1 {
		t.Fatalf("the waiter's error has key %q params %q", key, params)
	}
	// That copy knows the mute now: its fan-out folded it in.
	if err := hub.CheckSend(context.Background(), "bob", "p"); chat.ErrorCode(err) != chat.EForbidden {
		t.Fatalf("CheckSend after the mute: %v", err)
	}
}

// TestPersisterSavesLaggingStates: a room where only plain messages come has
// its state saved now and then beside the batches (bounding what a load
// folds), without waiting for a membership change.
func TestPersisterSavesLaggingStates(t *testing.T) {
	bus := membus.New(membus.Options{})
	defer bus.Close()
	st := openStore(t).(roomStore)
	runRoomPersister(t, bus, st)
	now := chat.Timestamp(time.Now())
	var ms []chat.Message
	for i := range 1200 {
		ms = append(ms, chat.Message{Room: "busy", ID: fmt.Sprintf("m%d", i), User: "alice", Text: "hi", TS: now})
	}
	publishItems(t, bus, ms...)
	received(t, bus, 1200)
	deadline := time.Now().Add(5 * time.Second)
	for {
		saved, err := st.RoomState(context.Background(), "busy")
		if err != nil {
			t.Fatal(err)
		}
		if saved.Seq >= 700 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("saved state at seq %d after 1,200 messages", saved.Seq)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPersisterSavesWhatItFoldsOnLoad: items stored beyond the saved state
// (by an instance that died before saving it) are saved with the next
// batch, so that access checks, which read the saved state, see them.
func TestPersisterSavesWhatItFoldsOnLoad(t *testing.T) {
	bus := membus.New(membus.Options{})
	defer bus.Close()
	st := openStore(t).(roomStore)
	now := time.Now()
	alice := chat.Author{Name: "alice"}
	if _, err := st.Append(context.Background(), []chat.Message{
		chat.NewItem(alice, "p", "i1", chat.ItemData{Action: chat.ActCreate, RoomKind: chat.RoomPrivate}, now),
		chat.NewItem(alice, "p", "i2", chat.ItemData{Action: chat.ActAdd, Target: "bob"}, now),
	}); err != nil {
		t.Fatal(err)
	}
	runRoomPersister(t, bus, st)
	publishItems(t, bus, chat.Message{Room: "p", ID: "a1", User: "alice", Text: "hi", TS: chat.Timestamp(now)})
	received(t, bus, 1)
	saved, err := st.RoomState(context.Background(), "p")
	if err != nil || !saved.IsMember("bob") || saved.Seq != 3 {
		t.Fatalf("saved state %+v %v", saved, err)
	}
}

// countingStore counts the store's reads the persist stage makes, and looks
// refused items up many at once (as the MongoDB store does).
type countingStore struct {
	roomStore
	messages, finds, findAlls, keys atomic.Int32
}

func (s *countingStore) Messages(ctx context.Context, room string, q chat.Query) (chat.Page, error) {
	s.messages.Add(1)
	return s.roomStore.Messages(ctx, room, q)
}

func (s *countingStore) Find(ctx context.Context, room, user, id string) (chat.Message, bool, error) {
	s.finds.Add(1)
	return s.roomStore.Find(ctx, room, user, id)
}

func (s *countingStore) FindAll(ctx context.Context, room string, keys []chat.ItemKey) (map[chat.ItemKey]chat.Message, error) {
	s.findAlls.Add(1)
	s.keys.Add(int32(len(keys)))
	out := map[chat.ItemKey]chat.Message{}
	for _, k := range keys {
		m, ok, err := s.roomStore.Find(ctx, room, k.User, k.ID)
		if err != nil {
			return nil, err
		}
		if ok {
			out[k] = m
		}
	}
	return out, nil
}

// TestPersisterReadsTargetsOnce: a batch of lifecycle items about messages
// the stage's cache does not know (a fresh start) reads their targets with
// one store query, not one each, and looks its refused items up with one
// query per room; the decisions are the same as one by one: a reaction to
// a message deleted earlier in the batch is refused, and the redelivery of
// one stored before the delete is the stored item again, not a refusal.
func TestPersisterReadsTargetsOnce(t *testing.T) {
	bus := membus.New(membus.Options{})
	defer bus.Close()
	inner := openStore(t).(roomStore)
	now := time.Now()
	var plain []chat.Message
	for i := 1; i <= 30; i++ {
		plain = append(plain, chat.Message{Room: "r", ID: fmt.Sprintf("m%d", i), User: "alice", Text: "hi", TS: chat.Timestamp(now)})
	}
	if _, err := inner.Append(context.Background(), plain); err != nil {
		t.Fatal(err)
	}
	alice, bob := chat.Author{Name: "alice"}, chat.Author{Name: "bob"}
	var items []chat.Message
	for seq := int64(1); seq <= 30; seq++ {
		items = append(items, chat.NewLifecycle(bob, "r", fmt.Sprintf("r%d", seq), chat.KindReaction, seq, "", "👍", true, now))
	}
	items = append(items,
		chat.NewLifecycle(alice, "r", "d5", chat.KindDelete, 5, "", "", false, now),
		chat.NewLifecycle(bob, "r", "late", chat.KindReaction, 5, "", "🎉", true, now),
	)
	publishItems(t, bus, items...)
	st := &countingStore{roomStore: inner}
	runRoomPersister(t, bus, st)
	got := received(t, bus, len(items))
	for i := range 30 {
		if m := got[i]; m.Kind != chat.KindReaction || m.Seq != int64(31+i) {
			t.Fatalf("receive record %d: %+v", i, m)
		}
	}
	if m := got[30]; m.Kind != chat.KindDelete || m.Seq != 61 {
		t.Fatalf("the delete: %+v", m)
	}
	if m := got[31]; m.ID != "late" || m.Kind != "refusal" || m.Data.Code != chat.EConflict {
		t.Fatalf("a reaction to a deleted message: %+v", m)
	}
	// The state's load reads one page (30 items), the targets one more.
	if n := st.messages.Load(); n > 2 {
		t.Fatalf("%d message queries for one batch of 32 lifecycle items", n)
	}
	if st.finds.Load() != 0 || st.findAlls.Load() != 1 || st.keys.Load() != 1 {
		t.Fatalf("refused items looked up with %d finds and %d find-alls of %d keys, want one find-all of 1", st.finds.Load(), st.findAlls.Load(), st.keys.Load())
	}
	// r5 again, after the delete of its target: stored at seq 35 before it.
	publishItems(t, bus, items[4])
	if m := received(t, bus, len(items)+1)[len(items)]; m.ID != "r5" || m.Kind != chat.KindReaction || m.Seq != 35 {
		t.Fatalf("the redelivered reaction: %+v", m)
	}
}

// markCountingStore is the embedded store counting how the persist stage writes
// marks: with the items (AppendMarked) or in a write of their own.
type markCountingStore struct {
	*bolt.Store
	marked, saves          atomic.Int32
	stateSaves, statesSave atomic.Int32
}

func (s *markCountingStore) SaveRoomState(ctx context.Context, st chat.RoomState) error {
	s.stateSaves.Add(1)
	return s.Store.SaveRoomState(ctx, st)
}

func (s *markCountingStore) SaveRoomStates(ctx context.Context, sts []chat.RoomState) error {
	s.statesSave.Add(1)
	return s.Store.SaveRoomStates(ctx, sts)
}

func (s *markCountingStore) AppendMarked(ctx context.Context, msgs []chat.Message) ([]chat.Message, error) {
	s.marked.Add(1)
	return s.Store.AppendMarked(ctx, msgs)
}

func (s *markCountingStore) SaveMarks(ctx context.Context, reads []chat.ReadMark, mentions []chat.MentionMark) error {
	s.saves.Add(1)
	return s.Store.SaveMarks(ctx, reads, mentions)
}

// TestPersisterMarksWithTheItems: on a store that can (the embedded one),
// a batch's items and the marks they make are one write: SaveMarks is left
// to read commands. The marks are those SaveMarks would have written, and a
// read command still moves its reader. A store that is not the stage's
// Marks is not asked to write them.
func TestPersisterMarksWithTheItems(t *testing.T) {
	bs, st, bus, start := markCountingPersister(t)
	start()
	now := chat.Timestamp(time.Now())
	publishItems(t, bus,
		chat.Message{Room: "r", ID: "b1", User: "bob", Text: "first", TS: now},
		chat.Message{Room: "r", ID: "a1", User: "alice", Text: "hello @bob", TS: now},
		chat.Message{Room: "s", ID: "a2", User: "alice", Text: "elsewhere", TS: now},
	)
	received(t, bus, 3)
	if st.marked.Load() == 0 || st.saves.Load() != 0 {
		t.Fatalf("AppendMarked %d times, SaveMarks %d times; want the marks with the items only", st.marked.Load(), st.saves.Load())
	}
	reads, err := st.ReadSeqs(context.Background(), "r", []string{"alice", "bob"})
	if err != nil || reads["alice"] != 2 || reads["bob"] != 1 {
		t.Fatalf("read positions %v (%v), want alice 2, bob 1", reads, err)
	}
	sums := []chat.RoomSummary{{Room: "r", LastSeq: 2}}
	if err := st.Counts(context.Background(), "bob", sums); err != nil || sums[0].Mentions != 1 {
		t.Fatalf("bob's counts %+v (%v), want his mention", sums[0], err)
	}
	publishItems(t, bus, chat.Message{Room: "r", ID: "rd", User: "bob", Kind: chat.KindRead, Data: &chat.ItemData{Seq: 2}, TS: now})
	received(t, bus, 4)
	// The marks are saved beside the publish: wait for them.
	waitRead(t, bs, "r", "bob", 2)
	if st.saves.Load() != 1 {
		t.Fatalf("SaveMarks %d times after a read command, want 1", st.saves.Load())
	}

	// Marks elsewhere than the store: the items are appended plainly and
	// their marks saved where the stage's Marks is.
	other, err := bolt.Open(filepath.Join(t.TempDir(), "marks.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	bus2 := membus.New(membus.Options{})
	defer bus2.Close()
	st2 := &markCountingStore{Store: other}
	p2 := &chat.Persister{Bus: bus2, Store: bs, Rooms: bs, Marks: st2, TopicSend: chat.DefaultTopicSend, TopicReceive: chat.DefaultTopicReceive, Log: quietLog}
	ctx, cancel := context.WithCancel(context.Background())
	done2 := make(chan struct{})
	go func() { p2.Run(ctx); close(done2) }()
	defer func() { cancel(); <-done2 }()
	publishItems(t, bus2, chat.Message{Room: "t", ID: "c1", User: "carol", Text: "hi", TS: now})
	received(t, bus2, 1)
	waitRead(t, other, "t", "carol", 1)
	if st2.saves.Load() != 1 || st2.marked.Load() != 0 {
		t.Fatalf("on the stage's Marks: SaveMarks %d times, AppendMarked %d; want 1, 0", st2.saves.Load(), st2.marked.Load())
	}
	if reads, _ := bs.ReadSeqs(context.Background(), "t", []string{"carol"}); len(reads) != 0 {
		t.Fatalf("carol's read position %v in the store that is not the stage's Marks", reads)
	}
}

// waitRead waits up to 5 s for user's read position in room to be seq.
func waitRead(t *testing.T, m chat.Marks, room, user string, seq int64) {
	t.Helper()
	var reads map[string]int64
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
		var err error
		if reads, err = m.ReadSeqs(context.Background(), room, []string{user}); err == nil && reads[user] == seq {
			return
		}
	}
	t.Fatalf("%s's read position in %s: %v, want %d", user, room, reads, seq)
}

// TestPersisterSavesNewRoomsTogether: a batch that brings several rooms into
// being saves their states in one write (SaveRoomStates), before their items
// are republished: a client that saw an item finds the room's state.
func TestPersisterSavesNewRoomsTogether(t *testing.T) {
	bs, st, bus, start := markCountingPersister(t)
	// Published before the stage starts, so that they are one batch.
	now := chat.Timestamp(time.Now())
	rooms := []string{"one", "two", "three", "four"}
	for _, r := range rooms {
		publishItems(t, bus, chat.Message{Room: r, ID: "m-" + r, User: "u-" + r, Text: "first", TS: now})
	}
	start()
	received(t, bus, len(rooms))
	if st.statesSave.Load() != 1 || st.stateSaves.Load() != 0 {
		t.Fatalf("SaveRoomStates %d times, SaveRoomState %d times; want the %d new rooms saved in one write", st.statesSave.Load(), st.stateSaves.Load(), len(rooms))
	}
	for _, r := range rooms {
		saved, err := bs.RoomState(context.Background(), r)
		if err != nil || saved.Seq != 1 || saved.Kind != chat.RoomPublic || !saved.IsMember("u-"+r) {
			t.Fatalf("saved state of %s: %+v (%v), want public at seq 1 with its sender", r, saved, err)
		}
	}
}

// markCountingPersister is a persist stage on a markCountingStore over a
// fresh embedded store (returned too) and an in-process bus; start runs it
// until the test ends.
func markCountingPersister(t *testing.T) (*bolt.Store, *markCountingStore, chat.Bus, func()) {
	bs, err := bolt.Open(filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bs.Close() })
	st := &markCountingStore{Store: bs}
	bus := membus.New(membus.Options{})
	t.Cleanup(func() { bus.Close() })
	p := &chat.Persister{Bus: bus, Store: st, Rooms: st, Marks: st, TopicSend: chat.DefaultTopicSend, TopicReceive: chat.DefaultTopicReceive, Log: quietLog}
	start := func() {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { p.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	return bs, st, bus, start
}
