package repository

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parley-chat/parley/app/chat"
)

const (
	// tsIndex is the index on messages.ts: with retention on, a TTL index
	// (MongoDB deletes what is older than expireAfterSeconds, about once a
	// minute), or a plain index where the server has no TTL indexes
	// (FerretDB 1.24 answers NotImplemented), serving Sweep instead.
	tsIndex = "ts_ttl"
	// migrateWrite bounds one bulk write of the migration. FerretDB 1.24
	// takes longer per update the more a bulk holds, and a bulk of 100
	// updates did not finish within a minute; 16 cost about what 16 single
	// updates do.
	migrateWrite = 16
	// notImplementedCode is what FerretDB answers an option it lacks.
	notImplementedCode = 238
)

// migrateBatch bounds one round of the ts migration and one round of Sweep:
// one find of at most this many documents. (A variable for the tests.)
var migrateBatch int64 = 1000

var _ chat.Sweeper = (*Store)(nil)

// migrateTS converts the ts of documents older versions wrote, a string, to
// a date. It walks the string-ts documents in _id order, a batch at a time,
// and updates each only if its ts is still the string it read: so it is
// idempotent, several instances may run it at once (each update applies at
// most once, whoever gets there first), and a crash leaves a prefix done
// that the next Open skips. A ts that does not parse stays a string (see
// newMessageDoc).
//
// It uses only a $type find, sorted and limited, and an unordered bulk of
// updateOne with $set, which FerretDB has; not $dateFromString in an update
// pipeline, which it has not.
func (s *Store) migrateTS(ctx context.Context) (int, error) {
	converted := 0
	var after any // last _id seen; nil before the first batch
	for {
		filter := bson.D{{Key: "ts", Value: bson.D{{Key: "$type", Value: "string"}}}}
		if after != nil {
			filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$gt", Value: after}}})
		}
		cur, err := s.messages.Find(ctx, filter, options.Find().
			SetSort(bson.D{{Key: "_id", Value: 1}}).
			SetLimit(migrateBatch).
			SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "ts", Value: 1}}))
		if err != nil {
			return converted, fmt.Errorf("migrate ts: %w", err)
		}
		var docs []struct {
			ID any    `bson:"_id"`
			TS string `bson:"ts"`
		}
		if err := cur.All(ctx, &docs); err != nil {
			return converted, fmt.Errorf("migrate ts: %w", err)
		}
		if len(docs) == 0 {
			return converted, nil
		}
		after = docs[len(docs)-1].ID
		var models []mongo.WriteModel
		for _, d := range docs {
			t, err := parseTS(d.TS)
			if err != nil {
				continue
			}
			models = append(models, mongo.NewUpdateOneModel().
				SetFilter(bson.D{{Key: "_id", Value: d.ID}, {Key: "ts", Value: d.TS}}).
				SetUpdate(bson.D{{Key: "$set", Value: bson.D{{Key: "ts", Value: t}}}}))
		}
		for chunk := range slices.Chunk(models, migrateWrite) {
			res, err := s.messages.BulkWrite(ctx, chunk, options.BulkWrite().SetOrdered(false))
			if err != nil {
				return converted, fmt.Errorf("migrate ts: %w", err)
			}
			converted += int(res.ModifiedCount)
		}
	}
}

// SetRetention makes the store keep messages for d, or for ever when d is 0:
// it creates the TTL index on ts with d's expireAfterSeconds, replacing a ts
// index made with another retention (or none), and with d = 0 drops it, so
// that turning retention off stops deletion whoever turned it on. Every
// instance should run with the same setting: each start sets the index to
// its own.
//
// Where the server has no TTL indexes (FerretDB), it creates a plain ts
// index instead and reports ttl false: then only Sweep deletes. Parley runs
// Sweep every minute whenever retention is on, on either server; on MongoDB
// it finds little, the server having deleted first.
func (s *Store) SetRetention(ctx context.Context, d time.Duration) (ttl bool, err error) {
	if d < 0 {
		return false, fmt.Errorf("set retention: %v is negative", d)
	}
	existing, err := s.tsIndexSpec(ctx)
	if err != nil {
		return false, fmt.Errorf("set retention: %w", err)
	}
	secs := int64(d / time.Second)
	if d > 0 && secs < 1 {
		secs = 1
	}
	if existing != nil && existing.TTL != nil && d > 0 && *existing.TTL == secs {
		return true, nil
	}
	if existing != nil {
		if err := s.messages.Indexes().DropOne(ctx, tsIndex); err != nil && !isIndexGone(err) {
			return false, fmt.Errorf("set retention: drop index %s: %w", tsIndex, err)
		}
	}
	if d == 0 {
		return false, nil
	}
	_, err = s.messages.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "ts", Value: 1}},
		Options: options.Index().SetName(tsIndex).SetExpireAfterSeconds(int32(min(secs, 1<<31-1))),
	})
	var ce mongo.CommandError
	if errors.As(err, &ce) && ce.Code == notImplementedCode {
		_, err = s.messages.Indexes().CreateOne(ctx, mongo.IndexModel{
			Keys: bson.D{{Key: "ts", Value: 1}}, Options: options.Index().SetName(tsIndex),
		})
		if err != nil {
			return false, fmt.Errorf("set retention: create index %s: %w", tsIndex, err)
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("set retention: create index %s: %w", tsIndex, err)
	}
	return true, nil
}

