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
	http.StatusRequestEntityTooLarge: chat.ETooLarge,
	http.StatusTooManyRequests:       chat.ERateLimited,
	http.StatusServiceUnavailable:    chat.EUnavailable,
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ErrorHandler is Fiber's error handler: every error answer is
// {"error":{"code","message"}}; causes of internal errors are logged, never
// shown.
func ErrorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		setSecurityHeaders(c)
		code, msg := chat.ErrorCode(err), chat.ErrorMessage(err)
		var fe *fiber.Error
		if errors.As(err, &fe) {
			code = codeOf[fe.Code]
			if code == "" {
				code = chat.EBadRequest
				if fe.Code >= 500 {
					code = chat.EInternal
				}
			}
			msg = fe.Message
			if fe.Code == http.StatusRequestEntityTooLarge {
				msg = "request body is over 64 KiB"
			}
		}
		switch code {
		case chat.EInternal:
			log.Error("request failed", "method", c.Method(), "path", c.Path(), "err", err)
			msg = "internal error"
		case chat.EUnavailable:
			log.Warn("request failed", "method", c.Method(), "path", c.Path(), "err", err)
		}
		return c.Status(statusOf[code]).JSON(errorBody{errorDetail{code, msg}})
	}
}
