package handlers

import (
	"reflect"
	"strings"
	"testing"

	"github.com/parley-chat/parley/app/chat"
)

func TestEventFrames(t *testing.T) {
	ev := chat.NewEvent(chat.Message{Room: "r", Seq: 42, ID: "c1", User: "alice", Text: "<b>\"hi\"</b>", TS: "2026-11-25T10:00:00.123Z"})
	ws := string(ev.Frame(wsMessage))
	if !strings.HasPrefix(ws, `{"type":"message","room":"r","seq":42,`) || !strings.HasSuffix(ws, `}`) {
		t.Fatalf("ws frame %s", ws)
	}
	sse := string(ev.Frame(sseMessage))
	if !strings.HasPrefix(sse, "id: 42\nevent: message\ndata: {\"room\":\"r\"") || !strings.HasSuffix(sse, "}\n\n") {
		t.Fatalf("sse frame %q", sse)
	}
	if &ev.Frame(wsMessage)[0] != &ev.Frame(wsMessage)[0] {
		t.Fatal("frames must be encoded once")
	}
}

// A receive record's bytes become the event's without a second encoding,
// and its frames are the same as those of the message encoded afresh.
func TestDecodeEventKeepsRecordBytes(t *testing.T) {
	m := chat.Message{Room: "r", Seq: 7, ID: "c1", User: "bob", Text: "hi", TS: "2026-11-25T10:00:00.123Z"}
	rec := chat.Encode(m)
	ev, err := chat.DecodeEvent(rec)
	if err != nil {
		t.Fatal(err)
	}
	if &ev.JSON()[0] != &rec[0] || !reflect.DeepEqual(ev.Msg, m) {
		t.Fatalf("event %+v does not keep the record's bytes", ev.Msg)
	}
	if got, want := string(ev.Frame(wsMessage)), string(chat.NewEvent(m).Frame(wsMessage)); got != want {
		t.Fatalf("ws frame %s, want %s", got, want)
	}
	if _, err := chat.DecodeEvent([]byte("{")); err == nil {
		t.Fatal("a broken record must not decode")
	}
	spaced, err := chat.DecodeEvent([]byte(" " + string(rec)))
	if err != nil || string(spaced.Frame(wsMessage)) != string(ev.Frame(wsMessage)) {
		t.Fatalf("a record with leading space: %v %s", err, spaced.Frame(wsMessage))
	}
}
