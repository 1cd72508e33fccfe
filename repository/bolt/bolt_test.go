package bolt

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/repository/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) chat.Store {
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
	if !slices.Equal(page.Messages, before[:2]) {
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
	if out[0] != before[0] || out[1].Seq != 3 {
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
