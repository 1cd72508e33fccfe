package storetest

import (
	"fmt"
	"maps"
	"sync"
	"testing"

	"github.com/parley-chat/parley/app/chat"
)

// MarkStore is a store with read positions and mentions: what RunMarks
// tests.
type MarkStore interface {
	chat.Store
	chat.Marks
}

// RunMarks runs the contract suite of chat.Marks. newStore must return a
// new, empty store each time, cleaned up by t.Cleanup.
//
// The stores stamp nothing: the items here carry the Events the persist
// stage would have stamped (see timeline), as Append is handed them.
func RunMarks(t *testing.T, newStore func(t *testing.T) MarkStore) {
	t.Run("ReadsOnlyRise", func(t *testing.T) { testReadsOnlyRise(t, newStore(t)) })
	t.Run("RetrySafe", func(t *testing.T) { testMarksRetrySafe(t, newStore(t)) })
	t.Run("MentionsOnce", func(t *testing.T) { testMentionsOnce(t, newStore(t)) })
	t.Run("LargeBatch", func(t *testing.T) { testMarksLargeBatch(t, newStore(t)) })
	t.Run("ConcurrentSaves", func(t *testing.T) { testMarksConcurrent(t, newStore(t)) })
	t.Run("CountsWithEvents", func(t *testing.T) { testCountsWithEvents(t, newStore(t)) })
	t.Run("CountsEdges", func(t *testing.T) { testCountsEdges(t, newStore(t)) })
	t.Run("CountsManyRooms", func(t *testing.T) { testCountsManyRooms(t, newStore(t)) })
	t.Run("CountsReadAboveLast", func(t *testing.T) { testCountsReadAboveLast(t, newStore(t)) })
	t.Run("CountsMentionsAfterRead", func(t *testing.T) { testCountsMentions(t, newStore(t)) })
	t.Run("CountsOthersUnaffected", func(t *testing.T) { testCountsOthers(t, newStore(t)) })
	t.Run("CountsAfterRetention", func(t *testing.T) {
		s := newStore(t)
		sw, ok := s.(chat.Sweeper)
		if !ok {
			// A store that never deletes has every item at its read position.
			t.Skipf("%T is no chat.Sweeper", s)
		}
		testCountsAfterRetention(t, s, sw)
	})
}

// timeline appends to room one item per letter of spec, sent by user: 'm' a
// plain message, 'e' an event (an add of someone), each with ts at and
// stamped with Events as the persist stage stamps it (the room's events up
// to and including the item), counting on from events before. It returns
// the stored items and the room's events after them.
func timeline(t *testing.T, s chat.Store, room, user, spec, at string, events int64) ([]chat.Message, int64) {
	t.Helper()
	last := mustLastSeq(t, s, room)
	in := make([]chat.Message, len(spec))
	for i, c := range spec {
		m := chat.Message{Room: room, ID: fmt.Sprintf("%s-%d", room, last+int64(i)+1), User: user, TS: at}
		switch c {
		case 'm':
			m.Text = "message " + m.ID
		case 'e':
			m.Kind, m.Data = chat.KindMember, &chat.ItemData{Action: chat.ActAdd, Target: "someone-" + m.ID}
			events++
		default:
			t.Fatalf("timeline %q: unknown item %q", spec, c)
		}
		m.Events = events
		in[i] = m
	}
	return mustAppend(t, s, in...), events
}

func saveMarks(t *testing.T, s chat.Marks, reads []chat.ReadMark, mentions []chat.MentionMark) {
	t.Helper()
	if err := s.SaveMarks(t.Context(), reads, mentions); err != nil {
		t.Fatalf("SaveMarks(%v, %v): %v", reads, mentions, err)
	}
}

func read(room, user string, seq int64) chat.ReadMark {
	return chat.ReadMark{Room: room, User: user, Seq: seq}
}

func mention(user, room string, seq int64) chat.MentionMark {
	return chat.MentionMark{User: user, Room: room, Seq: seq}
}

func wantReadSeqs(t *testing.T, s chat.Marks, room string, users []string, want map[string]int64) {
	t.Helper()
	got, err := s.ReadSeqs(t.Context(), room, users)
	if err != nil {
		t.Fatalf("ReadSeqs(%s, %v): %v", room, users, err)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("ReadSeqs(%s, %v) = %v, want %v", room, users, got, want)
	}
}

