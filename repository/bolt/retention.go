package bolt

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/parley-chat/parley/app/chat"
)

// sweepBatch bounds the messages one write transaction of Sweep deletes, so
// that a first sweep over years of history does not hold the file's one
// writer (and every Append behind it) for long.
const sweepBatch = 1000

var _ chat.Sweeper = (*Store)(nil)

// Sweep deletes, room by room, the oldest messages whose ts is before
// before, each with its ids entry, up to the first message that is not: so a
// room's history stays one unbroken run of seqs, ending at its newest
// message. (The embedded store has one writer, whose ts follow its seqs but
// for clock steps.) A message whose ts does not parse stops its room's sweep
// there. The room's bucket and its bucket sequence stay: LastSeq, Rooms and
// the next seq do not change.
//
// It deletes at most sweepBatch messages per write transaction and runs
// transactions until nothing is left to delete, returning how many it
// deleted. A redelivery of a deleted message would be stored again, under a
// new seq; retention is meant to be far longer than any redelivery.
func (s *Store) Sweep(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n := 0
		err := s.db.Update(func(tx *bbolt.Tx) error {
			rooms := tx.Bucket(bucketRooms)
			var names [][]byte
			if err := rooms.ForEachBucket(func(k []byte) error {
				names = append(names, bytes.Clone(k))
				return nil
			}); err != nil {
				return err
			}
			for _, name := range names {
				if n == sweepBatch {
					return nil
				}
				k, err := sweepRoom(rooms.Bucket(name), before, sweepBatch-n)
				if err != nil {
					return fmt.Errorf("room %s: %w", name, err)
				}
				n += k
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("sweep: %w", err)
		}
		total += n
		if n < sweepBatch {
			return total, nil
		}
	}
}

// sweepRoom deletes up to limit of room's oldest messages older than before.
func sweepRoom(room *bbolt.Bucket, before time.Time, limit int) (int, error) {
	msgs, ids := room.Bucket(bucketMsgs), room.Bucket(bucketIDs)
	if msgs == nil || ids == nil {
		return 0, nil
	}
	var old [][]byte // seq keys, then deleted: a bucket is not changed while a cursor walks it
	var idks, abouts [][]byte
	c := msgs.Cursor()
	for k, v := c.First(); k != nil && len(old) < limit; k, v = c.Next() {
		m, err := decodeItem(v)
		if err != nil {
			return 0, fmt.Errorf("decode message at seq %x: %w", k, err)
		}
		t, err := time.Parse(chat.TSLayout, m.TS)
		if err != nil || !t.Before(before) {
			break
		}
		old = append(old, bytes.Clone(k))
		idks = append(idks, idKey(m.User, m.ID))
		if t := m.Target(); t > 0 {
			abouts = append(abouts, aboutKey(t, m.Seq))
		}
	}
	if about := room.Bucket(bucketAbout); about != nil {
		for _, k := range abouts {
			if err := about.Delete(k); err != nil {
				return 0, err
			}
		}
	}
	for i, k := range old {
		if err := msgs.Delete(k); err != nil {
			return 0, err
		}
		// Only if it points at this message: a duplicate id would point at
		// the first one, which is gone already or goes now.
		if v := ids.Get(idks[i]); v != nil && bytes.Equal(v, k) {
			if err := ids.Delete(idks[i]); err != nil {
				return 0, err
			}
		}
	}
	return len(old), nil
}
