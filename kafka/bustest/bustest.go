// Package bustest is the contract test suite of chat.Bus. Every
// implementation runs it — the in-process bus in its unit tests, the Kafka bus
// against a real broker — so the pipeline can count on the same behaviour from
// both.
//
// It tests only what app/chat/bus.go promises. Each subtest uses topics and
// groups of its own, named with a random suffix, because a real broker keeps
// them across subtests and runs. Waits are generous, since a Kafka group join
// takes seconds, but end as soon as the expected records are in, so the suite
// stays fast on an in-process bus.
package bustest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
)

const (
	// wait bounds every wait for records or readiness: long enough for a
	// Kafka group to join and rebalance, never reached by a bus that works.
	wait = 30 * time.Second
	// quiet is how long a test keeps listening for records that must not
	// come. Short, so that a passing run stays fast; a duplicate arriving
	// later than this goes unnoticed.
	quiet = 300 * time.Millisecond
	// prompt bounds how long a cancelled Fetch may take to return.
	prompt = 5 * time.Second
)

// Run runs the contract suite. newBus returns a fresh bus for each subtest;
// Run closes it when the subtest ends. The subtests run in parallel.
//
// Two things the interface implies are relied on: topics have at least two
// partitions (so two members of a group can both be assigned), and Ready
// reports true only once the read positions are fixed (a record published
// after Ready is true reaches the consumer, even with chat.StartNewAtEnd).
func Run(t *testing.T, newBus func(t *testing.T) chat.Bus) {
	tests := []struct {
		name string
		fn   func(t *testing.T, bus chat.Bus)
	}{
		{"Ping", testPing},
		{"Ready", testReady},
		{"NewGroupGetsEverythingInOrder", testNewGroupGetsEverything},
		{"PublishSeveral", testPublishSeveral},
		{"StartNewAtEnd", testStartNewAtEnd},
		{"OneGroupSharesRecords", testOneGroupShares},
		{"GroupsAreIndependent", testGroupsIndependent},
		{"CommitResumes", testCommitResumes},
		{"StartAtEnd", testStartAtEnd},
		{"UncommittedRedelivered", testUncommittedRedelivered},
		{"FetchHonoursMax", testFetchMax},
		{"FetchCancelled", testFetchCancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bus := newBus(t)
			t.Cleanup(func() {
				if err := bus.Close(); err != nil {
					t.Errorf("Bus.Close: %v", err)
				}
			})
			tt.fn(t, bus)
		})
	}
}

func testPing(t *testing.T, bus chat.Bus) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := bus.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testReady(t *testing.T, bus chat.Bus) {
	topic := unique("ready")
	publish(t, bus, topic, batch("r", 1, 1)...)
	c := consume(t, bus, topic, unique("g"), chat.StartCommitted)
	waitReady(t, c)
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if c.Ready() {
		t.Error("Ready() = true after Close")
	}
}

// A new group with StartCommitted gets every record, each with the fields it
// was published with and its place in the log, and one key's records in the
// order they were published — within one Publish call and across calls.
func testNewGroupGetsEverything(t *testing.T, bus chat.Bus) {
	topic := unique("all")
	recs := batch("a", 40, 5)
	publish(t, bus, topic, recs[:20]...)
	for _, r := range recs[20:] {
		publish(t, bus, topic, r)
	}
	c := consume(t, bus, topic, unique("g"), chat.StartCommitted)
	got := fetchN(t, c, len(recs), true)
	expectRecords(t, topic, got, recs)
}

func testPublishSeveral(t *testing.T, bus chat.Bus) {
	topic := unique("several")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := bus.Publish(ctx, topic); err != nil {
		t.Fatalf("Publish of no records: %v", err)
	}
	recs := batch("s", 6, 6)
	publish(t, bus, topic, recs...)
	c := consume(t, bus, topic, unique("g"), chat.StartCommitted)
	expectRecords(t, topic, fetchN(t, c, len(recs), true), recs)
}

// A new group with StartNewAtEnd skips the backlog: it gets exactly what is
// published after it is Ready. The later records share the earlier ones'
// keys, so any earlier record delivered by mistake would come first in its
// partition and be caught.
func testStartNewAtEnd(t *testing.T, bus chat.Bus) {
	topic := unique("latest")
	publish(t, bus, topic, batch("before", 20, 4)...)
	c := consume(t, bus, topic, unique("g"), chat.StartNewAtEnd)
	waitReady(t, c)
	after := batch("after", 20, 4)
	publish(t, bus, topic, after...)
	expectRecords(t, topic, fetchN(t, c, len(after), true), after)
}

