package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/handlers"
)

// Config is the whole configuration, read from PARLEY_* environment
// variables, which flags of the same names (lower case, without the prefix)
// may override. A zero field means its default: DefaultConfig (with
// handlers.DefaultLimits) is the one place the defaults are written.
type Config struct {
	Addr         string
	DataDir      string
	KafkaBrokers []string
	MongoURI     string
	MongoDB      string
	// InstanceID names this instance's fan-out group; its default,
	// <hostname>-<port>, depends on Addr.
	InstanceID   string
	TopicSend    string
	TopicReceive string
	Secret       string
	// NoGuests turns guest sign-in off (PARLEY_GUEST=false).
	NoGuests bool
	// NoAccounts turns password accounts off (PARLEY_ACCOUNTS=false).
	NoAccounts bool
	// TokenTTL is the lifetime of the tokens Parley issues.
	TokenTTL time.Duration
	// JWTIssuer and JWTAudience, when set, go into every token Parley
	// issues and are required of every token it accepts.
	JWTIssuer   string
	JWTAudience string
	// JWKSURL, when set, is the operator's identity provider's JWK Set:
	// tokens signed by its keys are accepted beside Parley's own, their
	// user named by the claim JWTNameClaim (else sub).
	JWKSURL      string
	JWTNameClaim string
	// OIDCIssuer, OIDCClientID and OIDCClientSecret, when set, offer
	// browser sign-in at that OpenID provider (redirect URL PublicURL +
	// /auth/oidc/callback); OIDCName labels it on the sign-in page.
	OIDCIssuer       string
	OIDCClientID     string
	OIDCClientSecret string
	OIDCName         string
	// KafkaPartitions and KafkaReplication shape topics created at start.
	KafkaPartitions  int
	KafkaReplication int
	// ShutdownTimeout bounds graceful shutdown.
	ShutdownTimeout time.Duration
	// ShutdownDelay is how long /readyz answers 503 before the listener
	// closes, for a load balancer's health check to take the instance out.
	ShutdownDelay time.Duration
	// Retention, when positive, is how long messages are kept: older ones
	// are deleted (PARLEY_RETENTION, e.g. 90d; zero keeps them for ever).
	Retention time.Duration
	// PprofAddr, when set, serves net/http/pprof there (profiling; keep it
	// on a loopback or otherwise private address).
	PprofAddr string
	// LogFormat is text (the default) or json: slog's JSON handler, one
	// object per line, for log collectors.
	LogFormat string
	// LogLevel is debug, info (the default), warn or error. Debug adds a
	// line per persist batch with the time of each step.
	LogLevel string

	// Hardening (PROTOCOL.md v2).
	// ReadTimeout bounds the arrival of a request's headers and body;
	// IdleTimeout closes a keep-alive connection that sends nothing.
	ReadTimeout time.Duration
	IdleTimeout time.Duration
	// PublicURL is where clients reach the chat (behind a reverse proxy);
	// its origin may use the session like the server's own.
	PublicURL string
	// AllowedOrigins are further origins whose pages may use the session.
	AllowedOrigins []string
	// TrustedProxies are the proxies (IPs or CIDRs) whose X-Forwarded-For
	// and X-Forwarded-Proto are believed.
	TrustedProxies []string
	// MetricsToken lets a bearer of it read /metrics from anywhere;
	// MetricsAddr serves /metrics on its own listener instead.
	MetricsToken string
	MetricsAddr  string
	// NotifyDelay is how long a direct message or mention stays unread
	// before it is notified (in-app, Web Push, webhooks).
	NotifyDelay time.Duration
	// WebhookURLs get every notification, signed with WebhookSecret.
	WebhookURLs   []string
	WebhookSecret string
	// VAPIDPublicKey and VAPIDPrivateKey are the Web Push keys; unset in
	// embedded mode they are generated into the data dir, unset with
	// Kafka Web Push is off. PushLoopbackHTTP takes http push endpoints
	// on loopback: for tests only.
	VAPIDPublicKey  string
	VAPIDPrivateKey string
	// VAPIDSubject is the contact push services see (mailto: or https:);
	// default PARLEY_PUBLIC_URL, else a placeholder.
	VAPIDSubject     string
	PushLoopbackHTTP bool
	// Limits per user and per client IP, and the per-connection queue.
	handlers.Limits

	// fanoutGroup, when set, replaces this instance's own fan-out group. Only
	// tests set it: sharing one group between instances is the bug the
	// design exists to prevent, and the regression test must be able to show
	// that it sees it.
	fanoutGroup string
	// outboxBackoff, when set, replaces the outbox sender's first retry
	// wait (5 s): the tests of retries set it, so as not to wait minutes.
	outboxBackoff time.Duration
	// storeTimeout, when set, replaces the handlers' bound on a request's
	// store calls (5 s): the browser test of what you missed sets it on
	// FerretDB, which scans each room list's counts where MongoDB uses
	// indexes, and under the suite's load can take longer.
	storeTimeout time.Duration
}

