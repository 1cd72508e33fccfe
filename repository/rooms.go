package repository

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parley-chat/parley/app/chat"
)

// Rooms with members (chat.RoomStates) on MongoDB.
//
// A room's saved state lives in its rooms document (_id = room), beside the
// last seq Append records there:
//
//	state         the chat.RoomState as JSON: a member's name may hold a
//	              ".", which BSON field names do not take well
//	state_seq     its Seq, what a save is conditional on
//	kind, title,  what a room list shows, so that listing a room does not
//	topic, slow_mode_s   read its state
//	member_names  the members' names, an array: MemberRooms checks an index
//	              entry against it with an ordinary array match
//
// The index of the rooms each user is a member of is the members collection:
// {_id: room+"\x00"+user, room, user, role, seq}, with an index on (user,
// room); seq is the state seq of the save that wrote the entry. The
// directory is a find on rooms by kind.
//
// Without transactions a save is three writes, ordered so that a crash
// between any two cannot lose the entry of a member of the saved state (see
// SaveRoomState); what it can leave is an entry of a user the saved state
// does not list, which MemberRooms and Directory check for and drop.
const (
	membersColl         = "members"
	memberUserRoomIndex = "user_room"
	// memberWrite bounds one bulk write of index entries (see migrateWrite:
	// FerretDB 1.24 slows down with larger bulks).
	memberWrite = 16
)

var _ chat.RoomStates = (*Store)(nil)

// memberDoc is one entry of the members index.
type memberDoc struct {
	ID   string `bson:"_id"`
	Room string `bson:"room"`
	User string `bson:"user"`
	Role string `bson:"role"`
	Seq  int64  `bson:"seq"`
}

func memberKey(room, user string) string { return room + "\x00" + user }

// roomDoc is the part of a rooms document that a room list reads.
type roomDoc struct {
	Room      string `bson:"_id"`
	Last      int64  `bson:"last"`
	StateSeq  *int64 `bson:"state_seq"`
	Kind      string `bson:"kind"`
	Title     string `bson:"title"`
	Topic     string `bson:"topic"`
	SlowModeS int    `bson:"slow_mode_s"`
}

var roomDocFields = bson.D{
	{Key: "_id", Value: 1}, {Key: "last", Value: 1}, {Key: "state_seq", Value: 1}, {Key: "kind", Value: 1},
	{Key: "title", Value: 1}, {Key: "topic", Value: 1}, {Key: "slow_mode_s", Value: 1},
}

// RoomState implements chat.RoomStates.
func (s *Store) RoomState(ctx context.Context, room string) (chat.RoomState, error) {
	st, _, err := s.savedState(ctx, room)
	if err != nil {
		return chat.RoomState{}, fmt.Errorf("room state %q: %w", room, err)
	}
	return st, nil
}

