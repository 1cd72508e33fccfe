package storetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
)

// RunPeople runs the contract suite of chat.People. newPeople must return a
// new, empty store each time, cleaned up by t.Cleanup.
func RunPeople(t *testing.T, newPeople func(t *testing.T) chat.People) {
	t.Run("ClaimAndRead", func(t *testing.T) { testClaimAndRead(t, newPeople(t)) })
	t.Run("AccountHoldsForGood", func(t *testing.T) { testAccountHolds(t, newPeople(t)) })
	t.Run("GuestHoldsWhileLive", func(t *testing.T) { testGuestHolds(t, newPeople(t)) })
	t.Run("ExpiredGuestGivesWay", func(t *testing.T) { testExpiredGuest(t, newPeople(t)) })
	t.Run("Release", func(t *testing.T) { testRelease(t, newPeople(t)) })
	t.Run("External", func(t *testing.T) { testExternal(t, newPeople(t)) })
	t.Run("ConcurrentClaims", func(t *testing.T) { testConcurrentClaims(t, newPeople(t)) })
	t.Run("Revocations", func(t *testing.T) { testRevocations(t, newPeople(t)) })
}

// t0 is a time both stores keep exactly (MongoDB keeps milliseconds).
var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

func holder(name string, kind chat.HolderKind, subject string, expires time.Time) chat.Holder {
	return chat.Holder{Canonical: chat.CanonicalName(name), Name: name, Kind: kind, Subject: subject, Expires: expires, Created: t0}
}

func wantConflict(t *testing.T, err error, what string) {
	t.Helper()
	if chat.ErrorCode(err) != chat.EConflict {
		t.Fatalf("%s: got %v, want a conflict", what, err)
	}
}

func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func testClaimAndRead(t *testing.T, p chat.People) {
	ctx := t.Context()
	if _, err := p.Holder(ctx, chat.CanonicalName("alice")); chat.ErrorCode(err) != chat.ENotFound {
		t.Fatalf("holder of a free name: %v, want not_found", err)
	}
	a := holder("Alice", chat.HolderAccount, "", time.Time{})
	a.Hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"
	must(t, p.Claim(ctx, a, t0), "claim")
	got, err := p.Holder(ctx, chat.CanonicalName("аlice")) // Cyrillic а: the same name
	must(t, err, "holder")
	if got.Name != "Alice" || got.Kind != chat.HolderAccount || got.Hash != a.Hash || got.Canonical != a.Canonical || !got.Created.Equal(t0) || !got.Expires.IsZero() {
		t.Fatalf("holder %+v, want %+v", got, a)
	}
}

func testAccountHolds(t *testing.T, p chat.People) {
	ctx := t.Context()
	must(t, p.Claim(ctx, holder("bob", chat.HolderAccount, "", time.Time{}), t0), "claim")
	later := t0.Add(1000 * time.Hour)
	wantConflict(t, p.Claim(ctx, holder("Bob", chat.HolderAccount, "", time.Time{}), later), "a second account")
	wantConflict(t, p.Claim(ctx, holder("ＢＯＢ", chat.HolderGuest, "s1", later.Add(time.Hour)), later), "a guest")
	wantConflict(t, p.Claim(ctx, holder("bob", chat.HolderExternal, "iss|bob", time.Time{}), later), "an external user")
	must(t, p.Release(ctx, chat.CanonicalName("bob"), ""), "release of an account")
	if h, err := p.Holder(ctx, chat.CanonicalName("bob")); err != nil || h.Kind != chat.HolderAccount {
		t.Fatalf("release must leave an account: %+v %v", h, err)
	}
}

func testGuestHolds(t *testing.T, p chat.People) {
	ctx := t.Context()
	until := t0.Add(time.Hour)
	must(t, p.Claim(ctx, holder("carol", chat.HolderGuest, "s1", until), t0), "claim")
	wantConflict(t, p.Claim(ctx, holder("Carol", chat.HolderGuest, "s2", until), t0.Add(time.Minute)), "another guest")
	wantConflict(t, p.Claim(ctx, holder("carol", chat.HolderAccount, "", time.Time{}), t0.Add(time.Minute)), "an account")
	// The same session extends its hold.
	must(t, p.Claim(ctx, holder("carol", chat.HolderGuest, "s1", until.Add(time.Hour)), t0.Add(time.Minute)), "extend")
	h, err := p.Holder(ctx, chat.CanonicalName("carol"))
	must(t, err, "holder")
	if !h.Expires.Equal(until.Add(time.Hour)) || h.Subject != "s1" {
		t.Fatalf("extended hold %+v", h)
	}
	wantConflict(t, p.Claim(ctx, holder("carol", chat.HolderGuest, "s2", until), until.Add(time.Minute)), "another guest within the extension")
}

