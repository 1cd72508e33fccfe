// Command chaos runs a local Parley cluster (three instances, the real Kafka
// broker, FerretDB) under load from recovering clients (app/tools/client) and
// breaks it while they send: it kill -9's an instance every few seconds and
// restarts it, kills the instance doing the most persisting, restarts the
// Kafka broker once and stops the store for 10 s. With --scenario=rolling it
// instead restarts each instance in turn with SIGTERM (a rolling deploy).
// Every third room is private (members.go): a moderator removes, bans,
// unbans and adds back its members meanwhile, and they keep sending. The
// clients also edit and delete their own messages, react and reply
// (lifecycle.go).
//
// The verdict comes from the clients' own records and from the store: every
// acknowledged message is stored exactly once, every client saw every
// message of its rooms exactly once and in seq order (after its own dedupe),
// and an unacknowledged message is stored at most once; and from the
// membership the store's timeline tells: no client got an item of a room
// while no member, no message of a user is stored while no member, and each
// client saw every item of each stretch of its membership once and in
// order (a refused send is no loss); and every client's folded view of each
// room (its messages as they stand after their edits, deletes and
// reactions) is what the store's items it delivered fold to. It prints the
// figures, the verdict last, and exits 1 on any loss or duplicate.
//
// It uses Kafka and FerretDB ports of its own (19192, 19193, 27118) and
// free loopback ports for the instances, so it never disturbs the test
// suite's services. Run it from the repository root: go tool task chaos.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	opts := defaultOptions()
	fs := flag.NewFlagSet("chaos", flag.ExitOnError)
	opts.flags(fs)
	_ = fs.Parse(os.Args[1:])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, opts, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	if !rep.Pass() {
		os.Exit(1)
	}
}

// Options shape one run. The zero value is not useful: start from
// defaultOptions.
type Options struct {
	Scenario string // "chaos" or "rolling"
	Clients  int
	Rooms    int
	// PrivateEvery makes every PrivateEvery-th room private (0: none), its
	// membership changed under the faults.
	PrivateEvery int
	// Rate is the total sends per second over every client.
	Rate float64
	// Duration is how long the clients send.
	Duration time.Duration
	// KillEvery is the time from one kill -9 to the next; Down how long a
	// killed instance stays down.
	KillEvery, Down time.Duration
	// StoreOutage is how long the store is stopped.
	StoreOutage time.Duration
	// Settle bounds the wait, once sending stopped, for the store and the
	// clients to catch up.
	Settle time.Duration

	KafkaPort, KafkaControllerPort, MongoPort int
	// Root is the repository root.
	Root string
	// Keep keeps the work directory (instance logs) even when the run passes.
	Keep bool
}

func defaultOptions() Options {
	return Options{
		Scenario: "chaos", Clients: 300, Rooms: 12, PrivateEvery: 3, Rate: 60, Duration: 120 * time.Second,
		KillEvery: 8 * time.Second, Down: 2 * time.Second, StoreOutage: 10 * time.Second, Settle: 90 * time.Second,
		KafkaPort: 19192, KafkaControllerPort: 19193, MongoPort: 27118, Root: ".",
	}
}

func (o *Options) flags(fs *flag.FlagSet) {
	fs.StringVar(&o.Scenario, "scenario", o.Scenario, "chaos (kill -9, persist holder, Kafka restart, store outage) or rolling (SIGTERM each instance in turn)")
	fs.IntVar(&o.Clients, "clients", o.Clients, "WebSocket clients, spread over the three instances")
	fs.IntVar(&o.Rooms, "rooms", o.Rooms, "rooms; each client joins one, every tenth client a second one")
	fs.IntVar(&o.PrivateEvery, "private-every", o.PrivateEvery, "every n-th room is private, members removed, banned and added back during the run (0: none)")
	fs.Float64Var(&o.Rate, "rate", o.Rate, "sends per second, over all clients")
	fs.DurationVar(&o.Duration, "duration", o.Duration, "how long the clients send")
	fs.DurationVar(&o.KillEvery, "kill-every", o.KillEvery, "time between two kill -9 of an instance")
	fs.DurationVar(&o.Down, "down", o.Down, "how long a killed instance stays down")
	fs.DurationVar(&o.StoreOutage, "store-outage", o.StoreOutage, "how long the store is stopped")
	fs.DurationVar(&o.Settle, "settle", o.Settle, "longest wait for the store and clients to catch up after sending")
	fs.IntVar(&o.KafkaPort, "kafka-port", o.KafkaPort, "Kafka client port")
	fs.IntVar(&o.KafkaControllerPort, "kafka-controller-port", o.KafkaControllerPort, "Kafka controller port")
	fs.IntVar(&o.MongoPort, "mongo-port", o.MongoPort, "FerretDB port")
	fs.StringVar(&o.Root, "root", o.Root, "repository root")
	fs.BoolVar(&o.Keep, "keep", o.Keep, "keep the work directory (instance logs) after a passing run")
}

func (o Options) validate() error {
	switch {
	case o.Scenario != "chaos" && o.Scenario != "rolling":
		return fmt.Errorf("--scenario %q: want chaos or rolling", o.Scenario)
	case o.Clients < 1 || o.Rooms < 1 || o.Rate <= 0 || o.Duration <= 0:
		return fmt.Errorf("--clients, --rooms, --rate and --duration must be positive")
	case o.KillEvery <= o.Down:
		return fmt.Errorf("--kill-every must exceed --down")
	}
	return nil
}

// logf prints one timestamped line of the run's progress.
func logf(w io.Writer, start time.Time, format string, args ...any) {
	fmt.Fprintf(w, "chaos: [%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
}
