package main

import (
	"testing"
	"time"
)

// TestLoadConfigRetention: PARLEY_RETENTION takes days with a d suffix or a
// Go duration, is off when unset or 0, and refuses anything else.
func TestLoadConfigRetention(t *testing.T) {
	for v, want := range map[string]time.Duration{
		"": 0, "0": 0, "90d": 90 * 24 * time.Hour, "1d": 24 * time.Hour, "720h": 720 * time.Hour, "90m": 90 * time.Minute,
	} {
		cfg, err := LoadConfig(func(k string) string {
			if k == "PARLEY_RETENTION" {
				return v
			}
			return ""
		}, nil)
		if err != nil || cfg.Retention != want {
			t.Errorf("PARLEY_RETENTION=%q: %v, %v; want %v", v, cfg.Retention, err, want)
		}
	}
	for _, v := range []string{"-1d", "-5m", "1.5d", "d", "ninety days", "90x"} {
		if _, err := LoadConfig(func(k string) string {
			if k == "PARLEY_RETENTION" {
				return v
			}
			return ""
		}, nil); err == nil {
			t.Errorf("PARLEY_RETENTION=%q accepted", v)
		}
	}
	// The flag too, and its value reads back in days.
	cfg, err := LoadConfig(func(string) string { return "" }, []string{"-retention", "30d"})
	if err != nil || cfg.Retention != 30*24*time.Hour {
		t.Fatalf("-retention 30d: %v, %v", cfg.Retention, err)
	}
	if got := (retentionValue{&cfg.Retention}).String(); got != "30d" {
		t.Fatalf("30 days read back as %q", got)
	}
}
