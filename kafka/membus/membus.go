// Package membus is a chat.Bus held in this process's memory: Parley's
// embedded default, used when no Kafka brokers are configured.
package membus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"sync"

	"github.com/parley-chat/parley/app/chat"
)

// DefaultPartitions is the number of partitions of a topic when
// Options.Partitions is zero: several, like a small Kafka topic, so that the
// members of a group really share the work.
const DefaultPartitions = 8

// Options configures a Bus. The zero value means the defaults.
type Options struct {
	// Partitions is the number of partitions of every topic; zero or less
	// means DefaultPartitions.
	Partitions int
}

var (
	// ErrClosed is returned by a closed Bus, and by a closed consumer.
	ErrClosed = errors.New("membus: closed")
	// ErrNotAssigned is returned by Commit for records of partitions that a
	// rebalance has taken away from the consumer, as Kafka refuses commits
	// from a member of an older group generation. Those records are
	// delivered again to the partition's new owner.
	ErrNotAssigned = chat.ErrNotAssigned
)

// Bus is the in-process chat.Bus. It lets a single Parley instance run with
// nothing but its own binary, through the very same persist stage and fan-out
// as a cluster on Kafka; only this type differs.
//
// It serves one process only: two instances cannot share it, so running more
// than one instance needs Kafka. It is not durable: records live in memory,
// and a crash or restart loses what was published but not yet processed (not
// yet committed by every group) — for Parley, messages acknowledged to their
// sender but not yet stored.
//
// It keeps Kafka's semantics, so code that works on it works on Kafka:
// topics of Options.Partitions partitions, created on first use; records
// placed by a hash of their key, so that one key's records keep their order;
// consumer groups whose members share a topic's partitions; rebalances on
// every join and leave that rewind each partition to the group's committed
// offset, so what was fetched but not committed is delivered again; committed
// offsets that outlive the group's members for as long as the Bus lives.
//
// Memory stays bounded by trimming: a partition keeps only the records at or
// after the lowest committed offset of all groups that ever consumed its
// topic. The price is that a brand-new group with chat.StartCommitted starts
// at the oldest record retained, not the first ever published; and that a
// group which stops committing, or whose members all left, keeps the records
// after its last commit in memory for as long as the Bus lives (as does a
// topic that no group consumes).
//
// Records handed out by Fetch share their Key and Value with the log and with
// other groups: treat them as read-only.
type Bus struct {
	partitions int
	done       chan struct{} // closed by Close: wakes every blocked Fetch
	closeOnce  sync.Once

	mu     sync.Mutex
	topics map[string]*topic
}

var _ chat.Bus = (*Bus)(nil)

// New returns an empty Bus.
func New(opts Options) *Bus {
	n := opts.Partitions
	if n <= 0 {
		n = DefaultPartitions
	}
	return &Bus{partitions: n, done: make(chan struct{}), topics: map[string]*topic{}}
}

// Publish appends recs to topic and wakes the consumers that own their
// partitions. Only Key and Value are taken from recs; both are copied, so the
// caller may reuse its buffers. It never waits for a consumer: a slow or absent
// one only makes the log longer.
func (b *Bus) Publish(ctx context.Context, topic string, recs ...chat.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.closed() {
		return ErrClosed
	}
	if topic == "" {
		return errors.New("membus: publish to an empty topic name")
	}
	if len(recs) == 0 {
		return nil
	}
	t := b.topic(topic)
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range recs {
		p := t.partitionFor(r.Key)
		part := &t.parts[p]
		part.recs = append(part.recs, chat.Record{
			Topic:     t.name,
			Partition: p,
			Offset:    part.end(),
			Key:       bytes.Clone(r.Key),
			Value:     bytes.Clone(r.Value),
		})
		t.wakeOwners(p)
	}
	return nil
}

// Consume joins cfg.Group on cfg.Topic. The consumer is assigned its
// partitions before Consume returns.
func (b *Bus) Consume(ctx context.Context, cfg chat.ConsumerConfig) (chat.Consumer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.Topic == "" || cfg.Group == "" {
		return nil, errors.New("membus: a consumer needs a topic and a group")
	}
	if !cfg.Start.Valid() {
		return nil, fmt.Errorf("membus: unknown start %d", cfg.Start)
	}
	if b.closed() {
		return nil, ErrClosed
	}
	t := b.topic(cfg.Topic)
	c := &consumer{bus: b, topic: t, wake: make(chan struct{}, 1)}
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.groups[cfg.Group]
	if g == nil {
		g = t.newGroup(cfg.Start != chat.StartCommitted)
		t.groups[cfg.Group] = g
	}
	if cfg.Start == chat.StartAtEnd {
		// This consumer's first assignment: past whatever the group
		// committed before it existed.
		for p := range t.parts {
			g.committed[p] = max(g.committed[p], t.parts[p].end())
		}
	}
	c.group = g
	g.members = append(g.members, c)
	g.rebalance()
	return c, nil
}

