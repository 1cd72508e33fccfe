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
