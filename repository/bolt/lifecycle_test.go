package bolt

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/parley-chat/parley/app/chat"
)

// secret is the text the erasure tests delete; no value of the file may hold
// it afterwards.
const secret = "xyzzy-plugh"

// holding lists the keys of every bucket, at any depth, whose value holds
// b.
func holding(t *testing.T, s *Store, b []byte) []string {
	t.Helper()
	var found []string
	var walk func(path string, bk *bbolt.Bucket) error
	walk = func(path string, bk *bbolt.Bucket) error {
		return bk.ForEach(func(k, v []byte) error {
			if v == nil {
				return walk(path+"/"+string(k), bk.Bucket(k))
			}
			if bytes.Contains(v, b) || bytes.Contains(k, b) {
				found = append(found, path+"/"+string(k))
			}
			return nil
		})
	}
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, bk *bbolt.Bucket) error { return walk(string(name), bk) })
	})
	if err != nil {
		t.Fatalf("walk the file: %v", err)
	}
	return found
}

func lifecycleItem(kind string, target int64, id, text string) chat.Message {
	return chat.NewLifecycle(chat.Author{Name: "alice"}, "general", id, kind, target, text, "", false, time.Now())
}

// TestLifecycleErasedFromFile checks the erasure below the Store interface:
// after a delete, no value of any bucket holds the text of the message or
// of its edits.
func TestLifecycleErasedFromFile(t *testing.T) {
	s := openTemp(t, filepath.Join(t.TempDir(), "parley.db"))
	ctx := t.Context()
	m := message("general", "m1")
	m.Text = secret + " said once"
	if _, err := s.Append(ctx, []chat.Message{m, lifecycleItem(chat.KindEdit, 1, "e1", secret+" said twice")}); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if got := holding(t, s, []byte(secret)); len(got) != 2 {
		t.Fatalf("before the delete the text is in %v, want the message and its edit", got)
	}
	if _, err := s.Append(ctx, []chat.Message{lifecycleItem(chat.KindDelete, 1, "d1", "")}); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if got := holding(t, s, []byte(secret)); len(got) != 0 {
		t.Errorf("after the delete the text is still in %v", got)
	}
}

// TestLifecycleRedeliveredDeleteErases stores a delete without its erasure,
// as a store that crashed between the two would have it, and appends it
// again: the redelivery erases.
func TestLifecycleRedeliveredDeleteErases(t *testing.T) {
	s := openTemp(t, filepath.Join(t.TempDir(), "parley.db"))
	ctx := t.Context()
	m := message("general", "m1")
	m.Text = secret
	if _, err := s.Append(ctx, []chat.Message{m, lifecycleItem(chat.KindEdit, 1, "e1", secret+", edited")}); err != nil {
		t.Fatalf("Append: %v", err)
	}
	del := lifecycleItem(chat.KindDelete, 1, "d1", "")
	del.Seq = 3
	err := s.db.Update(func(tx *bbolt.Tx) error {
		room := tx.Bucket(bucketRooms).Bucket([]byte("general"))
		if _, err := room.NextSequence(); err != nil {
			return err
		}
		if err := room.Bucket(bucketMsgs).Put(seqKey(3), encodeItem(del)); err != nil {
			return err
		}
		if err := room.Bucket(bucketIDs).Put(idKey(del.User, del.ID), seqKey(3)); err != nil {
			return err
		}
		return room.Bucket(bucketAbout).Put(aboutKey(1, 3), []byte{})
	})
	if err != nil {
		t.Fatalf("store the delete alone: %v", err)
	}
	if got := holding(t, s, []byte(secret)); len(got) != 2 {
		t.Fatalf("before the redelivery the text is in %v, want the message and its edit", got)
	}
	out, err := s.Append(ctx, []chat.Message{lifecycleItem(chat.KindDelete, 1, "d1", "")})
	if err != nil || out[0].Seq != 3 {
		t.Fatalf("Append the delete again: %+v, %v; want it found at seq 3", out, err)
	}
	if got := holding(t, s, []byte(secret)); len(got) != 0 {
		t.Errorf("after the redelivery the text is still in %v", got)
	}
}

// TestLifecycleSweepDropsIndex: retention deletes the index entries of the
// items it deletes with them.
func TestLifecycleSweepDropsIndex(t *testing.T) {
	s := openTemp(t, filepath.Join(t.TempDir(), "parley.db"))
	ctx := t.Context()
	old := time.Now().Add(-time.Hour)
	m := message("general", "m1")
	m.TS = chat.Timestamp(old)
	r := chat.NewLifecycle(chat.Author{Name: "bob"}, "general", "r1", chat.KindReaction, 1, "", "👍", true, old)
	if _, err := s.Append(ctx, []chat.Message{m, r}); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if n, err := s.Sweep(ctx, time.Now()); err != nil || n != 2 {
		t.Fatalf("Sweep = %d, %v; want 2", n, err)
	}
	err := s.db.View(func(tx *bbolt.Tx) error {
		if k, _ := tx.Bucket(bucketRooms).Bucket([]byte("general")).Bucket(bucketAbout).Cursor().First(); k != nil {
			t.Errorf("about/ still holds %x after the sweep", k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
