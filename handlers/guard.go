package handlers

import (
	"bytes"
	"crypto/subtle"
	"net"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/app/chat"
)

// The security layer: every request passes through guard before any route,
// so a route registered later is covered by being registered. It refuses,
// in this order, before anything is decoded:
//   - a body in a Content-Encoding but identity, and a POST, PUT or PATCH
//     body that is not JSON (415): the body limit is a limit on what the
//     handlers read, never on compressed bytes that would inflate in c.Body();
//   - a cross-site use of the browser's session: a state-changing request,
//     a WebSocket upgrade or an SSE stream whose Origin is not this server's
//     nor allowed (403), unless it carries only a bearer token.

// statusError is a client error whose HTTP status is not its code's usual
// one (415 is bad_request, PROTOCOL.md v2). Its msg, a fixed text, is its
// key (chat.Error).
type statusError struct {
	status int
	code   string
	msg    string
}

func (e *statusError) Error() string { return e.code + ": " + e.msg }

// unsupported is the 415 for a body Parley will not read.
func unsupported(msg string) error {
	return &statusError{status: fiber.StatusUnsupportedMediaType, code: chat.EBadRequest, msg: msg}
}

// guard is the first middleware after the security headers.
func (s *Server) guard(c *fiber.Ctx) error {
	if err := checkBody(c); err != nil {
		return err
	}
	if err := s.checkOrigin(c); err != nil {
		return err
	}
	return c.Next()
}

// checkBody applies the body rules to the request's headers only.
func checkBody(c *fiber.Ctx) error {
	h := &c.Request().Header
	if enc := bytes.TrimSpace(h.Peek(fiber.HeaderContentEncoding)); len(enc) > 0 && !bytes.EqualFold(enc, []byte("identity")) {
		return unsupported("request bodies are read only without Content-Encoding (identity)")
	}
	switch c.Method() {
	case fiber.MethodPost, fiber.MethodPut, fiber.MethodPatch:
	default:
		return nil
	}
	ct := h.ContentType()
	if len(ct) == 0 && len(c.Request().Body()) == 0 && h.ContentLength() <= 0 {
		// No body at all (e.g. a bodiless POST): nothing to read.
		return nil
	}
	mt, _, _ := strings.Cut(string(ct), ";")
	if !strings.EqualFold(strings.TrimSpace(mt), fiber.MIMEApplicationJSON) {
		return unsupported("request bodies must be Content-Type: application/json")
	}
	return nil
}

// checkOrigin refuses cross-site use of the session: see guard.
func (s *Server) checkOrigin(c *fiber.Ctx) error {
	origin := c.Get(fiber.HeaderOrigin)
	if origin == "" || !originChecked(c) {
		return nil
	}
	if s.originAllowed(c, origin) {
		return nil
	}
	// A program that presents a token itself, and no cookie, is not a
	// browser acting on a user's session without their knowing: a page on
	// another origin cannot read the token of a Parley session.
	if c.Cookies(CookieName) == "" {
		if _, ok := token(c); ok {
			return nil
		}
	}
	s.Metrics.Refused(limitOrigin)
	return chat.Errorf(chat.EForbidden, "requests from origin %s are not allowed", sanitizedOrigin(origin))
}

// originChecked says which requests the Origin rule covers: every method
// that changes something, the WebSocket upgrade and the SSE stream.
func originChecked(c *fiber.Ctx) bool {
	switch c.Method() {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions:
		return isUpgrade(c) || strings.HasSuffix(c.Path(), "/events")
	}
	return true
}

func isUpgrade(c *fiber.Ctx) bool {
	return strings.EqualFold(c.Get(fiber.HeaderUpgrade), "websocket")
}

// originAllowed: the request's own origin (its scheme and Host), the public
// URL's, and PARLEY_ALLOWED_ORIGINS.
func (s *Server) originAllowed(c *fiber.Ctx, origin string) bool {
	o, ok := normalizeOrigin(origin)
	if !ok {
		return false
	}
	if self, ok := normalizeOrigin(s.scheme(c) + "://" + string(c.Request().Host())); ok && self == o {
		return true
	}
	for _, a := range s.AllowedOrigins {
		if a == o {
			return true
		}
	}
	return false
}

// NormalizeOrigin returns the canonical scheme://host[:port] of an origin
// or URL (lower case, default port dropped), for comparing origins: it is
// how PARLEY_PUBLIC_URL and PARLEY_ALLOWED_ORIGINS are read too.
func NormalizeOrigin(v string) (string, bool) { return normalizeOrigin(v) }

func normalizeOrigin(v string) (string, bool) {
	u, err := url.Parse(strings.TrimSpace(v))
	if err != nil || u.Host == "" || u.User != nil {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", false
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, true
}

// sanitizedOrigin is an origin fit to appear in an answer: normalized, or
// not at all (no request header is echoed back as sent).
func sanitizedOrigin(origin string) string {
	if o, ok := normalizeOrigin(origin); ok {
		return o
	}
	return "(malformed)"
}

// scheme is the request's scheme: https over TLS, or when a trusted proxy
// says so in X-Forwarded-Proto. A client's own X-Forwarded-Proto counts for
// nothing.
func (s *Server) scheme(c *fiber.Ctx) string {
	if c.Context().IsTLS() {
		return "https"
	}
	if s.trusted(c.Context().RemoteIP()) {
		if p := strings.ToLower(strings.TrimSpace(c.Get(fiber.HeaderXForwardedProto))); p == "https" || p == "http" {
			return p
		}
	}
	return "http"
}

// trusted reports whether ip is one of PARLEY_TRUSTED_PROXIES.
func (s *Server) trusted(ip net.IP) bool {
	for _, n := range s.TrustedProxies {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// clientIP is the address limits are counted on: the peer, or, when the
// peer is a trusted proxy, the nearest address in X-Forwarded-For that is
// not one (read from the right: what a client writes itself is on the
// left, where a proxy that appends leaves it).
func (s *Server) clientIP(c *fiber.Ctx) string {
	ip := c.Context().RemoteIP()
	if !s.trusted(ip) {
		return ip.String()
	}
	hops := strings.Split(c.Get(fiber.HeaderXForwardedFor), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := net.ParseIP(strings.TrimSpace(hops[i]))
		if hop == nil {
			break
		}
		if !s.trusted(hop) {
			return hop.String()
		}
		ip = hop
	}
	return ip.String()
}

// metricsAllowed: /metrics on the chat listener answers loopback clients
// that did not come through a proxy, and holders of PARLEY_METRICS_TOKEN.
func (s *Server) metricsAllowed(c *fiber.Ctx) bool {
	if s.MetricsToken != "" {
		t, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
		if ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(t)), []byte(s.MetricsToken)) == 1 {
			return true
		}
	}
	// A reverse proxy on this host connects from loopback on behalf of
	// anyone: a forwarded request is not a local one.
	forwarded := c.Get(fiber.HeaderXForwardedFor) != "" || c.Get("Forwarded") != ""
	return c.Context().RemoteIP().IsLoopback() && !forwarded
}
