package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/app/chat"
)

// A message's life (PROTOCOL.md v2 "Message lifecycle"): edits, deletes and
// reactions, sent like messages over WebSocket (acknowledged once the bus
// holds them; a refusal by the persist stage follows as an error frame) and
// over REST (answered with the persist stage's decision: the stored item,
// or why not); history folded as it stands.

// lifecycleReq is what makes a lifecycle item: from a frame or a route.
type lifecycleReq struct {
	room, id, kind string
	target         int64
	text, emoji    string
	on             bool
}

// newLifecycle checks r and makes its item for sess.
func newLifecycle(sess Session, r lifecycleReq) (chat.Message, error) {
	if err := chat.ValidateRoom(r.room); err != nil {
		return chat.Message{}, err
	}
	if err := chat.ValidateID(r.id); err != nil {
		return chat.Message{}, err
	}
	if r.target < 1 {
		return chat.Message{}, chat.Errorf(chat.EBadRequest, "target must be the seq of a message (a whole number >= 1)")
	}
	switch r.kind {
	case chat.KindEdit:
		if err := chat.ValidateText(r.text); err != nil {
			return chat.Message{}, err
		}
	case chat.KindReaction:
		if err := chat.ValidateEmoji(r.emoji); err != nil {
			return chat.Message{}, err
		}
	}
	return chat.NewLifecycle(sess.author(), r.room, r.id, r.kind, r.target, r.text, r.emoji, r.on, time.Now()), nil
}

// acceptLifecycle is what a lifecycle item goes through on the accepting
// instance before the bus: the send rate, and what this instance knows of
// the room already (not readable, muted). The target is the persist
// stage's to check.
func (s *Server) acceptLifecycle(ctx context.Context, user string, m *chat.Message) error {
	if err := s.allowSend(ctx, user, m.Room); err != nil {
		return err
	}
	st, err := s.readable(ctx, user, m.Room)
	if err != nil {
		return err
	}
	if !st.Exists() {
		last, err := s.Store.LastSeq(ctx, m.Room)
		if err != nil {
			return unavailable(err)
		}
		if last == 0 {
			return chat.Errorf(chat.ENotFound, "no such room")
		}
	}
	return nil
}

// lifecycle takes an edit, delete or react frame.
func (w *wsClient) lifecycle(kind string, f frame) {
	id := chat.NewID()
	if f.ID != nil {
		id = *f.ID
	}
	r := lifecycleReq{room: f.Room, id: id, kind: kind, on: true}
	var err error
	if f.Target == nil {
		err = chat.Errorf(chat.EBadRequest, `a %s frame needs "target"`, f.Type)
	} else if r.target, err = parseSeq("target", string(*f.Target)); err == nil {
		if f.Text != nil {
			r.text = *f.Text
		}
		if f.Emoji != nil {
			r.emoji = *f.Emoji
		}
		if f.On != nil {
			r.on = *f.On
		}
	}
	var m chat.Message
	if err == nil {
		m, err = newLifecycle(w.sess, r)
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(w.srv.ctx(), 10*time.Second)
		err = w.srv.acceptLifecycle(ctx, w.user, &m)
		cancel()
	}
	if err == nil {
		// Not the server's context: one under way during shutdown
		// finishes and is answered, as a send is.
		err = w.srv.Sender.Publish(context.Background(), m)
	}
	if err != nil {
		w.sendError(err, id, f.Room)
		return
	}
	w.send(map[string]string{"type": "ack", "room": f.Room, "id": id})
}

// changeMessage answers a lifecycle route: the item once the persist stage
// stored it, or its refusal.
func (s *Server) changeMessage(c *fiber.Ctx, r lifecycleReq) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	if r.target, err = parseSeq("seq", c.Params("seq")); err != nil {
		return err
	}
	r.room = room
	if r.id == "" {
		r.id = chat.NewID()
	}
	m, err := newLifecycle(sessionOf(c), r)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	if err := s.acceptLifecycle(ctx, userOf(c), &m); err != nil {
		return err
	}
	stored, err := s.publishAndWait(ctx, m)
	return changed(c, stored, err)
}