func testExpiredGuest(t *testing.T, p chat.People) {
	ctx := t.Context()
	until := t0.Add(time.Hour)
	must(t, p.Claim(ctx, holder("dave", chat.HolderGuest, "s1", until), t0), "claim")
	must(t, p.Claim(ctx, holder("Dave", chat.HolderGuest, "s2", until.Add(time.Hour)), until), "another guest once the hold ended")
	h, err := p.Holder(ctx, chat.CanonicalName("dave"))
	must(t, err, "holder")
	if h.Subject != "s2" || h.Name != "Dave" {
		t.Fatalf("holder %+v, want the second guest", h)
	}
	must(t, p.Claim(ctx, holder("dave", chat.HolderAccount, "", time.Time{}), until.Add(2*time.Hour)), "an account once it ended")
}

func testRelease(t *testing.T, p chat.People) {
	ctx := t.Context()
	until := t0.Add(time.Hour)
	must(t, p.Claim(ctx, holder("erin", chat.HolderGuest, "s1", until), t0), "claim")
	must(t, p.Release(ctx, chat.CanonicalName("erin"), "s2"), "release by another session")
	wantConflict(t, p.Claim(ctx, holder("erin", chat.HolderGuest, "s2", until), t0), "after another session's release")
	must(t, p.Release(ctx, chat.CanonicalName("erin"), "s1"), "release")
	if _, err := p.Holder(ctx, chat.CanonicalName("erin")); chat.ErrorCode(err) != chat.ENotFound {
		t.Fatalf("released name: %v, want not_found", err)
	}
	must(t, p.Claim(ctx, holder("erin", chat.HolderGuest, "s2", until), t0), "claim after release")
	must(t, p.Release(ctx, chat.CanonicalName("nobody"), "s1"), "release of a free name")
}

func testExternal(t *testing.T, p chat.People) {
	ctx := t.Context()
	must(t, p.Claim(ctx, holder("frank", chat.HolderExternal, "https://idp|42", time.Time{}), t0), "claim")
	must(t, p.Claim(ctx, holder("frank", chat.HolderExternal, "https://idp|42", time.Time{}), t0.Add(time.Hour)), "the same identity again")
	wantConflict(t, p.Claim(ctx, holder("Frank", chat.HolderExternal, "https://idp|43", time.Time{}), t0), "another identity")
	wantConflict(t, p.Claim(ctx, holder("frank", chat.HolderGuest, "s1", t0.Add(time.Hour)), t0), "a guest")
}

func testConcurrentClaims(t *testing.T, p chat.People) {
	ctx := t.Context()
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = p.Claim(ctx, holder("grace", chat.HolderGuest, "s"+string(rune('a'+i)), t0.Add(time.Hour)), t0)
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case chat.ErrorCode(err) != chat.EConflict:
			t.Fatalf("claim: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d concurrent claims won, want exactly 1", won, n)
	}
}

func testRevocations(t *testing.T, p chat.People) {
	ctx := t.Context()
	must(t, p.Revoke(ctx, chat.Revocation{SID: "a", At: t0, Expires: t0.Add(time.Hour)}), "revoke a")
	must(t, p.Revoke(ctx, chat.Revocation{SID: "b", At: t0.Add(10 * time.Second), Expires: t0.Add(time.Hour)}), "revoke b")
	must(t, p.Revoke(ctx, chat.Revocation{SID: "c", At: t0.Add(10 * time.Second), Expires: t0.Add(time.Minute)}), "revoke c")
	sids := func(since, now time.Time) []string {
		rs, err := p.Revocations(ctx, since, now)
		must(t, err, "revocations")
		var out []string
		for _, r := range rs {
			out = append(out, r.SID)
		}
		slices.Sort(out)
		return out
	}
	if got := sids(time.Time{}, t0.Add(20*time.Second)); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("all revocations: %v", got)
	}
	if got := sids(t0.Add(5*time.Second), t0.Add(20*time.Second)); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("revocations since t0+5s: %v, want b c", got)
	}
	if got := sids(time.Time{}, t0.Add(2*time.Minute)); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("after c's tokens expired: %v, want a b", got)
	}
	rs, err := p.Revocations(ctx, t0.Add(10*time.Second), t0.Add(20*time.Second))
	must(t, err, "revocations")
	for _, r := range rs {
		if r.SID == "b" && (!r.At.Equal(t0.Add(10*time.Second)) || !r.Expires.Equal(t0.Add(time.Hour))) {
			t.Fatalf("revocation b read back as %+v", r)
		}
	}
}
