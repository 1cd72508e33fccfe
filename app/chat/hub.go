package chat

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Sink is one local connection as the hub sees it. Implementations own a
// bounded queue drained by exactly one writer goroutine.
type Sink interface {
	// Joined queues the answer to a join; it comes before any message of the
	// room. It may wait for room in the queue.
	Joined(ctx context.Context, room string, lastSeq int64) error
	// Deliver queues a live message without blocking. When the queue is full
	// the sink cuts its client off as too slow and returns false: one slow
	// reader must never hold up the others.
	Deliver(ev *Event) bool
	// Replay queues a message read from the store, waiting for room in the
	// queue, so a long catch-up is paced by the client rather than cut off.
	Replay(ctx context.Context, ev *Event) error
}

// Hub tracks which local connections are joined to which rooms and delivers
// the fan-out stream to them. Each (connection, room) subscription keeps a
// cursor, the last seq it delivered, which makes delivery exactly once and in
// seq order even when the stream repeats itself or skips: a repeat is
// dropped, a skip is filled from the store before going on.
type Hub struct {
	store   Store
	log     *slog.Logger
	metrics Metrics
	// timed: the metrics want end-to-end latency (a ts parse per message).
	timed bool

	mu    sync.RWMutex
	rooms map[string]map[*Subscription]struct{}

	// reads shares the reads joins and catch-ups make at once.
	reads sharedReads
	// known holds rooms known to exist: seen in the fan-out stream (every
	// instance's fan-out sees every room) or read with a last seq above 0.
	// Rooms are never deleted, so an entry never goes stale; the room
	// creation limit keeps the set's growth bounded.
	known sync.Map

	hubRooms
}

// RoomExists reports whether room has a stored message. It answers from
// memory for every room this instance has seen, and reads the store (a
// read shared by concurrent callers) only for a room it has not: the send
// path asks it to tell a message that creates a room from one that does not.
func (h *Hub) RoomExists(ctx context.Context, room string) (bool, error) {
	if _, ok := h.known.Load(room); ok {
		return true, nil
	}
	last, err := h.joinRoom(ctx, room)
	if err != nil {
		return false, err
	}
	return last > 0, nil
}

// sharedReads runs a store read that many subscriptions need at the same
// time — after an instance died, its clients rejoin elsewhere together, all
// at the same seq — once for all of them. Per key there is one read in
// flight and one that those who asked meanwhile wait for, so every caller
// is answered by a read that began after it asked (it misses nothing stored
// before), and one read answers every caller waiting for it: a crowd costs
// a couple of store reads per room rather than one per client.
type sharedReads struct {
	mu sync.Mutex
	m  map[string]*readQueue
}

type readQueue struct{ inflight, next *sharedRead }

type sharedRead struct {
	done chan struct{}
	val  any
	err  error
}

