package chat

import (
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

// Conn adds delta to the open connections of transport.
func (m *Metrics) Conn(transport string, delta float64) {
	if m != nil {
		m.Connections.WithLabelValues(transport).Add(delta)
	}
}
