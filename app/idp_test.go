package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/golang-jwt/jwt/v5"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// The OIDC sign-in end to end, through a real OpenID provider on
// 127.0.0.1: zitadel/oidc's OpenID Certified provider library (pkg/op),
// with the in-memory storage and username/password login page of its
// example server. The browser is an http.Client with a cookie jar that
// follows redirects, and logs in at the provider's form.

const (
	idpClientID     = "parley-test"
	idpClientSecret = "parley-test-secret"
	idpPassword     = "verysecure-test"
)

// idpUsers are the provider's users: id -> username (preferred_username).
var idpUsers = map[string]string{"u-alice": "oidc-alice", "u-bob": "oidc-bob", "u-carl": "oidc-carl"}

// testIDP is a provider started by startIDP.
type testIDP struct {
	issuer string
	// userinfo counts the requests to its UserInfo endpoint.
	userinfo atomic.Int32
}

// startIDP starts the provider for a Parley at publicURL. With
// claimsInIDToken its ID tokens carry the profile claims (as many
// providers' do); without, as the example client has it, only the
// UserInfo endpoint tells the user's name.
func startIDP(t *testing.T, publicURL string, claimsInIDToken bool) *testIDP {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	idp := &testIDP{issuer: "http://" + l.Addr().String() + "/"}
	users := map[string]*storage.User{}
	for id, name := range idpUsers {
		users[id] = &storage.User{ID: id, Username: name, Password: idpPassword, FirstName: name, LastName: "Test",
			Email: name + "@example.test", EmailVerified: true}
	}
	b, _ := json.Marshal(users)
	path := filepath.Join(t.TempDir(), "users.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	us, err := storage.StoreFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	clients := map[string]*storage.Client{idpClientID: storage.WebClient(idpClientID, idpClientSecret, publicURL+"/auth/oidc/callback")}
	var st exampleop.Storage = storage.NewStorageWithClients(us, clients)
	if claimsInIDToken {
		st = assertingStorage{storage.NewStorageWithClients(us, clients)}
	}
	provider := exampleop.SetupServer(idp.issuer, st, nil, false)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/userinfo" {
			idp.userinfo.Add(1)
		}
		provider.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return idp
}

// assertingStorage is the example storage whose clients get the profile
// claims in their ID tokens.
type assertingStorage struct{ *storage.Storage }

func (s assertingStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return assertingClient{c}, nil
}

type assertingClient struct{ op.Client }

func (assertingClient) IDTokenUserinfoClaimsAssertion() bool { return true }

// freeAddr is a loopback address with a free port: Parley must know its
// public URL (the redirect URL registered at the provider) before it
// listens.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startOIDC runs Parley with sign-in at a fresh provider.
func startOIDC(t *testing.T, claimsInIDToken bool) (*testServer, *testIDP) {
	t.Helper()
	addr := freeAddr(t)
	public := "http://" + addr
	idp := startIDP(t, public, claimsInIDToken)
	s := startServer(t, func(c *Config) {
		c.Addr, c.PublicURL = addr, public
		c.OIDCIssuer, c.OIDCClientID, c.OIDCClientSecret, c.OIDCName = idp.issuer, idpClientID, idpClientSecret, "Test IdP"
	})
	return s, idp
}

// browser is a client with a cookie jar; follow says whether it follows
// redirects.
func browser(t *testing.T, follow bool) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar}
	if !follow {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return c
}

