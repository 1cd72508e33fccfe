package bolt

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/repository/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) chat.Store {
		return openTemp(t, filepath.Join(t.TempDir(), "parley.db"))
	})
}

func TestPeople(t *testing.T) {
	storetest.RunPeople(t, func(t *testing.T) chat.People {
		return openTemp(t, filepath.Join(t.TempDir(), "parley.db"))
	})
}

func TestRoomStates(t *testing.T) {
	storetest.RunRoomStates(t, func(t *testing.T) storetest.RoomStore {
		return openTemp(t, filepath.Join(t.TempDir(), "parley.db"))
	})
}

func TestMarks(t *testing.T) {
	storetest.RunMarks(t, func(t *testing.T) storetest.MarkStore {
		return openTemp(t, filepath.Join(t.TempDir(), "parley.db"))
	})
}

func TestNotifications(t *testing.T) {
	storetest.RunNotifications(t, func(t *testing.T) chat.Notifications {
		return openTemp(t, filepath.Join(t.TempDir(), "parley.db"))
	})
}

// openTemp opens the store at path and closes it when the test ends.
func openTemp(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func message(room, id string) chat.Message {
	return chat.Message{Room: room, ID: id, User: "alice", Text: "hi " + id, TS: chat.Timestamp(time.Now())}
}

// TestReopen is the reason the store exists: history survives a restart and
// seqs continue where they stopped.
func TestReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "data", "parley.db") // data/ does not exist yet

	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	before, err := s.Append(ctx, []chat.Message{message("general", "a"), message("general", "b"), message("random", "c")})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if err := s.EnsureRoom(ctx, "lobby"); err != nil {
		t.Fatalf("EnsureRoom: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openTemp(t, path)
	page, err := s.Messages(ctx, "general", chat.Query{Kind: chat.Latest, Limit: 50})
	if err != nil {
		t.Fatalf("Messages: %v", err)
	}
	if !reflect.DeepEqual(page.Messages, before[:2]) {
		t.Fatalf("history after reopen = %+v, want %+v", page.Messages, before[:2])
	}
	roomPage, err := s.Rooms(ctx, chat.RoomQuery{Limit: 100})
	rooms := roomPage.Rooms
	if err != nil {
		t.Fatalf("Rooms: %v", err)
	}
	wantRooms := []chat.RoomInfo{{Room: "general", LastSeq: 2}, {Room: "lobby", LastSeq: 0}, {Room: "random", LastSeq: 1}}
	if !slices.Equal(rooms, wantRooms) {
		t.Fatalf("Rooms after reopen = %+v, want %+v", rooms, wantRooms)
	}
	// The idempotency index survives too: a late retry of "a" is not stored again.
	out, err := s.Append(ctx, []chat.Message{message("general", "a"), message("general", "d")})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if !reflect.DeepEqual(out[0], before[0]) || out[1].Seq != 3 {
		t.Fatalf("Append after reopen = %+v, want the stored a and d at seq 3", out)
	}
}

// TestSecondOpen checks that a second process on the same data dir is told so
// instead of hanging. flock locks belong to the open file, so a second Open
// in this process conflicts just as another process would.
func TestSecondOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	openTemp(t, path)

	start := time.Now()
	s, err := Open(path)
	if err == nil {
		_ = s.Close()
		t.Fatal("second Open succeeded, want an error")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("second Open took %v to fail", took)
	}
	if !errors.Is(err, bolterrors.ErrTimeout) || !strings.Contains(err.Error(), path) {
		t.Fatalf("second Open: %v, want a timeout naming %s", err, path)
	}
}

// TestAppendAllOrNothing makes a batch fail in the middle of its transaction
// (bbolt refuses keys over 32 KiB) and checks that nothing of it stayed,
// not even the seqs it had taken.
func TestAppendAllOrNothing(t *testing.T) {
	ctx := t.Context()
	s := openTemp(t, filepath.Join(t.TempDir(), "parley.db"))

	tooLong := message("general", strings.Repeat("x", 40_000))
	if _, err := s.Append(ctx, []chat.Message{message("general", "a"), message("random", "b"), tooLong}); err == nil {
		t.Fatal("Append of a batch with an unstorable message succeeded")
	}
	if rooms, err := s.Rooms(ctx, chat.RoomQuery{Limit: 10}); err != nil || len(rooms.Rooms) != 0 {
		t.Fatalf("Rooms after a failed batch = %+v, %v; want none", rooms, err)
	}
	out, err := s.Append(ctx, []chat.Message{message("general", "a")})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if out[0].Seq != 1 {
		t.Fatalf("seq after a failed batch = %d, want 1", out[0].Seq)
	}
}

