package main

import (
	"bufio"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/parley-chat/parley/app/chat"
)

// What you missed (PROTOCOL.md v2) against the API documents: the answers
// of its routes against handlers/openapi.json (a.missed, in
// TestOpenAPIResponsesValidate's walk, and TestOpenAPIPushValidate), and
// its frames and events against handlers/asyncapi.yaml
// (TestAsyncAPIMissedFrames).

// missedReadBurst is how many read positions a user may set in
// TestOpenAPIResponsesValidate, none coming back: a.missed runs them out.
const missedReadBurst = 20

// missed runs the routes of read positions, receipts and notifications,
// successes and refusals, so that their answers, the room objects' counts
// and a message's mentions validate. Web Push is TestOpenAPIPushValidate's.
func (a *apiCheck) missed(prefix string) {
	t, s := a.t, a.s
	tag := prefix[2:10]
	aliceName, bobName, carolName := "oj"+tag, "ok"+tag, "ol"+tag
	alice, bob, carol := s.login(aliceName), s.login(bobName), s.login(carolName)
	as := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	room, none := prefix+"-m", prefix+"-none"
	s.createRoom(alice, room, "private", "")                                            // 1
	s.call("POST", "/api/rooms/"+room+"/members", alice, `{"user":"`+bobName+`"}`, 200) // 2
	s.call("POST", "/api/rooms/"+room+"/messages", alice, `{"id":"om-1","text":"look, @`+bobName+`"}`, 202)
	s.waitHistory(alice, room, 3)
	a.do(call{name: "room with counts", method: "GET", path: "/api/rooms/" + room, header: as(bob), status: 200})
	a.do(call{name: "history with mentions", method: "GET", path: "/api/rooms/" + room + "/messages", header: as(bob), status: 200})

	// Read positions. Each that gets past the room name counts against
	// bob's burst (used), the refused ones included.
	read := "/api/rooms/" + room + "/read"
	a.do(call{name: "read", method: "PUT", path: read, header: as(bob), body: `{"seq":2}`, status: 204})
	a.do(call{name: "read, past the end", method: "PUT", path: read, header: as(bob), body: `{"seq":1000}`, status: 204})
	a.do(call{name: "read, backwards", method: "PUT", path: read, header: as(bob), body: `{"seq":1}`, status: 204})
	a.do(call{name: "read, never-used room", method: "PUT", path: "/api/rooms/" + none + "/read", header: as(bob), body: `{"seq":1}`, status: 404})
	used := 4
	a.do(call{name: "read, private to a non-member", method: "PUT", path: read, header: as(carol), body: `{"seq":1}`, status: 404})
	a.do(call{name: "read, negative", method: "PUT", path: read, header: as(bob), body: `{"seq":-1}`, status: 400, badRequest: true})
	a.do(call{name: "read, no seq", method: "PUT", path: read, header: as(bob), body: `{}`, status: 400, badRequest: true})
	a.do(call{name: "read, seq a string", method: "PUT", path: read, header: as(bob), body: `{"seq":"3"}`, status: 400, badRequest: true})
	a.do(call{name: "read, bad room", method: "PUT", path: "/api/rooms/Bad_Room/read", header: as(bob), body: `{"seq":1}`, status: 400, badRequest: true})
	a.do(call{name: "read, no token", method: "PUT", path: read, body: `{"seq":1}`, status: 401, badRequest: true})
	a.do(call{name: "read, not JSON", method: "PUT", path: read, header: map[string]string{"Authorization": "Bearer " + bob, "Content-Type": "text/plain"},
		body: `{"seq":1}`, status: 415, badRequest: true})
	a.do(call{name: "read, foreign origin", method: "PUT", path: read, header: map[string]string{"Cookie": "parley_session=" + bob, "Origin": "http://evil.test"},
		body: `{"seq":1}`, status: 403})
	for i := used; i < missedReadBurst; i++ {
		if status, b := s.do("PUT", read, bob, `{"seq":3}`); status != 204 {
			t.Fatalf("read position %d of %d: %d %s", i+1, missedReadBurst, status, b)
		}
	}
	a.do(call{name: "read, over the limit", method: "PUT", path: read, header: as(bob), body: `{"seq":3}`, status: 429})

	// Receipts: bob's read reaches them (capped at the last seq, 3).
	receipts := "/api/rooms/" + room + "/receipts"
	waitFor(t, "bob's receipt in "+room, func() bool {
		var r struct {
			Receipts []struct {
				User string `json:"user"`
				Seq  int64  `json:"seq"`
			} `json:"receipts"`
		}
		mustJSON(t, s.call("GET", receipts, alice, "", 200), &r)
		for _, rc := range r.Receipts {
			if rc.User == bobName && rc.Seq == 3 {
				return true
			}
		}
		return false
	})
	a.do(call{name: "receipts", method: "GET", path: receipts, header: as(alice), status: 200})
	a.do(call{name: "receipts, private to a non-member", method: "GET", path: receipts, header: as(carol), status: 404})
	a.do(call{name: "receipts, never-used room", method: "GET", path: "/api/rooms/" + none + "/receipts", header: as(bob), status: 404})
	a.do(call{name: "receipts, bad room", method: "GET", path: "/api/rooms/Bad_Room/receipts", header: as(bob), status: 400, badRequest: true})
	a.do(call{name: "receipts, no token", method: "GET", path: receipts, status: 401, badRequest: true})
	// A room of more than chat.ReceiptsMaxMembers keeps none: its owner
	// and that many who post to it.
	big := prefix + "-big"
	s.createRoom(alice, big, "public", "")
	for i := range chat.ReceiptsMaxMembers {
		tok := s.login(fmt.Sprintf("p%03d%s", i, tag))
		s.call("POST", "/api/rooms/"+big+"/messages", tok, `{"id":"op-1","text":"here"}`, 202)
	}
	waitFor(t, big+" over the receipts limit", func() bool {
		status, _ := s.do("GET", "/api/rooms/"+big+"/receipts", alice, "")
		return status == 409
	})
	a.do(call{name: "receipts, too many members", method: "GET", path: "/api/rooms/" + big + "/receipts", header: as(alice), status: 409})

	// Notifications: two direct messages carol leaves unread.
	var dm roomObj
	mustJSON(t, s.call("POST", "/api/dms", alice, `{"user":"`+carolName+`"}`, 200), &dm)
	for i := range 2 {
		s.call("POST", "/api/rooms/"+dm.Room+"/messages", alice, fmt.Sprintf(`{"id":"on-%d","text":"psst %d"}`, i, i), 202)
	}
	type notes struct {
		Notifications []struct {
			ID string `json:"id"`
		} `json:"notifications"`
		HasMore bool    `json:"has_more"`
		Next    *string `json:"next_cursor"`
	}
	var all notes
	waitFor(t, "carol's two notifications", func() bool {
		mustJSON(t, s.call("GET", "/api/notifications", carol, "", 200), &all)
		return len(all.Notifications) == 2
	})
	notifications := "/api/notifications"
	a.do(call{name: "notifications", method: "GET", path: notifications, header: as(carol), status: 200})
	var older, newer notes
	mustJSON(t, a.do(call{name: "notifications, paged", method: "GET", path: notifications + "?limit=1", header: as(carol), status: 200}), &newer)
	if len(newer.Notifications) != 1 || !newer.HasMore || newer.Next == nil || newer.Notifications[0].ID != all.Notifications[1].ID {
		t.Fatalf("the latest page of one: %+v, of %+v", newer, all)
	}
	mustJSON(t, a.do(call{name: "notifications, the page older", method: "GET", path: notifications + "?limit=1&before=" + url.QueryEscape(*newer.Next),
		header: as(carol), status: 200}), &older)
	if len(older.Notifications) != 1 || older.HasMore || older.Next != nil || older.Notifications[0].ID != all.Notifications[0].ID {
		t.Fatalf("the page older: %+v, of %+v", older, all)
	}
	nobody := s.login("oo" + tag)
	a.do(call{name: "notifications, none", method: "GET", path: notifications, header: as(nobody), status: 200})
	a.do(call{name: "notifications, limit 0", method: "GET", path: notifications + "?limit=0", header: as(carol), status: 400, badRequest: true})
	a.do(call{name: "notifications, limit 201", method: "GET", path: notifications + "?limit=201", header: as(carol), status: 400, badRequest: true})
	a.do(call{name: "notifications, bad cursor", method: "GET", path: notifications + "?before=!!", header: as(carol), status: 400})
	a.do(call{name: "notifications, no token", method: "GET", path: notifications, status: 401, badRequest: true})
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within 10 s", what)
}

