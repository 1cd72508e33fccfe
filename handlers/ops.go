package handlers

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"

	"github.com/parley-chat/parley/app/chat"
)

func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

// readyz is 200 only while the store and the bus answer and the fan-out
// consumer reads; a load balancer takes the instance out otherwise.
func (s *Server) readyz(c *fiber.Ctx) error {
	if reason := s.notReady(c.UserContext()); reason != "" {
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "unavailable", "reason": reason})
	}
	return c.JSON(fiber.Map{"status": "ready"})
}

func (s *Server) notReady(ctx context.Context) string {
	if s.draining.Load() || s.ctx().Err() != nil {
		return "shutting down"
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.Store.Ping(ctx); err != nil {
		return "store: " + err.Error()
	}
	if err := s.Bus.Ping(ctx); err != nil {
		return "bus: " + err.Error()
	}
	if s.Ready != nil {
		if err := s.Ready(); err != nil {
			return err.Error()
		}
	}
	return ""
}

// metricsOnListener is /metrics on the chat listener: for loopback clients
// and holders of PARLEY_METRICS_TOKEN only, and not at all when
// PARLEY_METRICS_ADDR serves it.
func (s *Server) metricsOnListener() fiber.Handler {
	h := s.MetricsHandler()
	return func(c *fiber.Ctx) error {
		if s.MetricsElsewhere {
			return chat.Errorf(chat.ENotFound, "metrics are served on their own address")
		}
		if !s.metricsAllowed(c) {
			return chat.Errorf(chat.EForbidden, "metrics answer loopback clients, or a request with Authorization: Bearer $PARLEY_METRICS_TOKEN")
		}
		return h(c)
	}
}

// MetricsHandler serves the Prometheus text format, with no access check:
// for the chat listener behind metricsOnListener, and for the operator's own
// PARLEY_METRICS_ADDR.
func (s *Server) MetricsHandler() fiber.Handler {
	if s.MetricsHTTP == nil {
		return func(c *fiber.Ctx) error { return chat.Errorf(chat.ENotFound, "no metrics") }
	}
	return adaptor.HTTPHandler(s.MetricsHTTP)
}
