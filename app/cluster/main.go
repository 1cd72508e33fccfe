// Command cluster runs a local three-instance Parley cluster for trying the
// distributed mode by hand (go tool task cluster): it starts the real Kafka
// broker and FerretDB with their scripts, builds the server once, runs it on
// ports 8081, 8082 and 8083 with one shared secret, and on Ctrl-C (SIGINT or
// SIGTERM) stops the instances, then the services it started.
//
// Run it from the repository root.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

const secret = "parley-local-cluster-secret"

var ports = []int{8081, 8082, 8083}

// services are the scripts of go tool task services:up, each with its
// start, stop and status commands.
var services = []string{"kafka/broker/broker.sh", "repository/ferretdb/ferretdb.sh"}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

func run() error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)

	// Services: leave alone those already running (someone else's), stop
	// those started here.
	var started []string
	defer func() {
		for i := len(started) - 1; i >= 0; i-- {
			_ = script(started[i], "stop")
		}
	}()
	for _, s := range services {
		if exec.Command(s, "status").Run() == nil {
			fmt.Printf("cluster: %s already running; it will be left running\n", s)
			continue
		}
		if err := script(s, "start"); err != nil {
			return fmt.Errorf("%s start: %w", s, err)
		}
		started = append(started, s)
	}
	kafkaPort, mongoPort := env("KAFKA_PORT", "19092"), env("PARLEY_FERRETDB_PORT", "27018")

	tmp, err := os.MkdirTemp("", "parley-cluster-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "parley")
	fmt.Println("cluster: building the server")
	build := exec.Command("go", "build", "-o", bin, "./app")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build: %w", err)
	}

	var procs []*proc
	defer func() { stopAll(procs) }()
	exited := make(chan *proc, len(ports))
	for _, port := range ports {
		p, err := start(bin, port, []string{
			fmt.Sprintf("PARLEY_ADDR=127.0.0.1:%d", port),
			fmt.Sprintf("PARLEY_INSTANCE_ID=local-%d", port),
			"PARLEY_DATA_DIR=" + filepath.Join(tmp, fmt.Sprintf("data-%d", port)),
			"PARLEY_SECRET=" + secret,
			"PARLEY_KAFKA_BROKERS=127.0.0.1:" + kafkaPort,
			"PARLEY_MONGO_URI=mongodb://127.0.0.1:" + mongoPort + "/",
		}, exited)
		if err != nil {
			return err
		}
		procs = append(procs, p)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	readyErr := make(chan error, 1)
	go func() {
		for _, p := range procs {
			if err := waitReady(ctx, p.url); err != nil {
				readyErr <- err
				return
			}
		}
		readyErr <- nil
	}()
	select {
	case err := <-readyErr:
		if err != nil {
			return err
		}
	case p := <-exited:
		return fmt.Errorf("instance on %d exited during start: %v", p.port, p.err)
	case s := <-sigs:
		fmt.Printf("cluster: %v during start; stopping\n", s)
		return nil
	}
	fmt.Println("cluster: ready; Ctrl-C stops it")
	for _, p := range procs {
		fmt.Println("  " + p.url)
	}

	select {
	case s := <-sigs:
		fmt.Printf("cluster: %v; stopping\n", s)
		return nil
	case p := <-exited:
		return fmt.Errorf("instance on %d exited: %v", p.port, p.err)
	}
}

type proc struct {
	port int
	url  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done is closed
}

// start runs one instance in its own process group, so that a Ctrl-C
// reaches this program alone and the instances stop in the order it chooses.
func start(bin string, port int, env []string, exited chan<- *proc) (*proc, error) {
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start instance on %d: %w", port, err)
	}
	p := &proc{port: port, url: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd, done: make(chan struct{})}
	var copied sync.WaitGroup
	copied.Go(func() { prefix(fmt.Sprintf("[%d] ", port), out) })
	go func() {
		copied.Wait()
		p.err = cmd.Wait()
		close(p.done)
		exited <- p
	}()
	return p, nil
}

func prefix(pfx string, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fmt.Println(pfx + sc.Text())
	}
}

// stopAll sends SIGTERM to every instance (each shuts down gracefully), then
// waits; one that has not stopped after 30 s is killed.
func stopAll(procs []*proc) {
	for _, p := range procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range procs {
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			fmt.Printf("cluster: instance on %d did not stop in 30s; killing it\n", p.port)
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}

func waitReady(ctx context.Context, url string) error {
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", url+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return errors.New(url + " not ready within 90s")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func script(path, verb string) error {
	cmd := exec.Command(path, verb)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	// In a process group of their own, the daemons a start leaves behind
	// are not hit by the terminal's Ctrl-C; the stop script stops them.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd.Run()
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
