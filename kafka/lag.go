package kafka

import "github.com/parley-chat/parley/app/chat"

var _ chat.Lagger = (*consumer)(nil)

// lagState is what a consumer knows of how far behind it is. Guarded by
// consumer.mu.
type lagState struct {
	// hw is each partition's high watermark (the log end offset) as the
	// last fetch response for it said.
	hw map[int]int64
	// last is the lag last computed, reported between generations.
	last int64
}

// noteHighWatermark records partition p's log end from a fetch response.
func (c *consumer) noteHighWatermark(p int, hw int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lag.hw == nil {
		c.lag.hw = map[int]int64{}
	}
	c.lag.hw[p] = hw
}

// Lag implements chat.Lagger: over the partitions assigned in the current
// generation, the log end minus the group's committed offset. It needs no
// request of its own: the log end comes from the partitions' fetch responses,
// which a caught-up consumer gets as soon as records arrive (the long poll
// returns), so it is exact then and falls to 0 once everything is committed;
// while a large fetch response is still being handed out the log end may be
// a little stale, so the figure is then a lower bound. Between generations it
// repeats the last figure.
func (c *consumer) Lag() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	gen := c.gen
	if gen == nil || gen.over() {
		return c.lag.last
	}
	var lag int64
	for _, p := range gen.partitions {
		hw, ok := c.lag.hw[p]
		committed := gen.committed[p]
		if !ok || committed < 0 { // not fetched yet, or the start not yet fixed
			continue
		}
		lag += max(hw-committed, 0)
	}
	c.lag.last = lag
	return lag
}
