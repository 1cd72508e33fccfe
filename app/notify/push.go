package notify

import (
	"context"
	"errors"
	"net/url"
	"strings"

	"github.com/SherClockHolmes/webpush-go"

	"github.com/parley-chat/parley/app/chat"
)

// pushTTL is how long a push service keeps a push for a browser that is
// offline (seconds): a day, after which a chat notification is stale.
const pushTTL = 24 * 60 * 60

// sendPush makes one attempt at pushing d to its subscription, encrypted
// for it (RFC 8291) and signed with the VAPID key (RFC 8292) by webpush-go.
func (s *Sender) sendPush(ctx context.Context, d chat.Delivery) result {
	sub := &webpush.Subscription{Endpoint: d.URL, Keys: webpush.Keys{P256dh: d.P256dh, Auth: d.Auth}}
	resp, err := webpush.SendNotificationWithContext(ctx, d.Body, sub, &webpush.Options{
		HTTPClient:      s.client,
		Subscriber:      s.subscriber,
		TTL:             pushTTL,
		Urgency:         webpush.UrgencyHigh,
		VAPIDPublicKey:  s.cfg.VAPID.PublicKey,
		VAPIDPrivateKey: s.cfg.VAPID.PrivateKey,
	})
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			// The request was made and failed in transport (or timed
			// out): worth another attempt.
			return result{outcome: OutcomeRetry, err: err}
		}
		// Anything before the request — keys that do not decode, a
		// payload too large for one record — fails the same way every
		// time.
		return result{outcome: OutcomeGaveUp, err: err}
	}
	return s.classify(resp, true)
}

// subscriberFor is the VAPID "sub" claim in the form webpush-go takes: it
// prefixes "mailto:" to anything not an https URL, so a configured
// "mailto:" is stripped first.
func subscriberFor(contact string) string {
	return strings.TrimPrefix(contact, "mailto:")
}
