package main

import (
	"context"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"
)

func TestHistQuantiles(t *testing.T) {
	h := &hist{}
	var vals []int64
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		us := r.Int64N(200000) // 0-200 ms
		vals = append(vals, us)
		h.record(time.Duration(us) * time.Microsecond)
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.95, 0.99} {
		exact := vals[int(q*float64(len(vals)))-1]
		got := h.quantile(q)
		if got < exact || float64(got) > float64(exact)*1.035+1 {
			t.Errorf("q%.2f = %d µs, exact %d µs: outside the bucket error", q, got, exact)
		}
	}
	if h.quantile(1) != vals[len(vals)-1] || h.max != vals[len(vals)-1] {
		t.Errorf("max %d / q1 %d, want %d", h.max, h.quantile(1), vals[len(vals)-1])
	}
	// Small values are exact; merging adds counts.
	a, b := &hist{}, &hist{}
	for i := 1; i <= 50; i++ {
		a.record(time.Duration(i) * time.Microsecond)
		b.record(time.Duration(i+50) * time.Microsecond)
	}
	a.merge(b)
	if a.n != 100 || a.quantile(0.5) != 50 || a.quantile(0.99) != 99 || a.max != 100 {
		t.Errorf("merged: n %d p50 %d p99 %d max %d", a.n, a.quantile(0.5), a.quantile(0.99), a.max)
	}
	if (&hist{}).quantile(0.5) != 0 {
		t.Error("empty histogram")
	}
}

func TestBucketsContiguous(t *testing.T) {
	prev := -1
	for v := int64(0); v < 1<<22; v += 1 + v/1000 {
		b := bucketOf(v)
		if b < prev || b >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d after %d", v, b, prev)
		}
		if bucketHigh(b) < v || (b > 0 && bucketHigh(b-1) >= v) {
			t.Fatalf("value %d not within bucket %d (high %d, prev high %d)", v, b, bucketHigh(b), bucketHigh(b-1))
		}
		prev = b
	}
}

func TestSeqSetLossAndDup(t *testing.T) {
	var s seqSet
	for _, q := range []int64{1, 2, 3, 3, 5, 200, 200, 200} {
		s.add(q)
	}
	if s.distinct != 5 || s.dups != 3 || s.maxSeq != 200 {
		t.Fatalf("distinct %d dups %d max %d", s.distinct, s.dups, s.maxSeq)
	}
	if got := s.lost(200); got != 195 {
		t.Errorf("lost(200) = %d, want 195", got)
	}
	if got := s.lost(3); got != 0 {
		t.Errorf("lost(3) = %d, want 0", got)
	}
}

func TestParseStamp(t *testing.T) {
	if n, ok := parseStamp("t=1234567890123"); !ok || n != 1234567890123 {
		t.Errorf("got %d %v", n, ok)
	}
	if _, ok := parseStamp("hello"); ok {
		t.Error("no stamp accepted")
	}
}

func TestScenarioDefaultsAndOverrides(t *testing.T) {
	c, err := parseFlags([]string{"--scenario=fanout", "--rate=100"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Conns != 1000 || c.Rooms != 1 || c.Senders != 10 || c.Rate != 100 || c.Mode != "embedded" || c.Duration != 10*time.Second {
		t.Errorf("fanout defaults: %+v", c)
	}
	c, err = parseFlags([]string{"--scenario=rooms", "--conns=2000", "--rooms=200", "--rate=500", "--duration=3s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Conns != 2000 || c.Rooms != 200 || c.Senders != 200 || c.Rate != 500 || c.Duration != 3*time.Second {
		t.Errorf("rooms override: %+v", c)
	}
	c, err = parseFlags([]string{"--scenario=rooms", "--senders=5"}, io.Discard)
	if err != nil || c.Senders != 5 || c.Conns != 10000 {
		t.Errorf("explicit senders: %+v %v", c, err)
	}
	c, err = parseFlags([]string{"--scenario=idle", "--target=http://127.0.0.2:8080,http://localhost:9"}, io.Discard)
	if err != nil || c.Mode != "target" || len(c.Targets) != 2 || c.Rate != 0 || c.Senders != 0 {
		t.Errorf("idle target: %+v %v", c, err)
	}
	for _, bad := range [][]string{
		{"--scenario=nope"},
		{"--mode=kafka"},
		{"--transport=sse"},
		{"--target=http://10.0.0.1:8080"},
		{"--mode=target"},
		{"--rooms=0"},
		{"--senders=0", "--rate=10"},
	} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestSourceIP(t *testing.T) {
	if sourceIP(0, 28000) != nil || sourceIP(27999, 28000) != nil {
		t.Error("first address range should use the kernel's choice")
	}
	if ip := sourceIP(28000, 28000); ip.String() != "127.0.0.3" {
		t.Errorf("second range: %v", ip)
	}
}

// TestEmbeddedRun builds and starts the real server and runs a tiny load.
func TestEmbeddedRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server")
	}
	cfg, err := parseFlags([]string{"--scenario=rooms", "--conns=20", "--rooms=2", "--rate=20", "--duration=2s", "--quiet"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var log io.Writer = io.Discard
	if testing.Verbose() {
		log = os.Stderr
	}
	res, err := run(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if testing.Verbose() {
		printResult(os.Stderr, res)
	}
	if res.Sent == 0 || res.Acked != res.Sent || res.Delivered == 0 || res.Lost != 0 || res.Duplicated != 0 || res.DialFailed != 0 {
		t.Errorf("result: %+v", res)
	}
	if res.Delivered != res.Expected || res.Expected != res.Acked*10 {
		t.Errorf("delivered %d, expected %d, acked %d", res.Delivered, res.Expected, res.Acked)
	}
	if res.ServerRSSKiB <= 0 || res.P50ms <= 0 {
		t.Errorf("rss %d p50 %.3f", res.ServerRSSKiB, res.P50ms)
	}
}