// savedState reads room's saved state, NewRoomState(room) and false when
// none is saved.
func (s *Store) savedState(ctx context.Context, room string) (chat.RoomState, bool, error) {
	var d struct {
		State string `bson:"state"`
	}
	err := s.rooms.FindOne(ctx, bson.D{{Key: "_id", Value: room}},
		options.FindOne().SetProjection(bson.D{{Key: "state", Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) || err == nil && d.State == "" {
		return chat.NewRoomState(room), false, nil
	}
	if err != nil {
		return chat.RoomState{}, false, err
	}
	var st chat.RoomState
	if err := json.Unmarshal([]byte(d.State), &st); err != nil {
		return chat.RoomState{}, false, fmt.Errorf("decode saved state: %w", err)
	}
	return st, true, nil
}

// SaveRoomState implements chat.RoomStates in three steps, each conditional
// on seqs so that a second saver of the room (a Kafka partition moving
// mid-flight) cannot undo a newer save:
//
//  1. Upsert the index entries of the users who became members or changed
//     role since the saved state, each only over an entry of a lower seq.
//  2. Write the state, only over a saved state of a lower seq. An upsert
//     that collides on _id means a newer state is saved: done.
//  3. Delete the entries of the users no longer members, each only if no
//     newer save rewrote it.
//
// Why this order: only the changes are written (a public room may have
// thousands of members, all unchanged), so the entry of a member of the
// saved state must never go missing — a later save sees no change for that
// member and would not write it again. Entries are written before the state
// that lists their users and deleted only after a state that does not; a
// crash in between leaves an entry too many (a user added in a state never
// saved, or removed in one whose deletes did not run), never one too few.
// Readers check entries against the saved state, and MemberRooms deletes
// the ones it proves stale.
//
// A state at seq 0 is what a room without a saved state already has, so it
// is never saved.
func (s *Store) SaveRoomState(ctx context.Context, st chat.RoomState) error {
	if st.Room == "" {
		return chat.Errorf(chat.EBadRequest, "save room state: no room")
	}
	old, _, err := s.savedState(ctx, st.Room)
	if err != nil {
		return fmt.Errorf("save room state %q: %w", st.Room, err)
	}
	if old.Seq >= st.Seq {
		return nil
	}
	var upserts []mongo.WriteModel
	names := make([]string, 0, len(st.Members))
	for user, m := range st.Members {
		names = append(names, user)
		if o, ok := old.Members[user]; ok && o.Role == m.Role {
			continue
		}
		key := memberKey(st.Room, user)
		upserts = append(upserts, mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: key}, {Key: "seq", Value: bson.D{{Key: "$lt", Value: st.Seq}}}}).
			SetUpdate(bson.D{{Key: "$set", Value: bson.D{
				{Key: "room", Value: st.Room}, {Key: "user", Value: user}, {Key: "role", Value: m.Role}, {Key: "seq", Value: st.Seq},
			}}}).
			SetUpsert(true))
	}
	slices.Sort(names)
	for chunk := range slices.Chunk(upserts, memberWrite) {
		_, err := s.members.BulkWrite(ctx, chunk, options.BulkWrite().SetOrdered(false))
		if err != nil && !onlyDuplicates(err) {
			return fmt.Errorf("save room state %q: index members: %w", st.Room, err)
		}
		// A duplicate key: a newer save wrote that entry. Keep it.
	}

	val, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("save room state %q: %w", st.Room, err)
	}
	_, err = s.rooms.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: st.Room}, {Key: "$or", Value: bson.A{
			bson.D{{Key: "state_seq", Value: bson.D{{Key: "$lt", Value: st.Seq}}}},
			bson.D{{Key: "state_seq", Value: bson.D{{Key: "$exists", Value: false}}}},
		}}},
		bson.D{
			{Key: "$set", Value: bson.D{
				{Key: "state", Value: string(val)}, {Key: "state_seq", Value: st.Seq},
				{Key: "kind", Value: st.Kind}, {Key: "title", Value: st.Title}, {Key: "topic", Value: st.Topic},
				{Key: "slow_mode_s", Value: st.SlowModeS}, {Key: "member_names", Value: names},
			}},
			{Key: "$setOnInsert", Value: bson.D{{Key: "created", Value: time.Now().UTC()}}},
		},
		options.UpdateOne().SetUpsert(true))
	if mongo.IsDuplicateKeyError(err) {
		return nil // a newer state is saved; its saver deletes what it must
	}
	if err != nil {
		return fmt.Errorf("save room state %q: %w", st.Room, err)
	}

	var gone []string
	for user := range old.Members {
		if _, ok := st.Members[user]; !ok {
			gone = append(gone, memberKey(st.Room, user))
		}
	}
	if len(gone) > 0 {
		_, err := s.members.DeleteMany(ctx, bson.D{
			{Key: "_id", Value: bson.D{{Key: "$in", Value: gone}}},
			{Key: "seq", Value: bson.D{{Key: "$lte", Value: st.Seq}}},
		})
		if err != nil {
			return fmt.Errorf("save room state %q: unindex members: %w", st.Room, err)
		}
	}
	return nil
}

// onlyDuplicates reports whether every write error of a bulk write is a
// duplicate key, with the write concern met.
func onlyDuplicates(err error) bool {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return false
	}
	for _, e := range bwe.WriteErrors {
		if e.Code != duplicateKeyCode {
			return false
		}
	}
	return true
}

