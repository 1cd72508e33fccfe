package chat

import (
	"context"
	"slices"
)

// The persist stage's decisions: it is the one place that handles a room's
// records in order (a room is one partition's key, a partition one group
// member's), so it decides each item against the room's state at the point
// of the log where the item will be stored.
//
// It keeps the states of the rooms it handled, folded up to its last item,
// and trusts them only while it keeps handling their partition without a
// break: a record whose offset does not follow the last one handled in its
// partition means someone else handled records of it meanwhile (a
// rebalance, a restart), so the states of that partition's rooms are read
// again from the store, where the other handler left them.

// saveEvery bounds how far a room's saved state may lag its log when only
// plain messages came (they change the state little: slow mode's last
// sends). Membership and settings changes are saved at once.
const saveEvery = 500

// roomCache is the persist stage's room states.
type roomCache struct {
	rooms map[string]*cachedRoom
	// next is, per partition, the offset that continues what was handled.
	next map[int]int64
}

type cachedRoom struct {
	st        RoomState
	partition int
	saved     int64 // seq of the last saved state
}

// maxCachedRooms bounds the cache; past it, it starts over (each room is
// read again on its next record).
const maxCachedRooms = 100_000

// checkContinuity forgets the states of rooms in partitions whose records do
// not continue from the last handled.
func (rc *roomCache) checkContinuity(recs []Record) {
	if rc.rooms == nil || len(rc.rooms) > maxCachedRooms {
		rc.rooms, rc.next = map[string]*cachedRoom{}, map[int]int64{}
	}
	seen := map[int]bool{}
	for _, r := range recs {
		if seen[r.Partition] {
			continue
		}
		seen[r.Partition] = true
		if next, ok := rc.next[r.Partition]; !ok || next != r.Offset {
			for room, c := range rc.rooms {
				if c.partition == r.Partition {
					delete(rc.rooms, room)
				}
			}
		}
	}
	for _, r := range recs {
		rc.next[r.Partition] = r.Offset + 1
	}
}

// decided is one record's fate in a batch.
type decided struct {
	m       Message
	rec     int // index of its record
	refusal *Error
	found   bool // already stored (a redelivery): m is the stored item
}

// decide loads the states of the batch's rooms and decides each message in
// order against its room's state with the batch's earlier items folded in.
// A command already stored is a redelivery: it is not decided again (its
// effect is in the state). A plain message refused is looked up too, since a
// redelivered message may now be refused by what came after it.
func (p *Persister) decide(ctx context.Context, msgs []Message, parts []int) ([]decided, error) {
	tentative := map[string]*RoomState{}
	out := make([]decided, 0, len(msgs))
	for i := range msgs {
		m := msgs[i]
		st, ok := tentative[m.Room]
		if !ok {
			c, err := p.cached(ctx, m.Room, parts[i])
			if err != nil {
				return nil, err
			}
			cp := c.st.Clone()
			st = &cp
			tentative[m.Room] = st
		}
		if m.Kind != "" {
			stored, ok, err := p.Rooms.Find(ctx, m.Room, m.User, m.ID)
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, decided{m: stored, rec: i, found: true})
				continue
			}
		}
		if err := st.Check(&m); err != nil {
			e := asError(err)
			if m.Kind == "" {
				stored, ok, ferr := p.Rooms.Find(ctx, m.Room, m.User, m.ID)
				if ferr != nil {
					return nil, ferr
				}
				if ok {
					out = append(out, decided{m: stored, rec: i, found: true})
					continue
				}
			}
			out = append(out, decided{m: m, rec: i, refusal: e})
			continue
		}
		t := m
		t.Seq = st.Seq + 1
		st.Apply(&t)
		out = append(out, decided{m: m, rec: i})
	}
	return out, nil
}

func asError(err error) *Error {
	if e, ok := err.(*Error); ok {
		return e
	}
	return Errorf(EInternal, "refused")
}

// cached returns the room's state, reading it from the store when the
// cache does not hold it.
func (p *Persister) cached(ctx context.Context, room string, partition int) (*cachedRoom, error) {
	if c, ok := p.rooms.rooms[room]; ok {
		return c, nil
	}
	var st RoomState
	err := retry(ctx, p.Log, "persist: load room state", func() error {
		var err error
		st, err = LoadRoomState(ctx, p.Rooms, p.Store, room)
		return err
	})
	if err != nil {
		return nil, err
	}
	// Whatever was folded in beyond the saved state is at most saveEvery
	// items: counting from here keeps the lag below twice that.
	c := &cachedRoom{st: st, partition: partition, saved: st.Seq}
	p.rooms.rooms[room] = c
	return c, nil
}

// fold brings the cached states up to the stored items and saves those
// that changed in a way others read (members, roles, moderation,
// settings) or lag too far. The items are folded from the stored results,
// not the tentative states: a redelivered message stored earlier has its
// old seq and is not folded twice.
func (p *Persister) fold(ctx context.Context, items []decided) error {
	byRoom := map[string][]*Message{}
	var order []string
	for i := range items {
		d := &items[i]
		if d.refusal != nil {
			continue
		}
		if _, ok := byRoom[d.m.Room]; !ok {
			order = append(order, d.m.Room)
		}
		byRoom[d.m.Room] = append(byRoom[d.m.Room], &d.m)
	}
	for _, room := range order {
		c := p.rooms.rooms[room]
		if c == nil {
			continue
		}
		ms := byRoom[room]
		slices.SortFunc(ms, func(a, b *Message) int { return int(a.Seq - b.Seq) })
		dirty := false
		stale := false
		for _, m := range ms {
			if m.Seq <= c.st.Seq {
				continue
			}
			if m.Seq != c.st.Seq+1 {
				stale = true
			}
			members := len(c.st.Members)
			c.st.Apply(m)
			if m.Kind != "" || len(c.st.Members) != members {
				dirty = true
			}
		}
		if stale {
			// Someone else stored items of this room meanwhile: the
			// decisions of this batch were made on a state behind the log.
			// Read it again before the next decision.
			p.Log.Warn("persist: room state was behind the log; reading it again", "room", room)
			delete(p.rooms.rooms, room)
			st, err := LoadRoomState(ctx, p.Rooms, p.Store, room)
			if err != nil {
				return err
			}
			c = &cachedRoom{st: st, partition: c.partition, saved: c.saved}
			p.rooms.rooms[room] = c
			dirty = true
		}
		if dirty || c.st.Seq-c.saved >= saveEvery {
			st := c.st
			if err := retry(ctx, p.Log, "persist: save room state", func() error {
				return p.Rooms.SaveRoomState(ctx, st)
			}); err != nil {
				return err
			}
			c.saved = st.Seq
		}
	}
	return nil
}

// refusalRecord is the receive record that tells a sender their item was
// refused: not an item, never stored, no seq.
func refusalRecord(m Message, e *Error) Record {
	r := Message{Room: m.Room, ID: m.ID, User: m.User, TS: m.TS, Kind: kindRefusal,
		Data: &ItemData{Code: e.Code, Message: e.Message}}
	return Record{Key: []byte(m.Room), Value: Encode(r)}
}
