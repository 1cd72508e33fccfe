package chat_test

import (
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
)

// BenchmarkRecordToFrame is the fan-out's work per receive record before
// the hub: decode it and frame it for WebSocket (once per event, however
// many receivers).
func BenchmarkRecordToFrame(b *testing.B) {
	rec := chat.Encode(chat.Message{Room: "general", Seq: 123456, ID: "c-1f3a9", User: "alice", Text: "hello there, a message of about sixty-four bytes in all", TS: chat.Timestamp(time.Now())})
	b.ReportAllocs()
	for b.Loop() {
		ev, err := chat.DecodeEvent(rec)
		if err != nil {
			b.Fatal(err)
		}
		_ = ev.Frame(benchFrame)
	}
}
