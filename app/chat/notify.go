package chat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// GroupNotify is the notifications consumer's group on the receive topic:
// shared by every instance, like the persist group, so that each due
// notification is made by one of them.
const GroupNotify = "parley-notify"

// Notifier is the notifications consumer, the pipeline's third group: it
// reads the receive topic in GroupNotify and, for each direct message or
// mention that its target has not read Delay after it was sent, makes an
// in-app notification, queues its Web Push and webhook deliveries in the
// outbox, and sends it live to the target's connections on every instance
// (a KindNotification record on the receive topic).
//
// Whether a notification is due is decided by the log alone: the item,
// then whatever the log holds of its room after it — a read command of the
// target's, or an item the target sent (you answered, so you read it) —
// with a ts up to the item's ts + Delay. The same records give the same
// decisions whichever instance reads them, however many times: an instance
// that dies mid-way leaves its partitions to another that reads them again
// from the last commit and decides the same. A notification's id is a
// function of (target, room, seq), and the store makes it once; webhook
// deliveries carry ids of the same kind, so a repeat is a repeat under the
// same id.
//
// It commits a partition only up to its first notification not yet made:
// what it commits is finished.
type Notifier struct {
	Bus   Bus
	Topic string
	Store Notifications
	// Rooms reads a room's state: the members of a direct room.
	Rooms RoomLoader
	// Delay is PARLEY_NOTIFY_DELAY.
	Delay time.Duration
	// Webhooks are PARLEY_WEBHOOK_URLS: each due notification is posted
	// to each.
	Webhooks []string
	// Push makes due notifications queue a Web Push to each of the
	// target's subscriptions.
	Push bool
	// Kick wakes the outbox's sender after deliveries were queued.
	Kick    func()
	Log     *slog.Logger
	Metrics Metrics
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time

	consumer atomic.Pointer[consumerBox]
}

// Ready reports whether the consumer is assigned and reading.
func (n *Notifier) Ready() bool {
	b := n.consumer.Load()
	return b != nil && b.c.Ready()
}

// notifyGrace is how long past its due time a notification waits for the
// records that could still cancel it (a read command published just before
// the due time, still on its way through the persist stage).
const notifyGrace = time.Second

// notifyCommitEvery spaces the consumer's commits.
const notifyCommitEvery = 500 * time.Millisecond

// Run consumes until ctx ends.
func (n *Notifier) Run(ctx context.Context) error {
	var c Consumer
	for {
		var err error
		// A new group starts at the end: a first deployment does not
		// notify the whole retained backlog.
		c, err = n.Bus.Consume(ctx, ConsumerConfig{Topic: n.Topic, Group: GroupNotify, Start: StartNewAtEnd})
		if err == nil {
			break
		}
		n.Log.Warn("notify: consume failed; retrying", "err", err)
		if !sleep(ctx, time.Second) {
			return nil
		}
	}
	n.consumer.Store(&consumerBox{c})
	defer c.Close()
	defer watchLag(orNop(n.Metrics), GroupNotify, n.Topic, c)()
	st := newNotifyState(n.Topic)
	lastCommit := time.Time{}
	for {
		now := n.now()
		fctx, cancel := context.WithTimeout(ctx, st.wait(now))
		recs, err := c.Fetch(fctx, 256)
		cancel()
		switch {
		case ctx.Err() != nil:
			n.commit(ctx, c, st)
			return nil
		case err != nil && fctx.Err() != nil:
			// Nothing more to read now: the log is read up to now.
			st.caughtUp = n.now()
		case err != nil:
			n.Log.Warn("notify: fetch", "err", err)
			if !sleep(ctx, 500*time.Millisecond) {
				return nil
			}
		}
		for _, r := range recs {
			n.take(ctx, st, r)
		}
		for _, e := range st.ready(n.now()) {
			if err := retry(ctx, n.Log, "notify: make notification", func() error { return n.make(ctx, e) }); err != nil {
				return nil
			}
			e.done = true
		}
		if time.Since(lastCommit) >= notifyCommitEvery {
			n.commit(ctx, c, st)
			lastCommit = time.Now()
		}
	}
}

func (n *Notifier) now() time.Time {
	if n.Now != nil {
		return n.Now()
	}
	return time.Now()
}

// pendingNote is a notification that may become due.
type pendingNote struct {
	n         Notification
	due       time.Time
	partition int
	offset    int64
	cancelled bool
	done      bool
}

type readerKey struct{ user, room string }

// notifyState is what the consumer holds between its commits.
type notifyState struct {
	topic string
	// queue holds each partition's pending notes in offset order.
	queue map[int][]*pendingNote
	// byReader finds the notes a read of (user, room) may cancel.
	byReader map[readerKey][]*pendingNote
	keys     map[string]*pendingNote
	// last is the last record read of each partition, committed is what
	// was committed; newest is the newest ts read of each partition.
	last      map[int]int64
	committed map[int]int64
	newest    map[int]time.Time
	// newestAll is the newest ts read of any partition; caughtUp the
	// last time a fetch found nothing more.
	newestAll time.Time
	caughtUp  time.Time
	// direct caches the members of direct rooms (they never change).
	direct map[string][]string
}

