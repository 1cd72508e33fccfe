// Package client is the Go client of Parley for programs: a WebSocket
// client that recovers on its own, the one the tests, the chaos command and
// the load generator use (the browser's counterpart is the ES module
// static/js/parley-client.js). It keeps, per
// room, the last seq it delivered; when its connection drops it reconnects
// at once to another ready instance (backing off, jittered and exponential,
// only when none takes it) and rejoins with `after`, so the server replays
// what it missed. A seq jump on a live
// connection is closed from the history (GET …/messages?after=), repeats are
// dropped by seq, and a send is retried under the same id until it is
// acknowledged or its budget runs out.
//
// Rooms with members (PROTOCOL.md v2): when the server ends a subscription
// with "left" (the client's removal or ban), or refuses a join with
// not_found or forbidden, the client stops expecting the room and does not
// join it again until Rejoin (the program learns of a re-add; the server
// does not tell the target). The rejoin resumes after the last seq
// delivered, and the server replays from the add's seq: a jump to the
// client's own add starts a new stretch of membership, not a gap. A send
// the server refuses after its ack (the persist stage decides later) is
// recorded as refused.
//
// A message's life (PROTOCOL.md v2 "Message lifecycle"): Edit, Delete and
// React send the lifecycle frames, acknowledged and retried under their id
// like a send, and SendReply a reply. The client keeps a folded view of each
// room: every plain message it delivered as it stands now, each lifecycle
// item it delivered folded into its target in seq order by chat.Message.Fold
// itself (the tools may import app/chat; only the server may not import the
// tools), so the client and the server's history cannot disagree on the
// rule. RoomRecord.Messages is that view.
//
// Everything it does is recorded (Record) so that a test can check, from the
// client's side, what it was sent and what it was told.
//
// In short (see Example): New with the instances' URLs, a guest Name (or a
// Token) and the Rooms; Run in a goroutine until the context ends;
// WaitConnected; Send(ctx, room, id, text), which returns once the server
// acknowledged it; Last and Record for what arrived.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/parley-chat/parley/app/chat"
)

// Config configures a Client. Zero fields mean the defaults given.
type Config struct {
	// URLs are the instances' base URLs (http://host:port). The client
	// connects to one at random; when a connection is lost or an attempt
	// fails, it tries the others, one after another at once. Required.
	URLs []string
	// Token is a session token. When empty, the client signs in as the
	// guest Name (POST /api/session) on its first connection. Name is also
	// the name the client goes by (to know its own add in a room's
	// timeline): give it with a Token too.
	Token string
	Name  string
	// Rooms are joined on every connection.
	Rooms []string

	// BackoffMin and BackoffMax bound the reconnect delay, paid only when
	// a whole round of URLs failed: after the n-th such round in a row
	// (from 0) the client waits a random time in [BackoffMin,
	// min(BackoffMax, BackoffMin·2ⁿ)] (full jitter, so a crowd of clients
	// does not reconnect in step). The first attempt after a lost
	// connection waits only a random spread of at most BackoffMin/2.
	// Defaults 100 ms and 5 s.
	BackoffMin, BackoffMax time.Duration
	// AckTimeout is how long a send waits for its ack on one connection
	// before it is sent again under the same id. It should exceed the
	// server's own publish timeout (5 s), which answers "unavailable".
	// Default 7 s.
	AckTimeout time.Duration
	// SendBudget bounds the whole life of a send, every retry included;
	// past it Send gives up with ErrNotAcked. Default 60 s.
	SendBudget time.Duration
	// JoinTimeout bounds the wait for every room's "joined" on a new
	// connection. Default 25 s: the server bounds each join by 10 s and
	// answers an error past it; a client that gave up sooner would only
	// leave the server working on a join nobody waits for.
	JoinTimeout time.Duration
	// PingInterval is how often the client pings; with no frame at all for
	// three intervals the connection is taken for dead. Default 15 s.
	PingInterval time.Duration
	// SkipReadyCheck stops the client from asking an instance's /readyz
	// before it connects (as a load balancer's health check would).
	SkipReadyCheck bool

	// HTTPClient is used for sign-in, readiness and history. Default: a
	// client with a 5 s timeout.
	HTTPClient *http.Client
	// Dialer dials WebSocket connections. Default: websocket.DefaultDialer
	// with a 5 s handshake timeout.
	Dialer *websocket.Dialer
}

func (c *Config) defaults() {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	set(&c.BackoffMin, 100*time.Millisecond)
	set(&c.BackoffMax, 5*time.Second)
	set(&c.AckTimeout, 7*time.Second)
	set(&c.SendBudget, 60*time.Second)
	set(&c.JoinTimeout, 25*time.Second)
	set(&c.PingInterval, 15*time.Second)
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	if c.Dialer == nil {
		d := *websocket.DefaultDialer
		d.HandshakeTimeout = 5 * time.Second
		c.Dialer = &d
	}
}

// Message is a chat message as the server sends it.
type Message struct {
	Room string `json:"room"`
	Seq  int64  `json:"seq"`
	ID   string `json:"id"`
	User string `json:"user"`
	Text string `json:"text"`
	TS   string `json:"ts"`
	// Kind and Data tell a timeline item that is not a plain message
	// (a membership change: kind "member").
	Kind string    `json:"kind,omitempty"`
	Data *ItemData `json:"data,omitempty"`
	// Mentions are the members the text names (v2).
	Mentions []string `json:"mentions,omitempty"`
	// ReplyTo is the seq of the item the message answers.
	ReplyTo int64 `json:"reply_to,omitempty"`
	// EditedTS, Deleted and Reactions are the message as it stands: in the
	// history (folded by the server) and in the client's folded view; a
	// message frame carries them only for a message stored deleted.
	EditedTS  string              `json:"edited_ts,omitempty"`
	Deleted   bool                `json:"deleted,omitempty"`
	Reactions map[string][]string `json:"reactions,omitempty"`
}

