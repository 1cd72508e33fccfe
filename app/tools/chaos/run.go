package main

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/app/tools/client"
	"github.com/parley-chat/parley/app/tools/localcluster"
)

// cluster is the running system under test.
type cluster struct {
	out   io.Writer // progress lines
	start time.Time
	svc   localcluster.Services
	nodes []*node
	// db is the database of this run.
	db string

	mu     sync.Mutex
	events []event
}

// event is one fault injected, for the report and for attributing client
// outages to kills.
// The events of a service's stop and resume, which the report's stop
// windows (stopWindows) are read from.
const (
	evKafkaStop    = "Kafka broker: stop"
	evKafkaResumed = "Kafka broker: resumed on its data"
	evStoreStop    = "store: stop" // followed by " for" the outage
	evStoreResumed = "store: resumed on its data"
)

type event struct {
	At   time.Time
	What string
	// Node is the instance's URL for kills and SIGTERMs, else "".
	Node string
}

func (c *cluster) logEvent(node, format string, args ...any) {
	c.logEventAt(time.Now(), node, format, args...)
}

// logEventAt records an event that began at at (a SIGTERM is logged once
// the instance has stopped, but its clients were told to go at once).
func (c *cluster) logEventAt(at time.Time, node, format string, args ...any) {
	what := fmt.Sprintf(format, args...)
	c.mu.Lock()
	c.events = append(c.events, event{At: at, What: what, Node: node})
	c.mu.Unlock()
	logf(c.out, c.start, "%s", what)
}

// node is one instance with a keeper that restarts it whenever it exits
// while it is meant to run (a start that failed because Kafka or the store
// was down, say).
type node struct {
	inst *localcluster.Instance
	c    *cluster

	mu      sync.Mutex
	wantUp  bool
	wake    chan struct{}
	revived int // restarts by the keeper after exits nobody asked for
}

func (n *node) keep(ctx context.Context) {
	for {
		select {
		case <-n.inst.Done():
		case <-ctx.Done():
			return
		}
		n.mu.Lock()
		asked := !n.wantUp
		n.mu.Unlock()
		if !asked {
			n.mu.Lock()
			n.revived++
			n.mu.Unlock()
			n.c.logEvent("", "%s exited by itself (%v); restarting it", n.inst.ID(), n.inst.Err())
			if !sleep(ctx, time.Second) {
				return
			}
		}
		for {
			n.mu.Lock()
			up, wake := n.wantUp, n.wake
			n.mu.Unlock()
			if up {
				break
			}
			select {
			case <-wake:
			case <-ctx.Done():
				return
			}
		}
		for n.inst.Restart() != nil {
			if !sleep(ctx, time.Second) {
				return
			}
		}
	}
}

// down marks the node as meant to be down, then runs stop (which ends the
// process).
func (n *node) down(stop func()) {
	n.mu.Lock()
	n.wantUp = false
	n.mu.Unlock()
	stop()
}

// up lets the keeper restart the node and waits until it is ready again.
func (n *node) up(ctx context.Context) error {
	n.mu.Lock()
	n.wantUp = true
	close(n.wake)
	n.wake = make(chan struct{})
	n.mu.Unlock()
	return n.waitReady(ctx, 90*time.Second)
}

