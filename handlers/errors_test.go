package handlers

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/app/chat"
)

// Every error answer names its message by key and parameters, for the
// client's translation: a domain error by its format, the HTTP layer's and
// a status error by their fixed texts, an internal one by "internal error"
// and never by its cause.
func TestErrorBodiesCarryKeys(t *testing.T) {
	app := fiber.New(fiber.Config{ErrorHandler: ErrorHandler(slog.New(slog.NewTextHandler(io.Discard, nil)))})
	app.Get("/long", func(c *fiber.Ctx) error {
		return chat.Errorf(chat.EBadRequest, "text must be at most %d characters", chat.MaxTextRunes)
	})
	app.Get("/fixed", func(c *fiber.Ctx) error { return chat.Errorf(chat.ENotFound, "no such room") })
	app.Get("/boom", func(c *fiber.Ctx) error { return chat.Errorf(chat.EInternal, "disk %s failed", "sda") })
	app.Get("/driver", func(c *fiber.Ctx) error { return io.ErrUnexpectedEOF })
	app.Get("/media", func(c *fiber.Ctx) error { return unsupported("body must be JSON") })
	for _, c := range []struct {
		path, key string
		params    []string
	}{
		{"/long", "text must be at most %d characters", []string{"4000"}},
		{"/fixed", "no such room", nil},
		{"/boom", chat.KeyInternal, nil},
		{"/driver", chat.KeyInternal, nil},
		{"/media", "body must be JSON", nil},
		{"/nowhere", fiberMessages[404], nil},
	} {
		resp, err := app.Test(httptest.NewRequest("GET", c.path, nil))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var body map[string]map[string]any
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatalf("%s: %s: %v", c.path, b, err)
		}
		e := body["error"]
		var params []string
		if p, ok := e["params"].([]any); ok {
			for _, v := range p {
				params = append(params, v.(string))
			}
		} else if _, present := e["params"]; present {
			t.Errorf("%s: params %v is not a list", c.path, e["params"])
		}
		if e["key"] != c.key || !slices.Equal(params, c.params) {
			t.Errorf("%s: %s, want key %q params %q", c.path, b, c.key, c.params)
		}
	}
}
