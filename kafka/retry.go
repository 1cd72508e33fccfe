package kafka

// This file holds the retry helpers shared by the consumer and the Bus:
// a growing backoff, a sleep that a context cuts short, and a rate limit
// on warnings, so that a broker outage does not flood the log.

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// backoff grows quadratically from min to max with the attempt number.
func backoff(attempt int, min, max time.Duration) time.Duration {
	d := time.Duration(attempt*attempt) * min
	if d > max || d <= 0 {
		d = max
	}
	return d
}

// sleep waits for d or until ctx is done, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// rateLimit passes one warning per period and turns the rest into debug
// logs, so that a broker outage logs a line every few seconds, not one per
// retry per partition.
type rateLimit struct {
	every time.Duration
	mu    sync.Mutex
	last  time.Time
}

func newRateLimit(every time.Duration) *rateLimit { return &rateLimit{every: every} }

func (r *rateLimit) log(l *slog.Logger, msg string, args ...any) {
	r.mu.Lock()
	now := time.Now()
	pass := now.Sub(r.last) >= r.every
	if pass {
		r.last = now
	}
	r.mu.Unlock()
	if pass {
		l.Warn(msg, args...)
	} else {
		l.Debug(msg, args...)
	}
}

// logger adapts r to kafka-go's Printf-style error logger.
func (r *rateLimit) logger(l *slog.Logger) kafkago.Logger {
	return kafkago.LoggerFunc(func(format string, args ...any) {
		r.log(l, "kafka-go: "+fmt.Sprintf(format, args...))
	})
}
