package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/parley-chat/parley/app/chat"
)

// Notifications, push subscriptions and the outbox (chat.Notifications):
//
//	notifications/<user>/<ts>\x00<id>  a notification, JSON (notificationRec);
//	                                   ts is chat.TSLayout, fixed width, so
//	                                   byte order is (ts, id) order: a page
//	                                   is a cursor walk
//	notification_ids/<id>              its target: the idempotency index
//	push/<user>/<endpoint>             a push subscription's keys, JSON
//	push_endpoints/<endpoint>          its user: an endpoint is one browser,
//	                                   held by one user at a time
//	outbox/<id>                        a queued delivery, JSON (deliveryRec)
//	outbox_due/<next_at><id>           the due index: next_at as sortable
//	                                   milliseconds (see dueKey), so claiming
//	                                   walks the due ones from the front
//
// Every method is one transaction, and bbolt runs one write transaction at a
// time: a claim is atomic without anything more (this store serves one
// process anyway). Times are kept in milliseconds, as MongoDB keeps them, so
// both stores answer alike.
//
// Like people's buckets, these came without a new format: an older Parley
// never opens them.
var (
	bucketNotifications = []byte("notifications")
	bucketNotifyIDs     = []byte("notification_ids")
	bucketPush          = []byte("push")
	bucketPushEndpoints = []byte("push_endpoints")
	bucketOutbox        = []byte("outbox")
	bucketOutboxDue     = []byte("outbox_due")
)

var _ chat.Notifications = (*Store)(nil)

// notificationRec is a notification as stored: chat.Notification keeps its
// User off the wire, the store keeps it.
type notificationRec struct {
	chat.Notification
	User string `json:"user"`
}

// pushRec is a push subscription's value under push/<user>/<endpoint>.
type pushRec struct {
	P256dh string `json:"p256dh"`
	Auth   string `json:"auth"`
}

// deliveryRec is a delivery as stored under outbox/<id>.
type deliveryRec struct {
	Kind     string `json:"kind"`
	URL      string `json:"url"`
	User     string `json:"user,omitempty"`
	P256dh   string `json:"p256dh,omitempty"`
	Auth     string `json:"auth,omitempty"`
	Body     []byte `json:"body,omitempty"`
	Attempts int    `json:"attempts"`
	// NextAtMS is NextAt in Unix milliseconds, the due index's key.
	NextAtMS int64 `json:"next_at_ms"`
}

func (r deliveryRec) delivery(id string) chat.Delivery {
	return chat.Delivery{ID: id, Kind: r.Kind, URL: r.URL, User: r.User, P256dh: r.P256dh, Auth: r.Auth,
		Body: r.Body, Attempts: r.Attempts, NextAt: time.UnixMilli(r.NextAtMS).UTC()}
}

// notifyKey is a notification's key in its user's bucket.
func notifyKey(ts, id string) []byte {
	return append(append([]byte(ts), 0), id...)
}

// dueKey is the due index key of delivery id due at ms: ms with its sign bit
// flipped, big-endian (so that byte order is time order, before 1970 too:
// a zero NextAt means at once), then the id.
func dueKey(ms int64, id string) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(id)), uint64(ms)^(1<<63))
	return append(k, id...)
}

// dueMS is the time a due index key holds.
func dueMS(k []byte) int64 { return int64(binary.BigEndian.Uint64(k[:8]) ^ (1 << 63)) }

// AddNotification implements chat.Notifications in one write transaction:
// the notification, its index entry and every delivery, or nothing.
// A delivery whose id is queued already is left as it is.
func (s *Store) AddNotification(ctx context.Context, n chat.Notification, ds []chat.Delivery) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if n.ID == "" || n.User == "" {
		return false, fmt.Errorf("add notification: no id or no user")
	}
	for i, d := range ds {
		if d.ID == "" {
			return false, fmt.Errorf("add notification %s: delivery %d has no id", n.ID, i)
		}
	}
	val, err := json.Marshal(notificationRec{Notification: n, User: n.User})
	if err != nil {
		return false, fmt.Errorf("add notification %s: %w", n.ID, err)
	}
	created := false
	err = s.db.Update(func(tx *bbolt.Tx) error {
		ids := tx.Bucket(bucketNotifyIDs)
		if ids.Get([]byte(n.ID)) != nil {
			return nil
		}
		ub, err := tx.Bucket(bucketNotifications).CreateBucketIfNotExists([]byte(n.User))
		if err != nil {
			return err
		}
		if err := ub.Put(notifyKey(n.TS, n.ID), val); err != nil {
			return err
		}
		if err := ids.Put([]byte(n.ID), []byte(n.User)); err != nil {
			return err
		}
		outbox, due := tx.Bucket(bucketOutbox), tx.Bucket(bucketOutboxDue)
		for _, d := range ds {
			if outbox.Get([]byte(d.ID)) != nil {
				continue
			}
			rec := deliveryRec{Kind: d.Kind, URL: d.URL, User: d.User, P256dh: d.P256dh, Auth: d.Auth,
				Body: d.Body, Attempts: d.Attempts, NextAtMS: d.NextAt.UnixMilli()}
			if err := putDelivery(outbox, due, d.ID, rec); err != nil {
				return err
			}
		}
		created = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("add notification %s: %w", n.ID, err)
	}
	return created, nil
}

