package handlers

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
)

// BenchmarkWSDeliver measures the fan-out's last step: one message event
// handed to conns WebSocket connections (Deliver: queue, writer wake-up,
// frame layout and the socket write), over loopback to clients that read
// and discard. Paced: a message every gap (gap 0: back to back, where a
// writer rarely goes idle; 100µs, within writerLinger: a busy room's pace;
// 60ms, past it: a small room's, as in the rooms scenario, where each
// frame finds no writer). ns/op is per message, all its deliveries
// written (the clients' reading included).
func BenchmarkWSDeliver(b *testing.B) {
	for _, bc := range []struct {
		conns int
		gap   time.Duration
	}{{10, 0}, {100, 0}, {10, 100 * time.Microsecond}, {10, 60 * time.Millisecond}} {
		b.Run(fmt.Sprintf("conns=%d/gap=%s", bc.conns, bc.gap), func(b *testing.B) {
			h := newWSHarness(b, 16<<20)
			wcs := make([]*wsClient, bc.conns)
			var wg sync.WaitGroup
			frame := len(appendTextFrame(nil, chat.NewEvent(benchMessage(1)).Frame(wsMessage)))
			// The clients read from the start (a client that waited would
			// let the queues fill up and Deliver refuse) until they have
			// every frame: want, once the run knows b.N.
			var want atomic.Int64
			for i := range wcs {
				conn, wc := h.dial(b)
				wcs[i] = wc
				nc := conn.NetConn()
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := make([]byte, 64<<10)
					for got := int64(0); ; {
						if total := want.Load(); total > 0 && got >= total {
							return
						}
						_ = nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
						n, err := nc.Read(buf)
						got += int64(n)
						if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
							b.Error(err)
							return
						}
					}
				}()
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := range b.N {
				ev := chat.NewEvent(benchMessage(int64(i + 1)))
				for _, wc := range wcs {
					if !wc.Deliver(ev) {
						b.Fatal("Deliver refused")
					}
				}
				if bc.gap > 0 {
					time.Sleep(bc.gap)
				}
			}
			// Every message frame has the same length (seqs padded).
			want.Store(int64(b.N) * int64(frame))
			wg.Wait()
			// The process's CPU per message (server and clients): what a
			// paced run's ns/op, mostly sleep, does not show.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchMessage(seq int64) chat.Message {
	return chat.Message{Room: "general", Seq: 1_000_000_000 + seq, ID: fmt.Sprintf("%036d", seq), User: "alice", Text: "hello, how is everyone doing today?", TS: "2026-12-03T12:00:00.000Z"}
}
