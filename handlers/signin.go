package handlers

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/app/chat"
)

// The session routes: guests and accounts sign in, sessions refresh and end.

// signIn is POST /api/session: {"name"} signs a guest in, holding the name
// while the session lives; {"name","password"} signs an account in.
func (s *Server) signIn(c *fiber.Ctx) error {
	if err := s.allowSignIn(s.clientIP(c)); err != nil {
		return err
	}
	var req struct {
		Name     string  `json:"name"`
		Password *string `json:"password"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Password != nil {
		return s.passwordSignIn(c, req.Name, *req.Password)
	}
	if !s.Guest {
		return chat.Errorf(chat.EForbidden, "guest sign-in is turned off on this server")
	}
	if err := chat.ValidateName(req.Name); err != nil {
		return err
	}
	t, sess, err := s.Auth.Issue(req.Name, NewSID(), true)
	if err != nil {
		return err
	}
	if err := s.holdGuestName(c, sess); err != nil {
		return err
	}
	return s.startSession(c, fiber.StatusOK, t, sess)
}

// passwordSignIn signs an account in. An unknown name and a wrong password
// get the same 401, after the same work (a hash compared either way).
func (s *Server) passwordSignIn(c *fiber.Ctx, name, password string) error {
	canonical := chat.CanonicalName(name)
	if !s.passwordTries.allow(canonical) {
		s.Metrics.Refused(limitPassword)
		return chat.Errorf(chat.ERateLimited, "too many sign-in attempts for this name; wait a minute")
	}
	ctx := c.UserContext()
	h, err := s.People.Holder(ctx, canonical)
	if err != nil && chat.ErrorCode(err) != chat.ENotFound {
		return unavailable(err)
	}
	hash := h.Hash
	if err != nil || h.Kind != chat.HolderAccount {
		hash = dummyHash()
	}
	ok, cerr := checkPassword(ctx, password, hash)
	if cerr != nil {
		return cerr
	}
	if !ok || hash != h.Hash {
		return chat.Errorf(chat.EUnauthorized, "wrong name or password")
	}
	t, sess, err := s.Auth.Issue(h.Name, NewSID(), false)
	if err != nil {
		return err
	}
	return s.startSession(c, fiber.StatusOK, t, sess)
}

// createAccount is POST /api/accounts {"name","password"}: the name is the
// account's for good, the password kept only as an argon2id hash.
func (s *Server) createAccount(c *fiber.Ctx) error {
	if !s.Accounts {
		return chat.Errorf(chat.EForbidden, "accounts are turned off on this server")
	}
	if err := s.allowSignIn(s.clientIP(c)); err != nil {
		return err
	}
	var req struct {
		Name     string `json:"name"`
		Password string `json:"password"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if err := chat.ValidateName(req.Name); err != nil {
		return err
	}
	if err := validatePassword(req.Password); err != nil {
		return err
	}
	ctx := c.UserContext()
	// A cheap look first: a taken name costs no hash.
	if h, err := s.People.Holder(ctx, chat.CanonicalName(req.Name)); err == nil && h.Live(time.Now()) {
		return nameTaken(chat.Errorf(chat.EConflict, "taken"), req.Name)
	}
	hash, err := hashPassword(ctx, req.Password)
	if err != nil {
		return err
	}
	acct := chat.Holder{Canonical: chat.CanonicalName(req.Name), Name: req.Name, Kind: chat.HolderAccount, Hash: hash, Created: time.Now()}
	if err := s.People.Claim(ctx, acct, time.Now()); err != nil {
		return nameTaken(err, req.Name)
	}
	t, sess, err := s.Auth.Issue(req.Name, NewSID(), false)
	if err != nil {
		return err
	}
	return s.startSession(c, fiber.StatusCreated, t, sess)
}

// refresh is POST /api/session/refresh: a valid token is traded for a new
// one of the same session (a guest's hold moves with it).
func (s *Server) refresh(c *fiber.Ctx) error {
	// Each refresh of a guest writes its hold: limited like a sign-in.
	if err := s.allowSignIn(s.clientIP(c)); err != nil {
		return err
	}
	old := sessionOf(c)
	sid := old.SID
	if sid == "" {
		sid = NewSID() // a token minted elsewhere: the new one can be revoked
	}
	t, sess, err := s.Auth.Issue(old.User, sid, old.Guest)
	if err != nil {
		return err
	}
	if sess.Guest {
		if err := s.holdGuestName(c, sess); err != nil {
			return err
		}
	}
	return s.startSession(c, fiber.StatusOK, t, sess)
}

// signOut is DELETE /api/session: the session ends on every instance (its
// tokens get 401, its connections close), a guest's name is free again,
// and the cookie is cleared. Without a valid token it only clears the
// cookie.
func (s *Server) signOut(c *fiber.Ctx) error {
	if sess, err := s.session(c); err == nil {
		ctx := c.UserContext()
		if err := s.revoke(ctx, sess); err != nil {
			return err
		}
		if sess.Guest {
			if err := s.People.Release(ctx, chat.CanonicalName(sess.User), sess.SID); err != nil {
				return unavailable(err)
			}
		}
	}
	c.ClearCookie(CookieName)
	c.Cookie(&fiber.Cookie{Name: CookieName, Value: "", Path: "/", HTTPOnly: true,
		SameSite: fiber.CookieSameSiteLaxMode, Expires: time.Unix(0, 0), MaxAge: -1})
	return c.SendStatus(fiber.StatusNoContent)
}

// holdGuestName makes guest session sess the holder of its name until the
// session's token expires (a new hold, or the same session's extended).
func (s *Server) holdGuestName(c *fiber.Ctx, sess Session) error {
	now := time.Now()
	hold := chat.Holder{Canonical: chat.CanonicalName(sess.User), Name: sess.User, Kind: chat.HolderGuest,
		Subject: sess.SID, Expires: sess.Expires, Created: now}
	if err := s.People.Claim(c.UserContext(), hold, now); err != nil {
		return nameTaken(err, sess.User)
	}
	return nil
}

// setSessionCookie sets the session cookie to token t, expiring with it.
func (s *Server) setSessionCookie(c *fiber.Ctx, t string, sess Session) {
	c.Cookie(&fiber.Cookie{
		Name:     CookieName,
		Value:    t,
		Path:     "/",
		HTTPOnly: true,
		SameSite: fiber.CookieSameSiteLaxMode,
		Secure:   s.scheme(c) == "https",
		Expires:  sess.Expires,
	})
}

// startSession answers a sign-in: the token in the body and the cookie.
func (s *Server) startSession(c *fiber.Ctx, status int, t string, sess Session) error {
	s.setSessionCookie(c, t, sess)
	return c.Status(status).JSON(fiber.Map{"user": sess.User, "token": t, "guest": sess.Guest, "expires": sess.Expires.Unix()})
}

// nameTaken turns a Claim's conflict into the answer naming the name.
func nameTaken(err error, name string) error {
	if chat.ErrorCode(err) == chat.EConflict {
		return chat.Errorf(chat.EConflict, "the name %q (or one that looks like it) is taken", name)
	}
	return unavailable(err)
}
