package web

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/parley-chat/parley/static"
)

// render renders Index and parses the result, so the assertions below are
// about the document a browser builds, not about the bytes (STYLE.md, 10).
func render(t *testing.T, p IndexProps) *goquery.Document {
	t.Helper()
	var buf bytes.Buffer
	if err := Index(p).Render(context.Background(), &buf); err != nil {
		t.Fatalf("render: %v", err)
	}
	doc, err := goquery.NewDocumentFromReader(&buf)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return doc
}

func count(doc *goquery.Document, sel string) int { return doc.Find(sel).Length() }

func testID(id string) string { return `[data-testid="` + id + `"]` }

func TestSignedOutShowsSignInForm(t *testing.T) {
	doc := render(t, IndexProps{Guest: true})

	for _, id := range []string{"signin-form", "signin-name", "signin-button", "signin-error"} {
		if n := count(doc, testID(id)); n != 1 {
			t.Errorf("%s: %d elements, want 1", id, n)
		}
	}
	if got := doc.Find("body").AttrOr("data-page", ""); got != "signin" {
		t.Errorf("body data-page = %q, want signin", got)
	}
	// Nothing of the chat before sign-in.
	for _, id := range []string{"message-list", "message-input", "conn-state", "signout-button", "guest-disabled"} {
		if n := count(doc, testID(id)); n != 0 {
			t.Errorf("%s present while signed out", id)
		}
	}
	if lbl := doc.Find(`label[for="signin-name"]`); lbl.Length() != 1 {
		t.Error("the name input has no label")
	}
}

func TestGuestDisabledExplainsInsteadOfForm(t *testing.T) {
	doc := render(t, IndexProps{Guest: false})

	if n := count(doc, "form"); n != 0 {
		t.Errorf("%d forms while guest sign-in is off, want 0", n)
	}
	msg := doc.Find(testID("guest-disabled"))
	if msg.Length() != 1 || !strings.Contains(strings.ToLower(msg.Text()), "guest sign-in is turned off") {
		t.Errorf("guest-disabled notice = %q", msg.Text())
	}
}

func TestSignedInShowsChatShell(t *testing.T) {
	doc := render(t, IndexProps{User: "alice", Guest: true})

	if n := count(doc, testID("signin-form")); n != 0 {
		t.Error("sign-in form shown to a signed-in user")
	}
	for _, id := range []string{
		"user-name", "signout-button", "conn-state", "room-form", "room-input", "room-join",
		"room-list", "room-title", "message-pane", "message-list", "message-input", "send-button", "notice",
	} {
		if n := count(doc, testID(id)); n != 1 {
			t.Errorf("%s: %d elements, want 1", id, n)
		}
	}
	if got := strings.TrimSpace(doc.Find(testID("user-name")).Text()); got != "alice" {
		t.Errorf("user-name = %q, want alice", got)
	}
	body := doc.Find("body")
	if got := body.AttrOr("data-user", ""); got != "alice" {
		t.Errorf("body data-user = %q, want alice", got)
	}
	if got := body.AttrOr("data-page", ""); got != "app" {
		t.Errorf("body data-page = %q, want app", got)
	}
	if got := doc.Find(testID("conn-state")).AttrOr("data-state", ""); got != "connecting" {
		t.Errorf("conn-state starts as %q, want connecting", got)
	}
	// Guest sign-in being off changes nothing for someone already signed in.
	if n := count(render(t, IndexProps{User: "alice"}), testID("message-input")); n != 1 {
		t.Error("chat missing for a signed-in user on a server without guest sign-in")
	}
}

