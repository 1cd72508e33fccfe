package bustest

import (
	"context"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
)

// RunLag checks chat.Lagger, which a bus's consumers may implement (Parley's
// parley_consumer_lag metric reads it): the lag counts records published to
// the consumer's partitions and not committed by its group, whether fetched
// or not, and returns to 0 once everything is committed.
func RunLag(t *testing.T, newBus func(t *testing.T) chat.Bus) {
	t.Parallel()
	bus := newBus(t)
	t.Cleanup(func() { bus.Close() })
	topic := unique("lag")
	publish(t, bus, topic, batch("a", 10, 3)...)
	c := consume(t, bus, topic, unique("g"), chat.StartCommitted)
	l, ok := c.(*member).Consumer.(chat.Lagger)
	if !ok {
		t.Fatalf("%T does not implement chat.Lagger", c.(*member).Consumer)
	}
	waitReady(t, c)
	waitLag(t, l, 10, "10 records published, none fetched")
	got := fetchN(t, c, 10, false)
	waitLag(t, l, 10, "10 fetched, none committed")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.Commit(ctx, got); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	waitLag(t, l, 0, "all committed")
	publish(t, bus, topic, batch("b", 5, 3)...)
	waitLag(t, l, 5, "5 more published")
	fetchN(t, c, 5, true)
	waitLag(t, l, 0, "all committed again")
}

// waitLag waits until l reports want; a Kafka consumer learns the log end
// from its fetch responses, a moment after a publish.
func waitLag(t *testing.T, l chat.Lagger, want int64, when string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		got := l.Lag()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: Lag() = %d, want %d", when, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