// counts is one room's expected counts.
type counts struct{ read, unread, mentions int64 }

// wantCounts asks Counts of user for rooms (name -> LastSeq) in one call
// and checks each room's counts. The summaries go in with stale counts, as
// a caller reusing them might pass: Counts must set all three.
func wantCounts(t *testing.T, s chat.Marks, user string, rooms []chat.RoomSummary, want []counts) {
	t.Helper()
	in := make([]chat.RoomSummary, len(rooms))
	for i, r := range rooms {
		in[i] = r
		in[i].ReadSeq, in[i].Unread, in[i].Mentions = 99, 99, 99
	}
	if err := s.Counts(t.Context(), user, in); err != nil {
		t.Fatalf("Counts(%s): %v", user, err)
	}
	for i, r := range in {
		if r.Room != rooms[i].Room || r.LastSeq != rooms[i].LastSeq {
			t.Errorf("Counts(%s) changed room %d to %s at %d", user, i, r.Room, r.LastSeq)
		}
		if got := (counts{r.ReadSeq, r.Unread, r.Mentions}); got != want[i] {
			t.Errorf("Counts(%s) of %s at last seq %d = {read %d, unread %d, mentions %d}, want {read %d, unread %d, mentions %d}",
				user, r.Room, r.LastSeq, got.read, got.unread, got.mentions, want[i].read, want[i].unread, want[i].mentions)
		}
	}
}

func summary(room string, last int64) chat.RoomSummary {
	return chat.RoomSummary{Room: room, LastSeq: last}
}

// testReadsOnlyRise: a read position is created, raised, never lowered,
// whether the lower one comes in a later call or after it in one call.
func testReadsOnlyRise(t *testing.T, s MarkStore) {
	users := []string{"alice", "bob", "carol"}
	wantReadSeqs(t, s, "general", users, map[string]int64{})

	saveMarks(t, s, []chat.ReadMark{read("general", "alice", 5)}, nil)
	wantReadSeqs(t, s, "general", users, map[string]int64{"alice": 5})

	saveMarks(t, s, []chat.ReadMark{read("general", "alice", 3)}, nil)
	wantReadSeqs(t, s, "general", users, map[string]int64{"alice": 5})

	saveMarks(t, s, []chat.ReadMark{read("general", "alice", 7), read("general", "alice", 6), read("general", "bob", 2)}, nil)
	wantReadSeqs(t, s, "general", users, map[string]int64{"alice": 7, "bob": 2})

	// One room's positions are not another's.
	saveMarks(t, s, []chat.ReadMark{read("other", "alice", 1), read("other", "carol", 9)}, nil)
	wantReadSeqs(t, s, "general", users, map[string]int64{"alice": 7, "bob": 2})
	wantReadSeqs(t, s, "other", users, map[string]int64{"alice": 1, "carol": 9})
	wantReadSeqs(t, s, "general", nil, map[string]int64{})
}

// testMarksRetrySafe: the same call twice (the persist stage retrying a
// batch) leaves what one left.
func testMarksRetrySafe(t *testing.T, s MarkStore) {
	mustAppend(t, s, msgs("general", "m", 5)...)
	reads := []chat.ReadMark{read("general", "alice", 2), read("general", "bob", 4)}
	mentions := []chat.MentionMark{mention("alice", "general", 3), mention("alice", "general", 5), mention("bob", "general", 5)}
	for range 2 {
		saveMarks(t, s, reads, mentions)
		wantReadSeqs(t, s, "general", []string{"alice", "bob"}, map[string]int64{"alice": 2, "bob": 4})
		wantCounts(t, s, "alice", []chat.RoomSummary{summary("general", 5)}, []counts{{2, 3, 2}})
		wantCounts(t, s, "bob", []chat.RoomSummary{summary("general", 5)}, []counts{{4, 1, 1}})
	}
	// Empty calls change nothing and do not fail.
	saveMarks(t, s, nil, nil)
	wantCounts(t, s, "alice", []chat.RoomSummary{summary("general", 5)}, []counts{{2, 3, 2}})
}