// TestOpenAPIPushValidate runs the Web Push routes with push configured
// (VAPID keys given, at most two subscriptions per user), successes and
// refusals, and validates each request and answer against
// handlers/openapi.json. The answer when push is off (404) is
// handlers.TestOpenAPIMissedAnswers'.
func TestOpenAPIPushValidate(t *testing.T) {
	pub, priv := p256Keys(t)
	s := startServer(t, func(cfg *Config) {
		cfg.VAPIDPublicKey, cfg.VAPIDPrivateKey = pub, priv
		cfg.MaxPushSubs = 2
	})
	a := newAPICheck(t, s)
	tag := uniqueRoom(t)[2:10]
	tok := s.login("pa" + tag)
	as := map[string]string{"Authorization": "Bearer " + tok}

	var key struct {
		PublicKey string `json:"public_key"`
	}
	mustJSON(t, a.do(call{name: "vapid key", method: "GET", path: "/api/push/vapid", header: as, status: 200}), &key)
	if key.PublicKey != pub {
		t.Errorf("vapid key %q, want the configured %q", key.PublicKey, pub)
	}
	a.do(call{name: "vapid key, no token", method: "GET", path: "/api/push/vapid", status: 401, badRequest: true})

	// A browser's PushSubscription, as its toJSON() gives it.
	sub := func(endpoint string) string {
		p256dh, _ := p256Keys(t)
		auth := make([]byte, 16)
		_, _ = rand.Read(auth)
		return fmt.Sprintf(`{"endpoint":%q,"expirationTime":null,"keys":{"p256dh":%q,"auth":%q}}`,
			endpoint, p256dh, base64.RawURLEncoding.EncodeToString(auth))
	}
	subs := "/api/push/subscriptions"
	ep := func(n int) string { return fmt.Sprintf("https://push.example.test/send/%s-%d", tag, n) }
	a.do(call{name: "subscribe", method: "POST", path: subs, header: as, body: sub(ep(1)), status: 201})
	a.do(call{name: "subscribe again, new keys", method: "POST", path: subs, header: as, body: sub(ep(1)), status: 201})
	a.do(call{name: "subscribe a second browser", method: "POST", path: subs, header: as, body: sub(ep(2)), status: 201})
	a.do(call{name: "subscribe, over the limit", method: "POST", path: subs, header: as, body: sub(ep(3)), status: 429})
	a.do(call{name: "subscribe, no keys", method: "POST", path: subs, header: as, body: `{"endpoint":"` + ep(4) + `"}`, status: 400, badRequest: true})
	a.do(call{name: "subscribe, http endpoint", method: "POST", path: subs, header: as, body: sub("http://push.example.test/send/x"), status: 400})
	a.do(call{name: "subscribe, not a P-256 key", method: "POST", path: subs, header: as,
		body: `{"endpoint":"` + ep(4) + `","keys":{"p256dh":"AAAA","auth":"AAAAAAAAAAAAAAAAAAAAAA"}}`, status: 400})
	a.do(call{name: "subscribe, not JSON", method: "POST", path: subs, header: map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "text/plain"},
		body: sub(ep(4)), status: 415, badRequest: true})
	a.do(call{name: "subscribe, foreign origin", method: "POST", path: subs, header: map[string]string{"Cookie": "parley_session=" + tok, "Origin": "http://evil.test"},
		body: sub(ep(4)), status: 403})
	a.do(call{name: "subscribe, no token", method: "POST", path: subs, body: sub(ep(4)), status: 401, badRequest: true})

	a.do(call{name: "unsubscribe", method: "DELETE", path: subs + "?endpoint=" + url.QueryEscape(ep(1)), header: as, status: 204})
	a.do(call{name: "unsubscribe, in the body", method: "DELETE", path: subs, header: as, body: `{"endpoint":"` + ep(2) + `"}`, status: 204})
	a.do(call{name: "unsubscribe, not there", method: "DELETE", path: subs + "?endpoint=" + url.QueryEscape(ep(1)), header: as, status: 204})
	a.do(call{name: "unsubscribe, no endpoint", method: "DELETE", path: subs, header: as, status: 400})
	a.do(call{name: "unsubscribe, foreign origin", method: "DELETE", path: subs + "?endpoint=" + url.QueryEscape(ep(1)),
		header: map[string]string{"Cookie": "parley_session=" + tok, "Origin": "http://evil.test"}, status: 403})
	a.do(call{name: "unsubscribe, no token", method: "DELETE", path: subs + "?endpoint=" + url.QueryEscape(ep(1)), status: 401, badRequest: true})
	// The limit counts what is held: room again.
	a.do(call{name: "subscribe after unsubscribing", method: "POST", path: subs, header: as, body: sub(ep(3)), status: 201})
}

