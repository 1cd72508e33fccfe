package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/parley-chat/parley/app/chat"
)

// Webhook request headers.
const (
	// HeaderDelivery carries the delivery's ID, the same on every attempt,
	// so that a receiver can drop repeats (delivery is at least once).
	HeaderDelivery = "X-Parley-Delivery"
	// HeaderSignature carries "sha256=" and the lowercase hex HMAC-SHA256
	// of the body under the webhook secret.
	HeaderSignature = "X-Parley-Signature"
)

const signaturePrefix = "sha256="

// Sign returns the X-Parley-Signature value of body under secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return signaturePrefix + hex.EncodeToString(mac.Sum(nil))
}

// Verify reports whether header is body's signature under secret, for
// receivers. The comparison takes the same time wherever a forged
// signature differs, so it cannot be found byte by byte.
func Verify(secret, body []byte, header string) bool {
	hexSum, ok := strings.CutPrefix(header, signaturePrefix)
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// sendWebhook makes one attempt at posting d.
func (s *Sender) sendWebhook(ctx context.Context, d chat.Delivery) result {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Body))
	if err != nil {
		return result{outcome: OutcomeGaveUp, err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Parley-Webhook")
	req.Header.Set(HeaderDelivery, d.ID)
	req.Header.Set(HeaderSignature, Sign(s.cfg.WebhookSecret, d.Body))
	resp, err := s.client.Do(req)
	if err != nil {
		// Transport errors and timeouts: the receiver may be back later.
		return result{outcome: OutcomeRetry, err: err}
	}
	return s.classify(resp, false)
}