// testMentionsOnce: a mention recorded twice, in one call or two, counts
// once.
func testMentionsOnce(t *testing.T, s MarkStore) {
	mustAppend(t, s, msgs("general", "m", 3)...)
	saveMarks(t, s, nil, []chat.MentionMark{mention("alice", "general", 2), mention("alice", "general", 2)})
	saveMarks(t, s, nil, []chat.MentionMark{mention("alice", "general", 2)})
	wantCounts(t, s, "alice", []chat.RoomSummary{summary("general", 3)}, []counts{{0, 3, 1}})
}

// testMarksLargeBatch: a batch's worth of marks (more than a store may
// write at once) is saved whole.
func testMarksLargeBatch(t *testing.T, s MarkStore) {
	const n = 150
	mustAppend(t, s, msgs("general", "m", n)...)
	var reads []chat.ReadMark
	var mentions []chat.MentionMark
	users := make([]string, n)
	want := map[string]int64{}
	for i := range n {
		users[i] = fmt.Sprintf("user-%03d", i)
		reads = append(reads, read("general", users[i], int64(i+1)))
		mentions = append(mentions, mention("alice", "general", int64(i+1)))
		want[users[i]] = int64(i + 1)
	}
	saveMarks(t, s, reads, mentions)
	wantReadSeqs(t, s, "general", users, want)
	wantCounts(t, s, "alice", []chat.RoomSummary{summary("general", n)}, []counts{{0, n, n}})
}

// testMarksConcurrent: saves racing on the same new position and mention
// (two persist stages holding one room's records for a moment) all
// succeed, keep the highest position and record the mention once.
func testMarksConcurrent(t *testing.T, s MarkStore) {
	const writers = 8
	mustAppend(t, s, msgs("general", "m", writers)...)
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() {
			errs[i] = s.SaveMarks(t.Context(),
				[]chat.ReadMark{read("general", "alice", int64(i+1)), read("general", "bob", 1)},
				[]chat.MentionMark{mention("bob", "general", 5)})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("SaveMarks of writer %d: %v", i, err)
		}
	}
	wantReadSeqs(t, s, "general", []string{"alice", "bob"}, map[string]int64{"alice": writers, "bob": 1})
	wantCounts(t, s, "bob", []chat.RoomSummary{summary("general", writers)}, []counts{{1, writers - 1, 1}})
}

// testCountsWithEvents: Unread counts the plain messages after the read
// position, not the events, wherever the position is: on a message, on an
// event, before or after runs of either.
func testCountsWithEvents(t *testing.T, s MarkStore) {
	// seq:     1  2  3  4  5  6  7  8
	// item:    m  m  e  m  m  e  e  m
	// Events:  0  0  1  1  1  2  3  3
	items, _ := timeline(t, s, "general", "zed", "mmemmeem", ts, 0)
	if got := []int64{items[0].Events, items[2].Events, items[7].Events}; got[0] != 0 || got[1] != 1 || got[2] != 3 {
		t.Fatalf("Append lost the Events stamps: %v", got)
	}
	unread := map[int64]int64{0: 5, 1: 4, 2: 3, 3: 3, 4: 2, 5: 1, 6: 1, 7: 1, 8: 0}
	var rooms []chat.RoomSummary
	var want []counts
	for r := int64(0); r <= 8; r++ {
		user := fmt.Sprintf("reader-%d", r)
		saveMarks(t, s, []chat.ReadMark{read("general", user, r)}, nil)
		wantCounts(t, s, user, []chat.RoomSummary{summary("general", 8)}, []counts{{r, unread[r], 0}})
		// The same room as of an older LastSeq (a list read before the
		// newest items): counted up to there only.
		if r < 6 {
			wantCounts(t, s, user, []chat.RoomSummary{summary("general", 6)}, []counts{{r, unread[r] - 1, 0}})
		}
		rooms = append(rooms, summary(fmt.Sprintf("room-%d", r), 8))
		want = append(want, counts{r, unread[r], 0})
	}

	// Many rooms in one call, each with its own position: the same
	// timeline in room-0 ... room-8, one user's position r in room-r.
	var reads []chat.ReadMark
	for r := range int64(9) {
		timeline(t, s, fmt.Sprintf("room-%d", r), "zed", "mmemmeem", ts, 0)
		reads = append(reads, read(fmt.Sprintf("room-%d", r), "alice", r))
	}
	saveMarks(t, s, reads, nil)
	wantCounts(t, s, "alice", rooms, want)
}

