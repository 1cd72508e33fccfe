package storetest

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
)

// RoomStore is a store with rooms with members: what RunRoomStates tests.
type RoomStore interface {
	chat.Store
	chat.RoomStates
}

// RunRoomStates runs the contract suite of chat.RoomStates (and of the
// timeline items' kind and data through chat.Store). newStore must return a
// new, empty store each time, cleaned up by t.Cleanup.
func RunRoomStates(t *testing.T, newStore func(t *testing.T) RoomStore) {
	t.Run("EmptyState", func(t *testing.T) { testEmptyState(t, newStore(t)) })
	t.Run("SaveAndLoad", func(t *testing.T) { testSaveAndLoad(t, newStore(t)) })
	t.Run("ConditionalSave", func(t *testing.T) { testConditionalSave(t, newStore(t)) })
	t.Run("MemberRooms", func(t *testing.T) { testMemberRooms(t, newStore(t)) })
	t.Run("MemberRoomsPaging", func(t *testing.T) { testMemberRoomsPaging(t, newStore(t)) })
	t.Run("Directory", func(t *testing.T) { testDirectory(t, newStore(t)) })
	t.Run("DirectoryPaging", func(t *testing.T) { testDirectoryPaging(t, newStore(t)) })
	t.Run("Find", func(t *testing.T) { testFind(t, newStore(t)) })
	t.Run("ItemRoundTrip", func(t *testing.T) { testItemRoundTrip(t, newStore(t)) })
	t.Run("LoadFoldsLaterItems", func(t *testing.T) { testLoadFolds(t, newStore(t)) })
}

// itemTS is the time of the suite's items (milliseconds: both stores keep
// them exactly).
var itemTS = time.Date(2026, 12, 3, 9, 0, 0, 250e6, time.UTC)

func ptr[T any](v T) *T { return &v }

// room is a room under construction: its items go through the store and are
// folded into st as stored, as the persist stage does.
type room struct {
	t  *testing.T
	s  RoomStore
	st chat.RoomState
	n  int
}

// create stores the create item of a room of kind by owner and folds it in.
func create(t *testing.T, s RoomStore, name, kind, owner string) *room {
	t.Helper()
	r := &room{t: t, s: s, st: chat.NewRoomState(name)}
	r.item(owner, chat.ItemData{Action: chat.ActCreate, RoomKind: kind, Title: ptr("Title of " + name), Topic: ptr("")})
	return r
}

// createDirect stores the create item of the direct room of a and b.
func createDirect(t *testing.T, s RoomStore, name, a, b string) *room {
	t.Helper()
	r := &room{t: t, s: s, st: chat.NewRoomState(name)}
	r.item(a, chat.ItemData{Action: chat.ActCreate, RoomKind: chat.RoomDirect, Members: []string{a, b}})
	return r
}

// item stores one membership item of actor and folds it in.
func (r *room) item(actor string, d chat.ItemData) chat.Message {
	r.t.Helper()
	r.n++
	m := chat.NewItem(chat.Author{Name: actor}, r.st.Room, fmt.Sprintf("item-%d", r.n), d, itemTS)
	out := mustAppend(r.t, r.s, m)
	r.st.Apply(&out[0])
	return out[0]
}

// send stores a plain message of user and folds it in.
func (r *room) send(user string) chat.Message {
	r.t.Helper()
	r.n++
	m := chat.Message{Room: r.st.Room, ID: fmt.Sprintf("msg-%d", r.n), User: user, Text: "hello from " + user, TS: chat.Timestamp(itemTS)}
	out := mustAppend(r.t, r.s, m)
	r.st.Apply(&out[0])
	return out[0]
}

func (r *room) add(actor, target string) {
	r.item(actor, chat.ItemData{Action: chat.ActAdd, Target: target})
}

func (r *room) save() {
	r.t.Helper()
	must(r.t, r.s.SaveRoomState(r.t.Context(), r.st.Clone()), "SaveRoomState "+r.st.Room)
}

func mustState(t *testing.T, s RoomStore, name string) chat.RoomState {
	t.Helper()
	st, err := s.RoomState(t.Context(), name)
	must(t, err, "RoomState "+name)
	return st
}

