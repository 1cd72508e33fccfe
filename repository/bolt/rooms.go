package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/parley-chat/parley/app/chat"
)

// Rooms with members (chat.RoomStates). Three buckets beside rooms/, written
// together in SaveRoomState's one transaction, so that the indexes never
// disagree with the saved state, whatever crashes:
//
//	states/<room>          the room's saved chat.RoomState, JSON (its Seq inside)
//	summaries/<room>       what a room list shows of the room, JSON (see
//	                       summary): listing a room then costs a small
//	                       decode, not one of its member list
//	members/<user>/<room>  user's role in room: the rooms each user is a
//	                       member of, in name order
//
// The directory has no index of its own: it walks rooms/ (every room, saved
// state or not) and skips the private and direct ones.
//
// Like people's buckets, these came without a new format: an older Parley
// never opens them, and a file that lacks them has no saved state.
var (
	bucketStates    = []byte("states")
	bucketSummaries = []byte("summaries")
	bucketMembers   = []byte("members")
)

var _ chat.RoomStates = (*Store)(nil)

// summary is a room's entry in summaries/.
type summary struct {
	Kind      string `json:"kind,omitempty"`
	Title     string `json:"title,omitempty"`
	Topic     string `json:"topic,omitempty"`
	SlowModeS int    `json:"slow_mode_s,omitempty"`
}

// RoomState implements chat.RoomStates.
func (s *Store) RoomState(ctx context.Context, room string) (chat.RoomState, error) {
	if err := ctx.Err(); err != nil {
		return chat.RoomState{}, err
	}
	st := chat.NewRoomState(room)
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		st, _, err = savedState(tx, room)
		return err
	})
	if err != nil {
		return chat.RoomState{}, fmt.Errorf("room state %s: %w", room, err)
	}
	return st, nil
}

// savedState reads room's saved state, NewRoomState(room) and false when
// none is saved.
func savedState(tx *bbolt.Tx, room string) (chat.RoomState, bool, error) {
	b := tx.Bucket(bucketStates)
	if b == nil {
		return chat.NewRoomState(room), false, nil
	}
	v := b.Get([]byte(room))
	if v == nil {
		return chat.NewRoomState(room), false, nil
	}
	var st chat.RoomState
	if err := json.Unmarshal(v, &st); err != nil {
		return chat.RoomState{}, false, fmt.Errorf("decode saved state: %w", err)
	}
	return st, true, nil
}

// SaveRoomState implements chat.RoomStates in one write transaction: the
// state, its summary and every change to members/ commit together or not at
// all. The members index changes only for the users whose membership or role
// differs between the saved state and st. A state at seq 0 is what a room
// without a saved state already has, so it is never saved.
func (s *Store) SaveRoomState(ctx context.Context, st chat.RoomState) error {
	return s.SaveRoomStates(ctx, []chat.RoomState{st})
}

var _ chat.RoomStatesSaver = (*Store)(nil)

// SaveRoomStates implements chat.RoomStatesSaver: SaveRoomState of each
// state in one write transaction, so one fsync for a batch's rooms however
// many they are.
func (s *Store) SaveRoomStates(ctx context.Context, sts []chat.RoomState) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	type encoded struct{ val, sum []byte }
	enc := make([]encoded, len(sts))
	for i, st := range sts {
		if st.Room == "" {
			return fmt.Errorf("save room state: no room")
		}
		val, err := json.Marshal(st)
		if err != nil {
			return fmt.Errorf("save room state %s: %w", st.Room, err)
		}
		sum, err := json.Marshal(summary{Kind: st.Kind, Title: st.Title, Topic: st.Topic, SlowModeS: st.SlowModeS})
		if err != nil {
			return fmt.Errorf("save room state %s: %w", st.Room, err)
		}
		enc[i] = encoded{val, sum}
	}
	if len(sts) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		for i, st := range sts {
			if err := saveState(tx, st, enc[i].val, enc[i].sum); err != nil {
				return fmt.Errorf("save room state %s: %w", st.Room, err)
			}
		}
		return nil
	})
}

