package handlers

// Metrics is what the handlers report. They know no metrics system: app/
// wires a Prometheus implementation. A nil Metrics reports nothing.
type Metrics interface {
	// Conn adds delta to the open connections of transport ("websocket",
	// "sse").
	Conn(transport string, delta int)
	// SlowClient counts a connection cut off as too slow to read.
	SlowClient()
	// RateLimit counts a send refused by the rate limit.
	RateLimit()
	// Refused counts one refusal for reason (a short snake_case name of a
	// limit or rule, from a fixed set: its values must stay few).
	Refused(reason string)
}

type nopMetrics struct{}

func (nopMetrics) Conn(string, int) {}
func (nopMetrics) SlowClient()      {}
func (nopMetrics) RateLimit()       {}
func (nopMetrics) Refused(string)   {}
