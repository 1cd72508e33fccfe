// Package chat is Parley's domain: messages and their rules, the Bus and Store
// interfaces the rest of the program is built on, the persist stage and the hub.
// It imports no other package of this project; kafka/ and repository/ implement
// its interfaces, handlers/ speaks its API to clients, app/ wires them.
package chat

import (
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"strings"
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

// ValidateText checks a message text: valid UTF-8, 1-4000 code points, not
// only white space.
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
	if strings.TrimFunc(text, unicode.IsSpace) == "" {
		return Errorf(EBadRequest, "text must not be only white space")
	}
	return nil
}

// ValidateName checks a user name: 1-32 letters of any script, digits, _ - .
func ValidateName(name string) error {
	if !utf8.ValidString(name) {
		return Errorf(EBadRequest, "name must be valid UTF-8")
	}
	n := 0
	for _, r := range name {
		n++
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-' || r == '.') {
			return Errorf(EBadRequest, "name may contain only letters, digits, _ - and .")
		}
	}
	if n < 1 || n > MaxNameRunes {
		return Errorf(EBadRequest, "name must be 1-%d characters", MaxNameRunes)
	}
	return nil
}

// NewID makes a message id for a client that sent none: 128 random bits, hex.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
