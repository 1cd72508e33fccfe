package chat

import "testing"

func TestUnreadBetween(t *testing.T) {
	msg := func(seq, events int64) *Message { return &Message{Seq: seq, Events: events} }
	event := func(seq, events int64) *Message { return &Message{Seq: seq, Events: events, Kind: KindMember} }
	for _, c := range []struct {
		name        string
		first, last *Message
		want        int64
	}{
		{"no item after the read position", nil, msg(5, 0), 0},
		{"no last item", msg(3, 0), nil, 0},
		{"first after last", msg(6, 0), msg(5, 0), 0},
		{"messages only", msg(3, 0), msg(5, 0), 3},
		// 1 msg, 2 msg, 3 event, 4 msg, 5 event, 6 msg: read up to 1.
		{"events between", msg(2, 0), msg(6, 2), 3},
		{"first is an event", event(3, 1), msg(6, 2), 2},
		{"last is an event", msg(2, 0), event(5, 2), 2},
		{"only events", event(3, 1), event(3, 1), 0},
		// Items 1..4 deleted, read position 0: only 5 and 6 count.
		{"deleted before first", event(5, 2), msg(6, 2), 1},
		{"one message", msg(7, 4), msg(7, 4), 1},
		// Stamps that do not add up (items older than Events) stay in range.
		{"legacy first, stamped last", msg(1, 0), msg(4, 9), 0},
		{"stamped first, legacy last", msg(2, 5), msg(4, 0), 3},
	} {
		if got := UnreadBetween(c.first, c.last); got != c.want {
			t.Errorf("%s: UnreadBetween = %d, want %d", c.name, got, c.want)
		}
	}
}