// Find implements chat.RoomStates with the (room, user, id) index.
func (s *Store) Find(ctx context.Context, room, user, id string) (chat.Message, bool, error) {
	var d storedDoc
	err := s.messages.FindOne(ctx, bson.D{{Key: "room", Value: room}, {Key: "user", Value: user}, {Key: "id", Value: id}},
		options.FindOne().SetProjection(messageFields)).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return chat.Message{}, false, nil
	}
	if err != nil {
		return chat.Message{}, false, fmt.Errorf("find %q of %q in room %q: %w", id, user, room, err)
	}
	m, err := d.message()
	if err != nil {
		return chat.Message{}, false, err
	}
	return m, true, nil
}

// FindAll implements chat.FindMany: one query for all of keys.
func (s *Store) FindAll(ctx context.Context, room string, keys []chat.ItemKey) (map[chat.ItemKey]chat.Message, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	msgs := make([]chat.Message, len(keys))
	idx := make([]int, len(keys))
	for i, k := range keys {
		msgs[i], idx[i] = chat.Message{Room: room, User: k.User, ID: k.ID}, i
	}
	found, err := s.storedByKey(ctx, room, msgs, idx)
	if err != nil {
		return nil, err
	}
	out := make(map[chat.ItemKey]chat.Message, len(found))
	for k, m := range found {
		out[chat.ItemKey{User: k.user, ID: k.id}] = m
	}
	return out, nil
}

var _ chat.FindMany = (*Store)(nil)

// MemberRooms implements chat.RoomStates: the user's index entries from
// q.After, each checked against its room's saved state. An entry the saved
// state does not confirm is left out (see SaveRoomState), and deleted when
// it is provably stale: written for a state no newer than the saved one. Left
// out entries make a batch short, so it reads on until the page is full.
func (s *Store) MemberRooms(ctx context.Context, user string, q chat.RoomQuery) (chat.SummaryPage, error) {
	if q.Limit < 1 {
		return chat.SummaryPage{}, chat.Errorf(chat.EBadRequest, "limit must be at least 1")
	}
	var (
		docs  []roomDoc
		roles = map[string]string{}
		after = q.After
	)
	for len(docs) <= q.Limit {
		filter := bson.D{{Key: "user", Value: user}}
		if after != "" {
			filter = append(filter, bson.E{Key: "room", Value: bson.D{{Key: "$gt", Value: after}}})
		}
		batch := int64(q.Limit + 1 - len(docs))
		cur, err := s.members.Find(ctx, filter, options.Find().
			SetSort(bson.D{{Key: "room", Value: 1}}).SetLimit(batch))
		if err != nil {
			return chat.SummaryPage{}, fmt.Errorf("member rooms of %q: %w", user, err)
		}
		var entries []memberDoc
		if err := cur.All(ctx, &entries); err != nil {
			return chat.SummaryPage{}, fmt.Errorf("member rooms of %q: %w", user, err)
		}
		if len(entries) == 0 {
			break
		}
		slices.SortFunc(entries, func(a, b memberDoc) int { return cmp.Compare(a.Room, b.Room) })
		rooms := make([]string, len(entries))
		for i, e := range entries {
			rooms[i] = e.Room
			roles[e.Room] = e.Role
		}
		confirmed, err := s.confirmedRooms(ctx, user, rooms)
		if err != nil {
			return chat.SummaryPage{}, fmt.Errorf("member rooms of %q: %w", user, err)
		}
		byRoom := make(map[string]roomDoc, len(confirmed))
		for _, d := range confirmed {
			byRoom[d.Room] = d
		}
		var stale []memberDoc
		for _, e := range entries {
			if d, ok := byRoom[e.Room]; ok {
				docs = append(docs, d)
			} else {
				stale = append(stale, e)
			}
		}
		s.dropStale(ctx, user, stale)
		if int64(len(entries)) < batch {
			break
		}
		after = entries[len(entries)-1].Room
	}
	page := chat.SummaryPage{More: len(docs) > q.Limit}
	docs = docs[:min(len(docs), q.Limit)]
	rooms, err := s.summaries(ctx, docs)
	if err != nil {
		return chat.SummaryPage{}, fmt.Errorf("member rooms of %q: %w", user, err)
	}
	for i := range rooms {
		rooms[i].Role = roles[rooms[i].Room]
	}
	page.Rooms = rooms
	return page, nil
}