// ItemData is the data of a membership item or of a lifecycle item: the
// server's own type, whose JSON tells a membership item's "target" (a user,
// Target) from a lifecycle item's (a seq, TargetSeq).
type ItemData = chat.ItemData

// Kinds of lifecycle items (and of Sent.Kind).
const (
	KindEdit     = chat.KindEdit
	KindDelete   = chat.KindDelete
	KindReaction = chat.KindReaction
)

// How a delivered message reached the client.
const (
	Live    = "live"    // a message frame (live or the server's replay after join)
	History = "history" // fetched to close a seq gap
)

// Delivered is one message the client accepted, in the order accepted.
type Delivered struct {
	Seq int64
	ID  string
	At  time.Time
	Via string // Live or History
}

// RoomRecord is what the client saw of one room.
type RoomRecord struct {
	Room string
	// Start is the seq the client started from: the room's last_seq at its
	// first join (it joined without after). It expects every seq after it.
	Start int64
	// Delivered are the messages accepted, after dedupe and gap filling.
	Delivered []Delivered
	// Duplicates counts message frames dropped because their seq was
	// already delivered.
	Duplicates int
	// Gaps counts seq jumps seen on a live connection; GapsFilled those
	// closed from the history (the others were closed by reconnecting).
	Gaps, GapsFilled int
	// Exits are the times the client stopped expecting the room because it
	// was no longer a member; Resumes counts the seq jumps it took as the
	// start of a new membership (the next delivery was its own add).
	Exits   []Exit
	Resumes int
	// AfterLeft counts message frames of the room that came while the
	// client had left it: the server must send none.
	AfterLeft int
	// Messages is the folded view: every plain message delivered (kind
	// none), in seq order, as it stands after the lifecycle items
	// delivered. Lifecycle items about a message not delivered (before
	// Start) are not folded anywhere.
	Messages []Message
}

// Exit is the end of a stretch of membership, as the client learned it.
type Exit struct {
	At time.Time
	// Seq is the last seq delivered when it left.
	Seq int64
	// Reason is the left frame's ("removed", "banned", "left") or, for a
	// join refused, "refused: " and the code.
	Reason string
	// Frame says the server's "left" frame told it (the subscription was
	// live at the removal); else a refused join did.
	Frame bool
}

// Last is the last delivered seq (Start when none).
func (r RoomRecord) Last() int64 {
	if n := len(r.Delivered); n > 0 {
		return r.Delivered[n-1].Seq
	}
	return r.Start
}

// Sent is one message the client sent (under one id, however many tries),
// or one edit, delete or reaction.
type Sent struct {
	Room, ID string
	// Kind is "" for a message, else KindEdit, KindDelete or KindReaction;
	// Target is the seq such an item is about.
	Kind   string
	Target int64
	// First is when it was first sent; AckedAt when the first ack came
	// (zero if none).
	First, AckedAt time.Time
	Acked          bool
	// Attempts counts the frames sent under this id.
	Attempts int
	// Err is why the client gave up, when it did.
	Err string
	// Refused is the code of the server's refusal (not_found, forbidden,
	// ...), before or after the ack; RefusedAfterAck says it came after:
	// the persist stage decided against it, and it is not stored.
	Refused         string
	RefusedAfterAck bool
}

// Confirmed reports whether the server took the message: acknowledged and
// not refused afterwards.
func (s Sent) Confirmed() bool { return s.Acked && s.Refused == "" }

// Outage is one lost connection and how long the client took to get back.
type Outage struct {
	// At is when the connection was lost; Cause what ended it; Instance
	// the base URL it was to.
	At       time.Time
	Cause    string
	Instance string
	// Recovered is the time from At until every room was joined again on a
	// new connection (zero while not recovered): the client is live again,
	// taking live messages and acks, from then on.
	Recovered time.Duration
	// CaughtUp is the time from At until, besides, every room rejoined had
	// delivered up to the last seq its "joined" told: the server's replay
	// of what the client missed is in (zero until then, and for good when
	// the connection was lost again first).
	CaughtUp time.Duration
	// Attempts counts the connection attempts it took; LastErr is why the
	// last failed one failed.
	Attempts int
	LastErr  string
	// Spread is the random pause before the first attempt (at most
	// BackoffMin/2); Backoffs counts the pauses taken because a whole round
	// of instances failed, Backoff is their sum.
	Spread   time.Duration
	Backoffs int
	Backoff  time.Duration
	// To is the instance the client recovered on, Phases the steps of the
	// attempt that succeeded. Recovered less Spread, Backoff and Phases'
	// total is the time the failed attempts took.
	To     string
	Phases Phases
}

// Phases is how long each step of one connection attempt took.
type Phases struct {
	// Ready is the /readyz check (zero when skipped), asked alongside
	// SignIn, the guest sign-in (zero with a token, or once signed in),
	// and Dial, the TCP connect and WebSocket upgrade. Join runs once both
	// are done: from the joins sent (at once, every room) until every
	// room's "joined" came.
	Ready, SignIn, Dial, Join time.Duration
	total                     time.Duration
}

// Total is the attempt's whole time: the longer of Ready and SignIn+Dial,
// then Join.
func (p Phases) Total() time.Duration {
	if p.total > 0 {
		return p.total
	}
	return max(p.Ready, p.SignIn+p.Dial) + p.Join
}

// Slowest names the longest step and its time.
func (p Phases) Slowest() (string, time.Duration) {
	name, d := "ready", p.Ready
	for _, s := range []struct {
		name string
		d    time.Duration
	}{{"sign-in", p.SignIn}, {"dial", p.Dial}, {"join", p.Join}} {
		if s.d > d {
			name, d = s.name, s.d
		}
	}
	return name, d
}

