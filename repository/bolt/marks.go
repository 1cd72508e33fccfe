package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/parley-chat/parley/app/chat"
)

// Read positions and the mention index (chat.Marks). Two flat buckets:
//
//	reads/<room key><user>              the user's read position in the
//	                                    room, 8 bytes big-endian
//	mentions/<user key><room key><seq>  empty: the item at seq (8 bytes
//	                                    big-endian) of room mentions user
//
// where a key is the string's length as a uvarint, then the string, as in
// idKey, so that no room or user can run into the next part. Keys of one
// user's mentions in one room are then one run in seq order: counting them
// between two seqs is a seek and a short walk.
//
// Like people's buckets, these came without a new format: an older Parley
// never opens them, and Open creates them in a file that lacks them.
var (
	bucketReads    = []byte("reads")
	bucketMentions = []byte("mentions")
)

var _ chat.Marks = (*Store)(nil)

// appendKey appends s to k, prefixed by its length.
func appendKey(k []byte, s string) []byte {
	k = binary.AppendUvarint(k, uint64(len(s)))
	return append(k, s...)
}

func readKey(room, user string) []byte {
	return append(appendKey(make([]byte, 0, 2*binary.MaxVarintLen64+len(room)+len(user)), room), user...)
}

// mentionPrefix is the start of the keys of user's mentions in room.
func mentionPrefix(user, room string) []byte {
	k := make([]byte, 0, 2*binary.MaxVarintLen64+len(user)+len(room)+8)
	return appendKey(appendKey(k, user), room)
}

// SaveMarks implements chat.Marks in one write transaction: a batch's marks
// cost one fsync, whatever their number.
func (s *Store) SaveMarks(ctx context.Context, reads []chat.ReadMark, mentions []chat.MentionMark) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(reads) == 0 && len(mentions) == 0 {
		return nil // no write transaction, so no fsync
	}
	if err := s.db.Update(func(tx *bbolt.Tx) error { return saveMarks(tx, reads, mentions) }); err != nil {
		return fmt.Errorf("save marks: %w", err)
	}
	return nil
}