// Ping reports ErrClosed once the Bus is closed: there is nothing else that
// could fail to answer.
func (b *Bus) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.closed() {
		return ErrClosed
	}
	return nil
}

// Close makes blocked and later Fetches return ErrClosed, and later Publish
// and Consume calls fail. It may be called more than once.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() { close(b.done) })
	return nil
}

func (b *Bus) closed() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// topic returns the named topic, creating it on first use as a broker with
// auto.create.topics.enable does.
func (b *Bus) topic(name string) *topic {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.topics[name]
	if t == nil {
		t = &topic{name: name, parts: make([]partition, b.partitions), groups: map[string]*group{}}
		b.topics[name] = t
	}
	return t
}

// topic is one topic's log and the groups that consume it. Each topic has its
// own lock, so the send and receive stages of the pipeline do not contend.
type topic struct {
	name string

	mu     sync.Mutex
	parts  []partition
	groups map[string]*group // never removed: their commits are kept
}

// partition is the retained part of one partition's log: recs[i] has offset
// base+i.
type partition struct {
	base int64
	recs []chat.Record
}

// end is the offset the next record appended will get.
func (p *partition) end() int64 { return p.base + int64(len(p.recs)) }

// partitionFor places a record by a hash of its key, so a key's records
// always land in the same partition. FNV-1a is also what kafka-go's Hash
// balancer uses.
func (t *topic) partitionFor(key []byte) int {
	h := fnv.New32a()
	h.Write(key)
	return int(h.Sum32() % uint32(len(t.parts)))
}

// wakeOwners tells each group's owner of partition p that it has new records.
func (t *topic) wakeOwners(p int) {
	for _, g := range t.groups {
		if c := g.owner[p]; c != nil {
			c.notify()
		}
	}
}

// newGroup starts a group where it first reads: at the end of each partition
// with atEnd, else at the oldest retained record. These offsets count
// as committed from the start, so that a rebalance before the group's first
// commit does not skip records (Kafka would look up "latest" again), and
// trimming never drops records the group has not read.
func (t *topic) newGroup(atEnd bool) *group {
	n := len(t.parts)
	g := &group{owner: make([]*consumer, n), committed: make([]int64, n), next: make([]int64, n)}
	for p := range t.parts {
		if atEnd {
			g.committed[p] = t.parts[p].end()
		} else {
			g.committed[p] = t.parts[p].base
		}
	}
	return g
}

// trim drops partition p's records that every group has committed.
func (t *topic) trim(p int) {
	floor := int64(math.MaxInt64)
	for _, g := range t.groups {
		floor = min(floor, g.committed[p])
	}
	part := &t.parts[p]
	n := int(floor - part.base)
	if n <= 0 {
		return
	}
	// Zero the dropped entries so their keys and values can be collected now;
	// the emptied front of the array goes when append next outgrows it.
	clear(part.recs[:n])
	part.recs = part.recs[n:]
	part.base = floor
}

// group is one consumer group's state on a topic; the slices are indexed by
// partition. It is guarded by its topic's lock.
type group struct {
	members   []*consumer // in join order
	owner     []*consumer // the member that reads each partition, nil if none
	committed []int64     // the next offset to read after a rebalance
	next      []int64     // the next offset the owner's Fetch returns
}

// rebalance deals the partitions round robin over the members and rewinds
// every partition to its committed offset, as Kafka's eager rebalance (and so
// kafka-go) does: what a member fetched but did not commit is delivered again
// to whoever owns the partition now. Doing the same here means the embedded
// default exercises the same redelivery paths as a cluster.
func (g *group) rebalance() {
	copy(g.next, g.committed)
	clear(g.owner)
	for _, m := range g.members {
		m.parts = m.parts[:0]
	}
	if len(g.members) > 0 {
		for p := range g.owner {
			m := g.members[p%len(g.members)]
			g.owner[p] = m
			m.parts = append(m.parts, p)
		}
	}
	for _, m := range g.members {
		m.notify()
	}
}

