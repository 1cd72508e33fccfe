package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHistQuantiles(t *testing.T) {
	h := &hist{}
	var vals []int64
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		us := r.Int64N(200000) // 0-200 ms
		vals = append(vals, us)
		h.record(time.Duration(us) * time.Microsecond)
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.95, 0.99} {
		exact := vals[int(q*float64(len(vals)))-1]
		got := h.quantile(q)
		if got < exact || float64(got) > float64(exact)*1.035+1 {
			t.Errorf("q%.2f = %d µs, exact %d µs: outside the bucket error", q, got, exact)
		}
	}
	if h.quantile(1) != vals[len(vals)-1] || h.max != vals[len(vals)-1] {
		t.Errorf("max %d / q1 %d, want %d", h.max, h.quantile(1), vals[len(vals)-1])
	}
	// Small values are exact; merging adds counts.
	a, b := &hist{}, &hist{}
	for i := 1; i <= 50; i++ {
		a.record(time.Duration(i) * time.Microsecond)
		b.record(time.Duration(i+50) * time.Microsecond)
	}
	a.merge(b)
	if a.n != 100 || a.quantile(0.5) != 50 || a.quantile(0.99) != 99 || a.max != 100 {
		t.Errorf("merged: n %d p50 %d p99 %d max %d", a.n, a.quantile(0.5), a.quantile(0.99), a.max)
	}
	if (&hist{}).quantile(0.5) != 0 {
		t.Error("empty histogram")
	}
}

func TestBucketsContiguous(t *testing.T) {
	prev := -1
	for v := int64(0); v < 1<<22; v += 1 + v/1000 {
		b := bucketOf(v)
		if b < prev || b >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d after %d", v, b, prev)
		}
		if bucketHigh(b) < v || (b > 0 && bucketHigh(b-1) >= v) {
			t.Fatalf("value %d not within bucket %d (high %d, prev high %d)", v, b, bucketHigh(b), bucketHigh(b-1))
		}
		prev = b
	}
}

func TestSeqSetLossAndDup(t *testing.T) {
	var s seqSet
	for _, q := range []int64{1, 2, 3, 3, 5, 200, 200, 200} {
		s.add(q)
	}
	if s.distinct != 5 || s.dups != 3 || s.maxSeq != 200 {
		t.Fatalf("distinct %d dups %d max %d", s.distinct, s.dups, s.maxSeq)
	}
	if got := s.lost(200); got != 195 {
		t.Errorf("lost(200) = %d, want 195", got)
	}
	if got := s.lost(3); got != 0 {
		t.Errorf("lost(3) = %d, want 0", got)
	}
}

func TestParseStamp(t *testing.T) {
	if n, ok := parseStamp("t=1234567890123"); !ok || n != 1234567890123 {
		t.Errorf("got %d %v", n, ok)
	}
	if _, ok := parseStamp("hello"); ok {
		t.Error("no stamp accepted")
	}
}

