// Package bolt is chat.Store on an embedded bbolt file: the store Parley uses
// when no MongoDB is configured.
//
// Why bbolt: it is pure Go (no cgo, one static binary), every write is an ACID
// transaction, and reading history is a range scan over (room, seq), which is
// exactly the key order of a B+tree. Nothing here needs SQL.
//
// A bbolt file can be opened by one process at a time, so this store serves a
// single instance. Several instances need a shared store (MongoDB).
package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/parley-chat/parley/app/chat"
)

// Layout of the file (format 2):
//
//	meta/format              the layout's version, 8 bytes big-endian; files
//	                         of format 1 have no meta bucket
//	rooms/<room>/            one bucket per room; its bucket sequence is the
//	                         room's last seq, which retention (Sweep) leaves
//	                         alone: seqs are never reused
//	rooms/<room>/msgs/<seq>  the item's JSON (see item), keyed by 8-byte
//	                         big-endian seq so that byte order is seq order
//	rooms/<room>/ids/<key>   8-byte seq of the message with that user and id:
//	                         the idempotency index (see idKey)
//	rooms/<room>/about/<target><seq>  the lifecycle items about each
//	                         message (see lifecycle.go)
//	names/<canonical>        the name's holder, JSON (chat.Holder)
//	revoked/<sid>            an ended session, JSON (chat.Revocation)
//	states/, summaries/,     rooms with members: saved room states and
//	members/                 their indexes (see rooms.go)
//	reads/, mentions/        read positions and the mention index (see
//	                         marks.go)
//	notifications/, push/,   notifications, push subscriptions and the
//	outbox/ and their        outbox (see notify.go)
//	indexes
//
// Format 1 keyed ids by the id alone, so that a message of one user under an
// id another user had sent first was taken for a retry of it: acknowledged,
// never stored. Open rebuilds a format-1 file's ids from its messages (see
// migrate).
var (
	bucketMeta  = []byte("meta")
	bucketRooms = []byte("rooms")
	bucketMsgs  = []byte("msgs")
	bucketIDs   = []byte("ids")

	keyFormat = []byte("format")
)

// format is the layout this code reads and writes.
const format = 2

// openTimeout bounds the wait for the file lock. bbolt waits forever by
// default, so a second process on the same data dir would hang silently
// instead of saying what is wrong.
const openTimeout = time.Second

// Store is chat.Store on a bbolt file.
type Store struct {
	db *bbolt.DB
}

var _ chat.Store = (*Store)(nil)

// Open opens the store at path, creating the file and its directory if need
// be. It fails after about a second if another process holds the file.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: openTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: file is in use by another process: %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// Create the top-level buckets once, so that readers can rely on them,
	// and bring an older file to the current layout.
	if err := db.Update(migrate); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// migrate creates the top-level buckets of a new file and brings a file of
// an older format to the current one, all in one transaction: a crash or an
// error leaves the file as it was, and the next Open starts over. A file of
// a newer format is refused rather than half understood.
//
// From format 1 (or a new file, where it finds no rooms), it rebuilds every
// room's ids bucket from the room's messages, which hold user and id, and
// then records the format. The cost is one read of every stored message, once.
func migrate(tx *bbolt.Tx) error {
	rooms, err := tx.CreateBucketIfNotExists(bucketRooms)
	if err != nil {
		return err
	}
	// People's, rooms' state, marks' and notifications' buckets came later
	// without a new format: an older Parley never opens them.
	for _, b := range [][]byte{bucketNames, bucketRevoked, bucketStates, bucketSummaries, bucketMembers,
		bucketReads, bucketMentions,
		bucketNotifications, bucketNotifyIDs, bucketPush, bucketPushEndpoints, bucketOutbox, bucketOutboxDue} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	if v := meta.Get(keyFormat); v != nil {
		if len(v) != 8 {
			return fmt.Errorf("unreadable format version %x", v)
		}
		switch got := binary.BigEndian.Uint64(v); {
		case got == format:
			return nil
		case got > format:
			return fmt.Errorf("file has format %d, newer than this version of Parley understands (%d)", got, format)
		default:
			return fmt.Errorf("file has format %d, which no version of Parley wrote", got)
		}
	}
	// Room names first, then the rebuild: a bucket is not changed while a
	// cursor walks it.
	var names [][]byte
	err = rooms.ForEachBucket(func(k []byte) error {
		names = append(names, bytes.Clone(k))
		return nil
	})
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := rebuildIDs(rooms.Bucket(name)); err != nil {
			return fmt.Errorf("room %s: rebuild ids: %w", name, err)
		}
	}
	return meta.Put(keyFormat, binary.BigEndian.AppendUint64(nil, format))
}

