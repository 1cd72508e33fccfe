package handlers

import (
	"context"
	"sync"
	"time"

	"github.com/parley-chat/parley/app/chat"
)

// Ending sessions on every instance. A revocation is written to the store
// (chat.People) by the instance that signs the session out, and every
// instance polls the store for new ones every revocationPoll: within that
// time its requests with the session's tokens get 401 and its live
// connections of the session end. A token's expiry ends its connections
// by a timer of their own.

// revocationPoll is how often an instance reads new revocations; the
// contract gives a revocation 5 s to reach every instance.
const revocationPoll = time.Second

// revocationOverlap is how far back each poll reads beyond the last one:
// revocations are stamped with the revoking instance's clock, and a write
// may land after a poll that began before it. Clocks of one deployment
// agree far better than this.
const revocationOverlap = 30 * time.Second

// revokedSet is the revoked sessions this instance knows of, each until its
// tokens expire.
type revokedSet struct {
	mu  sync.RWMutex
	sid map[string]time.Time
}

func (r *revokedSet) has(sid string) bool {
	if sid == "" {
		return false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.sid[sid]
	return ok
}

// add records revocations and reports those it did not know.
func (r *revokedSet) add(rs ...chat.Revocation) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sid == nil {
		r.sid = map[string]time.Time{}
	}
	var fresh []string
	for _, rv := range rs {
		if _, ok := r.sid[rv.SID]; !ok {
			fresh = append(fresh, rv.SID)
		}
		r.sid[rv.SID] = rv.Expires
	}
	return fresh
}

// forget drops the revocations whose tokens expired by now.
func (r *revokedSet) forget(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for sid, exp := range r.sid {
		if !exp.After(now) {
			delete(r.sid, sid)
		}
	}
}

// liveSessions are the live connections of each session on this
// instance, so that a revocation can end them.
type liveSessions struct {
	mu    sync.Mutex
	conns map[string]map[*liveConn]struct{}
}

// liveConn is one connection of a session: end ends it (once; safe from
// any goroutine).
type liveConn struct {
	sid   string
	end   func()
	timer *time.Timer
}

// add registers a connection of sess and arms its expiry. The returned
// function unregisters it; call it when the connection ends.
func (l *liveSessions) add(sess Session, end func()) (remove func()) {
	lc := &liveConn{sid: sess.SID, end: end}
	lc.timer = time.AfterFunc(time.Until(sess.Expires), end)
	if sess.SID == "" {
		return func() { lc.timer.Stop() }
	}
	l.mu.Lock()
	if l.conns == nil {
		l.conns = map[string]map[*liveConn]struct{}{}
	}
	set := l.conns[sess.SID]
	if set == nil {
		set = map[*liveConn]struct{}{}
		l.conns[sess.SID] = set
	}
	set[lc] = struct{}{}
	l.mu.Unlock()
	return func() {
		lc.timer.Stop()
		l.mu.Lock()
		delete(set, lc)
		if len(l.conns[sess.SID]) == 0 {
			delete(l.conns, sess.SID)
		}
		l.mu.Unlock()
	}
}

// end ends every live connection of the sessions.
func (l *liveSessions) end(sids ...string) {
	var ends []func()
	l.mu.Lock()
	for _, sid := range sids {
		for lc := range l.conns[sid] {
			ends = append(ends, lc.end)
		}
	}
	l.mu.Unlock()
	for _, end := range ends {
		end()
	}
}

// revoke ends session sid here at once, and on every instance through the
// store.
func (s *Server) revoke(ctx context.Context, sess Session) error {
	if sess.SID == "" {
		return nil
	}
	r := chat.Revocation{SID: sess.SID, At: time.Now(), Expires: sess.Expires}
	if err := s.People.Revoke(ctx, r); err != nil {
		return unavailable(err)
	}
	s.revoked.add(r)
	s.live.end(sess.SID)
	return nil
}

// WatchRevocations polls the store for revocations until ctx ends, ending
// the live connections of each new one. The first read takes every
// revocation whose tokens are still valid.
func (s *Server) WatchRevocations(ctx context.Context) {
	log := s.Log
	var since time.Time
	t := time.NewTicker(revocationPoll)
	defer t.Stop()
	for {
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, s.StoreTimeout)
		rs, err := s.People.Revocations(rctx, since, start)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("read revocations", "err", err)
		} else {
			since = start.Add(-revocationOverlap)
			if fresh := s.revoked.add(rs...); len(fresh) > 0 {
				s.live.end(fresh...)
			}
			s.revoked.forget(start)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
