// Package web renders Parley's HTML pages with templ. The pages are a
// server-rendered shell; static/app.js brings them to life (sign-in, rooms,
// history, the live WebSocket or SSE connection).
package web

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/a-h/templ"

	"github.com/parley-chat/parley/static"
)

// IndexProps is what the server knows when it renders "/".
type IndexProps struct {
	// User is the signed-in user's name; empty when nobody is signed in, in
	// which case the page shows the sign-in form.
	User string
	// Guest tells whether guest sign-in (POST /api/session) is enabled on
	// this server. When it is off and nobody is signed in, the page says so
	// instead of offering a form that would only be refused.
	Guest bool
	// Accounts tells whether password accounts (POST /api/accounts and
	// password sign-in) are enabled.
	Accounts bool
	// OIDCName, when set, is the operator's identity provider: the page
	// offers "Sign in with <OIDCName>" (GET /auth/oidc/login).
	OIDCName string
	// Notice is a plain message for the sign-in page, e.g. why the last
	// session ended or why an OIDC sign-in failed.
	Notice string
	// Lang is the page's language, one of Langs (ChooseLang); empty means
	// the default. The page is rendered in it and carries its catalogue
	// for the scripts.
	Lang string
}

// asset returns the URL of a file of package static with a short content hash
// as its query, so a browser never runs a stale app.js against a newer server
// while the files themselves can still be cached. The hash is computed once
// per file, at start, from the embedded bytes; app.js's covers the modules
// under js/ too, since it imports them from a path carrying its own hash.
func asset(name string) string {
	if u, ok := assetURLs[name]; ok {
		return u
	}
	return "/static/" + name
}

var assetURLs = func() map[string]string {
	m := map[string]string{}
	_ = fs.WalkDir(static.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		names := []string{path}
		if path == "app.js" {
			modules, err := fs.Glob(static.FS, "js/*.js")
			if err != nil {
				return err
			}
			names = append(names, modules...)
		}
		h := sha256.New()
		for _, name := range names {
			b, err := fs.ReadFile(static.FS, name)
			if err != nil {
				return err
			}
			h.Write([]byte(name + "\x00"))
			h.Write(b)
		}
		m[path] = "/static/" + path + "?v=" + hex.EncodeToString(h.Sum(nil)[:4])
		return nil
	})
	return m
}()

// initial is the first letter of a user name, for the avatar badge.
func initial(user string) string {
	for _, r := range user {
		return strings.ToUpper(string(r))
	}
	return "?"
}

// tabs counts the ways to sign in that the page offers as tabs: a guest's
// name, and an account's two (sign in, create). One way needs no tabs.
func tabs(p IndexProps) int {
	n := 0
	if p.Guest {
		n++
	}
	if p.Accounts {
		n += 2
	}
	return n
}

// panel is the ARIA of sign-in form name: a tab panel labelled by its tab,
// when there are tabs; nothing otherwise.
func panel(p IndexProps, name string) templ.Attributes {
	if tabs(p) < 2 {
		return nil
	}
	return templ.Attributes{"role": "tabpanel", "aria-labelledby": "tab-" + name}
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// tabIndex keeps only the selected tab in the Tab order (the arrow keys
// move between tabs, as WAI-ARIA's tabs pattern says).
func tabIndex(selected bool) string {
	if selected {
		return "0"
	}
	return "-1"
}

// Langs are the languages of the UI, the first being the default; each has
// its catalogue static/i18n/<lang>.json.
var Langs = []string{"en", "ko"}

// LangCookie names the cookie in which the page's language switcher keeps
// the reader's choice (static/js/i18n.js sets it).
const LangCookie = "parley_lang"

// catalogues holds every language's messages, read once from the embedded
// files. A catalogue that does not parse is a build mistake: the package
// test catches it, and the page would show keys instead of text.
var catalogues = func() map[string]map[string]string {
	m := map[string]map[string]string{}
	for _, lang := range Langs {
		c := map[string]string{}
		if b, err := fs.ReadFile(static.FS, "i18n/"+lang+".json"); err == nil {
			_ = json.Unmarshal(b, &c)
		}
		m[lang] = c
	}
	return m
}()

// Catalogue returns the messages of lang (the default language's for an
// unknown one).
func Catalogue(lang string) map[string]string {
	if c, ok := catalogues[lang]; ok {
		return c
	}
	return catalogues[Langs[0]]
}

// ChooseLang picks the page's language: the cookie when it names one of
// Langs, else the first tag of Accept-Language (by quality, then order)
// whose primary subtag is one of Langs, else the default.
func ChooseLang(cookie, acceptLanguage string) string {
	if slices.Contains(Langs, cookie) {
		return cookie
	}
	type tag struct {
		lang string
		q    float64
	}
	var tags []tag
	for _, part := range strings.Split(acceptLanguage, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		primary, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(name)), "-")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		if q > 0 && slices.Contains(Langs, primary) {
			tags = append(tags, tag{primary, q})
		}
	}
	slices.SortStableFunc(tags, func(a, b tag) int { return cmp.Compare(b.q, a.q) })
	if len(tags) > 0 {
		return tags[0].lang
	}
	return Langs[0]
}

// lang is the page's language, the default when unset.
func (p IndexProps) lang() string {
	if slices.Contains(Langs, p.Lang) {
		return p.Lang
	}
	return Langs[0]
}

// T is the message key in the page's language, each {name} in it replaced
// by the value following name in args; a missing key shows as itself, which
// the catalogue test prevents.
func (p IndexProps) T(key string, args ...string) string {
	s, ok := Catalogue(p.lang())[key]
	if !ok {
		return key
	}
	for i := 0; i+1 < len(args); i += 2 {
		s = strings.ReplaceAll(s, "{"+args[i]+"}", args[i+1])
	}
	return s
}