func TestAppendRejectsEmptyKeys(t *testing.T) {
	ctx := t.Context()
	s := openTemp(t, filepath.Join(t.TempDir(), "parley.db"))

	for name, bad := range map[string]chat.Message{
		"empty room": message("", "a"),
		"empty id":   message("general", ""),
		"empty user": {Room: "general", ID: "a", Text: "no user", TS: chat.Timestamp(time.Now())},
	} {
		if _, err := s.Append(ctx, []chat.Message{message("general", "ok"), bad}); err == nil {
			t.Errorf("Append with %s succeeded", name)
		}
	}
	if last, err := s.LastSeq(ctx, "general"); err != nil || last != 0 {
		t.Fatalf("LastSeq after rejected batches = %d, %v; want 0", last, err)
	}
}

func TestMessagesRejectsBadLimit(t *testing.T) {
	s := openTemp(t, filepath.Join(t.TempDir(), "parley.db"))
	if _, err := s.Messages(t.Context(), "general", chat.Query{Kind: chat.Latest, Limit: 0}); err == nil {
		t.Fatal("Messages with limit 0 succeeded")
	}
}

// TestPingAfterClose: readiness must turn false once the store is closed.
func TestPingAfterClose(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "parley.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Ping(t.Context()); err == nil {
		t.Fatal("Ping after Close succeeded")
	}
}

