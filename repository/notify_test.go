package repository

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/parley-chat/parley/app/chat"
)

// The contract suite (TestMongoNotificationsContract) holds MongoDB to what
// bbolt does; these tests reach the states only a crash between two writes
// leaves, and claimers in separate Stores, as separate instances are.

var notifyT0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func webhook(id string, next time.Time) chat.Delivery {
	return chat.Delivery{ID: id, Kind: chat.DeliverWebhook, URL: "https://hooks.example/x", Body: []byte(id), NextAt: next}
}

func claimIDs(t *testing.T, s *Store, now time.Time, lease time.Duration) []string {
	t.Helper()
	ds, err := s.ClaimDeliveries(t.Context(), now, lease, 100)
	if err != nil {
		t.Fatalf("ClaimDeliveries: %v", err)
	}
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	slices.Sort(ids)
	return ids
}

func TestNotifyIndexes(t *testing.T) {
	s := newStore(t)
	for _, c := range []struct {
		coll *mongo.Collection
		name string
		keys []string
	}{
		{s.notifications, notifyUserTSIndex, []string{"user", "ts", "_id"}},
		{s.pushSubs, pushUserIndex, []string{"user"}},
		{s.deliveries, deliveryNextIndex, []string{"next_at"}},
		{s.claims, claimDeliveryIndex, []string{"delivery"}},
	} {
		i, ok := listIndexes(t, c.coll)[c.name]
		var keys []string
		for _, e := range i.Key {
			keys = append(keys, e.Key)
		}
		if !ok || !slices.Equal(keys, c.keys) {
			t.Errorf("index %s of %s missing or not on %v: %+v", c.name, c.coll.Name(), c.keys, i)
		}
	}
	// A second instance creates them again: a no-op, not an error.
	openStore(t, testURI(t), s.messages.Database().Name())
}

// TestNotifyCrashBeforeNotification: an AddNotification that died after
// queueing the deliveries and before storing the notification. The retry
// stores it and queues nothing twice.
func TestNotifyCrashBeforeNotification(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	n := chat.Notification{ID: chat.NotificationID("alice", "club", 1), User: "alice", Room: "club", Seq: 1, TS: chat.Timestamp(notifyT0)}
	ds := []chat.Delivery{webhook("d1", notifyT0), webhook("d2", notifyT0)}
	// The first attempt's step 2, as it left it: d1 only.
	if _, err := s.deliveries.InsertOne(ctx, deliveryDoc{ID: "d1", Kind: chat.DeliverWebhook, NextAt: notifyT0}); err != nil {
		t.Fatal(err)
	}
	created, err := s.AddNotification(ctx, n, ds)
	if err != nil || !created {
		t.Fatalf("retried AddNotification: created %v, %v; want created", created, err)
	}
	if got := claimIDs(t, s, notifyT0, time.Minute); !slices.Equal(got, []string{"d1", "d2"}) {
		t.Fatalf("claimed %q, want d1 and d2 once each", got)
	}
	p, err := s.ListNotifications(ctx, "alice", chat.NotificationQuery{Limit: 10})
	if err != nil || len(p.Notifications) != 1 || p.Notifications[0].ID != n.ID {
		t.Fatalf("list: %+v, %v", p, err)
	}
}

// TestNotifyClaimTakeover: a claimer that inserted its claim and died before
// recording it on the delivery. The delivery reads as due, but is held
// until that claim's lease ends; then the next claimer takes it over.
func TestNotifyClaimTakeover(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	const lease = 30 * time.Second
	if _, err := s.AddNotification(ctx, chat.Notification{ID: "n1", User: "alice"}, []chat.Delivery{webhook("d1", notifyT0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.claims.InsertOne(ctx, claimDoc{ID: claimKey("d1", 1), Delivery: "d1", Until: notifyT0.Add(lease)}); err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Duration{0, lease - time.Millisecond} {
		if got := claimIDs(t, s, notifyT0.Add(at), lease); len(got) != 0 {
			t.Fatalf("at +%v, within the dead claim's lease: claimed %q", at, got)
		}
	}
	ds, err := s.ClaimDeliveries(ctx, notifyT0.Add(lease), lease, 10)
	if err != nil || len(ds) != 1 || ds[0].ID != "d1" || !ds[0].NextAt.Equal(notifyT0.Add(2*lease)) {
		t.Fatalf("when the dead claim's lease ends: %+v, %v; want d1 leased to +%v", ds, err, 2*lease)
	}
	var d deliveryDoc
	if err := s.deliveries.FindOne(ctx, bson.D{{Key: "_id", Value: "d1"}}).Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d.Claim != 2 {
		t.Fatalf("recorded claim %d, want 2 (the dead one stepped over)", d.Claim)
	}
	if got := claimIDs(t, s, notifyT0.Add(lease), lease); len(got) != 0 {
		t.Fatalf("right after the takeover: claimed %q again", got)
	}
	if got := claimIDs(t, s, notifyT0.Add(2*lease), lease); !slices.Equal(got, []string{"d1"}) {
		t.Fatalf("when the takeover's lease ends: claimed %q, want d1", got)
	}
	// Finishing drops the delivery's claims with it.
	if err := s.FinishDelivery(ctx, "d1"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.claims.CountDocuments(ctx, bson.D{{Key: "delivery", Value: "d1"}}); err != nil || n != 0 {
		t.Fatalf("claims of a finished delivery: %d, %v", n, err)
	}
}

// TestNotifyClaimAcrossInstances: claimers in two Stores (two connection pools, as
// two instances have) on one outbox, two claimers in each.
func TestNotifyClaimAcrossInstances(t *testing.T) {
	a := newStore(t)
	b := openStore(t, testURI(t), a.messages.Database().Name())
	const n = 60
	var ds []chat.Delivery
	for i := range n {
		ds = append(ds, webhook(fmt.Sprintf("d%02d", i), notifyT0))
	}
	if _, err := a.AddNotification(t.Context(), chat.Notification{ID: "n1", User: "alice"}, ds); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		owner = map[string]int{}
		twice []string
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for c, s := range []*Store{a, a, b, b} {
		wg.Go(func() {
			<-start
			for empty := 0; empty < 3; {
				got, err := s.ClaimDeliveries(t.Context(), notifyT0, time.Minute, 5)
				if err != nil {
					t.Errorf("claimer %d: %v", c, err)
					return
				}
				if len(got) == 0 {
					empty++
				}
				mu.Lock()
				for _, d := range got {
					if _, ok := owner[d.ID]; ok {
						twice = append(twice, d.ID)
					}
					owner[d.ID] = c
				}
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	if len(twice) > 0 {
		t.Fatalf("claimed twice within the lease: %q", twice)
	}
	rest := claimIDs(t, a, notifyT0, time.Minute)
	for _, id := range rest {
		if _, ok := owner[id]; ok {
			t.Fatalf("%s claimed by a claimer and by the final sweep", id)
		}
		owner[id] = -1
	}
	if len(owner) != n {
		t.Fatalf("%d of %d claimed", len(owner), n)
	}
}
