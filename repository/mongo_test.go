package repository

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/app/tools/testenv"
	"github.com/parley-chat/parley/repository/storetest"
)

// These tests need a MongoDB wire server: PARLEY_TEST_MONGO names it, e.g.
//
//	go tool task services:up
//	PARLEY_TEST_MONGO=mongodb://127.0.0.1:27018/ go test ./repository/
//
// Without it they skip, except under CI (CI=true), where a missing service
// must fail the run instead of letting it pass having tested nothing.
func testURI(t testing.TB) string {
	t.Helper()
	return testenv.Service(t, testenv.Mongo, "MongoDB")
}

// testDB returns a database name no other test uses.
func testDB(t testing.TB) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "parley_test_" + hex.EncodeToString(b[:])
}

// openStore opens a Store on db, closed at cleanup.
func openStore(t testing.TB, uri, db string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, uri, db)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// newStore opens a Store on a fresh database, dropped at cleanup.
func newStore(t testing.TB) *Store {
	t.Helper()
	return newStoreOn(t, testURI(t), testDB(t))
}

func TestMongoStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) chat.Store { return newStore(t) })
}

func TestMongoPeopleContract(t *testing.T) {
	storetest.RunPeople(t, func(t *testing.T) chat.People { return newStore(t) })
}

func TestMongoRoomStatesContract(t *testing.T) {
	storetest.RunRoomStates(t, func(t *testing.T) storetest.RoomStore { return newStore(t) })
}

func TestMongoMarksContract(t *testing.T) {
	storetest.RunMarks(t, func(t *testing.T) storetest.MarkStore { return newStore(t) })
}

func TestMongoNotificationsContract(t *testing.T) {
	storetest.RunNotifications(t, func(t *testing.T) chat.Notifications { return newStore(t) })
}

func TestOpenRejectsEmptyArguments(t *testing.T) {
	if _, err := Open(t.Context(), "", "parley"); err == nil {
		t.Error("Open with an empty uri succeeded")
	}
	if _, err := Open(t.Context(), "mongodb://127.0.0.1:1/", ""); err == nil {
		t.Error("Open with an empty database name succeeded")
	}
}

// indexInfo is one index of the messages collection as the server lists it.
type indexInfo struct {
	Name   string `bson:"name"`
	Unique bool   `bson:"unique"`
	Key    bson.D `bson:"key"`
}

func listIndexes(t *testing.T, coll *mongo.Collection) map[string]indexInfo {
	t.Helper()
	cur, err := coll.Indexes().List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var idx []indexInfo
	if err := cur.All(t.Context(), &idx); err != nil {
		t.Fatal(err)
	}
	out := map[string]indexInfo{}
	for _, i := range idx {
		out[i.Name] = i
	}
	return out
}

// checkIndexes asserts the current layout: (room, seq) and (room, user, id)
// unique, the (room, id) index of older versions gone.
func checkIndexes(t *testing.T, coll *mongo.Collection) {
	t.Helper()
	idx := listIndexes(t, coll)
	for name, keys := range map[string][]string{roomSeqIndex: {"room", "seq"}, roomUserIDIndex: {"room", "user", "id"}} {
		i, ok := idx[name]
		var got []string
		for _, e := range i.Key {
			got = append(got, e.Key)
		}
		if !ok || !i.Unique || !slices.Equal(got, keys) {
			t.Errorf("index %s missing, not unique or not on %v; indexes: %+v", name, keys, idx)
		}
	}
	if _, ok := idx[legacyRoomIDIndex]; ok {
		t.Errorf("index %s is still there; indexes: %+v", legacyRoomIDIndex, idx)
	}
}

func TestOpenTwiceKeepsIndexes(t *testing.T) {
	s := newStore(t)
	// A second instance starting on the same database creates the same
	// indexes again, and finds no old index to drop: no-ops, not errors.
	openStore(t, testURI(t), s.messages.Database().Name())
	checkIndexes(t, s.messages)
}

