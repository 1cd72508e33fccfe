// Package handlers is Parley's HTTP surface on Fiber: the page, the
// WebSocket, SSE and POST, history and rooms, session, and operations
// endpoints. It speaks the chat package's API and nothing lower.
package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/app/chat"
)

// Server holds what the routes need. Fields with zero values get their
// defaults (see defaults).
type Server struct {
	Store chat.Store
	// People holds names and ended sessions (both stores implement it).
	People chat.People
	// Rooms holds the rooms' saved states and room lists (both stores
	// implement it).
	Rooms chat.RoomStates
	// Marks keeps read positions and counts; Notes notifications, push
	// subscriptions and the outbox (both stores implement them).
	Marks chat.Marks
	Notes chat.Notifications
	// Lifecycles folds history as it stands (both stores implement it).
	Lifecycles chat.Lifecycles
	// VAPIDPublicKey is the Web Push application server key ("": push is
	// off). ValidatePush checks a browser's subscription (notify's
	// ValidateSubscription); PushLoopbackHTTP lets it take http endpoints
	// on loopback (the tests' push service).
	VAPIDPublicKey   string
	ValidatePush     func(endpoint, p256dh, auth string, loopbackHTTP bool) error
	PushLoopbackHTTP bool
	Bus              chat.Bus
	Hub              *chat.Hub
	Sender           *chat.Sender
	Auth             *Auth
	Metrics          Metrics
	// MetricsHTTP serves the metrics in their exposition format (nil: none),
	// on /metrics or on the operator's own address (see MetricsHandler).
	MetricsHTTP http.Handler
	Log         *slog.Logger
	// Ready reports why the instance cannot serve yet (nil: ready), beyond
	// the store and bus pings, e.g. the fan-out consumer not yet assigned.
	Ready func() error
	// Guest allows guest sign-in (POST /api/session with a name alone).
	Guest bool
	// Accounts allows POST /api/accounts (password accounts).
	Accounts bool
	// OIDCName, when set, names the operator's identity provider on the
	// sign-in page; the OIDC routes are registered with it (see oidc.go).
	OIDCName string
	// Limits are the per-user and per-IP limits; zero fields get
	// DefaultLimits.
	Limits
	// AllowedOrigins are the origins, besides the request's own, whose
	// pages may use the session cookie here: PARLEY_PUBLIC_URL's and
	// PARLEY_ALLOWED_ORIGINS, each as NormalizeOrigin gives it.
	AllowedOrigins []string
	// TrustedProxies are the peers whose X-Forwarded-For and
	// X-Forwarded-Proto are believed (PARLEY_TRUSTED_PROXIES).
	TrustedProxies []*net.IPNet
	// MetricsToken, when set, lets a request with Authorization: Bearer
	// <token> read /metrics from anywhere; otherwise only loopback clients
	// may. MetricsElsewhere takes /metrics off the chat listener (it is
	// served on PARLEY_METRICS_ADDR, see MetricsHandler).
	MetricsToken     string
	MetricsElsewhere bool
	// MaxRooms bounds the rooms one WebSocket connection joins. Zero:
	// defaultMaxRooms.
	MaxRooms int
	// SSEHeartbeat is the interval of ": ping" comments. Zero:
	// defaultSSEHeartbeat.
	SSEHeartbeat time.Duration
	// StoreTimeout bounds each /api request's store calls (history, rooms),
	// so that a store that does not answer is a prompt 503 rather than a
	// request hanging on the driver's own 30 s. Zero: defaultStoreTimeout.
	StoreTimeout time.Duration

	// base ends when Close is called: streams and connections watch it.
	base context.Context
	stop context.CancelFunc
	// The limits: per user (sends, history reads, room creation), per
	// client IP (sign-ins), per name (password attempts), and live
	// connections per user and IP.
	sends, signIns, reads, creates, passwordTries, marksRate *keyedLimiter
	conns                                                    *connLimiter
	// revoked are the ended sessions this instance knows of, live their
	// connections (see sessions.go).
	revoked revokedSet
	live    liveSessions
	// draining is set by Drain: /readyz answers 503 from then on.
	draining atomic.Bool
	// sockets counts WebSocket connections whose handler runs. Fiber's
	// shutdown does not wait for them: a hijacked connection is no longer
	// the HTTP server's.
	sockets tracker
}

