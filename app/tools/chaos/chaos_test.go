//go:build chaos

package main

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/tools/testenv"
)

// The short variants of go tool task chaos, run by go tool task test
// (test:all runs go test -tags chaos ./app/tools/chaos). They start Kafka and
// FerretDB of their own on ports 19492, 19493 and 27418, apart from the
// suite's (19092, 27018), the fault tests' (19292, 27218), the load
// generator's (19392, 27318) and go tool task chaos's (19192, 27118).

func shortOptions(t *testing.T) Options {
	for _, tool := range []string{"java", "mvn", "go"} {
		_, err := exec.LookPath(tool)
		testenv.Need(t, tool, err)
	}
	o := defaultOptions()
	o.Root = "../../.."
	o.KafkaPort, o.KafkaControllerPort, o.MongoPort = 19492, 19493, 27418
	o.Clients, o.Rooms, o.Rate = 300, 10, 60
	o.Settle = 60 * time.Second
	// PARLEY_CHAOS_KEEP=1 keeps the instances' and services' logs of a
	// run that passed too (a failed run's are always kept).
	o.Keep = os.Getenv("PARLEY_CHAOS_KEEP") != ""
	return o
}

func runScenario(t *testing.T, o Options) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	start := time.Now()
	rep, err := Run(ctx, o, t.Output())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s scenario took %v in all", o.Scenario, time.Since(start).Round(time.Second))
	if !rep.Pass() {
		t.Fatalf("lost %d (acked but not stored %d, deliveries missed %d), duplicated in the store %d, out of order %d, stored by no client %d, store seq problems %v, delivered while no member %d, stored while no member %d, members not restored %d, folded views differing from the store's %d",
			rep.Lost(), rep.LostAcked, rep.MissedDeliveries, rep.StoreDuplicates, rep.OutOfOrder, rep.Unknown, rep.StoreSeqProblems, rep.AfterRemoval, rep.StoredOutside, rep.Unrestored, rep.ViewMismatches)
	}
	if rep.Edits == 0 || rep.Deletes == 0 || rep.Reactions == 0 || rep.Replies == 0 || rep.ViewMessages == 0 {
		t.Fatalf("no message lifecycle: %d edits, %d deletes, %d reactions, %d replies stored, %d messages of folded views compared", rep.Edits, rep.Deletes, rep.Reactions, rep.Replies, rep.ViewMessages)
	}
	if o.PrivateEvery > 0 && o.Scenario == "chaos" && (rep.MemberItems == 0 || rep.Removals+rep.Bans == 0 || rep.Exits == 0) {
		t.Fatalf("no membership changes: %d member items, %d removals, %d bans, %d exits seen by clients", rep.MemberItems, rep.Removals, rep.Bans, rep.Exits)
	}
	if rep.Acked == 0 || rep.Delivered == 0 || len(rep.Events) == 0 {
		t.Fatalf("nothing happened: acked %d, delivered %d, %d faults", rep.Acked, rep.Delivered, len(rep.Events))
	}
}

// TestChaosShort is go tool task chaos for 60 s: kill -9 every 8 s, the
// persisting instance killed, the broker restarted, the store stopped 10 s.
func TestChaosShort(t *testing.T) {
	o := shortOptions(t)
	o.Duration = 60 * time.Second
	runScenario(t, o)
}

// TestRollingRestart restarts the three instances in turn with SIGTERM
// under load: nothing may be lost.
func TestRollingRestart(t *testing.T) {
	o := shortOptions(t)
	o.Scenario = "rolling"
	o.Duration = 20 * time.Second
	runScenario(t, o)
}
