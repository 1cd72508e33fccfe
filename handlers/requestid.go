package handlers

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/gofiber/fiber/v2"
)

// RequestIDHeader carries a request's id in and out: a proxy's id is kept,
// else one is made, and either is echoed in the answer and named on the
// request's log lines, so that an operator can follow one request from the
// proxy's log to Parley's.
const RequestIDHeader = "X-Request-ID"

// requestIDKey is the c.Locals key of the request's id.
const requestIDKey = "parley.request_id"

// maxRequestIDLen bounds an id taken from the client.
const maxRequestIDLen = 128

// requestID is the middleware that gives every request its id.
func requestID(c *fiber.Ctx) error {
	id := c.Get(RequestIDHeader)
	if !validRequestID(id) {
		id = newRequestID()
	} else {
		// Copied: Fiber reuses the request's buffers after the handler.
		id = string([]byte(id))
	}
	c.Locals(requestIDKey, id)
	c.Set(RequestIDHeader, id)
	return c.Next()
}

// RequestID is the id the middleware gave c's request ("" before it ran).
func RequestID(c *fiber.Ctx) string {
	id, _ := c.Locals(requestIDKey).(string)
	return id
}

// validRequestID accepts the ids proxies make (UUIDs, hex, base64url and the
// like): short, and only characters that cannot break a log line or a header.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		b := id[i]
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		case b == '-', b == '_', b == '.', b == ':', b == '+', b == '/', b == '=':
		default:
			return false
		}
	}
	return true
}

// newRequestID is 16 random bytes in hex.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