// The page may load nothing from elsewhere: no CDN, no web fonts.
func TestAssetsComeFromStatic(t *testing.T) {
	for _, p := range []IndexProps{{}, {Guest: true}, {User: "bob", Guest: true}} {
		doc := render(t, p)

		scripts := doc.Find("script[src]")
		if scripts.Length() != 1 {
			t.Errorf("%+v: %d scripts, want 1", p, scripts.Length())
		}
		if src := scripts.AttrOr("src", ""); !strings.HasPrefix(src, "/static/app.js") {
			t.Errorf("%+v: script src %q, want /static/app.js", p, src)
		}
		if href := doc.Find(`link[rel="stylesheet"]`).AttrOr("href", ""); !strings.HasPrefix(href, "/static/app.css") {
			t.Errorf("%+v: stylesheet %q, want /static/app.css", p, href)
		}
		doc.Find("[src], link[href]").Each(func(_ int, s *goquery.Selection) {
			u := s.AttrOr("src", s.AttrOr("href", ""))
			if !strings.HasPrefix(u, "/static/") {
				t.Errorf("%+v: %s loads %q, not from /static/", p, goquery.NodeName(s), u)
			}
		})
		// The one <script> without src is the catalogue: data the CSP allows.
		if n := count(doc, `script:not([src]):not([type="application/json"])`); n != 0 {
			t.Errorf("%+v: %d inline scripts", p, n)
		}
		if n := count(doc, `script#i18n[type="application/json"]`); n != 1 {
			t.Errorf("%+v: %d catalogue blocks, want 1", p, n)
		}
	}
}

// Every asset URL the page uses points at a file that is really embedded.
func TestAssetURLsExist(t *testing.T) {
	for _, name := range []string{"app.js", "app.css", "icon.svg"} {
		if _, err := fs.Stat(static.FS, name); err != nil {
			t.Errorf("static.FS lacks %s: %v", name, err)
		}
		u := asset(name)
		if !strings.HasPrefix(u, "/static/"+name+"?v=") {
			t.Errorf("asset(%q) = %q, want a versioned /static/ URL", name, u)
		}
	}
}

func TestUserNameIsEscaped(t *testing.T) {
	const name = `<b>eve</b>"><script>alert(1)</script>`
	doc := render(t, IndexProps{User: name, Guest: true})

	if n := count(doc, "header b, header script, body script:not([src])"); n != 0 {
		t.Errorf("user name became markup: %d elements", n)
	}
	if got := doc.Find(testID("user-name")).Text(); got != name {
		t.Errorf("user-name text = %q, want the name verbatim", got)
	}
	if got := doc.Find("body").AttrOr("data-user", ""); got != name {
		t.Errorf("data-user = %q, want the name verbatim", got)
	}
}

func TestInitial(t *testing.T) {
	for in, want := range map[string]string{"alice": "A", "élodie": "É", "": "?", "1x": "1"} {
		if got := initial(in); got != want {
			t.Errorf("initial(%q) = %q, want %q", in, got, want)
		}
	}
}