// writeFormat1 writes a file as the store wrote it before format 2, by hand
// and without the store's helpers: no meta bucket, and ids keyed by the id
// alone. rooms maps each room to its messages in seq order (their seqs are
// set here).
func writeFormat1(t *testing.T, path string, rooms map[string][]chat.Message) map[string][]chat.Message {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string][]chat.Message{}
	err = db.Update(func(tx *bbolt.Tx) error {
		top, err := tx.CreateBucket([]byte("rooms"))
		if err != nil {
			return err
		}
		for name, ms := range rooms {
			room, err := top.CreateBucket([]byte(name))
			if err != nil {
				return err
			}
			msgs, err := room.CreateBucket([]byte("msgs"))
			if err != nil {
				return err
			}
			ids, err := room.CreateBucket([]byte("ids"))
			if err != nil {
				return err
			}
			for i, m := range ms {
				m.Seq = int64(i + 1)
				key := binary.BigEndian.AppendUint64(nil, uint64(m.Seq))
				val, err := json.Marshal(m)
				if err != nil {
					return err
				}
				if err := msgs.Put(key, val); err != nil {
					return err
				}
				if err := ids.Put([]byte(m.ID), key); err != nil {
					return err
				}
				out[name] = append(out[name], m)
			}
			if err := room.SetSequence(uint64(len(ms))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("write a format-1 file: %v", err)
	}
	return out
}

func userMessage(room, user, id, text string) chat.Message {
	return chat.Message{Room: room, ID: id, User: user, Text: text, TS: "2026-11-25T10:00:00.123Z"}
}

func history(t *testing.T, s *Store, room string) []chat.Message {
	t.Helper()
	p, err := s.Messages(t.Context(), room, chat.Query{Kind: chat.After, Limit: 200})
	if err != nil {
		t.Fatalf("Messages(%s): %v", room, err)
	}
	return p.Messages
}

// TestMigrateFormat1 opens a file of the old layout: history and rooms stay
// as they were, the idempotency index now answers by (user, id): a retry of
// an old message by its user is not stored again, and the same id by another
// user is a new message with the next seq.
func TestMigrateFormat1(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "parley.db")
	old := writeFormat1(t, path, map[string][]chat.Message{
		"general": {
			userMessage("general", "alice", "a", "alice's a"),
			userMessage("general", "bob", "b", "bob's b"),
			userMessage("general", "alice", "c", "alice's c"),
		},
		"random": {userMessage("random", "carol", "a", "carol's a")},
		"lobby":  {}, // a room created by a join, no messages
	})

	s := openTemp(t, path)
	for room, want := range old {
		if got := history(t, s, room); !reflect.DeepEqual(got, want) {
			t.Fatalf("history of %s after migration = %+v, want %+v", room, got, want)
		}
	}
	rooms, err := s.Rooms(ctx, chat.RoomQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	wantRooms := []chat.RoomInfo{{Room: "general", LastSeq: 3}, {Room: "lobby"}, {Room: "random", LastSeq: 1}}
	if !slices.Equal(rooms.Rooms, wantRooms) || rooms.More {
		t.Fatalf("Rooms after migration = %+v, want %+v", rooms, wantRooms)
	}

	out, err := s.Append(ctx, []chat.Message{
		userMessage("general", "alice", "a", "alice's a, retried"), // old, same user: not stored again
		userMessage("general", "bob", "a", "bob's a"),              // alice's id, another user: new
		userMessage("general", "bob", "b", "bob's b, retried"),     // old
		userMessage("random", "bob", "a", "bob's a in random"),     // carol's id there: new
		userMessage("lobby", "alice", "a", "alice's a in lobby"),   // first message of lobby
	})
	if err != nil {
		t.Fatalf("Append after migration: %v", err)
	}
	bobA := userMessage("general", "bob", "a", "bob's a")
	bobA.Seq = 4
	randomBobA := userMessage("random", "bob", "a", "bob's a in random")
	randomBobA.Seq = 2
	lobbyA := userMessage("lobby", "alice", "a", "alice's a in lobby")
	lobbyA.Seq = 1
	want := []chat.Message{old["general"][0], bobA, old["general"][1], randomBobA, lobbyA}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("Append after migration =\n %+v\nwant\n %+v", out, want)
	}
	if got, want := history(t, s, "general"), append(slices.Clone(old["general"]), bobA); !reflect.DeepEqual(got, want) {
		t.Fatalf("history of general = %+v, want %+v", got, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// On disk: the format is recorded and no key of the old form is left.
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyFormat); len(v) != 8 || binary.BigEndian.Uint64(v) != format {
			t.Errorf("format on disk = %x, want %d", v, format)
		}
		ids := tx.Bucket(bucketRooms).Bucket([]byte("general")).Bucket(bucketIDs)
		for _, id := range []string{"a", "b", "c"} {
			if ids.Get([]byte(id)) != nil {
				t.Errorf("general: an ids key of the old form (%q) survived", id)
			}
		}
		if n := ids.Stats().KeyN; n != 4 {
			t.Errorf("general: %d ids keys, want one per message (4)", n)
		}
		return nil
	})
	_ = db.Close()
	if err != nil {
		t.Fatal(err)
	}

	// Opening the migrated file again changes nothing.
	s = openTemp(t, path)
	out, err = s.Append(ctx, []chat.Message{userMessage("general", "bob", "a", "again"), userMessage("general", "alice", "c", "again")})
	if err != nil {
		t.Fatal(err)
	}
	if want := []chat.Message{bobA, old["general"][2]}; !reflect.DeepEqual(out, want) {
		t.Fatalf("Append after reopen = %+v, want %+v", out, want)
	}
	if last, err := s.LastSeq(ctx, "general"); err != nil || last != 4 {
		t.Fatalf("LastSeq after reopen = %d, %v; want 4", last, err)
	}
}

// TestNewerFormatRefused: a file written by a newer Parley is not opened,
// rather than read and written in a layout this code does not know.
func TestNewerFormatRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	openTemp(t, path).Close()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyFormat, binary.BigEndian.AppendUint64(nil, format+1))
	})
	_ = db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if s, err := Open(path); err == nil {
		_ = s.Close()
		t.Fatal("Open of a file of a newer format succeeded")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a file of a newer format: %v, want it to say so", err)
	}
}

func TestLifecycles(t *testing.T) {
	storetest.RunLifecycles(t, func(t *testing.T) storetest.LifecycleStore {
		return openTemp(t, filepath.Join(t.TempDir(), "parley.db"))
	})
}

