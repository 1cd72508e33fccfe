// Package repository is chat.Store on MongoDB: the shared store of the
// distributed mode, where several instances' persist stages write to one
// database. The embedded single-node default lives in repository/bolt.
//
// It uses only what MongoDB has offered for a decade and FerretDB (the wire
// server Parley's tests run against, see repository/ferretdb) also has: unique
// indexes, ordered inserts that report per-document write errors, and sorted,
// limited finds. No transactions and no change streams.
package repository

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
	"golang.org/x/sync/singleflight"

	"github.com/parley-chat/parley/app/chat"
)

// Collection and index names.
const (
	messagesColl = "messages"
	roomsColl    = "rooms"

	// roomSeqIndex makes (room, seq) unique: of several writers racing for a
	// room's next seq exactly one wins, the others get a duplicate-key error.
	roomSeqIndex = "room_seq_unique"
	// roomUserIDIndex makes (room, user, id) unique, the idempotency key: a
	// redelivered message cannot be stored a second time under another seq,
	// while another user's message under the same id is another message.
	roomUserIDIndex = "room_user_id_unique"
	// legacyRoomIDIndex made (room, id) unique, which let one user's message
	// stand in for another's under the same id: acknowledged, never stored.
	// Open drops it (see createIndexes).
	legacyRoomIDIndex = "room_id_unique"
	// roomTargetSeqIndex serves ItemsAbout: a room's lifecycle items by
	// the message they are about, in seq order (see lifecycle.go).
	roomTargetSeqIndex = "room_target_seq"
)

const (
	// insertChunk bounds one InsertMany. FerretDB 1.24 inserts in batches of
	// 100 and, after a duplicate key in one of them, goes on with the next
	// batch even for an ordered insert; MongoDB stops at the first error as
	// documented. With at most 100 documents per call both stop there, which
	// the no-gap argument in appendRoom depends on.
	insertChunk = 100
	// maxConflicts bounds how often in a row one Append may lose the race for
	// a room's next seq without placing a message. Each loss means another
	// writer placed one, so the room progresses; hitting this means a storm of
	// writers on one room, and the caller retries the whole batch.
	maxConflicts = 64
	// roomsParallel bounds the concurrent per-room reads of a room list
	// (see inParallel).
	roomsParallel = 8
	// duplicateKeyCode is the server's E11000 duplicate key error.
	duplicateKeyCode = 11000
	// indexNotFoundCode and namespaceNotFoundCode answer dropping an index
	// that is not there, or from a collection that is not.
	indexNotFoundCode     = 27
	namespaceNotFoundCode = 26
)

// Store is chat.Store on MongoDB. It is safe for concurrent use, and several
// Stores (in several processes) may write to one database at once: every
// invariant of the interface is held by the server's unique indexes, not by
// anything in this process.
type Store struct {
	client   *mongo.Client
	probe    *mongo.Client // Ping's own connection (see Ping)
	pings    singleflight.Group
	messages *mongo.Collection
	rooms    *mongo.Collection
	names    *mongo.Collection // see people.go
	revoked  *mongo.Collection
	members  *mongo.Collection // see rooms.go
	reads    *mongo.Collection // see marks.go
	mentions *mongo.Collection

	notifications *mongo.Collection // see notify.go
	pushSubs      *mongo.Collection
	deliveries    *mongo.Collection
	claims        *mongo.Collection

	// lostRaces counts inserts that failed on a duplicate key: another
	// writer took the seq or stored the message first. Worth a metric later.
	lostRaces atomic.Int64

	// lastSeqs remembers, per room, the highest seq this Store stored or
	// read, so that the next Append to the room inserts at once instead of
	// first reading the highest stored seq (a sorted read, which FerretDB
	// answers with a scan of the room). It never runs ahead of the room's
	// last seq (which retention does not lower, see LastSeq), so at worst it
	// is stale: another writer stored more meanwhile, the insert collides on
	// (room, seq) and the highest seq is read as before.
	lastSeqs sync.Map // room -> int64

	// beforeInsert, when set (by tests only), runs right before each
	// InsertMany of appendRoom, where a racing writer could strike.
	beforeInsert func(ctx context.Context, room string, firstSeq int64, n int)
}

var _ chat.Store = (*Store)(nil)

