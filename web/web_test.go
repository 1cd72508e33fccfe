package web

import (
	"bytes"
	"context"
	"io/fs"
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
		if n := count(doc, "script:not([src])"); n != 0 {
			t.Errorf("%+v: %d inline scripts", p, n)
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
