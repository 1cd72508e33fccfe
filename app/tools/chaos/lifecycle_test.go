package main

import (
	"testing"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/app/tools/client"
)

// The folded-view check of the verdict, on a made-up run in the public room
// q: u1's message 1 edited and reacted to by both, u2's reply 2 reacted to
// and deleted (its text erased in the store, as the store does).

func qmsg(seq int64, user, id, text string, replyTo int64) storedMsg {
	return storedMsg{Room: "q", Seq: seq, ID: id, User: user, Text: text, ReplyTo: replyTo, at: at(int(seq))}
}

func qlife(seq int64, user, id, kind, text string, target int64, emoji string) storedMsg {
	m := storedMsg{Room: "q", Seq: seq, ID: id, User: user, Kind: kind, Text: text, at: at(int(seq)),
		life: &chat.ItemData{TargetSeq: target, Emoji: emoji}}
	if kind == chat.KindReaction {
		on := true
		m.life.On = &on
	}
	return m
}

func lifecycleFixture() *fixture {
	f := &fixture{names: []string{"u1", "u2"}, rooms: [][]string{{"q"}, {"q"}}}
	f.stored = []storedMsg{
		qmsg(1, "u1", "a", "hello", 0),
		qmsg(2, "u2", "b", "", 1), // deleted: text erased
		qlife(3, "u1", "e", chat.KindEdit, "hello!", 1, ""),
		qlife(4, "u2", "r1", chat.KindReaction, "u2 reacted 👍", 1, "👍"),
		qlife(5, "u1", "r2", chat.KindReaction, "u1 reacted 🎉", 2, "🎉"),
		qlife(6, "u2", "d", chat.KindDelete, "u2 deleted a message", 2, ""),
		qlife(7, "u1", "r3", chat.KindReaction, "u1 reacted 👍", 1, "👍"),
	}
	f.stored[1].Deleted = true
	view := func() []client.Message {
		return []client.Message{
			{Room: "q", Seq: 1, ID: "a", User: "u1", Text: "hello!", TS: chat.Timestamp(at(1)), EditedTS: chat.Timestamp(at(3)),
				Reactions: map[string][]string{"👍": {"u2", "u1"}}},
			{Room: "q", Seq: 2, ID: "b", User: "u2", TS: chat.Timestamp(at(2)), ReplyTo: 1, Deleted: true},
		}
	}
	acked := func(id, kind string, target int64) client.Sent {
		return client.Sent{Room: "q", ID: id, Kind: kind, Target: target, Acked: true, First: at(1), AckedAt: at(1)}
	}
	all := deliveries(f.stored, 1, 2, 3, 4, 5, 6, 7)
	f.recs = []client.Record{
		{Rooms: map[string]client.RoomRecord{"q": {Room: "q", Delivered: all, Messages: view()}},
			Sent: []client.Sent{acked("a", "", 0), acked("e", chat.KindEdit, 1), acked("r2", chat.KindReaction, 2), acked("r3", chat.KindReaction, 1)}},
		{Rooms: map[string]client.RoomRecord{"q": {Room: "q", Delivered: all, Messages: view()}},
			Sent: []client.Sent{acked("b", "", 0), acked("r1", chat.KindReaction, 1), acked("d", chat.KindDelete, 2)}},
	}
	return f
}

func TestVerdictViewsPass(t *testing.T) {
	rep := lifecycleFixture().verdict()
	if !rep.Pass() || rep.Edits != 1 || rep.Deletes != 1 || rep.Reactions != 3 || rep.Replies != 1 || rep.Views != 2 || rep.ViewMessages != 4 || rep.Acked != 7 {
		t.Fatalf("pass %v, edits %d deletes %d reactions %d replies %d, views %d (%d messages), acked %d; problems %q",
			rep.Pass(), rep.Edits, rep.Deletes, rep.Reactions, rep.Replies, rep.Views, rep.ViewMessages, rep.Acked, rep.problems)
	}
}

