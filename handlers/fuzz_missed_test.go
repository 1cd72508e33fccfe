package handlers

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/app/chat"
)

// What you missed under the fuzzer and against openapi.json: the routes of
// read positions, receipts, notifications and Web Push, with fuzzed bodies,
// rooms, cursors and headers, must never answer 5xx or panic, must answer
// every error as an Error body with its code, and must give only answers
// the document describes (status and body).

// fuzzVAPIDKey is fuzzServer's VAPID public key: a real P-256 point, as a
// browser's applicationServerKey would need it.
var fuzzVAPIDKey = func() string {
	pub, _ := p256Key()
	return pub
}()

// p256Key makes a P-256 key pair: the public key uncompressed and the
// private scalar, base64url without padding.
func p256Key() (public, private string) {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc(k.PublicKey().Bytes()), enc(k.Bytes())
}

// browserSubscription is the JSON of a browser's PushSubscription for
// endpoint, with fresh keys.
func browserSubscription(endpoint string) string {
	p256dh, _ := p256Key()
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	return fmt.Sprintf(`{"endpoint":%q,"expirationTime":null,"keys":{"p256dh":%q,"auth":%q}}`,
		endpoint, p256dh, base64.RawURLEncoding.EncodeToString(auth))
}

// docCheck validates answers against openapi.json with kin-openapi.
type docCheck struct {
	router routers.Router
	opts   *openapi3filter.Options
}

// expecter returns a call that makes an authenticated request, wants its
// status, and checks the answer against openapi.json.
func (doc *docCheck) expecter(t *testing.T) func(app *fiber.App, tok, method, target, body string, status int) []byte {
	return func(app *fiber.App, tok, method, target, body string, status int) []byte {
		t.Helper()
		req, resp, b := authedAnswer(t, app, tok, method, target, body)
		if resp.StatusCode != status {
			t.Errorf("%s %s: %d %s, want %d", method, target, resp.StatusCode, b, status)
		}
		if err := doc.check(req, resp.StatusCode, resp.Header, b); err != nil {
			t.Errorf("%s %s: %d %s, not as openapi.json says: %v", method, target, resp.StatusCode, b, err)
		}
		return b
	}
}

func newDocCheck(tb testing.TB) *docCheck {
	tb.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		tb.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		tb.Fatal(err)
	}
	// The document's server is relative; the requests here go to parley.
	doc.Servers = openapi3.Servers{{URL: "http://parley"}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		tb.Fatal(err)
	}
	// An answer whose status the route does not list fails.
	return &docCheck{router: router, opts: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
}

// check validates one answer to req. A request no described route matches
// (a room name that is no path segment) is not this check's.
func (d *docCheck) check(req *http.Request, status int, header http.Header, body []byte) error {
	route, params, err := d.router.FindRoute(req)
	if err != nil {
		return nil
	}
	if status == fiber.StatusUnsupportedMediaType && req.Method == fiber.MethodGet {
		// A Content-Encoding on a GET: the security layer's rule for
		// every route, which the document states once (info), not per
		// GET route.
		return nil
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: d.opts}
	return openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: status, Header: header, Body: io.NopCloser(strings.NewReader(string(body))), Options: d.opts})
}

// FuzzMissedRoutes sends fuzzed requests to the routes of what you missed
// (read positions, receipts, notifications with their cursors, the VAPID
// key, push subscriptions) under FuzzHTTPInputs' rules, and validates every
// answer against openapi.json.
func FuzzMissedRoutes(f *testing.F) {
	app, tok, store := fuzzServer(f)
	doc := newDocCheck(f)
	// A message of the fuzzer's in "fuzz" (checkHistory's room): the
	// room exists, so reads of it are accepted.
	if status, b := authedRequest(f, app, tok, "POST", "/api/rooms/fuzz/messages", `{"id":"seed","text":"hello @fuzzer"}`); status != 202 {
		f.Fatalf("seed message: %d %s", status, b)
	}
	waitRoom(f, store, "fuzz")
	cursor := base64.RawURLEncoding.EncodeToString([]byte("n:2026-12-01T10:00:00.000Z|n0123456789abcdef"))
	f.Add(uint8(0), "", []byte(`{"seq":1}`))
	f.Add(uint8(0), "", []byte(`{"seq":99999999999999999999}`))
	f.Add(uint8(0), "", []byte(`{"seq":-1,"seq":1}`))
	f.Add(uint8(1), "fuzz", []byte(`{"seq":"1"}`))
	f.Add(uint8(1), "Bad Room", []byte(`{"seq":1}`))
	f.Add(uint8(2), "", []byte(nil))
	f.Add(uint8(3), "dm-x", []byte(nil))
	f.Add(uint8(4), "limit=1&before="+cursor, []byte(nil))
	f.Add(uint8(4), "limit=0", []byte(nil))
	f.Add(uint8(4), "before=bjo%7C", []byte(nil))
	f.Add(uint8(5), "", []byte(browserSubscription("https://push.example.test/send/1")))
	f.Add(uint8(5), "", []byte(`{"endpoint":"http://127.0.0.1:1/x","keys":{"p256dh":"AAAA","auth":"AAAA"}}`))
	f.Add(uint8(5), "", []byte(`{"endpoint":"https://u:p@push.example.test/","keys":{}}`))
	f.Add(uint8(6), "endpoint="+url.QueryEscape("https://push.example.test/send/1"), []byte(nil))
	f.Add(uint8(6), "", []byte(`{"endpoint":"https://push.example.test/send/1"}`))
	f.Add(uint8(7), "", []byte(nil))
	f.Add(uint8(0|1<<3), "", []byte(`{"seq":1}`))   // text/plain: 415
	f.Add(uint8(5|2<<5), "", []byte(`{}`))          // gzip: 415
	f.Add(uint8(6|1<<7), "endpoint=x", []byte(nil)) // a foreign origin: 403
	f.Fuzz(func(t *testing.T, kind uint8, query string, body []byte) {
		room := url.PathEscape(query)
		routes := [8][2]string{
			{"PUT", "/api/rooms/fuzz/read"},
			{"PUT", "/api/rooms/" + room + "/read"},
			{"GET", "/api/rooms/fuzz/receipts"},
			{"GET", "/api/rooms/" + room + "/receipts"},
			{"GET", "/api/notifications?" + requestLineSafe(query)},
			{"POST", "/api/push/subscriptions"},
			{"DELETE", "/api/push/subscriptions?" + requestLineSafe(query)},
			{"GET", "/api/push/vapid"},
		}
		r := routes[kind&7]
		req, resp, b := fuzzRequest(t, app, tok, store, kind, r[0], r[1], body)
		if err := doc.check(req, resp.StatusCode, resp.Header, b); err != nil {
			t.Fatalf("%s %s %q: %d %s, not as openapi.json says: %v", r[0], r[1], body, resp.StatusCode, b, err)
		}
	})
}

