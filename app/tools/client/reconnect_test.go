package client_test

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/parley-chat/parley/app/tools/client"
)

// The reconnect policy: a lost connection is followed at once by the other
// instances, one after another; the client backs off only when a whole
// round of them failed. The tests judge by the client's own record of the
// outage (attempts, pauses, phases), not by time alone.

// restart closes the connection as a server shutting down does: 1012.
func (c *fakeConn) restart() {
	_ = c.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1012, "server restarting; reconnect and resume"))
}

// group is fake instances: the first connection (to any) is held until
// restart is closed, then the instance goes down (if down is set) and the
// connection closes with 1012; the connections after it are served by
// later.
type group struct {
	fakes   []*fake
	first   atomic.Int32 // 1 + the index of the fake that took the first connection
	restart chan struct{}
	down    bool
	later   func(ws *fakeConn)
}

func newGroup(t *testing.T, n int, down bool, later func(ws *fakeConn)) *group {
	g := &group{fakes: make([]*fake, n), restart: make(chan struct{}), down: down, later: later}
	var conns atomic.Int32
	for i := range g.fakes {
		g.fakes[i] = newFake(t, func(ws *fakeConn) {
			if conns.Add(1) > 1 {
				g.later(ws)
				return
			}
			g.first.Store(int32(i + 1))
			ws.joined("r")
			<-g.restart
			if g.down {
				g.fakes[i].down.Store(true)
			}
			ws.restart()
		})
	}
	return g
}

func (g *group) urls() []string {
	var out []string
	for _, f := range g.fakes {
		out = append(out, f.srv.URL)
	}
	return out
}

// lost is the fake of the first connection, others the rest.
func (g *group) lost() *fake { return g.fakes[g.first.Load()-1] }
func (g *group) others() []*fake {
	var out []*fake
	for _, f := range g.fakes {
		if f != g.lost() {
			out = append(out, f)
		}
	}
	return out
}

// serveOn answers the join and holds the connection until the client ends.
// A connection closed before its join is one the client dialled alongside
// a /readyz that said no.
func serveOn(ws *fakeConn) {
	f := ws.read()
	if f == nil {
		return
	}
	if f["type"] != "join" || f["room"] != "r" {
		ws.t.Errorf("first frame %v, want a join of r", f)
	}
	ws.send(map[string]any{"type": "joined", "room": "r", "last_seq": 0})
	for ws.read() != nil {
	}
}

// waitOutage waits until the client recorded a recovered outage.
func waitOutage(t *testing.T, c *client.Client) client.Outage {
	t.Helper()
	for t0 := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		r := c.Record()
		if len(r.Outages) > 0 && r.Outages[0].Recovered > 0 {
			if len(r.Outages) != 1 {
				t.Fatalf("outages %+v, want one", r.Outages)
			}
			return r.Outages[0]
		}
		if time.Since(t0) > 15*time.Second {
			t.Fatalf("no recovered outage after 15 s: %+v", r.Outages)
		}
	}
}

// TestReconnectElsewhereAtOnce: the instance closes with 1012 (restarting)
// and refuses new connections; the client goes to the other one at once:
// one attempt, no backoff pause, no try of the instance restarting.
func TestReconnectElsewhereAtOnce(t *testing.T) {
	g := newGroup(t, 2, true, serveOn)
	const pause = 2 * time.Second // any backoff pause is at least this
	c := startClient(t, g.fakes[0], func(cfg *client.Config) {
		cfg.URLs, cfg.SkipReadyCheck = g.urls(), false
		cfg.BackoffMin, cfg.BackoffMax = pause, 4*pause
	})
	lost, other := g.lost(), g.others()[0]
	close(g.restart)
	o := waitOutage(t, c)
	if o.Attempts != 1 || o.Backoffs != 0 || o.Backoff != 0 {
		t.Errorf("attempts %d, backoffs %d (%v): want one attempt and no backoff", o.Attempts, o.Backoffs, o.Backoff)
	}
	if o.Instance != lost.srv.URL || o.To != other.srv.URL || !strings.Contains(o.Cause, "1012") {
		t.Errorf("lost %s (%s), recovered on %s: want %s lost to 1012, recovered on %s", o.Instance, o.Cause, o.To, lost.srv.URL, other.srv.URL)
	}
	if n := lost.dials.Load(); n != 1 {
		t.Errorf("%d dials of the instance restarting, want only the first connection's", n)
	}
	if o.Spread > pause/2 {
		t.Errorf("spread %v, want at most BackoffMin/2 = %v", o.Spread, pause/2)
	}
	// Generous on a busy machine: a local dial and join take milliseconds,
	// the shortest backoff pause 2 s.
	if rest := o.Recovered - o.Spread; rest >= pause {
		t.Errorf("recovered %v after a spread of %v: %v more, as long as a backoff pause", o.Recovered, o.Spread, rest)
	}
	if o.Phases.Ready <= 0 || o.Phases.Dial <= 0 || o.Phases.Join <= 0 || o.Phases.Total() > o.Recovered {
		t.Errorf("phases %v (total %v) of a recovery in %v: want each step timed, within it", o.Phases, o.Phases.Total(), o.Recovered)
	}
	if !c.Connected() {
		t.Error("not connected")
	}
}

