// Command loadgen drives Parley servers with WebSocket clients, or SSE
// streams and POSTs, and reports throughput, end-to-end latency, loss,
// duplicates and the servers' memory; --scenario roomlist times GET
// /api/rooms for a user in many rooms instead.
//
//	go tool task bench -- --scenario=fanout --mode=embedded --rate=100
//	go tool task bench -- --scenario=fanout --rate=300 --private --server-cpus=0 --gen-cpus=1
//	go tool task bench -- --scenario=roomlist --server-cpus=0 --gen-cpus=1
//	go tool task bench -- --scenario=rooms --pin --require-clean
//
// See config.go for the roles of --conns and --senders and the scenarios.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/parley-chat/parley/app/tools/localcluster"
)

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	if cfg.GenCPUs != "" {
		// Returns only when this is the pinned run already.
		if err := pinSelf(cfg); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	printResult(os.Stdout, res)
	if cfg.RequireClean && !res.Clean {
		// The figures are printed all the same; the status tells a
		// benchmark script to run it again.
		fmt.Fprintln(os.Stderr, "loadgen: --require-clean: not clean:", res.Unclean)
		os.Exit(exitUnclean)
	}
}

// exitUnclean is the exit status of an unclean run under --require-clean:
// apart from 1 (the run failed) and 2 (bad flags).
const exitUnclean = 3

// Result is one run's outcome; its JSON is the last line of the output.
type Result struct {
	Scenario       string  `json:"scenario"`
	Mode           string  `json:"mode"`
	Transport      string  `json:"transport"`
	Conns          int     `json:"conns"`
	Senders        int     `json:"senders"`
	Rooms          int     `json:"rooms"`
	DialFailed     int     `json:"dial_failed"`
	Rate           float64 `json:"rate"`
	DurationS      float64 `json:"duration_s"`
	Sent           int64   `json:"sent"`
	Acked          int64   `json:"acked"`
	RateLimited    int64   `json:"rate_limited"`
	Errors         int64   `json:"errors"`
	Expected       int64   `json:"expected_deliveries"`
	Delivered      int64   `json:"delivered"`
	DeliveriesPerS float64 `json:"deliveries_per_s"`
	Lost           int64   `json:"lost"`
	Duplicated     int64   `json:"duplicated"`
	P50ms          float64 `json:"p50_ms"`
	P95ms          float64 `json:"p95_ms"`
	P99ms          float64 `json:"p99_ms"`
	MaxMs          float64 `json:"max_ms"`
	// From a WebSocket send to its ack (the instance produced it and the
	// bus has it): the send path alone. 0 when not timed (POST senders).
	AckP50ms     float64 `json:"ack_p50_ms"`
	AckP99ms     float64 `json:"ack_p99_ms"`
	AckMaxMs     float64 `json:"ack_max_ms"`
	ServerRSSKiB int64   `json:"server_rss_kib"`
	BaseRSSKiB   int64   `json:"server_rss_base_kib"`
	KiBPerConn   float64 `json:"kib_per_conn"`
	Instances    int     `json:"instances"`
	// From the servers' /metrics (-1 when not known): messages the persist
	// stage stored during the run, per second of the run, and the persist
	// and fan-out consumer lag at its end.
	Persisted     int64   `json:"persisted"`
	PersistedPerS float64 `json:"persisted_per_s"`
	PersistLag    int64   `json:"persist_lag_end"`
	FanoutLag     int64   `json:"fanout_lag_end"`
	// With --mention-percent: the notifications consumer's lag when the
	// sending ended, its highest seen, and how long after the sending
	// ended it was back to 0 (-1: not within the wait).
	MentionPercent float64 `json:"mention_percent,omitempty"`
	// With --react-percent: the share asked and the react frames sent
	// (in Sent too; their items are delivered like messages).
	ReactPercent float64 `json:"react_percent,omitempty"`
	Reactions    int64   `json:"reactions,omitempty"`
	// ListUnread is --list-unread (roomlist).
	ListUnread     int     `json:"list_unread,omitempty"`
	NotifyLagAtEnd int64   `json:"notify_lag_at_send_end,omitempty"`
	NotifyLagMax   int64   `json:"notify_lag_max,omitempty"`
	NotifyLagZeroS float64 `json:"notify_lag_zero_after_s,omitempty"`
	// What one connection adds to the servers' Go heap in use, stacks in
	// use and goroutines (from /metrics; 0 when not known): the parts of
	// kib_per_conn, which also counts freed memory not yet returned.
	HeapKiBPerConn    float64 `json:"heap_kib_per_conn"`
	StackKiBPerConn   float64 `json:"stack_kib_per_conn"`
	GoroutinesPerConn float64 `json:"goroutines_per_conn"`
	// The servers' garbage collection over the measured window (the Go
	// runtime's estimate, /cpu/classes/gc/total): in percent of the
	// servers' own CPU, and of one core. -1: not known.
	GCPctOfServer float64 `json:"gc_pct_of_server_cpu"`
	GCCPUPct      float64 `json:"gc_cpu_pct"`
	// The fullest server's open descriptors and its limit (0: not known).
	ServerOpenFDs int64 `json:"server_open_fds"`
	ServerMaxFDs  int64 `json:"server_max_fds"`
	// ConnsRequested is --conns as asked, when the file limit lowered it.
	ConnsRequested int `json:"conns_requested,omitempty"`
	// Private: the rooms were private, every receiver and sender a member.
	Private bool `json:"private"`
	// SetupS is the time the rooms and members took before the measured
	// phase (0: none were made).
	SetupS float64 `json:"setup_s"`
	// The CPUs each side was allowed to run on, as the kernel reports them
	// (Cpus_allowed_list), not as asked: the servers this run started
	// (one entry per distinct list; "" with --mode target) and the
	// generator.
	ServerCPUs string `json:"server_cpus"`
	GenCPUs    string `json:"gen_cpus"`
	// Pin: the CPUs were split by --pin.
	Pin bool `json:"pin"`
	// CPU over the measured window (cpu_window_s: send + drain; roomlist:
	// its timed phases), each in percent of one core (see cpu.go): the
	// server side's (every process this run started, in --mode kafka with
	// Kafka and FerretDB: services_cpu_pct of it), the generator's own,
	// and the rest of the machine's on the CPUs those ran on (cpu_lines,
	// "all" when they were not pinned apart from others). -1: not known
	// (--mode target). irq and steal are the parts of the busy time that
	// were interrupts and time the hypervisor gave elsewhere.
	CPUWindowS     float64 `json:"cpu_window_s"`
	ServerCPUPct   float64 `json:"server_cpu_pct"`
	ServicesCPUPct float64 `json:"services_cpu_pct,omitempty"`
	GenCPUPct      float64 `json:"gen_cpu_pct"`
	OtherCPUPct    float64 `json:"other_cpu_pct"`
	IrqCPUPct      float64 `json:"irq_cpu_pct"`
	StealCPUPct    float64 `json:"steal_cpu_pct"`
	CPULines       string  `json:"cpu_lines"`
	// Clean: other processes took at most 15 % of a core (cleanLimitPct);
	// Unclean says why not.
	Clean   bool   `json:"clean"`
	Unclean string `json:"unclean,omitempty"`
	// The server side's CPU in µs per message sent and per delivery (0:
	// none).
	ServerCPUUsPerMsg      float64 `json:"server_cpu_us_per_msg,omitempty"`
	ServerCPUUsPerDelivery float64 `json:"server_cpu_us_per_delivery,omitempty"`
	// List is --scenario roomlist's phases; the top-level p50/p99/max are
	// those of its first phase.
	List []listPhase `json:"list,omitempty"`
}

