package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/parley-chat/parley/app/chat"
)

// openDistributed opens MongoDB and Kafka.
func openDistributed(ctx context.Context, cfg Config, log *slog.Logger) (chat.Store, chat.Bus, error) {
	return nil, nil, errors.New("Kafka mode is not available in this build yet")
}
