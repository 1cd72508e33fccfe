package handlers

import (
	"context"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/app/chat"
)

// Limits are the per-user and per-client-IP limits and the per-connection
// queue bound. A zero field means its default: DefaultLimits is the one
// place the defaults are written (app's DefaultConfig reads them there).
type Limits struct {
	// SendRate and SendBurst limit each user's sends, over all their
	// WebSocket connections and POSTs on this instance: messages per second
	// sustained, and burst.
	SendRate  float64
	SendBurst int
	// SignInRate and SignInBurst limit sign-ins per client IP.
	SignInRate  float64
	SignInBurst int
	// PasswordRate and PasswordBurst limit password sign-in attempts per
	// name, from any IP.
	PasswordRate  float64
	PasswordBurst int
	// HistoryRate and HistoryBurst limit history pages per user.
	HistoryRate  float64
	HistoryBurst int
	// ReadRate and ReadBurst limit the read positions one user sends
	// (read frames and PUT .../read).
	ReadRate  float64
	ReadBurst int
	// MaxPushSubscriptions bounds one user's Web Push subscriptions.
	MaxPushSubs int
	// RoomRate and RoomBurst limit the rooms one user creates (by sending a
	// room its first message).
	RoomRate  float64
	RoomBurst int
	// MaxConnsPerUser and MaxConnsPerIP bound live connections (WebSocket
	// and SSE together), checked before the upgrade.
	MaxConnsPerUser int
	MaxConnsPerIP   int
	// QueueBytes bounds each connection's outgoing queue; a client whose
	// queue would exceed it is cut off as too slow.
	QueueBytes int
}

// DefaultLimits are the limits of PROTOCOL.md.
func DefaultLimits() Limits {
	return Limits{
		SendRate: 20, SendBurst: 40,
		SignInRate: 1, SignInBurst: 20,
		PasswordRate: 0.05, PasswordBurst: 10, // one try per 20 s after a burst of 10
		HistoryRate: 10, HistoryBurst: 30,
		ReadRate: 10, ReadBurst: 30,
		MaxPushSubs: 10,
		RoomRate:    0.1, RoomBurst: 10, // one room per 10 s after a burst of 10
		MaxConnsPerUser: 20, MaxConnsPerIP: 200,
		QueueBytes: 2 << 20,
	}
}

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	orDefault(&l.SendRate, d.SendRate)
	orDefault(&l.SendBurst, d.SendBurst)
	orDefault(&l.SignInRate, d.SignInRate)
	orDefault(&l.SignInBurst, d.SignInBurst)
	orDefault(&l.PasswordRate, d.PasswordRate)
	orDefault(&l.PasswordBurst, d.PasswordBurst)
	orDefault(&l.HistoryRate, d.HistoryRate)
	orDefault(&l.HistoryBurst, d.HistoryBurst)
	orDefault(&l.ReadRate, d.ReadRate)
	orDefault(&l.ReadBurst, d.ReadBurst)
	orDefault(&l.MaxPushSubs, d.MaxPushSubs)
	orDefault(&l.RoomRate, d.RoomRate)
	orDefault(&l.RoomBurst, d.RoomBurst)
	orDefault(&l.MaxConnsPerUser, d.MaxConnsPerUser)
	orDefault(&l.MaxConnsPerIP, d.MaxConnsPerIP)
	orDefault(&l.QueueBytes, d.QueueBytes)
	return l
}

// orDefault sets *v to def when it is zero.
func orDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Reasons of parley_refused_total{reason}.
const (
	limitSend      = "send_rate"
	limitSignIn    = "signin_rate"
	limitPassword  = "password_rate"
	limitHistory   = "history_rate"
	limitRead      = "read_rate"
	limitPush      = "push_subscriptions"
	limitRoom      = "room_rate"
	limitUserConns = "user_connections"
	limitIPConns   = "ip_connections"
	limitOrigin    = "origin"
)

// maxLimiterKeys bounds each keyed limiter's memory: the least recently
// used key goes first. A key pushed out had been idle longest, and its
// bucket is most likely full again anyway.
const maxLimiterKeys = 100_000

// keyedLimiter is one token bucket (golang.org/x/time/rate) per key — a
// user or a client IP — held in a bounded LRU (hashicorp/golang-lru). A
// bucket idle for longer than it takes to refill is dropped and starts full
// again, which is the state it would be in anyway: entries expire without a
// sweeper goroutine.
type keyedLimiter struct {
	limit rate.Limit
	burst int
	idle  time.Duration // after this long unused, a bucket is full
	cache *lru.Cache[string, *bucket]
	mu    sync.Mutex // orders Get-or-create, so one key has one bucket
}

type bucket struct {
	l    *rate.Limiter
	seen time.Time
}

func newKeyedLimiter(perSecond float64, burst int) *keyedLimiter {
	c, err := lru.New[string, *bucket](maxLimiterKeys)
	if err != nil {
		panic(err) // only for a size <= 0
	}
	idle := time.Duration(float64(burst) / perSecond * float64(time.Second))
	return &keyedLimiter{limit: rate.Limit(perSecond), burst: burst, idle: max(idle, time.Second), cache: c}
}

