package repository

import (
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/parley-chat/parley/app/chat"
)

// fold stores items and folds them into st, as the persist stage does.
func fold(t *testing.T, s *Store, st *chat.RoomState, items ...chat.Message) {
	t.Helper()
	out, err := s.Append(t.Context(), items)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	for i := range out {
		st.Apply(&out[i])
	}
}

func item(room, id, actor string, d chat.ItemData) chat.Message {
	return chat.NewItem(chat.Author{Name: actor}, room, id, d, time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC))
}

func listed(t *testing.T, s *Store, user string) []string {
	t.Helper()
	p, err := s.MemberRooms(t.Context(), user, chat.RoomQuery{Limit: 10})
	if err != nil {
		t.Fatalf("MemberRooms %s: %v", user, err)
	}
	var names []string
	for _, r := range p.Rooms {
		names = append(names, r.Room)
	}
	return names
}

func entries(t *testing.T, s *Store, user string) int64 {
	t.Helper()
	n, err := s.members.CountDocuments(t.Context(), bson.D{{Key: "user", Value: user}})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func putEntry(t *testing.T, s *Store, room, user, role string, seq int64) {
	t.Helper()
	_, err := s.members.InsertOne(t.Context(), memberDoc{ID: memberKey(room, user), Room: room, User: user, Role: role, Seq: seq})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMongoRoomStatesCrashLeftovers: a save is three writes; a crash between
// them leaves index entries the saved state does not confirm. They are never
// listed, and deleted only once no save in flight can make them true.
func TestMongoRoomStatesCrashLeftovers(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	st := chat.NewRoomState("club")
	fold(t, s, &st,
		item("club", "c", "alice", chat.ItemData{Action: chat.ActCreate, RoomKind: chat.RoomPrivate}),
		item("club", "a1", "alice", chat.ItemData{Action: chat.ActAdd, Target: "bob"}))
	if err := s.SaveRoomState(ctx, st); err != nil {
		t.Fatal(err)
	}
	pub := chat.NewRoomState("pub")
	fold(t, s, &pub, item("pub", "c", "alice", chat.ItemData{Action: chat.ActCreate}))
	if err := s.SaveRoomState(ctx, pub); err != nil {
		t.Fatal(err)
	}

	// A save at seq 3 adding carol wrote her entry and died: not listed,
	// and kept (that save may yet write its state).
	putEntry(t, s, "club", "carol", chat.RoleMember, 3)
	putEntry(t, s, "pub", "carol", chat.RoleModerator, 3)
	if got := listed(t, s, "carol"); len(got) != 0 {
		t.Fatalf("carol's rooms from unsaved states: %q", got)
	}
	dir, err := s.Directory(ctx, "carol", chat.RoomQuery{Limit: 10})
	if err != nil || len(dir.Rooms) != 1 || dir.Rooms[0].Room != "pub" || dir.Rooms[0].Role != "" {
		t.Fatalf("directory for carol: %+v %v", dir, err)
	}
	if n := entries(t, s, "carol"); n != 2 {
		t.Fatalf("carol has %d entries, want both kept while their saves may be in flight", n)
	}

	// A save at seq 4 removed bob, wrote its state and died before its
	// deletes: bob is not listed, and his entry (seq 2 <= 4) goes; so
	// does carol's in club, whose save at seq 3 is overtaken.
	fold(t, s, &st,
		item("club", "a2", "alice", chat.ItemData{Action: chat.ActAdd, Target: "dave"}),
		item("club", "r1", "alice", chat.ItemData{Action: chat.ActRemove, Target: "bob"}))
	if err := s.SaveRoomState(ctx, st); err != nil {
		t.Fatal(err)
	}
	putEntry(t, s, "club", "bob", chat.RoleMember, 2)
	if got := listed(t, s, "bob"); len(got) != 0 {
		t.Fatalf("bob's rooms after his removal: %q", got)
	}
	if n := entries(t, s, "bob"); n != 0 {
		t.Fatalf("bob's stale entry not deleted: %d entries", n)
	}
	if got := listed(t, s, "carol"); len(got) != 0 {
		t.Fatalf("carol's rooms: %q", got)
	}
	if n := entries(t, s, "carol"); n != 1 {
		t.Fatalf("carol has %d entries, want only pub's (seq 3 > its saved 1, but club's is overtaken)", n)
	}
	if got := listed(t, s, "dave"); len(got) != 1 || got[0] != "club" {
		t.Fatalf("dave's rooms: %q", got)
	}
}

// TestMongoRoomStatesSavedMidList: a list reads the entries, finds a room
// not confirmed (its save wrote the entry and not yet the state), and the
// state is saved before the list's housekeeping looks again. The entry is
// right by then and must stay: deleting it lost alice's first room from her
// list for good (TestJoinDoesNotCreateRoom, distributed, in CI).
func TestMongoRoomStatesSavedMidList(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	st := chat.NewRoomState("fresh")
	fold(t, s, &st, item("fresh", "c", "alice", chat.ItemData{Action: chat.ActCreate}))
	entry := memberDoc{ID: memberKey("fresh", "alice"), Room: "fresh", User: "alice", Role: st.Members["alice"].Role, Seq: st.Seq}
	// What MemberRooms read before the save's state landed: the entry,
	// unconfirmed.
	if err := s.SaveRoomState(ctx, st); err != nil {
		t.Fatal(err)
	}
	s.dropStale(ctx, "alice", []memberDoc{entry})
	if n := entries(t, s, "alice"); n != 1 {
		t.Fatalf("alice has %d entries after the housekeeping, want her entry kept (the state saved meanwhile lists her)", n)
	}
	if got := listed(t, s, "alice"); len(got) != 1 || got[0] != "fresh" {
		t.Fatalf("alice's rooms: %q", got)
	}
	// The same housekeeping for a user the saved state does not list does
	// delete: the rule still holds.
	putEntry(t, s, "fresh", "mallory", chat.RoleMember, st.Seq)
	s.dropStale(ctx, "mallory", []memberDoc{{ID: memberKey("fresh", "mallory"), Room: "fresh", User: "mallory", Role: chat.RoleMember, Seq: st.Seq}})
	if n := entries(t, s, "mallory"); n != 0 {
		t.Fatalf("mallory's entry, unconfirmed by a state as new as it, kept: %d entries", n)
	}
}

// TestMongoRoomStatesReAdd: the index is written by difference against the
// saved state, so a save that finds a member unchanged writes nothing for
// them: their entry must still be there from the save that made them one.
func TestMongoRoomStatesReAdd(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	st := chat.NewRoomState("club")
	fold(t, s, &st,
		item("club", "c", "alice", chat.ItemData{Action: chat.ActCreate, RoomKind: chat.RoomPrivate}),
		item("club", "a1", "alice", chat.ItemData{Action: chat.ActAdd, Target: "bob"}))
	if err := s.SaveRoomState(ctx, st); err != nil {
		t.Fatal(err)
	}
	// Bob is removed (seq 3) and added again (seq 4); the state at seq 3
	// is never saved. The save at seq 4 finds bob a member before and
	// after, and changes nothing of his entry: it must still be there.
	fold(t, s, &st,
		item("club", "r1", "alice", chat.ItemData{Action: chat.ActRemove, Target: "bob"}),
		item("club", "a2", "alice", chat.ItemData{Action: chat.ActAdd, Target: "bob"}))
	if err := s.SaveRoomState(ctx, st); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, s, "bob"); len(got) != 1 || got[0] != "club" {
		t.Fatalf("bob's rooms: %q", got)
	}
	// An older save arriving late (a second saver) changes nothing.
	old := st.Clone()
	old.Seq = 3
	delete(old.Members, "bob")
	if err := s.SaveRoomState(ctx, old); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, s, "bob"); len(got) != 1 || got[0] != "club" {
		t.Fatalf("bob's rooms after a late older save: %q", got)
	}
}
