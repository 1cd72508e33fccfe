package repository

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parley-chat/parley/app/chat"
)

// People on MongoDB: one document per canonical name in names (its _id, so
// that of two instances claiming a name at once one wins on the unique
// _id), one per ended session in revoked.
const (
	namesColl      = "names"
	revokedColl    = "revoked"
	revokedAtIndex = "at"
)

var _ chat.People = (*Store)(nil)

type holderDoc struct {
	Canonical string    `bson:"_id"`
	Name      string    `bson:"name"`
	Kind      string    `bson:"kind"`
	Hash      string    `bson:"hash,omitempty"`
	Subject   string    `bson:"subject,omitempty"`
	Expires   time.Time `bson:"expires,omitempty"`
	Created   time.Time `bson:"created"`
}

func (d holderDoc) holder() chat.Holder {
	return chat.Holder{Canonical: d.Canonical, Name: d.Name, Kind: chat.HolderKind(d.Kind), Hash: d.Hash, Subject: d.Subject, Expires: d.Expires, Created: d.Created}
}

// Claim implements chat.People with one conditional upsert: it replaces the
// document only when chat.MayClaim allows, and when the filter matches
// nothing because another holder has the name, the upsert's insert collides
// on _id.
func (s *Store) Claim(ctx context.Context, h chat.Holder, now time.Time) error {
	may := bson.A{bson.D{{Key: "kind", Value: string(chat.HolderGuest)}, {Key: "expires", Value: bson.D{{Key: "$lte", Value: now}}}}}
	if h.Kind != chat.HolderAccount {
		may = append(may, bson.D{{Key: "kind", Value: string(h.Kind)}, {Key: "subject", Value: h.Subject}})
	}
	doc := holderDoc{Canonical: h.Canonical, Name: h.Name, Kind: string(h.Kind), Hash: h.Hash, Subject: h.Subject, Expires: h.Expires, Created: h.Created}
	_, err := s.names.ReplaceOne(ctx, bson.D{{Key: "_id", Value: h.Canonical}, {Key: "$or", Value: may}}, doc, options.Replace().SetUpsert(true))
	if mongo.IsDuplicateKeyError(err) {
		return chat.Errorf(chat.EConflict, "the name is taken")
	}
	if err != nil {
		return fmt.Errorf("claim name: %w", err)
	}
	return nil
}

// Holder implements chat.People.
func (s *Store) Holder(ctx context.Context, canonical string) (chat.Holder, error) {
	var d holderDoc
	err := s.names.FindOne(ctx, bson.D{{Key: "_id", Value: canonical}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return chat.Holder{}, chat.Errorf(chat.ENotFound, "no such name")
	}
	if err != nil {
		return chat.Holder{}, fmt.Errorf("read name: %w", err)
	}
	return d.holder(), nil
}

// Release implements chat.People.
func (s *Store) Release(ctx context.Context, canonical, sid string) error {
	_, err := s.names.DeleteOne(ctx, bson.D{{Key: "_id", Value: canonical}, {Key: "kind", Value: string(chat.HolderGuest)}, {Key: "subject", Value: sid}})
	if err != nil {
		return fmt.Errorf("release name: %w", err)
	}
	return nil
}

type revokedDoc struct {
	SID     string    `bson:"_id"`
	At      time.Time `bson:"at"`
	Expires time.Time `bson:"expires"`
}

// Revoke implements chat.People.
func (s *Store) Revoke(ctx context.Context, r chat.Revocation) error {
	_, err := s.revoked.ReplaceOne(ctx, bson.D{{Key: "_id", Value: r.SID}}, revokedDoc{SID: r.SID, At: r.At, Expires: r.Expires}, options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	return nil
}

// Revocations implements chat.People, and forgets the expired ones.
func (s *Store) Revocations(ctx context.Context, since, now time.Time) ([]chat.Revocation, error) {
	if _, err := s.revoked.DeleteMany(ctx, bson.D{{Key: "expires", Value: bson.D{{Key: "$lte", Value: now}}}}); err != nil {
		return nil, fmt.Errorf("forget expired revocations: %w", err)
	}
	cur, err := s.revoked.Find(ctx, bson.D{{Key: "at", Value: bson.D{{Key: "$gte", Value: since}}}})
	if err != nil {
		return nil, fmt.Errorf("read revocations: %w", err)
	}
	var docs []revokedDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read revocations: %w", err)
	}
	out := make([]chat.Revocation, 0, len(docs))
	for _, d := range docs {
		if d.Expires.After(now) {
			out = append(out, chat.Revocation{SID: d.SID, At: d.At, Expires: d.Expires})
		}
	}
	return out, nil
}