// testCountsEdges: no read position (ReadSeq 0), a position at LastSeq, a
// room with no items, a room the store never saw.
func testCountsEdges(t *testing.T, s MarkStore) {
	timeline(t, s, "general", "zed", "emmem", ts, 0) // 3 messages
	mustEnsureRoom(t, s, "empty")
	saveMarks(t, s, []chat.ReadMark{read("general", "bob", 5)}, []chat.MentionMark{mention("bob", "general", 4)})
	saveMarks(t, s, nil, []chat.MentionMark{mention("alice", "general", 4)})
	rooms := []chat.RoomSummary{summary("general", 5), summary("empty", 0), summary("unknown", 0)}
	wantCounts(t, s, "alice", rooms, []counts{{0, 3, 1}, {0, 0, 0}, {0, 0, 0}})
	wantCounts(t, s, "bob", rooms, []counts{{5, 0, 0}, {0, 0, 0}, {0, 0, 0}})
	// An empty list is no error.
	wantCounts(t, s, "alice", nil, nil)
	// A LastSeq beyond the stored items (a caller's guess, or items not
	// yet visible to it): counted up to the last one stored.
	wantCounts(t, s, "alice", []chat.RoomSummary{summary("general", 9)}, []counts{{0, 3, 1}})
	saveMarks(t, s, []chat.ReadMark{read("general", "alice", 2)}, nil)
	wantCounts(t, s, "alice", []chat.RoomSummary{summary("general", 9)}, []counts{{2, 2, 1}})
}

// testCountsManyRooms: a list of more rooms than a store may count at once,
// each with its own position and mentions, in one call.
func testCountsManyRooms(t *testing.T, s MarkStore) {
	const n = 130
	var rooms []chat.RoomSummary
	var want []counts
	var reads []chat.ReadMark
	var mentions []chat.MentionMark
	for i := range n {
		name := fmt.Sprintf("room-%03d", i)
		timeline(t, s, name, "zed", "mem", ts, 0) // 1 m, 2 e, 3 m
		r := int64(i % 4)
		if r > 0 {
			reads = append(reads, read(name, "alice", r))
		}
		if i%3 == 0 {
			mentions = append(mentions, mention("alice", name, 3))
		}
		c := counts{read: min(r, 3)}
		switch {
		case r == 0:
			c.unread = 2
		case r < 3:
			c.unread = 1
		}
		if i%3 == 0 && r < 3 {
			c.mentions = 1
		}
		rooms = append(rooms, summary(name, 3))
		want = append(want, c)
	}
	saveMarks(t, s, reads, mentions)
	wantCounts(t, s, "alice", rooms, want)
}

// testCountsReadAboveLast: a position above the LastSeq the caller passes
// (read later than the list, or a position saved beyond the items) is
// reported as LastSeq, with nothing unread.
func testCountsReadAboveLast(t *testing.T, s MarkStore) {
	timeline(t, s, "general", "zed", "mmmm", ts, 0)
	saveMarks(t, s, []chat.ReadMark{read("general", "alice", 9)}, []chat.MentionMark{mention("alice", "general", 3)})
	wantCounts(t, s, "alice", []chat.RoomSummary{summary("general", 4)}, []counts{{4, 0, 0}})
	wantCounts(t, s, "alice", []chat.RoomSummary{summary("general", 2)}, []counts{{2, 0, 0}})
}

