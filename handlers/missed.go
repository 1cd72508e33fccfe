package handlers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/app/chat"
)

// What you missed (PROTOCOL.md v2): read positions, counts in the room
// objects, receipts, notifications and push subscriptions.

// markRead publishes user's read command for room up to seq, once the user
// may read the room. The persist stage caps it, drops it when it would move
// back, and echoes it to the user's connections everywhere.
func (s *Server) markRead(ctx context.Context, sess Session, room string, seq int64) error {
	if err := chat.ValidateRoom(room); err != nil {
		return err
	}
	if !s.marksRate.allow(sess.User) {
		s.Metrics.Refused(limitRead)
		return chat.Errorf(chat.ERateLimited, "too many read positions: at most %g per second", s.ReadRate)
	}
	st, err := s.readable(ctx, sess.User, room)
	if err != nil {
		return err
	}
	if !st.Exists() {
		// A public room's first items may be stored a moment before its
		// state is saved: the store says whether it exists.
		last, err := s.Store.LastSeq(ctx, room)
		if err != nil {
			return unavailable(err)
		}
		if last == 0 {
			return chat.Errorf(chat.ENotFound, "no such room")
		}
	}
	return s.Sender.Publish(ctx, chat.NewRead(sess.author(), room, seq, time.Now()))
}

