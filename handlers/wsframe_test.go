package handlers

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// TestAppendTextFrameReadsBack lays out frames of every length class (7-bit,
// 16-bit and 64-bit lengths, at their edges) in one buffer, writes it to a
// real WebSocket connection in a single Write, as the writer does, and reads
// them back with the WebSocket library's own reader.
func TestAppendTextFrameReadsBack(t *testing.T) {
	sizes := []int{0, 1, 125, 126, 127, 65535, 65536, 70000}
	payload := func(n int) []byte { return bytes.Repeat([]byte{'a' + byte(n%26)}, n) }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		var buf []byte
		for _, n := range sizes {
			buf = appendTextFrame(buf, payload(n))
		}
		if _, err := conn.NetConn().Write(buf); err != nil {
			t.Error(err)
		}
		_, _, _ = conn.ReadMessage() // hold the connection until the client is done
	}))
	defer srv.Close()

	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for _, n := range sizes {
		mt, got, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("frame of %d bytes: %v", n, err)
		}
		if mt != websocket.TextMessage || !bytes.Equal(got, payload(n)) {
			t.Fatalf("frame of %d bytes: got type %d, %d bytes", n, mt, len(got))
		}
	}
}
