package main

import (
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/app/tools/client"
)

// The membership checks of the verdict, on a made-up run: one private room
// p, u1 removed at seq 5 and added back at 7, u2 a member throughout.

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

type fixture struct {
	stored []storedMsg
	recs   []client.Record
	names  []string
	rooms  [][]string
}

func item(seq int64, user, action, target string) storedMsg {
	m := storedMsg{Room: "p", Seq: seq, ID: "i" + string(rune('0'+seq)), User: user, Kind: "member", at: at(int(seq))}
	m.data = itemData{Action: action, Target: target}
	if action == "create" {
		m.data.Kind = "private"
	}
	return m
}

func msg(seq int64, user, id string) storedMsg {
	return storedMsg{Room: "p", Seq: seq, ID: id, User: user, at: at(int(seq))}
}

func deliveries(st []storedMsg, seqs ...int64) []client.Delivered {
	var out []client.Delivered
	for _, s := range seqs {
		out = append(out, client.Delivered{Seq: s, ID: st[s-1].ID})
	}
	return out
}

// views is the folded view of the plain messages among seqs, as stored
// (no lifecycle items in the fixture).
func views(st []storedMsg, seqs ...int64) []client.Message {
	var out []client.Message
	for _, s := range seqs {
		if m := st[s-1]; m.Kind == "" {
			out = append(out, client.Message{Room: m.Room, Seq: m.Seq, ID: m.ID, User: m.User, Text: m.Text, TS: chat.Timestamp(m.at)})
		}
	}
	return out
}

func newFixture() *fixture {
	f := &fixture{names: []string{"u1", "u2"}, rooms: [][]string{{"p"}, {"p"}}}
	f.stored = []storedMsg{
		item(1, modName, "create", ""),
		item(2, modName, "add", "u1"),
		item(3, modName, "add", "u2"),
		msg(4, "u1", "a"),
		item(5, modName, "remove", "u1"),
		msg(6, "u2", "b"),
		item(7, modName, "add", "u1"),
		msg(8, "u1", "c"),
	}
	f.recs = []client.Record{
		{Rooms: map[string]client.RoomRecord{"p": {Room: "p", Start: 3, Delivered: deliveries(f.stored, 4, 5, 7, 8),
			Messages: views(f.stored, 4, 5, 7, 8), Exits: []client.Exit{{Seq: 5, Reason: "removed", Frame: true}}, Resumes: 1}},
			Sent: []client.Sent{
				{Room: "p", ID: "a", Acked: true, First: at(3), AckedAt: at(3)},
				{Room: "p", ID: "c", Acked: true, First: at(7), AckedAt: at(7)},
			}},
		{Rooms: map[string]client.RoomRecord{"p": {Room: "p", Start: 3, Delivered: deliveries(f.stored, 4, 5, 6, 7, 8),
			Messages: views(f.stored, 4, 5, 6, 7, 8)}},
			Sent: []client.Sent{{Room: "p", ID: "b", Acked: true, First: at(5), AckedAt: at(5)}}},
	}
	return f
}

func (f *fixture) verdict() *Report {
	return verdict(Options{Scenario: "chaos"}, f.recs, f.rooms, f.names, f.stored, modStats{}, nil, t0)
}

func TestVerdictMembershipPasses(t *testing.T) {
	rep := newFixture().verdict()
	if !rep.Pass() || rep.MemberItems != 5 || rep.Acked != 3 || rep.Exits != 1 || rep.Resumes != 1 {
		t.Fatalf("pass %v, member items %d, acked %d, exits %d, resumes %d; problems %q", rep.Pass(), rep.MemberItems, rep.Acked, rep.Exits, rep.Resumes, rep.problems)
	}
}

func TestVerdictDeliveredWhileNoMember(t *testing.T) {
	f := newFixture()
	rr := f.recs[0].Rooms["p"]
	rr.Delivered = deliveries(f.stored, 4, 5, 6, 7, 8)
	f.recs[0].Rooms["p"] = rr
	if rep := f.verdict(); rep.Pass() || rep.AfterRemoval != 1 {
		t.Fatalf("seq 6 delivered to the removed u1: pass %v, after removal %d", rep.Pass(), rep.AfterRemoval)
	}
	f = newFixture()
	rr = f.recs[0].Rooms["p"]
	rr.AfterLeft = 2
	f.recs[0].Rooms["p"] = rr
	if rep := f.verdict(); rep.Pass() || rep.AfterRemoval != 2 {
		t.Fatalf("frames after left: pass %v, after removal %d", rep.Pass(), rep.AfterRemoval)
	}
}

