package kafka

import (
	"testing"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/kafka/bustest"
)

func TestLagKfake(t *testing.T) {
	bustest.RunLag(t, func(t *testing.T) chat.Bus { return newFakeBus(t, Config{}) })
}

func TestLag(t *testing.T) {
	brokers := testBrokers(t)
	bustest.RunLag(t, func(t *testing.T) chat.Bus { return newTestBus(t, Config{Brokers: brokers}) })
}
