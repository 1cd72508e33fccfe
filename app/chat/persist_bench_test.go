package chat_test

import (
	"context"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/kafka/membus"
)

// persistStore is what the embedded default hands the persist stage: the
// store with room states and marks.
type persistStore interface {
	roomStore
	chat.Marks
}

// BenchmarkPersistRooms runs the whole persist stage (decide, store with
// fsync, marks, republish, commit) on the rooms scenario's shape: 1,000
// public rooms, each batch one message to each of batch of them. At 2,000
// msgs/s the stage sees batches of a few messages when an fsync takes
// under a millisecond (a quiet disk) and of ~140 when it takes 60 ms (a
// busy one): both are run. ns/op is a batch end to end; cpu-us/msg is the
// process's CPU time (user + system, getrusage) per message, the figure
// the rooms target is about.
func BenchmarkPersistRooms(b *testing.B) {
	for _, batch := range []int{4, 128} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) { benchPersistRooms(b, batch, false) })
	}
}

// BenchmarkPersistNewRooms is BenchmarkPersistRooms where every message is
// the first of its room, as when the rooms scenario starts: each room's
// state is loaded and saved with the batch that brings it into being.
func BenchmarkPersistNewRooms(b *testing.B) {
	b.Run("batch=128", func(b *testing.B) { benchPersistRooms(b, 128, true) })
}

func benchPersistRooms(b *testing.B, batch int, fresh bool) {
	const rooms = 1000
	bus := membus.New(membus.Options{})
	defer bus.Close()
	st := openStoreB(b).(persistStore)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	p := &chat.Persister{Bus: bus, Store: st, Rooms: st, Marks: st, TopicSend: chat.DefaultTopicSend, TopicReceive: chat.DefaultTopicReceive, Log: quietLog}
	go func() { p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	out, err := bus.Consume(ctx, chat.ConsumerConfig{Topic: chat.DefaultTopicReceive, Group: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	names := make([]string, rooms)
	for r := range names {
		names[r] = "room-" + strconv.Itoa(r)
	}
	ts := chat.Timestamp(time.Now())
	n := 0
	// send publishes one batch and waits for its receive records.
	send := func(size int) {
		recs := make([]chat.Record, size)
		for i := range recs {
			r := n % rooms
			room := names[r]
			if fresh {
				room = "new-" + strconv.Itoa(n)
			}
			m := chat.Message{Room: room, ID: "m" + strconv.Itoa(n), User: "sender-" + strconv.Itoa(r), Text: "hello there, a message of about sixty-four bytes in all", TS: ts}
			recs[i] = chat.Record{Key: []byte(m.Room), Value: chat.Encode(m)}
			n++
		}
		if err := bus.Publish(ctx, chat.DefaultTopicSend, recs...); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < size; {
			rs, err := out.Fetch(ctx, size-got)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range rs {
				if m, err := chat.Decode(r.Value); err != nil || m.Seq < 1 {
					b.Fatalf("receive record %s: %+v %v", r.Value, m, err)
				}
			}
			got += len(rs)
			if err := out.Commit(ctx, rs); err != nil {
				b.Fatal(err)
			}
		}
	}
	// Every room exists, and its state is cached, before the measured part.
	for range 2*rooms/batch + 1 {
		if !fresh {
			send(batch)
		}
	}
	start := n
	cpu0 := cpuTime()
	for b.Loop() {
		send(batch)
	}
	msgs := n - start
	b.ReportMetric(float64(cpuTime()-cpu0)/1e3/float64(msgs), "cpu-us/msg")
	b.ReportMetric(float64(msgs)/b.Elapsed().Seconds(), "msgs/s")
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