// saveState writes st (encoded as val, its summary as sum) in tx unless a
// state at a seq >= st.Seq is saved already, and brings members/ in line.
func saveState(tx *bbolt.Tx, st chat.RoomState, val, sum []byte) error {
	old, _, err := savedState(tx, st.Room)
	if err != nil {
		return err
	}
	if old.Seq >= st.Seq {
		return nil // as new a state is saved already
	}
	// A saved state means the room exists: the directory walks rooms/.
	if _, err := createRoom(tx.Bucket(bucketRooms), st.Room); err != nil {
		return err
	}
	states, err := tx.CreateBucketIfNotExists(bucketStates)
	if err != nil {
		return err
	}
	sums, err := tx.CreateBucketIfNotExists(bucketSummaries)
	if err != nil {
		return err
	}
	members, err := tx.CreateBucketIfNotExists(bucketMembers)
	if err != nil {
		return err
	}
	room := []byte(st.Room)
	for user, m := range st.Members {
		if o, ok := old.Members[user]; ok && o.Role == m.Role {
			continue
		}
		ub, err := members.CreateBucketIfNotExists([]byte(user))
		if err != nil {
			return err
		}
		if err := ub.Put(room, []byte(m.Role)); err != nil {
			return err
		}
	}
	for user := range old.Members {
		if _, ok := st.Members[user]; ok {
			continue
		}
		if err := unindex(members, []byte(user), room); err != nil {
			return err
		}
	}
	if err := states.Put(room, val); err != nil {
		return err
	}
	return sums.Put(room, sum)
}

// unindex deletes members/<user>/<room>, and user's bucket once it is empty,
// so that members/ holds only users who are members somewhere.
func unindex(members *bbolt.Bucket, user, room []byte) error {
	ub := members.Bucket(user)
	if ub == nil {
		return nil
	}
	if err := ub.Delete(room); err != nil {
		return err
	}
	if k, _ := ub.Cursor().First(); k == nil {
		return members.DeleteBucket(user)
	}
	return nil
}

// Find implements chat.RoomStates with the room's idempotency index.
func (s *Store) Find(ctx context.Context, room, user, id string) (chat.Message, bool, error) {
	if err := ctx.Err(); err != nil {
		return chat.Message{}, false, err
	}
	var (
		m  chat.Message
		ok bool
	)
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRooms).Bucket([]byte(room))
		if b == nil {
			return nil
		}
		key := b.Bucket(bucketIDs).Get(idKey(user, id))
		if key == nil {
			return nil
		}
		v := b.Bucket(bucketMsgs).Get(key)
		if v == nil {
			return nil // deleted by retention: the ids entry goes with it, but be safe
		}
		var err error
		m, err = decodeItem(v)
		ok = err == nil
		return err
	})
	if err != nil {
		return chat.Message{}, false, fmt.Errorf("find %s in %s: %w", id, room, err)
	}
	return m, ok, nil
}

// MemberRooms implements chat.RoomStates: a cursor over members/<user> from
// q.After, so a page costs its own length whatever the number of the user's
// rooms.
func (s *Store) MemberRooms(ctx context.Context, user string, q chat.RoomQuery) (chat.SummaryPage, error) {
	if err := ctx.Err(); err != nil {
		return chat.SummaryPage{}, err
	}
	if q.Limit < 1 {
		return chat.SummaryPage{}, fmt.Errorf("member rooms: limit %d is not positive", q.Limit)
	}
	page := chat.SummaryPage{Rooms: []chat.RoomSummary{}}
	err := s.db.View(func(tx *bbolt.Tx) error {
		members := tx.Bucket(bucketMembers)
		if members == nil {
			return nil
		}
		ub := members.Bucket([]byte(user))
		if ub == nil {
			return nil
		}
		c := ub.Cursor()
		for k, v := seekAfter(c, q.After); k != nil; k, v = c.Next() {
			if len(page.Rooms) == q.Limit {
				page.More = true
				return nil
			}
			rs, err := roomSummary(tx, k)
			if err != nil {
				return err
			}
			rs.Role = string(v)
			page.Rooms = append(page.Rooms, rs)
		}
		return nil
	})
	if err != nil {
		return chat.SummaryPage{}, fmt.Errorf("member rooms of %s: %w", user, err)
	}
	return page, nil
}

