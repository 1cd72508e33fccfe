package membus

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/kafka/bustest"
)

func TestContract(t *testing.T) {
	for _, partitions := range []int{0, 2} {
		t.Run(fmt.Sprintf("partitions=%d", partitions), func(t *testing.T) {
			bustest.Run(t, func(t *testing.T) chat.Bus { return New(Options{Partitions: partitions}) })
		})
	}
}

// retained counts the records topic holds in memory.
func (b *Bus) retained(topic string) int {
	t := b.topic(topic)
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, p := range t.parts {
		n += len(p.recs)
	}
	return n
}

func TestTrimKeepsMemoryBounded(t *testing.T) {
	bus := newBus(t, Options{})
	fast := consume(t, bus, "t", "fast", chat.StartCommitted)
	slow := consume(t, bus, "t", "slow", chat.StartCommitted)

	// The slow group does not commit yet, so everything stays.
	for round := 0; round < 100; round++ {
		publish(t, bus, "t", records("r", 100, 10)...)
		fetchCommit(t, fast, 100)
		if n := bus.retained("t"); n != (round+1)*100 {
			t.Fatalf("round %d: %d records retained, want %d", round, n, (round+1)*100)
		}
	}
	// Once the slow group commits too, nothing is left.
	fetchCommit(t, slow, 100*100)
	if n := bus.retained("t"); n != 0 {
		t.Fatalf("%d records retained after both groups committed all", n)
	}

	// While both keep up, the log stays as short as one round.
	for round := 0; round < 100; round++ {
		publish(t, bus, "t", records("r", 100, 10)...)
		if n := bus.retained("t"); n != 100 {
			t.Fatalf("round %d: %d records retained, want 100", round, n)
		}
		fetchCommit(t, fast, 100)
		fetchCommit(t, slow, 100)
	}
	if n := bus.retained("t"); n != 0 {
		t.Fatalf("%d records retained after both groups committed all", n)
	}
}

// The trade-off of trimming: a new group starting at the earliest offset gets
// what is retained, not what was trimmed.
func TestNewGroupGetsOnlyRetained(t *testing.T) {
	bus := newBus(t, Options{})
	old := consume(t, bus, "t", "old", chat.StartCommitted)
	publish(t, bus, "t", records("gone", 10, 3)...)
	fetchCommit(t, old, 10)
	kept := records("kept", 10, 3)
	publish(t, bus, "t", kept...)

	late := consume(t, bus, "t", "late", chat.StartCommitted)
	got := fetchCommit(t, late, len(kept))
	expectValues(t, got, kept)
}

