package handlers

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/kafka/membus"
	"github.com/parley-chat/parley/repository/bolt"
)

// These tests serve a real JWK Set over HTTP on 127.0.0.1 with keys made in
// the test, and check provider tokens through Auth.Verify as a request
// would, with names held in the real embedded store.

// testKey is a signing key of the test provider and its JWK.
type testKey struct {
	kid    string
	method jwt.SigningMethod
	priv   crypto.Signer
}

func (k testKey) jwk() map[string]string {
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	switch pub := k.priv.Public().(type) {
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "kid": k.kid, "alg": "RS256", "use": "sig",
			"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes())}
	case *ecdsa.PublicKey:
		b, _ := pub.Bytes() // 0x04 || X || Y
		return map[string]string{"kty": "EC", "kid": k.kid, "alg": "ES256", "use": "sig", "crv": "P-256",
			"x": b64(b[1:33]), "y": b64(b[33:])}
	case ed25519.PublicKey:
		return map[string]string{"kty": "OKP", "kid": k.kid, "alg": "EdDSA", "use": "sig", "crv": "Ed25519", "x": b64(pub)}
	}
	panic("unknown key type")
}

func (k testKey) sign(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(k.method, c)
	tok.Header["kid"] = k.kid
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newRSAKey(t *testing.T, kid string) testKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, method: jwt.SigningMethodRS256, priv: k}
}

func newECKey(t *testing.T, kid string) testKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, method: jwt.SigningMethodES256, priv: k}
}

func newEdKey(t *testing.T, kid string) testKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, method: jwt.SigningMethodEdDSA, priv: k}
}

// jwksProvider serves a JWK Set it counts the fetches of.
type jwksProvider struct {
	srv     *httptest.Server
	fetches atomic.Int32
	mu      sync.Mutex
	keys    []testKey
}

func newJWKSProvider(t *testing.T, keys ...testKey) *jwksProvider {
	p := &jwksProvider{keys: keys}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.fetches.Add(1)
		p.mu.Lock()
		set := map[string][]map[string]string{"keys": {}}
		for _, k := range p.keys {
			set["keys"] = append(set["keys"], k.jwk())
		}
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *jwksProvider) add(k testKey) {
	p.mu.Lock()
	p.keys = append(p.keys, k)
	p.mu.Unlock()
}

// countingPeople is the real store, counting the claims that reach it.
type countingPeople struct {
	chat.People
	claims atomic.Int32
}

func (c *countingPeople) Claim(ctx context.Context, h chat.Holder, now time.Time) error {
	c.claims.Add(1)
	return c.People.Claim(ctx, h, now)
}