func newNotifyState(topic string) *notifyState {
	return &notifyState{topic: topic, queue: map[int][]*pendingNote{}, byReader: map[readerKey][]*pendingNote{},
		keys: map[string]*pendingNote{}, last: map[int]int64{}, committed: map[int]int64{},
		newest: map[int]time.Time{}, direct: map[string][]string{}}
}

// take reads one receive record.
func (n *Notifier) take(ctx context.Context, st *notifyState, r Record) {
	st.last[r.Partition] = r.Offset
	m, err := Decode(r.Value)
	if err != nil || m.Room == "" {
		return
	}
	ts, err := time.Parse(TSLayout, m.TS)
	if err != nil {
		return
	}
	if ts.After(st.newest[r.Partition]) {
		st.newest[r.Partition] = ts
	}
	if ts.After(st.newestAll) {
		st.newestAll = ts
	}
	switch {
	case m.Kind == KindRead && m.Data != nil:
		st.cancel(m.User, m.Room, m.Data.Seq, ts)
		return
	case !m.IsTimeline() || m.Seq <= 0:
		return
	}
	// An item its author sent reads the room up to it.
	st.cancel(m.User, m.Room, m.Seq, ts)
	if m.Kind != "" {
		return
	}
	targets := map[string]string{}
	for _, u := range m.Mentions {
		targets[u] = NotifyMention
	}
	if strings.HasPrefix(m.Room, DirectPrefix) {
		for _, u := range n.directMembers(ctx, st, m.Room) {
			targets[u] = NotifyDirect
		}
	}
	for u, kind := range targets {
		if u == m.User {
			continue
		}
		id := NotificationID(u, m.Room, m.Seq)
		if _, ok := st.keys[id]; ok {
			continue // read again (a redelivery): pending already
		}
		e := &pendingNote{
			n: Notification{ID: id, Room: m.Room, Seq: m.Seq, From: m.User, Text: excerpt(m.Text, notifyTextRunes),
				Kind: kind, TS: m.TS, User: u},
			due: ts.Add(n.Delay), partition: r.Partition, offset: r.Offset,
		}
		st.keys[id] = e
		st.queue[r.Partition] = append(st.queue[r.Partition], e)
		k := readerKey{u, m.Room}
		st.byReader[k] = append(st.byReader[k], e)
	}
}

// notifyTextRunes bounds a notification's text: it is a preview.
const notifyTextRunes = 200