// DefaultConfig is the configuration of PROTOCOL.md with nothing set: one
// machine, the embedded bus and store.
func DefaultConfig() Config {
	return Config{
		Addr:             ":8080",
		DataDir:          "./data",
		MongoDB:          "parley",
		TopicSend:        chat.DefaultTopicSend,
		TopicReceive:     chat.DefaultTopicReceive,
		KafkaPartitions:  8,
		KafkaReplication: 1,
		ShutdownTimeout:  15 * time.Second,
		TokenTTL:         handlers.DefaultTokenTTL,
		JWTNameClaim:     handlers.DefaultJWTNameClaim,
		OIDCName:         "SSO",
		LogFormat:        "text",
		LogLevel:         "info",
		ReadTimeout:      10 * time.Second,
		IdleTimeout:      60 * time.Second,
		Limits:           handlers.DefaultLimits(),
		NotifyDelay:      10 * time.Second,
	}
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	fillZero(reflect.ValueOf(&c).Elem(), reflect.ValueOf(DefaultConfig()))
	if c.InstanceID == "" {
		c.InstanceID = defaultInstanceID(c.Addr)
	}
	return c
}

// fillZero sets each zero exported field of dst (a struct, addressable) to
// the same field of def, field by field inside embedded structs.
func fillZero(dst, def reflect.Value) {
	for i := range dst.NumField() {
		f := dst.Field(i)
		switch {
		case !f.CanSet():
		case f.Kind() == reflect.Struct:
			fillZero(f, def.Field(i))
		case f.IsZero():
			f.Set(def.Field(i))
		}
	}
}

// FanoutGroup is this instance's fan-out consumer group.
func (c Config) FanoutGroup() string {
	if c.fanoutGroup != "" {
		return c.fanoutGroup
	}
	return chat.GroupFanoutPrefix + c.InstanceID
}

// LoadConfig reads the environment through getenv, then flags from args,
// over DefaultConfig. Every field is then set, so a zero is one the user
// wrote, and Validate's "must be positive" refuses it.
func LoadConfig(getenv func(string) string, args []string) (Config, error) {
	cfg := DefaultConfig()
	sw := switchesOn()
	fs := configFlags(&cfg, &sw, getenv)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	g, err := strconv.ParseBool(sw.Guest)
	if err != nil {
		return Config{}, fmt.Errorf("PARLEY_GUEST must be true or false, not %q", sw.Guest)
	}
	a, err := strconv.ParseBool(sw.Accounts)
	if err != nil {
		return Config{}, fmt.Errorf("PARLEY_ACCOUNTS must be true or false, not %q", sw.Accounts)
	}
	cfg.NoGuests, cfg.NoAccounts = !g, !a
	if cfg.PushLoopbackHTTP, err = strconv.ParseBool(sw.PushLoopbackHTTP); err != nil {
		return Config{}, fmt.Errorf("PARLEY_PUSH_ALLOW_LOOPBACK_HTTP must be true or false, not %q", sw.PushLoopbackHTTP)
	}
	cfg.PublicURL = strings.TrimSpace(cfg.PublicURL)
	if cfg.InstanceID == "" {
		cfg.InstanceID = defaultInstanceID(cfg.Addr)
	}
	return cfg, cfg.check()
}

