// Package kafka is chat.Bus on Apache Kafka, through segmentio/kafka-go: what
// lets several Parley instances share one message flow. The in-process
// kafka/membus is the embedded default; this package is used when brokers
// are configured.
//
// Publish is synchronous: it returns once every in-sync replica holds the
// records (acks=all), so an acknowledged chat message survives a broker
// failure. Records are placed by a hash of their key (the room), so a room's
// messages stay in one partition and in order.
//
// A consumer is a kafka-go ConsumerGroup driven by hand rather than a
// kafka.Reader with a GroupID, because the Reader hides what the chat.Consumer
// contract needs: when its partitions are assigned and where each starts
// reading (Ready), and which generation a fetched record belongs to (Commit).
// See consumer.go.
package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	metadataapi "github.com/segmentio/kafka-go/protocol/metadata"

	"github.com/parley-chat/parley/app/chat"
)

var (
	// ErrClosed is returned by a closed Bus, and by a closed consumer.
	ErrClosed = errors.New("kafka bus: closed")
	// ErrNotAssigned is returned by Commit for records of partitions that a
	// rebalance has taken from the consumer (Kafka refuses commits from a
	// member of an older group generation). Those records are delivered
	// again to the partition's new owner.
	ErrNotAssigned = chat.ErrNotAssigned
)

// Bus is chat.Bus on Kafka. It is safe for concurrent use. Topics are
// created on first use (and by EnsureTopics) with Config.Partitions
// partitions, so the brokers may keep auto.create.topics.enable off.
type Bus struct {
	cfg       Config
	log       *slog.Logger
	dialer    *kafkago.Dialer
	transport *kafkago.Transport
	client    *kafkago.Client
	writer    *kafkago.Writer

	done      chan struct{} // closed by Close
	closeOnce sync.Once

	mu        sync.Mutex
	known     map[string]bool // topics known to exist and to be in the transport's metadata
	consumers map[*consumer]struct{}
}

var _ chat.Bus = (*Bus)(nil)

// New returns a Bus for cfg. It does not connect: the first Publish,
// Consume, Ping or EnsureTopics does.
func New(cfg Config) (*Bus, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	dialer := &kafkago.Dialer{
		ClientID:  cfg.ClientID,
		Timeout:   cfg.DialTimeout,
		DualStack: true,
	}
	// One transport for the writer and the admin requests, so that a topic
	// the Bus creates is in the writer's metadata cache at once (kafka-go
	// refreshes the cache after a CreateTopics sent through it).
	transport := &kafkago.Transport{
		Dial:        dialer.DialFunc,
		DialTimeout: cfg.DialTimeout,
		ClientID:    cfg.ClientID,
	}
	addr := kafkago.TCP(cfg.Brokers...)
	b := &Bus{
		cfg:       cfg,
		log:       cfg.Logger,
		dialer:    dialer,
		transport: transport,
		client:    &kafkago.Client{Addr: addr, Transport: transport, Timeout: cfg.WriteTimeout},
		done:      make(chan struct{}),
		known:     map[string]bool{},
		consumers: map[*consumer]struct{}{},
	}
	b.writer = &kafkago.Writer{
		Addr:      addr,
		Transport: transport,
		// The traps of kafka-go's Writer defaults, each set on purpose:
		// round-robin placement (a room's order lost), no acks (fire and
		// forget), a 1 s wait for every batch.
		Balancer:     &kafkago.Hash{},
		RequiredAcks: kafkago.RequireAll,
		BatchTimeout: cfg.BatchTimeout,
		Async:        false,
		// Topics are created by the Bus with its partition count, never by
		// the broker's defaults.
		AllowAutoTopicCreation: false,
		WriteTimeout:           cfg.WriteTimeout,
		ReadTimeout:            cfg.WriteTimeout,
		WriteBackoffMin:        50 * time.Millisecond,
		WriteBackoffMax:        500 * time.Millisecond,
		Logger:                 debugLogger(cfg.Logger),
		ErrorLogger:            newRateLimit(10 * time.Second).logger(cfg.Logger),
	}
	return b, nil
}

// Publish appends recs to topic and returns once the brokers acknowledged
// them with acks=all, or with an error; it is bounded by ctx and by
// Config.WriteTimeout. The topic is created if it does not exist. Only Key
// and Value are taken from recs; both are copied, so the caller may reuse its
// buffers even when Publish returns early.
//
// After an error, some of recs may have been written: the caller retries the
// whole call, and the records' consumers deduplicate (Parley's store does, by
// message id).
func (b *Bus) Publish(ctx context.Context, topic string, recs ...chat.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.closed() {
		return ErrClosed
	}
	if topic == "" {
		return errors.New("publish: empty topic name")
	}
	if len(recs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.WriteTimeout)
	defer cancel()
	if err := b.ensureTopic(ctx, topic); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	msgs := make([]kafkago.Message, len(recs))
	for i, r := range recs {
		msgs[i] = kafkago.Message{Topic: topic, Key: bytes.Clone(r.Key), Value: bytes.Clone(r.Value)}
	}
	if err := b.writer.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("publish %s: %w", topic, firstWriteError(err))
	}
	return nil
}

