package chat

import (
	"context"
	"log/slog"
	"time"
)

// Store keeps each room's messages in seq order.
type Store interface {
	// Append stores msgs in order, giving each new message its room's next seq
	// (from 1, gapless). A message whose (room, user, id) is already stored
	// is not stored again: the stored one (first text, original seq) is
	// returned in its place. Another user's message under the same id is a
	// different message. The result has one message per input, in input
	// order. A message with an empty Room, User or ID is an error. Append is
	// safe to retry: a retried batch gets the same seqs and stores nothing
	// twice.
	Append(ctx context.Context, msgs []Message) ([]Message, error)
	// Messages returns one page of a room's history, ascending by seq;
	// Page.Messages is never nil. q.Limit is at least 1 (handlers enforce
	// 1-200).
	Messages(ctx context.Context, room string, q Query) (Page, error)
	// EnsureRoom records that room exists without changing its messages.
	// (Rooms come into being with their first message; a join no longer
	// creates one.)
	EnsureRoom(ctx context.Context, room string) error
	// LastSeq returns the room's highest seq, 0 for a room never used.
	LastSeq(ctx context.Context, room string) (int64, error)
	// Rooms lists one page of the rooms that exist, in byte order of name:
	// the first q.Limit (at least 1) rooms whose name sorts after q.After
	// ("" for the first page). RoomPage.Rooms is never nil; More says that
	// more rooms follow the page.
	Rooms(ctx context.Context, q RoomQuery) (RoomPage, error)
	// Ping reports whether the store answers.
	Ping(ctx context.Context) error
	Close() error
}

// QueryKind chooses a history page's direction.
type QueryKind int

const (
	// Latest: the room's last Limit messages.
	Latest QueryKind = iota
	// Before: the Limit messages just before seq Seq.
	Before
	// After: the Limit messages just after seq Seq.
	After
)

// Query asks for one page of history.
type Query struct {
	Kind  QueryKind
	Seq   int64
	Limit int
}

// Page is one page of history. HasMore says more messages lie beyond it in the
// direction asked: older for Latest and Before, newer for After.
type Page struct {
	Messages []Message `json:"messages"`
	HasMore  bool      `json:"has_more"`
}

// RoomQuery asks for one page of the room list.
type RoomQuery struct {
	After string
	Limit int
}

// RoomPage is one page of the room list.
type RoomPage struct {
	Rooms []RoomInfo
	More  bool
}

// RoomInfo is one entry of the room list.
type RoomInfo struct {
	Room    string `json:"room"`
	LastSeq int64  `json:"last_seq"`
}

// Sweeper is what a store offers for retention (PARLEY_RETENTION): deleting
// old messages. It is optional: a store without it keeps everything.
//
// Deleting never changes what remains: seqs are never reused, so LastSeq,
// the room list's last seqs and the seq of the next message stay as they
// were even when every message of a room is gone; a history page simply
// ends sooner (HasMore false once nothing older is kept), and a join or page
// after a seq below the oldest kept message starts at the oldest kept one.
type Sweeper interface {
	// Sweep deletes messages whose TS is before before and reports how many
	// it deleted. It may delete less than that (see each store), never more.
	Sweep(ctx context.Context, before time.Time) (int, error)
}

// SweepEvery calls s.Sweep with the cutoff now-retention at once and then
// every interval until ctx ends. A failed sweep is logged and tried again
// at the next tick: what it missed is still older than the cutoff then.
func SweepEvery(ctx context.Context, s Sweeper, retention, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		start := time.Now()
		n, err := s.Sweep(ctx, start.Add(-retention))
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			log.Warn("retention: sweep failed; trying again at the next tick", "err", err)
		case n > 0:
			log.Info("retention: deleted old messages", "messages", n, "took", time.Since(start))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RoomStates keeps what the persist stage derives from the rooms' timelines:
// each room's state (the fold of its items, saved with the seq it is at) and
// two indexes on it, the rooms each user is a member of and the directory of
// public rooms. The timeline is the truth; these are its projection, written
// by the persist stage before it republishes the items they fold, so that a
// client that saw an item finds its effect here. Both stores implement it
// beside Store.
type RoomStates interface {
	// RoomState returns the room's last saved state: NewRoomState(room)
	// (Seq 0) when none was saved. Items after its Seq may be stored
	// already (the saver died between the two writes, or saves only now and
	// then): LoadRoomState folds them in.
	RoomState(ctx context.Context, room string) (RoomState, error)
	// SaveRoomState saves st and brings both indexes in line with it,
	// unless a state of the room at a seq >= st.Seq is saved already (then
	// it does nothing and returns nil).
	SaveRoomState(ctx context.Context, st RoomState) error
	// Find returns the stored item of room with user and id; ok is false
	// when there is none.
	Find(ctx context.Context, room, user, id string) (m Message, ok bool, err error)
	// MemberRooms lists one page of the rooms user is a member of, by name
	// after q.After, each with user's role.
	MemberRooms(ctx context.Context, user string, q RoomQuery) (SummaryPage, error)
	// Directory lists one page of the public rooms, by name after q.After,
	// each with user's role in it ("" when not a member). A room whose
	// state was never saved (it came into being before v2) is public.
	Directory(ctx context.Context, user string, q RoomQuery) (SummaryPage, error)
}

// FindMany is what a RoomStates whose lookups cost a query each may add:
// Find for many items of one room at once. The persist stage looks up every
// item it refuses (a redelivery may be refused by what came after it): one
// query per room and batch instead of one per refused item.
type FindMany interface {
	// FindAll returns the stored items of room among keys, by key; a key
	// with no stored item is absent.
	FindAll(ctx context.Context, room string, keys []ItemKey) (map[ItemKey]Message, error)
}

// ItemKey is what makes an item unique in its room: its author and id.
type ItemKey struct{ User, ID string }

// RoomSummary is one room of a room list.
type RoomSummary struct {
	Room      string
	Kind      string
	Title     string
	Topic     string
	SlowModeS int
	LastSeq   int64
	// Role is the asking user's, "" when not a member.
	Role string
	// ReadSeq, Unread and Mentions are the asking user's (Marks.Counts).
	ReadSeq  int64
	Unread   int64
	Mentions int64
}

// SummaryPage is one page of a room list; More says more rooms follow.
type SummaryPage struct {
	Rooms []RoomSummary
	More  bool
}

// LoadRoomState is the room's state as of the store's last item: the saved
// state with every stored item after it folded in.
func LoadRoomState(ctx context.Context, rs RoomStates, store Store, room string) (RoomState, error) {
	st, err := rs.RoomState(ctx, room)
	if err != nil {
		return RoomState{}, err
	}
	if st.Room == "" {
		st.Room = room
	}
	for {
		page, err := store.Messages(ctx, room, Query{Kind: After, Seq: st.Seq, Limit: 200})
		if err != nil {
			return RoomState{}, err
		}
		for i := range page.Messages {
			st.Apply(&page.Messages[i])
		}
		if !page.HasMore || len(page.Messages) == 0 {
			return st, nil
		}
	}
}
