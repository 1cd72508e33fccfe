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

// Recoveries that overlapped a stop of the store or Kafka are told apart
// from the clear ones: lost during a stop, lost before it and recovered
// after its start, or lost while a stop was never resumed, they overlap;
// lost and back between the stops, or after the resume, they do not.
func TestRecoveryClearOfStops(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	events := []event{
		{At: at(10), What: "Kafka broker: stop"},
		{At: at(20), What: "kill -9 parley-1 (pid gone)", Node: "http://a"},
		{At: at(25), What: "Kafka broker: resumed on its data"},
		{At: at(60), What: "store: stop for 10s"},
		{At: at(70), What: "store: resumed on its data"},
		{At: at(90), What: "store: stop for 10s"},
	}
	ws := stopWindows(events)
	if len(ws) != 3 || !ws[0].to.Equal(at(25)) || !ws[1].from.Equal(at(60)) || !ws[2].to.IsZero() {
		t.Fatalf("windows %+v", ws)
	}
	for _, c := range []struct {
		lost, back float64
		overlaps   bool
	}{
		{5, 6, false},   // before any stop
		{8, 11, true},   // recovered after the broker stopped
		{20, 21, true},  // lost while it was stopped
		{30, 32, false}, // between the stops
		{59, 72, true},  // across the store's stop
		{71, 72, false}, // after its resume
		{95, 96, true},  // during a stop not resumed by the run's end
	} {
		out := client.Outage{At: at(c.lost), Recovered: at(c.back).Sub(at(c.lost))}
		if got := overlapsStop(ws, out); got != c.overlaps {
			t.Errorf("lost at +%vs, back at +%vs: overlaps %v, want %v", c.lost, c.back, got, c.overlaps)
		}
	}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	r := &Report{KillRecoveries: []time.Duration{ms(50), ms(60), ms(4000)}, ClearRecoveries: []time.Duration{ms(50), ms(60)}}
	var b strings.Builder
	r.Print(&b)
	if want := "of which clear of a stop of the store or Kafka: 2 of 3, p50/p99/max 60ms/60ms/60ms (the rest overlapped one)"; !strings.Contains(b.String(), want) {
		t.Errorf("report lacks %q:\n%s", want, b.String())
	}
}

// staleBan knows the server's answer to an add that meets a ban (the body
// as a run got it), and nothing else.
func TestStaleBan(t *testing.T) {
	body := []byte(`{"error":{"code":"forbidden","message":"u54 is banned from this room","key":"%s is banned from this room","params":["u54"]}}`)
	if !staleBan(403, "add", body) {
		t.Error("an add's 403 for a ban is not taken as possibly stale")
	}
	if staleBan(403, "unban", body) || staleBan(400, "add", body) {
		t.Error("only an add's 403 is")
	}
	if staleBan(403, "add", []byte(`{"error":{"code":"forbidden","message":"only the room's owner or an admin may do that"}}`)) {
		t.Error("another 403 is taken as a stale ban")
	}
}