// Directory implements chat.RoomStates by walking rooms/ from q.After and
// skipping the private and direct rooms: their count, not the page's, is
// what a page costs beyond its length.
func (s *Store) Directory(ctx context.Context, user string, q chat.RoomQuery) (chat.SummaryPage, error) {
	if err := ctx.Err(); err != nil {
		return chat.SummaryPage{}, err
	}
	if q.Limit < 1 {
		return chat.SummaryPage{}, fmt.Errorf("directory: limit %d is not positive", q.Limit)
	}
	page := chat.SummaryPage{Rooms: []chat.RoomSummary{}}
	err := s.db.View(func(tx *bbolt.Tx) error {
		var mine *bbolt.Bucket
		if members := tx.Bucket(bucketMembers); members != nil {
			mine = members.Bucket([]byte(user))
		}
		rooms := tx.Bucket(bucketRooms)
		c := rooms.Cursor()
		for k, v := seekAfter(c, q.After); k != nil; k, v = c.Next() {
			if v != nil {
				continue // not a bucket
			}
			rs, err := roomSummary(tx, k)
			if err != nil {
				return err
			}
			if rs.Kind != chat.RoomPublic {
				continue
			}
			if len(page.Rooms) == q.Limit {
				page.More = true
				return nil
			}
			if mine != nil {
				rs.Role = string(mine.Get(k))
			}
			page.Rooms = append(page.Rooms, rs)
		}
		return nil
	})
	if err != nil {
		return chat.SummaryPage{}, fmt.Errorf("directory: %w", err)
	}
	return page, nil
}

// seekAfter places c on the first key after after ("" for the first key).
func seekAfter(c *bbolt.Cursor, after string) ([]byte, []byte) {
	k, v := c.Seek([]byte(after))
	if k != nil && after != "" && bytes.Equal(k, []byte(after)) {
		k, v = c.Next()
	}
	return k, v
}

// roomSummary is room's entry of a room list, without a role.
//
// A room without a saved state is public (it came into being with a v1
// message), unless its first item creates a private or direct room: then its
// saver has stored the item and not yet saved the state (or died in
// between), and the directory must not show it meanwhile.
func roomSummary(tx *bbolt.Tx, room []byte) (chat.RoomSummary, error) {
	rs := chat.RoomSummary{Room: string(room), Kind: chat.RoomPublic}
	rb := tx.Bucket(bucketRooms).Bucket(room)
	if rb != nil {
		rs.LastSeq = int64(rb.Sequence())
	}
	var v []byte
	if sums := tx.Bucket(bucketSummaries); sums != nil {
		v = sums.Get(room)
	}
	if v == nil {
		if rb != nil {
			kind, err := firstItemKind(rb)
			if err != nil {
				return chat.RoomSummary{}, fmt.Errorf("room %s: %w", room, err)
			}
			rs.Kind = kind
		}
		return rs, nil
	}
	var sm summary
	if err := json.Unmarshal(v, &sm); err != nil {
		return chat.RoomSummary{}, fmt.Errorf("room %s: decode summary: %w", room, err)
	}
	st := chat.RoomState{Kind: sm.Kind}
	rs.Kind, rs.Title, rs.Topic, rs.SlowModeS = st.RoomKind(), sm.Title, sm.Topic, sm.SlowModeS
	return rs, nil
}

// firstItemKind is the kind of the room its first stored item makes: the
// kind a create item names, public for anything else (or no item).
func firstItemKind(rb *bbolt.Bucket) (string, error) {
	msgs := rb.Bucket(bucketMsgs)
	if msgs == nil {
		return chat.RoomPublic, nil
	}
	k, v := msgs.Cursor().First()
	if k == nil {
		return chat.RoomPublic, nil
	}
	m, err := decodeItem(v)
	if err != nil {
		return "", fmt.Errorf("decode first message: %w", err)
	}
	return createdKind(&m), nil
}

// createdKind is the kind of room m makes as a room's first item.
func createdKind(m *chat.Message) string {
	st := chat.NewRoomState(m.Room)
	st.Apply(m)
	return st.RoomKind()
}
