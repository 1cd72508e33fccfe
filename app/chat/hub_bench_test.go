package chat_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
)

// countSink accepts everything and counts it, so the benchmark measures the
// hub, not a consumer.
type countSink struct{ n int }

// benchFrame frames as the WebSocket transport does (handlers' wsMessage):
// once per event, shared by its receivers.
var benchFrame = chat.NewFraming(func(ev *chat.Event) []byte {
	j := ev.JSON()
	b := make([]byte, 0, len(j)+17)
	b = append(b, `{"type":"message",`...)
	return append(b, j[1:]...)
})

func (s *countSink) Joined(context.Context, string, int64) error { return nil }
func (s *countSink) Deliver(ev *chat.Event) bool                 { _ = ev.Frame(benchFrame); s.n++; return true }
func (s *countSink) Replay(context.Context, *chat.Event) error   { return nil }

// BenchmarkHubFanout delivers one message to 1,000 subscribers of a room;
// deliveries/s is the figure to watch.
func BenchmarkHubFanout(b *testing.B) {
	st := openStoreB(b)
	hub := chat.NewHub(st, quietLog, nil)
	const receivers = 1000
	sinks := make([]*countSink, receivers)
	for i := range sinks {
		sinks[i] = &countSink{}
		sub, err := hub.Join(context.Background(), "r", 0, false, sinks[i])
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Close()
	}
	time.Sleep(50 * time.Millisecond) // let every subscription go live
	msgs := make([]chat.Message, b.N)
	for i := range msgs {
		msgs[i] = chat.Message{Room: "r", Seq: int64(i + 1), ID: "m", User: "u", Text: "hello there", TS: chat.Timestamp(time.Now())}
	}
	b.ResetTimer()
	one := make([]*chat.Event, 1)
	for i := range msgs {
		one[0] = chat.NewEvent(msgs[i])
		hub.Deliver(one)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*receivers)/b.Elapsed().Seconds(), "deliveries/s")
	if sinks[0].n != b.N {
		b.Fatalf("delivered %d of %d", sinks[0].n, b.N)
	}
}

// BenchmarkHubFanoutRooms delivers batches over 1,000 rooms of 10
// subscribers each, the rooms scenario's shape: the cost is the room lookup
// and one event encoding per message rather than the subscriber loop.
func BenchmarkHubFanoutRooms(b *testing.B) {
	st := openStoreB(b)
	hub := chat.NewHub(st, quietLog, nil)
	const rooms, perRoom, batch = 1000, 10, 64
	names := make([]string, rooms)
	sinks := make([]*countSink, 0, rooms*perRoom)
	for r := range rooms {
		names[r] = "r" + strconv.Itoa(r)
		for range perRoom {
			s := &countSink{}
			sinks = append(sinks, s)
			sub, err := hub.Join(context.Background(), names[r], 0, false, s)
			if err != nil {
				b.Fatal(err)
			}
			defer sub.Close()
		}
	}
	time.Sleep(50 * time.Millisecond) // let every subscription go live
	seq := make([]int64, rooms)
	evs := make([]*chat.Event, batch)
	ts := chat.Timestamp(time.Now())
	n := 0
	for b.Loop() {
		for i := range evs {
			r := n % rooms
			seq[r]++
			evs[i] = chat.NewEvent(chat.Message{Room: names[r], Seq: seq[r], ID: "m", User: "u", Text: "hello there", TS: ts})
			n++
		}
		hub.Deliver(evs)
	}
	b.ReportMetric(float64(n*perRoom)/b.Elapsed().Seconds(), "deliveries/s")
	var got int
	for _, s := range sinks {
		got += s.n
	}
	if got != n*perRoom {
		b.Fatalf("delivered %d of %d", got, n*perRoom)
	}
}

func openStoreB(b *testing.B) chat.Store {
	st, err := openBolt(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}
