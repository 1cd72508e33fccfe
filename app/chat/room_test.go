package chat_test

import (
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
)

// The fold of a room's timeline, by a table: each step is an item a user
// sends, the decision Check gives it (the error code, "" for allowed), and
// allowed items are folded in with the next seq, as the persist stage does.

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

type step struct {
	user string
	item chat.ItemData // zero Action: a plain message
	at   time.Duration // after t0
	want string        // error code; "" allowed
}

func member(action, target string) chat.ItemData {
	return chat.ItemData{Action: action, Target: target}
}

func create(kind string) chat.ItemData { return chat.ItemData{Action: chat.ActCreate, RoomKind: kind} }

func until(d time.Duration) string { return chat.Timestamp(t0.Add(d)) }

func runSteps(t *testing.T, steps []step) chat.RoomState {
	t.Helper()
	st := chat.NewRoomState("r")
	for i, s := range steps {
		var m chat.Message
		if s.item.Action == "" {
			m = chat.Message{Room: "r", ID: "m", User: s.user, Text: "hi", TS: chat.Timestamp(t0.Add(s.at))}
		} else {
			m = chat.NewItem(chat.Author{Name: s.user}, "r", "i", s.item, t0.Add(s.at))
		}
		err := st.Check(&m)
		got := ""
		if err != nil {
			got = chat.ErrorCode(err)
		}
		if got != s.want {
			t.Fatalf("step %d (%s %s %s): got %q (%v), want %q", i, s.user, s.item.Action, s.item.Target, got, err, s.want)
		}
		if err == nil {
			m.Seq = st.Seq + 1
			st.Apply(&m)
		}
	}
	return st
}

