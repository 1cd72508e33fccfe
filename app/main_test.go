package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/app/tools/client"
)

// These tests run the real program (run, as main calls it) on a free port
// and speak HTTP, WebSocket and SSE to it, as clients outside would.

type testServer struct {
	t    *testing.T
	base string // http://127.0.0.1:port
	cfg  Config
	stop context.CancelFunc
	done chan error
}

// startServer runs Parley on the embedded default in a temp data dir;
// edit adjusts the config.
func startServer(t *testing.T, edit func(*Config)) *testServer {
	t.Helper()
	cfg, err := LoadConfig(func(string) string { return "" }, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	loosenLimits(&cfg)
	cfg.ShutdownTimeout = 5 * time.Second
	distributed(t, &cfg)
	if edit != nil {
		edit(&cfg)
	}
	return startWith(t, cfg)
}

// loosenLimits raises the per-user and per-IP limits far above what the
// black-box tests use (they sign in many users and open many connections
// from one loopback address); the tests of the limits set their own.
func loosenLimits(cfg *Config) {
	cfg.SendRate, cfg.SendBurst = 1000, 1000
	cfg.SignInRate, cfg.SignInBurst = 1000, 1000
	cfg.HistoryRate, cfg.HistoryBurst = 1000, 1000
	cfg.RoomRate, cfg.RoomBurst = 1000, 1000
	cfg.MaxConnsPerUser, cfg.MaxConnsPerIP = 1000, 10000
}

// testSecret is a PARLEY_SECRET of the required length, unique to name.
func testSecret(name string) string { return name + "-secret-0123456789abcdef0123456789abcdef" }

// distributed points cfg at the real Kafka and MongoDB-wire servers when
// PARLEY_TEST_MODE=distributed, with topics and a database of the test's own,
// so that every black-box test runs unchanged against that mode too.
func distributed(t *testing.T, cfg *Config) {
	mode := os.Getenv("PARLEY_TEST_MODE")
	if mode == "" || mode == "embedded" {
		return
	}
	if mode != "distributed" {
		t.Fatalf("PARLEY_TEST_MODE=%q: want embedded or distributed", mode)
	}
	brokers, mongo := os.Getenv("PARLEY_TEST_KAFKA"), os.Getenv("PARLEY_TEST_MONGO")
	if brokers == "" || mongo == "" {
		t.Fatal("PARLEY_TEST_MODE=distributed needs PARLEY_TEST_KAFKA and PARLEY_TEST_MONGO (start them with go tool task services:up)")
	}
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	cfg.KafkaBrokers = strings.Split(brokers, ",")
	cfg.MongoURI = mongo
	cfg.MongoDB = "parley_test_" + suffix
	cfg.TopicSend, cfg.TopicReceive = "send_"+suffix, "receive_"+suffix
	cfg.Secret = testSecret("test-" + suffix)
	cfg.InstanceID = "test-" + suffix
}

func startWith(t *testing.T, cfg Config) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	s := &testServer{t: t, cfg: cfg, stop: cancel, done: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	go func() { s.done <- run(ctx, cfg, log, ready) }()
	select {
	case addr := <-ready:
		s.base = "http://" + addr
	case err := <-s.done:
		t.Fatalf("server did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start in 10s")
	}
	t.Cleanup(s.shutdown)
	s.waitReady()
	return s
}

func (s *testServer) shutdown() {
	if s.stop == nil {
		return
	}
	s.stop()
	s.stop = nil
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("server stopped with error: %v", err)
		}
	case <-time.After(20 * time.Second):
		s.t.Error("server did not stop within 20s")
	}
}

func (s *testServer) waitReady() {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatal("server not ready in 10s")
}

// login signs a guest in and returns the token.
func (s *testServer) login(name string) string {
	s.t.Helper()
	status, body := s.do("POST", "/api/session", "", `{"name":"`+name+`"}`)
	if status != 200 {
		s.t.Fatalf("login %s: %d %s", name, status, body)
	}
	var r struct{ User, Token string }
	mustJSON(s.t, body, &r)
	if r.User != name || r.Token == "" {
		s.t.Fatalf("login answer %s", body)
	}
	return r.Token
}

