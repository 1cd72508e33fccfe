package chat

import (
	"fmt"
	"maps"
	"strings"
	"time"
	"unicode/utf8"
)

// Rooms with members (PROTOCOL.md v2, "Rooms with members").
//
// The room's log decides: every change to a room's membership, roles,
// moderation and settings is an item of its timeline (a Message with a Kind),
// published to the send topic keyed by the room like a message. The persist
// stage, the one place that handles a room's records in order, decides each
// item against the room's state at the point of the log where the item will
// be stored (Check), stores it with the next seq and folds it in (Apply).
// Everyone else — the hub's subscriptions, the handlers' access checks, the
// browser — reaches the same state by folding the same items in seq order.
// RoomState is that fold: one pure function of the log, tested by a table.

// Room kinds.
const (
	RoomPublic  = "public"
	RoomPrivate = "private"
	RoomDirect  = "direct"
)

// DirectPrefix starts the names of direct rooms (see handlers' dmRoom): no
// other room may take such a name, by POST /api/rooms or by a first message.
const DirectPrefix = "dm-"

// Roles, from the highest.
const (
	RoleOwner     = "owner"
	RoleModerator = "moderator"
	RoleMember    = "member"
)

// KindMember is the Kind of a membership or moderation item.
const KindMember = "member"

// kindRefusal marks a receive record that is not a timeline item: the
// persist stage's refusal of a sender's item, which is not stored and has no
// seq. The fan-out hands it to the sender's connections as an error frame.
const kindRefusal = "refusal"

// Actions of KindMember items.
const (
	ActCreate = "create"
	ActUpdate = "update"
	ActAdd    = "add"
	ActRemove = "remove"
	ActLeave  = "leave"
	ActBan    = "ban"
	ActUnban  = "unban"
	ActMute   = "mute"
	ActUnmute = "unmute"
	ActRole   = "role"
)

// Limits of room settings.
const (
	MaxTitleRunes  = 100
	MaxTopicRunes  = 500
	MaxReasonRunes = 200
	MaxSlowModeS   = 3600
)

