package storetest

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
)

// CountsBench is the data of a Counts benchmark, the same for every store:
// one user in many rooms, asking for all of them at once (a room list with
// badges). Unread and Mentions are the totals Counts must give, worked out
// from the generated timelines, not by a store.
type CountsBench struct {
	User     string
	Rooms    []chat.RoomSummary
	Unread   int64
	Mentions int64
}

// countsItems is a room's timeline in the benchmark: 20 items, three of
// them events (seq 4, 11, 18).
const countsItems = 20

// NewCountsBench fills s with rooms rooms of countsItems items each and the
// user's marks: in room i the user has read up to i mod 21 (so some rooms
// are read to the end, some not at all), and every fifth item mentions
// them, read or not.
func NewCountsBench(tb testing.TB, s MarkStore, rooms int) CountsBench {
	tb.Helper()
	ctx := tb.Context()
	f := CountsBench{User: "bob"}
	var reads []chat.ReadMark
	var mentions []chat.MentionMark
	flush := func() {
		if err := s.SaveMarks(ctx, reads, mentions); err != nil {
			tb.Fatalf("SaveMarks: %v", err)
		}
		reads, mentions = reads[:0], mentions[:0]
	}
	ts := chat.Timestamp(time.Now())
	for i := range rooms {
		name := fmt.Sprintf("room-%04d", i)
		readSeq := int64(i % (countsItems + 1))
		items := make([]chat.Message, countsItems)
		var events int64
		for j := range items {
			seq := int64(j + 1)
			m := chat.Message{Room: name, ID: fmt.Sprintf("item-%d", seq), User: "alice", TS: ts}
			if seq%7 == 4 {
				m.Kind, m.Data = chat.KindMember, &chat.ItemData{Action: chat.ActAdd, Target: fmt.Sprintf("user-%d", seq)}
				events++
			} else {
				m.Text = fmt.Sprintf("message %d", seq)
				if seq > readSeq {
					f.Unread++
				}
			}
			if seq%5 == 0 {
				m.Mentions = []string{f.User}
				mentions = append(mentions, chat.MentionMark{User: f.User, Room: name, Seq: seq})
				if seq > readSeq {
					f.Mentions++
				}
			}
			m.Events = events
			items[j] = m
		}
		if _, err := s.Append(ctx, items); err != nil {
			tb.Fatalf("Append to %s: %v", name, err)
		}
		reads = append(reads, chat.ReadMark{Room: name, User: f.User, Seq: readSeq})
		f.Rooms = append(f.Rooms, chat.RoomSummary{Room: name, LastSeq: countsItems})
		if len(reads) == 100 {
			flush()
		}
	}
	flush()
	return f
}

