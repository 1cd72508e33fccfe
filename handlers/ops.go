package handlers

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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

func (s *Server) metrics() fiber.Handler {
	if s.Metrics == nil {
		return func(c *fiber.Ctx) error { return c.SendStatus(fiber.StatusNotFound) }
	}
	return adaptor.HTTPHandler(promhttp.HandlerFor(s.Metrics.Registry, promhttp.HandlerOpts{}))
}
