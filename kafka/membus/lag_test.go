package membus

import (
	"testing"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/kafka/bustest"
)

func TestLag(t *testing.T) {
	bustest.RunLag(t, func(t *testing.T) chat.Bus { return New(Options{}) })
}