func TestRoomFold(t *testing.T) {
	ban := func(target, u string) chat.ItemData {
		return chat.ItemData{Action: chat.ActBan, Target: target, Until: u}
	}
	mute := func(target, u string) chat.ItemData {
		return chat.ItemData{Action: chat.ActMute, Target: target, Until: u}
	}
	role := func(target, r string) chat.ItemData {
		return chat.ItemData{Action: chat.ActRole, Target: target, Role: r}
	}
	slow := 30
	cases := []struct {
		name  string
		steps []step
		check func(t *testing.T, st chat.RoomState)
	}{
		{"private room: members only", []step{
			{user: "alice", item: create(chat.RoomPrivate)},
			{user: "bob", want: chat.ENotFound},                                   // not a member: no such room
			{user: "bob", item: member(chat.ActAdd, "bob"), want: chat.ENotFound}, // cannot add himself
			{user: "alice", item: member(chat.ActAdd, "bob")},
			{user: "bob"},
			{user: "bob", item: member(chat.ActAdd, "carol"), want: chat.EForbidden}, // members do not add
			{user: "alice", item: member(chat.ActAdd, "bob"), want: chat.EConflict},
		}, func(t *testing.T, st chat.RoomState) {
			if st.Role("alice") != chat.RoleOwner || st.Role("bob") != chat.RoleMember || st.Members["bob"].Since != 2 {
				t.Fatalf("members %+v", st.Members)
			}
			if st.VisibleFrom("bob") != 2 || st.VisibleFrom("alice") != 1 {
				t.Fatal("visible from", st.VisibleFrom("bob"))
			}
		}},
		{"create twice", []step{
			{user: "alice", item: create(chat.RoomPublic)},
			{user: "bob", item: create(chat.RoomPrivate), want: chat.EConflict},
		}, nil},
		{"a v1 room: public, made by its first message, nobody moderates", []step{
			{user: "alice"},
			{user: "bob"},
			{user: "alice", item: create(chat.RoomPublic), want: chat.EConflict},
			{user: "alice", item: ban("bob", ""), want: chat.EForbidden},
		}, func(t *testing.T, st chat.RoomState) {
			if st.Kind != chat.RoomPublic || !st.IsMember("bob") || st.Role("alice") != chat.RoleMember {
				t.Fatalf("state %+v", st)
			}
		}},
		{"roles: nobody acts on a role as high as theirs", []step{
			{user: "alice", item: create(chat.RoomPublic)},
			{user: "bob"}, {user: "carol"}, {user: "dave"},
			{user: "alice", item: role("bob", chat.RoleModerator)},
			{user: "bob", item: member(chat.ActRemove, "alice"), want: chat.EForbidden},   // a member removing an owner: 403
			{user: "bob", item: role("carol", chat.RoleModerator), want: chat.EForbidden}, // owners only
			{user: "alice", item: role("carol", chat.RoleModerator)},
			{user: "bob", item: member(chat.ActRemove, "carol"), want: chat.EForbidden}, // moderator on moderator
			{user: "bob", item: member(chat.ActRemove, "dave")},
			{user: "bob", item: member(chat.ActRemove, "dave"), want: chat.ENotFound},
			{user: "alice", item: role("carol", "king"), want: chat.EBadRequest},
			{user: "alice", item: member(chat.ActLeave, "alice"), want: chat.EConflict}, // the last owner
			{user: "alice", item: role("alice", chat.RoleMember), want: chat.EConflict},
			{user: "alice", item: role("bob", chat.RoleOwner)},
			{user: "alice", item: member(chat.ActLeave, "alice")},
			{user: "carol", item: member(chat.ActLeave, "carol")},
		}, func(t *testing.T, st chat.RoomState) {
			if st.IsMember("alice") || st.IsMember("carol") || st.IsMember("dave") || st.Role("bob") != chat.RoleOwner {
				t.Fatalf("members %+v", st.Members)
			}
		}},
		{"ban: out until it expires, then allowed again", []step{
			{user: "alice", item: create(chat.RoomPublic)},
			{user: "bob"},
			{user: "alice", item: ban("bob", until(time.Hour)), at: time.Minute},
			{user: "bob", at: 2 * time.Minute, want: chat.EForbidden},
			{user: "bob", item: member(chat.ActAdd, "bob"), at: 2 * time.Minute, want: chat.EForbidden},
			{user: "alice", item: member(chat.ActAdd, "bob"), at: 2 * time.Minute, want: chat.EForbidden},
			{user: "bob", at: 2 * time.Hour},                                                               // expired: allowed, and a member again by sending
			{user: "alice", item: ban("bob", until(time.Hour)), at: 3 * time.Hour, want: chat.EBadRequest}, // until in the past
			{user: "alice", item: ban("bob", ""), at: 3 * time.Hour},
			{user: "bob", at: 1000 * time.Hour, want: chat.EForbidden}, // for good
			{user: "alice", item: member(chat.ActUnban, "bob"), at: 1000 * time.Hour},
			{user: "alice", item: member(chat.ActUnban, "bob"), at: 1000 * time.Hour, want: chat.ENotFound},
			{user: "bob", at: 1000 * time.Hour},
		}, nil},
		{"ban in a private room removes the member", []step{
			{user: "alice", item: create(chat.RoomPrivate)},
			{user: "alice", item: member(chat.ActAdd, "bob")},
			{user: "alice", item: ban("bob", "")},
			{user: "bob", want: chat.ENotFound},
			{user: "alice", item: member(chat.ActUnban, "bob")},
			{user: "bob", want: chat.ENotFound}, // unbanned is not re-added
			{user: "alice", item: member(chat.ActAdd, "bob")},
			{user: "bob"},
		}, func(t *testing.T, st chat.RoomState) {
			if st.Members["bob"].Since != 5 {
				t.Fatalf("bob since %d", st.Members["bob"].Since)
			}
		}},
		{"mute: reads, cannot send until it ends", []step{
			{user: "alice", item: create(chat.RoomPublic)},
			{user: "bob"},
			{user: "alice", item: mute("bob", ""), want: chat.EBadRequest}, // a mute needs an until
			{user: "alice", item: mute("bob", until(time.Hour))},
			{user: "bob", at: time.Minute, want: chat.EForbidden},
			{user: "bob", at: 61 * time.Minute},
			{user: "alice", item: mute("bob", until(5*time.Hour)), at: 2 * time.Hour},
			{user: "alice", item: member(chat.ActUnmute, "bob"), at: 2 * time.Hour},
			{user: "bob", at: 2 * time.Hour},
		}, func(t *testing.T, st chat.RoomState) {
			if err := st.CanRead("bob", t0); err != nil {
				t.Fatal(err)
			}
		}},
		{"slow mode: one message per interval, moderators exempt", []step{
			{user: "alice", item: create(chat.RoomPublic)},
			{user: "alice", item: chat.ItemData{Action: chat.ActUpdate, SlowModeS: &slow}},
			{user: "bob", at: 0},
			{user: "bob", at: 10 * time.Second, want: chat.ERateLimited},
			{user: "bob", at: 30 * time.Second},
			{user: "alice", at: 30 * time.Second},
			{user: "alice", at: 31 * time.Second},
			{user: "bob", item: chat.ItemData{Action: chat.ActUpdate, SlowModeS: &slow}, want: chat.EForbidden},
		}, nil},
		{"direct room: two members, no moderation", []step{
			{user: "alice", item: chat.ItemData{Action: chat.ActCreate, RoomKind: chat.RoomDirect, Members: []string{"alice", "bob"}}},
			{user: "bob"},
			{user: "carol", want: chat.ENotFound},
			{user: "alice", item: member(chat.ActAdd, "carol"), want: chat.EForbidden},
			{user: "alice", item: ban("bob", ""), want: chat.EForbidden},
			{user: "bob", item: member(chat.ActLeave, "bob"), want: chat.EForbidden},
		}, nil},
		{"a direct room's name is not taken by a first message", nil, func(t *testing.T, _ chat.RoomState) {
			st := chat.NewRoomState(chat.DirectPrefix + "0123")
			m := chat.Message{Room: st.Room, ID: "m", User: "mallory", Text: "mine", TS: chat.Timestamp(t0)}
			if err := st.Check(&m); chat.ErrorCode(err) != chat.ENotFound {
				t.Fatalf("got %v", err)
			}
		}},
		{"items about a room that does not exist", []step{
			{user: "alice", item: member(chat.ActAdd, "bob"), want: chat.ENotFound},
			{user: "alice", item: chat.ItemData{Action: "dance"}, want: chat.ENotFound},
			{user: "alice", item: create(chat.RoomPublic)},
			{user: "alice", item: chat.ItemData{Action: "dance"}, want: chat.EBadRequest},
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := runSteps(t, c.steps)
			if c.check != nil {
				c.check(t, st)
			}
		})
	}
}

