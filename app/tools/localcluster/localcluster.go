// Package localcluster runs Parley's distributed mode on one machine: the real
// Kafka broker and FerretDB (a MongoDB-wire server) through their scripts,
// and server instances as child processes of one binary built once. It is
// shared by go tool task cluster, the chaos command and the load generator
// (which also runs a single embedded-mode instance through it).
//
// A typical use, from the repository root:
//
//	svc := localcluster.Services{Root: ".", KafkaPort: 19192, KafkaControllerPort: 19193, MongoPort: 27118}
//	if err := svc.StartKafka(); err != nil { ... }   // wipes its data
//	if err := svc.StartStore(); err != nil { ... }
//	defer svc.StopStore(); defer svc.StopKafka()
//	bin, err := localcluster.Build(".", tmpDir)
//	inst, err := localcluster.Start(bin, localcluster.InstanceConfig{
//		ID: "a", Port: 8081, Secret: "s", Brokers: svc.Brokers(), MongoURI: svc.MongoURI(), DataDir: dir})
//	err = inst.WaitReady(ctx)
//	inst.Kill(); inst.Restart()                      // kill -9, then the same id and port again
//
// Services run as daemons outside this process (the scripts' pidfiles know
// them); instances are children in process groups of their own, so a Ctrl-C
// in the terminal reaches only the parent, which stops them in its order.
package localcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Script paths, relative to the repository root.
const (
	KafkaScript = "kafka/broker/broker.sh"
	StoreScript = "repository/ferretdb/ferretdb.sh"
)

// Services are the Kafka broker and the FerretDB server, run by their
// scripts on the given loopback ports. Zero ports mean the scripts' defaults
// (19092, 19093, 27018: those of go tool task services:up and the tests).
type Services struct {
	// Root is the repository root, where the scripts live. Default ".".
	Root                string
	KafkaPort           int
	KafkaControllerPort int
	MongoPort           int
	// Out receives the scripts' output. Default os.Stdout.
	Out io.Writer
}

func (s Services) kafkaPort() int { return def(s.KafkaPort, 19092) }
func (s Services) mongoPort() int { return def(s.MongoPort, 27018) }

// Brokers are the bootstrap brokers of the Kafka broker.
func (s Services) Brokers() []string {
	return []string{"127.0.0.1:" + strconv.Itoa(s.kafkaPort())}
}

// MongoURI is FerretDB's connection string.
func (s Services) MongoURI() string {
	return "mongodb://127.0.0.1:" + strconv.Itoa(s.mongoPort()) + "/"
}

// StartKafka starts the broker on a fresh, empty data dir (the script wipes
// it) and returns once it serves.
func (s Services) StartKafka() error { return s.run(KafkaScript, "start") }

// StopKafka stops the broker (TERM, then KILL after the script's timeout).
func (s Services) StopKafka() error { return s.run(KafkaScript, "stop") }

// ResumeKafka starts the broker again on the data a stopped or killed broker
// left: topics, records and committed offsets survive.
func (s Services) ResumeKafka() error { return s.run(KafkaScript, "resume") }

// KafkaRunning reports whether a broker started by the script runs on the port.
func (s Services) KafkaRunning() bool { return s.quiet(KafkaScript, "status") == nil }

// StartStore starts FerretDB on a fresh data dir and returns once it answers a ping.
func (s Services) StartStore() error { return s.run(StoreScript, "start") }

// StopStore stops FerretDB.
func (s Services) StopStore() error { return s.run(StoreScript, "stop") }

// ResumeStore starts FerretDB again on the data the stopped server left.
func (s Services) ResumeStore() error { return s.run(StoreScript, "resume") }

// StoreRunning reports whether a FerretDB started by the script answers on the port.
func (s Services) StoreRunning() bool { return s.quiet(StoreScript, "status") == nil }

func (s Services) command(script, verb string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(def(s.Root, "."), script), verb)
	// Everything the scripts read is set here, whatever the environment
	// says: a data dir inherited from the shell (or a Taskfile) may be the
	// shared services', and start would wipe it. Without one each script
	// keeps its data under the temp dir, named after its port.
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != "KAFKA_DATA_DIR" && k != "PARLEY_FERRETDB_DATA_DIR" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env,
		"KAFKA_PORT="+strconv.Itoa(s.kafkaPort()),
		"KAFKA_CONTROLLER_PORT="+strconv.Itoa(def(s.KafkaControllerPort, 19093)),
		"PARLEY_FERRETDB_PORT="+strconv.Itoa(s.mongoPort()),
	)
	// In a process group of their own, the daemons a start leaves behind are
	// not hit by the terminal's Ctrl-C; the stop verb stops them.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

