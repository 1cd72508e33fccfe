// Package storetest is the contract test suite of chat.Store. Every Store
// implementation runs the same Run from its own tests, so the embedded store
// and MongoDB are held to one behaviour: the one documented on chat.Store.
// Nothing here depends on how a store keeps its data.
package storetest

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
)

// Run runs the suite. newStore must return a new, empty store each time it is
// called and register its own cleanup (closing it, dropping its database)
// with t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) chat.Store) {
	t.Run("Append", func(t *testing.T) {
		t.Run("SeqFromOneGapless", func(t *testing.T) { testSeqFromOne(t, newStore(t)) })
		t.Run("BatchInInputOrder", func(t *testing.T) { testBatchOrder(t, newStore(t)) })
		t.Run("RoomsIndependent", func(t *testing.T) { testRoomsIndependent(t, newStore(t)) })
		t.Run("EmptyBatch", func(t *testing.T) { testEmptyBatch(t, newStore(t)) })
		t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, newStore(t)) })
		t.Run("StampsRoundTrip", func(t *testing.T) { testStampsRoundTrip(t, newStore(t)) })
	})
	t.Run("Idempotency", func(t *testing.T) {
		t.Run("LaterBatch", func(t *testing.T) { testDuplicateLaterBatch(t, newStore(t)) })
		t.Run("SameBatch", func(t *testing.T) { testDuplicateSameBatch(t, newStore(t)) })
		t.Run("SameIDOtherRoom", func(t *testing.T) { testSameIDOtherRoom(t, newStore(t)) })
		t.Run("SameIDOtherUser", func(t *testing.T) { testSameIDOtherUser(t, newStore(t)) })
		t.Run("SameIDOtherUserLater", func(t *testing.T) { testSameIDOtherUserLater(t, newStore(t)) })
		t.Run("SameUserTwice", func(t *testing.T) { testSameUserTwice(t, newStore(t)) })
		t.Run("MixedBatch", func(t *testing.T) { testMixedUsersBatch(t, newStore(t)) })
		t.Run("RejectsEmptyKeys", func(t *testing.T) { testRejectsEmptyKeys(t, newStore(t)) })
	})
	t.Run("Messages", func(t *testing.T) {
		t.Run("UnknownRoom", func(t *testing.T) { testUnknownRoom(t, newStore(t)) })
		t.Run("Latest", func(t *testing.T) { testLatest(t, newStore(t)) })
		t.Run("Before", func(t *testing.T) { testBefore(t, newStore(t)) })
		t.Run("After", func(t *testing.T) { testAfter(t, newStore(t)) })
		t.Run("PagingWalk", func(t *testing.T) { testPagingWalk(t, newStore(t)) })
	})
	t.Run("LastSeq", func(t *testing.T) { testLastSeq(t, newStore(t)) })
	t.Run("EnsureRoom", func(t *testing.T) {
		t.Run("Listed", func(t *testing.T) { testEnsureRoomListed(t, newStore(t)) })
		t.Run("Idempotent", func(t *testing.T) { testEnsureRoomIdempotent(t, newStore(t)) })
		t.Run("KeepsHistory", func(t *testing.T) { testEnsureRoomKeepsHistory(t, newStore(t)) })
	})
	t.Run("Rooms", func(t *testing.T) {
		t.Run("Empty", func(t *testing.T) { testRoomsEmpty(t, newStore(t)) })
		t.Run("SortedWithLastSeq", func(t *testing.T) { testRoomsSorted(t, newStore(t)) })
		t.Run("ByteOrder", func(t *testing.T) { testRoomsByteOrder(t, newStore(t)) })
		t.Run("Page", func(t *testing.T) { testRoomsPage(t, newStore(t)) })
		t.Run("EmptyPage", func(t *testing.T) { testRoomsEmptyPage(t, newStore(t)) })
		t.Run("Walk", func(t *testing.T) { testRoomsWalk(t, newStore(t)) })
	})
	t.Run("Concurrent", func(t *testing.T) {
		t.Run("Appends", func(t *testing.T) { testConcurrentAppends(t, newStore(t)) })
		t.Run("Duplicates", func(t *testing.T) { testConcurrentDuplicates(t, newStore(t)) })
		t.Run("DuplicatesOfSeveralUsers", func(t *testing.T) { testConcurrentUsersDuplicates(t, newStore(t)) })
	})
	t.Run("Ping", func(t *testing.T) {
		if err := newStore(t).Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
	t.Run("Retention", func(t *testing.T) {
		// Only for stores that delete (chat.Sweeper); others keep everything.
		sweeper := func(t *testing.T) (chat.Store, chat.Sweeper) {
			st := newStore(t)
			sw, ok := st.(chat.Sweeper)
			if !ok {
				t.Skipf("%T is no chat.Sweeper", st)
			}
			return st, sw
		}
		t.Run("DeletesOld", func(t *testing.T) { testSweepDeletesOld(t, sweeper) })
		t.Run("AllExpired", func(t *testing.T) { testSweepAllExpired(t, sweeper) })
		t.Run("Edge", func(t *testing.T) { testSweepEdge(t, sweeper) })
		t.Run("Idempotency", func(t *testing.T) { testSweepIdempotency(t, sweeper) })
	})
}

// ts is a fixed instant with milliseconds, formatted as the domain formats
// it, so a store that keeps ts as a date still gives back the same string.
var ts = chat.Timestamp(time.Date(2026, 11, 25, 10, 0, 0, 123e6, time.UTC))

// msg makes a message of alice as the persist stage hands it to Append: no
// seq yet.
func msg(room, id string) chat.Message { return userMsg(room, "alice", id) }

// userMsg makes a message of user; the text names both user and id, so that
// two users' messages under one id differ.
func userMsg(room, user, id string) chat.Message {
	return chat.Message{Room: room, ID: id, User: user, Text: "text of " + id + " by " + user, TS: ts}
}

// msgs makes n messages in room with ids prefix-1 ... prefix-n.
func msgs(room, prefix string, n int) []chat.Message {
	out := make([]chat.Message, n)
	for i := range out {
		out[i] = msg(room, fmt.Sprintf("%s-%d", prefix, i+1))
	}
	return out
}

// stored is m as the store gives it back: with its seq.
func stored(m chat.Message, seq int64) chat.Message {
	m.Seq = seq
	return m
}

func mustAppend(t *testing.T, s chat.Store, in ...chat.Message) []chat.Message {
	t.Helper()
	out, err := s.Append(t.Context(), in)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if len(out) != len(in) {
		t.Fatalf("Append returned %d messages for %d", len(out), len(in))
	}
	return out
}

// fill appends n messages to room in one batch and returns them as stored.
func fill(t *testing.T, s chat.Store, room string, n int) []chat.Message {
	t.Helper()
	return mustAppend(t, s, msgs(room, room, n)...)
}

func mustMessages(t *testing.T, s chat.Store, room string, q chat.Query) chat.Page {
	t.Helper()
	p, err := s.Messages(t.Context(), room, q)
	if err != nil {
		t.Fatalf("Messages(%s, %+v): %v", room, q, err)
	}
	// A nil slice would reach clients as "messages":null instead of [].
	if p.Messages == nil {
		t.Fatalf("Messages(%s, %+v): Messages is nil, want a non-nil slice", room, q)
	}
	for i := 1; i < len(p.Messages); i++ {
		if p.Messages[i-1].Seq >= p.Messages[i].Seq {
			t.Fatalf("Messages(%s, %+v): not ascending by seq: %v", room, q, seqs(p.Messages))
		}
	}
	return p
}

// history reads a room's whole history, one After page at a time.
func history(t *testing.T, s chat.Store, room string) []chat.Message {
	t.Helper()
	all := []chat.Message{}
	var last int64
	for {
		p := mustMessages(t, s, room, chat.Query{Kind: chat.After, Seq: last, Limit: 200})
		all = append(all, p.Messages...)
		if !p.HasMore || len(p.Messages) == 0 {
			return all
		}
		last = p.Messages[len(p.Messages)-1].Seq
	}
}

func mustLastSeq(t *testing.T, s chat.Store, room string) int64 {
	t.Helper()
	last, err := s.LastSeq(t.Context(), room)
	if err != nil {
		t.Fatalf("LastSeq(%s): %v", room, err)
	}
	return last
}

// mustRoomPage reads one page of the room list and checks what every page
// must be: a non-nil slice of at most q.Limit rooms, strictly ascending in
// byte order, all after q.After.
func mustRoomPage(t *testing.T, s chat.Store, q chat.RoomQuery) chat.RoomPage {
	t.Helper()
	page, err := s.Rooms(t.Context(), q)
	if err != nil {
		t.Fatalf("Rooms(%+v): %v", q, err)
	}
	// A nil slice would reach clients as "rooms":null instead of [].
	if page.Rooms == nil {
		t.Fatalf("Rooms(%+v) returned nil, want a non-nil slice", q)
	}
	if len(page.Rooms) > q.Limit {
		t.Fatalf("Rooms(%+v) returned %d rooms, more than the limit", q, len(page.Rooms))
	}
	for i, r := range page.Rooms {
		if r.Room <= q.After {
			t.Fatalf("Rooms(%+v) returned %q, which does not sort after %q", q, r.Room, q.After)
		}
		if i > 0 && page.Rooms[i-1].Room >= r.Room {
			t.Fatalf("Rooms(%+v): not ascending in byte order: %q then %q", q, page.Rooms[i-1].Room, r.Room)
		}
	}
	return page
}

func mustRooms(t *testing.T, s chat.Store) []chat.RoomInfo {
	t.Helper()
	page := mustRoomPage(t, s, chat.RoomQuery{Limit: 200})
	if page.More {
		t.Fatal("Rooms: more than 200 rooms in a contract test")
	}
	return page.Rooms
}

func seqs(ms []chat.Message) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

func ids(ms []chat.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// seqRange is from, from+1, ..., to; empty when to < from.
func seqRange(from, to int64) []int64 {
	out := []int64{}
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func equalMessages(t *testing.T, what string, got, want []chat.Message) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func testSeqFromOne(t *testing.T, s chat.Store) {
	var got []int64
	for i := range 3 {
		got = append(got, seqs(mustAppend(t, s, msg("general", fmt.Sprint("single-", i))))...)
	}
	got = append(got, seqs(mustAppend(t, s, msgs("general", "batch", 4)...))...)
	if want := seqRange(1, 7); !slices.Equal(got, want) {
		t.Fatalf("seqs = %v, want %v", got, want)
	}
	if got := seqs(history(t, s, "general")); !slices.Equal(got, seqRange(1, 7)) {
		t.Fatalf("stored seqs = %v, want 1..7", got)
	}
}

func testBatchOrder(t *testing.T, s chat.Store) {
	// Ids deliberately not in sorted order: seqs follow the input, not the id.
	in := []chat.Message{msg("general", "c"), msg("general", "a"), msg("general", "e"), msg("general", "b"), msg("general", "d")}
	out := mustAppend(t, s, in...)
	want := make([]chat.Message, len(in))
	for i, m := range in {
		want[i] = stored(m, int64(i+1))
	}
	equalMessages(t, "Append result", out, want)
	equalMessages(t, "history", history(t, s, "general"), want)
}

func testRoomsIndependent(t *testing.T, s chat.Store) {
	// Rooms interleaved inside one batch and across batches.
	out := mustAppend(t, s, msg("a", "a1"), msg("b", "b1"), msg("a", "a2"), msg("c", "c1"), msg("a", "a3"))
	out = append(out, mustAppend(t, s, msg("b", "b2"), msg("a", "a4"))...)
	gotSeqs := map[string]int64{}
	for _, m := range out {
		gotSeqs[m.ID] = m.Seq
	}
	wantSeqs := map[string]int64{"a1": 1, "a2": 2, "a3": 3, "a4": 4, "b1": 1, "b2": 2, "c1": 1}
	for id, want := range wantSeqs {
		if gotSeqs[id] != want {
			t.Errorf("seq of %s = %d, want %d", id, gotSeqs[id], want)
		}
	}
	for room, want := range map[string][]string{"a": {"a1", "a2", "a3", "a4"}, "b": {"b1", "b2"}, "c": {"c1"}} {
		h := history(t, s, room)
		if got := ids(h); !slices.Equal(got, want) {
			t.Errorf("history of %s = %v, want %v", room, got, want)
		}
		for _, m := range h {
			if m.Room != room {
				t.Errorf("history of %s holds a message of room %s", room, m.Room)
			}
		}
		if got := mustLastSeq(t, s, room); got != int64(len(want)) {
			t.Errorf("LastSeq(%s) = %d, want %d", room, got, len(want))
		}
	}
}

func testEmptyBatch(t *testing.T, s chat.Store) {
	out, err := s.Append(t.Context(), nil)
	if err != nil {
		t.Fatalf("Append(nil): %v", err)
	}
	if len(out) != 0 {
		t.Fatalf("Append(nil) = %+v, want no messages", out)
	}
	if got := mustRooms(t, s); len(got) != 0 {
		t.Fatalf("Rooms after an empty Append = %+v, want none", got)
	}
}

func testRoundTrip(t *testing.T, s chat.Store) {
	in := []chat.Message{
		{Room: "general", ID: "9f1c2a7e-0b1d-4c3e-8f00-000000000001", User: "alice", Text: "hello", TS: ts},
		{Room: "general", ID: "utf8", User: "zoë", Text: "naïve café, Größe, Ελληνικά, русский, 中文, 日本語, 한국어", TS: ts},
		{Room: "general", ID: "emoji", User: "名前", Text: "👋🏽 family: 👨‍👩‍👧‍👦 flag: 🇳🇿 heart: ❤️", TS: ts},
		{Room: "general", ID: "rtl_and_combining", User: "مريم", Text: "שלום עולם — e\u0301 a\u0308", TS: ts},
		{Room: "general", ID: "markup", User: "bob.b-b_b", Text: "<script>alert(\"x\")</script> & 'quotes' \\ back\\slash\n\tnew line, tab", TS: ts},
		{Room: "general", ID: "guest", User: "dana", Guest: true, Text: "a guest's message keeps its mark", TS: ts},
		{Room: "general", ID: "longest", User: "carol", Text: strings.Repeat("😀", chat.MaxTextRunes), TS: chat.Timestamp(time.Date(2027, 1, 2, 3, 4, 5, 6e6, time.UTC))},
	}
	want := make([]chat.Message, len(in))
	for i, m := range in {
		want[i] = stored(m, int64(i+1))
	}
	equalMessages(t, "Append result", mustAppend(t, s, in...), want)
	equalMessages(t, "history", history(t, s, "general"), want)
}

// testStampsRoundTrip: the persist stage's stamps, Mentions and Events (the
// latter not on the wire), come back from Append, history and a redelivery,
// which gets the stored ones, not its own.
func testStampsRoundTrip(t *testing.T, s chat.Store) {
	in := []chat.Message{
		{Room: "general", ID: "plain", User: "alice", Text: "no mentions, no events before", TS: ts},
		// Events as if the room's history held three events before.
		{Room: "general", ID: "named", User: "alice", Text: "@bob @zoë look", TS: ts, Mentions: []string{"bob", "zoë"}, Events: 3},
		{Room: "general", ID: "event", User: "alice", TS: ts, Kind: chat.KindMember,
			Data: &chat.ItemData{Action: chat.ActAdd, Target: "bob"}, Events: 4},
		{Room: "general", ID: "after", User: "carol", Text: "@alice", TS: ts, Mentions: []string{"alice"}, Events: 4},
	}
	want := make([]chat.Message, len(in))
	for i, m := range in {
		want[i] = stored(m, int64(i+1))
	}
	equalMessages(t, "Append result", mustAppend(t, s, in...), want)
	equalMessages(t, "history", history(t, s, "general"), want)

	// A redelivery stamped differently (a persist stage that counted
	// otherwise) gets the stored stamps back, and changes none.
	retry := in[1]
	retry.Mentions, retry.Events = []string{"dana"}, 99
	equalMessages(t, "Append result of a redelivery", mustAppend(t, s, retry), want[1:2])
	equalMessages(t, "history after the redelivery", history(t, s, "general"), want)
}

func testDuplicateLaterBatch(t *testing.T, s chat.Store) {
	first := msg("general", "x")
	first.Text = "first"
	mustAppend(t, s, first)

	// The retry comes later, with another text and another ts; the first wins.
	retry := first
	retry.Text = "second"
	retry.TS = chat.Timestamp(time.Date(2026, 11, 25, 10, 0, 5, 0, time.UTC))
	out := mustAppend(t, s, msg("general", "y"), retry, msg("general", "z"))

	// The duplicate takes no seq: y and z are 2 and 3, with no gap.
	want := []chat.Message{stored(msg("general", "y"), 2), stored(first, 1), stored(msg("general", "z"), 3)}
	equalMessages(t, "Append result", out, want)
	equalMessages(t, "history", history(t, s, "general"),
		[]chat.Message{stored(first, 1), stored(msg("general", "y"), 2), stored(msg("general", "z"), 3)})
	if got := mustLastSeq(t, s, "general"); got != 3 {
		t.Fatalf("LastSeq = %d, want 3", got)
	}
}

func testDuplicateSameBatch(t *testing.T, s chat.Store) {
	first := msg("general", "x")
	first.Text = "first"
	retry := first
	retry.Text = "second"
	out := mustAppend(t, s, first, msg("general", "y"), retry, msg("general", "z"))

	want := []chat.Message{stored(first, 1), stored(msg("general", "y"), 2), stored(first, 1), stored(msg("general", "z"), 3)}
	equalMessages(t, "Append result", out, want)
	equalMessages(t, "history", history(t, s, "general"),
		[]chat.Message{stored(first, 1), stored(msg("general", "y"), 2), stored(msg("general", "z"), 3)})
}

func testSameIDOtherRoom(t *testing.T, s chat.Store) {
	a, b := msg("a", "same"), msg("b", "same")
	a.Text, b.Text = "in a", "in b"
	out := mustAppend(t, s, a, b)
	equalMessages(t, "Append result", out, []chat.Message{stored(a, 1), stored(b, 1)})
	equalMessages(t, "history of a", history(t, s, "a"), []chat.Message{stored(a, 1)})
	equalMessages(t, "history of b", history(t, s, "b"), []chat.Message{stored(b, 1)})
}

// testSameIDOtherUser: ids are chosen by clients, so two users can pick the
// same one. The idempotency key is (room, user, id): bob's message under
// alice's id is another message, not a retry of hers. (Keyed on (room, id),
// whoever sent an id first would have made the other's message vanish
// behind an acknowledgement.)
func testSameIDOtherUser(t *testing.T, s chat.Store) {
	a, b := userMsg("general", "alice", "same"), userMsg("general", "bob", "same")
	out := mustAppend(t, s, a, b)
	want := []chat.Message{stored(a, 1), stored(b, 2)}
	equalMessages(t, "Append result", out, want)
	equalMessages(t, "history", history(t, s, "general"), want)
	if got := mustLastSeq(t, s, "general"); got != 2 {
		t.Fatalf("LastSeq = %d, want 2", got)
	}
}

// testSameIDOtherUserLater: the same, with the other user's message coming in
// a later call, after the first one is stored, and next to a retry of it.
func testSameIDOtherUserLater(t *testing.T, s chat.Store) {
	a := userMsg("general", "alice", "same")
	mustAppend(t, s, a, msg("general", "other"))

	b := userMsg("general", "bob", "same")
	retry := a
	retry.Text = "alice again"
	out := mustAppend(t, s, b, retry)
	equalMessages(t, "Append result", out, []chat.Message{stored(b, 3), stored(a, 1)})

	c := userMsg("general", "carol", "same")
	out = mustAppend(t, s, retry, c)
	equalMessages(t, "Append result", out, []chat.Message{stored(a, 1), stored(c, 4)})

	equalMessages(t, "history", history(t, s, "general"),
		[]chat.Message{stored(a, 1), stored(msg("general", "other"), 2), stored(b, 3), stored(c, 4)})
}

// testSameUserTwice: the same user sending the same id in the same room is a
// retry, across calls and within one batch: stored once, first text, one seq.
func testSameUserTwice(t *testing.T, s chat.Store) {
	first := userMsg("general", "bob", "x")
	first.Text = "first"
	again := first
	again.Text = "second"
	out := mustAppend(t, s, first, again)
	equalMessages(t, "Append result", out, []chat.Message{stored(first, 1), stored(first, 1)})

	out = mustAppend(t, s, again, userMsg("general", "bob", "y"), again)
	equalMessages(t, "Append result of the retry", out,
		[]chat.Message{stored(first, 1), stored(userMsg("general", "bob", "y"), 2), stored(first, 1)})
	equalMessages(t, "history", history(t, s, "general"),
		[]chat.Message{stored(first, 1), stored(userMsg("general", "bob", "y"), 2)})
}

// testMixedUsersBatch: one batch with both kinds of repeat: other users under
// one id (new messages) and one user's retries (not new), across two rooms,
// some repeating what an earlier call stored.
func testMixedUsersBatch(t *testing.T, s chat.Store) {
	early := userMsg("general", "carol", "x")
	mustAppend(t, s, early)

	ax, bx, ay := userMsg("general", "alice", "x"), userMsg("general", "bob", "x"), userMsg("general", "alice", "y")
	ox := userMsg("other", "bob", "x")
	retry := func(m chat.Message) chat.Message { m.Text = "retried"; return m }
	out := mustAppend(t, s,
		ax,           // new: 2
		bx,           // new, same id as ax: 3
		retry(ax),    // retry of ax: 2
		retry(early), // retry of the earlier call's message: 1
		ox,           // same user and id as bx, another room: other 1
		ay,           // new: 4
		retry(bx),    // retry of bx: 3
		retry(ox),    // retry of ox: other 1
	)
	equalMessages(t, "Append result", out, []chat.Message{
		stored(ax, 2), stored(bx, 3), stored(ax, 2), stored(early, 1),
		stored(ox, 1), stored(ay, 4), stored(bx, 3), stored(ox, 1),
	})
	equalMessages(t, "history of general", history(t, s, "general"),
		[]chat.Message{stored(early, 1), stored(ax, 2), stored(bx, 3), stored(ay, 4)})
	equalMessages(t, "history of other", history(t, s, "other"), []chat.Message{stored(ox, 1)})
}

// testRejectsEmptyKeys: a message without room, user or id cannot be keyed,
// and a batch holding one stores nothing.
func testRejectsEmptyKeys(t *testing.T, s chat.Store) {
	for name, bad := range map[string]chat.Message{
		"empty room": userMsg("", "alice", "a"),
		"empty user": userMsg("general", "", "a"),
		"empty id":   userMsg("general", "alice", ""),
	} {
		if _, err := s.Append(t.Context(), []chat.Message{bad, msg("general", "ok")}); err == nil {
			t.Errorf("Append of a batch with a message with %s succeeded", name)
		}
	}
	if got := mustLastSeq(t, s, "general"); got != 0 {
		t.Fatalf("LastSeq after rejected batches = %d, want 0", got)
	}
	if got := mustRooms(t, s); len(got) != 0 {
		t.Fatalf("Rooms after rejected batches = %+v, want none", got)
	}
}

func testUnknownRoom(t *testing.T, s chat.Store) {
	fill(t, s, "other", 3)
	for _, q := range []chat.Query{
		{Kind: chat.Latest, Limit: 50},
		{Kind: chat.Before, Seq: 2, Limit: 50},
		{Kind: chat.After, Seq: 0, Limit: 50},
	} {
		p := mustMessages(t, s, "nobody-here", q)
		if len(p.Messages) != 0 || p.HasMore {
			t.Errorf("Messages(%+v) = %+v, want an empty page without more", q, p)
		}
	}
	if got := mustLastSeq(t, s, "nobody-here"); got != 0 {
		t.Errorf("LastSeq = %d, want 0", got)
	}
	// Reading a room is neither joining nor writing to it: it does not exist.
	if got := mustRooms(t, s); !slices.Equal(got, []chat.RoomInfo{{Room: "other", LastSeq: 3}}) {
		t.Errorf("Rooms = %+v, want only other", got)
	}
}

// pageCase is one history query against a room of 10 messages.
type pageCase struct {
	q        chat.Query
	wantSeqs []int64
	wantMore bool
}

func checkPages(t *testing.T, s chat.Store, all []chat.Message, cases []pageCase) {
	t.Helper()
	for _, c := range cases {
		p := mustMessages(t, s, "general", c.q)
		if got := seqs(p.Messages); !slices.Equal(got, c.wantSeqs) || p.HasMore != c.wantMore {
			t.Errorf("Messages(%+v) = seqs %v has_more %v, want %v %v", c.q, got, p.HasMore, c.wantSeqs, c.wantMore)
			continue
		}
		for _, m := range p.Messages {
			if !reflect.DeepEqual(m, all[m.Seq-1]) {
				t.Errorf("Messages(%+v): seq %d = %+v, want %+v", c.q, m.Seq, m, all[m.Seq-1])
			}
		}
	}
}

func testLatest(t *testing.T, s chat.Store) {
	all := fill(t, s, "general", 10)
	fill(t, s, "other", 5)
	latest := func(limit int) chat.Query { return chat.Query{Kind: chat.Latest, Limit: limit} }
	checkPages(t, s, all, []pageCase{
		{latest(1), []int64{10}, true},
		{latest(3), seqRange(8, 10), true},
		{latest(9), seqRange(2, 10), true},
		{latest(10), seqRange(1, 10), false},
		{latest(11), seqRange(1, 10), false},
		{latest(200), seqRange(1, 10), false},
	})
}

func testBefore(t *testing.T, s chat.Store) {
	all := fill(t, s, "general", 10)
	fill(t, s, "other", 5)
	before := func(seq int64, limit int) chat.Query { return chat.Query{Kind: chat.Before, Seq: seq, Limit: limit} }
	checkPages(t, s, all, []pageCase{
		{before(5, 2), []int64{3, 4}, true},
		{before(4, 2), []int64{2, 3}, true},
		{before(3, 2), []int64{1, 2}, false},
		{before(3, 5), []int64{1, 2}, false},
		{before(2, 1), []int64{1}, false},
		{before(10, 3), seqRange(7, 9), true},
		{before(11, 3), seqRange(8, 10), true},
		{before(11, 10), seqRange(1, 10), false},
		// Past the end, Before is the latest page.
		{before(1000, 3), seqRange(8, 10), true},
		{before(1, 50), []int64{}, false},
		{before(0, 50), []int64{}, false},
	})
}

func testAfter(t *testing.T, s chat.Store) {
	all := fill(t, s, "general", 10)
	fill(t, s, "other", 5)
	after := func(seq int64, limit int) chat.Query { return chat.Query{Kind: chat.After, Seq: seq, Limit: limit} }
	checkPages(t, s, all, []pageCase{
		{after(0, 3), []int64{1, 2, 3}, true},
		{after(0, 10), seqRange(1, 10), false},
		{after(0, 200), seqRange(1, 10), false},
		{after(1, 1), []int64{2}, true},
		{after(6, 3), []int64{7, 8, 9}, true},
		{after(7, 3), []int64{8, 9, 10}, false},
		{after(8, 5), []int64{9, 10}, false},
		{after(9, 1), []int64{10}, false},
		{after(10, 50), []int64{}, false},
		{after(1000, 50), []int64{}, false},
	})
}

// testPagingWalk pages through a whole room both ways, as a client scrolling
// would, and must see every message exactly once.
func testPagingWalk(t *testing.T, s chat.Store) {
	all := fill(t, s, "general", 23)
	const limit = 5

	var back []chat.Message
	p := mustMessages(t, s, "general", chat.Query{Kind: chat.Latest, Limit: limit})
	for {
		back = append(slices.Clone(p.Messages), back...)
		if !p.HasMore {
			break
		}
		if len(back) > len(all) {
			t.Fatalf("walking back: HasMore still true after %d messages", len(back))
		}
		p = mustMessages(t, s, "general", chat.Query{Kind: chat.Before, Seq: back[0].Seq, Limit: limit})
	}
	equalMessages(t, "walking back", back, all)

	var fwd []chat.Message
	var last int64
	for {
		p := mustMessages(t, s, "general", chat.Query{Kind: chat.After, Seq: last, Limit: limit})
		fwd = append(fwd, p.Messages...)
		if !p.HasMore {
			break
		}
		if len(fwd) > len(all) {
			t.Fatalf("walking forward: HasMore still true after %d messages", len(fwd))
		}
		last = fwd[len(fwd)-1].Seq
	}
	equalMessages(t, "walking forward", fwd, all)
}

func testLastSeq(t *testing.T, s chat.Store) {
	if got := mustLastSeq(t, s, "general"); got != 0 {
		t.Fatalf("LastSeq of an unknown room = %d, want 0", got)
	}
	fill(t, s, "general", 4)
	fill(t, s, "other", 2)
	mustAppend(t, s, msg("general", "general-1")) // a duplicate takes no seq
	if got := mustLastSeq(t, s, "general"); got != 4 {
		t.Fatalf("LastSeq(general) = %d, want 4", got)
	}
	if got := mustLastSeq(t, s, "other"); got != 2 {
		t.Fatalf("LastSeq(other) = %d, want 2", got)
	}
}

func mustEnsureRoom(t *testing.T, s chat.Store, room string) {
	t.Helper()
	if err := s.EnsureRoom(t.Context(), room); err != nil {
		t.Fatalf("EnsureRoom(%s): %v", room, err)
	}
}

func testEnsureRoomListed(t *testing.T, s chat.Store) {
	mustEnsureRoom(t, s, "lobby")
	if got, want := mustRooms(t, s), []chat.RoomInfo{{Room: "lobby", LastSeq: 0}}; !slices.Equal(got, want) {
		t.Fatalf("Rooms = %+v, want %+v", got, want)
	}
	if got := mustLastSeq(t, s, "lobby"); got != 0 {
		t.Fatalf("LastSeq = %d, want 0", got)
	}
	if p := mustMessages(t, s, "lobby", chat.Query{Kind: chat.Latest, Limit: 50}); len(p.Messages) != 0 || p.HasMore {
		t.Fatalf("Messages = %+v, want an empty page", p)
	}
	// The first message of a room created by a join is still seq 1.
	if out := mustAppend(t, s, msg("lobby", "first")); out[0].Seq != 1 {
		t.Fatalf("first message after EnsureRoom has seq %d, want 1", out[0].Seq)
	}
}

func testEnsureRoomIdempotent(t *testing.T, s chat.Store) {
	mustEnsureRoom(t, s, "lobby")
	mustEnsureRoom(t, s, "lobby")
	if got, want := mustRooms(t, s), []chat.RoomInfo{{Room: "lobby", LastSeq: 0}}; !slices.Equal(got, want) {
		t.Fatalf("Rooms = %+v, want %+v", got, want)
	}
}

func testEnsureRoomKeepsHistory(t *testing.T, s chat.Store) {
	before := fill(t, s, "general", 3)
	mustEnsureRoom(t, s, "general")
	if got := mustLastSeq(t, s, "general"); got != 3 {
		t.Fatalf("LastSeq after EnsureRoom = %d, want 3", got)
	}
	equalMessages(t, "history after EnsureRoom", history(t, s, "general"), before)
	if out := mustAppend(t, s, msg("general", "next")); out[0].Seq != 4 {
		t.Fatalf("next message after EnsureRoom has seq %d, want 4", out[0].Seq)
	}
}

func testRoomsEmpty(t *testing.T, s chat.Store) {
	if got := mustRooms(t, s); len(got) != 0 {
		t.Fatalf("Rooms of an empty store = %+v, want none", got)
	}
}

func testRoomsSorted(t *testing.T, s chat.Store) {
	// Created out of order, some by a join and some by a message.
	mustAppend(t, s, msgs("random", "r", 2)...)
	mustEnsureRoom(t, s, "lobby")
	mustAppend(t, s, msgs("general", "g", 5)...)
	mustEnsureRoom(t, s, "0-day")
	mustAppend(t, s, msg("a_b", "x"), msg("a-b", "y"), msg("a-b", "z"))
	mustEnsureRoom(t, s, "general")

	want := []chat.RoomInfo{
		{Room: "0-day", LastSeq: 0},
		{Room: "a-b", LastSeq: 2},
		{Room: "a_b", LastSeq: 1},
		{Room: "general", LastSeq: 5},
		{Room: "lobby", LastSeq: 0},
		{Room: "random", LastSeq: 2},
	}
	if got := mustRooms(t, s); !slices.Equal(got, want) {
		t.Fatalf("Rooms =\n %+v\nwant\n %+v", got, want)
	}
}

// testRoomsByteOrder: names sort by their bytes, not by any collation:
// upper case before lower case, punctuation by its code, non-ASCII last.
func testRoomsByteOrder(t *testing.T, s chat.Store) {
	names := []string{"ab", "été", "a.b", "Zulu", "a_b", "a", "~", "B", "a-b", "10", "9", "Ab", "ärger", "z"}
	for _, n := range names {
		mustEnsureRoom(t, s, n)
	}
	want := slices.Clone(names)
	slices.Sort(want) // Go compares strings bytewise
	var got []string
	for _, r := range mustRooms(t, s) {
		got = append(got, r.Room)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Rooms = %q, want byte order %q", got, want)
	}
	// Paging follows the same order: after "a-b" comes "a.b", after "Zulu" "a".
	for after, next := range map[string]string{"a-b": "a.b", "Zulu": "a", "9": "Ab", "z": "~", "~": "ärger"} {
		p := mustRoomPage(t, s, chat.RoomQuery{After: after, Limit: 1})
		if len(p.Rooms) != 1 || p.Rooms[0].Room != next || !p.More {
			t.Errorf("Rooms(After %q, Limit 1) = %+v, want %q and more", after, p, next)
		}
	}
}

// testRoomsPage: a page is at most Limit rooms after After, and More says
// whether any follow it.
func testRoomsPage(t *testing.T, s chat.Store) {
	for _, r := range []string{"e", "b", "d"} {
		mustEnsureRoom(t, s, r)
	}
	mustAppend(t, s, msg("a", "1"), msg("c", "1"), msg("c", "2"))
	info := map[string]chat.RoomInfo{
		"a": {Room: "a", LastSeq: 1}, "b": {Room: "b"}, "c": {Room: "c", LastSeq: 2}, "d": {Room: "d"}, "e": {Room: "e"},
	}
	for _, c := range []struct {
		after string
		limit int
		want  string // the page's rooms, one letter each
		more  bool
	}{
		{"", 1, "a", true},
		{"", 2, "ab", true},
		{"", 4, "abcd", true},
		{"", 5, "abcde", false},
		{"", 100, "abcde", false},
		{"a", 2, "bc", true},
		{"b", 2, "cd", true},
		{"c", 2, "de", false}, // exactly the rest: nothing follows
		{"d", 2, "e", false},
		{"d", 1, "e", false},
		{"e", 2, "", false},
		{"zzz", 5, "", false},
		{"bb", 2, "cd", true}, // After need not be a room
		{"0", 1, "a", true},
		{"A", 3, "abc", true},
	} {
		q := chat.RoomQuery{After: c.after, Limit: c.limit}
		p := mustRoomPage(t, s, q)
		want := []chat.RoomInfo{}
		for _, r := range c.want {
			want = append(want, info[string(r)])
		}
		if !slices.Equal(p.Rooms, want) || p.More != c.more {
			t.Errorf("Rooms(%+v) = %+v more %v, want %+v more %v", q, p.Rooms, p.More, want, c.more)
		}
	}
}

// testRoomsEmptyPage: an empty store answers every page with an empty,
// non-nil list and no more.
func testRoomsEmptyPage(t *testing.T, s chat.Store) {
	for _, q := range []chat.RoomQuery{{Limit: 1}, {Limit: 100}, {After: "general", Limit: 1}} {
		p := mustRoomPage(t, s, q)
		if len(p.Rooms) != 0 || p.More {
			t.Errorf("Rooms(%+v) of an empty store = %+v, want an empty page without more", q, p)
		}
	}
}

// testRoomsWalk pages through 250 rooms 100 at a time, as a client following
// next_cursor would, and must see each room exactly once, in order.
func testRoomsWalk(t *testing.T, s chat.Store) {
	const n, limit = 250, 100
	var want []chat.RoomInfo
	var batch []chat.Message
	for i := range n {
		// Not zero-padded, so byte order is not numeric order; every third
		// room has messages, the others only exist.
		room := fmt.Sprintf("room-%d", i)
		if i%3 == 0 {
			batch = append(batch, msg(room, "1"), msg(room, "2"))
			want = append(want, chat.RoomInfo{Room: room, LastSeq: 2})
		} else {
			mustEnsureRoom(t, s, room)
			want = append(want, chat.RoomInfo{Room: room})
		}
	}
	mustAppend(t, s, batch...)
	slices.SortFunc(want, func(a, b chat.RoomInfo) int { return strings.Compare(a.Room, b.Room) })

	var got []chat.RoomInfo
	var sizes []int
	q := chat.RoomQuery{Limit: limit}
	for {
		p := mustRoomPage(t, s, q)
		got = append(got, p.Rooms...)
		sizes = append(sizes, len(p.Rooms))
		if !p.More {
			break
		}
		if len(p.Rooms) == 0 || len(got) > n {
			t.Fatalf("walking rooms: More still true after %d rooms (pages %v)", len(got), sizes)
		}
		q.After = p.Rooms[len(p.Rooms)-1].Room
	}
	if !slices.Equal(sizes, []int{100, 100, 50}) {
		t.Errorf("page sizes %v, want [100 100 50]", sizes)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("walking rooms saw %d rooms, want each of %d once in byte order:\n got %+v\nwant %+v", len(got), n, got, want)
	}
}

// testConcurrentAppends has several writers append batches of different
// sizes to one room at once, as the persist stages of several instances do.
func testConcurrentAppends(t *testing.T, s chat.Store) {
	const writers, batches = 6, 15
	ctx := t.Context()
	results := make([][]chat.Message, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				// 1 to 3 messages, plus one in another room now and then.
				in := msgs("general", fmt.Sprintf("w%d-b%d", w, b), 1+(w+b)%3)
				if b%4 == 0 {
					in = append(in, msg("other", fmt.Sprintf("w%d-b%d", w, b)))
				}
				out, err := s.Append(ctx, in)
				if err != nil {
					t.Errorf("writer %d: Append: %v", w, err)
					return
				}
				results[w] = append(results[w], out...)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	bySeq := map[string]map[int64]string{"general": {}, "other": {}}
	for _, out := range results {
		for _, m := range out {
			if prev, dup := bySeq[m.Room][m.Seq]; dup {
				t.Fatalf("room %s seq %d given to both %s and %s", m.Room, m.Seq, prev, m.ID)
			}
			bySeq[m.Room][m.Seq] = m.ID
		}
	}
	for room, assigned := range bySeq {
		h := history(t, s, room)
		if got, want := seqs(h), seqRange(1, int64(len(assigned))); !slices.Equal(got, want) {
			t.Fatalf("room %s: stored seqs %v, want 1..%d without gaps", room, got, len(assigned))
		}
		for _, m := range h {
			if assigned[m.Seq] != m.ID {
				t.Fatalf("room %s seq %d: stored %s, Append returned %s", room, m.Seq, m.ID, assigned[m.Seq])
			}
		}
		if got := mustLastSeq(t, s, room); got != int64(len(assigned)) {
			t.Fatalf("LastSeq(%s) = %d, want %d", room, got, len(assigned))
		}
	}
}

// testConcurrentDuplicates has several writers send the same ids at once, as
// retries racing the original do: each id is stored once and every writer is
// told the same seq and the same stored text.
func testConcurrentDuplicates(t *testing.T, s chat.Store) {
	const writers, n = 6, 20
	ctx := t.Context()
	results := make([][]chat.Message, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range n {
				m := msg("general", fmt.Sprint("id-", i))
				m.Text = fmt.Sprintf("from writer %d", w)
				out, err := s.Append(ctx, []chat.Message{m})
				if err != nil {
					t.Errorf("writer %d: Append: %v", w, err)
					return
				}
				results[w] = append(results[w], out...)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	h := history(t, s, "general")
	if got := seqs(h); !slices.Equal(got, seqRange(1, n)) {
		t.Fatalf("stored seqs %v, want 1..%d: each id stored once", got, n)
	}
	storedByID := map[string]chat.Message{}
	for _, m := range h {
		if _, dup := storedByID[m.ID]; dup {
			t.Fatalf("id %s stored twice", m.ID)
		}
		storedByID[m.ID] = m
	}
	for w, out := range results {
		for _, m := range out {
			if !reflect.DeepEqual(m, storedByID[m.ID]) {
				t.Fatalf("writer %d got %+v for %s, stored is %+v", w, m, m.ID, storedByID[m.ID])
			}
		}
	}
}

// testConcurrentUsersDuplicates has writers of three users send the same ids
// at once, two writers per user: each user's message under an id is stored
// once, the users' messages under one id are all stored, and both writers of
// a user are told that user's one stored message.
func testConcurrentUsersDuplicates(t *testing.T, s chat.Store) {
	const writers, users, n = 6, 3, 15
	ctx := t.Context()
	results := make([][]chat.Message, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			user := fmt.Sprint("user-", w%users)
			for i := 0; i < n; i += 3 {
				// Batches of three, so collisions land inside batches too.
				var in []chat.Message
				for k := i; k < i+3; k++ {
					m := userMsg("general", user, fmt.Sprint("id-", k))
					m.Text = fmt.Sprintf("from writer %d", w)
					in = append(in, m)
				}
				out, err := s.Append(ctx, in)
				if err != nil {
					t.Errorf("writer %d: Append: %v", w, err)
					return
				}
				for k := range in {
					if out[k].User != in[k].User || out[k].ID != in[k].ID {
						t.Errorf("writer %d: result %d is %s/%s, want %s/%s", w, k, out[k].User, out[k].ID, in[k].User, in[k].ID)
						return
					}
				}
				results[w] = append(results[w], out...)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	h := history(t, s, "general")
	if got := seqs(h); !slices.Equal(got, seqRange(1, users*n)) {
		t.Fatalf("stored seqs %v, want 1..%d: each (user, id) stored once", got, users*n)
	}
	type key struct{ user, id string }
	storedByKey := map[key]chat.Message{}
	for _, m := range h {
		k := key{m.User, m.ID}
		if _, dup := storedByKey[k]; dup {
			t.Fatalf("%s's id %s stored twice", m.User, m.ID)
		}
		storedByKey[k] = m
	}
	for w, out := range results {
		for _, m := range out {
			if want := storedByKey[key{m.User, m.ID}]; !reflect.DeepEqual(m, want) {
				t.Fatalf("writer %d got %+v, stored is %+v", w, m, want)
			}
		}
	}
}

// --- retention ---

// Instants of the retention tests: old messages at day 1, new ones at day
// 10, the cutoff between them.
var (
	oldTS  = chat.Timestamp(time.Date(2026, 11, 1, 10, 0, 0, 500e6, time.UTC))
	newTS  = chat.Timestamp(time.Date(2026, 11, 10, 10, 0, 0, 250e6, time.UTC))
	cutoff = time.Date(2026, 11, 5, 0, 0, 0, 0, time.UTC)
)

// aged makes n messages of room with ids prefix-1 ... prefix-n at ts.
func aged(room, prefix string, n int, ts string) []chat.Message {
	out := msgs(room, prefix, n)
	for i := range out {
		out[i].TS = ts
	}
	return out
}

func mustSweep(t *testing.T, s chat.Sweeper, before time.Time) int {
	t.Helper()
	n, err := s.Sweep(t.Context(), before)
	if err != nil {
		t.Fatalf("Sweep(%v): %v", before, err)
	}
	return n
}

type sweeperFactory func(t *testing.T) (chat.Store, chat.Sweeper)

// testSweepDeletesOld: a room's old messages go, its new ones stay as they
// were, another room's new ones too; the seqs stay.
func testSweepDeletesOld(t *testing.T, newStore sweeperFactory) {
	s, sw := newStore(t)
	old := mustAppend(t, s, aged("general", "old", 5, oldTS)...)
	kept := mustAppend(t, s, aged("general", "new", 3, newTS)...)
	other := mustAppend(t, s, aged("other", "new", 2, newTS)...)
	if got := mustSweep(t, sw, cutoff); got != len(old) {
		t.Fatalf("Sweep deleted %d messages, want %d", got, len(old))
	}
	equalMessages(t, "history of general after the sweep", history(t, s, "general"), kept)
	equalMessages(t, "history of other after the sweep", history(t, s, "other"), other)
	if got := mustLastSeq(t, s, "general"); got != 8 {
		t.Fatalf("LastSeq(general) after the sweep = %d, want 8", got)
	}
	// The next message continues the seqs.
	next := mustAppend(t, s, aged("general", "next", 1, newTS)...)
	if next[0].Seq != 9 {
		t.Fatalf("next message after the sweep got seq %d, want 9", next[0].Seq)
	}
}

// testSweepAllExpired: when every message of a room is gone, the room stays
// listed with its last seq, LastSeq does not go back to 0, and the next
// message gets the next seq, not 1.
func testSweepAllExpired(t *testing.T, newStore sweeperFactory) {
	s, sw := newStore(t)
	mustAppend(t, s, aged("quiet", "old", 4, oldTS)...)
	if got := mustSweep(t, sw, cutoff); got != 4 {
		t.Fatalf("Sweep deleted %d messages, want 4", got)
	}
	p := mustMessages(t, s, "quiet", chat.Query{Kind: chat.Latest, Limit: 10})
	if len(p.Messages) != 0 || p.HasMore {
		t.Fatalf("Latest after every message expired = %v (has_more %v), want none", seqs(p.Messages), p.HasMore)
	}
	if got := mustLastSeq(t, s, "quiet"); got != 4 {
		t.Fatalf("LastSeq after every message expired = %d, want 4", got)
	}
	if got, want := mustRooms(t, s), []chat.RoomInfo{{Room: "quiet", LastSeq: 4}}; !slices.Equal(got, want) {
		t.Fatalf("Rooms after every message expired = %+v, want %+v", got, want)
	}
	next := mustAppend(t, s, aged("quiet", "again", 2, newTS)...)
	if got := seqs(next); !slices.Equal(got, []int64{5, 6}) {
		t.Fatalf("messages after every message expired got seqs %v, want [5 6]", got)
	}
	equalMessages(t, "history after the room came back", history(t, s, "quiet"), next)
}

// testSweepEdge: history, paging and after-reads at the retention edge.
// has_more is false when nothing older is kept; a read after a seq below the
// oldest kept message starts at the oldest kept one.
func testSweepEdge(t *testing.T, newStore sweeperFactory) {
	s, sw := newStore(t)
	mustAppend(t, s, aged("general", "old", 6, oldTS)...)
	kept := mustAppend(t, s, aged("general", "new", 4, newTS)...) // seqs 7-10
	mustSweep(t, sw, cutoff)

	check := func(what string, q chat.Query, want []chat.Message, wantMore bool) {
		t.Helper()
		p := mustMessages(t, s, "general", q)
		equalMessages(t, what, p.Messages, want)
		if p.HasMore != wantMore {
			t.Fatalf("%s: has_more = %v, want %v", what, p.HasMore, wantMore)
		}
	}
	check("Latest, all that is kept", chat.Query{Kind: chat.Latest, Limit: 4}, kept, false)
	check("Latest, more than is kept", chat.Query{Kind: chat.Latest, Limit: 10}, kept, false)
	check("Latest, fewer than kept", chat.Query{Kind: chat.Latest, Limit: 3}, kept[1:], true)
	check("Before the second kept", chat.Query{Kind: chat.Before, Seq: 8, Limit: 5}, kept[:1], false)
	check("Before the oldest kept", chat.Query{Kind: chat.Before, Seq: 7, Limit: 5}, []chat.Message{}, false)
	check("Before an expired seq", chat.Query{Kind: chat.Before, Seq: 4, Limit: 5}, []chat.Message{}, false)
	check("After 0", chat.Query{Kind: chat.After, Seq: 0, Limit: 10}, kept, false)
	check("After an expired seq", chat.Query{Kind: chat.After, Seq: 3, Limit: 2}, kept[:2], true)
	check("After the last expired seq", chat.Query{Kind: chat.After, Seq: 6, Limit: 10}, kept, false)

	// Walking back from the newest page ends at the oldest kept message.
	var walked []chat.Message
	q := chat.Query{Kind: chat.Latest, Limit: 3}
	for range 10 {
		p := mustMessages(t, s, "general", q)
		walked = append(slices.Clone(p.Messages), walked...)
		if !p.HasMore {
			break
		}
		q = chat.Query{Kind: chat.Before, Seq: p.Messages[0].Seq, Limit: 3}
	}
	equalMessages(t, "paging back to the retention edge", walked, kept)
}

// testSweepIdempotency: a second sweep deletes nothing, and the kept
// messages are still recognised when sent again.
func testSweepIdempotency(t *testing.T, newStore sweeperFactory) {
	s, sw := newStore(t)
	mustAppend(t, s, aged("general", "old", 2, oldTS)...)
	kept := mustAppend(t, s, aged("general", "new", 2, newTS)...)
	mustSweep(t, sw, cutoff)
	if got := mustSweep(t, sw, cutoff); got != 0 {
		t.Fatalf("second Sweep deleted %d messages, want 0", got)
	}
	again := mustAppend(t, s, kept[0], kept[1])
	equalMessages(t, "kept messages sent again", again, kept)
	if got := mustLastSeq(t, s, "general"); got != 4 {
		t.Fatalf("LastSeq = %d, want 4", got)
	}
}