func TestVerdictViewsDiffer(t *testing.T) {
	for name, change := range map[string]func(v []client.Message){
		"reactions out of order": func(v []client.Message) { v[0].Reactions["👍"] = []string{"u1", "u2"} },
		"an edit not folded":     func(v []client.Message) { v[0].Text, v[0].EditedTS = "hello", "" },
		"a delete not folded":    func(v []client.Message) { v[1].Deleted, v[1].Text = false, "hi" },
		"reply_to lost":          func(v []client.Message) { v[1].ReplyTo = 0 },
		"a reaction on deleted":  func(v []client.Message) { v[1].Reactions = map[string][]string{"🎉": {"u1"}} },
	} {
		f := lifecycleFixture()
		change(f.recs[1].Rooms["q"].Messages)
		if rep := f.verdict(); rep.Pass() || rep.ViewMismatches != 1 {
			t.Errorf("%s: pass %v, views differ %d", name, rep.Pass(), rep.ViewMismatches)
		}
	}
	f := lifecycleFixture()
	rr := f.recs[0].Rooms["q"]
	rr.Messages = rr.Messages[:1]
	f.recs[0].Rooms["q"] = rr
	if rep := f.verdict(); rep.Pass() || rep.ViewMismatches != 1 {
		t.Errorf("a message missing from the view: pass %v, views differ %d", rep.Pass(), rep.ViewMismatches)
	}
}

// A client that did not deliver the delete (nor what came after) keeps the
// text the store erased: only the deleted message's seq and reply_to are
// compared; the others' view is what it delivered folds to. (Its missed
// deliveries are the delivery check's.)
func TestVerdictViewsDeleteNotDelivered(t *testing.T) {
	f := lifecycleFixture()
	rr := f.recs[1].Rooms["q"]
	rr.Delivered = deliveries(f.stored, 1, 2, 3, 4, 5)
	rr.Messages[0].Reactions = map[string][]string{"👍": {"u2"}}
	rr.Messages[1].Deleted, rr.Messages[1].Text = false, "the text before its delete"
	rr.Messages[1].Reactions = map[string][]string{"🎉": {"u1"}}
	f.recs[1].Rooms["q"] = rr
	rep := f.verdict()
	if rep.ViewMismatches != 0 || rep.MissedDeliveries != 2 {
		t.Fatalf("views differ %d, missed %d; problems %q", rep.ViewMismatches, rep.MissedDeliveries, rep.problems)
	}
	// Message 1 is still compared: without u1's 👍 of seq 7, which it did
	// not deliver, its view differs when it shows it.
	rr.Messages[0].Reactions = map[string][]string{"👍": {"u2", "u1"}}
	if rep := f.verdict(); rep.ViewMismatches != 1 {
		t.Fatalf("views differ %d", rep.ViewMismatches)
	}
	rr.Messages[0].Reactions = map[string][]string{"👍": {"u2"}}
	rr.Messages[1].ReplyTo = 0
	if rep := f.verdict(); rep.ViewMismatches != 1 {
		t.Fatalf("reply_to lost: views differ %d", rep.ViewMismatches)
	}
}

// An acknowledged reaction about a message the store holds deleted, not
// stored: refused (conflict) without the client told, no loss; an
// acknowledged edit of a message not deleted, not stored: lost.
func TestVerdictLifecycleRefusedUntold(t *testing.T) {
	f := lifecycleFixture()
	f.recs[0].Sent = append(f.recs[0].Sent, client.Sent{Room: "q", ID: "r4", Kind: chat.KindReaction, Target: 2, Acked: true, First: at(8), AckedAt: at(8)})
	if rep := f.verdict(); !rep.Pass() || rep.RefusedUntold != 1 {
		t.Fatalf("pass %v, untold %d; problems %q", rep.Pass(), rep.RefusedUntold, rep.problems)
	}
	f.recs[0].Sent = append(f.recs[0].Sent, client.Sent{Room: "q", ID: "e2", Kind: chat.KindEdit, Target: 1, Acked: true, First: at(8), AckedAt: at(8)})
	if rep := f.verdict(); rep.Pass() || rep.LostAcked != 1 {
		t.Fatalf("pass %v, lost %d", rep.Pass(), rep.LostAcked)
	}
}
