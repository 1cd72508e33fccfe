package chat

import "time"

// SweepViews runs one sweep of the hub's room views as of now (tests).
func (h *Hub) SweepViews(now time.Time) int { return h.sweepViews(now) }

// ViewIdle is viewIdle (tests).
const ViewIdle = viewIdle
