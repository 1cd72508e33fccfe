package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/app/notify"
	"github.com/parley-chat/parley/app/notify/pushtest"
)

// Notifications, black-box, both modes: a mention and a direct message
// unread past PARLEY_NOTIFY_DELAY make one in-app notification each (listed
// and sent live), one Web Push each (a push service on 127.0.0.1 receives it
// and the test decrypts it with the subscription's keys) and one webhook
// event each (a receiver that checks the signature and fails the first two
// attempts sees the retries under one delivery id); read in time, none of
// the three.

const testWebhookSecret = "webhook-secret-0123456789"

// hookReceiver is a webhook receiver that fails the first fails attempts of
// each delivery id with 500.
type hookReceiver struct {
	t     *testing.T
	srv   *httptest.Server
	fails int

	mu       sync.Mutex
	attempts map[string]int      // delivery id -> attempts seen
	bodies   map[string][]byte   // delivery id -> body (the same on each)
	byNote   map[string][]string // notification id -> delivery ids
}

func newHookReceiver(t *testing.T, fails int) *hookReceiver {
	h := &hookReceiver{t: t, fails: fails, attempts: map[string]int{}, bodies: map[string][]byte{}, byNote: map[string][]string{}}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	id := r.Header.Get(notify.HeaderDelivery)
	if r.Method != "POST" || id == "" || r.Header.Get("Content-Type") != "application/json" ||
		!notify.Verify([]byte(testWebhookSecret), body, r.Header.Get(notify.HeaderSignature)) {
		h.t.Errorf("webhook %s %q: bad request (signature %q)", r.Method, id, r.Header.Get(notify.HeaderSignature))
		w.WriteHeader(400)
		return
	}
	var ev struct {
		Type         string `json:"type"`
		User         string `json:"user"`
		Notification struct {
			ID string `json:"id"`
		} `json:"notification"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.Type != "notification" || ev.Notification.ID == "" {
		h.t.Errorf("webhook body %s", body)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if old, ok := h.bodies[id]; ok && string(old) != string(body) {
		h.t.Errorf("delivery %s changed its body: %s then %s", id, old, body)
	}
	if h.attempts[id] == 0 {
		h.byNote[ev.Notification.ID] = append(h.byNote[ev.Notification.ID], id)
	}
	h.bodies[id] = body
	h.attempts[id]++
	if h.attempts[id] <= h.fails {
		w.WriteHeader(500)
		return
	}
	w.WriteHeader(204)
}

// waitAttempts waits until notes notifications have deliveries, each
// attempted at least attempts times, and returns what delivered gives then
// (or at the end of within).
func (h *hookReceiver) waitAttempts(notes, attempts int, within time.Duration) map[string]map[string]int {
	var got map[string]map[string]int
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		got = h.delivered()
		done := len(got) >= notes
		for _, ids := range got {
			for _, n := range ids {
				done = done && n >= attempts
			}
		}
		if done {
			break
		}
	}
	return got
}

// delivered returns, per notification id, its delivery ids and their
// attempts.
func (h *hookReceiver) delivered() map[string]map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]map[string]int{}
	for note, ids := range h.byNote {
		out[note] = map[string]int{}
		for _, id := range ids {
			out[note][id] = h.attempts[id]
		}
	}
	return out
}

// notificationServer starts a server with a short notify delay, the
// webhook receiver and push on the loopback switch, with VAPID keys of its
// own (the distributed mode generates none).
func notificationServer(t *testing.T, hook *hookReceiver, edit func(*Config)) *testServer {
	keys, err := notify.LoadOrCreateVAPID(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return startServer(t, func(c *Config) {
		c.NotifyDelay = time.Second
		c.WebhookURLs = []string{hook.srv.URL + "/hook"}
		c.WebhookSecret = testWebhookSecret
		c.VAPIDPublicKey, c.VAPIDPrivateKey = keys.PublicKey, keys.PrivateKey
		c.PushLoopbackHTTP = true
		c.outboxBackoff = 200 * time.Millisecond
		if edit != nil {
			edit(c)
		}
	})
}

// note is a notification as the API answers it.
type note = chat.Notification

func (s *testServer) notifications(token, query string) (notes []note, hasMore bool, next *string) {
	s.t.Helper()
	var r struct {
		Notes   []note  `json:"notifications"`
		HasMore bool    `json:"has_more"`
		Next    *string `json:"next_cursor"`
	}
	mustJSON(s.t, s.call("GET", "/api/notifications"+query, token, "", 200), &r)
	return r.Notes, r.HasMore, r.Next
}

func (s *testServer) subscribePush(token string, sub pushtest.Subscription) {
	s.t.Helper()
	b, _ := json.Marshal(sub)
	s.call("POST", "/api/push/subscriptions", token, string(b), 201)
}

func TestNotificationsDueAndReadInTime(t *testing.T) {
	hook := newHookReceiver(t, 2)
	s := notificationServer(t, hook, nil)
	push := pushtest.New(t)
	var vapid struct {
		Key string `json:"public_key"`
	}
	alice, bob, carol := s.login("alice"), s.login("bob"), s.login("carol")
	mustJSON(t, s.call("GET", "/api/push/vapid", bob, "", 200), &vapid)
	push.RequireVAPIDKey(vapid.Key)
	bobSub, carolSub := push.NewSubscription(), push.NewSubscription()
	s.subscribePush(bob, bobSub)
	s.subscribePush(carol, carolSub)

	s.call("POST", "/api/rooms/lounge/messages", bob, `{"id":"b0","text":"hi"}`, 202)
	s.call("POST", "/api/rooms/lounge/messages", carol, `{"id":"c0","text":"hi"}`, 202)
	s.waitHistory(alice, "lounge", 2)
	var dm roomObj
	mustJSON(t, s.call("POST", "/api/dms", alice, `{"user":"bob"}`, 200), &dm)
	bws := s.dial(bob)
	time.Sleep(100 * time.Millisecond)

	s.call("POST", "/api/rooms/lounge/messages", alice, `{"id":"a1","text":"@bob look at this"}`, 202)
	s.call("POST", "/api/rooms/"+dm.Room+"/messages", alice, `{"id":"a2","text":"psst"}`, 202)
	s.call("POST", "/api/rooms/lounge/messages", alice, `{"id":"a3","text":"@carol you too"}`, 202)
	h := s.waitHistory(alice, "lounge", 4)
	// carol reads in time: nothing for her, anywhere.
	s.call("PUT", "/api/rooms/lounge/read", carol, fmt.Sprintf(`{"seq":%d}`, h.Messages[3].Seq), 204)

	// bob: two notifications, live and listed.
	live := map[string]map[string]any{}
	for len(live) < 2 {
		f := bws.nextMissed(15 * time.Second)
		if f["type"] == "notification" {
			live[f["id"].(string)] = f
		}
	}
	var notes []note
	for deadline := time.Now().Add(5 * time.Second); len(notes) < 2 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		notes, _, _ = s.notifications(bob, "")
	}
	if len(notes) != 2 {
		t.Fatalf("bob's notifications %+v", notes)
	}
	kinds := map[string]note{}
	for _, n := range notes {
		kinds[n.Kind] = n
		if live[n.ID] == nil {
			t.Fatalf("listed %+v was not sent live (live: %v)", n, live)
		}
	}
	if m := kinds["mention"]; m.Room != "lounge" || m.From != "alice" || m.Text != "@bob look at this" || m.Seq != h.Messages[2].Seq {
		t.Fatalf("mention notification %+v", m)
	}
	if d := kinds["direct"]; d.Room != dm.Room || d.Text != "psst" || d.From != "alice" {
		t.Fatalf("direct notification %+v", d)
	}

	// One push each, to bob's subscription, decrypted: the notification.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pushes, err := push.Wait(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	pushed := map[string]bool{}
	for _, p := range pushes {
		var payload struct {
			note
			Title string `json:"title"`
		}
		if p.Endpoint != bobSub.Endpoint || json.Unmarshal(p.Payload, &payload) != nil || kinds[payload.Kind].ID != payload.ID || payload.Title == "" {
			t.Fatalf("push to %s: %s", p.Endpoint, p.Payload)
		}
		pushed[payload.ID] = true
	}
	if len(pushed) != 2 {
		t.Fatalf("pushes %v", pushed)
	}

	// One webhook delivery each: two failed attempts, then the third
	// answered, all under one delivery id.
	got := hook.waitAttempts(2, 3, 15*time.Second)
	for _, n := range notes {
		ids := got[n.ID]
		if len(ids) != 1 {
			t.Fatalf("webhook deliveries of %s: %v (all: %v)", n.ID, ids, got)
		}
		for id, attempts := range ids {
			if attempts != 3 {
				t.Fatalf("delivery %s: %d attempts, want 3", id, attempts)
			}
		}
	}
	// Nothing more: carol read in time, bob's are made once.
	time.Sleep(2 * time.Second)
	if notes, _, _ := s.notifications(carol, ""); len(notes) != 0 {
		t.Fatalf("carol read in time but has %+v", notes)
	}
	if n := len(push.Pushes()); n != 2 {
		t.Fatalf("%d pushes, want 2", n)
	}
	if got := hook.delivered(); len(got) != 2 {
		t.Fatalf("webhook notifications %v", got)
	}
}

// TestNotificationPaging: the list pages like history, latest first.
func TestNotificationPaging(t *testing.T) {
	hook := newHookReceiver(t, 0)
	s := notificationServer(t, hook, func(c *Config) { c.NotifyDelay = 300 * time.Millisecond })
	alice, bob := s.login("alice"), s.login("bob")
	var dm roomObj
	mustJSON(t, s.call("POST", "/api/dms", alice, `{"user":"bob"}`, 200), &dm)
	for i := range 5 {
		s.call("POST", "/api/rooms/"+dm.Room+"/messages", alice, fmt.Sprintf(`{"id":"a%d","text":"m%d"}`, i, i), 202)
	}
	var all []note
	for deadline := time.Now().Add(10 * time.Second); len(all) < 5 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		all, _, _ = s.notifications(bob, "")
	}
	if len(all) != 5 {
		t.Fatalf("notifications %+v", all)
	}
	page, more, next := s.notifications(bob, "?limit=2")
	if len(page) != 2 || !more || next == nil || page[0].Text != "m3" || page[1].Text != "m4" {
		t.Fatalf("latest page %+v more %v next %v", page, more, next)
	}
	var texts []string
	for next != nil {
		var p []note
		p, more, next = s.notifications(bob, "?limit=2&before="+*next)
		for _, n := range p {
			texts = append(texts, n.Text)
		}
	}
	if strings.Join(texts, ",") != "m1,m2,m0" || more {
		t.Fatalf("older pages %v (more %v)", texts, more)
	}
	for _, q := range []string{"?limit=0", "?limit=201", "?limit=x", "?before=bm9wZQ", "?before=%%%"} {
		s.refused("GET", "/api/notifications"+q, bob, "", 400, "bad_request")
	}
}

// TestPushSubscriptionBadInput: what is not a valid PushSubscription, an
// endpoint that is not https (or loopback http with the test switch), too
// many per user; removal; and a push service that says the subscription is
// gone (410) has it removed.
func TestPushSubscriptionBadInput(t *testing.T) {
	hook := newHookReceiver(t, 0)
	s := notificationServer(t, hook, func(c *Config) { c.MaxPushSubs = 2; c.NotifyDelay = 300 * time.Millisecond })
	push := pushtest.New(t)
	alice, bob := s.login("alice"), s.login("bob")
	good := push.NewSubscription()
	keys := fmt.Sprintf(`"keys":{"p256dh":%q,"auth":%q}`, good.Keys.P256dh, good.Keys.Auth)
	for _, body := range []string{
		`{}`,
		`{"endpoint":"https://push.example/x"}`,
		`{"endpoint":"http://push.example/x",` + keys + `}`, // http, not loopback
		`{"endpoint":"ftp://push.example/x",` + keys + `}`,
		`{"endpoint":"https://user:pw@push.example/x",` + keys + `}`,
		`{"endpoint":"https://push.example/x","keys":{"p256dh":"AAAA","auth":` + fmt.Sprintf("%q", good.Keys.Auth) + `}}`,
		`{"endpoint":"https://push.example/x","keys":{"p256dh":` + fmt.Sprintf("%q", good.Keys.P256dh) + `,"auth":"short"}}`,
		`{"endpoint":"https://push.example/` + strings.Repeat("x", 1100) + `",` + keys + `}`,
		`[1]`,
	} {
		s.refused("POST", "/api/push/subscriptions", bob, body, 400, "bad_request")
	}
	status, _, b := s.req("POST", "/api/push/subscriptions", map[string]string{"Authorization": "Bearer " + bob, "Content-Type": "text/plain"}, []byte(`{}`))
	apiError(t, status, b, 415, "bad_request")
	s.subscribePush(bob, good)
	s.subscribePush(bob, good) // the same endpoint again replaces it
	second := push.NewSubscription()
	s.subscribePush(bob, second)
	s.refused("POST", "/api/push/subscriptions", bob, mustMarshal(push.NewSubscription()), 429, "rate_limited")
	s.call("DELETE", "/api/push/subscriptions?endpoint="+url.QueryEscape(second.Endpoint), bob, "", 204)
	s.call("DELETE", "/api/push/subscriptions?endpoint="+url.QueryEscape(second.Endpoint), bob, "", 204) // gone already
	s.refused("DELETE", "/api/push/subscriptions", bob, "", 400, "bad_request")
	s.subscribePush(bob, push.NewSubscription()) // room again after the removal

	// A push service answering 410: the subscription is removed, and the
	// next notification is not pushed to it.
	push.Answer(good.Endpoint, http.StatusGone)
	var dm roomObj
	mustJSON(t, s.call("POST", "/api/dms", alice, `{"user":"bob"}`, 200), &dm)
	s.call("POST", "/api/rooms/"+dm.Room+"/messages", alice, `{"id":"a1","text":"one"}`, 202)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := push.Wait(ctx, 2); err != nil { // the gone one and the other
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	s.call("POST", "/api/rooms/"+dm.Room+"/messages", alice, `{"id":"a2","text":"two"}`, 202)
	if _, err := push.Wait(ctx, 3); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	toGood := 0
	for _, p := range push.Pushes() {
		if p.Endpoint == good.Endpoint {
			toGood++
		}
	}
	if toGood != 1 {
		t.Fatalf("%d pushes to the subscription the service said was gone, want 1", toGood)
	}
}

// TestPushOffWithoutKeys: with Kafka and no VAPID keys no instance makes a
// pair of its own (they must all sign alike): push is off, and the key
// route says so; the embedded mode makes one pair and keeps it.
func TestPushOffWithoutKeys(t *testing.T) {
	v, err := loadVAPID(Config{KafkaBrokers: []string{"127.0.0.1:1"}, DataDir: t.TempDir()})
	if err != nil || v.PublicKey != "" {
		t.Fatalf("Kafka without keys: %+v, %v", v, err)
	}
	dir := t.TempDir()
	a, err := loadVAPID(Config{DataDir: dir})
	b, err2 := loadVAPID(Config{DataDir: dir})
	if err != nil || err2 != nil || a.PublicKey == "" || a != b {
		t.Fatalf("embedded: %+v %v, then %+v %v", a, err, b, err2)
	}
	if _, err := loadVAPID(Config{VAPIDPublicKey: "bad", VAPIDPrivateKey: "bad"}); err == nil {
		t.Fatal("bad keys taken")
	}
	s := startServer(t, func(c *Config) { c.VAPIDPublicKey, c.VAPIDPrivateKey = "", ""; c.KafkaBrokers = nil; c.MongoURI = "" })
	tok := s.login("x")
	s.call("GET", "/api/push/vapid", tok, "", 200)
	off := startServer(t, nil)
	if len(off.cfg.KafkaBrokers) > 0 {
		off.refused("GET", "/api/push/vapid", off.login("x"), "", 404, "not_found")
		off.refused("POST", "/api/push/subscriptions", off.login("y"), mustMarshal(pushtest.New(t).NewSubscription()), 404, "not_found")
	}
}

func mustMarshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
