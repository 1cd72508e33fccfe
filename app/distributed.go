package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/kafka"
	"github.com/parley-chat/parley/repository"
)

// openDistributed opens the MongoDB store shared by every instance and the
// Kafka bus, creating missing topics.
func openDistributed(ctx context.Context, cfg Config, log *slog.Logger) (chat.Store, chat.Bus, error) {
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	store, err := repository.Open(octx, cfg.MongoURI, cfg.MongoDB)
	if err != nil {
		return nil, nil, fmt.Errorf("open MongoDB store: %w", err)
	}
	bus, err := kafka.New(kafka.Config{
		Brokers:           cfg.KafkaBrokers,
		Partitions:        cfg.KafkaPartitions,
		ReplicationFactor: cfg.KafkaReplication,
		Logger:            log,
	})
	if err != nil {
		store.Close()
		return nil, nil, fmt.Errorf("kafka: %w", err)
	}
	if err := bus.EnsureTopics(octx, cfg.TopicSend, cfg.TopicReceive); err != nil {
		bus.Close()
		store.Close()
		return nil, nil, fmt.Errorf("create topics: %w", err)
	}
	return store, bus, nil
}
