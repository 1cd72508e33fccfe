package main

import (
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/app/notify"
	"github.com/parley-chat/parley/handlers"
)

// promMetrics reports what the domain (chat.Metrics) and the handlers
// (handlers.Metrics) count as Parley's Prometheus metrics, beside the Go
// runtime's and the process's, in a registry of its own.
type promMetrics struct {
	registry *prometheus.Registry

	connections     *prometheus.GaugeVec
	received        prometheus.Counter
	acked           prometheus.Counter
	persisted       prometheus.Counter
	delivered       prometheus.Counter
	produceLatency  prometheus.Histogram
	persistBatch    prometheus.Histogram
	persistLatency  prometheus.Histogram
	endToEndLatency prometheus.Histogram
	slowClients     prometheus.Counter
	rateLimited     prometheus.Counter
	refusals        *prometheus.CounterVec
	notify          *prometheus.CounterVec
	lag             *lagCollector
}

var (
	_ chat.Metrics     = (*promMetrics)(nil)
	_ handlers.Metrics = (*promMetrics)(nil)
	_ notify.Metrics   = (*promMetrics)(nil)
)

func newPromMetrics() *promMetrics {
	r := prometheus.NewRegistry()
	// Beside the default Go series, the runtime's estimate of the CPU its
	// garbage collector takes (go_cpu_classes_gc_total_cpu_seconds_total):
	// the load generator reports GC's share of the server's CPU from it.
	gcCPU := collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/cpu/classes/gc/total:cpu-seconds$`)}
	r.MustRegister(collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(gcCPU)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		r.MustRegister(c)
		return c
	}
	histogram := func(name, help string, buckets []float64) prometheus.Histogram {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
		r.MustRegister(h)
		return h
	}
	latency := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	m := &promMetrics{
		registry: r,
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "parley_connections", Help: "Open client connections by transport.",
		}, []string{"transport"}),
		received:        counter("parley_messages_received_total", "Send requests received from clients."),
		acked:           counter("parley_messages_acked_total", "Messages accepted by the bus and acknowledged to the sender."),
		persisted:       counter("parley_messages_persisted_total", "Messages written by this instance's persist stage (including idempotent repeats)."),
		delivered:       counter("parley_messages_delivered_total", "Message deliveries queued to local connections."),
		produceLatency:  histogram("parley_produce_seconds", "Time to publish a client's message to the send topic.", latency),
		persistBatch:    histogram("parley_persist_batch_size", "Messages per persist batch.", prometheus.ExponentialBuckets(1, 2, 11)),
		persistLatency:  histogram("parley_persist_batch_seconds", "Time to store, republish and commit one persist batch.", latency),
		endToEndLatency: histogram("parley_end_to_end_seconds", "From acceptance (the message's ts) to reaching this instance's hub.", latency),
		slowClients:     counter("parley_slow_clients_total", "Connections cut off for not reading their queue."),
		rateLimited:     counter("parley_rate_limited_total", "Send frames and requests refused by the rate limit."),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_refused_total", Help: "Requests, frames and connections refused by a limit or a security rule, by reason.",
		}, []string{"reason"}),
		notify: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_notify_deliveries_total", Help: "Web Push and webhook delivery attempts by kind and outcome (sent, retry, gave_up, gone).",
		}, []string{"kind", "outcome"}),
		lag: newLagCollector(),
	}
	r.MustRegister(m.connections, m.refusals, m.notify, m.lag)
	return m
}

// handler serves the registry in the Prometheus text format.
func (m *promMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

func (m *promMetrics) Received() { m.received.Inc() }

func (m *promMetrics) Acked(d time.Duration) {
	m.acked.Inc()
	m.produceLatency.Observe(d.Seconds())
}

func (m *promMetrics) Persisted(n int, d time.Duration) {
	m.persisted.Add(float64(n))
	m.persistBatch.Observe(float64(n))
	m.persistLatency.Observe(d.Seconds())
}

func (m *promMetrics) Delivered(n int)          { m.delivered.Add(float64(n)) }
func (m *promMetrics) EndToEnd(d time.Duration) { m.endToEndLatency.Observe(d.Seconds()) }
func (m *promMetrics) SlowClient()              { m.slowClients.Inc() }
func (m *promMetrics) RateLimit()               { m.rateLimited.Inc() }
func (m *promMetrics) Refused(reason string)    { m.refusals.WithLabelValues(reason).Inc() }

func (m *promMetrics) Delivery(kind, outcome string) {
	m.notify.WithLabelValues(kind, outcome).Inc()
}

func (m *promMetrics) Conn(transport string, delta int) {
	m.connections.WithLabelValues(transport).Add(float64(delta))
}

func (m *promMetrics) WatchLag(group, topic string, lag func() int64) (unwatch func()) {
	return m.lag.watch(group, topic, lag)
}

// lagCollector reports parley_consumer_lag{group,topic} for the consumers
// being watched, asking each for its lag at scrape time.
type lagCollector struct {
	desc *prometheus.Desc

	mu      sync.Mutex
	watched map[*lagWatch]struct{}
}

type lagWatch struct {
	group, topic string
	lag          func() int64
}

func newLagCollector() *lagCollector {
	return &lagCollector{
		desc: prometheus.NewDesc("parley_consumer_lag",
			"Records behind the log end (not yet committed) in the partitions this instance's consumer of the group holds.",
			[]string{"group", "topic"}, nil),
		watched: map[*lagWatch]struct{}{},
	}
}

func (lc *lagCollector) watch(group, topic string, lag func() int64) (unwatch func()) {
	w := &lagWatch{group: group, topic: topic, lag: lag}
	lc.mu.Lock()
	lc.watched[w] = struct{}{}
	lc.mu.Unlock()
	return func() {
		lc.mu.Lock()
		delete(lc.watched, w)
		lc.mu.Unlock()
	}
}

// Describe implements prometheus.Collector.
func (lc *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lc.desc }

// Collect implements prometheus.Collector. Consumers of one group and topic
// (there is normally one per instance) are summed.
func (lc *lagCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct{ group, topic string }
	sums := map[key]int64{}
	lc.mu.Lock()
	ws := make([]*lagWatch, 0, len(lc.watched))
	for w := range lc.watched {
		ws = append(ws, w)
	}
	lc.mu.Unlock()
	for _, w := range ws {
		sums[key{w.group, w.topic}] += w.lag()
	}
	for k, v := range sums {
		ch <- prometheus.MustNewConstMetric(lc.desc, prometheus.GaugeValue, float64(v), k.group, k.topic)
	}
}
