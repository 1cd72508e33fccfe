package chat

import (
	"errors"
	"fmt"
	"strings"
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

// KeyInternal is the key (and message) of every error whose text is not
// for clients.
const KeyInternal = "internal error"

// KeyRefused is the key (and message) of a refusal that says no more.
const KeyRefused = "refused"

// Error is an error a client may see: a code from the list above and a plain
// message. Anything else that reaches a handler is reported as "internal" and
// its text is only logged, so driver errors never leak to clients.
//
// Key and Params let a client show the message in its own language: Key is
// the English format the message was made from (Errorf's format; a stable
// name, since a client's catalogue is keyed by it) and Params the arguments,
// each as the message shows it.
type Error struct {
	Code    string
	Message string
	Key     string
	Params  []string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with the given code; format is its Key.
func Errorf(code, format string, args ...any) *Error {
	e := &Error{Code: code, Message: fmt.Sprintf(format, args...), Key: format}
	verbs := FormatVerbs(format)
	for i, a := range args {
		// Each argument as its own verb shows it (U+%04X is hex, %q
		// quotes), so a translation places the very text the message has;
		// an argument without a verb (a bug fmt marks too) gets %v.
		v := "%v"
		if i < len(verbs) {
			v = verbs[i]
		}
		e.Params = append(e.Params, fmt.Sprintf(v, a))
	}
	return e
}

// FormatVerbs returns the verbs of a fmt format in order, each with its
// flags, width and precision ("%04X", "%q"); "%%" is none. Parley's formats
// use no argument indexes and no "*".
func FormatVerbs(format string) []string {
	var verbs []string
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		j := i + 1
		for j < len(format) && strings.IndexByte("+-# 0123456789.", format[j]) >= 0 {
			j++
		}
		if j >= len(format) {
			break
		}
		if format[j] != '%' {
			verbs = append(verbs, format[i:j+1])
		}
		i = j
	}
	return verbs
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
	return KeyInternal
}

// ErrorKey returns the client-safe key and parameters of err's message
// (see Error).
func ErrorKey(err error) (key string, params []string) {
	var e *Error
	if errors.As(err, &e) {
		return e.Key, e.Params
	}
	return KeyInternal, nil
}

// Public returns err's *Error as a client may see it: an error that is not
// one is internal.
func Public(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: EInternal, Message: KeyInternal, Key: KeyInternal}
}
