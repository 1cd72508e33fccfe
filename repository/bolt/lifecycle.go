package bolt

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"

	"go.etcd.io/bbolt"

	"github.com/parley-chat/parley/app/chat"
)

// bucketAbout is rooms/<room>/about/<target><seq>: one empty value per
// lifecycle item (seq) about a message (target), both 8 bytes big-endian,
// so that a room's items about one target are one contiguous range in seq
// order. Written in Append's transaction with the item; rooms stored before
// it existed get it on their next Append (createRoom), and until then have
// no lifecycle items to index.
var bucketAbout = []byte("about")

var _ chat.Lifecycles = (*Store)(nil)

// aboutKey is the about key of the lifecycle item at seq about target.
func aboutKey(target, seq int64) []byte {
	k := make([]byte, 0, 16)
	k = binary.BigEndian.AppendUint64(k, uint64(target))
	return binary.BigEndian.AppendUint64(k, uint64(seq))
}

// ItemsAbout seeks once per target in one read transaction and reads each
// item from msgs/: the cost is the items found, not the room's length.
func (s *Store) ItemsAbout(ctx context.Context, room string, targets []int64) ([]chat.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := []chat.Message{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRooms).Bucket([]byte(room))
		if b == nil || b.Bucket(bucketAbout) == nil {
			return nil
		}
		msgs, c := b.Bucket(bucketMsgs), b.Bucket(bucketAbout).Cursor()
		seen := make(map[int64]bool, len(targets))
		for _, t := range targets {
			if t < 1 || seen[t] {
				continue
			}
			seen[t] = true
			prefix := seqKey(t)
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				v := msgs.Get(k[8:])
				if v == nil {
					continue // swept by retention after the index was read
				}
				m, err := decodeItem(v)
				if err != nil {
					return fmt.Errorf("decode item at seq %d: %w", binary.BigEndian.Uint64(k[8:]), err)
				}
				out = append(out, m)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("items about in %s: %w", room, err)
	}
	// Each target's items are in seq order; the targets' ranges interleave.
	slices.SortFunc(out, func(a, b chat.Message) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}

// indexLifecycle records the lifecycle item m (stored, with its seq) in
// about/, and applies what it does to the store: a delete erases its target
// (see erase), and an edit about a message deleted already is stored
// without its text, which must not outlive the message either (the persist
// stage refuses such an edit; this covers one that got past it in a race).
// It returns m as stored.
func indexLifecycle(room *bbolt.Bucket, m chat.Message) (chat.Message, error) {
	t := m.Target()
	if t < 1 {
		return m, nil
	}
	if err := room.Bucket(bucketAbout).Put(aboutKey(t, m.Seq), []byte{}); err != nil {
		return m, err
	}
	switch m.Kind {
	case chat.KindDelete:
		return m, erase(room, t)
	case chat.KindEdit:
		if v := room.Bucket(bucketMsgs).Get(seqKey(t)); v != nil {
			target, err := decodeItem(v)
			if err != nil {
				return m, fmt.Errorf("decode message at seq %d: %w", t, err)
			}
			if target.Deleted {
				m.Text = ""
				return m, room.Bucket(bucketMsgs).Put(seqKey(m.Seq), encodeItem(m))
			}
		}
	}
	return m, nil
}

// erase is a delete's effect on the store: the message at target loses its
// text and is marked deleted, and every edit about it loses its text too.
// Values are overwritten, not flagged: what the message said is not in any
// value the store reads any more. Erasing twice changes nothing, so a
// redelivered delete (Append given one it stored already) erases again
// safely, which is what makes a crash between the writes of a batch
// harmless.
func erase(room *bbolt.Bucket, target int64) error {
	msgs := room.Bucket(bucketMsgs)
	key := seqKey(target)
	if v := msgs.Get(key); v != nil {
		m, err := decodeItem(v)
		if err != nil {
			return fmt.Errorf("decode message at seq %d: %w", target, err)
		}
		if !m.Deleted || m.Text != "" {
			m.Text, m.Deleted = "", true
			if err := msgs.Put(key, encodeItem(m)); err != nil {
				return err
			}
		}
	}
	// The edits are collected first: a bucket is not changed while a
	// cursor walks it (msgs/ is not about/, but this keeps to the rule).
	var edits []chat.Message
	c := room.Bucket(bucketAbout).Cursor()
	for k, _ := c.Seek(key); k != nil && bytes.HasPrefix(k, key); k, _ = c.Next() {
		v := msgs.Get(k[8:])
		if v == nil {
			continue
		}
		it, err := decodeItem(v)
		if err != nil {
			return fmt.Errorf("decode item at seq %d: %w", binary.BigEndian.Uint64(k[8:]), err)
		}
		if it.Kind == chat.KindEdit && it.Text != "" {
			edits = append(edits, it)
		}
	}
	for _, it := range edits {
		it.Text = ""
		if err := msgs.Put(seqKey(it.Seq), encodeItem(it)); err != nil {
			return err
		}
	}
	return nil
}