// String is each step's time, in milliseconds.
func (p Phases) String() string {
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) + "ms" }
	return "ready " + ms(p.Ready) + ", sign-in " + ms(p.SignIn) + ", dial " + ms(p.Dial) + ", join " + ms(p.Join)
}

// Record is a snapshot of everything the client did.
type Record struct {
	Rooms   map[string]RoomRecord
	Sent    []Sent
	Outages []Outage
	// Connects counts successful connections (every room joined).
	Connects int
}

// ErrNotAcked is returned by Send when the budget ran out before an ack.
var ErrNotAcked = errors.New("client: send not acknowledged within its budget")

// ErrRejected is returned by Send when the server refused the message for
// good (bad_request, forbidden, too_large).
var ErrRejected = errors.New("client: send rejected")

// Client is one recovering connection. Start it with Run; its methods are
// safe for concurrent use.
type Client struct {
	cfg Config

	mu       sync.Mutex
	token    string
	user     string // the name the client goes by
	rooms    map[string]*roomState
	sent     []*sendState
	pending  map[string]*sendState // by room+"\x00"+id, not yet acked
	sentBy   map[string]*sendState // by room+"\x00"+id, every send (for refusals after the ack)
	outages  []Outage
	connects int
	conn     *conn         // current connection, every room joined; nil between
	connCh   chan struct{} // closed and replaced whenever conn changes
	// catching is 1 + the index in outages of the outage whose replay is
	// not yet in (Outage.CaughtUp), 0 when none.
	catching int
}

type roomState struct {
	rec RoomRecord
	// view is the folded view by seq; order its seqs, ascending.
	view    map[int64]*Message
	order   []int64
	started bool // Start is known (first joined seen)
	// left: the client is not a member as far as it knows, and joins the
	// room only after Rejoin.
	left bool
	// want counts Rejoin calls, have is want at the last "joined";
	// joinedOn is the connection of that "joined", joinedLast its last_seq.
	want, have int
	joinedOn   *conn
	joinedLast int64
	// rejoinUntil: a join refused before it is tried again (the instance
	// may not have seen the add yet).
	rejoinUntil time.Time
}

type sendState struct {
	rec    Sent
	frame  frame         // sent again as it is on every try
	acked  chan struct{} // closed on ack or give-up
	result error
	// wake tells the Send loop to send again now (an error answer, or a
	// new connection).
	wake chan struct{}
}

// New returns a Client for cfg; Run connects it.
func New(cfg Config) (*Client, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("client: Config.URLs is empty")
	}
	if cfg.Token == "" && cfg.Name == "" {
		return nil, errors.New("client: Config needs a Token or a Name")
	}
	cfg.defaults()
	c := &Client{
		cfg:     cfg,
		token:   cfg.Token,
		user:    cfg.Name,
		rooms:   map[string]*roomState{},
		pending: map[string]*sendState{},
		sentBy:  map[string]*sendState{},
		connCh:  make(chan struct{}),
	}
	for _, r := range cfg.Rooms {
		c.rooms[r] = &roomState{rec: RoomRecord{Room: r}, view: map[int64]*Message{}}
	}
	return c, nil
}

// Run keeps the client connected until ctx ends: connect, join every room
// (resuming after the last seq delivered), read until the connection fails,
// again. A lost connection is followed at once by a round of the other
// instances (see reconnect); the client backs off only when a whole round
// failed. It returns ctx's error.
func (c *Client) Run(ctx context.Context) error {
	var out *Outage // the outage being recovered from, nil on the first connection
	skip := ""      // the instance just lost
	flaps := 0      // connections in a row lost within stableAfter
	for ctx.Err() == nil {
		cn := c.reconnect(ctx, out, skip, max(0, flaps-1))
		if cn == nil {
			break
		}
		connected := time.Now()
		c.mu.Lock()
		c.connects++
		if out != nil {
			out.Recovered = time.Since(out.At)
			c.outages = append(c.outages, *out)
			c.catching = len(c.outages)
		}
		c.setConn(cn)
		c.checkCaughtUp()
		// Rooms Rejoin asked for while joinAll was under way.
		var late []string
		for name, rs := range c.rooms {
			if rs.want > rs.have && rs.joinedOn != cn {
				late = append(late, name)
			}
		}
		c.mu.Unlock()
		for _, room := range late {
			cn.join(room)
		}

		cause := cn.serve(ctx)

		c.mu.Lock()
		c.setConn(nil)
		c.catching = 0
		c.mu.Unlock()
		cn.close()
		if ctx.Err() != nil {
			break
		}
		out = &Outage{At: time.Now(), Cause: cause.Error(), Instance: cn.base}
		skip = cn.base
		if out.At.Sub(connected) < stableAfter {
			flaps++
		} else {
			flaps = 0
		}
		// A crowd whose instance died all learn it in the same instant: a
		// spread of a few tens of milliseconds keeps them from arriving at
		// the other instances in one burst, and costs a client next to
		// nothing.
		out.Spread = rand.N(c.cfg.BackoffMin/2 + 1)
		if !sleep(ctx, out.Spread) {
			break
		}
	}
	if out != nil && out.Recovered == 0 {
		c.mu.Lock()
		c.outages = append(c.outages, *out)
		c.mu.Unlock()
	}
	return ctx.Err()
}