// TestReconnectNextInRoundAtOnce: of three instances, the one lost is
// restarting and the first other one tried refuses the client; the third
// takes it, still at once: a failed attempt is followed by the next
// instance of the round, not by a pause.
func TestReconnectNextInRoundAtOnce(t *testing.T) {
	g := newGroup(t, 3, true, serveOn)
	// The first upgrade asked after the restart is refused (the instance
	// restarting is down by then: it is one of the others).
	var armed, refused atomic.Bool
	for _, f := range g.fakes {
		f.refuse = func() bool { return armed.Load() && refused.CompareAndSwap(false, true) }
	}
	const pause = 2 * time.Second
	c := startClient(t, g.fakes[0], func(cfg *client.Config) {
		cfg.URLs, cfg.SkipReadyCheck = g.urls(), false
		cfg.BackoffMin, cfg.BackoffMax = pause, 4*pause
	})
	armed.Store(true)
	close(g.restart)
	o := waitOutage(t, c)
	if !refused.Load() || o.Attempts != 2 || o.Backoffs != 0 || o.Backoff != 0 || o.To == o.Instance {
		t.Errorf("attempts %d, backoffs %d (%v), lost %s, to %s: want a refusal, then the third instance at once",
			o.Attempts, o.Backoffs, o.Backoff, o.Instance, o.To)
	}
	if rest := o.Recovered - o.Spread; rest >= pause {
		t.Errorf("recovered %v after a spread of %v: %v more, as long as a backoff pause", o.Recovered, o.Spread, rest)
	}
}

// TestReconnectOneURLAtOnce: with one URL (a load balancer in front of
// the instances) the lost connection's URL is tried again at once.
func TestReconnectOneURLAtOnce(t *testing.T) {
	restart := make(chan struct{})
	var conns atomic.Int32
	f := newFake(t, func(ws *fakeConn) {
		if conns.Add(1) > 1 {
			serveOn(ws)
			return
		}
		ws.joined("r")
		<-restart
		ws.restart()
	})
	const pause = 2 * time.Second
	c := startClient(t, f, func(cfg *client.Config) { cfg.BackoffMin, cfg.BackoffMax = pause, 4*pause })
	close(restart)
	o := waitOutage(t, c)
	if o.Attempts != 1 || o.Backoffs != 0 || o.To != f.srv.URL {
		t.Errorf("attempts %d, backoffs %d, to %s: want one attempt at once to %s", o.Attempts, o.Backoffs, o.To, f.srv.URL)
	}
	if rest := o.Recovered - o.Spread; rest >= pause {
		t.Errorf("recovered %v after a spread of %v: %v more, as long as a backoff pause", o.Recovered, o.Spread, rest)
	}
}

