package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Rooms with members, as the generator uses them: --private makes the
// run's rooms private and its users members before the measured phase, and
// --scenario roomlist measures GET /api/rooms for a user in many rooms.
// Both make their rooms and members through the API, as a client would,
// several requests at once (--setup-concurrency): every create and add
// waits for the persist stage's decision, so one at a time would take
// minutes for a thousand.

// forEach runs fn(i) for every i in [0, n), workers at once, with a
// progress line every second; it returns how many calls failed and the
// first error. Once ctx ends it starts no more calls.
func (r *runner) forEach(ctx context.Context, n, workers int, what string, fn func(i int) error) (failed int64, first error) {
	var done, bad atomic.Int64
	var mu sync.Mutex
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				r.progress("%s %d/%d (%d failed)", what, done.Load(), n, bad.Load())
			}
		}
	}()
	sem := make(chan struct{}, max(workers, 1))
	var wg sync.WaitGroup
	for i := 0; i < n && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(i); err != nil {
				bad.Add(1)
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
				return
			}
			done.Add(1)
		}()
	}
	wg.Wait()
	close(stop)
	return bad.Load(), first
}

// signInAll opens a session for each of the total clients, on the target
// it will connect to. A client whose sign-in failed is not dialed and
// counts in dial_failed; none signed in at all fails the run.
func (r *runner) signInAll(ctx context.Context, targets []string, total int) error {
	r.tokens, r.names = make([]string, total), make([]string, total)
	failed, first := r.forEach(ctx, total, r.cfg.Dial, "signing in", func(i int) error {
		token, user, err := r.signIn(ctx, targets[i%len(targets)], r.userName(i))
		if err != nil {
			return err
		}
		r.tokens[i], r.names[i] = token, user
		return nil
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	if failed > 0 {
		fmt.Fprintf(r.log, "loadgen: %d of %d sign-ins failed; first error: %v\n", failed, total, first)
		if failed == int64(total) {
			return fmt.Errorf("no connection could be made: %v", first)
		}
	}
	return nil
}

// roomOf is the room client i receives from (a receiver) or sends to (a
// sender): the same rule as dialOne's.
func (r *runner) roomOf(i int) int {
	if i < r.cfg.Conns {
		return i % r.cfg.Rooms
	}
	return (i - r.cfg.Conns) % r.cfg.Rooms
}

// setupPrivate makes the run's rooms private rooms of an owner user of
// their own (who opens no connection), adds every signed-in receiver and
// sender to its room, and reads each room's last seq: the run's messages
// come after the creation and the adds in the room's timeline. Any failure
// fails the run, since a user left out would measure a refusal, not the
// access path.
func (r *runner) setupPrivate(ctx context.Context, base string) error {
	token, _, err := r.signIn(ctx, base, "lg"+r.runID+"_owner")
	if err != nil {
		return fmt.Errorf("private rooms: the owner's %w", err)
	}
	if err := r.createRooms(ctx, base, token, r.cfg.Rooms, "private"); err != nil {
		return err
	}
	type add struct {
		user string
		room int
	}
	var adds []add
	for i, name := range r.names {
		if name != "" {
			adds = append(adds, add{name, r.roomOf(i)})
		}
	}
	failed, first := r.forEach(ctx, len(adds), r.cfg.Setup, "adding members", func(k int) error {
		a := adds[k]
		return r.api(ctx, "POST", base+"/api/rooms/"+r.roomName(a.room)+"/members", token,
			map[string]string{"user": a.user}, http.StatusOK, nil)
	})
	if err := setupFailed(ctx, "member adds", failed, len(adds), first); err != nil {
		return err
	}
	failed, first = r.forEach(ctx, r.cfg.Rooms, r.cfg.Setup, "reading rooms", func(k int) error {
		var o struct {
			Kind    string `json:"kind"`
			LastSeq int64  `json:"last_seq"`
		}
		if err := r.api(ctx, "GET", base+"/api/rooms/"+r.roomName(k), token, nil, http.StatusOK, &o); err != nil {
			return err
		}
		if o.Kind != "private" {
			return fmt.Errorf("room %s is %q, not private", r.roomName(k), o.Kind)
		}
		r.roomBase[k] = o.LastSeq
		return nil
	})
	return setupFailed(ctx, "room reads", failed, r.cfg.Rooms, first)
}

// createRooms creates the run's rooms 0..n-1 of kind as the user of token.
func (r *runner) createRooms(ctx context.Context, base, token string, n int, kind string) error {
	failed, first := r.forEach(ctx, n, r.cfg.Setup, "creating rooms", func(k int) error {
		return r.api(ctx, "POST", base+"/api/rooms", token,
			map[string]string{"room": r.roomName(k), "kind": kind}, http.StatusCreated, nil)
	})
	return setupFailed(ctx, "room creations", failed, n, first)
}

func setupFailed(ctx context.Context, what string, failed int64, n int, first error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d %s failed; first error: %v", failed, n, what, first)
	}
	return nil
}

// api makes one JSON request as the user of token and wants the answer's
// status to be want; out, when not nil, receives the answer's JSON.
func (r *runner) api(ctx context.Context, method, url, token string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: HTTP %d %s", method, req.URL.Path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: bad answer: %w", method, req.URL.Path, err)
		}
	}
	return nil
}

