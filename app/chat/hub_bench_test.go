package chat_test

import (
	"context"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
)

// countSink accepts everything and counts it, so the benchmark measures the
// hub, not a consumer.
type countSink struct{ n int }

func (s *countSink) Joined(context.Context, string, int64) error { return nil }
func (s *countSink) Deliver(ev *chat.Event) bool                 { _ = ev.WSFrame(); s.n++; return true }
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
	for i := range msgs {
		hub.Deliver(msgs[i : i+1])
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*receivers)/b.Elapsed().Seconds(), "deliveries/s")
	if sinks[0].n != b.N {
		b.Fatalf("delivered %d of %d", sinks[0].n, b.N)
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