func equalState(t *testing.T, what string, got, want chat.RoomState) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func testEmptyState(t *testing.T, s RoomStore) {
	equalState(t, "state of a room never saved", mustState(t, s, "nowhere"), chat.NewRoomState("nowhere"))
	// A room with v1 messages but no saved state: still nothing saved.
	mustAppend(t, s, msg("old", "a"))
	equalState(t, "state of a room with messages, never saved", mustState(t, s, "old"), chat.NewRoomState("old"))
	st, err := chat.LoadRoomState(t.Context(), s, s, "old")
	must(t, err, "LoadRoomState")
	if st.Seq != 1 || st.RoomKind() != chat.RoomPublic || st.Role("alice") != chat.RoleMember {
		t.Fatalf("loaded state of a v1 room: %+v", st)
	}
}

func testSaveAndLoad(t *testing.T, s RoomStore) {
	r := create(t, s, "club", chat.RoomPrivate, "alice")
	r.add("alice", "bob")
	r.add("alice", "carol.d") // a name with a dot: no trouble as a key
	r.add("alice", "dave")
	r.item("alice", chat.ItemData{Action: chat.ActRole, Target: "bob", Role: chat.RoleModerator})
	r.item("bob", chat.ItemData{Action: chat.ActBan, Target: "dave", Until: "2027-01-01T00:00:00.000Z", Reason: "spam"})
	r.item("bob", chat.ItemData{Action: chat.ActMute, Target: "carol.d", Until: "2026-12-04T00:00:00.000Z"})
	r.item("alice", chat.ItemData{Action: chat.ActUpdate, Title: ptr("Club"), Topic: ptr("Ünïcode topic"), SlowModeS: ptr(30)})
	r.send("carol.d")
	if r.st.Seq != 9 || len(r.st.Members) != 3 || len(r.st.Bans) != 1 || len(r.st.Mutes) != 1 || len(r.st.LastSent) != 1 {
		t.Fatalf("the suite's fold is not what it means to test: %+v", r.st)
	}
	r.save()
	equalState(t, "saved state", mustState(t, s, "club"), r.st)
}

func testConditionalSave(t *testing.T, s RoomStore) {
	ctx := t.Context()
	r := create(t, s, "club", chat.RoomPublic, "alice")
	old := r.st.Clone() // seq 1
	r.add("alice", "bob")
	r.save() // seq 2
	must(t, s.SaveRoomState(ctx, old), "save an older state")
	equalState(t, "after saving an older state", mustState(t, s, "club"), r.st)
	same := r.st.Clone()
	same.Title = "not saved: same seq"
	must(t, s.SaveRoomState(ctx, same), "save at the same seq")
	equalState(t, "after saving at the same seq", mustState(t, s, "club"), r.st)
	// The indexes follow the saved state, not the ignored one.
	wantRooms(t, "bob after an older save", memberRooms(t, s, "bob", chat.RoomQuery{Limit: 10}), []string{"club"}, false)
	r.add("alice", "carol")
	r.save()
	equalState(t, "after saving a newer state", mustState(t, s, "club"), r.st)
}

func memberRooms(t *testing.T, s RoomStore, user string, q chat.RoomQuery) chat.SummaryPage {
	t.Helper()
	p, err := s.MemberRooms(t.Context(), user, q)
	must(t, err, "MemberRooms "+user)
	if p.Rooms == nil {
		t.Fatalf("MemberRooms %s: nil Rooms", user)
	}
	return p
}

func directory(t *testing.T, s RoomStore, user string, q chat.RoomQuery) chat.SummaryPage {
	t.Helper()
	p, err := s.Directory(t.Context(), user, q)
	must(t, err, "Directory")
	if p.Rooms == nil {
		t.Fatalf("Directory: nil Rooms")
	}
	return p
}

func roomNames(p chat.SummaryPage) []string {
	out := make([]string, len(p.Rooms))
	for i, r := range p.Rooms {
		out[i] = r.Room
	}
	return out
}

func wantRooms(t *testing.T, what string, p chat.SummaryPage, want []string, more bool) {
	t.Helper()
	if got := roomNames(p); !slices.Equal(got, want) || p.More != more {
		t.Fatalf("%s: rooms %q more %v, want %q more %v", what, got, p.More, want, more)
	}
}

func summaryOf(t *testing.T, p chat.SummaryPage, name string) chat.RoomSummary {
	t.Helper()
	for _, r := range p.Rooms {
		if r.Room == name {
			return r
		}
	}
	t.Fatalf("%s not in %q", name, roomNames(p))
	return chat.RoomSummary{}
}