// reconnect connects to the first instance that takes the client, and
// returns nil once ctx ends. A round tries every instance once, one after
// another and in a random order (so that the clients of a dead instance
// spread over the others), leaving out skip, the instance just lost, when
// there is another: a connection closed with 1012 (restarting), cut or
// silent says nothing about the other instances, which take the client at
// once. Only when a whole round failed does it back off (full jitter,
// BackoffMin·2ⁿ after the n-th failed round, at most BackoffMax) before the
// next round, of every instance. out, when not nil, records the attempts,
// the pauses and the phases of the attempt that succeeded.
//
// flaps rounds are taken as failed already: Run passes the connections in
// a row, after the first, that were lost within stableAfter of being made,
// so that instances that take the client and drop it at once (a join
// refused after the fact) are not hammered in a loop.
func (c *Client) reconnect(ctx context.Context, out *Outage, skip string, flaps int) *conn {
	// Fail open, as load balancers do: after a round that found no
	// instance ready (the bus or the store is down for all of them), the
	// next one connects without asking; joins work once the store answers.
	open := false
	for round := flaps; ctx.Err() == nil; round++ {
		if round > 0 {
			d := c.backoff(round - 1)
			if out != nil {
				out.Backoffs++
				out.Backoff += d
			}
			if !sleep(ctx, d) {
				return nil
			}
		}
		notReady, tried := 0, 0
		for _, base := range c.order(skip) {
			if ctx.Err() != nil {
				return nil
			}
			cn, ph, err := c.connect(ctx, base, !open && !c.cfg.SkipReadyCheck)
			tried++
			if out != nil {
				out.Attempts++
				if err != nil {
					out.LastErr = err.Error()
				}
			}
			if err == nil {
				if out != nil {
					out.To, out.Phases = base, ph
				}
				return cn
			}
			if errors.Is(err, errNotReady) {
				notReady++
			}
		}
		open = tried > 0 && notReady == tried
		skip = ""
	}
	return nil
}

// stableAfter is how long a connection must last for its loss not to
// count as a flap (see reconnect): of two losses in a row each within it
// of its connection, the second is followed by a backoff pause.
const stableAfter = time.Second

// order is one round of instances: every URL once, from a random start,
// skip left out unless it is the only one.
func (c *Client) order(skip string) []string {
	n := len(c.cfg.URLs)
	off := rand.IntN(n)
	out := make([]string, 0, n)
	for i := range n {
		u := c.cfg.URLs[(off+i)%n]
		if u == skip && n > 1 {
			continue
		}
		out = append(out, u)
	}
	return out
}

// setConn replaces the current connection and wakes whoever waits for one.
// c.mu is held.
func (c *Client) setConn(cn *conn) {
	c.conn = cn
	close(c.connCh)
	c.connCh = make(chan struct{})
}

func (c *Client) backoff(attempt int) time.Duration {
	max := c.cfg.BackoffMin << min(attempt, 20)
	if max > c.cfg.BackoffMax || max <= 0 {
		max = c.cfg.BackoffMax
	}
	return c.cfg.BackoffMin + rand.N(max-c.cfg.BackoffMin+1)
}

// errNotReady is a connection attempt's error when the instance's /readyz
// did not answer 200.
var errNotReady = errors.New("not ready")

// connect dials base, signs in if needed, and joins every room; it times
// each step. With check it asks base's /readyz too, alongside the sign-in
// and the dial (one round trip fewer in a recovery's path), and joins only
// once it answered 200.
func (c *Client) connect(ctx context.Context, base string, check bool) (*conn, Phases, error) {
	var ph Phases
	start := time.Now()
	type answer struct {
		err error
		d   time.Duration
	}
	var readyCh chan answer
	if check {
		readyCh = make(chan answer, 1)
		go func() {
			err := c.ready(ctx, base)
			readyCh <- answer{err, time.Since(start)}
		}()
	}
	// notReady waits for the readiness answer: an instance that is not
	// ready fails the attempt as such (a round of them fails open),
	// whatever else failed.
	notReady := func() error {
		if readyCh == nil {
			return nil
		}
		a := <-readyCh
		ph.Ready = a.d
		if a.err != nil {
			return fmt.Errorf("%s %w: %v", base, errNotReady, a.err)
		}
		return nil
	}
	t := start
	lap := func(d *time.Duration) {
		now := time.Now()
		*d, t = now.Sub(t), now
	}
	token, err := c.signIn(ctx, base)
	lap(&ph.SignIn)
	if err != nil {
		if nr := notReady(); nr != nil {
			return nil, ph, nr
		}
		return nil, ph, err
	}
	u := "ws" + strings.TrimPrefix(base, "http") + "/ws?token=" + url.QueryEscape(token)
	ws, _, err := c.cfg.Dialer.DialContext(ctx, u, nil)
	lap(&ph.Dial)
	if nr := notReady(); nr != nil {
		if ws != nil {
			_ = ws.Close()
		}
		return nil, ph, nr
	}
	if err != nil {
		return nil, ph, fmt.Errorf("dial %s: %w", base, err)
	}
	cn := &conn{c: c, base: base, ws: ws, done: make(chan struct{})}
	t = time.Now()
	err = cn.joinAll(ctx)
	lap(&ph.Join)
	if err != nil {
		cn.close()
		return nil, ph, err
	}
	ph.total = time.Since(start)
	return cn, ph, nil
}

// ready asks base's /readyz; nil means 200.
func (c *Client) ready(ctx context.Context, base string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("readyz %d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return nil
}

func (c *Client) signIn(ctx context.Context, base string) (string, error) {
	c.mu.Lock()
	token := c.token
	c.mu.Unlock()
	if token != "" {
		return token, nil
	}
	body, _ := json.Marshal(map[string]string{"name": c.cfg.Name})
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/api/session", strings.NewReader(string(body)))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("sign in: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("sign in: %d %s", resp.StatusCode, b)
	}
	var r struct{ Token, User string }
	if err := json.Unmarshal(b, &r); err != nil || r.Token == "" {
		return "", fmt.Errorf("sign in: answer %q", b)
	}
	c.mu.Lock()
	c.token = r.Token
	if r.User != "" {
		c.user = r.User
	}
	c.mu.Unlock()
	return r.Token, nil
}

// Connected reports whether the client has a connection with every room joined.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil
}