// TestOpenMigratesLegacyIndex opens a database as older versions left it:
// unique on (room, id), where one user's message under an id stood in for
// another's. Open replaces that index with (room, user, id); the old message
// is still there and still deduplicated, and another user's message under
// its id is stored.
func TestOpenMigratesLegacyIndex(t *testing.T) {
	uri, db := testURI(t), testDB(t)
	ctx := t.Context()
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := client.Database(db).Drop(ctx); err != nil {
			t.Errorf("drop test database %s: %v", db, err)
		}
		_ = client.Disconnect(ctx)
	})

	// The old layout, made by hand as the old Open made it: one index per
	// command.
	coll := client.Database(db).Collection(messagesColl)
	for _, m := range []mongo.IndexModel{
		{Keys: bson.D{{Key: "room", Value: 1}, {Key: "seq", Value: 1}}, Options: options.Index().SetName("room_seq_unique").SetUnique(true)},
		{Keys: bson.D{{Key: "room", Value: 1}, {Key: "id", Value: 1}}, Options: options.Index().SetName("room_id_unique").SetUnique(true)},
	} {
		if _, err := coll.Indexes().CreateOne(ctx, m); err != nil {
			t.Fatalf("create old index: %v", err)
		}
	}
	// An old document: ts a string, as older versions stored it.
	old := stringTSDoc{Room: "general", Seq: 1, ID: "x", User: "alice", Text: "old", TS: "2026-11-25T10:00:00.123Z"}
	if _, err := coll.InsertOne(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Database(db).Collection(roomsColl).InsertOne(ctx, bson.D{{Key: "_id", Value: "general"}}); err != nil {
		t.Fatal(err)
	}
	// Under the old index another user's x cannot be stored at all.
	if _, err := coll.InsertOne(ctx, messageDoc{Room: "general", Seq: 2, ID: "x", User: "bob", Text: "bob's x"}); !mongo.IsDuplicateKeyError(err) {
		t.Fatalf("insert under the old index: %v, want a duplicate key error", err)
	}

	s := openStore(t, uri, db)
	checkIndexes(t, s.messages)

	bobX, aliceY := message("general", "x", "bob's x"), message("general", "y", "alice's y")
	bobX.User = "bob"
	retry := message("general", "x", "alice's x again")
	out := mustAppend(t, s, ctx, []chat.Message{retry, bobX, aliceY})
	bobX.Seq, aliceY.Seq = 2, 3
	oldMsg := chat.Message{Room: old.Room, Seq: old.Seq, ID: old.ID, User: old.User, Text: old.Text, TS: old.TS}
	want := []chat.Message{oldMsg, bobX, aliceY}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("Append after migration =\n %+v\nwant\n %+v", out, want)
	}
	p, err := s.Messages(ctx, "general", chat.Query{Kind: chat.Latest, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.Messages, want) || p.HasMore {
		t.Fatalf("history after migration = %+v, want %+v", p.Messages, want)
	}
	rooms, err := s.Rooms(ctx, chat.RoomQuery{Limit: 10})
	if err != nil || !slices.Equal(rooms.Rooms, []chat.RoomInfo{{Room: "general", LastSeq: 3}}) {
		t.Fatalf("Rooms after migration = %+v, %v", rooms, err)
	}

	// A second instance opening the migrated database finds nothing to drop.
	openStore(t, uri, db)
	checkIndexes(t, s.messages)
	checkRoom(t, s, "general", 3, out)
}

// --- helpers for the Mongo-specific tests ---

func message(room, id, text string) chat.Message {
	return chat.Message{Room: room, ID: id, User: "alice", Text: text, TS: "2026-11-25T10:00:00.123Z"}
}

func batch(room, prefix, text string, from, to int) []chat.Message {
	var out []chat.Message
	for i := from; i < to; i++ {
		out = append(out, message(room, fmt.Sprintf("%s%d", prefix, i), text))
	}
	return out
}

