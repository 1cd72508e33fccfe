package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/app/tools/testenv"
	"github.com/parley-chat/parley/kafka"
	"github.com/parley-chat/parley/repository"
)

// These tests run several instances against the real Kafka and MongoDB-wire
// servers (go tool task services:up): what no single-process test can show.

// needCluster returns the real services' addresses; without them the test
// skips, or fails under CI=true.
func needCluster(t *testing.T) (brokers []string, mongo string) {
	t.Helper()
	b := testenv.Service(t, testenv.Kafka, "Kafka")
	m := testenv.Service(t, testenv.Mongo, "MongoDB")
	return strings.Split(b, ","), m
}

// clusterConfig is a config for instances of one cluster: topics, database
// and secret of the test's own, shared by its instances. Each instance gets
// its InstanceID and data dir from startInstance.
func clusterConfig(t *testing.T) (Config, string) {
	t.Helper()
	brokers, mongo := needCluster(t)
	return distributedConfig(t, brokers, mongo, "cluster", 5*time.Second)
}

// distributedConfig is an instance config on brokers and mongo with topics,
// a database and a secret of its own (named after name and a fresh suffix,
// which it returns too), so tests sharing services never see each other.
func distributedConfig(t *testing.T, brokers []string, mongo, name string, shutdown time.Duration) (Config, string) {
	t.Helper()
	cfg, err := LoadConfig(func(string) string { return "" }, nil)
	if err != nil {
		t.Fatal(err)
	}
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	cfg.Addr = "127.0.0.1:0"
	loosenLimits(&cfg)
	cfg.ShutdownTimeout = shutdown
	cfg.KafkaBrokers = brokers
	cfg.MongoURI = mongo
	cfg.MongoDB = "parley_" + name + "_" + suffix
	cfg.TopicSend, cfg.TopicReceive = "send_"+suffix, "receive_"+suffix
	cfg.Secret = testSecret(name + "-" + suffix)
	return cfg, suffix
}

func startInstance(t *testing.T, cfg Config, id string) *testServer {
	t.Helper()
	cfg.InstanceID = id
	cfg.DataDir = t.TempDir()
	return startWith(t, cfg)
}

// post sends one message through s's POST route; unlike s.do it may run
// outside the test goroutine.
func post(s *testServer, token, room, id, text string) error {
	req, _ := http.NewRequest("POST", s.base+"/api/rooms/"+room+"/messages", strings.NewReader(jsonBody(map[string]string{"id": id, "text": text})))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 202 {
		return fmt.Errorf("post %s/%s: %d %s", room, id, resp.StatusCode, b)
	}
	return nil
}

// collectWS reads message frames from c until want have arrived or the
// deadline passes. Other frames are reported as problems.
func collectWS(c *wsClient, want int, deadline time.Time) (msgs []message, problems []string) {
	_ = c.collect(time.Until(deadline), func(f map[string]any) {
		if f["type"] != "message" {
			problems = append(problems, fmt.Sprintf("unexpected frame %v", f))
			return
		}
		msgs = append(msgs, toMessage(f))
	}, func() bool { return len(msgs) >= want })
	return msgs, problems
}

// collectSSE reads message events from st until want have arrived, the
// stream ends or the deadline passes. Undecodable data is reported as a
// problem.
func collectSSE(st *sseStream, want int, deadline time.Time) (msgs []message, problems []string) {
	err := st.collect(time.Until(deadline), func(ev sseEvent, m message, err error) {
		if err != nil {
			problems = append(problems, fmt.Sprintf("bad SSE data %q", ev.Data))
			return
		}
		msgs = append(msgs, m)
	}, func() bool { return len(msgs) >= want })
	if errors.Is(err, errStreamEnded) {
		problems = append(problems, "SSE stream ended")
	}
	return msgs, problems
}

// deliveryReport is what a cluster scenario observed.
type deliveryReport struct {
	// missing and duplicated count messages over every client and room.
	missing, duplicated int
	// clientsMissing counts (client, room) pairs that missed messages.
	clientsMissing int
	// problems describes each defect: a client's missed, repeated or
	// out-of-order messages, and the store's.
	problems []string
	// storeProblems are the history's defects alone.
	storeProblems []string
}

