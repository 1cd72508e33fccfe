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
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/app/notify"
	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/kafka/membus"
	"github.com/parley-chat/parley/repository/bolt"
)

func main() {
	cfg, err := LoadConfig(os.Getenv, os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "parley:", err)
		os.Exit(2)
	}
	// PARLEY_LOG_FORMAT=json: one JSON object per line, for log collectors.
	opts := &slog.HandlerOptions{Level: logLevels[cfg.LogLevel]}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	log := slog.New(h)
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
	cfg = cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return err
	}
	store, bus, err := openBackends(ctx, cfg, log)
	if err != nil {
		return err
	}
	// Closed in order by the shutdown below; these are for the early returns.
	closed := false
	defer func() {
		if !closed {
			bus.Close()
			store.Close()
		}
	}()
	people, ok := store.(chat.People)
	if !ok {
		return fmt.Errorf("store %T keeps no accounts (chat.People)", store)
	}
	sweeper, err := setRetention(ctx, cfg, store, log)
	if err != nil {
		return err
	}
	secret, err := loadSecret(cfg)
	if err != nil {
		return err
	}
	proxies, err := parseProxies(cfg.TrustedProxies)
	if err != nil {
		return err
	}
	// Every goroutine's failure reaches failed: the first one shuts the
	// instance down, and run returns it.
	failed := make(chan error, 4)
	fail := func(what string, err error) {
		if err != nil {
			select {
			case failed <- fmt.Errorf("%s: %w", what, err):
			default:
			}
		}
	}
	_, stopPprof, err := servePprof(cfg.PprofAddr, log, fail)
	if err != nil {
		return fmt.Errorf("pprof listen %s: %w", cfg.PprofAddr, err)
	}
	defer stopPprof()

	metrics := newPromMetrics()
	hub := chat.NewHub(store, log, metrics)
	hub.SetRetention(cfg.Retention)
	// Both stores keep the rooms' saved states beside their messages.
	rooms, _ := store.(chat.RoomStates)
	if rooms != nil {
		hub.SetRoomLoader(rooms.RoomState)
	}
	// On shutdown the persist stage drains the in-process bus (not durable)
	// into the store; on Kafka it finishes its batch in hand and stops, and
	// the group's other members read on from its commit.
	finishPersist := make(chan struct{})
	// And read positions, the mention index and notifications.
	marks, _ := store.(chat.Marks)
	notes, _ := store.(chat.Notifications)
	persister := &chat.Persister{Bus: bus, Store: store, TopicSend: cfg.TopicSend, TopicReceive: cfg.TopicReceive,
		Rooms: rooms, Marks: marks, Log: log, Metrics: metrics, Finish: finishPersist, Drain: len(cfg.KafkaBrokers) == 0}
	fanout := &chat.Fanout{Bus: bus, Topic: cfg.TopicReceive, Group: cfg.FanoutGroup(), Hub: hub, Log: log}

	pipeCtx, stopPipe := context.WithCancel(context.Background())
	defer stopPipe()
	var pipes sync.WaitGroup
	pipes.Go(func() { fail("persist stage", persister.Run(pipeCtx)) })
	fanCtx, stopFanout := context.WithCancel(context.Background())
	defer stopFanout()
	var fan sync.WaitGroup
	fan.Go(func() { fail("fan-out", fanout.Run(fanCtx)) })
	// The notifications consumer, the third group, and the outbox's sender
	// stop with the fan-out.
	vapid, err := loadVAPID(cfg)
	if err != nil {
		return err
	}
	if notes != nil {
		outbox, err := notify.New(notify.Config{Store: notes, VAPID: vapid, Subscriber: cfg.vapidSubject(),
			WebhookSecret: []byte(cfg.WebhookSecret), BackoffBase: cfg.outboxBackoff, Metrics: metrics, Log: log})
		if err != nil {
			return err
		}
		notifier := &chat.Notifier{Bus: bus, Topic: cfg.TopicReceive, Store: notes, Rooms: hub.SavedState,
			Delay: cfg.NotifyDelay, Webhooks: cfg.WebhookURLs, Push: vapid.PublicKey != "", Kick: outbox.Kick,
			Log: log, Metrics: metrics}
		fan.Go(func() { fail("notifications", notifier.Run(fanCtx)) })
		fan.Go(func() { fail("outbox", outbox.Run(fanCtx)) })
	}

	auth := &handlers.Auth{Secret: secret, TTL: cfg.TokenTTL, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience}
	idpCtx, stopIDP := context.WithCancel(context.Background())
	defer stopIDP()
	if auth.JWKS, err = newJWKS(idpCtx, cfg, people); err != nil {
		return err
	}
	srv := &handlers.Server{
		VAPIDPublicKey: vapid.PublicKey, ValidatePush: notify.ValidateSubscription, PushLoopbackHTTP: cfg.PushLoopbackHTTP,
		Store: store, People: people, Rooms: rooms, Marks: marks, Notes: notes, Bus: bus, Hub: hub, Metrics: metrics, MetricsHTTP: metrics.handler(), Log: log, Guest: !cfg.NoGuests, Accounts: !cfg.NoAccounts, Limits: cfg.Limits,
		Sender: &chat.Sender{Bus: bus, Topic: cfg.TopicSend, Log: log, Metrics: metrics},
		Auth:   auth,
		Ready: func() error {
			if !fanout.Ready() {
				return errors.New("fan-out consumer not yet assigned")
			}
			return nil
		},
		AllowedOrigins: cfg.allowedOrigins(), TrustedProxies: proxies,
		MetricsToken: cfg.MetricsToken, MetricsElsewhere: cfg.MetricsAddr != "",
		StoreTimeout: cfg.storeTimeout,
	}
	app := fiber.New(fiber.Config{
		AppName:   "parley",
		BodyLimit: chat.MaxFrameBytes,
		// Slowloris and idle sockets: a request's headers and body must
		// arrive within ReadTimeout, and a keep-alive connection that sends
		// nothing closes after IdleTimeout. No write timeout: SSE streams
		// are long responses (they and WebSocket keep deadlines of their own).
		ReadTimeout:  cfg.ReadTimeout,
		IdleTimeout:  cfg.IdleTimeout,
		ErrorHandler: handlers.ErrorHandler(log),
		// c.Protocol() and c.IP() believe forwarding headers only from
		// these (Parley's own code uses handlers' clientIP and scheme).
		EnableTrustedProxyCheck: true,
		// No route takes a form: a multipart body is refused (415) by the
		// guard, not parsed by fasthttp before it.
		DisablePreParseMultipartForm: true,
		TrustedProxies:               cfg.TrustedProxies,
		DisableStartupMessage:        true,
	})
	srv.Register(app)
	if cfg.OIDCIssuer != "" {
		o, err := handlers.NewOIDC(handlers.OIDCOptions{Issuer: cfg.OIDCIssuer, ClientID: cfg.OIDCClientID,
			ClientSecret: cfg.OIDCClientSecret, RedirectURL: cfg.oidcRedirectURL(), Secret: secret})
		if err != nil {
			return err
		}
		srv.OIDCName = cfg.OIDCName
		srv.RegisterOIDC(app, o)
	}
	// Every instance learns of sessions ended anywhere from the store.
	revCtx, stopRevocations := context.WithCancel(context.Background())
	defer stopRevocations()
	var revs sync.WaitGroup
	revs.Go(func() { srv.WatchRevocations(revCtx) })
	// Retention's sweeper runs beside them and stops with them.
	if sweeper != nil {
		revs.Go(func() { chat.SweepEvery(revCtx, sweeper, cfg.Retention, sweepInterval, log) })
	}
	stopMetrics, err := serveMetrics(cfg.MetricsAddr, srv, log, fail)
	if err != nil {
		return fmt.Errorf("metrics listen %s: %w", cfg.MetricsAddr, err)
	}
	defer stopMetrics()

	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	// Closed by the shutdown before Fiber's own shutdown closes it again.
	ln := &onceCloseListener{Listener: l}
	log.Info("parley listening", "addr", ln.Addr().String(), "instance", cfg.InstanceID,
		"bus", backendName(cfg.KafkaBrokers != nil, "kafka", "embedded"), "store", backendName(cfg.MongoURI != "", "mongodb", "embedded"))
	go func() { fail("serve", app.Listener(ln)) }()
	if ready != nil {
		ready <- ln.Addr().String()
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-failed:
		log.Error("shutting down after a failure", "err", runErr)
	}

	// Graceful shutdown, in this order, under one deadline
	// (PARLEY_SHUTDOWN_TIMEOUT):
	//  1. /readyz answers 503, for PARLEY_SHUTDOWN_DELAY, so that a load
	//     balancer takes the instance out while it still serves;
	//  2. the listener closes: no new connections;
	//  3. clients are sent elsewhere: each WebSocket answers every frame it
	//     already read (ack or error), flushes its queue and closes with
	//     1012; SSE streams end after what is queued;
	//  4. requests in flight (POST sends among them) finish and are answered,
	//     and every WebSocket handler returns;
	//  5. the persist stage stores, republishes and commits what was
	//     accepted (the in-process bus is drained; on Kafka the batch in
	//     hand), and its consumer leaves the group;
	//  6. the fan-out commits what it delivered and leaves its group;
	//  7. the bus closes (any consumer left, then the writer flushes);
	//  8. the store closes.
	log.Info("shutting down", "deadline", cfg.ShutdownTimeout, "delay", cfg.ShutdownDelay)
	deadline, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	srv.Drain()
	if cfg.ShutdownDelay > 0 {
		t := time.NewTimer(cfg.ShutdownDelay)
		select {
		case <-t.C:
		case <-deadline.Done():
		}
		t.Stop()
	}
	if err := ln.Close(); err != nil {
		log.Warn("close listener", "err", err)
	}
	srv.Close()
	if err := app.ShutdownWithContext(deadline); err != nil {
		log.Warn("http shutdown: requests still running at the deadline", "err", err)
	}
	if !srv.Wait(deadline) {
		log.Warn("http shutdown: WebSocket connections still open at the deadline")
	}
	close(finishPersist)
	if !waitCtx(deadline, &pipes) {
		log.Warn("persist stage did not finish before the deadline")
	}
	// What only closes gets what is left of the deadline, and at least two
	// seconds even after a step that used it all up.
	closing, cancelClosing := context.WithTimeout(context.Background(), max(time.Until(deadlineOf(deadline)), 2*time.Second))
	defer cancelClosing()
	stopPipe()
	if !waitCtx(closing, &pipes) {
		log.Warn("persist stage did not stop")
	}
	stopFanout()
	if !waitCtx(closing, &fan) {
		log.Warn("fan-out did not stop")
	}
	stopRevocations()
	if !waitCtx(closing, &revs) {
		log.Warn("revocation watcher or retention sweeper did not stop")
	}
	closed = true
	closeWithin(closing, log, "bus", bus.Close)
	closeWithin(closing, log, "store", store.Close)
	log.Info("stopped")
	return runErr
}

