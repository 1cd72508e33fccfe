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
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/app/chat"
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
		// The high bits choose the request's headers: the body rules and the
		// origin rule must hold whatever the route and body.
		contentType := []string{"application/json", "text/plain", "application/json; charset=utf-8", "application/x-www-form-urlencoded"}[kind>>3&3]
		encoding := []string{"", "gzip", "identity", "br"}[kind>>5&3]
		foreign := kind>>7 == 1
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
		case method == "POST" && !jsonBody:
			if resp.StatusCode != 415 {
				t.Fatalf("POST %s as %s: status %d, want 415", target, contentType, resp.StatusCode)
			}
		case method == "POST" && foreign:
			if resp.StatusCode != 403 {
				t.Fatalf("POST %s with a cookie from a foreign origin: status %d, want 403", target, resp.StatusCode)
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
	})
}

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
// persist stage running, and a signed-in user's token.
func fuzzServer(f testing.TB) (*fiber.App, string, chat.Store) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := bolt.Open(filepath.Join(f.TempDir(), "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	bus := membus.New(membus.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	p := &chat.Persister{Bus: bus, Store: store, TopicSend: chat.DefaultTopicSend, TopicReceive: chat.DefaultTopicReceive, Log: log}
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	f.Cleanup(func() { cancel(); <-done; bus.Close(); store.Close() })
	srv := &Server{
		Store: store, People: store, Bus: bus, Hub: chat.NewHub(store, log, nil), Log: log, Guest: true, Accounts: true,
		Sender: &chat.Sender{Bus: bus, Topic: chat.DefaultTopicSend, Log: log},
		Auth:   &Auth{Secret: []byte("fuzz-secret")},
		Limits: Limits{SendRate: 1e9, SendBurst: 1 << 30, SignInRate: 1e9, SignInBurst: 1 << 30,
			HistoryRate: 1e9, HistoryBurst: 1 << 30, RoomRate: 1e9, RoomBurst: 1 << 30},
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
