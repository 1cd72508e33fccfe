package handlers

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/parley-chat/parley/app/chat"
)

// The wire framing of both transports. Client frames are decoded here;
// server frames are laid out here: a message event is framed once per
// transport (chat.Framing) however many connections it goes to.

// wsMessage frames an event for WebSocket: {"type":"message", ...the
// message's fields}, spliced into the message's own encoding.
var wsMessage = chat.NewFraming(func(ev *chat.Event) []byte {
	j := ev.JSON()
	b := make([]byte, 0, len(j)+17)
	b = append(b, `{"type":"message",`...)
	return append(b, j[1:]...)
})

// sseMessage frames an event as a Server-Sent Event, its id the seq so that
// EventSource's Last-Event-ID is the resume point.
var sseMessage = chat.NewFraming(func(ev *chat.Event) []byte {
	j := ev.JSON()
	b := make([]byte, 0, len(j)+48)
	b = append(b, "id: "...)
	b = strconv.AppendInt(b, ev.Msg.Seq, 10)
	b = append(b, "\nevent: message\ndata: "...)
	b = append(b, j...)
	return append(b, "\n\n"...)
})

// frame is any client frame; unknown fields (such as "user") are ignored.
type frame struct {
	Type  string           `json:"type"`
	Room  string           `json:"room"`
	After *json.RawMessage `json:"after"`
	ID    *string          `json:"id"`
	Text  *string          `json:"text"`
	Seq   *json.RawMessage `json:"seq"`
	// The message lifecycle's: send's reply_to; edit, delete and react's
	// target; react's emoji and on.
	ReplyTo *json.RawMessage `json:"reply_to"`
	Target  *json.RawMessage `json:"target"`
	Emoji   *string          `json:"emoji"`
	On      *bool            `json:"on"`
}

// decodeFrame decodes a client frame, refusing invalid UTF-8 (which
// encoding/json would silently replace) and anything but a JSON object.
func decodeFrame(data []byte) (frame, error) {
	var f frame
	if !utf8.Valid(data) {
		return f, chat.Errorf(chat.EBadRequest, "frame must be valid UTF-8")
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return f, chat.Errorf(chat.EBadRequest, "frame must be a JSON object: %s", jsonProblem(err))
	}
	return f, nil
}

type errorFrame struct {
	Type    string   `json:"type"`
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Key     string   `json:"key,omitempty"`
	Params  []string `json:"params,omitempty"`
	ID      string   `json:"id,omitempty"`
	Room    string   `json:"room,omitempty"`
}

// joinedFrame answers a join.
func joinedFrame(room string, lastSeq int64) []byte {
	b, _ := json.Marshal(struct {
		Type    string `json:"type"`
		Room    string `json:"room"`
		LastSeq int64  `json:"last_seq"`
	}{"joined", room, lastSeq})
	return b
}

func newErrorFrame(err error, id, room string) errorFrame {
	key, params := chat.ErrorKey(err)
	return errorFrame{Type: "error", Code: chat.ErrorCode(err), Message: chat.ErrorMessage(err), Key: key, Params: params, ID: id, Room: room}
}