// Two members of one group share the records: each gets some, and together
// they get every record exactly once.
func testOneGroupShares(t *testing.T, bus chat.Bus) {
	topic := unique("share")
	group := unique("g")
	publish(t, bus, topic, batch("warm-up", 1, 1)...) // so the topic exists
	members := []chat.Consumer{
		consume(t, bus, topic, group, chat.StartNewAtEnd),
		consume(t, bus, topic, group, chat.StartNewAtEnd),
	}
	// Publishing only once both are assigned keeps a rebalance from
	// redelivering records legitimately.
	waitReady(t, members...)
	recs := batch("s", 100, 100)
	publish(t, bus, topic, recs...)

	type delivery struct {
		member int
		rec    chat.Record
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	deliveries := make(chan delivery)
	var wg sync.WaitGroup
	for i, c := range members {
		wg.Go(func() {
			for {
				got, err := c.Fetch(ctx, 10)
				if err == nil {
					err = c.Commit(ctx, got)
				}
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("member %d: %v", i, err)
					}
					return
				}
				for _, r := range got {
					select {
					case deliveries <- delivery{i, r}:
					case <-ctx.Done():
						return
					}
				}
			}
		})
	}

	times := map[string]int{}
	var got []chat.Record
	var perMember [2]int
	var quietOver <-chan time.Time
collect:
	for {
		select {
		case d := <-deliveries:
			times[string(d.rec.Value)]++
			got = append(got, d.rec)
			perMember[d.member]++
			if len(times) == len(recs) && quietOver == nil {
				quietOver = time.After(quiet)
			}
		case <-quietOver:
			break collect
		case <-ctx.Done():
			break collect
		}
	}
	cancel()
	stopped := make(chan struct{})
	go func() { wg.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(prompt):
		t.Fatalf("Fetch still blocked %v after its context ended", prompt)
	}

	for _, r := range recs {
		if n := times[string(r.Value)]; n != 1 {
			t.Errorf("record %s delivered %d times, want once", r.Value, n)
		}
	}
	if len(got) != len(recs) {
		t.Errorf("got %d deliveries, want %d", len(got), len(recs))
	}
	if perMember[0] == 0 || perMember[1] == 0 {
		t.Errorf("records per member = %v, want both to get some", perMember)
	}
	checkRecords(t, topic, got, recs)
}

// Distinct groups each get every record.
func testGroupsIndependent(t *testing.T, bus chat.Bus) {
	topic := unique("groups")
	recs := batch("g", 30, 5)
	publish(t, bus, topic, recs...)
	a := consume(t, bus, topic, unique("ga"), chat.StartCommitted)
	b := consume(t, bus, topic, unique("gb"), chat.StartCommitted)
	expectRecords(t, topic, fetchN(t, a, len(recs), true), recs)
	expectRecords(t, topic, fetchN(t, b, len(recs), true), recs)
}

// A group resumes after its last commit: a new member, joining after the
// last one closed, gets only the records published since. The new records
// share the old ones' keys, so a redelivered old record would come first in
// its partition and be caught.
func testCommitResumes(t *testing.T, bus chat.Bus) {
	topic := unique("resume")
	group := unique("g")
	old := batch("old", 20, 4)
	publish(t, bus, topic, old...)
	first := consume(t, bus, topic, group, chat.StartCommitted)
	expectRecords(t, topic, fetchN(t, first, len(old), true), old)
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	newer := batch("new", 20, 4)
	publish(t, bus, topic, newer...)
	second := consume(t, bus, topic, group, chat.StartCommitted)
	expectRecords(t, topic, fetchN(t, second, len(newer), true), newer)
}

// A StartAtEnd consumer of a group that committed before starts at the end
// of the log: what was published while the group had no member is skipped
// (a restarted fan-out does not replay the backlog). The later records share
// the skipped ones' keys, so a skipped record delivered would come first in
// its partition and be caught.
func testStartAtEnd(t *testing.T, bus chat.Bus) {
	topic := unique("skip")
	cfg := chat.ConsumerConfig{Topic: topic, Group: unique("g"), Start: chat.StartAtEnd}
	first := consumeWith(t, bus, cfg)
	waitReady(t, first)
	early := batch("early", 20, 4)
	publish(t, bus, topic, early...)
	expectRecords(t, topic, fetchN(t, first, len(early), true), early)
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	publish(t, bus, topic, batch("backlog", 20, 4)...)
	second := consumeWith(t, bus, cfg)
	waitReady(t, second)
	live := batch("live", 20, 4)
	publish(t, bus, topic, live...)
	expectRecords(t, topic, fetchN(t, second, len(live), true), live)
}

