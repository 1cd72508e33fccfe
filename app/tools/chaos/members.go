package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parley-chat/parley/app/tools/client"
)

// Membership under chaos. Some rooms of the run are private: a moderator
// creates them and adds their clients before the load starts. While the
// instances are killed, one worker per private room removes or bans a member
// now and then and later adds them back (unbanning first), through the REST
// routes of whichever instance answers. The target keeps sending meanwhile;
// its refused sends are counted, not lost. The verdict reads the membership
// from the store's timeline, the ground truth.

// modName is the moderator's guest name.
const modName = "chaosboss"

// moderator changes rooms' membership over REST, trying the instances in turn.
type moderator struct {
	urls  []string
	token string
	http  *http.Client
	next  atomic.Uint32
	// mongo and db let a change whose answer was lost be looked up in the
	// store.
	mongo, db string
	// behind reports the persist stage's lag on send_msg (records not yet
	// handled); nil: not known.
	behind func(context.Context) (int64, error)
	// extended counts changes whose 90 s ran out while the persist stage
	// was behind and were waited for longer.
	extended atomic.Int64

	removals, bans, readds atomic.Int64
	// restored counts members the last pass had to bring back (a change
	// that failed, or was applied after the moderator gave up on it).
	restored atomic.Int64
	// retried counts changes answered only after trying again, resolved
	// those whose retry was refused as already done and the store
	// confirmed.
	retried, resolved atomic.Int64

	mu     sync.Mutex
	errors []string
	// unrestored are members the last pass could not bring back.
	unrestored []string
}

func newModerator(ctx context.Context, urls []string, mongo, db string) (*moderator, error) {
	m := &moderator{urls: urls, http: &http.Client{Timeout: 15 * time.Second}, mongo: mongo, db: db}
	tok, user, err := signIn(ctx, m.http, urls, modName)
	if err != nil {
		return nil, err
	}
	if user != modName {
		// The verdict knows the moderator's items by this name.
		return nil, fmt.Errorf("the moderator got the name %q, not %q (a sign-in that timed out kept it): run again", user, modName)
	}
	m.token = tok
	return m, nil
}

// signIn signs name in as a guest on the first instance that answers and
// returns the token and the name the server gave back.
func signIn(ctx context.Context, hc *http.Client, urls []string, name string) (token, user string, err error) {
	asked := name
	// ambiguous: an attempt failed without an answer, or with a 5xx: its
	// claim of the name may have been stored (FerretDB timing out after
	// the write), leaving the name held by a session nobody has the token
	// of. A 409 after that asks for the name with a suffix instead.
	ambiguous := false
	for try := 0; try < 20; try++ {
		body, _ := json.Marshal(map[string]string{"name": asked})
		base := urls[(try+mrand.IntN(len(urls)))%len(urls)]
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/api/session", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		resp, err2 := hc.Do(req)
		if err2 != nil {
			err, ambiguous = err2, true
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var r struct{ Token, User string }
			if resp.StatusCode == 200 && json.Unmarshal(b, &r) == nil && r.Token != "" {
				return r.Token, r.User, nil
			}
			err = fmt.Errorf("sign in %s: %d %s", asked, resp.StatusCode, b)
			switch {
			case resp.StatusCode == 409 && ambiguous:
				asked, ambiguous = fmt.Sprintf("%s-%d", name, try), false
				continue
			case resp.StatusCode >= 500:
				ambiguous = true
			case resp.StatusCode != 429:
				return "", "", err
			}
		}
		if !sleep(ctx, 300*time.Millisecond) {
			return "", "", ctx.Err()
		}
	}
	return "", "", err
}

func (m *moderator) fail(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.errors = append(m.errors, fmt.Sprintf(format, args...))
}

// Unrestored returns the members the last pass could not bring back.
func (m *moderator) Unrestored() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.unrestored...)
}

// Errors returns the changes that failed (not decided in time).
func (m *moderator) Errors() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.errors...)
}