func testMemberRooms(t *testing.T, s RoomStore) {
	all := chat.RoomQuery{Limit: 100}
	wantRooms(t, "a user in no room", memberRooms(t, s, "bob", all), []string{}, false)

	r1 := create(t, s, "r1", chat.RoomPrivate, "alice")
	r1.add("alice", "bob")
	r1.item("alice", chat.ItemData{Action: chat.ActUpdate, Topic: ptr("the topic"), SlowModeS: ptr(10)})
	r1.save()
	r2 := create(t, s, "r2", chat.RoomPublic, "carol")
	r2.send("bob") // sending to a public room makes you a member
	r2.save()
	d := createDirect(t, s, "dm", "bob", "erin")
	d.save()

	p := memberRooms(t, s, "bob", all)
	wantRooms(t, "bob's rooms", p, []string{"dm", "r1", "r2"}, false)
	want := chat.RoomSummary{Room: "r1", Kind: chat.RoomPrivate, Title: "Title of r1", Topic: "the topic", SlowModeS: 10, LastSeq: 3, Role: chat.RoleMember}
	if got := summaryOf(t, p, "r1"); got != want {
		t.Fatalf("r1 for bob: %+v, want %+v", got, want)
	}
	if got := summaryOf(t, p, "dm"); got.Kind != chat.RoomDirect || got.Role != chat.RoleMember || got.LastSeq != 1 {
		t.Fatalf("dm for bob: %+v", got)
	}
	if got := summaryOf(t, p, "r2"); got.Kind != chat.RoomPublic || got.Role != chat.RoleMember || got.LastSeq != 2 {
		t.Fatalf("r2 for bob: %+v", got)
	}
	if got := summaryOf(t, memberRooms(t, s, "alice", all), "r1"); got.Role != chat.RoleOwner {
		t.Fatalf("r1 for alice: %+v", got)
	}

	// A role change is reported; a removal drops the room from the list.
	r2.item("carol", chat.ItemData{Action: chat.ActRole, Target: "bob", Role: chat.RoleModerator})
	r2.save()
	r1.item("alice", chat.ItemData{Action: chat.ActRemove, Target: "bob"})
	r1.save()
	p = memberRooms(t, s, "bob", all)
	wantRooms(t, "bob's rooms after a removal", p, []string{"dm", "r2"}, false)
	if got := summaryOf(t, p, "r2"); got.Role != chat.RoleModerator || got.LastSeq != 3 {
		t.Fatalf("r2 for bob after the role change: %+v", got)
	}
	wantRooms(t, "alice's rooms", memberRooms(t, s, "alice", all), []string{"r1"}, false)

	// Added again, listed again, with the role of the new membership.
	r1.add("alice", "bob")
	r1.save()
	if got := summaryOf(t, memberRooms(t, s, "bob", all), "r1"); got.Role != chat.RoleMember || got.LastSeq != 5 {
		t.Fatalf("r1 for bob after being added again: %+v", got)
	}
	// A leave and a ban end a membership too.
	r1.item("bob", chat.ItemData{Action: chat.ActLeave, Target: "bob"})
	r1.save()
	r2.item("carol", chat.ItemData{Action: chat.ActBan, Target: "bob"})
	r2.save()
	wantRooms(t, "bob's rooms after a leave and a ban", memberRooms(t, s, "bob", all), []string{"dm"}, false)
}

// walk pages through list with limit and returns the names in order, checking
// that every page but the last is full and says More.
func walk(t *testing.T, list func(q chat.RoomQuery) chat.SummaryPage, limit int) []string {
	t.Helper()
	var names []string
	q := chat.RoomQuery{Limit: limit}
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatalf("paging does not end: %q", names)
		}
		p := list(q)
		if len(p.Rooms) > limit || p.More && len(p.Rooms) != limit {
			t.Fatalf("page after %q: %d rooms, more %v, limit %d", q.After, len(p.Rooms), p.More, limit)
		}
		names = append(names, roomNames(p)...)
		if !p.More {
			return names
		}
		q.After = p.Rooms[len(p.Rooms)-1].Room
	}
}

