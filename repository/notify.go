package repository

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parley-chat/parley/app/chat"
)

// Notifications, push subscriptions and the outbox (chat.Notifications) on
// MongoDB:
//
//	notifications       {_id: id, user, room, seq, from, text, kind, ts}, ts
//	                    the wire's chat.TSLayout string (fixed width: string
//	                    order is time order), indexed by (user, ts, _id): a
//	                    page is one range of it
//	push_subscriptions  {_id: endpoint, user, p256dh, auth}, indexed by user:
//	                    an endpoint is one browser, held by one user at a time
//	deliveries          {_id: id, kind, url, user, p256dh, auth, body,
//	                    attempts, next_at, claim}, indexed by next_at
//	delivery_claims     {_id: delivery id + "/" + n, delivery, until}: the
//	                    claims (leases) of deliveries (see ClaimDeliveries),
//	                    indexed by delivery
//
// As for messages, every invariant rests on unique _id inserts, the one write
// that FerretDB makes atomic: its updates (findAndModify included) read the
// matching documents and then write them back by _id, so that two claimers
// running findOneAndUpdate on one due delivery could both get it.
const (
	notificationsColl  = "notifications"
	pushSubsColl       = "push_subscriptions"
	deliveriesColl     = "deliveries"
	claimsColl         = "delivery_claims"
	notifyUserTSIndex  = "user_ts_id"
	pushUserIndex      = "user"
	deliveryNextIndex  = "next_at"
	claimDeliveryIndex = "delivery"
	// maxClaimTakeovers bounds the dead claims one claim steps over (see
	// claim): each is a claimer that died between its two writes.
	maxClaimTakeovers = 16
)

var _ chat.Notifications = (*Store)(nil)

// notifyIndexes are the indexes of this file's collections, created by
// createIndexes with the others.
func (s *Store) notifyIndexes() []struct {
	coll  *mongo.Collection
	model mongo.IndexModel
} {
	return []struct {
		coll  *mongo.Collection
		model mongo.IndexModel
	}{
		{s.notifications, mongo.IndexModel{
			Keys:    bson.D{{Key: "user", Value: 1}, {Key: "ts", Value: 1}, {Key: "_id", Value: 1}},
			Options: options.Index().SetName(notifyUserTSIndex),
		}},
		{s.pushSubs, mongo.IndexModel{Keys: bson.D{{Key: "user", Value: 1}}, Options: options.Index().SetName(pushUserIndex)}},
		{s.deliveries, mongo.IndexModel{Keys: bson.D{{Key: "next_at", Value: 1}}, Options: options.Index().SetName(deliveryNextIndex)}},
		{s.claims, mongo.IndexModel{Keys: bson.D{{Key: "delivery", Value: 1}}, Options: options.Index().SetName(claimDeliveryIndex)}},
	}
}

type notificationDoc struct {
	ID   string `bson:"_id"`
	User string `bson:"user"`
	Room string `bson:"room"`
	Seq  int64  `bson:"seq"`
	From string `bson:"from"`
	Text string `bson:"text"`
	Kind string `bson:"kind"`
	TS   string `bson:"ts"`
}

type pushDoc struct {
	Endpoint string `bson:"_id"`
	User     string `bson:"user"`
	P256dh   string `bson:"p256dh"`
	Auth     string `bson:"auth"`
}

type deliveryDoc struct {
	ID       string    `bson:"_id"`
	Kind     string    `bson:"kind"`
	URL      string    `bson:"url"`
	User     string    `bson:"user,omitempty"`
	P256dh   string    `bson:"p256dh,omitempty"`
	Auth     string    `bson:"auth,omitempty"`
	Body     []byte    `bson:"body,omitempty"`
	Attempts int       `bson:"attempts"`
	NextAt   time.Time `bson:"next_at"`
	// Claim is the number of the delivery's latest recorded claim, 0 for
	// none (see ClaimDeliveries).
	Claim int64 `bson:"claim"`
}

func (d deliveryDoc) delivery() chat.Delivery {
	return chat.Delivery{ID: d.ID, Kind: d.Kind, URL: d.URL, User: d.User, P256dh: d.P256dh, Auth: d.Auth,
		Body: d.Body, Attempts: d.Attempts, NextAt: d.NextAt.UTC()}
}