// WaitConnected waits until the client is connected or ctx ends.
func (c *Client) WaitConnected(ctx context.Context) error {
	for {
		c.mu.Lock()
		ok, ch := c.conn != nil, c.connCh
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Last returns the last seq delivered in room (the start point if none).
func (c *Client) Last(room string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.rooms[room]; r != nil {
		return r.rec.Last()
	}
	return 0
}

// Rejoin joins room again after the client was re-added to it (the server
// does not tell the target of an add): the join resumes after the last seq
// delivered, and the server replays from the add on. A join refused within
// JoinTimeout of the call is tried again, as the instance answering may not
// have seen the add yet; past it the room counts as left again.
func (c *Client) Rejoin(room string) {
	c.mu.Lock()
	rs := c.rooms[room]
	if rs == nil {
		c.mu.Unlock()
		return
	}
	rs.left = false
	rs.want++
	rs.rejoinUntil = time.Now().Add(c.cfg.JoinTimeout)
	cn := c.conn
	c.mu.Unlock()
	if cn != nil {
		cn.join(room)
	}
}

// Joined reports whether room is joined on the current connection, with
// every Rejoin answered.
func (c *Client) Joined(room string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := c.rooms[room]
	return rs != nil && c.conn != nil && !rs.left && rs.have >= rs.want && rs.joinedOn == c.conn
}

// Left reports whether the client knows it is no longer a member of room
// (and has not been asked to Rejoin since).
func (c *Client) Left(room string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := c.rooms[room]
	return rs != nil && rs.left
}

// Send sends text to room under id and waits for the ack, sending again
// under the same id whenever the connection changes, the server answers
// with a retryable error or AckTimeout passes, until SendBudget runs out
// (ErrNotAcked) or ctx ends. The server stores a (room, user, id) once, however
// many times it is sent.
func (c *Client) Send(ctx context.Context, room, id, text string) error {
	return c.send(ctx, frame{Type: "send", Room: room, ID: id, Text: text}, Sent{Room: room, ID: id})
}

// SendReply is Send of a reply to the item at seq replyTo.
func (c *Client) SendReply(ctx context.Context, room, id, text string, replyTo int64) error {
	return c.send(ctx, frame{Type: "send", Room: room, ID: id, Text: text, ReplyTo: replyTo}, Sent{Room: room, ID: id})
}

// Edit replaces the text of the client's own message at seq target, under
// id (its own id, not the message's): acknowledged and retried like Send.
func (c *Client) Edit(ctx context.Context, room, id string, target int64, text string) error {
	return c.send(ctx, frame{Type: "edit", Room: room, ID: id, Target: target, Text: text},
		Sent{Room: room, ID: id, Kind: KindEdit, Target: target})
}

// Delete deletes the message at seq target, under id, like Send.
func (c *Client) Delete(ctx context.Context, room, id string, target int64) error {
	return c.send(ctx, frame{Type: "delete", Room: room, ID: id, Target: target},
		Sent{Room: room, ID: id, Kind: KindDelete, Target: target})
}

// React adds (on) or takes back (!on) the client's reaction emoji to the
// message at seq target, under id, like Send.
func (c *Client) React(ctx context.Context, room, id string, target int64, emoji string, on bool) error {
	return c.send(ctx, frame{Type: "react", Room: room, ID: id, Target: target, Emoji: emoji, On: &on},
		Sent{Room: room, ID: id, Kind: KindReaction, Target: target})
}

// send sends f until its ack: Send's loop, for every kind of frame.
func (c *Client) send(ctx context.Context, f frame, rec Sent) error {
	room, id := f.Room, f.ID
	key := room + "\x00" + id
	rec.First = time.Now()
	s := &sendState{rec: rec, frame: f, acked: make(chan struct{}), wake: make(chan struct{}, 1)}
	c.mu.Lock()
	if _, dup := c.pending[key]; dup {
		c.mu.Unlock()
		return fmt.Errorf("client: %s/%s is already being sent", room, id)
	}
	c.pending[key] = s
	c.sentBy[key] = s
	c.sent = append(c.sent, s)
	c.mu.Unlock()

	budget := time.NewTimer(c.cfg.SendBudget)
	defer budget.Stop()
	ackTimer := time.NewTimer(time.Hour)
	ackTimer.Stop()
	defer ackTimer.Stop()
	retryBackoff := 0
	for {
		// Send on the current connection, or wait for one.
		c.mu.Lock()
		cn, connCh := c.conn, c.connCh
		c.mu.Unlock()
		var ackWait <-chan time.Time
		if cn != nil {
			c.mu.Lock()
			s.rec.Attempts++
			c.mu.Unlock()
			if err := cn.write(s.frame); err != nil {
				cn.fail(err) // the reader notices and the client reconnects
			}
			ackTimer.Reset(c.cfg.AckTimeout)
			ackWait = ackTimer.C
		}
		select {
		case <-s.acked:
			return s.result
		case <-s.wake:
			// A retryable error answer: pause a little, then again.
			if !sleep(ctx, c.backoff(retryBackoff)) {
				return c.giveUp(s, ctx.Err())
			}
			retryBackoff++
		case <-connCh:
		case <-ackWait:
		case <-budget.C:
			return c.giveUp(s, ErrNotAcked)
		case <-ctx.Done():
			return c.giveUp(s, ctx.Err())
		}
		ackTimer.Stop()
	}
}

func (c *Client) giveUp(s *sendState, err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.rec.Acked {
		return nil
	}
	delete(c.pending, s.rec.Room+"\x00"+s.rec.ID)
	s.rec.Err = err.Error()
	s.result = err
	close(s.acked)
	return err
}

// Record returns a copy of everything recorded so far.
func (c *Client) Record() Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := Record{Rooms: map[string]RoomRecord{}, Outages: append([]Outage(nil), c.outages...), Connects: c.connects}
	for name, rs := range c.rooms {
		rr := rs.rec
		rr.Delivered = append([]Delivered(nil), rs.rec.Delivered...)
		rr.Messages = rs.folded()
		r.Rooms[name] = rr
	}
	for _, s := range c.sent {
		r.Sent = append(r.Sent, s.rec)
	}
	return r
}

// Messages returns the folded view of room (see RoomRecord.Messages).
func (c *Client) Messages(room string) []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rs := c.rooms[room]; rs != nil {
		return rs.folded()
	}
	return nil
}

