package bolt

import (
	"context"
	"encoding/json"
	"time"

	"go.etcd.io/bbolt"

	"github.com/parley-chat/parley/app/chat"
)

var (
	bucketNames   = []byte("names")
	bucketRevoked = []byte("revoked")
)

var _ chat.People = (*Store)(nil)

// Claim implements chat.People in one write transaction.
func (s *Store) Claim(_ context.Context, h chat.Holder, now time.Time) error {
	val, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketNames)
		if v := b.Get([]byte(h.Canonical)); v != nil {
			var old chat.Holder
			if err := json.Unmarshal(v, &old); err != nil {
				return err
			}
			if !chat.MayClaim(old, h, now) {
				return chat.Errorf(chat.EConflict, "the name is taken")
			}
		}
		return b.Put([]byte(h.Canonical), val)
	})
}

// Holder implements chat.People.
func (s *Store) Holder(_ context.Context, canonical string) (chat.Holder, error) {
	var h chat.Holder
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketNames).Get([]byte(canonical))
		if v == nil {
			return chat.Errorf(chat.ENotFound, "no such name")
		}
		return json.Unmarshal(v, &h)
	})
	return h, err
}

// Release implements chat.People.
func (s *Store) Release(_ context.Context, canonical, sid string) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketNames)
		v := b.Get([]byte(canonical))
		if v == nil {
			return nil
		}
		var h chat.Holder
		if err := json.Unmarshal(v, &h); err != nil {
			return err
		}
		if h.Kind != chat.HolderGuest || h.Subject != sid {
			return nil
		}
		return b.Delete([]byte(canonical))
	})
}

// Revoke implements chat.People.
func (s *Store) Revoke(_ context.Context, r chat.Revocation) error {
	val, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketRevoked).Put([]byte(r.SID), val)
	})
}

// Revocations implements chat.People. It reads every record (one
// instance's ended sessions of a token lifetime: few) and forgets the
// expired ones.
func (s *Store) Revocations(_ context.Context, since, now time.Time) ([]chat.Revocation, error) {
	var out []chat.Revocation
	var expired [][]byte
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketRevoked).ForEach(func(k, v []byte) error {
			var r chat.Revocation
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			switch {
			case !r.Expires.After(now):
				expired = append(expired, append([]byte(nil), k...))
			case !r.At.Before(since):
				out = append(out, r)
			}
			return nil
		})
	})
	if err != nil || len(expired) == 0 {
		return out, err
	}
	return out, s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRevoked)
		for _, k := range expired {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}