// putDelivery stores rec and its due index entry (the caller deletes the old
// entry when it moves).
func putDelivery(outbox, due *bbolt.Bucket, id string, rec deliveryRec) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := outbox.Put([]byte(id), v); err != nil {
		return err
	}
	return due.Put(dueKey(rec.NextAtMS, id), nil)
}

// ListNotifications implements chat.Notifications with a backward cursor walk
// of the user's bucket from the page's end: a page costs its length, however
// long the list.
func (s *Store) ListNotifications(ctx context.Context, user string, q chat.NotificationQuery) (chat.NotificationPage, error) {
	if err := ctx.Err(); err != nil {
		return chat.NotificationPage{}, err
	}
	if q.Limit < 1 {
		return chat.NotificationPage{}, fmt.Errorf("list notifications: limit %d is not positive", q.Limit)
	}
	page := chat.NotificationPage{Notifications: []chat.Notification{}}
	err := s.db.View(func(tx *bbolt.Tx) error {
		ub := tx.Bucket(bucketNotifications).Bucket([]byte(user))
		if ub == nil {
			return nil
		}
		c := ub.Cursor()
		var k, v []byte
		if q.Before == (chat.NotificationCursor{}) {
			k, v = c.Last()
		} else if k, _ = c.Seek(notifyKey(q.Before.TS, q.Before.ID)); k == nil {
			k, v = c.Last() // every key is below the cursor
		} else {
			k, v = c.Prev() // Seek lands on the cursor itself or the first above it
		}
		for ; k != nil && len(page.Notifications) < q.Limit; k, v = c.Prev() {
			var r notificationRec
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode notification %q: %w", k, err)
			}
			r.Notification.User = r.User
			page.Notifications = append(page.Notifications, r.Notification)
		}
		page.HasMore = k != nil
		return nil
	})
	if err != nil {
		return chat.NotificationPage{}, fmt.Errorf("list notifications of %s: %w", user, err)
	}
	// Read backwards, the page must still be oldest first.
	for i, j := 0, len(page.Notifications)-1; i < j; i, j = i+1, j-1 {
		page.Notifications[i], page.Notifications[j] = page.Notifications[j], page.Notifications[i]
	}
	return page, nil
}

// AddPushSubscription implements chat.Notifications in one write
// transaction: the limit is counted and the subscription stored (taken from
// its former holder, if any) with nothing in between.
func (s *Store) AddPushSubscription(ctx context.Context, sub chat.PushSubscription, max int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if sub.User == "" || sub.Endpoint == "" {
		return fmt.Errorf("add push subscription: no user or no endpoint")
	}
	val, err := json.Marshal(pushRec{P256dh: sub.P256dh, Auth: sub.Auth})
	if err != nil {
		return fmt.Errorf("add push subscription: %w", err)
	}
	ep := []byte(sub.Endpoint)
	err = s.db.Update(func(tx *bbolt.Tx) error {
		push, endpoints := tx.Bucket(bucketPush), tx.Bucket(bucketPushEndpoints)
		held := 0
		if ub := push.Bucket([]byte(sub.User)); ub != nil {
			if err := ub.ForEach(func(k, _ []byte) error {
				if !bytes.Equal(k, ep) {
					held++
				}
				return nil
			}); err != nil {
				return err
			}
		}
		if held >= max {
			return chat.Errorf(chat.ERateLimited, "at most %d push subscriptions per user", max)
		}
		if old := endpoints.Get(ep); old != nil && string(old) != sub.User {
			if err := unindex(push, old, ep); err != nil {
				return err
			}
		}
		ub, err := push.CreateBucketIfNotExists([]byte(sub.User))
		if err != nil {
			return err
		}
		if err := ub.Put(ep, val); err != nil {
			return err
		}
		return endpoints.Put(ep, []byte(sub.User))
	})
	if chat.ErrorCode(err) == chat.ERateLimited {
		return err
	}
	if err != nil {
		return fmt.Errorf("add push subscription of %s: %w", sub.User, err)
	}
	return nil
}

