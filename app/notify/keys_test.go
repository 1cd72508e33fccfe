package notify

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-chat/parley/app/chat"
)

func TestLoadOrCreateVAPID(t *testing.T) {
	dir := t.TempDir()
	v, err := LoadOrCreateVAPID(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "vapid.json"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("vapid.json mode %o, want 600", perm)
	}
	again, err := LoadOrCreateVAPID(dir)
	if err != nil || again != v {
		t.Fatalf("second load %+v, %v; want the keys written first %+v", again, err, v)
	}
	if _, err := VAPIDFromEnv(v.PublicKey, v.PrivateKey); err != nil {
		t.Errorf("generated keys refused: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want vapid.json alone", len(entries))
	}
	other, _ := LoadOrCreateVAPID(t.TempDir())
	if other == v {
		t.Error("two data dirs got the same keys")
	}

	for name, content := range map[string]string{
		"not JSON":   "{",
		"mismatched": `{"public_key":"` + other.PublicKey + `","private_key":"` + v.PrivateKey + `"}`,
		"empty keys": `{}`,
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "vapid.json"), []byte(content), 0o600)
		if _, err := LoadOrCreateVAPID(dir); err == nil || !strings.Contains(err.Error(), "vapid.json") {
			t.Errorf("%s: error %v, want one naming vapid.json", name, err)
		}
	}
	if _, err := LoadOrCreateVAPID(filepath.Join(dir, "missing", "dir")); err == nil {
		t.Error("a data dir that does not exist: no error")
	}
}

func TestVAPIDFromEnv(t *testing.T) {
	v, err := LoadOrCreateVAPID(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pubBytes, _ := base64.RawURLEncoding.DecodeString(v.PublicKey)
	privBytes, _ := base64.RawURLEncoding.DecodeString(v.PrivateKey)
	padded, err := VAPIDFromEnv(base64.URLEncoding.EncodeToString(pubBytes), base64.URLEncoding.EncodeToString(privBytes))
	if err != nil || padded != v {
		t.Fatalf("padded keys: %+v, %v; want %+v unpadded", padded, err, v)
	}
	other, _ := ecdh.P256().GenerateKey(rand.Reader)
	enc := base64.RawURLEncoding.EncodeToString
	zero := make([]byte, 32)
	offCurve := append([]byte(nil), pubBytes...)
	offCurve[64] ^= 1
	for name, c := range map[string][2]string{
		"no public":        {"", v.PrivateKey},
		"no private":       {v.PublicKey, ""},
		"swapped":          {v.PrivateKey, v.PublicKey},
		"mismatched":       {enc(other.PublicKey().Bytes()), v.PrivateKey},
		"private not b64":  {v.PublicKey, "not*base64"},
		"public not b64":   {"not*base64", v.PrivateKey},
		"private short":    {v.PublicKey, enc(privBytes[:31])},
		"private zero":     {v.PublicKey, enc(zero)},
		"public short":     {enc(pubBytes[:33]), v.PrivateKey},
		"public off curve": {enc(offCurve), v.PrivateKey},
		"standard b64":     {base64.StdEncoding.EncodeToString(pubBytes) + "+/", v.PrivateKey},
	} {
		if _, err := VAPIDFromEnv(c[0], c[1]); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestValidateSubscription(t *testing.T) {
	key, _ := ecdh.P256().GenerateKey(rand.Reader)
	pub := key.PublicKey().Bytes()
	enc := base64.RawURLEncoding.EncodeToString
	p256dh, auth := enc(pub), enc([]byte("0123456789abcdef"))
	offCurve := append([]byte(nil), pub...)
	offCurve[64] ^= 1
	compressed := append([]byte{2 + pub[64]&1}, pub[1:33]...)
	const fcm = "https://fcm.googleapis.com/fcm/send/abc:def"
	for _, c := range []struct {
		name                   string
		endpoint, p256dh, auth string
		loopback               bool
		ok                     bool
	}{
		{"good", fcm, p256dh, auth, false, true},
		{"padded keys", fcm, base64.URLEncoding.EncodeToString(pub), base64.URLEncoding.EncodeToString([]byte("0123456789abcdef")), false, true},
		{"longest endpoint", "https://push.example.com/" + strings.Repeat("a", MaxEndpointLen-25), p256dh, auth, false, true},
		{"endpoint too long", "https://push.example.com/" + strings.Repeat("a", MaxEndpointLen-24), p256dh, auth, false, false},
		{"no endpoint", "", p256dh, auth, false, false},
		{"relative", "/push/1", p256dh, auth, false, false},
		{"no host", "https:///push", p256dh, auth, false, false},
		{"opaque", "https:push.example.com", p256dh, auth, false, false},
		{"http", "http://push.example.com/1", p256dh, auth, false, false},
		{"http with switch, not loopback", "http://push.example.com/1", p256dh, auth, true, false},
		{"http loopback without switch", "http://127.0.0.1:8080/1", p256dh, auth, false, false},
		{"http 127.0.0.1 with switch", "http://127.0.0.1:8080/1", p256dh, auth, true, true},
		{"http ::1 with switch", "http://[::1]:8080/1", p256dh, auth, true, true},
		{"http localhost with switch", "http://localhost:8080/1", p256dh, auth, true, true},
		{"http 127.0.0.2 with switch", "http://127.0.0.2:8080/1", p256dh, auth, true, false},
		{"userinfo", "https://user:pw@push.example.com/1", p256dh, auth, false, false},
		{"ftp", "ftp://push.example.com/1", p256dh, auth, false, false},
		{"javascript", "javascript:alert(1)", p256dh, auth, false, false},
		{"p256dh missing", fcm, "", auth, false, false},
		{"p256dh not base64url", fcm, "****", auth, false, false},
		{"p256dh standard base64", fcm, strings.ReplaceAll(strings.ReplaceAll(p256dh, "-", "+"), "_", "/") + "+/", auth, false, false},
		{"p256dh compressed", fcm, enc(compressed), auth, false, false},
		{"p256dh short", fcm, enc(pub[:64]), auth, false, false},
		{"p256dh off curve", fcm, enc(offCurve), auth, false, false},
		{"p256dh infinity-ish zeros", fcm, enc(append([]byte{4}, make([]byte, 64)...)), auth, false, false},
		{"auth missing", fcm, p256dh, "", false, false},
		{"auth short", fcm, p256dh, enc(make([]byte, 15)), false, false},
		{"auth long", fcm, p256dh, enc(make([]byte, 17)), false, false},
		{"auth not base64url", fcm, p256dh, "!!!!", false, false},
	} {
		err := ValidateSubscription(c.endpoint, c.p256dh, c.auth, c.loopback)
		if c.ok && err != nil {
			t.Errorf("%s: refused: %v", c.name, err)
		}
		if !c.ok {
			if err == nil {
				t.Errorf("%s: accepted", c.name)
			} else if chat.ErrorCode(err) != chat.EBadRequest {
				t.Errorf("%s: error %v, want code %s", c.name, err, chat.EBadRequest)
			}
		}
	}
}
