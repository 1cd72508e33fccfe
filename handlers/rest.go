package handlers

import (
	"encoding/json"
	"slices"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/app/chat"
)

// history is GET /api/rooms/{room}/messages?limit=&before=|after=.
func (s *Server) history(c *fiber.Ctx) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	if err := s.allowRead(userOf(c)); err != nil {
		return err
	}
	st, err := s.readable(c.UserContext(), userOf(c), room)
	if err != nil {
		return err
	}
	q := chat.Query{Kind: chat.Latest, Limit: 50}
	if v := c.Query("limit"); v != "" || c.Context().QueryArgs().Has("limit") {
		n, err := parseSeq("limit", v)
		if err != nil || n < 1 || n > 200 {
			return chat.Errorf(chat.EBadRequest, "limit must be a whole number from 1 to 200")
		}
		q.Limit = int(n)
	}
	args := c.Context().QueryArgs()
	hasBefore, hasAfter := args.Has("before"), args.Has("after")
	if hasBefore && hasAfter {
		return chat.Errorf(chat.EBadRequest, "give before or after, not both")
	}
	if hasBefore {
		if q.Seq, err = parseSeq("before", c.Query("before")); err != nil {
			return err
		}
		q.Kind = chat.Before
	}
	if hasAfter {
		if q.Seq, err = parseSeq("after", c.Query("after")); err != nil {
			return err
		}
		q.Kind = chat.After
	}
	// A member of a private or direct room sees it from their latest add.
	from := st.VisibleFrom(userOf(c))
	if q.Kind == chat.After && q.Seq < from-1 {
		q.Seq = from - 1
	}
	page, err := s.Store.Messages(c.UserContext(), room, q)
	if err != nil {
		return unavailable(err)
	}
	if page.Messages == nil {
		page.Messages = []chat.Message{}
	}
	if err := s.foldHistory(c.UserContext(), room, page.Messages); err != nil {
		return err
	}
	if i := slices.IndexFunc(page.Messages, func(m chat.Message) bool { return m.Seq >= from }); i != 0 {
		if i < 0 {
			i = len(page.Messages)
		}
		page.Messages = page.Messages[i:]
		if q.Kind != chat.After {
			page.HasMore = false
		}
	}
	return c.JSON(page)
}

// postMessage is POST /api/rooms/{room}/messages: the send of SSE clients.
func (s *Server) postMessage(c *fiber.Ctx) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	var req struct {
		ID      *string          `json:"id"`
		Text    *string          `json:"text"`
		ReplyTo *json.RawMessage `json:"reply_to"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	reply, err := replyTo(req.ReplyTo)
	if err == nil {
		err = s.checkReply(c.UserContext(), room, reply)
	}
	if err != nil {
		return err
	}
	if err := s.allowSend(c.UserContext(), userOf(c), room); err != nil {
		return err
	}
	if err := s.checkSend(c.UserContext(), userOf(c), room); err != nil {
		return err
	}
	id := chat.NewID()
	if req.ID != nil {
		id = *req.ID
	}
	text := ""
	if req.Text != nil {
		text = *req.Text
	}
	if _, err := s.Sender.SendReply(c.UserContext(), sessionOf(c).author(), room, id, text, reply); err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"room": room, "id": id})
}

// unavailable reports a store or bus failure to the client as "unavailable"
// and keeps the cause for the log.
func unavailable(err error) error {
	if chat.ErrorCode(err) != chat.EInternal {
		return err
	}
	return &wrapped{chat.Errorf(chat.EUnavailable, "storage is unavailable; try again"), err}
}

// wrapped is a client-facing error that keeps its cause for the log.
type wrapped struct {
	public *chat.Error
	cause  error
}

func (w *wrapped) Error() string   { return w.public.Error() + ": " + w.cause.Error() }
func (w *wrapped) Unwrap() []error { return []error{w.public, w.cause} }