// With guests and accounts on, the page offers three ways to sign in, one
// tab each, the guest's shown first; every field has a label and an error
// line of its own, tied to it by aria-describedby.
func TestSignInTabs(t *testing.T) {
	doc := render(t, IndexProps{Guest: true, Accounts: true})

	tabs := doc.Find(`[role="tablist"] [role="tab"]`)
	if tabs.Length() != 3 {
		t.Fatalf("%d tabs, want 3", tabs.Length())
	}
	forms := map[string]string{"guest": "signin-form", "password": "password-form", "account": "account-form"}
	tabs.Each(func(_ int, tab *goquery.Selection) {
		name := tab.AttrOr("data-panel", "")
		form := doc.Find(testID(forms[name]))
		if form.Length() != 1 || form.AttrOr("id", "") != tab.AttrOr("aria-controls", "") {
			t.Errorf("tab %q controls %q, want the form %s", name, tab.AttrOr("aria-controls", ""), forms[name])
		}
		if form.AttrOr("aria-labelledby", "") != tab.AttrOr("id", "-") || form.AttrOr("role", "") != "tabpanel" {
			t.Errorf("form %s is not the tab panel of %q", forms[name], name)
		}
		selected := name == "guest"
		if got := tab.AttrOr("aria-selected", ""); got != map[bool]string{true: "true", false: "false"}[selected] {
			t.Errorf("tab %q aria-selected=%q", name, got)
		}
		if _, hidden := form.Attr("hidden"); hidden == selected {
			t.Errorf("form %s hidden=%v, want %v", forms[name], hidden, !selected)
		}
	})
	fields := map[string]string{
		"signin-name":      "signin-error",
		"password-name":    "password-name-error",
		"signin-password":  "password-error",
		"account-name":     "account-name-error",
		"account-password": "account-password-error",
		"account-confirm":  "account-confirm-error",
	}
	for input, errID := range fields {
		in := doc.Find(testID(input))
		if in.Length() != 1 {
			t.Errorf("%s: %d inputs, want 1", input, in.Length())
			continue
		}
		id := in.AttrOr("id", "")
		if doc.Find(`label[for="`+id+`"]`).Length() != 1 {
			t.Errorf("%s has no label", input)
		}
		e := doc.Find(testID(errID))
		if e.Length() != 1 || e.AttrOr("role", "") != "alert" {
			t.Errorf("%s: error line %s missing or not an alert", input, errID)
		}
		if !strings.Contains(" "+in.AttrOr("aria-describedby", "")+" ", " "+e.AttrOr("id", "-")+" ") {
			t.Errorf("%s is not described by its error line %s", input, errID)
		}
	}
	for _, id := range []string{"signin-form-error", "password-form-error", "account-form-error"} {
		if n := count(doc, testID(id)); n != 1 {
			t.Errorf("%s: %d elements, want 1", id, n)
		}
	}
	for _, pw := range []string{"signin-password", "account-password", "account-confirm"} {
		if got := doc.Find(testID(pw)).AttrOr("type", ""); got != "password" {
			t.Errorf("%s type=%q, want password", pw, got)
		}
	}
	// The buttons wait for static/js/signin.js: a form submitted before
	// it runs would go out as a plain GET.
	doc.Find(`button[type="submit"]`).Each(func(_ int, b *goquery.Selection) {
		if _, ok := b.Attr("disabled"); !ok {
			t.Errorf("%s is enabled before the script runs", b.AttrOr("data-testid", "a submit button"))
		}
	})
}

// With accounts only, the password sign-in is what the page shows first,
// and it says that guests are turned off; one way alone needs no tabs.
func TestSignInWithoutGuests(t *testing.T) {
	doc := render(t, IndexProps{Accounts: true})
	if n := count(doc, testID("signin-form")); n != 0 {
		t.Error("the guest form is offered while guests are off")
	}
	if _, hidden := doc.Find(testID("password-form")).Attr("hidden"); hidden {
		t.Error("the password form is hidden though it is the first way to sign in")
	}
	if n := count(doc, `[role="tab"]`); n != 2 {
		t.Errorf("%d tabs, want 2 (sign in, create account)", n)
	}
	if msg := doc.Find(testID("guest-disabled")).Text(); !strings.Contains(strings.ToLower(msg), "guest sign-in is turned off") {
		t.Errorf("guest-disabled = %q", msg)
	}

	doc = render(t, IndexProps{Guest: true})
	if n := count(doc, `[role="tab"], [role="tabpanel"]`); n != 0 {
		t.Errorf("%d tab elements for the one way to sign in", n)
	}
	if n := count(doc, testID("account-form")); n != 0 {
		t.Error("the account form is offered while accounts are off")
	}
}

func TestSignInWithOIDC(t *testing.T) {
	doc := render(t, IndexProps{Guest: true, OIDCName: `Acme <SSO>`})
	link := doc.Find(testID("oidc-link"))
	if link.Length() != 1 || link.AttrOr("href", "") != "/auth/oidc/login" {
		t.Fatalf("oidc-link: %d, href %q", link.Length(), link.AttrOr("href", ""))
	}
	if got := strings.TrimSpace(link.Text()); got != "Sign in with Acme <SSO>" {
		t.Errorf("oidc-link says %q", got)
	}
	if n := count(render(t, IndexProps{Guest: true}), testID("oidc-link")); n != 0 {
		t.Error("oidc-link shown without an identity provider")
	}
	// Only the identity provider: the page says guests are off and offers the link.
	doc = render(t, IndexProps{OIDCName: "Acme"})
	if count(doc, "form") != 0 || count(doc, testID("oidc-link")) != 1 || count(doc, testID("guest-disabled")) != 1 {
		t.Error("an identity-provider-only page lacks the link or the note, or offers a form")
	}
}

