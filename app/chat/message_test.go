package chat

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	ok := func(err error) bool { return err == nil }
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"room simple", ValidateRoom("general"), true},
		{"room 64", ValidateRoom("a" + strings.Repeat("b", 63)), true},
		{"room 65", ValidateRoom("a" + strings.Repeat("b", 64)), false},
		{"room upper", ValidateRoom("General"), false},
		{"room leading dash", ValidateRoom("-x"), false},
		{"room empty", ValidateRoom(""), false},
		{"room dot", ValidateRoom("a.b"), false},
		{"id uuid", ValidateID("9f1c2a7e-0b3d-4c5e-8f9a-1b2c3d4e5f60"), true},
		{"id empty", ValidateID(""), false},
		{"id 65", ValidateID(strings.Repeat("i", 65)), false},
		{"id slash", ValidateID("a/b"), false},
		{"text one", ValidateText("x"), true},
		{"text 4000 emoji", ValidateText(strings.Repeat("😀", 4000)), true},
		{"text 4001", ValidateText(strings.Repeat("x", 4001)), false},
		{"text empty", ValidateText(""), false},
		{"text blank unicode", ValidateText("\u2003\u00a0\t\n"), false},
		{"text invalid utf8", ValidateText("a\xffb"), false},
		{"name unicode", ValidateName("Zoë_李.x-1"), true},
		{"name 33", ValidateName(strings.Repeat("n", 33)), false},
		{"name space", ValidateName("a b"), false},
		{"name empty", ValidateName(""), false},
	}
	for _, c := range cases {
		if ok(c.err) != c.want {
			t.Errorf("%s: err %v, want ok=%v", c.name, c.err, c.want)
		}
		if c.err != nil && ErrorCode(c.err) != EBadRequest {
			t.Errorf("%s: code %s", c.name, ErrorCode(c.err))
		}
	}
	if NewID() == NewID() || ValidateID(NewID()) != nil {
		t.Error("NewID must make distinct valid ids")
	}
}

func TestEventFrames(t *testing.T) {
	ev := NewEvent(Message{Room: "r", Seq: 42, ID: "c1", User: "alice", Text: "<b>\"hi\"</b>", TS: "2026-11-25T10:00:00.123Z"})
	ws := string(ev.WSFrame())
	if !strings.HasPrefix(ws, `{"type":"message","room":"r","seq":42,`) || !strings.HasSuffix(ws, `}`) {
		t.Fatalf("ws frame %s", ws)
	}
	sse := string(ev.SSEFrame())
	if !strings.HasPrefix(sse, "id: 42\nevent: message\ndata: {\"room\":\"r\"") || !strings.HasSuffix(sse, "}\n\n") {
		t.Fatalf("sse frame %q", sse)
	}
	if &ev.WSFrame()[0] != &ev.WSFrame()[0] {
		t.Fatal("frames must be encoded once")
	}
}
