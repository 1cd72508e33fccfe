package handlers

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"

	"github.com/parley-chat/parley/app/chat"
)

// CookieName is the session cookie.
const CookieName = "parley_session"

// DefaultTokenTTL is a token's lifetime when Auth.TTL is zero.
const DefaultTokenTTL = 24 * time.Hour

// Auth issues and checks HS256 tokens: sub is the user, sid the session,
// guest marks a guest. Any system holding the secret can mint them, so an
// existing login can front Parley.
type Auth struct {
	Secret []byte
	// TTL is a token's lifetime; zero means DefaultTokenTTL.
	TTL time.Duration
	// Issuer and Audience, when set, are written into every token issued
	// and required of every token checked (PARLEY_JWT_ISSUER,
	// PARLEY_JWT_AUDIENCE).
	Issuer   string
	Audience string
	// JWKS, when set, also accepts the operator's identity provider's
	// tokens (PARLEY_JWKS_URL, see jwks.go).
	JWKS *JWKS
}

// Session is who a valid token speaks for.
type Session struct {
	User string
	// SID is the session id; a token minted elsewhere may have none, and
	// then cannot be revoked by itself (it expires).
	SID   string
	Guest bool
	// Expires is the token's expiry: live connections end then.
	Expires time.Time
}

// claims are a Parley token's claims.
type claims struct {
	jwt.RegisteredClaims
	SID   string `json:"sid,omitempty"`
	Guest bool   `json:"guest,omitempty"`
}

func (a *Auth) ttl() time.Duration {
	if a.TTL <= 0 {
		return DefaultTokenTTL
	}
	return a.TTL
}

// NewSID makes a session id: 128 random bits, hex.
func NewSID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Issue signs a token for a session of user, valid from now for the TTL.
func (a *Auth) Issue(user, sid string, guest bool) (string, Session, error) {
	now := time.Now()
	exp := now.Add(a.ttl()).Truncate(time.Second) // exp is whole seconds
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   user,
			Issuer:    a.Issuer,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
		SID: sid, Guest: guest,
	}
	if a.Audience != "" {
		c.Audience = jwt.ClaimStrings{a.Audience}
	}
	t, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(a.Secret)
	return t, Session{User: user, SID: sid, Guest: guest, Expires: exp}, err
}

// Verify checks token: HS256 with the secret, a numeric exp in the future,
// iss and aud when configured, and a sub that is a valid name. With JWKS
// set, a token of any other alg is the identity provider's (see jwks.go);
// an HS256 token is only ever checked against the secret.
func (a *Auth) Verify(token string) (Session, error) {
	if a.JWKS != nil && tokenAlg(token) != "HS256" {
		return a.JWKS.verify(token, a.Issuer, a.Audience)
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired()}
	if a.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(a.Issuer))
	}
	if a.Audience != "" {
		opts = append(opts, jwt.WithAudience(a.Audience))
	}
	var c claims
	if _, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return a.Secret, nil }, opts...); err != nil {
		return Session{}, err
	}
	if err := numericExp(token); err != nil {
		return Session{}, err
	}
	if chat.ValidateName(c.Subject) != nil {
		return Session{}, errors.New("token subject is not a valid user name")
	}
	return Session{User: c.Subject, SID: c.SID, Guest: c.Guest, Expires: c.ExpiresAt.Time}, nil
}

// numericExp refuses a token whose exp is not a JSON number: golang-jwt
// also reads "exp":"1700000000", which the contract refuses. The token's
// signature is checked before this runs.
func numericExp(token string) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return errors.New("malformed token")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return err
	}
	var raw struct {
		Exp json.RawMessage `json:"exp"`
	}
	if err := json.Unmarshal(payload, &raw); err != nil {
		return err
	}
	if len(raw.Exp) == 0 || !(raw.Exp[0] >= '0' && raw.Exp[0] <= '9') {
		return errors.New("exp must be a number")
	}
	return nil
}

// token returns the credential the request presents, in the contract's order:
// Bearer header, cookie, ?token=. The first present is the one checked.
func token(c *fiber.Ctx) (string, bool) {
	if h := c.Get(fiber.HeaderAuthorization); h != "" {
		t, ok := strings.CutPrefix(h, "Bearer ")
		return strings.TrimSpace(t), ok
	}
	if t := c.Cookies(CookieName); t != "" {
		return t, true
	}
	if t := c.Query("token"); t != "" {
		return t, true
	}
	return "", false
}

// session authenticates the request: a valid token whose session has not
// been revoked.
func (s *Server) session(c *fiber.Ctx) (Session, error) {
	t, ok := token(c)
	if !ok {
		return Session{}, chat.Errorf(chat.EUnauthorized, "sign in first: send a token as Bearer header, cookie or ?token=")
	}
	sess, err := s.Auth.Verify(t)
	if err != nil {
		if chat.ErrorCode(err) != chat.EInternal {
			return Session{}, err // e.g. an identity provider's name taken here
		}
		return Session{}, chat.Errorf(chat.EUnauthorized, "invalid or expired token")
	}
	if s.revoked.has(sess.SID) {
		return Session{}, chat.Errorf(chat.EUnauthorized, "the session has ended; sign in again")
	}
	return sess, nil
}

// requireUser authenticates the request, answering 401 before any upgrade
// or stream.
func (s *Server) requireUser(c *fiber.Ctx) error {
	sess, err := s.session(c)
	if err != nil {
		return err
	}
	c.Locals(localSession, sess)
	return c.Next()
}

const localSession = "session"

func sessionOf(c *fiber.Ctx) Session {
	sess, _ := c.Locals(localSession).(Session)
	return sess
}

// author is who the session's messages are from.
func (s Session) author() chat.Author { return chat.Author{Name: s.User, Guest: s.Guest} }

func userOf(c *fiber.Ctx) string { return sessionOf(c).User }
