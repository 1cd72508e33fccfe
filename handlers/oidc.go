package handlers

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gofiber/fiber/v2"
	"golang.org/x/oauth2"

	"github.com/parley-chat/parley/app/chat"
)

// OIDC browser sign-in at the operator's identity provider
// (PARLEY_OIDC_*): the authorization code flow with PKCE (S256), a random
// state and nonce, through coreos/go-oidc (discovery, ID token checks) and
// golang.org/x/oauth2 (the code exchange). GET /auth/oidc/login sends the
// browser to the provider; GET /auth/oidc/callback checks what comes back,
// holds the user's name like an account's (chat.HolderExternal, subject
// issuer|sub) and starts a Parley session in the cookie. Every failure is
// a redirect to "/?oidc_error=<code>" for the sign-in page to explain,
// never an error page.

// OIDC error codes, as the callback's redirect carries them.
const (
	OIDCBadState    = "bad_state"            // no, an expired or a forged state cookie, or another state
	OIDCProvider    = "provider_error"       // the provider answered with an error (e.g. the user declined)
	OIDCMissingCode = "missing_code"         // the callback has no code
	OIDCUnavailable = "provider_unavailable" // the provider's discovery document could not be read
	OIDCExchange    = "exchange_failed"      // the provider refused the code (or did not answer)
	OIDCBadToken    = "bad_id_token"         // no ID token, or one that fails verification or the nonce
	OIDCBadName     = "bad_name"             // the provider's name for the user is not a valid name here
	OIDCNameTaken   = "name_taken"           // the name is an account's, a guest's or another identity's
	OIDCRateLimited = "rate_limited"         // too many sign-ins from the address
	OIDCInternal    = "internal"             // the store or the session could not be written
)

// oidcNotices are the sign-in page's plain words for each error code.
var oidcNotices = map[string]string{
	OIDCBadState:    "The sign-in took too long or was started elsewhere; please try again.",
	OIDCProvider:    "The identity provider did not sign you in.",
	OIDCMissingCode: "The identity provider's answer was incomplete; please try again.",
	OIDCUnavailable: "The identity provider cannot be reached right now; try again later.",
	OIDCExchange:    "The identity provider did not confirm the sign-in; please try again.",
	OIDCBadToken:    "The identity provider's answer could not be verified.",
	OIDCBadName:     "Your name at the identity provider is not a valid name here.",
	OIDCNameTaken:   "Your name at the identity provider already belongs to someone else here.",
	OIDCRateLimited: "Too many sign-ins from your address; wait a moment.",
	OIDCInternal:    "The sign-in could not be completed; try again later.",
}

// OIDCNotice is the sign-in page's message for "/?oidc_error=<code>"
// (web.IndexProps.Notice): empty for no code, a general one for a code it
// does not know, never the query's own text.
func OIDCNotice(code string) string {
	if code == "" {
		return ""
	}
	if n, ok := oidcNotices[code]; ok {
		return n
	}
	return oidcNotices[OIDCInternal]
}

// oidcStateCookie carries state, nonce and PKCE verifier from login to
// callback: short-lived, HttpOnly, SameSite=Lax (the callback is a
// top-level navigation from the provider), and MAC'd with the secret.
const (
	oidcStateCookie = "parley_oidc"
	oidcStatePath   = "/auth/oidc/"
	oidcStateTTL    = 10 * time.Minute
)

// OIDCOptions configure NewOIDC.
type OIDCOptions struct {
	// Issuer is the provider's issuer URL (PARLEY_OIDC_ISSUER), exactly as
	// its discovery document states it.
	Issuer       string
	ClientID     string
	ClientSecret string
	// RedirectURL is PARLEY_PUBLIC_URL + /auth/oidc/callback, as
	// registered at the provider.
	RedirectURL string
	// Secret keys the state cookie's MAC (PARLEY_SECRET or the generated one).
	Secret []byte
	// Scopes asked for; openid and profile by default.
	Scopes []string
	// Client talks to the provider; a 10 s timeout by default.
	Client *http.Client
}

// OIDC is the sign-in at one provider. Discovery happens on the first
// sign-in, and again after a failed one, so that Parley starts while its
// provider is down.
type OIDC struct {
	opts     OIDCOptions
	mu       sync.Mutex
	provider *oidc.Provider
}

