package storetest

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
)

// RunNotifications runs the contract suite of chat.Notifications: in-app
// notifications, push subscriptions and the outbox. newStore must return a
// new, empty store each time, cleaned up by t.Cleanup.
func RunNotifications(t *testing.T, newStore func(t *testing.T) chat.Notifications) {
	t.Run("NotificationRoundTrip", func(t *testing.T) { testNotificationRoundTrip(t, newStore(t)) })
	t.Run("NotificationIdempotent", func(t *testing.T) { testNotificationIdempotent(t, newStore(t)) })
	t.Run("NotificationPaging", func(t *testing.T) { testNotificationPaging(t, newStore(t)) })
	t.Run("NotificationUsersSeparate", func(t *testing.T) { testNotificationUsers(t, newStore(t)) })
	t.Run("PushSubscriptions", func(t *testing.T) { testPushSubscriptions(t, newStore(t)) })
	t.Run("PushLimit", func(t *testing.T) { testPushLimit(t, newStore(t)) })
	t.Run("ClaimLeases", func(t *testing.T) { testClaimLeases(t, newStore(t)) })
	t.Run("ClaimMax", func(t *testing.T) { testClaimMax(t, newStore(t)) })
	t.Run("FinishAndRetry", func(t *testing.T) { testFinishAndRetry(t, newStore(t)) })
	t.Run("ConcurrentClaimers", func(t *testing.T) { testConcurrentClaimers(t, newStore(t)) })
}

// nt0 is the suite's clock: milliseconds, which both stores keep exactly.
var nt0 = time.Date(2026, 12, 3, 12, 0, 0, 125e6, time.UTC)

// notification is target's notification about room's item seq, sent at ts.
func notification(target, room string, seq int64, ts time.Time) chat.Notification {
	return chat.Notification{
		ID: chat.NotificationID(target, room, seq), Room: room, Seq: seq, From: "carol",
		Text: fmt.Sprintf("@%s look at %d", target, seq), Kind: chat.NotifyMention, TS: chat.Timestamp(ts), User: target,
	}
}

// delivery is a webhook delivery named id, due at next.
func delivery(id string, next time.Time) chat.Delivery {
	return chat.Delivery{ID: id, Kind: chat.DeliverWebhook, URL: "https://hooks.example/" + id, Body: []byte(`{"id":"` + id + `"}`), NextAt: next}
}

func mustAdd(t *testing.T, s chat.Notifications, n chat.Notification, ds ...chat.Delivery) bool {
	t.Helper()
	created, err := s.AddNotification(t.Context(), n, ds)
	must(t, err, "AddNotification "+n.ID)
	return created
}

func mustList(t *testing.T, s chat.Notifications, user string, q chat.NotificationQuery) chat.NotificationPage {
	t.Helper()
	p, err := s.ListNotifications(t.Context(), user, q)
	must(t, err, "ListNotifications "+user)
	if p.Notifications == nil {
		t.Fatalf("ListNotifications %s: nil Notifications", user)
	}
	if len(p.Notifications) > q.Limit {
		t.Fatalf("ListNotifications %s: %d notifications, limit %d", user, len(p.Notifications), q.Limit)
	}
	return p
}

func notificationIDs(ns []chat.Notification) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.ID
	}
	return out
}

func wantNotifications(t *testing.T, what string, p chat.NotificationPage, want []chat.Notification, more bool) {
	t.Helper()
	if !reflect.DeepEqual(p.Notifications, want) && !(len(p.Notifications) == 0 && len(want) == 0) || p.HasMore != more {
		t.Fatalf("%s:\n got %+v more %v\nwant %+v more %v", what, p.Notifications, p.HasMore, want, more)
	}
}

func mustClaim(t *testing.T, s chat.Notifications, now time.Time, lease time.Duration, max int) []chat.Delivery {
	t.Helper()
	ds, err := s.ClaimDeliveries(t.Context(), now, lease, max)
	must(t, err, "ClaimDeliveries")
	if len(ds) > max {
		t.Fatalf("ClaimDeliveries: %d deliveries, max %d", len(ds), max)
	}
	return ds
}

func deliveryIDs(ds []chat.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	slices.Sort(out)
	return out
}