// confirmedRooms returns the rooms documents, among rooms, whose saved state
// lists user as a member.
func (s *Store) confirmedRooms(ctx context.Context, user string, rooms []string) ([]roomDoc, error) {
	cur, err := s.rooms.Find(ctx, bson.D{
		{Key: "_id", Value: bson.D{{Key: "$in", Value: rooms}}},
		{Key: "member_names", Value: user},
	}, options.Find().SetProjection(roomDocFields))
	if err != nil {
		return nil, err
	}
	var docs []roomDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	return docs, nil
}

// dropStale deletes the entries, among those the saved state did not
// confirm, that were written for a state no newer than the saved one: no
// save in flight will make them true. The saved state is read again, and an
// entry is stale only when that read, in one document, shows a state at
// least as new as the entry that does not list user: the state may have
// been saved since confirmedRooms read it (a save writes the entries
// first, then the state), and then the entry is right. The delete is
// conditional on the seq read, so that an entry a newer save rewrote
// meanwhile stays. It is housekeeping only, best effort: the entries are
// left out of this list either way, and a failure here must not fail a
// read.
func (s *Store) dropStale(ctx context.Context, user string, entries []memberDoc) {
	if len(entries) == 0 {
		return
	}
	rooms := make([]string, len(entries))
	for i, e := range entries {
		rooms[i] = e.Room
	}
	cur, err := s.rooms.Find(ctx, bson.D{
		{Key: "_id", Value: bson.D{{Key: "$in", Value: rooms}}},
		{Key: "member_names", Value: bson.D{{Key: "$ne", Value: user}}},
	}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "state_seq", Value: 1}}))
	if err != nil {
		return
	}
	var docs []roomDoc
	if err := cur.All(ctx, &docs); err != nil {
		return
	}
	saved := make(map[string]int64, len(docs))
	for _, d := range docs {
		if d.StateSeq != nil {
			saved[d.Room] = *d.StateSeq
		}
	}
	for _, e := range entries {
		if seq, ok := saved[e.Room]; ok && e.Seq <= seq {
			_, _ = s.members.DeleteOne(ctx, bson.D{{Key: "_id", Value: e.ID}, {Key: "seq", Value: e.Seq}})
		}
	}
}

// Directory implements chat.RoomStates with a find on rooms by name from
// q.After, leaving out the private and direct ones, and then user's index
// entries of the page's rooms, checked against their saved states.
func (s *Store) Directory(ctx context.Context, user string, q chat.RoomQuery) (chat.SummaryPage, error) {
	if q.Limit < 1 {
		return chat.SummaryPage{}, chat.Errorf(chat.EBadRequest, "limit must be at least 1")
	}
	var docs []roomDoc
	after := q.After
	for len(docs) <= q.Limit {
		filter := bson.D{{Key: "kind", Value: bson.D{{Key: "$nin", Value: bson.A{chat.RoomPrivate, chat.RoomDirect}}}}}
		if after != "" {
			filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$gt", Value: after}}})
		}
		batch := int64(q.Limit + 1 - len(docs))
		cur, err := s.rooms.Find(ctx, filter, options.Find().
			SetProjection(roomDocFields).
			SetSort(bson.D{{Key: "_id", Value: 1}}).
			SetLimit(batch))
		if err != nil {
			return chat.SummaryPage{}, fmt.Errorf("directory: %w", err)
		}
		var found []roomDoc
		if err := cur.All(ctx, &found); err != nil {
			return chat.SummaryPage{}, fmt.Errorf("directory: %w", err)
		}
		if len(found) == 0 {
			break
		}
		// By name, in byte order, whatever collation the server sorts with.
		slices.SortFunc(found, func(a, b roomDoc) int { return cmp.Compare(a.Room, b.Room) })
		for _, d := range found {
			if d.StateSeq == nil {
				kind, err := s.firstItemKind(ctx, d.Room)
				if err != nil {
					return chat.SummaryPage{}, fmt.Errorf("directory: %w", err)
				}
				if kind != chat.RoomPublic {
					continue
				}
			}
			docs = append(docs, d)
		}
		if int64(len(found)) < batch {
			break
		}
		after = found[len(found)-1].Room
	}
	page := chat.SummaryPage{More: len(docs) > q.Limit}
	docs = docs[:min(len(docs), q.Limit)]
	rooms, err := s.summaries(ctx, docs)
	if err != nil {
		return chat.SummaryPage{}, fmt.Errorf("directory: %w", err)
	}
	if err := s.fillRoles(ctx, user, rooms); err != nil {
		return chat.SummaryPage{}, fmt.Errorf("directory: %w", err)
	}
	page.Rooms = rooms
	return page, nil
}