type claimDoc struct {
	ID       string    `bson:"_id"`
	Delivery string    `bson:"delivery"`
	Until    time.Time `bson:"until"`
}

// claimKey is the _id of claim n of delivery id: one per (id, n), since n,
// after the last "/", holds none.
func claimKey(id string, n int64) string { return id + "/" + strconv.FormatInt(n, 10) }

// AddNotification implements chat.Notifications in up to three writes, in an
// order that a crash anywhere leaves safe to retry (the notifications
// consumer retries with the same n and ds until it succeeds):
//
//  1. If the notification is stored, it was stored last (step 3), after all
//     its deliveries: nothing to do, created is false.
//  2. The deliveries are inserted, each only if its id is absent (a
//     duplicate key is a delivery queued by an earlier, crashed attempt).
//  3. The notification is inserted; a duplicate key means another instance
//     made it meanwhile (with the same deliveries: their ids come from the
//     notification), and created is false.
//
// Written the other way round, a crash between the writes would leave a
// stored notification whose deliveries are never queued: the retry would
// find the notification and stop. This order can instead queue a delivery
// again that was sent and finished in the moments between another
// instance's steps 2 and 3 — sent twice under one id (X-Parley-Delivery),
// which at-least-once delivery allows.
func (s *Store) AddNotification(ctx context.Context, n chat.Notification, ds []chat.Delivery) (bool, error) {
	if n.ID == "" || n.User == "" {
		return false, chat.Errorf(chat.EBadRequest, "add notification: no id or no user")
	}
	err := s.notifications.FindOne(ctx, bson.D{{Key: "_id", Value: n.ID}},
		options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, mongo.ErrNoDocuments) {
		return false, fmt.Errorf("add notification %s: %w", n.ID, err)
	}
	docs := make([]any, 0, len(ds))
	for i, d := range ds {
		if d.ID == "" {
			return false, chat.Errorf(chat.EBadRequest, "add notification %s: delivery %d has no id", n.ID, i)
		}
		docs = append(docs, deliveryDoc{ID: d.ID, Kind: d.Kind, URL: d.URL, User: d.User, P256dh: d.P256dh, Auth: d.Auth,
			Body: d.Body, Attempts: d.Attempts, NextAt: d.NextAt})
	}
	for chunk := range slices.Chunk(docs, insertChunk) {
		_, err := s.deliveries.InsertMany(ctx, chunk, options.InsertMany().SetOrdered(false))
		if err != nil && !onlyDuplicates(err) {
			return false, fmt.Errorf("add notification %s: queue deliveries: %w", n.ID, err)
		}
	}
	_, err = s.notifications.InsertOne(ctx, notificationDoc{ID: n.ID, User: n.User, Room: n.Room, Seq: n.Seq, From: n.From, Text: n.Text, Kind: n.Kind, TS: n.TS})
	if mongo.IsDuplicateKeyError(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("add notification %s: %w", n.ID, err)
	}
	return true, nil
}

// ListNotifications implements chat.Notifications: one range of the (user,
// ts, _id) index read backwards from the page's end, one more than asked to
// learn whether more lie beyond.
func (s *Store) ListNotifications(ctx context.Context, user string, q chat.NotificationQuery) (chat.NotificationPage, error) {
	if q.Limit < 1 {
		return chat.NotificationPage{}, chat.Errorf(chat.EBadRequest, "limit must be at least 1")
	}
	filter := bson.D{{Key: "user", Value: user}}
	if q.Before != (chat.NotificationCursor{}) {
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "ts", Value: bson.D{{Key: "$lt", Value: q.Before.TS}}}},
			bson.D{{Key: "ts", Value: q.Before.TS}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: q.Before.ID}}}},
		}})
	}
	cur, err := s.notifications.Find(ctx, filter, options.Find().
		SetSort(bson.D{{Key: "ts", Value: -1}, {Key: "_id", Value: -1}}).
		SetLimit(int64(q.Limit)+1))
	if err != nil {
		return chat.NotificationPage{}, fmt.Errorf("list notifications of %s: %w", user, err)
	}
	var docs []notificationDoc
	if err := cur.All(ctx, &docs); err != nil {
		return chat.NotificationPage{}, fmt.Errorf("list notifications of %s: %w", user, err)
	}
	page := chat.NotificationPage{HasMore: len(docs) > q.Limit, Notifications: make([]chat.Notification, 0, min(len(docs), q.Limit))}
	docs = docs[:min(len(docs), q.Limit)]
	slices.Reverse(docs)
	for _, d := range docs {
		page.Notifications = append(page.Notifications, chat.Notification{
			ID: d.ID, Room: d.Room, Seq: d.Seq, From: d.From, Text: d.Text, Kind: d.Kind, TS: d.TS, User: d.User})
	}
	return page, nil
}

