package chat

import (
	"context"
	"slices"
	"time"
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
	dirty     bool  // changed since saved in a way others read
	stale     bool  // behind the log: read it again
	// Per batch: touched once decide used the state, pre its seq then,
	// changed when the batch changed what others read (see fold).
	touched   bool
	pre       int64
	preEvents int64
	changed   bool
	// reads caches the read positions of the room's readers (see
	// persist_marks.go); canon maps members' canonical names to their
	// names, for mentions, until the members change.
	reads map[string]int64
	canon map[string]string
	// recent knows the items decided since the state was read, by the
	// seq they were decided at: the targets of lifecycle items that come
	// soon after them (often in the same batch, before they are stored).
	recent map[int64]TargetInfo
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
	refusal *Error
	found   bool  // already stored (a redelivery): m is the stored item
	seq     int64 // the seq the decision assumed it gets
	// read: a read command taken (m is its receive record); drop: a read
	// command that changes nothing, so nothing of it is published.
	read bool
	drop bool
}

// decide decides each message of the batch in order against its room's
// cached state, folding each allowed item in at the seq it should get (the
// state stays the fold of the log, with this batch's items after it). A
// command already stored is a redelivery: it is not decided again (its
// effect is in the log). A plain message refused is looked up too, since a
// redelivered message may now be refused by what came after it.
//
// The states are changed in place, not copied: copying a large room's
// members for every batch would cost the hot path. When the store gives an
// item another seq than assumed (a redelivered message, someone else's
// write), fold reads the state again from the log.
func (p *Persister) decide(ctx context.Context, msgs []Message, parts []int) ([]decided, error) {
	if err := p.prefetchTargets(ctx, msgs, parts); err != nil {
		return nil, err
	}
	out := make([]decided, 0, len(msgs))
	// The refused items, looked up after the loop, one query per room
	// (refusing changes no state, so the lookup may come later).
	var refused []int
	for i := range msgs {
		m := msgs[i]
		c, err := p.cached(ctx, m.Room, parts[i])
		if err != nil {
			return nil, err
		}
		c.begin()
		if m.Kind == KindRead {
			d, err := p.decideRead(ctx, c, m)
			if err != nil {
				return nil, err
			}
			out = append(out, d)
			continue
		}
		if m.Kind == KindMember {
			stored, ok, err := p.Rooms.Find(ctx, m.Room, m.User, m.ID)
			if err != nil {
				return nil, err
			}
			if ok {
				// Stored already: by an earlier run of this batch, or by
				// another consumer of the partition (a rebalance's
				// overlap). Whether the cached state holds its effect,
				// and that of whatever else was stored meanwhile, is not
				// known: read the state again from the log before
				// deciding anything after it.
				if c, err = p.reload(ctx, m.Room, parts[i]); err != nil {
					return nil, err
				}
				c.begin()
				out = append(out, decided{m: stored, found: true})
				continue
			}
		}
		if m.IsLifecycle() {
			var t TargetInfo
			if t, err = p.targetOf(ctx, c, m.Room, m.Target()); err != nil {
				return nil, err
			}
			err = c.st.CheckLifecycle(&m, t)
		} else {
			err = c.st.Check(&m)
		}
		if err != nil {
			if m.Kind != KindMember {
				refused = append(refused, len(out))
			}
			out = append(out, decided{m: m, refusal: asError(err)})
			continue
		}
		t := m
		t.Seq = c.st.Seq + 1
		members := len(c.st.Members)
		c.st.Apply(&t)
		// Lifecycle items change nothing others read of the state (its
		// seq and events only, as a plain message does).
		if m.Kind == KindMember || len(c.st.Members) != members {
			c.dirty, c.changed = true, true
			c.canon = nil
		}
		c.stamp(&m)
		c.remember(&t)
		out = append(out, decided{m: m, seq: t.Seq})
	}
	if err := p.findRefused(ctx, out, refused); err != nil {
		return nil, err
	}
	return out, nil
}

