package main

import (
	"testing"
	"time"
)

// TestRetentionBlackBox: with PARLEY_RETENTION the running server deletes
// old messages; the room keeps its last seq, history ends with has_more
// false, a join after an expired seq replays nothing without error, and the
// next message continues the seqs.
func TestRetentionBlackBox(t *testing.T) {
	defer func(d time.Duration) { sweepInterval = d }(sweepInterval)
	sweepInterval = 50 * time.Millisecond
	s := startServer(t, func(cfg *Config) { cfg.Retention = 1500 * time.Millisecond })
	token := s.login("alice")
	c := s.dial(token)
	for _, id := range []string{"a", "b", "c"} {
		c.sendAcked("general", id, "soon gone")
		c.ack(id)
	}
	if p := s.waitHistory(token, "general", 3); len(p.Messages) != 3 {
		t.Fatalf("history before expiry: %+v", p)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := s.history(token, "general", "?limit=50")
		if len(p.Messages) == 0 {
			if p.HasMore {
				t.Fatalf("empty history with has_more true")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("messages not deleted after the retention: %+v", p)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if last := c.join("general", 1); last != 3 {
		t.Fatalf("joined last_seq %d after every message expired, want 3", last)
	}
	c.sendAcked("general", "d", "new")
	c.ack("d")
	got := c.messages(1)
	if got[0].Seq != 4 || got[0].ID != "d" {
		t.Fatalf("message after expiry: %+v, want seq 4", got[0])
	}
	p := s.history(token, "general", "?limit=50")
	if len(p.Messages) != 1 || p.Messages[0].Seq != 4 || p.HasMore {
		t.Fatalf("history after the next message: %+v", p)
	}
	p = s.history(token, "general", "?before=4&limit=50")
	if len(p.Messages) != 0 || p.HasMore {
		t.Fatalf("history before the oldest kept: %+v", p)
	}
}
