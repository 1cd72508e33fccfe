// Package chat is Parley's domain: messages and their rules, the Bus and Store
// interfaces the rest of the program is built on, the persist stage and the hub.
// It imports no other package of this project; kafka/ and repository/ implement
// its interfaces, handlers/ speaks its API to clients, app/ wires them.
package chat

import (
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"time"
	"unicode"
	"unicode/utf8"
)

// Message is one chat message as it appears everywhere: WebSocket frames, SSE
// data, history, and the value of a bus record. Seq is 0 until the persist
// stage has stored it.
type Message struct {
	Room string `json:"room"`
	Seq  int64  `json:"seq,omitempty"`
	ID   string `json:"id"`
	User string `json:"user"`
	Text string `json:"text"`
	TS   string `json:"ts"`
	// Guest marks a message sent by a guest (v2).
	Guest bool `json:"guest,omitempty"`
	// Kind tells a timeline item that is not a plain message (KindMember);
	// a plain message has none. Data is such an item's data.
	Kind string    `json:"kind,omitempty"`
	Data *ItemData `json:"data,omitempty"`
	// ReplyTo is the seq of the item of the room a message answers.
	ReplyTo int64 `json:"reply_to,omitempty"`
	// EditedTS, Deleted and Reactions are a message as it stands, folded
	// from its lifecycle items (history; see lifecycle.go): the ts of its
	// last edit, whether it was deleted (its text erased), and each emoji's
	// users in the order they reacted.
	EditedTS  string              `json:"edited_ts,omitempty"`
	Deleted   bool                `json:"deleted,omitempty"`
	Reactions map[string][]string `json:"reactions,omitempty"`
	// Mentions lists the room's members the text names with @name,
	// matched canonically; computed by the persist stage (v2).
	Mentions []string `json:"mentions,omitempty"`
	// Events is how many timeline events (items with a Kind) the room
	// holds up to and including this item, stamped by the persist stage
	// (see missed.go). Not on the wire: stores keep it beside the item.
	Events int64 `json:"-"`
}

// Author is who sends a message: a user, and whether a guest.
type Author struct {
	Name  string
	Guest bool
}

// Limits of the contract.
const (
	MaxTextRunes = 4000
	MaxNameRunes = 32
	MaxIDLen     = 64
	// MaxFrameBytes bounds a WebSocket frame and an HTTP request body.
	MaxFrameBytes = 64 << 10
)

// TSLayout formats Message.TS: UTC, RFC 3339 with milliseconds.
const TSLayout = "2006-01-02T15:04:05.000Z"

// Timestamp formats t as a Message.TS.
func Timestamp(t time.Time) string { return t.UTC().Format(TSLayout) }

var (
	roomRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	idRE   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// ValidateRoom checks a room name.
func ValidateRoom(room string) error {
	if !roomRE.MatchString(room) {
		return Errorf(EBadRequest, "room must match ^[a-z0-9][a-z0-9_-]{0,63}$")
	}
	return nil
}

// ValidateID checks a client-chosen message id.
func ValidateID(id string) error {
	if !idRE.MatchString(id) {
		return Errorf(EBadRequest, "id must be 1-64 of A-Z a-z 0-9 _ -")
	}
	return nil
}

// MaxCombiningRun bounds the combining marks in a row after one base
// character: more is "zalgo" text that overflows the lines around it.
const MaxCombiningRun = 8

// ValidateText checks a message text: valid UTF-8, 1-4000 code points, at
// least one visible character, and nothing that could change how the text
// around it reads: no bidi override, embedding or isolate controls (".exe"
// shown as ".jpg"), no C0/C1 control but newline and tab (NUL, ANSI escapes),
// at most MaxCombiningRun combining marks in a row.
func ValidateText(text string) error {
	if !utf8.ValidString(text) {
		return Errorf(EBadRequest, "text must be valid UTF-8")
	}
	n := utf8.RuneCountInString(text)
	if n == 0 {
		return Errorf(EBadRequest, "text must not be empty")
	}
	if n > MaxTextRunes {
		return Errorf(EBadRequest, "text must be at most %d characters", MaxTextRunes)
	}
	visible, marks := false, 0
	for _, r := range text {
		switch {
		case isBidiControl(r):
			return Errorf(EBadRequest, "text must not contain bidi override, embedding or isolate controls (U+%04X)", r)
		case r != '\n' && r != '\t' && (r < 0x20 || (r >= 0x7f && r <= 0x9f)):
			return Errorf(EBadRequest, "text must not contain control characters other than newline and tab (U+%04X)", r)
		case unicode.Is(unicode.M, r):
			if marks++; marks > MaxCombiningRun {
				return Errorf(EBadRequest, "text must not stack more than %d combining marks on one character", MaxCombiningRun)
			}
			continue
		}
		marks = 0
		if !visible && IsVisible(r) {
			visible = true
		}
	}
	if !visible {
		return Errorf(EBadRequest, "text must contain a visible character")
	}
	return nil
}

// isBidiControl reports the explicit directional formatting characters that
// reorder the text after them: LRE, RLE, PDF, LRO, RLO (U+202A-U+202E) and
// LRI, RLI, FSI, PDI (U+2066-U+2069). The marks LRM, RLM and ALM stay
// allowed: right-to-left writers need them and they reorder nothing.
func isBidiControl(r rune) bool {
	return (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}

// IsVisible reports whether r draws something: a letter, digit, punctuation
// or symbol that is not a default-ignorable code point (such as the Hangul
// fillers U+3164, U+115F, U+1160, U+FFA0, which are letters that render as
// nothing) nor the blank Braille pattern U+2800.
func IsVisible(r rune) bool {
	if !unicode.In(r, unicode.L, unicode.N, unicode.P, unicode.S) {
		return false
	}
	return !unicode.In(r, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector) && r != 0x2800
}

// NewID makes a message id for a client that sent none: 128 random bits, hex.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