// do makes a request with an optional bearer token and returns status and body.
func (s *testServer) do(method, path, token, body string) (int, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := doOversized(http.DefaultClient, req, len(body))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// doOversized is c.Do(req), tried again (up to 3 times in all) when the
// body is over the server's limit and the connection was reset: the server
// answers 413 as soon as it has read the Content-Length, and closes with
// the rest of the body unread, which the kernel turns into a reset that may
// reach the client while it is still writing, before it read the answer (a
// race of the client's, not a server that failed to answer). The body must
// be rereadable: req.GetBody is used for the next tries.
func doOversized(c *http.Client, req *http.Request, bodyLen int) (*http.Response, error) {
	resp, err := c.Do(req)
	for try := 1; try < 3 && err != nil && bodyLen > chat.MaxFrameBytes && errors.Is(err, syscall.ECONNRESET) && req.GetBody != nil; try++ {
		body, berr := req.GetBody()
		if berr != nil {
			return nil, err
		}
		again := req.Clone(req.Context())
		again.Body = body
		resp, err = c.Do(again)
	}
	return resp, err
}

// message is a chat message as the server sends it: the recovering
// client's, so that the black-box tests and the client read it alike.
type message = client.Message

type page struct {
	Messages []message `json:"messages"`
	HasMore  bool      `json:"has_more"`
}

func (s *testServer) history(token, room, query string) page {
	s.t.Helper()
	status, body := s.do("GET", "/api/rooms/"+room+"/messages"+query, token, "")
	if status != 200 {
		s.t.Fatalf("history %s%s: %d %s", room, query, status, body)
	}
	var p page
	mustJSON(s.t, body, &p)
	return p
}

// waitHistory polls until the room holds n messages (the persist stage is
// asynchronous to the send's ack).
func (s *testServer) waitHistory(token, room string, n int) page {
	s.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p := s.history(token, room, "?limit=200")
		if len(p.Messages) >= n || time.Now().After(deadline) {
			return p
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
}

// apiError checks an /api error answer.
func apiError(t *testing.T, status int, body []byte, wantStatus int, wantCode string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body is not JSON: %q", body)
	}
	if status != wantStatus || e.Error.Code != wantCode || e.Error.Message == "" {
		t.Fatalf("got %d %s, want %d %s", status, body, wantStatus, wantCode)
	}
}

// wsClient is a test WebSocket client; frames arrive on a channel.
type wsClient struct {
	t      *testing.T
	conn   *websocket.Conn
	frames chan map[string]any
	// held are frames read past by ack and handed out again by next.
	held   []map[string]any
	closed chan struct{}
	// closeCode is the close code the server sent, once closed is closed.
	closeCode int
	// memberships are the membership frames the server sent; missed the
	// read, receipt and notification frames.
	memberships chan map[string]any
	missed      chan map[string]any
}

func (s *testServer) dial(token string) *wsClient {
	s.t.Helper()
	c, resp, err := s.dialRaw(token, nil)
	if err != nil {
		s.t.Fatalf("dial: %v (%v)", err, resp)
	}
	return c
}

func (s *testServer) dialRaw(token string, header http.Header) (*wsClient, *http.Response, error) {
	u := "ws" + strings.TrimPrefix(s.base, "http") + "/ws"
	if token != "" {
		u += "?token=" + url.QueryEscape(token)
	}
	conn, resp, err := websocket.DefaultDialer.Dial(u, header)
	if err != nil {
		return nil, resp, err
	}
	c := &wsClient{t: s.t, conn: conn, frames: make(chan map[string]any, 10000), closed: make(chan struct{}), memberships: make(chan map[string]any, 1000), missed: make(chan map[string]any, 1000)}
	go c.readLoop()
	s.t.Cleanup(func() { conn.Close() })
	return c, resp, nil
}

func (c *wsClient) readLoop() {
	defer close(c.closed)
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			if ce, ok := err.(*websocket.CloseError); ok {
				c.closeCode = ce.Code
			}
			return
		}
		var f map[string]any
		if err := json.Unmarshal(data, &f); err != nil {
			c.t.Errorf("server sent non-JSON frame %q", data)
			continue
		}
		if f["type"] == "membership" {
			// About the user's room list, beside the room's frames: kept
			// apart so that the frame-by-frame tests see only those.
			select {
			case c.memberships <- f:
			default:
			}
			continue
		}
		if f["type"] == "read" || f["type"] == "receipt" || f["type"] == "notification" {
			// What the user missed: apart too (see missed_test.go).
			select {
			case c.missed <- f:
			default:
			}
			continue
		}
		c.frames <- f
	}
}

func (c *wsClient) write(v any) {
	c.t.Helper()
	var b []byte
	switch v := v.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		b, _ = json.Marshal(v)
	}
	if err := c.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next returns the next frame, failing after timeout.
func (c *wsClient) next(timeout time.Duration) map[string]any {
	c.t.Helper()
	var f map[string]any
	switch err := c.collect(timeout, func(g map[string]any) { f = g }, func() bool { return f != nil }); {
	case errors.Is(err, errClosed):
		c.t.Fatalf("connection closed (code %d) while waiting for a frame", c.closeCode)
	case err != nil:
		c.t.Fatal("no frame within", timeout)
	}
	return f
}

// expect returns the next frame, which must have the given type.
func (c *wsClient) expect(typ string) map[string]any {
	c.t.Helper()
	f := c.next(5 * time.Second)
	if f["type"] != typ {
		c.t.Fatalf("got frame %v, want type %q", f, typ)
	}
	return f
}

