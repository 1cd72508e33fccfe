package handlers

import (
	"context"
	"sync"
)

// queue is a connection's outgoing queue, bounded in bytes rather than
// frames: a persist batch can hand a room hundreds of messages at once, which
// a healthy reader drains in milliseconds, while a reader that stopped lets
// the bytes pile up. The single writer takes everything queued at once, so
// what accumulated goes out together.
type queue struct {
	max int

	mu     sync.Mutex
	frames [][]byte
	bytes  int
	closed bool

	ready chan struct{} // signalled when frames are added
	space chan struct{} // signalled when the writer takes frames
	done  chan struct{} // closed by close
}

func newQueue(maxBytes int) *queue {
	return &queue{max: maxBytes, ready: make(chan struct{}, 1), space: make(chan struct{}, 1), done: make(chan struct{})}
}

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
	q.mu.Unlock()
	signal(q.ready)
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
			q.mu.Unlock()
			signal(q.ready)
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
	dst = append(dst[:0], q.frames...)
	clear(q.frames)
	q.frames = q.frames[:0]
	q.bytes = 0
	q.mu.Unlock()
	signal(q.space)
	return dst
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
