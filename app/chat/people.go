package chat

import (
	"context"
	"time"
)

// People keeps who may go by which name, and which sessions have ended.
// A name (by its CanonicalName) has at most one live holder: an account, a
// guest's session while it lives, or a user of the operator's identity
// provider. Both stores implement it beside Store, and the store contract
// suite holds them to one behaviour.
type People interface {
	// Claim makes h the holder of h.Canonical, atomically: it succeeds when
	// the name has no holder, when its holder is a guest whose hold ended
	// (Expires at or before now), or when h is the same holder again (a
	// guest of the same session extending its hold, the same external
	// identity). Otherwise it is an EConflict error.
	Claim(ctx context.Context, h Holder, now time.Time) error
	// Holder returns the holder of the canonical name, live or not;
	// ENotFound when it has none.
	Holder(ctx context.Context, canonical string) (Holder, error)
	// Release ends a guest's hold on canonical when the hold is still
	// session sid's; otherwise it does nothing.
	Release(ctx context.Context, canonical, sid string) error
	// Revoke records that session sid has ended; its tokens expire at
	// expires, after which the record may be forgotten.
	Revoke(ctx context.Context, r Revocation) error
	// Revocations returns the revocations recorded at or after since whose
	// tokens have not expired at now, in no particular order.
	Revocations(ctx context.Context, since, now time.Time) ([]Revocation, error)
}

// HolderKind says what holds a name.
type HolderKind string

const (
	// HolderAccount is a password account: it holds its name for good.
	HolderAccount HolderKind = "account"
	// HolderGuest is a guest session: it holds the name until Expires.
	HolderGuest HolderKind = "guest"
	// HolderExternal is a user of the operator's identity provider (JWKS
	// tokens, OIDC sign-in), holding its name like an account.
	HolderExternal HolderKind = "external"
)

// Holder is the holder of a name.
type Holder struct {
	// Canonical is CanonicalName(Name), the key.
	Canonical string
	// Name is the name as its holder chose it, as shown.
	Name string
	Kind HolderKind
	// Hash is an account's password hash (argon2id, PHC string form).
	Hash string
	// Subject identifies the holder among others of its kind: a guest's
	// session id, an external identity's issuer and subject. Claim treats
	// a holder of the same kind and Subject as the same holder.
	Subject string
	// Expires ends a guest's hold; zero for the other kinds.
	Expires time.Time
	Created time.Time
}

// Live reports whether h still holds its name at now.
func (h Holder) Live(now time.Time) bool {
	return h.Kind != HolderGuest || h.Expires.After(now)
}

// Revocation is an ended session.
type Revocation struct {
	SID string
	// At is when it was revoked (the revoking instance's clock).
	At time.Time
	// Expires is when the session's last token expires.
	Expires time.Time
}

// MayClaim is Claim's rule, for the stores: whether next may take a name
// that old holds at now.
func MayClaim(old, next Holder, now time.Time) bool {
	if !old.Live(now) {
		return true
	}
	return old.Kind == next.Kind && old.Kind != HolderAccount && old.Subject == next.Subject
}
