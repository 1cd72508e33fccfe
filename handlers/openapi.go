package handlers

import (
	_ "embed"

	"github.com/gofiber/fiber/v2"
)

// The machine-readable descriptions of the API, kept next to the routes
// they describe so that a route and its description change in one commit:
// openapi_test.go fails when a registered route is missing from OpenAPI,
// and app/openapi_test.go validates real answers against both documents.

// OpenAPI is the OpenAPI 3.1 document of every REST route, served at
// GET /api/openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// AsyncAPI is the AsyncAPI 3 document of the WebSocket frames and the SSE
// events (not served: a program's author reads it in the repository).
//
//go:embed asyncapi.yaml
var AsyncAPI []byte

// openAPI is GET /api/openapi.json: public, like the page, so that a
// client generator needs no session.
func openAPI(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	c.Set(fiber.HeaderCacheControl, "no-cache")
	return c.Send(OpenAPI)
}