// p256Keys makes a P-256 key pair, base64url without padding: the public
// key uncompressed (a VAPID public key, or a browser's p256dh), the private
// key as its scalar (a VAPID private key).
func p256Keys(t *testing.T) (public, private string) {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc(k.PublicKey().Bytes()), enc(k.Bytes())
}

// dial opens a WebSocket connection for token, closed at the test's end.
func (a *asyncSchemas) dial(s *testServer, token string) *websocket.Conn {
	a.t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.base, "http")+"/ws?token="+token, nil)
	if err != nil {
		a.t.Fatalf("dial: %v", err)
	}
	a.t.Cleanup(func() { conn.Close() })
	return conn
}

// send validates a client frame against schema ("": not a client frame)
// and writes it.
func (a *asyncSchemas) send(conn *websocket.Conn, schema, frame string) {
	a.t.Helper()
	if schema != "" {
		a.validate(schema, []byte(frame))
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		a.t.Fatal(err)
	}
}

// read validates the frames that come until one of type typ, and returns
// that one.
func (a *asyncSchemas) read(conn *websocket.Conn, typ string) []byte {
	a.t.Helper()
	for {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, raw, err := conn.ReadMessage()
		if err != nil {
			a.t.Fatalf("waiting for %s: %v", typ, err)
		}
		if a.serverFrame(raw) == typ {
			return raw
		}
	}
}