// messageDoc is a message as stored. The driver adds an ObjectID _id; ts is
// a BSON date, so that mongosh date queries and the TTL index of retention
// can use it. The wire keeps chat.TSLayout strings: the conversion happens
// here, at the store's edge, and round-trips exactly (both hold
// milliseconds, in UTC).
type messageDoc struct {
	Room string    `bson:"room"`
	Seq  int64     `bson:"seq"`
	ID   string    `bson:"id"`
	User string    `bson:"user"`
	Text string    `bson:"text"`
	TS   time.Time `bson:"ts"`
	// Guest is stored only when true.
	Guest bool `bson:"guest,omitempty"`
	// Kind and Data are a timeline item's (v2), absent on a plain message.
	// Data is the chat.ItemData as its JSON, the wire's own encoding, so that
	// it reads back exactly as it was published: a nil pointer and a pointer
	// to "" or 0 stay apart, which a BSON mapping would have to be taught.
	Kind string `bson:"kind,omitempty"`
	Data string `bson:"data,omitempty"`
	// Target is a lifecycle item's target seq (Data's too), kept at the top
	// so that ItemsAbout can use the {room, target, seq} index; absent on
	// any other item. ReplyTo is a message's reply_to; Deleted marks a
	// message a delete erased (see erase). Both are absent unless set.
	Target  int64 `bson:"target,omitempty"`
	ReplyTo int64 `bson:"reply_to,omitempty"`
	Deleted bool  `bson:"deleted,omitempty"`
	// Mentions and Events are the persist stage's stamps (v2): the members
	// the text names, and the room's event count up to this item, which the
	// wire leaves out and counts read back (see chat.Marks).
	Mentions []string `bson:"mentions,omitempty"`
	Events   int64    `bson:"events,omitempty"`
}

// newMessageDoc converts m for storing under seq. A ts that is no timestamp
// (the domain always makes one; a record from elsewhere may not) is stored
// as the string it is, as older versions stored every ts: refusing it would
// make the persist stage retry the batch forever, and a substitute date
// would read back differently from what was published. Such a message never
// expires.
func newMessageDoc(m chat.Message, seq int64) any {
	data := encodeData(m.Data)
	t, err := parseTS(m.TS)
	if err != nil {
		return stringTSDoc{Room: m.Room, Seq: seq, ID: m.ID, User: m.User, Text: m.Text, TS: m.TS, Guest: m.Guest, Kind: m.Kind, Data: data,
			Target: m.Target(), ReplyTo: m.ReplyTo, Deleted: m.Deleted, Mentions: m.Mentions, Events: m.Events}
	}
	return messageDoc{Room: m.Room, Seq: seq, ID: m.ID, User: m.User, Text: m.Text, TS: t, Guest: m.Guest, Kind: m.Kind, Data: data,
		Target: m.Target(), ReplyTo: m.ReplyTo, Deleted: m.Deleted, Mentions: m.Mentions, Events: m.Events}
}

// encodeData is the data field of an item: "" (not stored) for none.
func encodeData(d *chat.ItemData) string {
	if d == nil {
		return ""
	}
	b, _ := json.Marshal(d) // an ItemData's fields always encode
	return string(b)
}

// stringTSDoc is the document of older versions, whose ts was a string.
type stringTSDoc struct {
	Room  string `bson:"room"`
	Seq   int64  `bson:"seq"`
	ID    string `bson:"id"`
	User  string `bson:"user"`
	Text  string `bson:"text"`
	TS    string `bson:"ts"`
	Guest bool   `bson:"guest,omitempty"`
	Kind  string `bson:"kind,omitempty"`
	Data  string `bson:"data,omitempty"`
	// As in messageDoc.
	Target   int64    `bson:"target,omitempty"`
	ReplyTo  int64    `bson:"reply_to,omitempty"`
	Deleted  bool     `bson:"deleted,omitempty"`
	Mentions []string `bson:"mentions,omitempty"`
	Events   int64    `bson:"events,omitempty"`
}