// consumer is one member of a group. Everything but wake is guarded by its
// topic's lock.
type consumer struct {
	bus   *Bus
	topic *topic
	group *group
	wake  chan struct{} // holds one token when there may be something new to read

	parts  []int // assigned partitions
	start  int   // index in parts where the next Fetch starts
	closed bool
}

var (
	_ chat.Consumer = (*consumer)(nil)
	_ chat.Lagger   = (*consumer)(nil)
)

// Fetch blocks until the consumer's partitions hold a record it has not yet
// fetched, then returns up to limit of them (a limit below 1 counts as 1),
// each partition's in offset order.
func (c *consumer) Fetch(ctx context.Context, limit int) ([]chat.Record, error) {
	limit = max(limit, 1)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		recs, err := c.take(limit)
		if err != nil || len(recs) > 0 {
			return recs, err
		}
		// A Publish between take and here leaves its token in wake, so no
		// wake-up is lost.
		select {
		case <-c.wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.bus.done:
			return nil, ErrClosed
		}
	}
}

// take returns up to limit records that are ready now, and moves the read
// positions past them.
func (c *consumer) take(limit int) ([]chat.Record, error) {
	t := c.topic
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.closed || c.bus.closed() {
		return nil, ErrClosed
	}
	var out []chat.Record
	n := len(c.parts)
	for i := 0; i < n && len(out) < limit; i++ {
		p := c.parts[(c.start+i)%n]
		part := &t.parts[p]
		from := int(c.group.next[p] - part.base)
		k := min(len(part.recs)-from, limit-len(out))
		if k <= 0 {
			continue
		}
		out = append(out, part.recs[from:from+k]...)
		c.group.next[p] += int64(k)
	}
	// Start the next Fetch at the next partition, so that one busy partition
	// cannot starve the others.
	if n > 0 {
		c.start = (c.start + 1) % n
	}
	return out, nil
}

// Commit records, per partition, the offset after the highest of recs as the
// group's committed offset; commits never move backwards. Records of
// partitions the consumer no longer owns are not committed, and Commit then
// returns ErrNotAssigned after committing the others.
func (c *consumer) Commit(ctx context.Context, recs []chat.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t := c.topic
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.closed || c.bus.closed() {
		return ErrClosed
	}
	for _, r := range recs {
		if r.Topic != t.name || r.Partition < 0 || r.Partition >= len(t.parts) {
			return fmt.Errorf("membus: commit on topic %q of a record of %q partition %d", t.name, r.Topic, r.Partition)
		}
	}
	g := c.group
	var err error
	for _, r := range recs {
		p := r.Partition
		if g.owner[p] != c {
			err = ErrNotAssigned
			continue
		}
		// Kafka commits the offset of the next record to read. Capped at the
		// log's end, so a made-up offset cannot point past it.
		off := min(r.Offset+1, t.parts[p].end())
		if off <= g.committed[p] {
			continue
		}
		g.committed[p] = off
		// Committed records need not be read again, even when a rebalance
		// rewound the partition after they were fetched.
		g.next[p] = max(g.next[p], off)
		t.trim(p)
	}
	return err
}

// Ready reports whether the consumer is open and owns at least one partition:
// a group with more members than partitions leaves some of them idle, as
// Kafka does.
func (c *consumer) Ready() bool {
	c.topic.mu.Lock()
	defer c.topic.mu.Unlock()
	return !c.closed && !c.bus.closed() && len(c.parts) > 0
}

// Lag implements chat.Lagger: the records of the consumer's partitions
// that its group has not committed.
func (c *consumer) Lag() int64 {
	t := c.topic
	t.mu.Lock()
	defer t.mu.Unlock()
	var lag int64
	for _, p := range c.parts {
		lag += t.parts[p].end() - c.group.committed[p]
	}
	return lag
}

// Close leaves the group, whose partitions are dealt anew to the remaining
// members. A Fetch blocked on this consumer returns ErrClosed.
func (c *consumer) Close() error {
	t := c.topic
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.parts = nil
	g := c.group
	g.members = slices.DeleteFunc(g.members, func(m *consumer) bool { return m == c })
	g.rebalance()
	c.notify()
	return nil
}

// notify leaves a wake-up token without ever blocking: one pending token is
// enough, since Fetch looks at every partition when it wakes.
func (c *consumer) notify() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}