// TestAppendMarked: the items and their marks (chat.ItemMarks) in one
// transaction: the author's read position at the item, an added member's
// too, each mention; a retry stores nothing twice and lowers nothing.
func TestAppendMarked(t *testing.T) {
	s := openTemp(t, filepath.Join(t.TempDir(), "parley.db"))
	ctx := t.Context()
	now := time.Now()
	batch := []chat.Message{
		{Room: "r", ID: "a1", User: "alice", Text: "hi @bob", TS: chat.Timestamp(now), Mentions: []string{"bob"}},
		chat.NewItem(chat.Author{Name: "alice"}, "r", "add", chat.ItemData{Action: chat.ActAdd, Target: "carol"}, now),
		{Room: "q", ID: "b1", User: "bob", Text: "elsewhere", TS: chat.Timestamp(now)},
	}
	for range 2 { // the second time is a retry
		out, err := s.AppendMarked(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if out[0].Seq != 1 || out[1].Seq != 2 || out[2].Seq != 1 {
			t.Fatalf("seqs %d %d %d, want 1 2 1", out[0].Seq, out[1].Seq, out[2].Seq)
		}
	}
	reads, err := s.ReadSeqs(ctx, "r", []string{"alice", "bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"alice": 2, "carol": 2}; !reflect.DeepEqual(reads, want) {
		t.Fatalf("read positions in r %v, want %v", reads, want)
	}
	if q, _ := s.ReadSeqs(ctx, "q", []string{"bob"}); q["bob"] != 1 {
		t.Fatalf("read positions in q %v, want bob at 1", q)
	}
	sums := []chat.RoomSummary{{Room: "r", LastSeq: 2}}
	if err := s.Counts(ctx, "bob", sums); err != nil {
		t.Fatal(err)
	}
	if sums[0].Mentions != 1 {
		t.Fatalf("bob's counts in r: %+v, want his mention", sums[0])
	}
	if last, _ := s.LastSeq(ctx, "r"); last != 2 {
		t.Fatalf("last seq %d after a retry, want 2", last)
	}
}

// TestSaveRoomStates: several states in one write, each as SaveRoomState
// would save it (members indexed, an older state than the saved one left
// alone), and all or nothing.
func TestSaveRoomStates(t *testing.T) {
	s := openTemp(t, filepath.Join(t.TempDir(), "parley.db"))
	ctx := t.Context()
	a, b := chat.NewRoomState("a"), chat.NewRoomState("b")
	a.Kind, b.Kind = chat.RoomPublic, chat.RoomPublic
	a.Seq, b.Seq = 3, 5
	a.Members = map[string]chat.Member{"bob": {Role: chat.RoleMember, Since: 1}}
	b.Members = map[string]chat.Member{"bob": {Role: chat.RoleOwner, Since: 1}, "carol": {Role: chat.RoleMember, Since: 2}}
	if err := s.SaveRoomStates(ctx, []chat.RoomState{a, b}); err != nil {
		t.Fatal(err)
	}
	older := b
	older.Seq, older.Members = 4, nil
	newer := a
	newer.Seq, newer.Members = 4, nil // bob left a
	if err := s.SaveRoomStates(ctx, []chat.RoomState{older, newer}); err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		room    string
		seq     int64
		members int
	}{{"a", 4, 0}, {"b", 5, 2}} {
		got, err := s.RoomState(ctx, w.room)
		if err != nil || got.Seq != w.seq || len(got.Members) != w.members {
			t.Fatalf("state of %s: seq %d, %d members (%v); want seq %d, %d members", w.room, got.Seq, len(got.Members), err, w.seq, w.members)
		}
	}
	page, err := s.MemberRooms(ctx, "bob", chat.RoomQuery{Limit: 10})
	if err != nil || len(page.Rooms) != 1 || page.Rooms[0].Room != "b" || page.Rooms[0].Role != chat.RoleOwner {
		t.Fatalf("bob's rooms %+v (%v), want b as owner only", page.Rooms, err)
	}
	bad := chat.NewRoomState("c")
	bad.Seq = 1
	if err := s.SaveRoomStates(ctx, []chat.RoomState{bad, {Seq: 2}}); err == nil {
		t.Fatal("a state without a room saved")
	}
	if got, _ := s.RoomState(ctx, "c"); got.Seq != 0 {
		t.Fatalf("c saved at seq %d by a refused batch", got.Seq)
	}
}
