package repository

import (
	"context"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parley-chat/parley/app/chat"
)

var _ chat.Lifecycles = (*Store)(nil)

// ItemsAbout finds the items with one query, {room, target: {$in}} sorted
// by seq, over the {room, target, seq} index. (FerretDB 1.24 answers it
// with a scan of the room; MongoDB with one index range per target.)
func (s *Store) ItemsAbout(ctx context.Context, room string, targets []int64) ([]chat.Message, error) {
	out := []chat.Message{}
	targets = slices.DeleteFunc(slices.Clone(targets), func(t int64) bool { return t < 1 })
	if len(targets) == 0 {
		return out, nil
	}
	slices.Sort(targets)
	targets = slices.Compact(targets)
	cur, err := s.messages.Find(ctx,
		// An item is stored after what it is about: the bound on seq
		// changes no answer, and spares a store that scans (FerretDB)
		// the older part of the room.
		bson.D{{Key: "room", Value: room}, {Key: "target", Value: bson.D{{Key: "$in", Value: targets}}},
			{Key: "seq", Value: bson.D{{Key: "$gt", Value: targets[0]}}}},
		options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}).SetProjection(messageFields))
	if err != nil {
		return nil, fmt.Errorf("read items about messages of room %q: %w", room, err)
	}
	var docs []storedDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read items about messages of room %q: %w", room, err)
	}
	for _, d := range docs {
		m, err := d.message()
		if err != nil {
			return nil, fmt.Errorf("read items about messages of room %q: %w", room, err)
		}
		if m.IsLifecycle() {
			out = append(out, m)
		}
	}
	return out, nil
}

// applyLifecycles does what the lifecycle items among out[idx] (stored now
// or before: a redelivery) do to the store: each delete erases its target,
// and an edit about a message deleted already loses its text, which must
// not outlive the message (the persist stage refuses such an edit; this
// covers one that got past it in a race). Every step is an idempotent
// update, so a crash part-way is repaired by the redelivery.
//
// Why an edit racing a delete cannot keep its text: erase marks the target
// deleted before it blanks the edits, and the edit's check reads the mark
// after the edit is inserted. Either the check sees the mark, or it ran
// before the mark was set, so the edit was inserted before the blanking
// looked for edits and is blanked.
func (s *Store) applyLifecycles(ctx context.Context, room string, idx []int, out []chat.Message) error {
	var deletes, edited []int64
	for _, i := range idx {
		switch m := out[i]; {
		case m.Kind == chat.KindDelete && m.Target() > 0:
			deletes = append(deletes, m.Target())
		case m.Kind == chat.KindEdit && m.Target() > 0 && m.Text != "":
			edited = append(edited, m.Target())
		}
	}
	if len(deletes) > 0 {
		if err := s.erase(ctx, room, deletes); err != nil {
			return err
		}
	}
	if len(edited) == 0 {
		return nil
	}
	gone, err := s.deletedAmong(ctx, room, edited)
	if err != nil || len(gone) == 0 {
		return err
	}
	if err := s.blankEdits(ctx, room, gone); err != nil {
		return err
	}
	for _, i := range idx {
		if out[i].Kind == chat.KindEdit && slices.Contains(gone, out[i].Target()) {
			out[i].Text = ""
		}
	}
	return nil
}

// erase is the batch's deletes' effect on the store: the messages at
// targets lose their text and are marked deleted, then every edit about
// them loses its text. The text is overwritten, not flagged: no document
// holds it any more. One update for all the targets, and one for their
// edits: a store that scans (FerretDB) pays a scan per update.
func (s *Store) erase(ctx context.Context, room string, targets []int64) error {
	_, err := s.messages.UpdateMany(ctx,
		bson.D{{Key: "room", Value: room}, {Key: "seq", Value: bson.D{{Key: "$in", Value: targets}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "text", Value: ""}, {Key: "deleted", Value: true}}}})
	if err != nil {
		return fmt.Errorf("erase messages %v: %w", targets, err)
	}
	return s.blankEdits(ctx, room, targets)
}

// blankEdits erases the text of every edit about the targets.
func (s *Store) blankEdits(ctx context.Context, room string, targets []int64) error {
	_, err := s.messages.UpdateMany(ctx,
		bson.D{{Key: "room", Value: room}, {Key: "target", Value: bson.D{{Key: "$in", Value: targets}}}, {Key: "kind", Value: chat.KindEdit},
			{Key: "text", Value: bson.D{{Key: "$ne", Value: ""}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "text", Value: ""}}}})
	if err != nil {
		return fmt.Errorf("erase edits of messages %v: %w", targets, err)
	}
	return nil
}

// deletedAmong returns which of the seqs are of deleted messages of room.
func (s *Store) deletedAmong(ctx context.Context, room string, seqs []int64) ([]int64, error) {
	cur, err := s.messages.Find(ctx,
		bson.D{{Key: "room", Value: room}, {Key: "seq", Value: bson.D{{Key: "$in", Value: seqs}}}, {Key: "deleted", Value: true}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 0}, {Key: "seq", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("look up deleted targets: %w", err)
	}
	var docs []struct {
		Seq int64 `bson:"seq"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("look up deleted targets: %w", err)
	}
	gone := make([]int64, len(docs))
	for i, d := range docs {
		gone[i] = d.Seq
	}
	return gone, nil
}
