package repository

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/parley-chat/parley/app/chat"
)

// secret is the text the erasure tests delete; no document may hold it
// afterwards.
const secret = "xyzzy-plugh"

// holding returns the seqs of the room's documents that hold b anywhere, as
// raw BSON: below the Store interface and whatever it decodes.
func holding(t *testing.T, s *Store, room string, b []byte) []int64 {
	t.Helper()
	cur, err := s.messages.Find(t.Context(), bson.D{{Key: "room", Value: room}})
	if err != nil {
		t.Fatalf("Find: %v", err)
	}
	var found []int64
	for cur.Next(t.Context()) {
		if bytes.Contains(cur.Current, b) {
			found = append(found, cur.Current.Lookup("seq").AsInt64())
		}
	}
	if err := cur.Err(); err != nil {
		t.Fatalf("Find: %v", err)
	}
	return found
}

func lifecycleItem(kind string, target int64, id, text string) chat.Message {
	return chat.NewLifecycle(chat.Author{Name: "alice"}, "general", id, kind, target, text, "", false, time.Now())
}

func secretMessage() chat.Message {
	return chat.Message{Room: "general", ID: "m1", User: "alice", Text: secret + " said once", TS: chat.Timestamp(time.Now())}
}

// TestMongoLifecycleErased checks the erasure in the documents themselves,
// and the target field and index ItemsAbout relies on.
func TestMongoLifecycleErased(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	if _, err := s.Append(ctx, []chat.Message{secretMessage(), lifecycleItem(chat.KindEdit, 1, "e1", secret+" said twice")}); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if got := holding(t, s, "general", []byte(secret)); len(got) != 2 {
		t.Fatalf("before the delete the text is in %v, want the message and its edit", got)
	}
	var edit bson.M
	if err := s.messages.FindOne(ctx, bson.D{{Key: "room", Value: "general"}, {Key: "seq", Value: 2}}).Decode(&edit); err != nil {
		t.Fatalf("FindOne: %v", err)
	}
	if edit["target"] != int64(1) {
		t.Errorf("the edit's document has target %v (%T), want 1", edit["target"], edit["target"])
	}
	if _, err := s.Append(ctx, []chat.Message{lifecycleItem(chat.KindDelete, 1, "d1", "")}); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if got := holding(t, s, "general", []byte(secret)); len(got) != 0 {
		t.Errorf("after the delete the text is still in the documents at seq %v", got)
	}
	specs, err := s.messages.Indexes().ListSpecifications(ctx)
	if err != nil {
		t.Fatalf("ListSpecifications: %v", err)
	}
	var names []string
	for _, sp := range specs {
		names = append(names, sp.Name)
	}
	if !slices.Contains(names, roomTargetSeqIndex) {
		t.Errorf("indexes %v, want %s", names, roomTargetSeqIndex)
	}
}

// TestMongoLifecycleCrashBeforeErasure inserts a delete's document without
// its erasure, as an Append that crashed between the insert and the updates
// leaves it, and appends the delete again (the persist stage's redelivery):
// the redelivery finds it stored and erases.
func TestMongoLifecycleCrashBeforeErasure(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	if _, err := s.Append(ctx, []chat.Message{secretMessage(), lifecycleItem(chat.KindEdit, 1, "e1", secret+" said twice")}); err != nil {
		t.Fatalf("Append: %v", err)
	}
	del := lifecycleItem(chat.KindDelete, 1, "d1", "")
	if _, err := s.messages.InsertOne(ctx, newMessageDoc(del, 3)); err != nil {
		t.Fatalf("insert the delete alone: %v", err)
	}
	if got := holding(t, s, "general", []byte(secret)); len(got) != 2 {
		t.Fatalf("before the redelivery the text is in %v, want the message and its edit", got)
	}
	out, err := s.Append(ctx, []chat.Message{del})
	if err != nil || out[0].Seq != 3 {
		t.Fatalf("Append the delete again: %+v, %v; want it found at seq 3", out, err)
	}
	if got := holding(t, s, "general", []byte(secret)); len(got) != 0 {
		t.Errorf("after the redelivery the text is still in the documents at seq %v", got)
	}
}