// change makes one membership change: method on path with body, through the
// instances in turn until one decides it. A 503 (not confirmed within 10 s),
// a 5xx or a connection error is tried again on the next instance; a
// refusal with 409 or 404 may be an earlier try (or an earlier change given
// up on), applied after all: the store's timeline says (its last item about
// user is the wanted action).
func (m *moderator) change(ctx context.Context, method, room, path string, body any, user, action string) error {
	var payload []byte
	if body != nil {
		payload, _ = json.Marshal(body)
	}
	start := time.Now()
	deadline := start.Add(90 * time.Second)
	var last string
	for try := 0; ; try++ {
		if time.Now().After(deadline) && ctx.Err() == nil && m.stillBehind(ctx, start) {
			// The pipeline has not read what was sent yet (FerretDB under
			// the run's load keeps the persist stage minutes behind): the
			// change is judged once it is decided, not by the store's pace.
			if deadline.Sub(start) == 90*time.Second {
				m.extended.Add(1)
			}
			deadline = time.Now().Add(5 * time.Second)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			// Accepted by some try and applied since, maybe.
			if ok, err := m.applied(context.WithoutCancel(ctx), room, user, action); err == nil && ok {
				m.retried.Add(1)
				m.resolved.Add(1)
				return nil
			}
			return fmt.Errorf("%s %s: not decided within %s (last: %s)", method, path, time.Since(start).Round(time.Second), last)
		}
		base := m.urls[int(m.next.Add(1))%len(m.urls)]
		req, _ := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(string(payload)))
		req.Header.Set("Authorization", "Bearer "+m.token)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := m.http.Do(req)
		status := 0
		var b []byte
		if err == nil {
			b, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			status = resp.StatusCode
		}
		switch {
		case err == nil && status/100 == 2:
			if try > 0 {
				m.retried.Add(1)
			}
			return nil
		case err == nil && (status == 409 || status == 404 || staleBan(status, action, b)):
			// An earlier try, or a change given up on before, may be in
			// effect already (the last pass reads the timeline before an
			// undecided add lands, say); an add may meet a ban whose
			// accepted unban the persist stage has not decided yet.
			ok, serr := m.applied(ctx, room, user, action)
			if serr == nil && ok {
				m.retried.Add(1)
				m.resolved.Add(1)
				return nil
			}
			// The answer may come from a state that already holds an
			// earlier try the store is still behind on (the persist stage
			// lagging, as FerretDB makes it under load): look again, until
			// the deadline, rather than give up on the first read.
			last = fmt.Sprintf("answered %d %s, and the store shows no %s of %s (%v)", status, b, action, user, serr)
			if !sleep(ctx, 2*time.Second) {
				return ctx.Err()
			}
			continue
		case err == nil && status/100 == 4 && status != 429:
			return fmt.Errorf("%s %s: %d %s", method, path, status, b)
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%d %s", status, b)
		}
		if !sleep(ctx, 500*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// staleBan reports whether an answer is an add's refusal for a ban: after
// an unban that was accepted (published) but not yet decided, the answering
// instance's state still holds the ban (in a run, the last pass unbanned
// and added u54, the add answered 403 'u54 is banned' and was given up on,
// and the add accepted by its first try landed later, with no client
// expecting it).
func staleBan(status int, action string, body []byte) bool {
	return status == 403 && action == "add" && strings.Contains(string(body), `"key":"%s is banned from this room"`)
}

// maxChangeWait bounds how long a change is waited for while the persist
// stage is behind.
const maxChangeWait = 4 * time.Minute

// stillBehind reports whether a change begun at start may be waited for
// longer: the persist stage has records on send_msg it has not handled, and
// maxChangeWait has not passed.
func (m *moderator) stillBehind(ctx context.Context, start time.Time) bool {
	if m.behind == nil || time.Since(start) > maxChangeWait {
		return false
	}
	lag, err := m.behind(ctx)
	return err == nil && lag > 0
}

// applied reports whether the last member item about user in room's stored
// timeline is action.
func (m *moderator) applied(ctx context.Context, room, user, action string) (bool, error) {
	items, err := memberItems(ctx, m.mongo, m.db, room)
	if err != nil {
		return false, err
	}
	lastAction := ""
	for _, it := range items {
		if it.data.Target == user {
			lastAction = it.data.Action
		}
	}
	return lastAction == action, nil
}

// memberItems reads room's member items from the store, in seq order.
func memberItems(ctx context.Context, uri, db, room string) ([]storedMsg, error) {
	cl, err := connectStore(uri)
	if err != nil {
		return nil, err
	}
	defer cl.Disconnect(context.Background())
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cur, err := cl.Database(db).Collection("messages").Find(ctx, bson.D{{Key: "room", Value: room}, {Key: "kind", Value: "member"}},
		options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}))
	if err != nil {
		return nil, err
	}
	var out []storedMsg
	if err := cur.All(ctx, &out); err != nil {
		return nil, err
	}
	for i := range out {
		out[i].decode()
	}
	return out, nil
}

func (m *moderator) createRoom(ctx context.Context, room string) error {
	return m.change(ctx, "POST", room, "/api/rooms", map[string]string{"room": room, "kind": "private"}, "", "create")
}

func (m *moderator) add(ctx context.Context, room, user string) error {
	return m.change(ctx, "POST", room, "/api/rooms/"+url.PathEscape(room)+"/members", map[string]string{"user": user}, user, "add")
}

func (m *moderator) remove(ctx context.Context, room, user string) error {
	return m.change(ctx, "DELETE", room, "/api/rooms/"+url.PathEscape(room)+"/members/"+url.PathEscape(user), nil, user, "remove")
}

func (m *moderator) ban(ctx context.Context, room, user string) error {
	return m.change(ctx, "POST", room, "/api/rooms/"+url.PathEscape(room)+"/bans", map[string]string{"user": user, "reason": "chaos"}, user, "ban")
}

