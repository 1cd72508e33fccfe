package chat

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are Parley's Prometheus metrics. A nil *Metrics records nothing, so
// tests can leave it out.
type Metrics struct {
	Registry *prometheus.Registry

	Connections     *prometheus.GaugeVec
	Received        prometheus.Counter
	Acked           prometheus.Counter
	Persisted       prometheus.Counter
	Delivered       prometheus.Counter
	ProduceLatency  prometheus.Histogram
	PersistBatch    prometheus.Histogram
	PersistLatency  prometheus.Histogram
	EndToEndLatency prometheus.Histogram
	SlowClients     prometheus.Counter
	RateLimited     prometheus.Counter
	// Refusals is parley_refused_total{reason}: requests, frames and
	// connections refused by a limit or a security rule (see Refused).
	Refusals *prometheus.CounterVec
	// ConsumerLag is parley_consumer_lag{group,topic}, read from the
	// consumers when /metrics is scraped.
	ConsumerLag *LagCollector
}

// NewMetrics registers Parley's metrics, and the Go runtime's, in a new
// registry.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := func(c prometheus.Collector) prometheus.Collector { r.MustRegister(c); return c }
	latency := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	return &Metrics{
		Registry: r,
		Connections: f(prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "parley_connections", Help: "Open client connections by transport.",
		}, []string{"transport"})).(*prometheus.GaugeVec),
		Received: f(prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_messages_received_total", Help: "Send requests received from clients.",
		})).(prometheus.Counter),
		Acked: f(prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_messages_acked_total", Help: "Messages accepted by the bus and acknowledged to the sender.",
		})).(prometheus.Counter),
		Persisted: f(prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_messages_persisted_total", Help: "Messages written by this instance's persist stage (including idempotent repeats).",
		})).(prometheus.Counter),
		Delivered: f(prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_messages_delivered_total", Help: "Message deliveries queued to local connections.",
		})).(prometheus.Counter),
		ProduceLatency: f(prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "parley_produce_seconds", Help: "Time to publish a client's message to the send topic.", Buckets: latency,
		})).(prometheus.Histogram),
		PersistBatch: f(prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "parley_persist_batch_size", Help: "Messages per persist batch.", Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		})).(prometheus.Histogram),
		PersistLatency: f(prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "parley_persist_batch_seconds", Help: "Time to store, republish and commit one persist batch.", Buckets: latency,
		})).(prometheus.Histogram),
		EndToEndLatency: f(prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "parley_end_to_end_seconds", Help: "From acceptance (the message's ts) to reaching this instance's hub.", Buckets: latency,
		})).(prometheus.Histogram),
		SlowClients: f(prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_slow_clients_total", Help: "Connections cut off for not reading their queue.",
		})).(prometheus.Counter),
		RateLimited: f(prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_rate_limited_total", Help: "Send frames and requests refused by the rate limit.",
		})).(prometheus.Counter),
		Refusals: f(prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_refused_total", Help: "Requests, frames and connections refused by a limit or a security rule, by reason.",
		}, []string{"reason"})).(*prometheus.CounterVec),
		ConsumerLag: f(newLagCollector()).(*LagCollector),
	}
}

// Lagger is implemented by consumers that know how far they are behind:
// Lag is the number of records in the partitions assigned to this consumer
// that the group has not committed (log end offset minus committed offset,
// summed). Both chat.Bus implementations' consumers have it; it is not part
// of Consumer, so that a bus without it still works, with no lag metric.
type Lagger interface {
	Lag() int64
}

// LagCollector reports parley_consumer_lag{group,topic} for the consumers
// being watched, asking each for its lag at scrape time.
type LagCollector struct {
	desc *prometheus.Desc

	mu      sync.Mutex
	watched map[*lagWatch]struct{}
}

type lagWatch struct {
	group, topic string
	l            Lagger
}

func newLagCollector() *LagCollector {
	return &LagCollector{
		desc: prometheus.NewDesc("parley_consumer_lag",
			"Records behind the log end (not yet committed) in the partitions this instance's consumer of the group holds.",
			[]string{"group", "topic"}, nil),
		watched: map[*lagWatch]struct{}{},
	}
}

// Describe implements prometheus.Collector.
func (lc *LagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lc.desc }

// Collect implements prometheus.Collector. Consumers of one group and topic
// (there is normally one per instance) are summed.
func (lc *LagCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct{ group, topic string }
	sums := map[key]int64{}
	lc.mu.Lock()
	ws := make([]*lagWatch, 0, len(lc.watched))
	for w := range lc.watched {
		ws = append(ws, w)
	}
	lc.mu.Unlock()
	for _, w := range ws {
		sums[key{w.group, w.topic}] += w.l.Lag()
	}
	for k, v := range sums {
		ch <- prometheus.MustNewConstMetric(lc.desc, prometheus.GaugeValue, float64(v), k.group, k.topic)
	}
}

// watchLag reports c's lag as parley_consumer_lag{group,topic} until the
// returned function is called. A consumer that is not a Lagger, or a nil
// *Metrics, is not reported.
func (m *Metrics) watchLag(group, topic string, c Consumer) (unwatch func()) {
	l, ok := c.(Lagger)
	if m == nil || m.ConsumerLag == nil || !ok {
		return func() {}
	}
	lc := m.ConsumerLag
	w := &lagWatch{group: group, topic: topic, l: l}
	lc.mu.Lock()
	lc.watched[w] = struct{}{}
	lc.mu.Unlock()
	return func() {
		lc.mu.Lock()
		delete(lc.watched, w)
		lc.mu.Unlock()
	}
}

func (m *Metrics) received() {
	if m != nil {
		m.Received.Inc()
	}
}

func (m *Metrics) acked(d time.Duration) {
	if m != nil {
		m.Acked.Inc()
		m.ProduceLatency.Observe(d.Seconds())
	}
}

func (m *Metrics) persisted(n int, d time.Duration) {
	if m != nil && n > 0 {
		m.Persisted.Add(float64(n))
		m.PersistBatch.Observe(float64(n))
		m.PersistLatency.Observe(d.Seconds())
	}
}

func (m *Metrics) delivered(n int) {
	if m != nil {
		m.Delivered.Add(float64(n))
	}
}

func (m *Metrics) observeEndToEnd(ts string, now time.Time) {
	if m == nil {
		return
	}
	if t, err := time.Parse(TSLayout, ts); err == nil {
		m.EndToEndLatency.Observe(now.Sub(t).Seconds())
	}
}

// SlowClient counts a connection cut off as too slow.
func (m *Metrics) SlowClient() {
	if m != nil {
		m.SlowClients.Inc()
	}
}

// RateLimit counts a refused send.
func (m *Metrics) RateLimit() {
	if m != nil {
		m.RateLimited.Inc()
	}
}

// Refused counts one refusal for reason (a short snake_case name of the
// limit or rule, from a fixed set: the label's values must stay few).
func (m *Metrics) Refused(reason string) {
	if m != nil {
		m.Refusals.WithLabelValues(reason).Inc()
	}
}

// Conn adds delta to the open connections of transport.
func (m *Metrics) Conn(transport string, delta float64) {
	if m != nil {
		m.Connections.WithLabelValues(transport).Add(delta)
	}
}