// counters shared by every connection, updated with atomics only.
type counters struct {
	sent, acked, delivered, rateLimited, errors, sendFailed atomic.Int64
	// reactions counts the sends that were react frames.
	reactions atomic.Int64
}

// client is one connection of the generator: a WebSocket (ws), an SSE
// stream (sse receivers) or a keep-alive HTTP client that POSTs (sse
// senders).
type client struct {
	ws      *websocket.Conn
	sse     net.Conn
	post    *http.Client
	postURL string
	token   string

	room   int
	recv   bool
	joined chan struct{}
	done   chan struct{}
	// owned by the read loop until done is closed
	seqs seqSet
	h    *hist
	// A WebSocket sender's: when each of its last ackRing sends left
	// (UnixNano, by the n of its id), and the latency to their acks (owned
	// by the read loop).
	sentAt []atomic.Int64
	ackH   *hist

	closeOnce sync.Once
}

// ackRing is how many sends a sender remembers the time of: an ack later
// than ackRing sends after its own is not timed (ack_* would be wrong).
const ackRing = 4096

// sending notes that send n leaves now.
func (cl *client) sending(n int) {
	if cl.sentAt != nil {
		cl.sentAt[n%ackRing].Store(time.Now().UnixNano())
	}
}

// ackTook records the latency of the ack of id ("s<sender>-<n>"), from its
// send to now. The read loop calls it.
func (cl *client) ackTook(id string, now time.Time) {
	i := strings.LastIndexByte(id, '-')
	if cl.sentAt == nil || i < 0 {
		return
	}
	n, err := strconv.Atoi(id[i+1:])
	if err != nil || n < 0 {
		return
	}
	if at := cl.sentAt[n%ackRing].Load(); at > 0 {
		cl.ackH.record(now.Sub(time.Unix(0, at)))
	}
}

// close ends the connection; done is closed once its reader has stopped.
func (cl *client) close() {
	switch {
	case cl.ws != nil:
		cl.ws.Close()
	case cl.sse != nil:
		cl.sse.Close()
	default:
		cl.closeOnce.Do(func() {
			cl.post.CloseIdleConnections()
			close(cl.done)
		})
	}
}

type runner struct {
	cfg     Config
	log     io.Writer
	runID   string
	c       counters
	roomAck []atomic.Int64
	// roomMsg is, per room, the newest message seq a receiver saw: what
	// --react-percent's reactions are about.
	roomMsg []atomic.Int64
	http    *http.Client
	perAddr int
	portLow int
	clients []*client // receivers then senders; nil where the dial failed
	tokens  []string  // clients' sessions, by index; "" where the sign-in failed
	names   []string  // the user names the sign-ins gave
	// roomBase is each room's last seq before the measured phase (the
	// private rooms' creation and member adds are items of the timeline):
	// a receiver's messages are numbered from it. Written before any
	// connection is made.
	roomBase   []int64
	serverPIDs []int // of the servers this run started, for their RSS
	// servicePIDs are Kafka's and FerretDB's (--mode kafka): server side
	// for the CPU figures, not counted in the RSS.
	servicePIDs []int
	requested   int // --conns asked for, when the file limit capped it
}

