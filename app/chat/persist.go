package chat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Persister is the persist stage: it consumes the send topic in the group
// shared by every instance, stores each message with its room's next seq and
// republishes the stored message to the receive topic. It commits only after
// both the store and the publish succeeded, so a crash in between means the
// batch is fetched again; the store's idempotency on (room, user, id) makes that
// redelivery harmless.
type Persister struct {
	Bus          Bus
	Store        Store
	TopicSend    string
	TopicReceive string
	Log          *slog.Logger
	Metrics      Metrics
	// BatchMax bounds the records taken in one fetch (and one store write).
	BatchMax int

	rooms roomCache
	// marked is the store when it writes its items' marks itself (see
	// markerOf), set by Run.
	marked MarkingAppender
	// lagSaves carries states to the background saver (see saveLater).
	lagSaves chan RoomState
	// Finish, once closed, makes Run finish and return; how depends on
	// Drain. Shutdown closes it after the last client send was answered.
	Finish <-chan struct{}
	// Rooms, when set, makes the stage decide every item against its
	// room's state (see persist_rooms.go): members, bans, mutes, slow mode,
	// roles. Without it every message is stored (the hub's own tests).
	Rooms RoomStates
	// Marks, with Rooms, keeps read positions and mentions (see
	// persist_marks.go). Without it read commands are dropped.
	Marks Marks
	// Drain makes finishing empty the topic into the store first: Run
	// returns once the topic has nothing more to give. For the in-process
	// bus, which is not durable. Without it, Run returns after the batch in
	// hand is stored, republished and committed (ctx still bounds that): for
	// a durable bus, whose other group members (or this instance's next
	// start) read on from the commit — draining it would never end while
	// other instances send.
	Drain bool
}

// Run consumes until ctx ends. Store or bus failures pause the stage with
// backoff; nothing is committed until they recover.
func (p *Persister) Run(ctx context.Context) error {
	c, err := p.Bus.Consume(ctx, ConsumerConfig{Topic: p.TopicSend, Group: GroupPersist})
	if err != nil {
		return err
	}
	defer c.Close()
	defer watchLag(orNop(p.Metrics), GroupPersist, p.TopicSend, c)()
	p.marked = p.markerOf()
	if p.Rooms != nil {
		p.lagSaves = make(chan RoomState, 16)
		saveCtx, stopSaves := context.WithCancel(context.WithoutCancel(ctx))
		saved := make(chan struct{})
		go func() { defer close(saved); p.saveLagging(saveCtx) }()
		defer func() { stopSaves(); <-saved }()
	}
	max := p.BatchMax
	if max <= 0 {
		max = 256
	}
	for {
		if p.stopping() {
			return nil
		}
		recs, err := p.fetch(ctx, c, max)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, errDrained) || p.stopping() {
				return nil
			}
			p.Log.Warn("persist: fetch", "err", err)
			if !sleep(ctx, time.Second) {
				return nil
			}
			continue
		}
		if err := p.handle(ctx, c, recs); err != nil {
			// Only ctx ending gets here: handle retries everything else.
			return nil
		}
	}
}

var errDrained = errors.New("drained")

// stopping reports whether Run is to return before its next fetch: Finish
// is closed and the topic is not to be drained.
func (p *Persister) stopping() bool { return !p.Drain && isClosed(p.Finish) }

// draining reports whether Finish is closed and the topic is to be drained.
func (p *Persister) draining() bool { return p.Drain && isClosed(p.Finish) }

// fetch is Consumer.Fetch that returns early when Finish is closed; once it
// is, a draining Persister fetches on while records come within a short
// wait, and reports errDrained when none came.
func (p *Persister) fetch(ctx context.Context, c Consumer, max int) ([]Record, error) {
	if !p.draining() {
		fctx, cancel := context.WithCancel(ctx)
		defer cancel()
		if p.Finish != nil {
			go func() {
				select {
				case <-p.Finish:
					cancel()
				case <-fctx.Done():
				}
			}()
		}
		recs, err := c.Fetch(fctx, max)
		if err == nil || ctx.Err() != nil || !p.draining() {
			return recs, err
		}
	}
	fctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
	defer cancel()
	recs, err := c.Fetch(fctx, max)
	if err != nil && ctx.Err() == nil && fctx.Err() != nil {
		return nil, errDrained
	}
	return recs, err
}

