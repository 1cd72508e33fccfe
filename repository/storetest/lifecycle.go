package storetest

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
)

// LifecycleStore is a store with a message's life: what RunLifecycles
// tests.
type LifecycleStore interface {
	chat.Store
	chat.Lifecycles
}

// RunLifecycles runs the contract suite of chat.Lifecycles and of the
// lifecycle fields through chat.Store: history folded the same on every
// store, the erasure a delete makes, ItemsAbout, and the round-trip of
// reply_to and of a lifecycle item's data. newStore must return a new,
// empty store each time, cleaned up by t.Cleanup.
func RunLifecycles(t *testing.T, newStore func(t *testing.T) LifecycleStore) {
	t.Run("Fold", func(t *testing.T) { testLifecycleFold(t, newStore(t)) })
	t.Run("FoldOlderPage", func(t *testing.T) { testLifecycleFoldOlderPage(t, newStore(t)) })
	t.Run("Erasure", func(t *testing.T) { testLifecycleErasure(t, newStore(t)) })
	t.Run("ErasureSameBatch", func(t *testing.T) { testLifecycleErasureSameBatch(t, newStore(t)) })
	t.Run("EditAfterDeleteErased", func(t *testing.T) { testLifecycleEditAfterDelete(t, newStore(t)) })
	t.Run("ItemsAbout", func(t *testing.T) { testItemsAbout(t, newStore(t)) })
	t.Run("ItemsAboutNone", func(t *testing.T) { testItemsAboutNone(t, newStore(t)) })
	t.Run("RoundTrip", func(t *testing.T) { testLifecycleRoundTrip(t, newStore(t)) })
}

// lifeTS is the time of the suite's first item; each next item is a
// second later, so an edit's ts says which edit it was.
var lifeTS = time.Date(2026, 12, 3, 10, 0, 0, 500e6, time.UTC)

// life builds one room's timeline for the suite, numbering ids and
// stepping the clock.
type life struct {
	room string
	n    int
}

func (l *life) next() (string, time.Time) {
	l.n++
	return fmt.Sprintf("i%d", l.n), lifeTS.Add(time.Duration(l.n) * time.Second)
}

// send is a plain message of user, answering replyTo (0: none).
func (l *life) send(user, text string, replyTo int64) chat.Message {
	id, at := l.next()
	return chat.Message{Room: l.room, ID: id, User: user, Text: text, TS: chat.Timestamp(at), ReplyTo: replyTo}
}

func (l *life) edit(user string, target int64, text string) chat.Message {
	id, at := l.next()
	return chat.NewLifecycle(chat.Author{Name: user}, l.room, id, chat.KindEdit, target, text, "", false, at)
}

func (l *life) del(user string, target int64) chat.Message {
	id, at := l.next()
	return chat.NewLifecycle(chat.Author{Name: user}, l.room, id, chat.KindDelete, target, "", "", false, at)
}

func (l *life) react(user string, target int64, emoji string, on bool) chat.Message {
	id, at := l.next()
	return chat.NewLifecycle(chat.Author{Name: user}, l.room, id, chat.KindReaction, target, "", emoji, on, at)
}

// tsOf is the ts the n-th item built by a life has.
func tsOf(n int) string { return chat.Timestamp(lifeTS.Add(time.Duration(n) * time.Second)) }

func mustItemsAbout(t *testing.T, s chat.Lifecycles, room string, targets []int64) []chat.Message {
	t.Helper()
	items, err := s.ItemsAbout(t.Context(), room, targets)
	if err != nil {
		t.Fatalf("ItemsAbout(%s, %v): %v", room, targets, err)
	}
	if items == nil {
		t.Fatalf("ItemsAbout(%s, %v) = nil, want a slice", room, targets)
	}
	return items
}

// folded is a history page as the handler shows it: the page, the items
// about its messages, FoldInto.
func folded(t *testing.T, s LifecycleStore, room string, q chat.Query) []chat.Message {
	t.Helper()
	page := mustMessages(t, s, room, q)
	items := mustItemsAbout(t, s, room, seqs(page.Messages))
	chat.FoldInto(page.Messages, items)
	return page.Messages
}