// Defaults of the Server's own settings (the limits have theirs in
// DefaultLimits).
const (
	defaultMaxRooms     = 100
	defaultSSEHeartbeat = 15 * time.Second
	defaultStoreTimeout = 5 * time.Second
)

// defaults gives zero fields their defaults.
func (s *Server) defaults() {
	s.Limits = s.Limits.WithDefaults()
	if s.Rooms == nil {
		// Both stores keep the room states beside the messages.
		s.Rooms, _ = s.Store.(chat.RoomStates)
	}
	if s.Hub != nil && s.Rooms != nil && !s.Hub.HasRoomLoader() {
		s.Hub.SetRoomLoader(s.Rooms.RoomState)
	}
	if s.Metrics == nil {
		s.Metrics = nopMetrics{}
	}
	orDefault(&s.MaxRooms, defaultMaxRooms)
	orDefault(&s.SSEHeartbeat, defaultSSEHeartbeat)
	orDefault(&s.StoreTimeout, defaultStoreTimeout)
	s.base, s.stop = context.WithCancel(context.Background())
	s.sends = newKeyedLimiter(s.SendRate, s.SendBurst)
	s.signIns = newKeyedLimiter(s.SignInRate, s.SignInBurst)
	s.passwordTries = newKeyedLimiter(s.PasswordRate, s.PasswordBurst)
	s.reads = newKeyedLimiter(s.HistoryRate, s.HistoryBurst)
	s.creates = newKeyedLimiter(s.RoomRate, s.RoomBurst)
	s.marksRate = newKeyedLimiter(s.ReadRate, s.ReadBurst)
	if s.Marks == nil {
		s.Marks, _ = s.Store.(chat.Marks)
	}
	if s.Notes == nil {
		s.Notes, _ = s.Store.(chat.Notifications)
	}
	if s.Lifecycles == nil {
		s.Lifecycles, _ = s.Store.(chat.Lifecycles)
	}
	if s.ValidatePush == nil {
		s.VAPIDPublicKey = "" // no way to check a subscription: push is off
	}
	s.conns = newConnLimiter(s.MaxConnsPerUser, s.MaxConnsPerIP)
}

// Register installs every route on app.
func (s *Server) Register(app *fiber.App) {
	s.defaults()
	// The security layer comes first, so that every route registered below
	// (and later) is covered: TestEveryRouteIsGuarded walks the router.
	app.Use(requestID)
	app.Use(securityHeaders, s.guard)
	app.Get("/healthz", s.healthz)
	app.Get("/readyz", s.readyz)
	app.Get("/metrics", s.metricsOnListener())
	s.registerPages(app)

	api := app.Group("/api")
	api.Get("/openapi.json", openAPI)
	api.Post("/session", s.bounded, s.signIn)
	api.Delete("/session", s.bounded, s.signOut)
	api.Post("/accounts", s.bounded, s.createAccount)
	authed := api.Group("", s.requireUser, s.bounded)
	authed.Post("/session/refresh", s.refresh)
	authed.Get("/rooms", s.listRooms)
	authed.Post("/rooms", s.createRoom)
	authed.Post("/dms", s.createDM)
	authed.Get("/rooms/:room", s.getRoom)
	authed.Patch("/rooms/:room", s.updateRoom)
	authed.Get("/rooms/:room/messages", s.history)
	authed.Post("/rooms/:room/messages", s.postMessage)
	authed.Get("/rooms/:room/events", s.events)
	authed.Get("/rooms/:room/members", s.members)
	authed.Post("/rooms/:room/members", s.addMember)
	authed.Delete("/rooms/:room/members/:user", s.removeMember)
	authed.Put("/rooms/:room/members/:user", s.setRole)
	authed.Get("/rooms/:room/bans", s.bans)
	authed.Post("/rooms/:room/bans", s.ban)
	authed.Delete("/rooms/:room/bans/:user", s.unban)
	authed.Post("/rooms/:room/mutes", s.mute)
	authed.Delete("/rooms/:room/mutes/:user", s.unmute)
	authed.Patch("/rooms/:room/messages/:seq", s.editMessage)
	authed.Delete("/rooms/:room/messages/:seq", s.deleteMessage)
	authed.Post("/rooms/:room/messages/:seq/reactions", s.react)
	authed.Get("/rooms/:room/messages/:seq/edits", s.edits)
	authed.Put("/rooms/:room/read", s.putRead)
	authed.Get("/rooms/:room/receipts", s.receipts)
	authed.Get("/notifications", s.notificationsPage)
	authed.Get("/push/vapid", s.vapidKey)
	authed.Post("/push/subscriptions", s.addPushSubscription)
	authed.Delete("/push/subscriptions", s.removePushSubscription)
	api.Use(func(c *fiber.Ctx) error {
		return chat.Errorf(chat.ENotFound, "no such API route: %s %s", c.Method(), c.Path())
	})

	app.Get("/ws", s.requireUser, s.upgrade, s.websocket())
}

