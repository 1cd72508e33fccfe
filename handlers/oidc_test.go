package handlers

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/web"
)

// The OIDC flow end to end, through a real provider, is tested black-box
// in app/idp_test.go; these are the parts that need no provider.

func testOIDC(t *testing.T, issuer string) *OIDC {
	t.Helper()
	o, err := NewOIDC(OIDCOptions{Issuer: issuer, ClientID: "c", RedirectURL: "http://chat.test/auth/oidc/callback",
		Secret: []byte("oidc-test-secret-0123456789abcdef0123")})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestOIDCStateCookie(t *testing.T) {
	o := testOIDC(t, "http://idp.test")
	now := time.Now()
	st := oidcState{State: "s1", Nonce: "n1", Verifier: "v1", Expires: now.Add(time.Minute).Unix()}
	v := o.seal(st)
	if got, ok := o.open(v, now); !ok || got != st {
		t.Fatalf("open(seal) = %+v, %v", got, ok)
	}
	if _, ok := o.open(v, now.Add(2*time.Minute)); ok {
		t.Error("expired state accepted")
	}
	other := testOIDC(t, "http://idp.test")
	other.opts.Secret = []byte("another-secret-0123456789abcdef0123456")
	payload, _, _ := strings.Cut(v, ".")
	for name, bad := range map[string]string{
		"another key's MAC": other.seal(st),
		"no MAC":            payload,
		"payload changed":   o.seal(oidcState{State: "s2", Expires: st.Expires})[:len(payload)] + v[len(payload):],
		"empty":             "",
		"garbage":           "a.b",
	} {
		if _, ok := o.open(bad, now); ok {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewOIDC(OIDCOptions{Issuer: "http://idp.test"}); err == nil {
		t.Error("NewOIDC without client id, redirect URL and secret accepted")
	}
}

// TestOIDCRoutesGuardedAndNeverFail: the OIDC routes pass the security
// layer like every other (RegisterOIDC comes after Register), and a
// provider that cannot be reached is a redirect to the sign-in page, not
// an error page.
func TestOIDCRoutesGuardedAndNeverFail(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler()) // no discovery document
	t.Cleanup(down.Close)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := testStore(t)
	srv := &Server{Store: store, People: store, Log: log, Auth: &Auth{Secret: []byte("oidc-test-secret-0123456789abcdef0123")}}
	app := fiber.New(fiber.Config{ErrorHandler: ErrorHandler(log)})
	srv.Register(app)
	srv.RegisterOIDC(app, testOIDC(t, down.URL))
	for _, path := range []string{"/auth/oidc/login", "/auth/oidc/callback?state=x&code=y", "/auth/oidc/callback"} {
		req := httptest.NewRequest("GET", "http://chat.test"+path, nil)
		req.Header.Set("Origin", "https://evil.test")
		resp, err := app.Test(req, 5000)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options"} {
			if resp.Header.Get(h) == "" {
				t.Errorf("%s: answer without %s", path, h)
			}
		}
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != 302 || loc == nil || loc.Path != "/" || loc.Query().Get("oidc_error") == "" {
			t.Errorf("%s: %d Location %q, want a redirect to /?oidc_error=", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// A compressed body is refused before the handler, as everywhere.
	req := httptest.NewRequest("GET", "http://chat.test/auth/oidc/login", strings.NewReader("x"))
	req.Header.Set("Content-Encoding", "gzip")
	if resp, err := app.Test(req, 5000); err != nil || resp.StatusCode != 415 {
		t.Errorf("gzip body on /auth/oidc/login: %v %v, want 415", resp.StatusCode, err)
	}
}

func TestOIDCNotice(t *testing.T) {
	if OIDCNotice("") != "" {
		t.Error("a notice without an error")
	}
	for _, code := range []string{OIDCBadState, OIDCProvider, OIDCMissingCode, OIDCUnavailable, OIDCExchange,
		OIDCBadToken, OIDCBadName, OIDCNameTaken, OIDCRateLimited, OIDCInternal} {
		if OIDCNotice(code) == "" || OIDCNotice(code) == code {
			t.Errorf("%s: no plain message", code)
		}
	}
	if n := OIDCNotice("<script>"); n != OIDCNotice(OIDCInternal) {
		t.Errorf("unknown code: %q", n)
	}
}

// The sign-in page says why an OIDC sign-in failed in the page's language:
// the catalogue's translation of the notice, not the English text.
func TestOIDCNoticeInThePageLanguage(t *testing.T) {
	app, _, _ := fuzzServer(t)
	for _, lang := range web.Langs {
		req := httptest.NewRequest("GET", "http://parley.test/?oidc_error="+OIDCNameTaken, nil)
		req.Header.Set("Cookie", web.LangCookie+"="+lang)
		resp, err := app.Test(req, 5000)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := goquery.NewDocumentFromReader(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		got := strings.TrimSpace(doc.Find(`[data-testid="signin-notice"]`).Text())
		want := web.Catalogue(lang)["server."+OIDCNotice(OIDCNameTaken)]
		if want == "" {
			t.Fatalf("%s.json lacks the notice %q", lang, OIDCNotice(OIDCNameTaken))
		}
		if got != want {
			t.Errorf("%s: the notice is %q, want %q", lang, got, want)
		}
	}
}
