// Package pushtest plays a Web Push service for tests: it hands out
// browser-style subscriptions whose endpoints are its own, and checks each
// push it receives the way a real push service and browser would — the
// VAPID Authorization header (RFC 8292) and the aes128gcm payload
// encryption (RFC 8291, RFC 8188), which it decrypts with the
// subscription's private key.
//
// No maintained Go library decrypts RFC 8291 payloads (webpush-go only
// encrypts), so the decryption here is built from the standard library's
// primitives (crypto/ecdh, crypto/hkdf, crypto/aes, crypto/cipher). It is
// test-only code: it never runs in the server.
package pushtest

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parley-chat/parley/app/chat"
)

// Subscription is what a browser's PushSubscription.toJSON() gives: the
// endpoint and the keys, base64url.
type Subscription struct {
	Endpoint string `json:"endpoint"`
	Keys     Keys   `json:"keys"`
}

// Keys are a subscription's public key and auth secret.
type Keys struct {
	P256dh string `json:"p256dh"`
	Auth   string `json:"auth"`
}

// For is s held by user, as the store keeps it.
func (s Subscription) For(user string) chat.PushSubscription {
	return chat.PushSubscription{User: user, Endpoint: s.Endpoint, P256dh: s.Keys.P256dh, Auth: s.Keys.Auth}
}

// Delivery is a delivery of s to user with payload body, as the
// notifications consumer queues it.
func (s Subscription) Delivery(id, user string, body []byte) chat.Delivery {
	return chat.Delivery{ID: id, Kind: chat.DeliverPush, URL: s.Endpoint, User: user,
		P256dh: s.Keys.P256dh, Auth: s.Keys.Auth, Body: body}
}

// Push is one push request the service received.
type Push struct {
	// Endpoint is the subscription's endpoint it was posted to.
	Endpoint string
	// Payload is the decrypted message (nil when Err is set).
	Payload []byte
	Header  http.Header
	// Subject is the VAPID JWT's sub claim: the sender's contact.
	Subject string
	// Status is what the service answered; 0 for a stalled request.
	Status int
	// Err says why the push was refused as malformed (bad VAPID, bad
	// encryption); the test is failed too.
	Err error
}

// Stall, given to Answer, makes the service hold requests without
// answering until the sender gives up on them.
const Stall = -1

// Server is a fake push service on 127.0.0.1.
type Server struct {
	t   testing.TB
	srv *httptest.Server
	// done, closed at cleanup, releases stalled requests, so that the
	// server can close.
	done chan struct{}

	mu     sync.Mutex
	subs   map[string]*subscription // by endpoint path
	pushes []Push
	// changed is closed and replaced whenever pushes grows.
	changed chan struct{}
	// vapidKey, when set, is the only VAPID public key accepted.
	vapidKey string
	next     int
}

type subscription struct {
	endpoint string
	priv     *ecdh.PrivateKey
	auth     []byte
	answer   int
}

// New starts a push service, closed at the end of the test.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, done: make(chan struct{}), subs: map[string]*subscription{}, changed: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	t.Cleanup(func() { close(s.done) }) // runs first: cleanups are last in, first out
	return s
}

// URL is the service's base URL.
func (s *Server) URL() string { return s.srv.URL }

// RequireVAPIDKey makes the service refuse pushes signed with any VAPID
// public key but pub (base64url), as a real one refuses a key the
// subscription was not made with.
func (s *Server) RequireVAPIDKey(pub string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vapidKey = strings.TrimRight(pub, "=")
}

// NewSubscription makes a subscription as a browser would: a fresh P-256
// key pair and 16-byte auth secret, and an endpoint on this service.
func (s *Server) NewSubscription() Subscription {
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		s.t.Fatalf("pushtest: generate key: %v", err)
	}
	auth := make([]byte, 16)
	rand.Read(auth)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	path := "/push/" + strconv.Itoa(s.next)
	sub := &subscription{endpoint: s.srv.URL + path, priv: priv, auth: auth, answer: http.StatusCreated}
	s.subs[path] = sub
	return Subscription{Endpoint: sub.endpoint, Keys: Keys{
		P256dh: base64.RawURLEncoding.EncodeToString(priv.PublicKey().Bytes()),
		Auth:   base64.RawURLEncoding.EncodeToString(auth),
	}}
}

