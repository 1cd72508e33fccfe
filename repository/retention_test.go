package repository

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parley-chat/parley/app/chat"
)

// TestTSStoredAsDate: a message's ts is a BSON date in the collection and
// reads back as the very string it came with.
func TestTSStoredAsDate(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	in := message("general", "a", "hi")
	mustAppend(t, s, ctx, []chat.Message{in})
	var raw bson.Raw
	if err := s.messages.FindOne(ctx, bson.D{{Key: "id", Value: "a"}}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	v := raw.Lookup("ts")
	if v.Type != bson.TypeDateTime {
		t.Fatalf("ts stored as %v, want a date", v.Type)
	}
	if got := time.UnixMilli(v.DateTime()).UTC(); !got.Equal(time.Date(2026, 11, 25, 10, 0, 0, 123e6, time.UTC)) {
		t.Fatalf("ts stored as %v", got)
	}
	p, err := s.Messages(ctx, "general", chat.Query{Kind: chat.Latest, Limit: 1})
	if err != nil || len(p.Messages) != 1 || p.Messages[0].TS != in.TS {
		t.Fatalf("read back %+v, %v; want ts %s", p.Messages, err, in.TS)
	}
}

// TestOpenMigratesStringTS: documents of older versions (ts a string) get a
// date at Open, more than one batch of them, by several instances starting
// at once; what does not parse stays as it was; history reads the same.
func TestOpenMigratesStringTS(t *testing.T) {
	uri, db := testURI(t), testDB(t)
	first := newStoreOn(t, uri, db)
	ctx := t.Context()
	// Three batches and a bit, small ones: FerretDB takes about 7 ms an
	// update, and three instances contend for each.
	defer func(b int64) { migrateBatch = b }(migrateBatch)
	migrateBatch = 100
	const n = 317
	docs := make([]any, n)
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for i := range docs {
		docs[i] = stringTSDoc{Room: "general", Seq: int64(i + 1), ID: fmt.Sprint(i), User: "alice", Text: "old",
			TS: chat.Timestamp(base.Add(time.Duration(i) * time.Millisecond))}
	}
	docs = append(docs, stringTSDoc{Room: "odd", Seq: 1, ID: "x", User: "alice", Text: "odd", TS: "yesterday"})
	if _, err := first.messages.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	before := allMessages(t, first, "general")

	var wg sync.WaitGroup
	stores := make([]*Store, 3)
	errs := make([]error, 3)
	for i := range stores {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			stores[i], errs[i] = Open(ctx, uri, db)
		})
	}
	wg.Wait()
	for i, s := range stores {
		if errs[i] != nil {
			t.Fatalf("Open %d: %v", i, errs[i])
		}
		t.Cleanup(func() { _ = s.Close() })
	}
	strings, err := first.messages.CountDocuments(ctx, bson.D{{Key: "ts", Value: bson.D{{Key: "$type", Value: "string"}}}})
	if err != nil || strings != 1 {
		t.Fatalf("%d documents with a string ts after the migration (%v), want 1 (the unparseable one)", strings, err)
	}
	after := allMessages(t, first, "general")
	if len(after) != n || len(before) != n {
		t.Fatalf("%d messages after the migration, %d before, want %d", len(after), len(before), n)
	}
	for i := range after {
		if !reflect.DeepEqual(after[i], before[i]) {
			t.Fatalf("message %d reads %+v after the migration, %+v before", i, after[i], before[i])
		}
	}
	if odd := allMessages(t, first, "odd"); len(odd) != 1 || odd[0].TS != "yesterday" {
		t.Fatalf("unparseable ts after the migration: %+v", odd)
	}
	// Run again, it finds nothing to do.
	if got, err := first.migrateTS(ctx); err != nil || got != 0 {
		t.Fatalf("second migration converted %d (%v), want 0", got, err)
	}
}

// newStoreOn is newStore on a database the caller names.
func newStoreOn(t testing.TB, uri, db string) *Store {
	t.Helper()
	s := openStore(t, uri, db)
	// Registered after Close, so it runs before it.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.client.Database(db).Drop(ctx); err != nil {
			t.Errorf("drop test database %s: %v", db, err)
		}
	})
	return s
}

