package handlers

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/app/chat"
)

// TestRequestID: a proxy's X-Request-ID is kept, a missing or malformed one
// replaced by a made one, echoed either way, and named on the error's log
// line (here slog's JSON, as PARLEY_LOG_FORMAT=json writes it).
func TestRequestID(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	app := fiber.New(fiber.Config{ErrorHandler: ErrorHandler(log)})
	app.Use(requestID)
	app.Get("/fail", func(c *fiber.Ctx) error { return chat.Errorf(chat.EInternal, "boom") })

	for _, tc := range []struct{ name, in string }{
		{"kept", "3f2a-proxy.id_1"},
		{"missing", ""},
		{"malformed", "bad id\r\nX-Evil: 1"},
		{"too long", string(bytes.Repeat([]byte("a"), maxRequestIDLen+1))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs.Reset()
			req := httptest.NewRequest("GET", "/fail", nil)
			if tc.in != "" {
				req.Header.Set(RequestIDHeader, tc.in)
			}
			resp, err := app.Test(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := resp.Header.Get(RequestIDHeader)
			switch {
			case tc.name == "kept" && got != tc.in:
				t.Errorf("echoed %q, want the proxy's %q", got, tc.in)
			case tc.name != "kept" && (len(got) != 32 || got == tc.in):
				t.Errorf("echoed %q, want a made 32-hex id", got)
			}
			var line struct {
				Msg       string `json:"msg"`
				RequestID string `json:"request_id"`
			}
			if err := json.Unmarshal(bytes.TrimSpace(logs.Bytes()), &line); err != nil {
				t.Fatalf("log is not one JSON line: %v: %s", err, logs.Bytes())
			}
			if line.Msg != "request failed" || line.RequestID != got {
				t.Errorf("log line %+v, want request failed with request_id %q", line, got)
			}
		})
	}
}