// TestReadyAlongsideDial: the /readyz check runs alongside the dial (one
// round trip fewer), and the joins wait for its 200.
func TestReadyAlongsideDial(t *testing.T) {
	restart, gate := make(chan struct{}), make(chan struct{})
	var armed, answered, joinedEarly atomic.Bool
	var conns atomic.Int32
	f := newFake(t, func(ws *fakeConn) {
		if conns.Add(1) == 1 {
			ws.joined("r")
			<-restart
			ws.restart()
			return
		}
		fr := ws.read()
		if !answered.Load() {
			joinedEarly.Store(true)
		}
		if fr["type"] == "join" {
			ws.send(map[string]any{"type": "joined", "room": "r", "last_seq": 0})
		}
		for ws.read() != nil {
		}
	})
	var release sync.Once
	open := func() { release.Do(func() { close(gate) }) }
	f.readyHook = func() {
		if armed.Load() {
			<-gate
			answered.Store(true)
		}
	}
	c := startClient(t, f, func(cfg *client.Config) { cfg.SkipReadyCheck = false })
	t.Cleanup(open) // runs first: the fake server's Close waits for the held /readyz
	armed.Store(true)
	close(restart)
	for t0 := time.Now(); f.dials.Load() < 2; time.Sleep(5 * time.Millisecond) {
		if time.Since(t0) > 10*time.Second {
			t.Fatal("no dial while /readyz was held: the check is not alongside the dial")
		}
	}
	time.Sleep(200 * time.Millisecond) // room for a join that does not wait
	if joinedEarly.Load() {
		t.Fatal("the client joined before /readyz answered")
	}
	open()
	o := waitOutage(t, c)
	if joinedEarly.Load() || o.Attempts != 1 || o.Phases.Ready < 200*time.Millisecond || o.Phases.Ready > o.Phases.Total() {
		t.Errorf("joined early %v, attempts %d, phases %v (total %v): want one attempt, its join after the held /readyz",
			joinedEarly.Load(), o.Attempts, o.Phases, o.Phases.Total())
	}
}

// TestReconnectBacksOffWhenNoneAnswers: both instances go down; the client
// backs off after each round that failed, a round trying each instance
// once, until one is back.
func TestReconnectBacksOffWhenNoneAnswers(t *testing.T) {
	g := newGroup(t, 2, true, serveOn)
	const lo, hi = 50 * time.Millisecond, 200 * time.Millisecond
	c := startClient(t, g.fakes[0], func(cfg *client.Config) {
		cfg.URLs, cfg.SkipReadyCheck = g.urls(), false
		cfg.BackoffMin, cfg.BackoffMax = lo, hi
	})
	lost, other := g.lost(), g.others()[0]
	other.down.Store(true)
	close(g.restart)
	// Several rounds fail: the dials of the fail-open rounds show them.
	for t0 := time.Now(); lost.dials.Load()+other.dials.Load() < 5; time.Sleep(10 * time.Millisecond) {
		if time.Since(t0) > 15*time.Second {
			t.Fatalf("dials %d + %d after 15 s", lost.dials.Load(), other.dials.Load())
		}
	}
	if c.Connected() {
		t.Fatal("connected with both instances down")
	}
	other.down.Store(false)
	o := waitOutage(t, c)
	if o.Backoffs < 2 {
		t.Fatalf("%d backoff pauses over %d attempts, want several", o.Backoffs, o.Attempts)
	}
	// One round between two pauses: the first of the other instance only,
	// the next of both.
	if o.Attempts < o.Backoffs+1 || o.Attempts > 1+2*o.Backoffs {
		t.Errorf("%d attempts with %d pauses: want one round (at most one try of each instance) between pauses", o.Attempts, o.Backoffs)
	}
	if o.Backoff < time.Duration(o.Backoffs)*lo || o.Backoff > time.Duration(o.Backoffs)*hi {
		t.Errorf("%d pauses took %v, want each in [%v, %v]", o.Backoffs, o.Backoff, lo, hi)
	}
	if o.To != other.srv.URL || o.LastErr == "" {
		t.Errorf("recovered on %s (last failure %q), want %s after failures", o.To, o.LastErr, other.srv.URL)
	}
}