// TestSetRetention: retention makes a ts index — a TTL index where the
// server has them (MongoDB), a plain one where not (FerretDB 1.24, which
// answers NotImplemented); changing it replaces the index, turning it off
// drops it.
func TestSetRetention(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	ttl, err := s.SetRetention(ctx, 90*24*time.Hour)
	if err != nil {
		t.Fatalf("SetRetention: %v", err)
	}
	t.Logf("server runs TTL indexes: %v", ttl)
	checkTSIndex(t, s, ttl, 90*24*3600)
	// Again, the same: nothing changes; another value: replaced.
	if ttl2, err := s.SetRetention(ctx, 90*24*time.Hour); err != nil || ttl2 != ttl {
		t.Fatalf("SetRetention again: %v, %v", ttl2, err)
	}
	if _, err := s.SetRetention(ctx, time.Hour); err != nil {
		t.Fatalf("SetRetention(1h): %v", err)
	}
	checkTSIndex(t, s, ttl, 3600)
	if _, err := s.SetRetention(ctx, 0); err != nil {
		t.Fatalf("SetRetention(0): %v", err)
	}
	if sp, err := s.tsIndexSpec(ctx); err != nil || sp != nil {
		t.Fatalf("ts index after retention off: %+v, %v; want none", sp, err)
	}
	// Off on a store that never had it is fine too.
	if _, err := s.SetRetention(ctx, 0); err != nil {
		t.Fatalf("SetRetention(0) again: %v", err)
	}
}

func checkTSIndex(t *testing.T, s *Store, ttl bool, secs int64) {
	t.Helper()
	sp, err := s.tsIndexSpec(t.Context())
	if err != nil || sp == nil {
		t.Fatalf("ts index: %+v, %v", sp, err)
	}
	switch {
	case ttl && (sp.TTL == nil || *sp.TTL != secs):
		t.Fatalf("ts index %+v, want expireAfterSeconds %d", sp, secs)
	case !ttl && sp.TTL != nil:
		t.Fatalf("ts index %+v on a server without TTL indexes", sp)
	}
}

// TestSweepRecordsLastBeforeDeleting: Sweep raises the room's recorded last
// seq before it deletes, so LastSeq holds even for a room whose record an
// older version never wrote.
func TestSweepRecordsLastBeforeDeleting(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	m := message("general", "a", "old")
	m.TS = chat.Timestamp(time.Now().Add(-48 * time.Hour))
	mustAppend(t, s, ctx, []chat.Message{m, message("general", "b", "old too")})
	// As an older version left it: no last seq in the room document.
	if _, err := s.rooms.UpdateOne(ctx, bson.D{{Key: "_id", Value: "general"}}, bson.D{{Key: "$unset", Value: bson.D{{Key: "last", Value: ""}}}}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Sweep(ctx, time.Now()); err != nil || n != 2 {
		t.Fatalf("Sweep = %d, %v; want 2", n, err)
	}
	fresh := openStore(t, testURI(t), s.messages.Database().Name())
	if got, err := fresh.LastSeq(ctx, "general"); err != nil || got != 2 {
		t.Fatalf("LastSeq after the sweep = %d, %v; want 2", got, err)
	}
	var room bson.M
	if err := s.rooms.FindOne(ctx, bson.D{{Key: "_id", Value: "general"}}, options.FindOne()).Decode(&room); err != nil {
		t.Fatal(err)
	}
	if room["last"] != int64(2) {
		t.Fatalf("room document %v, want last 2", room)
	}
}

// TestSweepBatches: Sweep goes on batch after batch until nothing old is
// left, over several rooms, and leaves newer messages and string-ts ones.
func TestSweepBatches(t *testing.T) {
	defer func(b int64) { migrateBatch = b }(migrateBatch)
	migrateBatch = 7
	s := newStore(t)
	ctx := t.Context()
	old := chat.Timestamp(time.Now().Add(-72 * time.Hour))
	var in []chat.Message
	for i := range 30 {
		m := message(fmt.Sprint("room", i%3), fmt.Sprint("old", i), "old")
		m.TS = old
		in = append(in, m)
	}
	in = append(in, message("room0", "new", "new"), chat.Message{Room: "room1", ID: "odd", User: "alice", Text: "odd", TS: "yesterday"})
	in[len(in)-2].TS = chat.Timestamp(time.Now())
	mustAppend(t, s, ctx, in)
	n, err := s.Sweep(ctx, time.Now().Add(-time.Hour))
	if err != nil || n != 30 {
		t.Fatalf("Sweep = %d, %v; want 30", n, err)
	}
	if left := countMessages(t, s); left != 2 {
		t.Fatalf("%d messages left, want 2", left)
	}
	for room, want := range map[string]int64{"room0": 11, "room1": 11, "room2": 10} {
		if got, err := s.LastSeq(ctx, room); err != nil || got != want {
			t.Fatalf("LastSeq(%s) = %d, %v; want %d", room, got, err, want)
		}
	}
}
