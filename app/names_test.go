package main

import (
	"encoding/json"
	"testing"
)

// TestNamesV2: the tightened name rules at sign-in, and names of many
// scripts working end to end (sign in, send, read back).
func TestNamesV2(t *testing.T) {
	s := startServer(t, func(c *Config) { c.Secret = testSecret("names") })
	for name, why := range map[string]string{
		"\u3164":   "Hangul filler",
		"a\uFFA0b": "halfwidth Hangul filler",
		"аlice":    "Cyrillic а with Latin",
		"pαypal":   "Greek α with Latin",
		"___":      "punctuation only",
		"admin":    "reserved",
		"ＲＯＯＴ":     "reserved, fullwidth",
		"Here":     "reserved, case",
		"adrnin":   "look-alike of a reserved name",
	} {
		body, _ := json.Marshal(map[string]string{"name": name})
		status, b := s.do("POST", "/api/session", "", string(body))
		t.Run(why, func(t *testing.T) { apiError(t, status, b, 400, "bad_request") })
		// A token minted elsewhere for such a name is refused too.
		tok, err := (&authForTest{secret: testSecret("names")}).issue(name)
		if err != nil {
			t.Fatal(err)
		}
		if status, b := s.do("GET", "/api/rooms", tok, ""); status != 401 {
			t.Errorf("token for %q (%s): %d %s, want 401", name, why, status, b)
		}
	}
	for i, name := range []string{"김철수", "山田太郎", "やまだ", "李小龙", "محمد", "Иван", "Zoë_李.x-1"} {
		tok := s.login(name)
		c := s.dial(tok)
		id := "n" + string(rune('a'+i))
		c.sendAcked("names", id, "안녕 hello")
		c.ack(id)
		p := s.waitHistory(tok, "names", i+1)
		if got := p.Messages[i].User; got != name {
			t.Fatalf("message %d user %q, want %q", i, got, name)
		}
	}
}
