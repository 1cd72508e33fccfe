package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/app/tools/localcluster"
	"github.com/parley-chat/parley/app/tools/testenv"
)

// Fault tests: the real program on Kafka and FerretDB that the test starts
// itself, on ports of its own (never the suite's shared 19092/27018, since
// it stops them), with a dependency stopped and resumed under it:
//
//   - TestFaults/KafkaOutage: sends answer unavailable within
//     unavailableBound, /readyz says why, and the instance recovers by
//     itself once the broker is back;
//   - TestFaults/StoreOutage: sends are still acknowledged (the bus holds
//     them), the persist stage pauses without committing, and everything
//     is stored and delivered once the store is back.
//
// They run in the distributed pass (PARLEY_TEST_MODE=distributed), once.

const (
	faultKafkaPort      = "19292"
	faultControllerPort = "19293"
	faultMongoPort      = "27218"

	// unavailableBound and knownDownBound are the documented bounds (API.md,
	// Operations) on how long a send waits for its answer while the bus is
	// unreachable: the first send of an outage waits out the publish (5 s
	// at most), later ones a bus ping (1 s at most). Each with a second of
	// slack for a busy machine.
	unavailableBound = 6 * time.Second
	knownDownBound   = 2 * time.Second
)

// faultServices are a Kafka broker and a FerretDB that the test owns, run
// by their scripts through localcluster on the test's own ports.
type faultServices struct {
	localcluster.Services
	brokers []string
	mongo   string
}