// firstItemKind is the kind of room that room's first item (seq 1) makes,
// for a room without a saved state: public unless it is the create item of
// a private or direct room whose saver has not saved the state yet (or died
// before it did), which the directory must not show meanwhile. A room whose
// seq 1 is gone (retention) or not yet stored is public.
func (s *Store) firstItemKind(ctx context.Context, room string) (string, error) {
	var d storedDoc
	err := s.messages.FindOne(ctx, bson.D{{Key: "room", Value: room}, {Key: "seq", Value: int64(1)}},
		options.FindOne().SetProjection(messageFields)).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return chat.RoomPublic, nil
	}
	if err != nil {
		return "", fmt.Errorf("room %q: read first item: %w", room, err)
	}
	m, err := d.message()
	if err != nil {
		return "", err
	}
	st := chat.NewRoomState(room)
	st.Apply(&m)
	return st.RoomKind(), nil
}

// fillRoles sets user's role in each of rooms from the index entries the
// saved states confirm.
func (s *Store) fillRoles(ctx context.Context, user string, rooms []chat.RoomSummary) error {
	if len(rooms) == 0 {
		return nil
	}
	names := make([]string, len(rooms))
	for i, r := range rooms {
		names[i] = r.Room
	}
	cur, err := s.members.Find(ctx, bson.D{{Key: "user", Value: user}, {Key: "room", Value: bson.D{{Key: "$in", Value: names}}}})
	if err != nil {
		return err
	}
	var entries []memberDoc
	if err := cur.All(ctx, &entries); err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	roles := make(map[string]string, len(entries))
	withEntry := make([]string, len(entries))
	for i, e := range entries {
		roles[e.Room] = e.Role
		withEntry[i] = e.Room
	}
	confirmed, err := s.confirmedRooms(ctx, user, withEntry)
	if err != nil {
		return err
	}
	ok := make(map[string]bool, len(confirmed))
	for _, d := range confirmed {
		ok[d.Room] = true
	}
	for i := range rooms {
		if ok[rooms[i].Room] {
			rooms[i].Role = roles[rooms[i].Room]
		}
	}
	return nil
}

// summaries makes the room list entries of docs, each with its last seq as
// LastSeq reads it (see Rooms: one index lookup per room, a few at a time).
func (s *Store) summaries(ctx context.Context, docs []roomDoc) ([]chat.RoomSummary, error) {
	rooms := make([]chat.RoomSummary, len(docs))
	err := inParallel(len(docs), func(i int) error {
		d := docs[i]
		st := chat.RoomState{Kind: d.Kind}
		rooms[i] = chat.RoomSummary{Room: d.Room, Kind: st.RoomKind(), Title: d.Title, Topic: d.Topic, SlowModeS: d.SlowModeS}
		top, err := s.topSeq(ctx, d.Room)
		rooms[i].LastSeq = max(top, d.Last)
		return err
	})
	if err != nil {
		return nil, err
	}
	return rooms, nil
}
