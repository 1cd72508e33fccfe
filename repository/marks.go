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

// Read positions and the mention index (chat.Marks) on MongoDB, two
// collections written by inserts only:
//
//	reads     {room, user, seq}: user has read room up to seq, unique on
//	          (room, user, seq). The position is the highest seq stored;
//	          each save inserts its seq and deletes the user's lower ones,
//	          so mostly one document is left
//	mentions  {user, room, seq, at}: the item at seq of room mentions user,
//	          unique on (user, room, seq), which also serves counting one
//	          user's mentions in one room between two seqs; at is when it
//	          was recorded, for a retention of the index later
//
// Why not one document per (room, user) raised with $max: FerretDB 1.24
// applies an update as a read and a write of its own, so concurrent $max
// (or conditional $set) updates of one document lose updates — measured: of
// eight concurrent raises to 1..8, the document kept anything from 1 to 8.
// Its unique-index inserts are exact (Append depends on them), and a
// delete of lower seqs can only ever remove a position already beaten, so
// racing saves (two persist stages holding one room's records for a
// moment) keep the highest on MongoDB and FerretDB alike. A repeated insert
// collides with itself on the unique index and changes nothing: SaveMarks
// is safe to retry.
const (
	readsColl         = "reads"
	mentionsColl      = "mentions"
	readRoomUserIndex = "room_user_seq_unique"
	mentionRoomSeqIdx = "user_room_seq_unique"
)

var _ chat.Marks = (*Store)(nil)

// SaveMarks implements chat.Marks with unordered bulk writes (two, unless
// the batch holds more than memberWrite of either): the reads, folded to
// the batch's highest per (room, user), each an insert and a delete of the
// lower ones; the mentions, each once, an insert. Duplicate keys are
// what a retry or a racing save leaves, and are no error.
func (s *Store) SaveMarks(ctx context.Context, reads []chat.ReadMark, mentions []chat.MentionMark) error {
	type readKey struct{ room, user string }
	highest := make(map[readKey]int64, len(reads))
	var readOrder []readKey
	for _, r := range reads {
		if r.Seq < 1 {
			continue // 0 is where everyone starts: nothing to record
		}
		k := readKey{r.Room, r.User}
		seq, ok := highest[k]
		if !ok {
			readOrder = append(readOrder, k)
		}
		highest[k] = max(seq, r.Seq)
	}
	readModels := make([]mongo.WriteModel, 0, 2*len(readOrder))
	for _, k := range readOrder {
		seq := highest[k]
		// Unordered, the delete may run first; then an older document
		// stays beside the new one until the next save: readers take the
		// highest anyway.
		readModels = append(readModels,
			mongo.NewInsertOneModel().SetDocument(bson.D{{Key: "room", Value: k.room}, {Key: "user", Value: k.user}, {Key: "seq", Value: seq}}),
			mongo.NewDeleteManyModel().SetFilter(bson.D{
				{Key: "room", Value: k.room}, {Key: "user", Value: k.user}, {Key: "seq", Value: bson.D{{Key: "$lt", Value: seq}}},
			}))
	}

	now := time.Now().UTC()
	seen := make(map[chat.MentionMark]bool, len(mentions))
	mentionModels := make([]mongo.WriteModel, 0, len(mentions))
	for _, m := range mentions {
		if m.Seq < 1 || seen[m] {
			continue // no item has seq 0; refusing would stall the batch's retries
		}
		seen[m] = true
		mentionModels = append(mentionModels, mongo.NewInsertOneModel().SetDocument(bson.D{
			{Key: "user", Value: m.User}, {Key: "room", Value: m.Room}, {Key: "seq", Value: m.Seq}, {Key: "at", Value: now},
		}))
	}

	if err := writeMarks(ctx, s.reads, readModels); err != nil {
		return fmt.Errorf("save read positions: %w", err)
	}
	if err := writeMarks(ctx, s.mentions, mentionModels); err != nil {
		return fmt.Errorf("save mentions: %w", err)
	}
	return nil
}