type indexSpec struct {
	Name string `bson:"name"`
	TTL  *int64 `bson:"expireAfterSeconds"`
}

// tsIndexSpec returns the ts index if there is one.
func (s *Store) tsIndexSpec(ctx context.Context) (*indexSpec, error) {
	cur, err := s.messages.Indexes().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list indexes of %s: %w", messagesColl, err)
	}
	var specs []indexSpec
	if err := cur.All(ctx, &specs); err != nil {
		return nil, fmt.Errorf("list indexes of %s: %w", messagesColl, err)
	}
	for _, sp := range specs {
		if sp.Name == tsIndex {
			return &sp, nil
		}
	}
	return nil, nil
}

func isIndexGone(err error) bool {
	var ce mongo.CommandError
	return errors.As(err, &ce) && (ce.Code == indexNotFoundCode || ce.Code == namespaceNotFoundCode)
}

// Sweep deletes the messages whose ts is before before, a batch at a time,
// and returns how many it deleted. Before deleting a batch it records each
// room's highest seq in the batch in the room's document, so that LastSeq
// never goes back when a room's newest messages go (seqs are never reused).
//
// Like the TTL index it goes by ts alone: the ts of two instances' messages
// need not follow their seqs exactly, so a message may go a moment before
// an older-seq neighbour. Messages whose ts is a string never go.
func (s *Store) Sweep(ctx context.Context, before time.Time) (int, error) {
	deleted := 0
	for {
		cur, err := s.messages.Find(ctx,
			bson.D{{Key: "ts", Value: bson.D{{Key: "$lt", Value: before}}}},
			options.Find().SetLimit(migrateBatch).
				SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "room", Value: 1}, {Key: "seq", Value: 1}}))
		if err != nil {
			return deleted, fmt.Errorf("sweep: %w", err)
		}
		var docs []struct {
			ID   any    `bson:"_id"`
			Room string `bson:"room"`
			Seq  int64  `bson:"seq"`
		}
		if err := cur.All(ctx, &docs); err != nil {
			return deleted, fmt.Errorf("sweep: %w", err)
		}
		if len(docs) == 0 {
			return deleted, nil
		}
		top := map[string]int64{}
		ids := make(bson.A, len(docs))
		for i, d := range docs {
			top[d.Room] = max(top[d.Room], d.Seq)
			ids[i] = d.ID
		}
		for room, seq := range top {
			if err := s.recordLast(ctx, room, seq); err != nil {
				return deleted, fmt.Errorf("sweep: %w", err)
			}
		}
		res, err := s.messages.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
		if err != nil {
			return deleted, fmt.Errorf("sweep: %w", err)
		}
		deleted += int(res.DeletedCount)
	}
}

// recordLast raises the room document's last seq to at least seq.
func (s *Store) recordLast(ctx context.Context, room string, seq int64) error {
	update := func() error {
		_, err := s.rooms.UpdateOne(ctx,
			bson.D{{Key: "_id", Value: room}},
			bson.D{
				{Key: "$max", Value: bson.D{{Key: "last", Value: seq}}},
				{Key: "$setOnInsert", Value: bson.D{{Key: "created", Value: time.Now().UTC()}}},
			},
			options.UpdateOne().SetUpsert(true))
		return err
	}
	err := update()
	if mongo.IsDuplicateKeyError(err) {
		// Another upsert created the room first: this one changed nothing,
		// and the room now exists for the retry to raise.
		err = update()
	}
	if err != nil {
		return fmt.Errorf("record last seq of room %q: %w", room, err)
	}
	return nil
}
