package main

import (
	"math/bits"
	"time"
)

// hist is an HDR-style log-linear histogram of microseconds: exact below
// 2^(subBits+1), then 2^subBits sub-buckets per power of two (~3 % error).
// Each receiver owns one, so recording takes no lock; they are merged at
// the end.
type hist struct {
	counts [histBuckets]uint32
	n      uint64
	max    int64 // µs, exact
}

const (
	subBits     = 5
	subCount    = 1 << subBits
	maxShift    = 30 // values up to 2^(30+subBits+1) µs, far past any run
	histBuckets = (maxShift + 2) * subCount
)

func bucketOf(v int64) int {
	if v < 0 {
		v = 0
	}
	u := uint64(v)
	if u < 2*subCount {
		return int(u)
	}
	shift := bits.Len64(u) - (subBits + 1)
	if shift > maxShift {
		return histBuckets - 1
	}
	return (shift+1)*subCount + int(u>>uint(shift)) - subCount
}

// bucketHigh is the largest value that falls in bucket i.
func bucketHigh(i int) int64 {
	if i < 2*subCount {
		return int64(i)
	}
	shift := i/subCount - 1
	sub := int64(i%subCount + subCount)
	return (sub+1)<<uint(shift) - 1
}

func (h *hist) record(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		us = 0 // clocks are the same host's; guard anyway
	}
	h.counts[bucketOf(us)]++
	h.n++
	if us > h.max {
		h.max = us
	}
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	if o.max > h.max {
		h.max = o.max
	}
}

// quantile returns the q-quantile (0..1) in µs: the upper bound of the
// bucket holding the ceil(q*n)-th value, never above the exact max.
func (h *hist) quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.999999)
	if rank < 1 {
		rank = 1
	}
	if rank > h.n {
		rank = h.n
	}
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			return min(bucketHigh(i), h.max)
		}
	}
	return h.max
}

// seqSet records the seqs one receiver saw in its room, to count losses
// (expected but never seen) and duplicates (seen twice).
type seqSet struct {
	bits     []uint64
	distinct int64
	dups     int64
	maxSeq   int64
}

func (s *seqSet) add(seq int64) {
	if seq < 1 {
		return
	}
	w := int(seq >> 6)
	if w >= len(s.bits) {
		n := max(2*len(s.bits), w+1, 16)
		nb := make([]uint64, n)
		copy(nb, s.bits)
		s.bits = nb
	}
	if seq > s.maxSeq {
		s.maxSeq = seq
	}
	m := uint64(1) << uint(seq&63)
	if s.bits[w]&m != 0 {
		s.dups++
		return
	}
	s.bits[w] |= m
	s.distinct++
}

// lost is how many of the room's expected messages this receiver did not
// see. Rooms are fresh and every receiver joins before the first send, so
// the receiver should see seqs 1..expected.
func (s *seqSet) lost(expected int64) int64 {
	if expected <= s.distinct {
		return 0
	}
	return expected - s.distinct
}
