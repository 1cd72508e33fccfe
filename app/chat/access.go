package chat

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// What the hub keeps beside subscriptions for rooms with members: each
// room's state as this instance's fan-out has seen it (the accepting
// instance's send check), the local connections of each user (for what the
// persist stage tells a sender), and the requests waiting for the fate of an
// item they published.

// RoomLoader reads a room's saved state (RoomStates.RoomState).
type RoomLoader func(ctx context.Context, room string) (RoomState, error)

// UserSink is a local connection as its user's: the persist stage's refusal
// of an item the user sent reaches every connection of theirs.
type UserSink interface {
	// Refused tells the user that their item id in room was not stored:
	// e says why. It must not block.
	Refused(room, id string, e *Error)
	// Membership tells the user that an item at seq changed their place in
	// room (added, removed, banned, a new role, a direct room made with
	// them), so that a client not joined to the room learns its room list
	// changed. It must not block.
	Membership(room, action string, seq int64)
	// Read tells the user their read position in room moved to seq (from
	// this connection or another), so that a badge clears everywhere. It
	// must not block.
	Read(room string, seq int64)
	// Notified hands the user a notification (PROTOCOL.md "What you
	// missed"). It must not block.
	Notified(n *Notification)
}

// Receipter is a Sink told of receipts: a member's read position moved in a
// room that keeps receipts (direct, or at most ReceiptsMaxMembers
// members). It must not block.
type Receipter interface {
	Receipt(room, user string, seq int64)
}