// findRefused turns each refused item of out (at the indexes refused) that
// is stored already into a redelivery: found, not refused.
func (p *Persister) findRefused(ctx context.Context, out []decided, refused []int) error {
	if len(refused) == 0 {
		return nil
	}
	fm, many := p.Rooms.(FindMany)
	if !many {
		fm = findEach{p.Rooms}
	}
	byRoom := map[string][]int{}
	var rooms []string
	for _, k := range refused {
		r := out[k].m.Room
		if _, ok := byRoom[r]; !ok {
			rooms = append(rooms, r)
		}
		byRoom[r] = append(byRoom[r], k)
	}
	for _, r := range rooms {
		keys := make([]ItemKey, 0, len(byRoom[r]))
		for _, k := range byRoom[r] {
			keys = append(keys, ItemKey{User: out[k].m.User, ID: out[k].m.ID})
		}
		found, err := fm.FindAll(ctx, r, keys)
		if err != nil {
			return err
		}
		for _, k := range byRoom[r] {
			if stored, ok := found[ItemKey{User: out[k].m.User, ID: out[k].m.ID}]; ok {
				out[k] = decided{m: stored, found: true}
			}
		}
	}
	return nil
}

// findEach is FindMany for a RoomStates without it: one Find per key.
type findEach struct{ RoomStates }

func (f findEach) FindAll(ctx context.Context, room string, keys []ItemKey) (map[ItemKey]Message, error) {
	out := map[ItemKey]Message{}
	for _, k := range keys {
		m, ok, err := f.Find(ctx, room, k.User, k.ID)
		if err != nil {
			return nil, err
		}
		if ok {
			out[k] = m
		}
	}
	return out, nil
}

// maxTargetSpan bounds one prefetch query's seq range: targets further
// apart are read in several.
const maxTargetSpan = 512

// prefetchTargets reads, per room, the targets of the batch's lifecycle
// items that the room's recent items do not know, with one query per span
// of seqs instead of one per item (a store that scans, as FerretDB does,
// pays a collection scan per query; after a restart or a partition move
// the cache knows no target at all). What it reads goes into recent, where
// targetOf finds it.
func (p *Persister) prefetchTargets(ctx context.Context, msgs []Message, parts []int) error {
	want := map[string][]int64{}
	var rooms []string
	for i := range msgs {
		m := &msgs[i]
		if !m.IsLifecycle() {
			continue
		}
		c, err := p.cached(ctx, m.Room, parts[i])
		if err != nil {
			return err
		}
		t := m.Target()
		if _, ok := c.recent[t]; ok || t < 1 || t > c.st.Seq {
			continue // known, or decided in this batch (or no item at all)
		}
		if _, ok := want[m.Room]; !ok {
			rooms = append(rooms, m.Room)
		}
		want[m.Room] = append(want[m.Room], t)
	}
	for _, room := range rooms {
		c := p.rooms.rooms[room]
		seqs := want[room]
		slices.Sort(seqs)
		seqs = slices.Compact(seqs)
		for len(seqs) > 0 {
			n := 1
			for n < len(seqs) && seqs[n]-seqs[0] < maxTargetSpan {
				n++
			}
			from, to := seqs[0], seqs[n-1]
			page, err := p.Store.Messages(ctx, room, Query{Kind: After, Seq: from - 1, Limit: int(to - from + 1)})
			if err != nil {
				return err
			}
			if c.recent == nil || len(c.recent)+n >= maxRecent {
				c.recent = map[int64]TargetInfo{}
			}
			have := map[int64]Message{}
			var last int64
			for _, m := range page.Messages {
				have[m.Seq], last = m, max(last, m.Seq)
			}
			for _, q := range seqs[:n] {
				switch m, ok := have[q]; {
				case ok:
					c.recent[q] = storedTarget(&m)
				case !page.HasMore || q < last:
					c.recent[q] = TargetInfo{} // gone (retention)
				}
				// Else the page ended before it: targetOf reads it.
			}
			seqs = seqs[n:]
		}
	}
	return nil
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
	lt := time.Now()
	st, err := LoadRoomState(ctx, p.Rooms, p.Store, room)
	if err != nil {
		return nil, err
	}
	p.Log.Debug("persist: room state loaded", "room", room, "seq", st.Seq, "took", time.Since(lt))
	// The items folded in beyond the saved state may change what others
	// read (an add stored by an instance that died before it saved the
	// state): the state is saved with this batch, whatever it holds.
	c := &cachedRoom{st: st, partition: partition, saved: st.Seq, dirty: true}
	p.rooms.rooms[room] = c
	return c, nil
}