// saveMarks writes marks in tx: read positions only ever rise, a mention is
// recorded once.
func saveMarks(tx *bbolt.Tx, reads []chat.ReadMark, mentions []chat.MentionMark) error {
	if len(reads) > 0 {
		rb, err := tx.CreateBucketIfNotExists(bucketReads)
		if err != nil {
			return err
		}
		for _, r := range reads {
			if r.Seq < 1 {
				continue // 0 is where everyone starts: nothing to record
			}
			k := readKey(r.Room, r.User)
			if v := rb.Get(k); len(v) == 8 && int64(binary.BigEndian.Uint64(v)) >= r.Seq {
				continue // never lowered; an equal one is a retry
			}
			if err := rb.Put(k, seqKey(r.Seq)); err != nil {
				return err
			}
		}
	}
	if len(mentions) > 0 {
		mb, err := tx.CreateBucketIfNotExists(bucketMentions)
		if err != nil {
			return err
		}
		for _, m := range mentions {
			if m.Seq < 1 {
				continue // no item has it; refusing would stall the batch's retries
			}
			// A Put of a key that is there changes nothing: recorded once.
			if err := mb.Put(append(mentionPrefix(m.User, m.Room), seqKey(m.Seq)...), nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// ReadSeqs implements chat.Marks: one lookup per user.
func (s *Store) ReadSeqs(ctx context.Context, room string, users []string) (map[string]int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(users))
	err := s.db.View(func(tx *bbolt.Tx) error {
		rb := tx.Bucket(bucketReads)
		if rb == nil {
			return nil
		}
		for _, u := range users {
			if seq, ok := readSeq(rb, room, u); ok {
				out[u] = seq
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read seqs of %s: %w", room, err)
	}
	return out, nil
}

// readSeq is user's read position in room.
func readSeq(rb *bbolt.Bucket, room, user string) (int64, bool) {
	v := rb.Get(readKey(room, user))
	if len(v) != 8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(v)), true
}

// Counts implements chat.Marks in one read transaction for the whole list,
// so that the counts of every room are of one moment. Per room it reads the
// read position, and unless that is at LastSeq, two items by cursor seeks
// (the last at or before LastSeq, the first after the read position) and
// the mentions between: a cost per room that does not grow with its
// history or its unread messages, only with its unread mentions.
func (s *Store) Counts(ctx context.Context, user string, rooms []chat.RoomSummary) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.View(func(tx *bbolt.Tx) error {
		reads, mentions, all := tx.Bucket(bucketReads), tx.Bucket(bucketMentions), tx.Bucket(bucketRooms)
		for i := range rooms {
			rs := &rooms[i]
			rs.ReadSeq, rs.Unread, rs.Mentions = 0, 0, 0
			if reads != nil {
				rs.ReadSeq, _ = readSeq(reads, rs.Room, user)
			}
			rs.ReadSeq = min(rs.ReadSeq, rs.LastSeq)
			if rs.ReadSeq >= rs.LastSeq {
				continue
			}
			if rb := all.Bucket([]byte(rs.Room)); rb != nil {
				if msgs := rb.Bucket(bucketMsgs); msgs != nil {
					first, last, err := edges(msgs, rs.ReadSeq, rs.LastSeq)
					if err != nil {
						return fmt.Errorf("room %s: %w", rs.Room, err)
					}
					rs.Unread = chat.UnreadBetween(first, last)
				}
			}
			if mentions != nil {
				rs.Mentions = countMentions(mentions.Cursor(), mentionPrefix(user, rs.Room), rs.ReadSeq, rs.LastSeq)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("counts of %s: %w", user, err)
	}
	return nil
}

// edges reads the first stored item after seq read and the last stored item
// at or before seq last (read < last), each nil when there is none.
func edges(msgs *bbolt.Bucket, read, last int64) (first, end *chat.Message, err error) {
	c := msgs.Cursor()
	k, v := c.Seek(seqKey(read + 1))
	if k == nil || int64(binary.BigEndian.Uint64(k)) > last {
		return nil, nil, nil // nothing stored in (read, last]
	}
	if first, err = decodeStamps(k, v); err != nil {
		return nil, nil, err
	}
	// The item at last, or, when it is gone or not yet there, the one
	// before: at worst first itself.
	if k, v = c.Seek(seqKey(last)); k == nil || int64(binary.BigEndian.Uint64(k)) != last {
		k, v = c.Prev()
	}
	if k == nil {
		return first, first, nil
	}
	if end, err = decodeStamps(k, v); err != nil {
		return nil, nil, err
	}
	return first, end, nil
}

// decodeStamps reads of the item at (k, v) what a count needs: its seq,
// kind and Events. Decoding into these fields alone skips building the
// text and data, half the cost of a Counts over many rooms.
func decodeStamps(k, v []byte) (*chat.Message, error) {
	var d struct {
		Kind   string `json:"kind"`
		Events int64  `json:"events"`
	}
	seq := int64(binary.BigEndian.Uint64(k))
	if err := json.Unmarshal(v, &d); err != nil {
		return nil, fmt.Errorf("decode message at seq %d: %w", seq, err)
	}
	return &chat.Message{Seq: seq, Kind: d.Kind, Events: d.Events}, nil
}

// countMentions counts the keys under prefix with seq in (read, last].
func countMentions(c *bbolt.Cursor, prefix []byte, read, last int64) int64 {
	var n int64
	hi := append(bytes.Clone(prefix), seqKey(last)...)
	for k, _ := c.Seek(append(bytes.Clone(prefix), seqKey(read+1)...)); k != nil && bytes.HasPrefix(k, prefix) && bytes.Compare(k, hi) <= 0; k, _ = c.Next() {
		n++
	}
	return n
}
