package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/app/chat"
)

// Tokens of the operator's identity provider (PARLEY_JWKS_URL): signed
// RS256, ES256 or EdDSA by a key of its JWK Set, and accepted wherever a
// Parley token is. keyfunc (MicahParks/keyfunc on MicahParks/jwkset) fetches
// the set, refreshes it hourly and once more when a token names a kid it
// does not hold, no more often than RefreshUnknownEvery: a stream of
// tokens with made-up kids cannot make Parley hammer the provider.

// DefaultJWTNameClaim is the claim a provider's token names its user by
// (PARLEY_JWT_NAME_CLAIM); a token without it is named by its sub.
const DefaultJWTNameClaim = "preferred_username"

// jwksMethods are the algorithms a JWKS token may use. HS256 is not among
// them: an HS256 token is only ever checked against PARLEY_SECRET, so one
// "signed" with a provider's public key (the RS256/HS256 confusion) fails.
var jwksMethods = []string{"RS256", "ES256", "EdDSA"}

// JWKSOptions configure NewJWKS; zero fields get their defaults.
type JWKSOptions struct {
	// URL is the JWK Set's (PARLEY_JWKS_URL).
	URL string
	// NameClaim is the claim that names the user; DefaultJWTNameClaim.
	NameClaim string
	// People holds the names: such a user holds its name like an account.
	People chat.People
	// RefreshUnknownEvery bounds refetches for an unknown kid; one a
	// minute by default. Keep it above Timeout: a look-up waits for the
	// limiter when its next refetch is due within Timeout.
	RefreshUnknownEvery time.Duration
	// Client fetches the set; http.DefaultClient's transport with a 10 s
	// timeout by default.
	Client *http.Client
	// Timeout bounds one token's key look-up and name claim; 5 s.
	Timeout time.Duration
}

// JWKS checks tokens of the operator's identity provider and holds their
// users' names.
type JWKS struct {
	keys      keyfunc.Keyfunc
	nameClaim string
	people    chat.People
	timeout   time.Duration
	// held caches the names this instance has claimed for an identity
	// (canonical name -> issuer|subject), so that a request does not hit
	// the store: an external identity holds its name for good.
	held *lru.Cache[string, string]
}

// NewJWKS starts fetching the JWK Set at o.URL; the fetches end with ctx.
// A provider that does not answer at start is no error: its tokens are
// refused until a refresh reaches it.
func NewJWKS(ctx context.Context, o JWKSOptions) (*JWKS, error) {
	if o.URL == "" || o.People == nil {
		return nil, errors.New("jwks: URL and People are required")
	}
	if o.NameClaim == "" {
		o.NameClaim = DefaultJWTNameClaim
	}
	if o.RefreshUnknownEvery <= 0 {
		o.RefreshUnknownEvery = time.Minute
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	keys, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{o.URL}, keyfunc.Override{
		Client:      o.Client,
		HTTPTimeout: o.Client.Timeout,
		// This bounds the limiter's wait and the refetch together. The
		// limiter fails at once when its next refetch lies beyond the
		// deadline, so a rate-limited look-up is a prompt 401 rather than a
		// request held for keyfunc's default minute.
		RateLimitWaitMax:  o.Timeout,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(o.RefreshUnknownEvery), 1),
	})
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", o.URL, err)
	}
	held, _ := lru.New[string, string](4096)
	return &JWKS{keys: keys, nameClaim: o.NameClaim, people: o.People, timeout: o.Timeout, held: held}, nil
}

// verify checks a provider's token: a signature by a key of the set, a
// numeric exp in the future, iss and aud as for Parley's own tokens, and a
// name that is valid and held by this identity (claimed on first use).
func (j *JWKS) verify(token, issuer, audience string) (Session, error) {
	ctx, cancel := context.WithTimeout(context.Background(), j.timeout)
	defer cancel()
	opts := []jwt.ParserOption{jwt.WithValidMethods(jwksMethods), jwt.WithExpirationRequired()}
	if issuer != "" {
		opts = append(opts, jwt.WithIssuer(issuer))
	}
	if audience != "" {
		opts = append(opts, jwt.WithAudience(audience))
	}
	c := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(token, c, j.keys.KeyfuncCtx(ctx), opts...); err != nil {
		return Session{}, err
	}
	iss, _ := c.GetIssuer()
	sub, _ := c.GetSubject()
	exp, _ := c.GetExpirationTime()
	if sub == "" {
		return Session{}, errors.New("provider token has no sub")
	}
	name := sub
	if n, ok := c[j.nameClaim].(string); ok && n != "" {
		name = n
	}
	if chat.ValidateName(name) != nil {
		return Session{}, chat.Errorf(chat.EUnauthorized, "the identity provider's name %q is not a valid user name here", name)
	}
	if err := j.hold(ctx, name, iss+"|"+sub); err != nil {
		return Session{}, err
	}
	sid, _ := c["sid"].(string)
	if sid == "" {
		sid, _ = c["jti"].(string)
	}
	return Session{User: name, SID: sid, Expires: exp.Time}, nil
}

// tokenAlg is the alg of token's header, unverified: it only chooses which
// check the token gets.
func tokenAlg(token string) string {
	t, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil {
		return ""
	}
	alg, _ := t.Header["alg"].(string)
	return alg
}

// hold makes the identity subject the holder of name, through the cache.
func (j *JWKS) hold(ctx context.Context, name, subject string) error {
	canonical := chat.CanonicalName(name)
	if s, ok := j.held.Get(canonical); ok && s == subject {
		return nil
	}
	if err := claimExternal(ctx, j.people, name, subject); err != nil {
		return err
	}
	j.held.Add(canonical, subject)
	return nil
}

// claimExternal claims name for the external identity subject
// (issuer|subject): the answer to a conflict is a 401 naming the name.
func claimExternal(ctx context.Context, people chat.People, name, subject string) error {
	now := time.Now()
	h := chat.Holder{Canonical: chat.CanonicalName(name), Name: name, Kind: chat.HolderExternal, Subject: subject, Created: now}
	err := people.Claim(ctx, h, now)
	switch {
	case err == nil:
		return nil
	case chat.ErrorCode(err) == chat.EConflict:
		return chat.Errorf(chat.EUnauthorized, "the name %q (or one that looks like it) belongs to another account or identity here; ask your identity provider's administrator", name)
	default:
		return unavailable(err)
	}
}