// ack waits for the ack of id. The sender's own message frame may come
// before its ack (they travel different paths: the ack from the send topic's
// producer, the message through the pipeline); frames passed over are kept
// for next.
func (c *wsClient) ack(id string) map[string]any {
	c.t.Helper()
	var passed []map[string]any
	defer func() { c.held = append(passed, c.held...) }()
	for {
		f := c.next(5 * time.Second)
		if f["type"] == "ack" && f["id"] == id {
			return f
		}
		if f["type"] != "message" {
			c.t.Fatalf("got %v while waiting for the ack of %s", f, id)
		}
		passed = append(passed, f)
	}
}

// quiet asserts that no frame arrives for d.
func (c *wsClient) quiet(d time.Duration) {
	c.t.Helper()
	select {
	case f := <-c.frames:
		c.t.Fatalf("unexpected frame %v", f)
	case <-time.After(d):
	}
}

func (c *wsClient) join(room string, after ...int64) int64 {
	c.t.Helper()
	f := map[string]any{"type": "join", "room": room}
	if len(after) > 0 {
		f["after"] = after[0]
	}
	c.write(f)
	j := c.expect("joined")
	if j["room"] != room {
		c.t.Fatalf("joined %v, want room %s", j, room)
	}
	return int64(j["last_seq"].(float64))
}

// messages collects n message frames, failing on any other frame.
func (c *wsClient) messages(n int) []message {
	c.t.Helper()
	out := make([]message, 0, n)
	for len(out) < n {
		f := c.next(5 * time.Second)
		if f["type"] != "message" {
			c.t.Fatalf("got %v while waiting for message %d of %d", f, len(out)+1, n)
		}
		out = append(out, toMessage(f))
	}
	return out
}

func toMessage(f map[string]any) message {
	b, _ := json.Marshal(f)
	var m message
	_ = json.Unmarshal(b, &m)
	return m
}

// sendAcked sends text under id and waits for the ack, skipping nothing.
func (c *wsClient) sendAcked(room, id, text string) {
	c.t.Helper()
	c.write(map[string]any{"type": "send", "room": room, "id": id, "text": text})
}

func (c *wsClient) waitClose(timeout time.Duration) int {
	c.t.Helper()
	if err := c.collect(timeout, func(map[string]any) {}, nil); !errors.Is(err, errClosed) {
		c.t.Fatal("connection not closed within", timeout)
	}
	return c.closeCode
}

// sseStream is a test SSE client.
type sseStream struct {
	t      *testing.T
	resp   *http.Response
	events chan sseEvent
	cancel context.CancelFunc
}

type sseEvent struct {
	ID, Event, Data string
	Comment         bool
}

func (s *testServer) sse(token, room, query string, header http.Header) *sseStream {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.base+"/api/rooms/"+room+"/events"+query, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		s.t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		cancel()
		s.t.Fatalf("sse: %d %s", resp.StatusCode, b)
	}
	st := &sseStream{t: s.t, resp: resp, events: make(chan sseEvent, 10000), cancel: cancel}
	go st.readLoop()
	s.t.Cleanup(func() { cancel(); resp.Body.Close() })
	return st
}

func (st *sseStream) readLoop() {
	defer close(st.events)
	r := bufio.NewReader(st.resp.Body)
	var ev sseEvent
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if ev != (sseEvent{}) {
				st.events <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, ":"):
			ev.Comment = true
		case strings.HasPrefix(line, "id: "):
			ev.ID = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.Event = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.Data = line[6:]
		}
	}
}

// messages collects n message events (skipping retry and comment blocks).
func (st *sseStream) messages(n int) []message {
	st.t.Helper()
	var out []message
	err := st.collect(5*time.Second, func(ev sseEvent, m message, err error) {
		if err != nil {
			st.t.Fatalf("decode %q: %v", ev.Data, err)
		}
		if ev.ID != strconv.FormatInt(m.Seq, 10) {
			st.t.Fatalf("event id %q for seq %d", ev.ID, m.Seq)
		}
		out = append(out, m)
	}, func() bool { return len(out) >= n })
	switch {
	case errors.Is(err, errStreamEnded):
		st.t.Fatalf("stream ended after %d of %d messages", len(out), n)
	case err != nil:
		st.t.Fatalf("got %d of %d SSE messages in 5s", len(out), n)
	}
	return out
}

// seqs checks that msgs are exactly seqs from..to in order.
func checkSeqs(t *testing.T, msgs []message, from, to int64) {
	t.Helper()
	if int64(len(msgs)) != to-from+1 {
		t.Fatalf("got %d messages, want seqs %d..%d: %v", len(msgs), from, to, seqList(msgs))
	}
	for i, m := range msgs {
		if m.Seq != from+int64(i) {
			t.Fatalf("seqs %v, want %d..%d", seqList(msgs), from, to)
		}
	}
}

func seqList(msgs []message) []int64 {
	var s []int64
	for _, m := range msgs {
		s = append(s, m.Seq)
	}
	return s
}

func jsonBody(v any) string {
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(v)
	return buf.String()
}

func uniqueRoom(t *testing.T) string {
	return strings.ToLower(fmt.Sprintf("r-%d", time.Now().UnixNano()%1e12))
}