// checkRoom compares what one client got in room with the room's n sent
// messages, which must arrive as seqs 1..n, each once, in order.
func (r *deliveryReport) checkRoom(who, room string, got []message, n int) {
	seen := map[int64]int{}
	var last int64
	ordered := true
	for _, m := range got {
		if m.Room != room {
			continue
		}
		seen[m.Seq]++
		if m.Seq <= last {
			ordered = false
		}
		last = m.Seq
	}
	miss, dup := 0, 0
	for s := int64(1); s <= int64(n); s++ {
		switch c := seen[s]; {
		case c == 0:
			miss++
		case c > 1:
			dup += c - 1
		}
	}
	for s := range seen {
		if s < 1 || s > int64(n) {
			dup += seen[s]
		}
	}
	if miss > 0 {
		r.clientsMissing++
	}
	r.missing += miss
	r.duplicated += dup
	if miss > 0 || dup > 0 || !ordered {
		r.problems = append(r.problems, fmt.Sprintf("%s in %s: %d of %d missing, %d repeated, in order %v", who, room, miss, n, dup, ordered))
	}
}

// clusterScenario runs three instances on one Kafka and one database,
// clients on each joined to every room (two WebSocket clients splitting the
// rooms per instance, and one SSE client), sends perInstance messages
// through each instance spread over the rooms, and reports what the clients
// and the store saw. With sharedFanout the three instances share one fan-out
// group: the bug, which must show as loss. wait bounds the wait for
// deliveries once every send is acknowledged.
func clusterScenario(t *testing.T, sharedFanout bool, perInstance int, wait time.Duration) deliveryReport {
	cfg, suffix := clusterConfig(t)
	if sharedFanout {
		cfg.fanoutGroup = "parley-fanout-shared-" + suffix
	}
	rooms := make([]string, 6)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("room%d-%s", i, suffix)
	}
	var nodes []*testServer
	for i := range 3 {
		nodes = append(nodes, startInstance(t, cfg, fmt.Sprintf("cl-%s-%d", suffix, i)))
	}
	// A joining member rebalances a shared group: wait until all are ready again.
	for _, n := range nodes {
		n.waitReady()
	}
	token := nodes[0].login("alice")

	type wsSub struct {
		who   string
		c     *wsClient
		rooms []string
	}
	var subs []wsSub
	for i, n := range nodes {
		for k := range 2 {
			c := n.dial(token)
			var rs []string
			for j := k; j < len(rooms); j += 2 {
				c.join(rooms[j])
				rs = append(rs, rooms[j])
			}
			subs = append(subs, wsSub{fmt.Sprintf("ws%d.%d", i, k), c, rs})
		}
	}
	sse := nodes[0].sse(token, rooms[0], "", nil)

	// Send: one goroutine per instance, perInstance messages round-robin over
	// the rooms.
	sent := map[string]map[string]bool{} // room -> ids
	for _, r := range rooms {
		sent[r] = map[string]bool{}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(nodes))
	for i, n := range nodes {
		for j := range perInstance {
			sent[rooms[(i+j)%len(rooms)]][fmt.Sprintf("n%d-m%d", i, j)] = true
		}
		wg.Go(func() {
			for j := range perInstance {
				if err := post(n, token, rooms[(i+j)%len(rooms)], fmt.Sprintf("n%d-m%d", i, j), fmt.Sprintf("hello %d from %d", j, i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	var rep deliveryReport
	deadline := time.Now().Add(wait)
	for _, s := range subs {
		want := 0
		for _, r := range s.rooms {
			want += len(sent[r])
		}
		got, problems := collectWS(s.c, want, deadline)
		for _, p := range problems {
			rep.problems = append(rep.problems, s.who+": "+p)
		}
		for _, r := range s.rooms {
			rep.checkRoom(s.who, r, got, len(sent[r]))
		}
	}
	got, problems := collectSSE(sse, len(sent[rooms[0]]), deadline)
	for _, p := range problems {
		rep.problems = append(rep.problems, "sse0: "+p)
	}
	rep.checkRoom("sse0", rooms[0], got, len(sent[rooms[0]]))

	// The store: each message once, seqs 1..n. Read through another instance
	// than the one that will have persisted most.
	for _, r := range rooms {
		p := nodes[2].waitHistory(token, r, len(sent[r]))
		ids := map[string]bool{}
		for i, m := range p.Messages {
			if m.Seq != int64(i+1) || ids[m.ID] || !sent[r][m.ID] {
				rep.storeProblems = append(rep.storeProblems, fmt.Sprintf("history of %s: seqs %v", r, seqList(p.Messages)))
				break
			}
			ids[m.ID] = true
		}
		if len(ids) != len(sent[r]) || p.HasMore {
			rep.storeProblems = append(rep.storeProblems, fmt.Sprintf("history of %s holds %d distinct messages, want %d", r, len(ids), len(sent[r])))
		}
	}
	rep.problems = append(rep.problems, rep.storeProblems...)
	return rep
}

// TestClusterDelivery is the regression test for the consumer-group bug:
// three instances, each in its own fan-out group, deliver every message to
// every client of its room exactly once and in order.
func TestClusterDelivery(t *testing.T) {
	start := time.Now()
	rep := clusterScenario(t, false, 30, 20*time.Second)
	for _, p := range rep.problems {
		t.Error(p)
	}
	t.Logf("3 instances, 90 messages, 6 rooms: %d missing, %d repeated (%v)", rep.missing, rep.duplicated, time.Since(start).Round(time.Millisecond))
}

// TestClusterSharedFanoutLoses checks that the scenario above sees the bug
// when it is there: with one fan-out group shared by the instances, each
// instance gets only its partitions' messages and clients miss the rest.
func TestClusterSharedFanoutLoses(t *testing.T) {
	rep := clusterScenario(t, true, 30, 4*time.Second)
	t.Logf("shared fan-out group: %d messages missing over %d client-rooms, %d repeated", rep.missing, rep.clientsMissing, rep.duplicated)
	if rep.missing == 0 || rep.clientsMissing == 0 {
		t.Fatalf("a shared fan-out group went unnoticed: %v", rep.problems)
	}
	// Loss is in the fan-out only: the store still holds everything once.
	for _, p := range rep.storeProblems {
		t.Error(p)
	}
}

// crashingStore stores a batch, then kills its persist stage (cancels its
// context) and reports the failure, once: the batch is in the store, but
// neither republished nor committed.
type crashingStore struct {
	chat.Store
	kill    context.CancelFunc
	mu      sync.Mutex
	crashed int // messages stored by the crashing Append
}

func (s *crashingStore) Append(ctx context.Context, msgs []chat.Message) ([]chat.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kill == nil {
		return s.Store.Append(ctx, msgs)
	}
	if _, err := s.Store.Append(ctx, msgs); err != nil {
		return nil, err
	}
	s.crashed = len(msgs)
	s.kill()
	s.kill = nil
	return nil, context.Canceled
}

// TestPersistCrashBeforeCommit kills the persist stage between storing a
// batch and publishing/committing it; a new persist stage in the same group
// must store nothing twice and still publish every message.
func TestPersistCrashBeforeCommit(t *testing.T) {
	cfg, suffix := clusterConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := repository.Open(ctx, cfg.MongoURI, cfg.MongoDB)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	bus, err := kafka.New(kafka.Config{Brokers: cfg.KafkaBrokers, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	if err := bus.EnsureTopics(ctx, cfg.TopicSend, cfg.TopicReceive); err != nil {
		t.Fatal(err)
	}

	rooms := []string{"a-" + suffix, "b-" + suffix}
	const perRoom = 20
	var recs []chat.Record
	for i := range perRoom * len(rooms) {
		m := chat.Message{Room: rooms[i%len(rooms)], ID: fmt.Sprintf("m%d", i), User: "alice", Text: fmt.Sprintf("hello %d", i),
			TS: time.Now().UTC().Format(chat.TSLayout)}
		v, _ := json.Marshal(m)
		recs = append(recs, chat.Record{Key: []byte(m.Room), Value: v})
	}
	if err := bus.Publish(ctx, cfg.TopicSend, recs...); err != nil {
		t.Fatal(err)
	}

	// The first persist stage dies right after its first store write.
	crashCtx, crash := context.WithCancel(ctx)
	cs := &crashingStore{Store: store, kill: crash}
	first := &chat.Persister{Bus: bus, Store: cs, TopicSend: cfg.TopicSend, TopicReceive: cfg.TopicReceive, Log: log}
	done := make(chan struct{})
	go func() { _ = first.Run(crashCtx); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the first persist stage did not crash within 30s")
	}
	cs.mu.Lock()
	crashed := cs.crashed
	cs.mu.Unlock()
	if crashed == 0 {
		t.Fatal("the first persist stage stored nothing before it stopped")
	}
	t.Logf("the first persist stage stored %d messages, then died before publishing and committing", crashed)

	// A fresh persist stage in the same group takes over from the last commit.
	secondCtx, stopSecond := context.WithCancel(ctx)
	second := &chat.Persister{Bus: bus, Store: store, TopicSend: cfg.TopicSend, TopicReceive: cfg.TopicReceive, Log: log}
	secondDone := make(chan struct{})
	go func() { _ = second.Run(secondCtx); close(secondDone) }()
	defer func() { stopSecond(); <-secondDone }()

	// Every message reaches receive_msg: read it from the start in a fresh
	// group. Repeats are allowed there (the hub drops them by seq); gaps are not.
	c, err := bus.Consume(ctx, chat.ConsumerConfig{Topic: cfg.TopicReceive, Group: "verify-" + suffix})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	published := map[string]map[int64]int{}
	for _, r := range rooms {
		published[r] = map[int64]int{}
	}
	complete := func() bool {
		for _, r := range rooms {
			if len(published[r]) < perRoom {
				return false
			}
		}
		return true
	}
	total := 0
	for !complete() {
		fctx, fcancel := context.WithTimeout(ctx, 20*time.Second)
		got, err := c.Fetch(fctx, 100)
		fcancel()
		if err != nil {
			t.Fatalf("receive topic: %v; got %v", err, published)
		}
		for _, r := range got {
			var m chat.Message
			if err := json.Unmarshal(r.Value, &m); err != nil {
				t.Fatalf("receive topic record %q: %v", r.Value, err)
			}
			published[m.Room][m.Seq]++
			total++
		}
	}
	for _, r := range rooms {
		for s := int64(1); s <= perRoom; s++ {
			if published[r][s] == 0 {
				t.Errorf("%s seq %d never reached the receive topic", r, s)
			}
		}
		if len(published[r]) != perRoom {
			t.Errorf("%s: receive topic carries seqs %v, want 1..%d", r, published[r], perRoom)
		}
	}
	t.Logf("receive topic: %d records for %d messages", total, perRoom*len(rooms))

	// The store holds each message once, seqs gapless.
	for _, r := range rooms {
		p, err := store.Messages(ctx, r, chat.Query{Kind: chat.After, Seq: 0, Limit: 200})
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for i, m := range p.Messages {
			if m.Seq != int64(i+1) || ids[m.ID] {
				t.Fatalf("%s stored seqs %v", r, seqList(toTestMessages(p.Messages)))
			}
			ids[m.ID] = true
		}
		if len(p.Messages) != perRoom {
			t.Errorf("%s holds %d messages, want %d", r, len(p.Messages), perRoom)
		}
	}
}

func toTestMessages(ms []chat.Message) []message {
	out := make([]message, len(ms))
	for i, m := range ms {
		out[i] = message{Room: m.Room, Seq: m.Seq, ID: m.ID, User: m.User, Text: m.Text, TS: m.TS}
	}
	return out
}

// metric reads one unlabelled sample from s's /metrics.
func (s *testServer) metric(name string) float64 {
	s.t.Helper()
	_, body := s.do("GET", "/metrics", "", "")
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		s.t.Fatalf("no metric %s", name)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// TestClusterRestartNoReplay restarts an instance under its old id (so its
// fan-out group has committed offsets) after messages went by while it was
// down. Its clients joining without after must see only live messages.
func TestClusterRestartNoReplay(t *testing.T) {
	cfg, suffix := clusterConfig(t)
	room := "restart-" + suffix
	idA := "restart-a-" + suffix
	a := startInstance(t, cfg, idA)
	b := startInstance(t, cfg, "restart-b-"+suffix)
	token := a.login("alice")
	ca := a.dial(token)
	ca.join(room)
	for i := range 5 {
		if err := post(a, token, room, fmt.Sprintf("before-%d", i), "before"); err != nil {
			t.Fatal(err)
		}
	}
	checkSeqs(t, ca.messages(5), 1, 5)

	a.shutdown()
	for i := range 5 {
		if err := post(b, token, room, fmt.Sprintf("down-%d", i), "while A is down"); err != nil {
			t.Fatal(err)
		}
	}
	b.waitHistory(token, room, 10)

	a2 := startInstance(t, cfg, idA)
	c := a2.dial(token)
	last := c.join(room)
	if last != 10 {
		t.Fatalf("joined with last_seq %d, want 10", last)
	}
	// Whatever the fan-out reads on start, no client may see an old message.
	c.quiet(2 * time.Second)
	// Nor does the fan-out read the backlog (chat.StartAtEnd): it hands its hub
	// nothing of what was sent while the instance was down.
	if hubIn := a2.metric("parley_end_to_end_seconds_count"); hubIn != 0 {
		t.Fatalf("restarted instance's fan-out replayed %v backlog messages to its hub", hubIn)
	}

	if err := post(b, token, room, "live", "live"); err != nil {
		t.Fatal(err)
	}
	checkSeqs(t, c.messages(1), 11, 11)
	c.quiet(300 * time.Millisecond)
}

// TestClusterLatency measures, without asserting on it, how long a message
// takes from a POST on one instance to a WebSocket client of another, at a
// low rate, and how long a new instance takes to become ready.
func TestClusterLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 10 s")
	}
	cfg, suffix := clusterConfig(t)
	room := "latency-" + suffix
	t0 := time.Now()
	a := startInstance(t, cfg, "lat-a-"+suffix)
	readyA := time.Since(t0)
	t1 := time.Now()
	b := startInstance(t, cfg, "lat-b-"+suffix)
	readyB := time.Since(t1)
	token := a.login("alice")
	cb := b.dial(token)
	cb.join(room)

	const n, rate = 100, 10
	var mu sync.Mutex
	sentAt := make([]time.Time, n)
	done := make(chan error, 1)
	go func() {
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		for i := range n {
			<-tick.C
			mu.Lock()
			sentAt[i] = time.Now()
			mu.Unlock()
			if err := post(a, token, room, strconv.Itoa(i), "ping"); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var viaClient, viaTS []time.Duration
	for range n {
		f := cb.next(10 * time.Second)
		now := time.Now()
		m := toMessage(f)
		i, _ := strconv.Atoi(m.ID)
		mu.Lock()
		viaClient = append(viaClient, now.Sub(sentAt[i]))
		mu.Unlock()
		if ts, err := time.Parse(chat.TSLayout, m.TS); err == nil {
			viaTS = append(viaTS, now.Sub(ts))
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	pct := func(d []time.Duration, p float64) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[min(len(s)-1, int(float64(len(s))*p))].Round(10 * time.Microsecond)
	}
	t.Logf("end to end, POST on A -> WebSocket on B, %d msgs at %d/s: p50 %v p99 %v max %v (from the message's ts: p50 %v p99 %v)",
		n, rate, pct(viaClient, .5), pct(viaClient, .99), pct(viaClient, 1), pct(viaTS, .5), pct(viaTS, .99))
	t.Logf("start to /readyz 200: first instance %v, second %v", readyA.Round(time.Millisecond), readyB.Round(time.Millisecond))
	t2 := time.Now()
	startInstance(t, cfg, "lat-c-"+suffix)
	t.Logf("start to /readyz 200: a third instance joining a busy cluster %v", time.Since(t2).Round(time.Millisecond))
}
