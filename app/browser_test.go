package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/tools/testenv"
)

// TestBrowser runs web/e2e/chat.test.mjs, two users in real headless
// Chromium (one forced onto SSE), against the real server.
func TestBrowser(t *testing.T) {
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	_, err := os.Stat(chromium)
	testenv.Need(t, "chromium (apt-get install chromium)", err)
	_, err = exec.LookPath("node")
	testenv.Need(t, "node", err)
	_, err = os.Stat(filepath.Join("..", "web", "e2e", "node_modules", "playwright-core"))
	testenv.Need(t, "playwright-core (npm ci --prefix web/e2e)", err)

	s := startServer(t, func(c *Config) { c.SendRate, c.SendBurst = 20, 40 })
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join("..", "web", "e2e", "chat.test.mjs"))
	cmd.Env = append(os.Environ(), "PARLEY_URL="+s.base, "CHROMIUM="+chromium)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("browser test failed: %v", err)
	}
}
