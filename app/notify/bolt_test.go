package notify

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/app/notify/pushtest"
	"github.com/parley-chat/parley/repository/bolt"
)

// TestSenderOnBolt drains the embedded store's real outbox: what
// AddNotification queued is pushed (decrypted intact) and posted, a gone
// subscription leaves the store, and the outbox ends empty.
func TestSenderOnBolt(t *testing.T) {
	ctx := context.Background()
	store, err := bolt.Open(filepath.Join(t.TempDir(), "parley.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ps := pushtest.New(t)
	v := testVAPID(t)
	ps.RequireVAPIDKey(v.PublicKey)
	live, gone := ps.NewSubscription(), ps.NewSubscription()
	ps.Answer(gone.Endpoint, 410)
	for _, s := range []pushtest.Subscription{live, gone} {
		if err := store.AddPushSubscription(ctx, s.For("alice"), 10); err != nil {
			t.Fatal(err)
		}
	}
	rcv := newReceiver(t, 503, 200)
	metrics := &countMetrics{}
	s, err := New(Config{Store: store, VAPID: v, WebhookSecret: secret, Metrics: metrics,
		Poll: 10 * time.Millisecond, BackoffBase: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	go func() { stopped <- s.Run(runCtx) }()
	defer stop()

	payload := []byte(`{"id":"n1","text":"hi"}`)
	n := chat.Notification{ID: chat.NotificationID("alice", "general", 3), Room: "general", Seq: 3, From: "bob",
		Text: "hi", Kind: chat.NotifyDirect, TS: chat.Timestamp(time.Now()), User: "alice"}
	hook := webhook("w1", rcv.srv.URL)
	if _, err := store.AddNotification(ctx, n, []chat.Delivery{
		live.Delivery("p-live", "alice", payload), gone.Delivery("p-gone", "alice", payload), hook,
	}); err != nil {
		t.Fatal(err)
	}
	s.Kick()

	got := waitPushes(t, ps, 2)
	deadline := time.Now().Add(5 * time.Second)
	for metrics.get("webhook/sent")+metrics.get("push/sent")+metrics.get("push/gone") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("not all delivered: %v", metrics)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Stopped, it has recorded every outcome it counted.
	stop()
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	for _, p := range got {
		if string(p.Payload) != string(payload) {
			t.Errorf("push to %s: payload %q, want %q", p.Endpoint, p.Payload, payload)
		}
	}
	subs, err := store.PushSubscriptions(ctx, "alice")
	if err != nil || len(subs) != 1 || subs[0].Endpoint != live.Endpoint {
		t.Errorf("subscriptions %+v (%v), want only the live one", subs, err)
	}
	reqs := rcv.requests()
	if len(reqs) != 2 || reqs[0].header.Get(HeaderDelivery) != "w1" || reqs[1].header.Get(HeaderDelivery) != "w1" {
		t.Errorf("webhook requests %d, want 2 with X-Parley-Delivery w1", len(reqs))
	}
	left, err := store.ClaimDeliveries(ctx, time.Now().Add(24*time.Hour), time.Minute, 10)
	if err != nil || len(left) != 0 {
		t.Errorf("outbox still holds %+v (%v)", left, err)
	}
}