// NewOIDC checks o; it does not reach the provider yet.
func NewOIDC(o OIDCOptions) (*OIDC, error) {
	if o.Issuer == "" || o.ClientID == "" || o.RedirectURL == "" || len(o.Secret) == 0 {
		return nil, errors.New("oidc: issuer, client id, redirect URL and secret are required")
	}
	if len(o.Scopes) == 0 {
		o.Scopes = []string{oidc.ScopeOpenID, "profile"}
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	return &OIDC{opts: o}, nil
}

// discover returns the provider, fetching its discovery document once.
func (o *OIDC) discover(ctx context.Context) (*oidc.Provider, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider != nil {
		return o.provider, nil
	}
	p, err := oidc.NewProvider(o.ctx(ctx), o.opts.Issuer)
	if err != nil {
		return nil, err
	}
	o.provider = p
	return p, nil
}

func (o *OIDC) ctx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, o.opts.Client)
}

func (o *OIDC) oauth2(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{ClientID: o.opts.ClientID, ClientSecret: o.opts.ClientSecret, RedirectURL: o.opts.RedirectURL,
		Endpoint: p.Endpoint(), Scopes: o.opts.Scopes}
}

// RegisterOIDC installs the OIDC routes: call it after Register, so that
// the security layer covers them, and only when OIDC is configured.
func (s *Server) RegisterOIDC(app *fiber.App, o *OIDC) {
	app.Get("/auth/oidc/login", s.bounded, s.oidcLogin(o))
	app.Get("/auth/oidc/callback", s.bounded, s.oidcCallback(o))
}

// oidcState is what the state cookie carries.
type oidcState struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Expires  int64  `json:"e"`
}

func (o *OIDC) mac(payload string) []byte {
	m := hmac.New(sha256.New, o.opts.Secret)
	m.Write([]byte("parley oidc state\x00"))
	m.Write([]byte(payload))
	return m.Sum(nil)
}

func (o *OIDC) seal(st oidcState) string {
	b, _ := json.Marshal(st)
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + base64.RawURLEncoding.EncodeToString(o.mac(payload))
}

func (o *OIDC) open(v string, now time.Time) (oidcState, bool) {
	payload, sig, ok := strings.Cut(v, ".")
	if !ok {
		return oidcState{}, false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, o.mac(payload)) {
		return oidcState{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	var st oidcState
	if err != nil || json.Unmarshal(b, &st) != nil || st.State == "" || now.Unix() >= st.Expires {
		return oidcState{}, false
	}
	return st, true
}

// setOIDCState sets the state cookie for maxAge seconds; a negative
// maxAge deletes it (fasthttp writes no Max-Age below 1: an Expires in the
// past does it).
func (s *Server) setOIDCState(c *fiber.Ctx, value string, maxAge int) {
	ck := &fiber.Cookie{Name: oidcStateCookie, Value: value, Path: oidcStatePath, MaxAge: maxAge,
		HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode, Secure: s.scheme(c) == "https"}
	if maxAge < 0 {
		ck.Expires = time.Unix(0, 0)
	}
	c.Cookie(ck)
}

// oidcFail sends the browser to the sign-in page with the error's code.
func oidcFail(c *fiber.Ctx, code string) error {
	return c.Redirect("/?oidc_error="+url.QueryEscape(code), fiber.StatusFound)
}

// oidcLogin is GET /auth/oidc/login: a fresh state, nonce and PKCE
// verifier in the cookie, and off to the provider.
func (s *Server) oidcLogin(o *OIDC) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := s.allowSignIn(s.clientIP(c)); err != nil {
			return oidcFail(c, OIDCRateLimited)
		}
		p, err := o.discover(c.UserContext())
		if err != nil {
			s.Log.Warn("oidc discovery", "issuer", o.opts.Issuer, "err", err)
			return oidcFail(c, OIDCUnavailable)
		}
		st := oidcState{State: NewSID(), Nonce: NewSID(), Verifier: oauth2.GenerateVerifier(),
			Expires: time.Now().Add(oidcStateTTL).Unix()}
		s.setOIDCState(c, o.seal(st), int(oidcStateTTL/time.Second))
		c.Set(fiber.HeaderCacheControl, "no-store")
		u := o.oauth2(p).AuthCodeURL(st.State, oidc.Nonce(st.Nonce), oauth2.S256ChallengeOption(st.Verifier))
		return c.Redirect(u, fiber.StatusFound)
	}
}

