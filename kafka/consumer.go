package kafka

// This file is the consumer-group member: it follows the group's generations,
// fixes where a new group starts, and hands out and commits the records the
// partition readers (partition.go) fetch. Its retry helpers are in retry.go.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/app/chat"
)

// recsBuffer is how many fetched records wait for Fetch, over all of a
// consumer's partitions (each partition's goroutine holds at most the rest
// of one fetch response besides).
const recsBuffer = 256

// consumer is one member of a consumer group, built on kafka-go's
// ConsumerGroup and driven generation by generation:
//
//   - each generation (one group membership between two rebalances) gets the
//     member's partitions with the group's committed offsets;
//   - a partition the group never committed gets a concrete start offset
//     (the log's end with chat.StartNewAtEnd or chat.StartAtEnd, else its
//     start), looked up and
//     committed before the consumer reports Ready. So Ready means "a record
//     published from now on will be delivered", and a rebalance before the
//     group's first real commit does not look up "latest" again and skip
//     what was published in between (as Kafka's own clients would);
//   - one goroutine per assigned partition long-polls it from that offset
//     (readPartition, in partition.go) and feeds a shared channel that
//     Fetch drains;
//   - records of an ended generation are dropped by Fetch, since the next
//     generation delivers them again from the committed offset (perhaps to
//     another member); commits go to the current generation and only for
//     partitions it owns.
//
// kafka.Reader with a GroupID does the same internally but exposes neither
// its assignment nor its generations.
type consumer struct {
	bus   *Bus
	cfg   chat.ConsumerConfig
	log   *slog.Logger
	warn  *rateLimit // shared by the partitions: an outage logs a line per period, not one per partition
	group *kafkago.ConsumerGroup
	recs  chan delivery

	ctx       context.Context // cancelled by Close
	cancel    context.CancelFunc
	done      chan struct{} // closed by Close
	closeOnce sync.Once
	stopped   chan struct{} // closed when run returns

	mu  sync.Mutex
	gen *generation // current generation; nil between generations
	// assigned is set after the first generation (used by run only).
	assigned bool
	lag      lagState // see lag.go
}

var _ chat.Consumer = (*consumer)(nil)

// delivery is a fetched record and the generation that fetched it.
type delivery struct {
	gen *generation
	rec chat.Record
}

// generation is the consumer's state in one group generation.
type generation struct {
	g          *kafkago.Generation
	partitions []int           // assigned partitions of the topic, ascending
	ended      <-chan struct{} // closed when the generation ends; set first thing

	commitMu sync.Mutex // one commit at a time on the generation's coordinator connection

	// Guarded by consumer.mu.
	ready bool
	// committed is, per assigned partition, the group's committed offset:
	// the next offset a new generation would read.
	committed map[int]int64
}

func (g *generation) over() bool {
	if g.ended == nil {
		return false
	}
	select {
	case <-g.ended:
		return true
	default:
		return false
	}
}

