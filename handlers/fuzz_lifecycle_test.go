package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/app/chat"
)

// A message's life under the fuzzer and against openapi.json: edits,
// deletes, reactions, a message's edits, replies and the history they fold
// into, with fuzzed bodies, seqs and headers, must never answer 5xx or
// panic, must answer every error as an Error body with its code, and must
// give only answers the document describes (status and body).

// lifeRoom is the room the lifecycle routes are fuzzed in: not
// checkHistory's, whose every item must be a message with text (a delete
// erases one).
const lifeRoom = "life"

// seedLife posts n messages of tok's to lifeRoom and waits until the store
// holds them.
func seedLife(tb testing.TB, app *fiber.App, tok string, store chat.Store, n int) {
	tb.Helper()
	for i := range n {
		if status, b := authedRequest(tb, app, tok, "POST", "/api/rooms/"+lifeRoom+"/messages", fmt.Sprintf(`{"id":"seed%d","text":"message %d"}`, i, i)); status != 202 {
			tb.Fatalf("seed message: %d %s", status, b)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if last, err := store.LastSeq(context.Background(), lifeRoom); err == nil && last >= int64(n) {
			waitRoom(tb, store, lifeRoom)
			return
		}
	}
	tb.Fatalf("%d seed messages not stored within 5 s", n)
}

// FuzzLifecycleRoutes sends fuzzed requests to the routes of a message's
// life (edit, delete, react, the edits, a reply, history) under
// FuzzHTTPInputs' rules, validates every answer against openapi.json, and
// checks lifeRoom's timeline after each: gapless, and every lifecycle item
// about an earlier message of the room.
func FuzzLifecycleRoutes(f *testing.F) {
	app, tok, store := fuzzServer(f)
	doc := newDocCheck(f)
	seedLife(f, app, tok, store, 3)
	f.Add(uint8(0), "", []byte(`{"id":"e1","text":"edited"}`))
	f.Add(uint8(0), "", []byte(`{"text":""}`))
	f.Add(uint8(0), "", []byte(`{"text":"a\u202eb","id":"x y"}`))
	f.Add(uint8(1), "2", []byte(`{"text":"v2"}`))
	f.Add(uint8(1), "0", []byte(`{"text":"v2"}`))
	f.Add(uint8(1), "99999999999999999999", []byte(`{"text":"v2"}`))
	f.Add(uint8(2), "", []byte(`{"emoji":"👍"}`))
	f.Add(uint8(2), "", []byte(`{"emoji":"👍","on":false}`))
	f.Add(uint8(2), "", []byte(`{"emoji":"👍👍","on":"yes"}`))
	f.Add(uint8(3), "1", []byte(`{"emoji":"🇰🇷"}`))
	f.Add(uint8(3), "-1", []byte(`{"emoji":"1️⃣"}`))
	f.Add(uint8(4), "3", []byte(nil))
	f.Add(uint8(4), "2?id=bad%20id", []byte(nil))
	f.Add(uint8(5), "1", []byte(nil))
	f.Add(uint8(5), "x", []byte(nil))
	f.Add(uint8(6), "", []byte(`{"text":"to you","reply_to":1}`))
	f.Add(uint8(6), "", []byte(`{"text":"to nobody","reply_to":999}`))
	f.Add(uint8(6), "", []byte(`{"text":"x","reply_to":null}`))
	f.Add(uint8(7), "limit=200", []byte(nil))
	f.Add(uint8(7), "after=1&limit=2", []byte(nil))
	f.Add(uint8(0|1<<3), "", []byte(`{"text":"x"}`)) // text/plain: 415
	f.Add(uint8(4|2<<5), "1", []byte(nil))           // gzip: 415
	f.Add(uint8(4|1<<7), "1", []byte(nil))           // a foreign origin: 403
	f.Fuzz(func(t *testing.T, kind uint8, query string, body []byte) {
		base := "/api/rooms/" + lifeRoom + "/messages"
		seq := url.PathEscape(query)
		if kind&7 == 4 {
			// DELETE's idempotency key is in the query: the fuzzed string
			// may carry one after the seq.
			s, q, ok := strings.Cut(query, "?")
			if seq = url.PathEscape(s); ok {
				seq += "?" + requestLineSafe(q)
			}
		}
		routes := [8][2]string{
			{"PATCH", base + "/1"},
			{"PATCH", base + "/" + seq},
			{"POST", base + "/1/reactions"},
			{"POST", base + "/" + seq + "/reactions"},
			{"DELETE", base + "/" + seq},
			{"GET", base + "/" + seq + "/edits"},
			{"POST", base},
			{"GET", base + "?" + requestLineSafe(query)},
		}
		r := routes[kind&7]
		req, resp, b := fuzzRequest(t, app, tok, store, kind, r[0], r[1], body)
		if err := doc.check(req, resp.StatusCode, resp.Header, b); err != nil {
			t.Fatalf("%s %s %q: %d %s, not as openapi.json says: %v", r[0], r[1], body, resp.StatusCode, b, err)
		}
		checkLife(t, store)
	})
}

// checkLife checks lifeRoom's timeline: gapless and ascending from seq 1,
// every lifecycle item about an earlier message (no kind) of the room, a
// reaction with its emoji, and only a deleted message (or an edit of one,
// erased with it) without text.
func checkLife(t *testing.T, store chat.Store) {
	t.Helper()
	kinds := map[int64]string{}
	deleted := map[int64]bool{}
	for after := int64(0); ; {
		page, err := store.Messages(context.Background(), lifeRoom, chat.Query{Kind: chat.After, Seq: after, Limit: 200})
		if err != nil {
			t.Fatalf("history of %s: %v", lifeRoom, err)
		}
		for _, m := range page.Messages {
			if m.Seq != after+1 {
				t.Fatalf("%s: seq %d after %d", lifeRoom, m.Seq, after)
			}
			after = m.Seq
			kinds[m.Seq] = m.Kind
			if m.Deleted {
				deleted[m.Seq] = true
			}
			if m.IsLifecycle() {
				target := m.Target()
				if k, ok := kinds[target]; !ok || k != "" {
					t.Fatalf("%s: %s item %d about %d, which is no earlier message", lifeRoom, m.Kind, m.Seq, target)
				}
				if m.Kind == chat.KindReaction && (chat.ValidateEmoji(m.Data.Emoji) != nil || m.Data.On == nil) {
					t.Fatalf("%s: reaction %d with emoji %q, on %v", lifeRoom, m.Seq, m.Data.Emoji, m.Data.On)
				}
			}
			if m.Text == "" && !m.Deleted && m.Kind != chat.KindEdit {
				t.Fatalf("%s: item %d has no text: %+v", lifeRoom, m.Seq, m)
			}
		}
		if !page.HasMore || len(page.Messages) == 0 {
			return
		}
	}
}

// TestOpenAPILifecycleAnswers: the answers of a message's life, successes
// and every refusal the routes give (but 503, which needs a store that
// fails, and 413, which app.Test cannot send), are the document's (status and body). app's
// TestOpenAPILifecycleValidate runs them on the real program.
func TestOpenAPILifecycleAnswers(t *testing.T) {
	doc := newDocCheck(t)
	expect := doc.expecter(t)
	var srv *Server
	app, tok, store := fuzzServer(t, func(s *Server) { srv = s })
	other, _, err := srv.Auth.Issue("other", NewSID(), false)
	if err != nil {
		t.Fatal(err)
	}
	seedLife(t, app, tok, store, 2) // 1 and 2, the fuzzer's
	p := "/api/rooms/" + lifeRoom + "/messages/"

	// Replies.
	expect(app, tok, "POST", "/api/rooms/"+lifeRoom+"/messages", `{"id":"r1","text":"to you","reply_to":1}`, 202)
	expect(app, tok, "POST", "/api/rooms/"+lifeRoom+"/messages", `{"text":"to nobody","reply_to":999}`, 400)
	expect(app, tok, "POST", "/api/rooms/"+lifeRoom+"/messages", `{"text":"x","reply_to":"1"}`, 400)

	// Edits, reactions and their refusals.
	var item chat.Message
	mustDecode(t, expect(app, tok, "PATCH", p+"1", `{"id":"e1","text":"v2"}`, 200), &item)
	if item.Kind != chat.KindEdit || item.Data == nil || item.Data.TargetSeq != 1 || item.Text != "v2" {
		t.Errorf("edit answer %+v", item)
	}
	expect(app, tok, "PATCH", p+"1", `{"id":"e1","text":"v2"}`, 200) // the same id again: the stored item
	expect(app, tok, "PATCH", p+"1", `{"text":""}`, 400)
	expect(app, tok, "PATCH", p+"1", `{}`, 400)
	expect(app, tok, "PATCH", p+"0", `{"text":"x"}`, 400)
	expect(app, tok, "PATCH", p+"x", `{"text":"x"}`, 400)
	expect(app, tok, "PATCH", p+"999", `{"text":"x"}`, 404)
	expect(app, tok, "PATCH", "/api/rooms/nowhere/messages/1", `{"text":"x"}`, 404)
	expect(app, other, "PATCH", p+"1", `{"text":"mine"}`, 403)
	mustDecode(t, expect(app, other, "POST", p+"1/reactions", `{"id":"x1","emoji":"👍"}`, 200), &item)
	if item.Kind != chat.KindReaction || item.Data == nil || item.Data.Emoji != "👍" || item.Data.On == nil || !*item.Data.On {
		t.Errorf("reaction answer %+v", item)
	}
	expect(app, tok, "POST", p+"1/reactions", `{"emoji":"🎉","on":false}`, 200)
	expect(app, tok, "POST", p+"1/reactions", `{"emoji":"a"}`, 400)
	expect(app, tok, "POST", p+"1/reactions", `{"emoji":"👍","on":"yes"}`, 400)
	expect(app, tok, "GET", p+"1/edits", "", 200)
	expect(app, other, "GET", p+"1/edits", "", 403)
	expect(app, tok, "GET", p+"999/edits", "", 404)
	expect(app, tok, "GET", p+"x/edits", "", 400)
	expect(app, tok, "GET", "/api/rooms/"+lifeRoom+"/messages?limit=200", "", 200)

	// The body and origin rules.
	req := httptest.NewRequest("PATCH", "http://parley"+p+"1", strings.NewReader(`{"text":"x"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "text/plain")
	answer(t, doc, app, req, 415)
	req = httptest.NewRequest("DELETE", "http://parley"+p+"1", nil)
	req.AddCookie(&http.Cookie{Name: CookieName, Value: tok})
	req.Header.Set("Origin", "http://evil.example")
	answer(t, doc, app, req, 403)
	req = httptest.NewRequest("DELETE", "http://parley"+p+"1", nil)
	answer(t, doc, app, req, 401)

	// Deletes: not another's; then the message takes nothing more.
	expect(app, other, "DELETE", p+"2", "", 403)
	expect(app, tok, "DELETE", p+"1?id=bad%20id", "", 400)
	mustDecode(t, expect(app, tok, "DELETE", p+"1?id=d1", "", 200), &item)
	if item.Kind != chat.KindDelete || item.Data == nil || item.Data.TargetSeq != 1 {
		t.Errorf("delete answer %+v", item)
	}
	expect(app, tok, "PATCH", p+"1", `{"text":"back"}`, 409)
	expect(app, tok, "POST", p+"1/reactions", `{"emoji":"👍"}`, 409)
	expect(app, tok, "DELETE", p+"1", "", 409)
	expect(app, tok, "GET", p+"1/edits", "", 200)
	expect(app, tok, "GET", "/api/rooms/"+lifeRoom+"/messages?limit=200", "", 200)

	// The send rate: changes count against it.
	slow, tok, store := fuzzServer(t, func(s *Server) { s.SendRate, s.SendBurst = 0.001, 2 })
	seedLife(t, slow, tok, store, 1)
	expect(slow, tok, "PATCH", p+"1", `{"text":"v2"}`, 200)
	expect(slow, tok, "PATCH", p+"1", `{"text":"v3"}`, 429)
	expect(slow, tok, "POST", p+"1/reactions", `{"emoji":"👍"}`, 429)
	expect(slow, tok, "DELETE", p+"1", "", 429)
}

// answer sends req and checks its status and that the document describes
// the answer.
func answer(t *testing.T, doc *docCheck, app *fiber.App, req *http.Request, status int) {
	t.Helper()
	resp, err := app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != status {
		t.Errorf("%s %s: %d %s, want %d", req.Method, req.URL.Path, resp.StatusCode, b, status)
	}
	if err := doc.check(req, resp.StatusCode, resp.Header, b); err != nil {
		t.Errorf("%s %s: %d %s, not as openapi.json says: %v", req.Method, req.URL.Path, resp.StatusCode, b, err)
	}
}

func mustDecode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
}

// TestOpenAPILifecycleSchemas checks openapi.json's schemas of a message's
// life on values the server gives (history folded, a replay's deleted
// message, the edits of a deleted message) and on mutations they must
// refuse, with kin-openapi's JSON Schema 2020-12 validator (the one
// openapi3filter uses for a 3.1 document).
func TestOpenAPILifecycleSchemas(t *testing.T) {
	doc := loadOpenAPI(t)
	const msg = `"room":"general","seq":5,"id":"x","user":"alice","ts":"2026-12-01T10:00:00.000Z"`
	for _, c := range []struct {
		schema, value string
		valid         bool
	}{
		{"Message", `{` + msg + `,"text":"hello, all","edited_ts":"2026-12-01T10:01:00.000Z","reactions":{"👍":["bob","alice"]},"reply_to":2}`, true},
		{"Message", `{` + msg + `,"text":"","deleted":true,"reply_to":2}`, true},
		{"Message", `{` + msg + `,"text":"","kind":"edit","data":{"target":4}}`, true},
		{"Message", `{` + msg + `,"text":"bob reacted 👍","kind":"reaction","data":{"target":4,"emoji":"👍","on":true}}`, true},
		{"Message", `{` + msg + `,"text":"alice removed bob","kind":"member","data":{"action":"remove","target":"bob"}}`, true},
		{"LifecycleItem", `{` + msg + `,"text":"alice deleted a message","kind":"delete","data":{"target":4}}`, true},
		{"MessageEdits", `{"seq":4,"original":{"text":"","ts":"2026-12-01T10:00:00.000Z"},"deleted":true,"edits":[{"seq":5,"text":"","ts":"2026-12-01T10:01:00.000Z"}]}`, true},
		{"MessageEdits", `{"seq":4,"original":{"text":"v1","ts":"2026-12-01T10:00:00.000Z"},"deleted":false,"edits":[]}`, true},
		// Mutations.
		{"Message", `{` + msg + `,"text":"still here","deleted":true}`, false},
		{"Message", `{` + msg + `,"text":"","deleted":true,"reactions":{"👍":["bob"]}}`, false},
		{"Message", `{` + msg + `,"text":""}`, false},
		{"Message", `{` + msg + `,"text":"hi","reactions":{"👍":[]}}`, false},
		{"Message", `{` + msg + `,"text":"hi","reactions":{}}`, false},
		{"Message", `{` + msg + `,"text":"v2","kind":"edit","data":{"target":"4"}}`, false},
		{"Message", `{` + msg + `,"text":"alice left","kind":"member","data":{"action":"leave","target":4}}`, false},
		{"Message", `{` + msg + `,"text":"bob reacted","kind":"reaction","data":{"target":4,"on":true}}`, false},
		{"Message", `{` + msg + `,"text":"v2","kind":"edit","data":{"target":4,"on":true}}`, false},
		{"Message", `{` + msg + `,"text":"alice deleted a message","kind":"delete","data":{"target":4},"reply_to":2}`, false},
		{"Message", `{` + msg + `,"text":"","kind":"delete","data":{"target":4}}`, false},
		{"LifecycleItem", `{` + msg + `,"text":"alice removed bob","kind":"member","data":{"action":"remove","target":"bob"}}`, false},
		{"MessageEdits", `{"seq":4,"original":{"text":"v1","ts":"2026-12-01T10:00:00.000Z"},"deleted":true,"edits":[]}`, false},
		{"MessageEdits", `{"seq":4,"original":{"text":"v1","ts":"2026-12-01T10:00:00.000Z"},"deleted":false,"edits":[{"seq":5,"text":"","ts":"2026-12-01T10:01:00.000Z"}]}`, false},
		{"NewMessage", `{"text":"x","reply_to":0}`, false},
		{"NewReaction", `{"emoji":"👍","on":"yes"}`, false},
	} {
		var v any
		if err := json.Unmarshal([]byte(c.value), &v); err != nil {
			t.Fatal(err)
		}
		err := doc.Components.Schemas[c.schema].Value.VisitJSON(v, openapi3.EnableJSONSchema2020())
		if (err == nil) != c.valid {
			t.Errorf("%s %s: valid %v, want %v (%v)", c.schema, c.value, err == nil, c.valid, err)
		}
	}
}
