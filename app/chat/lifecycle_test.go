package chat_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
)

func TestItemDataTargetOnTheWire(t *testing.T) {
	on := false
	for _, c := range []struct {
		d    chat.ItemData
		wire string
	}{
		{chat.ItemData{Action: "add", Target: "bob"}, `{"action":"add","target":"bob"}`},
		{chat.ItemData{TargetSeq: 12}, `{"target":12}`},
		{chat.ItemData{TargetSeq: 3, Emoji: "👍", On: &on}, `{"emoji":"👍","on":false,"target":3}`},
		{chat.ItemData{Action: "create", RoomKind: "public"}, `{"action":"create","kind":"public"}`},
	} {
		b, err := json.Marshal(c.d)
		if err != nil || string(b) != c.wire {
			t.Fatalf("Marshal(%+v) = %s, %v; want %s", c.d, b, err, c.wire)
		}
		var back chat.ItemData
		if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, c.d) {
			t.Fatalf("Unmarshal(%s) = %+v, %v; want %+v", b, back, err, c.d)
		}
	}
	var d chat.ItemData
	if err := json.Unmarshal([]byte(`{"target":[1]}`), &d); err == nil {
		t.Fatal("a target that is neither a name nor a seq was taken")
	}
}

// TestFold is the folding rule's table: the cases both stores and every
// client fold alike.
func TestFold(t *testing.T) {
	ts := chat.Timestamp(time.Unix(1700000000, 0))
	off := false
	msg := chat.Message{Room: "r", Seq: 1, ID: "m", User: "alice", Text: "v1", TS: ts}
	item := func(seq int64, user, kind, text, emoji string, on *bool) chat.Message {
		return chat.Message{Room: "r", Seq: seq, ID: "i", User: user, Kind: kind, Text: text, TS: ts,
			Data: &chat.ItemData{TargetSeq: 1, Emoji: emoji, On: on}}
	}
	for _, c := range []struct {
		name  string
		items []chat.Message
		want  func(m *chat.Message)
	}{
		{"edit", []chat.Message{item(2, "alice", chat.KindEdit, "v2", "", nil)},
			func(m *chat.Message) { m.Text, m.EditedTS = "v2", ts }},
		{"two edits: the last stands", []chat.Message{item(2, "alice", chat.KindEdit, "v2", "", nil), item(3, "alice", chat.KindEdit, "v3", "", nil)},
			func(m *chat.Message) { m.Text, m.EditedTS = "v3", ts }},
		{"reactions in order, twice is once, off takes back", []chat.Message{
			item(2, "bob", chat.KindReaction, "", "👍", nil), item(3, "carol", chat.KindReaction, "", "👍", nil),
			item(4, "bob", chat.KindReaction, "", "👍", nil), item(5, "carol", chat.KindReaction, "", "🎉", nil),
			item(6, "carol", chat.KindReaction, "", "🎉", &off), item(7, "dave", chat.KindReaction, "", "👀", &off)},
			func(m *chat.Message) { m.Reactions = map[string][]string{"👍": {"bob", "carol"}} }},
		{"delete erases, then nothing takes", []chat.Message{
			item(2, "alice", chat.KindEdit, "v2", "", nil), item(3, "bob", chat.KindReaction, "", "👍", nil),
			item(4, "carol", chat.KindDelete, "carol deleted a message", "", nil),
			item(5, "alice", chat.KindEdit, "back", "", nil), item(6, "bob", chat.KindReaction, "", "🎉", nil)},
			func(m *chat.Message) { m.Text, m.Deleted = "", true }},
		{"the last reaction off leaves none", []chat.Message{item(2, "bob", chat.KindReaction, "", "👍", nil), item(3, "bob", chat.KindReaction, "", "👍", &off)},
			func(m *chat.Message) {}},
	} {
		got := []chat.Message{msg}
		chat.FoldInto(got, c.items)
		want := msg
		c.want(&want)
		if !reflect.DeepEqual(got[0], want) {
			t.Errorf("%s: %+v, want %+v", c.name, got[0], want)
		}
		// Folding is not sharing: the reactions of one fold are not
		// another's.
		again := []chat.Message{msg}
		chat.FoldInto(again, c.items)
		if !reflect.DeepEqual(again[0], want) {
			t.Errorf("%s folded twice from the same message: %+v", c.name, again[0])
		}
	}
	// An item about another message, or older than the message, is not
	// folded in.
	page := []chat.Message{msg}
	other := item(5, "alice", chat.KindEdit, "elsewhere", "", nil)
	other.Data.TargetSeq = 2
	chat.FoldInto(page, []chat.Message{other})
	if page[0].Text != "v1" {
		t.Fatalf("folded an item about another message: %+v", page[0])
	}
}