// Drain is the first step of a graceful shutdown: /readyz answers 503 from
// now on, so that load balancers stop sending clients here, while
// everything else goes on serving.
func (s *Server) Drain() { s.draining.Store(true) }

// Close starts shutting the connections down: WebSocket clients get close
// 1012 (reconnect elsewhere and resume) once every send they already sent is
// answered, SSE streams end after what is queued. See Wait.
func (s *Server) Close() {
	s.Drain()
	s.stop()
}

// Wait waits, after Close, until every WebSocket handler has returned (each
// send it read answered, its queue flushed, 1012 sent) or ctx ends; it
// reports whether they all returned. Requests and SSE streams are the HTTP
// server's to wait for (fiber.App.ShutdownWithContext).
func (s *Server) Wait(ctx context.Context) bool { return s.sockets.wait(ctx) }

// bounded gives the request's context the store timeout.
func (s *Server) bounded(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), s.StoreTimeout)
	defer cancel()
	c.SetUserContext(ctx)
	return c.Next()
}

// tracker counts running handlers and lets shutdown wait for none.
type tracker struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to 0; made by wait
}

func (t *tracker) add() {
	t.mu.Lock()
	t.n++
	t.mu.Unlock()
}

func (t *tracker) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 && t.idle != nil {
		close(t.idle)
		t.idle = nil
	}
}

func (t *tracker) wait(ctx context.Context) bool {
	t.mu.Lock()
	if t.n == 0 {
		t.mu.Unlock()
		return true
	}
	if t.idle == nil {
		t.idle = make(chan struct{})
	}
	idle := t.idle
	t.mu.Unlock()
	select {
	case <-idle:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Server) ctx() context.Context { return s.base }

// decodeJSON decodes a request body into v, refusing invalid UTF-8 (which
// encoding/json would silently replace) and invalid JSON.
func decodeJSON(c *fiber.Ctx, v any) error {
	// The raw body: the guard has refused every Content-Encoding, and
	// c.Body() would inflate one.
	body := c.Request().Body()
	if !utf8.Valid(body) {
		return chat.Errorf(chat.EBadRequest, "body must be valid UTF-8")
	}
	d := json.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(v); err != nil {
		return chat.Errorf(chat.EBadRequest, "body must be a JSON object: %v", jsonProblem(err))
	}
	if d.More() {
		return chat.Errorf(chat.EBadRequest, "body must be one JSON object")
	}
	return nil
}

// jsonProblem describes a decoding error without echoing Go type names.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "field " + strconv.Quote(te.Field) + " has the wrong type"
	}
	return "malformed JSON"
}

// parseSeq parses a whole number >= 0 written in plain decimal digits.
func parseSeq(name, v string) (int64, error) {
	bad := chat.Errorf(chat.EBadRequest, "%s must be a whole number >= 0", name)
	if v == "" || len(v) > 19 {
		return 0, bad
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, bad
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, bad
	}
	return n, nil
}

// roomParam returns the validated :room, copied out of Fiber's reused buffer.
func roomParam(c *fiber.Ctx) (string, error) {
	room := string([]byte(c.Params("room")))
	return room, chat.ValidateRoom(room)
}
