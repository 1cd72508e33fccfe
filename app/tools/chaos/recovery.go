package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/parley-chat/parley/app/tools/client"
)

// The detail of the recovery line: where the time of the recoveries after
// a kill or SIGTERM went, from each client's record of its outage (see
// client.Outage): the spread before the first attempt, the backoff pauses,
// the failed attempts, and the steps of the attempt that succeeded; and
// when the server's replay of what the client missed was in.

// printRecoverySteps writes, for outs, the p50/p99/max of each part of a
// recovery, which step was the slowest how often, and the catch-up times.
func printRecoverySteps(w io.Writer, outs []client.Outage) {
	if len(outs) == 0 {
		return
	}
	parts := []struct {
		name string
		of   func(o client.Outage) time.Duration
	}{
		{"spread", func(o client.Outage) time.Duration { return o.Spread }},
		{"backoff", func(o client.Outage) time.Duration { return o.Backoff }},
		{"failed attempts", failedTime},
		{"ready", func(o client.Outage) time.Duration { return o.Phases.Ready }},
		{"dial", func(o client.Outage) time.Duration { return o.Phases.Dial }},
		{"join", func(o client.Outage) time.Duration { return o.Phases.Join }},
	}
	var fields []string
	for _, p := range parts {
		var ds []time.Duration
		for _, o := range outs {
			ds = append(ds, p.of(o))
		}
		fields = append(fields, p.name+" "+quantiles(ds))
	}
	slowest := map[string]int{}
	var caught []time.Duration
	pauses, retried := 0, 0
	for _, o := range outs {
		name, _ := o.Phases.Slowest()
		slowest[name]++
		if o.CaughtUp > 0 {
			caught = append(caught, o.CaughtUp)
		}
		pauses += o.Backoffs
		if o.Attempts > 1 {
			retried++
		}
	}
	var most []string
	for name, n := range slowest {
		most = append(most, fmt.Sprintf("%s %d", name, n))
	}
	slices.Sort(most)
	fmt.Fprintf(w, "  where it went (p50/p99/max over %d): %s; slowest step of the recovering attempt: %s; %d needed more than one attempt, %d backoff pauses in all\n",
		len(outs), strings.Join(fields, ", "), strings.Join(most, ", "), retried, pauses)
	fmt.Fprintf(w, "  replay of what was missed in (caught up): %s, %d never caught up (lost again first)\n",
		quantiles(caught), len(outs)-len(caught))
}

// failedTime is the time an outage spent in attempts that failed.
func failedTime(o client.Outage) time.Duration {
	return max(0, o.Recovered-o.Spread-o.Backoff-o.Phases.Total())
}

// quantiles is "p50/p99/max" of ds, rounded to the millisecond.
func quantiles(ds []time.Duration) string {
	n := len(ds)
	if n == 0 {
		return "none"
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("%v/%v/%v", r(ds[n/2]), r(ds[min(n-1, n*99/100)]), r(ds[n-1]))
}

// slowDetail is a slow recovery's detail: where it went, and the steps.
func slowDetail(o client.Outage) string {
	caught := "not caught up"
	if o.CaughtUp > 0 {
		caught = "caught up in " + o.CaughtUp.Round(time.Millisecond).String()
	}
	return fmt.Sprintf("on %s after a spread of %v, %d backoff pauses (%v), failed attempts %v; the recovering attempt: %v; %s",
		o.To, o.Spread.Round(time.Millisecond), o.Backoffs, o.Backoff.Round(time.Millisecond),
		failedTime(o).Round(time.Millisecond), o.Phases, caught)
}