func TestSignInNotice(t *testing.T) {
	note := render(t, IndexProps{Guest: true, Notice: "The sign-in was cancelled."}).Find(testID("signin-notice"))
	if _, hidden := note.Attr("hidden"); hidden || strings.TrimSpace(note.Text()) != "The sign-in was cancelled." {
		t.Errorf("notice hidden=%v text=%q", hidden, note.Text())
	}
	// The element is there without a notice too (hidden), for signin.js to
	// say that a session ended (/?ended=1).
	note = render(t, IndexProps{Guest: true}).Find(testID("signin-notice"))
	if _, hidden := note.Attr("hidden"); note.Length() != 1 || !hidden {
		t.Errorf("empty notice: %d elements, hidden=%v", note.Length(), hidden)
	}
}

// The header's guest mark is filled in by the client (the refresh at start
// tells whether the session is a guest's); the server renders it hidden.
func TestGuestMarkStartsHidden(t *testing.T) {
	mark := render(t, IndexProps{User: "alice", Guest: true}).Find(testID("user-guest"))
	if _, hidden := mark.Attr("hidden"); mark.Length() != 1 || !hidden {
		t.Errorf("user-guest: %d elements, hidden=%v", mark.Length(), hidden)
	}
}

// The catalogues of all languages have the very same keys, each with the
// same placeholders, so no language shows a key or a raw {name}.
func TestCataloguesMatch(t *testing.T) {
	placeholders := regexp.MustCompile(`\{\w+\}`)
	base := Catalogue(Langs[0])
	if len(base) == 0 {
		t.Fatalf("catalogue %s is empty or does not parse", Langs[0])
	}
	for _, lang := range Langs {
		b, err := fs.ReadFile(static.FS, "i18n/"+lang+".json")
		if err != nil {
			t.Fatalf("%s: %v", lang, err)
		}
		var c map[string]string
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s.json: %v", lang, err)
		}
		for key, want := range base {
			got, ok := c[key]
			if !ok {
				t.Errorf("%s.json lacks %q", lang, key)
				continue
			}
			if got == "" {
				t.Errorf("%s.json: %q is empty", lang, key)
			}
			w, g := placeholders.FindAllString(want, -1), placeholders.FindAllString(got, -1)
			slices.Sort(w)
			slices.Sort(g)
			if !slices.Equal(w, g) {
				t.Errorf("%s.json: %q has placeholders %v, %s.json %v", lang, key, g, Langs[0], w)
			}
		}
		for key := range c {
			if _, ok := base[key]; !ok {
				t.Errorf("%s.json has %q, which %s.json lacks", lang, key, Langs[0])
			}
		}
	}
}