// firstWriteError turns kafka-go's per-message WriteErrors, whose own text
// is only "kafka write errors (n/m)", into its first cause.
func firstWriteError(err error) error {
	var werr kafkago.WriteErrors
	if errors.As(err, &werr) {
		for _, e := range werr {
			if e != nil {
				return fmt.Errorf("%d of %d records failed: %w", werr.Count(), len(werr), e)
			}
		}
	}
	return err
}

// EnsureTopics creates those of topics that do not exist, with
// Config.Partitions partitions and Config.ReplicationFactor replicas, and
// waits until the brokers serve them. Topics that exist are left as they
// are, whatever their partition count. Publish and Consume call it for each
// topic they have not seen; calling it at start makes a broker that cannot
// be reached, or refuses to create topics, fail the start.
func (b *Bus) EnsureTopics(ctx context.Context, topics ...string) error {
	if b.closed() {
		return ErrClosed
	}
	for _, t := range topics {
		if err := b.ensureTopic(ctx, t); err != nil {
			return fmt.Errorf("ensure topic %s: %w", t, err)
		}
	}
	return nil
}

func (b *Bus) ensureTopic(ctx context.Context, topic string) error {
	b.mu.Lock()
	known := b.known[topic]
	b.mu.Unlock()
	if known {
		return nil
	}

	// Answered from the transport's metadata cache (no round trip once it
	// is loaded): a topic the cache already has needs no CreateTopics, which
	// a cluster with ACLs may refuse even for a topic that exists.
	md, err := b.client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	for _, t := range md.Topics {
		if t.Name == topic && t.Error == nil && len(t.Partitions) > 0 {
			b.markKnown(topic)
			return nil
		}
	}

	res, err := b.client.CreateTopics(ctx, &kafkago.CreateTopicsRequest{
		Topics: []kafkago.TopicConfig{{
			Topic:             topic,
			NumPartitions:     b.cfg.Partitions,
			ReplicationFactor: b.cfg.ReplicationFactor,
		}},
	})
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	switch err := res.Errors[topic]; {
	case err == nil:
		// Created. kafka-go has already waited until the transport's
		// metadata shows it, but a partition's leader may not serve it yet
		// for some milliseconds (NOT_LEADER_OR_FOLLOWER), which would cost
		// the first Publish a retry and a logged warning.
		if err := b.waitServed(ctx, topic, b.cfg.Partitions); err != nil {
			return err
		}
		b.log.Info("kafka: created topic", "topic", topic,
			"partitions", b.cfg.Partitions, "replication_factor", b.cfg.ReplicationFactor)
	case errors.Is(err, kafkago.TopicAlreadyExists):
		// Another instance (or an operator) made it. The transport's cached
		// metadata may predate it, and the writer trusts that cache until
		// its next refresh (up to 6 s later). A metadata request that allows
		// auto-creation is the one kind the transport sends to the broker
		// and refreshes its cache with, instead of answering from the cache;
		// the topic exists, so nothing is created.
		r, err := b.transport.RoundTrip(ctx, b.client.Addr, &metadataapi.Request{
			TopicNames:             []string{topic},
			AllowAutoTopicCreation: true,
		})
		if err != nil {
			return fmt.Errorf("metadata: %w", err)
		}
		// It may have been created a moment ago: wait for its leaders too.
		n := 0
		for _, t := range r.(*metadataapi.Response).Topics {
			if t.Name == topic {
				n = len(t.Partitions)
			}
		}
		if n == 0 {
			return fmt.Errorf("metadata: topic %s exists but has no partitions yet", topic)
		}
		if err := b.waitServed(ctx, topic, n); err != nil {
			return err
		}
	default:
		return fmt.Errorf("create: %w", err)
	}
	if err := ctx.Err(); err != nil {
		// kafka-go's metadata refresh gives up silently on cancellation.
		return err
	}
	b.markKnown(topic)
	return nil
}