// readMoved hands a decided read command to its user's local connections,
// and as a receipt to the room's joined ones when the room keeps receipts.
func (h *Hub) readMoved(m *Message) {
	if m.Data == nil {
		return
	}
	h.usersMu.Lock()
	for c := range h.users[m.User] {
		c.Read(m.Room, m.Data.Seq)
	}
	h.usersMu.Unlock()
	if !m.Data.Receipts {
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.rooms[m.Room] {
		if r, ok := s.sink.(Receipter); ok && !s.Ended() {
			r.Receipt(m.Room, m.User, m.Data.Seq)
		}
	}
}

// notified hands a notification record to its target's local connections.
func (h *Hub) notified(m *Message) {
	if m.Data == nil || m.Data.Notification == nil {
		return
	}
	// The target is the record's user (Notification.User is not encoded).
	n := *m.Data.Notification
	n.User = m.User
	h.usersMu.Lock()
	defer h.usersMu.Unlock()
	for c := range h.users[n.User] {
		c.Notified(&n)
	}
}

// tellTargets hands a membership item to the local connections of the users
// it is about.
func (h *Hub) tellTargets(m *Message) {
	d := m.Data
	if d == nil {
		return
	}
	targets := d.Members
	if d.Target != "" {
		targets = []string{d.Target}
	}
	if len(targets) == 0 {
		return
	}
	h.usersMu.Lock()
	defer h.usersMu.Unlock()
	for _, u := range targets {
		for c := range h.users[u] {
			c.Membership(m.Room, d.Action, m.Seq)
		}
	}
}

// roomView is a room's state as this instance's fan-out has seen it: loaded
// once from the saved state, then kept up by every item the fan-out
// delivers, in seq order. Items that arrive while it loads are kept and
// folded in after.
//
// It also knows the room's last seq: read from the store with the state,
// then raised by every item delivered. Both reads come after the view is
// registered, so nothing stored later is missed, and the saved state holds
// every membership change stored before it (the persist stage saves a
// state that changed before it publishes the item). A delivered seq that
// does not follow the last one (the stream skipped or reordered items: a
// rebalance's overlap, a consumer reset) breaks that promise: the view is
// dropped, and the next caller loads it again.
type roomView struct {
	used    atomic.Int64 // when last asked for (UnixNano): see sweepViews
	mu      sync.Mutex
	loaded  chan struct{} // closed once st and last are loaded (or the load failed)
	err     error         // the load's; set before loaded is closed
	st      RoomState
	last    int64 // the room's last seq as this instance knows it
	broken  bool  // a gap in the delivered seqs: dropped, answers nothing
	pending []*Event
	// recent holds the room's last delivered items: a client that comes
	// back a few seqs behind (its instance died) is replayed from memory,
	// not from the store, which a crowd of them at once would overload.
	recent recentItems
}

// recentKept is how many of a room's last items its view keeps: at the
// chaos test's pace (a few messages a second a room) ten seconds and more.
const recentKept = 64

// recentItems is a room's last delivered items, gapless by seq, as stored:
// what a replay from the store would hand out. A delete erases its target
// and the target's edits in the store, all at seqs below the delete's, so
// a delete drops every item before it: a replay from before it goes to the
// store and gets the erased items.
type recentItems struct {
	evs [recentKept]*Event // by seq modulo recentKept
	n   int                // items held: seqs end-n+1 .. end
	end int64
}

// add keeps ev, the item after the newest (a gap starts over from it).
func (r *recentItems) add(ev *Event) {
	seq := ev.Msg.Seq
	if r.n > 0 && seq <= r.end {
		return // delivered again
	}
	if r.n > 0 && seq != r.end+1 {
		r.n = 0
	}
	r.evs[seq%recentKept], r.end = ev, seq
	r.n = min(r.n+1, recentKept)
	if ev.Msg.Kind == KindDelete {
		r.n = 1 // only the delete itself: what came before it may be erased
	}
}

// after returns the items after cursor, oldest first, and whether the
// items held cover them all: false when cursor+1 is older than the oldest
// held (the store has them).
func (r *recentItems) after(cursor int64) ([]*Event, bool) {
	if r.n == 0 || cursor+1 < r.end-int64(r.n)+1 {
		return nil, false
	}
	if cursor >= r.end {
		return nil, true
	}
	out := make([]*Event, 0, r.end-cursor)
	for q := cursor + 1; q <= r.end; q++ {
		out = append(out, r.evs[q%recentKept])
	}
	return out, true
}

// SetRoomLoader gives the hub the saved room states. Without one (tests of
// the hub alone), CheckSend allows everything.
func (h *Hub) SetRoomLoader(load RoomLoader) { h.loadRoom = load }

// HasRoomLoader reports whether SetRoomLoader was called.
func (h *Hub) HasRoomLoader() bool { return h.loadRoom != nil }

// CheckSend refuses at once a message the accepting instance already knows
// to be forbidden: user not a member of a private room, banned, muted, or
// sending again within slow mode. It costs a store read only the first time
// this instance sees the room; the persist stage's decision is final.
func (h *Hub) CheckSend(ctx context.Context, user, room string) error {
	v, err := h.view(ctx, room)
	if err != nil || v == nil {
		return nil // the persist stage decides
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.broken {
		return nil // the persist stage decides
	}
	m := Message{Room: room, User: user, TS: Timestamp(time.Now())}
	return v.st.Check(&m)
}

// SavedState reads the room's saved state (the access check of a join, a
// history read, a stream), shared with the callers that ask for the same
// room at the same time: a crowd rejoining after an instance died costs a
// couple of reads, not one each. The state is shared: never modify it.
func (h *Hub) SavedState(ctx context.Context, room string) (RoomState, error) {
	if h.loadRoom == nil {
		return NewRoomState(room), nil
	}
	v, err := h.reads.do(ctx, "state\x00"+room, func(ctx context.Context) (any, error) {
		return h.loadRoom(ctx, room)
	})
	if err != nil {
		return RoomState{}, err
	}
	return v.(RoomState), nil
}

// view returns the room's view, loading it on first use. The load runs on
// its own (under viewLoadTimeout), shared by every caller that needs the
// room meanwhile; a caller waits for it until its own ctx ends, so that a
// store that does not answer never holds a send up for longer than its
// caller allows. A failed load is forgotten and tried again by the next
// caller.
func (h *Hub) view(ctx context.Context, room string) (*roomView, error) {
	if h.loadRoom == nil {
		return nil, nil
	}
	nv := &roomView{loaded: make(chan struct{})}
	nv.used.Store(time.Now().UnixNano())
	got, loaded := h.views.LoadOrStore(room, nv)
	v := got.(*roomView)
	if loaded {
		v.used.Store(time.Now().UnixNano())
	} else {
		// Registered before the read, so every item delivered from now on
		// is kept in pending and folded in after it.
		go h.loadView(room, v)
	}
	select {
	case <-v.loaded:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if v.err != nil {
		return nil, v.err
	}
	return v, nil
}

// viewLoadTimeout bounds one load of a room's view.
const viewLoadTimeout = 10 * time.Second

func (h *Hub) loadView(room string, v *roomView) {
	ctx, cancel := context.WithTimeout(context.Background(), viewLoadTimeout)
	defer cancel()
	st, err := h.loadRoom(ctx, room)
	var last int64
	if err == nil {
		last, err = h.store.LastSeq(ctx, room)
	}
	v.mu.Lock()
	if err != nil {
		v.err = err
		h.views.CompareAndDelete(room, v)
	} else {
		v.st, v.last = st, max(last, st.Seq)
		for _, ev := range v.pending {
			h.foldView(room, v, ev)
		}
	}
	v.pending = nil
	v.mu.Unlock()
	close(v.loaded)
}

// applyView folds a delivered item into the room's view, if this instance
// keeps one.
func (h *Hub) applyView(v *roomView, ev *Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	select {
	case <-v.loaded:
		h.foldView(ev.Msg.Room, v, ev)
	default:
		v.pending = append(v.pending, ev)
	}
}

// foldView folds one delivered item into a loaded view. v.mu is held.
func (h *Hub) foldView(room string, v *roomView, ev *Event) {
	if v.broken {
		return
	}
	m := &ev.Msg
	if m.Seq > v.last+1 {
		v.broken = true
		h.views.CompareAndDelete(room, v)
		h.log.Info("hub: room view dropped: a gap in the delivered seqs", "room", room, "last", v.last, "seq", m.Seq)
		return
	}
	if m.Seq == v.last+1 {
		v.recent.add(ev)
	}
	v.last = max(v.last, m.Seq)
	if m.Seq > v.st.Seq {
		v.st.Apply(m)
	}
}

// recentAfter returns the room's items after cursor from its view's recent
// items, when a loaded, unbroken view holds them all (ok); the caller
// reads the store otherwise.
func (h *Hub) recentAfter(room string, cursor int64) (evs []*Event, ok bool) {
	v := h.loadedView(room)
	if v == nil {
		return nil, false
	}
	evs, ok = v.recent.after(cursor)
	v.mu.Unlock()
	if ok && len(evs) > 0 && h.retention > 0 {
		// Held items retention has deleted from the store (or is about
		// to) are not replayed from memory: the store's replay finds the
		// retention edge.
		if ts, err := time.Parse(TSLayout, evs[0].Msg.TS); err != nil || time.Since(ts) > h.retention/2 {
			return nil, false
		}
	}
	return evs, ok
}

// SetRetention tells the hub the store's retention (PARLEY_RETENTION; 0:
// none), so that it never replays from memory what the store deleted.
func (h *Hub) SetRetention(d time.Duration) { h.retention = d }

// ReadableFrom answers a join's access check from the room's view: when
// the view lets user read the room, it returns the first seq they may see
// (RoomState.VisibleFrom), the seq of the state that decided
// (JoinRequest.Decided) and ok. It costs a store read only the first
// time this instance sees the room, so a crowd rejoining after their
// instance died does not wait for the store. ok is false when the view
// cannot answer: no loader, a failed load, a gap, or a refusal (the view
// may lag behind an add the store already holds): the caller then asks the
// saved state, which decides.
func (h *Hub) ReadableFrom(ctx context.Context, user, room string) (from, decided int64, ok bool) {
	v, err := h.view(ctx, room)
	if err != nil || v == nil {
		return 0, 0, false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.broken || v.st.CanRead(user, time.Now()) != nil {
		return 0, 0, false
	}
	return v.st.VisibleFrom(user), v.st.Seq, true
}

// viewLast is the room's last seq from a loaded, unbroken view, without
// waiting for a load; ok is false when there is none.
func (h *Hub) viewLast(room string) (last int64, ok bool) {
	v := h.loadedView(room)
	if v == nil {
		return 0, false
	}
	defer v.mu.Unlock()
	return v.last, true
}

// loadedView returns the room's view, locked, when one is loaded and
// unbroken, without waiting for a load; nil otherwise. The caller unlocks
// v.mu.
func (h *Hub) loadedView(room string) *roomView {
	got, found := h.views.Load(room)
	if !found {
		return nil
	}
	v := got.(*roomView)
	select {
	case <-v.loaded:
	default:
		return nil
	}
	v.used.Store(time.Now().UnixNano())
	v.mu.Lock()
	if v.err != nil || v.broken {
		v.mu.Unlock()
		return nil
	}
	return v
}

// viewIdle is how long a room's view is kept unasked for while no local
// connection follows the room; sweepEvery how often views are looked over.
// A view holds the room's state and its last recentKept items: kept for
// every room a join or send ever touched, an instance's memory would grow
// with every room used since it started.
const (
	viewIdle   = 10 * time.Minute
	sweepEvery = time.Minute
)

// maybeSweep starts a sweep of the views, on its own goroutine, when the
// last began sweepEvery ago or more.
func (h *Hub) maybeSweep(now time.Time) {
	last := h.sweptAt.Load()
	if now.UnixNano()-last < int64(sweepEvery) || !h.sweptAt.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	go func() {
		if n := h.sweepViews(now); n > 0 {
			h.log.Debug("hub: idle room views dropped", "views", n)
		}
	}()
}

// sweepViews drops the views not asked for within viewIdle of now whose
// room no local connection follows, and returns how many it dropped; the
// next use of one loads it again.
func (h *Hub) sweepViews(now time.Time) (dropped int) {
	h.views.Range(func(k, val any) bool {
		room, v := k.(string), val.(*roomView)
		if now.UnixNano()-v.used.Load() < int64(viewIdle) {
			return true
		}
		h.mu.RLock()
		followed := len(h.rooms[room]) > 0
		h.mu.RUnlock()
		if !followed && h.views.CompareAndDelete(room, v) {
			dropped++
		}
		return true
	})
	return dropped
}

// Connect registers a local connection of user; the returned func removes it.
func (h *Hub) Connect(user string, c UserSink) (remove func()) {
	h.usersMu.Lock()
	defer h.usersMu.Unlock()
	if h.users == nil {
		h.users = map[string]map[UserSink]struct{}{}
	}
	set := h.users[user]
	if set == nil {
		set = map[UserSink]struct{}{}
		h.users[user] = set
	}
	set[c] = struct{}{}
	return func() {
		h.usersMu.Lock()
		defer h.usersMu.Unlock()
		delete(h.users[user], c)
		if len(h.users[user]) == 0 {
			delete(h.users, user)
		}
	}
}

// refused hands the persist stage's refusal of an item to its sender's
// local connections and to a request waiting for it.
func (h *Hub) refused(m *Message) {
	e := &Error{Code: EForbidden, Message: KeyRefused, Key: KeyRefused}
	if m.Data != nil {
		e = &Error{Code: m.Data.Code, Message: m.Data.Message, Key: m.Data.Key, Params: m.Data.Params}
	}
	h.usersMu.Lock()
	for c := range h.users[m.User] {
		c.Refused(m.Room, m.ID, e)
	}
	h.usersMu.Unlock()
	h.settle(m, e)
}

// waitKey names an item by its idempotency key.
type waitKey struct{ room, user, id string }

// Await registers interest in the fate of the item (room, user, id) before
// it is published: wait returns the stored item once this instance's
// fan-out delivers it, or the persist stage's refusal as an *Error. Call
// cancel when done with it.
func (h *Hub) Await(room, user, id string) (wait func(ctx context.Context) (Message, error), cancel func()) {
	k := waitKey{room, user, id}
	ch := make(chan outcome, 1)
	h.waitMu.Lock()
	if h.waiters == nil {
		h.waiters = map[waitKey]chan outcome{}
	}
	h.waiters[k] = ch
	h.waiting.Add(1)
	h.waitMu.Unlock()
	cancel = func() {
		h.waitMu.Lock()
		if h.waiters[k] == ch {
			delete(h.waiters, k)
			h.waiting.Add(-1)
		}
		h.waitMu.Unlock()
	}
	wait = func(ctx context.Context) (Message, error) {
		select {
		case o := <-ch:
			return o.m, o.err
		case <-ctx.Done():
			return Message{}, ctx.Err()
		}
	}
	return wait, cancel
}

type outcome struct {
	m   Message
	err error
}

// settle ends the wait for m's item, if a request waits for it.
func (h *Hub) settle(m *Message, err error) {
	if h.waiting.Load() == 0 {
		return
	}
	k := waitKey{m.Room, m.User, m.ID}
	h.waitMu.Lock()
	ch := h.waiters[k]
	if ch != nil {
		delete(h.waiters, k)
		h.waiting.Add(-1)
	}
	h.waitMu.Unlock()
	if ch != nil {
		ch <- outcome{*m, err}
	}
}

// hubRooms is the part of Hub this file adds (kept here to read together).
type hubRooms struct {
	loadRoom  RoomLoader
	retention time.Duration // SetRetention
	views     sync.Map      // room -> *roomView
	sweptAt   atomic.Int64  // when the last sweep of views began (UnixNano)

	usersMu sync.Mutex
	users   map[string]map[UserSink]struct{}

	waitMu  sync.Mutex
	waiters map[waitKey]chan outcome
	waiting atomic.Int32
}