func mustAppend(t *testing.T, s *Store, ctx context.Context, in []chat.Message) []chat.Message {
	t.Helper()
	out, err := s.Append(ctx, in)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if len(out) != len(in) {
		t.Fatalf("Append returned %d messages for %d", len(out), len(in))
	}
	return out
}

// allMessages reads every stored document of room straight from the
// collection, not through Messages, so nothing can hide a duplicate.
func allMessages(t *testing.T, s *Store, room string) []chat.Message {
	t.Helper()
	cur, err := s.messages.Find(t.Context(), bson.D{{Key: "room", Value: room}})
	if err != nil {
		t.Fatal(err)
	}
	var docs []storedDoc
	if err := cur.All(t.Context(), &docs); err != nil {
		t.Fatal(err)
	}
	out := make([]chat.Message, len(docs))
	for i, d := range docs {
		if out[i], err = d.message(); err != nil {
			t.Fatal(err)
		}
	}
	slices.SortFunc(out, func(a, b chat.Message) int { return int(a.Seq - b.Seq) })
	return out
}

func countMessages(t *testing.T, s *Store) int64 {
	t.Helper()
	n, err := s.messages.CountDocuments(t.Context(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkRoom asserts the invariants of one room: stored seqs are exactly
// 1..len(stored), each (user, id) is stored once, and every message any
// caller got back is the stored one (same seq, first text).
func checkRoom(t *testing.T, s *Store, room string, wantN int, returned ...[]chat.Message) {
	t.Helper()
	stored := allMessages(t, s, room)
	byKey := map[msgKey]chat.Message{}
	for i, m := range stored {
		if m.Seq != int64(i+1) {
			t.Fatalf("room %s: stored seq #%d is %d: not gapless 1..N (seqs %v)", room, i+1, m.Seq, seqsOf(stored))
		}
		if prev, dup := byKey[keyOf(m)]; dup {
			t.Fatalf("room %s: %s's id %s stored twice, seqs %d and %d", room, m.User, m.ID, prev.Seq, m.Seq)
		}
		byKey[keyOf(m)] = m
	}
	if len(stored) != wantN {
		t.Fatalf("room %s: %d messages stored, want %d", room, len(stored), wantN)
	}
	for _, out := range returned {
		for _, m := range out {
			if !reflect.DeepEqual(m, byKey[keyOf(m)]) {
				t.Fatalf("room %s: a caller got %+v for %s, stored is %+v", room, m, m.ID, byKey[keyOf(m)])
			}
		}
	}
	if last, err := s.LastSeq(t.Context(), room); err != nil || last != int64(wantN) {
		t.Fatalf("room %s: LastSeq = %d, %v; want %d", room, last, err, wantN)
	}
}

func seqsOf(ms []chat.Message) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

// --- Mongo-specific tests ---

// TestTwoStoresRacing is a Kafka partition moving between instances
// mid-flight: two Stores, each with its own client (as two processes have),
// append to the same rooms at once, and the new owner re-sends records the
// old one was still storing (redelivery from the last committed offset), in
// batches of every size, some above one InsertMany chunk.
func TestTwoStoresRacing(t *testing.T) {
	a := newStore(t)
	b := openStore(t, testURI(t), a.messages.Database().Name())
	ctx := t.Context()

	const n = 200 // messages per room: ids m0..m199
	rooms := []string{"general", "random", "ops"}
	type job struct {
		s         *Store
		who       string
		from, to  int // ids [from, to)
		batchSize int
	}
	jobs := []job{
		{a, "a1", 0, 140, 7},    // the old owner, cut off at 140
		{b, "b1", 80, 200, 5},   // the new owner, redelivering from 80
		{b, "b2", 85, 196, 111}, // a big redelivered batch: two InsertMany chunks
		{a, "a2", 110, 150, 1},  // single retries around where the owners meet
		{a, "a3", 150, 200, 50},
	}
	var (
		mu       sync.Mutex
		returned = map[string][][]chat.Message{}
		wg       sync.WaitGroup
	)
	for _, room := range rooms {
		for _, j := range jobs {
			wg.Go(func() {
				for from := j.from; from < j.to; from += j.batchSize {
					in := batch(room, "m", "sent by "+j.who, from, min(from+j.batchSize, j.to))
					out, err := j.s.Append(ctx, in)
					if err != nil {
						t.Errorf("%s on %s: Append: %v", j.who, room, err)
						return
					}
					for k := range in {
						if out[k].ID != in[k].ID || out[k].Room != room {
							t.Errorf("%s on %s: result %d is %s/%s, want %s/%s", j.who, room, k, out[k].Room, out[k].ID, room, in[k].ID)
							return
						}
					}
					mu.Lock()
					returned[room] = append(returned[room], out)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("inserts that lost a race: %d by the first store, %d by the second", a.lostRaces.Load(), b.lostRaces.Load())
	for _, room := range rooms {
		checkRoom(t, a, room, n, returned[room]...)
	}
	if got := countMessages(t, a); got != int64(n*len(rooms)) {
		t.Fatalf("%d documents stored, want %d", got, n*len(rooms))
	}
	// What the other instance reads is the same.
	for _, room := range rooms {
		p, err := b.Messages(ctx, room, chat.Query{Kind: chat.Latest, Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Messages) != 50 || p.Messages[0].Seq != n-49 || !p.HasMore {
			t.Fatalf("room %s from the second store: %d messages from seq %d, has_more %v", room, len(p.Messages), p.Messages[0].Seq, p.HasMore)
		}
	}
}

// TestLostSeqRace makes the race deterministic: between A's read of the
// next seq and its insert, B stores messages, two of them with A's ids
// (B already took over the partition and redelivered them).
func TestLostSeqRace(t *testing.T) {
	a := newStore(t)
	b := openStore(t, testURI(t), a.messages.Database().Name())
	ctx := t.Context()

	var struck bool
	a.beforeInsert = func(ctx context.Context, room string, firstSeq int64, n int) {
		if struck {
			return
		}
		struck = true
		mustAppend(t, b, ctx, []chat.Message{message(room, "b1", "by b"), message(room, "x3", "x3 by b"), message(room, "x4", "x4 by b")})
	}
	out := mustAppend(t, a, ctx, batch("general", "x", "by a", 1, 7)) // x1..x6
	want := map[string]int64{"b1": 1, "x3": 2, "x4": 3, "x1": 4, "x2": 5, "x5": 6, "x6": 7}
	for _, m := range out {
		if m.Seq != want[m.ID] {
			t.Errorf("%s got seq %d, want %d", m.ID, m.Seq, want[m.ID])
		}
		if wantText := map[bool]string{true: m.ID + " by b", false: "by a"}[m.ID == "x3" || m.ID == "x4"]; m.Text != wantText {
			t.Errorf("%s: text %q, want %q (first text wins)", m.ID, m.Text, wantText)
		}
	}
	checkRoom(t, a, "general", 7, out)
}

// TestLostSeqRaceOtherUsers: as TestLostSeqRace, but what B stores in
// between is bob's messages under A's ids (other messages) and one of A's own
// (a redelivery). The lookup after A's collision must take only the latter
// for stored: bob's x1 and x2 are not alice's.
func TestLostSeqRaceOtherUsers(t *testing.T) {
	a := newStore(t)
	b := openStore(t, testURI(t), a.messages.Database().Name())
	ctx := t.Context()

	byBob := func(id string) chat.Message { m := message("general", id, id+" by bob"); m.User = "bob"; return m }
	var struck bool
	a.beforeInsert = func(ctx context.Context, room string, firstSeq int64, n int) {
		if struck {
			return
		}
		struck = true
		mustAppend(t, b, ctx, []chat.Message{byBob("x1"), byBob("x2"), message(room, "x3", "x3 by b")})
	}
	out := mustAppend(t, a, ctx, batch("general", "x", "by a", 1, 5)) // alice's x1..x4
	want := map[string]int64{"x1": 4, "x2": 5, "x3": 3, "x4": 6}
	for _, m := range out {
		if m.User != "alice" || m.Seq != want[m.ID] {
			t.Errorf("%s got %s's seq %d, want alice's %d", m.ID, m.User, m.Seq, want[m.ID])
		}
	}
	if out[2].Text != "x3 by b" {
		t.Errorf("x3: text %q, want the first stored one", out[2].Text)
	}
	checkRoom(t, a, "general", 6, out)
}

// TestRaceInsideChunk has another writer take a seq in the middle of one
// ordered insert (as it can between two documents of an InsertMany): the
// documents before it stay placed, the one that collides and all after it
// are placed again above the intruder, and nothing after the collision is
// written by the failed insert (FerretDB's ordered-insert caveat).
func TestRaceInsideChunk(t *testing.T) {
	a := newStore(t)
	ctx := t.Context()
	mustAppend(t, a, ctx, batch("general", "old", "old", 0, 10)) // seqs 1..10

	var struck bool
	a.beforeInsert = func(ctx context.Context, room string, firstSeq int64, n int) {
		if struck {
			return
		}
		struck = true
		// The seq the 41st document of this chunk is about to take.
		if _, err := a.messages.InsertOne(ctx, messageDoc{Room: room, Seq: firstSeq + 40, ID: "intruder", User: "bob", Text: "in between", TS: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}); err != nil {
			t.Errorf("insert intruder: %v", err)
		}
	}
	in := batch("general", "p", "by a", 0, 150) // two chunks: 100 + 50
	out := mustAppend(t, a, ctx, in)
	for k, m := range out {
		want := int64(11 + k) // p0..p39 at 11..50, intruder at 51, p40.. at 52..
		if k >= 40 {
			want++
		}
		if m.Seq != want {
			t.Fatalf("%s got seq %d, want %d", m.ID, m.Seq, want)
		}
	}
	checkRoom(t, a, "general", 161, out)
}

// TestReAppendWritesNothing: Append is idempotent. The same batch again —
// with other texts, as a retry from another client would have — returns the
// very same messages and inserts nothing; a batch that overlaps stored ones
// gives the stored ones back and continues the seqs after them.
func TestReAppendWritesNothing(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	in := append(batch("general", "m", "first", 0, 150), batch("other", "m", "first", 0, 20)...)
	first := mustAppend(t, s, ctx, in)

	// Each room's first insert collides on its first document (nothing of it
	// is written), and the one lookup that follows finds the whole batch.
	inserts := 0
	s.beforeInsert = func(context.Context, string, int64, int) { inserts++ }
	again := mustAppend(t, s, ctx, append(batch("general", "m", "second", 0, 150), batch("other", "m", "second", 0, 20)...))
	if !reflect.DeepEqual(again, first) {
		t.Fatalf("re-Append returned other messages than the first Append")
	}
	if inserts != 2 {
		t.Fatalf("re-Append tried %d inserts, want one per room", inserts)
	}
	if got := countMessages(t, s); got != 170 {
		t.Fatalf("%d documents stored, want 170", got)
	}

	overlap := mustAppend(t, s, ctx, batch("general", "m", "third", 140, 160))
	for k, m := range overlap {
		if m.Seq != int64(141+k) {
			t.Fatalf("%s got seq %d, want %d", m.ID, m.Seq, 141+k)
		}
	}
	checkRoom(t, s, "general", 160, first[:150], overlap)
	checkRoom(t, s, "other", 20, first[150:])
}

// TestAppendFailsPartwayThenRetries: an Append that fails after its first
// chunk (here: its context ends) leaves that chunk stored — MongoDB offers no
// all-or-nothing without transactions — and the retry of the same batch,
// which is what the persist stage does, completes it with the same seqs and
// no gap.
func TestAppendFailsPartwayThenRetries(t *testing.T) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(t.Context())
	chunks := 0
	s.beforeInsert = func(context.Context, string, int64, int) {
		if chunks++; chunks == 2 {
			cancel()
		}
	}
	in := batch("general", "m", "text", 0, 250)
	if _, err := s.Append(ctx, in); err == nil {
		t.Fatal("Append with a context cancelled part-way succeeded")
	}
	if got := countMessages(t, s); got != insertChunk {
		t.Fatalf("after the failed Append %d documents are stored, want the first chunk (%d)", got, insertChunk)
	}
	s.beforeInsert = nil
	out := mustAppend(t, s, t.Context(), in)
	for k, m := range out {
		if m.Seq != int64(k+1) {
			t.Fatalf("%s got seq %d, want %d", m.ID, m.Seq, k+1)
		}
	}
	checkRoom(t, s, "general", 250, out)
}

func TestMessagesRejectsBadQuery(t *testing.T) {
	s := newStore(t)
	for _, q := range []chat.Query{
		{Kind: chat.Latest, Limit: 0},
		{Kind: chat.After, Seq: -1, Limit: 10},
		{Kind: chat.QueryKind(9), Limit: 10},
	} {
		if _, err := s.Messages(t.Context(), "general", q); chat.ErrorCode(err) != chat.EBadRequest {
			t.Errorf("Messages(%+v) error %v, want bad_request", q, err)
		}
	}
}

// BenchmarkAppend measures Append of batches of new messages to one room.
// Against FerretDB it measures FerretDB on SQLite, not MongoDB.
func BenchmarkAppend(b *testing.B) {
	if os.Getenv("PARLEY_TEST_MONGO") == "" {
		b.Skip("PARLEY_TEST_MONGO unset")
	}
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := newStore(b)
			ctx := b.Context()
			n := 0
			for b.Loop() {
				in := batch("general", "m", "benchmark message text", n, n+size)
				if _, err := s.Append(ctx, in); err != nil {
					b.Fatal(err)
				}
				n += size
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkCounts measures the badges of a room list, one Counts call for a
// user in many rooms, as repository/bolt's BenchmarkCounts does for 1,000.
// PARLEY_BENCH_ROOMS sets the number, 100 by default: FerretDB serves no
// read from an index, so every find scans the whole collection (about 60 ms
// per 1,000 messages measured), and with 1,000 rooms of 20 items the set-up
// Appends and one call did not finish in 15 minutes (100 rooms: about 1 s a
// call). Against FerretDB it measures FerretDB on SQLite, not MongoDB.
func BenchmarkCounts(b *testing.B) {
	if os.Getenv("PARLEY_TEST_MONGO") == "" {
		b.Skip("PARLEY_TEST_MONGO unset")
	}
	rooms := 100
	if v := os.Getenv("PARLEY_BENCH_ROOMS"); v != "" {
		if _, err := fmt.Sscan(v, &rooms); err != nil {
			b.Fatalf("PARLEY_BENCH_ROOMS=%q: %v", v, err)
		}
	}
	s := newStore(b)
	start := time.Now()
	f := storetest.NewCountsBench(b, s, rooms)
	b.Logf("set up %d rooms in %v", rooms, time.Since(start))
	f.Run(b, s)
}

// BenchmarkHistoryFolded measures the latest page of 50, plain and folded,
// as repository/bolt's BenchmarkHistoryFolded does for 10,000 items, in a
// room of PARLEY_BENCH_ITEMS items, 1,000 by default: FerretDB serves no
// read from an index (each find scans the collection, about 60 ms per 1,000
// documents), so against FerretDB it measures FerretDB's scans, not
// MongoDB's index ranges.
func BenchmarkHistoryFolded(b *testing.B) {
	if os.Getenv("PARLEY_TEST_MONGO") == "" {
		b.Skip("PARLEY_TEST_MONGO unset")
	}
	items := 1000
	if v := os.Getenv("PARLEY_BENCH_ITEMS"); v != "" {
		if _, err := fmt.Sscan(v, &items); err != nil {
			b.Fatalf("PARLEY_BENCH_ITEMS=%q: %v", v, err)
		}
	}
	s := newStore(b)
	start := time.Now()
	f := storetest.NewHistoryBench(b, s, items)
	b.Logf("set up %d items in %v", items, time.Since(start))
	f.Run(b, s)
}

func TestMongoLifecyclesContract(t *testing.T) {
	storetest.RunLifecycles(t, func(t *testing.T) storetest.LifecycleStore { return newStore(t) })
}

// BenchmarkHistoryDepth is the embedded store's BenchmarkHistoryDepth on
// the MongoDB-wire server (PARLEY_BENCH_DEPTHS to change the depths).
func BenchmarkHistoryDepth(b *testing.B) {
	if os.Getenv("PARLEY_TEST_MONGO") == "" {
		b.Skip("PARLEY_TEST_MONGO unset")
	}
	for _, depth := range storetest.BenchDepths(b) {
		b.Run(fmt.Sprintf("depth=%d", depth), func(b *testing.B) {
			s := newStore(b)
			start := time.Now()
			f := storetest.NewDepthBench(b, s, depth)
			b.Logf("set up %d messages in %v", depth, time.Since(start))
			f.Run(b, s)
		})
	}
}

// openMonitored opens a Store on a fresh database with mon watching it,
// closed at cleanup.
func openMonitored(t *testing.T, ctx context.Context, mon monitors) *Store {
	t.Helper()
	s, err := open(ctx, testURI(t), testDB(t), mon)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestMongoPingOwnConnection: Ping (what /readyz asks) takes no connection
// from the store's pool, which slow operations can hold all of under load:
// a ping waiting for one of them timed out, and the instance left service
// while the store still answered.
func TestMongoPingOwnConnection(t *testing.T) {
	var checkouts atomic.Int64
	pool := &event.PoolMonitor{Event: func(e *event.PoolEvent) {
		if e.Type == event.ConnectionCheckedOut {
			checkouts.Add(1)
		}
	}}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s := openMonitored(t, ctx, monitors{pool: pool})
	if _, err := s.LastSeq(ctx, "r"); err != nil {
		t.Fatalf("LastSeq: %v", err)
	}
	if checkouts.Load() == 0 {
		t.Fatal("the pool monitor saw no checkout for a store read")
	}
	before := checkouts.Load()
	for range 3 {
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	}
	if n := checkouts.Load() - before; n != 0 {
		t.Fatalf("3 pings took %d connections from the store's pool, want 0", n)
	}
}

// TestMongoPingShared: concurrent Pings share one ping command, not one
// each queued on Ping's single connection (a crowd's /readyz calls timed
// out so behind one another).
func TestMongoPingShared(t *testing.T) {
	var sent atomic.Int64
	probe := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if e.CommandName == "ping" {
			sent.Add(1)
		}
	}}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s := openMonitored(t, ctx, monitors{probe: probe})
	before := sent.Load()
	const callers = 50
	start := make(chan struct{})
	errs := make(chan error, callers)
	for range callers {
		go func() {
			<-start
			errs <- s.Ping(ctx)
		}()
	}
	close(start)
	for range callers {
		if err := <-errs; err != nil {
			t.Fatalf("Ping: %v", err)
		}
	}
	if n := sent.Load() - before; n < 1 || n >= callers {
		t.Fatalf("%d concurrent Pings sent %d ping commands, want at least 1 and fewer than %d", callers, n, callers)
	}
	t.Logf("%d concurrent Pings: %d ping commands", callers, sent.Load()-before)
}