// begin marks the state used by the batch at hand.
func (c *cachedRoom) begin() {
	if !c.touched {
		c.touched, c.pre, c.preEvents, c.changed = true, c.st.Seq, c.st.Events, false
	}
}

// reload reads the room's state again from the log and caches it.
func (p *Persister) reload(ctx context.Context, room string, partition int) (*cachedRoom, error) {
	delete(p.rooms.rooms, room)
	return p.cached(ctx, room, partition)
}

// forget drops the batch's rooms from the cache: their states hold
// decisions that were not stored (the batch is given up).
func (p *Persister) forget(msgs []Message) {
	for _, m := range msgs {
		delete(p.rooms.rooms, m.Room)
	}
}

// fold checks the stored seqs against the decisions' and saves the states
// that changed in a way others read (members, roles, moderation, settings)
// or lag too far. A room whose items got other seqs than its decisions
// assumed is read again from the log: a redelivered message already stored
// under an older seq, or another writer's items (a rebalance's overlap).
func (p *Persister) fold(ctx context.Context, items []decided) error {
	var order []string
	seqs := map[string]map[int64]bool{} // room -> the seqs of its items stored now
	events := map[string]int64{}        // room -> how many of them are events
	for _, d := range items {
		c := p.rooms.rooms[d.m.Room]
		if _, ok := seqs[d.m.Room]; !ok {
			seqs[d.m.Room] = map[int64]bool{}
			order = append(order, d.m.Room)
		}
		if c == nil || d.refusal != nil {
			continue
		}
		switch {
		case d.found && d.m.Seq > c.pre:
			// Stored after the state was read, by someone else.
			c.stale = true
		case !d.found && d.m.Seq > c.pre:
			seqs[d.m.Room][d.m.Seq] = true
			if d.m.Kind != "" {
				events[d.m.Room]++
			}
		}
	}
	for _, room := range order {
		c := p.rooms.rooms[room]
		if c == nil {
			continue
		}
		// The items stored now must follow the state's seq without a gap
		// (a gap: someone else stored items meanwhile). Fewer of them than
		// the decisions assumed means redelivered messages, stored before
		// under older seqs: the state's seq is set right, and only when the
		// batch changed what others read is the state read again.
		n := int64(len(seqs[room]))
		for q := range seqs[room] {
			if q > c.pre+n {
				c.stale = true
			}
		}
		if real := c.pre + n; !c.stale && c.st.Seq != real {
			if c.changed {
				c.stale = true
			} else {
				// A redelivered message or lifecycle item was stored
				// before: it is not the state's again. (Items decided
				// after it in this batch were stamped one event too many
				// when it was a lifecycle item: an unread count off by
				// one, after a crash, until the reader reads on.)
				c.st.Seq, c.st.Events = real, c.preEvents+events[room]
			}
			c.recent = nil // decided at seqs the store did not give
		}
		c.touched = false
	}
	var dirty []*cachedRoom
	for _, room := range order {
		c := p.rooms.rooms[room]
		if c == nil {
			continue
		}
		if c.stale {
			p.Log.Info("persist: room state read again from the log", "room", room)
			st, err := LoadRoomState(ctx, p.Rooms, p.Store, room)
			if err != nil {
				delete(p.rooms.rooms, room)
				return err
			}
			c.st, c.stale, c.dirty = st, false, true
		}
		switch {
		case c.dirty:
			dirty = append(dirty, c)
		case c.st.Seq-c.saved >= saveEvery:
			// Only plain messages came: what others read of the saved
			// state is still right, and saving bounds only what the next
			// load folds. A large room's state costs a write of its
			// every member: not on the batch's way (it held deliveries
			// up), but beside it.
			if p.saveLater(c.st.Clone()) {
				c.saved = c.st.Seq
			}
		}
	}
	return p.saveStates(ctx, dirty)
}

// RoomStatesSaver is a RoomStates that saves several states in one write
// (SaveRoomState of each, all or nothing). A batch that brings many rooms
// into being — the first message of each of a thousand small rooms — then
// costs one write, and on the embedded store one fsync, not one per room.
type RoomStatesSaver interface {
	SaveRoomStates(ctx context.Context, sts []RoomState) error
}