func (m *moderator) unban(ctx context.Context, room, user string) error {
	return m.change(ctx, "DELETE", room, "/api/rooms/"+url.PathEscape(room)+"/bans/"+url.PathEscape(user), nil, user, "unban")
}

// member is one client of a private room, as the moderator sees it.
type member struct {
	name  string
	index int // of the client
	cl    *client.Client
}

// churn removes or bans a member of room every few seconds and adds them
// back a few seconds later, until until; one member at a time, and only one
// that is joined (a removal it is connected for is the case to test; one
// while it is away is tested by the kills anyway). Every member is a member
// again when it returns.
func (m *moderator) churn(ctx context.Context, c *cluster, room string, members []member, until time.Time) {
	for ctx.Err() == nil && time.Until(until) > 12*time.Second {
		if !sleep(ctx, time.Duration(500+mrand.IntN(1000))*time.Millisecond) {
			return
		}
		var v member
		for range 20 {
			v = members[mrand.IntN(len(members))]
			if v.cl.Joined(room) {
				break
			}
		}
		ban := mrand.IntN(2) == 0
		var err error
		if ban {
			err = m.ban(ctx, room, v.name)
		} else {
			err = m.remove(ctx, room, v.name)
		}
		if err != nil {
			m.fail("%s", err)
			if !errors.Is(err, context.Canceled) {
				continue
			}
			return
		}
		if ban {
			m.bans.Add(1)
			c.logEvent("", "membership: %s banned from %s", v.name, room)
		} else {
			m.removals.Add(1)
			c.logEvent("", "membership: %s removed from %s", v.name, room)
		}
		// The target learns of it from its left frame (or from a refused
		// join if it is away); then it stays out a while, sending.
		for t0 := time.Now(); !v.cl.Left(room) && time.Since(t0) < 5*time.Second; {
			sleep(ctx, 50*time.Millisecond)
		}
		sleep(ctx, time.Duration(1500+mrand.IntN(2000))*time.Millisecond)
		if ban {
			if err := m.unban(context.WithoutCancel(ctx), room, v.name); err != nil {
				m.fail("%s", err)
				continue
			}
		}
		if err := m.add(context.WithoutCancel(ctx), room, v.name); err != nil {
			m.fail("%s", err)
			continue
		}
		m.readds.Add(1)
		v.cl.Rejoin(room)
		// Not removed again before it is back: its stretch of membership
		// is then one it can see.
		t0 := time.Now()
		for !v.cl.Joined(room) && time.Since(t0) < 30*time.Second {
			sleep(context.WithoutCancel(ctx), 50*time.Millisecond)
		}
		if !v.cl.Joined(room) {
			c.logEvent("", "membership: %s not joined to %s again within 30s of its re-add", v.name, room)
		}
	}
	m.restore(context.WithoutCancel(ctx), c, room, members)
}

// restore makes every member of room a member again, as the store's
// timeline tells who is not (a change given up on may have been applied
// since, or not at all), and has each client joined: the run ends with
// every client a member, which the settle and the verdict's last stretch of
// membership count on. A member it cannot add again is a failure of the
// run; one slow to join is not (the verdict judges what it got).
func (m *moderator) restore(ctx context.Context, c *cluster, room string, members []member) {
	var items []storedMsg
	var err error
	for try := 0; try < 10; try++ {
		if items, err = memberItems(ctx, m.mongo, m.db, room); err == nil {
			break
		}
		sleep(ctx, 2*time.Second)
	}
	if err != nil {
		m.mu.Lock()
		m.unrestored = append(m.unrestored, fmt.Sprintf("%s: read its timeline: %v", room, err))
		m.mu.Unlock()
		return
	}
	last := map[string]string{} // user -> the action of the last item about them
	for _, it := range items {
		last[it.data.Target] = it.data.Action
	}
	for _, v := range members {
		var err error
		switch last[v.name] {
		case "add":
		case "ban":
			if err = m.unban(ctx, room, v.name); err == nil {
				err = m.add(ctx, room, v.name)
			}
			m.restored.Add(1)
		default:
			err = m.add(ctx, room, v.name)
			m.restored.Add(1)
		}
		if err != nil {
			m.mu.Lock()
			m.unrestored = append(m.unrestored, fmt.Sprintf("%s in %s: %v", v.name, room, err))
			m.mu.Unlock()
			continue
		}
		if !v.cl.Joined(room) {
			v.cl.Rejoin(room)
		}
	}
	// One wait for them all, while they recover their connections.
	deadline := time.Now().Add(30 * time.Second)
	for _, v := range members {
		for !v.cl.Joined(room) && time.Now().Before(deadline) {
			if v.cl.Left(room) {
				v.cl.Rejoin(room)
			}
			sleep(ctx, 100*time.Millisecond)
		}
		if !v.cl.Joined(room) {
			// Still recovering its connection, maybe: the settle waits
			// for it, and the verdict judges what it got.
			c.logEvent("", "membership: %s not joined to %s within 30s of the last pass", v.name, room)
		}
	}
}