func testMemberRoomsPaging(t *testing.T, s RoomStore) {
	var want []string
	for i := range 7 {
		name := fmt.Sprintf("room-%d", i)
		r := create(t, s, name, chat.RoomPrivate, "alice")
		if i%3 != 1 { // bob is in 5 of the 7
			r.add("alice", "bob")
			want = append(want, name)
		}
		r.save()
	}
	list := func(q chat.RoomQuery) chat.SummaryPage { return memberRooms(t, s, "bob", q) }
	wantRooms(t, "first page", list(chat.RoomQuery{Limit: 2}), want[:2], true)
	wantRooms(t, "page after a room bob is not in", list(chat.RoomQuery{After: "room-1", Limit: 2}), []string{"room-2", "room-3"}, true)
	wantRooms(t, "last page, exactly full", list(chat.RoomQuery{After: "room-3", Limit: 2}), []string{"room-5", "room-6"}, false)
	wantRooms(t, "after the last", list(chat.RoomQuery{After: "room-6", Limit: 2}), []string{}, false)
	wantRooms(t, "one page of all", list(chat.RoomQuery{Limit: 5}), want, false)
	for _, limit := range []int{1, 2, 3, 4} {
		if got := walk(t, list, limit); !slices.Equal(got, want) {
			t.Fatalf("walk with limit %d: %q, want %q", limit, got, want)
		}
	}
}

func testDirectory(t *testing.T, s RoomStore) {
	all := chat.RoomQuery{Limit: 100}
	wantRooms(t, "empty store", directory(t, s, "bob", all), []string{}, false)

	pub := create(t, s, "pub", chat.RoomPublic, "alice")
	pub.add("alice", "bob")
	pub.item("alice", chat.ItemData{Action: chat.ActUpdate, Topic: ptr("open to all"), SlowModeS: ptr(5)})
	pub.save()
	priv := create(t, s, "priv", chat.RoomPrivate, "bob")
	priv.save()
	dm := createDirect(t, s, "dm", "alice", "bob")
	dm.save()
	mustAppend(t, s, msg("legacy", "a"), msg("legacy", "b")) // v1: messages, never a saved state
	// A private room whose create item is stored and whose state is not
	// saved yet (the saver is between its two writes, or died there).
	create(t, s, "unsaved", chat.RoomPrivate, "carol")

	p := directory(t, s, "bob", all)
	wantRooms(t, "directory", p, []string{"legacy", "pub"}, false)
	want := chat.RoomSummary{Room: "pub", Kind: chat.RoomPublic, Title: "Title of pub", Topic: "open to all", SlowModeS: 5, LastSeq: 3, Role: chat.RoleMember}
	if got := summaryOf(t, p, "pub"); got != want {
		t.Fatalf("pub for bob: %+v, want %+v", got, want)
	}
	want = chat.RoomSummary{Room: "legacy", Kind: chat.RoomPublic, LastSeq: 2}
	if got := summaryOf(t, p, "legacy"); got != want {
		t.Fatalf("legacy for bob: %+v, want %+v", got, want)
	}
	if got := summaryOf(t, directory(t, s, "alice", all), "pub"); got.Role != chat.RoleOwner {
		t.Fatalf("pub for alice: %+v", got)
	}
	if got := summaryOf(t, directory(t, s, "zoe", all), "pub"); got.Role != "" {
		t.Fatalf("pub for a non-member: %+v", got)
	}
	// A member removed from a public room finds it still, without a role.
	pub.item("alice", chat.ItemData{Action: chat.ActRemove, Target: "bob"})
	pub.save()
	if got := summaryOf(t, directory(t, s, "bob", all), "pub"); got.Role != "" || got.LastSeq != 4 {
		t.Fatalf("pub for bob after his removal: %+v", got)
	}
}

func testDirectoryPaging(t *testing.T, s RoomStore) {
	var want []string
	for i := range 9 {
		name := fmt.Sprintf("room-%d", i)
		switch i % 3 {
		case 0:
			create(t, s, name, chat.RoomPublic, "alice").save()
			want = append(want, name)
		case 1:
			create(t, s, name, chat.RoomPrivate, "alice").save()
		case 2:
			mustAppend(t, s, msg(name, "a"))
			want = append(want, name)
		}
	}
	list := func(q chat.RoomQuery) chat.SummaryPage { return directory(t, s, "bob", q) }
	wantRooms(t, "first page", list(chat.RoomQuery{Limit: 2}), want[:2], true)
	wantRooms(t, "page after a private room", list(chat.RoomQuery{After: "room-1", Limit: 3}), []string{"room-2", "room-3", "room-5"}, true)
	wantRooms(t, "last page, exactly full", list(chat.RoomQuery{After: "room-5", Limit: 2}), []string{"room-6", "room-8"}, false)
	wantRooms(t, "after the last public room", list(chat.RoomQuery{After: "room-8", Limit: 2}), []string{}, false)
	for _, limit := range []int{1, 2, 5, 6} {
		if got := walk(t, list, limit); !slices.Equal(got, want) {
			t.Fatalf("walk with limit %d: %q, want %q", limit, got, want)
		}
	}
}