// oidcSignIn goes from Parley's login route through the provider's login
// form back to Parley, and returns where the browser ended.
func oidcSignIn(t *testing.T, b *http.Client, s *testServer, user string) *url.URL {
	t.Helper()
	resp, err := b.Get(s.base + "/auth/oidc/login")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := goquery.NewDocumentFromReader(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	form := doc.Find("form")
	id, _ := form.Find(`input[name="id"]`).Attr("value")
	action, _ := form.Attr("action")
	if resp.StatusCode != 200 || id == "" || action == "" {
		t.Fatalf("no login form at the provider: %d %s", resp.StatusCode, resp.Request.URL)
	}
	resp, err = b.PostForm(resp.Request.URL.ResolveReference(&url.URL{Path: action}).String(),
		url.Values{"id": {id}, "username": {user}, "password": {idpPassword}})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("after the provider's login: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	return resp.Request.URL
}

func (s *testServer) get(b *http.Client, path string) (int, []byte) {
	s.t.Helper()
	resp, err := b.Get(s.base + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func TestOIDCSignInEndToEnd(t *testing.T) {
	s, idp := startOIDC(t, false)

	b := browser(t, true)
	end := oidcSignIn(t, b, s, "oidc-alice")
	if end.String() != s.base+"/" {
		t.Fatalf("sign-in ended at %s, want %s/", end, s.base)
	}
	if status, body := s.get(b, "/api/rooms"); status != 200 {
		t.Fatalf("GET /api/rooms with the session cookie: %d %s", status, body)
	}
	if idp.userinfo.Load() == 0 {
		t.Error("the name was not read from UserInfo, the only place this provider says it")
	}
	u, _ := url.Parse(s.base)
	var tok string
	for _, c := range b.Jar.Cookies(u) {
		if c.Name == "parley_session" {
			tok = c.Value
		}
	}
	if tok == "" {
		t.Fatal("no session cookie after OIDC sign-in")
	}
	// The session is an ordinary one: refresh, revocable, not a guest.
	status, body := s.do("POST", "/api/session/refresh", tok, "")
	var r struct {
		User  string `json:"user"`
		Guest bool   `json:"guest"`
	}
	mustJSON(t, body, &r)
	if status != 200 || r.User != "oidc-alice" || r.Guest {
		t.Errorf("refresh: %d %s", status, body)
	}

	// The name is held like an account's: a guest cannot take it, nor its
	// look-alike, nor can an account be made with it.
	for _, name := range []string{"oidc-alice", "OIDC-Alice"} {
		status, body := s.do("POST", "/api/session", "", `{"name":"`+name+`"}`)
		apiError(t, status, body, 409, "conflict")
	}
	status, body = s.do("POST", "/api/accounts", "", `{"name":"oidc-alice","password":"a long enough password"}`)
	apiError(t, status, body, 409, "conflict")

	// Signing in again at the provider is the same identity: it works.
	if end := oidcSignIn(t, browser(t, true), s, "oidc-alice"); end.String() != s.base+"/" {
		t.Errorf("second sign-in ended at %s", end)
	}
	// Signing out ends the session.
	req, _ := http.NewRequest("DELETE", s.base+"/api/session", nil)
	resp, err := b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if status, _ := s.do("GET", "/api/rooms", tok, ""); status != 401 {
		t.Errorf("revoked OIDC session: %d, want 401", status)
	}
}

// TestOIDCNameInIDToken: a provider whose ID token names the user is not
// asked again at UserInfo.
func TestOIDCNameInIDToken(t *testing.T) {
	s, idp := startOIDC(t, true)
	b := browser(t, true)
	if end := oidcSignIn(t, b, s, "oidc-carl"); end.String() != s.base+"/" {
		t.Fatalf("sign-in ended at %s", end)
	}
	if status, body := s.get(b, "/api/rooms"); status != 200 {
		t.Fatalf("GET /api/rooms with the session cookie: %d %s", status, body)
	}
	if n := idp.userinfo.Load(); n != 0 {
		t.Errorf("%d UserInfo requests, want none: the ID token names the user", n)
	}
	status, body := s.do("POST", "/api/session", "", `{"name":"oidc-carl"}`)
	apiError(t, status, body, 409, "conflict")
}

// TestOIDCNameTaken: a provider user whose name is an account's is sent
// back to the sign-in page with the reason.
func TestOIDCNameTaken(t *testing.T) {
	s, _ := startOIDC(t, false)
	if status, body := s.do("POST", "/api/accounts", "", `{"name":"oidc-bob","password":"a long enough password"}`); status != 201 {
		t.Fatalf("account: %d %s", status, body)
	}
	end := oidcSignIn(t, browser(t, true), s, "oidc-bob")
	if end.Path != "/" || end.Query().Get("oidc_error") != "name_taken" {
		t.Errorf("sign-in as an account's name ended at %s, want /?oidc_error=name_taken", end)
	}
}

// TestOIDCCallbackBadInput: what reaches the callback other than the
// provider's answer to this browser's own login is a redirect to the
// sign-in page with a short code, never an error page.
func TestOIDCCallbackBadInput(t *testing.T) {
	s, _ := startOIDC(t, false)
	// A browser that has begun a login: its state cookie and the state.
	begin := func() (*http.Client, string) {
		b := browser(t, false)
		resp, err := b.Get(s.base + "/auth/oidc/login")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != 302 || err != nil {
			t.Fatalf("login: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		q := loc.Query()
		if q.Get("state") == "" || q.Get("nonce") == "" || q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256" {
			t.Fatalf("authorization request lacks state, nonce or PKCE S256: %s", loc)
		}
		return b, q.Get("state")
	}
	callback := func(b *http.Client, query string) string {
		resp, err := b.Get(s.base + "/auth/oidc/callback?" + query)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 302 {
			t.Fatalf("callback?%s: %d, want a redirect", query, resp.StatusCode)
		}
		for _, c := range b.Jar.Cookies(resp.Request.URL) {
			if c.Name == "parley_oidc" {
				t.Errorf("callback?%s left the state cookie", query)
			}
		}
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if loc.Path != "/" {
			t.Fatalf("callback?%s redirects to %s, want /", query, loc)
		}
		return loc.Query().Get("oidc_error")
	}
	b, state := begin()
	if got := callback(b, "state=wrong&code=abc"); got != "bad_state" {
		t.Errorf("wrong state: oidc_error=%q, want bad_state", got)
	}
	// The state cookie is for one callback: the right state now fails too.
	if got := callback(b, "state="+url.QueryEscape(state)+"&code=abc"); got != "bad_state" {
		t.Errorf("state cookie used twice: oidc_error=%q, want bad_state", got)
	}
	if got := callback(browser(t, false), "state="+url.QueryEscape(state)+"&code=abc"); got != "bad_state" {
		t.Errorf("no state cookie: oidc_error=%q, want bad_state", got)
	}
	b, state = begin()
	if got := callback(b, "state="+url.QueryEscape(state)); got != "missing_code" {
		t.Errorf("missing code: oidc_error=%q, want missing_code", got)
	}
	b, state = begin()
	if got := callback(b, "state="+url.QueryEscape(state)+"&error=access_denied"); got != "provider_error" {
		t.Errorf("provider error: oidc_error=%q, want provider_error", got)
	}
	b, state = begin()
	if got := callback(b, "state="+url.QueryEscape(state)+"&code=made-up"); got != "exchange_failed" {
		t.Errorf("made-up code: oidc_error=%q, want exchange_failed", got)
	}
	// A forged cookie (MAC of another key) is refused.
	u, _ := url.Parse(s.base)
	forged := browser(t, false)
	forged.Jar.SetCookies(u.ResolveReference(&url.URL{Path: "/auth/oidc/"}), []*http.Cookie{{Name: "parley_oidc", Value: "eyJzIjoieCIsIm4iOiJ5IiwidiI6InoiLCJlIjo5OTk5OTk5OTk5fQ.AAAA", Path: "/auth/oidc/"}})
	if got := callback(forged, "state=x&code=abc"); got != "bad_state" {
		t.Errorf("forged state cookie: oidc_error=%q, want bad_state", got)
	}
}

// TestOIDCRoutesOnlyWhenConfigured: without PARLEY_OIDC_ISSUER the routes
// are not there.
func TestOIDCRoutesOnlyWhenConfigured(t *testing.T) {
	s := startServer(t, nil)
	b := browser(t, false)
	for _, path := range []string{"/auth/oidc/login", "/auth/oidc/callback?state=x&code=y"} {
		if status, _ := s.get(b, path); status != 404 {
			t.Errorf("GET %s without OIDC configured: %d, want 404", path, status)
		}
	}
}

func TestIDPConfigChecks(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"issuer without client id":    {"PARLEY_OIDC_ISSUER": "https://idp.test", "PARLEY_PUBLIC_URL": "https://chat.test"},
		"issuer without public URL":   {"PARLEY_OIDC_ISSUER": "https://idp.test", "PARLEY_OIDC_CLIENT_ID": "c"},
		"client id without issuer":    {"PARLEY_OIDC_CLIENT_ID": "c"},
		"issuer not a URL":            {"PARLEY_OIDC_ISSUER": "idp.test", "PARLEY_OIDC_CLIENT_ID": "c", "PARLEY_PUBLIC_URL": "https://chat.test"},
		"JWKS URL not an http(s) URL": {"PARLEY_JWKS_URL": "file:///etc/jwks.json"},
	} {
		if _, err := LoadConfig(func(k string) string { return env[k] }, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	env := map[string]string{"PARLEY_OIDC_ISSUER": "https://idp.test", "PARLEY_OIDC_CLIENT_ID": "c", "PARLEY_PUBLIC_URL": "https://chat.test/",
		"PARLEY_JWKS_URL": "https://idp.test/jwks"}
	cfg, err := LoadConfig(func(k string) string { return env[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.oidcRedirectURL() != "https://chat.test/auth/oidc/callback" || cfg.OIDCName != "SSO" || cfg.JWTNameClaim != "preferred_username" {
		t.Errorf("config %+v", cfg)
	}
}

// TestIDPJWKSTokens: with PARLEY_JWKS_URL, a provider's EdDSA token works
// on REST and WebSocket like a Parley token, its name is held (a guest gets
// 409), and an HS256 token signed with the provider's public key is 401.
func TestIDPJWKSTokens(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{"kty": "OKP", "crv": "Ed25519",
			"kid": "k1", "alg": "EdDSA", "use": "sig", "x": base64.RawURLEncoding.EncodeToString(pub)}}})
	}))
	t.Cleanup(jwks.Close)
	s := startServer(t, func(c *Config) { c.JWKSURL, c.JWTIssuer = jwks.URL, "https://idp.test" })
	sign := func(method jwt.SigningMethod, key any, c jwt.MapClaims) string {
		tok := jwt.NewWithClaims(method, c)
		tok.Header["kid"] = "k1"
		v, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	claims := jwt.MapClaims{"iss": "https://idp.test", "sub": "u-jay", "preferred_username": "jwks-jay",
		"sid": "jay-session-1", "exp": time.Now().Add(time.Hour).Unix()}
	tok := sign(jwt.SigningMethodEdDSA, priv, claims)
	if status, body := s.do("GET", "/api/rooms", tok, ""); status != 200 {
		t.Fatalf("provider token: %d %s", status, body)
	}
	ws := s.dial(tok)
	room := uniqueRoom(t)
	ws.join(room)
	ws.sendAcked(room, "j1", "hello from the provider")
	ws.ack("j1")
	if msgs := ws.messages(1); msgs[0].User != "jwks-jay" {
		t.Errorf("message from %q, want jwks-jay", msgs[0].User)
	}
	status, body := s.do("POST", "/api/session", "", `{"name":"jwks-jay"}`)
	apiError(t, status, body, 409, "conflict")
	status, body = s.do("GET", "/api/rooms", sign(jwt.SigningMethodHS256, []byte(pub), claims), "")
	apiError(t, status, body, 401, "unauthorized")
	claims["iss"] = "https://evil.test"
	status, body = s.do("GET", "/api/rooms", sign(jwt.SigningMethodEdDSA, priv, claims), "")
	apiError(t, status, body, 401, "unauthorized")
	// Signing out revokes the provider session (its sid).
	if status, body := s.do("DELETE", "/api/session", tok, ""); status != 204 {
		t.Fatalf("sign out: %d %s", status, body)
	}
	status, body = s.do("GET", "/api/rooms", tok, "")
	apiError(t, status, body, 401, "unauthorized")
}