func (s Services) run(script, verb string) error {
	cmd := s.command(script, verb)
	out := s.Out
	if out == nil {
		out = os.Stdout
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", script, verb, err)
	}
	return nil
}

func (s Services) quiet(script, verb string) error { return s.command(script, verb).Run() }

// ModuleRoot is the root of the module the go command runs in (the
// directory of go env GOMOD), for tools started with go run from anywhere in
// the repository.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the parley module: run the tool with go run ./app/tools/... from the repository")
	}
	return filepath.Dir(mod), nil
}

// Build compiles the server (./app under root) into dir and returns the
// binary's path. Build once, start many.
func Build(root, dir string) (string, error) {
	bin := filepath.Join(dir, "parley")
	cmd := exec.Command("go", "build", "-o", bin, "./app")
	cmd.Dir = def(root, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the server: %w\n%s", err, out)
	}
	return bin, nil
}

// InstanceConfig is one server instance's configuration.
type InstanceConfig struct {
	// ID is PARLEY_INSTANCE_ID; unique among running instances (its fan-out
	// group is parley-fanout-<ID>). A restart keeps it.
	ID string
	// Port is the listen port on 127.0.0.1 (FreePort finds one).
	Port   int
	Secret string
	// Brokers and MongoURI are the distributed mode's services; both empty
	// (and no Secret) run the embedded mode: in-process bus, embedded store
	// under DataDir.
	Brokers  []string
	MongoURI string
	// MongoDB is the database name; empty means the server's default (parley).
	MongoDB string
	// DataDir is PARLEY_DATA_DIR (unused by the distributed mode but for
	// the server's own files); empty means a directory under os.TempDir.
	DataDir string
	// Env holds extra KEY=value settings (PARLEY_SEND_RATE=…, topic names).
	Env []string
	// Log receives the instance's output, each line prefixed with
	// "[ID] "; nil discards it.
	Log io.Writer
	// CleanEnv drops the parent's PARLEY_ settings, so that a benchmark
	// measures what this configuration says and not the caller's shell.
	CleanEnv bool
	// CPUs, when set (a taskset list: "0", "0-1", "0,2"), pins the
	// instance to those CPUs by starting it under taskset -c, so that a
	// benchmark's server and generator do not compete for the same cores.
	// taskset execs the server, so PID is still the server's own. Empty:
	// no pinning.
	CPUs string
}

func (c InstanceConfig) env() []string {
	dataDir := c.DataDir
	if dataDir == "" {
		dataDir = filepath.Join(os.TempDir(), "parley-instance-"+c.ID)
	}
	brokers := ""
	for i, b := range c.Brokers {
		if i > 0 {
			brokers += ","
		}
		brokers += b
	}
	var env []string
	for _, kv := range os.Environ() {
		if !c.CleanEnv || !strings.HasPrefix(kv, "PARLEY_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		fmt.Sprintf("PARLEY_ADDR=127.0.0.1:%d", c.Port),
		"PARLEY_INSTANCE_ID="+c.ID,
		"PARLEY_DATA_DIR="+dataDir,
		"PARLEY_SECRET="+c.Secret,
		"PARLEY_KAFKA_BROKERS="+brokers,
		"PARLEY_MONGO_URI="+c.MongoURI,
	)
	// A local cluster's clients all come from loopback, often as many users
	// from one address: the per-IP and per-user limits are raised (c.Env,
	// appended last, wins over these).
	env = append(env, LoadTestLimits...)
	if c.MongoDB != "" {
		env = append(env, "PARLEY_MONGO_DB="+c.MongoDB)
	}
	return append(env, c.Env...)
}

// Instance is one running (or exited) server process. Its methods are safe
// for concurrent use.
type Instance struct {
	bin string
	cfg InstanceConfig

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current process has exited
	err  error         // its exit status, set before done is closed
}

// Start runs one instance of bin. It returns once the process started; use
// WaitReady to wait until it serves.
func Start(bin string, cfg InstanceConfig) (*Instance, error) {
	i := &Instance{bin: bin, cfg: cfg}
	if err := i.start(); err != nil {
		return nil, err
	}
	return i, nil
}

func (i *Instance) start() error {
	cmd := exec.Command(i.bin)
	if i.cfg.CPUs != "" {
		taskset, err := exec.LookPath("taskset")
		if err != nil {
			return fmt.Errorf("start instance %s on CPUs %s: taskset (util-linux) not found: %w", i.cfg.ID, i.cfg.CPUs, err)
		}
		cmd = exec.Command(taskset, "-c", i.cfg.CPUs, i.bin)
	}
	cmd.Env = i.cfg.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out io.ReadCloser
	if i.cfg.Log != nil {
		var err error
		if out, err = cmd.StdoutPipe(); err != nil {
			return err
		}
		cmd.Stderr = cmd.Stdout
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start instance %s: %w", i.cfg.ID, err)
	}
	done := make(chan struct{})
	i.mu.Lock()
	i.cmd, i.done, i.err = cmd, done, nil
	i.mu.Unlock()
	go func() {
		if out != nil {
			prefix(i.cfg.Log, "["+i.cfg.ID+"] ", out)
		}
		err := cmd.Wait()
		i.mu.Lock()
		if i.cmd == cmd {
			i.err = err
		}
		i.mu.Unlock()
		close(done)
	}()
	return nil
}

// prefix copies r to w line by line, each line prefixed.
func prefix(w io.Writer, pfx string, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fmt.Fprintln(w, pfx+sc.Text())
	}
}

