package kafka

// This file reads one partition: a long poll of Fetch requests from a given
// offset, feeding the consumer's shared channel (consumer.go runs one such
// reader per assigned partition and generation), and the offset lookups of
// the consumer (a new group's start, an offset retention dropped).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/app/chat"
)

// fetchMaxBytes bounds one Fetch response for one partition. A record larger
// than this is still returned whole (brokers always return at least one
// batch).
const fetchMaxBytes = 1 << 20

// listOffsets looks up the concrete offsets reqs ask for (each partition's
// first or last offset), as fixStartOffsets needs them for a group's start.
func (c *consumer) listOffsets(ctx context.Context, reqs []kafkago.OffsetRequest) (map[int]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, c.bus.cfg.DialTimeout)
	defer cancel()
	res, err := c.bus.client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{
		Topics: map[string][]kafkago.OffsetRequest{c.cfg.Topic: reqs},
	})
	if err != nil {
		return nil, err
	}
	byPartition := map[int]kafkago.PartitionOffsets{}
	for _, po := range res.Topics[c.cfg.Topic] {
		byPartition[po.Partition] = po
	}
	offsets := map[int]int64{}
	for _, r := range reqs {
		po, ok := byPartition[r.Partition]
		switch {
		case !ok:
			return nil, fmt.Errorf("list offsets: no answer for partition %d", r.Partition)
		case po.Error != nil:
			return nil, fmt.Errorf("list offsets of partition %d: %w", r.Partition, po.Error)
		case r.Timestamp == kafkago.LastOffset:
			offsets[r.Partition] = po.LastOffset
		default:
			offsets[r.Partition] = po.FirstOffset
		}
		if offsets[r.Partition] < 0 {
			return nil, fmt.Errorf("list offsets: partition %d has no offset yet", r.Partition)
		}
	}
	return offsets, nil
}

// readPartition delivers partition p's records from offset on, until the
// generation ends. It long-polls with Fetch requests through the Bus's
// transport rather than running a kafka-go Reader: a Reader's Close waits for
// its fetch in flight, and its read deadline leaves a short MaxWait so little
// slack that fetches time out and reconnect on a busy machine. A request here
// is abandoned the moment the generation ends (the transport finishes it in
// the background), so rebalances and Close do not wait for MaxWait.
func (c *consumer) readPartition(ctx context.Context, gen *generation, p int, offset int64) {
	for attempt := 0; ; {
		next, behind, err := c.fetchPartition(ctx, gen, p, offset)
		// Records before next were delivered, even when err is not nil.
		progress := next > offset
		offset = next
		if err == nil {
			attempt = 0
			if !progress && behind {
				// The broker has records past offset but returned none this
				// consumer can use (control records of transactions, which
				// Parley never writes): do not spin on the same answer.
				if !sleep(ctx, 100*time.Millisecond) {
					return
				}
			}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, kafkago.OffsetOutOfRange) {
			// Retention dropped the records from offset on (or the log was
			// truncated): resume at the nearest offset that exists, as
			// Kafka's clients do with auto.offset.reset.
			if fixed, ferr := c.clampOffset(ctx, p, offset); ferr == nil {
				c.log.Warn("kafka: offset out of range; skipping", "partition", p, "from", offset, "to", fixed)
				offset = fixed
				continue
			}
		}
		attempt++
		c.warn.log(c.log, "kafka: fetch failed; retrying", "partition", p, "offset", offset, "err", err)
		if !sleep(ctx, backoff(attempt, 100*time.Millisecond, 2*time.Second)) {
			return
		}
	}
}

// fetchPartition sends one Fetch for partition p at offset and delivers
// what it returns. It returns the offset to fetch next (past every record
// delivered, even on error) and whether the partition holds records beyond
// it.
func (c *consumer) fetchPartition(ctx context.Context, gen *generation, p int, offset int64) (next int64, behind bool, err error) {
	res, err := c.bus.client.Fetch(ctx, &kafkago.FetchRequest{
		Topic:     c.cfg.Topic,
		Partition: p,
		Offset:    offset,
		MinBytes:  1,
		MaxBytes:  fetchMaxBytes,
		MaxWait:   c.bus.cfg.MaxWait,
	})
	if err != nil {
		return offset, false, err
	}
	if res.Error != nil {
		return offset, false, res.Error
	}
	c.noteHighWatermark(p, res.HighWatermark)
	for {
		r, err := res.Records.ReadRecord()
		if errors.Is(err, io.EOF) {
			return offset, res.HighWatermark > offset, nil
		}
		if err != nil {
			return offset, false, fmt.Errorf("decode records: %w", err)
		}
		// A fetch returns whole record batches; the first may begin before
		// the offset asked for.
		if r.Offset < offset {
			continue
		}
		key, err := readBytes(r.Key)
		if err != nil {
			return offset, false, fmt.Errorf("decode record key: %w", err)
		}
		value, err := readBytes(r.Value)
		if err != nil {
			return offset, false, fmt.Errorf("decode record value: %w", err)
		}
		d := delivery{gen: gen, rec: chat.Record{
			Topic:     c.cfg.Topic,
			Partition: p,
			Offset:    r.Offset,
			Key:       key,
			Value:     value,
		}}
		select {
		case c.recs <- d:
		case <-ctx.Done():
			return offset, false, ctx.Err()
		}
		offset = r.Offset + 1
	}
}

// clampOffset returns the offset nearest to offset that partition p holds.
func (c *consumer) clampOffset(ctx context.Context, p int, offset int64) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, c.bus.cfg.DialTimeout)
	defer cancel()
	res, err := c.bus.client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{
		Topics: map[string][]kafkago.OffsetRequest{c.cfg.Topic: {kafkago.FirstOffsetOf(p), kafkago.LastOffsetOf(p)}},
	})
	if err != nil {
		return 0, err
	}
	for _, po := range res.Topics[c.cfg.Topic] {
		if po.Partition != p {
			continue
		}
		if po.Error != nil {
			return 0, po.Error
		}
		return min(max(offset, po.FirstOffset), po.LastOffset), nil
	}
	return 0, fmt.Errorf("list offsets: no answer for partition %d", p)
}

// readBytes reads a record's key or value; nil stays nil.
func readBytes(b kafkago.Bytes) ([]byte, error) {
	if b == nil {
		return nil, nil
	}
	defer b.Close()
	return io.ReadAll(b)
}