// switches are the settings that read as "on" while their fields say
// "off" (so that the zero Config has them on).
type switches struct{ Guest, Accounts, PushLoopbackHTTP string }

func switchesOn() switches {
	return switches{Guest: "true", Accounts: "true", PushLoopbackHTTP: "false"}
}

// configFlags defines a flag for each setting over cfg (and sw, the
// settings that are not fields as they read), its default what getenv gives
// or else what the field holds.
func configFlags(cfg *Config, sw *switches, getenv func(string) string) *flag.FlagSet {
	fs := flag.NewFlagSet("parley", flag.ContinueOnError)
	// Each setting is PARLEY_<NAME> and the flag -<name>; its default is
	// what the field holds, and a malformed number becomes -1, which
	// Validate refuses with the setting's name.
	env := func(name, def string) string {
		if v := getenv("PARLEY_" + name); v != "" {
			return v
		}
		return def
	}
	flagName := func(name string) string { return strings.ToLower(name) }
	str := func(p *string, name, usage string) {
		fs.StringVar(p, flagName(name), env(name, *p), usage+" (PARLEY_"+name+")")
	}
	list := func(p *[]string, name, usage string) {
		fs.Func(flagName(name), usage+" (PARLEY_"+name+")", func(v string) error { *p = splitList(v); return nil })
		*p = splitList(env(name, strings.Join(*p, ",")))
	}
	integer := func(p *int, name, usage string) {
		fs.IntVar(p, flagName(name), envInt(env(name, strconv.Itoa(*p))), usage+" (PARLEY_"+name+")")
	}
	float := func(p *float64, name, usage string) {
		fs.Float64Var(p, flagName(name), envFloat(env(name, strconv.FormatFloat(*p, 'g', -1, 64))), usage+" (PARLEY_"+name+")")
	}
	duration := func(p *time.Duration, name, usage string) {
		fs.DurationVar(p, flagName(name), envDuration(env(name, p.String())), usage+" (PARLEY_"+name+")")
	}
	str(&cfg.Addr, "ADDR", "listen address")
	str(&cfg.LogFormat, "LOG_FORMAT", "log format: text or json")
	str(&cfg.LogLevel, "LOG_LEVEL", "log level: debug, info, warn or error")
	str(&cfg.DataDir, "DATA_DIR", "embedded store and generated secret")
	list(&cfg.KafkaBrokers, "KAFKA_BROKERS", "comma-separated Kafka bootstrap brokers; unset: embedded bus")
	str(&cfg.MongoURI, "MONGO_URI", "MongoDB connection string; unset: embedded store")
	str(&cfg.MongoDB, "MONGO_DB", "MongoDB database")
	str(&cfg.InstanceID, "INSTANCE_ID", "unique id of this instance; default <hostname>-<port>")
	str(&cfg.TopicSend, "TOPIC_SEND", "send topic")
	str(&cfg.TopicReceive, "TOPIC_RECEIVE", "receive topic")
	str(&cfg.Secret, "SECRET", "token signing key; generated in embedded mode")
	str(&sw.Guest, "GUEST", "allow guest sign-in")
	str(&sw.Accounts, "ACCOUNTS", "allow password accounts (POST /api/accounts)")
	duration(&cfg.TokenTTL, "TOKEN_TTL", "lifetime of the tokens Parley issues")
	str(&cfg.JWTIssuer, "JWT_ISSUER", "iss of issued tokens, required of accepted ones")
	str(&cfg.JWTAudience, "JWT_AUDIENCE", "aud of issued tokens, required of accepted ones")
	str(&cfg.JWKSURL, "JWKS_URL", "JWK Set URL of an identity provider whose RS256/ES256/EdDSA tokens are accepted; unset: off")
	str(&cfg.JWTNameClaim, "JWT_NAME_CLAIM", "claim of a JWKS token that names its user (else sub)")
	str(&cfg.OIDCIssuer, "OIDC_ISSUER", "OpenID provider for browser sign-in (issuer URL); unset: off")
	str(&cfg.OIDCClientID, "OIDC_CLIENT_ID", "client id registered at the OpenID provider")
	str(&cfg.OIDCClientSecret, "OIDC_CLIENT_SECRET", "client secret registered at the OpenID provider")
	str(&cfg.OIDCName, "OIDC_NAME", "the OpenID provider's name on the sign-in page")
	integer(&cfg.KafkaPartitions, "KAFKA_PARTITIONS", "partitions of topics created at start")
	integer(&cfg.KafkaReplication, "KAFKA_REPLICATION", "replication factor of topics created at start")
	float(&cfg.SendRate, "SEND_RATE", "messages per second one user may send, over all their connections")
	integer(&cfg.SendBurst, "SEND_BURST", "burst of sends above the rate")
	integer(&cfg.QueueBytes, "QUEUE_BYTES", "bytes queued for one connection before it is cut off as too slow")
	duration(&cfg.ShutdownTimeout, "SHUTDOWN_TIMEOUT", "graceful shutdown deadline")
	duration(&cfg.ShutdownDelay, "SHUTDOWN_DELAY", "time /readyz answers 503 before the listener closes, within the deadline")
	cfg.Retention = envRetention(env("RETENTION", retentionValue{&cfg.Retention}.String()))
	fs.Var(retentionValue{&cfg.Retention}, flagName("RETENTION"), "delete messages older than this (e.g. 90d, 720h); unset: keep for ever (PARLEY_RETENTION)")
	str(&cfg.PprofAddr, "PPROF_ADDR", "serve net/http/pprof on this address; unset: off")
	duration(&cfg.ReadTimeout, "READ_TIMEOUT", "time a request's headers and body may take to arrive")
	duration(&cfg.IdleTimeout, "IDLE_TIMEOUT", "idle keep-alive connections close after this")
	str(&cfg.PublicURL, "PUBLIC_URL", "the URL clients reach the chat at, behind a reverse proxy")
	list(&cfg.AllowedOrigins, "ALLOWED_ORIGINS", "comma-separated further origins whose pages may use the session")
	list(&cfg.TrustedProxies, "TRUSTED_PROXIES", "comma-separated IPs or CIDRs whose X-Forwarded-For/-Proto are believed")
	str(&cfg.MetricsToken, "METRICS_TOKEN", "bearer token that may read /metrics from anywhere")
	str(&cfg.MetricsAddr, "METRICS_ADDR", "serve /metrics on this address instead of the chat listener")
	integer(&cfg.MaxConnsPerUser, "MAX_CONNS_PER_USER", "live WebSocket+SSE connections per user")
	integer(&cfg.MaxConnsPerIP, "MAX_CONNS_PER_IP", "live WebSocket+SSE connections per client IP")
	float(&cfg.SignInRate, "SIGNIN_RATE", "sign-ins per second per client IP")
	integer(&cfg.SignInBurst, "SIGNIN_BURST", "burst of sign-ins per client IP")
	float(&cfg.PasswordRate, "PASSWORD_RATE", "password sign-in attempts per second per name")
	integer(&cfg.PasswordBurst, "PASSWORD_BURST", "burst of password sign-in attempts per name")
	float(&cfg.HistoryRate, "HISTORY_RATE", "history pages per second per user")
	integer(&cfg.HistoryBurst, "HISTORY_BURST", "burst of history pages per user")
	float(&cfg.RoomRate, "ROOM_RATE", "rooms per second one user may create")
	integer(&cfg.RoomBurst, "ROOM_BURST", "burst of rooms one user may create")
	float(&cfg.ReadRate, "READ_RATE", "read positions (read frames, PUT .../read) per second per user")
	integer(&cfg.ReadBurst, "READ_BURST", "burst of read positions per user")
	integer(&cfg.MaxPushSubs, "MAX_PUSH_SUBSCRIPTIONS", "Web Push subscriptions per user")
	duration(&cfg.NotifyDelay, "NOTIFY_DELAY", "time a direct message or mention stays unread before it is notified")
	list(&cfg.WebhookURLs, "WEBHOOK_URLS", "comma-separated URLs that get every notification, signed (POST, JSON)")
	str(&cfg.WebhookSecret, "WEBHOOK_SECRET", "HMAC-SHA256 key of the webhooks' X-Parley-Signature")
	str(&cfg.VAPIDPublicKey, "VAPID_PUBLIC_KEY", "Web Push VAPID public key (base64url); generated in embedded mode")
	str(&cfg.VAPIDPrivateKey, "VAPID_PRIVATE_KEY", "Web Push VAPID private key (base64url)")
	str(&cfg.VAPIDSubject, "VAPID_SUBJECT", "contact push services see (mailto: or https: URL); default PARLEY_PUBLIC_URL")
	str(&sw.PushLoopbackHTTP, "PUSH_ALLOW_LOOPBACK_HTTP", "accept http push endpoints on 127.0.0.1 (tests only)")
	return fs
}

