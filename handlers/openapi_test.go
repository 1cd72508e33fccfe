package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gofiber/fiber/v2"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/parley-chat/parley/app/chat"
)

// loadOpenAPI loads and validates the embedded document with kin-openapi.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi: %s, want 3.1", doc.OpenAPI)
	}
	return doc
}

// allRoutes is every route a Server registers, the OIDC ones included.
func allRoutes(t *testing.T) []fiber.Route {
	t.Helper()
	store := testStore(t)
	srv := &Server{Store: store, People: store, Auth: &Auth{Secret: []byte("openapi-test-secret-0123456789abcdef")}}
	app := fiber.New()
	srv.Register(app)
	srv.RegisterOIDC(app, testOIDC(t, "http://idp.test"))
	// true: without the middleware-only entries (app.Use: the security
	// layer, the static files under /static, the /api catch-all 404).
	return app.GetRoutes(true)
}

var fiberParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// undescribed lists the routes doc does not describe, as "METHOD path".
// Ignored: HEAD (Fiber adds one to every GET), and CONNECT and TRACE,
// which no handler of Parley's registers.
func undescribed(doc *openapi3.T, routes []fiber.Route) []string {
	var missing []string
	for _, r := range routes {
		switch r.Method {
		case fiber.MethodHead, fiber.MethodConnect, fiber.MethodTrace:
			continue
		}
		path := fiberParam.ReplaceAllString(r.Path, "{$1}")
		item := doc.Paths.Find(path)
		if item == nil || item.GetOperation(r.Method) == nil {
			missing = append(missing, r.Method+" "+r.Path)
		}
	}
	slices.Sort(missing)
	return slices.Compact(missing)
}

// TestOpenAPIDescribesEveryRoute walks the router: a route registered
// without its OpenAPI description fails here.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	routes := allRoutes(t)
	if len(routes) < 12 {
		t.Fatalf("only %d routes registered", len(routes))
	}
	if missing := undescribed(doc, routes); len(missing) > 0 {
		t.Errorf("routes not in handlers/openapi.json: %s", strings.Join(missing, ", "))
	}
	// And the other way: every described operation is a route.
	registered := map[string]bool{}
	for _, r := range routes {
		registered[r.Method+" "+fiberParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !registered[method+" "+path] {
				t.Errorf("openapi.json describes %s %s, which no route serves", method, path)
			}
		}
	}
}

// TestOpenAPIWalkCatchesAnUndescribedRoute is the walk's mutation test: a
// document without one route, or without one method of a path, fails it.
func TestOpenAPIWalkCatchesAnUndescribedRoute(t *testing.T) {
	routes := allRoutes(t)
	doc := loadOpenAPI(t)
	doc.Paths.Delete("/api/rooms/{room}/events")
	if got := undescribed(doc, routes); !slices.Equal(got, []string{"GET /api/rooms/:room/events"}) {
		t.Errorf("without the events path: %v", got)
	}
	doc = loadOpenAPI(t)
	doc.Paths.Value("/api/session").Delete = nil
	if got := undescribed(doc, routes); !slices.Equal(got, []string{"DELETE /api/session"}) {
		t.Errorf("without DELETE /api/session: %v", got)
	}
}

// TestOpenAPIServed: the document is served as it is kept, without a
// session, through the security layer.
func TestOpenAPIServed(t *testing.T) {
	app, _, _ := fuzzServer(t)
	resp, err := app.Test(httptest.NewRequest("GET", "http://parley.test/api/openapi.json", nil), 5000)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /api/openapi.json: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if string(b) != string(OpenAPI) {
		t.Error("the served document is not the embedded one")
	}
	if resp.Header.Get("Content-Security-Policy") == "" {
		t.Error("served without the security headers")
	}
}

