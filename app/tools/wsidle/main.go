// Command wsidle measures what the WebSocket stack Parley must use keeps per
// idle connection, without Parley: it starts a bare echo server (itself,
// run again with -serve) on loopback, holds -conns idle connections to it
// for -hold, and prints the server's RSS, Go heap and stacks per
// connection, measured as the load generator's idle scenario measures
// Parley's (RSS before dialing and after the hold; heap and stacks in use
// from runtime.MemStats, no GC forced), then the same after a forced GC.
//
//	go run ./app/tools/wsidle -stack=fiber -conns=15000
//	go run ./app/tools/wsidle -stack=fasthttp -conns=15000
//
// -stack=fiber is Fiber v2 with gofiber/contrib/websocket, configured as
// Parley's /ws (read buffer 256, write buffer 4096 from a pool);
// -stack=fasthttp is fasthttp/websocket's FastHTTPUpgrader on a bare
// fasthttp.Server, the layer under it. Both echo each message on the
// handler's goroutine: one goroutine per connection, as Parley's idle one.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fasthttp/websocket"
	fws "github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

type stats struct {
	HeapInuse  uint64 `json:"heap_inuse"`
	HeapAlloc  uint64 `json:"heap_alloc"`
	StackInuse uint64 `json:"stack_inuse"`
	Goroutines int    `json:"goroutines"`
	Conns      int64  `json:"conns"`
}

type result struct {
	Stack             string  `json:"stack"`
	Conns             int     `json:"conns"`
	HoldS             float64 `json:"hold_s"`
	BaseRSSKiB        int64   `json:"server_rss_base_kib"`
	RSSKiB            int64   `json:"server_rss_kib"`
	KiBPerConn        float64 `json:"kib_per_conn"`
	HeapKiBPerConn    float64 `json:"heap_kib_per_conn"`
	StackKiBPerConn   float64 `json:"stack_kib_per_conn"`
	GoroutinesPerConn float64 `json:"goroutines_per_conn"`
	// After runtime.GC() twice in the server: live heap (heap_alloc) and
	// stacks once the collector has shrunk what it can.
	GCLiveHeapKiBPerConn float64 `json:"gc_live_heap_kib_per_conn"`
	GCStackKiBPerConn    float64 `json:"gc_stack_kib_per_conn"`
	GCKiBPerConn         float64 `json:"gc_kib_per_conn"`
}

func main() {
	serve := flag.String("serve", "", "internal: serve this stack on -addr and print the address")
	stack := flag.String("stack", "fiber", "fiber (Fiber v2 + gofiber/contrib/websocket) | fasthttp (fasthttp/websocket on fasthttp)")
	conns := flag.Int("conns", 15000, "idle connections to hold")
	hold := flag.Duration("hold", 10*time.Second, "how long to hold them before measuring")
	flag.Parse()
	if *serve != "" {
		if err := runServer(*serve); err != nil {
			fmt.Fprintln(os.Stderr, "wsidle server:", err)
			os.Exit(1)
		}
		return
	}
	res, err := measure(*stack, *conns, *hold)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wsidle:", err)
		os.Exit(1)
	}
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
}

func raiseNoFile() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}

var open atomic.Int64

func echo(c *websocket.Conn) {
	open.Add(1)
	defer open.Add(-1)
	for {
		mt, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		if c.WriteMessage(mt, msg) != nil {
			return
		}
	}
}

func runServer(stack string) error {
	raiseNoFile()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	// Stats on a listener of their own, so that asking adds nothing to the
	// WebSocket server's pools.
	sln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() {
		_ = http.Serve(sln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("gc") == "1" {
				runtime.GC()
				runtime.GC()
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			_ = json.NewEncoder(w).Encode(stats{ms.HeapInuse, ms.HeapAlloc, ms.StackInuse, runtime.NumGoroutine(), open.Load()})
		}))
	}()
	fmt.Printf("%s %s\n", ln.Addr(), sln.Addr())
	switch stack {
	case "fiber":
		app := fiber.New(fiber.Config{DisableStartupMessage: true})
		app.Get("/ws", fws.New(func(c *fws.Conn) { echo(c.Conn) }, fws.Config{
			ReadBufferSize: 256, WriteBufferSize: 4096, WriteBufferPool: &sync.Pool{},
		}))
		return app.Listener(ln)
	case "fasthttp":
		up := websocket.FastHTTPUpgrader{
			ReadBufferSize: 256, WriteBufferSize: 4096, WriteBufferPool: &sync.Pool{},
			CheckOrigin: func(*fasthttp.RequestCtx) bool { return true },
		}
		srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
			_ = up.Upgrade(ctx, echo)
		}}
		return srv.Serve(ln)
	}
	return fmt.Errorf("unknown stack %q", stack)
}

func rss(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

func getStats(addr string, gc bool) (stats, error) {
	u := "http://" + addr + "/"
	if gc {
		u += "?gc=1"
	}
	resp, err := http.Get(u)
	if err != nil {
		return stats{}, err
	}
	defer resp.Body.Close()
	var s stats
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

func measure(stack string, n int, hold time.Duration) (*result, error) {
	raiseNoFile()
	cmd := exec.Command(os.Args[0], "-serve="+stack)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("server did not start: %w", err)
	}
	addrs := strings.Fields(line)
	if len(addrs) != 2 {
		return nil, fmt.Errorf("server said %q", line)
	}
	wsURL, statsAddr := "ws://"+addrs[0]+"/ws", addrs[1]
	pid := cmd.Process.Pid
	time.Sleep(500 * time.Millisecond)
	before, err := getStats(statsAddr, false)
	if err != nil {
		return nil, err
	}
	baseRSS := rss(pid)

	cs := make([]*websocket.Conn, n)
	var failed atomic.Int64
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
				if err != nil {
					failed.Add(1)
					continue
				}
				// One echo, so that each connection has had a message
				// through it, as Parley's had its join answered.
				if c.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"r"}`)) != nil {
					failed.Add(1)
					continue
				}
				if _, _, err := c.ReadMessage(); err != nil {
					failed.Add(1)
					continue
				}
				cs[i] = c
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		return nil, fmt.Errorf("%d of %d connections failed", f, n)
	}
	time.Sleep(hold)
	endRSS := rss(pid)
	after, err := getStats(statsAddr, false)
	if err != nil {
		return nil, err
	}
	if after.Conns != int64(n) {
		return nil, fmt.Errorf("server holds %d connections, want %d", after.Conns, n)
	}
	gc, err := getStats(statsAddr, true)
	if err != nil {
		return nil, err
	}
	gcRSS := rss(pid)
	for _, c := range cs {
		c.Close()
	}
	f := float64(n)
	return &result{
		Stack: stack, Conns: n, HoldS: hold.Seconds(),
		BaseRSSKiB: baseRSS, RSSKiB: endRSS,
		KiBPerConn:           float64(endRSS-baseRSS) / f,
		HeapKiBPerConn:       (float64(after.HeapInuse) - float64(before.HeapInuse)) / 1024 / f,
		StackKiBPerConn:      (float64(after.StackInuse) - float64(before.StackInuse)) / 1024 / f,
		GoroutinesPerConn:    float64(after.Goroutines-before.Goroutines) / f,
		GCLiveHeapKiBPerConn: (float64(gc.HeapAlloc) - float64(before.HeapAlloc)) / 1024 / f,
		GCStackKiBPerConn:    (float64(gc.StackInuse) - float64(before.StackInuse)) / 1024 / f,
		GCKiBPerConn:         float64(gcRSS-baseRSS) / f,
	}, nil
}
