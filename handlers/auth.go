package handlers

import (
	"errors"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"

	"github.com/parley-chat/parley/app/chat"
)

// CookieName is the session cookie.
const CookieName = "parley_session"

// Auth issues and checks HS256 tokens with sub = user. Any system holding
// the secret can mint them, so an existing login can front Parley.
type Auth struct {
	Secret []byte
	// TTL is a token's lifetime; zero means 7 days.
	TTL time.Duration
}

func (a *Auth) ttl() time.Duration {
	if a.TTL <= 0 {
		return 7 * 24 * time.Hour
	}
	return a.TTL
}

// Issue signs a token for user.
func (a *Auth) Issue(user string) (string, error) {
	now := time.Now()
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject:   user,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(a.ttl())),
	}).SignedString(a.Secret)
}

// Verify checks token and returns its user.
func (a *Auth) Verify(token string) (string, error) {
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return a.Secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	if err != nil {
		return "", err
	}
	if chat.ValidateName(claims.Subject) != nil {
		return "", errors.New("token subject is not a valid user name")
	}
	return claims.Subject, nil
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

// user authenticates the request, answering 401 before any upgrade or stream.
func (s *Server) requireUser(c *fiber.Ctx) error {
	t, ok := token(c)
	if !ok {
		return chat.Errorf(chat.EUnauthorized, "sign in first: send a token as Bearer header, cookie or ?token=")
	}
	user, err := s.Auth.Verify(t)
	if err != nil {
		return chat.Errorf(chat.EUnauthorized, "invalid or expired token")
	}
	c.Locals(localUser, user)
	return c.Next()
}

const localUser = "user"

func userOf(c *fiber.Ctx) string {
	u, _ := c.Locals(localUser).(string)
	return u
}

// signIn is POST /api/session: a guest picks a name.
func (s *Server) signIn(c *fiber.Ctx) error {
	if !s.Guest {
		return chat.Errorf(chat.EForbidden, "guest sign-in is turned off on this server")
	}
	if err := s.allowSignIn(s.clientIP(c)); err != nil {
		return err
	}
	var req struct {
		Name string `json:"name"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if err := chat.ValidateName(req.Name); err != nil {
		return err
	}
	t, err := s.Auth.Issue(req.Name)
	if err != nil {
		return err
	}
	c.Cookie(&fiber.Cookie{
		Name:     CookieName,
		Value:    t,
		Path:     "/",
		HTTPOnly: true,
		SameSite: fiber.CookieSameSiteLaxMode,
		Secure:   s.scheme(c) == "https",
		Expires:  time.Now().Add(s.Auth.ttl()),
	})
	return c.JSON(fiber.Map{"user": req.Name, "token": t})
}

// signOut is DELETE /api/session (an extension): it clears the cookie.
func (s *Server) signOut(c *fiber.Ctx) error {
	c.ClearCookie(CookieName)
	c.Cookie(&fiber.Cookie{Name: CookieName, Value: "", Path: "/", HTTPOnly: true,
		SameSite: fiber.CookieSameSiteLaxMode, Expires: time.Unix(0, 0), MaxAge: -1})
	return c.SendStatus(fiber.StatusNoContent)
}