func run(ctx context.Context, cfg Config, log io.Writer) (_ *Result, err error) {
	r := &runner{cfg: cfg, log: log, runID: strconv.FormatInt(time.Now().UnixNano()%(36*36*36*36*36*36), 36)}
	r.roomAck = make([]atomic.Int64, cfg.Rooms)
	r.roomMsg = make([]atomic.Int64, cfg.Rooms)
	r.roomBase = make([]int64, cfg.Rooms)
	if err := r.raiseNoFile(); err != nil {
		return nil, err
	}
	r.perAddr = ephemeralPorts() - 1000
	targets := cfg.Targets
	if per := cfg.Rate / float64(max(cfg.Senders, 1)); cfg.Mode == "target" && per > 20 {
		// The servers this run starts allow any rate; running ones may not.
		fmt.Fprintf(log, "loadgen: note: each sender sends %.0f msg/s; servers at the default PARLEY_SEND_RATE=20 refuse the excess (rate_limited): raise it or add --senders\n", per)
	}
	if cfg.Mode != "target" {
		cl, cerr := startCluster(ctx, cfg, log)
		if cerr != nil {
			return nil, cerr
		}
		// The cluster's logs are kept when the run failed (err is run's).
		defer func() { cl.stop(err == nil) }()
		targets = cl.urls()
		r.serverPIDs = cl.pids()
		r.servicePIDs = cl.svcPIDs
	}
	r.http = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: cfg.Dial, MaxConnsPerHost: cfg.Dial, DisableCompression: true,
	}}
	defer r.http.CloseIdleConnections()
	for _, t := range targets {
		if err := localcluster.WaitURL(ctx, t, 30*time.Second); err != nil {
			return nil, err
		}
	}
	if cfg.Scenario == "roomlist" {
		return r.roomList(ctx, targets[0])
	}
	baseRSS := r.rss()
	before, haveBefore := r.scrape(ctx, targets)

	// Sign in, then (--private) make the rooms and their members, then
	// connect: receivers first, then senders. Public and private runs take
	// the same steps but the second, so that they differ in the access
	// path only.
	total := cfg.Conns + cfg.Senders
	r.clients = make([]*client, total)
	if err := r.signInAll(ctx, targets, total); err != nil {
		return nil, err
	}
	var setup time.Duration
	if cfg.Private {
		t0 := time.Now()
		if err := r.setupPrivate(ctx, targets[0]); err != nil {
			return nil, err
		}
		setup = time.Since(t0)
		r.progress("private rooms: %d rooms and their members in %.1fs", cfg.Rooms, setup.Seconds())
		// The creations and adds are stored items too: persisted counts
		// the run's messages only. The persist stage counts a batch after
		// its commit, a moment after the add was confirmed through the
		// fan-out: the count is taken once it stops moving (lag 0, the
		// same twice in a row; 5 s at most). The memory figures keep
		// their earlier base, as in a public run.
		if haveBefore {
			last := -1.0
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				f, ok := r.scrape(ctx, targets)
				if !ok {
					break
				}
				before.persisted = f.persisted
				if f.persistLag == 0 && f.persisted == last {
					break
				}
				last = f.persisted
			}
		}
	}
	start := time.Now()
	if err := r.dialAll(ctx, targets, total); err != nil {
		return nil, err
	}
	r.progress("connected %d/%d in %.1fs", countNonNil(r.clients), total, time.Since(start).Seconds())
	// Wait until every receiver has joined, so it sees the room from seq 1.
	joinDeadline := time.After(60 * time.Second)
	for _, cl := range r.clients {
		if cl == nil || !cl.recv {
			continue
		}
		select {
		case <-cl.joined:
		case <-cl.done:
		case <-joinDeadline:
			return nil, errors.New("receivers did not all join within 60s")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	recvPerRoom := make([]int64, cfg.Rooms)
	for _, cl := range r.clients {
		if cl != nil && cl.recv {
			recvPerRoom[cl.room]++
		}
	}

	// Send. The CPU window opens here and closes when the drain ends: the
	// setup above is not what a run measures.
	meter := startCPU(r.serverPIDs, r.servicePIDs)
	atSend, haveAtSend := r.scrape(ctx, targets)
	atSendTime := time.Now()
	sendCtx, stopSend := context.WithTimeout(ctx, cfg.Duration)
	var swg sync.WaitGroup
	senders := 0
	for _, cl := range r.clients {
		if cl != nil && !cl.recv {
			senders++
		}
	}
	for i, cl := range r.clients[cfg.Conns:] {
		if cl == nil || cfg.Rate <= 0 {
			continue
		}
		swg.Add(1)
		go func() { defer swg.Done(); r.sendLoop(sendCtx, i, cl, senders) }()
	}
	sendStart := time.Now()
	tick := time.NewTicker(2 * time.Second)
	var notifyMax float64
	for sendCtx.Err() == nil {
		select {
		case <-sendCtx.Done():
		case <-tick.C:
			r.progress("%4.0fs sent %d acked %d delivered %d", time.Since(sendStart).Seconds(), r.c.sent.Load(), r.c.acked.Load(), r.c.delivered.Load())
			if cfg.MentionPercent > 0 {
				if f, ok := r.scrape(ctx, targets); ok {
					notifyMax = max(notifyMax, f.notifyLag)
				}
			}
		}
	}
	stopSend()
	swg.Wait()
	sendElapsed := time.Since(sendStart)
	notifyAtEnd := -1.0
	if cfg.MentionPercent > 0 {
		if f, ok := r.scrape(ctx, targets); ok {
			notifyAtEnd = f.notifyLag
			notifyMax = max(notifyMax, f.notifyLag)
		}
	}

	// Drain: until every send is answered and every acked message reached
	// every receiver of its room, or the drain period ends.
	drainEnd := time.Now().Add(cfg.Drain)
	for time.Now().Before(drainEnd) && ctx.Err() == nil {
		var exp int64
		for i := range r.roomAck {
			exp += r.roomAck[i].Load() * recvPerRoom[i]
		}
		answered := r.c.acked.Load() + r.c.rateLimited.Load() + r.c.sendFailed.Load()
		if answered >= r.c.sent.Load() && r.c.delivered.Load() >= exp {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	elapsed := time.Since(sendStart)
	cpu := meter.stop()
	endRSS := r.rss()
	tick.Stop()
	// The store's side: what the persist stage took meanwhile, and its lag,
	// which must be back to 0 once the drain ended (lag counts commits, a
	// moment after the store and the deliveries: allow a second for it).
	var after serverFigures
	var afterTime time.Time
	haveAfter := false
	for wait := time.Now().Add(time.Second); ; time.Sleep(50 * time.Millisecond) {
		after, haveAfter = r.scrape(ctx, targets)
		afterTime = time.Now()
		if !haveAfter || (after.persistLag == 0 && after.fanoutLag == 0) || time.Now().After(wait) {
			break
		}
	}

	// Close and collect.
	for _, cl := range r.clients {
		if cl != nil {
			cl.close()
		}
	}
	for _, cl := range r.clients {
		if cl != nil {
			<-cl.done
		}
	}
	res := r.collect(recvPerRoom)
	cpu.apply(res)
	res.DialFailed = total - countNonNil(r.clients)
	res.ConnsRequested = r.requested
	res.DurationS = sendElapsed.Seconds()
	res.SetupS = setup.Seconds()
	if elapsed > 0 {
		res.DeliveriesPerS = float64(res.Delivered) / elapsed.Seconds()
	}
	res.ServerRSSKiB, res.BaseRSSKiB = endRSS, baseRSS
	res.Instances = len(targets)
	res.Persisted, res.PersistLag, res.FanoutLag = -1, -1, -1
	if haveAfter && after.maxFDs > 0 {
		res.ServerOpenFDs, res.ServerMaxFDs = int64(after.openFDs), int64(after.maxFDs)
		if after.openFDs >= after.maxFDs-50 {
			fmt.Fprintf(log, "loadgen: SERVER FILE LIMIT: %s holds %d descriptors of the %d it may open: connections past it fail (dial_failed); spread them over more --instances\n",
				after.fullest, res.ServerOpenFDs, res.ServerMaxFDs)
		}
	}
	if n := countNonNil(r.clients); haveBefore && haveAfter && n > 0 {
		res.HeapKiBPerConn = (after.heapInuse - before.heapInuse) / 1024 / float64(n)
		res.StackKiBPerConn = (after.stackInuse - before.stackInuse) / 1024 / float64(n)
		res.GoroutinesPerConn = (after.goroutines - before.goroutines) / float64(n)
	}
	res.GCPctOfServer, res.GCCPUPct = -1, -1
	if haveAtSend && haveAfter {
		res.GCPctOfServer, res.GCCPUPct = gcShare(atSend, after, afterTime.Sub(atSendTime).Seconds())
	}
	if haveBefore && haveAfter {
		res.Persisted = int64(after.persisted - before.persisted)
		res.PersistedPerS = float64(res.Persisted) / elapsed.Seconds()
		res.PersistLag, res.FanoutLag = int64(after.persistLag), int64(after.fanoutLag)
	}
	if n := countNonNil(r.clients); n > 0 && endRSS > 0 {
		res.KiBPerConn = float64(endRSS-baseRSS) / float64(n)
	}
	if cfg.MentionPercent > 0 {
		// The notifications consumer holds each mention until it is due
		// (PARLEY_NOTIFY_DELAY after its ts) and commits only what it has
		// made: its lag is back to 0 once the last one was made. Wait up
		// to a minute for that.
		res.MentionPercent, res.NotifyLagAtEnd, res.NotifyLagZeroS = cfg.MentionPercent, int64(notifyAtEnd), -1
		sendEnd := sendStart.Add(sendElapsed)
		for limit := time.Now().Add(time.Minute); time.Now().Before(limit) && ctx.Err() == nil; time.Sleep(100 * time.Millisecond) {
			f, ok := r.scrape(ctx, targets)
			if !ok {
				break
			}
			notifyMax = max(notifyMax, f.notifyLag)
			if f.notifyLag == 0 {
				res.NotifyLagZeroS = time.Since(sendEnd).Seconds()
				break
			}
		}
		res.NotifyLagMax = int64(notifyMax)
	}
	return res, nil
}

func (r *runner) collect(recvPerRoom []int64) *Result {
	cfg := r.cfg
	res := &Result{Scenario: cfg.Scenario, Mode: cfg.Mode, Transport: cfg.Transport, Conns: cfg.Conns,
		Senders: cfg.Senders, Rooms: cfg.Rooms, Rate: cfg.Rate, Private: cfg.Private}
	res.ServerCPUs, res.GenCPUs = r.cpus()
	res.Pin = cfg.Pin
	res.Sent, res.Acked = r.c.sent.Load(), r.c.acked.Load()
	res.ReactPercent, res.Reactions = cfg.ReactPercent, r.c.reactions.Load()
	res.RateLimited, res.Errors = r.c.rateLimited.Load(), r.c.errors.Load()
	res.Delivered = r.c.delivered.Load()
	// A room's expected messages: its acked sends, or more if a receiver saw
	// a higher seq (stored, but the ack did not arrive in time).
	expected := make([]int64, cfg.Rooms)
	for i := range expected {
		expected[i] = r.roomAck[i].Load()
	}
	for _, cl := range r.clients {
		if cl != nil && cl.recv && cl.seqs.maxSeq > expected[cl.room] {
			expected[cl.room] = cl.seqs.maxSeq
		}
	}
	all, acks := &hist{}, &hist{}
	for _, cl := range r.clients {
		if cl != nil && cl.ackH != nil {
			acks.merge(cl.ackH)
		}
	}
	for _, cl := range r.clients {
		if cl == nil || !cl.recv {
			continue
		}
		res.Lost += cl.seqs.lost(expected[cl.room])
		res.Duplicated += cl.seqs.dups
		if cl.h != nil {
			all.merge(cl.h)
		}
	}
	for i, n := range recvPerRoom {
		res.Expected += expected[i] * n
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	res.P50ms, res.P95ms, res.P99ms, res.MaxMs = ms(all.quantile(0.50)), ms(all.quantile(0.95)), ms(all.quantile(0.99)), ms(all.max)
	if acks.n > 0 {
		res.AckP50ms, res.AckP99ms, res.AckMaxMs = ms(acks.quantile(0.50)), ms(acks.quantile(0.99)), ms(acks.max)
	}
	return res
}

func (r *runner) progress(format string, args ...any) {
	if !r.cfg.Quiet {
		fmt.Fprintf(r.log, "loadgen: "+format+"\n", args...)
	}
}

// raiseNoFile lifts RLIMIT_NOFILE to its hard limit and caps the number of
// connections to what it allows, leaving 100 descriptors spare.
func (r *runner) raiseNoFile() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("setrlimit: %w", err)
		}
	}
	// Besides one descriptor per connection: the sign-in client's pool
	// (--dial-concurrency), and a spare 100 for the runtime, logs, pipes.
	spare := 100 + r.cfg.Dial
	allowed := int(lim.Cur) - spare
	if r.cfg.Conns+r.cfg.Senders > allowed {
		capped := max(allowed-r.cfg.Senders, 0)
		fmt.Fprintf(r.log, "loadgen: FILE LIMIT: %d receivers + %d senders need %d descriptors with the %d spare, but this process may open at most %d (RLIMIT_NOFILE, hard limit %d): --conns capped from %d to %d; the results are for %d receivers\n",
			r.cfg.Conns, r.cfg.Senders, r.cfg.Conns+r.cfg.Senders+spare, spare, lim.Cur, lim.Max, r.cfg.Conns, capped, capped)
		r.requested = r.cfg.Conns
		r.cfg.Conns = capped
	}
	return nil
}

// ephemeralPorts is the size of the local port range one source address can use.
func ephemeralPorts() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 {
			lo, e1 := strconv.Atoi(f[0])
			hi, e2 := strconv.Atoi(f[1])
			if e1 == nil && e2 == nil && hi > lo {
				return hi - lo + 1
			}
		}
	}
	return 28232
}