// Every key the template (p.T("key")) and the scripts (t('key')) use is in
// the catalogue, and every key of the catalogue is used by one of them
// (but the server's errors', "server.<key>").
func TestCatalogueKeysUsed(t *testing.T) {
	used := map[string]string{}
	tmpl, err := os.ReadFile("index.templ")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\bT\("([^"]+)"`).FindAllSubmatch(tmpl, -1) {
		used[string(m[1])] = "index.templ"
	}
	modules, err := fs.Glob(static.FS, "js/*.js")
	if err != nil {
		t.Fatal(err)
	}
	jsKey := regexp.MustCompile(`\bt\('([^']+)'`)
	for _, name := range modules {
		b, err := fs.ReadFile(static.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range jsKey.FindAllSubmatch(b, -1) {
			used[string(m[1])] = name
		}
	}
	if len(used) < 20 {
		t.Fatalf("only %d keys found in use; is the pattern still right?", len(used))
	}
	c := Catalogue(Langs[0])
	for _, key := range slices.Sorted(maps.Keys(used)) {
		if _, ok := c[key]; !ok {
			t.Errorf("%s uses %q, which the catalogue lacks", used[key], key)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(c)) {
		// The translations of the server's errors are used through
		// errorText, by the key an error carries; app/catalog_test.go
		// checks them against the errors the code makes.
		if strings.HasPrefix(key, "server.") {
			continue
		}
		if _, ok := used[key]; !ok {
			t.Errorf("catalogue key %q is used nowhere", key)
		}
	}
}

func TestChooseLang(t *testing.T) {
	for _, c := range []struct{ cookie, accept, want string }{
		{"", "", "en"},
		{"", "ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7", "ko"},
		{"", "en-US,en;q=0.9,ko;q=0.8", "en"},
		{"", "fr-FR,fr;q=0.9,ko;q=0.5", "ko"},
		{"", "de, fr", "en"},
		{"", "en;q=0.5, ko", "ko"},
		{"", "KO", "ko"},
		{"", "ko;q=0, en;q=0.1", "en"},
		{"en", "ko", "en"},
		{"ko", "en", "ko"},
		{"xx", "ko", "ko"},
	} {
		if got := ChooseLang(c.cookie, c.accept); got != c.want {
			t.Errorf("ChooseLang(%q, %q) = %q, want %q", c.cookie, c.accept, got, c.want)
		}
	}
}

// Both pages in each language: <html lang>, the text from that language's
// catalogue, the same catalogue embedded for the scripts, and the switcher
// showing that language.
func TestPageLanguage(t *testing.T) {
	for _, lang := range Langs {
		c := Catalogue(lang)
		for _, p := range []IndexProps{{Guest: true, Lang: lang}, {User: "alice", Lang: lang}} {
			doc := render(t, p)
			if got := doc.Find("html").AttrOr("lang", ""); got != lang {
				t.Errorf("%+v: html lang=%q", p, got)
			}
			var embedded map[string]string
			if err := json.Unmarshal([]byte(doc.Find("script#i18n").Text()), &embedded); err != nil || !maps.Equal(embedded, c) {
				t.Errorf("%+v: embedded catalogue is not %s.json (%v)", p, lang, err)
			}
			sw := doc.Find(testID("lang-switch"))
			if sw.Length() != 1 || sw.Find("option").Length() != len(Langs) {
				t.Errorf("%+v: lang-switch %d, options %d", p, sw.Length(), sw.Find("option").Length())
			}
			if got := sw.Find("option[selected]").AttrOr("value", ""); got != lang {
				t.Errorf("%+v: switcher shows %q", p, got)
			}
			id, key := "signin-button", "signin.guest.button"
			if p.User != "" {
				id, key = "signout-button", "chat.signout"
			}
			if got := strings.TrimSpace(doc.Find(testID(id)).Text()); got != c[key] {
				t.Errorf("%+v: %s says %q, want %q", p, id, got, c[key])
			}
		}
	}
	if got := render(t, IndexProps{}).Find("html").AttrOr("lang", ""); got != Langs[0] {
		t.Errorf("no Lang: html lang=%q, want %s", got, Langs[0])
	}
	if got := (IndexProps{Lang: "ko"}).T("signin.oidc", "name", "Acme"); got != "Acme(으)로 로그인" {
		t.Errorf("T with a placeholder: %q", got)
	}
}

// The chat shell has what rooms with members need (static/js/room.js,
// members.js, dialogs.js find them by test id): both sidebar lists, the
// member panel, the person menu as a popover, and the three dialogs, each a
// <dialog> named by its heading, every field of them labelled.
func TestChatShellHasRoomsUI(t *testing.T) {
	doc := render(t, IndexProps{User: "alice", Guest: true})
	for _, id := range []string{
		"room-list", "dm-list", "dm-empty", "create-open", "directory-open",
		"room-kind", "room-slow", "room-display-title", "room-topic", "room-join-public",
		"settings-open", "members-toggle", "members-panel", "add-member-form", "member-list", "ban-list",
		"person-menu", "create-dialog", "directory-dialog", "settings-dialog",
	} {
		if n := count(doc, testID(id)); n != 1 {
			t.Errorf("%s: %d elements, want 1", id, n)
		}
	}
	// What depends on the room and my role in it starts hidden; the script shows it.
	for _, id := range []string{"room-join-public", "settings-open", "members-toggle", "members-panel", "add-member-form"} {
		if _, hidden := doc.Find(testID(id)).Attr("hidden"); !hidden {
			t.Errorf("%s is not rendered hidden", id)
		}
	}
	if v := doc.Find(testID("person-menu")).AttrOr("popover", ""); v != "auto" {
		t.Errorf("person-menu popover=%q, want auto (Escape and a click elsewhere close it)", v)
	}
	for _, id := range []string{"create-dialog", "directory-dialog", "settings-dialog"} {
		d := doc.Find(testID(id))
		if goquery.NodeName(d) != "dialog" {
			t.Errorf("%s is a <%s>, want <dialog>", id, goquery.NodeName(d))
		}
		by := d.AttrOr("aria-labelledby", "")
		if h := d.Find("#" + by); by == "" || h.Length() != 1 || strings.TrimSpace(h.Text()) == "" {
			t.Errorf("%s: aria-labelledby=%q names no heading inside it", id, by)
		}
		d.Find("input, textarea").Each(func(_ int, in *goquery.Selection) {
			if in.AttrOr("type", "") == "radio" {
				if in.ParentFiltered("label").Length() != 1 {
					t.Errorf("%s: a radio button outside its label", id)
				}
				return
			}
			fid := in.AttrOr("id", "")
			if fid == "" || d.Find(`label[for="`+fid+`"]`).Length() != 1 {
				t.Errorf("%s: field %q has no label", id, fid)
			}
		})
	}
	if lbl := doc.Find(`label[for="add-member-input"]`); lbl.Length() != 1 {
		t.Error("the add-member input has no label")
	}
}

// The bell and its panel: in the header, a count that starts hidden (the
// script fills it), a popover panel labelled by its heading, and the push
// button hidden until the script knows both the server and the browser can.
func TestChatShellHasBell(t *testing.T) {
	doc := render(t, IndexProps{User: "alice", Guest: true})
	for _, id := range []string{"bell", "bell-count", "bell-panel", "bell-list", "bell-empty", "bell-more", "push-toggle", "bell-status"} {
		if n := count(doc, testID(id)); n != 1 {
			t.Errorf("%s: %d elements, want 1", id, n)
		}
	}
	if doc.Find(".topbar "+testID("bell")).Length() != 1 {
		t.Error("the bell is not in the header")
	}
	for _, id := range []string{"bell-count", "bell-empty", "bell-more", "push-toggle", "bell-status"} {
		if _, hidden := doc.Find(testID(id)).Attr("hidden"); !hidden {
			t.Errorf("%s is not rendered hidden", id)
		}
	}
	panel := doc.Find(testID("bell-panel"))
	if v := panel.AttrOr("popover", ""); v != "auto" {
		t.Errorf("bell-panel popover=%q, want auto", v)
	}
	by := panel.AttrOr("aria-labelledby", "")
	if h := panel.Find("#" + by); by == "" || h.Length() != 1 || strings.TrimSpace(h.Text()) == "" {
		t.Errorf("bell-panel: aria-labelledby=%q names no heading inside it", by)
	}
	if b := doc.Find(testID("bell")); b.AttrOr("aria-controls", "") != "bell-panel" || strings.TrimSpace(b.AttrOr("aria-label", "")) == "" {
		t.Error("the bell names neither its panel nor itself")
	}
	// Signed out: no bell.
	if n := count(render(t, IndexProps{Guest: true}), testID("bell")); n != 0 {
		t.Errorf("the sign-in page has %d bells", n)
	}
}
