package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// need skips a test whose tool is missing, except under CI=true, where a
// missing tool is a failure: CI must never pass by skipping.
func need(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing under CI=true: %v", what, err)
	}
	t.Skipf("%s is missing: %v", what, err)
}

// TestBrowser runs web/e2e/chat.test.mjs, two users in real headless
// Chromium (one forced onto SSE), against the real server.
func TestBrowser(t *testing.T) {
	browserScript(t, "chat.test.mjs", func(c *Config) { c.SendRate, c.SendBurst = 20, 40 })
}

// TestBrowserSessions runs web/e2e/sessions.test.mjs: accounts, guests'
// names and marks, sign-out ending other tabs, and a session refreshed
// before its token expires, which takes a server whose tokens live 30 s.
func TestBrowserSessions(t *testing.T) {
	const ttl = 30 * time.Second
	browserScript(t, "sessions.test.mjs", func(c *Config) { c.TokenTTL = ttl },
		"PARLEY_TOKEN_TTL_S="+strconv.Itoa(int(ttl/time.Second)))
}

// browserScript runs one script of web/e2e against a server configured by
// edit, with env added to the script's environment.
func browserScript(t *testing.T, script string, edit func(*Config), env ...string) {
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	_, err := os.Stat(chromium)
	need(t, "chromium (apt-get install chromium)", err)
	_, err = exec.LookPath("node")
	need(t, "node", err)
	_, err = os.Stat(filepath.Join("..", "web", "e2e", "node_modules", "playwright-core"))
	need(t, "playwright-core (npm ci --prefix web/e2e)", err)

	s := startServer(t, edit)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join("..", "web", "e2e", script))
	cmd.Env = append(append(os.Environ(), "PARLEY_URL="+s.base, "CHROMIUM="+chromium), env...)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("browser test failed: %v", err)
	}
}