// parseTS reads a wire timestamp: chat.TSLayout, or any RFC 3339 time
// (which older versions never wrote, but costs nothing to accept).
func parseTS(s string) (time.Time, error) {
	if t, err := time.Parse(chat.TSLayout, s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// storedDoc is a message as read back. Its ts may still be a string: a
// document an older instance wrote after this one's migration ran (a rolling
// upgrade), which the next Open converts; until then it reads as it was.
type storedDoc struct {
	Room  string        `bson:"room"`
	Seq   int64         `bson:"seq"`
	ID    string        `bson:"id"`
	User  string        `bson:"user"`
	Text  string        `bson:"text"`
	TS    bson.RawValue `bson:"ts"`
	Guest bool          `bson:"guest,omitempty"`
	Kind  string        `bson:"kind,omitempty"`
	Data  string        `bson:"data,omitempty"`
	// Absent (0, false, nil) on documents older versions wrote. Target is
	// not read back: Data holds it too.
	ReplyTo  int64    `bson:"reply_to,omitempty"`
	Deleted  bool     `bson:"deleted,omitempty"`
	Mentions []string `bson:"mentions,omitempty"`
	Events   int64    `bson:"events,omitempty"`
}

// message is the stored message. Only an item's data can fail to read: a
// document this code did not write.
func (d storedDoc) message() (chat.Message, error) {
	m := chat.Message{Room: d.Room, Seq: d.Seq, ID: d.ID, User: d.User, Text: d.Text, Guest: d.Guest, Kind: d.Kind,
		ReplyTo: d.ReplyTo, Deleted: d.Deleted, Mentions: d.Mentions, Events: d.Events}
	if ms, ok := d.TS.DateTimeOK(); ok {
		m.TS = chat.Timestamp(time.UnixMilli(ms))
	} else if s, ok := d.TS.StringValueOK(); ok {
		m.TS = s
	}
	if d.Data != "" {
		m.Data = new(chat.ItemData)
		if err := json.Unmarshal([]byte(d.Data), m.Data); err != nil {
			return chat.Message{}, fmt.Errorf("message %q of room %q at seq %d: decode data: %w", d.ID, d.Room, d.Seq, err)
		}
	}
	return m, nil
}

// messageFields reads back a message without the _id nobody needs.
var messageFields = bson.D{
	{Key: "_id", Value: 0}, {Key: "room", Value: 1}, {Key: "seq", Value: 1}, {Key: "id", Value: 1},
	{Key: "user", Value: 1}, {Key: "text", Value: 1}, {Key: "ts", Value: 1}, {Key: "guest", Value: 1},
	{Key: "kind", Value: 1}, {Key: "data", Value: 1}, {Key: "reply_to", Value: 1}, {Key: "deleted", Value: 1},
	{Key: "mentions", Value: 1}, {Key: "events", Value: 1},
}

// Open connects to the MongoDB at uri, checks that it answers and creates the
// indexes (creating an index that exists is a no-op, so every instance may do
// it at start), dropping the one an older version used instead, and converts
// the string ts of older versions' documents to dates (see migrateTS). The
// store uses database db. Retention is set apart, by SetRetention.
//
// Writes are acknowledged by a majority unless the uri sets w: a message the
// persist stage has published must not be rolled back by a primary failover,
// which would free its seq for another message.
func Open(ctx context.Context, uri, db string) (*Store, error) {
	return open(ctx, uri, db, monitors{})
}

// monitors watch the store's pool and Ping's commands (tests; nil: none).
type monitors struct {
	pool  *event.PoolMonitor
	probe *event.CommandMonitor
}

func open(ctx context.Context, uri, db string, mon monitors) (*Store, error) {
	if uri == "" || db == "" {
		return nil, errors.New("open mongo store: uri and database name are required")
	}
	opts := options.Client().ApplyURI(uri)
	if opts.WriteConcern == nil {
		opts.SetWriteConcern(writeconcern.Majority())
	}
	if opts.AppName == nil {
		opts.SetAppName("parley")
	}
	if mon.pool != nil {
		opts.SetPoolMonitor(mon.pool)
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("open mongo store: connect: %w", err)
	}
	popts := options.Client().ApplyURI(uri).SetAppName("parley-probe").SetMaxPoolSize(1)
	if mon.probe != nil {
		popts.SetMonitor(mon.probe)
	}
	probe, err := mongo.Connect(popts)
	if err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("open mongo store: connect: %w", err)
	}
	s := &Store{
		client:   client,
		probe:    probe,
		messages: client.Database(db).Collection(messagesColl),
		rooms:    client.Database(db).Collection(roomsColl),
		names:    client.Database(db).Collection(namesColl),
		revoked:  client.Database(db).Collection(revokedColl),
		members:  client.Database(db).Collection(membersColl),
		reads:    client.Database(db).Collection(readsColl),
		mentions: client.Database(db).Collection(mentionsColl),

		notifications: client.Database(db).Collection(notificationsColl),
		pushSubs:      client.Database(db).Collection(pushSubsColl),
		deliveries:    client.Database(db).Collection(deliveriesColl),
		claims:        client.Database(db).Collection(claimsColl),
	}
	if err := s.Ping(ctx); err != nil {
		s.disconnect(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("open mongo store: %w", err)
	}
	if err := s.createIndexes(ctx); err != nil {
		s.disconnect(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("open mongo store: %w", err)
	}
	if _, err := s.migrateTS(ctx); err != nil {
		s.disconnect(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("open mongo store: %w", err)
	}
	return s, nil
}

func (s *Store) createIndexes(ctx context.Context) error {
	// {room, seq} also serves every history read, LastSeq and the next-seq
	// lookup (as a backward scan); {room, user, id} serves the redelivery
	// lookup.
	//
	// One command per index: FerretDB 1.24 panics (and drops the connection)
	// when one createIndexes command names two indexes that already exist,
	// which is what every start after the first would send.
	for _, m := range []mongo.IndexModel{
		{
			Keys:    bson.D{{Key: "room", Value: 1}, {Key: "seq", Value: 1}},
			Options: options.Index().SetName(roomSeqIndex).SetUnique(true),
		},
		{
			Keys:    bson.D{{Key: "room", Value: 1}, {Key: "user", Value: 1}, {Key: "id", Value: 1}},
			Options: options.Index().SetName(roomUserIDIndex).SetUnique(true),
		},
		{
			// ItemsAbout's lookup; every other document indexes as target
			// null, which no lookup asks for.
			Keys:    bson.D{{Key: "room", Value: 1}, {Key: "target", Value: 1}, {Key: "seq", Value: 1}},
			Options: options.Index().SetName(roomTargetSeqIndex),
		},
	} {
		if _, err := s.messages.Indexes().CreateOne(ctx, m); err != nil {
			return fmt.Errorf("create indexes on %s: %w", messagesColl, err)
		}
	}
	if _, err := s.revoked.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "at", Value: 1}}, Options: options.Index().SetName(revokedAtIndex),
	}); err != nil {
		return fmt.Errorf("create indexes on %s: %w", revokedColl, err)
	}
	if _, err := s.members.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "user", Value: 1}, {Key: "room", Value: 1}}, Options: options.Index().SetName(memberUserRoomIndex),
	}); err != nil {
		return fmt.Errorf("create indexes on %s: %w", membersColl, err)
	}
	// The marks' unique indexes make a repeated mark collide instead of
	// being stored twice (see marks.go); they also serve the marks' reads.
	if _, err := s.reads.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "room", Value: 1}, {Key: "user", Value: 1}, {Key: "seq", Value: 1}},
		Options: options.Index().SetName(readRoomUserIndex).SetUnique(true),
	}); err != nil {
		return fmt.Errorf("create indexes on %s: %w", readsColl, err)
	}
	if _, err := s.mentions.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "user", Value: 1}, {Key: "room", Value: 1}, {Key: "seq", Value: 1}},
		Options: options.Index().SetName(mentionRoomSeqIdx).SetUnique(true),
	}); err != nil {
		return fmt.Errorf("create indexes on %s: %w", mentionsColl, err)
	}
	for _, i := range s.notifyIndexes() {
		if _, err := i.coll.Indexes().CreateOne(ctx, i.model); err != nil {
			return fmt.Errorf("create indexes on %s: %w", i.coll.Name(), err)
		}
	}
	return s.dropLegacyIndex(ctx)
}

