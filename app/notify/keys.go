package notify

import (
	"crypto/ecdh"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/SherClockHolmes/webpush-go"

	"github.com/parley-chat/parley/app/chat"
)

// VAPID is the application server's key pair (RFC 8292), each key
// unpadded base64url: PublicKey is the uncompressed P-256 point that
// browsers take as applicationServerKey (what GET /api/push/vapid gives),
// PrivateKey the 32-byte scalar that signs each push's JWT.
type VAPID struct {
	PublicKey  string `json:"public_key"`
	PrivateKey string `json:"private_key"`
}

// vapidFile is the name of the key file in the data dir.
const vapidFile = "vapid.json"

// VAPIDFromEnv checks the keys given by PARLEY_VAPID_PUBLIC_KEY and
// PARLEY_VAPID_PRIVATE_KEY: base64url (padding tolerated), a P-256 private
// scalar and the public point that belongs to it. A pair that does not match
// would sign JWTs that every push service refuses, so it fails at start, not
// at the first push. The keys come back unpadded.
func VAPIDFromEnv(pub, priv string) (VAPID, error) {
	if pub == "" || priv == "" {
		return VAPID{}, errors.New("PARLEY_VAPID_PUBLIC_KEY and PARLEY_VAPID_PRIVATE_KEY must be set together")
	}
	return parseVAPID(pub, priv)
}

func parseVAPID(pub, priv string) (VAPID, error) {
	privBytes, err := decodeKey(priv)
	if err != nil {
		return VAPID{}, fmt.Errorf("VAPID private key: not base64url: %w", err)
	}
	if len(privBytes) != 32 {
		return VAPID{}, fmt.Errorf("VAPID private key: %d bytes, want a 32-byte P-256 scalar", len(privBytes))
	}
	key, err := ecdh.P256().NewPrivateKey(privBytes)
	if err != nil {
		return VAPID{}, fmt.Errorf("VAPID private key: not a P-256 key: %w", err)
	}
	pubBytes, err := decodeKey(pub)
	if err != nil {
		return VAPID{}, fmt.Errorf("VAPID public key: not base64url: %w", err)
	}
	if _, err := ecdh.P256().NewPublicKey(pubBytes); err != nil {
		return VAPID{}, fmt.Errorf("VAPID public key: not an uncompressed P-256 point (65 bytes, on the curve): %w", err)
	}
	if subtle.ConstantTimeCompare(key.PublicKey().Bytes(), pubBytes) != 1 {
		return VAPID{}, errors.New("VAPID public key does not belong to the private key")
	}
	return VAPID{
		PublicKey:  base64.RawURLEncoding.EncodeToString(pubBytes),
		PrivateKey: base64.RawURLEncoding.EncodeToString(privBytes),
	}, nil
}

// LoadOrCreateVAPID reads the key pair from vapid.json in dir, or, when
// there is none, generates one and writes it there (mode 0600: the private
// key signs for this server). Keys must outlive restarts: browsers
// subscribed with the public key, and a new one would orphan every
// subscription. The embedded mode uses it; a cluster is given its keys.
func LoadOrCreateVAPID(dir string) (VAPID, error) {
	path := filepath.Join(dir, vapidFile)
	v, err := readVAPID(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return v, err
	}
	priv, pub, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		return VAPID{}, fmt.Errorf("generate VAPID keys: %w", err)
	}
	if v, err = parseVAPID(pub, priv); err != nil {
		return VAPID{}, fmt.Errorf("generated VAPID keys: %w", err)
	}
	data, _ := json.MarshalIndent(v, "", "  ")
	// Written whole to a temporary file, then linked into place: a crash
	// leaves no half-written key file, and a link (unlike a rename) fails
	// when another process created the file first, whose keys then win.
	tmp, err := os.CreateTemp(dir, ".vapid-*.json") // mode 0600
	if err != nil {
		return VAPID{}, fmt.Errorf("write VAPID keys: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return VAPID{}, fmt.Errorf("write VAPID keys: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return VAPID{}, fmt.Errorf("write VAPID keys: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return VAPID{}, fmt.Errorf("write VAPID keys: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readVAPID(path)
		}
		return VAPID{}, fmt.Errorf("write VAPID keys: %w", err)
	}
	return v, nil
}

func readVAPID(path string) (VAPID, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return VAPID{}, err
	}
	var raw VAPID
	if err := json.Unmarshal(data, &raw); err != nil {
		return VAPID{}, fmt.Errorf("%s: %w", path, err)
	}
	v, err := parseVAPID(raw.PublicKey, raw.PrivateKey)
	if err != nil {
		return VAPID{}, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// decodeKey decodes base64url with or without padding, as browsers and
// key generators variously write it.
func decodeKey(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// MaxEndpointLen bounds a push subscription's endpoint (bytes). Real push
// services' endpoints are a few hundred bytes.
const MaxEndpointLen = 1024

// ValidateSubscription checks a browser PushSubscription before it is
// stored: the endpoint an absolute https URL of at most MaxEndpointLen
// bytes without userinfo (or, with allowLoopbackHTTP — the test switch —
// http to 127.0.0.1, ::1 or localhost); p256dh an uncompressed P-256 point
// on the curve and auth a 16-byte secret, both base64url (padding
// tolerated). Keys that fail here would fail every encryption later; an
// endpoint that fails would make the server post to places no push service
// lives. Errors are *chat.Error of code EBadRequest.
func ValidateSubscription(endpoint, p256dh, auth string, allowLoopbackHTTP bool) error {
	if endpoint == "" {
		return chat.Errorf(chat.EBadRequest, "endpoint is required")
	}
	if len(endpoint) > MaxEndpointLen {
		return chat.Errorf(chat.EBadRequest, "endpoint is longer than %d bytes", MaxEndpointLen)
	}
	u, err := url.Parse(endpoint)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return chat.Errorf(chat.EBadRequest, "endpoint must be an absolute URL")
	}
	if u.User != nil {
		return chat.Errorf(chat.EBadRequest, "endpoint must not carry user info")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowLoopbackHTTP && isLoopbackHost(u.Hostname()):
	default:
		return chat.Errorf(chat.EBadRequest, "endpoint must be an https URL")
	}
	dh, err := decodeKey(p256dh)
	if err != nil {
		return chat.Errorf(chat.EBadRequest, "keys.p256dh must be base64url")
	}
	if len(dh) != 65 {
		return chat.Errorf(chat.EBadRequest, "keys.p256dh must be a 65-byte uncompressed P-256 point")
	}
	if _, err := ecdh.P256().NewPublicKey(dh); err != nil {
		return chat.Errorf(chat.EBadRequest, "keys.p256dh is not a point on P-256")
	}
	a, err := decodeKey(auth)
	if err != nil {
		return chat.Errorf(chat.EBadRequest, "keys.auth must be base64url")
	}
	if len(a) != 16 {
		return chat.Errorf(chat.EBadRequest, "keys.auth must be 16 bytes")
	}
	return nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && (ip.Equal(net.IPv4(127, 0, 0, 1)) || ip.Equal(net.IPv6loopback))
}