func newConsumer(b *Bus, cfg chat.ConsumerConfig) (*consumer, error) {
	start := kafkago.FirstOffset
	if cfg.Start != chat.StartCommitted {
		start = kafkago.LastOffset
	}
	log := b.log.With("topic", cfg.Topic, "group", cfg.Group)
	group, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID:                cfg.Group,
		Brokers:           b.cfg.Brokers,
		Dialer:            b.dialer,
		Topics:            []string{cfg.Topic},
		HeartbeatInterval: b.cfg.HeartbeatInterval,
		SessionTimeout:    b.cfg.SessionTimeout,
		RebalanceTimeout:  b.cfg.RebalanceTimeout,
		JoinGroupBackoff:  b.cfg.JoinGroupBackoff,
		StartOffset:       start,
		Timeout:           b.cfg.DialTimeout,
		Logger:            debugLogger(log),
		// Join failures come back from Next too, where run logs them with
		// a rate limit; kafka-go would log each retry.
		ErrorLogger: debugLogger(log),
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &consumer{
		bus:     b,
		cfg:     cfg,
		log:     log,
		warn:    newRateLimit(10 * time.Second),
		group:   group,
		recs:    make(chan delivery, recsBuffer),
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go c.run()
	return c, nil
}

// run takes each generation kafka-go's ConsumerGroup forms and starts
// reading it. The ConsumerGroup joins, syncs, heartbeats, and ends a
// generation when a heartbeat reports a rebalance; it waits for every
// function started on a generation to return before it joins the next.
func (c *consumer) run() {
	defer close(c.stopped)
	for {
		g, err := c.group.Next(c.ctx)
		if err != nil {
			if c.ctx.Err() != nil || errors.Is(err, kafkago.ErrGroupClosed) {
				return
			}
			if errors.Is(err, kafkago.RebalanceInProgress) {
				continue // a join raced a rebalance; kafka-go rejoins at once
			}
			c.warn.log(c.log, "kafka: joining consumer group failed; retrying", "err", err)
			continue
		}
		gen := &generation{g: g, committed: map[int]int64{}}
		for _, a := range g.Assignments[c.cfg.Topic] {
			gen.partitions = append(gen.partitions, a.ID)
			gen.committed[a.ID] = a.Offset
			if c.cfg.Start == chat.StartAtEnd && !c.assigned {
				// First assignment: start at the log's end, past whatever
				// the group committed before this consumer existed.
				gen.committed[a.ID] = kafkago.LastOffset
			}
		}
		c.assigned = c.assigned || len(gen.partitions) > 0
		slices.Sort(gen.partitions)
		c.log.Debug("kafka: joined consumer group", "generation", g.ID, "member", g.MemberID, "partitions", gen.partitions)
		c.mu.Lock()
		c.gen = gen
		c.mu.Unlock()
		// Functions started on a generation run until it ends; the first
		// one to return ends it, so each returns only once ctx is done.
		g.Start(func(ctx context.Context) { c.runGeneration(ctx, gen) })
	}
}

func (c *consumer) runGeneration(ctx context.Context, gen *generation) {
	c.mu.Lock()
	gen.ended = ctx.Done()
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		gen.ready = false
		if c.gen == gen {
			c.gen = nil
		}
		c.mu.Unlock()
	}()
	if !c.fixStartOffsets(ctx, gen) {
		return // the generation ended first
	}
	for _, p := range gen.partitions {
		c.mu.Lock()
		offset := gen.committed[p]
		c.mu.Unlock()
		gen.g.Start(func(ctx context.Context) { c.readPartition(ctx, gen, p, offset) })
	}
	c.mu.Lock()
	gen.ready = true
	c.mu.Unlock()
	<-ctx.Done()
}

// fixStartOffsets replaces the relative offsets (FirstOffset, LastOffset)
// kafka-go gives partitions the group never committed by concrete ones, and
// commits them, retrying until it succeeds or the generation ends. It
// reports whether it succeeded.
func (c *consumer) fixStartOffsets(ctx context.Context, gen *generation) bool {
	var reqs []kafkago.OffsetRequest
	c.mu.Lock()
	for _, p := range gen.partitions {
		switch gen.committed[p] {
		case kafkago.FirstOffset:
			reqs = append(reqs, kafkago.FirstOffsetOf(p))
		case kafkago.LastOffset:
			reqs = append(reqs, kafkago.LastOffsetOf(p))
		}
	}
	c.mu.Unlock()
	if len(reqs) == 0 {
		return true
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !sleep(ctx, backoff(attempt, 100*time.Millisecond, 2*time.Second)) {
			return false
		}
		offsets, err := c.listOffsets(ctx, reqs)
		if err == nil {
			err = c.commitOffsets(gen, offsets)
		}
		if err == nil {
			c.log.Debug("kafka: group starts at", "generation", gen.g.ID, "offsets", offsets)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		c.warn.log(c.log, "kafka: fixing the group's start offsets failed; retrying", "err", err)
	}
}

// Fetch blocks until a record is available, then returns it with the others
// already fetched, up to max in all (a max below 1 counts as 1). One
// partition's records come in offset order.
func (c *consumer) Fetch(ctx context.Context, limit int) ([]chat.Record, error) {
	limit = max(limit, 1)
	var out []chat.Record
	for len(out) == 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if c.closed() {
			return nil, ErrClosed
		}
		select {
		case d := <-c.recs:
			if c.current(d) {
				out = append(out, d.rec)
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.done:
			return nil, ErrClosed
		}
	}
	for len(out) < limit {
		select {
		case d := <-c.recs:
			if c.current(d) {
				out = append(out, d.rec)
			}
		default:
			return out, nil
		}
	}
	return out, nil
}

// current reports whether d should be delivered: it comes from the current
// generation and was not committed since (a commit made after a rebalance
// for a record fetched before it moves the group past records the new
// generation's reader fetches again).
func (c *consumer) current(d delivery) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen == d.gen && !d.gen.over() && d.rec.Offset >= d.gen.committed[d.rec.Partition]
}

