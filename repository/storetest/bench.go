package storetest

import (
	"fmt"
	"slices"
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
