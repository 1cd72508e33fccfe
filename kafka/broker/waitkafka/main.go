// Command waitkafka waits until a Kafka broker answers a real Kafka request (a
// metadata request naming at least one broker), so broker.sh can tell "the
// port is open" apart from "the broker serves clients": a KRaft broker listens
// some time before it has registered with its controller.
//
// It exits 0 once the broker answers, 1 when the timeout passes first or the
// process given by -pid dies.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:19092", "broker address")
	timeout := flag.Duration("timeout", 60*time.Second, "give up after this long")
	pid := flag.Int("pid", 0, "fail as soon as this process is gone (0: don't watch)")
	flag.Parse()

	if err := wait(*addr, *timeout, *pid); err != nil {
		fmt.Fprintln(os.Stderr, "waitkafka:", err)
		os.Exit(1)
	}
}

func wait(addr string, timeout time.Duration, pid int) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	client := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 2 * time.Second}
	var last error
	for {
		if pid > 0 && !alive(pid) {
			return fmt.Errorf("broker process %d exited", pid)
		}
		if last = probe(ctx, client); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %w", addr, timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func probe(ctx context.Context, client *kafka.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		return err
	}
	if len(md.Brokers) == 0 {
		return errors.New("metadata names no broker yet")
	}
	return nil
}

// alive reports whether pid still runs (signal 0 checks without sending).
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