// Answer sets what pushes to endpoint are answered from now on: a status
// (201 by default; 404 or 410 say the subscription is gone, 429 or 5xx to
// fail) or Stall. Pushes are checked and recorded whatever the answer.
func (s *Server) Answer(endpoint string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sub := range s.subs {
		if sub.endpoint == endpoint {
			sub.answer = status
			return
		}
	}
	s.t.Fatalf("pushtest: no subscription %s", endpoint)
}

// Pushes returns the pushes received so far, oldest first.
func (s *Server) Pushes() []Push {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Push(nil), s.pushes...)
}

// Wait waits until n pushes have been received (or ctx ends: then it
// returns those received and ctx's error).
func (s *Server) Wait(ctx context.Context, n int) ([]Push, error) {
	for {
		s.mu.Lock()
		got, changed := len(s.pushes), s.changed
		s.mu.Unlock()
		if got >= n {
			return s.Pushes(), nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return s.Pushes(), ctx.Err()
		}
	}
}

func (s *Server) record(p Push) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pushes = append(s.pushes, p)
	close(s.changed)
	s.changed = make(chan struct{})
}

// maxBody is the most a push service must accept (RFC 8030 section 7.2).
const maxBody = 4096

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	sub := s.subs[r.URL.Path]
	var answer int
	if sub != nil {
		answer = sub.answer
	}
	wantKey := s.vapidKey
	s.mu.Unlock()
	if r.Method != http.MethodPost || sub == nil {
		// Not a push: nothing a test sender should ever make.
		s.t.Errorf("pushtest: %s %s: not a push to a known subscription", r.Method, r.URL.Path)
		http.Error(w, "no such subscription", http.StatusNotFound)
		return
	}
	p := Push{Endpoint: sub.endpoint, Header: r.Header.Clone()}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err == nil && len(body) > maxBody {
		err = fmt.Errorf("body of more than %d bytes", maxBody)
	}
	status := http.StatusBadRequest
	if err == nil {
		if err = checkHeaders(r.Header); err == nil {
			status = http.StatusUnauthorized
			if p.Subject, err = checkVAPID(r.Header.Get("Authorization"), sub.endpoint, wantKey); err == nil {
				status = http.StatusBadRequest
				p.Payload, err = decrypt(body, sub.priv, sub.auth)
			}
		}
	}
	if err != nil {
		p.Err, p.Status = err, status
		s.t.Errorf("pushtest: push to %s refused: %v", sub.endpoint, err)
		s.record(p)
		http.Error(w, err.Error(), status)
		return
	}
	if answer == Stall {
		s.record(p)
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
		return
	}
	p.Status = answer
	s.record(p)
	if answer == http.StatusCreated {
		w.Header().Set("Location", sub.endpoint+"/msg/"+strconv.Itoa(len(s.Pushes())))
	}
	w.WriteHeader(answer)
}

// checkHeaders checks the headers RFC 8030 and 8291 require of a push.
func checkHeaders(h http.Header) error {
	if h.Get("Content-Encoding") != "aes128gcm" {
		return fmt.Errorf("Content-Encoding %q, want aes128gcm", h.Get("Content-Encoding"))
	}
	if ttl, err := strconv.Atoi(h.Get("TTL")); err != nil || ttl < 0 {
		return fmt.Errorf("TTL %q, want a number of seconds", h.Get("TTL"))
	}
	switch u := h.Get("Urgency"); u {
	case "", "very-low", "low", "normal", "high":
	default:
		return fmt.Errorf("Urgency %q is none of RFC 8030's", u)
	}
	return nil
}