// ItemData is the data of a timeline item that is not a plain message.
type ItemData struct {
	Action string `json:"action,omitempty"`
	// Target is the user the action is about (add, remove, leave, ban,
	// unban, mute, unmute, role).
	Target string `json:"target,omitempty"`
	Role   string `json:"role,omitempty"`
	// Until ends a ban (empty: for good) or a mute, as a TSLayout time.
	Until  string `json:"until,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Guest says an added target is a guest.
	Guest bool `json:"guest,omitempty"`
	// RoomKind, Title, Topic and SlowModeS are the room's settings, on
	// create (the kind, and for a direct room Members) and update (what
	// changed).
	RoomKind  string   `json:"kind,omitempty"`
	Title     *string  `json:"title,omitempty"`
	Topic     *string  `json:"topic,omitempty"`
	SlowModeS *int     `json:"slow_mode_s,omitempty"`
	Members   []string `json:"members,omitempty"`
	// TargetSeq is the message a lifecycle item (edit, delete, reaction)
	// is about: "target" on the wire, a number there (see lifecycle.go).
	TargetSeq int64 `json:"-"`
	// Emoji and On are a reaction's: on (absent: true) adds the actor's
	// reaction, off takes it back.
	Emoji string `json:"emoji,omitempty"`
	On    *bool  `json:"on,omitempty"`
	// Seq is a read position (KindRead records); Receipts says the room
	// keeps receipts (the fan-out sends them to its joined connections).
	Seq      int64 `json:"seq,omitempty"`
	Receipts bool  `json:"receipts,omitempty"`
	// Notification is what a KindNotification record carries.
	Notification *Notification `json:"notification,omitempty"`
	// Code, Message, Key and Params are a refusal's (kindRefusal records
	// only; see Error).
	Code    string   `json:"code,omitempty"`
	Message string   `json:"message,omitempty"`
	Key     string   `json:"key,omitempty"`
	Params  []string `json:"params,omitempty"`
}

// Member is one member of a room.
type Member struct {
	Role string `json:"role"`
	// Since is the seq of the item that made them a member (their add, the
	// room's create, or in a public room their first message). In a
	// private or direct room a member sees the timeline from there on.
	Since int64 `json:"since"`
	Guest bool  `json:"guest,omitempty"`
}

// Ban keeps a user out of a room until Until (empty: for good).
type Ban struct {
	Until  string `json:"until,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// RoomState is a room's state: the fold of its timeline up to Seq.
type RoomState struct {
	Room string `json:"room"`
	// Seq is the last item folded in.
	Seq int64 `json:"seq"`
	// Kind is "" while the room does not exist (no item yet).
	Kind      string            `json:"kind,omitempty"`
	Title     string            `json:"title,omitempty"`
	Topic     string            `json:"topic,omitempty"`
	SlowModeS int               `json:"slow_mode_s,omitempty"`
	Members   map[string]Member `json:"members,omitempty"`
	Bans      map[string]Ban    `json:"bans,omitempty"`
	// Mutes maps a muted user to the end of the mute (TSLayout).
	Mutes map[string]string `json:"mutes,omitempty"`
	// LastSent maps a user to the ts of their last message, while slow
	// mode is on: the slow mode check is a function of the log too.
	LastSent map[string]string `json:"last_sent,omitempty"`
	// Events counts the timeline events (items with a Kind) up to Seq:
	// the persist stage stamps it on each item (Message.Events).
	Events int64 `json:"events,omitempty"`
}

// NewRoomState is the state of a room before its first item.
func NewRoomState(room string) RoomState { return RoomState{Room: room} }

// Exists reports whether the room has any item.
func (st *RoomState) Exists() bool { return st.Kind != "" || st.Seq > 0 }

// RoomKind is the room's kind: a room that came into being with a plain
// message (v1) is public.
func (st *RoomState) RoomKind() string {
	if st.Kind == "" {
		return RoomPublic
	}
	return st.Kind
}

// Clone returns a deep copy, for a tentative fold that may be thrown away.
func (st RoomState) Clone() RoomState {
	st.Members = maps.Clone(st.Members)
	st.Bans = maps.Clone(st.Bans)
	st.Mutes = maps.Clone(st.Mutes)
	st.LastSent = maps.Clone(st.LastSent)
	return st
}

// Role is user's role, "" for a non-member.
func (st *RoomState) Role(user string) string { return st.Members[user].Role }

// IsMember reports whether user is a member.
func (st *RoomState) IsMember(user string) bool { _, ok := st.Members[user]; return ok }

// Banned reports whether user is banned at now.
func (st *RoomState) Banned(user string, now time.Time) bool {
	b, ok := st.Bans[user]
	return ok && !expired(b.Until, now)
}

// Muted reports whether user is muted at now.
func (st *RoomState) Muted(user string, now time.Time) bool {
	until, ok := st.Mutes[user]
	return ok && !expired(until, now)
}

// expired reports whether until ("" for never) is at or before now.
func expired(until string, now time.Time) bool {
	if until == "" {
		return false
	}
	t, err := time.Parse(TSLayout, until)
	return err == nil && !t.After(now)
}

// rank orders roles: a higher rank may act on a lower one.
func rank(role string) int {
	switch role {
	case RoleOwner:
		return 3
	case RoleModerator:
		return 2
	case RoleMember:
		return 1
	}
	return 0
}

// ValidRole reports whether role is one of the three roles.
func ValidRole(role string) bool { return rank(role) > 0 }

// CanModerate reports whether user may moderate: an owner or a moderator.
func (st *RoomState) CanModerate(user string) bool { return rank(st.Role(user)) >= 2 }

// CanRead decides whether user may read the room (history, join, SSE,
// members, the room object) at now. A private or direct room is not found by
// anyone not a member; a banned user may not read a public room.
func (st *RoomState) CanRead(user string, now time.Time) error {
	switch st.RoomKind() {
	case RoomPrivate, RoomDirect:
		if !st.IsMember(user) {
			return errNoRoom
		}
	}
	if st.Banned(user, now) {
		return Errorf(EForbidden, "you are banned from this room")
	}
	return nil
}

// errNoRoom is the answer to anyone not a member of a private or direct
// room: the same as for a room that does not exist.
var errNoRoom = Errorf(ENotFound, "no such room")

// VisibleFrom is the first seq user may see: in a private or direct room the
// timeline from their latest add on, everywhere else all of it.
func (st *RoomState) VisibleFrom(user string) int64 {
	switch st.RoomKind() {
	case RoomPrivate, RoomDirect:
		return st.Members[user].Since
	}
	return 1
}

// itemTime is the time an item was taken (its ts, stamped by the accepting
// instance): the decisions of the persist stage use it rather than the
// clock, so that a record decided again after a redelivery is decided the
// same way.
func itemTime(m *Message) time.Time {
	t, err := time.Parse(TSLayout, m.TS)
	if err != nil {
		return time.Time{}
	}
	return t
}

// Check decides whether item m may go into the timeline after the state st.
// It returns nil or an *Error: forbidden, not_found, conflict, rate_limited
// or bad_request. It changes nothing.
func (st *RoomState) Check(m *Message) error {
	now := itemTime(m)
	if m.Kind == "" {
		if err := st.checkSend(m.User, now); err != nil {
			return err
		}
		return st.checkReply(m)
	}
	if m.IsLifecycle() {
		// Decided with its target: CheckLifecycle.
		return Errorf(EInternal, "a %s item is decided with its target", m.Kind)
	}
	if m.Kind != KindMember || m.Data == nil {
		return Errorf(EBadRequest, "unknown item kind %q", m.Kind)
	}
	d := m.Data
	actor, target := m.User, d.Target
	if d.Action == ActCreate {
		if st.Exists() {
			return Errorf(EConflict, "room %s already exists", st.Room)
		}
		return nil
	}
	if !st.Exists() {
		return errNoRoom
	}
	if err := st.CanRead(actor, now); err != nil {
		return err
	}
	direct := st.Kind == RoomDirect
	moderator := st.CanModerate(actor)
	// outranks: the actor may act on the target only when of a strictly
	// higher role (a non-member target has none).
	outranks := rank(st.Role(actor)) > rank(st.Role(target))
	switch d.Action {
	case ActUpdate:
		if direct {
			return Errorf(EForbidden, "a direct room has no settings")
		}
		if !moderator {
			return Errorf(EForbidden, "only an owner or a moderator may change the room")
		}
	case ActAdd:
		switch {
		case direct:
			return Errorf(EForbidden, "a direct room has exactly two members")
		case st.Kind == RoomPrivate && !moderator:
			return Errorf(EForbidden, "only an owner or a moderator may add members to a private room")
		case st.Banned(target, now):
			return Errorf(EForbidden, "%s is banned from this room", target)
		case st.IsMember(target):
			return Errorf(EConflict, "%s is already a member", target)
		}
	case ActLeave:
		switch {
		case direct:
			return Errorf(EForbidden, "a direct room cannot be left")
		case !st.IsMember(actor):
			return Errorf(ENotFound, "you are not a member")
		case st.lastOwner(actor):
			return Errorf(EConflict, "you are the room's last owner: make someone else owner first")
		}
	case ActRemove, ActBan, ActMute:
		switch {
		case direct:
			return Errorf(EForbidden, "a direct room has no moderation")
		case !moderator:
			return moderatorsOnly(d.Action)
		case target == actor:
			return notYourself(d.Action)
		case !outranks:
			return Errorf(EForbidden, "%s has a role as high as yours", target)
		case d.Action == ActRemove && !st.IsMember(target):
			return Errorf(ENotFound, "%s is not a member", target)
		case d.Action == ActMute && (d.Until == "" || expired(d.Until, now)):
			return Errorf(EBadRequest, "a mute needs an until in the future")
		case d.Action == ActBan && expired(d.Until, now):
			return Errorf(EBadRequest, "until must be in the future")
		}
	case ActUnban, ActUnmute:
		switch {
		case !moderator:
			return moderatorsOnly(d.Action)
		case d.Action == ActUnban && !st.Banned(target, now):
			return Errorf(ENotFound, "%s is not banned", target)
		case d.Action == ActUnmute && !st.Muted(target, now):
			return Errorf(ENotFound, "%s is not muted", target)
		}
	case ActRole:
		switch {
		case direct:
			return Errorf(EForbidden, "a direct room has no roles")
		case st.Role(actor) != RoleOwner:
			return Errorf(EForbidden, "only an owner may change roles")
		case !ValidRole(d.Role):
			return Errorf(EBadRequest, "role must be owner, moderator or member")
		case !st.IsMember(target):
			return Errorf(ENotFound, "%s is not a member", target)
		case target == actor && d.Role != RoleOwner && st.lastOwner(actor):
			return Errorf(EConflict, "you are the room's last owner: make someone else owner first")
		}
	default:
		return Errorf(EBadRequest, "unknown action %q", d.Action)
	}
	return nil
}

// moderatorsOnly refuses a moderation by a member who may not moderate.
// Each action has its own format, not "may %s members": the format is the
// key a client translates, and a verb inside it would stay English.
func moderatorsOnly(action string) error {
	switch action {
	case ActRemove:
		return Errorf(EForbidden, "only an owner or a moderator may remove members")
	case ActBan:
		return Errorf(EForbidden, "only an owner or a moderator may ban members")
	case ActMute:
		return Errorf(EForbidden, "only an owner or a moderator may mute members")
	case ActUnban:
		return Errorf(EForbidden, "only an owner or a moderator may unban members")
	default:
		return Errorf(EForbidden, "only an owner or a moderator may unmute members")
	}
}

// notYourself refuses a moderation of oneself (one format per action, as
// moderatorsOnly's).
func notYourself(action string) error {
	switch action {
	case ActRemove:
		return Errorf(EBadRequest, "you cannot remove yourself")
	case ActBan:
		return Errorf(EBadRequest, "you cannot ban yourself")
	default:
		return Errorf(EBadRequest, "you cannot mute yourself")
	}
}

// checkSend decides a plain message of user at now.
func (st *RoomState) checkSend(user string, now time.Time) error {
	if !st.Exists() && strings.HasPrefix(st.Room, DirectPrefix) {
		// A first message would make it a public room under a direct
		// room's name.
		return errNoRoom
	}
	if err := st.CanRead(user, now); err != nil {
		return err
	}
	if st.Muted(user, now) {
		return Errorf(EForbidden, "you are muted in this room until %s", st.Mutes[user])
	}
	if st.SlowModeS > 0 && !st.CanModerate(user) {
		if last, ok := st.LastSent[user]; ok {
			t, err := time.Parse(TSLayout, last)
			if err == nil && now.Sub(t) < time.Duration(st.SlowModeS)*time.Second {
				return Errorf(ERateLimited, "slow mode: one message per %d s", st.SlowModeS)
			}
		}
	}
	return nil
}

// lastOwner reports whether user is an owner and no other member is,
// while the room has other members.
func (st *RoomState) lastOwner(user string) bool {
	if st.Role(user) != RoleOwner || len(st.Members) < 2 {
		return false
	}
	for u, m := range st.Members {
		if u != user && m.Role == RoleOwner {
			return false
		}
	}
	return true
}

// Apply folds the stored item m (m.Seq > st.Seq) into the state. It does not
// decide: an item in the log is applied whatever it says.
func (st *RoomState) Apply(m *Message) {
	if m.Seq > st.Seq {
		st.Seq = m.Seq
	}
	if m.Kind != "" {
		st.Events++
	}
	if m.Kind == "" {
		if st.Kind == "" {
			st.Kind = RoomPublic // v1: a room comes into being with its first message
		}
		if st.Kind == RoomPublic && !st.IsMember(m.User) {
			// Sending to a public room makes you a member.
			st.setMember(m.User, Member{Role: RoleMember, Since: m.Seq, Guest: m.Guest})
		}
		if st.SlowModeS > 0 {
			if st.LastSent == nil {
				st.LastSent = map[string]string{}
			}
			if m.TS > st.LastSent[m.User] {
				st.LastSent[m.User] = m.TS
			}
		}
		return
	}
	if m.Kind != KindMember || m.Data == nil {
		return
	}
	d := m.Data
	switch d.Action {
	case ActCreate:
		st.Kind = d.RoomKind
		if st.Kind == "" {
			st.Kind = RoomPublic
		}
		st.Title, st.Topic = deref(d.Title), deref(d.Topic)
		if st.Kind == RoomDirect {
			for _, u := range d.Members {
				st.setMember(u, Member{Role: RoleMember, Since: m.Seq})
			}
			return
		}
		st.setMember(m.User, Member{Role: RoleOwner, Since: m.Seq, Guest: m.Guest})
	case ActUpdate:
		if d.Title != nil {
			st.Title = *d.Title
		}
		if d.Topic != nil {
			st.Topic = *d.Topic
		}
		if d.SlowModeS != nil {
			st.SlowModeS = *d.SlowModeS
			if st.SlowModeS == 0 {
				st.LastSent = nil
			}
		}
	case ActAdd:
		st.setMember(d.Target, Member{Role: RoleMember, Since: m.Seq, Guest: d.Guest})
	case ActRemove, ActLeave:
		delete(st.Members, d.Target)
	case ActBan:
		delete(st.Members, d.Target)
		if st.Bans == nil {
			st.Bans = map[string]Ban{}
		}
		st.Bans[d.Target] = Ban{Until: d.Until, Reason: d.Reason}
	case ActUnban:
		delete(st.Bans, d.Target)
	case ActMute:
		if st.Mutes == nil {
			st.Mutes = map[string]string{}
		}
		st.Mutes[d.Target] = d.Until
	case ActUnmute:
		delete(st.Mutes, d.Target)
	case ActRole:
		if mb, ok := st.Members[d.Target]; ok {
			mb.Role = d.Role
			st.Members[d.Target] = mb
		}
	}
}

func (st *RoomState) setMember(user string, m Member) {
	if st.Members == nil {
		st.Members = map[string]Member{}
	}
	st.Members[user] = m
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// Ends reports whether item m ends user's subscriptions to its room: their
// removal, ban or leave. The reason is the left frame's.
func (m *Message) Ends(user string) (reason string, ok bool) {
	if m.Kind != KindMember || m.Data == nil || m.Data.Target != user {
		return "", false
	}
	switch m.Data.Action {
	case ActRemove:
		return "removed", true
	case ActBan:
		return "banned", true
	case ActLeave:
		return "left", true
	}
	return "", false
}

// NewItem makes a membership item of actor in room, stamped now, with a text
// that reads sensibly to a client that ignores kind.
func NewItem(actor Author, room, id string, d ItemData, now time.Time) Message {
	return Message{Room: room, ID: id, User: actor.Name, Guest: actor.Guest, TS: Timestamp(now), Kind: KindMember, Data: &d, Text: itemText(actor.Name, &d)}
}

func itemText(actor string, d *ItemData) string {
	switch d.Action {
	case ActCreate:
		return fmt.Sprintf("%s created the room", actor)
	case ActUpdate:
		return fmt.Sprintf("%s changed the room's settings", actor)
	case ActAdd:
		if d.Target == actor {
			return fmt.Sprintf("%s joined", actor)
		}
		return fmt.Sprintf("%s added %s", actor, d.Target)
	case ActRemove:
		return fmt.Sprintf("%s removed %s", actor, d.Target)
	case ActLeave:
		return fmt.Sprintf("%s left", actor)
	case ActBan:
		if d.Until != "" {
			return fmt.Sprintf("%s banned %s until %s", actor, d.Target, d.Until)
		}
		return fmt.Sprintf("%s banned %s", actor, d.Target)
	case ActUnban:
		return fmt.Sprintf("%s unbanned %s", actor, d.Target)
	case ActMute:
		return fmt.Sprintf("%s muted %s until %s", actor, d.Target, d.Until)
	case ActUnmute:
		return fmt.Sprintf("%s unmuted %s", actor, d.Target)
	case ActRole:
		return fmt.Sprintf("%s made %s %s", actor, d.Target, d.Role)
	}
	return actor + " changed the room"
}

// ValidateSettings checks the room settings an item sets.
func ValidateSettings(title, topic *string, slow *int) error {
	if title != nil {
		if err := validateField("title", *title, MaxTitleRunes); err != nil {
			return err
		}
	}
	if topic != nil {
		if err := validateField("topic", *topic, MaxTopicRunes); err != nil {
			return err
		}
	}
	if slow != nil && (*slow < 0 || *slow > MaxSlowModeS) {
		return Errorf(EBadRequest, "slow_mode_s must be from 0 to %d", MaxSlowModeS)
	}
	return nil
}

// ValidateReason checks a ban's reason.
func ValidateReason(reason string) error { return validateField("reason", reason, MaxReasonRunes) }

// validateField checks a room setting: empty, or text by ValidateText's
// rules of at most max code points, on one line.
func validateField(name, v string, max int) error {
	if v == "" {
		return nil
	}
	if utf8.RuneCountInString(v) > max {
		return Errorf(EBadRequest, "%s must be at most %d characters", name, max)
	}
	if err := ValidateText(v); err != nil {
		e := err.(*Error)
		return Errorf(EBadRequest, "%s: %s", name, e.Message)
	}
	for _, r := range v {
		if r == '\n' || r == '\t' {
			return Errorf(EBadRequest, "%s must be one line", name)
		}
	}
	return nil
}