// oidcCallback is GET /auth/oidc/callback?code&state: the state is the
// cookie's, the code is exchanged with the verifier, the ID token is
// verified (issuer, audience, expiry, signature, nonce), and the user is
// signed in under the name the provider gives.
func (s *Server) oidcCallback(o *OIDC) fiber.Handler {
	return func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderCacheControl, "no-store")
		st, ok := o.open(c.Cookies(oidcStateCookie), time.Now())
		s.setOIDCState(c, "", -1) // one use
		if !ok || !hmac.Equal([]byte(c.Query("state")), []byte(st.State)) {
			return oidcFail(c, OIDCBadState)
		}
		if c.Query("error") != "" {
			return oidcFail(c, OIDCProvider)
		}
		code := c.Query("code")
		if code == "" {
			return oidcFail(c, OIDCMissingCode)
		}
		ctx := o.ctx(c.UserContext())
		p, err := o.discover(ctx)
		if err != nil {
			s.Log.Warn("oidc discovery", "issuer", o.opts.Issuer, "err", err)
			return oidcFail(c, OIDCUnavailable)
		}
		cfg := o.oauth2(p)
		tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(st.Verifier))
		if err != nil {
			s.Log.Warn("oidc code exchange", "err", err)
			return oidcFail(c, OIDCExchange)
		}
		raw, _ := tok.Extra("id_token").(string)
		if raw == "" {
			return oidcFail(c, OIDCBadToken)
		}
		idt, err := p.Verifier(&oidc.Config{ClientID: o.opts.ClientID}).Verify(ctx, raw)
		if err != nil || !hmac.Equal([]byte(idt.Nonce), []byte(st.Nonce)) {
			s.Log.Warn("oidc id token", "err", err)
			return oidcFail(c, OIDCBadToken)
		}
		name, err := oidcName(ctx, p, idt, cfg.TokenSource(ctx, tok))
		if err != nil {
			s.Log.Warn("oidc user name", "err", err)
			return oidcFail(c, OIDCBadToken)
		}
		if chat.ValidateName(name) != nil {
			return oidcFail(c, OIDCBadName)
		}
		if err := claimExternal(c.UserContext(), s.People, name, idt.Issuer+"|"+idt.Subject); err != nil {
			if chat.ErrorCode(err) == chat.EUnauthorized {
				return oidcFail(c, OIDCNameTaken)
			}
			s.Log.Warn("oidc name claim", "err", err)
			return oidcFail(c, OIDCInternal)
		}
		t, sess, err := s.Auth.Issue(name, NewSID(), false)
		if err != nil {
			s.Log.Warn("oidc session", "err", err)
			return oidcFail(c, OIDCInternal)
		}
		s.setSessionCookie(c, t, sess)
		return c.Redirect("/", fiber.StatusFound)
	}
}

// oidcNames are the claims a user's name is taken from, in order.
type oidcNames struct {
	Subject           string `json:"sub"`
	PreferredUsername string `json:"preferred_username"`
	Name              string `json:"name"`
}

func (n oidcNames) pick() string {
	for _, v := range []string{n.PreferredUsername, n.Name, n.Subject} {
		if v != "" {
			return v
		}
	}
	return ""
}

// oidcName is the user's name: preferred_username, else name, else sub, of
// the ID token, or of the UserInfo endpoint when the ID token carries
// neither name (many providers put profile claims only there).
func oidcName(ctx context.Context, p *oidc.Provider, idt *oidc.IDToken, ts oauth2.TokenSource) (string, error) {
	var n oidcNames
	if err := idt.Claims(&n); err != nil {
		return "", err
	}
	if n.PreferredUsername != "" || n.Name != "" || p.UserInfoEndpoint() == "" {
		return n.pick(), nil
	}
	ui, err := p.UserInfo(ctx, ts)
	if err != nil {
		return "", err
	}
	if ui.Subject != idt.Subject {
		return "", errors.New("userinfo is of another subject than the ID token")
	}
	var more oidcNames
	if err := ui.Claims(&more); err != nil {
		return "", err
	}
	more.Subject = idt.Subject
	return more.pick(), nil
}