// rebuildIDs replaces room's ids bucket with one built from its messages.
// Should two messages share a user and id (format 1 could not store that,
// but the rebuild does not rely on it), the first one, by seq, is the one a
// retry gets back, as Append would have answered.
func rebuildIDs(room *bbolt.Bucket) error {
	if room.Bucket(bucketIDs) != nil {
		if err := room.DeleteBucket(bucketIDs); err != nil {
			return err
		}
	}
	ids, err := room.CreateBucket(bucketIDs)
	if err != nil {
		return err
	}
	msgs, err := room.CreateBucketIfNotExists(bucketMsgs)
	if err != nil {
		return err
	}
	return msgs.ForEach(func(k, v []byte) error {
		m, err := decodeItem(v)
		if err != nil {
			return fmt.Errorf("decode message at seq %d: %w", binary.BigEndian.Uint64(k), err)
		}
		key := idKey(m.User, m.ID)
		if ids.Get(key) != nil {
			return nil
		}
		return ids.Put(key, bytes.Clone(k))
	})
}

// Close closes the file. Calls after Close fail.
func (s *Store) Close() error { return s.db.Close() }

// Ping reports whether the file is open.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(func(*bbolt.Tx) error { return nil })
}

var _ chat.MarkingAppender = (*Store)(nil)

// Append stores msgs in one write transaction, so a batch is all or nothing.
// The domain validates messages; Append only refuses what it cannot key: an
// empty room, user or id.
func (s *Store) Append(ctx context.Context, msgs []chat.Message) ([]chat.Message, error) {
	return s.appendBatch(ctx, msgs, false)
}

// AppendMarked implements chat.MarkingAppender: the items and their marks
// (chat.ItemMarks) in one write transaction, so one fsync where Append and
// SaveMarks cost two.
func (s *Store) AppendMarked(ctx context.Context, msgs []chat.Message) ([]chat.Message, error) {
	return s.appendBatch(ctx, msgs, true)
}

func (s *Store) appendBatch(ctx context.Context, msgs []chat.Message, marked bool) ([]chat.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i, m := range msgs {
		if m.Room == "" || m.User == "" || m.ID == "" {
			return nil, fmt.Errorf("append: message %d has an empty room, user or id", i)
		}
	}
	out := make([]chat.Message, len(msgs))
	err := s.db.Update(func(tx *bbolt.Tx) error {
		rooms := tx.Bucket(bucketRooms)
		for i, m := range msgs {
			room, err := createRoom(rooms, m.Room)
			if err != nil {
				return err
			}
			stored, err := appendOne(room, m)
			if err != nil {
				return fmt.Errorf("room %s: %w", m.Room, err)
			}
			out[i] = stored
		}
		if !marked {
			return nil
		}
		var reads []chat.ReadMark
		var mentions []chat.MentionMark
		for i := range out {
			r, m := chat.ItemMarks(&out[i])
			reads, mentions = append(reads, r...), append(mentions, m...)
		}
		return saveMarks(tx, reads, mentions)
	})
	if err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	return out, nil
}

