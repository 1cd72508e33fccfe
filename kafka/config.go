package kafka

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Defaults of Config, used for its zero fields.
//
// The consumer timings are far below kafka-go's own defaults (MaxWait 10 s,
// heartbeat 3 s, session and rebalance 30 s, join backoff 5 s), with which
// every rebalance and every Close takes about ten seconds. Here a new group
// is ready in well under a second on an idle broker, a rebalance takes about
// a heartbeat, and a Close the time of a LeaveGroup request.
const (
	DefaultClientID          = "parley"
	DefaultPartitions        = 8
	DefaultReplicationFactor = 1
	DefaultBatchTimeout      = 1 * time.Millisecond
	DefaultWriteTimeout      = 10 * time.Second
	DefaultDialTimeout       = 5 * time.Second
	DefaultMaxWait           = 500 * time.Millisecond
	DefaultHeartbeatInterval = 1 * time.Second
	DefaultSessionTimeout    = 10 * time.Second
	DefaultRebalanceTimeout  = 5 * time.Second
	DefaultJoinGroupBackoff  = 500 * time.Millisecond
)

// Config configures a Bus. Every field but Brokers may be left zero, which
// means the documented default.
type Config struct {
	// Brokers are the bootstrap brokers, "host:port" each. Required.
	Brokers []string
	// ClientID names this program to the brokers (their logs, quotas).
	// Default "parley".
	ClientID string

	// Partitions is the partition count of topics the Bus creates (existing
	// topics are left as they are). A room's records stay in one partition,
	// so this bounds how many persist-stage instances share the work.
	// Default 8.
	Partitions int
	// ReplicationFactor of topics the Bus creates. Default 1, right for a
	// single broker; use 3 on a real cluster.
	ReplicationFactor int

	// BatchTimeout is how long the producer waits for more records to join a
	// partition's batch before sending it. Every lone Publish waits this long
	// before it goes out, so it is kept tiny; kafka-go's default of 1 s would
	// add a second to every chat message. Measured on one local broker: a
	// lone Publish takes ~1.4 ms at 1 ms, ~2.5 ms at 2 ms, ~5.7 ms at 5 ms,
	// and 64 concurrent publishers got no more throughput from longer
	// timeouts (less, in fact). Default 1 ms.
	BatchTimeout time.Duration
	// WriteTimeout bounds a whole Publish (metadata, retries, the broker's
	// acknowledgement) when the caller's context has no earlier deadline.
	// Default 10 s.
	WriteTimeout time.Duration
	// DialTimeout bounds each connection attempt. Default 5 s.
	DialTimeout time.Duration

	// MaxWait is how long a fetch waits on the broker for new records
	// (a record that arrives meanwhile is answered at once). An idle
	// consumer sends one fetch per partition per MaxWait. Default 500 ms.
	MaxWait time.Duration
	// HeartbeatInterval is how often a consumer tells its group coordinator
	// it is alive; it also learns of rebalances this way. Default 1 s.
	HeartbeatInterval time.Duration
	// SessionTimeout is how long the coordinator waits without heartbeats
	// before it gives a consumer's partitions to the others. The broker
	// accepts 6 s to 30 s by default. Default 10 s.
	SessionTimeout time.Duration
	// RebalanceTimeout is how long the coordinator waits for members to
	// rejoin during a rebalance. It must exceed MaxWait plus
	// HeartbeatInterval (the time a member needs to notice the rebalance
	// and stop its fetches), or the group can keep rebalancing forever.
	// Default 5 s.
	RebalanceTimeout time.Duration
	// JoinGroupBackoff is the pause before retrying a failed group join.
	// Default 500 ms.
	JoinGroupBackoff time.Duration

	// Logger receives kafka-go's errors (at Warn) and its chatter (at
	// Debug). Default slog.Default().
	Logger *slog.Logger
}

// Validate reports whether c can make a Bus: Brokers must be set, and no
// field may be negative or contradict another.
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka: Config.Brokers is empty")
	}
	for _, b := range c.Brokers {
		if strings.TrimSpace(b) == "" {
			return errors.New("kafka: Config.Brokers holds an empty address")
		}
	}
	if c.Partitions < 0 {
		return fmt.Errorf("kafka: Config.Partitions is negative (%d)", c.Partitions)
	}
	if c.ReplicationFactor < 0 {
		return fmt.Errorf("kafka: Config.ReplicationFactor is negative (%d)", c.ReplicationFactor)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"BatchTimeout", c.BatchTimeout},
		{"WriteTimeout", c.WriteTimeout},
		{"DialTimeout", c.DialTimeout},
		{"MaxWait", c.MaxWait},
		{"HeartbeatInterval", c.HeartbeatInterval},
		{"SessionTimeout", c.SessionTimeout},
		{"RebalanceTimeout", c.RebalanceTimeout},
		{"JoinGroupBackoff", c.JoinGroupBackoff},
	} {
		if d.v < 0 {
			return fmt.Errorf("kafka: Config.%s is negative (%v)", d.name, d.v)
		}
	}
	d := c.withDefaults()
	if d.SessionTimeout < 3*d.HeartbeatInterval {
		return fmt.Errorf("kafka: Config.SessionTimeout (%v) must be at least 3 heartbeats (%v each)",
			d.SessionTimeout, d.HeartbeatInterval)
	}
	if d.RebalanceTimeout <= d.MaxWait+d.HeartbeatInterval {
		return fmt.Errorf("kafka: Config.RebalanceTimeout (%v) must exceed MaxWait (%v) plus HeartbeatInterval (%v)",
			d.RebalanceTimeout, d.MaxWait, d.HeartbeatInterval)
	}
	return nil
}

// withDefaults returns c with its zero fields set to the defaults.
func (c Config) withDefaults() Config {
	c.Brokers = append([]string(nil), c.Brokers...)
	for i, b := range c.Brokers {
		c.Brokers[i] = strings.TrimSpace(b)
	}
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	setDefault(&c.Partitions, DefaultPartitions)
	setDefault(&c.ReplicationFactor, DefaultReplicationFactor)
	setDefault(&c.BatchTimeout, DefaultBatchTimeout)
	setDefault(&c.WriteTimeout, DefaultWriteTimeout)
	setDefault(&c.DialTimeout, DefaultDialTimeout)
	setDefault(&c.MaxWait, DefaultMaxWait)
	setDefault(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	setDefault(&c.SessionTimeout, DefaultSessionTimeout)
	setDefault(&c.RebalanceTimeout, DefaultRebalanceTimeout)
	setDefault(&c.JoinGroupBackoff, DefaultJoinGroupBackoff)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}