func TestPublishNeverBlocks(t *testing.T) {
	bus := newBus(t, Options{})
	consume(t, bus, "t", "never-fetches", chat.StartCommitted)
	waiting := consume(t, bus, "other", "blocked-in-fetch", chat.StartCommitted)
	go waiting.Fetch(t.Context(), 1)

	done := make(chan error, 1)
	go func() {
		ctx := context.Background()
		for i := range 100_000 {
			rec := chat.Record{Key: fmt.Appendf(nil, "room-%d", i%50), Value: []byte("hello")}
			if err := bus.Publish(ctx, "t", rec); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Publish blocked on a consumer that does not fetch")
	}
	if n := bus.retained("t"); n != 100_000 {
		t.Fatalf("%d records retained, want 100000", n)
	}
}

// A join rewinds every partition to the committed offset: what the first
// member fetched without committing is delivered again, to whichever member
// now owns each partition.
func TestRebalanceRedelivers(t *testing.T) {
	bus := newBus(t, Options{Partitions: 2})
	recs := records("r", 20, 10)
	publish(t, bus, "t", recs...)
	a := consume(t, bus, "t", "g", chat.StartCommitted)
	fetchCommitN(t, a, len(recs), false)

	b := consume(t, bus, "t", "g", chat.StartCommitted)
	fromA, fromB := fetchAll(t, a), fetchAll(t, b)
	if len(fromA) == 0 || len(fromB) == 0 {
		t.Fatalf("after the rebalance a got %d, b got %d records; want both some", len(fromA), len(fromB))
	}
	expectValues(t, append(fromA, fromB...), recs)
}

// A member that fetched before a rebalance can commit only the partitions it
// still owns; the others are delivered again to their new owner.
func TestCommitAfterRebalance(t *testing.T) {
	bus := newBus(t, Options{Partitions: 2})
	recs := records("r", 20, 10)
	publish(t, bus, "t", recs...)
	a := consume(t, bus, "t", "g", chat.StartCommitted)
	fetched := fetchCommitN(t, a, len(recs), false)

	b := consume(t, bus, "t", "g", chat.StartCommitted)
	if err := a.Commit(t.Context(), fetched); !errors.Is(err, ErrNotAssigned) {
		t.Fatalf("Commit after losing a partition: err = %v, want ErrNotAssigned", err)
	}
	var moved []chat.Record
	for _, r := range fetched {
		if r.Partition == 1 { // dealt round robin: a keeps 0, b gets 1
			moved = append(moved, r)
		}
	}
	if len(moved) == 0 || len(moved) == len(fetched) {
		t.Fatalf("%d of %d records in partition 1; the test needs both partitions used", len(moved), len(fetched))
	}
	expectValues(t, fetchAll(t, b), moved)
	if got := fetchAll(t, a); len(got) != 0 {
		t.Errorf("a got %d committed records again", len(got))
	}
}

// With more members than partitions, the extra member idles (not Ready) until
// a partition frees up, then takes over from the committed offset.
func TestIdleMemberTakesOver(t *testing.T) {
	bus := newBus(t, Options{Partitions: 1})
	recs := records("r", 10, 2)
	publish(t, bus, "t", recs...)
	a := consume(t, bus, "t", "g", chat.StartCommitted)
	b := consume(t, bus, "t", "g", chat.StartCommitted)
	if !a.Ready() || b.Ready() {
		t.Fatalf("Ready: a %v, b %v; want a only", a.Ready(), b.Ready())
	}
	fetchCommitN(t, a, 4, false)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if !b.Ready() {
		t.Fatal("b not Ready after a left")
	}
	expectValues(t, fetchCommit(t, b, len(recs)), recs)
}

// A group with a commit resumes from it with StartNewAtEnd: the option only
// places a group that has none.
func TestStartNewAtEndOnlyForNewGroup(t *testing.T) {
	bus := newBus(t, Options{})
	a := consume(t, bus, "t", "g", chat.StartNewAtEnd)
	first := records("first", 10, 3)
	publish(t, bus, "t", first...)
	fetchCommit(t, a, len(first))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	missed := records("missed", 10, 3)
	publish(t, bus, "t", missed...)
	b := consume(t, bus, "t", "g", chat.StartNewAtEnd)
	expectValues(t, fetchCommit(t, b, len(missed)), missed)
}

// A Start that names none of chat's values is refused, not read as one of
// them.
func TestUnknownStartRefused(t *testing.T) {
	bus := newBus(t, Options{})
	_, err := bus.Consume(t.Context(), chat.ConsumerConfig{Topic: "t", Group: "g", Start: chat.StartAtEnd + 1})
	if err == nil {
		t.Fatal("Consume with an unknown Start: err = nil")
	}
}

func TestCloseWakesFetch(t *testing.T) {
	bus := newBus(t, Options{})
	c := consume(t, bus, "t", "g", chat.StartCommitted)
	errc := make(chan error, 1)
	go func() { _, err := c.Fetch(context.Background(), 1); errc <- err }()
	time.Sleep(20 * time.Millisecond) // let it block; passes either way
	c.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Fetch on a consumer closed meanwhile: err = %v, want ErrClosed", err)
	}

	c = consume(t, bus, "t", "g", chat.StartCommitted)
	go func() { _, err := c.Fetch(context.Background(), 1); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	bus.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Fetch on a bus closed meanwhile: err = %v, want ErrClosed", err)
	}
	if c.Ready() {
		t.Error("Ready() = true on a closed bus")
	}
	if err := bus.Publish(t.Context(), "t", records("r", 1, 1)...); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish on a closed bus: err = %v, want ErrClosed", err)
	}
	if err := bus.Ping(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Ping on a closed bus: err = %v, want ErrClosed", err)
	}
}

