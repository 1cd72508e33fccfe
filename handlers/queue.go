package handlers

import (
	"context"
	"sync"
	"time"
)

// queue is a connection's outgoing queue, bounded in bytes rather than
// frames: a persist batch can hand a room hundreds of messages at once, which
// a healthy reader drains in milliseconds, while a reader that stopped lets
// the bytes pile up. The single writer takes everything queued at once, so
// what accumulated goes out together.
//
// A queue made by newWriterQueue has no writer waiting on it: the writer is
// started when there is work and ends when there has been none for
// writerLinger, so that an idle connection holds no goroutine (its stack was a third of what an idle
// WebSocket cost). The queue decides, under its lock, when a writer runs:
// a push or kick finding none starts one, and next ends the writer's turn
// only when nothing is queued or pending, so no work is left without one.
type queue struct {
	max int

	mu     sync.Mutex
	frames [][]byte
	bytes  int
	closed bool

	start     func()        // newWriterQueue: starts a writer; nil: ready is signalled
	running   bool          // a writer runs (start was called and its turn has not ended)
	pending   bool          // kick was called since the writer last looked
	lingering bool          // the running writer waits on wakeup for more work
	lastTake  time.Duration // when next last handed out work (since epoch)
	busy      bool          // that take came within writerLinger of the one before
	wakeup    chan struct{}

	ready chan struct{} // signalled when frames are added (newQueue only)
	space chan struct{} // signalled when the writer takes frames
	done  chan struct{} // closed by close
}

func newQueue(maxBytes int) *queue {
	return &queue{max: maxBytes, ready: make(chan struct{}, 1), space: make(chan struct{}, 1), done: make(chan struct{})}
}

// newWriterQueue makes a queue whose writer is started on demand: start
// runs (in the pusher's goroutine, after the lock is released) whenever
// work arrives and no writer runs; it must start one (go writer()), and
// the writer must call next until next reports its turn over.
func newWriterQueue(maxBytes int, start func()) *queue {
	return &queue{max: maxBytes, start: start, wakeup: make(chan struct{}, 1), space: make(chan struct{}, 1), done: make(chan struct{})}
}

// writerLinger is how long a busy connection's writer whose queue ran empty
// waits for more before its turn ends. A connection is busy when its last
// two batches were taken within writerLinger of each other: one of a busy
// room gets its next frame well within it (at 2,000 messages/s, every
// 0.5 ms), and its writer stays rather than being started anew for every
// message. Any other ends its turn at once: a connection of a small room,
// a frame every second or so, would only pay for a timer and a wake-up per
// frame (the linger for all cost rooms 8 % more CPU a message). An idle
// connection loses its writer at most this long after its last frame.
const writerLinger = 50 * time.Millisecond

// epoch is the origin of queue.lastTake: time.Since reads the monotonic clock.
var epoch = time.Now()

// idleFrames is the capacity of frames kept when a writer's turn ends; a
// burst's larger backing array is let go, not held by an idle connection.
const idleFrames = 8

// push adds b without waiting. It reports false when the queue is closed or
// b does not fit: the caller treats the reader as too slow.
func (q *queue) push(b []byte) bool {
	q.mu.Lock()
	if q.closed || (q.bytes+len(b) > q.max && q.bytes > 0) {
		q.mu.Unlock()
		return false
	}
	q.frames = append(q.frames, b)
	q.bytes += len(b)
	start := q.claimLocked()
	q.mu.Unlock()
	q.wake(start)
	return true
}

// pushWait adds b, waiting for room while the queue is full.
func (q *queue) pushWait(ctx context.Context, b []byte) error {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return context.Canceled
		}
		if q.bytes+len(b) <= q.max || q.bytes == 0 {
			q.frames = append(q.frames, b)
			q.bytes += len(b)
			start := q.claimLocked()
			q.mu.Unlock()
			q.wake(start)
			return nil
		}
		q.mu.Unlock()
		select {
		case <-q.space:
		case <-q.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// take returns everything queued, appended to dst[:0].
func (q *queue) take(dst [][]byte) [][]byte {
	q.mu.Lock()
	return q.takeLocked(dst)
}

// takeLocked is take with q.mu held; it releases it.
func (q *queue) takeLocked(dst [][]byte) [][]byte {
	dst = append(dst[:0], q.frames...)
	clear(q.frames)
	q.frames = q.frames[:0]
	q.bytes = 0
	q.mu.Unlock()
	signal(q.space)
	return dst
}

// claimLocked reports whether the caller must start the writer: one is
// wanted and none runs. q.mu is held.
func (q *queue) claimLocked() bool {
	if q.start == nil || q.running {
		return false
	}
	q.running = true
	return true
}

func (q *queue) wake(start bool) {
	switch {
	case start:
		q.start()
	case q.start == nil:
		signal(q.ready)
	default:
		// A writer runs; it may be lingering (a stale signal only makes
		// it look once more).
		signal(q.wakeup)
	}
}

// kick asks for a writer's turn with nothing queued (the writer then looks
// at what else it has to do: a close frame, a ping), starting one if none
// runs. newWriterQueue only.
func (q *queue) kick() {
	q.mu.Lock()
	q.pending = true
	start := q.claimLocked()
	q.mu.Unlock()
	q.wake(start)
}

// next is the on-demand writer's take: everything queued, appended to
// dst[:0], and true; or, when nothing is queued and nothing kicked since
// the last call (nor, on a busy connection, within writerLinger), false:
// the writer's turn is over and it must return (the next push or kick
// starts another). linger is the turn's timer, made at its first wait. A
// writer that never gets false (it ends the connection) keeps the queue
// marked as having one, so that no other starts.
func (q *queue) next(dst [][]byte, linger **time.Timer) ([][]byte, bool) {
	waited := false
	for {
		q.mu.Lock()
		q.lingering = false
		if len(q.frames) > 0 || q.pending {
			break
		}
		if waited || !q.busy {
			q.running = false
			if cap(q.frames) > idleFrames {
				q.frames = nil
			}
			q.mu.Unlock()
			return dst[:0], false
		}
		q.lingering = true
		q.mu.Unlock()
		if *linger == nil {
			*linger = time.NewTimer(writerLinger)
		} else {
			(*linger).Reset(writerLinger)
		}
		select {
		case <-q.wakeup:
			(*linger).Stop()
		case <-(*linger).C:
			waited = true
		}
	}
	q.pending = false
	now := time.Since(epoch)
	q.busy = q.lastTake != 0 && now-q.lastTake < writerLinger
	q.lastTake = now
	return q.takeLocked(dst), true
}

// close makes every later push fail and wakes waiters. It reports whether
// this call closed the queue.
func (q *queue) close() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.closed = true
	close(q.done)
	return true
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
