package notify

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
)

// memStore is an in-memory outbox and subscription list (chat.Notifications)
// that records what the sender asks of it. The real stores are tested
// against the interface's contract elsewhere.
type memStore struct {
	mu         sync.Mutex
	deliveries map[string]chat.Delivery
	subs       map[[2]string]chat.PushSubscription
	finished   []string
	retries    []retryCall
	removed    [][2]string
	claimMax   int // the largest max asked for
	claims     int
	claimErr   error // failing claims while set
	changed    chan struct{}
}

type retryCall struct {
	id       string
	attempts int
	next     time.Time
	at       time.Time
}

var _ chat.Notifications = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{deliveries: map[string]chat.Delivery{}, subs: map[[2]string]chat.PushSubscription{},
		changed: make(chan struct{})}
}

func (m *memStore) signal() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// queue adds deliveries due now (what AddNotification does with its ds).
func (m *memStore) queue(ds ...chat.Delivery) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range ds {
		m.deliveries[d.ID] = d
	}
}

func (m *memStore) AddNotification(_ context.Context, n chat.Notification, ds []chat.Delivery) (bool, error) {
	m.queue(ds...)
	return true, nil
}

func (m *memStore) ListNotifications(context.Context, string, chat.NotificationQuery) (chat.NotificationPage, error) {
	return chat.NotificationPage{}, nil
}

func (m *memStore) AddPushSubscription(_ context.Context, s chat.PushSubscription, _ int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.subs[[2]string{s.User, s.Endpoint}] = s
	return nil
}

func (m *memStore) RemovePushSubscription(_ context.Context, user, endpoint string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.subs, [2]string{user, endpoint})
	m.removed = append(m.removed, [2]string{user, endpoint})
	m.signal()
	return nil
}

func (m *memStore) PushSubscriptions(_ context.Context, user string) ([]chat.PushSubscription, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []chat.PushSubscription
	for _, s := range m.subs {
		if s.User == user {
			out = append(out, s)
		}
	}
	return out, nil
}

func (m *memStore) ClaimDeliveries(_ context.Context, now time.Time, lease time.Duration, limit int) ([]chat.Delivery, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.claimMax = max(m.claimMax, limit)
	m.claims++
	if m.claimErr != nil {
		return nil, m.claimErr
	}
	var out []chat.Delivery
	for _, id := range slices.Sorted(maps.Keys(m.deliveries)) {
		d := m.deliveries[id]
		if len(out) == limit {
			break
		}
		if d.NextAt.After(now) {
			continue
		}
		d.NextAt = now.Add(lease)
		m.deliveries[id] = d
		out = append(out, d)
	}
	return out, nil
}

func (m *memStore) FinishDelivery(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.deliveries, id)
	m.finished = append(m.finished, id)
	m.signal()
	return nil
}

func (m *memStore) RetryDelivery(_ context.Context, id string, attempts int, next time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.retries = append(m.retries, retryCall{id: id, attempts: attempts, next: next, at: time.Now()})
	if d, ok := m.deliveries[id]; ok {
		d.Attempts, d.NextAt = attempts, next
		m.deliveries[id] = d
	}
	m.signal()
	return nil
}

// waitFinished waits until id has been finished.
func (m *memStore) waitFinished(t *testing.T, id string, within time.Duration) {
	t.Helper()
	m.waitFor(t, within, "delivery "+id+" finished", func() bool { return slices.Contains(m.finished, id) })
}

// waitFor waits until cond (called with m locked) holds.
func (m *memStore) waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(within)
	for {
		m.mu.Lock()
		ok, changed := cond(), m.changed
		m.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("not within %s: %s", within, what)
		}
	}
}

func (m *memStore) snapshot() (finished []string, retries []retryCall, removed [][2]string, queued int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.finished), slices.Clone(m.retries), slices.Clone(m.removed), len(m.deliveries)
}

// countMetrics counts outcomes by "kind/outcome".
type countMetrics struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *countMetrics) Delivery(kind, outcome string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[kind+"/"+outcome]++
}

func (c *countMetrics) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprint(c.n)
}

func (c *countMetrics) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

// run starts a sender for cfg (fast polling and backoff unless set) and
// stops it at the end of the test.
func run(t *testing.T, cfg Config) *Sender {
	t.Helper()
	if cfg.Poll == 0 {
		cfg.Poll = 10 * time.Millisecond
	}
	if cfg.BackoffBase == 0 {
		cfg.BackoffBase = 10 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = 40 * time.Millisecond
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not stop")
		}
	})
	return s
}