func TestValidateEmoji(t *testing.T) {
	for _, e := range []string{"👍", "👍🏽", "🇰🇷", "👨‍👩‍👧", "❤️", "1️⃣", "☕", "🏳️‍🌈"} {
		if err := chat.ValidateEmoji(e); err != nil {
			t.Errorf("%q refused: %v", e, err)
		}
	}
	for _, e := range []string{"", "a", "👍👍", "ab", "\u200d", "👍 ", "🇺", "1", "#", "é", "👍\u0301\u0301"} {
		if err := chat.ValidateEmoji(e); err == nil {
			t.Errorf("%q taken", e)
		}
	}
}

func TestCheckLifecycle(t *testing.T) {
	st := chat.NewRoomState("r")
	ts := chat.Timestamp(time.Now())
	apply := func(m chat.Message) { st.Apply(&m) }
	apply(chat.Message{Room: "r", Seq: 1, User: "owner", TS: ts, Kind: chat.KindMember, Data: &chat.ItemData{Action: chat.ActCreate, RoomKind: chat.RoomPrivate}})
	apply(chat.Message{Room: "r", Seq: 2, User: "owner", TS: ts, Kind: chat.KindMember, Data: &chat.ItemData{Action: chat.ActAdd, Target: "alice"}})
	apply(chat.Message{Room: "r", Seq: 3, User: "owner", TS: ts, Kind: chat.KindMember, Data: &chat.ItemData{Action: chat.ActAdd, Target: "mod"}})
	apply(chat.Message{Room: "r", Seq: 4, User: "owner", TS: ts, Kind: chat.KindMember, Data: &chat.ItemData{Action: chat.ActRole, Target: "mod", Role: chat.RoleModerator}})
	apply(chat.Message{Room: "r", Seq: 5, User: "alice", TS: ts, Text: "hi"})
	mine := chat.TargetInfo{Found: true, User: "alice"}
	for _, c := range []struct {
		user, kind string
		target     int64
		info       chat.TargetInfo
		code       string
	}{
		{"alice", chat.KindEdit, 5, mine, ""},
		{"mod", chat.KindEdit, 5, mine, chat.EForbidden},
		{"mod", chat.KindDelete, 5, mine, ""},
		{"owner", chat.KindDelete, 5, mine, ""},
		{"alice", chat.KindDelete, 5, mine, ""},
		{"stranger", chat.KindReaction, 5, mine, chat.ENotFound},
		{"alice", chat.KindReaction, 5, mine, ""},
		{"alice", chat.KindEdit, 5, chat.TargetInfo{Found: true, User: "alice", Deleted: true}, chat.EConflict},
		{"alice", chat.KindReaction, 5, chat.TargetInfo{Found: true, User: "alice", Deleted: true}, chat.EConflict},
		{"alice", chat.KindEdit, 1, chat.TargetInfo{Found: true, User: "owner", Kind: chat.KindMember}, chat.ENotFound},
		{"alice", chat.KindEdit, 9, chat.TargetInfo{}, chat.ENotFound},
		{"alice", chat.KindEdit, 5, chat.TargetInfo{}, chat.ENotFound}, // gone (retention)
	} {
		m := chat.NewLifecycle(chat.Author{Name: c.user}, "r", "id", c.kind, c.target, "new", "👍", true, time.Now())
		err := st.CheckLifecycle(&m, c.info)
		if got := codeOf(err); got != c.code {
			t.Errorf("%s %s of %d (%+v): %v, want %q", c.user, c.kind, c.target, c.info, err, c.code)
		}
	}
	// reply_to: an item stored before it.
	for reply, code := range map[int64]string{0: "", 5: "", 6: chat.EBadRequest, -1: chat.EBadRequest} {
		m := chat.Message{Room: "r", User: "alice", Text: "re", TS: ts, ReplyTo: reply}
		if got := codeOf(st.Check(&m)); got != code {
			t.Errorf("reply_to %d: %q, want %q", reply, got, code)
		}
	}
}

func codeOf(err error) string {
	if err == nil {
		return ""
	}
	return chat.ErrorCode(err)
}