func excerpt(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// directMembers are the members of a direct room, read once.
func (n *Notifier) directMembers(ctx context.Context, st *notifyState, room string) []string {
	if ms, ok := st.direct[room]; ok {
		return ms
	}
	if n.Rooms == nil {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rs, err := n.Rooms(rctx, room)
	if err != nil || rs.Kind != RoomDirect {
		if err != nil {
			n.Log.Warn("notify: read direct room", "room", room, "err", err)
		}
		return nil
	}
	ms := make([]string, 0, len(rs.Members))
	for u := range rs.Members {
		ms = append(ms, u)
	}
	if len(st.direct) >= 10_000 {
		clear(st.direct)
	}
	st.direct[room] = ms
	return ms
}

// cancel marks read the pending notes of user in room up to seq, for a
// read made at ts by their due time.
func (st *notifyState) cancel(user, room string, seq int64, ts time.Time) {
	k := readerKey{user, room}
	notes := st.byReader[k]
	if len(notes) == 0 {
		return
	}
	kept := notes[:0]
	for _, e := range notes {
		if !e.done && e.n.Seq <= seq && !ts.After(e.due) {
			e.cancelled = true
		}
		if !e.cancelled && !e.done {
			kept = append(kept, e)
		}
	}
	if len(kept) == 0 {
		delete(st.byReader, k)
	} else {
		st.byReader[k] = kept
	}
}

// ready returns the notes now due: past their due time by the grace, and
// the log read past their due time (a record of their partition with a
// later ts, or a fetch that found the whole log read), so that nothing that
// could cancel them is still unread.
func (st *notifyState) ready(now time.Time) []*pendingNote {
	var out []*pendingNote
	for p, q := range st.queue {
		for _, e := range q {
			if e.done || e.cancelled {
				continue
			}
			if now.Before(e.due.Add(notifyGrace)) {
				continue
			}
			if st.newest[p].After(e.due) || st.newestAll.After(e.due.Add(notifyGrace)) || st.caughtUp.After(e.due.Add(notifyGrace)) {
				out = append(out, e)
			}
		}
	}
	return out
}

// wait is how long the next fetch may wait for records: until the first
// note may become due, at most a second.
func (st *notifyState) wait(now time.Time) time.Duration {
	w := time.Second
	for _, q := range st.queue {
		for _, e := range q {
			if !e.done && !e.cancelled {
				w = min(w, e.due.Add(notifyGrace).Sub(now))
			}
		}
	}
	return max(w, 10*time.Millisecond)
}

// commit commits each partition up to its first note not yet finished.
// A partition a rebalance took away is forgotten: its new owner reads it
// again from the commit.
func (n *Notifier) commit(ctx context.Context, c Consumer, st *notifyState) {
	for p, last := range st.last {
		q := st.queue[p]
		for len(q) > 0 && (q[0].done || q[0].cancelled) {
			st.drop(q[0])
			q = q[1:]
		}
		st.queue[p] = q
		upTo := last
		if len(q) > 0 {
			upTo = q[0].offset - 1
		}
		if upTo < 0 || upTo <= st.committed[p]-1 {
			continue
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err := c.Commit(cctx, []Record{{Topic: st.topic, Partition: p, Offset: upTo}})
		cancel()
		switch {
		case err == nil:
			st.committed[p] = upTo + 1
		case errors.Is(err, ErrNotAssigned):
			n.Log.Info("notify: partition moved; its new owner reads it again", "partition", p)
			st.forget(p)
		default:
			n.Log.Warn("notify: commit", "partition", p, "err", err)
		}
	}
}

// drop forgets a note that is finished (made, cancelled or given up to
// another consumer).
func (st *notifyState) drop(e *pendingNote) {
	delete(st.keys, e.n.ID)
	k := readerKey{e.n.User, e.n.Room}
	notes := st.byReader[k]
	for i, o := range notes {
		if o == e {
			notes = append(notes[:i], notes[i+1:]...)
			break
		}
	}
	if len(notes) == 0 {
		delete(st.byReader, k)
	} else {
		st.byReader[k] = notes
	}
}

// forget drops a partition's notes.
func (st *notifyState) forget(p int) {
	for _, e := range st.queue[p] {
		e.cancelled = true
		st.drop(e)
	}
	delete(st.queue, p)
	delete(st.last, p)
	delete(st.committed, p)
	delete(st.newest, p)
}

// make stores a due notification with its deliveries and sends it live.
func (n *Notifier) make(ctx context.Context, e *pendingNote) error {
	note := e.n
	var ds []Delivery
	if n.Push {
		subs, err := n.Store.PushSubscriptions(ctx, note.User)
		if err != nil {
			return err
		}
		payload := pushPayload(note)
		for _, s := range subs {
			ds = append(ds, Delivery{ID: deliveryID(note.ID, "p", s.Endpoint), Kind: DeliverPush, URL: s.Endpoint,
				User: s.User, P256dh: s.P256dh, Auth: s.Auth, Body: payload})
		}
	}
	if len(n.Webhooks) > 0 {
		body := WebhookEvent(note)
		for _, u := range n.Webhooks {
			ds = append(ds, Delivery{ID: deliveryID(note.ID, "w", u), Kind: DeliverWebhook, URL: u, Body: body})
		}
	}
	if _, err := n.Store.AddNotification(ctx, note, ds); err != nil {
		return err
	}
	// Live to the target's connections, on every instance: made once, it
	// may be sent again after a crash (clients know it by id).
	rec := Message{Room: note.Room, ID: note.ID, User: note.User, TS: Timestamp(n.now()), Kind: KindNotification,
		Data: &ItemData{Notification: &note}}
	if err := n.Bus.Publish(ctx, n.Topic, Record{Key: []byte(note.Room), Value: Encode(rec)}); err != nil {
		return err
	}
	if len(ds) > 0 && n.Kick != nil {
		n.Kick()
	}
	return nil
}

// deliveryID names one delivery of a notification: the same for every
// attempt and every instance.
func deliveryID(noteID, kind, url string) string {
	sum := sha256.Sum256([]byte(url))
	return noteID + "-" + kind + hex.EncodeToString(sum[:6])
}

// WebhookEvent is the JSON body a webhook receives for a notification.
func WebhookEvent(note Notification) []byte {
	b, _ := json.Marshal(struct {
		Type         string       `json:"type"`
		User         string       `json:"user"`
		Notification Notification `json:"notification"`
	}{"notification", note.User, note})
	return b
}

// pushPayload is what a browser's service worker gets in a push: enough to
// show the notification and open the room at the item.
func pushPayload(note Notification) []byte {
	title := note.From + " mentioned you in " + note.Room
	if note.Kind == NotifyDirect {
		title = note.From
	}
	b, _ := json.Marshal(struct {
		Notification
		Title string `json:"title"`
	}{note, title})
	return b
}
