// Package notify sends what the notifications consumer queues in the
// outbox (chat.Notifications): Web Push messages to browsers' push services
// and signed webhook events, retried with backoff, on every instance.
package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/parley-chat/parley/app/chat"
)

// Outcomes of an attempt, as Metrics counts them.
const (
	// OutcomeSent: the receiver took it (2xx).
	OutcomeSent = "sent"
	// OutcomeRetry: it failed in a way worth another attempt later.
	OutcomeRetry = "retry"
	// OutcomeGaveUp: it failed for good (a 4xx, or MaxAttempts used up).
	OutcomeGaveUp = "gave_up"
	// OutcomeGone: the push service says the subscription no longer
	// exists (404, 410); it was removed.
	OutcomeGone = "gone"
)

// Metrics is what the sender reports. A nil Metrics reports nothing.
type Metrics interface {
	// Delivery counts one attempt's outcome for a delivery of kind
	// (chat.DeliverPush or chat.DeliverWebhook).
	Delivery(kind, outcome string)
}

type nopMetrics struct{}

func (nopMetrics) Delivery(string, string) {}

// Config configures a Sender. Its zero value means the defaults, except
// Store, which is required.
type Config struct {
	// Store holds the outbox (and the push subscriptions to drop).
	Store chat.Notifications
	// VAPID signs pushes. Without it, push deliveries are given up (and
	// logged): a server with no keys has no subscriptions to push to.
	VAPID VAPID
	// Subscriber is the VAPID "sub" claim, a contact for push services
	// that see trouble: "mailto:..." or an https URL. Default
	// DefaultSubscriber; set a real one in production.
	Subscriber string
	// WebhookSecret keys the webhook signature (HMAC-SHA256).
	WebhookSecret []byte
	// Client makes the requests. Default: a client of its own that does
	// not follow redirects (a webhook answering 3xx is not followed to
	// wherever it points).
	Client *http.Client
	// Workers bounds the attempts in flight (default 16): a slow receiver
	// holds one worker for at most Timeout while the others go on.
	Workers int
	// Poll is how often the outbox is looked at when not kicked (default
	// 250 ms).
	Poll time.Duration
	// Timeout bounds one attempt (default 10 s).
	Timeout time.Duration
	// Lease is how long a claimed delivery is left alone by the other
	// instances (default Timeout + 30 s); it must exceed Timeout, so that
	// nobody else sends it while this instance's attempt may still run.
	// An instance that dies leaves its claims to others after Lease.
	Lease time.Duration
	// MaxAttempts bounds the attempts per delivery (default 8); after the
	// last one fails it is given up.
	MaxAttempts int
	// BackoffBase and BackoffMax shape the wait after the n-th failed
	// attempt: BackoffBase·2^(n-1), capped at BackoffMax, of which a random
	// half is taken off so that receivers coming back are not hit by every
	// delivery at once (defaults 5 s and 10 min).
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// MaxRetryAfter caps a receiver's Retry-After (default 10 min).
	MaxRetryAfter time.Duration
	Metrics       Metrics
	Log           *slog.Logger
}

// DefaultSubscriber is the VAPID contact used when none is configured.
const DefaultSubscriber = "mailto:webpush@parley.invalid"

// Validate reports a config that cannot work.
func (c Config) Validate() error {
	if c.Store == nil {
		return errors.New("notify: Store is required")
	}
	if c.Workers < 0 || c.MaxAttempts < 0 || c.Poll < 0 || c.Timeout < 0 || c.Lease < 0 ||
		c.BackoffBase < 0 || c.BackoffMax < 0 || c.MaxRetryAfter < 0 {
		return errors.New("notify: negative Workers, MaxAttempts or duration")
	}
	d := c.withDefaults()
	if d.Lease <= d.Timeout {
		return fmt.Errorf("notify: Lease (%s) must exceed Timeout (%s)", d.Lease, d.Timeout)
	}
	if c.VAPID != (VAPID{}) {
		if _, err := parseVAPID(c.VAPID.PublicKey, c.VAPID.PrivateKey); err != nil {
			return fmt.Errorf("notify: %w", err)
		}
	}
	return nil
}