// startFaultServices starts the test's own Kafka and FerretDB and stops them
// when t ends. Without java, mvn or go it skips (fails under CI=true).
func startFaultServices(t *testing.T) *faultServices {
	t.Helper()
	for _, tool := range []string{"java", "mvn", "go"} {
		_, err := exec.LookPath(tool)
		testenv.Need(t, tool+" (for the fault tests' own Kafka and FerretDB)", err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	port := func(p string) int { n, _ := strconv.Atoi(p); return n }
	svc := &faultServices{Services: localcluster.Services{
		Root: root, KafkaPort: port(faultKafkaPort), KafkaControllerPort: port(faultControllerPort), MongoPort: port(faultMongoPort),
	}}
	svc.brokers, svc.mongo = svc.Brokers(), svc.MongoURI()
	t.Cleanup(func() {
		// Best effort: the test may have stopped them already.
		_, _ = svc.script("kafka", "stop")
		_, _ = svc.script("ferretdb", "stop")
	})
	svc.must(t, "kafka", "start")
	svc.must(t, "ferretdb", "start")
	return svc
}

// script runs broker.sh or ferretdb.sh with verb and returns how long it
// took; the error holds the script's output.
func (svc *faultServices) script(which, verb string) (time.Duration, error) {
	var out bytes.Buffer
	s := svc.Services
	s.Out = &out
	run := map[string]func() error{
		"kafka start": s.StartKafka, "kafka stop": s.StopKafka, "kafka resume": s.ResumeKafka,
		"ferretdb start": s.StartStore, "ferretdb stop": s.StopStore, "ferretdb resume": s.ResumeStore,
	}[which+" "+verb]
	if run == nil {
		return 0, fmt.Errorf("no script verb %s %s", which, verb)
	}
	start := time.Now()
	if err := run(); err != nil {
		return time.Since(start), fmt.Errorf("%v\n%s", err, out.Bytes())
	}
	return time.Since(start), nil
}

func (svc *faultServices) must(t *testing.T, which, verb string) {
	t.Helper()
	d, err := svc.script(which, verb)
	if err != nil {
		if verb == "start" {
			testenv.Need(t, "the fault tests' own "+which, err)
		}
		t.Fatal(err)
	}
	t.Logf("%s %s took %v", which, verb, d.Round(time.Millisecond))
}

// config is an instance config on the test's own services, with topics and
// a database of its own.
func (svc *faultServices) config(t *testing.T) (Config, string) {
	t.Helper()
	return distributedConfig(t, svc.brokers, svc.mongo, "faults", 10*time.Second)
}

// TestFaults stops and resumes each dependency under a running instance.
func TestFaults(t *testing.T) {
	if os.Getenv("PARLEY_TEST_MODE") != "distributed" {
		// Under CI a pass without them must not look green: the Taskfile's
		// embedded pass skips this test by name (-skip '^TestFaults$') and
		// its distributed pass runs it.
		msg := "the fault tests run in the distributed pass (PARLEY_TEST_MODE=distributed); they start their own Kafka (127.0.0.1:" +
			faultKafkaPort + ") and FerretDB (127.0.0.1:" + faultMongoPort + ")"
		if testenv.CI() {
			t.Fatal("PARLEY_TEST_MODE is not distributed under CI=true: " + msg + "; run them with PARLEY_TEST_MODE=distributed, or leave them out by name with -skip '^TestFaults$'")
		}
		t.Skip(msg)
	}
	svc := startFaultServices(t)
	t.Run("KafkaOutage", func(t *testing.T) { testKafkaOutage(t, svc) })
	t.Run("StoreOutage", func(t *testing.T) { testStoreOutage(t, svc) })
}

// probeReadyz returns /readyz's status and body (status 0 and the error
// when the request failed).
func probeReadyz(base string) (int, string) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(base + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitReadyz polls /readyz until it answers status and returns how long
// that took and the answer's body.
func waitReadyz(t *testing.T, s *testServer, status int, within time.Duration) (time.Duration, string) {
	t.Helper()
	start := time.Now()
	for {
		got, body := probeReadyz(s.base)
		if got == status {
			return time.Since(start), body
		}
		if time.Since(start) > within {
			t.Fatalf("/readyz did not answer %d within %v; last %d %s", status, within, got, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// awaitAnswer reads c's frames into tl until id is answered, failing after
// within; it returns how long the answer took.
func awaitAnswer(t *testing.T, c *wsClient, tl *tally, id string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	switch err := c.collect(within, tl.add, func() bool { return tl.answered(id) }); {
	case errors.Is(err, errClosed):
		t.Fatalf("connection closed (code %d) while waiting for the answer to %s", c.closeCode, id)
	case err != nil:
		t.Fatalf("send %s: no answer within %v (a hung handler)", id, within)
	}
	return time.Since(start)
}

// drainFrames reads c's frames into tl until none came for quiet.
func drainFrames(c *wsClient, tl *tally, quiet time.Duration) {
	for {
		got := false
		if c.collect(quiet, func(f map[string]any) { tl.add(f); got = true }, func() bool { return got }) != nil {
			return
		}
	}
}

// collectUntil reads c's frames into tl until a message of every id of ids
// arrived or within passed.
func collectUntil(c *wsClient, tl *tally, ids map[string]bool, within time.Duration) {
	_ = c.collect(within, tl.add, func() bool { return missing(tl.msgs, ids) == 0 })
}

// postTimed POSTs one message and returns the status, the error code of a
// non-202 answer and the time it took.
func postTimed(s *testServer, token, room, id string) (int, string, time.Duration, error) {
	start := time.Now()
	req, _ := http.NewRequest("POST", s.base+"/api/rooms/"+room+"/messages", strings.NewReader(jsonBody(map[string]string{"id": id, "text": "post " + id})))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", time.Since(start), err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	d := time.Since(start)
	if resp.StatusCode == 202 {
		return 202, "", d, nil
	}
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(b, &e)
	return resp.StatusCode, e.Error.Code, d, nil
}

// fullHistory reads a room's whole history through s.
func fullHistory(t *testing.T, s *testServer, token, room string) []message {
	t.Helper()
	var all []message
	after := int64(0)
	for {
		p := s.history(token, room, "?limit=200&after="+strconv.FormatInt(after, 10))
		all = append(all, p.Messages...)
		if !p.HasMore || len(p.Messages) == 0 {
			return all
		}
		after = p.Messages[len(p.Messages)-1].Seq
	}
}

// checkStored checks that a room's history holds every id of acked exactly
// once, with seqs 1..n gapless, and otherwise only ids of maybe (sends
// answered with an error, which the bus may still have taken).
func checkStored(t *testing.T, room string, all []message, acked, maybe map[string]bool) {
	t.Helper()
	count := map[string]int{}
	for i, m := range all {
		if m.Seq != int64(i+1) {
			t.Fatalf("history of %s: seqs %v, want 1..%d gapless", room, seqList(all), len(all))
		}
		count[m.ID]++
	}
	for id, n := range count {
		switch {
		case n > 1:
			t.Errorf("history of %s holds %s %d times", room, id, n)
		case !acked[id] && !maybe[id]:
			t.Errorf("history of %s holds %s, which was neither acknowledged nor refused", room, id)
		}
	}
	for id := range acked {
		if count[id] == 0 {
			t.Errorf("history of %s lacks %s, which was acknowledged", room, id)
		}
	}
}

// sameAsStored checks that a client got exactly the stored messages, each
// once, in seq order.
func sameAsStored(t *testing.T, who string, got, stored []message) {
	t.Helper()
	if len(got) != len(stored) {
		t.Errorf("%s got %d messages, the store holds %d: got seqs %v", who, len(got), len(stored), seqList(got))
		return
	}
	for i := range got {
		if got[i].Seq != stored[i].Seq || got[i].ID != stored[i].ID {
			t.Errorf("%s got seqs %v, want %v", who, seqList(got), seqList(stored))
			return
		}
	}
}

// sseCollect reads st's message events into got until a message of every
// id of ids arrived or within passed.
func sseCollect(st *sseStream, got *[]message, ids map[string]bool, within time.Duration) error {
	var bad error
	err := st.collect(within, func(_ sseEvent, m message, err error) {
		if err != nil {
			bad = err
			return
		}
		*got = append(*got, m)
	}, func() bool { return bad != nil || missing(*got, ids) == 0 })
	switch {
	case bad != nil:
		return bad
	case errors.As(err, new(timeout)):
		return fmt.Errorf("%d messages missing after %v", missing(*got, ids), within)
	}
	return err
}

func durations(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = d.Round(time.Millisecond).String()
	}
	return strings.Join(parts, " ")
}

func maxDuration(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return slices.Max(ds)
}

// sendWS sends one message on c and waits for its answer.
func sendWS(t *testing.T, c *wsClient, tl *tally, room, id string, within time.Duration) time.Duration {
	t.Helper()
	c.write(map[string]any{"type": "send", "room": room, "id": id, "text": "ws " + id})
	return awaitAnswer(t, c, tl, id, within)
}

// testKafkaOutage stops the broker under an instance with WebSocket and SSE
// clients joined, then resumes it.
func testKafkaOutage(t *testing.T, svc *faultServices) {
	cfg, suffix := svc.config(t)
	s := startInstance(t, cfg, "faults-kafka-"+suffix)
	// A second instance, shut down during the outage: its shutdown must keep
	// to its deadline with the broker gone.
	other := startInstance(t, cfg, "faults-kafka-other-"+suffix)
	token := s.login("alice")
	room := "kafka-outage-" + suffix
	sender, watcher := s.dial(token), s.dial(token)
	sender.join(room)
	watcher.join(room)
	st := s.sse(token, room, "", nil)
	sent, wt := newTally(), newTally()
	acked, failed := map[string]bool{}, map[string]bool{}

	// Before: WebSocket and POST sends are acknowledged and delivered.
	for i := range 5 {
		id := fmt.Sprintf("before-ws-%d", i)
		sendWS(t, sender, sent, room, id, 10*time.Second)
		if sent.acks[id] != 1 {
			t.Fatalf("send %s before the outage: %v", id, sent.errs[id])
		}
		acked[id] = true
	}
	for i := range 3 {
		id := fmt.Sprintf("before-post-%d", i)
		if status, code, _, err := postTimed(s, token, room, id); err != nil || status != 202 {
			t.Fatalf("POST %s before the outage: %d %s %v", id, status, code, err)
		}
		acked[id] = true
	}
	collectUntil(watcher, wt, acked, 10*time.Second)
	if len(wt.msgs) != len(acked) {
		t.Fatalf("before the outage the watcher got %d of %d messages", len(wt.msgs), len(acked))
	}
	otherClient := other.dial(token)
	otherClient.join(room)

	// The broker goes away.
	svc.must(t, "kafka", "stop")
	down := time.Now()
	took, body := waitReadyz(t, s, 503, 5*time.Second)
	if !strings.Contains(body, `"reason"`) || !strings.Contains(body, "bus") {
		t.Errorf("/readyz during the Kafka outage: %s, want a reason naming the bus", body)
	}
	t.Logf("Kafka stopped: /readyz 503 after %v: %s", took.Round(time.Millisecond), body)

	var wsTimes, postTimes []time.Duration
	for i := range 6 {
		id := fmt.Sprintf("down-ws-%d", i)
		wsTimes = append(wsTimes, sendWS(t, sender, sent, room, id, 30*time.Second))
		switch {
		case sent.acks[id] > 0:
			t.Errorf("send %s acknowledged with the broker stopped", id)
		case !slices.Equal(sent.errs[id], []string{"unavailable"}):
			t.Errorf("send %s during the outage answered %v, want unavailable", id, sent.errs[id])
		}
		failed[id] = true
		id = fmt.Sprintf("down-post-%d", i)
		status, code, d, err := postTimed(s, token, room, id)
		if err != nil {
			t.Fatalf("POST %s during the outage: %v", id, err)
		}
		postTimes = append(postTimes, d)
		if status != 503 || code != "unavailable" {
			t.Errorf("POST %s during the outage: %d %s, want 503 unavailable", id, status, code)
		}
		failed[id] = true
	}
	t.Logf("Kafka stopped: WebSocket send -> unavailable in %s", durations(wsTimes))
	t.Logf("Kafka stopped: POST -> 503 unavailable in %s", durations(postTimes))
	if m := max(maxDuration(wsTimes), maxDuration(postTimes)); m > unavailableBound {
		t.Errorf("a send waited %v for unavailable, over the documented bound %v", m, unavailableBound)
	}
	// Only the first send of the outage waits out a publish.
	later := append(slices.Clone(wsTimes[1:]), postTimes...)
	if m := maxDuration(later); m > knownDownBound {
		t.Errorf("a send with the bus known down waited %v for unavailable, over the documented bound %v", m, knownDownBound)
	}

	// The other instance is shut down meanwhile: its client gets 1012, and
	// the shutdown keeps to its deadline although nothing can be committed.
	stopStart := time.Now()
	other.stop()
	select {
	case err := <-other.done:
		if err != nil {
			t.Errorf("the other instance stopped with %v", err)
		}
	case <-time.After(cfg.ShutdownTimeout + 5*time.Second):
		t.Fatalf("the other instance's shutdown took over %v with the broker down", cfg.ShutdownTimeout+5*time.Second)
	}
	other.stop = nil // done
	otherTook := time.Since(stopStart)
	if code := otherClient.waitClose(time.Second); code != 1012 {
		t.Errorf("the other instance's client got close %d, want 1012", code)
	}
	t.Logf("Kafka stopped: the other instance shut down in %v (deadline %v)", otherTook.Round(time.Millisecond), cfg.ShutdownTimeout)
	if code, body := probeReadyz(s.base); code != 503 {
		t.Errorf("/readyz after %v of outage: %d %s, want 503", time.Since(down).Round(time.Millisecond), code, body)
	}

	// The broker comes back on its data; the instance recovers by itself.
	svc.must(t, "kafka", "resume")
	back := time.Now()
	took, _ = waitReadyz(t, s, 200, 60*time.Second)
	t.Logf("Kafka resumed (outage %v): /readyz 200 %v after resume returned", back.Sub(down).Round(time.Millisecond), took.Round(time.Millisecond))

	// Once ready, sends are acknowledged at once: no retry needed.
	var afterTimes []time.Duration
	for i := range 5 {
		id := fmt.Sprintf("after-ws-%d", i)
		afterTimes = append(afterTimes, sendWS(t, sender, sent, room, id, 10*time.Second))
		if sent.acks[id] != 1 {
			t.Errorf("send %s after recovery (/readyz 200): %v, want ack", id, sent.errs[id])
		}
		acked[id] = true
	}
	for i := range 3 {
		id := fmt.Sprintf("after-post-%d", i)
		if status, code, _, err := postTimed(s, token, room, id); err != nil || status != 202 {
			t.Errorf("POST %s after recovery: %d %s %v", id, status, code, err)
		}
		acked[id] = true
	}
	// A client retrying a send that failed, under its id, is acknowledged.
	retry := "down-ws-0"
	delete(sent.errs, retry)
	sendWS(t, sender, sent, room, retry, 10*time.Second)
	if sent.acks[retry] != 1 {
		t.Errorf("retry of %s after recovery: %v", retry, sent.errs[retry])
	}
	acked[retry] = true
	delete(failed, retry)
	t.Logf("after recovery: WebSocket send -> ack in %s", durations(afterTimes))

	// The fan-out consumer is back: the joined clients get every message
	// acknowledged, each once and in order (and a send of the outage
	// answered unavailable only if the writer still delivered it late).
	collectUntil(watcher, wt, acked, 20*time.Second)
	var sseGot []message
	if err := sseCollect(st, &sseGot, acked, 20*time.Second); err != nil {
		t.Errorf("SSE client: %v", err)
	}
	stored := fullHistory(t, s, token, room)
	checkStored(t, room, stored, acked, failed)
	sameAsStored(t, "WebSocket watcher", wt.msgs, stored)
	sameAsStored(t, "SSE client", sseGot, stored)
	late := 0
	for _, m := range stored {
		if failed[m.ID] {
			late++
		}
	}
	t.Logf("stored %d messages once each, seqs 1..%d gapless; %d sends answered unavailable were stored anyway",
		len(stored), len(stored), late)
}

// persistOffsets returns, summed over the send topic's partitions, the
// persist group's committed offsets and the topic's end offsets: the
// records the persist stage is done with, and all records.
func persistOffsets(t *testing.T, cfg Config) (committed, end int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := &kafkago.Client{Addr: kafkago.TCP(cfg.KafkaBrokers...), Timeout: 5 * time.Second}
	parts := make([]int, cfg.KafkaPartitions)
	reqs := make([]kafkago.OffsetRequest, cfg.KafkaPartitions)
	for p := range parts {
		parts[p] = p
		reqs[p] = kafkago.LastOffsetOf(p)
	}
	of, err := client.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: chat.GroupPersist, Topics: map[string][]int{cfg.TopicSend: parts}})
	if err != nil || of.Error != nil {
		t.Fatalf("offset fetch: %v %v", err, of)
	}
	for _, p := range of.Topics[cfg.TopicSend] {
		if p.Error != nil {
			t.Fatalf("offset fetch of partition %d: %v", p.Partition, p.Error)
		}
		if p.CommittedOffset > 0 {
			committed += p.CommittedOffset
		}
	}
	lo, err := client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{cfg.TopicSend: reqs}})
	if err != nil {
		t.Fatalf("list offsets: %v", err)
	}
	for _, p := range lo.Topics[cfg.TopicSend] {
		if p.Error != nil {
			t.Fatalf("list offsets of partition %d: %v", p.Partition, p.Error)
		}
		end += p.LastOffset
	}
	return committed, end
}

// testStoreOutage stops the store for about ten seconds while sends go on,
// then resumes it.
func testStoreOutage(t *testing.T, svc *faultServices) {
	cfg, suffix := svc.config(t)
	s := startInstance(t, cfg, "faults-store-"+suffix)
	// A second instance shares the persist group and is shut down during the
	// outage, with records of its partitions fetched and not storable.
	other := startInstance(t, cfg, "faults-store-other-"+suffix)
	s.waitReady()
	// One room per partition of the send topic (placed as the producer
	// places them), so that the other instance owns some of them.
	spread := map[int]string{}
	parts := make([]int, cfg.KafkaPartitions)
	for p := range parts {
		parts[p] = p
	}
	for i := 0; len(spread) < cfg.KafkaPartitions; i++ {
		room := fmt.Sprintf("spread%d-%s", i, suffix)
		if p := (&kafkago.Hash{}).Balance(kafkago.Message{Key: []byte(room)}, parts...); spread[p] == "" {
			spread[p] = room
		}
	}
	token := s.login("alice")
	room := "store-outage-" + suffix
	sender, watcher := s.dial(token), s.dial(token)
	sender.join(room)
	watcher.join(room)
	st := s.sse(token, room, "", nil)
	sent, wt := newTally(), newTally()
	acked := map[string]bool{}

	for i := range 5 {
		id := fmt.Sprintf("before-%d", i)
		sendWS(t, sender, sent, room, id, 10*time.Second)
		if sent.acks[id] != 1 {
			t.Fatalf("send %s before the outage: %v", id, sent.errs[id])
		}
		acked[id] = true
	}
	collectUntil(watcher, wt, acked, 10*time.Second)
	if len(wt.msgs) != len(acked) {
		t.Fatalf("before the outage the watcher got %d of %d messages", len(wt.msgs), len(acked))
	}
	// The persist stage commits after storing: wait until it is done with
	// everything so far.
	var committed0, end0 int64
	for deadline := time.Now().Add(10 * time.Second); ; {
		if committed0, end0 = persistOffsets(t, cfg); committed0 == end0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if committed0 != end0 {
		t.Fatalf("before the outage the persist group committed %d of %d records", committed0, end0)
	}

	svc.must(t, "ferretdb", "stop")
	down := time.Now()
	took, body := waitReadyz(t, s, 503, 5*time.Second)
	if !strings.Contains(body, `"reason"`) || !strings.Contains(body, "store") {
		t.Errorf("/readyz during the store outage: %s, want a reason naming the store", body)
	}
	t.Logf("store stopped: /readyz 503 after %v: %s", took.Round(time.Millisecond), body)
	hstart := time.Now()
	if status, body := s.do("GET", "/api/rooms/"+room+"/messages", token, ""); status != 503 {
		t.Errorf("history with the store down: %d %s, want 503", status, body)
	}
	t.Logf("store stopped: history -> 503 in %v", time.Since(hstart).Round(time.Millisecond))

	// Sends go on for about ten seconds: the bus holds them, so they are
	// acknowledged, but nothing can be stored, so nothing is delivered.
	var ackTimes []time.Duration
	outage := map[string]bool{}
	// A message in every partition, then the other instance shuts down:
	// its persist stage holds what it fetched of them, cannot store it, and
	// must neither commit it nor overrun its shutdown deadline.
	spreadAcked := map[string]map[string]bool{}
	for _, room := range spread {
		id := "spread-" + room
		if status, code, _, err := postTimed(s, token, room, id); err != nil || status != 202 {
			t.Fatalf("POST %s with the store down: %d %s %v", id, status, code, err)
		}
		spreadAcked[room] = map[string]bool{id: true}
	}
	type stopped struct {
		took time.Duration
		err  error
	}
	otherDone := make(chan stopped, 1)
	go func() {
		start := time.Now()
		other.stop()
		err := <-other.done
		otherDone <- stopped{time.Since(start), err}
	}()
	sending := time.Now()
	for i := 0; time.Since(sending) < 10*time.Second; i++ {
		id := fmt.Sprintf("down-ws-%d", i)
		ackTimes = append(ackTimes, sendWS(t, sender, sent, room, id, 10*time.Second))
		if sent.acks[id] != 1 {
			t.Errorf("send %s with the store down: %v, want ack (the bus is up)", id, sent.errs[id])
		}
		acked[id], outage[id] = true, true
		id = fmt.Sprintf("down-post-%d", i)
		status, code, d, err := postTimed(s, token, room, id)
		if err != nil || status != 202 {
			t.Errorf("POST %s with the store down: %d %s %v, want 202", id, status, code, err)
		}
		ackTimes = append(ackTimes, d)
		acked[id], outage[id] = true, true
		time.Sleep(400 * time.Millisecond)
	}
	t.Logf("store stopped: %d sends acknowledged, slowest %v", len(outage), maxDuration(ackTimes).Round(time.Millisecond))
	select {
	case r := <-otherDone:
		other.stop = nil // stopped
		d := r.took
		if r.err != nil {
			t.Errorf("the other instance stopped with %v", r.err)
		}
		t.Logf("store stopped: the other instance shut down in %v (deadline %v)", d.Round(time.Millisecond), cfg.ShutdownTimeout)
		if d > cfg.ShutdownTimeout+3*time.Second {
			t.Errorf("the other instance's shutdown took %v, deadline %v", d, cfg.ShutdownTimeout)
		}
	case <-time.After(cfg.ShutdownTimeout + 5*time.Second):
		t.Fatalf("the other instance did not stop within %v of its shutdown with the store down", cfg.ShutdownTimeout+5*time.Second)
	}
	drainFrames(watcher, wt, 200*time.Millisecond)
	for _, m := range wt.msgs {
		if outage[m.ID] {
			t.Errorf("message %s (seq %d) delivered while the store was down", m.ID, m.Seq)
		}
	}
	if code, body := probeReadyz(s.base); code != 503 {
		t.Errorf("/readyz after %v of store outage: %d %s, want 503", time.Since(down).Round(time.Millisecond), code, body)
	}
	committed, end := persistOffsets(t, cfg)
	t.Logf("store stopped: persist group committed %d of %d records (before the outage %d of %d)", committed, end, committed0, end0)
	if committed != committed0 {
		t.Errorf("the persist group committed %d records while the store was down", committed-committed0)
	}
	if end-end0 < int64(len(outage)+len(spread)) {
		t.Errorf("the send topic grew by %d records during the outage, want at least %d (one per acknowledged send)", end-end0, len(outage))
	}

	svc.must(t, "ferretdb", "resume")
	back := time.Now()
	took, _ = waitReadyz(t, s, 200, 60*time.Second)
	t.Logf("store resumed (outage %v): /readyz 200 %v after resume returned", back.Sub(down).Round(time.Millisecond), took.Round(time.Millisecond))
	collectUntil(watcher, wt, acked, 60*time.Second)
	t.Logf("store resumed: the watcher had every message %v after resume returned", time.Since(back).Round(time.Millisecond))
	var sseGot []message
	if err := sseCollect(st, &sseGot, acked, 20*time.Second); err != nil {
		t.Errorf("SSE client: %v", err)
	}
	// And the persist stage committed everything once it was stored.
	for deadline := time.Now().Add(20 * time.Second); ; {
		if committed, end = persistOffsets(t, cfg); committed == end || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if committed != end {
		t.Errorf("after recovery the persist group committed %d of %d records", committed, end)
	}
	stored := fullHistory(t, s, token, room)
	checkStored(t, room, stored, acked, nil)
	sameAsStored(t, "WebSocket watcher", wt.msgs, stored)
	sameAsStored(t, "SSE client", sseGot, stored)
	t.Logf("stored %d messages once each, seqs 1..%d gapless, delivered to both clients in order", len(stored), len(stored))
	// Including those the other instance held when it shut down: the group
	// gave its partitions to this instance, from the last commit.
	for _, r := range spread {
		checkStored(t, r, fullHistory(t, s, token, r), spreadAcked[r], nil)
	}
}
