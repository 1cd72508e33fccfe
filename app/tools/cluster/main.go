// Command cluster runs a local three-instance Parley cluster for trying the
// distributed mode by hand (go tool task cluster): it starts the real Kafka
// broker and FerretDB with their scripts, builds the server once, runs it on
// ports 8081, 8082 and 8083 with one shared secret, and on Ctrl-C (SIGINT or
// SIGTERM) stops the instances, then the services it started.
//
// Ports of the services come from KAFKA_PORT, KAFKA_CONTROLLER_PORT and
// PARLEY_FERRETDB_PORT (defaults 19092, 19093, 27018). Run it from the
// repository root.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/parley-chat/parley/app/tools/localcluster"
)

const secret = "parley-local-cluster-secret-0123456789abcdef"

var ports = []int{8081, 8082, 8083}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

func run() error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)

	svc := localcluster.Services{
		KafkaPort:           envInt("KAFKA_PORT", 19092),
		KafkaControllerPort: envInt("KAFKA_CONTROLLER_PORT", 19093),
		MongoPort:           envInt("PARLEY_FERRETDB_PORT", 27018),
	}
	// Services: leave alone those already running (someone else's), stop
	// those started here.
	var stops []func() error
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			_ = stops[i]()
		}
	}()
	for _, s := range []struct {
		name        string
		running     func() bool
		start, stop func() error
	}{
		{localcluster.KafkaScript, svc.KafkaRunning, svc.StartKafka, svc.StopKafka},
		{localcluster.StoreScript, svc.StoreRunning, svc.StartStore, svc.StopStore},
	} {
		if s.running() {
			fmt.Printf("cluster: %s already running; it will be left running\n", s.name)
			continue
		}
		if err := s.start(); err != nil {
			return err
		}
		stops = append(stops, s.stop)
	}

	tmp, err := os.MkdirTemp("", "parley-cluster-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fmt.Println("cluster: building the server")
	bin, err := localcluster.Build(".", tmp)
	if err != nil {
		return err
	}

	var insts []*localcluster.Instance
	defer func() { stopAll(insts) }()
	for _, port := range ports {
		inst, err := localcluster.Start(bin, localcluster.InstanceConfig{
			ID:       fmt.Sprintf("local-%d", port),
			Port:     port,
			Secret:   secret,
			Brokers:  svc.Brokers(),
			MongoURI: svc.MongoURI(),
			DataDir:  filepath.Join(tmp, fmt.Sprintf("data-%d", port)),
			Log:      os.Stdout,
		})
		if err != nil {
			return err
		}
		insts = append(insts, inst)
	}
	exited := make(chan *localcluster.Instance, len(insts))
	for _, inst := range insts {
		go func() { <-inst.Done(); exited <- inst }()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	readyErr := make(chan error, 1)
	go func() {
		for _, inst := range insts {
			if err := inst.WaitReady(ctx); err != nil {
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
	case inst := <-exited:
		return fmt.Errorf("instance on %d exited during start: %v", inst.Port(), inst.Err())
	case s := <-sigs:
		fmt.Printf("cluster: %v during start; stopping\n", s)
		return nil
	}
	fmt.Println("cluster: ready; Ctrl-C stops it")
	for _, inst := range insts {
		fmt.Println("  " + inst.URL())
	}

	select {
	case s := <-sigs:
		fmt.Printf("cluster: %v; stopping\n", s)
		return nil
	case inst := <-exited:
		return fmt.Errorf("instance on %d exited: %v", inst.Port(), inst.Err())
	}
}

// stopAll stops every instance gracefully (SIGTERM), all at once; one that
// has not stopped after 30 s is killed.
func stopAll(insts []*localcluster.Instance) {
	done := make(chan struct{}, len(insts))
	for _, inst := range insts {
		go func() {
			if err := inst.Term(30 * time.Second); err != nil {
				fmt.Printf("cluster: instance on %d: %v\n", inst.Port(), err)
			}
			done <- struct{}{}
		}()
	}
	for range insts {
		<-done
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
