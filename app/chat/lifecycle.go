package chat

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"time"
	"unicode"

	"github.com/rivo/uniseg"
)

// A message's life (PROTOCOL.md v2 "Message lifecycle"): replies, edits,
// deletes and reactions. Edits, deletes and reactions are timeline items of
// their own, with a seq, published and decided like every item; the message
// they are about (their target, Data.TargetSeq) stays as it was stored, and
// what it looks like now is the fold of its lifecycle items, in seq order,
// by Fold: one rule for both stores' history and for every client.

// Kinds of lifecycle items.
const (
	KindEdit     = "edit"
	KindDelete   = "delete"
	KindReaction = "reaction"
)

// IsLifecycle reports whether m is an edit, delete or reaction item.
func (m *Message) IsLifecycle() bool {
	switch m.Kind {
	case KindEdit, KindDelete, KindReaction:
		return true
	}
	return false
}

// Target is the seq of the message a lifecycle item is about; 0 for any
// other item.
func (m *Message) Target() int64 {
	if !m.IsLifecycle() || m.Data == nil {
		return 0
	}
	return m.Data.TargetSeq
}

// Fold applies the lifecycle item it, stored after m and about m, to m: an
// edit sets the text and edited_ts, a delete erases the text (and what the
// edits and reactions said) for good, a reaction adds or removes its user
// under its emoji. A deleted message takes nothing more. Applied to the
// same message in seq order it gives the same result wherever it runs.
func (m *Message) Fold(it *Message) {
	if m.Deleted || it.Data == nil {
		return
	}
	switch it.Kind {
	case KindEdit:
		m.Text, m.EditedTS = it.Text, it.TS
	case KindDelete:
		m.Deleted, m.Text, m.EditedTS, m.Reactions = true, "", "", nil
	case KindReaction:
		e := it.Data.Emoji
		users := m.Reactions[e]
		i := slices.Index(users, it.User)
		switch on := it.Data.On == nil || *it.Data.On; {
		case on && i < 0:
			if m.Reactions == nil {
				m.Reactions = map[string][]string{}
			}
			m.Reactions[e] = append(slices.Clip(users), it.User)
		case !on && i >= 0:
			users = slices.Delete(slices.Clone(users), i, i+1)
			if len(users) == 0 {
				delete(m.Reactions, e)
			} else {
				m.Reactions[e] = users
			}
			if len(m.Reactions) == 0 {
				m.Reactions = nil
			}
		}
	}
}

// FoldInto folds items (lifecycle items, ascending by seq) into the
// messages of page they are about: history "as it stands". Items about
// messages not in page are skipped.
func FoldInto(page []Message, items []Message) {
	at := make(map[int64]int, len(page))
	for i := range page {
		at[page[i].Seq] = i
	}
	for k := range items {
		it := &items[k]
		if i, ok := at[it.Target()]; ok && it.Seq > page[i].Seq {
			page[i].Fold(it)
		}
	}
}

// TargetInfo is what the persist stage knows of a lifecycle item's target
// when it decides the item: whether it is stored, its author and kind, and
// whether it was deleted.
type TargetInfo struct {
	Found   bool
	User    string
	Kind    string
	Deleted bool
}

// CheckLifecycle decides the lifecycle item m against the state and its
// target: the room must be readable to the actor; the target a message of
// the room (not an event), not deleted; an edit its author's; a delete its
// author's or a moderator's (an owner's); a reaction a member's in a private
// or direct room, not muted.
func (st *RoomState) CheckLifecycle(m *Message, t TargetInfo) error {
	now := itemTime(m)
	if !st.Exists() {
		return errNoRoom
	}
	if err := st.CanRead(m.User, now); err != nil {
		return err
	}
	if m.Data == nil || m.Data.TargetSeq < 1 || m.Data.TargetSeq > st.Seq || !t.Found || t.Kind != "" {
		return Errorf(ENotFound, "no message at that seq in this room")
	}
	if t.Deleted {
		return Errorf(EConflict, "the message was deleted")
	}
	switch m.Kind {
	case KindEdit:
		if m.User != t.User {
			return Errorf(EForbidden, "only its author may edit a message")
		}
		if st.Muted(m.User, now) {
			return Errorf(EForbidden, "you are muted in this room until %s", st.Mutes[m.User])
		}
	case KindDelete:
		if m.User != t.User && (st.Kind == RoomDirect || !st.CanModerate(m.User)) {
			return Errorf(EForbidden, "only its author, a moderator or an owner may delete a message")
		}
	case KindReaction:
		if st.Kind != RoomPublic && !st.IsMember(m.User) {
			return errNoRoom
		}
		if st.Muted(m.User, now) {
			return Errorf(EForbidden, "you are muted in this room until %s", st.Mutes[m.User])
		}
	default:
		return Errorf(EBadRequest, "unknown item kind %q", m.Kind)
	}
	return nil
}