func testStore(t *testing.T) *bolt.Store {
	store, err := bolt.Open(filepath.Join(t.TempDir(), "parley.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

const testIssuer = "https://idp.test"

// jwksAuth is an Auth accepting the provider's tokens, its names held in a
// fresh store.
func jwksAuth(t *testing.T, p *jwksProvider, edit func(*JWKSOptions)) (*Auth, *countingPeople) {
	t.Helper()
	people := &countingPeople{People: testStore(t)}
	o := JWKSOptions{URL: p.srv.URL, People: people}
	if edit != nil {
		edit(&o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	j, err := NewJWKS(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	return &Auth{Secret: []byte("jwks-test-secret-0123456789abcdef0123"), JWKS: j}, people
}

func claimsFor(name, sub string) jwt.MapClaims {
	c := jwt.MapClaims{"iss": testIssuer, "sub": sub, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
	if name != "" {
		c["preferred_username"] = name
	}
	return c
}

func TestJWKSAcceptsRS256ES256EdDSA(t *testing.T) {
	rs, es, ed := newRSAKey(t, "rs"), newECKey(t, "es"), newEdKey(t, "ed")
	p := newJWKSProvider(t, rs, es, ed)
	auth, people := jwksAuth(t, p, nil)
	for i, k := range []testKey{rs, es, ed} {
		name := []string{"rosa", "esther", "edda"}[i]
		c := claimsFor(name, "user-"+name)
		c["sid"] = "sid-" + name
		sess, err := auth.Verify(k.sign(t, c))
		if err != nil {
			t.Fatalf("%s: %v", k.method.Alg(), err)
		}
		if sess.User != name || sess.SID != "sid-"+name || sess.Guest || sess.Expires.IsZero() {
			t.Errorf("%s: session %+v", k.method.Alg(), sess)
		}
		h, err := people.Holder(context.Background(), chat.CanonicalName(name))
		if err != nil || h.Kind != chat.HolderExternal || h.Subject != testIssuer+"|user-"+name || h.Name != name {
			t.Errorf("%s: holder %+v, %v", k.method.Alg(), h, err)
		}
	}
	// Parley's own HS256 tokens still pass beside them.
	tok, _, err := auth.Issue("parleyan", NewSID(), false)
	if err != nil {
		t.Fatal(err)
	}
	if sess, err := auth.Verify(tok); err != nil || sess.User != "parleyan" {
		t.Errorf("HS256 token with JWKS set: %+v, %v", sess, err)
	}
}

func TestJWKSNameClaimSIDAndCache(t *testing.T) {
	rs := newRSAKey(t, "rs")
	p := newJWKSProvider(t, rs)
	auth, people := jwksAuth(t, p, func(o *JWKSOptions) { o.NameClaim = "nick" })

	// Without the name claim the user is named by sub; jti is the sid.
	c := claimsFor("", "subby")
	c["jti"] = "token-1"
	sess, err := auth.Verify(rs.sign(t, c))
	if err != nil || sess.User != "subby" || sess.SID != "token-1" {
		t.Fatalf("sub as name: %+v, %v", sess, err)
	}
	c = claimsFor("ignored", "u-42")
	c["nick"] = "nicky"
	for range 3 {
		if sess, err = auth.Verify(rs.sign(t, c)); err != nil || sess.User != "nicky" {
			t.Fatalf("name claim: %+v, %v", sess, err)
		}
	}
	if n := people.claims.Load(); n != 2 {
		t.Errorf("%d claims reached the store for 2 identities, want 2 (the rest from the cache)", n)
	}
	// An invalid name is refused.
	c["nick"] = "admin"
	if _, err := auth.Verify(rs.sign(t, c)); err == nil {
		t.Error("reserved name accepted")
	}
}

func TestJWKSRefusals(t *testing.T) {
	rs, ed := newRSAKey(t, "rs"), newEdKey(t, "ed")
	p := newJWKSProvider(t, rs, ed)
	auth, _ := jwksAuth(t, p, nil)
	auth.Issuer, auth.Audience = testIssuer, "parley"
	good := func() jwt.MapClaims {
		c := claimsFor("vera", "u-vera")
		c["aud"] = "parley"
		return c
	}
	if _, err := auth.Verify(rs.sign(t, good())); err != nil {
		t.Fatalf("good token refused: %v", err)
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, good()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	// The classic confusion: HS256 "signed" with the provider's public key.
	der, err := x509.MarshalPKIXPublicKey(rs.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hsPub := func(key []byte) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, good())
		tok.Header["kid"] = "rs"
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	edPub := []byte(ed.priv.Public().(ed25519.PublicKey))
	with := func(edit func(jwt.MapClaims)) jwt.MapClaims { c := good(); edit(c); return c }
	cases := map[string]string{
		"alg none":               none,
		"HS256 with public PEM":  hsPub(pubPEM),
		"HS256 with public DER":  hsPub(der),
		"HS256 with Ed25519 key": hsPub(edPub),
		"wrong iss":              rs.sign(t, with(func(c jwt.MapClaims) { c["iss"] = "https://evil.test" })),
		"wrong aud":              rs.sign(t, with(func(c jwt.MapClaims) { c["aud"] = "other" })),
		"no aud":                 rs.sign(t, with(func(c jwt.MapClaims) { delete(c, "aud") })),
		"expired":                rs.sign(t, with(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() })),
		"no exp":                 rs.sign(t, with(func(c jwt.MapClaims) { delete(c, "exp") })),
		"string exp":             rs.sign(t, with(func(c jwt.MapClaims) { c["exp"] = "9999999999" })),
		"no sub":                 rs.sign(t, with(func(c jwt.MapClaims) { delete(c, "sub") })),
		"RS256 with ES key kid":  testKey{kid: "rs", method: jwt.SigningMethodES256, priv: newECKey(t, "x").priv}.sign(t, good()),
		"garbage":                "not.a.token",
	}
	for name, tok := range cases {
		if sess, err := auth.Verify(tok); err == nil {
			t.Errorf("%s: accepted as %+v", name, sess)
		}
	}
}

func TestJWKSUnknownKIDRefetchesOnce(t *testing.T) {
	rs := newRSAKey(t, "rs")
	p := newJWKSProvider(t, rs)
	auth, _ := jwksAuth(t, p, func(o *JWKSOptions) { o.RefreshUnknownEvery = time.Hour })
	if _, err := auth.Verify(rs.sign(t, claimsFor("kim", "u-kim"))); err != nil {
		t.Fatal(err)
	}
	before := p.fetches.Load()
	ghost := newRSAKey(t, "ghost")
	if _, err := auth.Verify(ghost.sign(t, claimsFor("kim", "u-kim"))); err == nil {
		t.Fatal("token of an unknown kid accepted")
	}
	if got := p.fetches.Load(); got != before+1 {
		t.Fatalf("unknown kid: %d fetches of the set, want one refetch (%d)", got-before, 1)
	}
	// Another unknown kid within the limit: refused at once, no fetch.
	ghost2 := newRSAKey(t, "ghost2").sign(t, claimsFor("kim", "u-kim"))
	start := time.Now()
	if _, err := auth.Verify(ghost2); err == nil {
		t.Fatal("token of an unknown kid accepted")
	}
	if got := p.fetches.Load(); got != before+1 {
		t.Errorf("rate-limited unknown kid fetched the set again (%d fetches)", got-before)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("rate-limited unknown kid took %v", d)
	}
}

func TestJWKSKeyRotation(t *testing.T) {
	old := newECKey(t, "old")
	p := newJWKSProvider(t, old)
	auth, _ := jwksAuth(t, p, nil)
	if _, err := auth.Verify(old.sign(t, claimsFor("rota", "u-rota"))); err != nil {
		t.Fatal(err)
	}
	next := newEdKey(t, "next")
	p.add(next)
	if sess, err := auth.Verify(next.sign(t, claimsFor("rota", "u-rota"))); err != nil || sess.User != "rota" {
		t.Fatalf("a key added to the set is not found by a refetch: %+v, %v", sess, err)
	}
}

// TestJWKSNameHeldElsewhere: a provider user whose name is an account's,
// or another identity's, gets a 401 saying so on every route.
func TestJWKSNameHeldElsewhere(t *testing.T) {
	rs := newRSAKey(t, "rs")
	p := newJWKSProvider(t, rs)
	auth, people := jwksAuth(t, p, nil)
	ctx := context.Background()
	if err := people.Claim(ctx, chat.Holder{Canonical: chat.CanonicalName("carol"), Name: "carol", Kind: chat.HolderAccount, Hash: "x", Created: time.Now()}, time.Now()); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := people.People.(*bolt.Store)
	bus := membus.New(membus.Options{})
	t.Cleanup(func() { bus.Close() })
	srv := &Server{Store: store, People: people, Bus: bus, Hub: chat.NewHub(store, log, nil), Log: log, Auth: auth,
		Sender: &chat.Sender{Bus: bus, Topic: chat.DefaultTopicSend, Log: log}}
	app := fiber.New(fiber.Config{ErrorHandler: ErrorHandler(log)})
	srv.Register(app)
	get := func(tok string) (int, string) {
		req := httptest.NewRequest("GET", "/api/rooms", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := app.Test(req, 5000)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := get(rs.sign(t, claimsFor("Dave", "u-dave"))); status != 200 {
		t.Fatalf("provider token: %d %s", status, body)
	}
	for name, tok := range map[string]string{
		"an account's name":           rs.sign(t, claimsFor("carol", "u-carol")),
		"a look-alike of an account":  rs.sign(t, claimsFor("CAROL", "u-carol2")),
		"another identity's name":     rs.sign(t, claimsFor("dave", "u-other")),
		"another issuer, same sub":    rs.sign(t, jwt.MapClaims{"iss": "https://other.test", "sub": "u-dave", "preferred_username": "dave", "exp": time.Now().Add(time.Hour).Unix()}),
		"a look-alike of an identity": rs.sign(t, claimsFor("DAVE", "u-other")),
	} {
		status, body := get(tok)
		if status != 401 || !strings.Contains(body, "belongs to another account or identity") {
			t.Errorf("%s: %d %s, want 401 saying the name is held", name, status, body)
		}
	}
}