// dropLegacyIndex drops the (room, id) index of older versions, if it is
// there. It runs after the (room, user, id) index exists, never before, which
// is what makes it safe while instances of both versions write (a rolling
// upgrade):
//
//   - The new index can always be built on a collection the old one guarded:
//     (room, id) unique implies (room, user, id) unique.
//   - At no moment is there no idempotency index. Dropping first would open a
//     window in which a redelivery, by an instance of either version, is
//     stored a second time under a new seq; that duplicate would stay (seqs
//     are never reused, and only retention deletes) and make every later
//     creation of the new index fail, so no new instance could start.
//   - While both exist (between the two steps of one Open), the old one is
//     the stricter: an older instance works as it always did; a new one
//     storing another user's message under a stored id collides on it, finds
//     no stored message of that user, and retries until the old index is
//     gone, moments later (or fails the Append, which the persist stage
//     retries). Nothing is lost or stored twice.
//   - Once it is dropped, an older instance still running is held to (room,
//     user, id) too: its redeliveries (same user) still collide. Only the
//     bug being fixed remains there: it takes another user's message under a
//     stored id for a redelivery, as it always did.
//
// An older instance that restarts after the drop creates the (room, id) index
// again (or fails to, once two users share an id in a room); the next new
// instance to start drops it again. A rollout should not restart old ones.
func (s *Store) dropLegacyIndex(ctx context.Context) error {
	err := s.messages.Indexes().DropOne(ctx, legacyRoomIDIndex)
	var ce mongo.CommandError
	if err == nil || errors.As(err, &ce) && (ce.Code == indexNotFoundCode || ce.Code == namespaceNotFoundCode) {
		return nil
	}
	return fmt.Errorf("drop index %s of %s: %w", legacyRoomIDIndex, messagesColl, err)
}