// waitRoom waits until the persist stage has saved room's state: a room a
// read position may be set in.
func waitRoom(tb testing.TB, store chat.Store, room string) {
	tb.Helper()
	rooms := store.(chat.RoomStates)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if st, err := rooms.RoomState(context.Background(), room); err == nil && st.Exists() {
			return
		}
	}
	tb.Fatalf("room %s not saved within 5 s", room)
}

// authedRequest sends a request with the bearer token and a JSON body
// (none when body is empty) and returns the answer.
func authedRequest(tb testing.TB, app *fiber.App, tok, method, target, body string) (int, []byte) {
	tb.Helper()
	_, resp, b := authedAnswer(tb, app, tok, method, target, body)
	return resp.StatusCode, b
}

func authedAnswer(tb testing.TB, app *fiber.App, tok, method, target, body string) (*http.Request, *http.Response, []byte) {
	tb.Helper()
	req := httptest.NewRequest(method, "http://parley"+target, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := app.Test(req, -1)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, target, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return req, resp, b
}

// TestOpenAPIMissedAnswers: the answers of what you missed, with Web Push
// on and off, are the document's (status and body). app's
// TestOpenAPIResponsesValidate and TestOpenAPIPushValidate run them on the
// real program; this one also sees Web Push off.
func TestOpenAPIMissedAnswers(t *testing.T) {
	doc := newDocCheck(t)
	expect := doc.expecter(t)
	app, tok, store := fuzzServer(t)
	expect(app, tok, "POST", "/api/rooms/fuzz/messages", `{"id":"m1","text":"hello"}`, 202)
	waitRoom(t, store, "fuzz")
	expect(app, tok, "PUT", "/api/rooms/fuzz/read", `{"seq":1}`, 204)
	expect(app, tok, "PUT", "/api/rooms/fuzz/read", `{"seq":"1"}`, 400)
	expect(app, tok, "PUT", "/api/rooms/nowhere/read", `{"seq":1}`, 404)
	expect(app, tok, "GET", "/api/rooms/fuzz/receipts", "", 200)
	expect(app, tok, "GET", "/api/rooms/nowhere/receipts", "", 404)
	expect(app, tok, "GET", "/api/notifications", "", 200)
	expect(app, tok, "GET", "/api/notifications?limit=0", "", 400)
	expect(app, tok, "GET", "/api/notifications?before=x", "", 400)
	if b := expect(app, tok, "GET", "/api/push/vapid", "", 200); !strings.Contains(string(b), fuzzVAPIDKey) {
		t.Errorf("vapid key %s, want %s", b, fuzzVAPIDKey)
	}
	endpoint := "https://push.example.test/send/1"
	expect(app, tok, "POST", "/api/push/subscriptions", browserSubscription(endpoint), 201)
	expect(app, tok, "POST", "/api/push/subscriptions", `{"endpoint":"`+endpoint+`","keys":{"p256dh":"AAAA","auth":"AAAA"}}`, 400)
	expect(app, tok, "DELETE", "/api/push/subscriptions?endpoint="+url.QueryEscape(endpoint), "", 204)
	expect(app, tok, "DELETE", "/api/push/subscriptions", "", 400)

	off, tok, _ := fuzzServer(t, func(s *Server) { s.VAPIDPublicKey = "" })
	expect(off, tok, "GET", "/api/push/vapid", "", 404)
	expect(off, tok, "POST", "/api/push/subscriptions", browserSubscription(endpoint), 404)
}
