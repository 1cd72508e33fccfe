package handlers

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/app/notify"
	"github.com/parley-chat/parley/kafka/membus"
	"github.com/parley-chat/parley/repository/bolt"
)

// FuzzDecodeFrame: no client frame may crash the decoder or what validates
// its fields; anything refused is a bad_request.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"send","room":"general","id":"c1","text":"hello"}`,
		`{"type":"join","room":"general","after":41}`,
		`{"type":"join","room":"general","after":1e400}`,
		`{"type":"leave","room":"general"}`,
		`{"type":"ping"}`,
		`{"type":"send","text":"\ud800"}`,
		"{\"type\":\"send\",\"text\":\"\xff\"}",
		`[]`, `null`, `{"type":{}}`, `{"after":"x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := decodeFrame(data)
		if err != nil {
			if chat.ErrorCode(err) != chat.EBadRequest {
				t.Fatalf("decode error %v is not bad_request", err)
			}
			return
		}
		_ = chat.ValidateRoom(fr.Room)
		if fr.ID != nil {
			_ = chat.ValidateID(*fr.ID)
		}
		if fr.Text != nil {
			if err := chat.ValidateText(*fr.Text); err == nil && !utf8.ValidString(*fr.Text) {
				t.Fatalf("invalid UTF-8 text %q passed validation", *fr.Text)
			}
		}
		if fr.After != nil {
			if n, err := parseSeq("after", string(*fr.After)); err == nil && n < 0 {
				t.Fatalf("after %q parsed to %d", *fr.After, n)
			}
		}
	})
}

// FuzzHTTPInputs sends fuzzed session, POST and history requests through the
// real handlers over the embedded bus and store. No input may produce an
// internal error or a malformed error body, and the store must stay
// consistent: the room's history is gapless and ascending from seq 1.
func FuzzHTTPInputs(f *testing.F) {
	app, tok, store := fuzzServer(f)
	f.Add(uint8(0), "", []byte(`{"name":"alice"}`))
	f.Add(uint8(1), "", []byte(`{"id":"c1","text":"hello"}`))
	f.Add(uint8(1), "", []byte(`{"text":"\u00a0"}`))
	f.Add(uint8(2), "limit=10&before=5", []byte(nil))
	f.Add(uint8(2), "after=%2B1&limit=", []byte(nil))
	f.Add(uint8(3), "after=-1", []byte(nil))
	f.Add(uint8(4), "", []byte(nil))
	f.Add(uint8(1|1<<3), "", []byte(`{"id":"c2","text":"x"}`))
	f.Add(uint8(0|2<<5), "", []byte(`{"name":"bob"}`))
	f.Add(uint8(1|3<<3|1<<5), "", []byte(`{"text":"a\u202eb"}`))
	f.Fuzz(func(t *testing.T, kind uint8, query string, body []byte) {
		var method, target string
		switch kind % 5 {
		case 0:
			method, target = "POST", "/api/session"
		case 1:
			method, target = "POST", "/api/rooms/fuzz/messages"
		case 2:
			method, target = "GET", "/api/rooms/fuzz/messages?"+requestLineSafe(query)
		case 3:
			// The fuzzed string as a room name, escaped into the path.
			method, target = "GET", "/api/rooms/"+url.PathEscape(query)+"/messages"
		case 4:
			method, target = "GET", "/api/rooms"
		}
		fuzzRequest(t, app, tok, store, kind, method, target, body)
	})
}

// FuzzRoomRoutes sends fuzzed requests to the routes of rooms with members
// (create, DM, members, bans, mutes, settings, lists) under the same rules
// as FuzzHTTPInputs: no internal error, a well-formed error body, the body
// and origin rules, and a consistent store.
func FuzzRoomRoutes(f *testing.F) {
	app, tok, store := fuzzServer(f)
	f.Add(uint8(0), "", []byte(`{"room":"fuzzroom","kind":"private","title":"t"}`))
	f.Add(uint8(1), "", []byte(`{"user":"bob"}`))
	f.Add(uint8(2), "", []byte(`{"user":"fuzzer"}`))
	f.Add(uint8(3), "fuzzer", []byte(nil))
	f.Add(uint8(4), "bob", []byte(`{"role":"owner"}`))
	f.Add(uint8(5), "", []byte(`{"user":"bob","until":"2999-01-01T00:00:00Z","reason":"r"}`))
	f.Add(uint8(6), "", []byte(`{"user":"bob","until":"yesterday"}`))
	f.Add(uint8(7), "", []byte(`{"slow_mode_s":5,"topic":"\u202e"}`))
	f.Add(uint8(64), "directory=1&limit=2&cursor=eA", []byte(nil)) // routes 8 and 9: bit 6
	f.Add(uint8(65), "%E2%80%AE", []byte(nil))
	f.Fuzz(func(t *testing.T, kind uint8, query string, body []byte) {
		user := url.PathEscape(query)
		routes := [][2]string{
			{"POST", "/api/rooms"},
			{"POST", "/api/dms"},
			{"POST", "/api/rooms/fuzzroom/members"},
			{"DELETE", "/api/rooms/fuzzroom/members/" + user},
			{"PUT", "/api/rooms/fuzzroom/members/" + user},
			{"POST", "/api/rooms/fuzzroom/bans"},
			{"POST", "/api/rooms/fuzzroom/mutes"},
			{"PATCH", "/api/rooms/fuzzroom"},
			{"GET", "/api/rooms?" + requestLineSafe(query)},
			{"GET", "/api/rooms/" + user + "/members"},
		}
		r := routes[int(kind&7+kind>>6&1*8)%len(routes)]
		fuzzRequest(t, app, tok, store, kind, r[0], r[1], body)
	})
}

// fuzzRequest sends one fuzzed request, its headers chosen by kind's high
// bits, and checks the answer and the store.
func fuzzRequest(t *testing.T, app *fiber.App, tok string, store chat.Store, kind uint8, method, target string, body []byte) (*http.Request, *http.Response, []byte) {
	t.Helper()
	{
		// The high bits choose the request's headers: the body rules and the
		// origin rule must hold whatever the route and body.
		contentType := []string{"application/json", "text/plain", "application/json; charset=utf-8", "application/x-www-form-urlencoded"}[kind>>3&3]
		encoding := []string{"", "gzip", "identity", "br"}[kind>>5&3]
		foreign := kind>>7 == 1
		if len(target) > 3500 {
			// Beyond fasthttp's 4 KiB header buffer the transport refuses
			// the request before any handler runs; not what this fuzzes.
			t.Skip()
		}
		req := httptest.NewRequest(method, "http://parley"+target, strings.NewReader(string(body)))
		req.AddCookie(&http.Cookie{Name: CookieName, Value: tok})
		req.Header.Set("Content-Type", contentType)
		if encoding != "" {
			req.Header.Set("Content-Encoding", encoding)
		}
		if foreign {
			req.Header.Set("Origin", "http://evil.example")
		}
		resp, err := app.Test(req, -1)
		if err != nil {
			t.Fatalf("%s %s: %v", method, target, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s %q: status %d %s", method, target, body, resp.StatusCode, b)
		}
		jsonBody := strings.HasPrefix(contentType, "application/json")
		switch {
		case encoding == "gzip" || encoding == "br":
			if resp.StatusCode != 415 {
				t.Fatalf("%s %s with Content-Encoding %s: status %d, want 415", method, target, encoding, resp.StatusCode)
			}
		case hasBody(method) && !jsonBody:
			if resp.StatusCode != 415 {
				t.Fatalf("%s %s as %s: status %d, want 415", method, target, contentType, resp.StatusCode)
			}
		case method != "GET" && foreign:
			if resp.StatusCode != 403 {
				t.Fatalf("%s %s with a cookie from a foreign origin: status %d, want 403", method, target, resp.StatusCode)
			}
		}
		if resp.StatusCode >= 400 {
			// Every error's status is its code's, except 415, whose code
			// is bad_request (PROTOCOL.md v2).
			var e errorBody
			want := 0
			if json.Unmarshal(b, &e) == nil {
				want = statusOf[e.Error.Code]
				if e.Error.Code == chat.EBadRequest && resp.StatusCode == 415 {
					want = 415
				}
			}
			if want != resp.StatusCode || e.Error.Message == "" {
				t.Fatalf("%s %s: malformed error %d %s", method, target, resp.StatusCode, b)
			}
		}
		checkHistory(t, store)
		return req, resp, b
	}
}

func hasBody(method string) bool { return method == "POST" || method == "PUT" || method == "PATCH" }

// requestLineSafe percent-encodes the bytes that cannot stand in an HTTP
// request line (controls, space, '#', non-ASCII), keeping everything a client
// could really send ('+', '%', '&', '=' …) as it is.
func requestLineSafe(q string) string {
	var b strings.Builder
	for i := 0; i < len(q); i++ {
		c := q[i]
		if c <= ' ' || c == '#' || c >= 0x7f {
			b.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{c})))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// fuzzServer builds the handlers over the embedded bus and store, with the
// persist stage running, and a signed-in user's token. Web Push is on (a
// generated VAPID key, the real subscription check); edit changes the
// Server before its routes are registered.
func fuzzServer(f testing.TB, edit ...func(*Server)) (*fiber.App, string, chat.Store) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := bolt.Open(filepath.Join(f.TempDir(), "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	bus := membus.New(membus.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	// Read positions when the store keeps them (chat.Marks).
	marks, _ := any(store).(chat.Marks)
	p := &chat.Persister{Bus: bus, Store: store, Rooms: store, Marks: marks, TopicSend: chat.DefaultTopicSend, TopicReceive: chat.DefaultTopicReceive, Log: log}
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	hub := chat.NewHub(store, log, nil)
	hub.SetRoomLoader(store.RoomState)
	fan := &chat.Fanout{Bus: bus, Topic: chat.DefaultTopicReceive, Group: chat.GroupFanoutPrefix + "fuzz", Hub: hub, Log: log}
	fanDone := make(chan struct{})
	go func() { _ = fan.Run(ctx); close(fanDone) }()
	for !fan.Ready() {
		// Changes wait for the fan-out to deliver their decision.
		time.Sleep(time.Millisecond)
	}
	f.Cleanup(func() { cancel(); <-done; <-fanDone; bus.Close(); store.Close() })
	srv := &Server{
		Store: store, People: store, Rooms: store, Bus: bus, Hub: hub, Log: log, Guest: true, Accounts: true,
		Sender: &chat.Sender{Bus: bus, Topic: chat.DefaultTopicSend, Log: log},
		Auth:   &Auth{Secret: []byte("fuzz-secret")},
		Limits: Limits{SendRate: 1e9, SendBurst: 1 << 30, SignInRate: 1e9, SignInBurst: 1 << 30,
			HistoryRate: 1e9, HistoryBurst: 1 << 30, RoomRate: 1e9, RoomBurst: 1 << 30, ReadRate: 1e9, ReadBurst: 1 << 30},
		VAPIDPublicKey: fuzzVAPIDKey, ValidatePush: notify.ValidateSubscription,
	}
	for _, e := range edit {
		e(srv)
	}
	app := fiber.New(fiber.Config{BodyLimit: chat.MaxFrameBytes, ErrorHandler: ErrorHandler(log)})
	srv.Register(app)
	tok, _, err := srv.Auth.Issue("fuzzer", NewSID(), false)
	if err != nil {
		f.Fatal(err)
	}
	return app, tok, store
}

func checkHistory(t *testing.T, store chat.Store) {
	page, err := store.Messages(context.Background(), "fuzz", chat.Query{Kind: chat.After, Seq: 0, Limit: 200})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("history: %v", err)
	}
	for i, m := range page.Messages {
		if m.Seq != int64(i+1) || m.Room != "fuzz" || m.User != "fuzzer" || chat.ValidateText(m.Text) != nil {
			t.Fatalf("store inconsistent at %d: %+v", i, m)
		}
	}
}