// putRead is PUT /api/rooms/{room}/read {"seq"}: 204 once the read command
// is accepted (like a send's ack); it takes effect in order with the room's
// items, and the read frame tells the user's connections when it did.
func (s *Server) putRead(c *fiber.Ctx) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	var req struct {
		Seq *json.RawMessage `json:"seq"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Seq == nil {
		return chat.Errorf(chat.EBadRequest, `"seq" is required`)
	}
	seq, err := parseSeq("seq", string(*req.Seq))
	if err != nil {
		return err
	}
	if err := s.markRead(c.UserContext(), sessionOf(c), room, seq); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// receipts is GET /api/rooms/{room}/receipts: the read positions of the
// members of a room that keeps receipts (direct, or at most
// chat.ReceiptsMaxMembers members); a larger room answers 409.
func (s *Server) receipts(c *fiber.Ctx) error {
	st, last, err := s.existingRoom(c)
	if err != nil {
		return err
	}
	if st.Kind != chat.RoomDirect && len(st.Members) > chat.ReceiptsMaxMembers {
		return chat.Errorf(chat.EConflict, "receipts are kept only in direct rooms and rooms of at most %d members", chat.ReceiptsMaxMembers)
	}
	users := make([]string, 0, len(st.Members))
	for u := range st.Members {
		users = append(users, u)
	}
	type receipt struct {
		User string `json:"user"`
		Seq  int64  `json:"seq"`
	}
	out := make([]receipt, 0, len(users))
	if len(users) > 0 && s.Marks != nil {
		seqs, err := s.Marks.ReadSeqs(c.UserContext(), st.Room, users)
		if err != nil {
			return unavailable(err)
		}
		for _, u := range users {
			if seq, ok := seqs[u]; ok && seq > 0 {
				out = append(out, receipt{User: u, Seq: min(seq, last)})
			}
		}
	}
	slices.SortFunc(out, func(a, b receipt) int { return strings.Compare(a.User, b.User) })
	return c.JSON(fiber.Map{"receipts": out})
}

// withCounts fills read_seq, unread and mentions of the room objects whose
// room user is a member of (a room you are not in has nothing you missed:
// zeros).
func (s *Server) withCounts(ctx context.Context, user string, rooms []roomObject) error {
	if s.Marks == nil {
		return nil
	}
	var sums []chat.RoomSummary
	var at []int
	for i, o := range rooms {
		if o.Role != nil {
			sums = append(sums, chat.RoomSummary{Room: o.Room, LastSeq: o.LastSeq})
			at = append(at, i)
		}
	}
	if len(sums) == 0 {
		return nil
	}
	if err := s.Marks.Counts(ctx, user, sums); err != nil {
		return unavailable(err)
	}
	for j, i := range at {
		rooms[i].ReadSeq, rooms[i].Unread, rooms[i].Mentions = sums[j].ReadSeq, sums[j].Unread, sums[j].Mentions
	}
	return nil
}

// notificationsPage is GET /api/notifications?limit=&before=: the caller's
// notifications, oldest first, paged like history from the latest back;
// next_cursor (null on the oldest page) is the before of the page older.
func (s *Server) notificationsPage(c *fiber.Ctx) error {
	if s.Notes == nil {
		return chat.Errorf(chat.ENotFound, "notifications are not kept here")
	}
	if err := s.allowRead(userOf(c)); err != nil {
		return err
	}
	args := c.Context().QueryArgs()
	q := chat.NotificationQuery{Limit: 50}
	if args.Has("limit") {
		n, err := parseSeq("limit", c.Query("limit"))
		if err != nil || n < 1 || n > 200 {
			return chat.Errorf(chat.EBadRequest, "limit must be a whole number from 1 to 200")
		}
		q.Limit = int(n)
	}
	if args.Has("before") {
		cur, err := decodeNoteCursor(c.Query("before"))
		if err != nil {
			return err
		}
		q.Before = cur
	}
	page, err := s.Notes.ListNotifications(c.UserContext(), userOf(c), q)
	if err != nil {
		return unavailable(err)
	}
	notes := page.Notifications
	if notes == nil {
		notes = []chat.Notification{}
	}
	var next *string
	if page.HasMore && len(notes) > 0 {
		cur := encodeNoteCursor(notes[0])
		next = &cur
	}
	return c.JSON(fiber.Map{"notifications": notes, "has_more": page.HasMore, "next_cursor": next})
}

// A notification cursor is the ts and id of the page's oldest, base64url:
// opaque to clients.
func encodeNoteCursor(n chat.Notification) string {
	return base64.RawURLEncoding.EncodeToString([]byte("n:" + n.TS + "|" + n.ID))
}

func decodeNoteCursor(v string) (chat.NotificationCursor, error) {
	bad := chat.Errorf(chat.EBadRequest, "before must be a next_cursor the notification list gave")
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return chat.NotificationCursor{}, bad
	}
	rest, ok := strings.CutPrefix(string(b), "n:")
	ts, id, ok2 := strings.Cut(rest, "|")
	if !ok || !ok2 || id == "" || len(id) > 64 {
		return chat.NotificationCursor{}, bad
	}
	if _, err := time.Parse(chat.TSLayout, ts); err != nil {
		return chat.NotificationCursor{}, bad
	}
	return chat.NotificationCursor{TS: ts, ID: id}, nil
}

// vapidKey is GET /api/push/vapid: the application server key a browser
// subscribes with.
func (s *Server) vapidKey(c *fiber.Ctx) error {
	if s.VAPIDPublicKey == "" {
		return chat.Errorf(chat.ENotFound, "Web Push is not configured on this server")
	}
	return c.JSON(fiber.Map{"public_key": s.VAPIDPublicKey})
}

// pushSubscription is the JSON of a browser's PushSubscription.
type pushSubscription struct {
	Endpoint *string `json:"endpoint"`
	Keys     *struct {
		P256dh *string `json:"p256dh"`
		Auth   *string `json:"auth"`
	} `json:"keys"`
	// ExpirationTime is the browser's; Parley drops the subscription when
	// the push service says it is gone.
	ExpirationTime *json.RawMessage `json:"expirationTime"`
}

// addPushSubscription is POST /api/push/subscriptions with a browser's
// PushSubscription: 201.
func (s *Server) addPushSubscription(c *fiber.Ctx) error {
	if s.VAPIDPublicKey == "" || s.Notes == nil {
		return chat.Errorf(chat.ENotFound, "Web Push is not configured on this server")
	}
	var req pushSubscription
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Endpoint == nil || req.Keys == nil || req.Keys.P256dh == nil || req.Keys.Auth == nil {
		return chat.Errorf(chat.EBadRequest, `a PushSubscription needs "endpoint" and "keys" {"p256dh","auth"}`)
	}
	if err := s.ValidatePush(*req.Endpoint, *req.Keys.P256dh, *req.Keys.Auth, s.PushLoopbackHTTP); err != nil {
		return err
	}
	sub := chat.PushSubscription{User: userOf(c), Endpoint: *req.Endpoint, P256dh: *req.Keys.P256dh, Auth: *req.Keys.Auth}
	if err := s.Notes.AddPushSubscription(c.UserContext(), sub, s.MaxPushSubs); err != nil {
		if chat.ErrorCode(err) == chat.ERateLimited {
			s.Metrics.Refused(limitPush)
		}
		return unavailable(err)
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"endpoint": sub.Endpoint})
}

// removePushSubscription is DELETE /api/push/subscriptions?endpoint= (or
// with a JSON body {"endpoint"}): 204, also when it was not there.
func (s *Server) removePushSubscription(c *fiber.Ctx) error {
	if s.Notes == nil {
		return chat.Errorf(chat.ENotFound, "Web Push is not configured on this server")
	}
	endpoint := c.Query("endpoint")
	if endpoint == "" && len(c.Request().Body()) > 0 {
		var req struct {
			Endpoint *string `json:"endpoint"`
		}
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		if req.Endpoint != nil {
			endpoint = *req.Endpoint
		}
	}
	if endpoint == "" || len(endpoint) > 2048 {
		return chat.Errorf(chat.EBadRequest, `give the subscription's "endpoint" (query or body), at most 2048 bytes`)
	}
	if err := s.Notes.RemovePushSubscription(c.UserContext(), userOf(c), endpoint); err != nil {
		return unavailable(err)
	}
	return c.SendStatus(fiber.StatusNoContent)
}
