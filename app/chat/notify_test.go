package chat_test

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/kafka/membus"
)

func TestMentionTokens(t *testing.T) {
	for _, c := range []struct {
		text string
		want []string
	}{
		{"hi @bob", []string{"bob"}},
		{"@bob, @carol.", []string{"bob", "carol"}},
		{"thanks @bob.", []string{"bob"}},
		{"@dr.who is here", []string{"dr.who"}},
		{"mail bob@example.com", nil},
		{"@@bob", []string{"bob"}},
		{"@ alone", nil},
		{"(@Ｂｏｂ)", []string{"Ｂｏｂ"}},
		{"@小明 你好", []string{"小明"}},
		{"@" + string(make([]byte, 0)) + "abcdefghijabcdefghijabcdefghijabcdefghij", []string{"abcdefghijabcdefghijabcdefghijab"}},
	} {
		if got := chat.MentionTokens(c.text); !reflect.DeepEqual(got, c.want) {
			t.Errorf("MentionTokens(%q) = %q, want %q", c.text, got, c.want)
		}
	}
}

// fakeNotes is an in-memory chat.Notifications (beside the real stores,
// which storetest.RunNotifications covers).
type fakeNotes struct {
	mu    sync.Mutex
	notes map[string]chat.Notification
	adds  int
	subs  []chat.PushSubscription
	ds    []chat.Delivery
}

func newFakeNotes() *fakeNotes { return &fakeNotes{notes: map[string]chat.Notification{}} }

func (f *fakeNotes) AddNotification(_ context.Context, n chat.Notification, ds []chat.Delivery) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.adds++
	if _, ok := f.notes[n.ID]; ok {
		return false, nil
	}
	f.notes[n.ID] = n
	f.ds = append(f.ds, ds...)
	return true, nil
}

func (f *fakeNotes) made() map[string]chat.Notification {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]chat.Notification{}
	for k, v := range f.notes {
		out[k] = v
	}
	return out
}

func (f *fakeNotes) ListNotifications(context.Context, string, chat.NotificationQuery) (chat.NotificationPage, error) {
	return chat.NotificationPage{}, nil
}
func (f *fakeNotes) AddPushSubscription(context.Context, chat.PushSubscription, int) error {
	return nil
}
func (f *fakeNotes) RemovePushSubscription(context.Context, string, string) error { return nil }
func (f *fakeNotes) PushSubscriptions(_ context.Context, user string) ([]chat.PushSubscription, error) {
	var out []chat.PushSubscription
	for _, s := range f.subs {
		if s.User == user {
			out = append(out, s)
		}
	}
	return out, nil
}
func (f *fakeNotes) ClaimDeliveries(context.Context, time.Time, time.Duration, int) ([]chat.Delivery, error) {
	return nil, nil
}
func (f *fakeNotes) FinishDelivery(context.Context, string) error                { return nil }
func (f *fakeNotes) RetryDelivery(context.Context, string, int, time.Time) error { return nil }

const notifyDelay = 400 * time.Millisecond