// Commit commits, per partition, the offset after the highest of recs, in
// the current generation; commits never move backwards. Records of
// partitions the consumer does not own now are not committed, and Commit
// then returns an error wrapping ErrNotAssigned after committing the others.
// A commit the coordinator refuses because a rebalance began also wraps
// ErrNotAssigned.
func (c *consumer) Commit(ctx context.Context, recs []chat.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.closed() {
		return ErrClosed
	}
	next := map[int]int64{}
	for _, r := range recs {
		if r.Topic != c.cfg.Topic || r.Partition < 0 || r.Offset < 0 {
			return fmt.Errorf("commit %s: record of %q partition %d offset %d is not this consumer's",
				c.cfg.Topic, r.Topic, r.Partition, r.Offset)
		}
		next[r.Partition] = max(next[r.Partition], r.Offset+1)
	}

	c.mu.Lock()
	gen := c.gen
	offsets := map[int]int64{}
	var lost []int
	for p, off := range next {
		if gen == nil || gen.over() || !slices.Contains(gen.partitions, p) {
			lost = append(lost, p)
			continue
		}
		if off > gen.committed[p] {
			offsets[p] = off
		}
	}
	c.mu.Unlock()

	var err error
	if len(offsets) > 0 {
		err = c.commit(ctx, gen, offsets)
	}
	if len(lost) > 0 {
		slices.Sort(lost)
		err = errors.Join(err, fmt.Errorf("commit %s: partitions %v: %w", c.cfg.Topic, lost, ErrNotAssigned))
	}
	return err
}

// commit commits offsets in gen, waiting at most until ctx is done (the
// commit itself is bounded by Config.DialTimeout).
func (c *consumer) commit(ctx context.Context, gen *generation, offsets map[int]int64) error {
	res := make(chan error, 1)
	go func() { res <- c.commitOffsets(gen, offsets) }()
	select {
	case err := <-res:
		if err == nil {
			return nil
		}
		if gen.over() || errors.Is(err, kafkago.RebalanceInProgress) ||
			errors.Is(err, kafkago.IllegalGeneration) || errors.Is(err, kafkago.UnknownMemberId) {
			return fmt.Errorf("commit %s: %w: %w", c.cfg.Topic, ErrNotAssigned, err)
		}
		return fmt.Errorf("commit %s: %w", c.cfg.Topic, err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commitOffsets commits offsets in gen and records them as committed.
func (c *consumer) commitOffsets(gen *generation, offsets map[int]int64) error {
	gen.commitMu.Lock()
	defer gen.commitMu.Unlock()
	if err := gen.g.CommitOffsets(map[string]map[int]int64{c.cfg.Topic: offsets}); err != nil {
		return err
	}
	c.mu.Lock()
	for p, off := range offsets {
		gen.committed[p] = max(gen.committed[p], off)
	}
	c.mu.Unlock()
	return nil
}

// Ready reports whether the consumer is open, owns at least one partition in
// the current generation and has fixed where it reads each: from then on,
// every record published to its partitions reaches it. A member of a group
// with more members than partitions gets none and is never ready, as with
// kafka/membus.
func (c *consumer) Ready() bool {
	if c.closed() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	gen := c.gen
	return gen != nil && gen.ready && len(gen.partitions) > 0 && !gen.over()
}

// Close leaves the group, whose partitions go to the remaining members at
// once rather than after the session timeout. It waits for the fetches in
// flight (up to Config.MaxWait) and the LeaveGroup request. A blocked Fetch
// returns ErrClosed. It may be called more than once.
func (c *consumer) Close() error {
	c.closeOnce.Do(func() {
		close(c.done)
		c.cancel()
		_ = c.group.Close() // ends the generation, waits for its functions, leaves the group
		<-c.stopped
		c.bus.forget(c)
	})
	return nil
}

func (c *consumer) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}