// checkReply checks a message's reply_to: the seq of an item of the room,
// stored before it.
func (st *RoomState) checkReply(m *Message) error {
	if m.ReplyTo != 0 && (m.ReplyTo < 0 || m.ReplyTo > st.Seq) {
		return Errorf(EBadRequest, "reply_to must be the seq of an item of this room")
	}
	return nil
}

// MaxEmojiBytes bounds a reaction's emoji (the longest emoji sequences,
// family ZWJ sequences with skin tones, are about 35 bytes).
const MaxEmojiBytes = 64

// ValidateEmoji checks a reaction's emoji: exactly one grapheme cluster
// (uniseg, UAX #29) without stacked combining marks, and an emoji: it
// starts with a pictographic symbol (So), is a flag (two regional
// indicators) or a keycap sequence.
func ValidateEmoji(e string) error {
	bad := Errorf(EBadRequest, "emoji must be one emoji")
	if e == "" || len(e) > MaxEmojiBytes || uniseg.GraphemeClusterCount(e) != 1 {
		return bad
	}
	for _, r := range e {
		// Marks other than an emoji's own (the emoji presentation
		// selector, the keycap) are stacked on it, not part of it.
		if unicode.Is(unicode.M, r) && r != 0xFE0F && r != 0xFE0E && r != 0x20E3 {
			return bad
		}
	}
	for i, r := range e {
		switch {
		case isRegional(r):
			// A flag is two regional indicators; one alone is a letter.
			if rs := []rune(e); i == 0 && len(rs) == 2 && isRegional(rs[1]) {
				return nil
			}
			return bad
		case unicode.Is(unicode.So, r):
			return nil
		case i == 0 && (r == '#' || r == '*' || (r >= '0' && r <= '9')):
			// A keycap: digit, U+FE0F, U+20E3.
			if len(e) > 1 && e[len(e)-3:] == "\u20e3" {
				return nil
			}
			return bad
		case i == 0:
			return bad
		}
	}
	return bad
}

func isRegional(r rune) bool { return r >= 0x1F1E6 && r <= 0x1F1FF }

// NewLifecycle makes a lifecycle item of actor in room about target, stamped
// now, with a text that reads sensibly to a client that ignores kind: an
// edit's text is the new text.
func NewLifecycle(actor Author, room, id, kind string, target int64, text, emoji string, on bool, now time.Time) Message {
	d := &ItemData{TargetSeq: target}
	switch kind {
	case KindEdit:
	case KindDelete:
		text = actor.Name + " deleted a message"
	case KindReaction:
		d.Emoji, d.On = emoji, &on
		if on {
			text = actor.Name + " reacted " + emoji
		} else {
			text = actor.Name + " took back " + emoji
		}
	}
	return Message{Room: room, ID: id, User: actor.Name, Guest: actor.Guest, TS: Timestamp(now), Kind: kind, Data: d, Text: text}
}

// itemDataJSON is ItemData on the wire: "target" is a user name (membership
// items) or a seq (lifecycle items), told apart by its JSON type.
type itemDataJSON struct {
	itemDataFields
	Target json.RawMessage `json:"target,omitempty"`
}

type itemDataFields ItemData

// MarshalJSON writes Target or TargetSeq as "target".
func (d ItemData) MarshalJSON() ([]byte, error) {
	out := itemDataJSON{itemDataFields: itemDataFields(d)}
	switch {
	case d.TargetSeq != 0:
		out.Target = strconv.AppendInt(nil, d.TargetSeq, 10)
	case d.Target != "":
		b, err := json.Marshal(d.Target)
		if err != nil {
			return nil, err
		}
		out.Target = b
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads "target" into Target (a string) or TargetSeq (a
// number).
func (d *ItemData) UnmarshalJSON(b []byte) error {
	var in itemDataJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*d = ItemData(in.itemDataFields)
	d.Target, d.TargetSeq = "", 0
	if len(in.Target) == 0 || string(in.Target) == "null" {
		return nil
	}
	if in.Target[0] == '"' {
		return json.Unmarshal(in.Target, &d.Target)
	}
	return json.Unmarshal(in.Target, &d.TargetSeq)
}

// Lifecycles is what a store does for a message's life, beside Store
// (both stores implement it):
//
//   - ItemsAbout finds the lifecycle items about a page's messages, so that
//     history can fold them in (FoldInto). Store.Messages itself returns
//     items as stored: a join's replay gives a client the lifecycle items in
//     order, and it folds them itself.
//   - Append, when it stores a delete item — or is given again one it
//     stored already (a redelivery after a crash between the two writes) —
//     erases what the deleted message said, in the store, for good: the
//     target's Text becomes "" and its Deleted true, and every edit item
//     about it has its Text erased too. Reactions are items of their own and
//     say nothing of the text; they stay. An edit Append is given about a
//     message deleted already (the persist stage refuses one, but two
//     instances racing may store it) is stored, and returned, with its
//     Text erased likewise.
type Lifecycles interface {
	// ItemsAbout returns the stored lifecycle items of room about any of
	// the messages at targets, ascending by seq; none is an empty slice.
	ItemsAbout(ctx context.Context, room string, targets []int64) ([]Message, error)
}