// Append stores msgs, giving each new message its room's next seq.
//
// Append is idempotent rather than atomic: MongoDB has no multi-document
// atomicity without transactions (and FerretDB none at all). If it fails
// part-way, the messages it already placed stay stored, each with its final
// seq and still gapless; calling Append again with the same batch (as the
// persist stage does, since it commits only after a successful Append)
// returns exactly the seqs the first call would have and stores nothing
// twice.
func (s *Store) Append(ctx context.Context, msgs []chat.Message) ([]chat.Message, error) {
	out := make([]chat.Message, len(msgs))
	var order []string // rooms in order of first appearance
	byRoom := map[string][]int{}
	for i, m := range msgs {
		if m.Room == "" || m.User == "" || m.ID == "" {
			return nil, chat.Errorf(chat.EBadRequest, "message %d of the batch has no room, no user or no id", i)
		}
		if _, ok := byRoom[m.Room]; !ok {
			order = append(order, m.Room)
		}
		byRoom[m.Room] = append(byRoom[m.Room], i)
	}
	for _, room := range order {
		if err := s.appendRoom(ctx, room, msgs, byRoom[room], out); err != nil {
			return nil, fmt.Errorf("append to room %q: %w", room, err)
		}
		// After the insert, not before: a crash in between leaves the
		// delete stored and its erasure undone, and the redelivery (the
		// persist stage commits only after Append) finds the stored delete
		// and erases then.
		if err := s.applyLifecycles(ctx, room, byRoom[room], out); err != nil {
			return nil, fmt.Errorf("append to room %q: %w", room, err)
		}
	}
	return out, nil
}

