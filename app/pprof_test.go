package main

import (
	"io"
	"log/slog"
	"net/http"
	"testing"
)

// TestPprofOnItsOwnAddress: PARLEY_PPROF_ADDR serves the profiler there, and
// only there; unset, nothing is served.
func TestPprofOnItsOwnAddress(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if addr, stop, err := servePprof("", log, nil); err != nil || addr != "" {
		t.Fatalf("empty address: got %q, %v; want nothing served", addr, err)
	} else {
		stop()
	}
	addr, stop, err := servePprof("127.0.0.1:0", log, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	res, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || len(body) == 0 {
		t.Fatalf("pprof goroutine profile: status %d, %d bytes", res.StatusCode, len(body))
	}

	s := startServer(t, nil)
	if code, _ := s.do("GET", "/debug/pprof/", "", ""); code == 200 {
		t.Fatalf("the chat listener serves /debug/pprof/ (status %d)", code)
	}
}