// The caller may reuse its buffers once Publish returns, as Fiber does with
// request bodies.
func TestPublishCopies(t *testing.T) {
	bus := newBus(t, Options{})
	c := consume(t, bus, "t", "g", chat.StartCommitted)
	key, value := []byte("room"), []byte("hello")
	publish(t, bus, "t", chat.Record{Key: key, Value: value})
	copy(key, "xxxx")
	copy(value, "xxxxx")
	got := fetchCommit(t, c, 1)
	if string(got[0].Key) != "room" || string(got[0].Value) != "hello" {
		t.Fatalf("got %q=%q, want room=hello", got[0].Key, got[0].Value)
	}
}

func BenchmarkPublishFetch(b *testing.B) {
	bus := New(Options{})
	defer bus.Close()
	ctx := context.Background()
	c, err := bus.Consume(ctx, chat.ConsumerConfig{Topic: "t", Group: "g"})
	if err != nil {
		b.Fatal(err)
	}
	keys := make([][]byte, 64)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "room-%d", i)
	}
	value := make([]byte, 200) // about one chat message as JSON

	b.ResetTimer()
	// One record per Publish, as the handlers publish; the consumer fetches
	// and commits in batches, as the persist stage does.
	go func() {
		for i := range b.N {
			if err := bus.Publish(ctx, "t", chat.Record{Key: keys[i%len(keys)], Value: value}); err != nil {
				b.Error(err)
				return
			}
		}
	}()
	for n := 0; n < b.N; {
		recs, err := c.Fetch(ctx, 100)
		if err == nil {
			err = c.Commit(ctx, recs)
		}
		if err != nil {
			b.Fatal(err)
		}
		n += len(recs)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func newBus(t *testing.T, opts Options) *Bus {
	bus := New(opts)
	t.Cleanup(func() { bus.Close() })
	return bus
}

func consume(t *testing.T, bus *Bus, topic, group string, start chat.Start) chat.Consumer {
	t.Helper()
	c, err := bus.Consume(t.Context(), chat.ConsumerConfig{Topic: topic, Group: group, Start: start})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func publish(t *testing.T, bus *Bus, topic string, recs ...chat.Record) {
	t.Helper()
	if err := bus.Publish(t.Context(), topic, recs...); err != nil {
		t.Fatal(err)
	}
}

// records makes n records over keys keys, valued "<tag>/<i>".
func records(tag string, n, keys int) []chat.Record {
	recs := make([]chat.Record, n)
	for i := range recs {
		recs[i] = chat.Record{Key: fmt.Appendf(nil, "room-%d", i%keys), Value: fmt.Appendf(nil, "%s/%d", tag, i)}
	}
	return recs
}

// fetchCommit fetches and commits exactly n records.
func fetchCommit(t *testing.T, c chat.Consumer, n int) []chat.Record {
	t.Helper()
	got := fetchCommitN(t, c, n, true)
	if len(got) != n {
		t.Fatalf("fetched %d records, want %d", len(got), n)
	}
	return got
}

// fetchCommitN fetches until it has at least n records, committing them if
// commit is set. On this bus a record published is fetchable at once, so a
// short wait is plenty.
func fetchCommitN(t *testing.T, c chat.Consumer, n int, commit bool) []chat.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var got []chat.Record
	for len(got) < n {
		recs, err := c.Fetch(ctx, n-len(got))
		if err == nil && commit {
			err = c.Commit(ctx, recs)
		}
		if err != nil {
			t.Fatalf("after %d of %d records: %v", len(got), n, err)
		}
		got = append(got, recs...)
	}
	return got
}

// fetchAll returns whatever c can fetch without waiting.
func fetchAll(t *testing.T, c chat.Consumer) []chat.Record {
	t.Helper()
	var got []chat.Record
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
		recs, err := c.Fetch(ctx, 100)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, recs...)
	}
}

// expectValues checks that got holds each of want exactly once and nothing
// else.
func expectValues(t *testing.T, got, want []chat.Record) {
	t.Helper()
	times := map[string]int{}
	for _, r := range got {
		times[string(r.Value)]++
	}
	for _, r := range want {
		if n := times[string(r.Value)]; n != 1 {
			t.Errorf("record %s delivered %d times, want once", r.Value, n)
		}
		delete(times, string(r.Value))
	}
	for v := range times {
		t.Errorf("unexpected record %s", v)
	}
}