// Records fetched but not committed are delivered again to the group's next
// member; committed ones are not. Every key has records on both sides of the
// commit, so a committed record delivered again would come first in its
// partition and be caught.
func testUncommittedRedelivered(t *testing.T, bus chat.Bus) {
	topic := unique("redeliver")
	group := unique("g")
	recs := batch("r", 20, 4)
	publish(t, bus, topic, recs...)
	first := consume(t, bus, topic, group, chat.StartCommitted)
	got := fetchN(t, first, len(recs), false)
	expectRecords(t, topic, got, recs)

	// Commit the first half as published: per key, hence per partition,
	// those come before the second half.
	half := len(recs) / 2
	var done []chat.Record
	for _, r := range got {
		if index(t, r) < half {
			done = append(done, r)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := first.Commit(ctx, done); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	second := consume(t, bus, topic, group, chat.StartCommitted)
	expectRecords(t, topic, fetchN(t, second, len(recs)-half, true), recs[half:])
}

func testFetchMax(t *testing.T, bus chat.Bus) {
	topic := unique("max")
	recs := batch("m", 10, 2)
	publish(t, bus, topic, recs...)
	c := consume(t, bus, topic, unique("g"), chat.StartCommitted)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var got []chat.Record
	for len(got) < len(recs) {
		some, err := c.Fetch(ctx, 3)
		if err != nil {
			t.Fatalf("Fetch after %d of %d records: %v", len(got), len(recs), err)
		}
		if len(some) < 1 || len(some) > 3 {
			t.Fatalf("Fetch(max 3) returned %d records", len(some))
		}
		got = append(got, some...)
	}
	expectRecords(t, topic, got, recs)
}

// A blocked Fetch returns the context's error soon after it is cancelled or
// its deadline passes, and the consumer still works afterwards.
func testFetchCancelled(t *testing.T, bus chat.Bus) {
	topic := unique("cancel")
	publish(t, bus, topic, batch("warm-up", 1, 1)...) // so the topic exists
	c := consume(t, bus, topic, unique("g"), chat.StartNewAtEnd)
	waitReady(t, c)

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if err := fetchErr(t, c, ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Fetch with a cancelled context: err = %v, want context.Canceled", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := fetchErr(t, c, ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Fetch past its deadline: err = %v, want context.DeadlineExceeded", err)
	}

	recs := batch("later", 1, 1)
	publish(t, bus, topic, recs...)
	expectRecords(t, topic, fetchN(t, c, len(recs), true), recs)
}

// fetchErr calls Fetch with ctx, which is to end with nothing to fetch, and
// returns its error. It fails the test if Fetch returns records, or does not
// return soon after ctx is done (it is then left blocked until the consumer
// closes).
func fetchErr(t *testing.T, c chat.Consumer, ctx context.Context) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		recs, err := c.Fetch(ctx, 10)
		if len(recs) > 0 {
			err = fmt.Errorf("got %d records", len(recs))
		}
		errc <- err
	}()
	<-ctx.Done()
	select {
	case err := <-errc:
		return err
	case <-time.After(prompt):
		t.Fatalf("Fetch still blocked %v after its context ended", prompt)
		return nil
	}
}

// unique returns a topic or group name no earlier run has used.
func unique(prefix string) string {
	var b [8]byte
	rand.Read(b[:])
	return "bustest-" + prefix + "-" + hex.EncodeToString(b[:])
}

// batch makes n records over keys keys: record i has key "room-<i%keys>" and
// value "<tag>/<i>", so a test can tell where each one came from.
func batch(tag string, n, keys int) []chat.Record {
	recs := make([]chat.Record, n)
	for i := range recs {
		recs[i] = chat.Record{
			Key:   fmt.Appendf(nil, "room-%d", i%keys),
			Value: fmt.Appendf(nil, "%s/%d", tag, i),
		}
	}
	return recs
}

// index returns i of a record made by batch.
func index(t *testing.T, r chat.Record) int {
	t.Helper()
	_, i, _ := strings.Cut(string(r.Value), "/")
	n, err := strconv.Atoi(i)
	if err != nil {
		t.Fatalf("record value %q was not made by batch", r.Value)
	}
	return n
}