func testFind(t *testing.T, s RoomStore) {
	ctx := t.Context()
	r := create(t, s, "club", chat.RoomPublic, "alice")
	item := r.item("alice", chat.ItemData{Action: chat.ActAdd, Target: "bob"})
	sent := r.send("bob")
	for _, want := range []chat.Message{item, sent} {
		got, ok, err := s.Find(ctx, "club", want.User, want.ID)
		must(t, err, "Find")
		if !ok || !reflect.DeepEqual(got, want) {
			t.Fatalf("Find %s/%s: %+v %v, want %+v", want.User, want.ID, got, ok, want)
		}
	}
	for _, c := range []struct{ room, user, id string }{
		{"club", "alice", "no-such-id"},
		{"club", "bob", item.ID}, // alice's id, another user
		{"elsewhere", "alice", item.ID},
	} {
		got, ok, err := s.Find(ctx, c.room, c.user, c.id)
		must(t, err, "Find")
		if ok {
			t.Fatalf("Find %+v: found %+v, want none", c, got)
		}
	}
}

func testItemRoundTrip(t *testing.T, s RoomStore) {
	items := []chat.Message{
		chat.NewItem(chat.Author{Name: "alice", Guest: true}, "club", "c", chat.ItemData{Action: chat.ActCreate, RoomKind: chat.RoomDirect, Members: []string{"alice", "bob"}, Title: ptr(""), Topic: ptr("a topic")}, itemTS),
		chat.NewItem(chat.Author{Name: "alice"}, "club", "u", chat.ItemData{Action: chat.ActUpdate, SlowModeS: ptr(0)}, itemTS),
		chat.NewItem(chat.Author{Name: "alice"}, "club", "b", chat.ItemData{Action: chat.ActBan, Target: "bob.x", Until: "2027-01-01T00:00:00.000Z", Reason: "spam"}, itemTS),
		chat.NewItem(chat.Author{Name: "alice"}, "club", "r", chat.ItemData{Action: chat.ActRole, Target: "bob.x", Role: chat.RoleModerator}, itemTS),
		chat.NewItem(chat.Author{Name: "alice"}, "club", "e", chat.ItemData{}, itemTS), // data present but empty
		{Room: "club", ID: "m", User: "bob", Text: "plain", TS: chat.Timestamp(itemTS)},
	}
	out := mustAppend(t, s, items...)
	want := make([]chat.Message, len(items))
	for i, m := range items {
		want[i] = stored(m, int64(i+1))
	}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("Append:\n got %+v\nwant %+v", out, want)
	}
	page := mustMessages(t, s, "club", chat.Query{Kind: chat.After, Limit: 10})
	if !reflect.DeepEqual(page.Messages, want) {
		t.Fatalf("history:\n got %+v\nwant %+v", page.Messages, want)
	}
	for i, m := range page.Messages {
		if (m.Data == nil) != (items[i].Data == nil) {
			t.Fatalf("item %d: data %v, want %v", i, m.Data, items[i].Data)
		}
		got, ok, err := s.Find(t.Context(), "club", m.User, m.ID)
		must(t, err, "Find")
		if !ok || !reflect.DeepEqual(got, want[i]) {
			t.Fatalf("Find %s: %+v, want %+v", m.ID, got, want[i])
		}
	}
	// A retry gets the stored items back, data and all.
	again := mustAppend(t, s, items...)
	if !reflect.DeepEqual(again, want) {
		t.Fatalf("Append again:\n got %+v\nwant %+v", again, want)
	}
}

func testLoadFolds(t *testing.T, s RoomStore) {
	r := create(t, s, "club", chat.RoomPrivate, "alice")
	r.add("alice", "bob")
	r.save() // seq 2
	r.add("alice", "carol")
	r.item("alice", chat.ItemData{Action: chat.ActRemove, Target: "bob"})
	r.send("carol") // seq 5, never saved
	if st := mustState(t, s, "club"); st.Seq != 2 {
		t.Fatalf("saved state at seq %d, want 2", st.Seq)
	}
	got, err := chat.LoadRoomState(t.Context(), s, s, "club")
	must(t, err, "LoadRoomState")
	equalState(t, "loaded state", got, r.st)
	if got.Seq != 5 || got.IsMember("bob") || !got.IsMember("carol") {
		t.Fatalf("loaded state: %+v", got)
	}
}
