package handlers

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gofiber/fiber/v2"
)

// loadOpenAPI loads and validates the embedded document with kin-openapi.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi: %s, want 3.1", doc.OpenAPI)
	}
	return doc
}

// allRoutes is every route a Server registers, the OIDC ones included.
func allRoutes(t *testing.T) []fiber.Route {
	t.Helper()
	store := testStore(t)
	srv := &Server{Store: store, People: store, Auth: &Auth{Secret: []byte("openapi-test-secret-0123456789abcdef")}}
	app := fiber.New()
	srv.Register(app)
	srv.RegisterOIDC(app, testOIDC(t, "http://idp.test"))
	// true: without the middleware-only entries (app.Use: the security
	// layer, the static files under /static, the /api catch-all 404).
	return app.GetRoutes(true)
}

var fiberParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// undescribed lists the routes doc does not describe, as "METHOD path".
// Ignored: HEAD (Fiber adds one to every GET), and CONNECT and TRACE,
// which no handler of Parley's registers.
func undescribed(doc *openapi3.T, routes []fiber.Route) []string {
	var missing []string
	for _, r := range routes {
		switch r.Method {
		case fiber.MethodHead, fiber.MethodConnect, fiber.MethodTrace:
			continue
		}
		path := fiberParam.ReplaceAllString(r.Path, "{$1}")
		item := doc.Paths.Find(path)
		if item == nil || item.GetOperation(r.Method) == nil {
			missing = append(missing, r.Method+" "+r.Path)
		}
	}
	slices.Sort(missing)
	return slices.Compact(missing)
}

// TestOpenAPIDescribesEveryRoute walks the router: a route registered
// without its OpenAPI description fails here.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	routes := allRoutes(t)
	if len(routes) < 12 {
		t.Fatalf("only %d routes registered", len(routes))
	}
	if missing := undescribed(doc, routes); len(missing) > 0 {
		t.Errorf("routes not in handlers/openapi.json: %s", strings.Join(missing, ", "))
	}
	// And the other way: every described operation is a route.
	registered := map[string]bool{}
	for _, r := range routes {
		registered[r.Method+" "+fiberParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !registered[method+" "+path] {
				t.Errorf("openapi.json describes %s %s, which no route serves", method, path)
			}
		}
	}
}

// TestOpenAPIWalkCatchesAnUndescribedRoute is the walk's mutation test: a
// document without one route, or without one method of a path, fails it.
func TestOpenAPIWalkCatchesAnUndescribedRoute(t *testing.T) {
	routes := allRoutes(t)
	doc := loadOpenAPI(t)
	doc.Paths.Delete("/api/rooms/{room}/events")
	if got := undescribed(doc, routes); !slices.Equal(got, []string{"GET /api/rooms/:room/events"}) {
		t.Errorf("without the events path: %v", got)
	}
	doc = loadOpenAPI(t)
	doc.Paths.Value("/api/session").Delete = nil
	if got := undescribed(doc, routes); !slices.Equal(got, []string{"DELETE /api/session"}) {
		t.Errorf("without DELETE /api/session: %v", got)
	}
}

// TestOpenAPIServed: the document is served as it is kept, without a
// session, through the security layer.
func TestOpenAPIServed(t *testing.T) {
	app, _, _ := fuzzServer(t)
	resp, err := app.Test(httptest.NewRequest("GET", "http://parley.test/api/openapi.json", nil), 5000)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /api/openapi.json: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if string(b) != string(OpenAPI) {
		t.Error("the served document is not the embedded one")
	}
	if resp.Header.Get("Content-Security-Policy") == "" {
		t.Error("served without the security headers")
	}
}
