package chat

import "time"

// Metrics is what the domain reports about its own work. The domain knows no
// metrics system: app/ wires a Prometheus implementation. A nil Metrics
// reports nothing, so tests can leave it out.
type Metrics interface {
	// Received counts a send request from a client.
	Received()
	// Acked counts a message the bus accepted, which took d to publish.
	Acked(d time.Duration)
	// Persisted counts one persist batch of n messages (idempotent repeats
	// included), stored, republished and committed in d.
	Persisted(n int, d time.Duration)
	// Delivered counts n deliveries queued to local connections.
	Delivered(n int)
	// EndToEnd observes the time from a message's acceptance (its ts) to its
	// reaching this instance's hub.
	EndToEnd(d time.Duration)
	// WatchLag reports lag() as the consumer lag of group on topic, asked
	// when the metrics are read, until unwatch is called.
	WatchLag(group, topic string, lag func() int64) (unwatch func())
}

// Lagger is implemented by consumers that know how far they are behind:
// Lag is the number of records in the partitions assigned to this consumer
// that the group has not committed (log end offset minus committed offset,
// summed). Both chat.Bus implementations' consumers have it; it is not part
// of Consumer, so that a bus without it still works, with no lag metric.
type Lagger interface {
	Lag() int64
}

// watchLag reports c's lag through m until the returned function is called.
// A consumer that is not a Lagger is not reported.
func watchLag(m Metrics, group, topic string, c Consumer) (unwatch func()) {
	l, ok := c.(Lagger)
	if !ok {
		return func() {}
	}
	return m.WatchLag(group, topic, l.Lag)
}

// orNop is m, or metrics that report nothing when m is nil.
func orNop(m Metrics) Metrics {
	if m == nil {
		return nopMetrics{}
	}
	return m
}

type nopMetrics struct{}

func (nopMetrics) Received()                                              {}
func (nopMetrics) Acked(time.Duration)                                    {}
func (nopMetrics) Persisted(int, time.Duration)                           {}
func (nopMetrics) Delivered(int)                                          {}
func (nopMetrics) EndToEnd(time.Duration)                                 {}
func (nopMetrics) WatchLag(string, string, func() int64) (unwatch func()) { return func() {} }