// TestRoomFoldReplays checks that folding the stored items again (what a
// loader does from the log) reaches the same state as deciding them.
func TestRoomFoldReplays(t *testing.T) {
	st := chat.NewRoomState("r")
	var log []chat.Message
	items := []chat.ItemData{
		create(chat.RoomPrivate), member(chat.ActAdd, "bob"), member(chat.ActAdd, "carol"),
		{Action: chat.ActRole, Target: "bob", Role: chat.RoleModerator},
		{Action: chat.ActBan, Target: "carol", Until: until(time.Hour)},
		{Action: chat.ActMute, Target: "bob", Until: until(time.Hour)},
	}
	for _, d := range items {
		m := chat.NewItem(chat.Author{Name: "alice"}, "r", chat.NewID(), d, t0)
		if err := st.Check(&m); err != nil {
			t.Fatal(err)
		}
		m.Seq = st.Seq + 1
		st.Apply(&m)
		log = append(log, m)
	}
	again := chat.NewRoomState("r")
	for i := range log {
		again.Apply(&log[i])
	}
	if len(again.Members) != 2 || again.Role("bob") != chat.RoleModerator || !again.Banned("carol", t0) || !again.Muted("bob", t0) || again.Seq != st.Seq {
		t.Fatalf("replayed %+v, decided %+v", again, st)
	}
	if reason, ok := log[4].Ends("carol"); !ok || reason != "banned" {
		t.Fatal("a ban ends the target's subscriptions", reason, ok)
	}
	if _, ok := log[3].Ends("bob"); ok {
		t.Fatal("a role change ends nothing")
	}
}
