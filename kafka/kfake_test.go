package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/kafka/bustest"
)

// newFakeBus runs the Bus against kfake, franz-go's in-process Kafka (one
// fresh cluster per Bus): fast, and needs no broker, so the contract suite
// runs on every `go test ./...`. It is a fake — group coordination, fetch
// and produce follow its own implementation, not Apache Kafka's — so
// TestBusContract against a real broker stays the reference.
//
// kfake has no tagged releases; go.mod pins it to a pseudo-version
// (v0.0.0-20260918054303-01f206a7e32c) together with franz-go v1.22.3 and
// kmsg v1.15.1. That kfake commit needs franz-go newer than the v1.21.7 its
// go.mod asks for (kversion.Versions.EachSupportedFeature); the franz-go
// pseudo-version of the same commit is not on the module proxy, v1.22.3 is
// and has it. Move the three together.
func newFakeBus(t *testing.T, cfg Config) *Bus {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(cluster.Close)
	cfg.Brokers = cluster.ListenAddrs()
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

func TestBusContractKfake(t *testing.T) {
	bustest.Run(t, func(t *testing.T) chat.Bus { return newFakeBus(t, Config{}) })
}
