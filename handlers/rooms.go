package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/app/chat"
)

// Rooms with members: the room routes. Reads answer from the room's saved
// state (which the persist stage writes before it republishes the items it
// folds); every change is a timeline item published to the send topic like
// a message and decided by the persist stage, whose decision the route
// waits for (see apply).

// applyWait bounds the wait for the persist stage's decision on a change.
const applyWait = 10 * time.Second

// roomObject is a room as the API shows it.
type roomObject struct {
	Room      string  `json:"room"`
	Kind      string  `json:"kind"`
	Title     string  `json:"title"`
	Topic     string  `json:"topic"`
	SlowModeS int     `json:"slow_mode_s"`
	LastSeq   int64   `json:"last_seq"`
	Role      *string `json:"role"`
	// With is, in a direct room, the other person.
	With string `json:"with,omitempty"`
	// What the asking user missed (see withCounts).
	ReadSeq  int64 `json:"read_seq"`
	Unread   int64 `json:"unread"`
	Mentions int64 `json:"mentions"`
}

func newRoomObject(st *chat.RoomState, user string, lastSeq int64) roomObject {
	o := roomObject{Room: st.Room, Kind: st.RoomKind(), Title: st.Title, Topic: st.Topic, SlowModeS: st.SlowModeS, LastSeq: lastSeq}
	if r := st.Role(user); r != "" {
		o.Role = &r
	}
	if st.Kind == chat.RoomDirect {
		o.With = otherMember(st, user)
	}
	return o
}

func otherMember(st *chat.RoomState, user string) string {
	for u := range st.Members {
		if u != user {
			return u
		}
	}
	return ""
}

// roomState reads the room's saved state.
func (s *Server) roomState(ctx context.Context, room string) (chat.RoomState, error) {
	if s.Rooms == nil {
		return chat.NewRoomState(room), nil
	}
	// Through the hub: concurrent reads of one room are shared (the state
	// is then shared too, and only read here).
	read := s.Rooms.RoomState
	if s.Hub != nil {
		read = s.Hub.SavedState
	}
	st, err := read(ctx, room)
	if err != nil {
		return chat.RoomState{}, unavailable(err)
	}
	st.Room = room
	return st, nil
}

// readable returns the room's state when user may read it: a private or
// direct room is not found by a non-member, a banned user is refused.
func (s *Server) readable(ctx context.Context, user, room string) (chat.RoomState, error) {
	st, err := s.roomState(ctx, room)
	if err != nil {
		return st, err
	}
	return st, st.CanRead(user, time.Now())
}

// joinable is readable for a join: the first seq user may see in room, and
// the seq of the state that let them in (chat.JoinRequest's From and
// Decided). It asks the hub's view of the room first (no store read once
// this instance follows the room: what a crowd rejoining after their
// instance died needs), and the saved state when the view cannot let them
// in.
func (s *Server) joinable(ctx context.Context, user, room string) (from, decided int64, err error) {
	if s.Rooms != nil && s.Hub != nil {
		if from, decided, ok := s.Hub.ReadableFrom(ctx, user, room); ok {
			return from, decided, nil
		}
	}
	st, err := s.readable(ctx, user, room)
	if err != nil {
		return 0, 0, err
	}
	return st.VisibleFrom(user), st.Seq, nil
}

// existingRoom is readable for a room that must exist (the room object,
// members, changes): a room with neither items nor saved state is not found.
func (s *Server) existingRoom(c *fiber.Ctx) (chat.RoomState, int64, error) {
	room, err := roomParam(c)
	if err != nil {
		return chat.RoomState{}, 0, err
	}
	ctx := c.UserContext()
	st, err := s.readable(ctx, userOf(c), room)
	if err != nil {
		return st, 0, err
	}
	last, err := s.Store.LastSeq(ctx, room)
	if err != nil {
		return st, 0, unavailable(err)
	}
	if !st.Exists() && last == 0 {
		return st, 0, chat.Errorf(chat.ENotFound, "no such room")
	}
	return st, last, nil
}