// sseSchemas are the fields and data schemas of the events without an id.
var sseSchemas = map[string][2]string{
	"left":         {"SSELeftFields", "SSELeft"},
	"error":        {"SSEErrorFields", "ErrorFrame"},
	"read":         {"SSEReadFields", "SSERead"},
	"receipt":      {"SSEReceiptFields", "Receipt"},
	"notification": {"SSENotificationFields", "NotificationFrame"},
}

// sseUntil validates the blocks of a stream until an event named event,
// and returns its data.
func (a *asyncSchemas) sseUntil(r *bufio.Reader, event string) []byte {
	a.t.Helper()
	for {
		block := sseLines(a.t, r)
		switch {
		case len(block) == 1 && strings.HasPrefix(block[0], ":"):
			a.validate("SSEPing", []byte(strconv.Quote(block[0])))
			continue
		case len(block) == 1 && strings.HasPrefix(block[0], "retry:"):
			a.validate("SSERetry", []byte(strconv.Quote(block[0])))
			continue
		}
		fields, data := sseFields(block)
		name := fields["event"]
		if name == "message" {
			a.sseMessage(block)
		} else if sch, ok := sseSchemas[name]; ok {
			hdr, _ := json.Marshal(fields)
			a.validate(sch[0], hdr)
			a.validate(sch[1], data)
		} else {
			a.t.Errorf("an event the document does not describe: %q", block)
		}
		if name == event {
			return data
		}
	}
}