// editMessage is PATCH /api/rooms/{room}/messages/{seq} {"id","text"}.
func (s *Server) editMessage(c *fiber.Ctx) error {
	var req struct {
		ID   *string `json:"id"`
		Text *string `json:"text"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Text == nil {
		return chat.Errorf(chat.EBadRequest, `"text" is required`)
	}
	return s.changeMessage(c, lifecycleReq{kind: chat.KindEdit, id: deref(req.ID), text: *req.Text})
}

// deleteMessage is DELETE /api/rooms/{room}/messages/{seq}?id=.
func (s *Server) deleteMessage(c *fiber.Ctx) error {
	return s.changeMessage(c, lifecycleReq{kind: chat.KindDelete, id: c.Query("id")})
}

// react is POST /api/rooms/{room}/messages/{seq}/reactions {"id","emoji","on"}.
func (s *Server) react(c *fiber.Ctx) error {
	var req struct {
		ID    *string `json:"id"`
		Emoji *string `json:"emoji"`
		On    *bool   `json:"on"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Emoji == nil {
		return chat.Errorf(chat.EBadRequest, `"emoji" is required`)
	}
	on := req.On == nil || *req.On
	return s.changeMessage(c, lifecycleReq{kind: chat.KindReaction, id: deref(req.ID), emoji: *req.Emoji, on: on})
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// edits is GET /api/rooms/{room}/messages/{seq}/edits: a message's original
// text and each edit, for its author and the room's moderators and owners.
// After a delete there is nothing left to show: every text was erased.
func (s *Server) edits(c *fiber.Ctx) error {
	st, _, err := s.existingRoom(c)
	if err != nil {
		return err
	}
	seq, err := parseSeq("seq", c.Params("seq"))
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	page, err := s.Store.Messages(ctx, st.Room, chat.Query{Kind: chat.After, Seq: max(seq-1, 0), Limit: 1})
	if err != nil {
		return unavailable(err)
	}
	if seq < st.VisibleFrom(userOf(c)) || len(page.Messages) == 0 || page.Messages[0].Seq != seq || page.Messages[0].Kind != "" {
		return chat.Errorf(chat.ENotFound, "no message at seq %d", seq)
	}
	m := page.Messages[0]
	if m.User != userOf(c) && !st.CanModerate(userOf(c)) {
		return chat.Errorf(chat.EForbidden, "only its author, a moderator or an owner may read a message's edits")
	}
	type edit struct {
		Seq  int64  `json:"seq"`
		Text string `json:"text"`
		TS   string `json:"ts"`
	}
	out := []edit{}
	if s.Lifecycles != nil {
		items, err := s.Lifecycles.ItemsAbout(ctx, st.Room, []int64{seq})
		if err != nil {
			return unavailable(err)
		}
		for _, it := range items {
			if it.Kind == chat.KindEdit {
				out = append(out, edit{Seq: it.Seq, Text: it.Text, TS: it.TS})
			}
		}
	}
	return c.JSON(fiber.Map{"seq": seq, "original": fiber.Map{"text": m.Text, "ts": m.TS}, "deleted": m.Deleted, "edits": out})
}

// foldHistory folds the lifecycle items about a page's messages into them:
// history as it stands.
func (s *Server) foldHistory(ctx context.Context, room string, page []chat.Message) error {
	if s.Lifecycles == nil {
		return nil
	}
	var targets []int64
	for _, m := range page {
		if m.Kind == "" {
			targets = append(targets, m.Seq)
		}
	}
	if len(targets) == 0 {
		return nil
	}
	items, err := s.Lifecycles.ItemsAbout(ctx, room, targets)
	if err != nil {
		return unavailable(err)
	}
	chat.FoldInto(page, items)
	return nil
}

// publishAndWait publishes an item and waits for the persist stage's
// decision, as every REST change does.
func (s *Server) publishAndWait(ctx context.Context, item chat.Message) (chat.Message, error) {
	wait, cancel := s.Hub.Await(item.Room, item.User, item.ID)
	defer cancel()
	if err := s.Sender.Publish(context.WithoutCancel(ctx), item); err != nil {
		return chat.Message{}, err
	}
	wctx, stop := context.WithTimeout(s.ctx(), applyWait)
	defer stop()
	stored, err := wait(wctx)
	if err != nil && errors.Is(err, wctx.Err()) {
		return chat.Message{}, chat.Errorf(chat.EUnavailable, "the change was accepted but not confirmed in time; check the room before trying again")
	}
	return stored, err
}

// checkReply refuses at once a reply_to ahead of the room's last seq (the
// persist stage checks it again at the message's place in the log).
func (s *Server) checkReply(ctx context.Context, room string, reply int64) error {
	if reply == 0 || chat.ValidateRoom(room) != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.StoreTimeout)
	defer cancel()
	last, err := s.Store.LastSeq(ctx, room)
	if err != nil {
		return unavailable(err)
	}
	if reply > last {
		return chat.Errorf(chat.EBadRequest, "reply_to must be the seq of an item of this room")
	}
	return nil
}

// replyTo reads a send's reply_to: absent or null is none.
func replyTo(raw *json.RawMessage) (int64, error) {
	if raw == nil || string(*raw) == "null" {
		return 0, nil
	}
	n, err := parseSeq("reply_to", string(*raw))
	if err != nil || n < 1 {
		return 0, chat.Errorf(chat.EBadRequest, "reply_to must be the seq of an item of this room (a whole number >= 1)")
	}
	return n, nil
}