// sourceIP spreads connection i over 127.0.0.x once one address's
// ephemeral ports would run out; nil means the kernel's choice.
func sourceIP(i, perAddr int) net.IP {
	if perAddr < 1000 {
		perAddr = 1000
	}
	k := i / perAddr
	if k == 0 {
		return nil
	}
	return net.IPv4(127, 0, byte((k+1)/250), byte((k+1)%250+1))
}

func (r *runner) dialAll(ctx context.Context, targets []string, total int) error {
	sem := make(chan struct{}, r.cfg.Dial)
	var wg sync.WaitGroup
	var dialed, failed atomic.Int64
	// The first dial error. Not an atomic.Value: errors of different
	// concrete types would make its CompareAndSwap panic.
	var errMu sync.Mutex
	var firstErr error
	stopProg := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopProg:
				return
			case <-t.C:
				r.progress("dialing %d/%d (%d failed)", dialed.Load(), total, failed.Load())
			}
		}
	}()
	for i := 0; i < total && ctx.Err() == nil; i++ {
		if r.tokens[i] == "" {
			continue // its sign-in failed: counted in dial_failed
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			cl, err := r.dialOne(ctx, targets[i%len(targets)], i)
			if err != nil {
				failed.Add(1)
				errMu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				errMu.Unlock()
				return
			}
			r.clients[i] = cl
			dialed.Add(1)
		}()
	}
	wg.Wait()
	close(stopProg)
	if ctx.Err() != nil {
		r.closeAll()
		return ctx.Err()
	}
	if n := failed.Load(); n > 0 {
		fmt.Fprintf(r.log, "loadgen: %d of %d connections failed; first error: %v\n", n, total, firstErr)
		if errors.Is(firstErr, syscall.EMFILE) || errors.Is(firstErr, syscall.ENFILE) {
			fmt.Fprintln(r.log, "loadgen: FILE LIMIT: the generator ran out of file descriptors (lower --conns or --dial-concurrency)")
		}
		if dialed.Load() == 0 {
			return fmt.Errorf("no connection could be made: %v", firstErr)
		}
	}
	return nil
}