// getRoom is GET /api/rooms/{room}.
func (s *Server) getRoom(c *fiber.Ctx) error {
	st, last, err := s.existingRoom(c)
	if err != nil {
		return err
	}
	o := []roomObject{newRoomObject(&st, userOf(c), last)}
	if err := s.withCounts(c.UserContext(), userOf(c), o); err != nil {
		return err
	}
	return c.JSON(o[0])
}

// createRoom is POST /api/rooms {"room","kind","title"?,"topic"?}.
func (s *Server) createRoom(c *fiber.Ctx) error {
	var req struct {
		Room  *string `json:"room"`
		Kind  *string `json:"kind"`
		Title *string `json:"title"`
		Topic *string `json:"topic"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Room == nil {
		return chat.Errorf(chat.EBadRequest, `"room" is required`)
	}
	room := *req.Room
	if err := chat.ValidateRoom(room); err != nil {
		return err
	}
	if strings.HasPrefix(room, dmPrefix) {
		return chat.Errorf(chat.EBadRequest, "room names starting with %q are kept for direct messages", dmPrefix)
	}
	kind := chat.RoomPublic
	if req.Kind != nil {
		kind = *req.Kind
	}
	if kind != chat.RoomPublic && kind != chat.RoomPrivate {
		return chat.Errorf(chat.EBadRequest, `kind must be "public" or "private" (direct rooms: POST /api/dms)`)
	}
	if err := chat.ValidateSettings(req.Title, req.Topic, nil); err != nil {
		return err
	}
	if !s.creates.allow(userOf(c)) {
		s.Metrics.Refused(limitRoom)
		return chat.Errorf(chat.ERateLimited, "too many new rooms: at most %d at once, then one per %s", s.RoomBurst, perText(s.RoomRate))
	}
	if last, err := s.Store.LastSeq(c.UserContext(), room); err != nil {
		return unavailable(err)
	} else if last > 0 {
		return chat.Errorf(chat.EConflict, "room %s already exists", room)
	}
	stored, err := s.apply(c, room, chat.ItemData{Action: chat.ActCreate, RoomKind: kind, Title: req.Title, Topic: req.Topic})
	if err != nil {
		return err
	}
	st, err := s.roomState(c.UserContext(), room)
	if err != nil {
		return err
	}
	o := newRoomObject(&st, userOf(c), stored.Seq)
	// Its creator has read it: the create is theirs (the marks the persist
	// stage writes beside it may land a moment after this answer).
	o.ReadSeq = stored.Seq
	return c.Status(fiber.StatusCreated).JSON(o)
}

// dmPrefix starts the names of direct rooms, which POST /api/rooms refuses.
const dmPrefix = chat.DirectPrefix

// dmRoom is the direct room of two people: the same whoever asks first,
// named from their canonical names so that look-alike spellings of a name
// meet in one room.
func dmRoom(a, b string) string {
	ca, cb := chat.CanonicalName(a), chat.CanonicalName(b)
	if ca > cb {
		ca, cb = cb, ca
	}
	sum := sha256.Sum256([]byte(ca + "\x00" + cb))
	return dmPrefix + hex.EncodeToString(sum[:16])
}

// createDM is POST /api/dms {"user"}: the direct room of the caller and
// user, made on first use.
func (s *Server) createDM(c *fiber.Ctx) error {
	var req struct {
		User *string `json:"user"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.User == nil {
		return chat.Errorf(chat.EBadRequest, `"user" is required`)
	}
	me := userOf(c)
	ctx := c.UserContext()
	other, err := s.person(ctx, *req.User)
	if err != nil {
		return err
	}
	if chat.CanonicalName(other) == chat.CanonicalName(me) {
		return chat.Errorf(chat.EBadRequest, "a direct room is with someone else")
	}
	room := dmRoom(me, other)
	st, err := s.roomState(ctx, room)
	if err != nil {
		return err
	}
	if !st.Exists() {
		_, err := s.apply(c, room, chat.ItemData{Action: chat.ActCreate, RoomKind: chat.RoomDirect, Members: []string{me, other}})
		if err != nil && chat.ErrorCode(err) != chat.EConflict {
			return err
		}
		// Created now, or by the other person a moment ago.
		if st, err = s.roomState(ctx, room); err != nil {
			return err
		}
	}
	if st.Kind != chat.RoomDirect || !st.IsMember(me) {
		return chat.Errorf(chat.ENotFound, "no such room")
	}
	last, err := s.Store.LastSeq(ctx, room)
	if err != nil {
		return unavailable(err)
	}
	o := []roomObject{newRoomObject(&st, me, last)}
	if err := s.withCounts(ctx, me, o); err != nil {
		return err
	}
	return c.JSON(o[0])
}

// person resolves a name someone typed to the name its live holder goes by:
// 404 when nobody holds it.
func (s *Server) person(ctx context.Context, name string) (string, error) {
	if err := checkNameArg(name); err != nil {
		return "", err
	}
	if s.People != nil {
		h, err := s.People.Holder(ctx, chat.CanonicalName(name))
		if err == nil && h.Live(time.Now()) {
			return h.Name, nil
		}
		if err != nil && chat.ErrorCode(err) != chat.ENotFound {
			return "", unavailable(err)
		}
	}
	return "", chat.Errorf(chat.ENotFound, "no such user: %s", name)
}

// checkNameArg checks a name given as an argument: 1-32 characters.
func checkNameArg(name string) error {
	if n := utf8.RuneCountInString(name); n < 1 || n > chat.MaxNameRunes || !utf8.ValidString(name) {
		return chat.Errorf(chat.EBadRequest, "user must be a name of 1-%d characters", chat.MaxNameRunes)
	}
	return nil
}

// target resolves the user a change is about: a member, banned or muted
// user of the room by canonical name (so that "Bob" finds "bob"), else the
// live holder of the name. needHolder: someone who is neither must exist.
func (s *Server) target(ctx context.Context, st *chat.RoomState, name string, needHolder bool) (string, error) {
	if err := checkNameArg(name); err != nil {
		return "", err
	}
	canon := chat.CanonicalName(name)
	for _, m := range []map[string]chat.Member{st.Members} {
		for u := range m {
			if chat.CanonicalName(u) == canon {
				return u, nil
			}
		}
	}
	for u := range st.Bans {
		if chat.CanonicalName(u) == canon {
			return u, nil
		}
	}
	for u := range st.Mutes {
		if chat.CanonicalName(u) == canon {
			return u, nil
		}
	}
	who, err := s.person(ctx, name)
	if err == nil || needHolder {
		return who, err
	}
	if chat.ErrorCode(err) == chat.ENotFound {
		return name, nil
	}
	return "", err
}

// apply publishes the change d to room as an item of the caller's and
// waits for the persist stage's decision: the stored item, or its refusal.
// What the saved state already shows to be refused is answered at once.
func (s *Server) apply(c *fiber.Ctx, room string, d chat.ItemData) (chat.Message, error) {
	ctx := c.UserContext()
	// A change is an item of the timeline like a message: it counts
	// against the user's send rate.
	if !s.sends.allow(userOf(c)) {
		s.Metrics.RateLimit()
		s.Metrics.Refused(limitSend)
		return chat.Message{}, chat.Errorf(chat.ERateLimited, "too many changes and messages: at most %g per second", s.SendRate)
	}
	st, err := s.roomState(ctx, room)
	if err != nil {
		return chat.Message{}, err
	}
	item := chat.NewItem(sessionOf(c).author(), room, chat.NewID(), d, time.Now())
	if err := st.Check(&item); err != nil && !s.stateBehind(ctx, &st) {
		return chat.Message{}, err
	}
	return s.publishAndWait(ctx, item)
}

// stateBehind reports whether the room has items stored after st, its
// saved state (saved after the items, off the persist stage's way): a
// refusal st gives may then be out of date (a user who posted a moment ago
// is a member already), and the persist stage, which holds the room's
// whole state, decides instead. A failed read keeps the refusal.
func (s *Server) stateBehind(ctx context.Context, st *chat.RoomState) bool {
	last, err := s.Store.LastSeq(ctx, st.Room)
	return err == nil && last > st.Seq
}

// changed answers a change with the item it made.
func changed(c *fiber.Ctx, m chat.Message, err error) error {
	if err != nil {
		return err
	}
	return c.JSON(m)
}

// userParam returns the :user of a route, unescaped (names may be any
// script) and checked.
func userParam(c *fiber.Ctx) (string, error) {
	raw := string([]byte(c.Params("user")))
	name, err := url.PathUnescape(raw)
	if err != nil {
		return "", chat.Errorf(chat.EBadRequest, "user must be a URL-escaped name")
	}
	return name, checkNameArg(name)
}

// addMember is POST /api/rooms/{room}/members {"user"}: yourself joins a
// public room; others are added (in a private room: by an owner or a
// moderator).
func (s *Server) addMember(c *fiber.Ctx) error {
	var req struct {
		User *string `json:"user"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	st, _, err := s.existingRoom(c)
	if err != nil {
		return err
	}
	name := userOf(c)
	if req.User != nil {
		name = *req.User
	}
	who, err := s.target(c.UserContext(), &st, name, true)
	if err != nil {
		return err
	}
	guest := false
	if s.People != nil {
		if h, err := s.People.Holder(c.UserContext(), chat.CanonicalName(who)); err == nil {
			guest = h.Kind == chat.HolderGuest
		}
	}
	m, err := s.apply(c, st.Room, chat.ItemData{Action: chat.ActAdd, Target: who, Guest: guest})
	return changed(c, m, err)
}

// removeMember is DELETE /api/rooms/{room}/members/{user}: yourself leaves;
// others are removed by an owner or a moderator of a higher role.
func (s *Server) removeMember(c *fiber.Ctx) error {
	st, who, err := s.pathTarget(c)
	if err != nil {
		return err
	}
	action := chat.ActRemove
	if who == userOf(c) {
		action = chat.ActLeave
	}
	m, err := s.apply(c, st.Room, chat.ItemData{Action: action, Target: who})
	return changed(c, m, err)
}

// setRole is PUT /api/rooms/{room}/members/{user} {"role"} (owners only).
func (s *Server) setRole(c *fiber.Ctx) error {
	var req struct {
		Role *string `json:"role"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Role == nil || !chat.ValidRole(*req.Role) {
		return chat.Errorf(chat.EBadRequest, `role must be "owner", "moderator" or "member"`)
	}
	st, who, err := s.pathTarget(c)
	if err != nil {
		return err
	}
	m, err := s.apply(c, st.Room, chat.ItemData{Action: chat.ActRole, Target: who, Role: *req.Role})
	return changed(c, m, err)
}

// pathTarget is the room of a route and the user its :user names (see
// target).
func (s *Server) pathTarget(c *fiber.Ctx) (chat.RoomState, string, error) {
	st, _, err := s.existingRoom(c)
	if err != nil {
		return st, "", err
	}
	name, err := userParam(c)
	if err != nil {
		return st, "", err
	}
	who, err := s.target(c.UserContext(), &st, name, false)
	return st, who, err
}

// parseUntil reads an until: an RFC 3339 time, given back in TSLayout.
func parseUntil(v string) (string, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return "", chat.Errorf(chat.EBadRequest, "until must be an RFC 3339 time, e.g. 2026-12-01T10:00:00Z")
	}
	if !t.After(time.Now()) {
		return "", chat.Errorf(chat.EBadRequest, "until must be in the future")
	}
	return chat.Timestamp(t), nil
}

// ban is POST /api/rooms/{room}/bans {"user","until"?,"reason"?}.
func (s *Server) ban(c *fiber.Ctx) error {
	var req struct {
		User   *string `json:"user"`
		Until  *string `json:"until"`
		Reason *string `json:"reason"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.User == nil {
		return chat.Errorf(chat.EBadRequest, `"user" is required`)
	}
	d := chat.ItemData{Action: chat.ActBan}
	if req.Until != nil {
		until, err := parseUntil(*req.Until)
		if err != nil {
			return err
		}
		d.Until = until
	}
	if req.Reason != nil {
		if err := chat.ValidateReason(*req.Reason); err != nil {
			return err
		}
		d.Reason = *req.Reason
	}
	return s.moderate(c, *req.User, d)
}

// mute is POST /api/rooms/{room}/mutes {"user","until"}.
func (s *Server) mute(c *fiber.Ctx) error {
	var req struct {
		User  *string `json:"user"`
		Until *string `json:"until"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.User == nil || req.Until == nil {
		return chat.Errorf(chat.EBadRequest, `"user" and "until" are required`)
	}
	until, err := parseUntil(*req.Until)
	if err != nil {
		return err
	}
	return s.moderate(c, *req.User, chat.ItemData{Action: chat.ActMute, Until: until})
}

// unban is DELETE /api/rooms/{room}/bans/{user}; unmute DELETE .../mutes/{user}.
func (s *Server) unban(c *fiber.Ctx) error  { return s.undo(c, chat.ActUnban) }
func (s *Server) unmute(c *fiber.Ctx) error { return s.undo(c, chat.ActUnmute) }

func (s *Server) undo(c *fiber.Ctx, action string) error {
	st, who, err := s.pathTarget(c)
	if err != nil {
		return err
	}
	m, err := s.apply(c, st.Room, chat.ItemData{Action: action, Target: who})
	return changed(c, m, err)
}

// moderate resolves the target and applies a moderation change.
func (s *Server) moderate(c *fiber.Ctx, name string, d chat.ItemData) error {
	st, _, err := s.existingRoom(c)
	if err != nil {
		return err
	}
	who, err := s.target(c.UserContext(), &st, name, false)
	if err != nil {
		return err
	}
	d.Target = who
	m, err := s.apply(c, st.Room, d)
	return changed(c, m, err)
}

// updateRoom is PATCH /api/rooms/{room} {"title"?,"topic"?,"slow_mode_s"?}.
func (s *Server) updateRoom(c *fiber.Ctx) error {
	var req struct {
		Title     *string `json:"title"`
		Topic     *string `json:"topic"`
		SlowModeS *int    `json:"slow_mode_s"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Title == nil && req.Topic == nil && req.SlowModeS == nil {
		return chat.Errorf(chat.EBadRequest, "give at least one of title, topic, slow_mode_s")
	}
	if err := chat.ValidateSettings(req.Title, req.Topic, req.SlowModeS); err != nil {
		return err
	}
	st, _, err := s.existingRoom(c)
	if err != nil {
		return err
	}
	stored, err := s.apply(c, st.Room, chat.ItemData{Action: chat.ActUpdate, Title: req.Title, Topic: req.Topic, SlowModeS: req.SlowModeS})
	if err != nil {
		return err
	}
	if st, err = s.roomState(c.UserContext(), st.Room); err != nil {
		return err
	}
	last, err := s.Store.LastSeq(c.UserContext(), st.Room)
	if err != nil {
		return unavailable(err)
	}
	return c.JSON(newRoomObject(&st, userOf(c), max(last, stored.Seq)))
}

// memberObject is one member as the API shows it.
type memberObject struct {
	User       string `json:"user"`
	Role       string `json:"role"`
	Guest      bool   `json:"guest"`
	MutedUntil string `json:"muted_until,omitempty"`
}

// members is GET /api/rooms/{room}/members: by role, then by name.
func (s *Server) members(c *fiber.Ctx) error {
	st, _, err := s.existingRoom(c)
	if err != nil {
		return err
	}
	now := time.Now()
	out := make([]memberObject, 0, len(st.Members))
	for u, m := range st.Members {
		o := memberObject{User: u, Role: m.Role, Guest: m.Guest}
		if st.Muted(u, now) {
			o.MutedUntil = st.Mutes[u]
		}
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b memberObject) int {
		if ra, rb := roleOrder(a.Role), roleOrder(b.Role); ra != rb {
			return ra - rb
		}
		return strings.Compare(a.User, b.User)
	})
	return c.JSON(fiber.Map{"members": out})
}

func roleOrder(role string) int {
	switch role {
	case chat.RoleOwner:
		return 0
	case chat.RoleModerator:
		return 1
	}
	return 2
}

// bans is GET /api/rooms/{room}/bans: the bans in force (owners and
// moderators only).
func (s *Server) bans(c *fiber.Ctx) error {
	st, _, err := s.existingRoom(c)
	if err != nil {
		return err
	}
	if !st.CanModerate(userOf(c)) {
		return chat.Errorf(chat.EForbidden, "only an owner or a moderator may see the bans")
	}
	type banObject struct {
		User   string `json:"user"`
		Until  string `json:"until,omitempty"`
		Reason string `json:"reason,omitempty"`
	}
	now := time.Now()
	out := []banObject{}
	for u, b := range st.Bans {
		if st.Banned(u, now) {
			out = append(out, banObject{User: u, Until: b.Until, Reason: b.Reason})
		}
	}
	slices.SortFunc(out, func(a, b banObject) int { return strings.Compare(a.User, b.User) })
	return c.JSON(fiber.Map{"bans": out})
}

// listRooms is GET /api/rooms[?directory=1]&limit=&cursor=: one page of the
// rooms the caller is a member of, or of the public rooms, by name.
// next_cursor is null on the last page.
func (s *Server) listRooms(c *fiber.Ctx) error {
	args := c.Context().QueryArgs()
	list := "m"
	if args.Has("directory") {
		switch c.Query("directory") {
		case "1", "true":
			list = "d"
		case "0", "false":
		default:
			return chat.Errorf(chat.EBadRequest, "directory must be 1 or 0")
		}
	}
	q := chat.RoomQuery{Limit: 100}
	if args.Has("limit") {
		n, err := parseSeq("limit", c.Query("limit"))
		if err != nil || n < 1 || n > 200 {
			return chat.Errorf(chat.EBadRequest, "limit must be a whole number from 1 to 200")
		}
		q.Limit = int(n)
	}
	if args.Has("cursor") {
		after, err := decodeCursor(c.Query("cursor"), list)
		if err != nil {
			return err
		}
		q.After = after
	}
	user := userOf(c)
	ctx := c.UserContext()
	var page chat.SummaryPage
	var err error
	switch {
	case s.Rooms == nil:
		err = errors.New("no room states")
	case list == "d":
		page, err = s.Rooms.Directory(ctx, user, q)
	default:
		page, err = s.Rooms.MemberRooms(ctx, user, q)
	}
	if err != nil {
		return unavailable(err)
	}
	rooms := make([]roomObject, 0, len(page.Rooms))
	for _, r := range page.Rooms {
		o := roomObject{Room: r.Room, Kind: r.Kind, Title: r.Title, Topic: r.Topic, SlowModeS: r.SlowModeS, LastSeq: r.LastSeq}
		if r.Role != "" {
			role := r.Role
			o.Role = &role
		}
		if r.Kind == chat.RoomDirect {
			// The other person is in the room's state, not the list.
			st, err := s.roomState(ctx, r.Room)
			if err != nil {
				return err
			}
			o.With = otherMember(&st, user)
		}
		rooms = append(rooms, o)
	}
	if err := s.withCounts(ctx, user, rooms); err != nil {
		return err
	}
	var next *string
	if page.More && len(rooms) > 0 {
		cur := encodeCursor(rooms[len(rooms)-1].Room, list)
		next = &cur
	}
	return c.JSON(fiber.Map{"rooms": rooms, "next_cursor": next})
}

// A room list cursor is the list's letter and the page's last room name,
// base64url: opaque to clients, so that its form may change, and refused by
// the other list.
func encodeCursor(room, list string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(list + ":" + room))
}

func decodeCursor(v, list string) (string, error) {
	bad := chat.Errorf(chat.EBadRequest, "cursor must be a next_cursor this list gave")
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return "", bad
	}
	room, ok := strings.CutPrefix(string(b), list+":")
	if !ok || chat.ValidateRoom(room) != nil {
		return "", bad
	}
	return room, nil
}