func equalMessage(t *testing.T, what string, got, want chat.Message) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// bySeq indexes a page by seq.
func bySeq(ms []chat.Message) map[int64]chat.Message {
	out := make(map[int64]chat.Message, len(ms))
	for _, m := range ms {
		out[m.Seq] = m
	}
	return out
}

// lifeTimeline stores the fold cases in several batches, as a persist stage
// would, and returns every item as stored (seq i+1 at index i):
//
//	1 alice "hello"           edited twice (4, 9), 👍 by bob on (5) and off
//	                          (8), 👍 by carol (6)
//	2 bob "hi", reply_to 1    🎉 by bob (7)
//	3 alice "third"           edited (10), deleted (11), edited after the
//	                          delete (12), ❤️ by carol after the delete (13)
//	14 bob "last"             👍 by alice (15), and by bob twice (16, 17:
//	                          the second on changes nothing)
func lifeTimeline(t *testing.T, s chat.Store, l *life) []chat.Message {
	t.Helper()
	var all []chat.Message
	for _, batch := range [][]chat.Message{
		{l.send("alice", "hello", 0), l.send("bob", "hi", 1), l.send("alice", "third", 0)},
		{l.edit("alice", 1, "hello, edited"), l.react("bob", 1, "👍", true), l.react("carol", 1, "👍", true)},
		{l.react("bob", 2, "🎉", true), l.react("bob", 1, "👍", false)},
		{l.edit("alice", 1, "hello again"), l.edit("alice", 3, "third, edited"), l.del("alice", 3)},
		{l.edit("alice", 3, "after the delete")},
		{l.react("carol", 3, "❤️", true), l.send("bob", "last", 0), l.react("alice", 14, "👍", true)},
		{l.react("bob", 14, "👍", true), l.react("bob", 14, "👍", true)},
	} {
		all = append(all, mustAppend(t, s, batch...)...)
	}
	for i, m := range all {
		if m.Seq != int64(i+1) {
			t.Fatalf("item %d stored at seq %d", i+1, m.Seq)
		}
	}
	return all
}

func testLifecycleFold(t *testing.T, s LifecycleStore) {
	l := &life{room: "general"}
	all := lifeTimeline(t, s, l)
	got := folded(t, s, l.room, chat.Query{Kind: chat.Latest, Limit: 50})
	if len(got) != len(all) {
		t.Fatalf("history holds %d items, want %d (the lifecycle items stay in the timeline)", len(got), len(all))
	}
	at := bySeq(got)

	// Written out, not computed with Fold: the stores are held to what a
	// message should look like, not to whatever Fold does.
	equalMessage(t, "message 1", at[1], chat.Message{Room: l.room, Seq: 1, ID: "i1", User: "alice", Text: "hello again", TS: tsOf(1),
		EditedTS: tsOf(9), Reactions: map[string][]string{"👍": {"carol"}}})
	equalMessage(t, "message 2", at[2], chat.Message{Room: l.room, Seq: 2, ID: "i2", User: "bob", Text: "hi", TS: tsOf(2), ReplyTo: 1,
		Reactions: map[string][]string{"🎉": {"bob"}}})
	equalMessage(t, "message 3 (deleted)", at[3], chat.Message{Room: l.room, Seq: 3, ID: "i3", User: "alice", TS: tsOf(3), Deleted: true})
	equalMessage(t, "message 14", at[14], chat.Message{Room: l.room, Seq: 14, ID: "i14", User: "bob", Text: "last", TS: tsOf(14),
		Reactions: map[string][]string{"👍": {"alice", "bob"}}})

	// The lifecycle items are as stored, except that the edits of the
	// deleted message lost their text.
	for _, m := range all {
		if !m.IsLifecycle() {
			continue
		}
		want := m
		if m.Kind == chat.KindEdit && m.Target() == 3 {
			want.Text = ""
		}
		equalMessage(t, fmt.Sprintf("item %d", m.Seq), at[m.Seq], want)
	}
}