// saveStates saves the rooms' states, together when the store can.
func (p *Persister) saveStates(ctx context.Context, rooms []*cachedRoom) error {
	if len(rooms) == 0 {
		return nil
	}
	saver, ok := p.Rooms.(RoomStatesSaver)
	if !ok || len(rooms) == 1 {
		for _, c := range rooms {
			st := c.st
			if err := retry(ctx, p.Log, "persist: save room state", func() error {
				return p.Rooms.SaveRoomState(ctx, st)
			}); err != nil {
				return err
			}
			c.saved, c.dirty = st.Seq, false
		}
		return nil
	}
	sts := make([]RoomState, len(rooms))
	for i, c := range rooms {
		sts[i] = c.st
	}
	if err := retry(ctx, p.Log, "persist: save room states", func() error {
		return saver.SaveRoomStates(ctx, sts)
	}); err != nil {
		return err
	}
	for _, c := range rooms {
		c.saved, c.dirty = c.st.Seq, false
	}
	return nil
}

// saveLater hands a state to the background saver; false when it is busy
// (the state is offered again after the next batch).
func (p *Persister) saveLater(st RoomState) bool {
	select {
	case p.lagSaves <- st:
		return true
	default:
		return false
	}
}

// saveLagging saves the states saveLater hands it until ctx ends. A failed
// save is logged and left: a later one saves a newer state (the store keeps
// the newest), and the log holds everything meanwhile.
func (p *Persister) saveLagging(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case st := <-p.lagSaves:
			if err := p.Rooms.SaveRoomState(ctx, st); err != nil && ctx.Err() == nil {
				p.Log.Warn("persist: background save of a room state failed", "room", st.Room, "err", err)
			}
		}
	}
}

// refusalRecord is the receive record that tells a sender their item was
// refused: not an item, never stored, no seq.
func refusalRecord(m Message, e *Error) Record {
	r := Message{Room: m.Room, ID: m.ID, User: m.User, TS: m.TS, Kind: kindRefusal,
		Data: &ItemData{Code: e.Code, Message: e.Message, Key: e.Key, Params: e.Params}}
	return Record{Key: []byte(m.Room), Value: Encode(r)}
}

// maxRecent bounds a room's recent items; past it, it starts over (a
// target not found there is read from the store).
const maxRecent = 4096

// remember records an item decided at its seq, and a delete's effect on its
// target.
func (c *cachedRoom) remember(m *Message) {
	if c.recent == nil || len(c.recent) >= maxRecent {
		c.recent = map[int64]TargetInfo{}
	}
	c.recent[m.Seq] = TargetInfo{Found: true, User: m.User, Kind: m.Kind}
	if m.Kind == KindDelete {
		if t, ok := c.recent[m.Target()]; ok {
			t.Deleted = true
			c.recent[m.Target()] = t
		} else {
			// Read from the store (targetOf) and not deleted then: it is
			// now. Its author and kind matter no more.
			c.recent[m.Target()] = TargetInfo{Found: true, Deleted: true}
		}
	}
}

// targetOf is what the room knows of the item at seq: from the items decided
// lately, else from the store (which marks a deleted message).
func (p *Persister) targetOf(ctx context.Context, c *cachedRoom, room string, seq int64) (TargetInfo, error) {
	if t, ok := c.recent[seq]; ok {
		return t, nil
	}
	if seq < 1 || seq > c.st.Seq {
		return TargetInfo{}, nil
	}
	page, err := p.Store.Messages(ctx, room, Query{Kind: After, Seq: seq - 1, Limit: 1})
	if err != nil {
		return TargetInfo{}, err
	}
	if len(page.Messages) == 0 || page.Messages[0].Seq != seq {
		return TargetInfo{}, nil // gone (retention)
	}
	return storedTarget(&page.Messages[0]), nil
}

// storedTarget is what a lifecycle item's decision needs of its target, as
// the store holds it (which marks a deleted message).
func storedTarget(m *Message) TargetInfo {
	return TargetInfo{Found: true, User: m.User, Kind: m.Kind, Deleted: m.Deleted}
}
