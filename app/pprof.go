package main

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
)

// servePprof serves the Go profiler on addr, apart from the chat's own
// listener so it is never exposed with it. It returns the address it
// listens on and a func that stops it; fail gets the error should serving
// stop by itself. An empty addr serves nothing.
func servePprof(addr string, log *slog.Logger, fail func(string, error)) (bound string, stop func(), err error) {
	if addr == "" {
		return "", func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			fail("pprof listener", err)
		}
	}()
	log.Info("pprof listening", "addr", ln.Addr().String())
	return ln.Addr().String(), func() { _ = srv.Close() }, nil
}
