package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/app/tools/localcluster"
)

// Ports of the generator's own services in --mode kafka: apart from those of
// go tool task services:up and the tests (19092/19093/27018), go tool task
// cluster and the other local clusters, so a benchmark never touches them.
const (
	defaultKafkaPort           = 19392
	defaultKafkaControllerPort = 19393
	defaultMongoPort           = 27318
)

// cluster is the servers this run started, all through localcluster: in
// --mode embedded one instance on the embedded bus and store, in --mode
// kafka the services (unless they were already running) and the instances.
type cluster struct {
	svc       localcluster.Services
	stopSvc   []func() error // in start order; stopped in reverse
	svcPIDs   []int          // Kafka's and FerretDB's, started or reused
	instances []*localcluster.Instance
	dir       string
	logf      *os.File
	log       io.Writer
}

// startCluster builds the server and starts cfg.Instances instances on
// free ports, and waits until every one is ready. In --mode kafka it first
// starts Kafka and FerretDB on the generator's ports (a broker or FerretDB
// a previous run left there with --keep-services is reused); in --mode
// embedded the one instance needs no services. On error it stops what it
// started.
func startCluster(ctx context.Context, cfg Config, log io.Writer) (_ *cluster, err error) {
	root, err := localcluster.ModuleRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "parley-loadgen-"+cfg.Mode+"-")
	if err != nil {
		return nil, err
	}
	kafka := cfg.Mode == "kafka"
	c := &cluster{dir: dir, log: log, svc: localcluster.Services{
		Root: root, KafkaPort: cfg.KafkaPort, KafkaControllerPort: cfg.KafkaControllerPort,
		MongoPort: cfg.MongoPort, Out: log,
	}}
	defer func() {
		if err != nil {
			c.stop(false)
		}
	}()
	cpus, err := cfg.serverSideCPUs()
	if err != nil {
		return nil, err
	}
	if kafka {
		if err := c.startServices(cfg); err != nil {
			return nil, err
		}
		if err := c.pinServices(cfg, cpus); err != nil {
			return nil, err
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	fmt.Fprintln(log, "loadgen: building ./app")
	bin, err := localcluster.Build(root, dir)
	if err != nil {
		return nil, err
	}
	if c.logf, err = os.Create(filepath.Join(dir, "instances.log")); err != nil {
		return nil, err
	}
	var secret [16]byte
	_, _ = rand.Read(secret[:])
	runID := strconv.FormatInt(time.Now().Unix(), 36)
	for k := range cfg.Instances {
		port, err := localcluster.FreePort()
		if err != nil {
			return nil, err
		}
		id := "loadgen-" + runID + "-" + strconv.Itoa(k)
		ic := localcluster.InstanceConfig{
			ID: id, Port: port, DataDir: filepath.Join(dir, id),
			Env:      []string{"PARLEY_SEND_RATE=100000", "PARLEY_SEND_BURST=100000"},
			Log:      c.logf,
			CleanEnv: true,
			CPUs:     cpus,
		}
		if kafka {
			ic.Secret = hex.EncodeToString(secret[:])
			ic.Brokers, ic.MongoURI = c.svc.Brokers(), c.svc.MongoURI()
		}
		inst, err := localcluster.Start(bin, ic)
		if err != nil {
			return nil, err
		}
		c.instances = append(c.instances, inst)
		fmt.Fprintf(log, "loadgen: instance %s pid %d on %s (log %s)\n", id, inst.PID(), inst.URL(), c.logf.Name())
	}
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	for _, inst := range c.instances {
		if err := inst.WaitReady(wctx); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// startServices starts Kafka and FerretDB unless they already run; those it
// started are stopped by stop, unless --keep-services.
func (c *cluster) startServices(cfg Config) error {
	for _, s := range []struct {
		name        string
		running     func() bool
		start, stop func() error
	}{
		{fmt.Sprintf("Kafka on 127.0.0.1:%d", cfg.KafkaPort), c.svc.KafkaRunning, c.svc.StartKafka, c.svc.StopKafka},
		{fmt.Sprintf("FerretDB on 127.0.0.1:%d", cfg.MongoPort), c.svc.StoreRunning, c.svc.StartStore, c.svc.StopStore},
	} {
		if s.running() {
			fmt.Fprintf(c.log, "loadgen: %s already runs (a previous --keep-services run): using it, leaving it running\n", s.name)
			continue
		}
		fmt.Fprintf(c.log, "loadgen: starting %s\n", s.name)
		if err := s.start(); err != nil {
			return err
		}
		if !cfg.KeepServices {
			c.stopSvc = append(c.stopSvc, s.stop)
		}
	}
	return nil
}

// pinServices finds Kafka and FerretDB by their scripts' pidfiles and puts
// them on the servers' CPUs: they serve this run only (the generator's own
// ports), so they are server side, pinned with the instances and counted
// in server_cpu_pct. Unpinned runs give them every online CPU, which undoes
// the pinning of an earlier run that left them running (--keep-services).
func (c *cluster) pinServices(cfg Config, cpus string) error {
	if cpus == "" {
		var err error
		if cpus, err = onlineList(); err != nil {
			return err
		}
	}
	tmp := os.TempDir() // the scripts' ${TMPDIR:-/tmp}
	for _, s := range []struct {
		name, pidfile, cmdline string
	}{
		// kafka/broker/broker.sh: $KAFKA_DATA_DIR/kafka.pid, the data dir
		// defaulting to parley-kafka-<port> (localcluster never passes
		// KAFKA_DATA_DIR on).
		{"Kafka", filepath.Join(tmp, "parley-kafka-"+strconv.Itoa(cfg.KafkaPort), "kafka.pid"), "kafka.Kafka"},
		// repository/ferretdb/ferretdb.sh: parley-ferretdb-<port>.pid.
		{"FerretDB", filepath.Join(tmp, "parley-ferretdb-"+strconv.Itoa(cfg.MongoPort)+".pid"), "ferretdb-"},
	} {
		pid, err := daemonPID(s.pidfile, s.cmdline)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if err := pinPID(pid, cpus); err != nil {
			return fmt.Errorf("pin %s (pid %d) to CPUs %s: %w", s.name, pid, cpus, err)
		}
		fmt.Fprintf(c.log, "loadgen: %s pid %d on CPUs %s\n", s.name, pid, cpus)
		c.svcPIDs = append(c.svcPIDs, pid)
	}
	return nil
}

// daemonPID reads a service script's pidfile and checks, as the script
// does, that the process still runs and is the service (its command line
// holds want), not another that got the pid since.
func daemonPID(pidfile, want string) (int, error) {
	b, err := os.ReadFile(pidfile)
	if err != nil {
		return 0, fmt.Errorf("its pidfile: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid < 1 {
		return 0, fmt.Errorf("pidfile %s: %q is not a pid", pidfile, b)
	}
	cmd, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !strings.Contains(string(cmd), want) {
		return 0, fmt.Errorf("pid %d of %s is not running it (no %q in its command line)", pid, pidfile, want)
	}
	return pid, nil
}

func (c *cluster) urls() []string {
	var out []string
	for _, inst := range c.instances {
		out = append(out, inst.URL())
	}
	return out
}

func (c *cluster) pids() []int {
	var out []int
	for _, inst := range c.instances {
		out = append(out, inst.PID())
	}
	return out
}

// stop stops the instances (SIGTERM: graceful), then the services this run
// started. The temp dir and its log stay when something failed.
func (c *cluster) stop(ok bool) {
	for _, inst := range c.instances {
		if err := inst.Term(20 * time.Second); err != nil {
			fmt.Fprintf(c.log, "loadgen: instance %s: %v\n", inst.ID(), err)
			ok = false
		}
	}
	for i := len(c.stopSvc) - 1; i >= 0; i-- {
		if err := c.stopSvc[i](); err != nil {
			fmt.Fprintf(c.log, "loadgen: %v\n", err)
		}
	}
	if c.logf != nil {
		c.logf.Close()
	}
	if ok {
		os.RemoveAll(c.dir)
	} else {
		fmt.Fprintf(c.log, "loadgen: cluster files kept in %s\n", c.dir)
	}
}