// sweepInterval is how often the retention sweeper runs, as MongoDB's TTL
// monitor does. (A variable for the tests.)
var sweepInterval = time.Minute

// setRetention applies PARLEY_RETENTION to the store and returns what the
// sweeper is to sweep: nil when retention is off or the store cannot delete.
// On MongoDB it also sets the TTL index (dropping it when retention is off);
// the sweeper runs there too, for servers without TTL deletion (FerretDB)
// and for rooms' last seqs (see repository.Store.Sweep).
func setRetention(ctx context.Context, cfg Config, store chat.Store, log *slog.Logger) (chat.Sweeper, error) {
	if r, ok := store.(interface {
		SetRetention(context.Context, time.Duration) (bool, error)
	}); ok {
		ttl, err := r.SetRetention(ctx, cfg.Retention)
		if err != nil {
			return nil, err
		}
		if cfg.Retention > 0 && !ttl {
			log.Info("retention: the store has no TTL indexes; the sweeper alone deletes old messages")
		}
	}
	if cfg.Retention == 0 {
		return nil, nil
	}
	sw, ok := store.(chat.Sweeper)
	if !ok {
		return nil, fmt.Errorf("PARLEY_RETENTION is set, but store %T cannot delete messages (chat.Sweeper)", store)
	}
	log.Info("retention: messages older than this are deleted", "retention", cfg.Retention)
	return sw, nil
}