func (r *runner) closeAll() {
	for _, cl := range r.clients {
		if cl != nil {
			cl.close()
		}
	}
}

// netDial opens a TCP connection from source address src (nil: the
// kernel's choice).
func (r *runner) netDial(ctx context.Context, addr string, src net.IP) (net.Conn, error) {
	nd := net.Dialer{Timeout: 15 * time.Second}
	if src != nil {
		nd.LocalAddr = &net.TCPAddr{IP: src}
	}
	return nd.DialContext(ctx, "tcp", addr)
}

func (r *runner) dialOne(ctx context.Context, base string, i int) (*client, error) {
	token := r.tokens[i]
	recv := i < r.cfg.Conns
	if r.cfg.Transport == "sse" {
		if recv {
			return r.dialSSE(ctx, base, token, i, i%r.cfg.Rooms)
		}
		return r.dialPoster(ctx, base, token, i, (i-r.cfg.Conns)%r.cfg.Rooms)
	}
	src := sourceIP(i, r.perAddr)
	d := websocket.Dialer{
		HandshakeTimeout: 15 * time.Second,
		ReadBufferSize:   2048,
		WriteBufferSize:  1024,
		NetDialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return r.netDial(ctx, addr, src)
		},
	}
	u := "ws" + strings.TrimPrefix(base, "http") + "/ws?token=" + url.QueryEscape(token)
	ws, resp, err := d.DialContext(ctx, u, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: %v (HTTP %d)", base, err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial %s: %w", base, err)
	}
	cl := &client{ws: ws, recv: recv, joined: make(chan struct{}), done: make(chan struct{})}
	if !recv {
		cl.sentAt, cl.ackH = make([]atomic.Int64, ackRing), &hist{}
	}
	if cl.recv {
		cl.room = i % r.cfg.Rooms
		join := `{"type":"join","room":"` + r.roomName(cl.room) + `"}`
		if err := ws.WriteMessage(websocket.TextMessage, []byte(join)); err != nil {
			ws.Close()
			return nil, fmt.Errorf("join: %w", err)
		}
	} else {
		cl.room = (i - r.cfg.Conns) % r.cfg.Rooms
		close(cl.joined)
	}
	go r.readLoop(cl)
	return cl, nil
}