// TestAsyncAPIMissedFrames speaks to the real server and validates what
// you missed as it crosses the wire, in a direct room (it keeps receipts):
// a message frame with mentions, the notification frame and event its
// unread target gets after PARLEY_NOTIFY_DELAY, the client's read frame,
// and what it brings: the read frame to the reader's connections, the
// receipt to the room's, and both as events on the reader's stream.
func TestAsyncAPIMissedFrames(t *testing.T) {
	s := startServer(t, func(cfg *Config) { cfg.NotifyDelay = 100 * time.Millisecond })
	a := loadAsyncAPI(t)
	tag := uniqueRoom(t)[2:10]
	aliceName, bobName := "ma"+tag, "mb"+tag
	alice, bob := s.login(aliceName), s.login(bobName)
	var dm roomObj
	mustJSON(t, s.call("POST", "/api/dms", alice, `{"user":"`+bobName+`"}`, 200), &dm)
	ca, cb := a.dial(s, alice), a.dial(s, bob)
	a.send(ca, "Join", `{"type":"join","room":"`+dm.Room+`"}`)
	a.read(ca, "joined")
	a.send(cb, "Join", `{"type":"join","room":"`+dm.Room+`"}`)
	a.read(cb, "joined")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.base+"/api/rooms/"+dm.Room+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+bob)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("events: %v %v", resp, err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)

	// A mention, in the message frame and event.
	a.send(ca, "Send", `{"type":"send","room":"`+dm.Room+`","id":"m1","text":"hi @`+bobName+`"}`)
	a.read(ca, "ack")
	m := decodeFrame(t, a.read(cb, "message"))
	if fmt.Sprint(m["mentions"]) != "["+bobName+"]" {
		t.Errorf("message frame %v, want mentions [%s]", m, bobName)
	}
	if ev := decodeFrame(t, a.sseUntil(r, "message")); fmt.Sprint(ev["mentions"]) != "["+bobName+"]" {
		t.Errorf("message event %v, want mentions [%s]", ev, bobName)
	}
	seq := int64(m["seq"].(float64))

	// bob leaves it unread: a notification, on his connection and stream.
	n := decodeFrame(t, a.read(cb, "notification"))
	if n["room"] != dm.Room || n["from"] != aliceName || n["seq"] != m["seq"] {
		t.Errorf("notification frame %v, of %v", n, m)
	}
	if ev := decodeFrame(t, a.sseUntil(r, "notification")); ev["id"] != n["id"] {
		t.Errorf("notification event %v, frame %v", ev, n)
	}

	// bob reads: the read frame to his connections, the receipt to the
	// room's joined ones; his stream gets both as events.
	a.send(cb, "Read", fmt.Sprintf(`{"type":"read","room":%q,"seq":%d}`, dm.Room, seq))
	if f := decodeFrame(t, a.read(cb, "read")); f["room"] != dm.Room || f["seq"] != m["seq"] {
		t.Errorf("read frame %v, want seq %d", f, seq)
	}
	if f := decodeFrame(t, a.read(ca, "receipt")); f["user"] != bobName || f["seq"] != m["seq"] {
		t.Errorf("receipt frame %v, want bob at %d", f, seq)
	}
	if ev := decodeFrame(t, a.sseUntil(r, "read")); ev["seq"] != m["seq"] {
		t.Errorf("read event %v, want seq %d", ev, seq)
	}
	if ev := decodeFrame(t, a.sseUntil(r, "receipt")); ev["user"] != bobName || ev["seq"] != m["seq"] {
		t.Errorf("receipt event %v, want bob at %d", ev, seq)
	}
}