// do returns the result of read for key, from a read that starts after the
// call. read runs under a bound of its own, so that a caller giving up does
// not fail the others.
func (r *sharedReads) do(ctx context.Context, key string, read func(context.Context) (any, error)) (any, error) {
	r.mu.Lock()
	if r.m == nil {
		r.m = map[string]*readQueue{}
	}
	q := r.m[key]
	if q == nil {
		q = &readQueue{}
		r.m[key] = q
	}
	var sr *sharedRead
	lead := false
	switch {
	case q.inflight == nil:
		sr = &sharedRead{done: make(chan struct{})}
		q.inflight, lead = sr, true
	case q.next == nil:
		sr = &sharedRead{done: make(chan struct{})}
		q.next = sr
	default:
		sr = q.next
	}
	r.mu.Unlock()
	if lead {
		go r.run(key, q, read)
	}
	select {
	case <-sr.done:
		return sr.val, sr.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// run performs key's reads one after the other until nobody waits for one.
func (r *sharedReads) run(key string, q *readQueue, read func(context.Context) (any, error)) {
	for {
		r.mu.Lock()
		sr := q.inflight
		r.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		sr.val, sr.err = read(ctx)
		cancel()
		close(sr.done)
		r.mu.Lock()
		q.inflight, q.next = q.next, nil
		if q.inflight == nil {
			delete(r.m, key)
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
	}
}

// NewHub returns a hub that reads missed messages from store.
func NewHub(store Store, log *slog.Logger, metrics Metrics) *Hub {
	return &Hub{store: store, log: log, metrics: orNop(metrics), timed: metrics != nil, rooms: make(map[string]map[*Subscription]struct{})}
}

// Deliver hands stored messages from the fan-out stream to every local
// subscription of their rooms. It never blocks on a connection.
func (h *Hub) Deliver(evs []*Event) {
	now := time.Now()
	h.maybeSweep(now)
	var view *roomView
	for i, ev := range evs {
		m := &ev.Msg
		if i == 0 || m.Room != evs[i-1].Msg.Room {
			if _, ok := h.known.Load(m.Room); !ok {
				h.known.Store(m.Room, struct{}{})
			}
			view = nil
			if v, ok := h.views.Load(m.Room); ok {
				view = v.(*roomView)
			}
		}
		if view != nil {
			h.applyView(view, ev)
		}
		if m.Kind == KindMember {
			h.tellTargets(m)
		}
		h.settle(m, nil)
		if h.timed {
			if t, err := time.Parse(TSLayout, m.TS); err == nil {
				h.metrics.EndToEnd(now.Sub(t))
			}
		}
		h.mu.RLock()
		for s := range h.rooms[m.Room] {
			s.offer(ev)
		}
		h.mu.RUnlock()
	}
}

// Rooms reports how many rooms have local subscribers.
func (h *Hub) Rooms() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.rooms)
}

// Join subscribes sink to room. The sink first gets Joined with the room's
// last seq; then, when hasAfter, every stored message with seq > after; then
// live messages — with no gap and no duplicate at the seam, because live
// messages that arrive during the replay wait in the subscription until the
// replay has reached them.
func (h *Hub) Join(ctx context.Context, room string, after int64, hasAfter bool, sink Sink) (*Subscription, error) {
	return h.JoinAs(ctx, JoinRequest{Room: room, After: after, HasAfter: hasAfter}, sink)
}

// JoinRequest says who joins which room from where.
type JoinRequest struct {
	Room string
	// User is who joins: their removal or ban ends the subscription (at
	// its seq, with Leaver.Left). Empty for an anonymous subscription that
	// nothing ends.
	User string
	// From is the first seq the user may see (RoomState.VisibleFrom): the
	// replay starts there at the earliest. Zero: from the start.
	From int64
	// Decided is the seq of the room state that let the user in (its
	// RoomState.Seq): every removal or ban at or below it is already
	// undone in that state (the user was re-added or unbanned since), so
	// such an item, replayed or delivered again (a persist stage
	// republishing after a crash), does not end the subscription.
	Decided int64
	// After and HasAfter are the client's resume point.
	After    int64
	HasAfter bool
}

// JoinAs is Join for a user who may see the room from r.From on.
func (h *Hub) JoinAs(ctx context.Context, r JoinRequest, sink Sink) (*Subscription, error) {
	room, after, hasAfter := r.Room, r.After, r.HasAfter
	s := &Subscription{hub: h, room: room, user: r.User, decided: r.Decided, sink: sink, catchingUp: true}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	// Subscribe before reading the last seq, so that every message stored
	// after that read is seen live. The room's view, when this instance
	// holds one, knows it without a store read: it is raised by each
	// delivered item before the item is offered to the subscriptions.
	h.add(s)
	last, ok := h.viewLast(room)
	var err error
	if !ok {
		last, err = h.joinRoom(ctx, room)
	} else if last > 0 {
		h.known.Store(room, struct{}{})
	}
	if err == nil {
		err = sink.Joined(ctx, room, last)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	s.mu.Lock()
	// The client has seen everything up to after, so nothing at or below it
	// is sent again, even when after lies beyond what this read of the store
	// showed (messages stored meanwhile, or a client ahead of a reset store:
	// joined's last_seq lets it notice).
	s.cursor = last
	if hasAfter {
		s.cursor = after
	}
	// Nothing before the user's first visible seq, whatever they ask.
	s.cursor = max(s.cursor, r.From-1)
	s.done = make(chan struct{})
	go s.catchUp(s.done)
	s.mu.Unlock()
	return s, nil
}

func (h *Hub) joinRoom(ctx context.Context, room string) (int64, error) {
	// A join does not create the room (v2, tightened): rooms come into
	// being with their first message, so join+leave cannot fill the room
	// list. An unused room answers last_seq 0.
	v, err := h.reads.do(ctx, "last\x00"+room, func(ctx context.Context) (any, error) {
		return h.store.LastSeq(ctx, room)
	})
	if err != nil {
		return 0, err
	}
	if v.(int64) > 0 {
		h.known.Store(room, struct{}{})
	}
	return v.(int64), nil
}

// expiredBelow reports whether the store keeps no message of room below seq:
// then a hole below seq in a replay is the retention edge (older messages
// deleted), not a write not yet visible. A failed read answers false, and the
// replay waits as for any hole.
func (h *Hub) expiredBelow(ctx context.Context, room string, seq int64) bool {
	p, err := h.store.Messages(ctx, room, Query{Kind: Before, Seq: seq, Limit: 1})
	if err != nil {
		h.log.Warn("hub: retention edge read failed", "room", room, "err", err)
		return false
	}
	return len(p.Messages) == 0
}

// readPage reads the page of room after cursor, shared with the other
// subscriptions catching up from the same seq. The page is read-only.
func (h *Hub) readPage(ctx context.Context, room string, cursor int64) (Page, error) {
	v, err := h.reads.do(ctx, "page\x00"+room+"\x00"+strconv.FormatInt(cursor, 10), func(ctx context.Context) (any, error) {
		return h.store.Messages(ctx, room, Query{Kind: After, Seq: cursor, Limit: replayPage})
	})
	if err != nil {
		return Page{}, err
	}
	return v.(Page), nil
}

func (h *Hub) add(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	subs := h.rooms[s.room]
	if subs == nil {
		subs = make(map[*Subscription]struct{})
		h.rooms[s.room] = subs
	}
	subs[s] = struct{}{}
}

func (h *Hub) remove(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	subs := h.rooms[s.room]
	delete(subs, s)
	if len(subs) == 0 {
		delete(h.rooms, s.room)
	}
}

// Tuning of a subscription's catch-up.
const (
	replayPage = 200
	// maxPending bounds the live messages held while a subscription catches
	// up; past it they are dropped and read from the store instead.
	maxPending = 1024
)

// Subscription is one connection joined to one room.
type Subscription struct {
	hub     *Hub
	room    string
	user    string
	decided int64 // JoinRequest.Decided
	sink    Sink
	ctx     context.Context // ends catch-up when the subscription closes
	cancel  context.CancelFunc

	mu         sync.Mutex
	cursor     int64 // last seq handed to the sink
	catchingUp bool  // a catch-up goroutine owns delivery; live messages wait in pending
	pending    []*Event
	overflow   bool
	closed     bool
	// ended is set when a timeline item ended the subscription (the user's
	// removal, ban or leave): it is closed and gone from the hub.
	ended bool
	done  chan struct{} // closed when the current catch-up goroutine ends
}

// Leaver is a Sink told when a subscription ends because its user was
// removed, banned or left: it queues {"type":"left","room","reason"} after
// the item that ended it. It must not block.
type Leaver interface {
	Left(room, reason string)
}

// Ended reports whether a timeline item ended the subscription.
func (s *Subscription) Ended() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// endLocked ends the subscription after the item that ended it was handed
// to the sink: nothing more of the room reaches it. The hub forgets it
// later (removeLater), since the caller may hold the hub's lock.
func (s *Subscription) endLocked(reason string) {
	if s.closed {
		return
	}
	s.closed, s.ended = true, true
	s.pending = nil
	if l, ok := s.sink.(Leaver); ok {
		l.Left(s.room, reason)
	}
	s.cancel()
	go s.hub.remove(s)
}

// deliverLocked hands the live item ev (the next in seq) to the sink and
// ends the subscription when ev ends its user's membership. It reports
// whether the sink took it.
func (s *Subscription) deliverLocked(ev *Event) bool {
	if !s.sink.Deliver(ev) {
		return false
	}
	s.cursor = ev.Msg.Seq
	s.hub.metrics.Delivered(1)
	if reason, ok := s.endsBy(&ev.Msg); ok {
		s.endLocked(reason)
	}
	return true
}

// endsBy reports whether m ends the subscription: an item removing or
// banning its user that the state which let them in did not already hold.
func (s *Subscription) endsBy(m *Message) (reason string, ok bool) {
	if m.Kind == "" || s.user == "" || m.Seq <= s.decided {
		return "", false
	}
	return m.Ends(s.user)
}

// Room is the subscription's room.
func (s *Subscription) Room() string { return s.room }

// offer takes one live message from the hub.
func (s *Subscription) offer(ev *Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if ev.Msg.Seq <= s.cursor {
		// The client says it saw the item that ends it (a resume point
		// past it): end now rather than never. Not for an older item
		// delivered again, which the state that let them in had undone.
		if reason, ok := s.endsBy(&ev.Msg); ok {
			s.endLocked(reason)
			return
		}
	}
	if s.catchingUp {
		if len(s.pending) < maxPending {
			s.pending = append(s.pending, ev)
		} else {
			s.overflow = true
		}
		return
	}
	switch seq := ev.Msg.Seq; {
	case seq <= s.cursor:
		// Already delivered: a redelivery from the bus or an idempotent resend.
	case seq == s.cursor+1:
		s.deliverLocked(ev)
	default:
		// A gap: the stream skipped messages (a lagging consumer, a restart).
		// Fill it from the store before delivering anything newer.
		s.catchingUp = true
		s.pending = append(s.pending[:0], ev)
		s.done = make(chan struct{})
		go s.catchUp(s.done)
	}
}

// catchUp replays stored messages after the cursor, then hands over to live
// delivery once the messages that arrived meanwhile continue the sequence.
func (s *Subscription) catchUp(done chan struct{}) {
	defer close(done)
	for {
		s.mu.Lock()
		cursor := s.cursor
		s.mu.Unlock()
		evs, cursor, more, ok := s.next(cursor)
		if !ok {
			return
		}
		for _, ev := range evs {
			if ev.Msg.Seq != cursor+1 {
				// The store's seqs are gapless; should a read ever show a hole,
				// wait and read again rather than spin.
				more = false
				break
			}
			if err := s.sink.Replay(s.ctx, ev); err != nil {
				return
			}
			cursor = ev.Msg.Seq
			s.hub.metrics.Delivered(1)
			if reason, ok := s.endsBy(&ev.Msg); ok {
				s.mu.Lock()
				s.cursor = cursor
				s.endLocked(reason)
				s.mu.Unlock()
				return
			}
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		s.cursor = cursor
		if more {
			s.mu.Unlock()
			continue
		}
		if s.drainPendingLocked() {
			s.catchingUp = false
			s.pending = nil
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		// The live messages do not yet continue from the store's end; give the
		// store a moment to show what the stream already carried.
		if !sleep(s.ctx, 20*time.Millisecond) {
			return
		}
	}
}

// next returns the items after cursor for a catch-up to replay: the room's
// recent items when this instance holds them all (a client a few seqs
// behind: no store read), else a page of the store (more: it has more after
// the page), retrying a failed read. The cursor it returns is past what
// retention deleted. ok is false once the subscription closed.
func (s *Subscription) next(cursor int64) (evs []*Event, from int64, more, ok bool) {
	for {
		if evs, held := s.hub.recentAfter(s.room, cursor); held {
			return evs, cursor, false, true
		}
		page, err := s.hub.readPage(s.ctx, s.room, cursor)
		if err != nil {
			if s.ctx.Err() != nil {
				return nil, 0, false, false
			}
			s.hub.log.Warn("hub: catch-up read failed; retrying", "room", s.room, "err", err)
			if !sleep(s.ctx, 500*time.Millisecond) {
				return nil, 0, false, false
			}
			continue
		}
		if len(page.Messages) > 0 && page.Messages[0].Seq > cursor+1 && s.hub.expiredBelow(s.ctx, s.room, page.Messages[0].Seq) {
			// Retention deleted the messages after the cursor: the replay
			// starts at the oldest one kept.
			cursor = page.Messages[0].Seq - 1
		}
		evs = make([]*Event, len(page.Messages))
		for i, m := range page.Messages {
			evs[i] = NewEvent(m)
		}
		return evs, cursor, page.HasMore, true
	}
}

// drainPendingLocked delivers the held live messages that continue the
// cursor. It reports false when a gap or an overflow remains, keeping what
// lies beyond the gap.
func (s *Subscription) drainPendingLocked() bool {
	if s.overflow {
		s.overflow = false
		s.pending = s.pending[:0]
		return false
	}
	slices.SortFunc(s.pending, func(a, b *Event) int { return int(a.Msg.Seq - b.Msg.Seq) })
	for i, ev := range s.pending {
		switch seq := ev.Msg.Seq; {
		case seq <= s.cursor:
		case seq == s.cursor+1:
			if !s.deliverLocked(ev) || s.closed {
				return true // cut off as too slow, or ended: nothing more to do
			}
		default:
			s.pending = append(s.pending[:0], s.pending[i:]...)
			return false
		}
	}
	return true
}

// Close leaves the room. It waits for a running catch-up to end, so nothing
// of this subscription reaches the sink after Close returns.
func (s *Subscription) Close() {
	s.hub.remove(s)
	s.mu.Lock()
	s.closed = true
	done := s.done
	s.mu.Unlock()
	s.cancel()
	if done != nil {
		<-done
	}
}