// TestReconnectFailsOpen: when a round finds no instance ready (the store
// is down for all), the next round connects without asking, as a load
// balancer fails open.
func TestReconnectFailsOpen(t *testing.T) {
	g := newGroup(t, 2, false, serveOn)
	c := startClient(t, g.fakes[0], func(cfg *client.Config) {
		cfg.URLs, cfg.SkipReadyCheck = g.urls(), false
		cfg.BackoffMin, cfg.BackoffMax = 20*time.Millisecond, 100*time.Millisecond
	})
	for _, f := range g.fakes {
		f.unready.Store(true)
	}
	close(g.restart)
	o := waitOutage(t, c)
	// The other instance not ready, a pause, then the first of the round
	// of both taken without its /readyz.
	if o.Attempts != 2 || o.Backoffs != 1 || o.Phases.Ready != 0 || !strings.Contains(o.LastErr, "not ready") {
		t.Errorf("attempts %d, backoffs %d, ready check %v, last failure %q: want a round not ready, one pause, then a connection without the check",
			o.Attempts, o.Backoffs, o.Phases.Ready, o.LastErr)
	}
}

// TestRecoveryPhasesAndCatchUp: the record says which step of the
// recovering attempt took the time (a join answered late here), and when
// the replay of what the client missed was in (CaughtUp), apart from when
// it was live again (Recovered).
func TestRecoveryPhasesAndCatchUp(t *testing.T) {
	replay := make(chan struct{})
	const slowJoin = 300 * time.Millisecond
	later := func(ws *fakeConn) {
		if f := ws.read(); f["type"] != "join" || f["after"] != float64(0) {
			t.Errorf("rejoin %v, want a join after 0", f)
		}
		time.Sleep(slowJoin)
		ws.send(map[string]any{"type": "joined", "room": "r", "last_seq": 3})
		<-replay
		for seq := int64(1); seq <= 3; seq++ {
			ws.send(item(seq, "bob", "", "missed", nil))
		}
		for ws.read() != nil {
		}
	}
	g := newGroup(t, 2, false, later)
	c := startClient(t, g.fakes[0], func(cfg *client.Config) { cfg.URLs = g.urls() })
	close(g.restart)
	o := waitOutage(t, c)
	if o.CaughtUp != 0 {
		t.Errorf("caught up (%v) before the replay", o.CaughtUp)
	}
	if name, d := o.Phases.Slowest(); name != "join" || d < slowJoin {
		t.Errorf("slowest step %s %v (%v), want the join, at least %v", name, d, o.Phases, slowJoin)
	}
	close(replay)
	waitLast(t, c, 3)
	o = c.Record().Outages[0]
	if o.CaughtUp < o.Recovered {
		t.Errorf("caught up %v, recovered %v: want caught up once seq 3 came, after the recovery", o.CaughtUp, o.Recovered)
	}
}

// TestReconnectFlapsBackOff: instances that take the client and drop it at
// once are not hammered: of the losses in a row within a second of their
// connection, the first is followed at once, the next by a pause each; a
// connection that lasted resets that.
func TestReconnectFlapsBackOff(t *testing.T) {
	var conns atomic.Int32
	serve := func(ws *fakeConn) {
		n := conns.Add(1)
		switch {
		case n <= 4:
			ws.joined("r")
			ws.restart()
		case n == 5:
			ws.joined("r")
			time.Sleep(1200 * time.Millisecond) // past stableAfter
			ws.restart()
		default:
			serveOn(ws)
		}
	}
	a, b := newFake(t, serve), newFake(t, serve)
	const lo = 50 * time.Millisecond
	c := startClient(t, a, func(cfg *client.Config) {
		cfg.URLs = []string{a.srv.URL, b.srv.URL}
		cfg.BackoffMin, cfg.BackoffMax = lo, 4*lo
	})
	var outs []client.Outage
	for t0 := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		outs = c.Record().Outages
		if len(outs) == 5 && outs[4].Recovered > 0 {
			break
		}
		if time.Since(t0) > 15*time.Second {
			t.Fatalf("outages after 15 s: %+v", outs)
		}
	}
	var pauses []int
	for _, o := range outs {
		pauses = append(pauses, o.Backoffs)
	}
	if want := []int{0, 1, 1, 1, 0}; !slices.Equal(pauses, want) {
		t.Fatalf("backoff pauses per outage %v, want %v (the first flap at once, the next ones paused, none after a lasting connection)", pauses, want)
	}
	for i, o := range outs[1:4] {
		if o.Backoff < lo {
			t.Errorf("outage %d paused %v, want at least BackoffMin %v", i+1, o.Backoff, lo)
		}
	}
}