// listPhase is one phase of --scenario roomlist: calls of GET
// /api/rooms?limit=Limit by Callers concurrent callers.
type listPhase struct {
	Limit   int `json:"limit"`
	Callers int `json:"callers"`
	// Calls counts the answers timed; Errors the calls that failed or
	// answered other than 200 with Limit rooms (not timed).
	Calls     int64   `json:"calls"`
	Errors    int64   `json:"errors"`
	CallsPerS float64 `json:"calls_per_s"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
}

// listWarmup calls precede each phase, untimed: the first answers after
// the setup pay for cold caches and the connections' dials.
const listWarmup = 20

// roomList is --scenario roomlist: one user creates cfg.Rooms rooms (and
// is their owner, so a member of each), the whole list is read once and
// checked, then each phase calls GET /api/rooms, timing each answer from the
// request to its last byte.
func (r *runner) roomList(ctx context.Context, base string) (*Result, error) {
	cfg := r.cfg
	res := &Result{Scenario: cfg.Scenario, Mode: cfg.Mode, Transport: "http", Rooms: cfg.Rooms, Private: cfg.Private, Instances: 1, ListUnread: cfg.ListUnread}
	res.ServerCPUs, res.GenCPUs = r.cpus()
	res.BaseRSSKiB = r.rss()
	token, me, err := r.signIn(ctx, base, "lg"+r.runID+"_list")
	if err != nil {
		return nil, err
	}
	kind := "public"
	if cfg.Private {
		kind = "private"
	}
	t0 := time.Now()
	if err := r.createRooms(ctx, base, token, cfg.Rooms, kind); err != nil {
		return nil, err
	}
	if cfg.ListUnread > 0 {
		if err := r.postUnread(ctx, base, token, me); err != nil {
			return nil, err
		}
	}
	res.SetupS = time.Since(t0).Seconds()
	r.progress("roomlist: %d %s rooms created (%d unread each) in %.1fs", cfg.Rooms, kind, cfg.ListUnread, res.SetupS)
	if err := r.checkList(ctx, base, token, kind); err != nil {
		return nil, err
	}
	// The CPU window is the timed phases' (the setup is not measured).
	meter := startCPU(r.serverPIDs, r.servicePIDs)
	for _, limit := range cfg.ListLimits {
		for _, callers := range cfg.ListCallers {
			ph, err := r.listPhase(ctx, base, token, limit, callers)
			if err != nil {
				return nil, err
			}
			r.progress("roomlist: limit %d, %d caller(s): p50 %.2f p99 %.2f max %.2f ms, %d errors",
				limit, callers, ph.P50ms, ph.P99ms, ph.MaxMs, ph.Errors)
			res.List = append(res.List, ph)
			res.Errors += ph.Errors
		}
	}
	meter.stop().apply(res)
	res.Pin = cfg.Pin
	first := res.List[0]
	res.P50ms, res.P99ms, res.MaxMs = first.P50ms, first.P99ms, first.MaxMs
	res.ServerRSSKiB = r.rss()
	return res, nil
}

// postUnread has another user post cfg.ListUnread messages to each room
// (added as a member first in private rooms), every fifth mentioning me.
func (r *runner) postUnread(ctx context.Context, base, token, me string) error {
	other, name, err := r.signIn(ctx, base, "lg"+r.runID+"_poster")
	if err != nil {
		return err
	}
	n := r.cfg.ListUnread
	failed, first := r.forEach(ctx, r.cfg.Rooms, r.cfg.Setup, "posting unread messages", func(k int) error {
		room := r.roomName(k)
		if r.cfg.Private {
			if err := r.api(ctx, "POST", base+"/api/rooms/"+room+"/members", token, map[string]string{"user": name}, http.StatusOK, nil); err != nil {
				return err
			}
		}
		for i := range n {
			text := "unread " + strconv.Itoa(i)
			if i%5 == 0 {
				text += " @" + me
			}
			if err := r.api(ctx, "POST", base+"/api/rooms/"+room+"/messages", other,
				map[string]string{"id": "u" + strconv.Itoa(i), "text": text}, http.StatusAccepted, nil); err != nil {
				return err
			}
		}
		return nil
	})
	return setupFailed(ctx, "unread posts", failed, r.cfg.Rooms, first)
}

// wantCounts is what each room object must say once the posts are stored.
func (r *runner) wantCounts() (unread, mentions int64) {
	n := int64(r.cfg.ListUnread)
	return n, (n + 4) / 5
}

// roomPage is what the generator reads of a GET /api/rooms answer.
type roomPage struct {
	Rooms []struct {
		Room     string  `json:"room"`
		Kind     string  `json:"kind"`
		Role     *string `json:"role"`
		Unread   int64   `json:"unread"`
		Mentions int64   `json:"mentions"`
	} `json:"rooms"`
	NextCursor *string `json:"next_cursor"`
}

// checkList pages through the user's whole list: exactly the rooms it
// created, each once, of their kind, the user their owner, with the counts
// the posts made (waiting up to 30 s for the last of them to be stored). A
// phase timing answers that leave rooms out would time the wrong thing.
func (r *runner) checkList(ctx context.Context, base, token, kind string) error {
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		err := r.checkListOnce(ctx, base, token, kind)
		if err == nil || !errors.Is(err, errCounts) || time.Now().After(deadline) {
			return err
		}
	}
}

var errCounts = errors.New("counts not yet as posted")

func (r *runner) checkListOnce(ctx context.Context, base, token, kind string) error {
	unread, mentions := r.wantCounts()
	want := map[string]bool{}
	for k := range r.cfg.Rooms {
		want[r.roomName(k)] = true
	}
	url := base + "/api/rooms?limit=200"
	seen := 0
	for pages := 0; ; pages++ {
		if pages > r.cfg.Rooms/200+2 {
			return fmt.Errorf("roomlist: the list did not end after %d pages", pages)
		}
		var p roomPage
		if err := r.api(ctx, "GET", url, token, nil, http.StatusOK, &p); err != nil {
			return fmt.Errorf("roomlist: %w", err)
		}
		for _, o := range p.Rooms {
			if !want[o.Room] {
				return fmt.Errorf("roomlist: the list holds %q, not one of the rooms created, or twice", o.Room)
			}
			if o.Kind != kind || o.Role == nil || *o.Role != "owner" {
				return fmt.Errorf("roomlist: room %s listed as kind %q role %v, want %s owner", o.Room, o.Kind, o.Role, kind)
			}
			if o.Unread != unread || o.Mentions != mentions {
				return fmt.Errorf("roomlist: room %s: unread %d mentions %d, want %d and %d: %w", o.Room, o.Unread, o.Mentions, unread, mentions, errCounts)
			}
			delete(want, o.Room)
			seen++
		}
		if p.NextCursor == nil {
			break
		}
		url = base + "/api/rooms?limit=200&cursor=" + *p.NextCursor
	}
	if len(want) > 0 {
		return fmt.Errorf("roomlist: the list holds %d of the %d rooms created", seen, r.cfg.Rooms)
	}
	return nil
}

// listPhase makes cfg.ListCalls calls of GET /api/rooms?limit=limit, spread
// over callers goroutines, each its own keep-alive connection's worth of
// sequential calls.
func (r *runner) listPhase(ctx context.Context, base, token string, limit, callers int) (listPhase, error) {
	url := base + "/api/rooms?limit=" + strconv.Itoa(limit)
	wantRooms := min(limit, r.cfg.Rooms)
	call := func(h *hist) error {
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		t := time.Now()
		resp, err := r.http.Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(t)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d %s", resp.StatusCode, bytes.TrimSpace(body))
		}
		// Checked after the clock stopped: decoding is the generator's
		// work, not the server's.
		var p struct {
			Rooms []json.RawMessage `json:"rooms"`
		}
		if err := json.Unmarshal(body, &p); err != nil || len(p.Rooms) != wantRooms {
			return fmt.Errorf("answer with %d rooms, want %d (%v)", len(p.Rooms), wantRooms, err)
		}
		if h != nil {
			h.record(d)
		}
		return nil
	}
	for range listWarmup {
		if err := call(nil); err != nil {
			return listPhase{}, fmt.Errorf("roomlist warm-up: %w", err)
		}
	}
	ph := listPhase{Limit: limit, Callers: callers}
	hists := make([]*hist, callers)
	var errs atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	for c := range callers {
		n := r.cfg.ListCalls / callers
		if c < r.cfg.ListCalls%callers {
			n++
		}
		hists[c] = &hist{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				if ctx.Err() != nil {
					return
				}
				if err := call(hists[c]); err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return ph, err
	}
	all := &hist{}
	for _, h := range hists {
		all.merge(h)
	}
	ph.Calls, ph.Errors = int64(all.n), errs.Load()
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(r.log, "loadgen: roomlist limit %d, %d caller(s): %d calls failed; first: %v\n", limit, callers, ph.Errors, *e)
	}
	ph.CallsPerS = float64(ph.Calls) / elapsed.Seconds()
	ms := func(us int64) float64 { return float64(us) / 1000 }
	ph.P50ms, ph.P99ms, ph.MaxMs = ms(all.quantile(0.50)), ms(all.quantile(0.99)), ms(all.max)
	return ph, nil
}