func (r *runner) roomName(i int) string { return "lg-" + r.runID + "-" + strconv.Itoa(i) }

// userName is client i's name, as asked at sign-in.
func (r *runner) userName(i int) string { return "lg" + r.runID + "_" + strconv.Itoa(i) }

// signIn opens a session for name and returns its token and the name the
// server gave it.
func (r *runner) signIn(ctx context.Context, base, name string) (token, user string, err error) {
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/api/session", strings.NewReader(`{"name":"`+name+`"}`))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.http.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("sign-in: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != 200 {
		return "", "", fmt.Errorf("sign-in: HTTP %d %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	var s struct{ Token, User string }
	if err := json.Unmarshal(body, &s); err != nil || s.Token == "" || s.User == "" {
		return "", "", fmt.Errorf("sign-in: bad answer %q", body)
	}
	return s.Token, s.User, nil
}

// frame is what the generator reads of a server frame.
type frame struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Seq  int64  `json:"seq"`
	Text string `json:"text"`
	Code string `json:"code"`
}

func (r *runner) readLoop(cl *client) {
	defer close(cl.done)
	joined := !cl.recv
	// One buffer per connection, reused: ReadMessage would allocate one per
	// frame, and the generator's garbage competes with the server for CPU.
	var buf bytes.Buffer
	for {
		_, rd, err := cl.ws.NextReader()
		if err != nil {
			return
		}
		buf.Reset()
		if _, err := buf.ReadFrom(rd); err != nil {
			return
		}
		data := buf.Bytes()
		now := time.Now()
		if bytes.HasPrefix(data, messagePrefix) {
			r.message(cl, data, now)
			continue
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil {
			r.c.errors.Add(1)
			continue
		}
		switch f.Type {
		case "message": // not as the server writes them, but valid
			r.message(cl, data, now)
		case "ack":
			r.c.acked.Add(1)
			r.roomAck[cl.room].Add(1)
			cl.ackTook(f.ID, now)
		case "joined":
			if !joined {
				joined = true
				close(cl.joined)
			}
		case "error":
			if f.Code == "rate_limited" {
				r.c.rateLimited.Add(1)
			} else {
				r.c.errors.Add(1)
			}
		}
	}
}

// messagePrefix starts every message frame the server writes.
var messagePrefix = []byte(`{"type":"message",`)

// message counts one delivered message (a WebSocket message frame or an SSE
// event's data) and, for a receiver, records its seq and latency. It returns
// the seq.
func (r *runner) message(cl *client, data []byte, now time.Time) int64 {
	r.c.delivered.Add(1)
	seq, sentAt, stamped, ok := scanMessage(data)
	if !ok {
		var f frame
		if err := json.Unmarshal(data, &f); err != nil || f.Seq < 1 {
			r.c.errors.Add(1)
			return 0
		}
		seq = f.Seq
		sentAt, stamped = parseStamp(f.Text)
	}
	if !cl.recv {
		return seq
	}
	if cl.h == nil {
		cl.h = &hist{}
	}
	// Counted from the room's state before the run: the receiver should
	// see 1..acked of the run's own messages.
	cl.seqs.add(seq - r.roomBase[cl.room])
	if stamped {
		cl.h.record(now.Sub(time.Unix(0, sentAt)))
		// A sender's message (a reaction item has no stamp).
		if r.roomMsg != nil {
			for m := &r.roomMsg[cl.room]; ; {
				old := m.Load()
				if seq <= old || m.CompareAndSwap(old, seq) {
					break
				}
			}
		}
	}
	return seq
}

// scanMessage reads seq and the send stamp from a message as the server
// encodes it (encoding/json, fields in Message's order), without decoding
// the JSON: at hundreds of thousands of deliveries a second the generator
// shares the machine with the server, and json.Unmarshal would take a good
// part of it. Room, id and user cannot hold a quote, so the first "seq": and
// the "text":" after it are the fields. ok is false when the shape is not
// recognised (the caller then decodes the JSON).
func scanMessage(b []byte) (seq, sentAt int64, stamped, ok bool) {
	i := bytes.Index(b, []byte(`"seq":`))
	if i < 0 {
		return 0, 0, false, false
	}
	b = b[i+len(`"seq":`):]
	seq, n := leadingInt(b)
	if n == 0 || seq < 1 || n >= len(b) || b[n] != ',' {
		return 0, 0, false, false
	}
	b = b[n:]
	j := bytes.Index(b, []byte(`"text":"`))
	if j < 0 {
		return 0, 0, false, false
	}
	b = b[j+len(`"text":"`):]
	if !bytes.HasPrefix(b, []byte("t=")) {
		return seq, 0, false, true
	}
	sentAt, n = leadingInt(b[2:])
	if n == 0 || n+2 >= len(b) || (b[n+2] != '"' && b[n+2] != ' ') {
		return seq, 0, false, true
	}
	return seq, sentAt, true, true
}

// leadingInt parses the decimal digits at the start of b; n is 0 when there
// are none or they overflow an int64.
func leadingInt(b []byte) (v int64, n int) {
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		d := int64(b[n] - '0')
		if v > (math.MaxInt64-d)/10 {
			return 0, 0
		}
		v = v*10 + d
		n++
	}
	return v, n
}

// parseStamp reads the send time embedded by sendLoop: "t=<unix nanos>".
func parseStamp(text string) (int64, bool) {
	rest, ok := strings.CutPrefix(text, "t=")
	if !ok {
		return 0, false
	}
	if i := strings.IndexByte(rest, ' '); i >= 0 {
		rest = rest[:i]
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	return n, err == nil
}

// sendLoop sends this sender's share of the rate to its room until ctx ends.
func (r *runner) sendLoop(ctx context.Context, idx int, cl *client, senders int) {
	interval := time.Duration(float64(senders) / r.cfg.Rate * float64(time.Second))
	if interval < 10*time.Microsecond {
		interval = 10 * time.Microsecond
	}
	// Stagger the senders over one interval.
	select {
	case <-time.After(interval * time.Duration(idx) / time.Duration(senders)):
	case <-ctx.Done():
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	prefix := `{"type":"send","room":"` + r.roomName(cl.room) + `","id":"s` + strconv.Itoa(idx) + "-"
	if cl.post != nil {
		prefix = `{"id":"s` + strconv.Itoa(idx) + "-"
	}
	buf := make([]byte, 0, 128)
	mention := r.mentionOf(idx)
	react := `{"type":"react","room":"` + r.roomName(cl.room) + `","emoji":"👍","id":"s` + strconv.Itoa(idx) + "-"
	for n := 0; ; n++ {
		if target := r.roomMsg[cl.room].Load(); cl.post == nil && target > 0 && r.reacts(idx, n) {
			buf = append(buf[:0], react...)
			buf = strconv.AppendInt(buf, int64(n), 10)
			buf = append(buf, `","target":`...)
			buf = strconv.AppendInt(buf, target, 10)
			buf = append(buf, '}')
			_ = cl.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
			cl.sending(n)
			if err := cl.ws.WriteMessage(websocket.TextMessage, buf); err != nil {
				r.c.sendFailed.Add(1)
				return
			}
			r.c.sent.Add(1)
			r.c.reactions.Add(1)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			continue
		}
		buf = append(buf[:0], prefix...)
		buf = strconv.AppendInt(buf, int64(n), 10)
		buf = append(buf, `","text":"t=`...)
		buf = strconv.AppendInt(buf, time.Now().UnixNano(), 10)
		if mention != "" && r.mentions(idx, n) {
			buf = append(buf, " @"...)
			buf = append(buf, mention...)
		}
		buf = append(buf, `"}`...)
		if cl.post != nil {
			// A POST waits for its 202: a sender whose answers take longer
			// than its interval falls behind the rate (the ticker drops the
			// ticks it missed), which the sent count shows.
			r.c.sent.Add(1)
			r.postOne(cl, buf)
		} else {
			_ = cl.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
			cl.sending(n)
			if err := cl.ws.WriteMessage(websocket.TextMessage, buf); err != nil {
				r.c.sendFailed.Add(1)
				return
			}
			r.c.sent.Add(1)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// mentionOf is the name sender idx mentions: the next sender of its room
// (senders idx and idx+Rooms share a room), "" without --mention-percent.
func (r *runner) mentionOf(idx int) string {
	if r.cfg.MentionPercent <= 0 {
		return ""
	}
	other := (idx + r.cfg.Rooms) % r.cfg.Senders
	if other%r.cfg.Rooms != idx%r.cfg.Rooms {
		other = idx % r.cfg.Rooms // the room's first sender
	}
	return r.names[r.cfg.Conns+other]
}

// mentions reports whether sender idx's message n mentions: an even
// spread of MentionPercent percent, the same on every run.
func (r *runner) mentions(idx, n int) bool { return spread(r.cfg.MentionPercent, idx, n) }

// reacts reports whether sender idx's send n is a reaction.
func (r *runner) reacts(idx, n int) bool { return spread(r.cfg.ReactPercent, idx, n) }

// spread picks percent of the n's evenly, offset by idx.
func spread(percent float64, idx, n int) bool {
	p := percent / 100
	return int(float64(n+idx)*p) != int(float64(n+idx+1)*p)
}

// rss is the VmRSS in KiB of the servers this run started, summed, or 0
// when not known (--target; Kafka's and FerretDB's are not counted).
func (r *runner) rss() int64 {
	var sum int64
	for _, pid := range r.serverPIDs {
		n := readRSS(pid)
		if n == 0 {
			return 0
		}
		sum += n
	}
	return sum
}

func readRSS(pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

func countNonNil(cs []*client) int {
	n := 0
	for _, c := range cs {
		if c != nil {
			n++
		}
	}
	return n
}

func printResult(w io.Writer, res *Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	rss, per := "n/a", "n/a"
	if res.ServerRSSKiB > 0 {
		rss = fmt.Sprintf("%d KiB (base %d), all instances", res.ServerRSSKiB, res.BaseRSSKiB)
		per = fmt.Sprintf("%.1f", res.KiBPerConn)
	}
	if res.HeapKiBPerConn != 0 || res.StackKiBPerConn != 0 {
		per += fmt.Sprintf(" (Go heap in use %.1f, stacks %.1f, %.1f goroutines)", res.HeapKiBPerConn, res.StackKiBPerConn, res.GoroutinesPerConn)
	}
	if res.GCPctOfServer >= 0 {
		per += fmt.Sprintf("; GC %.1f %% of the servers' CPU (%.1f %% of a core)", res.GCPctOfServer, res.GCCPUPct)
	}
	store := "n/a (no /metrics)"
	if res.Persisted >= 0 {
		store = fmt.Sprintf("%d persisted (%.0f/s); lag at end: persist %d, fan-out %d", res.Persisted, res.PersistedPerS, res.PersistLag, res.FanoutLag)
		if res.MentionPercent > 0 {
			store += fmt.Sprintf("; %.0f%% mentions: notify lag at send end %d, max %d, back to 0 %.1f s after the sending ended", res.MentionPercent, res.NotifyLagAtEnd, res.NotifyLagMax, res.NotifyLagZeroS)
		}
	}
	capped := ""
	if res.ConnsRequested > 0 {
		capped = fmt.Sprintf(" — CAPPED by the file limit from %d", res.ConnsRequested)
	}
	rows := [][2]string{
		{"scenario", res.Scenario},
		{"mode", fmt.Sprintf("%s / %s, %d instance(s)", res.Mode, res.Transport, res.Instances)},
		{"conns", fmt.Sprintf("%d receivers + %d senders in %d rooms (%d failed)%s", res.Conns, res.Senders, res.Rooms, res.DialFailed, capped)},
		{"rate", fmt.Sprintf("%.0f msg/s for %.1fs", res.Rate, res.DurationS)},
		{"sent", sentText(res)},
		{"acked", fmt.Sprintf("%d (rate_limited %d, other errors %d)", res.Acked, res.RateLimited, res.Errors)},
		{"delivered", fmt.Sprintf("%d of %d expected", res.Delivered, res.Expected)},
		{"deliveries/s", fmt.Sprintf("%.0f", res.DeliveriesPerS)},
		{"lost", strconv.FormatInt(res.Lost, 10)},
		{"duplicated", strconv.FormatInt(res.Duplicated, 10)},
		{"latency ms", fmt.Sprintf("p50 %.2f  p95 %.2f  p99 %.2f  max %.2f", res.P50ms, res.P95ms, res.P99ms, res.MaxMs)},
		{"send to ack ms", fmt.Sprintf("p50 %.2f  p99 %.2f  max %.2f", res.AckP50ms, res.AckP99ms, res.AckMaxMs)},
		{"server RSS", rss},
		{"KiB per conn", per},
		{"store", store},
		{"rooms", roomsText(res)},
		{"cpus", fmt.Sprintf("server %s, generator %s", orAll(res.ServerCPUs), orAll(res.GenCPUs))},
		{"cpu (% of a core)", cpuText(res)},
		{"server CPU", perMsgText(res)},
	}
	if res.Scenario == "roomlist" {
		// No connections, no messages: the rows above would be zeros.
		kind := "public"
		if res.Private {
			kind = "private"
		}
		rows = [][2]string{
			{"scenario", res.Scenario},
			{"mode", fmt.Sprintf("%s, %d instance(s)", res.Mode, res.Instances)},
			{"rooms", fmt.Sprintf("%d %s rooms, the listing user their owner, %d unread in each (%d mentions), checked in the list (made in %.1fs)", res.Rooms, kind, res.ListUnread, (res.ListUnread+4)/5, res.SetupS)},
			{"server RSS", rss},
			rows[len(rows)-3], // cpus
			rows[len(rows)-2], // cpu
		}
	}
	for _, ph := range res.List {
		rows = append(rows, [2]string{fmt.Sprintf("GET /api/rooms limit %d ×%d", ph.Limit, ph.Callers),
			fmt.Sprintf("%d calls (%.0f/s), %d errors: p50 %.2f  p99 %.2f  max %.2f ms", ph.Calls, ph.CallsPerS, ph.Errors, ph.P50ms, ph.P99ms, ph.MaxMs)})
	}
	for _, row := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	tw.Flush()
	b, _ := json.Marshal(res)
	fmt.Fprintf(w, "%s\n", b)
}

func roomsText(res *Result) string {
	kind := "public"
	if res.Private {
		kind = "private, every receiver and sender a member"
	}
	if res.SetupS > 0 {
		return fmt.Sprintf("%s (made in %.1fs before the measured phase)", kind, res.SetupS)
	}
	return kind
}

// cpuText is the CPU row: each side's share, and whether the run is clean.
func cpuText(res *Result) string {
	verdict := "clean"
	if !res.Clean {
		verdict = "NOT CLEAN: " + res.Unclean
	}
	if res.ServerCPUPct < 0 {
		return fmt.Sprintf("generator %.1f over %.1fs; %s", res.GenCPUPct, res.CPUWindowS, verdict)
	}
	svc := ""
	if res.ServicesCPUPct > 0 {
		svc = fmt.Sprintf(" (Kafka and FerretDB %.1f of it)", res.ServicesCPUPct)
	}
	return fmt.Sprintf("server %.1f%s, generator %.1f, other %.1f, on CPUs %s over %.1fs (interrupts %.1f, steal %.1f of the busy time); %s",
		res.ServerCPUPct, svc, res.GenCPUPct, res.OtherCPUPct, res.CPULines, res.CPUWindowS, res.IrqCPUPct, res.StealCPUPct, verdict)
}

// perMsgText is the server side's CPU per message.
func perMsgText(res *Result) string {
	if res.ServerCPUPct < 0 {
		return "n/a (not this run's servers)"
	}
	if res.ServerCPUUsPerMsg == 0 {
		return "n/a (no messages)"
	}
	return fmt.Sprintf("%.1f µs per message sent, %.2f µs per delivery", res.ServerCPUUsPerMsg, res.ServerCPUUsPerDelivery)
}

func orAll(cpus string) string {
	if cpus == "" {
		return "n/a"
	}
	return cpus
}

func sentText(res *Result) string {
	if res.ReactPercent > 0 {
		return fmt.Sprintf("%d (%d of them reactions, --react-percent %.0f)", res.Sent, res.Reactions, res.ReactPercent)
	}
	return strconv.FormatInt(res.Sent, 10)
}
