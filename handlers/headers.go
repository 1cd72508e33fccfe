package handlers

import "github.com/gofiber/fiber/v2"

// contentSecurityPolicy lets the page load only its own script, style,
// images and connections (WebSocket and EventSource included): no inline
// script or style, no framing, no plugins, no <base> rewriting, forms post
// only here.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; manifest-src 'self'; worker-src 'self'; " +
	"frame-ancestors 'none'; object-src 'none'; base-uri 'none'; form-action 'self'"

// setSecurityHeaders puts the headers every response carries on c's
// response: the error handler calls it too, for answers the HTTP layer gives
// before any middleware ran.
func setSecurityHeaders(c *fiber.Ctx) {
	h := &c.Response().Header
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// securityHeaders is the first middleware: every response, whatever answers
// it, carries the security headers.
func securityHeaders(c *fiber.Ctx) error {
	setSecurityHeaders(c)
	return c.Next()
}
