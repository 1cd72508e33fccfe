package handlers

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/app/chat"
)

// statusOf maps an error code to its HTTP status: the one place where domain
// codes become HTTP.
var statusOf = map[string]int{
	chat.EBadRequest:   http.StatusBadRequest,
	chat.EUnauthorized: http.StatusUnauthorized,
	chat.EForbidden:    http.StatusForbidden,
	chat.ENotFound:     http.StatusNotFound,
	chat.EConflict:     http.StatusConflict,
	chat.ETooLarge:     http.StatusRequestEntityTooLarge,
	chat.ERateLimited:  http.StatusTooManyRequests,
	chat.EUnavailable:  http.StatusServiceUnavailable,
	chat.EInternal:     http.StatusInternalServerError,
}

// codeOf maps Fiber's own errors (unknown route, body too large, ...) to codes.
var codeOf = map[int]string{
	http.StatusBadRequest:            chat.EBadRequest,
	http.StatusUnauthorized:          chat.EUnauthorized,
	http.StatusForbidden:             chat.EForbidden,
	http.StatusNotFound:              chat.ENotFound,
	http.StatusMethodNotAllowed:      chat.ENotFound,
	http.StatusConflict:              chat.EConflict,
	http.StatusRequestEntityTooLarge: chat.ETooLarge,
	http.StatusTooManyRequests:       chat.ERateLimited,
	http.StatusServiceUnavailable:    chat.EUnavailable,
	http.StatusRequestTimeout:        chat.EBadRequest,
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

// errorDetail is an error as a client sees it; key and params name its
// message for a client's translation (chat.Error).
type errorDetail struct {
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Key     string   `json:"key,omitempty"`
	Params  []string `json:"params,omitempty"`
}

// fiberMessages are the messages of the answers the HTTP layer itself gives
// (fiber.Error, fasthttp's parse errors): fixed texts, since the errors'
// own texts quote the request, headers and all. Each is its own key.
var fiberMessages = map[int]string{
	http.StatusBadRequest:                  "malformed HTTP request",
	http.StatusNotFound:                    "no such route",
	http.StatusMethodNotAllowed:            "method not allowed on this route",
	http.StatusRequestTimeout:              "request not received in time",
	http.StatusRequestEntityTooLarge:       "request body is over 64 KiB",
	http.StatusRequestHeaderFieldsTooLarge: "request headers are too large",
	http.StatusUpgradeRequired:             "this endpoint speaks WebSocket only",
}

// ErrorHandler is Fiber's error handler, the one error path for everything
// refused, by a handler or by the HTTP layer: every error answer is
// {"error":{"code","message","key","params"}} with the security headers; causes of
// internal errors are logged, never shown; no answer quotes the request.
func ErrorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		setSecurityHeaders(c)
		code, msg := chat.ErrorCode(err), chat.ErrorMessage(err)
		key, params := chat.ErrorKey(err)
		status := 0
		var fe *fiber.Error
		var se *statusError
		switch {
		case errors.As(err, &se):
			code, msg, status = se.code, se.msg, se.status
			key, params = se.msg, nil
		case errors.As(err, &fe):
			status = fe.Code
			code = codeOf[fe.Code]
			if code == "" {
				code = chat.EBadRequest
				if fe.Code >= 500 {
					code = chat.EInternal
					status = http.StatusInternalServerError
				}
			}
			msg, params = fiberMessages[fe.Code], nil
			key = msg
			if msg == "" {
				// A status Parley does not expect from its HTTP layer:
				// no key, a client shows the English text.
				msg = http.StatusText(fe.Code)
			}
		}
		switch code {
		case chat.EInternal:
			log.Error("request failed", "method", c.Method(), "path", c.Path(), "request_id", RequestID(c), "err", err)
			msg, key, params = chat.KeyInternal, chat.KeyInternal, nil
		case chat.EUnavailable:
			log.Warn("request failed", "method", c.Method(), "path", c.Path(), "request_id", RequestID(c), "err", err)
		}
		if status == 0 {
			status = statusOf[code]
		}
		return c.Status(status).JSON(errorBody{errorDetail{code, msg, key, params}})
	}
}
