package bolt

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/repository/storetest"
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

// BenchmarkMemberRooms measures the room list of a user in 1,000 rooms (the
// one GET /api/rooms reads): a page of 100 and of 200. The target is well
// under 50 ms a page.
func BenchmarkMemberRooms(b *testing.B) {
	const rooms = 1000
	s := openTemp(b, filepath.Join(b.TempDir(), "parley.db"))
	ctx := b.Context()
	// Setting up is not what is measured: skip the fsync of its 2,000
	// transactions.
	s.db.NoSync = true
	for i := range rooms {
		name := fmt.Sprintf("room-%04d", i)
		d := chat.ItemData{Action: chat.ActCreate, RoomKind: chat.RoomPrivate, Title: new(string), Topic: new(string)}
		*d.Title = "Room " + strconv.Itoa(i)
		*d.Topic = "What room " + strconv.Itoa(i) + " is about"
		items := []chat.Message{chat.NewItem(chat.Author{Name: "owner"}, name, "create", d, time.Now())}
		for j := range 20 { // a few other members each, so a state is not trivially small
			items = append(items, chat.NewItem(chat.Author{Name: "owner"}, name, "add-"+strconv.Itoa(j), chat.ItemData{Action: chat.ActAdd, Target: "user-" + strconv.Itoa(j)}, time.Now()))
		}
		items = append(items, chat.NewItem(chat.Author{Name: "owner"}, name, "add-bob", chat.ItemData{Action: chat.ActAdd, Target: "bob"}, time.Now()))
		out, err := s.Append(ctx, items)
		if err != nil {
			b.Fatalf("Append: %v", err)
		}
		st := chat.NewRoomState(name)
		for k := range out {
			st.Apply(&out[k])
		}
		if err := s.SaveRoomState(ctx, st); err != nil {
			b.Fatalf("SaveRoomState: %v", err)
		}
	}
	s.db.NoSync = false
	for _, limit := range []int{100, 200} {
		b.Run(fmt.Sprintf("page=%d", limit), func(b *testing.B) {
			for b.Loop() {
				page, err := s.MemberRooms(ctx, "bob", chat.RoomQuery{After: "room-0400", Limit: limit})
				if err != nil || len(page.Rooms) != limit || !page.More || page.Rooms[0].Role != chat.RoleMember {
					b.Fatalf("MemberRooms: %d rooms, more %v, %v", len(page.Rooms), page.More, err)
				}
			}
		})
	}
}

// BenchmarkCounts measures the badges of a room list: one Counts call for a
// user in 1,000 rooms of 20 items each, some read to the end, some partly,
// some not at all, with mentions on either side of the read position.
func BenchmarkCounts(b *testing.B) {
	s := openTemp(b, filepath.Join(b.TempDir(), "parley.db"))
	// Setting up is not what is measured: skip the fsync of its
	// transactions.
	s.db.NoSync = true
	f := storetest.NewCountsBench(b, s, 1000)
	s.db.NoSync = false
	f.Run(b, s)
}

// BenchmarkHistoryFolded measures the latest page of 50 of a room of 10,000
// items (a fifth reactions, some edits and deletes): Messages alone
// ("plain", a join's replay) against the page as history shows it
// ("folded": Messages, ItemsAbout, chat.FoldInto).
func BenchmarkHistoryFolded(b *testing.B) {
	s := openTemp(b, filepath.Join(b.TempDir(), "parley.db"))
	// Setting up is not what is measured.
	s.db.NoSync = true
	f := storetest.NewHistoryBench(b, s, 10_000)
	s.db.NoSync = false
	f.Run(b, s)
}

// BenchmarkHistoryDepth measures history and a join's replay in rooms of
// 1,000 and 1,000,000 messages (PARLEY_BENCH_DEPTHS to change them): the
// p99 of each read must stay flat as the room grows. Each depth is its own
// store, filled without fsync (the setup is not what is measured).
func BenchmarkHistoryDepth(b *testing.B) {
	for _, depth := range storetest.BenchDepths(b) {
		b.Run(fmt.Sprintf("depth=%d", depth), func(b *testing.B) {
			s := openTemp(b, filepath.Join(b.TempDir(), "parley.db"))
			s.db.NoSync = true
			start := time.Now()
			f := storetest.NewDepthBench(b, s, depth)
			s.db.NoSync = false
			b.Logf("set up %d messages in %v", depth, time.Since(start))
			f.Run(b, s)
		})
	}
}
