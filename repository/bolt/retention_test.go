package bolt

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
)

// TestSweepBatches: a sweep larger than one write transaction deletes all
// it should over several, stops each room at its first newer message (even
// when an older one follows it), and keeps the ids of what stays.
func TestSweepBatches(t *testing.T) {
	s := openTemp(t, filepath.Join(t.TempDir(), "parley.db"))
	ctx := t.Context()
	old := chat.Timestamp(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	newer := chat.Timestamp(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	cut := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var in []chat.Message
	for i := range sweepBatch + 500 {
		in = append(in, chat.Message{Room: "big", ID: fmt.Sprint("o", i), User: "alice", Text: "old", TS: old})
	}
	for i := range 3 {
		in = append(in, chat.Message{Room: "big", ID: fmt.Sprint("n", i), User: "alice", Text: "new", TS: newer})
	}
	// In "skewed" an old ts follows a newer one (a clock step): it stays, so
	// that the kept history is one run of seqs.
	in = append(in,
		chat.Message{Room: "skewed", ID: "a", User: "alice", Text: "old", TS: old},
		chat.Message{Room: "skewed", ID: "b", User: "alice", Text: "new", TS: newer},
		chat.Message{Room: "skewed", ID: "c", User: "alice", Text: "old again", TS: old})
	if _, err := s.Append(ctx, in); err != nil {
		t.Fatal(err)
	}
	n, err := s.Sweep(ctx, cut)
	if err != nil || n != sweepBatch+500+1 {
		t.Fatalf("Sweep = %d, %v; want %d", n, err, sweepBatch+500+1)
	}
	if got := seqsOf(history(t, s, "big")); !slices.Equal(got, []int64{1501, 1502, 1503}) {
		t.Fatalf("big after the sweep: seqs %v", got)
	}
	if got := seqsOf(history(t, s, "skewed")); !slices.Equal(got, []int64{2, 3}) {
		t.Fatalf("skewed after the sweep: seqs %v", got)
	}
	// What stays is still recognised; what went is stored anew.
	out, err := s.Append(ctx, []chat.Message{in[sweepBatch+500], in[0]})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Seq != 1501 || out[1].Seq != 1504 {
		t.Fatalf("kept and expired message sent again got seqs %d and %d, want 1501 and 1504", out[0].Seq, out[1].Seq)
	}
}

func seqsOf(ms []chat.Message) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}
