package handlers

import (
	"io/fs"
	"net/http"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"

	"github.com/parley-chat/parley/static"
	"github.com/parley-chat/parley/web"
)

func (s *Server) registerPages(app *fiber.App) {
	app.Get("/", s.index)
	app.Get("/sw.js", serviceWorker)
	app.Use("/static", filesystem.New(filesystem.Config{
		Root:   http.FS(static.Served),
		MaxAge: 3600,
	}))
}

// serviceWorker serves static/sw.js at the root: a service worker's scope
// is at most the folder it is served from, and Web Push's covers the whole
// page. no-cache: the browser checks for a new one on every registration
// and update, so a fixed worker reaches everyone at once.
func serviceWorker(c *fiber.Ctx) error {
	b, err := fs.ReadFile(static.FS, "sw.js")
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "text/javascript; charset=utf-8")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	return c.Send(b)
}

// index renders the chat page; a valid session cookie shows the chat, no
// cookie the sign-in form.
func (s *Server) index(c *fiber.Ctx) error {
	user := ""
	if t := c.Cookies(CookieName); t != "" {
		if sess, err := s.Auth.Verify(t); err == nil && !s.revoked.has(sess.SID) {
			user = sess.User
		}
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set(fiber.HeaderCacheControl, "no-store")
	props := web.IndexProps{User: user, Guest: s.Guest, Accounts: s.Accounts, OIDCName: s.OIDCName,
		Lang: web.ChooseLang(c.Cookies(web.LangCookie), c.Get(fiber.HeaderAcceptLanguage))}
	// The page differs by language as well as by session.
	c.Vary(fiber.HeaderAcceptLanguage, fiber.HeaderCookie)
	if code := c.Query("oidc_error"); code != "" {
		props.Notice = localNotice(props.Lang, OIDCNotice(code))
	}
	return web.Index(props).Render(c.UserContext(), c.Response().BodyWriter())
}

// localNotice is notice in lang: like a server error's message, its English
// text is its key, "server.<text>" in the catalogue (app/catalog_test.go
// keeps every one translated); the English text when lang lacks it.
func localNotice(lang, notice string) string {
	if s, ok := web.Catalogue(lang)["server."+notice]; ok && s != "" {
		return s
	}
	return notice
}