func isClosed(ch <-chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// handle stores, republishes and commits one fetched batch, retrying each
// step until it succeeds or ctx ends.
func (p *Persister) handle(ctx context.Context, c Consumer, recs []Record) error {
	start := time.Now()
	msgs := make([]Message, 0, len(recs))
	parts := make([]int, 0, len(recs))
	for _, r := range recs {
		m, err := Decode(r.Value)
		if err != nil || m.Room == "" || m.ID == "" || m.User == "" || m.Kind == kindRefusal || m.Kind == KindNotification {
			// A record no handler of ours could have written: keeping it
			// would block the partition forever, so it is logged and skipped.
			p.Log.Error("persist: undecodable record skipped", "partition", r.Partition, "offset", r.Offset, "err", err)
			continue
		}
		if m.Kind == KindRead && (p.Rooms == nil || p.Marks == nil) {
			continue
		}
		m.Seq, m.Events, m.Mentions = 0, 0, nil
		msgs = append(msgs, m)
		parts = append(parts, r.Partition)
	}
	var out []Record
	stored := 0
	if len(msgs) > 0 {
		var err error
		var mk marks
		if out, mk, stored, err = p.store(ctx, recs, msgs, parts); err != nil {
			return err
		}
		// The marks left to write (all of them, unless the store wrote
		// the items' own with the items: see marker) are written beside
		// the publish, not before it: a sender's own read position and a
		// mention's count follow their item within the batch's time, and
		// delivery does not wait for them. Both are done before the
		// commit, so a crash repeats both (the marks only ever rise).
		saved := make(chan error, 1)
		if mk.empty() || p.Marks == nil {
			saved <- nil
		} else {
			go func() {
				saved <- retry(ctx, p.Log, "persist: save read positions and mentions", func() error {
					return p.Marks.SaveMarks(ctx, mk.reads, mk.mentions)
				})
			}()
		}
		if len(out) > 0 {
			err = retry(ctx, p.Log, "persist: publish", func() error {
				return p.Bus.Publish(ctx, p.TopicReceive, out...)
			})
		}
		if serr := <-saved; err == nil {
			err = serr
		}
		if err != nil {
			p.forget(msgs)
			return err
		}
	}
	if err := retry(ctx, p.Log, "persist: commit", func() error {
		err := c.Commit(ctx, recs)
		if errors.Is(err, ErrNotAssigned) {
			// A rebalance moved some partitions away: their new owner
			// stores the records again (a no-op) and republishes them.
			p.Log.Info("persist: partitions moved before commit", "err", err)
			return nil
		}
		return err
	}); err != nil {
		return err
	}
	if stored > 0 {
		orNop(p.Metrics).Persisted(stored, time.Since(start))
	}
	if p.Log.Enabled(ctx, slog.LevelDebug) {
		p.Log.Debug("persist: batch done", "records", len(recs), "stored", stored, "published", len(out), "partitions", offsetRanges(recs), "took", time.Since(start))
	}
	return nil
}

// offsetRanges describes recs as "partition:first-last" ranges, for the log.
func offsetRanges(recs []Record) string {
	type span struct{ from, to int64 }
	spans := map[int]span{}
	var parts []int
	for _, r := range recs {
		s, ok := spans[r.Partition]
		if !ok {
			parts, s = append(parts, r.Partition), span{r.Offset, r.Offset}
		}
		spans[r.Partition] = span{min(s.from, r.Offset), max(s.to, r.Offset)}
	}
	slices.Sort(parts)
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = fmt.Sprintf("%d:%d-%d", p, spans[p].from, spans[p].to)
	}
	return strings.Join(out, " ")
}