// testLifecycleFoldOlderPage reads a page of the first messages only: the
// items about them lie after the page, and still fold in.
func testLifecycleFoldOlderPage(t *testing.T, s LifecycleStore) {
	l := &life{room: "general"}
	lifeTimeline(t, s, l)
	got := folded(t, s, l.room, chat.Query{Kind: chat.Before, Seq: 4, Limit: 50})
	if want := []int64{1, 2, 3}; !reflect.DeepEqual(seqs(got), want) {
		t.Fatalf("page seqs %v, want %v", seqs(got), want)
	}
	if got[0].Text != "hello again" || got[0].EditedTS != tsOf(9) || !reflect.DeepEqual(got[0].Reactions, map[string][]string{"👍": {"carol"}}) {
		t.Errorf("message 1 = %+v, want its edits and reactions folded in", got[0])
	}
	if !got[2].Deleted || got[2].Text != "" || got[2].Reactions != nil {
		t.Errorf("message 3 = %+v, want deleted", got[2])
	}
}

// testLifecycleErasure stores a message with two edits and a reaction, then
// its delete, and reads the store raw (Messages gives items as stored).
func testLifecycleErasure(t *testing.T, s LifecycleStore) {
	l := &life{room: "general"}
	before := mustAppend(t, s, l.send("alice", "a secret", 0), l.send("bob", "stays", 1),
		l.edit("alice", 1, "a secret, edited"), l.react("bob", 1, "👍", true), l.edit("alice", 1, "a secret, edited again"),
		l.edit("bob", 2, "stays, edited"))
	del := l.del("carol", 1) // a moderator's
	gotDel := mustAppend(t, s, del)
	if gotDel[0].Seq != 7 {
		t.Fatalf("delete stored at seq %d, want 7", gotDel[0].Seq)
	}

	raw := history(t, s, l.room)
	want := append([]chat.Message(nil), before...)
	want[0].Text, want[0].Deleted = "", true // the message: erased
	want[2].Text, want[4].Text = "", ""      // its edits
	want = append(want, stored(del, 7))      // the reaction, the other message and its edit stay
	equalMessages(t, "stored after the delete", raw, want)
	equalMessages(t, "items about the deleted message", mustItemsAbout(t, s, l.room, []int64{1}), []chat.Message{want[2], want[3], want[4], want[6]})

	// Applied again (a retried batch), the delete changes nothing and is
	// not stored twice; the whole batch again neither.
	again := mustAppend(t, s, del)
	equalMessages(t, "the delete appended again", again, []chat.Message{stored(del, 7)})
	equalMessages(t, "stored after the delete again", history(t, s, l.room), want)
	mustAppend(t, s, before[2], before[4], del)
	equalMessages(t, "stored after its batch again", history(t, s, l.room), want)
	if last := mustLastSeq(t, s, l.room); last != 7 {
		t.Errorf("LastSeq = %d after the retries, want 7", last)
	}
}

// testLifecycleErasureSameBatch stores the message, its edit and its delete
// in one batch.
func testLifecycleErasureSameBatch(t *testing.T, s LifecycleStore) {
	l := &life{room: "general"}
	out := mustAppend(t, s, l.send("alice", "a secret", 0), l.edit("alice", 1, "a secret, edited"), l.del("alice", 1))
	raw := history(t, s, l.room)
	if raw[0].Text != "" || !raw[0].Deleted || raw[1].Text != "" {
		t.Errorf("stored %+v, want the message and its edit erased", raw)
	}
	if !reflect.DeepEqual(raw[2], out[2]) {
		t.Errorf("delete stored as %+v, want %+v", raw[2], out[2])
	}
}

// testLifecycleEditAfterDelete stores an edit about a message deleted
// already (the persist stage refuses one; a race may let one through): its
// text is not kept either, and what Append returns says so.
func testLifecycleEditAfterDelete(t *testing.T, s LifecycleStore) {
	l := &life{room: "general"}
	mustAppend(t, s, l.send("alice", "a secret", 0), l.del("alice", 1))
	edit := l.edit("alice", 1, "a secret again")
	out := mustAppend(t, s, edit)
	want := stored(edit, 3)
	want.Text = ""
	equalMessages(t, "the late edit as appended", out, []chat.Message{want})
	equalMessages(t, "the late edit as stored", mustMessages(t, s, l.room, chat.Query{Kind: chat.After, Seq: 2, Limit: 10}).Messages, []chat.Message{want})
	// And redelivered, it is still the erased one.
	equalMessages(t, "the late edit again", mustAppend(t, s, edit), []chat.Message{want})
}

