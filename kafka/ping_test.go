package kafka

import (
	"context"
	"testing"
	"time"
)

// One bootstrap broker that does not answer must not fail the ping (and
// with it /readyz, and sends while the bus is thought down) while another
// serves.
func TestPingAnswersWhileOneBrokerHangs(t *testing.T) {
	brokers := append([]string{silentBroker(t)}, testBrokers(t)...)
	bus := newTestBus(t, Config{Brokers: brokers})
	defer bus.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	if err := bus.Ping(ctx); err != nil {
		t.Fatalf("ping with the first broker hanging: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("ping took %v: it waited for the hanging broker", d)
	}
}

func TestPingFailsWithinItsContextWhenNoBrokerAnswers(t *testing.T) {
	bus := newTestBus(t, Config{Brokers: []string{silentBroker(t), silentBroker(t)}})
	defer bus.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := bus.Ping(ctx); err == nil {
		t.Fatal("ping succeeded with no broker answering")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("ping took %v despite a 300 ms context", d)
	}
}