// appendRoom stores the messages msgs[idx] (all of one room) and fills their
// places in out.
//
// Why this is safe with several writers on one room and no transactions:
//
//   - One seq, one message: the unique (room, seq) index. A writer that read
//     a stale highest seq collides on insert and rereads.
//   - One message, one seq: the unique (room, user, id) index. A redelivered
//     message collides on insert; the lookup that follows every collision
//     finds the stored one, which is returned: first text, first seq. That
//     lookup matches on user and id both, as the index does: another user's
//     message under the same id is not a redelivery and gets its own seq.
//   - No gap: a seq s is only ever inserted when s-1 is or was stored. The
//     first document of an insert gets the room's last seq + 1 (LastSeq: the
//     highest stored seq, or the higher one retention recorded before
//     deleting it), so its predecessor exists or expired; every later document of the
//     same ordered insert is only attempted once the one before it, holding
//     s-1, went in (ordered inserts stop at the first failing document — see
//     insertChunk for the one FerretDB caveat). A failure therefore leaves a
//     stored prefix of the chunk, and the retry continues above whatever is
//     now the highest seq, whoever wrote it.
//
// A racing writer can interleave its messages with ours in seq order; that
// happens only when one room's records are being persisted by two instances
// at once (a Kafka partition moving mid-flight), where both hold the same
// records anyway.
func (s *Store) appendRoom(ctx context.Context, room string, msgs []chat.Message, idx []int, out []chat.Message) error {
	// A batch may hold one message twice (a client retry close behind the
	// original: same user, same id): only the first is a candidate; the
	// others copy its result. Two users' messages under one id are both
	// candidates.
	first := make(map[msgKey]int, len(idx))
	pending := make([]int, 0, len(idx))
	for _, i := range idx {
		if _, ok := first[keyOf(msgs[i])]; !ok {
			first[keyOf(msgs[i])] = i
			pending = append(pending, i)
		}
	}

	// The first insert is tried without looking for stored messages first:
	// new messages are the common case, and the (room, user, id) index turns
	// a redelivered one into a collision, after which every message still
	// pending is looked up at once.
	var (
		last      int64 // highest stored seq, read or advanced by our own inserts
		knowLast  bool  // last is current as far as this call knows: no reread
		recheck   bool  // look up pending ids before the next insert
		conflicts int   // collisions in a row that placed nothing
		hintTried bool  // lastSeqs was used once; after a collision, read the store
	)
	for len(pending) > 0 {
		if recheck {
			// Messages of this batch that are stored already: a redelivery,
			// a retried Append, or a racing writer that just stored them.
			// (One query per collision, not per message.)
			found, err := s.storedByKey(ctx, room, msgs, pending)
			if err != nil {
				return err
			}
			pending = slices.DeleteFunc(pending, func(i int) bool {
				m, ok := found[keyOf(msgs[i])]
				if ok {
					out[i] = m
				}
				return ok
			})
			if len(found) > 0 {
				conflicts = 0 // resolving stored ids is progress too
			}
			if len(pending) == 0 {
				break
			}
			recheck = false
		}
		if !knowLast {
			if v, ok := s.lastSeqs.Load(room); ok && !hintTried {
				last = v.(int64)
			} else {
				var err error
				if last, err = s.LastSeq(ctx, room); err != nil {
					return err
				}
				s.rememberLast(room, last)
			}
			knowLast, hintTried = true, true
		}
		if last == 0 {
			// The room's entry goes in before its first message, so Rooms
			// lists every room that has messages even if we crash right after.
			if err := s.EnsureRoom(ctx, room); err != nil {
				return err
			}
		}

		chunk := pending[:min(len(pending), insertChunk)]
		docs := make([]any, len(chunk))
		for k, i := range chunk {
			docs[k] = newMessageDoc(msgs[i], last+1+int64(k))
		}
		placed := len(chunk)
		if s.beforeInsert != nil {
			s.beforeInsert(ctx, room, last+1, len(chunk))
		}
		_, err := s.messages.InsertMany(ctx, docs, options.InsertMany().SetOrdered(true))
		if err != nil {
			at, ok := firstDuplicate(err)
			if !ok {
				// Anything but a lost race: a prefix of the chunk may be
				// stored; a retried Append collides with it and returns it.
				return fmt.Errorf("insert messages: %w", err)
			}
			// Documents before the failing one are stored with their seqs.
			// The failing one lost a race: for its seq (another writer took
			// it) or for its (user, id) (another writer stored it). Reread
			// both.
			placed = at
			recheck, knowLast = true, false
			s.lostRaces.Add(1)
		}
		for k, i := range chunk[:placed] {
			m := msgs[i]
			m.Seq = last + 1 + int64(k)
			out[i] = m
		}
		pending = pending[placed:]
		last += int64(placed)
		if placed > 0 {
			s.rememberLast(room, last)
			// The room keeps its last seq too, for when retention has
			// deleted every message: LastSeq must not go back to 0.
			if err := s.recordLast(ctx, room, last); err != nil {
				return err
			}
		}

		if placed > 0 {
			conflicts = 0
		} else if err != nil {
			conflicts++
			if conflicts >= maxConflicts {
				return fmt.Errorf("insert messages: lost the race for the next seq %d times in a row", conflicts)
			}
			if err := backoff(ctx, conflicts); err != nil {
				return err
			}
		}
	}

	for _, i := range idx {
		if j := first[keyOf(msgs[i])]; j != i {
			out[i] = out[j]
		}
	}
	return nil
}

// rememberLast records that room holds seq last (see Store.lastSeqs); a
// lower value never replaces a higher one.
func (s *Store) rememberLast(room string, last int64) {
	for {
		v, loaded := s.lastSeqs.LoadOrStore(room, last)
		if !loaded || v.(int64) >= last || s.lastSeqs.CompareAndSwap(room, v, last) {
			return
		}
	}
}

// firstDuplicate returns the batch index of the first document an ordered
// InsertMany failed on, if that failure is a duplicate key (a lost race) and
// the write concern was met.
func firstDuplicate(err error) (int, bool) {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return 0, false
	}
	first := slices.MinFunc(bwe.WriteErrors, func(a, b mongo.BulkWriteError) int { return cmp.Compare(a.Index, b.Index) })
	if first.Code != duplicateKeyCode {
		return 0, false
	}
	return first.Index, true
}

