package chat

import (
	"context"
	"errors"
)

// Topic and group names. The persist group is shared by every instance so each
// message is stored once; the fan-out group is one per instance so each
// instance sees every message (a shared fan-out group would give each instance
// only part of them).
const (
	DefaultTopicSend    = "send_msg"
	DefaultTopicReceive = "receive_msg"
	GroupPersist        = "parley-persist"
	GroupFanoutPrefix   = "parley-fanout-"
)

// Record is one bus record. Key is the room, so a room's records stay in one
// partition and in order.
type Record struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte
}

// Bus is a partitioned, replayable log with consumer groups: Kafka's model.
// Consumers in one group share a topic's partitions (each record reaches one of
// them); distinct groups each get every record.
type Bus interface {
	// Publish appends records to topic and returns once the bus holds them
	// durably (for Kafka: acknowledged by all in-sync replicas).
	Publish(ctx context.Context, topic string, recs ...Record) error
	// Consume joins group on topic.
	Consume(ctx context.Context, cfg ConsumerConfig) (Consumer, error)
	// Ping reports whether the bus answers.
	Ping(ctx context.Context) error
	Close() error
}

// ConsumerConfig says what to consume. The zero Start, StartCommitted, resumes
// from the group's commit and starts a new group at the oldest retained record.
type ConsumerConfig struct {
	Topic string
	Group string
	// Start says where the consumer begins reading.
	Start Start
}

// Start says where a consumer begins reading: what it gets of the records
// published before it was Ready. Whatever the value, a record published once
// the consumer is Ready reaches it, and after a rebalance the group resumes
// from its commit.
type Start int

const (
	// StartCommitted resumes from the group's committed offset; a group that
	// never committed starts at the oldest retained record. Nothing retained
	// is skipped: the persist stage stores what was published while it was
	// down, or before it first ran.
	StartCommitted Start = iota
	// StartNewAtEnd resumes from the group's committed offset too, but a
	// group that never committed starts at the end of the log: a new group
	// gets only what is published once it is Ready, not the retained backlog.
	StartNewAtEnd
	// StartAtEnd starts at the end of the log when the consumer is first
	// assigned, whatever the group committed before: the consumer gets only
	// what is published once it is Ready, even when it restarts an old
	// group. For records that lose their worth with age: the fan-out's
	// (clients close gaps from the store) are not read again after a
	// restart. Only for a group of one member, whose first assignment is
	// every partition.
	StartAtEnd
)

// Valid reports whether s is one of the Start values above.
func (s Start) Valid() bool { return s >= StartCommitted && s <= StartAtEnd }

// Consumer reads one group's share of a topic. Records of one partition come
// in offset order. A record not committed is delivered again after a
// rebalance or restart.
type Consumer interface {
	// Fetch blocks until at least one record is available and returns up to
	// max records that are available now.
	Fetch(ctx context.Context, max int) ([]Record, error)
	// Commit marks recs, and everything before them in their partitions, done.
	// Records of partitions a rebalance has taken away are not committed:
	// the error then wraps ErrNotAssigned (the others are committed), and
	// those records go again to the partition's new owner.
	Commit(ctx context.Context, recs []Record) error
	// Ready reports whether the consumer is assigned partitions and reading.
	Ready() bool
	Close() error
}

// ErrNotAssigned is wrapped by Consumer.Commit for records of partitions this
// consumer no longer owns. Retrying cannot succeed; the new owner processes
// the records again, which idempotent storage makes harmless.
var ErrNotAssigned = errors.New("partition not assigned to this consumer")