// testCountsMentions: only the mentions after the read position up to
// LastSeq count, and only the user's in that room.
func testCountsMentions(t *testing.T, s MarkStore) {
	timeline(t, s, "general", "zed", "mmmmmmmm", ts, 0)
	timeline(t, s, "other", "zed", "mmmm", ts, 0)
	saveMarks(t, s, nil, []chat.MentionMark{
		mention("alice", "general", 2), mention("alice", "general", 4), mention("alice", "general", 5),
		mention("alice", "general", 8),
		mention("bob", "general", 6), mention("alice", "other", 3),
		// A user whose name is alice's with more after it: no prefix match.
		mention("alicex", "general", 7),
	})
	for _, c := range []struct {
		read, last int64
		want       counts
	}{
		{0, 8, counts{0, 8, 4}},
		{2, 8, counts{2, 6, 3}}, // the mention at the read position is read
		{4, 8, counts{4, 4, 2}},
		{5, 8, counts{5, 3, 1}},
		{5, 7, counts{5, 2, 0}}, // the one at 8 lies beyond LastSeq
		{8, 8, counts{8, 0, 0}},
	} {
		// One user: the positions rise case by case.
		saveMarks(t, s, []chat.ReadMark{read("general", "alice", c.read)}, nil)
		wantCounts(t, s, "alice", []chat.RoomSummary{summary("general", c.last), summary("other", 4)},
			[]counts{c.want, {0, 4, 1}})
	}
}

// testCountsOthers: one user's positions and mentions leave another's
// counts alone, in the same room and in others.
func testCountsOthers(t *testing.T, s MarkStore) {
	timeline(t, s, "a", "zed", "mmemm", ts, 0)
	timeline(t, s, "b", "zed", "mmm", ts, 0)
	saveMarks(t, s,
		[]chat.ReadMark{read("a", "alice", 5), read("b", "alice", 2), read("a", "bob", 1)},
		[]chat.MentionMark{mention("alice", "b", 3), mention("bob", "a", 4), mention("bob", "b", 3)})
	rooms := []chat.RoomSummary{summary("a", 5), summary("b", 3)}
	wantCounts(t, s, "alice", rooms, []counts{{5, 0, 0}, {2, 1, 1}})
	wantCounts(t, s, "bob", rooms, []counts{{1, 3, 1}, {0, 3, 1}})
	wantCounts(t, s, "carol", rooms, []counts{{0, 4, 0}, {0, 3, 0}})
}

// testCountsAfterRetention: when retention has deleted the item at the read
// position (and those around it), the first stored item after it stands
// in, and the deleted ones count as nothing, read or not.
func testCountsAfterRetention(t *testing.T, s MarkStore, sw chat.Sweeper) {
	// seq:     1  2  3  4 | 5  6  7  8
	// item:    m  m  e  m | e  m  e  m   (1..4 old, 5..8 new)
	// Events:  0  0  1  1 | 2  2  3  3
	_, events := timeline(t, s, "general", "zed", "mmem", oldTS, 0)
	timeline(t, s, "general", "zed", "emem", newTS, events)
	timeline(t, s, "kept", "zed", "mmem", newTS, 0)
	saveMarks(t, s, []chat.ReadMark{read("general", "alice", 2), read("general", "bob", 5), read("kept", "alice", 1)}, nil)
	rooms := []chat.RoomSummary{summary("general", 8), summary("kept", 4)}
	wantCounts(t, s, "alice", rooms, []counts{{2, 3, 0}, {1, 2, 0}})
	wantCounts(t, s, "carol", rooms, []counts{{0, 5, 0}, {0, 3, 0}})

	if got := mustSweep(t, sw, cutoff); got != 4 {
		t.Fatalf("Sweep deleted %d items, want 4", got)
	}
	// alice at 2 and carol at 0: the item at 5 (an event) stands in; 6
	// and 8 are unread. bob at 5, which is kept: 6 and 8.
	wantCounts(t, s, "alice", rooms, []counts{{2, 2, 0}, {1, 2, 0}})
	wantCounts(t, s, "carol", rooms, []counts{{0, 2, 0}, {0, 3, 0}})
	wantCounts(t, s, "bob", rooms, []counts{{5, 2, 0}, {0, 3, 0}})

	// Everything deleted: nothing to count, the position still reported.
	timeline(t, s, "gone", "zed", "mm", oldTS, 0)
	saveMarks(t, s, []chat.ReadMark{read("gone", "alice", 1)}, nil)
	mustSweep(t, sw, cutoff)
	wantCounts(t, s, "alice", []chat.RoomSummary{summary("gone", 2)}, []counts{{1, 0, 0}})
	wantCounts(t, s, "carol", []chat.RoomSummary{summary("gone", 2)}, []counts{{0, 0, 0}})
}
