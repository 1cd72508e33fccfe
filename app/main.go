// Command parley is the chat server. With no configuration it runs on one
// machine on the embedded default (an in-process bus and an on-disk store);
// with PARLEY_KAFKA_BROKERS and PARLEY_MONGO_URI it runs the distributed
// pipeline. See README.md.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/kafka/membus"
	"github.com/parley-chat/parley/repository/bolt"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg, err := LoadConfig(os.Getenv, os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "parley:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log, nil); err != nil {
		log.Error("parley stopped", "err", err)
		os.Exit(1)
	}
}

// run serves until ctx ends, then shuts down in reverse order of start. When
// ready is not nil it receives the listening address once the server accepts
// connections.
func run(ctx context.Context, cfg Config, log *slog.Logger, ready chan<- string) error {
	store, bus, err := openBackends(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer store.Close()
	defer bus.Close()
	secret, err := loadSecret(cfg)
	if err != nil {
		return err
	}
	_, stopPprof, err := servePprof(cfg.PprofAddr, log)
	if err != nil {
		return fmt.Errorf("pprof listen %s: %w", cfg.PprofAddr, err)
	}
	defer stopPprof()

	metrics := chat.NewMetrics()
	hub := chat.NewHub(store, log, metrics)
	drain := make(chan struct{})
	persister := &chat.Persister{Bus: bus, Store: store, TopicSend: cfg.TopicSend, TopicReceive: cfg.TopicReceive,
		Log: log, Metrics: metrics, Drain: drain}
	fanout := &chat.Fanout{Bus: bus, Topic: cfg.TopicReceive, Group: cfg.FanoutGroup(), Hub: hub, Log: log}

	pipeCtx, stopPipe := context.WithCancel(context.Background())
	defer stopPipe()
	var pipes sync.WaitGroup
	pipes.Go(func() { _ = persister.Run(pipeCtx) })
	fanCtx, stopFanout := context.WithCancel(context.Background())
	defer stopFanout()
	var fan sync.WaitGroup
	fan.Go(func() { _ = fanout.Run(fanCtx) })

	srv := &handlers.Server{
		Store: store, Bus: bus, Hub: hub, Metrics: metrics, Log: log, Guest: cfg.Guest,
		Sender: &chat.Sender{Bus: bus, Topic: cfg.TopicSend, Log: log, Metrics: metrics},
		Auth:   &handlers.Auth{Secret: secret},
		Ready: func() error {
			if !fanout.Ready() {
				return errors.New("fan-out consumer not yet assigned")
			}
			return nil
		},
		SendRate: cfg.SendRate, SendBurst: cfg.SendBurst, QueueBytes: cfg.QueueBytes,
	}
	app := fiber.New(fiber.Config{
		AppName:               "parley",
		BodyLimit:             chat.MaxFrameBytes,
		ErrorHandler:          handlers.ErrorHandler(log),
		DisableStartupMessage: true,
	})
	srv.Register(app)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	log.Info("parley listening", "addr", ln.Addr().String(), "instance", cfg.InstanceID,
		"bus", backendName(cfg.KafkaBrokers != nil, "kafka", "embedded"), "store", backendName(cfg.MongoURI != "", "mongodb", "embedded"))
	served := make(chan error, 1)
	go func() { served <- app.Listener(ln) }()
	if ready != nil {
		ready <- ln.Addr().String()
	}

	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	}

	// Shutdown, under one deadline: readiness off and clients told to go
	// elsewhere (WebSocket 1012, SSE streams end); HTTP stops; the persist
	// stage empties what was accepted into the store; the fan-out stops; then
	// (deferred) bus and store close.
	log.Info("shutting down", "deadline", cfg.ShutdownTimeout)
	deadline, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	srv.Close()
	if err := app.ShutdownWithContext(deadline); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	close(drain)
	if !waitCtx(deadline, &pipes) {
		log.Warn("persist stage did not drain before the deadline")
	}
	stopPipe()
	stopFanout()
	pipes.Wait()
	fan.Wait()
	log.Info("stopped")
	return nil
}

func openBackends(ctx context.Context, cfg Config, log *slog.Logger) (chat.Store, chat.Bus, error) {
	if len(cfg.KafkaBrokers) > 0 {
		return openDistributed(ctx, cfg, log)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("data dir: %w", err)
	}
	store, err := bolt.Open(filepath.Join(cfg.DataDir, "parley.db"))
	if err != nil {
		return nil, nil, err
	}
	return store, membus.New(membus.Options{}), nil
}

func backendName(cond bool, yes, no string) string {
	if cond {
		return yes
	}
	return no
}

// loadSecret returns PARLEY_SECRET, or in embedded mode a secret generated
// once and kept in the data dir, so sessions survive a restart.
func loadSecret(cfg Config) ([]byte, error) {
	if cfg.Secret != "" {
		return []byte(cfg.Secret), nil
	}
	path := filepath.Join(cfg.DataDir, "secret")
	if b, err := os.ReadFile(path); err == nil && len(b) >= 32 {
		return b, nil
	}
	buf := make([]byte, 32)
	_, _ = rand.Read(buf)
	secret := []byte(hex.EncodeToString(buf))
	if err := os.WriteFile(path, secret, 0o600); err != nil {
		return nil, fmt.Errorf("write generated secret: %w", err)
	}
	return secret, nil
}

func waitCtx(ctx context.Context, wg *sync.WaitGroup) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}
