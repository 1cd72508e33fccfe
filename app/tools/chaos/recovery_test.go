package main

import (
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/tools/client"
)

// The recovery line and its detail, on made-up outages: two quick ones and
// a slow one whose time went to a failed attempt, a pause and a long join.
func TestRecoveryDetail(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	outs := []client.Outage{
		{Recovered: ms(60), CaughtUp: ms(80), Attempts: 1, Spread: ms(20), To: "b",
			Phases: client.Phases{Ready: ms(30), Dial: ms(10), Join: ms(20)}},
		{Recovered: ms(50), Attempts: 1, Spread: ms(10), To: "c",
			Phases: client.Phases{Ready: ms(5), Dial: ms(10), Join: ms(30)}},
		{Recovered: ms(4000), CaughtUp: ms(4500), Attempts: 2, Spread: ms(40), Backoffs: 1, Backoff: ms(200), To: "b",
			Phases: client.Phases{Ready: ms(10), Dial: ms(10), Join: ms(3000)}},
	}
	r := &Report{KillRecoveries: []time.Duration{ms(50), ms(60), ms(4000)}, killOutages: outs, slowest: outs[2:]}
	var b strings.Builder
	r.Print(&b)
	out := b.String()
	for _, want := range []string{
		"recovery after a kill or SIGTERM of the client's instance: longest 4s (p50 60ms, p99 4s over 3 reconnects)",
		// Sorted per part: spread 10/20/40, join 20/30/3000; the slow one's
		// failed attempt took 4000-40-200-(10+3000) = 750 ms (Total is the
		// longer of ready and dial, then the join).
		"where it went (p50/p99/max over 3): spread 20ms/40ms/40ms, backoff 0s/200ms/200ms, failed attempts 0s/750ms/750ms, ready 10ms/30ms/30ms, dial 10ms/10ms/10ms, join 30ms/3s/3s",
		"slowest step of the recovering attempt: join 2, ready 1; 1 needed more than one attempt, 1 backoff pauses in all",
		"caught up): 4.5s/4.5s/4.5s, 1 never caught up",
		"on b after a spread of 40ms, 1 backoff pauses (200ms), failed attempts 750ms; the recovering attempt: ready 10.0ms, sign-in 0.0ms, dial 10.0ms, join 3000.0ms; caught up in 4.5s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