// frame is a client-to-server frame.
type frame struct {
	Type  string `json:"type"`
	Room  string `json:"room,omitempty"`
	ID    string `json:"id,omitempty"`
	Text  string `json:"text,omitempty"`
	After *int64 `json:"after,omitempty"`
	// ReplyTo is a send's; Target an edit's, delete's or react's, Emoji and
	// On a react's.
	ReplyTo int64  `json:"reply_to,omitempty"`
	Target  int64  `json:"target,omitempty"`
	Emoji   string `json:"emoji,omitempty"`
	On      *bool  `json:"on,omitempty"`
}

// serverFrame is any server-to-client frame.
type serverFrame struct {
	Type    string    `json:"type"`
	Room    string    `json:"room"`
	ID      string    `json:"id"`
	LastSeq int64     `json:"last_seq"`
	Code    string    `json:"code"`
	Message string    `json:"message"`
	Seq     int64     `json:"seq"`
	User    string    `json:"user"`
	Text    string    `json:"text"`
	TS      string    `json:"ts"`
	Kind    string    `json:"kind"`
	Data    *ItemData `json:"data"`
	Reason  string    `json:"reason"`
	// A message's v2 fields.
	Mentions  []string            `json:"mentions"`
	ReplyTo   int64               `json:"reply_to"`
	EditedTS  string              `json:"edited_ts"`
	Deleted   bool                `json:"deleted"`
	Reactions map[string][]string `json:"reactions"`
}

// conn is one WebSocket connection of the client.
type conn struct {
	c    *Client
	base string
	ws   *websocket.Conn

	wmu sync.Mutex // one writer at a time

	failOnce sync.Once
	failErr  error
	done     chan struct{} // closed by fail
}

func (cn *conn) write(f frame) error {
	b, _ := json.Marshal(f)
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	_ = cn.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return cn.ws.WriteMessage(websocket.TextMessage, b)
}

// fail ends the connection with err (the first cause wins).
func (cn *conn) fail(err error) {
	cn.failOnce.Do(func() {
		cn.failErr = err
		close(cn.done)
		_ = cn.ws.Close()
	})
}

func (cn *conn) close() { cn.fail(errors.New("closed")) }

func (cn *conn) read() (serverFrame, error) {
	_ = cn.ws.SetReadDeadline(time.Now().Add(3 * cn.c.cfg.PingInterval))
	_, b, err := cn.ws.ReadMessage()
	if err != nil {
		return serverFrame{}, err
	}
	var f serverFrame
	if err := json.Unmarshal(b, &f); err != nil {
		return serverFrame{}, fmt.Errorf("server sent %q: %w", b, err)
	}
	return f, nil
}

// joinAll joins every room, resuming after the last seq delivered, and
// waits for each "joined". Frames that come meanwhile (replays of rooms
// already joined, acks) are handled as usual.
func (cn *conn) joinAll(ctx context.Context) error {
	c := cn.c
	waiting := map[string]bool{}
	c.mu.Lock()
	for name, rs := range c.rooms {
		if rs.left {
			continue // not a member: joined again by Rejoin
		}
		f := rs.joinFrame(name)
		waiting[name] = true
		c.mu.Unlock()
		if err := cn.write(f); err != nil {
			return fmt.Errorf("join %s: %w", name, err)
		}
		c.mu.Lock()
	}
	c.mu.Unlock()
	deadline := time.Now().Add(c.cfg.JoinTimeout)
	stop := context.AfterFunc(ctx, func() { cn.fail(ctx.Err()) })
	defer stop()
	for len(waiting) > 0 {
		_ = cn.ws.SetReadDeadline(deadline)
		_, b, err := cn.ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("join on %s: %w", cn.base, err)
		}
		var f serverFrame
		if err := json.Unmarshal(b, &f); err != nil {
			return fmt.Errorf("server sent %q", b)
		}
		switch {
		case f.Type == "joined" && waiting[f.Room]:
			delete(waiting, f.Room)
			c.joined(cn, f.Room, f.LastSeq)
		case f.Type == "error" && f.ID == "" && waiting[f.Room] && refusal(f.Code):
			// Not (or no longer) a member: the connection serves the
			// other rooms.
			delete(waiting, f.Room)
			cn.refused(f.Room, f.Code)
		case f.Type == "error" && f.ID == "" && waiting[f.Room]:
			// The join failed (the store did not answer): try again later.
			return fmt.Errorf("join %s on %s: %s %s", f.Room, cn.base, f.Code, f.Message)
		default:
			if err := cn.handle(ctx, f); err != nil {
				return err
			}
		}
	}
	return nil
}

// joinFrame is the join of the room: after the last seq delivered once
// started. c.mu is held.
func (rs *roomState) joinFrame(room string) frame {
	f := frame{Type: "join", Room: room}
	if rs.started {
		last := rs.rec.Last()
		f.After = &last
	}
	return f
}

// join sends a join of room on cn (a rejoin, outside joinAll); the
// "joined" or the refusal is handled by handle.
func (cn *conn) join(room string) {
	c := cn.c
	c.mu.Lock()
	rs := c.rooms[room]
	if rs == nil || rs.left {
		c.mu.Unlock()
		return
	}
	f := rs.joinFrame(room)
	c.mu.Unlock()
	if err := cn.write(f); err != nil {
		cn.fail(err)
	}
}