// backoff waits a little after the n-th lost race in a row, so writers that
// keep colliding on one room spread out.
func backoff(ctx context.Context, n int) error {
	if n < 3 {
		return nil
	}
	d := time.Duration(1+rand.IntN(min(n, 20))) * time.Millisecond
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// msgKey is what identifies a message within its room: the idempotency key
// less the room.
type msgKey struct{ user, id string }

func keyOf(m chat.Message) msgKey { return msgKey{m.User, m.ID} }

// storedByKey returns the stored messages of room that are, by user and id,
// among msgs[idx].
func (s *Store) storedByKey(ctx context.Context, room string, msgs []chat.Message, idx []int) (map[msgKey]chat.Message, error) {
	// One clause per user, each with that user's ids: exact, and each clause
	// is a range of the {room, user, id} index. A batch mostly holds few
	// users, often one, and then there is no $or at all.
	byUser := map[string][]string{}
	var users []string
	for _, i := range idx {
		m := msgs[i]
		if _, ok := byUser[m.User]; !ok {
			users = append(users, m.User)
		}
		byUser[m.User] = append(byUser[m.User], m.ID)
	}
	clauses := make(bson.A, len(users))
	for k, u := range users {
		clauses[k] = bson.D{{Key: "user", Value: u}, {Key: "id", Value: bson.D{{Key: "$in", Value: byUser[u]}}}}
	}
	filter := bson.D{{Key: "room", Value: room}}
	if len(clauses) == 1 {
		filter = append(filter, clauses[0].(bson.D)...)
	} else {
		filter = append(filter, bson.E{Key: "$or", Value: clauses})
	}
	cur, err := s.messages.Find(ctx, filter, options.Find().SetProjection(messageFields))
	if err != nil {
		return nil, fmt.Errorf("look up stored messages: %w", err)
	}
	var docs []storedDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("look up stored messages: %w", err)
	}
	found := make(map[msgKey]chat.Message, len(docs))
	for _, d := range docs {
		m, err := d.message()
		if err != nil {
			return nil, fmt.Errorf("look up stored messages: %w", err)
		}
		found[msgKey{d.User, d.ID}] = m
	}
	return found, nil
}

// Messages returns one page of room's history, ascending by seq. It reads
// one more message than asked to learn whether more lie beyond the page.
func (s *Store) Messages(ctx context.Context, room string, q chat.Query) (chat.Page, error) {
	if q.Limit < 1 {
		return chat.Page{}, chat.Errorf(chat.EBadRequest, "limit must be at least 1")
	}
	if q.Seq < 0 {
		return chat.Page{}, chat.Errorf(chat.EBadRequest, "seq must not be negative")
	}
	filter := bson.D{{Key: "room", Value: room}}
	dir := -1 // Latest and Before read backwards from the newest end
	switch q.Kind {
	case chat.Latest:
	case chat.Before:
		filter = append(filter, bson.E{Key: "seq", Value: bson.D{{Key: "$lt", Value: q.Seq}}})
	case chat.After:
		filter = append(filter, bson.E{Key: "seq", Value: bson.D{{Key: "$gt", Value: q.Seq}}})
		dir = 1
	default:
		return chat.Page{}, chat.Errorf(chat.EBadRequest, "unknown query kind %d", q.Kind)
	}
	cur, err := s.messages.Find(ctx, filter, options.Find().
		SetSort(bson.D{{Key: "seq", Value: dir}}).
		SetLimit(int64(q.Limit)+1).
		SetProjection(messageFields))
	if err != nil {
		return chat.Page{}, fmt.Errorf("read history of room %q: %w", room, err)
	}
	var docs []storedDoc
	if err := cur.All(ctx, &docs); err != nil {
		return chat.Page{}, fmt.Errorf("read history of room %q: %w", room, err)
	}
	page := chat.Page{HasMore: len(docs) > q.Limit, Messages: make([]chat.Message, 0, min(len(docs), q.Limit))}
	docs = docs[:min(len(docs), q.Limit)]
	if dir < 0 {
		slices.Reverse(docs)
	}
	for _, d := range docs {
		m, err := d.message()
		if err != nil {
			return chat.Page{}, fmt.Errorf("read history of room %q: %w", room, err)
		}
		page.Messages = append(page.Messages, m)
	}
	return page, nil
}

// EnsureRoom records room in the rooms collection (_id = room name).
func (s *Store) EnsureRoom(ctx context.Context, room string) error {
	_, err := s.rooms.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: room}},
		bson.D{{Key: "$setOnInsert", Value: bson.D{{Key: "created", Value: time.Now().UTC()}}}},
		options.UpdateOne().SetUpsert(true))
	// Two upserts of one new room can race; the loser's duplicate key on _id
	// means the room exists, which is all we want.
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("ensure room %q: %w", room, err)
	}
	return nil
}

// LastSeq reads the room's last seq: the highest of its stored seq and the
// last seq its room document records (appendRoom raises it after each
// insert, Sweep before each delete). The messages alone would go back when
// retention deletes a room's newest ones, and the record alone could lag
// them (an insert whose record failed), so it takes both.
func (s *Store) LastSeq(ctx context.Context, room string) (int64, error) {
	top, err := s.topSeq(ctx, room)
	if err != nil {
		return 0, err
	}
	var r struct {
		Last int64 `bson:"last"`
	}
	err = s.rooms.FindOne(ctx, bson.D{{Key: "_id", Value: room}},
		options.FindOne().SetProjection(bson.D{{Key: "last", Value: 1}})).Decode(&r)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return 0, fmt.Errorf("read last seq of room %q: %w", room, err)
	}
	return max(top, r.Last), nil
}

