package notify

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/app/notify/pushtest"
)

func testVAPID(t *testing.T) VAPID {
	t.Helper()
	v, err := LoadOrCreateVAPID(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func waitPushes(t *testing.T, ps *pushtest.Server, n int) []pushtest.Push {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := ps.Wait(ctx, n)
	if err != nil {
		t.Fatalf("%d pushes received, want %d: %v", len(got), n, err)
	}
	return got
}

func TestPushDecryptsToWhatWasQueued(t *testing.T) {
	ps := pushtest.New(t)
	v := testVAPID(t)
	ps.RequireVAPIDKey(v.PublicKey)
	sub := ps.NewSubscription()
	if err := ValidateSubscription(sub.Endpoint, sub.Keys.P256dh, sub.Keys.Auth, true); err != nil {
		t.Fatalf("pushtest's subscription does not validate: %v", err)
	}
	store, metrics := newMemStore(), &countMetrics{}
	s := run(t, Config{Store: store, VAPID: v, Subscriber: "mailto:ops@example.com", Metrics: metrics})
	payload := []byte(`{"id":"n1","room":"general","seq":42,"from":"bob","text":"@alice look","kind":"mention"}`)
	store.queue(sub.Delivery("p1", "alice", payload))
	s.Kick()
	got := waitPushes(t, ps, 1)
	store.waitFinished(t, "p1", 5*time.Second)
	p := got[0]
	if p.Err != nil || string(p.Payload) != string(payload) {
		t.Fatalf("push payload %q (err %v), want %q", p.Payload, p.Err, payload)
	}
	if p.Subject != "mailto:ops@example.com" {
		t.Errorf("VAPID sub %q, want the configured mailto:ops@example.com", p.Subject)
	}
	if ttl := p.Header.Get("TTL"); ttl != "86400" {
		t.Errorf("TTL %q, want a day", ttl)
	}
	if u := p.Header.Get("Urgency"); u != "high" {
		t.Errorf("Urgency %q, want high", u)
	}
	if metrics.get("push/sent") != 1 {
		t.Errorf("metrics %v, want push/sent 1", metrics)
	}
	if _, _, removed, _ := store.snapshot(); len(removed) != 0 {
		t.Errorf("subscriptions removed %v after a push taken", removed)
	}
	// The largest payload that fits the one 4096-byte record is sent too.
	big := make([]byte, 3993)
	for i := range big {
		big[i] = 'a' + byte(i%26)
	}
	store.queue(sub.Delivery("p2", "alice", big))
	s.Kick()
	got = waitPushes(t, ps, 2)
	if string(got[1].Payload) != string(big) {
		t.Errorf("largest payload garbled (%d bytes back)", len(got[1].Payload))
	}
}

func TestPushSignedWithAnotherKeyIsRefused(t *testing.T) {
	// pushtest's VAPID check can fail: a push signed with a key the
	// subscription was not made for is refused (and would fail the test,
	// which is why this one watches the refusal on a service of its own).
	tb := &recordingTB{T: t}
	ps := pushtest.New(tb)
	ps.RequireVAPIDKey(testVAPID(t).PublicKey)
	sub := ps.NewSubscription()
	store := newMemStore()
	s := run(t, Config{Store: store, VAPID: testVAPID(t), MaxAttempts: 1})
	store.queue(sub.Delivery("p", "alice", []byte("hi")))
	s.Kick()
	got := waitPushes(t, ps, 1)
	if got[0].Err == nil || got[0].Status != http.StatusUnauthorized {
		t.Errorf("push with another VAPID key: status %d err %v, want 401", got[0].Status, got[0].Err)
	}
	tb.mu.Lock()
	if len(tb.errors) != 1 {
		t.Errorf("pushtest reported %q, want the one refusal", tb.errors)
	}
	tb.mu.Unlock()
	store.waitFinished(t, "p", 5*time.Second)
}

// recordingTB keeps a test helper's errors to itself: for helpers whose
// failures a test provokes on purpose.
type recordingTB struct {
	*testing.T
	mu     sync.Mutex
	errors []string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestPushGoneRemovesSubscription(t *testing.T) {
	for _, code := range []int{http.StatusGone, http.StatusNotFound} {
		ps := pushtest.New(t)
		sub := ps.NewSubscription()
		ps.Answer(sub.Endpoint, code)
		store, metrics := newMemStore(), &countMetrics{}
		store.AddPushSubscription(context.Background(), sub.For("alice"), 10)
		other := ps.NewSubscription()
		store.AddPushSubscription(context.Background(), other.For("alice"), 10)
		s := run(t, Config{Store: store, VAPID: testVAPID(t), Metrics: metrics})
		store.queue(sub.Delivery("p", "alice", []byte("hi")))
		s.Kick()
		store.waitFinished(t, "p", 5*time.Second)
		subs, _ := store.PushSubscriptions(context.Background(), "alice")
		if len(subs) != 1 || subs[0].Endpoint != other.Endpoint {
			t.Errorf("%d: subscriptions left %+v, want only the other one", code, subs)
		}
		if n := len(ps.Pushes()); n != 1 {
			t.Errorf("%d: %d pushes, want 1 (gone is not retried)", code, n)
		}
		if metrics.get("push/gone") != 1 {
			t.Errorf("%d: metrics %v, want push/gone", code, metrics)
		}
	}
}

func TestPushTimeoutRetriedBounded(t *testing.T) {
	ps := pushtest.New(t)
	sub := ps.NewSubscription()
	ps.Answer(sub.Endpoint, pushtest.Stall)
	store, metrics := newMemStore(), &countMetrics{}
	s := run(t, Config{Store: store, VAPID: testVAPID(t), Metrics: metrics,
		Timeout: 150 * time.Millisecond, MaxAttempts: 3})
	store.queue(sub.Delivery("p", "alice", []byte("hi")))
	s.Kick()
	store.waitFinished(t, "p", 5*time.Second)
	// Nothing more comes after the last attempt.
	time.Sleep(200 * time.Millisecond)
	if n := len(ps.Pushes()); n != 3 {
		t.Errorf("%d attempts, want MaxAttempts' 3", n)
	}
	if metrics.get("push/retry") != 2 || metrics.get("push/gave_up") != 1 {
		t.Errorf("metrics %v, want 2 retries and 1 gave_up", metrics)
	}
	if _, _, removed, _ := store.snapshot(); len(removed) != 0 {
		t.Errorf("a stalling push service removed subscriptions %v", removed)
	}
}

func TestPushAnswers(t *testing.T) {
	for _, c := range []struct {
		answers  []int
		attempts int
		outcome  string
	}{
		{[]int{500, 201}, 2, OutcomeSent},
		{[]int{429, 202}, 2, OutcomeSent},
		{[]int{400}, 1, OutcomeGaveUp},
		{[]int{413}, 1, OutcomeGaveUp},
		{[]int{403}, 1, OutcomeGaveUp},
	} {
		ps := pushtest.New(t)
		sub := ps.NewSubscription()
		ps.Answer(sub.Endpoint, c.answers[0])
		store, metrics := newMemStore(), &countMetrics{}
		s := run(t, Config{Store: store, VAPID: testVAPID(t), Metrics: metrics})
		store.queue(sub.Delivery("p", "alice", []byte("hi")))
		s.Kick()
		waitPushes(t, ps, 1)
		if len(c.answers) > 1 {
			ps.Answer(sub.Endpoint, c.answers[1])
		}
		store.waitFinished(t, "p", 5*time.Second)
		if n := len(ps.Pushes()); n != c.attempts {
			t.Errorf("%v: %d attempts, want %d", c.answers, n, c.attempts)
		}
		if metrics.get("push/"+c.outcome) != 1 {
			t.Errorf("%v: metrics %v, want push/%s", c.answers, metrics, c.outcome)
		}
	}
}

func TestPushWithoutVAPIDOrWithBadKeysIsGivenUp(t *testing.T) {
	ps := pushtest.New(t)
	sub := ps.NewSubscription()
	bad := sub.Delivery("badkey", "alice", []byte("hi"))
	bad.P256dh = "AAAA"
	for name, c := range map[string]struct {
		vapid VAPID
		d     chat.Delivery
	}{
		"no VAPID keys": {VAPID{}, sub.Delivery("nokeys", "alice", []byte("hi"))},
		"bad p256dh":    {testVAPID(t), bad},
		"unknown kind":  {testVAPID(t), chat.Delivery{ID: "odd", Kind: "carrier-pigeon", URL: sub.Endpoint}},
	} {
		store, metrics := newMemStore(), &countMetrics{}
		s := run(t, Config{Store: store, VAPID: c.vapid, Metrics: metrics})
		store.queue(c.d)
		s.Kick()
		store.waitFinished(t, c.d.ID, 5*time.Second)
		if metrics.get(c.d.Kind+"/gave_up") != 1 {
			t.Errorf("%s: metrics %v, want gave_up", name, metrics)
		}
		if _, retries, _, _ := store.snapshot(); len(retries) != 0 {
			t.Errorf("%s: retried %+v", name, retries)
		}
	}
	if n := len(ps.Pushes()); n != 0 {
		t.Errorf("%d pushes made", n)
	}
}