func startNotifier(t *testing.T, bus chat.Bus, notes chat.Notifications) (stop func()) {
	t.Helper()
	dm := chat.NewRoomState("dm-ab")
	dm.Apply(&chat.Message{Room: "dm-ab", Seq: 1, User: "alice", Kind: chat.KindMember,
		Data: &chat.ItemData{Action: chat.ActCreate, RoomKind: chat.RoomDirect, Members: []string{"alice", "bob"}}})
	n := &chat.Notifier{Bus: bus, Topic: chat.DefaultTopicReceive, Store: notes, Delay: notifyDelay, Log: quietLog,
		Webhooks: []string{"https://hooks.example/parley"}, Push: true,
		Rooms: func(_ context.Context, room string) (chat.RoomState, error) {
			if room == "dm-ab" {
				return dm, nil
			}
			return chat.NewRoomState(room), nil
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	for deadline := time.Now().Add(5 * time.Second); !n.Ready(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("notifier not ready")
		}
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

func receive(t *testing.T, bus chat.Bus, ms ...chat.Message) {
	t.Helper()
	for _, m := range ms {
		if err := bus.Publish(context.Background(), chat.DefaultTopicReceive, chat.Record{Key: []byte(m.Room), Value: chat.Encode(m)}); err != nil {
			t.Fatal(err)
		}
	}
}

func item(room string, seq int64, user, text string, mentions ...string) chat.Message {
	return chat.Message{Room: room, Seq: seq, ID: "i" + user + text, User: user, Text: text, TS: chat.Timestamp(time.Now()), Mentions: mentions}
}

func readOf(room, user string, seq int64) chat.Message {
	return chat.Message{Room: room, ID: chat.NewID(), User: user, TS: chat.Timestamp(time.Now()), Kind: chat.KindRead, Data: &chat.ItemData{Seq: seq}}
}

// TestNotifierDecidesByTheLog: a mention or a direct message unread past
// the delay makes one notification with its deliveries; read in time, or
// answered, none.
func TestNotifierDecidesByTheLog(t *testing.T) {
	bus := membus.New(membus.Options{})
	notes := newFakeNotes()
	notes.subs = []chat.PushSubscription{{User: "bob", Endpoint: "https://push.example/1", P256dh: "k", Auth: "a"}}
	startNotifier(t, bus, notes)
	receive(t, bus,
		item("lounge", 7, "alice", "hey @bob", "bob"),          // unread: due
		item("lounge", 8, "alice", "and @carol", "carol"),      // read in time
		readOf("lounge", "carol", 8),                           //
		item("dm-ab", 2, "alice", "psst"),                      // direct, unread: due
		item("dm-ab", 3, "alice", "are you there?"),            // direct, answered in time
		item("dm-ab", 4, "bob", "yes"),                         // (reads up to 4: cancels 3, not 2? both)
		item("lounge", 9, "alice", "@dave look", "dave"),       // answered by dave in time
		item("lounge", 10, "dave", "seen"),                     //
		item("lounge", 11, "alice", "@alice talks to herself"), // no mentions: the author is left out
	)
	id := func(u, room string, seq int64) string { return chat.NotificationID(u, room, seq) }
	want := map[string]string{
		id("bob", "lounge", 7):  chat.NotifyMention,
		id("alice", "dm-ab", 4): chat.NotifyDirect,
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(notes.made()) < len(want) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(notifyDelay + 1500*time.Millisecond) // nothing more comes
	got := notes.made()
	if len(got) != len(want) {
		t.Fatalf("notifications %v, want %v", got, want)
	}
	for k, kind := range want {
		if got[k].Kind != kind {
			t.Fatalf("notification %s = %+v, want kind %s", k, got[k], kind)
		}
	}
	if n := got[id("bob", "lounge", 7)]; n.From != "alice" || n.Text != "hey @bob" || n.Room != "lounge" || n.Seq != 7 || n.User != "bob" {
		t.Fatalf("notification %+v", n)
	}
	// bob's notification: one push to his subscription and one webhook;
	// alice has no subscription: a webhook only.
	kinds := map[string]int{}
	for _, d := range notes.ds {
		kinds[d.Kind]++
	}
	if kinds[chat.DeliverPush] != 1 || kinds[chat.DeliverWebhook] != 2 {
		t.Fatalf("deliveries %v", kinds)
	}
}

// TestNotifierReadLateStillNotifies: a read after the due time does not undo
// the notification; one before it, by a ts the log gives, does.
func TestNotifierReadLateStillNotifies(t *testing.T) {
	bus := membus.New(membus.Options{})
	notes := newFakeNotes()
	startNotifier(t, bus, notes)
	m := item("lounge", 3, "alice", "@bob?", "bob")
	late := readOf("lounge", "bob", 3)
	late.TS = chat.Timestamp(time.Now().Add(notifyDelay + time.Second))
	receive(t, bus, m, late)
	for deadline := time.Now().Add(5 * time.Second); len(notes.made()) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a read after the due time cancelled the notification")
		}
	}
}

// TestNotifierRestartMakesEachOnce: an instance that stops before the due
// time leaves the notification to the next, which reads the partition again
// from the commit: made once, under the same id.
func TestNotifierRestartMakesEachOnce(t *testing.T) {
	bus := membus.New(membus.Options{})
	notes := newFakeNotes()
	stop := startNotifier(t, bus, notes)
	// The group's first commit: a new group starts at the end of the log.
	receive(t, bus, item("lounge", 1, "alice", "hello"))
	time.Sleep(1200 * time.Millisecond)
	receive(t, bus, item("lounge", 2, "alice", "@bob one", "bob"))
	time.Sleep(100 * time.Millisecond)
	stop() // before it is due: nothing made, nothing committed past it
	if len(notes.made()) != 0 {
		t.Fatal("made before the delay")
	}
	startNotifier(t, bus, notes)
	receive(t, bus, item("lounge", 3, "alice", "@bob two", "bob"))
	for deadline := time.Now().Add(5 * time.Second); len(notes.made()) < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("made %v after the restart", notes.made())
		}
	}
	// Made once though the first record was read twice.
	time.Sleep(notifyDelay + 1500*time.Millisecond)
	if got := notes.made(); len(got) != 2 {
		t.Fatalf("notifications %v", got)
	}
}