// checkVAPID checks an Authorization header of the RFC 8292 "vapid" scheme:
// t a JWT signed ES256 with the key k, for the endpoint's origin, not
// expired, expiring within 24 h, with a contact in sub.
func checkVAPID(header, endpoint, wantKey string) (subject string, err error) {
	params, ok := strings.CutPrefix(header, "vapid ")
	if !ok {
		return "", fmt.Errorf("Authorization %q is not of the vapid scheme", header)
	}
	var token, key string
	for part := range strings.SplitSeq(params, ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch name {
		case "t":
			token = value
		case "k":
			key = value
		}
	}
	if token == "" || key == "" {
		return "", errors.New("vapid Authorization lacks t or k")
	}
	if wantKey != "" && strings.TrimRight(key, "=") != wantKey {
		return "", fmt.Errorf("vapid key %s is not the application server's %s", key, wantKey)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(key, "="))
	if err != nil {
		return "", fmt.Errorf("vapid k: %w", err)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		return "", fmt.Errorf("vapid k: %w", err)
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", err
	}
	origin := u.Scheme + "://" + u.Host
	claims := jwt.MapClaims{}
	_, err = jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithExpirationRequired(), jwt.WithAudience(origin))
	if err != nil {
		return "", fmt.Errorf("vapid JWT: %w", err)
	}
	exp, _ := claims.GetExpirationTime()
	if exp.After(time.Now().Add(24 * time.Hour)) {
		return "", fmt.Errorf("vapid JWT expires %s, more than 24 h ahead", exp)
	}
	sub, _ := claims.GetSubject()
	if !strings.HasPrefix(sub, "mailto:") && !strings.HasPrefix(sub, "https:") {
		return "", fmt.Errorf("vapid JWT sub %q is no mailto: or https: contact", sub)
	}
	return sub, nil
}

// decrypt opens an aes128gcm body (RFC 8188) encrypted for a subscription
// (RFC 8291): header salt(16) rs(4) idlen(1) keyid(idlen), keyid being the
// sender's ephemeral public key, then one record.
func decrypt(body []byte, priv *ecdh.PrivateKey, auth []byte) ([]byte, error) {
	const headerLen = 16 + 4 + 1
	if len(body) < headerLen {
		return nil, errors.New("body shorter than the aes128gcm header")
	}
	salt := body[:16]
	rs := binary.BigEndian.Uint32(body[16:20])
	idLen := int(body[20])
	if idLen != 65 {
		return nil, fmt.Errorf("keyid of %d bytes, want the sender's 65-byte public key", idLen)
	}
	if len(body) < headerLen+idLen {
		return nil, errors.New("body shorter than its keyid")
	}
	senderPub, err := ecdh.P256().NewPublicKey(body[headerLen : headerLen+idLen])
	if err != nil {
		return nil, fmt.Errorf("keyid: %w", err)
	}
	record := body[headerLen+idLen:]
	if rs < 18 || uint32(len(record)) > rs {
		// RFC 8291 section 4: a push is a single record.
		return nil, fmt.Errorf("record of %d bytes with rs %d: not one record", len(record), rs)
	}
	secret, err := priv.ECDH(senderPub)
	if err != nil {
		return nil, fmt.Errorf("ECDH: %w", err)
	}
	keyInfo := "WebPush: info\x00" + string(priv.PublicKey().Bytes()) + string(senderPub.Bytes())
	ikm, err := hkdf.Key(sha256.New, secret, auth, keyInfo, 32)
	if err != nil {
		return nil, err
	}
	prk, err := hkdf.Extract(sha256.New, ikm, salt)
	if err != nil {
		return nil, err
	}
	cek, err := hkdf.Expand(sha256.New, prk, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Expand(sha256.New, prk, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, nonce, record, nil)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	// The last (here the only) record ends with the delimiter 0x02, then
	// any zero padding.
	plain = bytes.TrimRight(plain, "\x00")
	if len(plain) == 0 || plain[len(plain)-1] != 0x02 {
		return nil, errors.New("record lacks the last-record delimiter 0x02")
	}
	return plain[:len(plain)-1], nil
}