// AddPushSubscription implements chat.Notifications: a count, then an
// upsert by endpoint. Without transactions the two are not atomic: the same
// user adding two new endpoints at the very same moment can end one above
// max. The limit bounds what one user makes the server hold and push to;
// one over it, for a race the user has to win on purpose, does not undo
// that.
func (s *Store) AddPushSubscription(ctx context.Context, sub chat.PushSubscription, max int) error {
	if sub.User == "" || sub.Endpoint == "" {
		return chat.Errorf(chat.EBadRequest, "add push subscription: no user or no endpoint")
	}
	held, err := s.pushSubs.CountDocuments(ctx, bson.D{{Key: "user", Value: sub.User}, {Key: "_id", Value: bson.D{{Key: "$ne", Value: sub.Endpoint}}}})
	if err != nil {
		return fmt.Errorf("add push subscription of %s: %w", sub.User, err)
	}
	if held >= int64(max) {
		return chat.Errorf(chat.ERateLimited, "at most %d push subscriptions per user", max)
	}
	doc := pushDoc{Endpoint: sub.Endpoint, User: sub.User, P256dh: sub.P256dh, Auth: sub.Auth}
	for try := 0; ; try++ {
		_, err = s.pushSubs.ReplaceOne(ctx, bson.D{{Key: "_id", Value: sub.Endpoint}}, doc, options.Replace().SetUpsert(true))
		// Two upserts of one new endpoint can race: the loser's insert
		// collides on _id, and its retry replaces the winner's document.
		if !mongo.IsDuplicateKeyError(err) || try == 1 {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("add push subscription of %s: %w", sub.User, err)
	}
	return nil
}

// RemovePushSubscription implements chat.Notifications. Only the holder's
// subscription goes: an endpoint another user holds now is theirs.
func (s *Store) RemovePushSubscription(ctx context.Context, user, endpoint string) error {
	_, err := s.pushSubs.DeleteOne(ctx, bson.D{{Key: "_id", Value: endpoint}, {Key: "user", Value: user}})
	if err != nil {
		return fmt.Errorf("remove push subscription of %s: %w", user, err)
	}
	return nil
}

// PushSubscriptions implements chat.Notifications.
func (s *Store) PushSubscriptions(ctx context.Context, user string) ([]chat.PushSubscription, error) {
	cur, err := s.pushSubs.Find(ctx, bson.D{{Key: "user", Value: user}})
	if err != nil {
		return nil, fmt.Errorf("push subscriptions of %s: %w", user, err)
	}
	var docs []pushDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("push subscriptions of %s: %w", user, err)
	}
	var subs []chat.PushSubscription
	for _, d := range docs {
		subs = append(subs, chat.PushSubscription{User: d.User, Endpoint: d.Endpoint, P256dh: d.P256dh, Auth: d.Auth})
	}
	return subs, nil
}

// ClaimDeliveries implements chat.Notifications. It reads up to max due
// deliveries and claims each with an insert into delivery_claims: claim n+1
// of a delivery whose latest recorded claim is n has the _id (id, n+1), so
// that of claimers racing for a delivery exactly one inserts it, whatever
// the server (see the collections' comment). The winner then records the
// claim on the delivery, moving next_at to the lease's end, and only then
// returns it.
//
// A winner may die between the insert and the record: the delivery still
// reads as due under claim n, and every later claimer collides on (id,
// n+1). A claimer that collides reads that claim: still within its lease,
// the delivery is held; past it, and still not recorded, the claimer takes
// the delivery over with claim n+2. So a lease is what the claim documents
// say, and the delivery's next_at only the index that finds due ones.
//
// It reads max due deliveries once: while other claimers hold some of those
// (claimed, not yet recorded) it returns fewer than max, and the next call
// finds the rest.
func (s *Store) ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, max int) ([]chat.Delivery, error) {
	if max < 1 {
		return nil, chat.Errorf(chat.EBadRequest, "claim deliveries: max must be at least 1")
	}
	// Milliseconds, as BSON dates hold them: the lease a claim records is
	// the one the caller gets back.
	until := time.UnixMilli(now.Add(lease).UnixMilli()).UTC()
	cur, err := s.deliveries.Find(ctx, bson.D{{Key: "next_at", Value: bson.D{{Key: "$lte", Value: now}}}}, options.Find().
		SetSort(bson.D{{Key: "next_at", Value: 1}}).
		SetLimit(int64(max)))
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	var due []deliveryDoc
	if err := cur.All(ctx, &due); err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	var out []chat.Delivery
	for _, d := range due {
		ok, err := s.claim(ctx, d, now, until)
		if err != nil {
			// Those claimed so far stay leased, and are sent once the
			// lease ends, by whoever claims them then.
			return nil, fmt.Errorf("claim deliveries: %w", err)
		}
		if ok {
			d.NextAt = until
			out = append(out, d.delivery())
		}
	}
	return out, nil
}