// Run measures one Counts call for all the rooms, reporting its p50 and p99
// besides ns/op. It checks the totals first, so that a store answering
// fast and wrong does not pass for fast.
func (f CountsBench) Run(b *testing.B, s chat.Marks) {
	ctx := b.Context()
	rooms := slices.Clone(f.Rooms)
	if err := s.Counts(ctx, f.User, rooms); err != nil {
		b.Fatalf("Counts: %v", err)
	}
	var unread, mentions int64
	for _, r := range rooms {
		unread += r.Unread
		mentions += r.Mentions
	}
	if unread != f.Unread || mentions != f.Mentions {
		b.Fatalf("Counts totals: unread %d, mentions %d; want %d, %d", unread, mentions, f.Unread, f.Mentions)
	}
	var took []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := s.Counts(ctx, f.User, rooms); err != nil {
			b.Fatalf("Counts: %v", err)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(took[(len(took)*99)/100].Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(len(rooms)), "rooms")
}

// HistoryBench is the data of a history benchmark, the same for every
// store: one room of a long timeline in which a fifth of the items are
// reactions and some are edits and deletes, each about one of the messages
// just before it, as in a lively room. Want is the latest page of Limit
// items as history shows it, folded in memory from the generated timeline,
// not by a store.
type HistoryBench struct {
	Room  string
	Limit int
	Want  []chat.Message
}

// NewHistoryBench fills s with a room of items items (reactions at every
// fifth seq, an edit at every 25th, a delete at every 500th; plain
// messages otherwise) and works out the latest page of 50.
func NewHistoryBench(tb testing.TB, s chat.Store, items int) HistoryBench {
	tb.Helper()
	ctx := tb.Context()
	f := HistoryBench{Room: "general", Limit: 50}
	users := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace"}
	emoji := []string{"👍", "🎉", "❤️"}
	at := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	var all, batch []chat.Message
	var msgSeqs []int64 // the plain messages' seqs so far
	byAuthor := map[int64]string{}
	for seq := int64(1); seq <= int64(items); seq++ {
		now := at.Add(time.Duration(seq) * time.Second)
		id := fmt.Sprintf("b%d", seq)
		// A target among the last ten messages.
		recent := func(k int64) int64 { return msgSeqs[len(msgSeqs)-1-int(k%int64(min(10, len(msgSeqs))))] }
		var m chat.Message
		switch {
		case len(msgSeqs) > 0 && seq%5 == 0:
			u := users[seq%int64(len(users))]
			m = chat.NewLifecycle(chat.Author{Name: u}, f.Room, id, chat.KindReaction, recent(seq/5), "", emoji[seq%3], seq%35 != 0, now)
		case len(msgSeqs) > 0 && seq%500 == 251:
			t := recent(seq)
			m = chat.NewLifecycle(chat.Author{Name: byAuthor[t]}, f.Room, id, chat.KindDelete, t, "", "", false, now)
		case len(msgSeqs) > 0 && seq%25 == 3:
			t := recent(seq)
			m = chat.NewLifecycle(chat.Author{Name: byAuthor[t]}, f.Room, id, chat.KindEdit, t, fmt.Sprintf("message %d, edited at %d", t, seq), "", false, now)
		default:
			u := users[seq%4]
			m = chat.Message{Room: f.Room, ID: id, User: u, Text: fmt.Sprintf("message %d", seq), TS: chat.Timestamp(now)}
			msgSeqs = append(msgSeqs, seq)
			byAuthor[seq] = u
		}
		batch = append(batch, m)
		if len(batch) == 500 || seq == int64(items) {
			out, err := s.Append(ctx, batch)
			if err != nil {
				tb.Fatalf("Append: %v", err)
			}
			all = append(all, out...)
			batch = batch[:0]
		}
	}
	// The latest page, folded: every item about a message of the page, in
	// seq order; the store erased what a delete took, so the expected page
	// is built from the generated items with Fold, not from the store.
	page := slices.Clone(all[len(all)-f.Limit:])
	pos := map[int64]int{}
	for i := range page {
		pos[page[i].Seq] = i
	}
	for k := range all {
		it := &all[k]
		if i, ok := pos[it.Target()]; ok {
			page[i].Fold(it)
		}
	}
	// Edits of deleted messages are stored without their text.
	for i := range page {
		if page[i].Kind == chat.KindEdit && page[i].Target() > 0 {
			if isDeleted(all, page[i].Target()) {
				page[i].Text = ""
			}
		}
	}
	f.Want = page
	return f
}

// isDeleted reports whether a delete about target is among all.
func isDeleted(all []chat.Message, target int64) bool {
	for i := range all {
		if all[i].Kind == chat.KindDelete && all[i].Target() == target {
			return true
		}
	}
	return false
}

// Run measures the latest page of history: "plain" is Messages only, as a
// join's replay reads it; "folded" is the page as history shows it,
// Messages + ItemsAbout + chat.FoldInto. It checks the folded page first, so
// that a store answering fast and wrong does not pass for fast.
func (f HistoryBench) Run(b *testing.B, s LifecycleStore) {
	ctx := b.Context()
	q := chat.Query{Kind: chat.Latest, Limit: f.Limit}
	read := func(fold bool) []chat.Message {
		page, err := s.Messages(ctx, f.Room, q)
		if err != nil || len(page.Messages) != f.Limit {
			b.Fatalf("Messages: %d messages, %v", len(page.Messages), err)
		}
		if fold {
			// The page's messages, not its items: as the history handler
			// asks.
			var targets []int64
			for _, m := range page.Messages {
				if m.Kind == "" {
					targets = append(targets, m.Seq)
				}
			}
			items, err := s.ItemsAbout(ctx, f.Room, targets)
			if err != nil {
				b.Fatalf("ItemsAbout: %v", err)
			}
			chat.FoldInto(page.Messages, items)
		}
		return page.Messages
	}
	if got := read(true); !reflect.DeepEqual(got, f.Want) {
		b.Fatalf("folded page:\n got %+v\nwant %+v", got, f.Want)
	}
	for _, fold := range []bool{false, true} {
		b.Run(map[bool]string{false: "plain", true: "folded"}[fold], func(b *testing.B) {
			for b.Loop() {
				read(fold)
			}
		})
	}
}

// DepthBench is a history benchmark at one room depth: a room of Depth
// plain messages, read the ways that must not slow down as a room grows
// (issue 14: flat p99, within 2× of a 1,000-message room).
type DepthBench struct {
	Room  string
	Depth int64
}

// NewDepthBench fills s with a room of depth messages, appended in batches
// of 1,000 (a store's setup, not what is measured).
func NewDepthBench(tb testing.TB, s chat.Store, depth int64) DepthBench {
	tb.Helper()
	ctx := tb.Context()
	f := DepthBench{Room: fmt.Sprintf("deep-%d", depth), Depth: depth}
	at := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	batch := make([]chat.Message, 0, 1000)
	for seq := int64(1); seq <= depth; seq++ {
		batch = append(batch, chat.Message{Room: f.Room, ID: fmt.Sprintf("d%d", seq), User: "alice",
			Text: fmt.Sprintf("message %d of a deep room, about as long as a chat line", seq), TS: chat.Timestamp(at.Add(time.Duration(seq) * time.Millisecond))})
		if len(batch) == cap(batch) || seq == depth {
			if _, err := s.Append(ctx, batch); err != nil {
				tb.Fatalf("Append at seq %d: %v", seq, err)
			}
			batch = batch[:0]
		}
	}
	return f
}

// Run measures, each as a sub-benchmark reporting p50 and p99 besides
// ns/op:
//   - latest: the page of 50 a client opens the room on, as the history
//     handler reads it (Messages, then ItemsAbout for its messages);
//   - before-1: the page of 50 just before seq 51 (scrolled back to the
//     start);
//   - after-10k: the page of 50 after a point 10,000 back (a client
//     resuming with after);
//   - replay-10k: every message of those 10,000, in the pages of 200 a
//     join's replay reads (the store's part of a join with after 10,000
//     back; the whole room when it is shallower: compare its p99-ns/msg).
//
// Each checks the seqs it got, so that a store answering fast and wrong
// does not pass for fast.
func (f DepthBench) Run(b *testing.B, s LifecycleStore) {
	ctx := b.Context()
	back := max(f.Depth-10_000, 0)
	page := func(q chat.Query, first, n int64) {
		p, err := s.Messages(ctx, f.Room, q)
		if err != nil {
			b.Fatalf("Messages %+v: %v", q, err)
		}
		if int64(len(p.Messages)) != n || (n > 0 && p.Messages[0].Seq != first) {
			b.Fatalf("Messages %+v: %d messages from seq %v, want %d from %d", q, len(p.Messages), firstSeq(p.Messages), n, first)
		}
		if q.Kind == chat.Latest {
			targets := make([]int64, len(p.Messages))
			for i, m := range p.Messages {
				targets[i] = m.Seq
			}
			items, err := s.ItemsAbout(ctx, f.Room, targets)
			if err != nil {
				b.Fatalf("ItemsAbout: %v", err)
			}
			chat.FoldInto(p.Messages, items)
		}
	}
	cases := []struct {
		name string
		n    int64 // messages read
		read func()
	}{
		{"latest", 50, func() { page(chat.Query{Kind: chat.Latest, Limit: 50}, f.Depth-49, 50) }},
		{"before-1", 50, func() { page(chat.Query{Kind: chat.Before, Seq: 51, Limit: 50}, 1, 50) }},
		{"after-10k", 50, func() { page(chat.Query{Kind: chat.After, Seq: back, Limit: 50}, back+1, 50) }},
		{"replay-10k", f.Depth - back, func() {
			for from := back; from < f.Depth; from += 200 {
				page(chat.Query{Kind: chat.After, Seq: from, Limit: 200}, from+1, min(200, f.Depth-from))
			}
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var took []time.Duration
			for b.Loop() {
				start := time.Now()
				c.read()
				took = append(took, time.Since(start))
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Nanoseconds()), "p50-ns")
			p99 := took[(len(took)*99)/100]
			b.ReportMetric(float64(p99.Nanoseconds()), "p99-ns")
			// A room shallower than 10,000 replays all it has: per
			// message, replays of different lengths compare.
			b.ReportMetric(float64(p99.Nanoseconds())/float64(c.n), "p99-ns/msg")
		})
	}
}

func firstSeq(ms []chat.Message) any {
	if len(ms) == 0 {
		return "none"
	}
	return ms[0].Seq
}

// BenchDepths is the room depths of a depth benchmark: PARLEY_BENCH_DEPTHS
// (comma-separated), else 1,000 and 1,000,000.
func BenchDepths(tb testing.TB) []int64 {
	v := os.Getenv("PARLEY_BENCH_DEPTHS")
	if v == "" {
		return []int64{1_000, 1_000_000}
	}
	var out []int64
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil || n < 51 {
			tb.Fatalf("PARLEY_BENCH_DEPTHS=%q: want comma-separated depths of at least 51", v)
		}
		out = append(out, n)
	}
	return out
}