func publish(t *testing.T, bus chat.Bus, topic string, recs ...chat.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := bus.Publish(ctx, topic, recs...); err != nil {
		t.Fatalf("Publish %d records to %s: %v", len(recs), topic, err)
	}
}

// member closes its consumer once, whether the test or its cleanup gets
// there first: the interface does not promise that a second Close is
// harmless.
type member struct {
	chat.Consumer
	once sync.Once
	err  error
}

func (m *member) Close() error {
	m.once.Do(func() { m.err = m.Consumer.Close() })
	return m.err
}

// consume joins group on topic; the consumer is closed when the test ends.
func consume(t *testing.T, bus chat.Bus, topic, group string, start chat.Start) chat.Consumer {
	t.Helper()
	return consumeWith(t, bus, chat.ConsumerConfig{Topic: topic, Group: group, Start: start})
}

func consumeWith(t *testing.T, bus chat.Bus, cfg chat.ConsumerConfig) chat.Consumer {
	t.Helper()
	topic, group := cfg.Topic, cfg.Group
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := bus.Consume(ctx, cfg)
	if err != nil {
		t.Fatalf("Consume %s in %s: %v", topic, group, err)
	}
	m := &member{Consumer: c}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Consumer.Close: %v", err)
		}
	})
	return m
}

// waitReady waits until every one of cs reports Ready at the same time.
func waitReady(t *testing.T, cs ...chat.Consumer) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		ready := 0
		for _, c := range cs {
			if c.Ready() {
				ready++
			}
		}
		if ready == len(cs) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d consumers Ready after %v", ready, len(cs), wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fetchN fetches from c until it has at least n records, committing each
// batch if commit is set.
func fetchN(t *testing.T, c chat.Consumer, n int, commit bool) []chat.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var got []chat.Record
	for len(got) < n {
		some, err := c.Fetch(ctx, 100)
		if err != nil {
			t.Fatalf("Fetch after %d of %d records: %v", len(got), n, err)
		}
		if commit {
			if err := c.Commit(ctx, some); err != nil {
				t.Fatalf("Commit: %v", err)
			}
		}
		got = append(got, some...)
	}
	return got
}

// expectRecords checks that got holds each of want exactly once and nothing
// else, then checks them with checkRecords.
func expectRecords(t *testing.T, topic string, got, want []chat.Record) {
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
	checkRecords(t, topic, got, want)
}

// checkRecords checks what the interface promises of delivered records: they
// carry their topic, key and value and a place in the log; one key's records
// share a partition and come in the order published (want's order); one
// partition's come in offset order.
func checkRecords(t *testing.T, topic string, got, want []chat.Record) {
	t.Helper()
	type place struct {
		partition int
		offset    int64
	}
	published := map[string]int{} // value -> position in want
	keyOf := map[string]string{}  // value -> key
	for i, r := range want {
		published[string(r.Value)] = i
		keyOf[string(r.Value)] = string(r.Key)
	}
	seen := map[place]string{}
	lastOffset := map[int]int64{}
	lastOfKey := map[string]int{} // key -> position in want of its last record
	partitionOfKey := map[string]int{}
	for _, r := range got {
		v, key := string(r.Value), string(r.Key)
		if r.Topic != topic {
			t.Errorf("record %s: Topic = %q, want %q", v, r.Topic, topic)
		}
		if k, ok := keyOf[v]; ok && k != key {
			t.Errorf("record %s: Key = %q, want %q", v, key, k)
		}
		if r.Partition < 0 || r.Offset < 0 {
			t.Errorf("record %s: Partition %d, Offset %d", v, r.Partition, r.Offset)
		}
		at := place{r.Partition, r.Offset}
		if other, ok := seen[at]; ok && other != v {
			t.Errorf("records %s and %s both at partition %d offset %d", other, v, r.Partition, r.Offset)
		}
		seen[at] = v
		if last, ok := lastOffset[r.Partition]; ok && r.Offset <= last {
			t.Errorf("record %s: partition %d offset %d after offset %d", v, r.Partition, r.Offset, last)
		}
		lastOffset[r.Partition] = r.Offset
		if p, ok := partitionOfKey[key]; ok && p != r.Partition {
			t.Errorf("key %s in partitions %d and %d", key, p, r.Partition)
		}
		partitionOfKey[key] = r.Partition
		if i, ok := published[v]; ok {
			if last, ok := lastOfKey[key]; ok && i <= last {
				t.Errorf("key %s: record %s after %s", key, v, want[last].Value)
			}
			lastOfKey[key] = i
		}
	}
}
