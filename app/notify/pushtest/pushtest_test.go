package pushtest

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/SherClockHolmes/webpush-go"
	"github.com/golang-jwt/jwt/v5"
)

// capture is an HTTP client that keeps the request instead of sending it.
type capture struct {
	req  *http.Request
	body []byte
}

func (c *capture) Do(r *http.Request) (*http.Response, error) {
	c.req = r
	c.body, _ = io.ReadAll(r.Body)
	return &http.Response{StatusCode: 201, Body: io.NopCloser(strings.NewReader(""))}, nil
}

// encrypted returns a push of payload to a fresh subscription made by
// webpush-go (the sender's library), and the subscription's secrets.
func encrypted(t *testing.T, payload []byte) (c *capture, priv *ecdh.PrivateKey, auth []byte, endpoint string, vapidPub string) {
	t.Helper()
	priv, _ = ecdh.P256().GenerateKey(rand.Reader)
	auth = make([]byte, 16)
	rand.Read(auth)
	vpriv, vpub, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	c = &capture{}
	endpoint = "https://push.example.com/push/1"
	_, err = webpush.SendNotification(payload, &webpush.Subscription{Endpoint: endpoint, Keys: webpush.Keys{
		P256dh: base64.RawURLEncoding.EncodeToString(priv.PublicKey().Bytes()),
		Auth:   base64.RawURLEncoding.EncodeToString(auth),
	}}, &webpush.Options{HTTPClient: c, Subscriber: "ops@example.com", TTL: 60, VAPIDPublicKey: vpub, VAPIDPrivateKey: vpriv})
	if err != nil {
		t.Fatal(err)
	}
	return c, priv, auth, endpoint, vpub
}

func TestDecrypt(t *testing.T) {
	payload := []byte(`{"text":"hello"}`)
	c, priv, auth, _, _ := encrypted(t, payload)
	got, err := decrypt(c.body, priv, auth)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("decrypt = %q, %v; want %q", got, err, payload)
	}
	other, _ := ecdh.P256().GenerateKey(rand.Reader)
	flipped := bytes.Clone(c.body)
	flipped[len(flipped)-1] ^= 1
	saltFlipped := bytes.Clone(c.body)
	saltFlipped[0] ^= 1
	wrongAuth := bytes.Clone(auth)
	wrongAuth[0] ^= 1
	for name, tc := range map[string]struct {
		body []byte
		priv *ecdh.PrivateKey
		auth []byte
	}{
		"ciphertext flipped": {flipped, priv, auth},
		"salt flipped":       {saltFlipped, priv, auth},
		"other key":          {c.body, other, auth},
		"other auth":         {c.body, priv, wrongAuth},
		"truncated":          {c.body[:len(c.body)-1], priv, auth},
		"header only":        {c.body[:21+65], priv, auth},
		"short":              {c.body[:10], priv, auth},
	} {
		if got, err := decrypt(tc.body, tc.priv, tc.auth); err == nil {
			t.Errorf("%s: decrypted to %q", name, got)
		}
	}
}

func TestCheckVAPID(t *testing.T) {
	c, _, _, endpoint, vapidPub := encrypted(t, []byte("x"))
	header := c.req.Header.Get("Authorization")
	if _, err := checkVAPID(header, endpoint, ""); err != nil {
		t.Fatalf("webpush-go's header refused: %v", err)
	}
	if _, err := checkVAPID(header, endpoint, vapidPub); err != nil {
		t.Fatalf("header refused with its own key required: %v", err)
	}
	_, otherPub, _ := webpush.GenerateVAPIDKeys()
	if _, err := checkVAPID(header, endpoint, otherPub); err == nil {
		t.Error("header accepted when another key is required")
	}

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pubBytes, _ := key.PublicKey.Bytes()
	k := base64.RawURLEncoding.EncodeToString(pubBytes)
	sign := func(claims jwt.MapClaims, method jwt.SigningMethod, signer any) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString(signer)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := jwt.MapClaims{"aud": "https://push.example.com", "exp": time.Now().Add(time.Hour).Unix(), "sub": "mailto:ops@example.com"}
	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for n, x := range good {
			c[n] = x
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	if _, err := checkVAPID("vapid t="+sign(good, jwt.SigningMethodES256, key)+", k="+k, endpoint, ""); err != nil {
		t.Fatalf("good token refused: %v", err)
	}
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, h := range map[string]string{
		"other scheme":   "WebPush " + sign(good, jwt.SigningMethodES256, key),
		"no k":           "vapid t=" + sign(good, jwt.SigningMethodES256, key),
		"wrong signer":   "vapid t=" + sign(good, jwt.SigningMethodES256, otherKey) + ", k=" + k,
		"HS256":          "vapid t=" + sign(good, jwt.SigningMethodHS256, []byte("secret")) + ", k=" + k,
		"other audience": "vapid t=" + sign(with("aud", "https://evil.example.com"), jwt.SigningMethodES256, key) + ", k=" + k,
		"expired":        "vapid t=" + sign(with("exp", time.Now().Add(-time.Minute).Unix()), jwt.SigningMethodES256, key) + ", k=" + k,
		"no exp":         "vapid t=" + sign(with("exp", nil), jwt.SigningMethodES256, key) + ", k=" + k,
		"exp over 24 h":  "vapid t=" + sign(with("exp", time.Now().Add(25*time.Hour).Unix()), jwt.SigningMethodES256, key) + ", k=" + k,
		"no sub":         "vapid t=" + sign(with("sub", nil), jwt.SigningMethodES256, key) + ", k=" + k,
		"bad sub":        "vapid t=" + sign(with("sub", "ops"), jwt.SigningMethodES256, key) + ", k=" + k,
	} {
		if _, err := checkVAPID(h, endpoint, ""); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestCheckHeaders(t *testing.T) {
	c, _, _, _, _ := encrypted(t, []byte("x"))
	if err := checkHeaders(c.req.Header); err != nil {
		t.Fatalf("webpush-go's headers refused: %v", err)
	}
	for name, edit := range map[string]func(http.Header){
		"aesgcm":      func(h http.Header) { h.Set("Content-Encoding", "aesgcm") },
		"no TTL":      func(h http.Header) { h.Del("TTL") },
		"bad urgency": func(h http.Header) { h.Set("Urgency", "urgent") },
	} {
		h := c.req.Header.Clone()
		edit(h)
		if err := checkHeaders(h); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
