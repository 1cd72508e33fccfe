package chat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// What a user missed: read positions, unread and mention counts, receipts
// and notifications (PROTOCOL.md v2 "What you missed").
//
// A read position is a user's, per room: the seq up to which they have read.
// It moves by a read command (the read frame, PUT .../read), which travels
// the pipeline like an item, keyed by its room: the persist stage, which
// handles the room in order, caps it at the room's last seq, drops it when
// it would move back, stores it and republishes it, so that every instance's
// fan-out echoes it to the user's connections (and as a receipt to the
// room's, in small rooms). A read command is not a timeline item: it gets no
// seq and is never in history. An item a user sends moves their read
// position to it as well: you have read what you answered.
//
// Counts come from two numbers the persist stage stamps on every item it
// stores: its seq, and Events, how many timeline events (items with a Kind)
// the room holds up to it. The messages after read position r up to the
// last seq L are then (L - r) - (Events at L - Events at r), whatever the
// size of the gap: two lookups per room, not a scan. A user's own messages
// need no subtracting: each moved their read position past itself.

// Kinds of records that are not timeline items (besides kindRefusal).
const (
	// KindRead is a read command on the send topic, and its decided form
	// on the receive topic: Data.Seq is the read position.
	KindRead = "read"
	// KindNotification is a receive record carrying an in-app
	// notification to its target's connections (Data.Notification).
	KindNotification = "notification"
)

// ReceiptsMaxMembers bounds the rooms that keep receipts: direct rooms and
// rooms of at most this many members.
const ReceiptsMaxMembers = 100

// NewRead is the read command of user in room up to seq.
func NewRead(user Author, room string, seq int64, now time.Time) Message {
	return Message{Room: room, ID: NewID(), User: user.Name, Guest: user.Guest, TS: Timestamp(now),
		Kind: KindRead, Data: &ItemData{Seq: seq}}
}

// IsTimeline reports whether a receive record's message is a timeline item
// (it has a seq), not a refusal, read or notification.
func (m *Message) IsTimeline() bool {
	switch m.Kind {
	case kindRefusal, KindRead, KindNotification:
		return false
	}
	return true
}

// ReadMark is one user's read position in one room.
type ReadMark struct {
	Room string
	User string
	Seq  int64
}

// MentionMark records that the item at Seq of Room mentions User.
type MentionMark struct {
	User string
	Room string
	Seq  int64
}

// Marks keeps read positions and the mention index, and counts what each
// user missed. The persist stage writes them; room lists read them. Both
// stores implement it beside Store.
type Marks interface {
	// SaveMarks raises each read position to its Seq (never lowers it; a
	// user's first position is created) and records each mention (a
	// mention recorded already is kept once). Safe to retry.
	SaveMarks(ctx context.Context, reads []ReadMark, mentions []MentionMark) error
	// ReadSeqs returns the read positions of users in room; a user with
	// none is absent from the map.
	ReadSeqs(ctx context.Context, room string, users []string) (map[string]int64, error)
	// Counts fills ReadSeq, Unread and Mentions of each room (Room and
	// LastSeq set by the caller) for user:
	//   - ReadSeq: user's read position, 0 when none, never above LastSeq;
	//   - Unread: the plain messages (no Kind) with seq in (ReadSeq,
	//     LastSeq], computed from the stored items' seq and Events (see
	//     above), so: LastSeq-ReadSeq minus the events between. The item
	//     at ReadSeq may be gone (retention, or ReadSeq 0): the first
	//     stored item after ReadSeq stands in (its Events, less one if it
	//     is itself an event). No item after ReadSeq: Unread 0;
	//   - Mentions: the recorded mentions of user in the room with seq in
	//     (ReadSeq, LastSeq].
	Counts(ctx context.Context, user string, rooms []RoomSummary) error
}

// Notification kinds.
const (
	NotifyMention = "mention"
	NotifyDirect  = "direct"
)

// Notification is one in-app notification: an item that mentions its
// target, or a direct message to them, still unread NotifyDelay after it
// was sent.
type Notification struct {
	// ID is NotificationID(User, Room, Seq): the same whichever instance
	// makes it, however many times.
	ID   string `json:"id"`
	Room string `json:"room"`
	Seq  int64  `json:"seq"`
	From string `json:"from"`
	Text string `json:"text"`
	Kind string `json:"kind"`
	// TS is the item's ts.
	TS string `json:"ts"`
	// User is the target, whose list holds it (not on the wire: the list
	// is theirs).
	User string `json:"-"`
}