func TestVerdictStoredWhileNoMember(t *testing.T) {
	f := newFixture()
	f.stored[5] = msg(6, "u1", "b")
	f.recs[0].Sent = append(f.recs[0].Sent, f.recs[1].Sent[0])
	f.recs[1].Sent = nil
	rep := f.verdict()
	if rep.Pass() || rep.StoredOutside != 1 {
		t.Fatalf("u1's message stored at 6, between its removal and its add: pass %v, stored outside %d", rep.Pass(), rep.StoredOutside)
	}
}

func TestVerdictMissedByMember(t *testing.T) {
	f := newFixture()
	rr := f.recs[1].Rooms["p"]
	rr.Delivered = deliveries(f.stored, 4, 5, 6, 8)
	f.recs[1].Rooms["p"] = rr
	if rep := f.verdict(); rep.Pass() || rep.MissedDeliveries != 1 || rep.OutOfOrder != 0 {
		t.Fatalf("u2 missed seq 7: pass %v, missed %d, out of order %d", rep.Pass(), rep.MissedDeliveries, rep.OutOfOrder)
	}
	// The last stretch of u1 is open: its end is owed too.
	f = newFixture()
	rr = f.recs[0].Rooms["p"]
	rr.Delivered = deliveries(f.stored, 4, 5, 7)
	f.recs[0].Rooms["p"] = rr
	if rep := f.verdict(); rep.Pass() || rep.MissedDeliveries != 1 {
		t.Fatalf("u1 missed seq 8 after its re-add: pass %v, missed %d", rep.Pass(), rep.MissedDeliveries)
	}
}

func TestVerdictCutShortByRemovalWhileAway(t *testing.T) {
	// u1 away at its removal: it never got 5 nor a left frame; allowed.
	f := newFixture()
	rr := f.recs[0].Rooms["p"]
	rr.Delivered = deliveries(f.stored, 4, 7, 8)
	rr.Exits = nil
	f.recs[0].Rooms["p"] = rr
	rep := f.verdict()
	if !rep.Pass() || rep.CutShort != 1 || rep.CutShortItems != 1 {
		t.Fatalf("pass %v, cut short %d (%d items); problems %q", rep.Pass(), rep.CutShort, rep.CutShortItems, rep.problems)
	}
	// With a left frame after 4 the server ended its subscription early:
	// seq 5 is missed.
	rr.Exits = []client.Exit{{Seq: 4, Reason: "removed", Frame: true}}
	f.recs[0].Rooms["p"] = rr
	if rep := f.verdict(); rep.Pass() || rep.MissedDeliveries != 1 {
		t.Fatalf("left frame before the removal item: pass %v, missed %d", rep.Pass(), rep.MissedDeliveries)
	}
}

func TestVerdictRefusals(t *testing.T) {
	f := newFixture()
	f.recs[0].Sent = append(f.recs[0].Sent,
		// Told after the ack.
		client.Sent{Room: "p", ID: "x", Acked: true, First: at(5), AckedAt: at(5), Refused: "not_found", RefusedAfterAck: true},
		// Not told, but sent while out of the room.
		client.Sent{Room: "p", ID: "y", Acked: true, First: at(6), AckedAt: at(6)},
	)
	rep := f.verdict()
	if !rep.Pass() || rep.RefusedAfterAck != 1 || rep.RefusedUntold != 1 {
		t.Fatalf("pass %v, refused after ack %d, untold %d; problems %q", rep.Pass(), rep.RefusedAfterAck, rep.RefusedUntold, rep.problems)
	}
	// Acked long after the re-add and not stored: lost.
	f.recs[0].Sent = append(f.recs[0].Sent, client.Sent{Room: "p", ID: "z", Acked: true, First: at(40), AckedAt: at(40)})
	if rep := f.verdict(); rep.Pass() || rep.LostAcked != 1 {
		t.Fatalf("acked member's message missing: pass %v, lost %d", rep.Pass(), rep.LostAcked)
	}
}