// store decides (when p.Rooms is set) and stores one batch's messages and
// returns the receive records to publish, in input order: each stored item,
// and for each refused one the refusal its sender is told.
func (p *Persister) store(ctx context.Context, recs []Record, msgs []Message, parts []int) ([]Record, marks, int, error) {
	items := make([]decided, len(msgs))
	for i, m := range msgs {
		items[i] = decided{m: m}
	}
	t0 := time.Now()
	if p.Rooms != nil {
		p.rooms.checkContinuity(recs)
		if err := retry(ctx, p.Log, "persist: decide", func() error {
			var err error
			if items, err = p.decide(ctx, msgs, parts); err != nil {
				p.forget(msgs) // decided in part: read again
			}
			return err
		}); err != nil {
			return nil, marks{}, 0, err
		}
	}
	t1 := time.Now()
	var toStore []Message
	for _, d := range items {
		if d.refusal == nil && !d.found && !d.read && !d.drop {
			toStore = append(toStore, d.m)
		}
	}
	marker := p.marked
	if len(toStore) > 0 {
		var stored []Message
		if err := retry(ctx, p.Log, "persist: store", func() error {
			var err error
			if marker != nil {
				stored, err = marker.AppendMarked(ctx, toStore)
			} else {
				stored, err = p.Store.Append(ctx, toStore)
			}
			return err
		}); err != nil {
			p.forget(msgs)
			return nil, marks{}, 0, err
		}
		j := 0
		for i := range items {
			if d := items[i]; d.refusal == nil && !d.found && !d.read && !d.drop {
				items[i].m = stored[j]
				j++
			}
		}
	}
	t2 := time.Now()
	if p.Rooms != nil {
		// Saved before the items are republished: a client that saw an
		// item finds its effect in the room lists and access checks.
		if err := p.fold(ctx, items); err != nil {
			p.forget(msgs)
			return nil, marks{}, 0, err
		}
	}
	debug := p.Log.Enabled(ctx, slog.LevelDebug)
	if debug {
		p.Log.Debug("persist: batch decided and stored", "records", len(recs), "decide", t1.Sub(t0), "append", t2.Sub(t1), "fold", time.Since(t2))
	}
	var mk marks
	if p.Marks != nil {
		mk = p.batchMarks(items, marker != nil)
	}
	out := make([]Record, 0, len(items))
	for _, d := range items {
		switch {
		case d.drop:
		case d.refusal != nil:
			if debug {
				p.Log.Debug("persist: refused", "room", d.m.Room, "id", d.m.ID, "user", d.m.User, "kind", d.m.Kind, "code", d.refusal.Code, "reason", d.refusal.Message)
			}
			out = append(out, refusalRecord(d.m, d.refusal))
		default:
			out = append(out, Record{Key: []byte(d.m.Room), Value: Encode(d.m)})
		}
	}
	return out, mk, len(toStore), nil
}

// markerOf is the store when it writes the items' marks itself
// (MarkingAppender) and is the stage's Marks too; nil otherwise. The
// identity matters: marks written with the items must land where the
// stage's Marks reads them.
func (p *Persister) markerOf() MarkingAppender {
	ma, ok := p.Store.(MarkingAppender)
	if !ok || p.Marks == nil {
		return nil
	}
	if t := reflect.TypeOf(p.Store); t != reflect.TypeOf(p.Marks) || !t.Comparable() || any(p.Store) != any(p.Marks) {
		return nil
	}
	return ma
}

// retry calls f with capped exponential backoff until it succeeds or ctx ends.
func retry(ctx context.Context, log *slog.Logger, what string, f func() error) error {
	backoff := 50 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn(what+" failed; retrying", "err", err, "in", backoff)
		if !sleep(ctx, backoff) {
			return ctx.Err()
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// sleep waits d or until ctx ends; it reports whether the full wait elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
