package chat

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// Fanout consumes the receive topic in this instance's own group and hands
// each stored message to the local hub. The group must be this instance's
// alone: in a shared group each instance would get only part of the messages.
type Fanout struct {
	Bus   Bus
	Topic string
	// Group is GroupFanoutPrefix + the instance id.
	Group string
	Hub   *Hub
	Log   *slog.Logger

	consumer atomic.Pointer[consumerBox]
}

type consumerBox struct{ c Consumer }

// Run consumes until ctx ends. It starts at the end of the log, for a new
// group and for a restarted instance alike: an instance has no clients to owe
// the backlog to, and clients that reconnect close their own gaps with join's
// after.
func (f *Fanout) Run(ctx context.Context) error {
	var c Consumer
	for {
		var err error
		c, err = f.Bus.Consume(ctx, ConsumerConfig{Topic: f.Topic, Group: f.Group, Start: StartAtEnd})
		if err == nil {
			break
		}
		f.Log.Warn("fanout: consume failed; retrying", "err", err)
		if !sleep(ctx, time.Second) {
			return nil
		}
	}
	f.consumer.Store(&consumerBox{c})
	defer c.Close()
	// The hub's metrics are the instance's: Fanout has no Metrics of its own.
	defer watchLag(f.Hub.metrics, f.Group, f.Topic, c)()
	for {
		// A batch reaches a room's connections at once: it must fit in a
		// healthy reader's queue (PARLEY_QUEUE_BYTES, 2 MiB by default).
		recs, err := c.Fetch(ctx, 256)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			f.Log.Warn("fanout: fetch", "err", err)
			if !sleep(ctx, 500*time.Millisecond) {
				return nil
			}
			continue
		}
		evs := make([]*Event, 0, len(recs))
		for _, r := range recs {
			// The record's bytes are the event's: decoded once, not
			// encoded again.
			ev, err := DecodeEvent(r.Value)
			if err == nil && !ev.Msg.IsTimeline() {
				// Not an item: the persist stage refused one, or a read
				// position moved, or a notification is due. Its users
				// learn it now, in order with the items before it.
				f.Hub.Deliver(evs)
				evs = evs[:0]
				switch ev.Msg.Kind {
				case kindRefusal:
					f.Hub.refused(&ev.Msg)
				case KindRead:
					f.Hub.readMoved(&ev.Msg)
				case KindNotification:
					f.Hub.notified(&ev.Msg)
				}
				continue
			}
			if err != nil || ev.Msg.Seq <= 0 {
				f.Log.Error("fanout: undecodable record skipped", "offset", r.Offset, "err", err)
				continue
			}
			evs = append(evs, ev)
		}
		f.Hub.Deliver(evs)
		// Delivery is at most once per instance by design (a subscription's
		// cursor drops repeats and reads skipped seqs from the store), so a
		// failed commit costs only a redelivery that is dropped.
		// The batch was delivered, so it is committed even when ctx ended
		// meanwhile (shutdown): a consumer closing commits what it handled.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		err = c.Commit(cctx, recs)
		cancel()
		if err != nil && ctx.Err() == nil {
			f.Log.Warn("fanout: commit", "err", err)
		}
	}
}

// Ready reports whether the fan-out consumer is assigned and reading.
func (f *Fanout) Ready() bool {
	b := f.consumer.Load()
	return b != nil && b.c.Ready()
}