// asyncDoc is asyncapi.yaml as JSON values, and its payload schemas
// compiled with santhosh-tekuri/jsonschema (draft-07, AsyncAPI's default
// schema format being a superset of it).
func asyncDoc(t *testing.T) (map[string]any, *jsonschema.Compiler) {
	t.Helper()
	var y any
	if err := yaml.Unmarshal(AsyncAPI, &y); err != nil {
		t.Fatalf("asyncapi.yaml: %v", err)
	}
	j, err := json.Marshal(y)
	if err != nil {
		t.Fatalf("asyncapi.yaml is not JSON-compatible: %v", err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	if err := c.AddResource("asyncapi.json", v); err != nil {
		t.Fatal(err)
	}
	doc, _ := v.(map[string]any)
	return doc, c
}

// pointer resolves a local $ref ("#/a/b") in doc.
func pointer(doc map[string]any, ref string) (any, bool) {
	if !strings.HasPrefix(ref, "#/") {
		return nil, false
	}
	var cur any = doc
	for _, part := range strings.Split(ref[2:], "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[strings.NewReplacer("~1", "/", "~0", "~").Replace(part)]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func refOf(v any) string {
	m, _ := v.(map[string]any)
	s, _ := m["$ref"].(string)
	return s
}

func mapOf(v any) map[string]any { m, _ := v.(map[string]any); return m }

// TestAsyncAPIDocument checks what no Go AsyncAPI validator checks for us:
// the version, that every $ref resolves, the AsyncAPI 3 rules tying
// operations to channels (an operation's messages are its channel's), the
// frames of each direction, the close codes, and that every payload (and
// SSE header) schema compiles; then real frames of this package validate.
func TestAsyncAPIDocument(t *testing.T) {
	doc, c := asyncDoc(t)
	if v, _ := doc["asyncapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Fatalf("asyncapi: %q, want 3.x", v)
	}
	info := mapOf(doc["info"])
	if info["title"] == nil || info["version"] == nil {
		t.Error("info needs title and version")
	}
	// Every $ref resolves.
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				if _, ok := pointer(doc, ref); !ok {
					t.Errorf("%s: $ref %s does not resolve", at, ref)
				}
			}
			for k, e := range v {
				walk(e, at+"/"+k)
			}
		case []any:
			for i, e := range v {
				walk(e, fmt.Sprint(at, "/", i))
			}
		}
	}
	walk(doc, "#")

	channels := mapOf(doc["channels"])
	for name, ch := range channels {
		if mapOf(ch)["address"] == nil {
			t.Errorf("channel %s has no address", name)
		}
	}
	ws := "#/channels/websocket/messages/"
	directions := map[string][]string{}
	for name, o := range mapOf(doc["operations"]) {
		op := mapOf(o)
		action, _ := op["action"].(string)
		if action != "send" && action != "receive" {
			t.Errorf("operation %s: action %q", name, action)
		}
		chRef := refOf(op["channel"])
		if !strings.HasPrefix(chRef, "#/channels/") {
			t.Errorf("operation %s: channel %q", name, chRef)
		}
		msgs, _ := op["messages"].([]any)
		if len(msgs) == 0 {
			t.Errorf("operation %s has no messages", name)
		}
		for _, m := range msgs {
			ref := refOf(m)
			if !strings.HasPrefix(ref, chRef+"/messages/") {
				t.Errorf("operation %s: message %s is not of its channel %s", name, ref, chRef)
			}
			if chRef == "#/channels/websocket" {
				directions[action] = append(directions[action], strings.TrimPrefix(ref, ws))
			}
		}
	}
	for action, want := range map[string][]string{
		"receive": {"delete", "edit", "join", "leave", "ping", "react", "read", "send"},
		"send":    {"ack", "error", "joined", "left", "membership", "message", "notification", "pong", "read", "receipt"},
	} {
		got := directions[action]
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("WebSocket %s frames: %v, want %v", action, got, want)
		}
	}
	// The SSE events: the timeline, the stream's own lines, left and error,
	// and what you missed.
	var sse []string
	for _, m := range mapOf(mapOf(doc["operations"])["sendEvents"])["messages"].([]any) {
		sse = append(sse, strings.TrimPrefix(refOf(m), "#/channels/events/messages/"))
	}
	slices.Sort(sse)
	if want := []string{"error", "event", "left", "notification", "ping", "read", "receipt", "retry"}; !slices.Equal(sse, want) {
		t.Errorf("SSE events: %v, want %v", sse, want)
	}
	codes := mapOf(mapOf(channels["websocket"])["x-parley-close-codes"])
	for _, code := range []string{"1000", "1008", "1009", "1012", "1013"} {
		if codes[code] == nil {
			t.Errorf("close code %s not documented", code)
		}
	}
	// Every message's payload and headers compile.
	for name, m := range mapOf(mapOf(doc["components"])["messages"]) {
		for _, part := range []string{"payload", "headers"} {
			ref := refOf(mapOf(m)[part])
			if ref == "" {
				if part == "payload" {
					t.Errorf("message %s has no payload $ref", name)
				}
				continue
			}
			if _, err := c.Compile("asyncapi.json" + ref); err != nil {
				t.Errorf("message %s %s: %v", name, part, err)
			}
		}
	}

	// Frames as this package lays them out.
	check := func(schema string, frame []byte) {
		t.Helper()
		s, err := c.Compile("asyncapi.json#/components/schemas/" + schema)
		if err != nil {
			t.Fatal(err)
		}
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(frame))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(v); err != nil {
			t.Errorf("%s %s: %v", schema, frame, err)
		}
	}
	check("Joined", joinedFrame("general", 57))
	e, _ := json.Marshal(newErrorFrame(chat.Errorf(chat.ERateLimited, "slow down"), "c1", "general"))
	check("ErrorFrame", e)
	e, _ = json.Marshal(newErrorFrame(chat.Errorf(chat.EBadRequest, "frame needs a type"), "", ""))
	check("ErrorFrame", e)
	// And a mutation: a frame that breaks the schema is refused.
	s, _ := c.Compile("asyncapi.json#/components/schemas/Joined")
	bad, _ := jsonschema.UnmarshalJSON(strings.NewReader(`{"type":"joined","room":"General"}`))
	if s.Validate(bad) == nil {
		t.Error("Joined accepts a bad room and no last_seq")
	}

	// Rooms with members, as this package's encoders lay them out: timeline
	// items as message frames and events, the left frame and event with a
	// reason, and a refusal after the ack on both transports (a running
	// server cannot be made to refuse after an ack on demand; see
	// app/openapi_test.go for the real frames it can).
	now := time.Now()
	until := chat.Timestamp(now.Add(time.Hour))
	for _, d := range []chat.ItemData{
		{Action: chat.ActCreate, RoomKind: chat.RoomPrivate, Title: ptr("Plans"), Topic: ptr("")},
		{Action: chat.ActCreate, RoomKind: chat.RoomDirect, Members: []string{"alice", "bob"}},
		{Action: chat.ActUpdate, SlowModeS: ptr(60)},
		{Action: chat.ActAdd, Target: "bob", Guest: true},
		{Action: chat.ActBan, Target: "bob", Until: until, Reason: "spam"},
		{Action: chat.ActBan, Target: "bob"},
		{Action: chat.ActMute, Target: "bob", Until: until},
		{Action: chat.ActRole, Target: "bob", Role: chat.RoleModerator},
		{Action: chat.ActLeave, Target: "alice"},
	} {
		item := chat.NewItem(chat.Author{Name: "alice", Guest: true}, "general", chat.NewID(), d, now)
		item.Seq = 58
		ev := chat.NewEvent(item)
		check("MessageFrame", ev.Frame(wsMessage))
		fields, data := sseBlock(t, ev.Frame(sseMessage))
		check("SSEFields", fields)
		check("Message", data)
	}
	wc := &wsClient{out: newQueue(1 << 20)}
	wc.Left("general", "banned")
	wc.Refused("general", "c1", chat.Errorf(chat.ERateLimited, "slow mode: one message per %d s", 60))
	wc.Membership("general", chat.ActAdd, 9)
	frames := wc.out.take(nil)
	if len(frames) != 3 {
		t.Fatalf("WebSocket frames queued: %q", frames)
	}
	check("Left", frames[0])
	check("ErrorFrame", frames[1])
	check("Membership", frames[2])
	sc := &sseClient{room: "general", out: newQueue(1 << 20)}
	sc.Refused("general", "c2", chat.Errorf(chat.EForbidden, "you are muted in this room until %s", "2026-12-01T10:00:00Z"))
	sc.Left("general", "removed")
	events := sc.out.take(nil)
	if len(events) != 2 {
		t.Fatalf("SSE events queued: %q", events)
	}
	fields, data := sseBlock(t, events[0])
	check("SSEErrorFields", fields)
	check("ErrorFrame", data)
	fields, data = sseBlock(t, events[1])
	check("SSELeftFields", fields)
	check("SSELeft", data)

	// What you missed, as this package's encoders lay it out: a message
	// with mentions, the read, receipt and notification frames, and their
	// events on a stream of the room (app/openapi_test.go validates the
	// real ones a running server sends).
	m := chat.Message{Room: "general", Seq: 59, ID: "c9", User: "alice", Text: "@bob @carol look", TS: chat.Timestamp(now),
		Mentions: []string{"bob", "carol"}}
	ev := chat.NewEvent(m)
	check("MessageFrame", ev.Frame(wsMessage))
	fields, data = sseBlock(t, ev.Frame(sseMessage))
	check("SSEFields", fields)
	check("Message", data)
	note := &chat.Notification{ID: chat.NotificationID("bob", "general", 59), Room: "general", Seq: 59, From: "alice",
		Text: "@bob @carol look", Kind: chat.NotifyMention, TS: chat.Timestamp(now), User: "bob"}
	wc.Read("general", 59)
	wc.Receipt("general", "bob", 59)
	wc.Notified(note)
	frames = wc.out.take(nil)
	if len(frames) != 3 {
		t.Fatalf("WebSocket frames queued: %q", frames)
	}
	check("Read", frames[0])
	check("Receipt", frames[1])
	check("NotificationFrame", frames[2])
	sc.Read("general", 59)
	sc.Read("elsewhere", 3) // another room's: not this stream's
	sc.Receipt("general", "bob", 59)
	sc.Notified(note)
	events = sc.out.take(nil)
	if len(events) != 3 {
		t.Fatalf("SSE events queued: %q", events)
	}
	for i, schemas := range [][2]string{{"SSEReadFields", "SSERead"}, {"SSEReceiptFields", "Receipt"}, {"SSENotificationFields", "NotificationFrame"}} {
		fields, data := sseBlock(t, events[i])
		check(schemas[0], fields)
		check(schemas[1], data)
	}
	// A client's read frame, as the document tells clients to write it,
	// and the notification frame the mutations below break.
	check("Read", []byte(`{"type":"read","room":"general","seq":0}`))
	check("NotificationFrame", []byte(`{"type":"notification","id":"n000000000000000000000000000000","room":"general","seq":3,"from":"alice","text":"hi","kind":"mention","ts":"2026-12-01T10:00:00.000Z"}`))

	// A message's life, as this package's encoders lay it out: an edit, a
	// delete and a reaction (on and off) as message frames and events, a
	// reply, and the client frames as the document tells clients to write
	// them (app/openapi_test.go validates the real ones).
	for _, it := range []chat.Message{
		chat.NewLifecycle(chat.Author{Name: "alice"}, "general", "e1", chat.KindEdit, 59, "hello, all", "", true, now),
		chat.NewLifecycle(chat.Author{Name: "alice", Guest: true}, "general", "d1", chat.KindDelete, 59, "", "", true, now),
		chat.NewLifecycle(chat.Author{Name: "bob"}, "general", "r1", chat.KindReaction, 59, "", "👍🏽", true, now),
		chat.NewLifecycle(chat.Author{Name: "bob"}, "general", "r2", chat.KindReaction, 59, "", "🇰🇷", false, now),
		{Room: "general", Seq: 61, ID: "c10", User: "bob", Text: "to you", TS: chat.Timestamp(now), ReplyTo: 59},
	} {
		if it.Seq == 0 {
			it.Seq = 60
		}
		ev := chat.NewEvent(it)
		check("MessageFrame", ev.Frame(wsMessage))
		fields, data := sseBlock(t, ev.Frame(sseMessage))
		check("SSEFields", fields)
		check("Message", data)
	}
	check("Send", []byte(`{"type":"send","room":"general","id":"s1","text":"to you","reply_to":59}`))
	check("Send", []byte(`{"type":"send","room":"general","text":"to nobody","reply_to":null}`))
	check("Edit", []byte(`{"type":"edit","room":"general","id":"e1","target":59,"text":"hello, all"}`))
	check("Delete", []byte(`{"type":"delete","room":"general","id":"d1","target":59}`))
	check("React", []byte(`{"type":"react","room":"general","id":"r1","target":59,"emoji":"👍","on":false}`))
	// A message as a replay gives it once deleted, and an edit of it.
	check("Message", []byte(`{"room":"general","seq":59,"id":"c9","user":"alice","text":"","ts":"2026-12-01T10:00:00.000Z","deleted":true,"reply_to":3}`))
	check("Message", []byte(`{"room":"general","seq":60,"id":"e1","user":"alice","text":"","ts":"2026-12-01T10:00:00.000Z","kind":"edit","data":{"target":59}}`))

	// Mutations: an item without its data, a reason the document does not
	// list, a left event with an id, empty mentions, and the missed frames
	// without a field, with one they must not carry (the notification's
	// target is not on the wire) or with a kind not listed, are refused.
	for _, sf := range [][2]string{
		{"Read", `{"type":"read","room":"general"}`},
		{"Receipt", `{"type":"receipt","room":"general","seq":3}`},
		{"NotificationFrame", `{"type":"notification","id":"n000000000000000000000000000000","room":"general","seq":3,"from":"alice","text":"hi","kind":"mention","ts":"2026-12-01T10:00:00.000Z","user":"bob"}`},
		{"NotificationFrame", `{"type":"notification","id":"n000000000000000000000000000000","room":"general","seq":3,"from":"alice","text":"hi","kind":"reply","ts":"2026-12-01T10:00:00.000Z"}`},
		{"SSERead", `{"room":"general","seq":0}`},
		{"SSEReceiptFields", `{"event":"receipt","id":"4"}`},
		{"SSENotificationFields", `{"event":"message"}`},
		{"MessageFrame", `{"type":"message","room":"general","seq":1,"id":"x","user":"alice","text":"alice left","ts":"2026-12-01T10:00:00.000Z","kind":"member"}`},
		{"Left", `{"type":"left","room":"general","reason":"kicked"}`},
		{"SSELeftFields", `{"event":"left","id":"7"}`},
		{"Message", `{"room":"general","seq":1,"id":"x","user":"alice","text":"alice muted bob","ts":"2026-12-01T10:00:00.000Z","kind":"member","data":{"action":"mute","target":"bob"}}`},
		{"MessageFrame", `{"type":"message","room":"general","seq":1,"id":"x","user":"alice","text":"hi @bob","ts":"2026-12-01T10:00:00.000Z","mentions":[]}`},
		// A message's life: a lifecycle item's target is a seq, a membership
		// item's a name; a reaction has its emoji and on, an edit none; an
		// item with kind is no message (no reply_to, reactions, deleted);
		// a deleted message has no text left; only a deleted message or an
		// edit may have an empty text; the client frames need their target
		// as a number.
		{"Message", `{"room":"general","seq":5,"id":"x","user":"alice","text":"v2","ts":"2026-12-01T10:00:00.000Z","kind":"edit","data":{"target":"4"}}`},
		{"Message", `{"room":"general","seq":5,"id":"x","user":"alice","text":"alice left","ts":"2026-12-01T10:00:00.000Z","kind":"member","data":{"action":"leave","target":4}}`},
		{"Message", `{"room":"general","seq":5,"id":"x","user":"alice","text":"alice reacted","ts":"2026-12-01T10:00:00.000Z","kind":"reaction","data":{"target":4,"on":true}}`},
		{"Message", `{"room":"general","seq":5,"id":"x","user":"alice","text":"v2","ts":"2026-12-01T10:00:00.000Z","kind":"edit","data":{"target":4,"emoji":"👍"}}`},
		{"Message", `{"room":"general","seq":5,"id":"x","user":"alice","text":"v2","ts":"2026-12-01T10:00:00.000Z","kind":"edit","data":{"target":4,"action":"add"}}`},
		{"Message", `{"room":"general","seq":5,"id":"x","user":"alice","text":"alice deleted a message","ts":"2026-12-01T10:00:00.000Z","kind":"delete","data":{"target":4},"reply_to":2}`},
		{"Message", `{"room":"general","seq":5,"id":"x","user":"alice","text":"still here","ts":"2026-12-01T10:00:00.000Z","deleted":true}`},
		{"Message", `{"room":"general","seq":5,"id":"x","user":"alice","text":"","ts":"2026-12-01T10:00:00.000Z"}`},
		{"Message", `{"room":"general","seq":5,"id":"x","user":"alice","text":"","ts":"2026-12-01T10:00:00.000Z","kind":"delete","data":{"target":4}}`},
		{"Message", `{"room":"general","seq":5,"id":"x","user":"alice","text":"hi","ts":"2026-12-01T10:00:00.000Z","reply_to":0}`},
		{"Edit", `{"type":"edit","room":"general","id":"e1","target":"4","text":"v2"}`},
		{"Edit", `{"type":"edit","room":"general","id":"e1","target":4}`},
		{"Delete", `{"type":"delete","room":"general","id":"d1","target":0}`},
		{"React", `{"type":"react","room":"general","id":"r1","target":4}`},
		{"React", `{"type":"react","room":"general","id":"r1","target":4,"emoji":"👍","on":"yes"}`},
		{"Send", `{"type":"send","room":"general","id":"s1","text":"hi","reply_to":"4"}`},
	} {
		schema, frame := sf[0], sf[1]
		s, _ := c.Compile("asyncapi.json#/components/schemas/" + schema)
		bad, _ := jsonschema.UnmarshalJSON(strings.NewReader(frame))
		if s.Validate(bad) == nil {
			t.Errorf("%s accepts %s", schema, frame)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// sseBlock splits one Server-Sent Event into its fields but data, as a JSON
// object, and its data.
func sseBlock(t *testing.T, b []byte) (fields, data []byte) {
	t.Helper()
	block, ok := strings.CutSuffix(string(b), "\n\n")
	if !ok {
		t.Fatalf("event %q does not end with a blank line", b)
	}
	m := map[string]string{}
	for _, line := range strings.Split(block, "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("event line %q", line)
		}
		if k == "data" {
			data = []byte(v)
			continue
		}
		m[k] = v
	}
	fields, _ = json.Marshal(m)
	return fields, data
}