// ID is the instance id.
func (i *Instance) ID() string { return i.cfg.ID }

// Port is the listen port.
func (i *Instance) Port() int { return i.cfg.Port }

// URL is the instance's base URL, http://127.0.0.1:port.
func (i *Instance) URL() string { return fmt.Sprintf("http://127.0.0.1:%d", i.cfg.Port) }

// PID is the current process's id.
func (i *Instance) PID() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.cmd.Process.Pid
}

// Done is closed when the current process has exited.
func (i *Instance) Done() <-chan struct{} {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.done
}

// Err is the current process's exit status once Done is closed.
func (i *Instance) Err() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.err
}

// Running reports whether the current process has not exited.
func (i *Instance) Running() bool {
	select {
	case <-i.Done():
		return false
	default:
		return true
	}
}

// Term sends SIGTERM (graceful shutdown: WebSocket clients get 1012, the
// persist stage drains) and waits up to timeout for the exit; past it the
// process is killed. It returns the exit status.
func (i *Instance) Term(timeout time.Duration) error {
	i.signal(syscall.SIGTERM)
	select {
	case <-i.Done():
	case <-time.After(timeout):
		i.signal(syscall.SIGKILL)
		<-i.Done()
		return fmt.Errorf("instance %s did not stop within %v; killed", i.cfg.ID, timeout)
	}
	return i.Err()
}

// Kill sends SIGKILL (kill -9: no shutdown at all) and waits for the exit.
func (i *Instance) Kill() {
	i.signal(syscall.SIGKILL)
	<-i.Done()
}

func (i *Instance) signal(sig syscall.Signal) {
	i.mu.Lock()
	p := i.cmd.Process
	i.mu.Unlock()
	_ = p.Signal(sig)
}

// Restart starts the instance again with the same configuration (id, port,
// data dir), once the current process has exited; it does not stop it.
func (i *Instance) Restart() error {
	select {
	case <-i.Done():
	default:
		return fmt.Errorf("instance %s is still running", i.cfg.ID)
	}
	return i.start()
}

// WaitReady polls /readyz until it answers 200, the process exits or ctx ends.
func (i *Instance) WaitReady(ctx context.Context) error {
	done := i.Done()
	for {
		if Ready(ctx, i.URL()) {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("instance %s exited before it was ready: %v", i.cfg.ID, i.Err())
		case <-ctx.Done():
			return fmt.Errorf("instance %s not ready: %w", i.cfg.ID, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WaitURL polls url's /readyz until it answers 200, or fails once timeout
// passed or ctx ended: the wait for a server this package did not start.
func WaitURL(ctx context.Context, url string, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if Ready(wctx, url) {
			return nil
		}
		select {
		case <-wctx.Done():
			if err := ctx.Err(); err != nil {
				return err
			}
			return fmt.Errorf("%s/readyz not 200 within %s", url, timeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Ready reports whether url's /readyz answers 200.
func Ready(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// ErrPortInUse is returned by CheckPortFree for a port something listens on.
var ErrPortInUse = errors.New("port in use")

// CheckPortFree returns ErrPortInUse when something accepts connections on
// 127.0.0.1:port.
func CheckPortFree(port int) error {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 300*time.Millisecond)
	if err != nil {
		return nil
	}
	c.Close()
	return fmt.Errorf("127.0.0.1:%d: %w", port, ErrPortInUse)
}

func def[T comparable](v, d T) T {
	var zero T
	if v == zero {
		return d
	}
	return v
}

// LoadTestLimits raise every per-user and per-IP limit out of the way of a
// load or chaos test run from one machine.
var LoadTestLimits = []string{
	"PARLEY_SIGNIN_RATE=100000", "PARLEY_SIGNIN_BURST=100000",
	"PARLEY_HISTORY_RATE=100000", "PARLEY_HISTORY_BURST=100000",
	"PARLEY_ROOM_RATE=100000", "PARLEY_ROOM_BURST=100000",
	"PARLEY_MAX_CONNS_PER_USER=100000", "PARLEY_MAX_CONNS_PER_IP=100000",
}