// newJWKS is the operator's identity provider's key set when
// PARLEY_JWKS_URL is set (nil otherwise); its refreshes end with ctx.
func newJWKS(ctx context.Context, cfg Config, people chat.People) (*handlers.JWKS, error) {
	if cfg.JWKSURL == "" {
		return nil, nil
	}
	return handlers.NewJWKS(ctx, handlers.JWKSOptions{URL: cfg.JWKSURL, NameClaim: cfg.JWTNameClaim, People: people})
}

// serveMetrics serves /metrics on addr, its own listener (keep it private),
// when addr is set; fail gets the error should serving stop.
func serveMetrics(addr string, srv *handlers.Server, log *slog.Logger, fail func(string, error)) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	app := fiber.New(fiber.Config{AppName: "parley-metrics", DisableStartupMessage: true,
		ReadTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second, ErrorHandler: handlers.ErrorHandler(log)})
	app.Get("/metrics", srv.MetricsHandler())
	go func() { fail("metrics listener", app.Listener(l)) }()
	log.Info("metrics listening", "addr", l.Addr().String())
	return func() { _ = app.Shutdown() }, nil
}

func deadlineOf(ctx context.Context) time.Time {
	dl, _ := ctx.Deadline()
	return dl
}

// closeWithin runs close and waits for it until ctx ends: kafka-go's writer,
// for one, retries what it holds for a broker that is gone.
func closeWithin(ctx context.Context, log *slog.Logger, what string, close func() error) {
	done := make(chan error, 1)
	go func() { done <- close() }()
	select {
	case err := <-done:
		if err != nil {
			log.Warn("close "+what, "err", err)
		}
	case <-ctx.Done():
		log.Warn("close " + what + ": gave up at the shutdown deadline")
	}
}

// onceCloseListener lets the shutdown close the listener (to stop accepting
// before clients are told to reconnect) ahead of Fiber, which closes it again.
type onceCloseListener struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *onceCloseListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
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

// loadVAPID is the Web Push key pair: PARLEY_VAPID_PUBLIC_KEY and
// PARLEY_VAPID_PRIVATE_KEY, else in embedded mode a pair generated into the
// data dir once; with Kafka and no keys, none (push is off: every instance
// must sign with the same pair, so none may make its own).
func loadVAPID(cfg Config) (notify.VAPID, error) {
	switch {
	case cfg.VAPIDPublicKey != "":
		v, err := notify.VAPIDFromEnv(cfg.VAPIDPublicKey, cfg.VAPIDPrivateKey)
		if err != nil {
			return v, fmt.Errorf("PARLEY_VAPID_PUBLIC_KEY / PARLEY_VAPID_PRIVATE_KEY: %w", err)
		}
		return v, nil
	case len(cfg.KafkaBrokers) == 0:
		return notify.LoadOrCreateVAPID(cfg.DataDir)
	}
	return notify.VAPID{}, nil
}