// waitReady waits until the node answers /readyz, across keeper restarts.
func (n *node) waitReady(ctx context.Context, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		if n.inst.Running() && localcluster.Ready(ctx, n.inst.URL()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %v", n.inst.ID(), within)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Run runs one scenario and returns its report.
func Run(ctx context.Context, o Options, out io.Writer) (*Report, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	c := &cluster{out: out, start: time.Now()}
	work, err := os.MkdirTemp("", "parley-chaos-")
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(work, "cluster.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	logw := &lockedWriter{w: bufio.NewWriterSize(logFile, 64<<10)}
	passed := false
	defer func() {
		logw.Flush()
		logFile.Close()
		if passed && !o.Keep {
			os.RemoveAll(work)
		} else {
			fmt.Fprintf(out, "chaos: instance and service logs kept in %s\n", logPath)
		}
	}()

	c.svc = localcluster.Services{Root: o.Root, KafkaPort: o.KafkaPort, KafkaControllerPort: o.KafkaControllerPort, MongoPort: o.MongoPort, Out: logw}
	if err := c.startServices(); err != nil {
		return nil, err
	}
	defer func() {
		_ = c.svc.StopStore()
		_ = c.svc.StopKafka()
	}()
	logf(out, c.start, "Kafka on %s, FerretDB on %s", c.svc.Brokers()[0], c.svc.MongoURI())

	bin, err := localcluster.Build(o.Root, work)
	if err != nil {
		return nil, err
	}
	suffix := randomHex(4)
	c.db = "chaos_" + suffix
	secret := randomHex(16)
	keepCtx, stopKeepers := context.WithCancel(context.Background())
	var keepers sync.WaitGroup
	defer func() {
		stopKeepers()
		keepers.Wait()
		c.stopAll()
	}()
	for i := range 3 {
		port, err := localcluster.FreePort()
		if err != nil {
			return nil, err
		}
		inst, err := localcluster.Start(bin, localcluster.InstanceConfig{
			ID: fmt.Sprintf("chaos-%s-%d", suffix, i), Port: port, Secret: secret,
			Brokers: c.svc.Brokers(), MongoURI: c.svc.MongoURI(), MongoDB: c.db,
			DataDir: filepath.Join(work, fmt.Sprintf("data-%d", i)), Log: logw,
			Env: []string{"PARLEY_SHUTDOWN_TIMEOUT=10s"},
		})
		if err != nil {
			return nil, err
		}
		n := &node{inst: inst, c: c, wantUp: true, wake: make(chan struct{})}
		c.nodes = append(c.nodes, n)
		keepers.Go(func() { n.keep(keepCtx) })
	}
	for _, n := range c.nodes {
		if err := n.waitReady(ctx, 90*time.Second); err != nil {
			return nil, err
		}
	}
	var urls []string
	for _, n := range c.nodes {
		urls = append(urls, n.inst.URL())
	}
	logf(out, c.start, "3 instances ready: %s", strings.Join(urls, " "))

	// Clients: each in one room, every tenth in a second one too. Every
	// PrivateEvery-th room is private: the moderator creates it and adds its
	// clients, who must hold their names (be signed in) by then.
	rooms := make([]string, o.Rooms)
	private := map[string]bool{}
	for i := range rooms {
		rooms[i] = fmt.Sprintf("chaos-%s-%02d", suffix, i)
		if o.PrivateEvery > 0 && i%o.PrivateEvery == 0 {
			private[rooms[i]] = true
		}
	}
	clientRooms := make([][]string, o.Clients)
	names := make([]string, o.Clients)
	for i := range clientRooms {
		rs := []string{rooms[i%len(rooms)]}
		if i%10 == 9 && len(rooms) > 1 {
			rs = append(rs, rooms[(i/10)%len(rooms)])
			if rs[1] == rs[0] {
				rs[1] = rooms[(i+1)%len(rooms)]
			}
		}
		clientRooms[i] = rs
		names[i] = fmt.Sprintf("u%d", i)
	}
	mod, err := newModerator(ctx, urls, c.svc.MongoURI(), c.db)
	if err != nil {
		return nil, err
	}
	mod.behind = c.persistLag
	tokens, members, err := c.privateRooms(ctx, mod, private, clientRooms, names)
	if err != nil {
		return nil, err
	}
	clientCtx, stopClients := context.WithCancel(context.Background())
	defer stopClients()
	var running sync.WaitGroup
	clients := make([]*client.Client, o.Clients)
	for i := range clients {
		cl, err := client.New(client.Config{
			URLs: urls, Name: names[i], Token: tokens[i], Rooms: clientRooms[i],
			BackoffMin: 100 * time.Millisecond, BackoffMax: 3 * time.Second,
			SendBudget: 60 * time.Second,
		})
		if err != nil {
			return nil, err
		}
		clients[i] = cl
		running.Go(func() { _ = cl.Run(clientCtx) })
	}
	defer running.Wait()
	defer stopClients()
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	for _, cl := range clients {
		if err := cl.WaitConnected(wctx); err != nil {
			wcancel()
			var not []string
			for i, cl := range clients {
				if !cl.Connected() {
					not = append(not, names[i])
				}
			}
			return nil, fmt.Errorf("clients did not all connect within 60s (%d not: %s): %w", len(not), strings.Join(not[:min(len(not), 10)], " "), err)
		}
	}
	wcancel()
	logf(out, c.start, "%d clients connected in %d rooms; sending %.0f/s for %v (%s scenario)", o.Clients, o.Rooms, o.Rate, o.Duration, o.Scenario)

	// Senders: each client sends every Clients/Rate seconds, from a random
	// phase, one send at a time (a send that waits for its ack delays the
	// client's next); some turns edit, delete or react instead (act).
	sendCtx, stopSending := context.WithCancel(ctx)
	defer stopSending()
	sendEnd := time.Now().Add(o.Duration)
	var senders sync.WaitGroup
	var faultsDone atomic.Bool // sending goes on until the faults are over
	every := time.Duration(float64(time.Second) * float64(o.Clients) / o.Rate)
	for i, cl := range clients {
		senders.Go(func() {
			if !sleep(sendCtx, time.Duration(mrand.Int64N(int64(every)))) {
				return
			}
			tick := time.NewTicker(every)
			defer tick.Stop()
			deleted := map[string]map[int64]bool{}
			for _, r := range clientRooms[i] {
				deleted[r] = map[int64]bool{}
			}
			for n := 0; time.Now().Before(sendEnd) || !faultsDone.Load(); n++ {
				room := clientRooms[i][n%len(clientRooms[i])]
				act(sendCtx, cl, i, n, names[i], room, deleted[room])
				select {
				case <-tick.C:
				case <-sendCtx.Done():
					return
				}
			}
		})
	}

	// Membership changes, while the clients send and the faults go on.
	var churners sync.WaitGroup
	for room, ms := range members {
		for k := range ms {
			ms[k].cl = clients[ms[k].index]
		}
		churners.Go(func() { mod.churn(sendCtx, c, room, ms, sendEnd) })
	}

	// Faults, while the clients send.
	faultErr := make(chan error, 1)
	go func() {
		if o.Scenario == "rolling" {
			faultErr <- c.rolling(ctx, o)
		} else {
			faultErr <- c.chaos(ctx, o, sendEnd)
		}
	}()
	ferr := <-faultErr
	faultsDone.Store(true)
	if ferr != nil {
		stopSending()
		senders.Wait()
		return nil, ferr
	}
	senders.Wait()
	churners.Wait()
	logf(out, c.start, "sending stopped; every send answered or given up, every member back; waiting for the store and the clients to catch up")

	// Settle: the store stops growing and every client has caught up with
	// the store in each of its rooms.
	c.settle(ctx, o.Settle, clients, clientRooms, names, rooms)
	stopClients()
	running.Wait()

	// The store is read once the clients are gone; it may still be
	// digesting their last joins, so a failed read is tried again.
	var stored []storedMsg
	for try := 0; ; try++ {
		if stored, err = readStore(ctx, c.svc.MongoURI(), c.db); err == nil || try == 5 || !sleep(ctx, 5*time.Second) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	var recs []client.Record
	for _, cl := range clients {
		recs = append(recs, cl.Record())
	}
	c.mu.Lock()
	events := slices.Clone(c.events)
	c.mu.Unlock()
	ms := modStats{Removals: mod.removals.Load(), Bans: mod.bans.Load(), Readds: mod.readds.Load(),
		Retried: mod.retried.Load(), Resolved: mod.resolved.Load(), Restored: mod.restored.Load(), Extended: mod.extended.Load(),
		Errors: mod.Errors(), Unrestored: mod.Unrestored()}
	rep := verdict(o, recs, clientRooms, names, stored, ms, events, c.start)
	rep.Print(out)
	passed = rep.Pass()
	return rep, nil
}

// privateRooms signs every client in (an add needs the name's holder; and
// 300 sign-ins at once, each claiming a name in the store, only time out
// against FerretDB on a loaded machine), then has the moderator create the
// private rooms and add their clients. It returns the clients' tokens and
// each private room's members.
func (c *cluster) privateRooms(ctx context.Context, mod *moderator, private map[string]bool, clientRooms [][]string, names []string) ([]string, map[string][]member, error) {
	tokens := make([]string, len(names))
	members := map[string][]member{}
	for room := range private {
		if err := mod.createRoom(ctx, room); err != nil {
			return nil, nil, err
		}
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	if err := parallel(16, len(names), func(k int) error {
		// The name the server gave: another one when a claim that timed
		// out had taken the first (see signIn).
		var err error
		tokens[k], names[k], err = signIn(ctx, hc, mod.urls, names[k])
		return err
	}); err != nil {
		return nil, nil, fmt.Errorf("sign the clients in: %w", err)
	}
	type add struct {
		i    int
		room string
	}
	var adds []add
	for i, rs := range clientRooms {
		for _, r := range rs {
			if private[r] {
				adds = append(adds, add{i, r})
				members[r] = append(members[r], member{name: names[i], index: i})
			}
		}
	}
	if err := parallel(16, len(adds), func(k int) error { return mod.add(ctx, adds[k].room, names[adds[k].i]) }); err != nil {
		return nil, nil, fmt.Errorf("add the private rooms' members: %w", err)
	}
	logf(c.out, c.start, "%d clients signed in, %d private rooms created, %d members added", len(names), len(private), len(adds))
	return tokens, members, nil
}

// parallel runs f(0..n-1) on at most workers goroutines and returns the
// first error.
func parallel(workers, n int, f func(k int) error) error {
	var next atomic.Int64
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for k := int(next.Add(1) - 1); k < n; k = int(next.Add(1) - 1) {
				if err := f(k); err != nil {
					mu.Lock()
					first = cmp.Or(first, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return first
}

func (c *cluster) startServices() error {
	// Leftovers of an earlier run on these ports are ours: stop them. Any
	// other listener is someone else's: refuse.
	if c.svc.KafkaRunning() {
		_ = c.svc.StopKafka()
	}
	if c.svc.StoreRunning() {
		_ = c.svc.StopStore()
	}
	for _, p := range []int{c.svc.KafkaPort, c.svc.KafkaControllerPort, c.svc.MongoPort} {
		if err := localcluster.CheckPortFree(p); err != nil {
			return err
		}
	}
	if err := c.svc.StartKafka(); err != nil {
		return err
	}
	return c.svc.StartStore()
}

func (c *cluster) stopAll() {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Go(func() {
			n.down(func() {})
			if n.inst.Running() {
				_ = n.inst.Term(20 * time.Second)
			}
		})
	}
	wg.Wait()
}

// chaos kill -9's an instance every KillEvery and restarts it after Down;
// one of the kills is of the instance doing the most persisting. Meanwhile,
// at 35% of the sending time the Kafka broker is restarted, and at 65% the
// store is stopped for StoreOutage. It returns once sending has ended and
// every instance is up again.
func (c *cluster) chaos(ctx context.Context, o Options, sendEnd time.Time) error {
	total := time.Until(sendEnd)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Go(func() {
		if !sleep(ctx, total*35/100) {
			return
		}
		c.logEvent("", evKafkaStop)
		if err := c.svc.StopKafka(); err != nil {
			errs <- err
			return
		}
		if err := c.svc.ResumeKafka(); err != nil {
			errs <- err
			return
		}
		c.logEvent("", evKafkaResumed)
	})
	wg.Go(func() {
		if !sleep(ctx, total*65/100) {
			return
		}
		c.logEvent("", evStoreStop+" for %v", o.StoreOutage)
		if err := c.svc.StopStore(); err != nil {
			errs <- err
			return
		}
		sleep(ctx, o.StoreOutage)
		if err := c.svc.ResumeStore(); err != nil {
			errs <- err
			return
		}
		c.logEvent("", evStoreResumed)
	})
	wg.Go(func() {
		// The second kill is of the persisting instance, early, clear of the
		// broker and store faults (a store outage stops all persisting).
		for k := 0; ; k++ {
			cycle := time.Now()
			if !sleep(ctx, min(3*time.Second, o.KillEvery/2)) || time.Until(sendEnd) < o.Down+time.Second {
				return
			}
			var n *node
			how := "kill -9"
			if k == 1 {
				var desc string
				n, desc = c.persistHolder(ctx)
				how = "kill -9 the instance persisting most (" + desc + ")"
			} else {
				n = c.nodes[mrand.IntN(len(c.nodes))]
			}
			n.down(func() { n.inst.Kill() })
			c.logEvent(n.inst.URL(), "%s %s (pid gone)", how, n.inst.ID())
			sleep(ctx, o.Down)
			t0 := time.Now()
			if err := n.up(ctx); err != nil {
				errs <- err
				return
			}
			c.logEvent("", "%s restarted, ready in %v", n.inst.ID(), time.Since(t0).Round(10*time.Millisecond))
			if !sleep(ctx, o.KillEvery-time.Since(cycle)) {
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	if !sleep(ctx, time.Until(sendEnd)) {
		return ctx.Err()
	}
	for _, n := range c.nodes {
		if err := n.waitReady(ctx, 90*time.Second); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// rolling restarts each instance in turn with SIGTERM, as a deploy would,
// waiting for each to be ready before the next; sending goes on at least
// until the last is back.
func (c *cluster) rolling(ctx context.Context, o Options) error {
	if !sleep(ctx, 3*time.Second) {
		return ctx.Err()
	}
	for _, n := range c.nodes {
		var termErr error
		t0 := time.Now()
		n.down(func() { termErr = n.inst.Term(30 * time.Second) })
		c.logEventAt(t0, n.inst.URL(), "SIGTERM %s: stopped in %v (exit: %v)", n.inst.ID(), time.Since(t0).Round(10*time.Millisecond), termErr)
		t0 = time.Now()
		if err := n.up(ctx); err != nil {
			return err
		}
		c.logEvent("", "%s restarted, ready in %v", n.inst.ID(), time.Since(t0).Round(10*time.Millisecond))
		if !sleep(ctx, 3*time.Second) {
			return ctx.Err()
		}
	}
	return nil
}

// persistHolder finds the instance doing the most persisting: Kafka tells
// which members of the shared group parley-persist hold which partitions of
// the send topic, but every instance connects with the same client id and
// host, so a member cannot be told from another by Kafka alone. Each
// instance's own /metrics can: the one whose parley_messages_persisted_total
// grows most over a short window holds the busiest partitions.
func (c *cluster) persistHolder(ctx context.Context) (*node, string) {
	assign := c.persistAssignment(ctx)
	before := map[*node]float64{}
	for _, n := range c.nodes {
		before[n] = persisted(ctx, n.inst.URL())
	}
	sleep(ctx, 2*time.Second)
	var best *node
	bestDelta := -1.0
	var deltas []string
	for _, n := range c.nodes {
		d := persisted(ctx, n.inst.URL()) - before[n]
		if math.IsNaN(d) {
			d = -1
		}
		deltas = append(deltas, fmt.Sprintf("%s +%.0f", n.inst.ID(), d))
		if d > bestDelta {
			best, bestDelta = n, d
		}
	}
	return best, fmt.Sprintf("group parley-persist: %s; persisted in 2s: %s", assign, strings.Join(deltas, ", "))
}

// kafka is a client of the cluster's broker for the checks' own requests.
func (c *cluster) kafka() *kafkago.Client {
	return &kafkago.Client{Addr: kafkago.TCP(c.svc.Brokers()...), Timeout: 5 * time.Second}
}

// persistAssignment describes the partitions each member of parley-persist
// holds, as Kafka answers DescribeGroups.
func (c *cluster) persistAssignment(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cl := c.kafka()
	resp, err := cl.DescribeGroups(ctx, &kafkago.DescribeGroupsRequest{GroupIDs: []string{"parley-persist"}})
	if err != nil || len(resp.Groups) == 0 {
		return fmt.Sprintf("not described (%v)", err)
	}
	g := resp.Groups[0]
	var parts []string
	for _, m := range g.Members {
		n := 0
		for _, t := range m.MemberAssignments.Topics {
			n += len(t.Partitions)
		}
		parts = append(parts, strconv.Itoa(n))
	}
	slices.Sort(parts)
	return fmt.Sprintf("%s, %d members holding %s partitions", g.GroupState, len(g.Members), strings.Join(parts, "/"))
}

// persistLag is how many records of send_msg the group parley-persist has
// not committed: the log ends minus the group's committed offsets, summed
// over the partitions. Records the stage refused count as handled once
// committed, as they are.
func (c *cluster) persistLag(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cl := c.kafka()
	meta, err := cl.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{"send_msg"}})
	if err != nil {
		return 0, err
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		return 0, fmt.Errorf("send_msg metadata: %+v", meta.Topics)
	}
	var parts []int
	var reqs []kafkago.OffsetRequest
	for _, p := range meta.Topics[0].Partitions {
		parts = append(parts, p.ID)
		reqs = append(reqs, kafkago.LastOffsetOf(p.ID))
	}
	ends, err := cl.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{"send_msg": reqs}})
	if err != nil {
		return 0, err
	}
	done, err := cl.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: "parley-persist", Topics: map[string][]int{"send_msg": parts}})
	if err != nil {
		return 0, err
	}
	if done.Error != nil {
		return 0, done.Error
	}
	committed := map[int]int64{}
	for _, p := range done.Topics["send_msg"] {
		if p.Error != nil {
			return 0, p.Error
		}
		committed[p.Partition] = p.CommittedOffset
	}
	var lag int64
	for _, p := range ends.Topics["send_msg"] {
		if p.Error != nil {
			return 0, p.Error
		}
		lag += max(p.LastOffset-max(committed[p.Partition], 0), 0)
	}
	return lag, nil
}

// persisted reads parley_messages_persisted_total from url's /metrics (NaN
// when it does not answer).
func persisted(ctx context.Context, url string) float64 {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return math.NaN()
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "parley_messages_persisted_total "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return math.NaN()
}

// settle waits until the persist stage has committed every record of
// send_msg, the store has stopped growing and every client has delivered
// its rooms' last stored seq, or within passes (store errors meanwhile are
// waited out); a client no longer a member of a room, as the store's
// timeline tells (a removal applied after the moderator's last pass gave up
// on it), is not waited for there. It polls every 2 s, one pass over the
// store each time. (A store that is stable for a while is not enough: a
// slow persist batch, tens of seconds on FerretDB under load, looks just
// like it, and what it holds would be counted lost.)
func (c *cluster) settle(ctx context.Context, within time.Duration, clients []*client.Client, clientRooms [][]string, names, rooms []string) bool {
	deadline := time.Now().Add(within)
	var prev map[string]int64
	stableSince := time.Now()
	lag := int64(-1)
	for {
		lasts, tl, err := lastSeqs(ctx, c.svc.MongoURI(), c.db, rooms)
		if err == nil {
			lag, err = c.persistLag(ctx)
		}
		behind := -1
		if err == nil {
			if !mapsEqual(lasts, prev) {
				prev, stableSince = lasts, time.Now()
			}
			behind = 0
			for i, cl := range clients {
				for _, r := range clientRooms[i] {
					if ivs := tl.of(r, names[i]); len(ivs) == 0 || ivs[len(ivs)-1].To != open {
						continue
					}
					if cl.Last(r) < lasts[r] {
						behind++
					}
				}
			}
			if lag == 0 && behind == 0 && time.Since(stableSince) >= 4*time.Second {
				logf(c.out, c.start, "settled: every send handled by the persist stage, store stable and every client caught up")
				return true
			}
		}
		if time.Now().After(deadline) {
			logf(c.out, c.start, "not settled within %v: persist lag %d records, %d client-rooms behind the store (store or broker: %v)", within, lag, behind, err)
			return false
		}
		if !sleep(ctx, 2*time.Second) {
			return false
		}
	}
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// lockedWriter serializes writes of several instances' output.
type lockedWriter struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.w.Flush()
}