// writeMarks runs models on coll as unordered bulk writes of at most
// memberWrite each (a read's insert and delete may land in two: no matter,
// as above), taking duplicate keys for marks stored already.
func writeMarks(ctx context.Context, coll *mongo.Collection, models []mongo.WriteModel) error {
	for chunk := range slices.Chunk(models, memberWrite) {
		_, err := coll.BulkWrite(ctx, chunk, options.BulkWrite().SetOrdered(false))
		if err != nil && !onlyDuplicates(err) {
			return err
		}
	}
	return nil
}

// ReadSeqs implements chat.Marks with one find on the (room, user, seq)
// index, keeping each user's highest.
func (s *Store) ReadSeqs(ctx context.Context, room string, users []string) (map[string]int64, error) {
	out := make(map[string]int64, len(users))
	if len(users) == 0 {
		return out, nil
	}
	cur, err := s.reads.Find(ctx,
		bson.D{{Key: "room", Value: room}, {Key: "user", Value: bson.D{{Key: "$in", Value: users}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 0}, {Key: "user", Value: 1}, {Key: "seq", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("read seqs of room %q: %w", room, err)
	}
	var docs []struct {
		User string `bson:"user"`
		Seq  int64  `bson:"seq"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read seqs of room %q: %w", room, err)
	}
	for _, d := range docs {
		out[d.User] = max(out[d.User], d.Seq)
	}
	return out, nil
}

// Counts implements chat.Marks: one find for user's read positions in all
// of rooms; then, for the rooms with anything after the position, in
// chunks of countsChunk rooms, a few chunks at a time (inParallel), one
// find of the two items each room's count needs and one of the mentions
// between. A room read up to its LastSeq costs nothing more.
//
// Why chunks rather than a find per room: every find is a round trip, and
// FerretDB, which serves no read from an index, scans the whole collection
// for each; one find of a chunk's rooms (an $or of exact keys, each an
// index range on MongoDB) scans it once.
func (s *Store) Counts(ctx context.Context, user string, rooms []chat.RoomSummary) error {
	if len(rooms) == 0 {
		return nil
	}
	names := make([]string, len(rooms))
	for i, r := range rooms {
		names[i] = r.Room
	}
	cur, err := s.reads.Find(ctx,
		bson.D{{Key: "room", Value: bson.D{{Key: "$in", Value: names}}}, {Key: "user", Value: user}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 0}, {Key: "room", Value: 1}, {Key: "seq", Value: 1}}))
	if err != nil {
		return fmt.Errorf("counts of %q: read positions: %w", user, err)
	}
	var docs []struct {
		Room string `bson:"room"`
		Seq  int64  `bson:"seq"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return fmt.Errorf("counts of %q: read positions: %w", user, err)
	}
	positions := make(map[string]int64, len(docs))
	for _, d := range docs {
		positions[d.Room] = max(positions[d.Room], d.Seq)
	}
	var todo []*chat.RoomSummary // rooms with something after the read position
	for i := range rooms {
		rs := &rooms[i]
		rs.ReadSeq, rs.Unread, rs.Mentions = min(positions[rs.Room], rs.LastSeq), 0, 0
		if rs.ReadSeq < rs.LastSeq {
			todo = append(todo, rs)
		}
	}
	chunks := slices.Collect(slices.Chunk(todo, countsChunk))
	err = inParallel(len(chunks), func(i int) error { return s.countChunk(ctx, user, chunks[i]) })
	if err != nil {
		return fmt.Errorf("counts of %q: %w", user, err)
	}
	return nil
}

// countsChunk bounds the rooms of one find of Counts.
const countsChunk = 50

// countChunk fills Unread and Mentions of rooms, each with ReadSeq below
// LastSeq. A room appears once in a room list; should one appear twice,
// both entries get the counts of the first.
func (s *Store) countChunk(ctx context.Context, user string, rooms []*chat.RoomSummary) error {
	byRoom := make(map[string]*chat.RoomSummary, len(rooms))
	items := make(bson.A, 0, len(rooms))
	ranges := make(bson.A, 0, len(rooms))
	for _, rs := range rooms {
		if _, ok := byRoom[rs.Room]; ok {
			continue
		}
		byRoom[rs.Room] = rs
		items = append(items, bson.D{{Key: "room", Value: rs.Room}, {Key: "seq", Value: bson.D{{Key: "$in", Value: bson.A{rs.ReadSeq + 1, rs.LastSeq}}}}})
		ranges = append(ranges, bson.D{{Key: "room", Value: rs.Room}, {Key: "seq", Value: bson.D{{Key: "$gt", Value: rs.ReadSeq}, {Key: "$lte", Value: rs.LastSeq}}}})
	}

	// Mostly both items are there, at ReadSeq+1 and LastSeq; only a missing
	// one (deleted by retention, or LastSeq not yet visible) costs a sorted
	// find for the nearest, room by room.
	var found []edgeDoc
	if err := findAll(ctx, s.messages, bson.D{{Key: "$or", Value: items}}, edgeFields, &found); err != nil {
		return fmt.Errorf("read items: %w", err)
	}
	first := make(map[string]*chat.Message, len(byRoom))
	end := make(map[string]*chat.Message, len(byRoom))
	for i := range found {
		d := &found[i]
		rs := byRoom[d.Room]
		if rs == nil {
			continue
		}
		// Not a switch: ReadSeq+1 may be LastSeq.
		if d.Seq == rs.ReadSeq+1 {
			first[d.Room] = d.message()
		}
		if d.Seq == rs.LastSeq {
			end[d.Room] = d.message()
		}
	}
	for room, rs := range byRoom {
		f, e := first[room], end[room]
		var err error
		if f == nil {
			if f, err = s.nearest(ctx, room, rs.ReadSeq, rs.LastSeq, 1); err != nil {
				return err
			}
		}
		if f != nil && e == nil {
			if e, err = s.nearest(ctx, room, rs.ReadSeq, rs.LastSeq, -1); err != nil {
				return err
			}
		}
		rs.Unread = chat.UnreadBetween(f, e)
	}

	var marks []struct {
		Room string `bson:"room"`
	}
	err := findAll(ctx, s.mentions, bson.D{{Key: "user", Value: user}, {Key: "$or", Value: ranges}},
		bson.D{{Key: "_id", Value: 0}, {Key: "room", Value: 1}}, &marks)
	if err != nil {
		return fmt.Errorf("read mentions: %w", err)
	}
	for _, m := range marks {
		if rs := byRoom[m.Room]; rs != nil {
			rs.Mentions++
		}
	}
	for _, rs := range rooms {
		if o := byRoom[rs.Room]; o != rs {
			rs.Unread, rs.Mentions = o.Unread, o.Mentions
		}
	}
	return nil
}

// findAll decodes every document of coll matching filter, with projection,
// into out.
func findAll(ctx context.Context, coll *mongo.Collection, filter, projection bson.D, out any) error {
	cur, err := coll.Find(ctx, filter, options.Find().SetProjection(projection))
	if err != nil {
		return err
	}
	return cur.All(ctx, out)
}

// edgeDoc is what a count reads of an item.
type edgeDoc struct {
	Room   string `bson:"room"`
	Seq    int64  `bson:"seq"`
	Kind   string `bson:"kind"`
	Events int64  `bson:"events"`
}

var edgeFields = bson.D{{Key: "_id", Value: 0}, {Key: "room", Value: 1}, {Key: "seq", Value: 1}, {Key: "kind", Value: 1}, {Key: "events", Value: 1}}

func (d *edgeDoc) message() *chat.Message {
	return &chat.Message{Seq: d.Seq, Kind: d.Kind, Events: d.Events}
}

// nearest reads the item of room with seq in (read, last] nearest read
// (dir 1) or last (dir -1); nil when there is none.
func (s *Store) nearest(ctx context.Context, room string, read, last int64, dir int) (*chat.Message, error) {
	var d edgeDoc
	err := s.messages.FindOne(ctx,
		bson.D{{Key: "room", Value: room}, {Key: "seq", Value: bson.D{{Key: "$gt", Value: read}, {Key: "$lte", Value: last}}}},
		options.FindOne().SetSort(bson.D{{Key: "seq", Value: dir}}).SetProjection(edgeFields)).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("room %q: read an item in (%d, %d]: %w", room, read, last, err)
	}
	return d.message(), nil
}