// splitList splits a comma-separated list, dropping blanks; nil when empty.
func splitList(v string) []string {
	var out []string
	for _, b := range strings.Split(v, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// MinSecretBytes is the shortest PARLEY_SECRET accepted: an HS256 key
// shorter than the hash is guessable offline from one token.
const MinSecretBytes = 32

// Validate refuses configurations that would run but be wrong. Zero fields
// are read as their defaults: Config{} is valid.
func (c Config) Validate() error { return c.withDefaults().check() }

// check is Validate for a config whose every field is set.
func (c Config) check() error {
	if c.Secret != "" && len(c.Secret) < MinSecretBytes {
		return fmt.Errorf("PARLEY_SECRET must be at least %d bytes (it is %d): a short HS256 key can be guessed from any token; generate one with: openssl rand -hex 32", MinSecretBytes, len(c.Secret))
	}
	if c.ReadTimeout <= 0 || c.IdleTimeout <= 0 {
		return errors.New("PARLEY_READ_TIMEOUT and PARLEY_IDLE_TIMEOUT must be positive durations")
	}
	if c.MaxConnsPerUser <= 0 || c.MaxConnsPerIP <= 0 {
		return errors.New("PARLEY_MAX_CONNS_PER_USER and PARLEY_MAX_CONNS_PER_IP must be positive")
	}
	if c.Retention < 0 {
		return errors.New("PARLEY_RETENTION must be a duration such as 90d or 720h, or unset (keep for ever)")
	}
	if c.TokenTTL <= 0 {
		return errors.New("PARLEY_TOKEN_TTL must be a positive duration")
	}
	if c.PasswordRate <= 0 || c.PasswordBurst <= 0 {
		return errors.New("PARLEY_PASSWORD_RATE and PARLEY_PASSWORD_BURST must be positive")
	}
	if c.SignInRate <= 0 || c.SignInBurst <= 0 || c.HistoryRate <= 0 || c.HistoryBurst <= 0 || c.RoomRate <= 0 || c.RoomBurst <= 0 {
		return errors.New("PARLEY_SIGNIN_RATE/_BURST, PARLEY_HISTORY_RATE/_BURST and PARLEY_ROOM_RATE/_BURST must be positive")
	}
	if c.PublicURL != "" {
		if _, ok := handlers.NormalizeOrigin(c.PublicURL); !ok {
			return fmt.Errorf("PARLEY_PUBLIC_URL %q must be an http or https URL", c.PublicURL)
		}
	}
	if err := c.checkIDP(); err != nil {
		return err
	}
	for _, o := range c.AllowedOrigins {
		if _, ok := handlers.NormalizeOrigin(o); !ok {
			return fmt.Errorf("PARLEY_ALLOWED_ORIGINS: %q is not an origin (scheme://host[:port])", o)
		}
	}
	if _, err := parseProxies(c.TrustedProxies); err != nil {
		return err
	}
	if len(c.KafkaBrokers) > 0 && c.MongoURI == "" {
		return errors.New("PARLEY_KAFKA_BROKERS is set but PARLEY_MONGO_URI is not: instances that each persisted to their own embedded file would split the history; set PARLEY_MONGO_URI to a MongoDB shared by all instances")
	}
	if len(c.KafkaBrokers) > 0 && c.Secret == "" {
		return errors.New("PARLEY_SECRET is required with PARLEY_KAFKA_BROKERS: every instance must sign and check tokens with the same secret")
	}
	if c.NotifyDelay <= 0 {
		return errors.New("PARLEY_NOTIFY_DELAY must be a positive duration")
	}
	if c.ReadRate <= 0 || c.ReadBurst <= 0 || c.MaxPushSubs <= 0 {
		return errors.New("PARLEY_READ_RATE, PARLEY_READ_BURST and PARLEY_MAX_PUSH_SUBSCRIPTIONS must be positive")
	}
	for _, u := range c.WebhookURLs {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("PARLEY_WEBHOOK_URLS: %q is not an http(s) URL", u)
		}
	}
	if len(c.WebhookURLs) > 0 && len(c.WebhookSecret) < 16 {
		return errors.New("PARLEY_WEBHOOK_SECRET of at least 16 bytes is required with PARLEY_WEBHOOK_URLS: receivers check the signature with it")
	}
	if (c.VAPIDPublicKey == "") != (c.VAPIDPrivateKey == "") {
		return errors.New("PARLEY_VAPID_PUBLIC_KEY and PARLEY_VAPID_PRIVATE_KEY go together")
	}
	if c.SendRate <= 0 || c.SendBurst <= 0 {
		return errors.New("PARLEY_SEND_RATE and PARLEY_SEND_BURST must be positive")
	}
	if c.QueueBytes < 64<<10 {
		return errors.New("PARLEY_QUEUE_BYTES must be at least 65536")
	}
	if c.KafkaPartitions <= 0 || c.KafkaReplication <= 0 {
		return errors.New("PARLEY_KAFKA_PARTITIONS and PARLEY_KAFKA_REPLICATION must be positive")
	}
	if c.ShutdownTimeout <= 0 {
		return errors.New("PARLEY_SHUTDOWN_TIMEOUT must be positive")
	}
	if c.ShutdownDelay < 0 || c.ShutdownDelay >= c.ShutdownTimeout {
		return errors.New("PARLEY_SHUTDOWN_DELAY must be at least 0 and below PARLEY_SHUTDOWN_TIMEOUT")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("PARLEY_LOG_FORMAT must be text or json, not %q", c.LogFormat)
	}
	if _, ok := logLevels[c.LogLevel]; !ok {
		return fmt.Errorf("PARLEY_LOG_LEVEL must be debug, info, warn or error, not %q", c.LogLevel)
	}
	if c.TopicSend == "" || c.TopicReceive == "" || c.TopicSend == c.TopicReceive {
		return errors.New("PARLEY_TOPIC_SEND and PARLEY_TOPIC_RECEIVE must be set and differ")
	}
	return nil
}

// checkIDP checks the identity-provider settings: URLs that are http(s),
// and OIDC complete (issuer, client id and the public URL the provider
// redirects back to) or not set at all.
func (c Config) checkIDP() error {
	isURL := func(v string) bool {
		u, err := url.Parse(v)
		return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
	}
	if c.JWKSURL != "" && !isURL(c.JWKSURL) {
		return fmt.Errorf("PARLEY_JWKS_URL %q must be an http or https URL", c.JWKSURL)
	}
	if c.OIDCIssuer == "" {
		if c.OIDCClientID != "" || c.OIDCClientSecret != "" {
			return errors.New("PARLEY_OIDC_CLIENT_ID / PARLEY_OIDC_CLIENT_SECRET are set but PARLEY_OIDC_ISSUER is not")
		}
		return nil
	}
	if !isURL(c.OIDCIssuer) {
		return fmt.Errorf("PARLEY_OIDC_ISSUER %q must be an http or https URL", c.OIDCIssuer)
	}
	if c.OIDCClientID == "" {
		return errors.New("PARLEY_OIDC_ISSUER needs PARLEY_OIDC_CLIENT_ID")
	}
	if c.PublicURL == "" {
		return errors.New("PARLEY_OIDC_ISSUER needs PARLEY_PUBLIC_URL: the provider redirects the browser back to PARLEY_PUBLIC_URL/auth/oidc/callback")
	}
	return nil
}

// oidcRedirectURL is where the OpenID provider sends the browser back.
func (c Config) oidcRedirectURL() string {
	return strings.TrimRight(c.PublicURL, "/") + "/auth/oidc/callback"
}

// parseProxies reads PARLEY_TRUSTED_PROXIES: IPs (a host each) or CIDRs.
func parseProxies(list []string) ([]*net.IPNet, error) {
	var nets []*net.IPNet
	for _, p := range list {
		if !strings.Contains(p, "/") {
			ip := net.ParseIP(p)
			if ip == nil {
				return nil, fmt.Errorf("PARLEY_TRUSTED_PROXIES: %q is neither an IP nor a CIDR", p)
			}
			bits := 128
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			nets = append(nets, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
			continue
		}
		_, n, err := net.ParseCIDR(p)
		if err != nil {
			return nil, fmt.Errorf("PARLEY_TRUSTED_PROXIES: %q is neither an IP nor a CIDR", p)
		}
		nets = append(nets, n)
	}
	return nets, nil
}

// allowedOrigins is the origin list the server checks besides a request's
// own: the public URL's and PARLEY_ALLOWED_ORIGINS, normalized.
func (c Config) allowedOrigins() []string {
	var out []string
	for _, o := range append([]string{c.PublicURL}, c.AllowedOrigins...) {
		if n, ok := handlers.NormalizeOrigin(o); ok {
			out = append(out, n)
		}
	}
	return out
}

// defaultInstanceID is <hostname>-<port>, so two instances on one host never
// share a fan-out group.
func defaultInstanceID(addr string) string {
	host, _ := os.Hostname()
	if host == "" {
		host = "parley"
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		port = "8080"
	}
	return host + "-" + port
}

// Malformed numbers become -1 (or 0) and fail Validate with a clear message.
func envInt(v string) int {
	n, err := strconv.Atoi(v)
	if err != nil {
		return -1
	}
	return n
}

func envFloat(v string) float64 {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return -1
	}
	return f
}

func envDuration(v string) time.Duration {
	d, err := time.ParseDuration(v)
	if err != nil {
		return -1
	}
	return d
}

// retentionValue is the flag of PARLEY_RETENTION: a Go duration, or a whole
// number of days with a d suffix (90d), the unit retention is thought in.
type retentionValue struct{ p *time.Duration }

func (r retentionValue) String() string {
	if r.p == nil || *r.p == 0 {
		return ""
	}
	if d := *r.p; d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return r.p.String()
}

func (r retentionValue) Set(v string) error {
	d, err := parseRetention(v)
	if err != nil {
		return err
	}
	*r.p = d
	return nil
}

// parseRetention reads "" or "0" as off, "<n>d" as n days, else a Go
// duration; a negative one is an error.
func parseRetention(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" || v == "0" {
		return 0, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("retention %q: want a whole number of days before d, or a duration such as 720h", v)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, fmt.Errorf("retention %q: want a duration such as 90d or 720h", v)
		}
	}
	if d < 0 {
		return 0, fmt.Errorf("retention %q is negative", v)
	}
	return d, nil
}

// envRetention is parseRetention for an environment value: -1 when it does
// not parse, which check refuses.
func envRetention(v string) time.Duration {
	d, err := parseRetention(v)
	if err != nil {
		return -1
	}
	return d
}

// vapidSubject is the VAPID contact: PARLEY_VAPID_SUBJECT, else
// PARLEY_PUBLIC_URL, else notify's placeholder.
func (c Config) vapidSubject() string {
	if c.VAPIDSubject != "" {
		return c.VAPIDSubject
	}
	if strings.HasPrefix(c.PublicURL, "https://") {
		return strings.TrimRight(c.PublicURL, "/")
	}
	return ""
}

// logLevels are PARLEY_LOG_LEVEL's values.
var logLevels = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}