func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Workers == 0 {
		c.Workers = 16
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 8
	}
	if c.Subscriber == "" {
		c.Subscriber = DefaultSubscriber
	}
	def(&c.Poll, 250*time.Millisecond)
	def(&c.Timeout, 10*time.Second)
	def(&c.Lease, c.Timeout+30*time.Second)
	def(&c.BackoffBase, 5*time.Second)
	def(&c.BackoffMax, 10*time.Minute)
	def(&c.MaxRetryAfter, 10*time.Minute)
	if c.Metrics == nil {
		c.Metrics = nopMetrics{}
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return c
}

// storeTimeout bounds recording an attempt's outcome, which is done even
// while shutting down: a push sent and not finished is sent again.
const storeTimeout = 5 * time.Second

// Sender drains the outbox: every instance runs one, and the store's leases
// keep them from sending the same delivery at once. Delivery is at least
// once: an instance that dies between sending and recording it leaves the
// delivery to be sent again after its lease (webhook receivers drop repeats
// by X-Parley-Delivery).
type Sender struct {
	cfg        Config
	client     *http.Client
	subscriber string
	kick       chan struct{}
	freed      chan struct{}
}

// New returns a Sender for cfg; Run starts it.
func New(cfg Config) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	client := cfg.Client
	if client == nil {
		client = &http.Client{
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	return &Sender{
		cfg:        cfg,
		client:     client,
		subscriber: subscriberFor(cfg.Subscriber),
		kick:       make(chan struct{}, 1),
		freed:      make(chan struct{}, 1),
	}, nil
}

// Kick makes the sender look at the outbox now rather than at its next
// poll: call it after queueing deliveries. It never blocks.
func (s *Sender) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run drains the outbox until ctx ends, then waits for the attempts in
// flight: they are cut short, and their deliveries released for the next
// claim (not counted as attempts). It returns nil once stopped.
func (s *Sender) Run(ctx context.Context) error {
	work := make(chan chat.Delivery)
	// idle holds a token per idle worker; only this loop takes them, so
	// it claims no more deliveries than it can start at once — a claimed
	// delivery never waits in a queue while its lease runs out.
	idle := make(chan struct{}, s.cfg.Workers)
	var wg sync.WaitGroup
	for range s.cfg.Workers {
		idle <- struct{}{}
		wg.Go(func() {
			for d := range work {
				s.deliver(ctx, d)
				idle <- struct{}{}
				select {
				case s.freed <- struct{}{}:
				default:
				}
			}
		})
	}
	defer wg.Wait()
	defer close(work)

	tick := time.NewTicker(s.cfg.Poll)
	defer tick.Stop()
	// pause grows while the store fails, so that an outage is not asked
	// (and logged) four times a second.
	pause := time.Duration(0)
	for {
		// more: the last claim got all it asked for, so more may be due
		// and a worker coming free is worth a claim at once.
		more := false
		if n := len(idle); n > 0 {
			ds, err := s.cfg.Store.ClaimDeliveries(ctx, time.Now(), s.cfg.Lease, n)
			if err != nil && ctx.Err() == nil {
				pause = min(max(2*pause, s.cfg.Poll), maxClaimPause)
				s.cfg.Log.Warn("notify: claim deliveries failed; pausing", "err", err, "for", pause)
				if !sleep(ctx, pause) {
					return nil
				}
				continue
			}
			pause = 0
			for _, d := range ds {
				<-idle
				work <- d
			}
			more = len(ds) == n
		}
		var freed chan struct{}
		if more {
			freed = s.freed
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.kick:
		case <-tick.C:
		case <-freed:
		}
	}
}

// maxClaimPause bounds the pause between claims while the store fails.
const maxClaimPause = 5 * time.Second

// sleep waits d or until ctx ends; it reports whether the full wait elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// result is one attempt's outcome.
type result struct {
	outcome string
	err     error
	// retryAfter is the receiver's Retry-After, 0 when none.
	retryAfter time.Duration
}

// deliver makes one attempt at d and records its outcome in the store.
func (s *Sender) deliver(ctx context.Context, d chat.Delivery) {
	actx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	var r result
	switch {
	case d.Kind == chat.DeliverWebhook:
		r = s.sendWebhook(actx, d)
	case d.Kind == chat.DeliverPush && s.cfg.VAPID == (VAPID{}):
		r = result{outcome: OutcomeGaveUp, err: errors.New("no VAPID keys configured")}
	case d.Kind == chat.DeliverPush:
		r = s.sendPush(actx, d)
	default:
		r = result{outcome: OutcomeGaveUp, err: fmt.Errorf("unknown delivery kind %q", d.Kind)}
	}
	cancel()

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	log := s.cfg.Log.With("delivery", d.ID, "kind", d.Kind, "attempt", d.Attempts+1)
	if ctx.Err() != nil && r.outcome != OutcomeSent {
		// Shutting down cut the attempt short: it says nothing of the
		// receiver. Release the delivery for the next claim, wherever.
		if err := s.cfg.Store.RetryDelivery(sctx, d.ID, d.Attempts, time.Now()); err != nil {
			log.Warn("notify: release delivery", "err", err)
		}
		return
	}
	made := d.Attempts + 1
	if r.outcome == OutcomeRetry && made >= s.cfg.MaxAttempts {
		r.outcome = OutcomeGaveUp
		r.err = fmt.Errorf("%d attempts failed, the last: %w", made, r.err)
	}
	// Counted before it is recorded, so that whoever sees the store
	// change sees the count.
	s.cfg.Metrics.Delivery(d.Kind, r.outcome)
	switch r.outcome {
	case OutcomeRetry:
		wait := s.backoff(made)
		if r.retryAfter > 0 {
			wait = min(r.retryAfter, s.cfg.MaxRetryAfter)
		}
		if err := s.cfg.Store.RetryDelivery(sctx, d.ID, made, time.Now().Add(wait)); err != nil {
			// The lease runs out and the delivery is claimed again.
			log.Warn("notify: record retry", "err", err)
		}
		log.Debug("notify: attempt failed; will retry", "err", r.err, "in", wait)
	case OutcomeGone:
		if err := s.cfg.Store.RemovePushSubscription(sctx, d.User, d.URL); err != nil {
			// Left queued: its next claim tries the removal again.
			log.Warn("notify: remove gone push subscription", "err", err)
			return
		}
		s.finish(sctx, log, d)
	case OutcomeGaveUp:
		log.Warn("notify: delivery given up", "err", r.err)
		s.finish(sctx, log, d)
	default:
		s.finish(sctx, log, d)
	}
}

func (s *Sender) finish(ctx context.Context, log *slog.Logger, d chat.Delivery) {
	if err := s.cfg.Store.FinishDelivery(ctx, d.ID); err != nil {
		// The lease runs out and it is sent again: at least once.
		log.Warn("notify: finish delivery", "err", err)
	}
}

// backoff is the wait after the made-th failed attempt: exponential,
// capped, less a random part of up to half.
func (s *Sender) backoff(made int) time.Duration {
	d := s.cfg.BackoffBase
	for i := 1; i < made && d < s.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, s.cfg.BackoffMax)
	return d - rand.N(d/2+1)
}

// maxBodyRead bounds what is read of an answer's body (to reuse the
// connection); anything longer is dropped with the connection.
const maxBodyRead = 64 << 10

// classify turns a receiver's answer into an outcome: 2xx sent; 404 and
// 410 from a push service gone; 408, 429 and 5xx worth a retry (after
// Retry-After when given); anything else refused for good.
func (s *Sender) classify(resp *http.Response, push bool) result {
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxBodyRead))
	resp.Body.Close()
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return result{outcome: OutcomeSent}
	case push && (code == http.StatusNotFound || code == http.StatusGone):
		return result{outcome: OutcomeGone}
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return result{outcome: OutcomeRetry, err: fmt.Errorf("answered %d", code),
			retryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	default:
		return result{outcome: OutcomeGaveUp, err: fmt.Errorf("answered %d", code)}
	}
}

// retryAfter parses a Retry-After value, seconds or an HTTP date; 0 when
// absent, unparsable or past.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