// joined records a room's "joined" on cn, and its start point on the first.
// A "joined" also ends a "left" that came before it: that was the end of the
// subscription this join replaced.
func (c *Client) joined(cn *conn, room string, lastSeq int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := c.rooms[room]
	if rs == nil {
		return
	}
	if !rs.started {
		rs.started = true
		rs.rec.Start = lastSeq
	}
	rs.left, rs.have, rs.joinedOn, rs.joinedLast = false, rs.want, cn, lastSeq
}

// checkCaughtUp sets the recovered outage's CaughtUp once every room joined
// on the current connection has delivered up to its "joined"'s last_seq.
// c.mu is held.
func (c *Client) checkCaughtUp() {
	if c.catching == 0 || c.conn == nil {
		return
	}
	for _, rs := range c.rooms {
		if !rs.left && rs.joinedOn == c.conn && rs.rec.Last() < rs.joinedLast {
			return
		}
	}
	o := &c.outages[c.catching-1]
	o.CaughtUp = max(time.Since(o.At), o.Recovered)
	c.catching = 0
}

// refusal reports whether code refuses a join or send for good: the user is
// not a member (not_found) or is banned or muted (forbidden).
func refusal(code string) bool { return code == "not_found" || code == "forbidden" }

// refused handles a join of room refused with code: within a Rejoin's
// window it is tried again shortly, else the room counts as left.
func (cn *conn) refused(room, code string) {
	c := cn.c
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := c.rooms[room]
	if rs == nil {
		return
	}
	if time.Now().Before(rs.rejoinUntil) {
		time.AfterFunc(300*time.Millisecond, func() {
			select {
			case <-cn.done:
			default:
				cn.join(room)
			}
		})
		return
	}
	c.leave(rs, "refused: "+code, false)
}

// leave marks rs left. c.mu is held.
func (c *Client) leave(rs *roomState, reason string, frame bool) {
	if rs.left {
		return
	}
	rs.left, rs.joinedOn = true, nil
	rs.rec.Exits = append(rs.rec.Exits, Exit{At: time.Now(), Seq: rs.rec.Last(), Reason: reason, Frame: frame})
}

// serve reads and handles frames until the connection fails, and pings
// meanwhile. It returns the cause.
func (cn *conn) serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { cn.fail(ctx.Err()) })
	defer stop()
	go func() {
		t := time.NewTicker(cn.c.cfg.PingInterval)
		defer t.Stop()
		for {
			select {
			case <-cn.done:
				return
			case <-t.C:
				if err := cn.write(frame{Type: "ping"}); err != nil {
					cn.fail(err)
					return
				}
			}
		}
	}()
	for {
		f, err := cn.read()
		if err != nil {
			cn.fail(err)
			break
		}
		if err := cn.handle(ctx, f); err != nil {
			cn.fail(err)
			break
		}
	}
	<-cn.done
	return cn.failErr
}

// handle acts on one frame; an error ends the connection.
func (cn *conn) handle(ctx context.Context, f serverFrame) error {
	c := cn.c
	switch f.Type {
	case "message":
		return cn.message(ctx, Message{Room: f.Room, Seq: f.Seq, ID: f.ID, User: f.User, Text: f.Text, TS: f.TS, Kind: f.Kind, Data: f.Data,
			Mentions: f.Mentions, ReplyTo: f.ReplyTo, EditedTS: f.EditedTS, Deleted: f.Deleted, Reactions: f.Reactions})
	case "joined":
		// A rejoin's (joinAll takes the others).
		c.joined(cn, f.Room, f.LastSeq)
	case "left":
		// The subscription ended at the item before: the user's removal
		// or ban.
		c.mu.Lock()
		if rs := c.rooms[f.Room]; rs != nil {
			c.leave(rs, f.Reason, true)
		}
		c.mu.Unlock()
	case "ack":
		c.mu.Lock()
		if s := c.pending[f.Room+"\x00"+f.ID]; s != nil {
			delete(c.pending, f.Room+"\x00"+f.ID)
			s.rec.Acked, s.rec.AckedAt = true, time.Now()
			close(s.acked)
		}
		c.mu.Unlock()
	case "error":
		if f.ID == "" {
			if f.Room != "" && refusal(f.Code) {
				// A rejoin refused.
				cn.refused(f.Room, f.Code)
				return nil
			}
			if f.Room != "" {
				// A join refused after the fact (a repeated join): rejoin
				// by reconnecting.
				return fmt.Errorf("error for room %s: %s %s", f.Room, f.Code, f.Message)
			}
			return nil
		}
		c.mu.Lock()
		s := c.pending[f.Room+"\x00"+f.ID]
		if s == nil {
			// Refused after its ack: the persist stage decided against
			// it (the sender was removed or banned meanwhile; an edit,
			// delete or reaction's target was deleted meanwhile).
			if done := c.sentBy[f.Room+"\x00"+f.ID]; done != nil && done.rec.Acked && (refusal(f.Code) || done.rec.Kind != "" && f.Code == "conflict") {
				done.rec.Refused, done.rec.RefusedAfterAck = f.Code, true
			}
		}
		c.mu.Unlock()
		if s == nil {
			return nil
		}
		switch f.Code {
		case "unavailable", "rate_limited", "internal":
			select {
			case s.wake <- struct{}{}:
			default:
			}
		default:
			c.mu.Lock()
			if !s.rec.Acked {
				delete(c.pending, f.Room+"\x00"+f.ID)
				s.rec.Err = f.Code + ": " + f.Message
				s.rec.Refused = f.Code
				s.result = fmt.Errorf("%w: %s %s", ErrRejected, f.Code, f.Message)
				close(s.acked)
			}
			c.mu.Unlock()
		}
	}
	return nil
}

