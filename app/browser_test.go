package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/tools/testenv"
	"github.com/parley-chat/parley/web"
)

// forLangs runs test once per language of the UI (web.Langs), as subtest
// <lang>: the script's browser asks for it (PARLEY_LANG, harness.mjs) and the
// script expects its strings from that language's catalogue.
func forLangs(t *testing.T, test func(t *testing.T, lang string)) {
	for _, lang := range web.Langs {
		t.Run(lang, func(t *testing.T) { test(t, lang) })
	}
}

// TestBrowser runs web/e2e/chat.test.mjs, two users in real headless
// Chromium (one forced onto SSE), against the real server.
func TestBrowser(t *testing.T) {
	forLangs(t, func(t *testing.T, lang string) {
		browserScript(t, "chat.test.mjs", func(c *Config) { c.SendRate, c.SendBurst = 20, 40 }, "PARLEY_LANG="+lang)
	})
}

// TestBrowserRooms runs web/e2e/rooms.test.mjs: rooms with members in the
// UI, three people in three browsers (private and public rooms, the
// directory, adding, roles, bans, mutes, settings, direct messages, the
// timeline's lines), in one language: the strings are the catalogue's either way.
func TestBrowserRooms(t *testing.T) {
	browserScript(t, "rooms.test.mjs", nil)
}

// TestBrowserSessions runs web/e2e/sessions.test.mjs: accounts, guests'
// names and marks, sign-out ending other tabs, and a session refreshed
// before its token expires, which takes a server whose tokens live 30 s.
func TestBrowserSessions(t *testing.T) {
	const ttl = 30 * time.Second
	forLangs(t, func(t *testing.T, lang string) {
		browserScript(t, "sessions.test.mjs", func(c *Config) { c.TokenTTL = ttl },
			"PARLEY_TOKEN_TTL_S="+strconv.Itoa(int(ttl/time.Second)), "PARLEY_LANG="+lang)
	})
}

// TestBrowserOIDC runs web/e2e/oidc.test.mjs: "Sign in with Test IdP" in
// Chromium, through the login form of the real OIDC provider the test
// starts (zitadel/oidc, see idp_test.go), back into the chat.
func TestBrowserOIDC(t *testing.T) {
	needBrowser(t)
	forLangs(t, func(t *testing.T, lang string) {
		s, _ := startOIDC(t, false)
		runScript(t, s, "oidc.test.mjs", "PARLEY_OIDC_USER=oidc-bob", "PARLEY_OIDC_PASSWORD="+idpPassword, "PARLEY_OIDC_LABEL=Test IdP", "PARLEY_LANG="+lang)
	})
}

// TestBrowserClient runs web/e2e/client.test.mjs: the client library
// static/js/parley-client.js in Chromium, without the UI (so in one
// language only): send and ack, resume after a forced reconnect, SSE, and
// an error frame rejecting a send.
func TestBrowserClient(t *testing.T) {
	browserScript(t, "client.test.mjs", nil)
}

// TestBrowserMissed runs web/e2e/missed.test.mjs: "What you missed" in
// the UI — unread and mention badges kept live and cleared across two tabs
// of one user, the new-messages line, the bell listing a mention and
// opening its room at that message, receipts in a direct room — on a
// server that notifies after 1 s rather than 10.
func TestBrowserMissed(t *testing.T) {
	browserScript(t, "missed.test.mjs", func(c *Config) {
		c.NotifyDelay = time.Second
		if c.MongoURI != "" {
			// FerretDB scans for each room list's counts (51 rooms here,
			// one with 501 unread); under the suite's load that once
			// passed the 5 s bound (a 503 the page logged).
			c.storeTimeout = 20 * time.Second
		}
	})
}

// TestBrowserLifecycle runs web/e2e/lifecycle.test.mjs: a message's life
// in the UI, two users in two browsers — a reply with its quote (a click
// jumps to the parent), an edit in place, a reaction from the picker, a
// delete after a confirmation — live on both pages and the same after a
// reload.
func TestBrowserLifecycle(t *testing.T) {
	browserScript(t, "lifecycle.test.mjs", func(c *Config) { c.SendRate, c.SendBurst = 20, 60 })
}

// browserScript runs one script of web/e2e against a server configured by
// edit, with env added to the script's environment.
func browserScript(t *testing.T, script string, edit func(*Config), env ...string) {
	needBrowser(t)
	runScript(t, startServer(t, edit), script, env...)
}

// needBrowser checks for Chromium, node and playwright-core: without them
// the test skips, under CI=true it fails.
func needBrowser(t *testing.T) {
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
}

// runScript runs one script of web/e2e against s, with env added to the
// script's environment.
func runScript(t *testing.T, s *testServer, script string, env ...string) {
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
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