// allow takes one token of key's bucket, if it has one.
func (k *keyedLimiter) allow(key string) bool {
	now := time.Now()
	k.mu.Lock()
	b, ok := k.cache.Get(key)
	if !ok || now.Sub(b.seen) > k.idle {
		b = &bucket{l: rate.NewLimiter(k.limit, k.burst)}
		k.cache.Add(key, b)
	}
	b.seen = now
	k.mu.Unlock()
	return b.l.AllowN(now, 1)
}

// len is the number of buckets held (tests).
func (k *keyedLimiter) len() int { return k.cache.Len() }

// connLimiter counts live connections (WebSocket and SSE) per user and per
// client IP. An entry lives exactly as long as its connections, so the map
// is bounded by them.
type connLimiter struct {
	perUser, perIP int
	mu             sync.Mutex
	users, ips     map[string]int
}

func newConnLimiter(perUser, perIP int) *connLimiter {
	return &connLimiter{perUser: perUser, perIP: perIP, users: map[string]int{}, ips: map[string]int{}}
}

// acquire takes a connection slot for user at ip, or answers which limit
// refused it. release must be called once when the connection ends.
func (l *connLimiter) acquire(user, ip string) (release func(), reason string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ips[ip] >= l.perIP {
		return nil, limitIPConns, chat.Errorf(chat.ERateLimited, "too many live connections from your address: at most %d", l.perIP)
	}
	if l.users[user] >= l.perUser {
		return nil, limitUserConns, chat.Errorf(chat.ERateLimited, "too many live connections for this user: at most %d; close another tab or device", l.perUser)
	}
	l.ips[ip]++
	l.users[user]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.ips[ip]--; l.ips[ip] <= 0 {
				delete(l.ips, ip)
			}
			if l.users[user]--; l.users[user] <= 0 {
				delete(l.users, user)
			}
		})
	}, "", nil
}

// roomCheckTimeout bounds the store read that tells whether a send creates
// its room: a store that does not answer must not hold sends up (they go to
// the bus, not the store), so the send goes on as if the room were new.
const roomCheckTimeout = 500 * time.Millisecond

// allowSend applies the user's send bucket and, to a message that would
// create its room, the user's room creation bucket.
func (s *Server) allowSend(ctx context.Context, user, room string) error {
	if !s.sends.allow(user) {
		s.Metrics.RateLimit()
		s.Metrics.Refused(limitSend)
		return chat.Errorf(chat.ERateLimited, "too many messages: at most %g per second", s.SendRate)
	}
	if chat.ValidateRoom(room) != nil {
		return nil // the Sender refuses it with the reason
	}
	ctx, cancel := context.WithTimeout(ctx, roomCheckTimeout)
	defer cancel()
	if exists, err := s.Hub.RoomExists(ctx, room); err == nil && exists {
		return nil
	}
	if !s.creates.allow(user) {
		s.Metrics.Refused(limitRoom)
		return chat.Errorf(chat.ERateLimited, "too many new rooms: at most %d at once, then one per %s", s.RoomBurst, perText(s.RoomRate))
	}
	return nil
}

// checkSend refuses a send the instance already knows to be forbidden (see
// chat.Hub.CheckSend). It waits for a room's first read at most
// roomCheckTimeout: past it, or when the store fails, the send goes on and
// the persist stage decides.
func (s *Server) checkSend(ctx context.Context, user, room string) error {
	ctx, cancel := context.WithTimeout(ctx, roomCheckTimeout)
	defer cancel()
	return s.Hub.CheckSend(ctx, user, room)
}

// perText writes the interval of a rate: "2s", "100ms".
func perText(perSecond float64) string {
	return time.Duration(float64(time.Second) / perSecond).Round(time.Millisecond).String()
}

// allowRead applies the user's history bucket.
func (s *Server) allowRead(user string) error {
	if s.reads.allow(user) {
		return nil
	}
	s.Metrics.Refused(limitHistory)
	return chat.Errorf(chat.ERateLimited, "too many history reads: at most %g per second", s.HistoryRate)
}

// allowSignIn applies the client IP's sign-in bucket.
func (s *Server) allowSignIn(ip string) error {
	if s.signIns.allow(ip) {
		return nil
	}
	s.Metrics.Refused(limitSignIn)
	return chat.Errorf(chat.ERateLimited, "too many sign-ins from your address: at most %g per second", s.SignInRate)
}

// connSlot takes a live-connection slot for the request's user and client
// IP, or refuses it with rate_limited before any upgrade or stream.
func (s *Server) connSlot(c *fiber.Ctx) (release func(), err error) {
	release, reason, err := s.conns.acquire(userOf(c), s.clientIP(c))
	if err != nil {
		s.Metrics.Refused(reason)
		return nil, err
	}
	return release, nil
}