func wantClaimed(t *testing.T, what string, got []chat.Delivery, want ...string) {
	t.Helper()
	if ids := deliveryIDs(got); !slices.Equal(ids, want) && !(len(ids) == 0 && len(want) == 0) {
		t.Fatalf("%s: claimed %q, want %q", what, ids, want)
	}
}

// equalDelivery compares a claimed delivery with what was queued, times by
// Equal.
func equalDelivery(t *testing.T, what string, got, want chat.Delivery) {
	t.Helper()
	g, w := got, want
	g.NextAt, w.NextAt = time.Time{}, time.Time{}
	if len(g.Body) == 0 && len(w.Body) == 0 {
		g.Body, w.Body = nil, nil
	}
	if !reflect.DeepEqual(g, w) || !got.NextAt.Equal(want.NextAt) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func testNotificationRoundTrip(t *testing.T, s chat.Notifications) {
	wantNotifications(t, "empty list", mustList(t, s, "alice", chat.NotificationQuery{Limit: 10}), nil, false)
	n := chat.Notification{
		ID: chat.NotificationID("alice", "dm-1", 42), Room: "dm-1", Seq: 42, From: "bob.b",
		Text: "Ünïcode, \"quotes\" and a\nnewline", Kind: chat.NotifyDirect, TS: chat.Timestamp(nt0), User: "alice",
	}
	push := chat.Delivery{ID: "d-push", Kind: chat.DeliverPush, URL: "https://push.example/ep1", User: "alice",
		P256dh: "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM", Auth: "tBHItJI5svbpez7KI4CCXg",
		Body: []byte{0, 1, 2, 255, '{'}, Attempts: 0, NextAt: nt0}
	hook := delivery("d-hook", nt0.Add(-time.Second))
	hook.Attempts = 3
	if !mustAdd(t, s, n, push, hook) {
		t.Fatal("AddNotification of a new notification: created false")
	}
	wantNotifications(t, "alice's list", mustList(t, s, "alice", chat.NotificationQuery{Limit: 10}), []chat.Notification{n}, false)

	lease := 30 * time.Second
	got := mustClaim(t, s, nt0, lease, 10)
	wantClaimed(t, "the queued deliveries", got, "d-hook", "d-push")
	slices.SortFunc(got, func(a, b chat.Delivery) int { return strings.Compare(a.ID, b.ID) })
	hook.NextAt, push.NextAt = nt0.Add(lease), nt0.Add(lease) // leased
	equalDelivery(t, "the webhook delivery", got[0], hook)
	equalDelivery(t, "the push delivery", got[1], push)

	// A notification without deliveries (no subscription, no webhook).
	n2 := notification("alice", "club", 7, nt0.Add(time.Second))
	if !mustAdd(t, s, n2) {
		t.Fatal("AddNotification without deliveries: created false")
	}
	wantNotifications(t, "alice's list of two", mustList(t, s, "alice", chat.NotificationQuery{Limit: 10}), []chat.Notification{n, n2}, false)
}

func testNotificationIdempotent(t *testing.T, s chat.Notifications) {
	n := notification("alice", "club", 3, nt0)
	if !mustAdd(t, s, n, delivery("d1", nt0), delivery("d2", nt0)) {
		t.Fatal("first AddNotification: created false")
	}
	// The retry of a consumer that crashed after storing: the same
	// notification, the same deliveries.
	if mustAdd(t, s, n, delivery("d1", nt0), delivery("d2", nt0)) {
		t.Fatal("second AddNotification of the same notification: created true")
	}
	// Another instance making it with other text and other deliveries:
	// still nothing stored.
	other := n
	other.Text = "made elsewhere"
	if mustAdd(t, s, other, delivery("d3", nt0)) {
		t.Fatal("AddNotification of a stored id with other content: created true")
	}
	wantNotifications(t, "after three adds", mustList(t, s, "alice", chat.NotificationQuery{Limit: 10}), []chat.Notification{n}, false)
	wantClaimed(t, "deliveries after three adds", mustClaim(t, s, nt0, time.Minute, 10), "d1", "d2")

	// Sent and finished, a late retry does not queue them again.
	ctx := t.Context()
	must(t, s.FinishDelivery(ctx, "d1"), "finish d1")
	must(t, s.FinishDelivery(ctx, "d2"), "finish d2")
	if mustAdd(t, s, n, delivery("d1", nt0), delivery("d2", nt0)) {
		t.Fatal("AddNotification after the deliveries finished: created true")
	}
	wantClaimed(t, "deliveries after a late retry", mustClaim(t, s, nt0.Add(time.Hour), time.Minute, 10))
}

func testNotificationPaging(t *testing.T, s chat.Notifications) {
	// Eight notifications, oldest first; 3 and 4 share a ts, so their ids
	// order them.
	var all []chat.Notification
	for i := range 8 {
		all = append(all, notification("alice", "club", int64(i+1), nt0.Add(time.Duration(i)*time.Second)))
	}
	all[4].TS = all[3].TS
	slices.SortStableFunc(all, func(a, b chat.Notification) int {
		if c := strings.Compare(a.TS, b.TS); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	// Stored out of order: the list orders by (ts, id), not by arrival.
	for _, i := range []int{5, 0, 7, 3, 1, 6, 4, 2} {
		mustAdd(t, s, all[i])
	}
	cursor := func(n chat.Notification) chat.NotificationCursor { return chat.NotificationCursor{TS: n.TS, ID: n.ID} }
	list := func(q chat.NotificationQuery) chat.NotificationPage { return mustList(t, s, "alice", q) }

	wantNotifications(t, "latest 3", list(chat.NotificationQuery{Limit: 3}), all[5:], true)
	wantNotifications(t, "3 before the 6th", list(chat.NotificationQuery{Before: cursor(all[5]), Limit: 3}), all[2:5], true)
	// The cursor between two of one ts: the one with the lower id only.
	wantNotifications(t, "before the later of a shared ts", list(chat.NotificationQuery{Before: cursor(all[4]), Limit: 1}), all[3:4], true)
	wantNotifications(t, "first page, exactly full", list(chat.NotificationQuery{Before: cursor(all[2]), Limit: 2}), all[:2], false)
	wantNotifications(t, "before the first", list(chat.NotificationQuery{Before: cursor(all[0]), Limit: 5}), nil, false)
	wantNotifications(t, "all in one page", list(chat.NotificationQuery{Limit: 8}), all, false)
	wantNotifications(t, "a limit beyond all", list(chat.NotificationQuery{Limit: 100}), all, false)
	// A cursor need not name a stored notification: a ts between two.
	between := chat.NotificationCursor{TS: chat.Timestamp(nt0.Add(1500 * time.Millisecond)), ID: "n"}
	wantNotifications(t, "before a ts of none", list(chat.NotificationQuery{Before: between, Limit: 5}), all[:2], false)

	for limit := 1; limit <= 8; limit++ {
		var got []chat.Notification
		q := chat.NotificationQuery{Limit: limit}
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatalf("limit %d: paging does not end", limit)
			}
			p := list(q)
			if p.HasMore && len(p.Notifications) != limit {
				t.Fatalf("limit %d: a page of %d says more", limit, len(p.Notifications))
			}
			got = append(slices.Clone(p.Notifications), got...)
			if !p.HasMore {
				break
			}
			q.Before = cursor(p.Notifications[0])
		}
		if !slices.Equal(notificationIDs(got), notificationIDs(all)) {
			t.Fatalf("walk with limit %d: %q, want %q", limit, notificationIDs(got), notificationIDs(all))
		}
	}

	if _, err := s.ListNotifications(t.Context(), "alice", chat.NotificationQuery{Limit: 0}); err == nil {
		t.Fatal("ListNotifications with limit 0: no error")
	}
}

func testNotificationUsers(t *testing.T, s chat.Notifications) {
	// One item mentioning both: two notifications, one in each list.
	a := notification("alice", "club", 5, nt0)
	b := notification("bob", "club", 5, nt0)
	if a.ID == b.ID {
		t.Fatal("the suite's notifications share an id")
	}
	if !mustAdd(t, s, a) || !mustAdd(t, s, b) {
		t.Fatal("AddNotification: created false")
	}
	a2 := notification("alice", "club", 6, nt0.Add(time.Second))
	mustAdd(t, s, a2)
	wantNotifications(t, "alice's", mustList(t, s, "alice", chat.NotificationQuery{Limit: 10}), []chat.Notification{a, a2}, false)
	wantNotifications(t, "bob's", mustList(t, s, "bob", chat.NotificationQuery{Limit: 10}), []chat.Notification{b}, false)
	wantNotifications(t, "bob's latest 1", mustList(t, s, "bob", chat.NotificationQuery{Limit: 1}), []chat.Notification{b}, false)
	wantNotifications(t, "carol's", mustList(t, s, "carol", chat.NotificationQuery{Limit: 10}), nil, false)
	// A prefix of a name is another user.
	wantNotifications(t, "ali's", mustList(t, s, "ali", chat.NotificationQuery{Limit: 10}), nil, false)
}

func subscription(user, endpoint string) chat.PushSubscription {
	return chat.PushSubscription{User: user, Endpoint: endpoint, P256dh: "key-" + user + "-" + endpoint, Auth: "auth-" + endpoint}
}

func mustSubs(t *testing.T, s chat.Notifications, user string) []chat.PushSubscription {
	t.Helper()
	subs, err := s.PushSubscriptions(t.Context(), user)
	must(t, err, "PushSubscriptions "+user)
	slices.SortFunc(subs, func(a, b chat.PushSubscription) int { return strings.Compare(a.Endpoint, b.Endpoint) })
	return subs
}

func wantSubs(t *testing.T, what string, got []chat.PushSubscription, want ...chat.PushSubscription) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func testPushSubscriptions(t *testing.T, s chat.Notifications) {
	ctx := t.Context()
	const max = 5
	wantSubs(t, "none", mustSubs(t, s, "alice"))
	e1 := subscription("alice", "https://push.example/send/e1")
	e2 := subscription("alice", "https://push.example/send/e2")
	must(t, s.AddPushSubscription(ctx, e1, max), "add e1")
	must(t, s.AddPushSubscription(ctx, e2, max), "add e2")
	wantSubs(t, "alice's two", mustSubs(t, s, "alice"), e1, e2)

	// The browser renews its keys: the same endpoint, replaced.
	e1.P256dh, e1.Auth = "new-key", "new-auth"
	must(t, s.AddPushSubscription(ctx, e1, max), "renew e1")
	wantSubs(t, "after renewing e1", mustSubs(t, s, "alice"), e1, e2)

	// Bob signs in on that browser: the endpoint is his now.
	b1 := subscription("bob", e1.Endpoint)
	must(t, s.AddPushSubscription(ctx, b1, max), "bob takes e1")
	wantSubs(t, "alice's after bob took e1", mustSubs(t, s, "alice"), e2)
	wantSubs(t, "bob's", mustSubs(t, s, "bob"), b1)

	// Removing is the holder's: alice cannot remove bob's.
	must(t, s.RemovePushSubscription(ctx, "alice", b1.Endpoint), "alice removes bob's endpoint")
	wantSubs(t, "bob's after alice's remove", mustSubs(t, s, "bob"), b1)
	must(t, s.RemovePushSubscription(ctx, "alice", e2.Endpoint), "remove e2")
	wantSubs(t, "alice's after removing e2", mustSubs(t, s, "alice"))
	must(t, s.RemovePushSubscription(ctx, "alice", e2.Endpoint), "remove e2 again")
	must(t, s.RemovePushSubscription(ctx, "nobody", "https://push.example/none"), "remove a missing one")
	must(t, s.RemovePushSubscription(ctx, "bob", b1.Endpoint), "bob removes b1")
	wantSubs(t, "bob's after his remove", mustSubs(t, s, "bob"))
}

func testPushLimit(t *testing.T, s chat.Notifications) {
	ctx := t.Context()
	const max = 3
	var held []chat.PushSubscription
	for i := range max {
		sub := subscription("alice", fmt.Sprintf("https://push.example/e%d", i))
		must(t, s.AddPushSubscription(ctx, sub, max), "add "+sub.Endpoint)
		held = append(held, sub)
	}
	extra := subscription("alice", "https://push.example/e9")
	if err := s.AddPushSubscription(ctx, extra, max); chat.ErrorCode(err) != chat.ERateLimited {
		t.Fatalf("add beyond %d: %v, want %s", max, err, chat.ERateLimited)
	}
	wantSubs(t, "after a refused add", mustSubs(t, s, "alice"), held...)
	// At the limit, renewing one held is no new subscription.
	held[1].Auth = "renewed"
	must(t, s.AddPushSubscription(ctx, held[1], max), "renew at the limit")
	wantSubs(t, "after renewing at the limit", mustSubs(t, s, "alice"), held...)
	// Another user's limit is their own.
	must(t, s.AddPushSubscription(ctx, subscription("bob", "https://push.example/b0"), max), "bob's first")
	// An endpoint taken from another user counts for the taker.
	if err := s.AddPushSubscription(ctx, subscription("alice", "https://push.example/b0"), max); chat.ErrorCode(err) != chat.ERateLimited {
		t.Fatalf("alice taking bob's endpoint at her limit: %v, want %s", err, chat.ERateLimited)
	}
	wantSubs(t, "bob's after alice was refused his endpoint", mustSubs(t, s, "bob"), subscription("bob", "https://push.example/b0"))
	// Room again after a remove.
	must(t, s.RemovePushSubscription(ctx, "alice", held[0].Endpoint), "remove one")
	must(t, s.AddPushSubscription(ctx, extra, max), "add after a remove")
	wantSubs(t, "after a remove and an add", mustSubs(t, s, "alice"), held[1], held[2], extra)
	// A limit of 1: only the one.
	must(t, s.AddPushSubscription(ctx, subscription("carol", "https://push.example/c0"), 1), "carol's first")
	if err := s.AddPushSubscription(ctx, subscription("carol", "https://push.example/c1"), 1); chat.ErrorCode(err) != chat.ERateLimited {
		t.Fatalf("carol's second with limit 1: %v, want %s", err, chat.ERateLimited)
	}
}

func testClaimLeases(t *testing.T, s chat.Notifications) {
	const lease = 30 * time.Second
	wantClaimed(t, "empty outbox", mustClaim(t, s, nt0, lease, 10))
	mustAdd(t, s, notification("alice", "club", 1, nt0),
		delivery("due", nt0), delivery("overdue", nt0.Add(-time.Minute)), delivery("later", nt0.Add(10*time.Second)))

	wantClaimed(t, "at t0", mustClaim(t, s, nt0, lease, 10), "due", "overdue")
	wantClaimed(t, "at t0 again", mustClaim(t, s, nt0, lease, 10))
	wantClaimed(t, "just before later is due", mustClaim(t, s, nt0.Add(10*time.Second-time.Millisecond), lease, 10))
	wantClaimed(t, "when later is due", mustClaim(t, s, nt0.Add(10*time.Second), lease, 10), "later")
	wantClaimed(t, "just before the lease ends", mustClaim(t, s, nt0.Add(lease-time.Millisecond), lease, 10))
	// The claimer did not finish them in time (it died): claimable again.
	got := mustClaim(t, s, nt0.Add(lease), lease, 10)
	wantClaimed(t, "when the lease ends", got, "due", "overdue")
	for _, d := range got {
		if !d.NextAt.Equal(nt0.Add(2 * lease)) {
			t.Fatalf("claimed again: %s next at %v, want %v", d.ID, d.NextAt, nt0.Add(2*lease))
		}
	}
	wantClaimed(t, "when later's lease ends", mustClaim(t, s, nt0.Add(10*time.Second+lease), lease, 10), "later")

	if _, err := s.ClaimDeliveries(t.Context(), nt0.Add(time.Hour), lease, 0); err == nil {
		t.Fatal("ClaimDeliveries with max 0: no error")
	}
}

func testClaimMax(t *testing.T, s chat.Notifications) {
	var ds []chat.Delivery
	for i := range 7 {
		ds = append(ds, delivery(fmt.Sprintf("d%d", i), nt0.Add(-time.Duration(i)*time.Second)))
	}
	mustAdd(t, s, notification("alice", "club", 1, nt0), ds...)
	seen := map[string]bool{}
	for _, n := range []int{3, 3, 1} {
		got := mustClaim(t, s, nt0, time.Minute, 3)
		if len(got) != n {
			t.Fatalf("claim up to 3 of the %d left: %d", 7-len(seen), len(got))
		}
		for _, d := range got {
			if seen[d.ID] {
				t.Fatalf("%s claimed twice within its lease", d.ID)
			}
			seen[d.ID] = true
		}
	}
	wantClaimed(t, "all claimed", mustClaim(t, s, nt0, time.Minute, 3))
}

func testFinishAndRetry(t *testing.T, s chat.Notifications) {
	ctx := t.Context()
	const lease = 30 * time.Second
	mustAdd(t, s, notification("alice", "club", 1, nt0), delivery("sent", nt0), delivery("failed", nt0), delivery("gone", nt0))
	wantClaimed(t, "at t0", mustClaim(t, s, nt0, lease, 10), "failed", "gone", "sent")

	must(t, s.FinishDelivery(ctx, "sent"), "finish")
	must(t, s.FinishDelivery(ctx, "sent"), "finish again")
	must(t, s.FinishDelivery(ctx, "no-such-delivery"), "finish a missing one")
	// A retry sooner than the lease ends: the retry time rules.
	retry := nt0.Add(5 * time.Second)
	must(t, s.RetryDelivery(ctx, "failed", 1, retry), "retry")
	must(t, s.RetryDelivery(ctx, "no-such-delivery", 1, retry), "retry a missing one")

	wantClaimed(t, "just before the retry", mustClaim(t, s, retry.Add(-time.Millisecond), lease, 10))
	got := mustClaim(t, s, retry, lease, 10)
	wantClaimed(t, "at the retry", got, "failed")
	want := delivery("failed", retry.Add(lease))
	want.Attempts = 1
	equalDelivery(t, "the retried delivery", got[0], want)

	// A retry later than the lease: not claimable when the lease ends.
	later := nt0.Add(time.Hour)
	must(t, s.RetryDelivery(ctx, "failed", 2, later), "retry later")
	wantClaimed(t, "when the leases end", mustClaim(t, s, retry.Add(lease), lease, 10), "gone")
	must(t, s.FinishDelivery(ctx, "gone"), "finish gone")
	wantClaimed(t, "just before the later retry", mustClaim(t, s, later.Add(-time.Millisecond), lease, 10))
	got = mustClaim(t, s, later, lease, 10)
	wantClaimed(t, "at the later retry", got, "failed")
	if got[0].Attempts != 2 {
		t.Fatalf("attempts %d, want 2", got[0].Attempts)
	}
	// Finished, never claimed again.
	must(t, s.FinishDelivery(ctx, "failed"), "finish failed")
	wantClaimed(t, "after finishing all", mustClaim(t, s, later.Add(24*time.Hour), lease, 10))
}

// testConcurrentClaimers runs claimers at once on one outbox, as instances
// draining it do: none may be handed a delivery another holds.
func testConcurrentClaimers(t *testing.T, s chat.Notifications) {
	const (
		n        = 40
		claimers = 2
		batch    = 4
	)
	var ds []chat.Delivery
	for i := range n {
		ds = append(ds, delivery(fmt.Sprintf("d%02d", i), nt0))
	}
	mustAdd(t, s, notification("alice", "club", 1, nt0), ds...)

	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		got   = make([][]string, claimers)
		errs  = make([]error, claimers)
	)
	for c := range claimers {
		wg.Go(func() {
			<-start
			for empty := 0; empty < 2; {
				claimed, err := s.ClaimDeliveries(t.Context(), nt0, time.Minute, batch)
				if err != nil {
					errs[c] = err
					return
				}
				if len(claimed) == 0 {
					empty++
				}
				got[c] = append(got[c], deliveryIDs(claimed)...)
			}
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		must(t, err, "ClaimDeliveries")
	}
	// A claimer may give up while the other holds what it saw due; what
	// neither got is claimable still, once.
	rest := deliveryIDs(mustClaim(t, s, nt0, time.Minute, n))
	owner := map[string]int{}
	for c, ids := range append(got, rest) {
		for _, id := range ids {
			if o, ok := owner[id]; ok {
				t.Fatalf("%s claimed by claimer %d and by %d (the last is the final sweep)", id, o, c)
			}
			owner[id] = c
		}
	}
	if len(owner) != n {
		t.Fatalf("%d of %d deliveries claimed", len(owner), n)
	}
	t.Logf("claimed: %d, %d; final sweep %d", len(got[0]), len(got[1]), len(rest))
}
