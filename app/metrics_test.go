package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/parley-chat/parley/app/chat"
)

// TestMetricsListed drives a little traffic over WebSocket and SSE, with one
// send over the rate limit, and checks that /metrics shows every series the
// README and API.md list, with the values that traffic must give them — the
// consumer lag of both groups back at 0 once everything is stored and
// delivered.
func TestMetricsListed(t *testing.T) {
	s := startServer(t, func(c *Config) { c.SendRate, c.SendBurst = 0.5, 2 })
	room := uniqueRoom(t)
	tok := s.login("alice")
	ws := s.dial(tok)
	ws.join(room)
	st := s.sse(tok, room, "", nil)
	time.Sleep(100 * time.Millisecond) // the SSE join happens before its headers; leave it time anyway

	// A burst of 2: the third send in a row is refused.
	ws.sendAcked(room, "m1", "one")
	ws.ack("m1")
	ws.sendAcked(room, "m2", "two")
	ws.ack("m2")
	ws.write(map[string]any{"type": "send", "room": room, "id": "m3", "text": "three"})
	for {
		f := ws.next(5 * time.Second)
		if f["type"] == "error" {
			if f["code"] != "rate_limited" || f["id"] != "m3" {
				t.Fatalf("got %v, want rate_limited for m3", f)
			}
			break
		}
		if f["type"] != "message" {
			t.Fatalf("got %v while waiting for the rate limit", f)
		}
	}
	st.messages(2)

	persist := `parley_consumer_lag{group="` + chat.GroupPersist + `",topic="` + s.cfg.TopicSend + `"}`
	fanout := `parley_consumer_lag{group="` + s.cfg.FanoutGroup() + `",topic="` + s.cfg.TopicReceive + `"}`
	notifyLag := `parley_consumer_lag{group="` + chat.GroupNotify + `",topic="` + s.cfg.TopicReceive + `"}`
	want := map[string]float64{
		`parley_connections{transport="websocket"}`: 1,
		`parley_connections{transport="sse"}`:       1,
		"parley_messages_received_total":            2,
		"parley_messages_acked_total":               2,
		"parley_messages_persisted_total":           2,
		"parley_messages_delivered_total":           4, // 2 messages × (WebSocket + SSE)
		"parley_produce_seconds_count":              2,
		"parley_persist_batch_size_sum":             2,
		"parley_end_to_end_seconds_count":           2,
		"parley_slow_clients_total":                 0,
		"parley_rate_limited_total":                 1,
		persist:                                     0,
		fanout:                                      0,
		notifyLag:                                   0,
	}
	// The persist stage counts a batch after its commit, and the lag falls
	// once the fan-out commits: poll until the figures settle.
	var got map[string]float64
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = s.scrapeMetrics()
		if mismatches(got, want) == "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if m := mismatches(got, want); m != "" {
		t.Error(m)
	}
	// Batches: as many latency observations as size observations, at least
	// one of each; the end-to-end histogram's buckets are exposed.
	if n := got["parley_persist_batch_size_count"]; n < 1 || got["parley_persist_batch_seconds_count"] != n {
		t.Errorf("persist batches: %v size observations, %v latency observations",
			n, got["parley_persist_batch_seconds_count"])
	}
	// The Go runtime's estimate of GC CPU, which the load generator reads:
	// a counter, present even before the first collection.
	if _, ok := got["go_cpu_classes_gc_total_cpu_seconds_total"]; !ok {
		t.Error("/metrics lacks go_cpu_classes_gc_total_cpu_seconds_total")
	}
	if got[`parley_end_to_end_seconds_bucket{le="5"}`] != 2 {
		t.Errorf("end-to-end histogram: bucket le=5 = %v, want 2", got[`parley_end_to_end_seconds_bucket{le="5"}`])
	}
}

// mismatches describes where got differs from want ("" when it does not).
func mismatches(got, want map[string]float64) string {
	var b strings.Builder
	for k, v := range want {
		g, ok := got[k]
		switch {
		case !ok:
			fmt.Fprintf(&b, "/metrics lacks %s; ", k)
		case g != v:
			fmt.Fprintf(&b, "%s = %v, want %v; ", k, g, v)
		}
	}
	return b.String()
}

// scrapeMetrics parses /metrics into series name{labels} -> value, for
// counters, gauges and the _count, _sum and _bucket series of histograms.
func (s *testServer) scrapeMetrics() map[string]float64 {
	s.t.Helper()
	status, body := s.do("GET", "/metrics", "", "")
	if status != 200 {
		s.t.Fatalf("/metrics: %d %s", status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		s.t.Fatalf("/metrics is not Prometheus text: %v", err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			labels := labelString(m.GetLabel(), "", "")
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[name+labels] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[name+labels] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				out[name+"_count"+labels] = float64(h.GetSampleCount())
				out[name+"_sum"+labels] = h.GetSampleSum()
				out[name+"_bucket"+labelString(m.GetLabel(), "le", "+Inf")] = float64(h.GetSampleCount())
				for _, bk := range h.GetBucket() {
					le := strconv.FormatFloat(bk.GetUpperBound(), 'g', -1, 64)
					out[name+"_bucket"+labelString(m.GetLabel(), "le", le)] = float64(bk.GetCumulativeCount())
				}
			}
		}
	}
	return out
}

// labelString renders labels as {a="x",b="y"} in the exposition's order,
// with an extra label last when extra is set.
func labelString(ls []*dto.LabelPair, extra, value string) string {
	var parts []string
	for _, l := range ls {
		parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
	}
	if extra != "" {
		parts = append(parts, extra+`="`+value+`"`)
	}
	if len(parts) == 0 {
		return ""
	}
	return "{" + strings.Join(parts, ",") + "}"
}