// RemovePushSubscription implements chat.Notifications. Only the holder's
// subscription goes: an endpoint another user holds now is theirs.
func (s *Store) RemovePushSubscription(ctx context.Context, user, endpoint string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ep := []byte(endpoint)
	err := s.db.Update(func(tx *bbolt.Tx) error {
		endpoints := tx.Bucket(bucketPushEndpoints)
		if string(endpoints.Get(ep)) != user {
			return nil
		}
		if err := endpoints.Delete(ep); err != nil {
			return err
		}
		return unindex(tx.Bucket(bucketPush), []byte(user), ep)
	})
	if err != nil {
		return fmt.Errorf("remove push subscription of %s: %w", user, err)
	}
	return nil
}

// PushSubscriptions implements chat.Notifications.
func (s *Store) PushSubscriptions(ctx context.Context, user string) ([]chat.PushSubscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var subs []chat.PushSubscription
	err := s.db.View(func(tx *bbolt.Tx) error {
		ub := tx.Bucket(bucketPush).Bucket([]byte(user))
		if ub == nil {
			return nil
		}
		return ub.ForEach(func(k, v []byte) error {
			var r pushRec
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode subscription %q: %w", k, err)
			}
			subs = append(subs, chat.PushSubscription{User: user, Endpoint: string(k), P256dh: r.P256dh, Auth: r.Auth})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("push subscriptions of %s: %w", user, err)
	}
	return subs, nil
}

// ClaimDeliveries implements chat.Notifications in one write transaction,
// which no other claim can interleave with: it walks the due index from the
// front while entries are due and moves each one it takes to now+lease.
func (s *Store) ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, max int) ([]chat.Delivery, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if max < 1 {
		return nil, fmt.Errorf("claim deliveries: max %d is not positive", max)
	}
	nowMS, until := now.UnixMilli(), now.Add(lease).UnixMilli()
	var out []chat.Delivery
	err := s.db.Update(func(tx *bbolt.Tx) error {
		outbox, due := tx.Bucket(bucketOutbox), tx.Bucket(bucketOutboxDue)
		// Keys first, then the moves: a bucket is not changed while a
		// cursor walks it.
		var keys [][]byte
		c := due.Cursor()
		for k, _ := c.First(); k != nil && len(keys) < max && dueMS(k) <= nowMS; k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			id := string(k[8:])
			if err := due.Delete(k); err != nil {
				return err
			}
			v := outbox.Get([]byte(id))
			if v == nil {
				continue // an index entry without its delivery: drop it
			}
			var r deliveryRec
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode delivery %s: %w", id, err)
			}
			r.NextAtMS = until
			if err := putDelivery(outbox, due, id, r); err != nil {
				return err
			}
			out = append(out, r.delivery(id))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	return out, nil
}

// FinishDelivery implements chat.Notifications; finishing one that is gone
// (finished by another holder whose lease it outlived) is no error.
func (s *Store) FinishDelivery(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		outbox := tx.Bucket(bucketOutbox)
		r, ok, err := storedDelivery(outbox, id)
		if err != nil || !ok {
			return err
		}
		if err := tx.Bucket(bucketOutboxDue).Delete(dueKey(r.NextAtMS, id)); err != nil {
			return err
		}
		return outbox.Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("finish delivery %s: %w", id, err)
	}
	return nil
}

// RetryDelivery implements chat.Notifications; retrying one that is gone is
// no error, as for FinishDelivery.
func (s *Store) RetryDelivery(ctx context.Context, id string, attempts int, next time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		outbox, due := tx.Bucket(bucketOutbox), tx.Bucket(bucketOutboxDue)
		r, ok, err := storedDelivery(outbox, id)
		if err != nil || !ok {
			return err
		}
		if err := due.Delete(dueKey(r.NextAtMS, id)); err != nil {
			return err
		}
		r.Attempts, r.NextAtMS = attempts, next.UnixMilli()
		return putDelivery(outbox, due, id, r)
	})
	if err != nil {
		return fmt.Errorf("retry delivery %s: %w", id, err)
	}
	return nil
}

// storedDelivery reads outbox/<id>, false when it is not there.
func storedDelivery(outbox *bbolt.Bucket, id string) (deliveryRec, bool, error) {
	v := outbox.Get([]byte(id))
	if v == nil {
		return deliveryRec{}, false, nil
	}
	var r deliveryRec
	if err := json.Unmarshal(v, &r); err != nil {
		return deliveryRec{}, false, fmt.Errorf("decode delivery: %w", err)
	}
	return r, true, nil
}