// appendOne stores m in room unless a message of its user with its id is
// already there, and returns the stored message either way. A duplicate earlier in the same batch is found
// too, since a transaction reads its own writes.
func appendOne(room *bbolt.Bucket, m chat.Message) (chat.Message, error) {
	msgs, ids := room.Bucket(bucketMsgs), room.Bucket(bucketIDs)
	idk := idKey(m.User, m.ID)
	if key := ids.Get(idk); key != nil {
		stored, err := decodeItem(msgs.Get(key))
		if err != nil {
			return chat.Message{}, fmt.Errorf("decode message %s: %w", m.ID, err)
		}
		if stored.Kind == chat.KindDelete && stored.Target() > 0 {
			// A redelivered delete erases again (chat.Lifecycles): here
			// the first erasure was in the delete's own transaction, so
			// this changes nothing, but it costs little and holds the
			// rule whatever the file went through.
			if err := erase(room, stored.Target()); err != nil {
				return chat.Message{}, err
			}
		}
		return stored, nil
	}
	// The bucket sequence is part of the transaction: a failed batch rolls it
	// back with the messages, so no seq is ever skipped.
	seq, err := room.NextSequence()
	if err != nil {
		return chat.Message{}, err
	}
	m.Seq = int64(seq)
	key := seqKey(m.Seq)
	if err := msgs.Put(key, encodeItem(m)); err != nil {
		return chat.Message{}, err
	}
	if err := ids.Put(idk, key); err != nil {
		return chat.Message{}, err
	}
	if m.IsLifecycle() {
		return indexLifecycle(room, m)
	}
	return m, nil
}

// createRoom returns the room's bucket, creating it and its sub-buckets on
// first use.
func createRoom(rooms *bbolt.Bucket, name string) (*bbolt.Bucket, error) {
	room, err := rooms.CreateBucketIfNotExists([]byte(name))
	if err != nil {
		return nil, fmt.Errorf("room %s: %w", name, err)
	}
	for _, sub := range [][]byte{bucketMsgs, bucketIDs, bucketAbout} {
		if _, err := room.CreateBucketIfNotExists(sub); err != nil {
			return nil, fmt.Errorf("room %s: %w", name, err)
		}
	}
	return room, nil
}

// EnsureRoom creates the room's bucket if it is missing.
func (s *Store) EnsureRoom(ctx context.Context, room string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// Every join calls EnsureRoom, and almost always the room exists: look in
	// a read transaction first, since a write transaction costs an fsync.
	var exists bool
	err := s.db.View(func(tx *bbolt.Tx) error {
		exists = tx.Bucket(bucketRooms).Bucket([]byte(room)) != nil
		return nil
	})
	if err != nil || exists {
		return err
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		_, err := createRoom(tx.Bucket(bucketRooms), room)
		return err
	})
}

// LastSeq returns the room's bucket sequence, 0 if the room has none.
func (s *Store) LastSeq(ctx context.Context, room string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var last int64
	err := s.db.View(func(tx *bbolt.Tx) error {
		if b := tx.Bucket(bucketRooms).Bucket([]byte(room)); b != nil {
			last = int64(b.Sequence())
		}
		return nil
	})
	return last, err
}

// Rooms lists one page of rooms in key order, which for bbolt is byte
// order: by name. The cursor seeks past q.After, so a page costs its own
// length, not the number of rooms before it.
func (s *Store) Rooms(ctx context.Context, q chat.RoomQuery) (chat.RoomPage, error) {
	if err := ctx.Err(); err != nil {
		return chat.RoomPage{}, err
	}
	if q.Limit < 1 {
		return chat.RoomPage{}, fmt.Errorf("rooms: limit %d is not positive", q.Limit)
	}
	// Not nil, so that an empty list encodes as [] rather than null.
	page := chat.RoomPage{Rooms: []chat.RoomInfo{}}
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRooms)
		c := b.Cursor()
		k, v := c.Seek([]byte(q.After))
		if k != nil && q.After != "" && string(k) == q.After {
			k, v = c.Next()
		}
		for ; k != nil; k, v = c.Next() {
			if v != nil {
				continue // not a bucket
			}
			if len(page.Rooms) == q.Limit {
				page.More = true
				return nil
			}
			page.Rooms = append(page.Rooms, chat.RoomInfo{Room: string(k), LastSeq: int64(b.Bucket(k).Sequence())})
		}
		return nil
	})
	if err != nil {
		return chat.RoomPage{}, err
	}
	return page, nil
}