// topSeq reads the room's highest stored seq, 0 if it has no messages.
func (s *Store) topSeq(ctx context.Context, room string) (int64, error) {
	var d struct {
		Seq int64 `bson:"seq"`
	}
	err := s.messages.FindOne(ctx, bson.D{{Key: "room", Value: room}}, options.FindOne().
		SetSort(bson.D{{Key: "seq", Value: -1}}).
		SetProjection(bson.D{{Key: "_id", Value: 0}, {Key: "seq", Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read last seq of room %q: %w", room, err)
	}
	return d.Seq, nil
}

// Rooms lists one page of the rooms collection by name (_id), each with its
// last seq as LastSeq reads it: the room document's record and the messages'
// highest seq (one index lookup per room, a few at a time). A room that has messages is always listed: appendRoom records the
// room before its first message.
func (s *Store) Rooms(ctx context.Context, q chat.RoomQuery) (chat.RoomPage, error) {
	if q.Limit < 1 {
		return chat.RoomPage{}, chat.Errorf(chat.EBadRequest, "limit must be at least 1")
	}
	filter := bson.D{}
	if q.After != "" {
		filter = bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: q.After}}}}
	}
	cur, err := s.rooms.Find(ctx, filter, options.Find().
		SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "last", Value: 1}}).
		SetSort(bson.D{{Key: "_id", Value: 1}}).
		SetLimit(int64(q.Limit)+1))
	if err != nil {
		return chat.RoomPage{}, fmt.Errorf("list rooms: %w", err)
	}
	var docs []struct {
		Room string `bson:"_id"`
		Last int64  `bson:"last"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return chat.RoomPage{}, fmt.Errorf("list rooms: %w", err)
	}
	// By name, in byte order, whatever collation the server sorts with.
	slices.SortFunc(docs, func(a, b struct {
		Room string `bson:"_id"`
		Last int64  `bson:"last"`
	}) int {
		return cmp.Compare(a.Room, b.Room)
	})
	page := chat.RoomPage{More: len(docs) > q.Limit}
	docs = docs[:min(len(docs), q.Limit)]
	rooms := make([]chat.RoomInfo, len(docs))
	err = inParallel(len(docs), func(i int) error {
		rooms[i].Room = docs[i].Room
		top, err := s.topSeq(ctx, docs[i].Room)
		rooms[i].LastSeq = max(top, docs[i].Last)
		return err
	})
	if err != nil {
		return chat.RoomPage{}, fmt.Errorf("list rooms: %w", err)
	}
	page.Rooms = rooms
	return page, nil
}

// inParallel runs fn(0) ... fn(n-1), at most roomsParallel at a time, and
// returns their errors joined. The per-room reads of a room list are
// independent point lookups: run one after another, a page would cost the
// sum of their round trips.
func inParallel(n int, fn func(i int) error) error {
	errs := make([]error, n)
	sem := make(chan struct{}, roomsParallel)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = fn(i)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Ping asks the primary for a ping (writes go there) on a connection of
// its own, a client with a pool of one: /readyz asks whether the store
// answers, and under load every connection of the store's pool can be busy
// with slow operations, so that a ping waiting for one of them timed out
// and took the instance out of service while the store still answered.
// Concurrent calls share one ping (a crowd of clients asking /readyz at
// once would otherwise queue on that one connection); each waits for it
// at most until its ctx ends.
func (s *Store) Ping(ctx context.Context) error {
	ch := s.pings.DoChan("ping", func() (any, error) {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pingTimeout)
		defer cancel()
		return nil, s.probe.Ping(pctx, readpref.Primary())
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return fmt.Errorf("ping mongo: %w", r.Err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ping mongo: %w", ctx.Err())
	}
}

// pingTimeout bounds a shared ping; a caller with less time left stops
// waiting sooner.
const pingTimeout = 5 * time.Second

// Close disconnects, waiting up to 10 s for operations in flight.
func (s *Store) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := errors.Join(s.client.Disconnect(ctx), s.probe.Disconnect(ctx)); err != nil {
		return fmt.Errorf("close mongo store: %w", err)
	}
	return nil
}

// disconnect lets go of both clients after a failed Open.
func (s *Store) disconnect(ctx context.Context) {
	_ = s.client.Disconnect(ctx)
	_ = s.probe.Disconnect(ctx)
}