// NotificationID names the notification of target about room's item seq:
// a hash of (target, room), then seq in fixed-width hex, so that a room's
// notifications of one ts list in seq order (lists order by ts, then id).
func NotificationID(target, room string, seq int64) string {
	sum := sha256.Sum256([]byte(target + "\x00" + room))
	return "n" + hex.EncodeToString(sum[:8]) + fmt.Sprintf("%016x", seq)
}

// NotificationQuery asks for one page of a user's notifications, which are
// listed oldest first by (TS, ID), like history: the latest Limit, or the
// Limit just before Before (a cursor: the TS and ID of a listed one).
type NotificationQuery struct {
	Before NotificationCursor
	Limit  int
}

// NotificationCursor is a place in a user's notification list; the zero
// cursor is its end.
type NotificationCursor struct {
	TS string
	ID string
}

// NotificationPage is one page of notifications, oldest first; HasMore says
// older ones lie beyond it.
type NotificationPage struct {
	Notifications []Notification
	HasMore       bool
}

// PushSubscription is a browser's Web Push subscription (the JSON of the
// browser's PushSubscription: endpoint and keys) held by a user.
type PushSubscription struct {
	User     string
	Endpoint string
	P256dh   string
	Auth     string
}

// Delivery kinds: what an outbox entry is sent as.
const (
	DeliverPush    = "push"
	DeliverWebhook = "webhook"
)

// Delivery is one send the notifications consumer owes the outside world: a
// Web Push message to one subscription, or a webhook event to one URL. It
// waits in the outbox until sent (or given up), so that a slow or dead
// receiver never holds the consumer up and an instance that dies leaves its
// sends to the others.
type Delivery struct {
	// ID names the delivery: the webhook's X-Parley-Delivery, the same on
	// every attempt and whichever instance makes it.
	ID   string
	Kind string
	// URL is the webhook URL or the push subscription's endpoint.
	URL string
	// User, P256dh and Auth are a push subscription's (to encrypt for it,
	// and to drop it when the push service says it is gone).
	User   string
	P256dh string
	Auth   string
	// Body is the webhook's JSON body or the push's plaintext payload.
	Body []byte
	// Attempts made so far; NextAt is when the next may be made.
	Attempts int
	NextAt   time.Time
}

// Notifications keeps in-app notifications, push subscriptions and the
// outbox. Both stores implement it.
type Notifications interface {
	// AddNotification stores n in its target's list and queues ds, unless
	// a notification with n.ID is stored already: then it stores nothing
	// (ds included) and created is false.
	AddNotification(ctx context.Context, n Notification, ds []Delivery) (created bool, err error)
	// ListNotifications returns one page of user's notifications.
	ListNotifications(ctx context.Context, user string, q NotificationQuery) (NotificationPage, error)

	// AddPushSubscription stores s for s.User (replacing one with the same
	// endpoint, whoever held it). A user holding max subscriptions already
	// (other endpoints) gets an *Error of code ERateLimited.
	AddPushSubscription(ctx context.Context, s PushSubscription, max int) error
	// RemovePushSubscription removes user's subscription with endpoint;
	// removing one that is not there is no error.
	RemovePushSubscription(ctx context.Context, user, endpoint string) error
	// PushSubscriptions lists user's subscriptions.
	PushSubscriptions(ctx context.Context, user string) ([]PushSubscription, error)

	// ClaimDeliveries returns up to max queued deliveries due at now
	// (NextAt <= now), each leased for lease: claimed by nobody else until
	// now+lease (NextAt moves there), so that instances draining the one
	// outbox do not send the same delivery at once. A max below 1 is an
	// error.
	ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, max int) ([]Delivery, error)
	// FinishDelivery removes a delivery sent (or given up). One that is
	// gone (finished by a claimer whose lease this one outlived) is no
	// error, for it and for RetryDelivery.
	FinishDelivery(ctx context.Context, id string) error
	// RetryDelivery records a failed attempt: Attempts and NextAt as given.
	RetryDelivery(ctx context.Context, id string, attempts int, next time.Time) error
}