// waitServed waits until the leaders of all n partitions of topic answer.
func (b *Bus) waitServed(ctx context.Context, topic string, n int) error {
	reqs := make([]kafkago.OffsetRequest, n)
	for p := range reqs {
		reqs[p] = kafkago.LastOffsetOf(p)
	}
	for attempt := 1; ; attempt++ {
		res, err := b.client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{
			Topics: map[string][]kafkago.OffsetRequest{topic: reqs},
		})
		if err == nil {
			served := 0
			for _, po := range res.Topics[topic] {
				if po.Error == nil {
					served++
				} else {
					err = po.Error
				}
			}
			if served == n {
				return nil
			}
		}
		if !sleep(ctx, backoff(attempt, 10*time.Millisecond, 500*time.Millisecond)) {
			return fmt.Errorf("wait for partition leaders: %w (last error: %v)", ctx.Err(), err)
		}
	}
}

func (b *Bus) markKnown(topic string) {
	b.mu.Lock()
	b.known[topic] = true
	b.mu.Unlock()
}

// Consume joins cfg.Group on cfg.Topic, creating the topic if it does not
// exist. It returns at once; the group join goes on in the background and
// the consumer's Ready turns true once it is assigned partitions and knows
// where to read each of them.
func (b *Bus) Consume(ctx context.Context, cfg chat.ConsumerConfig) (chat.Consumer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.Topic == "" || cfg.Group == "" {
		return nil, errors.New("consume: a consumer needs a topic and a group")
	}
	if !cfg.Start.Valid() {
		return nil, fmt.Errorf("consume: unknown start %d", cfg.Start)
	}
	if b.closed() {
		return nil, ErrClosed
	}
	// A group assigns only partitions that exist when it joins; a topic
	// created later would stay unread until the next rebalance.
	if err := b.ensureTopic(ctx, cfg.Topic); err != nil {
		return nil, fmt.Errorf("consume %s: %w", cfg.Topic, err)
	}
	c, err := newConsumer(b, cfg)
	if err != nil {
		return nil, fmt.Errorf("consume %s in group %s: %w", cfg.Topic, cfg.Group, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed() {
		go c.Close()
		return nil, ErrClosed
	}
	b.consumers[c] = struct{}{}
	return c, nil
}

func (b *Bus) forget(c *consumer) {
	b.mu.Lock()
	delete(b.consumers, c)
	b.mu.Unlock()
}

// Ping asks the brokers for the cluster's metadata over new connections: the
// cached metadata the producer uses would answer even with every broker
// down. It asks every bootstrap broker at once and succeeds with the first
// that answers, so one broker that does not answer (a dead host drops
// packets: each attempt waits out its timeout) neither fails the ping nor
// delays it while another one serves. Bounded by ctx and by
// Config.DialTimeout.
func (b *Bus) Ping(ctx context.Context) error {
	if b.closed() {
		return ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // the other attempts stop once one answered
	errs := make(chan error, len(b.cfg.Brokers))
	for _, addr := range b.cfg.Brokers {
		go func() { errs <- b.ping(ctx, addr) }()
	}
	var all []error
	for range b.cfg.Brokers {
		err := <-errs
		if err == nil {
			return nil
		}
		all = append(all, err)
	}
	return fmt.Errorf("ping: %w", errors.Join(all...))
}

func (b *Bus) ping(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.DialTimeout)
	defer cancel()
	conn, err := b.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return err
		}
	}
	brokers, err := conn.Brokers()
	if err != nil {
		return fmt.Errorf("%s: metadata: %w", addr, err)
	}
	if len(brokers) == 0 {
		return fmt.Errorf("%s: metadata names no broker", addr)
	}
	return nil
}

// Close closes every consumer of the Bus that is still open (their blocked
// Fetches return ErrClosed) and the producer. It may be called more than
// once.
func (b *Bus) Close() error {
	var err error
	b.closeOnce.Do(func() {
		b.mu.Lock()
		close(b.done)
		cs := make([]*consumer, 0, len(b.consumers))
		for c := range b.consumers {
			cs = append(cs, c)
		}
		b.mu.Unlock()

		var wg sync.WaitGroup
		for _, c := range cs {
			wg.Go(func() { _ = c.Close() })
		}
		wg.Wait()
		if werr := b.writer.Close(); werr != nil {
			err = fmt.Errorf("close producer: %w", werr)
		}
		b.transport.CloseIdleConnections()
	})
	return err
}

func (b *Bus) closed() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// debugLogger adapts kafka-go's Printf-style logger to slog.
func debugLogger(l *slog.Logger) kafkago.Logger {
	return kafkago.LoggerFunc(func(format string, args ...any) {
		if l.Enabled(context.Background(), slog.LevelDebug) {
			l.Debug("kafka-go: " + fmt.Sprintf(format, args...))
		}
	})
}
