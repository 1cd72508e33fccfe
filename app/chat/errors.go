package chat

import (
	"errors"
	"fmt"
)

// Error codes shared by HTTP and WebSocket answers (PROTOCOL.md, "Error codes").
// The handlers map each to its HTTP status in one place.
const (
	EBadRequest   = "bad_request"
	EUnauthorized = "unauthorized"
	EForbidden    = "forbidden"
	ENotFound     = "not_found"
	EConflict     = "conflict"
	ETooLarge     = "too_large"
	ERateLimited  = "rate_limited"
	EUnavailable  = "unavailable"
	EInternal     = "internal"
)

// Error is an error a client may see: a code from the list above and a plain
// message. Anything else that reaches a handler is reported as "internal" and
// its text is only logged, so driver errors never leak to clients.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with the given code.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err's *Error, or EInternal.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the client-safe message of err.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