// claim tries to lease d (as read, due at now) until until, and reports
// whether it did.
func (s *Store) claim(ctx context.Context, d deliveryDoc, now, until time.Time) (bool, error) {
	n := d.Claim + 1
	for range maxClaimTakeovers {
		_, err := s.claims.InsertOne(ctx, claimDoc{ID: claimKey(d.ID, n), Delivery: d.ID, Until: until})
		if err == nil {
			res, err := s.deliveries.UpdateOne(ctx,
				bson.D{{Key: "_id", Value: d.ID}, {Key: "claim", Value: bson.D{{Key: "$lt", Value: n}}}},
				bson.D{{Key: "$set", Value: bson.D{{Key: "claim", Value: n}, {Key: "next_at", Value: until}}}})
			if err != nil {
				return false, fmt.Errorf("record claim of %s: %w", d.ID, err)
			}
			// No match: the delivery was finished since it was read (or,
			// after a lease this claimer outlived, claimed anew). Not ours
			// to send.
			return res.MatchedCount == 1, nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return false, fmt.Errorf("claim %s: %w", d.ID, err)
		}
		// Another claimer has claim n.
		var c claimDoc
		err = s.claims.FindOne(ctx, bson.D{{Key: "_id", Value: claimKey(d.ID, n)}}).Decode(&c)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return false, nil // finished meanwhile: its claims went with it
		}
		if err != nil {
			return false, fmt.Errorf("read claim of %s: %w", d.ID, err)
		}
		if c.Until.After(now) {
			return false, nil // held
		}
		// Claim n's lease is over. Recorded, the delivery says when it is
		// due; unrecorded, its claimer died before recording it.
		var fresh deliveryDoc
		err = s.deliveries.FindOne(ctx, bson.D{{Key: "_id", Value: d.ID}}).Decode(&fresh)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("reread %s: %w", d.ID, err)
		}
		if fresh.Claim >= n {
			if fresh.NextAt.After(now) {
				return false, nil
			}
			n = fresh.Claim
		}
		d = fresh
		n++
	}
	// Only claimers dying one after another between their two writes get
	// here; the next call goes on from the latest claim.
	return false, nil
}

// FinishDelivery implements chat.Notifications: the delivery, then its
// claims. A crash between the two leaves claim documents of a delivery that
// is gone, which no claim reads again (nothing finds a delivery that is
// gone) and which cost their few bytes.
func (s *Store) FinishDelivery(ctx context.Context, id string) error {
	if _, err := s.deliveries.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
		return fmt.Errorf("finish delivery %s: %w", id, err)
	}
	_, err := s.claims.DeleteMany(ctx, bson.D{{Key: "delivery", Value: id}})
	if err != nil {
		return fmt.Errorf("finish delivery %s: drop claims: %w", id, err)
	}
	return nil
}

// RetryDelivery implements chat.Notifications. The claim stays recorded: the
// next claimer takes the next claim number once next_at comes, lease or not
// (the holder retrying is done with it). Retrying one that is gone is no
// error: another holder finished it after this one's lease ended.
func (s *Store) RetryDelivery(ctx context.Context, id string, attempts int, next time.Time) error {
	_, err := s.deliveries.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "attempts", Value: attempts}, {Key: "next_at", Value: next}}}})
	if err != nil {
		return fmt.Errorf("retry delivery %s: %w", id, err)
	}
	return nil
}