func testItemsAbout(t *testing.T, s LifecycleStore) {
	l := &life{room: "general"}
	other := &life{room: "other"}
	// In another room, items about the same seqs: never returned for
	// general.
	mustAppend(t, s, other.send("bob", "elsewhere", 0), other.send("bob", "elsewhere 2", 0),
		other.react("alice", 1, "👍", true), other.edit("bob", 2, "elsewhere, edited"))
	all := mustAppend(t, s,
		l.send("alice", "one", 0), l.send("bob", "two", 0), l.send("carol", "three", 0),
		l.react("bob", 1, "👍", true), l.edit("bob", 2, "two, edited"), l.react("alice", 2, "🎉", true),
		// A membership item: its target is a user, not a message.
		chat.NewItem(chat.Author{Name: "alice"}, l.room, "add-dave", chat.ItemData{Action: chat.ActAdd, Target: "dave"}, lifeTS),
		l.react("carol", 1, "👍", true), l.del("bob", 2), l.react("bob", 4, "👀", true))
	// As stored now: the delete of 2 erased its edit.
	now := append([]chat.Message(nil), all...)
	now[4].Text = ""
	for _, c := range []struct {
		name    string
		targets []int64
		want    []int64
	}{
		{"several, interleaved by seq", []int64{1, 2}, []int64{4, 5, 6, 8, 9}},
		{"in any order, repeated", []int64{2, 1, 2}, []int64{4, 5, 6, 8, 9}},
		{"one", []int64{1}, []int64{4, 8}},
		{"a message with none", []int64{3}, nil},
		{"with and without", []int64{3, 1}, []int64{4, 8}},
		{"about an item", []int64{4}, []int64{10}},
		{"the membership item's seq", []int64{7}, nil},
		{"beyond the room", []int64{99, 0, -1}, nil},
		{"none", []int64{}, nil},
		{"nil", nil, nil},
	} {
		got := mustItemsAbout(t, s, l.room, c.targets)
		want := []chat.Message{}
		for _, seq := range c.want {
			want = append(want, now[seq-1])
		}
		equalMessages(t, "ItemsAbout "+c.name, got, want)
	}
	if got := mustItemsAbout(t, s, "nowhere", []int64{1, 2}); len(got) != 0 {
		t.Errorf("ItemsAbout of a room never used = %+v, want none", got)
	}
}

func testItemsAboutNone(t *testing.T, s LifecycleStore) {
	fill(t, s, "general", 3)
	if got := mustItemsAbout(t, s, "general", []int64{1, 2, 3}); len(got) != 0 {
		t.Errorf("ItemsAbout of messages without items = %+v, want none", got)
	}
}

// testLifecycleRoundTrip reads back exactly what was appended: reply_to,
// and a lifecycle item's numeric target, emoji and on, both on and off,
// through Messages and ItemsAbout.
func testLifecycleRoundTrip(t *testing.T, s LifecycleStore) {
	l := &life{room: "general"}
	in := []chat.Message{
		l.send("alice", "first", 0), l.send("bob", "a reply", 1),
		l.react("bob", 1, "👍🏽", true), l.react("bob", 1, "👍🏽", false),
		l.react("carol", 2, "🇫🇷", true), l.edit("bob", 2, "a reply, edited"),
		l.send("carol", "a reply to a reaction", 3),
	}
	// A reaction stored before "on" existed means on.
	old := l.react("dave", 1, "1️⃣", true)
	old.Data.On = nil
	in = append(in, old)
	out := mustAppend(t, s, in...)
	want := make([]chat.Message, len(in))
	for i, m := range in {
		want[i] = stored(m, int64(i+1))
	}
	equalMessages(t, "appended", out, want)
	equalMessages(t, "read back", history(t, s, l.room), want)
	equalMessages(t, "items about 1 and 2", mustItemsAbout(t, s, l.room, []int64{1, 2}), []chat.Message{want[2], want[3], want[4], want[5], want[7]})
	for _, i := range []int{2, 3, 4, 5} {
		if d := want[i].Data; d == nil || d.TargetSeq == 0 || d.Target != "" {
			t.Fatalf("item %d's data %+v: the suite meant a numeric target", i, d)
		}
	}
	if *want[3].Data.On {
		t.Fatalf("the suite meant item 4 to be off")
	}
}