// Messages reads one page with a cursor: it seeks to the page's edge and
// steps at most Limit+1 keys, the extra one answering HasMore. The cost does
// not depend on the length of the room's history.
func (s *Store) Messages(ctx context.Context, room string, q chat.Query) (chat.Page, error) {
	if err := ctx.Err(); err != nil {
		return chat.Page{}, err
	}
	if q.Limit < 1 {
		return chat.Page{}, fmt.Errorf("messages %s: limit %d is not positive", room, q.Limit)
	}
	// Not nil, so that an empty page encodes as [] rather than null.
	page := chat.Page{Messages: []chat.Message{}}
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRooms).Bucket([]byte(room))
		if b == nil {
			return nil
		}
		c := b.Bucket(bucketMsgs).Cursor()
		var k, v []byte
		switch q.Kind {
		case chat.Latest:
			k, v = c.Last()
		case chat.Before:
			if q.Seq <= 1 {
				return nil
			}
			// Seek lands on the first key >= Seq, or past the end when
			// every seq is below it; the page ends just before that.
			if k, _ = c.Seek(seqKey(q.Seq)); k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		case chat.After:
			k, v = c.Seek(seqKey(max(q.Seq, 0) + 1))
			return readPage(&page, k, v, c.Next, q.Limit)
		default:
			return fmt.Errorf("unknown query kind %d", q.Kind)
		}
		if err := readPage(&page, k, v, c.Prev, q.Limit); err != nil {
			return err
		}
		// Read backwards, the page must still be ascending.
		for i, j := 0, len(page.Messages)-1; i < j; i, j = i+1, j-1 {
			page.Messages[i], page.Messages[j] = page.Messages[j], page.Messages[i]
		}
		return nil
	})
	if err != nil {
		return chat.Page{}, fmt.Errorf("messages %s: %w", room, err)
	}
	return page, nil
}

// readPage decodes up to limit messages starting at (k, v) and moving with
// step, then sets HasMore if one more key lies in that direction.
func readPage(page *chat.Page, k, v []byte, step func() ([]byte, []byte), limit int) error {
	for ; k != nil && len(page.Messages) < limit; k, v = step() {
		m, err := decodeItem(v)
		if err != nil {
			return fmt.Errorf("decode message at seq %d: %w", binary.BigEndian.Uint64(k), err)
		}
		page.Messages = append(page.Messages, m)
	}
	page.HasMore = k != nil
	return nil
}

// item is a message as msgs/ holds it: its wire JSON plus what the wire
// leaves out, its Events ordinal (chat.Message.Events, json "-"), which
// counts need back. Items stored before Events existed read as 0.
type item struct {
	chat.Message
	// Events shadows the embedded Message's Events, which never encodes.
	Events int64 `json:"events,omitempty"`
}

// encodeItem is m's value in msgs/.
func encodeItem(m chat.Message) []byte {
	b, _ := json.Marshal(item{Message: m, Events: m.Events}) // a Message's fields always encode
	return b
}

// decodeItem reads a value of msgs/, Events included.
func decodeItem(b []byte) (chat.Message, error) {
	var it item
	if err := json.Unmarshal(b, &it); err != nil {
		return chat.Message{}, err
	}
	it.Message.Events = it.Events
	return it.Message, nil
}

// idKey is the ids key of a message: the length of its user as a uvarint,
// the user, the id. The length makes the split unambiguous whatever bytes
// user and id hold: ("ab", "c") and ("a", "bc") are different keys.
func idKey(user, id string) []byte {
	k := make([]byte, 0, binary.MaxVarintLen64+len(user)+len(id))
	k = binary.AppendUvarint(k, uint64(len(user)))
	k = append(k, user...)
	return append(k, id...)
}

// seqKey encodes seq big-endian, so that bbolt's byte order is seq order.
func seqKey(seq int64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(seq))
}
