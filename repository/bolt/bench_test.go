package bolt

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/parley-chat/parley/app/chat"
)

// BenchmarkAppend measures batches of new messages to one room. Each batch is
// one transaction and so one fsync, which is why the persist stage appends
// in batches: compare msgs/s of batch=1 and batch=100.
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := openTemp(b, filepath.Join(b.TempDir(), "parley.db"))
			ctx := b.Context()
			batch := make([]chat.Message, size)
			n := 0
			for b.Loop() {
				for i := range batch {
					batch[i] = message("general", strconv.Itoa(n))
					n++
				}
				if _, err := s.Append(ctx, batch); err != nil {
					b.Fatalf("Append: %v", err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkMessagesLatest measures the history page a client loads on
// opening a room, in a room long enough that a full scan would show.
func BenchmarkMessagesLatest(b *testing.B) {
	const history, limit = 10_000, 50
	s := openTemp(b, filepath.Join(b.TempDir(), "parley.db"))
	ctx := b.Context()
	batch := make([]chat.Message, 1000)
	for n := 0; n < history; {
		for i := range batch {
			batch[i] = message("general", strconv.Itoa(n))
			n++
		}
		if _, err := s.Append(ctx, batch); err != nil {
			b.Fatalf("Append: %v", err)
		}
	}
	for b.Loop() {
		page, err := s.Messages(ctx, "general", chat.Query{Kind: chat.Latest, Limit: limit})
		if err != nil || len(page.Messages) != limit {
			b.Fatalf("Messages: %d messages, %v", len(page.Messages), err)
		}
	}
}
