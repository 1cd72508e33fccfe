package chat

import (
	"fmt"
	"testing"
)

func recentSeqs(evs []*Event) string {
	s := ""
	for _, ev := range evs {
		s += fmt.Sprintf("%d,", ev.Msg.Seq)
	}
	return s
}

// TestRecentItems: a room's recent items are gapless by seq, hold the last
// recentKept, start over at a gap, drop what a delete may have erased, and
// say when a cursor is older than what they hold.
func TestRecentItems(t *testing.T) {
	var r recentItems
	item := func(seq int64, kind string) *Event { return &Event{Msg: Message{Seq: seq, Kind: kind}} }
	if _, ok := r.after(0); ok {
		t.Fatal("empty: claims to hold what is after 0")
	}
	for seq := int64(1); seq <= 5; seq++ {
		r.add(item(seq, ""))
	}
	r.add(item(3, "")) // delivered again: ignored
	for _, c := range []struct {
		cursor int64
		want   string
		ok     bool
	}{{0, "1,2,3,4,5,", true}, {3, "4,5,", true}, {5, "", true}, {9, "", true}} {
		got, ok := r.after(c.cursor)
		if recentSeqs(got) != c.want || ok != c.ok {
			t.Errorf("after %d: %q %v, want %q %v", c.cursor, recentSeqs(got), ok, c.want, c.ok)
		}
	}
	// Past recentKept, the oldest go.
	for seq := int64(6); seq <= recentKept+10; seq++ {
		r.add(item(seq, ""))
	}
	if _, ok := r.after(9); ok {
		t.Error("after 9: held, though seq 10 was pushed out")
	}
	if got, ok := r.after(10); !ok || len(got) != recentKept || got[0].Msg.Seq != 11 {
		t.Errorf("after 10: %d items from %v, %v; want %d from 11", len(got), got[0].Msg.Seq, ok, recentKept)
	}
	// A gap: only what follows it is held.
	end := int64(recentKept + 10)
	r.add(item(end+2, ""))
	if _, ok := r.after(end); ok {
		t.Error("after a gap: holds the seq it never saw")
	}
	if got, ok := r.after(end + 1); !ok || recentSeqs(got) != fmt.Sprintf("%d,", end+2) {
		t.Errorf("after the gap: %q %v", recentSeqs(got), ok)
	}
	// A delete: a replay from before it goes to the store, which erased
	// its target.
	r.add(item(end+3, ""))
	r.add(item(end+4, KindDelete))
	r.add(item(end+5, ""))
	if _, ok := r.after(end + 2); ok {
		t.Error("a replay from before a delete served from memory (the target's text)")
	}
	if got, ok := r.after(end + 3); !ok || recentSeqs(got) != fmt.Sprintf("%d,%d,", end+4, end+5) {
		t.Errorf("after the delete's target: %q %v", recentSeqs(got), ok)
	}
}