func TestScenarioDefaultsAndOverrides(t *testing.T) {
	c, err := parseFlags([]string{"--scenario=fanout", "--rate=100"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Conns != 1000 || c.Rooms != 1 || c.Senders != 10 || c.Rate != 100 || c.Mode != "embedded" || c.Duration != 10*time.Second {
		t.Errorf("fanout defaults: %+v", c)
	}
	c, err = parseFlags([]string{"--scenario=rooms", "--conns=2000", "--rooms=200", "--rate=500", "--duration=3s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Conns != 2000 || c.Rooms != 200 || c.Senders != 200 || c.Rate != 500 || c.Duration != 3*time.Second {
		t.Errorf("rooms override: %+v", c)
	}
	c, err = parseFlags([]string{"--scenario=rooms", "--senders=5"}, io.Discard)
	if err != nil || c.Senders != 5 || c.Conns != 10000 {
		t.Errorf("explicit senders: %+v %v", c, err)
	}
	c, err = parseFlags([]string{"--scenario=idle", "--target=http://127.0.0.2:8080,http://localhost:9"}, io.Discard)
	if err != nil || c.Mode != "target" || len(c.Targets) != 2 || c.Rate != 0 || c.Senders != 0 {
		t.Errorf("idle target: %+v %v", c, err)
	}
	c, err = parseFlags([]string{"--mode=kafka", "--instances=3", "--transport=sse"}, io.Discard)
	if err != nil || c.Mode != "kafka" || c.Instances != 3 || c.KafkaPort != 19392 || c.KafkaControllerPort != 19393 || c.MongoPort != 27318 {
		t.Errorf("kafka mode: %+v %v", c, err)
	}
	for _, bad := range [][]string{
		{"--scenario=nope"},
		{"--mode=kafka", "--target=http://127.0.0.1:8080"},
		{"--mode=kafka", "--instances=0"},
		{"--instances=2"}, // embedded: one instance only
		{"--transport=quic"},
		{"--target=http://10.0.0.1:8080"},
		{"--mode=target"},
		{"--rooms=0"},
		{"--senders=0", "--rate=10"},
		{"--react-percent=101"},
		{"--react-percent=20", "--transport=sse"},
		{"--mention-percent=-1"},
		{"--scenario=ingest", "--mention-percent=10", "--senders=10"}, // one sender per room: none to mention
		{"--scenario=roomlist", "--list-unread=1001"},
	} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestRoomFlags(t *testing.T) {
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Skip("taskset not installed")
	}
	c, err := parseFlags([]string{"--scenario=fanout", "--rate=300", "--private", "--server-cpus=0", "--gen-cpus=1"}, io.Discard)
	if err != nil || !c.Private || c.ServerCPUs != "0" || c.GenCPUs != "1" || c.Conns != 1000 || c.Setup != 8 {
		t.Errorf("private, pinned: %+v %v", c, err)
	}
	c, err = parseFlags([]string{"--scenario=roomlist"}, io.Discard)
	if err != nil || c.Rooms != 1000 || c.Conns != 0 || c.Senders != 0 || c.Rate != 0 ||
		!slices.Equal(c.ListLimits, []int{100, 200}) || !slices.Equal(c.ListCallers, []int{1, 4}) || c.ListCalls != 2000 || c.Private {
		t.Errorf("roomlist defaults: %+v %v", c, err)
	}
	c, err = parseFlags([]string{"--scenario=roomlist", "--rooms=50", "--list-limits=200", "--list-callers=1, 8", "--list-calls=10", "--private"}, io.Discard)
	if err != nil || c.Rooms != 50 || !slices.Equal(c.ListLimits, []int{200}) || !slices.Equal(c.ListCallers, []int{1, 8}) || c.ListCalls != 10 || !c.Private {
		t.Errorf("roomlist flags: %+v %v", c, err)
	}
	for _, bad := range [][]string{
		{"--scenario=roomlist", "--conns=10"},
		{"--scenario=roomlist", "--rate=10", "--senders=1"},
		{"--scenario=roomlist", "--list-limits=0"},
		{"--scenario=roomlist", "--list-limits=201"},
		{"--scenario=roomlist", "--list-limits=,"},
		{"--scenario=roomlist", "--list-callers=65"},
		{"--scenario=roomlist", "--list-calls=0"},
		{"--scenario=roomlist", "--rooms=100001"},
		{"--server-cpus=x"},
		{"--gen-cpus=1-0"},
		{"--gen-cpus=4096"},
		{"--server-cpus=4000"}, // not online on any machine this runs on
		{"--server-cpus=0", "--target=http://127.0.0.1:8080"},
	} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	// The generator may be pinned while it uses a running server.
	if c, err := parseFlags([]string{"--gen-cpus=0", "--target=http://127.0.0.1:8080"}, io.Discard); err != nil || c.GenCPUs != "0" {
		t.Errorf("gen-cpus with target: %+v %v", c, err)
	}
}

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string][]int{"0": {0}, "0-3": {0, 1, 2, 3}, "0,2,5-6": {0, 2, 5, 6}, "7-7": {7}} {
		if got, err := parseCPUList(in); err != nil || !slices.Equal(got, want) {
			t.Errorf("parseCPUList(%q) = %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "a", "1-", "-1", "3-1", "0,,1", "1 2", "0-5000"} {
		if got, err := parseCPUList(bad); err == nil {
			t.Errorf("parseCPUList(%q) = %v, want an error", bad, got)
		}
	}
}

func TestSourceIP(t *testing.T) {
	if sourceIP(0, 28000) != nil || sourceIP(27999, 28000) != nil {
		t.Error("first address range should use the kernel's choice")
	}
	if ip := sourceIP(28000, 28000); ip.String() != "127.0.0.3" {
		t.Errorf("second range: %v", ip)
	}
}

// TestEmbeddedRun builds and starts the real server and runs a tiny load.
func TestEmbeddedRun(t *testing.T) {
	embeddedRun(t, "ws")
}

// TestEmbeddedRunSSE is TestEmbeddedRun with SSE receivers and POST senders.
func TestEmbeddedRunSSE(t *testing.T) {
	embeddedRun(t, "sse")
}

// TestKafkaRun starts the generator's own cluster (Kafka on 19392, FerretDB
// on 27318, two instances) and runs a tiny load over SSE and POST spread
// over both. It needs the JDK and the FerretDB build the services use, and
// starts a second broker, so it runs only with PARLEY_TEST_LOADGEN_KAFKA=1.
func TestKafkaRun(t *testing.T) {
	if os.Getenv("PARLEY_TEST_LOADGEN_KAFKA") != "1" {
		t.Skip("PARLEY_TEST_LOADGEN_KAFKA=1 runs it (starts Kafka and FerretDB on the generator's ports)")
	}
	// The server side pinned to CPU 0: the instances, and Kafka and
	// FerretDB moved there once they run, each counted in its CPU.
	res := loadRun(t, "--mode=kafka", "--instances=2", "--transport=sse", "--server-cpus=0")
	if res.Instances != 2 || res.Mode != "kafka" {
		t.Errorf("instances %d mode %s", res.Instances, res.Mode)
	}
	if res.ServerCPUs != "0" || res.ServicesCPUPct <= 0 || res.ServicesCPUPct >= res.ServerCPUPct {
		t.Errorf("server side on CPUs %q, %.1f %% of a core, Kafka and FerretDB %.1f %% of it", res.ServerCPUs, res.ServerCPUPct, res.ServicesCPUPct)
	}
}

// TestEmbeddedRunPrivate is TestEmbeddedRun in private rooms, every
// receiver and sender added as a member first; the server is pinned to CPU
// 0, which the result must report as the server's.
func TestEmbeddedRunPrivate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server")
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Skip("taskset not installed")
	}
	for _, transport := range []string{"ws", "sse"} {
		t.Run(transport, func(t *testing.T) {
			res := loadRun(t, "--private", "--transport="+transport, "--server-cpus=0")
			if !res.Private || res.SetupS <= 0 {
				t.Errorf("private %v setup %.2fs", res.Private, res.SetupS)
			}
			if res.ServerCPUs != "0" || res.GenCPUs == "" {
				t.Errorf("cpus: server %q generator %q, want server 0", res.ServerCPUs, res.GenCPUs)
			}
		})
	}
}

// TestRoomListRun builds and starts the real server, makes one user the
// owner of 30 rooms and times a few small phases of GET /api/rooms.
func TestRoomListRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server")
	}
	cfg, err := parseFlags([]string{"--scenario=roomlist", "--rooms=30", "--list-limits=10,200", "--list-callers=1,3", "--list-calls=40", "--private", "--quiet"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var log io.Writer = io.Discard
	if testing.Verbose() {
		log = os.Stderr
	}
	res, err := run(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if testing.Verbose() {
		printResult(os.Stderr, res)
	}
	if len(res.List) != 4 || res.Errors != 0 || res.SetupS <= 0 || !res.Private {
		t.Fatalf("result: %+v", res)
	}
	i := 0
	for _, limit := range []int{10, 200} {
		for _, callers := range []int{1, 3} {
			ph := res.List[i]
			i++
			if ph.Limit != limit || ph.Callers != callers || ph.Calls != 40 || ph.Errors != 0 || ph.P50ms <= 0 || ph.P99ms < ph.P50ms || ph.MaxMs < ph.P99ms {
				t.Errorf("phase %d: %+v", i, ph)
			}
		}
	}
	if res.P99ms != res.List[0].P99ms || res.ServerRSSKiB <= 0 {
		t.Errorf("top-level figures %+v", res)
	}
	// The CPU window is the timed phases'; no messages, so no cost per one.
	if res.CPUWindowS <= 0 || res.ServerCPUPct <= 0 || res.GenCPUPct <= 0 || res.OtherCPUPct < 0 || res.ServerCPUUsPerMsg != 0 {
		t.Errorf("cpu: window %.2fs server %.1f %% generator %.1f %% other %.1f %%, %.1f µs/msg",
			res.CPUWindowS, res.ServerCPUPct, res.GenCPUPct, res.OtherCPUPct, res.ServerCPUUsPerMsg)
	}
}

func embeddedRun(t *testing.T, transport string) {
	if testing.Short() {
		t.Skip("builds and runs the server")
	}
	res := loadRun(t, "--transport="+transport)
	if res.Transport != transport {
		t.Errorf("transport %s", res.Transport)
	}
	// WebSocket sends are timed to their acks; POSTs are not.
	timed := res.AckP50ms > 0 && res.AckP50ms <= res.AckP99ms && res.AckP99ms <= res.AckMaxMs && res.AckMaxMs < 5000
	if (transport == "ws") != timed {
		t.Errorf("send to ack: p50 %.2f p99 %.2f max %.2f ms", res.AckP50ms, res.AckP99ms, res.AckMaxMs)
	}
}

// loadRun runs 20 receivers in 2 rooms and 2 senders at 20 msg/s for 2 s
// and checks that every acked message reached every receiver of its room
// once, and that the servers' figures agree.
func loadRun(t *testing.T, flags ...string) *Result {
	t.Helper()
	cfg, err := parseFlags(append([]string{"--scenario=rooms", "--conns=20", "--rooms=2", "--rate=20", "--duration=2s", "--quiet"},
		flags...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var log io.Writer = io.Discard
	if testing.Verbose() {
		log = os.Stderr
	}
	res, err := run(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if testing.Verbose() {
		printResult(os.Stderr, res)
	}
	if res.Sent == 0 || res.Acked != res.Sent || res.Delivered == 0 || res.Lost != 0 || res.Duplicated != 0 || res.DialFailed != 0 {
		t.Errorf("result: %+v", res)
	}
	if res.Delivered != res.Expected || res.Expected != res.Acked*10 {
		t.Errorf("delivered %d, expected %d, acked %d", res.Delivered, res.Expected, res.Acked)
	}
	if res.ServerRSSKiB <= 0 || res.P50ms <= 0 || res.Errors != 0 {
		t.Errorf("rss %d p50 %.3f errors %d", res.ServerRSSKiB, res.P50ms, res.Errors)
	}
	if res.ServerMaxFDs <= 0 || res.ServerOpenFDs < 22 {
		t.Errorf("server descriptors: %d open of %d, want at least the 22 connections", res.ServerOpenFDs, res.ServerMaxFDs)
	}
	if res.Persisted != res.Acked || res.PersistLag != 0 || res.FanoutLag != 0 {
		t.Errorf("servers: persisted %d of %d acked, lag at end persist %d fan-out %d", res.Persisted, res.Acked, res.PersistLag, res.FanoutLag)
	}
	// GC's share is known (the servers export the runtime's estimate: -1
	// when not). Nothing more is checked: a run this small can end its
	// window before a collection (0), and the estimate counts GC workers by
	// the wall time of their Ps, idle-priority marking included, so on a
	// busy machine (CI under -race) it can pass the process's own CPU (CI
	// saw 111 %).
	if res.GCPctOfServer < 0 || res.GCCPUPct < 0 {
		t.Errorf("gc: %.2f %% of the servers' CPU, %.2f %% of a core", res.GCPctOfServer, res.GCCPUPct)
	}
	// The CPU window is the sending and the drain (2 s + at most 3 s).
	if res.CPUWindowS < 2 || res.CPUWindowS > 6 || res.ServerCPUPct <= 0 || res.GenCPUPct <= 0 || res.OtherCPUPct < 0 ||
		res.Clean != (res.OtherCPUPct <= cleanLimitPct) || res.Clean != (res.Unclean == "") || res.ServerCPUUsPerMsg <= 0 {
		t.Errorf("cpu: window %.2fs server %.1f %% generator %.1f %% other %.1f %% clean %v %q, %.1f µs/msg",
			res.CPUWindowS, res.ServerCPUPct, res.GenCPUPct, res.OtherCPUPct, res.Clean, res.Unclean, res.ServerCPUUsPerMsg)
	}
	return res
}

func TestScanMessage(t *testing.T) {
	for _, tc := range []struct {
		in            string
		seq, sentAt   int64
		stamped, okay bool
	}{
		{`{"type":"message","room":"lg-x-0","seq":42,"id":"s1-3","user":"lgx_1","text":"t=1700000000123456789","ts":"2026-12-02T03:00:00.000Z"}`, 42, 1700000000123456789, true, true},
		{`{"room":"general","seq":7,"id":"c1","user":"alice","text":"t=99 later","ts":"x"}`, 7, 99, true, true},
		{`{"room":"general","seq":7,"id":"c1","user":"alice","text":"hello","ts":"x"}`, 7, 0, false, true},
		{`{"room":"general","seq":7,"id":"c1","user":"alice","text":"t=12x","ts":"x"}`, 7, 0, false, true},
		{`{"room":"general","id":"c1","text":"t=1"}`, 0, 0, false, false},
		{`{"room":"general","seq":0,"id":"c1","text":"t=1"}`, 0, 0, false, false},
		{`{"seq":3}`, 0, 0, false, false},
		{`{"room":"r","seq":99999999999999999999,"id":"c1","text":"t=1"}`, 0, 0, false, false},
	} {
		seq, sentAt, stamped, ok := scanMessage([]byte(tc.in))
		if seq != tc.seq || sentAt != tc.sentAt || stamped != tc.stamped || ok != tc.okay {
			t.Errorf("scanMessage(%s) = %d %d %v %v, want %d %d %v %v", tc.in, seq, sentAt, stamped, ok, tc.seq, tc.sentAt, tc.stamped, tc.okay)
		}
	}
}

// TestSSEReadLoop feeds a stream as the server writes it, with the parts of
// the format a server may add: comments, CRLF, unknown fields, a long line.
func TestSSEReadLoop(t *testing.T) {
	r := &runner{cfg: Config{Rooms: 1}, roomAck: make([]atomic.Int64, 1), roomBase: make([]int64, 1)}
	cl := &client{recv: true, done: make(chan struct{})}
	sent := time.Now().Add(-5 * time.Millisecond).UnixNano()
	msg := func(seq int64, text string) string {
		return fmt.Sprintf(`{"room":"r","seq":%d,"id":"i%d","user":"u","text":%q,"ts":"x"}`, seq, seq, text)
	}
	stream := "retry: 2000\n\n" +
		"id: 1\nevent: message\ndata: " + msg(1, fmt.Sprint("t=", sent)) + "\n\n" +
		": ping\n\n" +
		"id: 2\r\nevent: message\r\nx-unknown: 1\r\ndata: " + msg(2, fmt.Sprint("t=", sent)) + "\r\n\r\n" +
		"id: 3\ndata: " + msg(3, "t="+fmt.Sprint(sent)+" "+strings.Repeat("y", 5000)) + "\n\n" +
		"id: 3\nevent: message\ndata: " + msg(3, "again") + "\n\n" +
		"id: 9\nevent: message\ndata: " + msg(4, "wrong id") + "\n\n" +
		"event: other\ndata: {}\n\n"
	r.sseReadLoop(cl, strings.NewReader(stream))
	if cl.seqs.distinct != 4 || cl.seqs.dups != 1 || cl.seqs.maxSeq != 4 {
		t.Errorf("seqs: distinct %d dups %d max %d, want 4 1 4", cl.seqs.distinct, cl.seqs.dups, cl.seqs.maxSeq)
	}
	if got := r.c.delivered.Load(); got != 5 {
		t.Errorf("delivered %d, want 5", got)
	}
	if got := r.c.errors.Load(); got != 1 {
		t.Errorf("errors %d, want 1 (the event whose id is not its seq)", got)
	}
	if cl.h == nil || cl.h.n != 3 || cl.h.quantile(0.5) < 5000 {
		t.Error("latency not recorded for the 3 stamped messages")
	}
}

// TestDialAllFails: a target that refuses connections fails the sign-in and
// the dial phase with the first error, whatever the mix of errors.
func TestDialAllFails(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Addr().String()
	l.Close() // nothing listens there now
	for _, transport := range []string{"ws", "sse"} {
		cfg := Config{Conns: 6, Senders: 2, Rooms: 2, Dial: 3, Transport: transport}
		r := &runner{cfg: cfg, log: io.Discard, runID: "t", roomAck: make([]atomic.Int64, 2), http: &http.Client{Timeout: 5 * time.Second}}
		r.clients = make([]*client, 8)
		err := r.signInAll(context.Background(), []string{base}, 8)
		if err == nil || !strings.Contains(err.Error(), "no connection could be made") || !strings.Contains(err.Error(), "refused") {
			t.Errorf("%s: signInAll = %v", transport, err)
		}
		for i := range r.tokens {
			r.tokens[i] = "t" // as if signed in elsewhere: the dial itself fails
		}
		err = r.dialAll(context.Background(), []string{base}, 8)
		if err == nil || !strings.Contains(err.Error(), "no connection could be made") || !strings.Contains(err.Error(), "refused") {
			t.Errorf("%s: dialAll = %v", transport, err)
		}
	}
}

func TestAckTook(t *testing.T) {
	cl := &client{sentAt: make([]atomic.Int64, ackRing), ackH: &hist{}}
	t0 := time.Now()
	cl.sentAt[7].Store(t0.UnixNano())
	cl.sentAt[3].Store(t0.Add(time.Second).UnixNano())
	cl.ackTook("s12-7", t0.Add(3*time.Millisecond))
	cl.ackTook("s12-"+strconv.Itoa(ackRing+3), t0.Add(time.Second+5*time.Millisecond)) // the ring wrapped
	for _, bad := range []string{"", "s12", "s12-x", "s12--1", "s12-9"} {              // 9: never sent
		cl.ackTook(bad, t0.Add(time.Hour))
	}
	// The lower quantile is its bucket's upper bound (within 1 %).
	if low := cl.ackH.quantile(0); cl.ackH.n != 2 || low < 3000 || low > 3030 || cl.ackH.max != 5000 {
		t.Errorf("timed %d acks, min %d µs, max %d µs; want 2, 3000, 5000", cl.ackH.n, low, cl.ackH.max)
	}
}

func TestGCShare(t *testing.T) {
	from := serverFigures{gcCPU: 1, processCPU: 10}
	if of, core := gcShare(from, serverFigures{gcCPU: 1.5, processCPU: 12}, 4); of != 25 || core != 12.5 {
		t.Errorf("0.5 s of GC in 2 s of CPU over 4 s: %.2f %% of the server, %.2f %% of a core", of, core)
	}
	for _, to := range []serverFigures{
		{gcCPU: -1, processCPU: 12},  // a server without the series
		{gcCPU: 1.5, processCPU: 10}, // no CPU spent: no share
		{gcCPU: 0.5, processCPU: 12}, // a counter that went back (a restart)
	} {
		if of, core := gcShare(from, to, 4); of != -1 || core != -1 {
			t.Errorf("%+v: %.2f, %.2f, want -1, -1 (not known)", to, of, core)
		}
	}
}