// message delivers m once, in seq order: a repeat is dropped, a jump is
// first closed from the history. A gap the history cannot close ends the
// connection; the rejoin with after makes the server replay it.
func (cn *conn) message(ctx context.Context, m Message) error {
	c := cn.c
	c.mu.Lock()
	rs := c.rooms[m.Room]
	if rs == nil {
		c.mu.Unlock()
		return nil
	}
	if rs.left {
		rs.rec.AfterLeft++
		c.mu.Unlock()
		return nil
	}
	last := rs.rec.Last()
	switch {
	case m.Seq <= last:
		rs.rec.Duplicates++
		c.mu.Unlock()
		return nil
	case m.Seq == last+1:
		rs.deliver(m, Live, time.Now())
		c.checkCaughtUp()
		c.mu.Unlock()
		return nil
	case c.ownAdd(m):
		// Re-added: the room resumes at the add, what lies between is
		// not the client's to see.
		rs.rec.Resumes++
		rs.deliver(m, Live, time.Now())
		c.checkCaughtUp()
		c.mu.Unlock()
		return nil
	}
	rs.rec.Gaps++
	c.mu.Unlock()

	missing, err := cn.history(ctx, m.Room, last, m.Seq-1)
	if err != nil {
		return fmt.Errorf("gap %d..%d in %s: %w", last+1, m.Seq-1, m.Room, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	for _, h := range missing {
		rs.deliver(h, History, now)
	}
	rs.deliver(m, Live, now)
	rs.rec.GapsFilled++
	c.checkCaughtUp()
	return nil
}

// deliver records m as delivered and folds it into the view: a plain
// message joins it, a lifecycle item is folded into its target there.
// c.mu is held.
//
// A message from the history comes folded by the server, as it stands at
// the read, which may include items after the ones fetched with it (the
// client gets those later, live, and folds them again). Edits and the
// delete fold again to the same result; reactions may not (a user who took
// a reaction back and gave it again moves to the end of its list), so the
// history's reactions are dropped and the reaction items, every one of
// which lies after the message and reaches the client, fold them anew.
func (rs *roomState) deliver(m Message, via string, at time.Time) {
	rs.rec.Delivered = append(rs.rec.Delivered, Delivered{Seq: m.Seq, ID: m.ID, At: at, Via: via})
	switch {
	case m.Kind == "":
		v := m
		v.Mentions = slices.Clone(m.Mentions)
		v.Reactions = nil
		if via != History {
			v.Reactions = cloneReactions(m.Reactions)
		}
		rs.view[m.Seq] = &v
		rs.order = append(rs.order, m.Seq)
	case m.Data != nil && (m.Kind == KindEdit || m.Kind == KindDelete || m.Kind == KindReaction):
		if v := rs.view[m.Data.TargetSeq]; v != nil && m.Seq > v.Seq {
			fold(v, &m)
		}
	}
}

// fold applies the lifecycle item it to v with chat.Message.Fold, the one
// rule of the server's history.
func fold(v, it *Message) {
	cm := chat.Message{Seq: v.Seq, User: v.User, Text: v.Text, TS: v.TS,
		EditedTS: v.EditedTS, Deleted: v.Deleted, Reactions: v.Reactions}
	ci := chat.Message{Seq: it.Seq, User: it.User, Text: it.Text, TS: it.TS, Kind: it.Kind,
		Data: &chat.ItemData{TargetSeq: it.Data.TargetSeq, Emoji: it.Data.Emoji, On: it.Data.On}}
	cm.Fold(&ci)
	v.Text, v.EditedTS, v.Deleted, v.Reactions = cm.Text, cm.EditedTS, cm.Deleted, cm.Reactions
}

// folded copies the view, in seq order. c.mu is held.
func (rs *roomState) folded() []Message {
	out := make([]Message, 0, len(rs.order))
	for _, seq := range rs.order {
		v := *rs.view[seq]
		v.Mentions = slices.Clone(v.Mentions)
		v.Reactions = cloneReactions(v.Reactions)
		out = append(out, v)
	}
	return out
}

func cloneReactions(r map[string][]string) map[string][]string {
	if r == nil {
		return nil
	}
	out := make(map[string][]string, len(r))
	for e, users := range r {
		out[e] = slices.Clone(users)
	}
	return out
}

// ownAdd reports whether m is the item that added the client to its room.
// c.mu is held.
func (c *Client) ownAdd(m Message) bool {
	return m.Kind == "member" && m.Data != nil && m.Data.Action == "add" && c.user != "" && m.Data.Target == c.user
}

// history fetches seqs after+1..upTo of room, all of them or an error
// (from the client's latest add on, when that lies after after+1).
func (cn *conn) history(ctx context.Context, room string, after, upTo int64) ([]Message, error) {
	c := cn.c
	c.mu.Lock()
	token := c.token
	c.mu.Unlock()
	var out []Message
	for after < upTo {
		limit := min(upTo-after, 200)
		u := fmt.Sprintf("%s/api/rooms/%s/messages?after=%d&limit=%d", cn.base, url.PathEscape(room), after, limit)
		req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := c.cfg.HTTPClient.Do(req)
		if err != nil {
			return nil, err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return nil, fmt.Errorf("history: %d %s", resp.StatusCode, b)
		}
		var p struct{ Messages []Message }
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("history: %w", err)
		}
		for _, m := range p.Messages {
			c.mu.Lock()
			own := m.Seq > after+1 && c.ownAdd(m)
			c.mu.Unlock()
			if own {
				// The history starts at the client's latest add.
				after = m.Seq - 1
			}
			if m.Seq != after+1 {
				return nil, errors.New("history: seq " + strconv.FormatInt(m.Seq, 10) + " where " + strconv.FormatInt(after+1, 10) + " was due")
			}
			if m.Seq > upTo {
				break
			}
			out = append(out, m)
			after = m.Seq
		}
		if len(p.Messages) == 0 {
			return nil, fmt.Errorf("history: nothing after %d, %d expected", after, upTo)
		}
	}
	return out, nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
